//! The one lease routine every job kind is driven by: the leader's aggregation jobs, the
//! helper's asynchronous aggregation jobs and the leader's collection jobs.
//!
//! The contract, the same for every kind ([`JobKind`]):
//! - A job is *due* while it is in one of its kind's live states and its `lease_expiry` has
//!   passed (a free job's expiry is its retry time, or 0).
//! - [`Leases::take`] gives each due job a fresh random token and `lease_expiry = now +
//!   lease_secs`, in one write transaction; PostgreSQL drivers skip each other's rows. A driver
//!   that crashes simply lets the lease expire, and the next driver takes the job over.
//! - Every change under a lease names the token. A driver whose lease expired and was taken
//!   over finds its token gone: [`Leases::finish`] then fails with `LeaseLost` and the
//!   caller's transaction — the job's whole effect — rolls back.
//! - [`Leases::release`] gives a lease back with a retry time; [`Leases::finish`] moves the job
//!   to an end state. Both act only on a job that is still live and still holds the token.
//!   [`Leases::check_held`] lets a transaction make sure of that before it does a step's work.

use super::{Datastore, DatastoreError, Result, int};
use cairn_dap_messages::TaskId;
use cairn_db::{Conn, Dialect, on_conn, on_write};
use sqlx::{AssertSqlSafe, Row};

/// A leased job: who holds it and until the lease is taken over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The task.
    pub task_id: TaskId,
    /// The job (aggregation or collection).
    pub job_id: [u8; 16],
    /// Proves the holder; the commit succeeds only with it.
    pub token: [u8; 16],
}

/// The jobs that drivers take by lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum JobKind {
    /// The leader's aggregation jobs (`aggregation_jobs`).
    Aggregation,
    /// The helper's asynchronous aggregation jobs (`helper_aggregation_jobs`).
    HelperAggregation,
    /// The leader's collection jobs (`collection_jobs`).
    Collection,
}

impl JobKind {
    /// The kind's table.
    fn table(self) -> &'static str {
        match self {
            JobKind::Aggregation => "aggregation_jobs",
            JobKind::HelperAggregation => "helper_aggregation_jobs",
            JobKind::Collection => "collection_jobs",
        }
    }

    /// The states in which a job is still to be driven, as an SQL list.
    fn live_states(self) -> &'static str {
        match self {
            JobKind::Aggregation => "'pending'",
            JobKind::HelperAggregation => "'processing'",
            JobKind::Collection => "'start', 'collecting'",
        }
    }

    /// What else taking a lease changes: aggregation jobs count their attempts.
    fn on_take(self) -> &'static str {
        match self {
            JobKind::Aggregation => ", attempts = attempts + 1",
            JobKind::HelperAggregation | JobKind::Collection => "",
        }
    }

    /// Picks up to `$2` due jobs at time `$1`, longest due first.
    fn due_sql(self, dialect: Dialect) -> String {
        format!(
            "SELECT task_id, job_id FROM {} WHERE state IN ({}) AND lease_expiry <= $1 \
             ORDER BY lease_expiry LIMIT $2{}",
            self.table(),
            self.live_states(),
            dialect.skip_locked()
        )
    }

    /// Gives job (`$1` task, `$2` job) the lease `$3` until `$4`.
    fn take_sql(self) -> String {
        format!(
            "UPDATE {} SET lease_token = $3, lease_expiry = $4{} \
             WHERE task_id = $1 AND job_id = $2",
            self.table(),
            self.on_take()
        )
    }

    /// Changes a job held under lease `$3` (`$1` task, `$2` job) by `set`, if it is live.
    fn held_sql(self, set: &str) -> String {
        format!(
            "UPDATE {} SET {set} \
             WHERE task_id = $1 AND job_id = $2 AND lease_token = $3 AND state IN ({})",
            self.table(),
            self.live_states()
        )
    }
}

/// The lease routine for one kind of job inside a write transaction, written once for both
/// backends.
pub(super) struct Leases<'t> {
    conn: Conn<'t>,
    kind: JobKind,
}

impl<'t> Leases<'t> {
    /// The leases on jobs of `kind`, changed on `conn` (a write's connection).
    pub(super) fn on(conn: impl Into<Conn<'t>>, kind: JobKind) -> Self {
        Leases {
            conn: conn.into(),
            kind,
        }
    }

    /// Leases up to `limit` due jobs until `now + lease_secs`, each with a fresh token.
    pub(super) async fn take(
        &mut self,
        now: u64,
        lease_secs: u64,
        limit: u64,
        new_token: &mut (dyn FnMut() -> [u8; 16] + Send),
    ) -> Result<Vec<Lease>> {
        let due = self.kind.due_sql(self.conn.dialect());
        let take = self.kind.take_sql();
        on_conn!(self.conn.reborrow(), |conn| {
            let rows = sqlx::query(AssertSqlSafe(due))
                .bind(int(now))
                .bind(int(limit))
                .fetch_all(&mut *conn)
                .await?;
            let mut leases = Vec::with_capacity(rows.len());
            for row in rows {
                let task: Vec<u8> = row.try_get(0)?;
                let job: Vec<u8> = row.try_get(1)?;
                let token = new_token();
                sqlx::query(AssertSqlSafe(take.clone()))
                    .bind(task.clone())
                    .bind(job.clone())
                    .bind(token.to_vec())
                    .bind(int(now.saturating_add(lease_secs)))
                    .execute(&mut *conn)
                    .await?;
                leases.push(Lease {
                    task_id: TaskId::try_from_slice(&task).ok_or(DatastoreError::Corrupt("id"))?,
                    job_id: job.try_into().map_err(|_| DatastoreError::Corrupt("id"))?,
                    token,
                });
            }
            Ok(leases)
        })
    }

