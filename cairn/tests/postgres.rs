//! The whole CA on PostgreSQL (`--database-url postgres://…`): one complete issuance.
//! Runs when `CAIRN_TEST_POSTGRES_URL` is set (CI sets it, and fails without it), in a fresh
//! schema.

mod common;

use common::{TestCa, verify_chain};
use instant_acme::{ChallengeType, Identifier};
// The schema name is built from the process ID only, so the dynamic SQL below is safe.
use sqlx::AssertSqlSafe;

#[tokio::test]
async fn issuance_on_postgresql() {
    let Some(base) = cairn_test_services::postgres_url() else {
        return;
    };
    let schema = common::pg::Schema::create(&base, "cairn_e2e").await;
    let url = schema.url.clone();
    let ca = TestCa::start_with(|cfg| cfg.server.database_url = Some(url)).await;
    let account = ca.account().await;
    let (pem, _) = ca
        .issue(
            &account,
            &[Identifier::Dns("pg.example.com".into())],
            ChallengeType::Http01,
        )
        .await;
    verify_chain(&ca.server.root_path, &pem, "pg.example.com");
    // The rows really are in PostgreSQL.
    let (n,): (i64,) = sqlx::query_as(AssertSqlSafe(format!(
        "SELECT COUNT(*) FROM {}.certificates",
        schema.name
    )))
    .fetch_one(&schema.admin)
    .await
    .unwrap();
    assert_eq!(n, 1);
    schema.drop().await;
}
