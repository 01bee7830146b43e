//! The `batch_buckets` and `aggregated_reports` tables: each batch bucket's accumulated
//! aggregate share, report count, checksum and time range (DAP-18 §4.5.4.3), and the replay
//! record of every report ID aggregated.
//!
//! A bucket is a report's time unit in time-interval mode (§5.1.3) and the whole batch in
//! leader-selected mode (§5.2.4). Once a bucket is collected it takes no more reports, and a
//! report ID is aggregated at most once per task: both rules are enforced here, inside the
//! transaction that commits an aggregation job, by [`Buckets::commit_output_shares`]; what it
//! decides per report is pure and lives in [`output_shares`](super::output_shares).

use super::output_shares::{
    BucketTotals, Candidates, Committed, ReportOutcome, bucket_refusal, candidates,
};
use super::{Datastore, DatastoreError, MULTI_ROW_CHUNK, Result, int, lock_task_sql, uint};
use aws_lc_rs::digest;
use cairn_dap_core::VdafEngine;
use cairn_dap_messages::{BatchChecksum, ReportError, ReportId, TaskId};
use cairn_db::{Conn, on_conn, on_read, on_write};
use sqlx::{AssertSqlSafe, Row};
use std::collections::HashSet;

/// SHA-256 of a report ID: its contribution to a batch checksum.
pub fn report_checksum(id: &ReportId) -> BatchChecksum {
    let d = digest::digest(&digest::SHA256, id.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    BatchChecksum::from_bytes(out)
}

/// A batch bucket's key: the batch ID (empty in time-interval mode) and the bucket's start
/// time (the report's time unit in time-interval mode; 0 in leader-selected mode).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BucketKey {
    /// Leader-selected batch ID bytes, or empty.
    pub batch_id: Vec<u8>,
    /// Time-interval bucket start (time-precision units), or 0.
    pub bucket_start: u64,
}

impl BucketKey {
    /// The bucket a report of a job falls into: its time unit in time-interval mode (no
    /// `batch_id`), the batch's one bucket in leader-selected mode.
    pub fn for_report(batch_id: Option<&[u8; 32]>, time: u64) -> BucketKey {
        match batch_id {
            Some(id) => BucketKey {
                batch_id: id.to_vec(),
                bucket_start: 0,
            },
            None => BucketKey {
                batch_id: Vec::new(),
                bucket_start: time,
            },
        }
    }
}

/// Which batch buckets make up a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BatchScope {
    /// Time-interval: the buckets of `[start, end)` (time-precision units).
    TimeInterval {
        /// First time unit.
        start: u64,
        /// One past the last time unit.
        end: u64,
    },
    /// Leader-selected: the batch's one bucket (start 0).
    LeaderSelected {
        /// The batch ID.
        batch_id: [u8; 32],
    },
}

impl BatchScope {
    /// `(batch_id, first bucket_start, one past the last)` as bound in SQL.
    pub(super) fn bounds(&self) -> (Vec<u8>, i64, i64) {
        match self {
            BatchScope::TimeInterval { start, end } => (Vec::new(), int(*start), int(*end)),
            BatchScope::LeaderSelected { batch_id } => (batch_id.to_vec(), 0, 1),
        }
    }
}

/// The sum of a set of buckets.
#[derive(Debug, Clone)]
pub struct BatchAggregate {
    /// Merged aggregate share.
    pub aggregate_share: Vec<u8>,
    /// Reports.
    pub report_count: u64,
    /// XOR checksum.
    pub checksum: BatchChecksum,
    /// (min, max) report time, if any report.
    pub time_range: Option<(u64, u64)>,
    /// Whether any bucket was already collected.
    pub any_collected: bool,
    /// Whether any bucket used a different aggregation parameter.
    pub agg_param_mismatch: bool,
}

/// A bucket locked for this job: its key, its candidates, its stored share and totals.
struct OpenBucket {
    batch_id: Vec<u8>,
    start: i64,
    idx: Vec<usize>,
    share: Vec<u8>,
    totals: BucketTotals,
}

/// A bucket's row as stored.
struct StoredBucket {
    share: Vec<u8>,
    totals: BucketTotals,
    collected: bool,
    agg_param: Vec<u8>,
}

