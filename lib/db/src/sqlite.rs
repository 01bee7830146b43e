//! SQLite: connection settings chosen for durability, the database file created owner-only,
//! the schema brought up to date on the writer's connection, the group-commit writer every write
//! goes through, and the connections reads use.

use crate::group_commit::GroupCommit;
use crate::{DbError, Migrations, Schema};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
use sqlx::{ConnectOptions, Connection, SqliteConnection};
use std::ops::{Deref, DerefMut};
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// How long a connection waits for another writer before failing with `SQLITE_BUSY`.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// How many connections reads use: one per CPU core, at least two. Each connection is a thread
/// of sqlx's that every statement is handed to and back from; more of them than cores only adds
/// thread switches (measured on 2 cores: 8 connections did about 5 % fewer certificates per
/// second than 2 or 3, BENCHMARKS.md). Writes do not use them: they all go through the one
/// writer connection of [`GroupCommit`].
fn readers() -> u32 {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    u32::try_from(cores).unwrap_or(u32::MAX).max(2)
}

/// A SQLite database: the connections reads use and the writer every write goes through.
#[derive(Clone, Debug)]
pub(crate) struct Sqlite {
    pub(crate) readers: Readers,
    pub(crate) writer: GroupCommit,
}

impl Sqlite {
    /// Lets the queued writes commit, then closes every connection.
    pub(crate) async fn close(&self) {
        self.writer.close().await;
        self.readers.close().await;
    }
}

/// Settings of a SQLite database that trade memory for speed. The default is SQLite's own.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SqliteOptions {
    /// The most bytes of pages the writer connection keeps cached (SQLite's `cache_size`,
    /// rounded down to whole KiB); `None` keeps SQLite's default of about 2 MB. Only the writer
    /// gets it: it is the one connection that changes the database, so its cache stays valid
    /// from one transaction to the next, and every write waits for it. A reader's cache is
    /// dropped whenever another connection has committed since its last read, so a larger one
    /// would hold little for long. The cache fills only as pages are read; the bound is what it
    /// may reach.
    pub writer_cache_bytes: Option<u64>,
}

/// Opens (creating if missing) the database `options` names and brings `schema` up to date.
pub(crate) async fn open(
    options: SqliteConnectOptions,
    schema: &Schema,
    tuning: SqliteOptions,
) -> Result<Sqlite, DbError> {
    create_owner_only(options.get_filename()).await?;
    let options = options
        .create_if_missing(true)
        // WAL lets readers run beside the writer; FULL syncs the WAL on every commit, so a
        // committed transaction survives SIGKILL and power loss (NORMAL would only survive the
        // former). Group commit makes one such commit cover many writes.
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .foreign_keys(true)
        .busy_timeout(BUSY_TIMEOUT);
    let mut writer = match tuning.writer_cache_bytes {
        // A negative `cache_size` is a size in KiB rather than a number of pages.
        Some(bytes) => {
            let kib = (bytes / 1024).max(1);
            options
                .clone()
                .pragma("cache_size", format!("-{kib}"))
                .connect()
                .await?
        }
        None => options.connect().await?,
    };
    match &schema.migrations {
        Migrations::PerBackend { sqlite, .. } => sqlite.run(&mut writer).await?,
        Migrations::Idempotent(statements) => {
            for statement in *statements {
                sqlx::raw_sql(*statement).execute(&mut writer).await?;
            }
        }
    }
    Ok(Sqlite {
        readers: Readers::new(options, readers()),
        writer: GroupCommit::start(writer, schema.name),
    })
}

/// Creates the database file, empty (SQLite takes an empty file for an empty database), readable
/// and writable by its owner only, unless it exists. SQLite gives the `-wal` and `-shm` files
/// it creates beside it the same permissions. In-memory databases have no file.
async fn create_owner_only(path: &Path) -> Result<(), DbError> {
    let name = path.to_string_lossy();
    if name.is_empty() || name == ":memory:" || name.starts_with("file:") {
        return Ok(());
    }
    let mut file = tokio::fs::OpenOptions::new();
    file.write(true).create_new(true);
    #[cfg(unix)]
    file.mode(0o600);
    match file.open(path).await {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(DbError::Create(e)),
    }
}

/// The connections reads use, opened when first needed, at most a fixed number.
///
/// Not sqlx's pool: it pings a SQLite connection's thread when handing the connection out and
/// again when taking it back (a spawned task), so a read cost three round trips to that thread
/// instead of one; on a small VM those thread switches were most of the storage's CPU. Nothing
/// here talks to the connection: a connection is handed out, used and put back as it is. Reads
/// never open transactions, so none is left open by a read that was cancelled half-way (sqlx
/// stops a statement whose caller went away).
#[derive(Clone, Debug)]
pub(crate) struct Readers {
    inner: Arc<ReadersInner>,
}

#[derive(Debug)]
struct ReadersInner {
    options: SqliteConnectOptions,
    /// Connections not in use.
    idle: Mutex<Vec<SqliteConnection>>,
    /// One permit per connection that may be in use: held by each [`Reader`].
    permits: Arc<Semaphore>,
    size: u32,
}

