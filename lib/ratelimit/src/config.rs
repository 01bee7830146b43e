//! Configuration: each limit's capacity and period (Let's Encrypt's by default), a switch per
//! limit, and overrides per account, registered domain or IP prefix.

use crate::duration::serde_text_opt;
use crate::gcra::Limit;
use crate::ip_prefix::IpPrefix;
use crate::key::registered_domain;
use crate::limits::LimitName;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use time::Duration;

/// Where `docs/rate-limits.md` is published; each limit's URL is this plus `#<anchor>`.
pub const DEFAULT_DOC_BASE_URL: &str =
    "https://github.com/cairn-pki/cairn/blob/main/docs/rate-limits.md";

/// The rate limiter's configuration. Everything is optional: an empty table means Let's
/// Encrypt's production limits.
///
/// ```toml
/// [limits.new_orders_per_account]
/// burst = 300
/// period = "3h"
///
/// [limits.certificates_per_fqdn_set]
/// enabled = false
///
/// [[overrides]]
/// limit = "new_orders_per_account"
/// account = "enterprise-account-id"
/// burst = 3000
/// comment = "Example Corp, ticket 123"
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitConfig {
    /// Base URL of the rate-limit documentation linked from `rateLimited` problems.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub doc_base_url: Option<String>,
    /// Settings per limit; limits not named keep their defaults.
    #[serde(default)]
    pub limits: BTreeMap<LimitName, LimitConfig>,
    /// Bigger (or smaller) buckets for particular accounts, domains or networks.
    #[serde(default)]
    pub overrides: Vec<OverrideConfig>,
}

/// One limit's settings; unset fields keep the default.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitConfig {
    /// `false` switches the limit off entirely.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Capacity: requests allowed at once from a full bucket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burst: Option<u64>,
    /// Tokens refilled per `period` (defaults to `burst`, or to the default count if `burst` is
    /// unset too).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
    /// The refill period, e.g. `"3h"`.
    #[serde(
        default,
        with = "serde_text_opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub period: Option<Duration>,
}

/// A different bucket size for one account, registered domain or IP prefix. Exactly one of
/// `account`, `domain` and `ip` is set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OverrideConfig {
    /// The limit overridden.
    pub limit: LimitName,
    /// An ACME account ID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    /// A registered domain (`example.co.uk`, not `www.example.co.uk`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    /// An address or prefix (`203.0.113.0/24`); the longest matching prefix wins.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<IpPrefix>,
    /// Capacity for the selected requests.
    pub burst: u64,
    /// Tokens per period (defaults to `burst`, or to the limit's count when `burst` is 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
    /// Refill period (defaults to the limit's).
    #[serde(
        default,
        with = "serde_text_opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub period: Option<Duration>,
    /// Why this override exists (for people; ignored by the CA).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

/// Why a configuration was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A limit (or an override of it) refills zero tokens per period.
    #[error("{0}: count must be at least 1")]
    ZeroCount(LimitName),
    /// A limit (or an override of it) has a zero or negative period.
    #[error("{0}: period must be positive")]
    NonPositivePeriod(LimitName),
    /// An override names none, or more than one, of `account`, `domain` and `ip`.
    #[error("override #{index} of {limit}: set exactly one of account, domain, ip")]
    OverrideSelector {
        /// The overridden limit.
        limit: LimitName,
        /// Position in the `overrides` list, from 0.
        index: usize,
    },
    /// An override selects on something the limit is not counted by (e.g. an account for
    /// new accounts per IP).
    #[error("override #{index} of {limit}: {limit} cannot be overridden by {selector}")]
    SelectorNotApplicable {
        /// The overridden limit.
        limit: LimitName,
        /// Position in the `overrides` list, from 0.
        index: usize,
        /// `account`, `domain` or `ip`.
        selector: &'static str,
    },
    /// A domain override names a name that is not a registered domain.
    #[error(
        "override #{index} of {limit}: {domain:?} is not a registered domain (did you mean {suggestion:?}?)"
    )]
    NotRegisteredDomain {
        /// The overridden limit.
        limit: LimitName,
        /// Position in the `overrides` list, from 0.
        index: usize,
        /// The name as configured.
        domain: String,
        /// Its registered domain.
        suggestion: String,
    },
    /// Two overrides select the same thing for the same limit.
    #[error("override #{index} of {limit}: {selector} is already overridden")]
    DuplicateOverride {
        /// The overridden limit.
        limit: LimitName,
        /// Position of the second one in the `overrides` list, from 0.
        index: usize,
        /// What both select.
        selector: String,
    },
}

