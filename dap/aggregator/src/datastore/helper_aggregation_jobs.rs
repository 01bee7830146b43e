//! The `helper_aggregation_jobs` table: the helper's aggregation jobs (DAP-18 §4.5.3.2), each
//! with the response the leader gets for it. A job is prepared at once, or — asynchronous
//! aggregation — stored as `processing` with its request and prepared later under the
//! [`leases`](super::leases) routine. Deleting a job (§4.5.5) keeps what it committed.

use super::batch_buckets::Buckets;
use super::leases::{JobKind, Lease, Leases};
use super::output_shares::ReportOutcome;
use super::{Datastore, DatastoreError, Result, int};
use cairn_dap_core::VdafEngine;
use cairn_dap_messages::{AggregationJobId, ReportError, TaskId};
use cairn_db::{Conn, on_conn, on_read, on_write};
use sqlx::Row;

/// Builds the helper's encoded `AggregationJobResp` from the committed per-report outcomes. It
/// runs inside the write that stores the response (on SQLite, on the writer's task), so it owns
/// what it uses.
pub type ResponseBuilder =
    Box<dyn FnOnce(&[std::result::Result<(), ReportError>]) -> Vec<u8> + Send>;

/// Where a helper's aggregation job stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum HelperJobState {
    /// Accepted and stored; the helper's driver has not prepared it yet.
    Processing,
    /// Prepared and committed; the response is stored.
    Finished,
    /// Abandoned by the leader (`DELETE`). What it committed stays committed.
    Deleted,
}

impl HelperJobState {
    fn parse(s: &str) -> Result<HelperJobState> {
        match s {
            "processing" => Ok(HelperJobState::Processing),
            "finished" => Ok(HelperJobState::Finished),
            "deleted" => Ok(HelperJobState::Deleted),
            _ => Err(DatastoreError::Corrupt("helper aggregation job state")),
        }
    }
}

/// A helper's aggregation job as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HelperAggregationJob {
    /// Where it stands.
    pub state: HelperJobState,
    /// The encoded `AggregationJobResp` once finished (empty before).
    pub response: Vec<u8>,
}

/// The latest report time of a job's reports (0 for none), kept for the garbage collector.
fn max_time(outcomes: &[ReportOutcome]) -> i64 {
    int(outcomes.iter().map(|o| o.time).max().unwrap_or(0))
}

impl Datastore {
    /// A helper aggregation job, if it exists.
    pub async fn get_helper_aggregation_job(
        &self,
        task_id: &TaskId,
        job_id: &AggregationJobId,
    ) -> Result<Option<HelperAggregationJob>> {
        let mut read = self.db.read().await?;
        helper_job(read.conn(), task_id.as_bytes(), job_id.as_bytes()).await
    }

    /// Commits a helper aggregation job prepared synchronously: for each report with an output
    /// share, the replay and collected-bucket checks and accumulation; then stores the job
    /// (`finished`) and the response built by `respond` from the final per-report outcomes.
    /// If the job already exists (a retried request), nothing changes and the stored job is
    /// returned.
    pub async fn commit_helper_aggregation_job(
        &self,
        task_id: &TaskId,
        job_id: &AggregationJobId,
        vdaf: &VdafEngine,
        agg_param: &[u8],
        outcomes: &[ReportOutcome],
        respond: ResponseBuilder,
    ) -> Result<HelperAggregationJob> {
        let tid = task_id.as_bytes().to_vec();
        let job_id = *job_id.as_bytes();
        let (vdaf, agg_param, outcomes) = (vdaf.clone(), agg_param.to_vec(), outcomes.to_vec());
        on_write!(self.db, |conn| {
            let claimed = sqlx::query(
                "INSERT INTO helper_aggregation_jobs (task_id, job_id, response, state) \
                 VALUES ($1, $2, $3, 'finished') ON CONFLICT DO NOTHING",
            )
            .bind(tid.clone())
            .bind(job_id.to_vec())
            .bind(Vec::<u8>::new())
            .execute(&mut *conn)
            .await?
            .rows_affected();
            if claimed != 1 {
                // A retried request: the job stored before, read in this same transaction.
                return helper_job(conn.into(), &tid, &job_id)
                    .await?
                    .ok_or(DatastoreError::Corrupt("helper aggregation job"));
            }
            let results = Buckets::of(&mut *conn, &tid)
                .commit_output_shares(&vdaf, &agg_param, &outcomes)
                .await?;
            let response = respond(&results);
            sqlx::query(
                "UPDATE helper_aggregation_jobs SET response = $3, max_client_time = $4 \
                 WHERE task_id = $1 AND job_id = $2",
            )
            .bind(tid.clone())
            .bind(job_id.to_vec())
            .bind(response.clone())
            .bind(max_time(&outcomes))
            .execute(&mut *conn)
            .await?;
            Ok(HelperAggregationJob {
                state: HelperJobState::Finished,
                response,
            })
        })
    }

    /// Stores an aggregation job to be prepared later (state `processing`) with its encoded
    /// `AggregationJobInitReq`. Returns `false`, changing nothing, if the job exists.
    pub async fn put_helper_aggregation_job_request(
        &self,
        task_id: &TaskId,
        job_id: &AggregationJobId,
        request: &[u8],
    ) -> Result<bool> {
        let (tid, job_id) = (task_id.as_bytes().to_vec(), job_id.as_bytes().to_vec());
        let request = request.to_vec();
        on_write!(self.db, |conn| {
            let n = sqlx::query(
                "INSERT INTO helper_aggregation_jobs (task_id, job_id, response, state, request, \
                 lease_token, lease_expiry) VALUES ($1, $2, $3, 'processing', $4, NULL, 0) \
                 ON CONFLICT DO NOTHING",
            )
            .bind(tid)
            .bind(job_id)
            .bind(Vec::<u8>::new())
            .bind(request)
            .execute(&mut *conn)
            .await?
            .rows_affected();
            Ok(n == 1)
        })
    }

