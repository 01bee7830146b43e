//! The storage authority over gRPC with mutual TLS, against a real SQLite storage: rows come back
//! whole, `NotFound` and `Conflict` stay what they are, and a client whose identity the service
//! does not allow, or an SA that is down, is an internal storage error (never a panic, never a
//! client's `NotFound`). `ca/sa/tests/storage.rs` runs the whole storage suite through
//! [`RemoteSa`] as well.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use cairn_api::sa::{SaError, StorageAuthority};
use cairn_core::{Account, AccountId, AccountStatus, Order, OrderId, Problem};
use cairn_rpc::sa::RemoteSa;
use cairn_rpc::{AllowedClients, RpcClientConfig, RpcError, dev_pki, server, tls};
use cairn_sa::SqlStorage;
use std::path::Path;
use std::sync::Arc;

fn account() -> Account {
    let id = AccountId::random();
    Account {
        jwk: serde_json::json!({"kty": "EC", "crv": "P-256", "x": id.as_str(), "y": "y"}),
        key_thumbprint: format!("thumb-{id}"),
        id,
        contact: vec!["mailto:admin@example.com".into()],
        status: AccountStatus::Valid,
        created_at: time::macros::datetime!(2026-05-01 12:00:00.123456 UTC),
        eab_key_id: None,
        initial_ip: Some("192.0.2.7".into()),
    }
}

/// Serves `sa` to the identities in `allowed`, with the "sa" certificate of the PKI in `pki`.
async fn start_sa(pki: &Path, sa: SqlStorage, allowed: &[&str]) -> String {
    let router = cairn_rpc::sa::router(Arc::new(sa)).into_router(AllowedClients(
        allowed.iter().map(|s| dev_pki::identity(s)).collect(),
    ));
    let tls = tls::server_config(&dev_pki::files(pki, "sa")).unwrap();
    let socket = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = socket.local_addr().unwrap();
    tokio::spawn(server::serve(
        socket,
        "sa-rpc",
        tls,
        router,
        std::future::pending(),
    ));
    format!("https://{addr}")
}

fn client(pki: &Path, url: &str, name: &str) -> RemoteSa {
    RemoteSa::new(&RpcClientConfig {
        url: url.to_owned(),
        server_name: dev_pki::identity("sa"),
        tls: dev_pki::files(pki, name),
        timeout: time::Duration::seconds(5),
    })
    .unwrap()
}

fn pki(dir: &Path) -> std::path::PathBuf {
    let pki = dir.join("pki");
    dev_pki::generate(&pki, &["sa".to_owned(), "ra".to_owned(), "wfe".to_owned()]).unwrap();
    pki
}

#[tokio::test]
async fn rows_and_typed_errors_cross_the_wire() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki(dir.path());
    let sa = SqlStorage::open_sqlite_in(dir.path()).await.unwrap();
    let url = start_sa(&pki, sa.clone(), &["ra"]).await;
    let remote = client(&pki, &url, "ra");

    let acct = account();
    remote.new_account(&acct).await.unwrap();
    // Written through the wire, read in process and through the wire: the same row.
    assert_eq!(sa.get_account(&acct.id).await.unwrap(), acct);
    assert_eq!(remote.get_account(&acct.id).await.unwrap(), acct);
    assert_eq!(
        remote
            .get_account_by_key(&acct.key_thumbprint)
            .await
            .unwrap(),
        acct
    );
    let since = acct.created_at - time::Duration::hours(1);
    assert_eq!(
        remote
            .count_accounts_by_ip("192.0.2.7", since)
            .await
            .unwrap(),
        1
    );

    // The same key again is a Conflict, with the storage's own text.
    let mut twin = account();
    twin.key_thumbprint = acct.key_thumbprint.clone();
    let in_process = sa.new_account(&twin).await.unwrap_err();
    let remote_err = remote.new_account(&twin).await.unwrap_err();
    match (&in_process, &remote_err) {
        (SaError::Conflict(a), SaError::Conflict(b)) => assert_eq!(a, b),
        other => panic!("expected two conflicts, got {other:?}"),
    }
    // Missing rows are NotFound, on reads and on writes.
    assert!(matches!(
        remote.get_account(&AccountId::random()).await,
        Err(SaError::NotFound)
    ));
    assert!(matches!(
        remote.get_order(&OrderId::random()).await,
        Err(SaError::NotFound)
    ));
    assert!(matches!(
        remote
            .fail_order(&OrderId::random(), None, &Problem::malformed("x"))
            .await,
        Err(SaError::NotFound)
    ));
    // An argument list with an option and a slice, answered with an option.
    let none: Option<Order> = remote
        .get_reusable_order(&acct.id, &[], Some("shortlived"), since)
        .await
        .unwrap();
    assert_eq!(none, None);
    sa.close().await;
}

#[tokio::test]
async fn a_refused_identity_and_a_down_sa_are_internal_errors() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki(dir.path());
    let sa = SqlStorage::open_sqlite_in(dir.path()).await.unwrap();
    let url = start_sa(&pki, sa.clone(), &["ra"]).await;

    // The WFE's certificate is valid but not on this SA's list.
    let wfe = client(&pki, &url, "wfe");
    let acct = account();
    let err = wfe.new_account(&acct).await.unwrap_err();
    let SaError::Database(source) = &err else {
        panic!("expected an internal error, got {err:?}");
    };
    assert!(
        matches!(
            source.downcast_ref::<RpcError>(),
            Some(RpcError::PermissionDenied(_))
        ),
        "{source:?}"
    );
    // Refused before the storage ran: nothing was written.
    assert!(matches!(
        sa.get_account(&acct.id).await,
        Err(SaError::NotFound)
    ));
    // A refused read is not a NotFound either.
    assert!(matches!(
        wfe.get_account(&acct.id).await,
        Err(SaError::Database(_))
    ));

    // An SA no one listens for.
    let socket = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let down = format!("https://{}", socket.local_addr().unwrap());
    drop(socket);
    let err = client(&pki, &down, "ra")
        .get_account(&acct.id)
        .await
        .unwrap_err();
    let SaError::Database(source) = &err else {
        panic!("expected an internal error, got {err:?}");
    };
    assert!(
        matches!(
            source.downcast_ref::<RpcError>(),
            Some(RpcError::Unavailable(_))
        ),
        "{source:?}"
    );
    sa.close().await;
}
