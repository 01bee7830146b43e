//! EAB HMAC keys are sealed at rest (issue 14, finding 12): the database row never holds the
//! key, rows from before sealing are sealed at start, and the key still reads back for the RA
//! to verify a binding.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use cairn_core::EabKey;
use cairn_sa::{EabSeal, SaError, SqlStorage, StorageAuthority};
use sqlx::Connection;
use std::path::Path;
use time::macros::datetime;

fn key(id: &str, byte: u8) -> EabKey {
    EabKey {
        key_id: id.into(),
        hmac_key: vec![byte; 32],
        created_at: datetime!(2026-03-02 09:00 UTC),
        bound_account: None,
    }
}

/// The `hmac_key` column of `key_id`, read past the storage authority.
async fn raw_hmac(dir: &Path, key_id: &str) -> Vec<u8> {
    let url = format!("sqlite://{}", dir.join("cairn.db").display());
    let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
    let (value,): (Vec<u8>,) = sqlx::query_as("SELECT hmac_key FROM eab_keys WHERE key_id = $1")
        .bind(key_id)
        .fetch_one(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();
    value
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test]
async fn eab_hmac_keys_are_sealed_at_rest_and_old_rows_are_sealed_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let seal_key = EabSeal::generate_key().unwrap();

    // A key written before sealing existed: plaintext in its row.
    let legacy = key("legacy", 0x11);
    let plain = SqlStorage::open_sqlite_in(dir.path()).await.unwrap();
    plain.new_eab_key(&legacy).await.unwrap();
    plain.close().await;
    assert_eq!(raw_hmac(dir.path(), "legacy").await, legacy.hmac_key);

    // With the seal: the old row is sealed once, new rows are sealed as written.
    let sa = SqlStorage::open_sqlite_in(dir.path())
        .await
        .unwrap()
        .with_eab_seal(EabSeal::new(&seal_key).unwrap());
    assert_eq!(sa.seal_eab_keys_at_rest().await.unwrap(), 1);
    assert_eq!(sa.seal_eab_keys_at_rest().await.unwrap(), 0);
    let fresh = key("fresh", 0x22);
    sa.new_eab_key(&fresh).await.unwrap();
    for k in [&legacy, &fresh] {
        let raw = raw_hmac(dir.path(), &k.key_id).await;
        assert!(
            !contains(&raw, &k.hmac_key),
            "{} is stored in plaintext",
            k.key_id
        );
        assert_eq!(sa.get_eab_key(&k.key_id).await.unwrap(), *k);
    }
    sa.close().await;

    // Without the sealing key, or with another one, a sealed key does not read back.
    let unsealed = SqlStorage::open_sqlite_in(dir.path()).await.unwrap();
    assert!(matches!(
        unsealed.get_eab_key("fresh").await,
        Err(SaError::Corrupt(_))
    ));
    unsealed.close().await;
    let wrong = SqlStorage::open_sqlite_in(dir.path())
        .await
        .unwrap()
        .with_eab_seal(EabSeal::new(&EabSeal::generate_key().unwrap()).unwrap());
    assert!(matches!(
        wrong.get_eab_key("legacy").await,
        Err(SaError::Corrupt(_))
    ));
    wrong.close().await;
}
