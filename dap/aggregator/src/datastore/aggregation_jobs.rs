//! The `aggregation_jobs` and `leader_batches` tables: the leader's aggregation jobs (DAP-18
//! §4.5.3.1), the reports each one covers, and — in leader-selected mode (§5.2) — the batches
//! the leader fills. Jobs are driven under the [`leases`](super::leases) routine; a job's
//! result commits with its batch buckets in one transaction.

use super::batch_buckets::Buckets;
use super::leases::{JobKind, Lease, Leases};
use super::output_shares::ReportOutcome;
use super::reports::StoredReport;
use super::{
    Datastore, DatastoreError, MULTI_ROW_CHUNK, Result, lock_task_sql, placeholders, uint,
};
use cairn_dap_core::VdafEngine;
use cairn_dap_messages::{AggregationJobId, ReportId, TaskId};
use cairn_db::{Conn, on_conn, on_read, on_write};
use sqlx::Row;

/// A time-interval task's reports waiting for a job (`$1` the task, `$2` the empty batch ID of
/// its buckets), with whether their bucket was collected: oldest first, so that the index on
/// (task, state, time) finds them. Ordered by report ID, SQLite walked the task's primary key
/// instead, through every report the task ever stored, at every pass of the driver.
const WAITING_REPORTS: &str = "SELECT r.report_id, COALESCE(b.collected, 0) \
     FROM client_reports r \
     LEFT JOIN batch_buckets b ON b.task_id = r.task_id AND b.batch_id = $2 \
     AND b.bucket_start = r.client_time \
     WHERE r.task_id = $1 AND r.state = 'start' \
     ORDER BY r.client_time, r.report_id LIMIT 100000";

/// The reports of one job (`$1` the task, `$2` the job), in no order: they are sorted after
/// reading. Asked for report-ID order, SQLite preferred the primary key, which gives that order,
/// to the index on the job, and read every report of the task for each job (aggregation
/// slowed as the task's reports grew: 20,000 reports aggregated at 4,700 /s, 40,000 at 2,850).
const JOB_REPORTS: &str = "SELECT report_id, client_time, public_extensions, public_share, \
     leader_input_share, helper_encrypted_input_share FROM client_reports \
     WHERE task_id = $1 AND aggregation_job_id = $2";

impl Datastore {
    /// Groups unaggregated reports of a time-interval task into new jobs of at most
    /// `max_job_size` reports, each job's reports sorted by ID. Reports whose bucket was
    /// collected are failed instead. Returns the new job IDs.
    pub async fn create_aggregation_jobs(
        &self,
        task_id: &TaskId,
        max_job_size: usize,
        mut new_id: impl FnMut() -> [u8; 16] + Send + 'static,
    ) -> Result<Vec<AggregationJobId>> {
        let tid = task_id.as_bytes().to_vec();
        let lock_task = lock_task_sql(self.dialect());
        on_write!(self.db, |conn| {
            sqlx::query(lock_task)
                .bind(tid.clone())
                .execute(&mut *conn)
                .await?;
            let rows = sqlx::query(WAITING_REPORTS)
                .bind(tid.clone())
                .bind(Vec::<u8>::new())
                .fetch_all(&mut *conn)
                .await?;
            let (mut fresh, mut failed) = (Vec::new(), Vec::new());
            for row in rows {
                let id: Vec<u8> = row.try_get(0)?;
                let collected: i64 = row.try_get(1)?;
                if collected == 1 {
                    failed.push(id);
                } else {
                    fresh.push(id);
                }
            }
            set_report_states(&mut *conn, &tid, &failed, &ReportState::Failed).await?;
            let mut jobs = Vec::new();
            for chunk in fresh.chunks_mut(max_job_size.max(1)) {
                chunk.sort_unstable();
                let chunk = &*chunk;
                let job = new_id();
                sqlx::query(
                    "INSERT INTO aggregation_jobs (task_id, job_id, batch_id, state, \
                     lease_token, lease_expiry, attempts) VALUES ($1, $2, $3, 'pending', NULL, 0, 0)",
                )
                .bind(tid.clone())
                .bind(job.to_vec())
                .bind(Vec::<u8>::new())
                .execute(&mut *conn)
                .await?;
                let state = ReportState::Aggregating {
                    job: job.to_vec(),
                    batch_id: None,
                };
                set_report_states(&mut *conn, &tid, chunk, &state).await?;
                jobs.push(AggregationJobId::from_bytes(job));
            }
            Ok(jobs)
        })
    }

