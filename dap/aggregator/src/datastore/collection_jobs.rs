//! The `collection_jobs` table: the leader's collection jobs (DAP-18 §4.6.1), driven under the
//! [`leases`](super::leases) routine. A job in `start` waits until its batch is ready, then
//! freezes the batch (its buckets are marked collected) and stores the leader's share
//! (`collecting`); it ends `finished` with the collector's result, or `failed`.

use super::batch_buckets::{BatchScope, Buckets};
use super::leases::{JobKind, Lease, Leases};
use super::{Datastore, DatastoreError, Result, int, lock_task_sql, uint};
use cairn_dap_core::VdafEngine;
use cairn_dap_messages::{BatchChecksum, CollectionJobId, TaskId};
use cairn_db::{on_read, on_write};
use sqlx::Row;

/// The leader's view of a collection job.
#[derive(Debug, Clone)]
pub struct CollectionJob {
    /// The encoded `CollectionJobReq`.
    pub request: Vec<u8>,
    /// `start`, `collecting`, `finished`, `failed` or `deleted`.
    pub state: String,
    /// While waiting: `aggregating` or `insufficient-reports`.
    pub wait_reason: String,
    /// Reports aggregated in the batch so far (or final).
    pub report_count: u64,
    /// Finished: the encoded `CollectionJobResp`.
    pub result: Option<Vec<u8>>,
    /// Failed: the DAP problem token.
    pub error: Option<String>,
    /// Collecting: the leader's merged aggregate share.
    pub leader_aggregate_share: Option<Vec<u8>>,
    /// Collecting: the batch checksum.
    pub checksum: Option<BatchChecksum>,
    /// Leader-selected: the batch the leader chose for this job, once chosen.
    pub batch_id: Option<[u8; 32]>,
}

/// What a collection attempt found.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum CollectionReadiness {
    /// Not ready; the reason is stored on the job.
    Waiting,
    /// The batch's buckets are now marked collected and the leader's share is stored.
    Ready {
        /// Merged aggregate share.
        aggregate_share: Vec<u8>,
        /// Reports in the batch.
        report_count: u64,
        /// Batch checksum.
        checksum: BatchChecksum,
        /// Smallest and largest report time in the batch.
        time_range: (u64, u64),
        /// The batch collected.
        scope: BatchScope,
    },
    /// The batch overlaps a collected one.
    Overlap,
}

/// Why a time-interval batch is not ready, if it is not: reports in it are still being
/// aggregated, or it holds fewer than `min_batch_size` aggregated reports.
fn time_interval_wait(
    unaggregated: i64,
    report_count: u64,
    min_batch_size: u64,
) -> Option<&'static str> {
    if unaggregated > 0 {
        Some("aggregating")
    } else if report_count < min_batch_size {
        Some("insufficient-reports")
    } else {
        None
    }
}

