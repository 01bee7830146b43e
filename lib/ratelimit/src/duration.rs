//! Durations in configuration files written the way people say them: `"3h"`, `"7d"`, `"1h30m"`.

use serde::{Deserialize, Deserializer, Serializer};
use time::Duration;

/// Why a duration string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DurationError {
    /// The text is not a sequence of `<number><unit>` with units `ms`, `s`, `m`, `h`, `d`.
    #[error("{0:?} is not a duration like \"36s\", \"3h\" or \"7d\"")]
    Malformed(String),
    /// The duration does not fit in 64-bit nanoseconds.
    #[error("{0:?} is too long")]
    TooLong(String),
}

/// Parses `"500ms"`, `"36s"`, `"18m"`, `"3h"`, `"7d"` and sums like `"1h30m"`.
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    let malformed = || DurationError::Malformed(text.to_string());
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err(malformed());
    }
    let mut total = Duration::ZERO;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(malformed());
        }
        let (number, tail) = rest.split_at(digits);
        let number: i64 = number
            .parse()
            .map_err(|_| DurationError::TooLong(text.to_string()))?;
        let unit_len = tail.bytes().take_while(u8::is_ascii_alphabetic).count();
        let (unit, tail) = tail.split_at(unit_len);
        let unit_nanos: i64 = match unit {
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60 * 1_000_000_000,
            "h" => 3_600 * 1_000_000_000,
            "d" => 86_400 * 1_000_000_000,
            _ => return Err(malformed()),
        };
        let part = number
            .checked_mul(unit_nanos)
            .ok_or_else(|| DurationError::TooLong(text.to_string()))?;
        total = total
            .checked_add(Duration::nanoseconds(part))
            .ok_or_else(|| DurationError::TooLong(text.to_string()))?;
        rest = tail;
    }
    Ok(total)
}

/// Writes a duration in the largest units that divide it exactly (`"7d"`, `"36s"`, `"1h30m"`).
pub fn format_duration(d: Duration) -> String {
    let mut nanos = d.whole_nanoseconds().max(0);
    if nanos == 0 {
        return "0s".to_string();
    }
    let mut out = String::new();
    for (unit, size) in [
        ("d", 86_400_000_000_000_i128),
        ("h", 3_600_000_000_000),
        ("m", 60_000_000_000),
        ("s", 1_000_000_000),
        ("ms", 1_000_000),
    ] {
        if nanos >= size {
            out.push_str(&format!("{}{unit}", nanos / size));
            nanos %= size;
        }
    }
    if nanos > 0 {
        // Sub-millisecond remainders cannot be written; round up so a limit never gets looser.
        out = format_duration(Duration::nanoseconds(
            (d.whole_nanoseconds() / 1_000_000 + 1).saturating_mul(1_000_000) as i64,
        ));
    }
    out
}

/// `#[serde(with = "crate::duration::serde_text_opt")]` for an `Option<Duration>` field.
pub(crate) mod serde_text_opt {
    use super::*;

    pub(crate) fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_str(&format_duration(*d)),
            None => s.serialize_none(),
        }
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Duration>, D::Error> {
        let text = Option::<String>::deserialize(d)?;
        text.map(|t| parse_duration(&t).map_err(serde::de::Error::custom))
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_units_people_write() {
        assert_eq!(parse_duration("3h").unwrap(), Duration::hours(3));
        assert_eq!(parse_duration("7d").unwrap(), Duration::days(7));
        assert_eq!(parse_duration("36s").unwrap(), Duration::seconds(36));
        assert_eq!(parse_duration("18m").unwrap(), Duration::minutes(18));
        assert_eq!(
            parse_duration("250ms").unwrap(),
            Duration::milliseconds(250)
        );
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::minutes(90));
        assert_eq!(parse_duration(" 1d ").unwrap(), Duration::days(1));
    }

    #[test]
    fn refuses_garbage() {
        for bad in ["", "3", "h", "3x", "-3h", "3h-", "1.5h", "3 h"] {
            assert!(parse_duration(bad).is_err(), "{bad:?} accepted");
        }
        assert!(matches!(
            parse_duration("99999999999999999999d"),
            Err(DurationError::TooLong(_))
        ));
        assert!(matches!(
            parse_duration("999999999d"),
            Err(DurationError::TooLong(_))
        ));
    }

    #[test]
    fn formats_in_round_units_and_round_trips() {
        for text in ["7d", "3h", "36s", "1h30m", "250ms", "1d1s"] {
            assert_eq!(format_duration(parse_duration(text).unwrap()), text);
        }
        assert_eq!(format_duration(Duration::ZERO), "0s");
        assert_eq!(format_duration(Duration::nanoseconds(1)), "1ms");
    }
}
