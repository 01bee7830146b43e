//! The limits Cairn enforces, their Let's Encrypt defaults and what their buckets are keyed by.

use crate::gcra::Limit;
use serde::{Deserialize, Serialize};
use std::fmt;
use time::Duration;

/// One of the rate limits. The serde form (`new_orders_per_account`) is used in configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum LimitName {
    /// New accounts per client IP address: 10 per 3 hours.
    NewAccountsPerIp,
    /// New accounts per IPv6 /48 range: 500 per 3 hours.
    NewAccountsPerIpv6Range,
    /// New orders per account: 300 per 3 hours.
    NewOrdersPerAccount,
    /// Certificates per registered domain (or per IPv4 address / IPv6 /64): 50 per 7 days.
    CertificatesPerDomain,
    /// Certificates for exactly the same set of identifiers ("duplicate certificates"): 5 per 7 days.
    CertificatesPerFqdnSet,
    /// Failed validations per identifier per account: 5 per hour.
    FailedAuthorizationsPerDomainPerAccount,
    /// Consecutive failed validations per identifier per account before the pair is paused:
    /// 3,600, one back per day.
    FailedAuthorizationsForPausingPerDomainPerAccount,
}

/// What an override of a limit may select on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Selectors {
    pub(crate) account: bool,
    pub(crate) domain: bool,
    pub(crate) ip: bool,
}

impl LimitName {
    /// Every limit, in documentation order.
    pub const ALL: [LimitName; 7] = [
        LimitName::NewAccountsPerIp,
        LimitName::NewAccountsPerIpv6Range,
        LimitName::NewOrdersPerAccount,
        LimitName::CertificatesPerDomain,
        LimitName::CertificatesPerFqdnSet,
        LimitName::FailedAuthorizationsPerDomainPerAccount,
        LimitName::FailedAuthorizationsForPausingPerDomainPerAccount,
    ];

