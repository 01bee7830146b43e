//! [`Datastore`]: every table of the aggregator on SQLite (default) or PostgreSQL, each statement
//! written once (`$N` placeholders, `ON CONFLICT`, `RETURNING` work in both) and run through
//! `cairn-db`: reads with [`on_read!`], each write as one transaction with [`on_write!`] (on
//! SQLite, a job of the group-commit writer, answered once its batch is durable). The only SQL
//! that differs between the backends is how a selected row is locked ([`Dialect`]).
//!
//! One module per table or resource: `hpke_keys`, `tasks`, `reports` (uploads and their
//! counters), `aggregation_jobs` (the leader's), `helper_aggregation_jobs`,
//! `collection_jobs`, `batch_buckets` (accumulated shares and the replay record, with
//! `output_shares` deciding per report what a job commits), `aggregate_shares` (the
//! helper's answers) and `gc` (deleting what expired). `leases` is the one lease routine every job kind is driven by.
//!
//! Exactly-once accounting: aggregate-share accumulation, the replay record and the report
//! state change of an aggregation job commit in one transaction, and only while the caller
//! still holds the job's lease token. Every write that reads first (a lease check, a bucket's
//! stored share, a task's open batches) reads inside its own write transaction: on SQLite no
//! other write runs meanwhile, on PostgreSQL it locks what it read ([`Dialect::for_update`]),
//! or its change is conditional on what it read (`UPDATE … WHERE lease_token = …`). A write
//! block owns what it uses, because on SQLite it runs on the writer's task; a write that
//! returns `Ok` keeps its changes, so a write that decides to change nothing returns before
//! changing anything.

mod aggregate_shares;
mod aggregation_jobs;
mod batch_buckets;
mod collection_jobs;
mod gc;
mod helper_aggregation_jobs;
mod hpke_keys;
mod leases;
mod output_shares;
mod reports;
mod secrets;
mod tasks;

pub use aggregate_shares::ShareBuilder;
pub use batch_buckets::{BatchAggregate, BatchScope, BucketKey, report_checksum};
pub use collection_jobs::{CollectionJob, CollectionReadiness};
pub use gc::{GcCounts, TaskRowCounts};
pub use helper_aggregation_jobs::{HelperAggregationJob, HelperJobState, ResponseBuilder};
pub use hpke_keys::{HpkeKeyRecord, HpkeKeyState, suite_of};
pub use leases::Lease;
pub use output_shares::ReportOutcome;
pub use reports::{StoredReport, UploadOutcome};
pub use secrets::{DatastoreKey, KeyError};

use cairn_db::{Db, DbError, Dialect, Migrations, Schema};
use sqlx::AssertSqlSafe;
use sqlx::error::ErrorKind;
use thiserror::Error;