/// The configuration checked and resolved into lookup tables.
#[derive(Debug, Clone)]
pub(crate) struct Policy {
    pub(crate) doc_base_url: String,
    limits: HashMap<LimitName, LimitPolicy>,
}

#[derive(Debug, Clone)]
struct LimitPolicy {
    enabled: bool,
    default: Limit,
    by_account: HashMap<String, Limit>,
    by_domain: HashMap<String, Limit>,
    /// Longest prefix first.
    by_ip: Vec<(IpPrefix, Limit)>,
}

/// What a bucket is about, for choosing an override.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Subject {
    pub(crate) account: Option<String>,
    pub(crate) domain: Option<String>,
    pub(crate) ip: Option<IpAddr>,
}

impl RateLimitConfig {
    /// Checks the configuration: positive counts and periods, one applicable selector per
    /// override, no duplicates, domains that are registered domains.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.resolve().map(|_| ())
    }

    pub(crate) fn resolve(&self) -> Result<Policy, ConfigError> {
        let mut limits = HashMap::new();
        for name in LimitName::ALL {
            let cfg = self.limits.get(&name).cloned().unwrap_or_default();
            let default = name.default_limit();
            let burst = cfg.burst.unwrap_or(default.burst);
            // A new burst brings its own rate unless it is 0 (a blocked limit still needs one).
            let count = cfg.count.unwrap_or(match cfg.burst {
                Some(b) if b > 0 => b,
                _ => default.count,
            });
            let limit = checked(
                name,
                Limit {
                    burst,
                    count,
                    period: cfg.period.unwrap_or(default.period),
                },
            )?;
            limits.insert(
                name,
                LimitPolicy {
                    enabled: cfg.enabled.unwrap_or(true),
                    default: limit,
                    by_account: HashMap::new(),
                    by_domain: HashMap::new(),
                    by_ip: Vec::new(),
                },
            );
        }
        for (index, o) in self.overrides.iter().enumerate() {
            let Some(policy) = limits.get_mut(&o.limit) else {
                continue;
            };
            let limit = checked(
                o.limit,
                Limit {
                    burst: o.burst,
                    count: o.count.unwrap_or(if o.burst > 0 {
                        o.burst
                    } else {
                        policy.default.count
                    }),
                    period: o.period.unwrap_or(policy.default.period),
                },
            )?;
            let allowed = o.limit.selectors();
            let duplicate = |selector: String| ConfigError::DuplicateOverride {
                limit: o.limit,
                index,
                selector,
            };
            let not_applicable = |selector| ConfigError::SelectorNotApplicable {
                limit: o.limit,
                index,
                selector,
            };
            match (&o.account, &o.domain, &o.ip) {
                (Some(account), None, None) => {
                    if !allowed.account {
                        return Err(not_applicable("account"));
                    }
                    if policy.by_account.insert(account.clone(), limit).is_some() {
                        return Err(duplicate(format!("account {account}")));
                    }
                }
                (None, Some(domain), None) => {
                    if !allowed.domain {
                        return Err(not_applicable("domain"));
                    }
                    let lower = domain.trim_end_matches('.').to_ascii_lowercase();
                    let registered = registered_domain(&lower);
                    if registered != lower {
                        return Err(ConfigError::NotRegisteredDomain {
                            limit: o.limit,
                            index,
                            domain: domain.clone(),
                            suggestion: registered,
                        });
                    }
                    if policy.by_domain.insert(lower, limit).is_some() {
                        return Err(duplicate(format!("domain {domain}")));
                    }
                }
                (None, None, Some(prefix)) => {
                    if !allowed.ip {
                        return Err(not_applicable("ip"));
                    }
                    if policy.by_ip.iter().any(|(p, _)| p == prefix) {
                        return Err(duplicate(format!("ip {prefix}")));
                    }
                    policy.by_ip.push((*prefix, limit));
                }
                _ => {
                    return Err(ConfigError::OverrideSelector {
                        limit: o.limit,
                        index,
                    });
                }
            }
        }
        for policy in limits.values_mut() {
            policy
                .by_ip
                .sort_by_key(|(p, _)| std::cmp::Reverse(p.len()));
        }
        Ok(Policy {
            doc_base_url: self
                .doc_base_url
                .clone()
                .unwrap_or_else(|| DEFAULT_DOC_BASE_URL.to_string()),
            limits,
        })
    }
}

