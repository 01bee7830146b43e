//! What committing an aggregation job's output shares decides per report, as pure functions
//! (DAP-18 §4.5.4.3 batch buckets, §2.3 replay protection): which outcomes are candidates and
//! in which bucket, which buckets refuse them, and how a bucket's totals move for the reports
//! the replay record took as new. The statements that read and write what these decide are
//! [`Buckets::commit_output_shares`](super::batch_buckets::Buckets::commit_output_shares).

use super::batch_buckets::{BucketKey, report_checksum};
use super::int;
use cairn_dap_messages::{BatchChecksum, ReportError, ReportId};
use std::collections::{BTreeMap, HashSet};

/// One report's outcome in an aggregation job, ready to commit.
#[derive(Debug, Clone)]
pub struct ReportOutcome {
    /// The report.
    pub report_id: ReportId,
    /// Its time.
    pub time: u64,
    /// Its bucket.
    pub bucket: BucketKey,
    /// The output share, or why the report was rejected.
    pub result: Result<Vec<u8>, ReportError>,
}

/// Per-report result of committing a job: `Ok` if its output share was accumulated.
pub(super) type Committed = Result<(), ReportError>;

/// A job's outcomes before storage.
#[derive(Debug, PartialEq)]
pub(super) struct Candidates {
    /// Each outcome's result so far, in order.
    pub(super) results: Vec<Committed>,
    /// The outcomes still to commit (by index), grouped by bucket `(batch_id, bucket_start)`
    /// in key order, so that concurrent drivers lock buckets in the same order.
    pub(super) by_bucket: BTreeMap<(Vec<u8>, u64), Vec<usize>>,
}

/// Sorts a job's outcomes into those already rejected and the candidates per bucket. A report
/// ID that appears twice in one job is a replay the second time.
pub(super) fn candidates(outcomes: &[ReportOutcome]) -> Candidates {
    let mut results: Vec<Committed> = outcomes
        .iter()
        .map(|o| o.result.as_ref().map(|_| ()).map_err(|e| *e))
        .collect();
    let mut by_bucket: BTreeMap<(Vec<u8>, u64), Vec<usize>> = BTreeMap::new();
    let mut seen = HashSet::new();
    for (i, o) in outcomes.iter().enumerate() {
        if o.result.is_err() {
            continue;
        }
        if !seen.insert(*o.report_id.as_bytes()) {
            results[i] = Err(ReportError::ReportReplayed);
            continue;
        }
        by_bucket
            .entry((o.bucket.batch_id.clone(), o.bucket.bucket_start))
            .or_default()
            .push(i);
    }
    Candidates { results, by_bucket }
}

/// Why a bucket takes no reports of this job, if it does not: it was collected
/// (`batch_collected`), or it accumulates shares of another aggregation parameter.
pub(super) fn bucket_refusal(
    collected: bool,
    bucket_param: &[u8],
    agg_param: &[u8],
) -> Option<ReportError> {
    if collected {
        Some(ReportError::BatchCollected)
    } else if bucket_param != agg_param {
        Some(ReportError::InvalidMessage)
    } else {
        None
    }
}

/// A bucket's stored totals, moved forward by the reports of one job.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct BucketTotals {
    pub(super) count: i64,
    pub(super) checksum: BatchChecksum,
    pub(super) min_time: i64,
    pub(super) max_time: i64,
}

