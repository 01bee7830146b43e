//! The `client_reports` and `upload_counters` tables: the reports the leader accepted at upload
//! (DAP-18 §4.4.2.2), durable before the client hears 2xx, and per-task counts of why reports
//! were accepted or refused.
//!
//! Which reports of a request are stored is decided by pure functions ([`upload_candidates`],
//! [`upload_outcomes`]) around two statements: a report whose ID exists (or repeats an earlier
//! one of the same request), or whose batch bucket was collected, is refused as a replay.

use super::batch_buckets::{get_collected_intervals, in_intervals};
use super::{Datastore, MULTI_ROW_CHUNK, Result, int, placeholders, uint};
use cairn_dap_messages::{ReportError, ReportId, TaskId};
use cairn_db::{on_read, on_write};
use sqlx::Row;
use std::collections::{BTreeMap, BTreeSet, HashSet};

/// A report as the leader stores it after upload.
#[derive(Debug, Clone)]
pub struct StoredReport {
    /// The report's ID.
    pub report_id: ReportId,
    /// Its time (time-precision units).
    pub time: u64,
    /// Encoded public extensions list.
    pub public_extensions: Vec<u8>,
    /// The public share.
    pub public_share: Vec<u8>,
    /// The leader's decrypted input share payload.
    pub leader_input_share: Vec<u8>,
    /// The helper's encrypted input share, encoded.
    pub helper_encrypted_input_share: Vec<u8>,
}

/// What happened to one report of an upload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum UploadOutcome {
    /// Stored.
    Stored,
    /// Refused for this reason; nothing stored.
    Refused(ReportError),
}

/// The reports of one upload worth inserting: those whose time bucket is not `collected` and
/// that do not repeat an earlier report of the same request.
fn upload_candidates<'r>(
    reports: &'r [StoredReport],
    collected: &HashSet<u64>,
) -> Vec<&'r StoredReport> {
    let mut seen = HashSet::new();
    reports
        .iter()
        .filter(|r| !collected.contains(&r.time) && seen.insert(r.report_id))
        .collect()
}

/// Each report's outcome, in request order, once the insert named the reports that were new
/// (`stored`): a new report counts as stored once; a report of a `collected` time unit is
/// `batch_collected` (DAP-18 §4.4.2.2); anything else — an ID stored before, a later copy in
/// the same request — is a replay.
fn upload_outcomes(
    reports: &[StoredReport],
    collected: &HashSet<u64>,
    mut stored: HashSet<Vec<u8>>,
) -> Vec<UploadOutcome> {
    reports
        .iter()
        .map(|r| {
            if stored.remove(r.report_id.as_bytes().as_slice()) {
                UploadOutcome::Stored
            } else if collected.contains(&r.time) {
                UploadOutcome::Refused(ReportError::BatchCollected)
            } else {
                UploadOutcome::Refused(ReportError::ReportReplayed)
            }
        })
        .collect()
}

