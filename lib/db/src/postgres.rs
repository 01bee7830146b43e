//! PostgreSQL: the connection pool, the schema brought up to date, and a write as a transaction
//! of its own.

use crate::{Conn, DbError, Migrations, Schema, WriteFuture};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use std::str::FromStr;

/// The most connections one database keeps open.
const MAX_CONNECTIONS: u32 = 16;

/// Connects to the database named by a `postgres:` URL and brings `schema` up to date. The URL
/// may carry `options=-csearch_path%3D<schema>` to place the tables in a schema other than
/// `public`.
pub(crate) async fn connect(url: &str, schema: &Schema) -> Result<PgPool, DbError> {
    let options = PgConnectOptions::from_str(url)?;
    let pool = PgPoolOptions::new()
        .max_connections(MAX_CONNECTIONS)
        .connect_with(options)
        .await?;
    match &schema.migrations {
        Migrations::PerBackend { postgres, .. } => postgres.run(&pool).await?,
        Migrations::Idempotent(statements) => {
            for statement in *statements {
                sqlx::raw_sql(*statement).execute(&pool).await?;
            }
        }
    }
    Ok(pool)
}

/// One write transaction: commits if `job` returns `Ok`, rolls back otherwise (dropping an
/// uncommitted transaction rolls it back, also when the caller stops waiting).
pub(crate) async fn write<T, E, F>(pool: &PgPool, job: F) -> Result<T, E>
where
    E: From<DbError>,
    F: for<'c> FnOnce(Conn<'c>) -> WriteFuture<'c, Result<T, E>>,
{
    let mut tx = pool.begin().await.map_err(DbError::from)?;
    let result = job(Conn::Postgres(&mut tx)).await;
    if result.is_ok() {
        tx.commit().await.map_err(DbError::from)?;
    }
    result
}
