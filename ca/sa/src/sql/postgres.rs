//! PostgreSQL backend: connection pool and the embedded migrations.

use super::Failure;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use std::str::FromStr;

/// Connects to the database named by a `postgres:` URL and migrates it. The URL may carry
/// `options=-csearch_path%3D<schema>` to place the tables in a schema other than `public`.
pub(super) async fn connect_url(url: &str) -> Result<PgPool, Failure> {
    let options = PgConnectOptions::from_str(url)?;
    let pool = PgPoolOptions::new()
        .max_connections(16)
        .connect_with(options)
        .await?;
    sqlx::migrate!("./migrations/postgres").run(&pool).await?;
    Ok(pool)
}
