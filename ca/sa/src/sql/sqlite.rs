//! SQLite backend: connection settings chosen for durability, the embedded migrations, and the
//! group-commit writer every write goes through.

use super::group_commit::GroupCommit;
use crate::SaResult;
use sqlx::ConnectOptions;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

/// How long a connection waits for another writer before failing with `SQLITE_BUSY`.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Connections for reads. Writes do not use them: they all go through the one writer
/// connection of [`GroupCommit`].
const READERS: u32 = 8;

/// Opens (creating if missing) the database named by a `sqlite:` URL and migrates it.
pub(super) async fn connect_url(url: &str) -> SaResult<(SqlitePool, GroupCommit)> {
    connect(SqliteConnectOptions::from_str(url)?).await
}

/// Opens (creating if missing) the database file at `path` and migrates it.
pub(super) async fn connect_file(path: &Path) -> SaResult<(SqlitePool, GroupCommit)> {
    connect(SqliteConnectOptions::new().filename(path)).await
}

async fn connect(options: SqliteConnectOptions) -> SaResult<(SqlitePool, GroupCommit)> {
    let options = options
        .create_if_missing(true)
        // WAL lets readers run beside the writer; FULL syncs the WAL on every commit, so a
        // committed transaction survives SIGKILL and power loss (NORMAL would only survive the
        // former). Group commit makes one such commit cover many writes.
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .foreign_keys(true)
        .busy_timeout(BUSY_TIMEOUT);
    let pool = SqlitePoolOptions::new()
        .max_connections(READERS)
        .connect_with(options.clone())
        .await?;
    sqlx::migrate!("./migrations/sqlite").run(&pool).await?;
    let writer = GroupCommit::start(options.connect().await?);
    Ok((pool, writer))
}
