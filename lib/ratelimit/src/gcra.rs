//! The generic cell rate algorithm (GCRA): a token bucket whose whole state is one timestamp.
//!
//! A limit lets `burst` requests through at once and refills one token every emission interval
//! (`period / count`). The state of a bucket is its theoretical arrival time (TAT): the moment the
//! bucket will be full again. No stored TAT, or a TAT in the past, means a full bucket. Everything
//! here is pure arithmetic on integers; the caller brings `now` and the stored TAT.

use time::{Duration, OffsetDateTime};

/// A theoretical arrival time: nanoseconds since the Unix epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Tat(pub i64);

impl Tat {
    /// The TAT at `at` (saturating outside the years 1678–2262).
    pub fn from_datetime(at: OffsetDateTime) -> Self {
        let nanos = at.unix_timestamp_nanos();
        Self(nanos.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64)
    }

    /// The TAT as a point in time.
    pub fn to_datetime(self) -> OffsetDateTime {
        OffsetDateTime::UNIX_EPOCH + Duration::nanoseconds(self.0)
    }
}

/// The parameters of one bucket: capacity and refill rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    /// The capacity: how many requests may pass at once when the bucket is full.
    pub burst: u64,
    /// Tokens added per `period`.
    pub count: u64,
    /// The refill period.
    pub period: Duration,
}

impl Limit {
    /// A limit of `count` per `period` with a burst of the same size (the common case).
    pub fn new(count: u64, period: Duration) -> Self {
        Self {
            burst: count,
            count,
            period,
        }
    }

    /// The time one token takes to come back, in nanoseconds (at least 1).
    pub fn emission_interval_nanos(&self) -> i128 {
        let period = self.period.whole_nanoseconds().max(0);
        (period / i128::from(self.count.max(1))).max(1)
    }

    /// The time one token takes to come back.
    pub fn emission_interval(&self) -> Duration {
        nanos_to_duration(self.emission_interval_nanos())
    }

    /// How far ahead of `now` a TAT may be and still admit a request of cost zero: `burst`
    /// emission intervals.
    fn burst_offset_nanos(&self) -> i128 {
        self.emission_interval_nanos() * i128::from(self.burst)
    }
}

/// What [`decide`] concluded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// Whether the request may proceed.
    pub allowed: bool,
    /// The TAT to store if the request proceeds (the unchanged TAT when it does not).
    pub new_tat: Tat,
    /// How long until a request of the same cost would be allowed; zero when allowed. When the
    /// cost exceeds the capacity it can never be allowed: this is then the limit's period.
    pub retry_after: Duration,
    /// Tokens left after this request (or left now, when it was refused).
    pub remaining: u64,
}

/// Decides whether a request costing `cost` tokens fits the bucket whose stored TAT is `tat`.
///
/// A stored TAT further ahead than a full bucket's worth (possible only if the clock went
/// backwards since it was written) is treated as an empty bucket, so a clock step back costs at
/// most one refill period and never grants more than the capacity.
pub fn decide(now: OffsetDateTime, tat: Option<Tat>, limit: &Limit, cost: u64) -> Decision {
    let now = i128::from(Tat::from_datetime(now).0);
    let interval = limit.emission_interval_nanos();
    let offset = limit.burst_offset_nanos();
    let current = effective_tat(now, tat, offset);
    let remaining_now = tokens(offset - (current - now), interval);
    if cost > limit.burst {
        return Decision {
            allowed: false,
            new_tat: to_tat(current),
            retry_after: limit.period,
            remaining: remaining_now,
        };
    }
    let new_tat = current + interval * i128::from(cost);
    let allow_at = new_tat - offset;
    if allow_at > now {
        return Decision {
            allowed: false,
            new_tat: to_tat(current),
            retry_after: nanos_to_duration(allow_at - now),
            remaining: remaining_now,
        };
    }
    Decision {
        allowed: true,
        new_tat: to_tat(new_tat),
        retry_after: Duration::ZERO,
        remaining: tokens(offset - (new_tat - now), interval),
    }
}

/// Gives `cost` tokens back to a bucket, for a request that spent them and then failed for the
/// server's own reasons. Returns the TAT to store, or `None` when the bucket is already full
/// (nothing to give back). A bucket never refills beyond full.
pub fn refund(now: OffsetDateTime, tat: Option<Tat>, limit: &Limit, cost: u64) -> Option<Tat> {
    let now = i128::from(Tat::from_datetime(now).0);
    let stored = i128::from(tat?.0);
    if stored <= now {
        return None;
    }
    let current = stored.min(now + limit.burst_offset_nanos());
    let back = current - limit.emission_interval_nanos() * i128::from(cost);
    Some(to_tat(back.max(now)))
}

/// The TAT that counts at `now`: never in the past, never more than a full burst ahead.
fn effective_tat(now: i128, tat: Option<Tat>, offset: i128) -> i128 {
    match tat {
        Some(t) => i128::from(t.0).clamp(now, now + offset),
        None => now,
    }
}

fn tokens(slack: i128, interval: i128) -> u64 {
    u64::try_from((slack / interval).max(0)).unwrap_or(u64::MAX)
}

fn to_tat(nanos: i128) -> Tat {
    Tat(nanos.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64)
}

