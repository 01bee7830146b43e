//! What differs between SQLite and PostgreSQL in the datastore's SQL: how a write transaction
//! starts and how a selected row is locked. Everything else is written once.
//!
//! Statements written once for both backends and shared between tables (the batch-bucket
//! operations, the lease routine) are generic over a [`Dialect`]. sqlx does not let a trait
//! carry the bounds those statements need (an executor on `&mut Connection`, binding and
//! reading `Vec<u8>` and `i64`), so the few generic `impl` blocks spell them out.

use super::Result;
use sqlx::{AssertSqlSafe, Database, Pool, Postgres, Sqlite, Transaction};

/// A backend's SQL dialect.
pub(super) trait Dialect: Database {
    /// Starts a write transaction (SQLite takes the write lock up front, so writers are
    /// serialized from their first statement and never fail to upgrade a read lock).
    const BEGIN_WRITE: &'static str;
    /// Appended to a `SELECT` to lock its rows until commit. Empty on SQLite, whose
    /// `BEGIN IMMEDIATE` already serializes writers.
    const FOR_UPDATE: &'static str;
    /// Appended to a `SELECT` of due jobs so that concurrent drivers pick different jobs.
    const SKIP_LOCKED: &'static str;

    /// How many rows a statement changed (sqlx gives each backend its own result type).
    fn rows_affected(result: &Self::QueryResult) -> u64;
}

impl Dialect for Sqlite {
    const BEGIN_WRITE: &'static str = "BEGIN IMMEDIATE";
    const FOR_UPDATE: &'static str = "";
    const SKIP_LOCKED: &'static str = "";

    fn rows_affected(result: &Self::QueryResult) -> u64 {
        result.rows_affected()
    }
}

impl Dialect for Postgres {
    const BEGIN_WRITE: &'static str = "BEGIN";
    const FOR_UPDATE: &'static str = " FOR UPDATE";
    const SKIP_LOCKED: &'static str = " FOR UPDATE SKIP LOCKED";

    fn rows_affected(result: &Self::QueryResult) -> u64 {
        result.rows_affected()
    }
}

/// Starts a write transaction in the pool's dialect.
pub(super) async fn begin_write<DB: Dialect>(pool: &Pool<DB>) -> Result<Transaction<'static, DB>> {
    Ok(pool.begin_with(DB::BEGIN_WRITE).await?)
}

/// Locks a task's row for the rest of the transaction (`$1` task). It serializes aggregation
/// job creation against collection for that task.
pub(super) fn lock_task_sql<DB: Dialect>(_: &Pool<DB>) -> AssertSqlSafe<String> {
    AssertSqlSafe(format!(
        "SELECT task_id FROM tasks WHERE task_id = $1{}",
        DB::FOR_UPDATE
    ))
}
