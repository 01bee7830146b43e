//! PostgreSQL backend: connection pool and the embedded migrations.

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use std::str::FromStr;

/// Connects to a `postgres:` URL (which may set `options=-csearch_path%3D<schema>`) and migrates.
pub(super) async fn connect_url(url: &str) -> Result<PgPool, sqlx::Error> {
    let pool = PgPoolOptions::new()
        .max_connections(16)
        .connect_with(PgConnectOptions::from_str(url)?)
        .await?;
    sqlx::migrate!("./migrations/postgres").run(&pool).await?;
    Ok(pool)
}
