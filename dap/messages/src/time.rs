//! `Time`, `Duration` and `Interval`, all counted in the task's `time_precision` (DAP-18 §4.1.1).

use crate::codec::{CodecError, Decode, Encode, Reader};
use serde::{Deserialize, Serialize};

/// A number of `time_precision` units since the UNIX epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Time(pub u64);

/// A number of `time_precision` units.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Duration(pub u64);

/// A task's time precision in seconds (`TimePrecision`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TimePrecision(pub u64);

impl Time {
    /// The DAP time of POSIX second `seconds` at `precision` (rounded down). `None` when the
    /// precision is zero.
    pub fn from_seconds(seconds: u64, precision: TimePrecision) -> Option<Time> {
        seconds.checked_div(precision.0).map(Time)
    }

    /// The POSIX second at which this time unit starts.
    pub fn to_seconds(self, precision: TimePrecision) -> Option<u64> {
        self.0.checked_mul(precision.0)
    }
}

/// `struct { Time start; Duration duration; } Interval`: half-open, `[start, start+duration)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Interval {
    /// The first time unit inside the interval.
    pub start: Time,
    /// How many units the interval spans.
    pub duration: Duration,
}

impl Interval {
    /// The interval, if `start + duration` does not overflow.
    pub fn new(start: Time, duration: Duration) -> Option<Interval> {
        start.0.checked_add(duration.0)?;
        Some(Interval { start, duration })
    }

    /// The first time unit after the interval (saturating).
    pub fn end(&self) -> Time {
        Time(self.start.0.saturating_add(self.duration.0))
    }

    /// Whether `t` falls within the interval.
    pub fn contains(&self, t: Time) -> bool {
        t >= self.start && t < self.end()
    }

    /// Whether `other` lies entirely within `self`.
    pub fn contains_interval(&self, other: &Interval) -> bool {
        other.start >= self.start && other.end() <= self.end()
    }

    /// Whether the two intervals share any time unit.
    pub fn overlaps(&self, other: &Interval) -> bool {
        self.start < other.end() && other.start < self.end()
    }
}

impl Encode for Time {
    fn encode(&self, out: &mut Vec<u8>) -> Result<(), CodecError> {
        self.0.encode(out)
    }
}

impl Decode for Time {
    fn decode(r: &mut Reader<'_>) -> Result<Self, CodecError> {
        Ok(Time(r.u64()?))
    }
}

impl Encode for Duration {
    fn encode(&self, out: &mut Vec<u8>) -> Result<(), CodecError> {
        self.0.encode(out)
    }
}

impl Decode for Duration {
    fn decode(r: &mut Reader<'_>) -> Result<Self, CodecError> {
        Ok(Duration(r.u64()?))
    }
}

impl Encode for Interval {
    fn encode(&self, out: &mut Vec<u8>) -> Result<(), CodecError> {
        self.start.encode(out)?;
        self.duration.encode(out)
    }
}

impl Decode for Interval {
    fn decode(r: &mut Reader<'_>) -> Result<Self, CodecError> {
        Ok(Interval {
            start: Time::decode(r)?,
            duration: Duration::decode(r)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draft_example_times() {
        // DAP-18 §4.1.1.1: precision 10 s, Time 123456789 is POSIX 1234567890.
        let p = TimePrecision(10);
        assert_eq!(
            Time::from_seconds(1_234_567_890, p),
            Some(Time(123_456_789))
        );
        assert_eq!(Time(123_456_789).to_seconds(p), Some(1_234_567_890));
        assert_eq!(Time::from_seconds(5, TimePrecision(0)), None);
        let i = Interval::new(Time(123_456_789), Duration(11)).unwrap();
        assert!(i.contains(Time(123_456_799)));
        assert!(!i.contains(Time(123_456_800)));
        assert!(Interval::new(Time(u64::MAX), Duration(1)).is_none());
    }
}