    /// Leases up to `limit` helper aggregation jobs still `processing` whose lease is free or
    /// expired, until `now + lease_secs` (like [`Datastore::acquire_aggregation_jobs`]).
    pub async fn acquire_helper_aggregation_jobs(
        &self,
        now: u64,
        lease_secs: u64,
        limit: u64,
        new_token: impl FnMut() -> [u8; 16] + Send + 'static,
    ) -> Result<Vec<Lease>> {
        self.take_leases(
            JobKind::HelperAggregation,
            now,
            lease_secs,
            limit,
            new_token,
        )
        .await
    }

    /// The stored `AggregationJobInitReq` of a helper job that is still `processing`.
    pub async fn get_helper_aggregation_job_request(
        &self,
        task_id: &TaskId,
        job_id: &[u8; 16],
    ) -> Result<Option<Vec<u8>>> {
        on_read!(self.db, |conn| {
            let request: Option<Option<Vec<u8>>> = sqlx::query_scalar(
                "SELECT request FROM helper_aggregation_jobs \
                 WHERE task_id = $1 AND job_id = $2 AND state = 'processing'",
            )
            .bind(task_id.as_bytes().to_vec())
            .bind(job_id.to_vec())
            .fetch_optional(&mut *conn)
            .await?;
            Ok(request.flatten())
        })
    }

    /// Commits a helper aggregation job prepared by the helper's driver, like
    /// [`Datastore::commit_helper_aggregation_job`], in one transaction and only if `lease`
    /// still holds the job and it is still `processing` (not taken over, not deleted);
    /// otherwise `LeaseLost` and nothing changes.
    pub async fn finish_helper_aggregation_job(
        &self,
        lease: &Lease,
        vdaf: &VdafEngine,
        agg_param: &[u8],
        outcomes: &[ReportOutcome],
        respond: ResponseBuilder,
    ) -> Result<()> {
        let tid = lease.task_id.as_bytes().to_vec();
        let (lease, vdaf, agg_param) = (lease.clone(), vdaf.clone(), agg_param.to_vec());
        let outcomes = outcomes.to_vec();
        on_write!(self.db, |conn| {
            Leases::on(&mut *conn, JobKind::HelperAggregation)
                .finish(&lease, "finished")
                .await?;
            let results = Buckets::of(&mut *conn, &tid)
                .commit_output_shares(&vdaf, &agg_param, &outcomes)
                .await?;
            sqlx::query(
                "UPDATE helper_aggregation_jobs SET response = $3, request = NULL, \
                 max_client_time = $4 WHERE task_id = $1 AND job_id = $2",
            )
            .bind(tid.clone())
            .bind(lease.job_id.to_vec())
            .bind(respond(&results))
            .bind(max_time(&outcomes))
            .execute(&mut *conn)
            .await?;
            Ok(())
        })
    }

    /// Gives a helper job's lease back early so another attempt can start at `retry_at`.
    pub async fn release_helper_aggregation_job(&self, lease: &Lease, retry_at: u64) -> Result<()> {
        self.release_lease(JobKind::HelperAggregation, lease, retry_at)
            .await
    }

    /// Marks a helper aggregation job `deleted` (a job still processing is never prepared;
    /// what a finished job committed stays committed, for replay and collection checks).
    /// Returns `false` if there is no such job.
    pub async fn delete_helper_aggregation_job(
        &self,
        task_id: &TaskId,
        job_id: &AggregationJobId,
    ) -> Result<bool> {
        let (tid, job_id) = (task_id.as_bytes().to_vec(), job_id.as_bytes().to_vec());
        on_write!(self.db, |conn| {
            let n = sqlx::query(
                "UPDATE helper_aggregation_jobs SET state = 'deleted', request = NULL, \
                 lease_token = NULL WHERE task_id = $1 AND job_id = $2",
            )
            .bind(tid)
            .bind(job_id)
            .execute(&mut *conn)
            .await?
            .rows_affected();
            Ok(n == 1)
        })
    }
}

/// The helper aggregation job `job_id` of task `tid`, if it exists, read on `conn`.
async fn helper_job(
    conn: Conn<'_>,
    tid: &[u8],
    job_id: &[u8],
) -> Result<Option<HelperAggregationJob>> {
    on_conn!(conn, |conn| {
        let row = sqlx::query(
            "SELECT state, response FROM helper_aggregation_jobs \
             WHERE task_id = $1 AND job_id = $2",
        )
        .bind(tid.to_vec())
        .bind(job_id.to_vec())
        .fetch_optional(conn)
        .await?;
        row.map(|r| {
            Ok(HelperAggregationJob {
                state: HelperJobState::parse(&r.try_get::<String, _>(0)?)?,
                response: r.try_get(1)?,
            })
        })
        .transpose()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_job_states_parse_and_unknown_ones_are_corrupt() {
        assert_eq!(
            HelperJobState::parse("processing").ok(),
            Some(HelperJobState::Processing)
        );
        assert_eq!(
            HelperJobState::parse("finished").ok(),
            Some(HelperJobState::Finished)
        );
        assert_eq!(
            HelperJobState::parse("deleted").ok(),
            Some(HelperJobState::Deleted)
        );
        assert!(matches!(
            HelperJobState::parse("pending"),
            Err(DatastoreError::Corrupt(_))
        ));
    }
}