    /// Leader-selected tasks: assigns unaggregated reports (oldest first) to the task's open
    /// batches, filling each up to `max_batch_size` reports that are aggregated or in flight
    /// before opening a new one, and groups each batch's new reports into jobs of at most
    /// `max_job_size`. Returns the new job IDs. Runs under the task lock, like collection, so
    /// a batch is never filled while it is being chosen for collection.
    pub async fn create_leader_selected_aggregation_jobs(
        &self,
        task_id: &TaskId,
        max_job_size: usize,
        max_batch_size: u64,
        mut new_id: impl FnMut() -> [u8; 16] + Send + 'static,
    ) -> Result<Vec<AggregationJobId>> {
        let tid = task_id.as_bytes().to_vec();
        let max_batch_size = max_batch_size.max(1);
        let lock_task = lock_task_sql(self.dialect());
        on_write!(self.db, |conn| {
            sqlx::query(lock_task)
                .bind(tid.clone())
                .execute(&mut *conn)
                .await?;
            let fresh: Vec<Vec<u8>> = sqlx::query_scalar(
                "SELECT report_id FROM client_reports WHERE task_id = $1 AND state = 'start' \
                 ORDER BY client_time, report_id LIMIT 100000",
            )
            .bind(tid.clone())
            .fetch_all(&mut *conn)
            .await?;
            if fresh.is_empty() {
                return Ok(Vec::new());
            }
            let open = sqlx::query(
                "SELECT b.batch_id, (SELECT COUNT(*) FROM client_reports r \
                 WHERE r.task_id = b.task_id AND r.batch_id = b.batch_id \
                 AND r.state IN ('aggregating', 'aggregated')) \
                 FROM leader_batches b WHERE b.task_id = $1 AND b.state = 'open' \
                 ORDER BY b.seq",
            )
            .bind(tid.clone())
            .fetch_all(&mut *conn)
            .await?;
            let mut batches: Vec<(Vec<u8>, u64)> = open
                .into_iter()
                .map(|r| Ok((r.try_get(0)?, uint(r.try_get(1)?))))
                .collect::<Result<_>>()?;
            let mut reports = fresh.as_slice();
            let mut jobs = Vec::new();
            let mut next_batch = 0;
            while !reports.is_empty() {
                let (batch_id, filled) = match batches.get(next_batch) {
                    Some(b) => b.clone(),
                    None => {
                        let mut id = [0u8; 32];
                        id[..16].copy_from_slice(&new_id());
                        id[16..].copy_from_slice(&new_id());
                        sqlx::query(
                            "INSERT INTO leader_batches (task_id, batch_id, state, seq) \
                             SELECT $1, $2, 'open', COALESCE(MAX(seq), 0) + 1 \
                             FROM leader_batches WHERE task_id = $1",
                        )
                        .bind(tid.clone())
                        .bind(id.to_vec())
                        .execute(&mut *conn)
                        .await?;
                        batches.push((id.to_vec(), 0));
                        (id.to_vec(), 0)
                    }
                };
                next_batch += 1;
                let room =
                    usize::try_from(max_batch_size.saturating_sub(filled)).unwrap_or(usize::MAX);
                if room == 0 {
                    continue;
                }
                let (take, rest) = reports.split_at(room.min(reports.len()));
                reports = rest;
                for chunk in take.chunks(max_job_size.max(1)) {
                    let job = new_id();
                    sqlx::query(
                        "INSERT INTO aggregation_jobs (task_id, job_id, batch_id, state, \
                         lease_token, lease_expiry, attempts) \
                         VALUES ($1, $2, $3, 'pending', NULL, 0, 0)",
                    )
                    .bind(tid.clone())
                    .bind(job.to_vec())
                    .bind(batch_id.clone())
                    .execute(&mut *conn)
                    .await?;
                    let state = ReportState::Aggregating {
                        job: job.to_vec(),
                        batch_id: Some(batch_id.clone()),
                    };
                    set_report_states(&mut *conn, &tid, chunk, &state).await?;
                    jobs.push(AggregationJobId::from_bytes(job));
                }
            }
            Ok(jobs)
        })
    }