/// The columns [`StoredBucket`] is read from, in its order.
const BUCKET_COLUMNS: &str =
    "aggregate_share, report_count, checksum, min_time, max_time, collected, agg_param";

/// Reads a [`StoredBucket`] from a row of [`BUCKET_COLUMNS`] (a macro: each backend has its own
/// row type).
macro_rules! stored_bucket {
    ($row:expr) => {{
        let row = $row;
        let checksum: Vec<u8> = row.try_get(2)?;
        let collected: i64 = row.try_get(5)?;
        StoredBucket {
            share: row.try_get(0)?,
            totals: BucketTotals {
                count: row.try_get(1)?,
                checksum: BatchChecksum::try_from_slice(&checksum)
                    .ok_or(DatastoreError::Corrupt("sum"))?,
                min_time: row.try_get(3)?,
                max_time: row.try_get(4)?,
            },
            collected: collected == 1,
            agg_param: row.try_get(6)?,
        }
    }};
}

/// Reads the task's (`$task_id`, bytes) collected time intervals that overlap the time units
/// `$lo..=$hi` into `Vec<(u64, u64)>` on `$conn` (a macro: each backend has its own
/// connection type).
macro_rules! get_collected_intervals {
    ($conn:expr, $task_id:expr, $lo:expr, $hi:expr) => {{
        let rows: Vec<(i64, i64)> = sqlx::query_as(
            "SELECT interval_start, interval_end FROM collected_intervals WHERE task_id = $1 \
             AND batch_id = $2 AND interval_end > $3 AND interval_start <= $4",
        )
        .bind($task_id.to_vec())
        .bind(Vec::<u8>::new())
        .bind(int($lo))
        .bind(int($hi))
        .fetch_all($conn)
        .await?;
        rows.into_iter()
            .map(|(a, b)| (uint(a), uint(b)))
            .collect::<Vec<(u64, u64)>>()
    }};
}
pub(super) use get_collected_intervals;

/// The batch-bucket statements of one task inside one write transaction, written once for
/// both backends.
pub(super) struct Buckets<'t> {
    conn: Conn<'t>,
    task_id: &'t [u8],
}

impl<'t> Buckets<'t> {
    /// The buckets of the task `task_id` (its ID bytes), seen from `conn` (a write's
    /// connection).
    pub(super) fn of(conn: impl Into<Conn<'t>>, task_id: &'t [u8]) -> Self {
        Buckets {
            conn: conn.into(),
            task_id,
        }
    }

    /// Replay checks, collected-bucket checks and accumulation of a job's output shares: each
    /// bucket is locked once (in key order, so concurrent drivers cannot deadlock), the
    /// shares are added up in memory and the bucket is written once; report IDs are recorded
    /// against replay in multi-row inserts. The outer `Result` is a storage failure; the inner
    /// ones (one per outcome, in order) say whether each share was committed.
    pub(super) async fn commit_output_shares(
        &mut self,
        vdaf: &VdafEngine,
        agg_param: &[u8],
        outcomes: &[ReportOutcome],
    ) -> Result<Vec<Committed>> {
        let Candidates {
            mut results,
            by_bucket,
        } = candidates(outcomes);
        if by_bucket.is_empty() {
            return Ok(results);
        }
        let empty = vdaf.empty_aggregate_share(agg_param)?;
        // Time units inside a collected interval are refused before any bucket is created
        // for them, however long ago the interval was collected.
        let units: Vec<u64> = by_bucket
            .keys()
            .filter(|(batch_id, _)| batch_id.is_empty())
            .map(|(_, start)| *start)
            .collect();
        let collected = match (units.iter().min(), units.iter().max()) {
            (Some(&lo), Some(&hi)) => self.collected_intervals(lo, hi).await?,
            _ => Vec::new(),
        };
        // Lock every bucket the job touches; refuse reports of collected buckets.
        let mut open = Vec::with_capacity(by_bucket.len());
        for ((batch_id, bucket_start), idx) in by_bucket {
            if batch_id.is_empty() && in_intervals(bucket_start, &collected) {
                for &i in &idx {
                    results[i] = Err(ReportError::BatchCollected);
                }
                continue;
            }
            let start = int(bucket_start);
            let first_time = idx.iter().map(|&i| outcomes[i].time).min().unwrap_or(0);
            let stored = self
                .lock_bucket(&batch_id, start, agg_param, &empty, first_time)
                .await?;
            if let Some(e) = bucket_refusal(stored.collected, &stored.agg_param, agg_param) {
                for &i in &idx {
                    results[i] = Err(e);
                }
                continue;
            }
            open.push(OpenBucket {
                batch_id,
                start,
                idx,
                share: stored.share,
                totals: stored.totals,
            });
        }
        // Record the report IDs against replay; only the fresh ones count.
        let candidates: Vec<(&ReportId, u64)> = open
            .iter()
            .flat_map(|b| {
                b.idx
                    .iter()
                    .map(|&i| (&outcomes[i].report_id, outcomes[i].time))
            })
            .collect();
        let fresh = self.record_aggregated(&candidates).await?;
        // Add up each bucket's fresh shares in memory and write the bucket once.
        for mut bucket in open {
            let stored_count = bucket.totals.count;
            let shares = bucket
                .totals
                .add_fresh(&bucket.idx, outcomes, &fresh, &mut results);
            if bucket.totals.count == stored_count {
                continue;
            }
            let share = vdaf.accumulate(agg_param, &bucket.share, shares)?;
            self.put_bucket(&bucket.batch_id, bucket.start, share, &bucket.totals)
                .await?;
        }
        Ok(results)
    }

