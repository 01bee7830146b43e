//! The console's tables (migration 0006 of the DAP datastore) on SQLite and on PostgreSQL (when
//! `CAIRN_TEST_POSTGRES_URL` is set; required under CI): every lookup that belongs to an
//! account finds nothing of another account's, an e-mail address has one login, revoked tokens
//! and expired sessions are not found, and membership shares an account.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test: a panic is a failure with a location

use cairn_dap_aggregator::{Datastore, DatastoreKey};
use cairn_dap_console::store::{Store, StoreError, TaskRow};

const NOW: u64 = 1_800_000_000;

/// A fresh datastore on `backend`, and the PostgreSQL schema to drop after (if any).
async fn datastore(
    backend: &str,
    dir: &tempfile::TempDir,
) -> Option<(Datastore, Option<(String, String)>)> {
    let key = DatastoreKey::from_bytes(&[9; 32]).unwrap();
    if backend == "sqlite" {
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("dap.db").display());
        return Some((Datastore::connect(&url, key).await.unwrap(), None));
    }
    use sqlx::{AssertSqlSafe, Connection};
    let base = cairn_test_services::postgres_url()?;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let schema = format!("console_{}_{nanos:x}", std::process::id());
    let mut admin = sqlx::PgConnection::connect(&base).await.unwrap();
    sqlx::query(AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
        .execute(&mut admin)
        .await
        .unwrap();
    let sep = if base.contains('?') { '&' } else { '?' };
    let url = format!("{base}{sep}options=-csearch_path%3D{schema}");
    Some((
        Datastore::connect(&url, key).await.unwrap(),
        Some((base, schema)),
    ))
}

fn task(task_id: &str, account_id: &str) -> TaskRow {
    TaskRow {
        task_id: task_id.into(),
        account_id: account_id.into(),
        name: "m".into(),
        metric: "{}".into(),
        parameters: "{}".into(),
        helper: "shared".into(),
        credential_id: "c".into(),
        created_at: NOW,
    }
}

async fn lookups_are_scoped_to_their_account(backend: &str) {
    let dir = tempfile::tempdir().unwrap();
    let Some((ds, schema)) = datastore(backend, &dir).await else {
        return;
    };
    let s = Store::new(ds.db().clone());
    assert!(!s.any_user().await.unwrap());
    s.put_user_with_account("u1", "a@x", "h1", "acc1", NOW)
        .await
        .unwrap();
    let again = s
        .put_user_with_account("u9", "a@x", "h9", "acc9", NOW)
        .await;
    assert!(matches!(again, Err(StoreError::Conflict(_))), "{again:?}");
    s.put_user_with_account("u2", "b@x", "h2", "acc2", NOW)
        .await
        .unwrap();
    assert!(s.any_user().await.unwrap());

    // Tasks.
    s.put_task(&task("t1", "acc1")).await.unwrap();
    assert!(s.get_task("acc2", "t1").await.unwrap().is_none());
    assert!(s.get_tasks("acc2").await.unwrap().is_empty());
    assert!(!s.delete_task("acc2", "t1", NOW).await.unwrap());
    assert_eq!(s.get_tasks("acc1").await.unwrap().len(), 1);
    assert!(s.delete_task("acc1", "t1", NOW).await.unwrap());
    assert!(s.get_task("acc1", "t1").await.unwrap().is_none());

    // API tokens.
    s.put_api_token("tok1", "acc1", "prefix000001", [7; 32], "ci", NOW)
        .await
        .unwrap();
    assert!(!s.revoke_api_token("acc2", "tok1", NOW).await.unwrap());
    let (account, hash) = s.get_api_token("prefix000001").await.unwrap().unwrap();
    assert_eq!((account.as_str(), hash), ("acc1", vec![7; 32]));
    assert!(s.get_api_tokens("acc2").await.unwrap().is_empty());
    assert!(s.revoke_api_token("acc1", "tok1", NOW + 1).await.unwrap());
    assert!(s.get_api_token("prefix000001").await.unwrap().is_none());
    assert_eq!(
        s.get_api_tokens("acc1").await.unwrap()[0].revoked_at,
        Some(NOW + 1)
    );

    // Helpers and credentials.
    s.put_helper("h1", "acc1", "mine", "https://h/", vec![1, 2], NOW)
        .await
        .unwrap();
    assert!(s.get_helper("acc2", "h1").await.unwrap().is_none());
    assert_eq!(s.get_helper("acc1", "h1").await.unwrap().unwrap().1, [1, 2]);
    s.put_credential("c1", "acc1", "k", "config", "browser", NOW)
        .await
        .unwrap();
    assert!(s.get_credentials("acc2").await.unwrap().is_empty());

    // Sessions expire.
    s.put_session([3; 32], "u1", "csrf", NOW + 10, NOW)
        .await
        .unwrap();
    assert_eq!(
        s.get_session([3; 32], NOW + 5)
            .await
            .unwrap()
            .unwrap()
            .csrf_token,
        "csrf"
    );
    assert!(s.get_session([3; 32], NOW + 11).await.unwrap().is_none());

    // Membership shares an account.
    assert!(
        s.get_account_for_member("acc1", "u2")
            .await
            .unwrap()
            .is_none()
    );
    assert!(!s.put_membership("acc1", "nobody@x", NOW).await.unwrap());
    assert!(s.put_membership("acc1", "b@x", NOW).await.unwrap());
    assert!(s.put_membership("acc1", "b@x", NOW).await.unwrap(), "again");
    assert_eq!(s.get_accounts_of("u2").await.unwrap().len(), 2);
    assert_eq!(s.get_members("acc1").await.unwrap(), ["a@x", "b@x"]);

    ds.close().await;
    if let Some((base, schema)) = schema {
        use sqlx::{AssertSqlSafe, Connection};
        let mut admin = sqlx::PgConnection::connect(&base).await.unwrap();
        sqlx::query(AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
            .execute(&mut admin)
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn sqlite_lookups_are_scoped_to_their_account() {
    lookups_are_scoped_to_their_account("sqlite").await;
}

#[tokio::test]
async fn postgres_lookups_are_scoped_to_their_account() {
    lookups_are_scoped_to_their_account("postgres").await;
}