/// A read connection, put back when dropped.
#[derive(Debug)]
pub struct Reader {
    conn: Option<SqliteConnection>,
    inner: Arc<ReadersInner>,
    // Dropped after `drop` put the connection back, so a waiter always finds one (or room
    // to open one).
    _permit: OwnedSemaphorePermit,
}

impl Readers {
    fn new(options: SqliteConnectOptions, size: u32) -> Readers {
        Readers {
            inner: Arc::new(ReadersInner {
                options,
                idle: Mutex::new(Vec::new()),
                permits: Arc::new(Semaphore::new(size as usize)),
                size,
            }),
        }
    }

    /// A connection for reads: an idle one, or a new one while fewer than the limit are open;
    /// otherwise waits for one to be put back. Fails once [`Readers::close`] was called.
    pub(crate) async fn acquire(&self) -> Result<Reader, sqlx::Error> {
        let permit = self
            .inner
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| sqlx::Error::PoolClosed)?;
        let idle = self.inner.idle().pop();
        let conn = match idle {
            Some(conn) => conn,
            None => self.inner.options.connect().await?,
        };
        Ok(Reader {
            conn: Some(conn),
            inner: self.inner.clone(),
            _permit: permit,
        })
    }

    /// Waits for the connections in use to be put back, then closes every connection. Reads
    /// after this fail with [`sqlx::Error::PoolClosed`].
    pub(crate) async fn close(&self) {
        let all = self.inner.permits.acquire_many(self.inner.size).await;
        self.inner.permits.close();
        let idle = std::mem::take(&mut *self.inner.idle());
        drop(all);
        for conn in idle {
            if let Err(e) = conn.close().await {
                tracing::warn!(error = %e, "closing a SQLite read connection");
            }
        }
    }
}

impl ReadersInner {
    fn idle(&self) -> std::sync::MutexGuard<'_, Vec<SqliteConnection>> {
        // The lock is only held to push or pop: a panic cannot leave the list half-changed.
        self.idle.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

// `conn` is `None` only inside `drop`, which takes it: no caller can observe that.
#[allow(clippy::expect_used)]
impl Deref for Reader {
    type Target = SqliteConnection;

    fn deref(&self) -> &SqliteConnection {
        self.conn
            .as_ref()
            .expect("a reader's connection is only taken when dropped")
    }
}

#[allow(clippy::expect_used)]
impl DerefMut for Reader {
    fn deref_mut(&mut self) -> &mut SqliteConnection {
        self.conn
            .as_mut()
            .expect("a reader's connection is only taken when dropped")
    }
}

impl Drop for Reader {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            self.inner.idle().push(conn);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use futures::FutureExt;

    fn readers(dir: &tempfile::TempDir, size: u32) -> Readers {
        let options = SqliteConnectOptions::new()
            .filename(dir.path().join("r.db"))
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal);
        Readers::new(options, size)
    }

    /// Whether `conn` is the connection that created the TEMP table `mark` (TEMP tables are
    /// private to their connection).
    async fn marked(conn: &mut SqliteConnection) -> bool {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM temp.sqlite_master WHERE name = 'mark'")
            .fetch_one(conn)
            .await
            .unwrap()
            == 1
    }

    #[tokio::test]
    async fn a_connection_put_back_is_handed_out_again() {
        let dir = tempfile::tempdir().unwrap();
        let r = readers(&dir, 2);
        let mut a = r.acquire().await.unwrap();
        sqlx::raw_sql("CREATE TEMP TABLE mark (x)")
            .execute(&mut *a)
            .await
            .unwrap();
        // While `a` is out, the next reader is another connection.
        let mut b = r.acquire().await.unwrap();
        assert!(!marked(&mut b).await);
        drop(b);
        drop(a);
        // Both are idle now; the last one put back comes out first.
        let mut again = r.acquire().await.unwrap();
        assert!(marked(&mut again).await);
    }

    #[tokio::test]
    async fn no_more_than_the_limit_are_out_and_a_waiter_gets_the_next_one_back() {
        let dir = tempfile::tempdir().unwrap();
        let r = readers(&dir, 2);
        let a = r.acquire().await.unwrap();
        let b = r.acquire().await.unwrap();
        let mut third = Box::pin(r.acquire());
        assert!(
            (&mut third).now_or_never().is_none(),
            "a third reader beyond the limit"
        );
        drop(a);
        let c = third.await.unwrap();
        drop((b, c));
        r.close().await;
        assert!(matches!(r.acquire().await, Err(sqlx::Error::PoolClosed)));
    }

    #[tokio::test]
    async fn close_waits_for_the_readers_in_use() {
        let dir = tempfile::tempdir().unwrap();
        let r = readers(&dir, 2);
        let a = r.acquire().await.unwrap();
        let mut closing = Box::pin(r.close());
        assert!(
            (&mut closing).now_or_never().is_none(),
            "closed while a reader was out"
        );
        drop(a);
        closing.await;
        assert!(matches!(r.acquire().await, Err(sqlx::Error::PoolClosed)));
    }
}
