//! Upload rate limits (issue 18): GCRA token buckets (from `cairn-ratelimit`, the CA's limiter)
//! of reports per task and per source, where a source is an IPv4 address or an IPv6 prefix (a
//! /64 by default: one subscriber's network). A request whose reports do not fit is refused
//! whole with 429 and a `Retry-After` (the client retries; nothing is half-stored), before
//! anything is decrypted. Both buckets are spent together or not at all.

use cairn_dap_messages::TaskId;
use cairn_ratelimit::{IpPrefix, Limit, MemoryStore, RateLimitStore, Tat, TatUpdate, decide};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::IpAddr;
use time::{Duration, OffsetDateTime};

/// Upload limits, in reports per second with a burst allowance; 0 disables a limit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UploadLimits {
    /// Sustained reports per second accepted for one task (0: unlimited).
    pub task_reports_per_sec: u32,
    /// Reports one task may take at once above the sustained rate.
    pub task_burst: u32,
    /// Sustained reports per second accepted from one source (0: unlimited).
    pub source_reports_per_sec: u32,
    /// Reports one source may send at once above the sustained rate.
    pub source_burst: u32,
    /// IPv6 sources sharing this many leading bits share one bucket (IPv4 sources are counted
    /// per address).
    pub source_ipv6_prefix_len: u8,
    /// Per-task limits replacing `task_reports_per_sec` and `task_burst`, by task ID.
    pub tasks: BTreeMap<TaskId, TaskUploadLimit>,
}

/// One task's own upload limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskUploadLimit {
    /// Sustained reports per second (0: unlimited).
    pub reports_per_sec: u32,
    /// Reports the task may take at once above the sustained rate.
    pub burst: u32,
}

impl Default for UploadLimits {
    fn default() -> Self {
        UploadLimits {
            task_reports_per_sec: 0,
            task_burst: 10_000,
            source_reports_per_sec: 0,
            source_burst: 1_000,
            source_ipv6_prefix_len: 64,
            tasks: BTreeMap::new(),
        }
    }
}

impl UploadLimits {
    /// The bucket of `task`, or `None` when it is unlimited.
    fn task_limit(&self, task: &TaskId) -> Option<Limit> {
        let (rate, burst) = match self.tasks.get(task) {
            Some(t) => (t.reports_per_sec, t.burst),
            None => (self.task_reports_per_sec, self.task_burst),
        };
        limit(rate, burst)
    }

    /// The bucket of every source, or `None` when sources are unlimited.
    fn source_limit(&self) -> Option<Limit> {
        limit(self.source_reports_per_sec, self.source_burst)
    }

    /// The bucket key of a source address: the address, or its IPv6 prefix.
    fn source_key(&self, ip: IpAddr) -> String {
        let prefix = match ip {
            IpAddr::V4(_) => IpPrefix::new(ip, 32),
            IpAddr::V6(_) => IpPrefix::new(ip, self.source_ipv6_prefix_len),
        };
        format!("dap-upload-source:{}/{}", prefix.network(), prefix.len())
    }
}

fn limit(rate: u32, burst: u32) -> Option<Limit> {
    (rate > 0).then(|| Limit {
        burst: u64::from(burst.max(1)),
        count: u64::from(rate),
        period: Duration::SECOND,
    })
}

/// How often a spend is retried when another request changed a bucket in between.
const MAX_ATTEMPTS: usize = 8;

/// The buckets of every task and source seen recently (bounded, expiring: a full bucket is
/// the same as none).
#[derive(Debug)]
pub(super) struct UploadLimiter {
    store: Box<dyn RateLimitStore>,
}

impl Default for UploadLimiter {
    fn default() -> Self {
        UploadLimiter {
            store: Box::new(MemoryStore::with_max_keys(100_000)),
        }
    }
}

impl UploadLimiter {
    /// Admits `n` reports for `task` from `source` at `now`, or says how many seconds to wait.
    /// A request larger than a bucket is measured against a full bucket (it waits for one,
    /// not forever). Nothing is spent unless every bucket admits the request.
    pub(super) async fn admit(
        &self,
        limits: &UploadLimits,
        task: &TaskId,
        source: Option<IpAddr>,
        n: u64,
        now: OffsetDateTime,
    ) -> Result<(), u64> {
        let mut buckets: Vec<(String, Limit)> = Vec::with_capacity(2);
        if let (Some(ip), Some(l)) = (source, limits.source_limit()) {
            buckets.push((limits.source_key(ip), l));
        }
        if let Some(l) = limits.task_limit(task) {
            buckets.push((format!("dap-upload-task:{task}"), l));
        }
        if buckets.is_empty() {
            return Ok(());
        }
        let keys: Vec<String> = buckets.iter().map(|(k, _)| k.clone()).collect();
        for _ in 0..MAX_ATTEMPTS {
            // A store failure (only possible for a remote store) fails open: the limit is a
            // protection, not a reason to lose reports.
            let Ok(tats) = self.store.get_tats(&keys).await else {
                return Ok(());
            };
            let mut wait = Duration::ZERO;
            let mut updates = Vec::with_capacity(buckets.len());
            for ((key, l), tat) in buckets.iter().zip(tats) {
                let d = decide(now, tat, l, n.min(l.burst));
                if d.allowed {
                    updates.push(update(now, key, tat, d.new_tat));
                } else {
                    wait = wait.max(d.retry_after);
                }
            }
            if wait > Duration::ZERO {
                return Err(whole_secs(wait));
            }
            match self.store.compare_and_set_tats(&updates).await {
                Ok(true) | Err(_) => return Ok(()),
                Ok(false) => {}
            }
        }
        // Constant contention on the same bucket: the caller is busy enough to wait a second.
        Err(1)
    }
}

