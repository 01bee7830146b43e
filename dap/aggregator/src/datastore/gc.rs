//! Deleting what a task no longer needs once its reports expire (issue 18): client reports,
//! replay records, batch buckets and collected intervals, finished aggregation jobs (the
//! leader's and the helper's), finished collection jobs and the helper's aggregate shares, in
//! bounded batches so one pass never holds the writer (or PostgreSQL locks) for long.
//!
//! Every statement deletes rows selected by a bounded subquery and is idempotent, so several
//! instances may collect the same task at once: a row one of them deleted is simply not found
//! by the other. Nothing a live job still needs is deleted: reports of a pending aggregation
//! job stay until the job ends, and a job stays while any of its reports does.

use super::{Datastore, Result, int, uint};
use cairn_dap_messages::TaskId;
use cairn_db::{on_read, on_write};

/// Rows per table that garbage collection bounds: what one batch deleted
/// ([`Datastore::delete_expired`]), or what a task holds ([`Datastore::count_task_rows`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GcCounts {
    /// Client reports (leader).
    pub client_reports: u64,
    /// Replay records (both roles).
    pub aggregated_reports: u64,
    /// Batch buckets (both roles; a GC batch counts collected intervals here too).
    pub batch_buckets: u64,
    /// Aggregation jobs (leader).
    pub aggregation_jobs: u64,
    /// Collection jobs (leader).
    pub collection_jobs: u64,
    /// Aggregation jobs (helper).
    pub helper_aggregation_jobs: u64,
    /// Aggregate-share answers (helper).
    pub helper_aggregate_shares: u64,
}

impl GcCounts {
    /// Rows deleted in all.
    pub fn total(&self) -> u64 {
        self.client_reports
            + self.aggregated_reports
            + self.batch_buckets
            + self.aggregation_jobs
            + self.collection_jobs
            + self.helper_aggregation_jobs
            + self.helper_aggregate_shares
    }

    /// Whether some table had `limit` rows to delete, so another batch may find more.
    pub fn hit_limit(&self, limit: u64) -> bool {
        [
            self.client_reports,
            self.aggregated_reports,
            self.batch_buckets,
            self.aggregation_jobs,
            self.collection_jobs,
            self.helper_aggregation_jobs,
            self.helper_aggregate_shares,
        ]
        .iter()
        .any(|&n| n >= limit)
    }

    /// Adds `other` to these counts.
    pub fn add(&mut self, other: &GcCounts) {
        self.client_reports += other.client_reports;
        self.aggregated_reports += other.aggregated_reports;
        self.batch_buckets += other.batch_buckets;
        self.aggregation_jobs += other.aggregation_jobs;
        self.collection_jobs += other.collection_jobs;
        self.helper_aggregation_jobs += other.helper_aggregation_jobs;
        self.helper_aggregate_shares += other.helper_aggregate_shares;
    }
}

/// Row counts of a task's tables, for tests and metrics: the same tables as [`GcCounts`].
pub type TaskRowCounts = GcCounts;