    /// The batch an aggregation job belongs to: a leader-selected batch ID, or `None` in
    /// time-interval mode.
    pub async fn get_aggregation_job_batch_id(
        &self,
        task_id: &TaskId,
        job_id: &[u8; 16],
    ) -> Result<Option<[u8; 32]>> {
        on_read!(self.db, |conn| {
            let id: Option<Vec<u8>> = sqlx::query_scalar(
                "SELECT batch_id FROM aggregation_jobs WHERE task_id = $1 AND job_id = $2",
            )
            .bind(task_id.as_bytes().to_vec())
            .bind(job_id.to_vec())
            .fetch_optional(&mut *conn)
            .await?;
            match id {
                None => Err(DatastoreError::Corrupt("aggregation job")),
                Some(b) if b.is_empty() => Ok(None),
                Some(b) => <[u8; 32]>::try_from(b.as_slice())
                    .map(Some)
                    .map_err(|_| DatastoreError::Corrupt("batch id")),
            }
        })
    }

    /// Leases up to `limit` pending aggregation jobs whose lease is free or expired, until
    /// `now + lease_secs`. Each gets a fresh token; an expired holder's commit will fail.
    pub async fn acquire_aggregation_jobs(
        &self,
        now: u64,
        lease_secs: u64,
        limit: u64,
        new_token: impl FnMut() -> [u8; 16] + Send + 'static,
    ) -> Result<Vec<Lease>> {
        self.take_leases(JobKind::Aggregation, now, lease_secs, limit, new_token)
            .await
    }

    /// The reports of an aggregation job, sorted by report ID.
    pub async fn get_aggregation_job_reports(
        &self,
        task_id: &TaskId,
        job_id: &[u8; 16],
    ) -> Result<Vec<StoredReport>> {
        on_read!(self.db, |conn| {
            let rows = sqlx::query(JOB_REPORTS)
                .bind(task_id.as_bytes().to_vec())
                .bind(job_id.to_vec())
                .fetch_all(&mut *conn)
                .await?;
            rows.into_iter()
                .map(|r| {
                    Ok(StoredReport {
                        report_id: ReportId::try_from_slice(&r.try_get::<Vec<u8>, _>(0)?)
                            .ok_or(DatastoreError::Corrupt("report id"))?,
                        time: uint(r.try_get(1)?),
                        public_extensions: r.try_get(2)?,
                        public_share: r.try_get(3)?,
                        leader_input_share: r.try_get(4)?,
                        helper_encrypted_input_share: r.try_get(5)?,
                    })
                })
                .collect::<Result<Vec<_>>>()
                .map(|mut reports| {
                    reports.sort_unstable_by_key(|r: &StoredReport| r.report_id);
                    reports
                })
        })
    }

