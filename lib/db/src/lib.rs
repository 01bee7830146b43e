//! The database layer Cairn's storage shares: the CA's storage authority (`ca/sa`), the DAP
//! datastore (`dap/aggregator`) and the CT lock store (`ct/log`) reach SQLite or PostgreSQL only
//! through it, so a fix here (group commit, a pragma, a pool setting) reaches all three.
//!
//! - [`Db::connect`] opens the database a URL names, `sqlite:…` (the default; the file is created
//!   owner-only) or `postgres:…`, with the settings each backend needs for durability, and
//!   brings its [`Schema`] up to date.
//! - Statements are written once for both backends. [`on_read!`] and [`on_write!`] run a block
//!   with a connection of the backend, `&mut SqliteConnection` or `&mut PgConnection`; the block
//!   is compiled once per backend. Code shared between blocks takes a [`Conn`] and does the
//!   same with [`on_conn!`]. The little SQL that differs between the two is in [`Dialect`].
//! - On SQLite, reads use connections of their own (`sqlite.rs`: one per core, no pool pings)
//!   and every write is a job of the one writer connection, which commits waiting writes
//!   together (`group_commit.rs`: one fsync per batch; its module doc states the contract).
//! - On PostgreSQL, reads and writes take connections from a pool (`postgres.rs`); each write is
//!   a transaction of its own.
//!
//! A write has one contract on both backends: its block runs as one transaction, which may read
//! before it writes; its changes are kept if the block returns `Ok` and rolled back if it
//! returns `Err`; and the caller hears `Ok` only once the changes are durable. Writes that run
//! at the same time are isolated as each backend does it: on SQLite they run one after the
//! other (each sees every write before it and nothing else changes under it); on PostgreSQL
//! (`READ COMMITTED`) a read that a write depends on must lock its rows
//! ([`Dialect::for_update`]) or the write must be a conditional `UPDATE … WHERE`, which is how
//! every compare-and-swap here is written. Because the SQLite writer runs the block on a task
//! of its own, the block owns what it uses (`move`, `'static`); there it runs to the end even if
//! its caller stops waiting, while on PostgreSQL a write whose caller stops waiting is rolled
//! back. Either way the caller that stopped waiting was never told it succeeded.
//!
//! Statements are shared because both dialects accept `$N` placeholders, `LIMIT`/`OFFSET`,
//! `ON CONFLICT`, `RETURNING`, partial indexes and scalar subqueries, and because each user
//! stores every column with a type both map to the same Rust type (`TEXT` → `String`,
//! `INTEGER`/`BIGINT` → `i64`, `BLOB`/`BYTEA` → `Vec<u8>`).

mod dispatch;
mod group_commit;
mod postgres;
mod sqlite;

pub use dispatch::{Conn, Dialect, Read, query_builder};
pub use group_commit::WriteFuture;
pub use sqlite::{Reader, SqliteOptions};

use sqlx::migrate::{MigrateError, Migrator};
use std::fmt;
use std::path::Path;
use std::str::FromStr;

/// Why the database layer failed. Each user wraps it in its own error type.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DbError {
    /// The database failed: connecting, a statement, a commit.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// Bringing the schema up to date failed.
    #[error("migrating the database: {0}")]
    Migrate(#[from] MigrateError),
    /// The write succeeded, but the batch it ran in was not committed (or the writer had
    /// stopped): nothing of it is stored.
    #[error("write not committed: {0}")]
    NotCommitted(String),
    /// The URL scheme is neither `sqlite:` nor `postgres:`.
    #[error("unsupported database URL scheme (expected sqlite: or postgres:)")]
    UnsupportedUrl,
    /// The SQLite database file could not be created.
    #[error("creating the database file: {0}")]
    Create(#[source] std::io::Error),
}

/// What a database holds and how its tables are brought up to date when it is opened.
#[derive(Debug)]
pub struct Schema {
    /// Names the database in metrics (the `database` label) and logs: `sa`, `dap`, `ct_lock`.
    pub name: &'static str,
    /// How its tables are created and kept current.
    pub migrations: Migrations,
}

/// How a database's tables are created and kept current.
#[derive(Debug)]
pub enum Migrations {
    /// sqlx migrations (embedded with `sqlx::migrate!`), one set per backend.
    PerBackend {
        /// Run on SQLite.
        sqlite: &'static Migrator,
        /// Run on PostgreSQL.
        postgres: &'static Migrator,
    },
    /// Statements both backends accept and that can run at every start (`CREATE TABLE IF NOT
    /// EXISTS …`), for a database that may share its PostgreSQL schema with another user's
    /// migrations.
    Idempotent(&'static [&'static str]),
}

