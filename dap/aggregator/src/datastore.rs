//! [`Datastore`]: every table of the aggregator on SQLite (default) or PostgreSQL, each statement
//! written once (`$N` placeholders, `ON CONFLICT`, `RETURNING` work in both). The only dialect
//! differences are how a write transaction starts and how a row is locked (`dialect`).
//!
//! One module per table or resource: `hpke_keys`, `tasks`, `reports` (uploads and their
//! counters), `aggregation_jobs` (the leader's), `helper_aggregation_jobs`,
//! `collection_jobs`, `batch_buckets` (accumulated shares and the replay record, with
//! `output_shares` deciding per report what a job commits) and `aggregate_shares` (the
//! helper's answers). `leases` is the one lease routine every job kind is driven by. The
//! backend is picked in one place, `on_pool!`, here.
//!
//! Exactly-once accounting: aggregate-share accumulation, the replay record and the report
//! state change of an aggregation job commit in one transaction, and only while the caller
//! still holds the job's lease token.

/// Runs `$body` with `$pool` bound to the datastore's pool, whichever backend it is. The body
/// is written once and compiled for each backend; [`dialect::Dialect`] supplies what differs.
macro_rules! on_pool {
    ($self:ident, |$pool:ident| $body:expr) => {
        match &$self.backend {
            Backend::Sqlite($pool) => $body,
            Backend::Postgres($pool) => $body,
        }
    };
}

mod aggregate_shares;
mod aggregation_jobs;
mod batch_buckets;
mod collection_jobs;
mod dialect;
mod helper_aggregation_jobs;
mod hpke_keys;
mod leases;
mod output_shares;
mod postgres;
mod reports;
mod secrets;
mod sqlite;
mod tasks;

pub use aggregate_shares::ShareBuilder;
pub use batch_buckets::{BatchAggregate, BatchScope, BucketKey, report_checksum};
pub use collection_jobs::{CollectionJob, CollectionReadiness};
pub use helper_aggregation_jobs::{HelperAggregationJob, HelperJobState, ResponseBuilder};
pub use hpke_keys::HpkeKeyState;
pub use leases::Lease;
pub use output_shares::ReportOutcome;
pub use reports::{StoredReport, UploadOutcome};
pub use secrets::{DatastoreKey, KeyError};

use sqlx::error::ErrorKind;
use thiserror::Error;

/// Why a storage operation failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum DatastoreError {
    /// The database failed.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// The URL scheme is neither `sqlite:` nor `postgres:`.
    #[error("unsupported database URL scheme (expected sqlite: or postgres:)")]
    UnsupportedUrl,
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

type Result<T> = std::result::Result<T, DatastoreError>;

/// The database behind a [`Datastore`]. Cloning shares the pool.
#[derive(Clone)]
pub struct Datastore {
    backend: Backend,
    key: DatastoreKey,
}

#[derive(Clone)]
enum Backend {
    Sqlite(sqlx::SqlitePool),
    Postgres(sqlx::PgPool),
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
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite(sqlite::connect_url(url).await?)
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Backend::Postgres(postgres::connect_url(url).await?)
        } else {
            return Err(DatastoreError::UnsupportedUrl);
        };
        Ok(Datastore { backend, key })
    }

    /// `"sqlite"` or `"postgres"`.
    pub fn backend_name(&self) -> &'static str {
        match self.backend {
            Backend::Sqlite(_) => "sqlite",
            Backend::Postgres(_) => "postgres",
        }
    }

    /// Closes the pool.
    pub async fn close(&self) {
        on_pool!(self, |pool| pool.close().await)
    }
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