/// What the task's upload counters grow by: the reports the caller `refused` before storage
/// (per reason) plus this request's outcomes (`accepted`, or the refusal's name).
fn counter_increments(
    refused: &[(&'static str, u64)],
    outcomes: &[UploadOutcome],
) -> BTreeMap<&'static str, u64> {
    let mut counts: BTreeMap<&'static str, u64> = BTreeMap::new();
    for &(reason, n) in refused {
        if n > 0 {
            *counts.entry(reason).or_default() += n;
        }
    }
    for o in outcomes {
        let reason = match o {
            UploadOutcome::Stored => "accepted",
            UploadOutcome::Refused(e) => e.name(),
        };
        *counts.entry(reason).or_default() += 1;
    }
    counts
}

impl Datastore {
    /// Stores the accepted reports of one upload request in one transaction (durable before
    /// the client hears 2xx). A report whose ID exists (or repeats an earlier one of the same
    /// request), or whose batch bucket was collected, is refused. Multi-row statements: one
    /// collected-bucket query for the request's distinct report times, then inserts of up to
    /// `MULTI_ROW_CHUNK` reports each, whose `RETURNING` names the reports that were new.
    /// The task's upload counters move in the same transaction: `accepted` and
    /// `report_replayed` from these outcomes, plus `refused` (reports the caller turned away
    /// before storage, counted per reason).
    pub async fn put_client_reports(
        &self,
        task_id: &TaskId,
        reports: &[StoredReport],
        refused: &[(&'static str, u64)],
    ) -> Result<Vec<UploadOutcome>> {
        let tid = task_id.as_bytes().to_vec();
        let times: Vec<u64> = reports
            .iter()
            .map(|r| r.time)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let (reports, refused) = (reports.to_vec(), refused.to_vec());
        on_write!(self.db, |conn| {
            let mut collected = HashSet::new();
            for chunk in times.chunks(MULTI_ROW_CHUNK) {
                let sql = format!(
                    "SELECT bucket_start FROM batch_buckets WHERE task_id = $1 AND batch_id = $2 \
                     AND collected = 1 AND bucket_start IN ({})",
                    placeholders(3, chunk.len())
                );
                let mut q = sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(sql))
                    .bind(tid.clone())
                    .bind(Vec::<u8>::new());
                for t in chunk {
                    q = q.bind(int(*t));
                }
                collected.extend(q.fetch_all(&mut *conn).await?.into_iter().map(uint));
            }
            // Every unit of a collected interval, with or without a bucket.
            if let (Some(&lo), Some(&hi)) = (times.first(), times.last()) {
                let intervals = get_collected_intervals!(&mut *conn, tid, lo, hi);
                collected.extend(times.iter().filter(|&&t| in_intervals(t, &intervals)));
            }
            let candidates = upload_candidates(&reports, &collected);
            let mut stored = HashSet::new();
            for chunk in candidates.chunks(MULTI_ROW_CHUNK) {
                let rows: Vec<String> = (0..chunk.len())
                    .map(|k| format!("($1, {}, 'start')", placeholders(2 + k * 6, 6)))
                    .collect();
                let sql = format!(
                    "INSERT INTO client_reports (task_id, report_id, client_time, \
                     public_extensions, public_share, leader_input_share, \
                     helper_encrypted_input_share, state) VALUES {} \
                     ON CONFLICT DO NOTHING RETURNING report_id",
                    rows.join(", ")
                );
                let mut q =
                    sqlx::query_scalar::<_, Vec<u8>>(sqlx::AssertSqlSafe(sql)).bind(tid.clone());
                for r in chunk {
                    q = q
                        .bind(r.report_id.as_bytes().to_vec())
                        .bind(int(r.time))
                        .bind(r.public_extensions.clone())
                        .bind(r.public_share.clone())
                        .bind(r.leader_input_share.clone())
                        .bind(r.helper_encrypted_input_share.clone());
                }
                stored.extend(q.fetch_all(&mut *conn).await?);
            }
            let out = upload_outcomes(&reports, &collected, stored);
            for (reason, n) in counter_increments(&refused, &out) {
                sqlx::query(
                    "INSERT INTO upload_counters (task_id, reason, count) VALUES ($1, $2, $3) \
                     ON CONFLICT (task_id, reason) DO UPDATE SET count = upload_counters.count + $3",
                )
                .bind(tid.clone())
                .bind(reason.to_string())
                .bind(int(n))
                .execute(&mut *conn)
                .await?;
            }
            Ok(out)
        })
    }

    /// The task's upload counters, by reason.
    pub async fn get_upload_counters(&self, task_id: &TaskId) -> Result<Vec<(String, u64)>> {
        on_read!(self.db, |conn| {
            let rows = sqlx::query(
                "SELECT reason, count FROM upload_counters WHERE task_id = $1 ORDER BY reason",
            )
            .bind(task_id.as_bytes().to_vec())
            .fetch_all(&mut *conn)
            .await?;
            rows.into_iter()
                .map(|r| Ok((r.try_get(0)?, uint(r.try_get(1)?))))
                .collect()
        })
    }

    /// How many of the task's stored reports are in each state (`start`: waiting for an
    /// aggregation job, `aggregating`, `aggregated`, `failed`), for status pages.
    pub async fn count_client_reports_by_state(
        &self,
        task_id: &TaskId,
    ) -> Result<Vec<(String, u64)>> {
        on_read!(self.db, |conn| {
            let rows = sqlx::query(
                "SELECT state, COUNT(*) FROM client_reports WHERE task_id = $1 \
                 GROUP BY state ORDER BY state",
            )
            .bind(task_id.as_bytes().to_vec())
            .fetch_all(&mut *conn)
            .await?;
            rows.into_iter()
                .map(|r| Ok((r.try_get(0)?, uint(r.try_get(1)?))))
                .collect()
        })
    }

    /// How many reports the leader holds for the task.
    pub async fn count_client_reports(&self, task_id: &TaskId) -> Result<u64> {
        on_read!(self.db, |conn| {
            let n: i64 =
                sqlx::query_scalar("SELECT COUNT(*) FROM client_reports WHERE task_id = $1")
                    .bind(task_id.as_bytes().to_vec())
                    .fetch_one(&mut *conn)
                    .await?;
            Ok(uint(n))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(id: u8, time: u64) -> StoredReport {
        StoredReport {
            report_id: ReportId::from_bytes([id; 16]),
            time,
            public_extensions: Vec::new(),
            public_share: Vec::new(),
            leader_input_share: Vec::new(),
            helper_encrypted_input_share: Vec::new(),
        }
    }

    fn ids(reports: &[&StoredReport]) -> Vec<u8> {
        reports.iter().map(|r| r.report_id.as_bytes()[0]).collect()
    }

    #[test]
    fn candidates_skip_collected_buckets_and_repeats_within_the_request() {
        let reports = [report(1, 10), report(2, 11), report(1, 10), report(3, 12)];
        assert_eq!(
            ids(&upload_candidates(&reports, &HashSet::new())),
            [1, 2, 3]
        );
        assert_eq!(
            ids(&upload_candidates(&reports, &HashSet::from([11]))),
            [1, 3]
        );
        assert!(upload_candidates(&reports, &HashSet::from([10, 11, 12])).is_empty());
        assert!(upload_candidates(&[], &HashSet::new()).is_empty());
    }

    #[test]
    fn a_report_is_stored_once_and_everything_else_is_a_replay() {
        let reports = [report(1, 10), report(2, 10), report(1, 10)];
        // Report 2 was known already (the insert did not return it); report 1 was new.
        let stored = HashSet::from([vec![1u8; 16]]);
        let replayed = UploadOutcome::Refused(ReportError::ReportReplayed);
        assert_eq!(
            upload_outcomes(&reports, &HashSet::new(), stored.clone()),
            [UploadOutcome::Stored, replayed, replayed]
        );
        assert_eq!(
            upload_outcomes(&reports, &HashSet::new(), HashSet::new()),
            [replayed; 3]
        );
        // Reports of a collected time unit are refused as such, not as replays.
        let collected = UploadOutcome::Refused(ReportError::BatchCollected);
        let mixed = [report(1, 10), report(3, 11)];
        assert_eq!(
            upload_outcomes(&mixed, &HashSet::from([11]), stored),
            [UploadOutcome::Stored, collected]
        );
    }

    #[test]
    fn counters_add_refusals_before_storage_to_the_outcomes() {
        let replayed = UploadOutcome::Refused(ReportError::ReportReplayed);
        let outcomes = [UploadOutcome::Stored, replayed, UploadOutcome::Stored];
        let refused = [("report_too_early", 2), ("hpke_decrypt_error", 0)];
        let counts = counter_increments(&refused, &outcomes);
        assert_eq!(
            counts.into_iter().collect::<Vec<_>>(),
            [
                ("accepted", 2),
                (ReportError::ReportReplayed.name(), 1),
                ("report_too_early", 2)
            ]
        );
        assert!(counter_increments(&[], &[]).is_empty());
    }
}
