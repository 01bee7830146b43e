//! The console's tables (migration 0006 of the DAP datastore) on SQLite and on PostgreSQL (when
//! `CAIRN_TEST_POSTGRES_URL` is set; required under CI): every lookup that belongs to an
//! account finds nothing of another account's, an e-mail address has one login, revoked tokens
//! and expired sessions are not found, and membership shares an account.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test: a panic is a failure with a location

use cairn_dap_aggregator::{Datastore, DatastoreKey};
use cairn_dap_console::auth::{LoginLimiter, LoginLimits};
use cairn_dap_console::store::{RemoveMember, Store, StoreError, StoredResult, TaskRow};

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

async fn drop_schema(schema: Option<(String, String)>) {
    if let Some((base, schema)) = schema {
        use sqlx::{AssertSqlSafe, Connection};
        let mut admin = sqlx::PgConnection::connect(&base).await.unwrap();
        sqlx::query(AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
            .execute(&mut admin)
            .await
            .unwrap();
    }
}

/// The log-in limit's counters: per address and per client, in fixed windows, shared by two
/// limiters on one database (two console instances), cleared by a success.
async fn login_failures_are_counted_in_the_database(backend: &str) {
    let dir = tempfile::tempdir().unwrap();
    let Some((ds, schema)) = datastore(backend, &dir).await else {
        return;
    };
    let limits = LoginLimits {
        per_email: 2,
        per_client: 3,
        window_secs: 60,
    };
    let one = LoginLimiter::new(limits, Store::new(ds.db().clone()));
    let two = LoginLimiter::new(limits, Store::new(ds.db().clone()));
    let ip = Some(std::net::IpAddr::from([10, 0, 0, 1]));
    one.failed("A@x", ip, NOW).await.unwrap();
    assert_eq!(two.blocked("a@x", ip, NOW + 1).await.unwrap(), None);
    two.failed("a@x", ip, NOW + 1).await.unwrap();
    assert_eq!(one.blocked("a@x", None, NOW + 10).await.unwrap(), Some(50));
    // Another address from the same client: blocked once the client reaches its limit.
    assert_eq!(one.blocked("b@x", ip, NOW + 10).await.unwrap(), None);
    one.failed("b@x", ip, NOW + 10).await.unwrap();
    assert_eq!(two.blocked("b@x", ip, NOW + 11).await.unwrap(), Some(49));
    // The window ends; a new failure starts a new one.
    assert_eq!(one.blocked("a@x", None, NOW + 60).await.unwrap(), None);
    one.failed("a@x", None, NOW + 61).await.unwrap();
    assert_eq!(one.blocked("a@x", None, NOW + 62).await.unwrap(), None);
    two.succeeded("b@x").await.unwrap();
    assert_eq!(one.blocked("b@x", None, NOW + 11).await.unwrap(), None);
    drop_schema(schema).await;
}

#[tokio::test]
async fn sqlite_login_failures_are_counted_in_the_database() {
    login_failures_are_counted_in_the_database("sqlite").await;
}

#[tokio::test]
async fn postgres_login_failures_are_counted_in_the_database() {
    login_failures_are_counted_in_the_database("postgres").await;
}

/// Members and results: the last member stays; a result is stored only for the account's own
/// task, and the same batch stored again replaces it.
async fn members_and_results(backend: &str) {
    let dir = tempfile::tempdir().unwrap();
    let Some((ds, schema)) = datastore(backend, &dir).await else {
        return;
    };
    let store = Store::new(ds.db().clone());
    store
        .put_user_with_account("u1", "one@x", "h", "acct1", NOW)
        .await
        .unwrap();
    store
        .put_user_with_account("u2", "two@x", "h", "acct2", NOW)
        .await
        .unwrap();
    assert_eq!(
        store.remove_member("acct1", "one@x").await.unwrap(),
        RemoveMember::LastMember
    );
    assert_eq!(
        store.remove_member("acct1", "two@x").await.unwrap(),
        RemoveMember::NotAMember
    );
    assert!(store.put_membership("acct1", "two@x", NOW).await.unwrap());
    assert_eq!(
        store.remove_member("acct1", "one@x").await.unwrap(),
        RemoveMember::Removed
    );
    assert!(
        store
            .get_account_for_member("acct1", "u1")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .get_account_for_member("acct1", "u2")
            .await
            .unwrap()
            .is_some()
    );

    store.put_task(&task("t1", "acct1")).await.unwrap();
    let r = |start: u64, n: u64| StoredResult {
        batch: format!("{start}+60"),
        interval_start: start,
        interval_duration: 60,
        report_count: n,
        aggregate_result: serde_json::json!(n),
        stored_at: NOW,
    };
    assert!(store.put_result("acct1", "t1", &r(120, 5)).await.unwrap());
    assert!(store.put_result("acct1", "t1", &r(60, 7)).await.unwrap());
    assert!(store.put_result("acct1", "t1", &r(120, 9)).await.unwrap());
    assert!(!store.put_result("acct2", "t1", &r(180, 1)).await.unwrap());
    let got = store.get_results("acct1", "t1", 10).await.unwrap();
    assert_eq!(got, vec![r(60, 7), r(120, 9)]);
    assert!(
        store
            .get_results("acct2", "t1", 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store.get_results("acct1", "t1", 1).await.unwrap(),
        vec![r(120, 9)]
    );
    drop_schema(schema).await;
}

#[tokio::test]
async fn sqlite_members_and_results() {
    members_and_results("sqlite").await;
}

#[tokio::test]
async fn postgres_members_and_results() {
    members_and_results("postgres").await;
}