/// Why a storage operation failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum DatastoreError {
    /// The database failed, or its URL is not `sqlite:` or `postgres:`, or a write was not
    /// committed (then nothing of it is stored).
    #[error(transparent)]
    Database(#[from] DbError),
    /// A stored value could not be decoded.
    #[error("corrupt stored {0}")]
    Corrupt(&'static str),
    /// A VDAF operation on stored shares failed.
    #[error("VDAF: {0}")]
    Vdaf(#[from] cairn_dap_core::VdafError),
    /// A sealed secret does not open with the configured datastore key (wrong key, or the
    /// value was tampered with or moved).
    #[error("a stored secret does not open with the datastore key ({0})")]
    Sealed(&'static str),
    /// The secret could not be sealed.
    #[error("sealing a secret: {0}")]
    Seal(#[from] KeyError),
    /// The row already exists.
    #[error("{0} already exists")]
    Conflict(&'static str),
    /// The caller's lease on a job is gone (expired and taken by another driver).
    #[error("lease lost")]
    LeaseLost,
}

impl From<sqlx::Error> for DatastoreError {
    fn from(e: sqlx::Error) -> Self {
        DatastoreError::Database(e.into())
    }
}

type Result<T> = std::result::Result<T, DatastoreError>;

/// The aggregator's tables, one migration set per backend.
static SCHEMA: Schema = Schema {
    name: "dap",
    migrations: Migrations::PerBackend {
        sqlite: &sqlx::migrate!("./migrations/sqlite"),
        postgres: &sqlx::migrate!("./migrations/postgres"),
    },
};

/// The database behind a [`Datastore`]. Cloning shares the connections.
#[derive(Clone)]
pub struct Datastore {
    db: Db,
    key: DatastoreKey,
}

impl std::fmt::Debug for Datastore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // No URL: it may carry a password.
        f.debug_struct("Datastore")
            .field("backend", &self.backend_name())
            .finish()
    }
}

impl Datastore {
    /// Connects to `sqlite:…` (created if missing) or `postgres:…` and migrates; `key` seals
    /// the secrets stored. Errors never include the URL.
    pub async fn connect(url: &str, key: DatastoreKey) -> Result<Datastore> {
        Datastore::connect_with_cache(url, key, 0).await
    }

    /// [`Datastore::connect`], with a page cache of at most `writer_cache_mib` MiB for the
    /// SQLite writer (0: SQLite's default, about 2 MB). Every write of the datastore goes through
    /// that one connection, and its page reads (the reports table's indexes, the replay table)
    /// are what the aggregators wait for; PostgreSQL ignores it.
    pub async fn connect_with_cache(
        url: &str,
        key: DatastoreKey,
        writer_cache_mib: u64,
    ) -> Result<Datastore> {
        let sqlite = cairn_db::SqliteOptions {
            writer_cache_bytes: (writer_cache_mib > 0)
                .then(|| writer_cache_mib.saturating_mul(1024 * 1024)),
        };
        Ok(Datastore {
            db: Db::connect_with(url, &SCHEMA, sqlite).await?,
            key,
        })
    }

    /// `"sqlite"` or `"postgres"`.
    pub fn backend_name(&self) -> &'static str {
        self.db.dialect().name()
    }

    /// Closes the connections (on SQLite, after the queued writes are committed).
    pub async fn close(&self) {
        self.db.close().await;
    }

    /// The backend's dialect, for the statements that differ.
    fn dialect(&self) -> Dialect {
        self.db.dialect()
    }

    /// The database itself, for a component that keeps its own tables in the datastore (the
    /// console, `cairn-dap-console`, whose tables come with migration 0006).
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// Seals `plaintext` with the datastore key for the row `row` of `table.column` (for a
    /// component's own secrets, such as the console's helper credentials).
    pub fn seal_secret(
        &self,
        table: &str,
        column: &str,
        row: &[u8],
        plaintext: &[u8],
    ) -> Result<Vec<u8>> {
        Ok(self
            .key
            .seal(&secrets::aad(table, column, row), plaintext)?)
    }

    /// Opens what [`Datastore::seal_secret`] sealed for the same row and column.
    pub fn open_secret(
        &self,
        table: &'static str,
        column: &str,
        row: &[u8],
        sealed: &[u8],
    ) -> Result<Vec<u8>> {
        self.key
            .open(&secrets::aad(table, column, row), sealed)
            .ok_or(DatastoreError::Sealed(table))
    }
}

/// Locks a task's row for the rest of the write (`$1` task). It serializes aggregation job
/// creation against collection for that task.
fn lock_task_sql(dialect: Dialect) -> AssertSqlSafe<String> {
    AssertSqlSafe(format!(
        "SELECT task_id FROM tasks WHERE task_id = $1{}",
        dialect.for_update()
    ))
}

/// Most rows per multi-row statement (well under SQLite's and PostgreSQL's bound-parameter
/// limits).
const MULTI_ROW_CHUNK: usize = 500;

/// `$first, $first+1, …` (`n` placeholders), for `IN (…)` lists.
fn placeholders(first: usize, n: usize) -> String {
    (first..first + n)
        .map(|k| format!("${k}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A count or time as stored (both backends store 64-bit signed integers).
fn int(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// A stored count or time.
fn uint(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.kind() == ErrorKind::UniqueViolation)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_number_from_first() {
        assert_eq!(placeholders(3, 3), "$3, $4, $5");
        assert_eq!(placeholders(1, 0), "");
    }

    #[test]
    fn stored_integers_saturate() {
        assert_eq!(int(u64::MAX), i64::MAX);
        assert_eq!(int(7), 7);
        assert_eq!(uint(-1), 0);
        assert_eq!(uint(7), 7);
    }
}
