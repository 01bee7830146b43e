//! Durations in configuration files as `"90d"`, `"160h"`, `"30m"`, `"10s"`: the one parser
//! every component's config section uses (`#[serde(with = "humane_duration")]`, or [`parse`]
//! on a string field).

use serde::{Deserialize, Deserializer, Serializer};
use time::Duration;

/// Parses `"<n><unit>"` with unit `s`, `m`, `h` or `d`.
pub fn parse(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: i64 = num
        .parse()
        .map_err(|_| format!("invalid duration {s:?}: expected e.g. \"90d\", \"160h\", \"30s\""))?;
    match unit {
        "s" => Ok(Duration::seconds(n)),
        "m" => Ok(Duration::minutes(n)),
        "h" => Ok(Duration::hours(n)),
        "d" => Ok(Duration::days(n)),
        _ => Err(format!("invalid duration unit in {s:?}: use s, m, h or d")),
    }
}

/// Formats in the largest whole unit.
pub fn format(d: Duration) -> String {
    let s = d.whole_seconds();
    if s % 86_400 == 0 {
        format!("{}d", s / 86_400)
    } else if s % 3600 == 0 {
        format!("{}h", s / 3600)
    } else if s % 60 == 0 {
        format!("{}m", s / 60)
    } else {
        format!("{s}s")
    }
}

/// Serde: writes [`format`].
pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format(*d))
}

/// Serde: reads with [`parse`].
pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let s = String::deserialize(d)?;
    parse(&s).map_err(serde::de::Error::custom)
}

#[cfg(test)]
mod tests {
    use super::{format, parse};
    use time::Duration;

    #[test]
    fn durations_parse_and_format() {
        assert_eq!(parse("90d").unwrap(), Duration::days(90));
        assert_eq!(parse("160h").unwrap(), Duration::hours(160));
        assert_eq!(format(Duration::hours(160)), "160h");
        assert_eq!(format(Duration::days(7)), "7d");
        assert!(parse("10y").is_err());
        assert!(parse("d").is_err());
    }
}