    /// Creates the bucket `(batch_id, start)` if it is missing (empty, under `agg_param`) and
    /// reads it, locked for the rest of the write.
    async fn lock_bucket(
        &mut self,
        batch_id: &[u8],
        start: i64,
        agg_param: &[u8],
        empty: &[u8],
        first_time: u64,
    ) -> Result<StoredBucket> {
        let lock = format!(
            "SELECT {BUCKET_COLUMNS} FROM batch_buckets \
             WHERE task_id = $1 AND batch_id = $2 AND bucket_start = $3{}",
            self.conn.dialect().for_update()
        );
        let task_id = self.task_id;
        Ok(on_conn!(self.conn.reborrow(), |conn| {
            sqlx::query(
                "INSERT INTO batch_buckets (task_id, batch_id, bucket_start, agg_param, \
                 aggregate_share, report_count, checksum, min_time, max_time, collected) \
                 VALUES ($1, $2, $3, $4, $5, 0, $6, $7, $7, 0) ON CONFLICT DO NOTHING",
            )
            .bind(task_id.to_vec())
            .bind(batch_id.to_vec())
            .bind(start)
            .bind(agg_param.to_vec())
            .bind(empty.to_vec())
            .bind(vec![0u8; 32])
            .bind(int(first_time))
            .execute(&mut *conn)
            .await?;
            let row = sqlx::query(AssertSqlSafe(lock))
                .bind(task_id.to_vec())
                .bind(batch_id.to_vec())
                .bind(start)
                .fetch_one(conn)
                .await?;
            stored_bucket!(row)
        }))
    }

    /// The task's collected time intervals (`[start, end)`, time-precision units) that
    /// overlap the time units `lo..=hi`.
    async fn collected_intervals(&mut self, lo: u64, hi: u64) -> Result<Vec<(u64, u64)>> {
        let task_id = self.task_id;
        Ok(on_conn!(self.conn.reborrow(), |conn| {
            get_collected_intervals!(conn, task_id, lo, hi)
        }))
    }

