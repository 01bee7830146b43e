//! SQLite backend: connection settings chosen for durability and the embedded migrations.

use crate::SaResult;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

/// How long a connection waits for another writer before failing with `SQLITE_BUSY`.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Opens (creating if missing) the database named by a `sqlite:` URL and migrates it.
pub(super) async fn connect_url(url: &str) -> SaResult<SqlitePool> {
    connect(SqliteConnectOptions::from_str(url)?).await
}

/// Opens (creating if missing) the database file at `path` and migrates it.
pub(super) async fn connect_file(path: &Path) -> SaResult<SqlitePool> {
    connect(SqliteConnectOptions::new().filename(path)).await
}

async fn connect(options: SqliteConnectOptions) -> SaResult<SqlitePool> {
    let options = options
        .create_if_missing(true)
        // WAL lets readers run beside the writer; FULL syncs the WAL on every commit, so a
        // committed transaction survives SIGKILL and power loss (NORMAL would only survive the
        // former).
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .foreign_keys(true)
        .busy_timeout(BUSY_TIMEOUT);
    let pool = SqlitePoolOptions::new()
        .max_connections(8)
        .connect_with(options)
        .await?;
    sqlx::migrate!("./migrations/sqlite").run(&pool).await?;
    Ok(pool)
}