    /// Commits a finished aggregation job at the leader: accumulates output shares into their
    /// buckets, records report IDs against replay, sets report states and finishes the job —
    /// all in one transaction, and only if `lease` is still the job's lease.
    pub async fn commit_leader_aggregation_job(
        &self,
        lease: &Lease,
        vdaf: &VdafEngine,
        agg_param: &[u8],
        outcomes: &[ReportOutcome],
    ) -> Result<()> {
        let tid = lease.task_id.as_bytes().to_vec();
        let (lease, vdaf, agg_param) = (lease.clone(), vdaf.clone(), agg_param.to_vec());
        let outcomes = outcomes.to_vec();
        on_write!(self.db, |conn| {
            Leases::on(&mut *conn, JobKind::Aggregation)
                .finish(&lease, "finished")
                .await?;
            let results = Buckets::of(&mut *conn, &tid)
                .commit_output_shares(&vdaf, &agg_param, &outcomes)
                .await?;
            let (mut aggregated, mut failed) = (Vec::new(), Vec::new());
            for (o, r) in outcomes.iter().zip(&results) {
                if r.is_ok() {
                    aggregated.push(&o.report_id);
                } else {
                    failed.push(&o.report_id);
                }
            }
            for (state, ids) in [
                (ReportState::Aggregated, aggregated),
                (ReportState::Failed, failed),
            ] {
                let ids: Vec<Vec<u8>> = ids.into_iter().map(|id| id.as_bytes().to_vec()).collect();
                set_report_states(&mut *conn, &tid, &ids, &state).await?;
            }
            Ok(())
        })
    }

    /// Gives a lease back early (after a transient failure) so another attempt can start soon.
    pub async fn release_aggregation_job(&self, lease: &Lease, retry_at: u64) -> Result<()> {
        self.release_lease(JobKind::Aggregation, lease, retry_at)
            .await
    }

    /// The helper's ID for a leader aggregation job, once the helper has deferred its answer
    /// (the driver then polls that resource instead of initializing the job again).
    pub async fn get_aggregation_job_helper_id(
        &self,
        task_id: &TaskId,
        job_id: &[u8; 16],
    ) -> Result<Option<AggregationJobId>> {
        on_read!(self.db, |conn| {
            let id: Option<Option<Vec<u8>>> = sqlx::query_scalar(
                "SELECT helper_job_id FROM aggregation_jobs WHERE task_id = $1 AND job_id = $2",
            )
            .bind(task_id.as_bytes().to_vec())
            .bind(job_id.to_vec())
            .fetch_optional(&mut *conn)
            .await?;
            match id {
                None => Err(DatastoreError::Corrupt("aggregation job")),
                Some(None) => Ok(None),
                Some(Some(b)) => AggregationJobId::try_from_slice(&b)
                    .map(Some)
                    .ok_or(DatastoreError::Corrupt("helper job id")),
            }
        })
    }

    /// Records that the helper is still processing a leased job (under `helper_job_id`, or
    /// `None` to forget it and initialize again) and gives the lease back until `poll_at`.
    /// Fails with `LeaseLost` unless `lease` still holds the unfinished job.
    pub async fn set_aggregation_job_polling(
        &self,
        lease: &Lease,
        helper_job_id: Option<&AggregationJobId>,
        poll_at: u64,
    ) -> Result<()> {
        let lease = lease.clone();
        let helper_job_id = helper_job_id.map(|id| id.as_bytes().to_vec());
        on_write!(self.db, |conn| {
            if !Leases::on(&mut *conn, JobKind::Aggregation)
                .release(&lease, poll_at)
                .await?
            {
                return Err(DatastoreError::LeaseLost);
            }
            sqlx::query(
                "UPDATE aggregation_jobs SET helper_job_id = $3 WHERE task_id = $1 AND job_id = $2",
            )
            .bind(lease.task_id.as_bytes().to_vec())
            .bind(lease.job_id.to_vec())
            .bind(helper_job_id)
            .execute(&mut *conn)
            .await?;
            Ok(())
        })
    }

