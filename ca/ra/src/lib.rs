//! Registration authority: ACME policy and orchestration. The RA decides what may happen
//! (identifier policy, authorization reuse, order state, who may revoke what) and drives the
//! storage authority, validation authority and issuer; it never touches HTTP, SQL or keys.

mod account;
mod finalize;
mod order;
mod policy;
mod revocation;
mod validation;

pub use account::{KeyChangeError, NewAccountRequest};
pub use finalize::IssuanceResult;
pub use order::{NewOrderRequest, OrderView};
pub use policy::{IdentifierPolicy, check_identifiers};
pub use revocation::RevocationRequester;

use cairn_core::{Clock, Problem};
use cairn_issuer::CertificateIssuer;
use cairn_sa::{SaError, StorageAuthority};
use cairn_va::ValidationAuthority;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration as StdDuration;
use time::Duration;

/// RA policy knobs. Defaults follow Let's Encrypt's `classic` profile.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RaConfig {
    /// Lifetime of a pending authorization.
    #[serde(with = "humane_duration")]
    pub pending_authz_lifetime: Duration,
    /// Lifetime of a valid authorization (how long it can be reused).
    #[serde(with = "humane_duration")]
    pub valid_authz_lifetime: Duration,
    /// Lifetime of an order.
    #[serde(with = "humane_duration")]
    pub order_lifetime: Duration,
    /// Validity of issued certificates.
    #[serde(with = "humane_duration")]
    pub certificate_validity: Duration,
    /// How far notBefore is backdated to tolerate client clock skew.
    #[serde(with = "humane_duration")]
    pub backdate: Duration,
    /// Require External Account Binding for new accounts.
    pub external_account_required: bool,
    /// Which identifiers may be requested.
    pub identifiers: IdentifierPolicy,
    /// Put the first DNS name in the subject CN (Let's Encrypt's classic profile does).
    pub include_common_name: bool,
    /// How long finalize waits for issuance before answering `processing` with `Retry-After`.
    #[serde(with = "humane_duration")]
    pub finalize_wait: Duration,
    /// Issuer domain names that identify this CA in CAA records (RFC 8659), also published as
    /// `meta.caaIdentities`.
    pub caa_identities: Vec<String>,
}

impl Default for RaConfig {
    fn default() -> Self {
        Self {
            pending_authz_lifetime: Duration::days(7),
            valid_authz_lifetime: Duration::days(30),
            order_lifetime: Duration::days(7),
            certificate_validity: Duration::days(90),
            backdate: Duration::hours(1),
            external_account_required: false,
            identifiers: IdentifierPolicy::default(),
            include_common_name: true,
            finalize_wait: Duration::seconds(5),
            caa_identities: vec!["cairn.invalid".into()],
        }
    }
}

/// Durations in config files as `"90d"`, `"160h"`, `"30m"`, `"10s"`.
pub mod humane_duration {
    use serde::{Deserialize, Deserializer, Serializer};
    use time::Duration;

    /// Parses `"<n><unit>"` with unit `s`, `m`, `h` or `d`.
    pub fn parse(s: &str) -> Result<Duration, String> {
        let s = s.trim();
        let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        let (num, unit) = s.split_at(split);
        let n: i64 = num.parse().map_err(|_| {
            format!("invalid duration {s:?}: expected e.g. \"90d\", \"160h\", \"30s\"")
        })?;
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

    pub(crate) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format(*d))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let s = String::deserialize(d)?;
        parse(&s).map_err(serde::de::Error::custom)
    }
}

/// The registration authority.
#[derive(Clone)]
pub struct Ra {
    inner: Arc<Inner>,
}

struct Inner {
    sa: Arc<dyn StorageAuthority>,
    va: Arc<dyn ValidationAuthority>,
    issuer: Arc<dyn CertificateIssuer>,
    clock: Arc<dyn Clock>,
    config: RaConfig,
}

impl std::fmt::Debug for Ra {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ra")
            .field("config", &self.inner.config)
            .finish()
    }
}

impl Ra {
    /// Builds an RA over its collaborators.
    pub fn new(
        sa: Arc<dyn StorageAuthority>,
        va: Arc<dyn ValidationAuthority>,
        issuer: Arc<dyn CertificateIssuer>,
        clock: Arc<dyn Clock>,
        config: RaConfig,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                sa,
                va,
                issuer,
                clock,
                config,
            }),
        }
    }

    /// The policy in force.
    pub fn config(&self) -> &RaConfig {
        &self.inner.config
    }

    /// The issuer's PEM chains for `issuer_id` (default first).
    pub fn chains(&self, issuer_id: &str) -> Vec<String> {
        self.inner.issuer.chains(issuer_id)
    }

    /// How long a client should wait before polling something in progress.
    pub fn retry_after(&self) -> StdDuration {
        StdDuration::from_secs(1)
    }

    fn now(&self) -> time::OffsetDateTime {
        self.inner.clock.now()
    }
}

/// Maps a storage error to a client problem: `NotFound` becomes `not_found(what)`; anything else
/// is logged with detail and hidden behind `serverInternal`.
pub(crate) fn sa_problem(err: SaError, what: &str) -> Problem {
    match err {
        SaError::NotFound => Problem::not_found(format!("{what} not found")),
        other => internal(&other, what),
    }
}

/// Logs an internal error with its detail and returns the generic problem.
pub(crate) fn internal(err: &dyn std::fmt::Display, context: &str) -> Problem {
    tracing::error!(error = %err, context, "internal error");
    Problem::internal()
}

#[cfg(test)]
mod tests {
    use super::humane_duration::{format, parse};
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