    /// The configuration name, e.g. `new_orders_per_account`.
    pub fn as_str(self) -> &'static str {
        match self {
            LimitName::NewAccountsPerIp => "new_accounts_per_ip",
            LimitName::NewAccountsPerIpv6Range => "new_accounts_per_ipv6_range",
            LimitName::NewOrdersPerAccount => "new_orders_per_account",
            LimitName::CertificatesPerDomain => "certificates_per_domain",
            LimitName::CertificatesPerFqdnSet => "certificates_per_fqdn_set",
            LimitName::FailedAuthorizationsPerDomainPerAccount => {
                "failed_authorizations_per_domain_per_account"
            }
            LimitName::FailedAuthorizationsForPausingPerDomainPerAccount => {
                "failed_authorizations_for_pausing_per_domain_per_account"
            }
        }
    }

    /// A short stable tag used in storage keys (`nao`, `cpd`, …); changing one resets its buckets.
    pub fn key_tag(self) -> &'static str {
        match self {
            LimitName::NewAccountsPerIp => "nai",
            LimitName::NewAccountsPerIpv6Range => "nar",
            LimitName::NewOrdersPerAccount => "noa",
            LimitName::CertificatesPerDomain => "cpd",
            LimitName::CertificatesPerFqdnSet => "cfs",
            LimitName::FailedAuthorizationsPerDomainPerAccount => "fad",
            LimitName::FailedAuthorizationsForPausingPerDomainPerAccount => "fap",
        }
    }

    /// The anchor of this limit's section in `docs/rate-limits.md`.
    pub fn doc_anchor(self) -> &'static str {
        match self {
            LimitName::NewAccountsPerIp => "new-accounts-per-ip",
            LimitName::NewAccountsPerIpv6Range => "new-accounts-per-ipv6-range",
            LimitName::NewOrdersPerAccount => "new-orders-per-account",
            LimitName::CertificatesPerDomain => "certificates-per-domain",
            LimitName::CertificatesPerFqdnSet => "certificates-per-fqdn-set",
            LimitName::FailedAuthorizationsPerDomainPerAccount => {
                "failed-authorizations-per-domain-per-account"
            }
            LimitName::FailedAuthorizationsForPausingPerDomainPerAccount => {
                "failed-authorizations-for-pausing-per-domain-per-account"
            }
        }
    }

    /// What the limit counts, for sentences shown to clients ("too many new orders …").
    pub fn describe(self) -> &'static str {
        match self {
            LimitName::NewAccountsPerIp => "new accounts from this IP address",
            LimitName::NewAccountsPerIpv6Range => "new accounts from this IPv6 /48 range",
            LimitName::NewOrdersPerAccount => "new orders from this account",
            LimitName::CertificatesPerDomain => "certificates for this registered domain",
            LimitName::CertificatesPerFqdnSet => "certificates for exactly this set of identifiers",
            LimitName::FailedAuthorizationsPerDomainPerAccount => {
                "failed validations for this identifier by this account"
            }
            LimitName::FailedAuthorizationsForPausingPerDomainPerAccount => {
                "consecutive failed validations for this identifier by this account"
            }
        }
    }

    /// Let's Encrypt's production setting.
    pub fn default_limit(self) -> Limit {
        match self {
            LimitName::NewAccountsPerIp => Limit::new(10, Duration::hours(3)),
            LimitName::NewAccountsPerIpv6Range => Limit::new(500, Duration::hours(3)),
            LimitName::NewOrdersPerAccount => Limit::new(300, Duration::hours(3)),
            LimitName::CertificatesPerDomain => Limit::new(50, Duration::days(7)),
            LimitName::CertificatesPerFqdnSet => Limit::new(5, Duration::days(7)),
            LimitName::FailedAuthorizationsPerDomainPerAccount => Limit::new(5, Duration::hours(1)),
            LimitName::FailedAuthorizationsForPausingPerDomainPerAccount => Limit {
                burst: 3600,
                count: 1,
                period: Duration::days(1),
            },
        }
    }

    /// Which override selectors make sense for this limit.
    pub(crate) fn selectors(self) -> Selectors {
        let (account, domain, ip) = match self {
            LimitName::NewAccountsPerIp | LimitName::NewAccountsPerIpv6Range => {
                (false, false, true)
            }
            LimitName::NewOrdersPerAccount | LimitName::CertificatesPerFqdnSet => {
                (true, false, false)
            }
            LimitName::CertificatesPerDomain
            | LimitName::FailedAuthorizationsPerDomainPerAccount
            | LimitName::FailedAuthorizationsForPausingPerDomainPerAccount => (true, true, true),
        };
        Selectors {
            account,
            domain,
            ip,
        }
    }
}

impl fmt::Display for LimitName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_lets_encrypt() {
        let interval = |n: LimitName| n.default_limit().emission_interval();
        assert_eq!(interval(LimitName::NewAccountsPerIp), Duration::minutes(18));
        assert_eq!(
            interval(LimitName::NewOrdersPerAccount),
            Duration::seconds(36)
        );
        assert_eq!(
            interval(LimitName::FailedAuthorizationsPerDomainPerAccount),
            Duration::minutes(12)
        );
        assert_eq!(
            interval(LimitName::CertificatesPerFqdnSet),
            Duration::hours(33) + Duration::minutes(36)
        );
        assert_eq!(
            interval(LimitName::FailedAuthorizationsForPausingPerDomainPerAccount),
            Duration::days(1)
        );
    }

    #[test]
    fn names_tags_and_anchors_are_unique() {
        let mut seen = std::collections::HashSet::new();
        for name in LimitName::ALL {
            assert!(seen.insert(name.as_str()));
            assert!(seen.insert(name.key_tag()));
            assert!(seen.insert(name.doc_anchor()));
            let json = format!("\"{}\"", name.as_str());
            assert_eq!(serde_json_like(&json), name);
        }
    }

    fn serde_json_like(quoted: &str) -> LimitName {
        #[derive(Deserialize)]
        struct W {
            n: LimitName,
        }
        let w: W = toml::from_str(&format!("n = {quoted}")).unwrap();
        w.n
    }
}
