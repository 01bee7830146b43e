//! `[ocsp]`: whether the responder runs, which key signs, how long an answer is valid and how
//! long it is cached.

use crate::{ConfigError, ensure, parse_duration};
use serde::{Deserialize, Serialize};
use time::Duration;

/// The Baseline Requirements' longest OCSP response validity.
const MAX_VALIDITY: Duration = Duration::days(10);

/// `[ocsp]`: the OCSP responder.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OcspConfig {
    /// Answer OCSP at `<server.public_base_url>/ocsp` and name that URL in the AIA extension of
    /// new certificates. Off by default (CRLs are the default revocation mechanism).
    pub enabled: bool,
    /// Which key signs responses: `"issuer"` (the intermediate itself, the default) or
    /// `"delegated"` (a responder certificate the intermediate issues, stored in `ca/`). The
    /// issuer is built with this choice; the responder only asks it to sign.
    pub signer: SignerChoice,
    /// nextUpdate − thisUpdate of every response, e.g. `"4d"` (at most 10 days).
    pub validity: String,
    /// A cached answer is signed afresh once less than this remains before its nextUpdate, so
    /// every served answer stays valid at least this long (and HTTP caches keep it no longer).
    pub cache_margin: String,
    /// Echo the request's nonce (RFC 8954). A request with a nonce then gets a freshly signed,
    /// uncached answer; off by default (RFC 5019 §4: nonces defeat caching).
    pub echo_nonce: bool,
    /// Key prefix in Redis (`server.redis_url`), so several CAs can share one server.
    pub redis_prefix: String,
    /// Without Redis: the most answers kept in this process's memory.
    pub memory_cache_entries: usize,
}

/// Which key signs OCSP responses.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SignerChoice {
    /// The issuing intermediate.
    #[default]
    Issuer,
    /// A delegated responder certificate.
    Delegated,
}

impl Default for OcspConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            signer: SignerChoice::Issuer,
            validity: "4d".into(),
            cache_margin: "1d".into(),
            echo_nonce: false,
            redis_prefix: "cairn:ocsp:".into(),
            memory_cache_entries: 100_000,
        }
    }
}

impl OcspConfig {
    /// The validity and the cache margin, checked: 1 hour ≤ validity ≤ 10 days, and
    /// 0 ≤ margin < validity (and a memory cache of at least one answer).
    pub fn durations(&self) -> Result<(Duration, Duration), ConfigError> {
        let validity = parse_duration("ocsp.validity", &self.validity)?;
        let margin = parse_duration("ocsp.cache_margin", &self.cache_margin)?;
        ensure(
            validity >= Duration::hours(1) && validity <= MAX_VALIDITY,
            "ocsp.validity must be between 1h and 10d",
        )?;
        ensure(
            margin >= Duration::ZERO && margin < validity,
            "ocsp.cache_margin must be shorter than ocsp.validity",
        )?;
        ensure(
            self.memory_cache_entries > 0,
            "ocsp.memory_cache_entries must be positive",
        )?;
        Ok((validity, margin))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_defaults_are_off_and_valid() {
        let cfg = OcspConfig::default();
        assert!(!cfg.enabled);
        assert_eq!(cfg.signer, SignerChoice::Issuer);
        let (validity, margin) = cfg.durations().unwrap();
        assert_eq!(validity, Duration::days(4));
        assert_eq!(margin, Duration::days(1));
    }

    #[test]
    fn bad_durations_are_refused() {
        for (validity, margin) in [("11d", "1d"), ("30m", "1m"), ("4d", "4d"), ("soon", "1d")] {
            let cfg = OcspConfig {
                validity: validity.into(),
                cache_margin: margin.into(),
                ..OcspConfig::default()
            };
            assert!(cfg.durations().is_err(), "{validity} {margin}");
        }
        let cfg = OcspConfig {
            memory_cache_entries: 0,
            ..OcspConfig::default()
        };
        assert!(cfg.durations().is_err());
    }
}