    /// Records `reports` (ID, time) as aggregated (the replay record, kept by the garbage
    /// collector until the report's time expires) in multi-row inserts; returns the IDs that
    /// were new.
    async fn record_aggregated(
        &mut self,
        reports: &[(&ReportId, u64)],
    ) -> Result<HashSet<Vec<u8>>> {
        let task_id = self.task_id;
        let mut fresh = HashSet::with_capacity(reports.len());
        for chunk in reports.chunks(MULTI_ROW_CHUNK) {
            let values: Vec<String> = (0..chunk.len())
                .map(|k| format!("($1, ${}, ${})", 2 + 2 * k, 3 + 2 * k))
                .collect();
            let sql = AssertSqlSafe(format!(
                "INSERT INTO aggregated_reports (task_id, report_id, client_time) VALUES {} \
                 ON CONFLICT DO NOTHING RETURNING report_id",
                values.join(", ")
            ));
            let new: Vec<Vec<u8>> = on_conn!(self.conn.reborrow(), |conn| {
                let mut q = sqlx::query_scalar(sql).bind(task_id.to_vec());
                for (id, time) in chunk {
                    q = q.bind(id.as_bytes().to_vec()).bind(int(*time));
                }
                q.fetch_all(conn).await?
            });
            fresh.extend(new);
        }
        Ok(fresh)
    }

    /// Stores a bucket's new share and totals.
    async fn put_bucket(
        &mut self,
        batch_id: &[u8],
        start: i64,
        share: Vec<u8>,
        totals: &BucketTotals,
    ) -> Result<()> {
        let task_id = self.task_id;
        on_conn!(self.conn.reborrow(), |conn| {
            sqlx::query(
                "UPDATE batch_buckets SET aggregate_share = $4, report_count = $5, \
                 checksum = $6, min_time = $7, max_time = $8 \
                 WHERE task_id = $1 AND batch_id = $2 AND bucket_start = $3",
            )
            .bind(task_id.to_vec())
            .bind(batch_id.to_vec())
            .bind(start)
            .bind(share)
            .bind(totals.count)
            .bind(totals.checksum.as_bytes().to_vec())
            .bind(totals.min_time)
            .bind(totals.max_time)
            .execute(conn)
            .await?;
        });
        Ok(())
    }

    /// Sums the batch's buckets.
    pub(super) async fn sum(
        &mut self,
        vdaf: &VdafEngine,
        agg_param: &[u8],
        scope: &BatchScope,
    ) -> Result<BatchAggregate> {
        let (batch_id, start, end) = scope.bounds();
        let sql = AssertSqlSafe(format!(
            "SELECT {BUCKET_COLUMNS} FROM batch_buckets WHERE task_id = $1 AND batch_id = $2 \
             AND bucket_start >= $3 AND bucket_start < $4"
        ));
        let task_id = self.task_id;
        let buckets: Vec<StoredBucket> = on_conn!(self.conn.reborrow(), |conn| {
            let rows = sqlx::query(sql)
                .bind(task_id.to_vec())
                .bind(batch_id)
                .bind(start)
                .bind(end)
                .fetch_all(conn)
                .await?;
            let mut buckets = Vec::with_capacity(rows.len());
            for row in rows {
                buckets.push(stored_bucket!(row));
            }
            buckets
        });
        let mut shares = Vec::new();
        let mut out = BatchAggregate {
            aggregate_share: Vec::new(),
            report_count: 0,
            checksum: BatchChecksum::from_bytes([0; 32]),
            time_range: None,
            any_collected: false,
            agg_param_mismatch: false,
        };
        for bucket in buckets {
            let count = uint(bucket.totals.count);
            out.any_collected |= bucket.collected;
            out.agg_param_mismatch |= bucket.agg_param != agg_param;
            if count == 0 {
                continue;
            }
            shares.push(bucket.share);
            out.report_count += count;
            out.checksum.combine(&bucket.totals.checksum);
            let (lo, hi) = (uint(bucket.totals.min_time), uint(bucket.totals.max_time));
            out.time_range = Some(match out.time_range {
                None => (lo, hi),
                Some((a, b)) => (a.min(lo), b.max(hi)),
            });
        }
        out.aggregate_share = vdaf.merge(agg_param, shares.iter().map(Vec::as_slice))?;
        Ok(out)
    }