/// A SQLite or PostgreSQL database. Cloning is cheap and shares the connections.
#[derive(Clone)]
pub struct Db {
    backend: Backend,
}

#[derive(Clone)]
enum Backend {
    Sqlite(sqlite::Sqlite),
    Postgres(sqlx::PgPool),
}

impl fmt::Debug for Db {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Deliberately no connection details: they may carry a password.
        f.debug_struct("Db")
            .field("backend", &self.dialect().name())
            .finish()
    }
}

impl Db {
    /// Opens the database `url` names and brings `schema` up to date.
    ///
    /// * `sqlite://path/to/file.db` (relative) or `sqlite:///abs/path/file.db`: the file is
    ///   created if missing, readable by its owner only; WAL journal with `synchronous=FULL` (a
    ///   committed write survives SIGKILL and power loss), foreign keys enforced, a 10 s busy
    ///   timeout.
    /// * `postgres://…` or `postgresql://…`: any URL `sqlx` accepts, e.g. with
    ///   `options=-csearch_path%3Dmyschema` to use a schema other than `public`.
    ///
    /// Errors never include the URL.
    pub async fn connect(url: &str, schema: &Schema) -> Result<Db, DbError> {
        Db::connect_with(url, schema, SqliteOptions::default()).await
    }

    /// [`Db::connect`], with `sqlite`'s settings applied when the URL is a SQLite one (they mean
    /// nothing to PostgreSQL, whose server has its own).
    pub async fn connect_with(
        url: &str,
        schema: &Schema,
        sqlite: SqliteOptions,
    ) -> Result<Db, DbError> {
        let backend = if url.starts_with("sqlite:") {
            let options = sqlx::sqlite::SqliteConnectOptions::from_str(url)?;
            Backend::Sqlite(sqlite::open(options, schema, sqlite).await?)
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Backend::Postgres(postgres::connect(url, schema).await?)
        } else {
            return Err(DbError::UnsupportedUrl);
        };
        Ok(Db { backend })
    }

    /// Opens (creating if missing) the SQLite database file at `path`, with the same settings as
    /// [`Db::connect`]. The directory must exist.
    pub async fn open_sqlite(path: &Path, schema: &Schema) -> Result<Db, DbError> {
        let options = sqlx::sqlite::SqliteConnectOptions::new().filename(path);
        Ok(Db {
            backend: Backend::Sqlite(
                sqlite::open(options, schema, SqliteOptions::default()).await?,
            ),
        })
    }

    /// Which backend this is.
    pub fn dialect(&self) -> Dialect {
        match self.backend {
            Backend::Sqlite(_) => Dialect::Sqlite,
            Backend::Postgres(_) => Dialect::Postgres,
        }
    }

    /// A connection for reads, held until the [`Read`] is dropped. Reads never open a
    /// transaction on it. [`on_read!`] is the usual way to use it.
    pub async fn read(&self) -> Result<Read, DbError> {
        match &self.backend {
            Backend::Sqlite(db) => Ok(Read::Sqlite(db.readers.acquire().await?)),
            Backend::Postgres(pool) => Ok(Read::Postgres(pool.acquire().await?)),
        }
    }

    /// Runs `job` as one atomic write (the contract is in the crate's documentation): its
    /// changes are kept if it returns `Ok` and rolled back if it returns `Err`, and the answer
    /// comes once they are durable. A write that succeeded but could not be committed fails
    /// with [`DbError::NotCommitted`] (SQLite) or [`DbError::Database`], converted into `E`.
    /// [`on_write!`] is the usual way to call it.
    pub async fn write<T, E, F>(&self, job: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<DbError> + Send + 'static,
        F: for<'c> FnOnce(Conn<'c>) -> WriteFuture<'c, Result<T, E>> + Send + 'static,
    {
        match &self.backend {
            Backend::Sqlite(db) => db.writer.write(move |conn| job(Conn::Sqlite(conn))).await,
            Backend::Postgres(pool) => postgres::write(pool, job).await,
        }
    }

    /// Closes the connections, waiting for those in use to be returned (and, on SQLite, for the
    /// writes already queued to be committed). Reads and writes after this fail.
    pub async fn close(&self) {
        match &self.backend {
            Backend::Sqlite(db) => db.close().await,
            Backend::Postgres(pool) => pool.close().await,
        }
    }
}
