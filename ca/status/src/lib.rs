//! The CA's status services: what relying parties ask about certificates after issuance.
//!
//! - [`crl`]: the CRL updater regenerates every CRL shard of the issuer (and the root's CRL of CA
//!   certificates) on a schedule and after each revocation, and stores them.
//! - [`ocsp`]: the OCSP responder answers good / revoked / unknown from storage, signs live and
//!   caches the signed answers (Redis, or this process's memory).
//! - [`public`]: the public plain-HTTP listener that serves the stored CRLs and the CA
//!   certificates at the URLs certificates name; the responder's routes are merged into it.
//! - [`stats`]: the public statistics page (`/stats`, `/stats.json`) on the same listener, with
//!   [`sli`] counting the listeners' service-level-indicator events for it.
//!
//! Each service has its own configuration section ([`crl::CrlConfig`], [`ocsp::OcspConfig`];
//! the public listener's address and base URL are `[server]` settings of the binary) and is
//! built from that section plus the handles it needs: storage as `Arc<dyn StorageAuthority>`,
//! the issuer as `Arc<dyn CertificateIssuer>` (every CRL and OCSP signature goes through
//! [`CertificateIssuer::sign_crl`](cairn_api::CertificateIssuer::sign_crl) and
//! [`sign_ocsp`](cairn_api::CertificateIssuer::sign_ocsp); this crate never holds a key), a
//! clock, and a Redis URL. So the services run the same next to an in-process issuer or, later,
//! a remote one, and their tests run on `cairn-api`'s fakes.

pub mod crl;
pub mod ocsp;
pub mod public;
pub mod sli;
pub mod stats;

#[cfg(test)]
mod fixture;

/// A configuration section that does not hold.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A duration that does not parse (`"7d"`, `"6h"`, `"30m"` and `"10s"` do).
    #[error("{field}: {reason}")]
    Duration {
        /// The setting, e.g. `crl.validity`.
        field: &'static str,
        /// Why it does not parse.
        reason: String,
    },
    /// A value outside the range the service accepts; the text names the setting and the rule.
    #[error("{0}")]
    OutOfRange(&'static str),
}

/// Parses the duration `value` of setting `field`.
fn parse_duration(field: &'static str, value: &str) -> Result<time::Duration, ConfigError> {
    cairn_core::humane_duration::parse(value)
        .map_err(|reason| ConfigError::Duration { field, reason })
}

/// `Ok(())` if `holds`, else [`ConfigError::OutOfRange`] with `rule`.
fn ensure(holds: bool, rule: &'static str) -> Result<(), ConfigError> {
    if holds {
        Ok(())
    } else {
        Err(ConfigError::OutOfRange(rule))
    }
}
