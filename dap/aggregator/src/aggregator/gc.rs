//! The garbage collector (issue 18): for every task with a report expiry age, deletes what
//! expired — in batches of at most `gc_batch_size` rows per table, a bounded number of
//! batches per pass — with the same cutoff the upload and aggregation checks refuse reports
//! by, so a report's replay record outlives every chance of accepting that report again.
//! Several instances may run at once (see the datastore's `gc` module).

use super::Aggregator;
use crate::datastore::GcCounts;
use crate::error::Error;

/// Most batches per task in one pass, so a large backlog is worked off over several passes
/// instead of starving the other drivers.
const MAX_BATCHES_PER_PASS: usize = 16;

impl Aggregator {
    /// One garbage-collection pass over every task; returns what it deleted.
    pub async fn collect_garbage_once(&self) -> Result<GcCounts, Error> {
        let limit = self.inner.params.gc_batch_size.max(1);
        let mut total = GcCounts::default();
        for task_id in self.inner.datastore.get_task_ids().await? {
            let Some(task) = self.inner.datastore.get_task(&task_id).await? else {
                continue;
            };
            for _ in 0..MAX_BATCHES_PER_PASS {
                let Some(cutoff) = task.expiry_cutoff(self.inner.clock.now()) else {
                    break;
                };
                let deleted = self
                    .inner
                    .datastore
                    .delete_expired(&task_id, cutoff, limit)
                    .await?;
                total.add(&deleted);
                if !deleted.hit_limit(limit) {
                    break;
                }
            }
        }
        if total.total() > 0 {
            tracing::debug!(?total, "garbage collected");
        }
        for (table, n) in [
            ("client_reports", total.client_reports),
            ("aggregated_reports", total.aggregated_reports),
            ("batch_buckets", total.batch_buckets),
            ("aggregation_jobs", total.aggregation_jobs),
            ("collection_jobs", total.collection_jobs),
            ("helper_aggregation_jobs", total.helper_aggregation_jobs),
            ("helper_aggregate_shares", total.helper_aggregate_shares),
        ] {
            metrics::counter!("cairn_dap_gc_deleted_rows_total", "table" => table).increment(n);
        }
        Ok(total)
    }

    /// Runs [`Aggregator::collect_garbage_once`] every `gc_interval_secs` (never, if 0) until
    /// the returned handle is aborted.
    pub fn spawn_garbage_collector(&self) -> tokio::task::JoinHandle<()> {
        let this = self.clone();
        tokio::spawn(async move {
            let secs = this.inner.params.gc_interval_secs;
            if secs == 0 {
                return;
            }
            loop {
                if let Err(e) = this.collect_garbage_once().await {
                    tracing::warn!(error = %e, "garbage collection failed");
                }
                tokio::time::sleep(std::time::Duration::from_secs(secs)).await;
            }
        })
    }
}