fn checked(name: LimitName, limit: Limit) -> Result<Limit, ConfigError> {
    if limit.count == 0 {
        return Err(ConfigError::ZeroCount(name));
    }
    if !limit.period.is_positive() {
        return Err(ConfigError::NonPositivePeriod(name));
    }
    Ok(limit)
}

impl Policy {
    /// The limit that applies to `subject` under `name`, or `None` when the limit is switched off.
    /// An account override beats a domain override, which beats the longest matching IP prefix.
    pub(crate) fn limit_for(&self, name: LimitName, subject: &Subject) -> Option<Limit> {
        let policy = self.limits.get(&name)?;
        if !policy.enabled {
            return None;
        }
        let by_account = subject
            .account
            .as_ref()
            .and_then(|a| policy.by_account.get(a));
        let by_domain = || {
            subject
                .domain
                .as_ref()
                .and_then(|d| policy.by_domain.get(d))
        };
        let by_ip = || {
            subject.ip.and_then(|ip| {
                policy
                    .by_ip
                    .iter()
                    .find(|(p, _)| p.contains(ip))
                    .map(|(_, l)| l)
            })
        };
        Some(
            *by_account
                .or_else(by_domain)
                .or_else(by_ip)
                .unwrap_or(&policy.default),
        )
    }