impl BucketTotals {
    /// Adds the bucket's candidates (`idx` into `outcomes`) that the replay record took as
    /// new (`fresh`); the others are refused as replays in `results`. Returns the output
    /// shares to accumulate.
    pub(super) fn add_fresh<'o>(
        &mut self,
        idx: &[usize],
        outcomes: &'o [ReportOutcome],
        fresh: &HashSet<Vec<u8>>,
        results: &mut [Committed],
    ) -> Vec<&'o [u8]> {
        let mut shares = Vec::with_capacity(idx.len());
        for &i in idx {
            let o = &outcomes[i];
            if !fresh.contains(o.report_id.as_bytes().as_slice()) {
                results[i] = Err(ReportError::ReportReplayed);
                continue;
            }
            if let Ok(out) = &o.result {
                shares.push(out.as_slice());
            }
            self.checksum.combine(&report_checksum(&o.report_id));
            let t = int(o.time);
            (self.min_time, self.max_time) = if self.count == 0 {
                (t, t)
            } else {
                (self.min_time.min(t), self.max_time.max(t))
            };
            self.count = self.count.saturating_add(1);
        }
        shares
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(id: u8, time: u64, result: Result<Vec<u8>, ReportError>) -> ReportOutcome {
        ReportOutcome {
            report_id: ReportId::from_bytes([id; 16]),
            time,
            bucket: BucketKey::for_report(None, time),
            result,
        }
    }

    #[test]
    fn candidates_group_by_bucket_and_refuse_repeats_within_a_job() {
        let outcomes = [
            outcome(1, 20, Ok(vec![1])),
            outcome(2, 10, Err(ReportError::VdafVerifyError)),
            outcome(3, 10, Ok(vec![3])),
            outcome(1, 20, Ok(vec![1])),
            outcome(4, 20, Ok(vec![4])),
        ];
        let c = candidates(&outcomes);
        assert_eq!(
            c.results,
            [
                Ok(()),
                Err(ReportError::VdafVerifyError),
                Ok(()),
                Err(ReportError::ReportReplayed),
                Ok(())
            ]
        );
        // Key order (bucket 10 before 20), rejected and repeated reports left out.
        assert_eq!(
            c.by_bucket.into_iter().collect::<Vec<_>>(),
            [((Vec::new(), 10), vec![2]), ((Vec::new(), 20), vec![0, 4])]
        );
        assert_eq!(
            candidates(&[]),
            Candidates {
                results: Vec::new(),
                by_bucket: BTreeMap::new()
            }
        );
    }

    #[test]
    fn collected_buckets_and_other_aggregation_parameters_refuse_reports() {
        assert_eq!(bucket_refusal(false, b"p", b"p"), None);
        assert_eq!(
            bucket_refusal(true, b"p", b"p"),
            Some(ReportError::BatchCollected)
        );
        assert_eq!(
            bucket_refusal(false, b"q", b"p"),
            Some(ReportError::InvalidMessage)
        );
        // A collected bucket is reported as collected whatever its parameter.
        assert_eq!(
            bucket_refusal(true, b"q", b"p"),
            Some(ReportError::BatchCollected)
        );
    }

    #[test]
    fn only_fresh_reports_move_a_bucket_forward() {
        let outcomes = [
            outcome(1, 15, Ok(vec![1])),
            outcome(2, 12, Ok(vec![2])),
            outcome(3, 18, Ok(vec![3])),
        ];
        let fresh = HashSet::from([vec![1u8; 16], vec![3u8; 16]]);
        let mut results = vec![Ok(()); 3];
        let mut totals = BucketTotals {
            count: 0,
            checksum: BatchChecksum::from_bytes([0; 32]),
            min_time: 99,
            max_time: 99,
        };
        let shares = totals.add_fresh(&[0, 1, 2], &outcomes, &fresh, &mut results);
        assert_eq!(shares, [&[1u8][..], &[3u8][..]]);
        assert_eq!(results, [Ok(()), Err(ReportError::ReportReplayed), Ok(())]);
        let mut checksum = report_checksum(&outcomes[0].report_id);
        checksum.combine(&report_checksum(&outcomes[2].report_id));
        // An empty bucket's stored times are placeholders: the first report sets the range.
        assert_eq!(
            totals,
            BucketTotals {
                count: 2,
                checksum,
                min_time: 15,
                max_time: 18
            }
        );
        // A bucket with reports widens its range; nothing fresh leaves it as it was.
        let before = totals.clone();
        assert!(
            totals
                .add_fresh(&[1], &outcomes, &HashSet::new(), &mut results)
                .is_empty()
        );
        assert_eq!(totals, before);
        let fresh = HashSet::from([vec![2u8; 16]]);
        totals.add_fresh(&[1], &outcomes, &fresh, &mut results);
        assert_eq!(
            (totals.count, totals.min_time, totals.max_time),
            (3, 12, 18)
        );
    }
}