    /// Checks that `lease` still holds its job and that the job is in `state`; `LeaseLost`
    /// otherwise (the caller's transaction then changes nothing).
    pub(super) async fn check_held(&mut self, lease: &Lease, state: &str) -> Result<()> {
        let sql = format!(
            "SELECT COUNT(*) FROM {} WHERE task_id = $1 AND job_id = $2 AND lease_token = $3 \
             AND state = $4",
            self.kind.table()
        );
        let held: i64 = on_conn!(self.conn.reborrow(), |conn| {
            sqlx::query_scalar(AssertSqlSafe(sql))
                .bind(lease.task_id.as_bytes().to_vec())
                .bind(lease.job_id.to_vec())
                .bind(lease.token.to_vec())
                .bind(state.to_owned())
                .fetch_one(conn)
                .await?
        });
        if held == 1 {
            Ok(())
        } else {
            Err(DatastoreError::LeaseLost)
        }
    }

    /// Gives `lease` back so that the job is due again at `retry_at`. Returns whether the
    /// lease was still held (a lease taken over, or a job finished or deleted meanwhile, is
    /// left alone).
    pub(super) async fn release(&mut self, lease: &Lease, retry_at: u64) -> Result<bool> {
        let sql = self.kind.held_sql("lease_token = NULL, lease_expiry = $4");
        let released = on_conn!(self.conn.reborrow(), |conn| {
            sqlx::query(AssertSqlSafe(sql))
                .bind(lease.task_id.as_bytes().to_vec())
                .bind(lease.job_id.to_vec())
                .bind(lease.token.to_vec())
                .bind(int(retry_at))
                .execute(conn)
                .await?
                .rows_affected()
        });
        Ok(released == 1)
    }

    /// Ends the job held under `lease` in `end_state` and clears the lease; `LeaseLost`
    /// (the caller's transaction must then roll back) unless the lease still holds a live
    /// job.
    pub(super) async fn finish(&mut self, lease: &Lease, end_state: &str) -> Result<()> {
        let sql = self.kind.held_sql("state = $4, lease_token = NULL");
        let finished = on_conn!(self.conn.reborrow(), |conn| {
            sqlx::query(AssertSqlSafe(sql))
                .bind(lease.task_id.as_bytes().to_vec())
                .bind(lease.job_id.to_vec())
                .bind(lease.token.to_vec())
                .bind(end_state.to_owned())
                .execute(conn)
                .await?
                .rows_affected()
        });
        if finished == 1 {
            Ok(())
        } else {
            Err(DatastoreError::LeaseLost)
        }
    }
}

impl Datastore {
    /// Leases up to `limit` due jobs of `kind` until `now + lease_secs`, in one write
    /// transaction.
    pub(super) async fn take_leases(
        &self,
        kind: JobKind,
        now: u64,
        lease_secs: u64,
        limit: u64,
        mut new_token: impl FnMut() -> [u8; 16] + Send + 'static,
    ) -> Result<Vec<Lease>> {
        on_write!(self.db, |conn| {
            Leases::on(conn, kind)
                .take(now, lease_secs, limit, &mut new_token)
                .await
        })
    }

    /// Gives back a lease on a job of `kind` (after a transient failure) so that another
    /// attempt can start at `retry_at`.
    pub(super) async fn release_lease(
        &self,
        kind: JobKind,
        lease: &Lease,
        retry_at: u64,
    ) -> Result<()> {
        let lease = lease.clone();
        on_write!(self.db, |conn| {
            Leases::on(conn, kind).release(&lease, retry_at).await?;
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_is_leased_by_the_same_statements() {
        assert_eq!(
            JobKind::Collection.due_sql(Dialect::Sqlite),
            "SELECT task_id, job_id FROM collection_jobs WHERE state IN ('start', 'collecting') \
             AND lease_expiry <= $1 ORDER BY lease_expiry LIMIT $2"
        );
        assert_eq!(
            JobKind::HelperAggregation.due_sql(Dialect::Postgres),
            "SELECT task_id, job_id FROM helper_aggregation_jobs WHERE state IN ('processing') \
             AND lease_expiry <= $1 ORDER BY lease_expiry LIMIT $2 FOR UPDATE SKIP LOCKED"
        );
        assert_eq!(
            JobKind::Aggregation.take_sql(),
            "UPDATE aggregation_jobs SET lease_token = $3, lease_expiry = $4, \
             attempts = attempts + 1 WHERE task_id = $1 AND job_id = $2"
        );
        assert_eq!(
            JobKind::Collection.take_sql(),
            "UPDATE collection_jobs SET lease_token = $3, lease_expiry = $4 \
             WHERE task_id = $1 AND job_id = $2"
        );
        assert_eq!(
            JobKind::Aggregation.held_sql("state = $4, lease_token = NULL"),
            "UPDATE aggregation_jobs SET state = $4, lease_token = NULL \
             WHERE task_id = $1 AND job_id = $2 AND lease_token = $3 AND state IN ('pending')"
        );
    }
}