    /// The documentation URL of a limit.
    pub(crate) fn doc_url(&self, name: LimitName) -> String {
        format!("{}#{}", self.doc_base_url, name.doc_anchor())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> RateLimitConfig {
        toml::from_str(text).unwrap()
    }

    fn subject_account(a: &str) -> Subject {
        Subject {
            account: Some(a.to_string()),
            ..Subject::default()
        }
    }

    #[test]
    fn an_empty_config_means_lets_encrypts_limits() {
        let policy = parse("").resolve().unwrap();
        for name in LimitName::ALL {
            assert_eq!(
                policy.limit_for(name, &Subject::default()),
                Some(name.default_limit())
            );
        }
        assert_eq!(
            policy.doc_url(LimitName::NewOrdersPerAccount),
            format!("{DEFAULT_DOC_BASE_URL}#new-orders-per-account")
        );
    }

    #[test]
    fn partial_settings_keep_the_other_defaults() {
        let policy = parse(
            r#"
            doc_base_url = "https://ca.example/limits"
            [limits.new_orders_per_account]
            period = "1h"
            [limits.certificates_per_domain]
            burst = 100
            [limits.certificates_per_fqdn_set]
            enabled = false
            "#,
        )
        .resolve()
        .unwrap();
        let any = Subject::default();
        assert_eq!(
            policy.limit_for(LimitName::NewOrdersPerAccount, &any),
            Some(Limit::new(300, Duration::hours(1)))
        );
        assert_eq!(
            policy.limit_for(LimitName::CertificatesPerDomain, &any),
            Some(Limit::new(100, Duration::days(7)))
        );
        assert_eq!(
            policy.limit_for(LimitName::CertificatesPerFqdnSet, &any),
            None
        );
        assert_eq!(
            policy.doc_url(LimitName::CertificatesPerDomain),
            "https://ca.example/limits#certificates-per-domain"
        );
    }

    #[test]
    fn account_beats_domain_beats_ip() {
        let policy = parse(
            r#"
            [[overrides]]
            limit = "certificates_per_domain"
            account = "big"
            burst = 1000
            [[overrides]]
            limit = "certificates_per_domain"
            domain = "example.com"
            burst = 200
            [[overrides]]
            limit = "certificates_per_domain"
            ip = "192.0.2.0/24"
            burst = 7
            "#,
        )
        .resolve()
        .unwrap();
        let both = Subject {
            account: Some("big".into()),
            domain: Some("example.com".into()),
            ip: None,
        };
        let limit = |s: &Subject| {
            policy
                .limit_for(LimitName::CertificatesPerDomain, s)
                .unwrap()
                .burst
        };
        assert_eq!(limit(&both), 1000);
        assert_eq!(
            limit(&Subject {
                account: Some("small".into()),
                ..both.clone()
            }),
            200
        );
        assert_eq!(
            limit(&Subject {
                ip: Some("192.0.2.9".parse().unwrap()),
                ..Subject::default()
            }),
            7
        );
        assert_eq!(limit(&subject_account("small")), 50);
    }

    #[test]
    fn bad_configs_are_refused() {
        let err = |text: &str| parse(text).validate().unwrap_err();
        assert!(toml::from_str::<RateLimitConfig>("typo = 1").is_err());
        assert!(toml::from_str::<RateLimitConfig>("[limits.no_such_limit]\nburst = 1").is_err());
        assert!(
            toml::from_str::<RateLimitConfig>(
                "[limits.new_orders_per_account]\nperiod = \"3 hours\""
            )
            .is_err()
        );
        assert_eq!(
            err("[limits.new_orders_per_account]\ncount = 0"),
            ConfigError::ZeroCount(LimitName::NewOrdersPerAccount)
        );
        assert_eq!(
            err("[limits.new_orders_per_account]\nperiod = \"0s\""),
            ConfigError::NonPositivePeriod(LimitName::NewOrdersPerAccount)
        );
        assert!(matches!(
            err("[[overrides]]\nlimit = \"new_orders_per_account\"\nburst = 1"),
            ConfigError::OverrideSelector { index: 0, .. }
        ));
        assert!(matches!(
            err(
                "[[overrides]]\nlimit = \"new_orders_per_account\"\naccount = \"a\"\ndomain = \"example.com\"\nburst = 1"
            ),
            ConfigError::OverrideSelector { .. }
        ));
        assert!(matches!(
            err("[[overrides]]\nlimit = \"new_accounts_per_ip\"\naccount = \"a\"\nburst = 1"),
            ConfigError::SelectorNotApplicable {
                selector: "account",
                ..
            }
        ));
        assert_eq!(
            err(
                "[[overrides]]\nlimit = \"certificates_per_domain\"\ndomain = \"www.example.co.uk\"\nburst = 1"
            ),
            ConfigError::NotRegisteredDomain {
                limit: LimitName::CertificatesPerDomain,
                index: 0,
                domain: "www.example.co.uk".into(),
                suggestion: "example.co.uk".into(),
            }
        );
        assert!(matches!(
            err(
                "[[overrides]]\nlimit = \"new_accounts_per_ip\"\nip = \"10.0.0.0/8\"\nburst = 1\n[[overrides]]\nlimit = \"new_accounts_per_ip\"\nip = \"10.1.0.0/8\"\nburst = 2"
            ),
            ConfigError::DuplicateOverride { index: 1, .. }
        ));
    }

    #[test]
    fn configs_round_trip_through_toml() {
        let text = r#"
            [limits.new_orders_per_account]
            burst = 10
            period = "1h30m"
            [[overrides]]
            limit = "new_accounts_per_ip"
            ip = "2001:db8::/32"
            burst = 100
            "#;
        let config = parse(text);
        let again: RateLimitConfig = toml::from_str(&toml::to_string(&config).unwrap()).unwrap();
        assert_eq!(again, config);
    }
}