    /// Jobs not yet finished for the task.
    pub async fn count_pending_aggregation_jobs(&self, task_id: &TaskId) -> Result<u64> {
        on_read!(self.db, |conn| {
            let n: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM aggregation_jobs WHERE task_id = $1 AND state = 'pending'",
            )
            .bind(task_id.as_bytes().to_vec())
            .fetch_one(&mut *conn)
            .await?;
            Ok(uint(n))
        })
    }
}

/// The state a leader's report moves to.
enum ReportState {
    /// Into an aggregation job (and, leader-selected, its batch).
    Aggregating {
        job: Vec<u8>,
        batch_id: Option<Vec<u8>>,
    },
    Aggregated,
    Failed,
}

/// Sets the state of the task's reports `ids`, in statements of up to `MULTI_ROW_CHUNK` reports
/// each (one statement per report cost a round trip to the database connection's thread per
/// report, which was most of an aggregation job's creation).
async fn set_report_states(
    conn: impl Into<Conn<'_>>,
    tid: &[u8],
    ids: &[Vec<u8>],
    state: &ReportState,
) -> Result<()> {
    // `$1` is the task, `$2` the state; `$3` and `$4` the job and batch where they are set;
    // the report IDs follow from `first`.
    let (name, set, first) = match state {
        ReportState::Aggregating { batch_id: None, .. } => {
            ("aggregating", "state = $2, aggregation_job_id = $3", 4)
        }
        ReportState::Aggregating {
            batch_id: Some(_), ..
        } => (
            "aggregating",
            "state = $2, aggregation_job_id = $3, batch_id = $4",
            5,
        ),
        ReportState::Aggregated => ("aggregated", "state = $2", 3),
        ReportState::Failed => ("failed", "state = $2", 3),
    };
    let mut conn = conn.into();
    for chunk in ids.chunks(MULTI_ROW_CHUNK) {
        let sql = format!(
            "UPDATE client_reports SET {set} WHERE task_id = $1 AND report_id IN ({})",
            placeholders(first, chunk.len())
        );
        on_conn!(conn.reborrow(), |c| {
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(tid.to_vec())
                .bind(name);
            if let ReportState::Aggregating { job, batch_id } = state {
                q = q.bind(job.clone());
                if let Some(b) = batch_id {
                    q = q.bind(b.clone());
                }
            }
            for id in chunk {
                q = q.bind(id.clone());
            }
            q.execute(c).await?;
        });
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::DatastoreKey;
    use sqlx::Connection;

    /// SQLite's plan for `sql` (two parameters) on a migrated datastore, one line per step.
    async fn plan(sql: &str) -> Vec<String> {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("p.db").display());
        let ds = Datastore::connect(&url, DatastoreKey::from_bytes(&[5; 32]).unwrap())
            .await
            .unwrap();
        ds.close().await;
        let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
        sqlx::query(sqlx::AssertSqlSafe(format!("EXPLAIN QUERY PLAN {sql}")))
            .bind(vec![1u8; 32])
            .bind(vec![2u8; 16])
            .fetch_all(&mut conn)
            .await
            .unwrap()
            .iter()
            .map(|r| r.get::<String, _>(3))
            .collect()
    }

    /// The reads every job and every driver pass make find their rows through an index on what
    /// they ask for, not by walking all of the task's reports: each of them, over a task with a
    /// growing number of reports, made aggregation slower the more reports the task had.
    #[tokio::test]
    async fn job_reads_use_the_index_on_what_they_ask_for() {
        let job = plan(JOB_REPORTS).await;
        assert!(
            job.iter()
                .any(|step| step.contains("client_reports_by_job")),
            "{job:?}"
        );
        let waiting = plan(WAITING_REPORTS).await;
        assert!(
            waiting[0].contains("client_reports_by_state"),
            "{waiting:?}"
        );
        for p in job.iter().chain(&waiting) {
            assert!(!p.contains("sqlite_autoindex_client_reports"), "{p}");
        }
    }
}
