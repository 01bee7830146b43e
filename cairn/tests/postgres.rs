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
    let schema = format!("cairn_e2e_{}", std::process::id());
    let admin = sqlx::PgPool::connect(&base)
        .await
        .expect("connect to PostgreSQL");
    sqlx::query(AssertSqlSafe(format!(
        "DROP SCHEMA IF EXISTS {schema} CASCADE"
    )))
    .execute(&admin)
    .await
    .unwrap();
    sqlx::query(AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
        .execute(&admin)
        .await
        .unwrap();
    let sep = if base.contains('?') { '&' } else { '?' };
    let url = format!("{base}{sep}options=-csearch_path%3D{schema}");

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
        "SELECT COUNT(*) FROM {schema}.certificates"
    )))
    .fetch_one(&admin)
    .await
    .unwrap();
    assert_eq!(n, 1);
    sqlx::query(AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
        .execute(&admin)
        .await
        .unwrap();
}