impl Datastore {
    /// Creates a collection job (state `start`) unless a live one with this ID exists. A job
    /// the collector deleted, or that failed, is started afresh under the same ID (its ID is
    /// derived from the request, so the identical request names it again; DAP-18 §4.6.1 lets a
    /// collector retry a failed job). For a time-interval query
    /// (`interval` set), returns `Conflict` if the interval overlaps another live collection
    /// job of the task; a leader-selected job gets its batch later.
    pub async fn put_collection_job(
        &self,
        task_id: &TaskId,
        job_id: &CollectionJobId,
        request: &[u8],
        interval: Option<(u64, u64)>,
    ) -> Result<bool> {
        let tid = task_id.as_bytes().to_vec();
        let (job_id, request) = (job_id.as_bytes().to_vec(), request.to_vec());
        on_write!(self.db, |conn| {
            let state: Option<String> = sqlx::query_scalar(
                "SELECT state FROM collection_jobs WHERE task_id = $1 AND job_id = $2",
            )
            .bind(tid.clone())
            .bind(job_id.clone())
            .fetch_optional(&mut *conn)
            .await?;
            let deleted = match state.as_deref() {
                None => false,
                Some("deleted" | "failed") => true,
                Some(_) => return Ok(false),
            };
            let (start, duration) = interval.unwrap_or((0, 0));
            if interval.is_some() {
                let overlapping: i64 = sqlx::query_scalar(
                    "SELECT COUNT(*) FROM collection_jobs WHERE task_id = $1 \
                     AND state NOT IN ('failed', 'deleted') AND interval_duration > 0 \
                     AND interval_start < $3 AND $2 < interval_start + interval_duration",
                )
                .bind(tid.clone())
                .bind(int(start))
                .bind(int(start.saturating_add(duration)))
                .fetch_one(&mut *conn)
                .await?;
                if overlapping > 0 {
                    return Err(DatastoreError::Conflict("overlapping collection job"));
                }
            }
            let sql = if deleted {
                "UPDATE collection_jobs SET request = $3, interval_start = $4, \
                 interval_duration = $5, state = 'start', wait_reason = 'aggregating', \
                 report_count = 0, leader_aggregate_share = NULL, checksum = NULL, \
                 result = NULL, error = NULL, lease_token = NULL, lease_expiry = 0, \
                 batch_id = NULL WHERE task_id = $1 AND job_id = $2 \
                 AND state IN ('deleted', 'failed')"
            } else {
                "INSERT INTO collection_jobs (task_id, job_id, request, interval_start, \
                 interval_duration, state, wait_reason, report_count, lease_expiry) \
                 VALUES ($1, $2, $3, $4, $5, 'start', 'aggregating', 0, 0)"
            };
            sqlx::query(sql)
                .bind(tid.clone())
                .bind(job_id)
                .bind(request)
                .bind(int(start))
                .bind(int(duration))
                .execute(&mut *conn)
                .await?;
            Ok(true)
        })
    }

    /// Creates a leader-selected collection job (state `start`) with ID `new_id` — unless a
    /// live (neither deleted nor failed) leader-selected job of the task already holds a byte-identical
    /// request, whose ID is returned instead (DAP-18 §4.6.1: an identical `POST` names the
    /// existing job). Every leader-selected query reads "the next batch", so identical requests
    /// are the rule; a collector that wants another batch deletes the job it has collected
    /// first. The check and the insert run under the task lock, so two identical requests
    /// racing create one job. Returns the job's ID and whether it was created.
    pub async fn put_leader_selected_collection_job(
        &self,
        task_id: &TaskId,
        new_id: &CollectionJobId,
        request: &[u8],
    ) -> Result<(CollectionJobId, bool)> {
        let tid = task_id.as_bytes().to_vec();
        let (new_id, request) = (*new_id, request.to_vec());
        let lock_task = lock_task_sql(self.dialect());
        on_write!(self.db, |conn| {
            sqlx::query(lock_task)
                .bind(tid.clone())
                .execute(&mut *conn)
                .await?;
            let existing: Option<Vec<u8>> = sqlx::query_scalar(
                "SELECT job_id FROM collection_jobs WHERE task_id = $1 AND request = $2 \
                 AND interval_duration = 0 AND state NOT IN ('deleted', 'failed') LIMIT 1",
            )
            .bind(tid.clone())
            .bind(request.clone())
            .fetch_optional(&mut *conn)
            .await?;
            if let Some(id) = existing {
                let id = <[u8; 16]>::try_from(id.as_slice())
                    .map_err(|_| DatastoreError::Corrupt("collection job ID"))?;
                return Ok((CollectionJobId::from_bytes(id), false));
            }
            sqlx::query(
                "INSERT INTO collection_jobs (task_id, job_id, request, interval_start, \
                 interval_duration, state, wait_reason, report_count, lease_expiry) \
                 VALUES ($1, $2, $3, 0, 0, 'start', 'aggregating', 0, 0)",
            )
            .bind(tid.clone())
            .bind(new_id.as_bytes().to_vec())
            .bind(request.clone())
            .execute(&mut *conn)
            .await?;
            Ok((new_id, true))
        })
    }