    /// Marks every bucket of the batch collected, creating empty ones so that later reports
    /// for those buckets are refused too.
    pub(super) async fn mark_collected(
        &mut self,
        vdaf: &VdafEngine,
        agg_param: &[u8],
        scope: &BatchScope,
    ) -> Result<()> {
        let (batch_id, start, end) = scope.bounds();
        // Buckets nobody reported into yet are created collected (bounded, so a huge query
        // interval cannot make this loop unbounded). A time interval is also recorded whole in
        // `collected_intervals`, which refuses late reports for every unit of it, beyond the
        // bound too, without creating buckets for them.
        let empty = vdaf.empty_aggregate_share(agg_param)?;
        let span = end.saturating_sub(start).min(10_000);
        let task_id = self.task_id;
        on_conn!(self.conn.reborrow(), |conn| {
            sqlx::query(
                "UPDATE batch_buckets SET collected = 1 WHERE task_id = $1 AND batch_id = $2 \
                 AND bucket_start >= $3 AND bucket_start < $4",
            )
            .bind(task_id.to_vec())
            .bind(batch_id.clone())
            .bind(start)
            .bind(end)
            .execute(&mut *conn)
            .await?;
            if batch_id.is_empty() {
                sqlx::query(
                    "INSERT INTO collected_intervals (task_id, batch_id, interval_start, \
                     interval_end) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
                )
                .bind(task_id.to_vec())
                .bind(batch_id.clone())
                .bind(start)
                .bind(end)
                .execute(&mut *conn)
                .await?;
            }
            for t in start..start.saturating_add(span) {
                sqlx::query(
                    "INSERT INTO batch_buckets (task_id, batch_id, bucket_start, agg_param, \
                     aggregate_share, report_count, checksum, min_time, max_time, collected) \
                     VALUES ($1, $2, $3, $4, $5, 0, $6, $3, $3, 1) ON CONFLICT DO NOTHING",
                )
                .bind(task_id.to_vec())
                .bind(batch_id.clone())
                .bind(t)
                .bind(agg_param.to_vec())
                .bind(empty.clone())
                .bind(vec![0u8; 32])
                .execute(&mut *conn)
                .await?;
            }
        });
        Ok(())
    }
}

/// Whether time unit `t` lies in one of the `[start, end)` intervals.
pub(super) fn in_intervals(t: u64, intervals: &[(u64, u64)]) -> bool {
    intervals.iter().any(|&(start, end)| start <= t && t < end)
}

impl Datastore {
    /// Reports aggregated into the buckets this datastore still holds, over every task (the
    /// public statistics page's figure). One row per bucket is read, never one per report;
    /// buckets past their task's retention are gone, and their reports with them.
    pub async fn count_aggregated_reports(&self) -> Result<u64> {
        on_read!(self.db, |conn| {
            let n: i64 = sqlx::query_scalar(
                "SELECT CAST(COALESCE(SUM(report_count), 0) AS BIGINT) FROM batch_buckets",
            )
            .fetch_one(&mut *conn)
            .await?;
            Ok(uint(n))
        })
    }

    /// Sums the batch's buckets; if `mark_collected`, marks them collected in the same
    /// transaction (after checking none was).
    pub async fn aggregate_batch(
        &self,
        task_id: &TaskId,
        vdaf: &VdafEngine,
        agg_param: &[u8],
        scope: &BatchScope,
        mark_collected: bool,
    ) -> Result<BatchAggregate> {
        let tid = task_id.as_bytes().to_vec();
        let (vdaf, agg_param, scope) = (vdaf.clone(), agg_param.to_vec(), scope.clone());
        let lock_task = lock_task_sql(self.dialect());
        on_write!(self.db, |conn| {
            sqlx::query(lock_task)
                .bind(tid.clone())
                .execute(&mut *conn)
                .await?;
            let mut buckets = Buckets::of(conn, &tid);
            let agg = buckets.sum(&vdaf, &agg_param, &scope).await?;
            if mark_collected && !agg.any_collected && !agg.agg_param_mismatch {
                buckets.mark_collected(&vdaf, &agg_param, &scope).await?;
            }
            Ok(agg)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_keys_follow_the_batch_mode() {
        assert_eq!(
            BucketKey::for_report(None, 42),
            BucketKey {
                batch_id: Vec::new(),
                bucket_start: 42
            }
        );
        assert_eq!(
            BucketKey::for_report(Some(&[7; 32]), 42),
            BucketKey {
                batch_id: vec![7; 32],
                bucket_start: 0
            }
        );
    }
}