fn nanos_to_duration(nanos: i128) -> Duration {
    let clamped = nanos.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64;
    Duration::nanoseconds(clamped)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const T0: OffsetDateTime = datetime!(2026-01-15 00:00 UTC);

    fn ten_per_3h() -> Limit {
        Limit::new(10, Duration::hours(3))
    }

    /// Spends `cost` repeatedly at `now`, threading the TAT; returns how many passed.
    fn spend_all(now: OffsetDateTime, tat: &mut Option<Tat>, limit: &Limit, cost: u64) -> u64 {
        let mut passed = 0;
        loop {
            let d = decide(now, *tat, limit, cost);
            if !d.allowed {
                return passed;
            }
            *tat = Some(d.new_tat);
            passed += 1;
        }
    }

    #[test]
    fn a_full_bucket_allows_the_burst_then_denies() {
        let limit = ten_per_3h();
        let first = decide(T0, None, &limit, 1);
        assert!(first.allowed);
        assert_eq!(first.remaining, 9);
        let mut tat = Some(first.new_tat);
        assert_eq!(spend_all(T0, &mut tat, &limit, 1), 9);
        let denied = decide(T0, tat, &limit, 1);
        assert!(!denied.allowed);
        assert_eq!(denied.remaining, 0);
        assert_eq!(denied.retry_after, Duration::minutes(18));
        assert_eq!(denied.new_tat, tat.unwrap(), "a refusal changes nothing");
    }

    #[test]
    fn tokens_come_back_one_emission_interval_at_a_time() {
        let limit = ten_per_3h();
        let mut tat = None;
        assert_eq!(spend_all(T0, &mut tat, &limit, 1), 10);
        let almost = T0 + Duration::minutes(18) - Duration::nanoseconds(1);
        assert!(!decide(almost, tat, &limit, 1).allowed);
        assert_eq!(
            decide(almost, tat, &limit, 1).retry_after,
            Duration::nanoseconds(1)
        );
        let later = T0 + Duration::minutes(18);
        assert_eq!(spend_all(later, &mut tat, &limit, 1), 1);
        let much_later = T0 + Duration::hours(30);
        assert_eq!(decide(much_later, tat, &limit, 0).remaining, 10);
        assert_eq!(
            spend_all(much_later, &mut tat, &limit, 1),
            10,
            "never above capacity"
        );
    }

    #[test]
    fn a_cost_above_one_spends_several_tokens() {
        let limit = ten_per_3h();
        let d = decide(T0, None, &limit, 4);
        assert!(d.allowed);
        assert_eq!(d.remaining, 6);
        let mut tat = Some(d.new_tat);
        assert_eq!(spend_all(T0, &mut tat, &limit, 4), 1);
        let denied = decide(T0, tat, &limit, 4);
        assert!(!denied.allowed);
        assert_eq!(denied.remaining, 2);
        assert_eq!(
            denied.retry_after,
            Duration::minutes(36),
            "two more tokens needed"
        );
    }

    #[test]
    fn a_cost_above_the_capacity_is_never_allowed() {
        let limit = ten_per_3h();
        let d = decide(T0, None, &limit, 11);
        assert!(!d.allowed);
        assert_eq!(d.retry_after, Duration::hours(3));
        assert_eq!(d.remaining, 10);
    }

    #[test]
    fn a_burst_larger_than_the_count_refills_slowly() {
        // The pausing limit: 3,600 failures, one back per day.
        let limit = Limit {
            burst: 3600,
            count: 1,
            period: Duration::days(1),
        };
        let mut tat = None;
        assert_eq!(spend_all(T0, &mut tat, &limit, 1), 3600);
        let denied = decide(T0, tat, &limit, 1);
        assert_eq!(denied.retry_after, Duration::days(1));
        assert_eq!(spend_all(T0 + Duration::days(2), &mut tat, &limit, 1), 2);
    }

    #[test]
    fn refunds_give_tokens_back_but_never_beyond_full() {
        let limit = ten_per_3h();
        let mut tat = None;
        assert_eq!(spend_all(T0, &mut tat, &limit, 1), 10);
        tat = refund(T0, tat, &limit, 3);
        assert_eq!(decide(T0, tat, &limit, 0).remaining, 3);
        assert_eq!(refund(T0, tat, &limit, 100), Some(Tat::from_datetime(T0)));
        assert_eq!(refund(T0, None, &limit, 1), None);
        assert_eq!(
            refund(T0 + Duration::days(1), tat, &limit, 1),
            None,
            "a bucket that refilled has nothing to give back"
        );
    }

    #[test]
    fn a_clock_going_backwards_never_grants_more_than_the_capacity() {
        let limit = ten_per_3h();
        let mut tat = None;
        assert_eq!(spend_all(T0, &mut tat, &limit, 1), 10);
        // The clock steps back a day: the bucket looks empty, not "more than empty".
        let earlier = T0 - Duration::days(1);
        let d = decide(earlier, tat, &limit, 1);
        assert!(!d.allowed);
        assert_eq!(d.remaining, 0);
        assert_eq!(
            d.retry_after,
            Duration::minutes(18),
            "bounded by one interval"
        );
        // A small step back after a partial spend is just fewer tokens.
        let mut tat = None;
        assert_eq!(spend_all(T0, &mut tat, &limit, 5), 2);
        let d = decide(T0 - Duration::minutes(18), tat, &limit, 1);
        assert!(!d.allowed);
        // And it recovers once time moves forward again.
        assert_eq!(spend_all(T0 + Duration::hours(3), &mut tat, &limit, 1), 10);
    }

    #[test]
    fn odd_limits_do_not_overflow_or_divide_by_zero() {
        let zero = Limit {
            burst: 0,
            count: 0,
            period: Duration::ZERO,
        };
        assert!(!decide(T0, None, &zero, 1).allowed);
        assert!(decide(T0, None, &zero, 0).allowed);
        let huge = Limit::new(u64::MAX, Duration::days(365_000));
        assert!(decide(T0, None, &huge, u64::MAX).allowed);
        assert!(!decide(T0, Some(Tat(i64::MAX)), &ten_per_3h(), 1).allowed);
    }

    #[test]
    fn tats_round_trip_through_datetimes() {
        assert_eq!(Tat::from_datetime(T0).to_datetime(), T0);
    }
}