impl Datastore {
    /// Deletes at most `limit` rows per table of the task's data that expired before `cutoff`
    /// (time-precision units; see [`crate::AggregatorTask::expiry_cutoff`]), in one
    /// transaction. Call again while [`GcCounts::hit_limit`].
    pub async fn delete_expired(
        &self,
        task_id: &TaskId,
        cutoff: u64,
        limit: u64,
    ) -> Result<GcCounts> {
        let tid = task_id.as_bytes().to_vec();
        let (cutoff, limit) = (int(cutoff), int(limit));
        on_write!(self.db, |conn| {
            // Reports, except those a pending aggregation job still prepares.
            let client_reports = sqlx::query(
                "DELETE FROM client_reports WHERE task_id = $1 AND report_id IN \
                 (SELECT c.report_id FROM client_reports c WHERE c.task_id = $1 \
                 AND c.client_time < $2 AND NOT EXISTS (SELECT 1 FROM aggregation_jobs j \
                 WHERE j.task_id = c.task_id AND j.job_id = c.aggregation_job_id \
                 AND j.state = 'pending') LIMIT $3)",
            )
            .bind(tid.clone())
            .bind(cutoff)
            .bind(limit)
            .execute(&mut *conn)
            .await?
            .rows_affected();
            // Replay records: an upload or aggregation of these reports is now refused as
            // too old, so the record is no longer needed.
            let aggregated_reports = sqlx::query(
                "DELETE FROM aggregated_reports WHERE task_id = $1 AND report_id IN \
                 (SELECT report_id FROM aggregated_reports WHERE task_id = $1 \
                 AND client_time < $2 LIMIT $3)",
            )
            .bind(tid.clone())
            .bind(cutoff)
            .bind(limit)
            .execute(&mut *conn)
            .await?
            .rows_affected();
            // Buckets: a time-interval bucket is one time unit; a leader-selected batch's
            // bucket goes once collected and its latest report has expired.
            let batch_buckets = sqlx::query(
                "DELETE FROM batch_buckets WHERE task_id = $1 AND (batch_id, bucket_start) IN \
                 (SELECT batch_id, bucket_start FROM batch_buckets WHERE task_id = $1 \
                 AND ((batch_id = $4 AND bucket_start < $2) \
                 OR (batch_id <> $4 AND collected = 1 AND max_time < $2)) LIMIT $3)",
            )
            .bind(tid.clone())
            .bind(cutoff)
            .bind(limit)
            .bind(Vec::<u8>::new())
            .execute(&mut *conn)
            .await?
            .rows_affected();
            // Collected intervals that lie wholly before the cutoff (counted with buckets):
            // every report they would refuse is refused as too old now.
            let collected_intervals = sqlx::query(
                "DELETE FROM collected_intervals WHERE task_id = $1 \
                 AND (batch_id, interval_start, interval_end) IN \
                 (SELECT batch_id, interval_start, interval_end FROM collected_intervals \
                 WHERE task_id = $1 AND interval_end <= $2 LIMIT $3)",
            )
            .bind(tid.clone())
            .bind(cutoff)
            .bind(limit)
            .execute(&mut *conn)
            .await?
            .rows_affected();
            let batch_buckets = batch_buckets + collected_intervals;
            // Aggregation jobs that ended and whose reports are all gone.
            let aggregation_jobs = sqlx::query(
                "DELETE FROM aggregation_jobs WHERE task_id = $1 AND job_id IN \
                 (SELECT j.job_id FROM aggregation_jobs j WHERE j.task_id = $1 \
                 AND j.state <> 'pending' AND NOT EXISTS (SELECT 1 FROM client_reports c \
                 WHERE c.task_id = j.task_id AND c.aggregation_job_id = j.job_id) LIMIT $2)",
            )
            .bind(tid.clone())
            .bind(limit)
            .execute(&mut *conn)
            .await?
            .rows_affected();
            // Collection jobs that ended, for intervals that lie wholly before the cutoff.
            let collection_jobs = sqlx::query(
                "DELETE FROM collection_jobs WHERE task_id = $1 AND job_id IN \
                 (SELECT job_id FROM collection_jobs WHERE task_id = $1 \
                 AND state IN ('finished', 'failed', 'deleted') AND interval_duration > 0 \
                 AND interval_start + interval_duration <= $2 LIMIT $3)",
            )
            .bind(tid.clone())
            .bind(cutoff)
            .bind(limit)
            .execute(&mut *conn)
            .await?
            .rows_affected();
            // Helper jobs that ended and whose latest report has expired.
            let helper_aggregation_jobs = sqlx::query(
                "DELETE FROM helper_aggregation_jobs WHERE task_id = $1 AND job_id IN \
                 (SELECT job_id FROM helper_aggregation_jobs WHERE task_id = $1 \
                 AND state IN ('finished', 'deleted') AND max_client_time < $2 LIMIT $3)",
            )
            .bind(tid.clone())
            .bind(cutoff)
            .bind(limit)
            .execute(&mut *conn)
            .await?
            .rows_affected();
            // Helper aggregate-share answers for intervals wholly before the cutoff.
            let helper_aggregate_shares = sqlx::query(
                "DELETE FROM helper_aggregate_shares WHERE task_id = $1 AND share_id IN \
                 (SELECT share_id FROM helper_aggregate_shares WHERE task_id = $1 \
                 AND interval_end <= $2 LIMIT $3)",
            )
            .bind(tid)
            .bind(cutoff)
            .bind(limit)
            .execute(&mut *conn)
            .await?
            .rows_affected();
            Ok(GcCounts {
                client_reports,
                aggregated_reports,
                batch_buckets,
                aggregation_jobs,
                collection_jobs,
                helper_aggregation_jobs,
                helper_aggregate_shares,
            })
        })
    }

    /// How many rows the task has in each table garbage collection bounds.
    pub async fn count_task_rows(&self, task_id: &TaskId) -> Result<TaskRowCounts> {
        let tid = task_id.as_bytes().to_vec();
        on_read!(self.db, |conn| {
            let mut n = [0u64; 7];
            for (slot, table) in n.iter_mut().zip([
                "client_reports",
                "aggregated_reports",
                "batch_buckets",
                "aggregation_jobs",
                "collection_jobs",
                "helper_aggregation_jobs",
                "helper_aggregate_shares",
            ]) {
                let sql = format!("SELECT COUNT(*) FROM {table} WHERE task_id = $1");
                let count: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                    .bind(tid.clone())
                    .fetch_one(&mut *conn)
                    .await?;
                *slot = uint(count);
            }
            Ok(TaskRowCounts {
                client_reports: n[0],
                aggregated_reports: n[1],
                batch_buckets: n[2],
                aggregation_jobs: n[3],
                collection_jobs: n[4],
                helper_aggregation_jobs: n[5],
                helper_aggregate_shares: n[6],
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn another_batch_is_needed_only_when_a_table_was_full() {
        let mut c = GcCounts {
            client_reports: 3,
            ..GcCounts::default()
        };
        assert!(!c.hit_limit(4));
        assert!(c.hit_limit(3));
        c.add(&GcCounts {
            collection_jobs: 2,
            ..GcCounts::default()
        });
        assert_eq!(c.total(), 5);
    }
}