fn update(now: OffsetDateTime, key: &str, expected: Option<Tat>, new: Tat) -> TatUpdate {
    TatUpdate {
        key: key.to_string(),
        expected,
        new,
        ttl: (new.to_datetime() - now)
            .try_into()
            .unwrap_or(std::time::Duration::ZERO)
            .max(std::time::Duration::from_millis(1)),
    }
}

/// `Retry-After` seconds: rounded up, at least one.
fn whole_secs(d: Duration) -> u64 {
    let nanos = d.whole_nanoseconds().max(1);
    u64::try_from((nanos + 999_999_999) / 1_000_000_000).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: i64) -> OffsetDateTime {
        OffsetDateTime::UNIX_EPOCH + Duration::days(20_000) + Duration::milliseconds(ms)
    }

    #[tokio::test]
    async fn a_task_bucket_admits_its_burst_then_its_rate() {
        let limiter = UploadLimiter::default();
        let limits = UploadLimits {
            task_reports_per_sec: 5,
            task_burst: 10,
            ..Default::default()
        };
        let t = TaskId::from_bytes([1; 32]);
        assert_eq!(limiter.admit(&limits, &t, None, 10, at(0)).await, Ok(()));
        assert_eq!(limiter.admit(&limits, &t, None, 1, at(0)).await, Err(1));
        // Half a second refills 2.5 reports.
        assert_eq!(limiter.admit(&limits, &t, None, 2, at(500)).await, Ok(()));
        assert_eq!(limiter.admit(&limits, &t, None, 5, at(500)).await, Err(1));
        // Never above the burst, however long the wait.
        let later = 3_600_000;
        assert_eq!(
            limiter.admit(&limits, &t, None, 10, at(later)).await,
            Ok(())
        );
        assert!(
            limiter
                .admit(&limits, &t, None, 10, at(later))
                .await
                .is_err()
        );
        // A request larger than the burst waits for a full bucket (2 s at 5/s), not forever.
        assert_eq!(
            limiter.admit(&limits, &t, None, 1000, at(later)).await,
            Err(2)
        );
    }

    #[tokio::test]
    async fn nothing_is_spent_when_one_bucket_refuses() {
        let limiter = UploadLimiter::default();
        let limits = UploadLimits {
            task_reports_per_sec: 1,
            task_burst: 3,
            source_reports_per_sec: 1,
            source_burst: 5,
            ..Default::default()
        };
        let t = TaskId::from_bytes([1; 32]);
        let ip = |n| Some(IpAddr::from([192, 0, 2, n]));
        assert!(limiter.admit(&limits, &t, ip(1), 3, at(0)).await.is_ok());
        // The task refuses: the source keeps its two tokens for another task.
        assert!(limiter.admit(&limits, &t, ip(1), 2, at(0)).await.is_err());
        let other = TaskId::from_bytes([2; 32]);
        assert!(
            limiter
                .admit(&limits, &other, ip(1), 2, at(0))
                .await
                .is_ok()
        );
        assert!(
            limiter
                .admit(&limits, &other, ip(1), 1, at(0))
                .await
                .is_err()
        );
    }

    #[test]
    fn ipv6_sources_are_grouped_by_prefix() {
        let limits = UploadLimits::default();
        let key = |s: &str| limits.source_key(s.parse().unwrap());
        assert_eq!(key("2001:db8::1"), key("2001:db8::ffff:1"));
        assert_ne!(key("2001:db8::1"), key("2001:db8:0:1::1"));
        assert_ne!(key("192.0.2.1"), key("192.0.2.2"));
        assert_eq!(key("2001:db8::1"), "dap-upload-source:2001:db8::/64");
    }

    #[test]
    fn a_task_override_replaces_the_default() {
        let t = TaskId::from_bytes([1; 32]);
        let limits: UploadLimits = toml::from_str(&format!(
            "task_reports_per_sec = 10\n[tasks.{t}]\nreports_per_sec = 0\nburst = 1\n"
        ))
        .unwrap();
        assert_eq!(limits.task_limit(&t), None);
        assert_eq!(
            limits.task_limit(&TaskId::from_bytes([2; 32])),
            Some(Limit {
                burst: 10_000,
                count: 10,
                period: Duration::SECOND
            })
        );
    }
}
