//! Upload rate limits (issue 18): token buckets of reports per task and per source address,
//! refilled continuously. A request whose reports do not fit is refused whole with 429 and a
//! `Retry-After` (the client retries; nothing is half-stored), before anything is decrypted.

use cairn_dap_messages::TaskId;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Instant;

/// Upload limits, in reports per second with a burst allowance; 0 disables a limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UploadLimits {
    /// Sustained reports per second accepted for one task (0: unlimited).
    pub task_reports_per_sec: u32,
    /// Reports one task may take at once above the sustained rate.
    pub task_burst: u32,
    /// Sustained reports per second accepted from one source address (0: unlimited).
    pub source_reports_per_sec: u32,
    /// Reports one source may send at once above the sustained rate.
    pub source_burst: u32,
}

impl Default for UploadLimits {
    fn default() -> Self {
        UploadLimits {
            task_reports_per_sec: 0,
            task_burst: 10_000,
            source_reports_per_sec: 0,
            source_burst: 1_000,
        }
    }
}

/// One token bucket.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Takes `n` tokens from `bucket` (created full) refilled at `rate` per second up to `burst`,
/// at `now`; on refusal, the seconds until they would be there.
fn take(bucket: &mut Bucket, n: u64, rate: u32, burst: u32, now: Instant) -> Result<(), u64> {
    let capacity = f64::from(burst.max(1));
    let rate = f64::from(rate);
    let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
    bucket.tokens = (bucket.tokens + elapsed * rate).min(capacity);
    bucket.at = now;
    // A request larger than the burst could never fit: it is measured against a full bucket.
    #[allow(clippy::cast_precision_loss)] // report counts are far below 2^52
    let need = (n as f64).min(capacity);
    if bucket.tokens >= need {
        bucket.tokens -= need;
        Ok(())
    } else {
        let wait = ((need - bucket.tokens) / rate).ceil();
        // Bounded by burst / rate, so the cast is exact enough.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        Err((wait as u64).max(1))
    }
}

/// The buckets of every task and source seen recently.
#[derive(Debug, Default)]
pub(super) struct UploadLimiter {
    tasks: Mutex<HashMap<TaskId, Bucket>>,
    sources: Mutex<HashMap<IpAddr, Bucket>>,
}

/// Most sources tracked; beyond it, buckets that have refilled completely are dropped.
const MAX_SOURCES: usize = 100_000;

impl UploadLimiter {
    /// Admits `n` reports for `task` from `source` at `now`, or says how many seconds to wait.
    /// Tokens are taken from the source first, then the task; a refusal by the task does not
    /// give the source its tokens back (a busy task is not a reason to retry sooner).
    pub(super) fn admit(
        &self,
        limits: &UploadLimits,
        task: &TaskId,
        source: Option<IpAddr>,
        n: u64,
        now: Instant,
    ) -> Result<(), u64> {
        if let (Some(ip), true) = (source, limits.source_reports_per_sec > 0) {
            let mut sources = self.sources.lock().unwrap_or_else(|e| e.into_inner());
            if sources.len() >= MAX_SOURCES {
                let full = f64::from(limits.source_burst.max(1));
                let rate = f64::from(limits.source_reports_per_sec);
                sources.retain(|_, b| {
                    b.tokens + now.saturating_duration_since(b.at).as_secs_f64() * rate < full
                });
            }
            let bucket = sources.entry(ip).or_insert(Bucket {
                tokens: f64::from(limits.source_burst.max(1)),
                at: now,
            });
            take(
                bucket,
                n,
                limits.source_reports_per_sec,
                limits.source_burst,
                now,
            )?;
        }
        if limits.task_reports_per_sec > 0 {
            let mut tasks = self.tasks.lock().unwrap_or_else(|e| e.into_inner());
            let bucket = tasks.entry(*task).or_insert(Bucket {
                tokens: f64::from(limits.task_burst.max(1)),
                at: now,
            });
            take(
                bucket,
                n,
                limits.task_reports_per_sec,
                limits.task_burst,
                now,
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_bucket_admits_its_burst_then_its_rate() {
        let t0 = Instant::now();
        let mut b = Bucket {
            tokens: 10.0,
            at: t0,
        };
        assert_eq!(take(&mut b, 10, 5, 10, t0), Ok(()));
        assert_eq!(take(&mut b, 1, 5, 10, t0), Err(1));
        // Half a second refills 2.5 reports.
        let t1 = t0 + Duration::from_millis(500);
        assert_eq!(take(&mut b, 2, 5, 10, t1), Ok(()));
        assert_eq!(take(&mut b, 5, 5, 10, t1), Err(1));
        // Never above the burst, however long the wait.
        let t2 = t1 + Duration::from_secs(3600);
        assert_eq!(take(&mut b, 10, 5, 10, t2), Ok(()));
        assert!(take(&mut b, 10, 5, 10, t2).is_err());
        // A request larger than the burst waits for a full bucket, not forever.
        assert_eq!(take(&mut b, 1000, 5, 10, t2), Err(2));
    }

    #[test]
    fn tasks_and_sources_are_limited_separately() {
        let limiter = UploadLimiter::default();
        let limits = UploadLimits {
            task_reports_per_sec: 1,
            task_burst: 5,
            source_reports_per_sec: 1,
            source_burst: 3,
        };
        let (a, b) = (TaskId::from_bytes([1; 32]), TaskId::from_bytes([2; 32]));
        let ip = |n| Some(IpAddr::from([192, 0, 2, n]));
        let now = Instant::now();
        assert!(limiter.admit(&limits, &a, ip(1), 3, now).is_ok());
        assert!(
            limiter.admit(&limits, &a, ip(1), 1, now).is_err(),
            "source spent"
        );
        assert!(limiter.admit(&limits, &a, ip(2), 2, now).is_ok());
        assert!(
            limiter.admit(&limits, &a, ip(3), 1, now).is_err(),
            "task spent"
        );
        assert!(
            limiter.admit(&limits, &b, ip(4), 3, now).is_ok(),
            "another task"
        );
        assert!(
            limiter.admit(&limits, &b, None, 2, now).is_ok(),
            "no source known"
        );
        let off = UploadLimits::default();
        assert!(limiter.admit(&off, &a, ip(1), 1_000_000, now).is_ok());
    }
}
