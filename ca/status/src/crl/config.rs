//! `[crl]`: how many shards, how long a CRL is valid, how often it is regenerated and where it is
//! also written. [`CrlConfig`] is what the file says; [`CrlSettings`] is the same, checked, with
//! the durations parsed.

use crate::{ConfigError, ensure, parse_duration};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Duration;

/// The number of shards new certificates are spread over unless configured (the issuer's
/// default too).
pub const DEFAULT_SHARDS: u32 = 16;

/// CRL publishing settings (`[crl]`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CrlConfig {
    /// How many shards new certificates are spread over (by serial). Changing it later is
    /// safe: certificates keep the shard they were issued with.
    pub shards: u32,
    /// nextUpdate − thisUpdate (Baseline Requirements: at most 10 days).
    pub validity: String,
    /// Every shard is regenerated at least this often (must be under half of `validity`).
    pub update_interval: String,
    /// How often storage is checked for revocations made by other processes (`cairn admin
    /// revoke`); a revocation through this server's ACME API triggers an update at once.
    pub poll_interval: String,
    /// Revoked certificates stay on the CRL this long after they expire (RFC 5280 §3.3: an
    /// entry stays until it has appeared on a CRL issued after the certificate expired).
    pub keep_expired: String,
    /// Also write each CRL as `<dir>/<issuer_id>/<shard>.crl` (for a CDN or object store).
    pub output_dir: Option<PathBuf>,
}

impl Default for CrlConfig {
    fn default() -> Self {
        Self {
            shards: DEFAULT_SHARDS,
            validity: "7d".into(),
            update_interval: "6h".into(),
            poll_interval: "10s".into(),
            keep_expired: "1d".into(),
            output_dir: None,
        }
    }
}

/// [`CrlConfig`] with its durations parsed.
#[derive(Debug, Clone)]
pub struct CrlSettings {
    /// Shards.
    pub shards: u32,
    /// nextUpdate − thisUpdate.
    pub validity: time::Duration,
    /// Scheduled regeneration.
    pub update_interval: Duration,
    /// Epoch polling.
    pub poll_interval: Duration,
    /// Grace after expiry.
    pub keep_expired: time::Duration,
    /// Output folder.
    pub output_dir: Option<PathBuf>,
}

impl CrlConfig {
    /// Parses and checks the durations.
    pub fn settings(&self) -> Result<CrlSettings, ConfigError> {
        let validity = parse_duration("crl.validity", &self.validity)?;
        let update = parse_duration("crl.update_interval", &self.update_interval)?;
        let poll = parse_duration("crl.poll_interval", &self.poll_interval)?;
        let keep = parse_duration("crl.keep_expired", &self.keep_expired)?;
        ensure(
            (1..=4096).contains(&self.shards),
            "crl.shards must be between 1 and 4096",
        )?;
        ensure(
            validity > time::Duration::ZERO && validity <= time::Duration::days(10),
            "crl.validity must be positive and at most 10 days (Baseline Requirements §4.9.7)",
        )?;
        ensure(
            update > time::Duration::ZERO && update * 2 <= validity,
            "crl.update_interval must be positive and at most half of crl.validity",
        )?;
        ensure(
            poll > time::Duration::ZERO,
            "crl.poll_interval must be positive",
        )?;
        ensure(
            keep >= update,
            "crl.keep_expired must be at least crl.update_interval, so that an expired \
             certificate appears on one CRL after it expired",
        )?;
        let std = |d: time::Duration| Duration::try_from(d).unwrap_or(Duration::from_secs(1));
        Ok(CrlSettings {
            shards: self.shards,
            validity,
            update_interval: std(update),
            poll_interval: std(poll),
            keep_expired: keep,
            output_dir: self.output_dir.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        let s = CrlConfig::default().settings().unwrap();
        assert_eq!(s.shards, DEFAULT_SHARDS);
        assert_eq!(s.validity, time::Duration::days(7));
        assert_eq!(s.update_interval, Duration::from_secs(6 * 3600));
        assert_eq!(s.poll_interval, Duration::from_secs(10));
        assert_eq!(s.keep_expired, time::Duration::days(1));
        assert!(s.output_dir.is_none());
    }

    #[test]
    fn settings_outside_the_rules_are_refused_with_the_setting_named() {
        let with = |f: fn(&mut CrlConfig)| {
            let mut cfg = CrlConfig::default();
            f(&mut cfg);
            cfg.settings().unwrap_err().to_string()
        };
        assert!(with(|c| c.shards = 0).starts_with("crl.shards"));
        assert!(with(|c| c.shards = 4097).starts_with("crl.shards"));
        assert!(with(|c| c.validity = "11d".into()).starts_with("crl.validity"));
        assert!(with(|c| c.validity = "0s".into()).starts_with("crl.validity"));
        assert!(with(|c| c.validity = "soon".into()).starts_with("crl.validity: "));
        // More than half of the validity: a CRL could expire before the next one is out.
        assert!(with(|c| c.update_interval = "4d".into()).starts_with("crl.update_interval"));
        assert!(with(|c| c.poll_interval = "0s".into()).starts_with("crl.poll_interval"));
        assert!(with(|c| c.keep_expired = "1h".into()).starts_with("crl.keep_expired"));
        let edge = CrlConfig {
            shards: 4096,
            validity: "10d".into(),
            update_interval: "5d".into(),
            keep_expired: "5d".into(),
            ..CrlConfig::default()
        };
        assert!(edge.settings().is_ok());
    }
}