    /// A collection job, if it exists.
    pub async fn get_collection_job(
        &self,
        task_id: &TaskId,
        job_id: &[u8; 16],
    ) -> Result<Option<CollectionJob>> {
        on_read!(self.db, |conn| {
            let row = sqlx::query(
                "SELECT request, state, wait_reason, report_count, result, error, \
                 leader_aggregate_share, checksum, batch_id FROM collection_jobs \
                 WHERE task_id = $1 AND job_id = $2",
            )
            .bind(task_id.as_bytes().to_vec())
            .bind(job_id.to_vec())
            .fetch_optional(&mut *conn)
            .await?;
            let Some(r) = row else { return Ok(None) };
            Ok(Some(CollectionJob {
                request: r.try_get(0)?,
                state: r.try_get(1)?,
                wait_reason: r.try_get(2)?,
                report_count: uint(r.try_get(3)?),
                result: r.try_get(4)?,
                error: r.try_get(5)?,
                leader_aggregate_share: r.try_get(6)?,
                checksum: r
                    .try_get::<Option<Vec<u8>>, _>(7)?
                    .and_then(|c| BatchChecksum::try_from_slice(&c)),
                batch_id: r
                    .try_get::<Option<Vec<u8>>, _>(8)?
                    .and_then(|b| <[u8; 32]>::try_from(b.as_slice()).ok()),
            }))
        })
    }

    /// Marks a collection job deleted (the collector abandoned it).
    pub async fn delete_collection_job(&self, task_id: &TaskId, job_id: &[u8; 16]) -> Result<bool> {
        let (tid, job_id) = (task_id.as_bytes().to_vec(), job_id.to_vec());
        on_write!(self.db, |conn| {
            let n = sqlx::query(
                "UPDATE collection_jobs SET state = 'deleted' WHERE task_id = $1 AND job_id = $2 \
                 AND state IN ('start', 'finished', 'failed')",
            )
            .bind(tid)
            .bind(job_id)
            .execute(&mut *conn)
            .await?
            .rows_affected();
            Ok(n == 1)
        })
    }

    /// Leases due collection jobs (like [`Datastore::acquire_aggregation_jobs`]).
    pub async fn acquire_collection_jobs(
        &self,
        now: u64,
        lease_secs: u64,
        limit: u64,
        new_token: impl FnMut() -> [u8; 16] + Send + 'static,
    ) -> Result<Vec<Lease>> {
        self.take_leases(JobKind::Collection, now, lease_secs, limit, new_token)
            .await
    }

    /// For a time-interval collection job in state `start`: if reports in the interval are
    /// still unaggregated, or the batch is below `min_batch_size`, records why and returns
    /// `Waiting`; otherwise marks the buckets collected, stores the leader's share on the job
    /// (state `collecting`) and returns it — one transaction, under the task lock.
    #[allow(clippy::too_many_arguments)] // one transaction's worth of inputs
    pub async fn try_collect_time_interval(
        &self,
        lease: &Lease,
        vdaf: &VdafEngine,
        agg_param: &[u8],
        start: u64,
        end: u64,
        min_batch_size: u64,
        retry_at: u64,
    ) -> Result<CollectionReadiness> {
        let tid = lease.task_id.as_bytes().to_vec();
        let (lease, vdaf, agg_param) = (lease.clone(), vdaf.clone(), agg_param.to_vec());
        let lock_task = lock_task_sql(self.dialect());
        on_write!(self.db, |conn| {
            sqlx::query(lock_task)
                .bind(tid.clone())
                .execute(&mut *conn)
                .await?;
            Leases::on(&mut *conn, JobKind::Collection)
                .check_held(&lease, "start")
                .await?;
            let unaggregated: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM client_reports WHERE task_id = $1 \
                 AND state IN ('start', 'aggregating') AND client_time >= $2 AND client_time < $3",
            )
            .bind(tid.clone())
            .bind(int(start))
            .bind(int(end))
            .fetch_one(&mut *conn)
            .await?;
            let scope = BatchScope::TimeInterval { start, end };
            let agg = Buckets::of(&mut *conn, &tid)
                .sum(&vdaf, &agg_param, &scope)
                .await?;
            if agg.any_collected {
                return Ok(CollectionReadiness::Overlap);
            }
            if let Some(reason) = time_interval_wait(unaggregated, agg.report_count, min_batch_size)
            {
                sqlx::query(
                    "UPDATE collection_jobs SET wait_reason = $3, report_count = $4 \
                     WHERE task_id = $1 AND job_id = $2",
                )
                .bind(tid.clone())
                .bind(lease.job_id.to_vec())
                .bind(reason)
                .bind(int(agg.report_count))
                .execute(&mut *conn)
                .await?;
                Leases::on(&mut *conn, JobKind::Collection)
                    .release(&lease, retry_at)
                    .await?;
                return Ok(CollectionReadiness::Waiting);
            }
            Buckets::of(&mut *conn, &tid)
                .mark_collected(&vdaf, &agg_param, &scope)
                .await?;
            sqlx::query(
                "UPDATE collection_jobs SET state = 'collecting', wait_reason = '', \
                 report_count = $3, leader_aggregate_share = $4, checksum = $5 \
                 WHERE task_id = $1 AND job_id = $2",
            )
            .bind(tid.clone())
            .bind(lease.job_id.to_vec())
            .bind(int(agg.report_count))
            .bind(agg.aggregate_share.clone())
            .bind(agg.checksum.as_bytes().to_vec())
            .execute(&mut *conn)
            .await?;
            Ok(CollectionReadiness::Ready {
                aggregate_share: agg.aggregate_share,
                report_count: agg.report_count,
                checksum: agg.checksum,
                time_range: agg.time_range.unwrap_or((start, start)),
                scope,
            })
        })
    }

    /// For a leader-selected collection job in state `start`: picks the oldest open batch
    /// whose reports are all aggregated and that holds at least `min_batch_size` of them,
    /// closes it (it gets no more reports), marks its bucket collected and stores the
    /// leader's share and the batch ID on the job (state `collecting`) — one transaction,
    /// under the task lock. Otherwise records why it waits and returns `Waiting`.
    pub async fn try_collect_leader_selected(
        &self,
        lease: &Lease,
        vdaf: &VdafEngine,
        agg_param: &[u8],
        min_batch_size: u64,
        retry_at: u64,
    ) -> Result<CollectionReadiness> {
        let tid = lease.task_id.as_bytes().to_vec();
        let (lease, vdaf, agg_param) = (lease.clone(), vdaf.clone(), agg_param.to_vec());
        let lock_task = lock_task_sql(self.dialect());
        on_write!(self.db, |conn| {
            sqlx::query(lock_task)
                .bind(tid.clone())
                .execute(&mut *conn)
                .await?;
            Leases::on(&mut *conn, JobKind::Collection)
                .check_held(&lease, "start")
                .await?;
            let rows = sqlx::query(
                "SELECT b.batch_id, (SELECT COUNT(*) FROM client_reports r \
                 WHERE r.task_id = b.task_id AND r.batch_id = b.batch_id \
                 AND r.state = 'aggregating') \
                 FROM leader_batches b WHERE b.task_id = $1 AND b.state = 'open' \
                 ORDER BY b.seq",
            )
            .bind(tid.clone())
            .fetch_all(&mut *conn)
            .await?;
            let mut best_count = 0;
            let mut in_flight = false;
            let mut chosen = None;
            for row in rows {
                let id: Vec<u8> = row.try_get(0)?;
                let pending = uint(row.try_get(1)?);
                let batch_id = <[u8; 32]>::try_from(id.as_slice())
                    .map_err(|_| DatastoreError::Corrupt("batch id"))?;
                let scope = BatchScope::LeaderSelected { batch_id };
                let agg = Buckets::of(&mut *conn, &tid)
                    .sum(&vdaf, &agg_param, &scope)
                    .await?;
                if agg.any_collected || agg.agg_param_mismatch {
                    continue;
                }
                best_count = best_count.max(agg.report_count);
                if pending > 0 {
                    in_flight |= agg.report_count.saturating_add(pending) >= min_batch_size;
                    continue;
                }
                if agg.report_count >= min_batch_size {
                    chosen = Some((batch_id, scope, agg));
                    break;
                }
            }
            let Some((batch_id, scope, agg)) = chosen else {
                let reason = if in_flight {
                    "aggregating"
                } else {
                    "insufficient-reports"
                };
                sqlx::query(
                    "UPDATE collection_jobs SET wait_reason = $3, report_count = $4 \
                     WHERE task_id = $1 AND job_id = $2",
                )
                .bind(tid.clone())
                .bind(lease.job_id.to_vec())
                .bind(reason)
                .bind(int(best_count))
                .execute(&mut *conn)
                .await?;
                Leases::on(&mut *conn, JobKind::Collection)
                    .release(&lease, retry_at)
                    .await?;
                return Ok(CollectionReadiness::Waiting);
            };
            sqlx::query(
                "UPDATE leader_batches SET state = 'collected' WHERE task_id = $1 AND batch_id = $2",
            )
            .bind(tid.clone())
            .bind(batch_id.to_vec())
            .execute(&mut *conn)
            .await?;
            Buckets::of(&mut *conn, &tid)
                .mark_collected(&vdaf, &agg_param, &scope)
                .await?;
            sqlx::query(
                "UPDATE collection_jobs SET state = 'collecting', wait_reason = '', \
                 report_count = $3, leader_aggregate_share = $4, checksum = $5, batch_id = $6 \
                 WHERE task_id = $1 AND job_id = $2",
            )
            .bind(tid.clone())
            .bind(lease.job_id.to_vec())
            .bind(int(agg.report_count))
            .bind(agg.aggregate_share.clone())
            .bind(agg.checksum.as_bytes().to_vec())
            .bind(batch_id.to_vec())
            .execute(&mut *conn)
            .await?;
            Ok(CollectionReadiness::Ready {
                aggregate_share: agg.aggregate_share,
                report_count: agg.report_count,
                checksum: agg.checksum,
                time_range: agg.time_range.unwrap_or((0, 0)),
                scope,
            })
        })
    }

    /// Finishes (`result` set) or fails (`error` set) a collection job held under `lease`.
    pub async fn finish_collection_job(
        &self,
        lease: &Lease,
        result: std::result::Result<Vec<u8>, String>,
    ) -> Result<()> {
        let (state, result, error) = match result {
            Ok(r) => ("finished", Some(r), None),
            Err(e) => ("failed", None, Some(e)),
        };
        let lease = lease.clone();
        on_write!(self.db, |conn| {
            Leases::on(&mut *conn, JobKind::Collection)
                .finish(&lease, state)
                .await?;
            sqlx::query(
                "UPDATE collection_jobs SET result = $3, error = $4 \
                 WHERE task_id = $1 AND job_id = $2",
            )
            .bind(lease.task_id.as_bytes().to_vec())
            .bind(lease.job_id.to_vec())
            .bind(result)
            .bind(error)
            .execute(&mut *conn)
            .await?;
            Ok(())
        })
    }

    /// Lets a leased collection job be retried at `retry_at`.
    pub async fn release_collection_job(&self, lease: &Lease, retry_at: u64) -> Result<()> {
        self.release_lease(JobKind::Collection, lease, retry_at)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_time_interval_batch_waits_for_aggregation_then_for_enough_reports() {
        assert_eq!(time_interval_wait(1, 100, 10), Some("aggregating"));
        assert_eq!(time_interval_wait(0, 9, 10), Some("insufficient-reports"));
        assert_eq!(time_interval_wait(0, 10, 10), None);
        assert_eq!(time_interval_wait(0, 0, 0), None);
    }
}
