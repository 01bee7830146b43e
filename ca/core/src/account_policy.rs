//! Identifier policy per account, for a private PKI: which names and addresses an account may
//! have certificates for, and which of them the operator vouches for so that their
//! authorizations are valid without a challenge.
//!
//! A policy is a list of entries, each a pattern and whether it is pre-validated:
//! - `host.corp.example`: that name exactly;
//! - `*.team-a.corp.example`: any name strictly below `team-a.corp.example`, at any depth, and
//!   wildcard names there (`*.team-a.corp.example`, `*.x.team-a.corp.example`); not
//!   `team-a.corp.example` itself;
//! - `10.20.0.0/16`, `2001:db8::/32`, or one address: IP identifiers in that range.
//!
//! An account with a policy may order only identifiers some entry matches; an identifier that
//! a pre-validated entry matches gets a valid authorization at once. An account without a
//! policy is unrestricted (the CA-wide rules still apply). Pure data and matching: storage
//! keeps it as JSON, the RA enforces it.

use crate::{Identifier, IdentifierType};
use serde::{Deserialize, Serialize};
use std::net::IpAddr;

/// One allow-list entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyEntry {
    /// The pattern as the operator wrote it (normalized: lowercase, no trailing dot).
    pub pattern: String,
    /// Orders for matching identifiers get valid authorizations without a challenge.
    #[serde(default)]
    pub pre_validated: bool,
}

/// An account's identifier policy.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountPolicy {
    /// The allow-list; empty allows nothing.
    pub entries: Vec<PolicyEntry>,
}

/// A pattern that is not a name, `*.`-suffix, address or CIDR range.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a DNS name, *.suffix, IP address or CIDR range")]
pub struct BadPattern(pub String);

/// A parsed pattern.
enum Pattern<'a> {
    Exact(&'a str),
    Below(&'a str),
    Range(IpAddr, u8),
}

fn parse_pattern(p: &str) -> Option<Pattern<'_>> {
    if let Some((addr, len)) = p.split_once('/') {
        let addr: IpAddr = addr.parse().ok()?;
        let len: u8 = len.parse().ok()?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        return (len <= max).then_some(Pattern::Range(addr, len));
    }
    if let Ok(addr) = p.parse::<IpAddr>() {
        return Some(Pattern::Range(addr, if addr.is_ipv4() { 32 } else { 128 }));
    }
    let (below, name) = match p.strip_prefix("*.") {
        Some(rest) => (true, rest),
        None => (false, p),
    };
    let valid = !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        });
    valid.then_some(if below {
        Pattern::Below(name)
    } else {
        Pattern::Exact(name)
    })
}

fn in_range(ip: IpAddr, net: IpAddr, len: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

impl PolicyEntry {
    /// An entry from operator input, checked and normalized.
    pub fn new(pattern: &str, pre_validated: bool) -> Result<Self, BadPattern> {
        let p = pattern.trim().trim_end_matches('.').to_ascii_lowercase();
        if parse_pattern(&p).is_none() {
            return Err(BadPattern(pattern.to_owned()));
        }
        Ok(Self {
            pattern: p,
            pre_validated,
        })
    }

    /// Whether the entry covers `id` (normalized, as in an order; wildcards with `*.`).
    pub fn matches(&self, id: &Identifier) -> bool {
        let Some(pattern) = parse_pattern(&self.pattern) else {
            return false;
        };
        match (pattern, id.typ) {
            (Pattern::Range(net, len), IdentifierType::Ip) => id
                .value
                .parse::<IpAddr>()
                .is_ok_and(|ip| in_range(ip, net, len)),
            (Pattern::Exact(name), IdentifierType::Dns) => id.value == name,
            (Pattern::Below(base), IdentifierType::Dns) => {
                // A wildcard covers only names below its base: `*.<base>` itself is allowed.
                let (name, wildcard) = match id.value.strip_prefix("*.") {
                    Some(n) => (n, true),
                    None => (id.value.as_str(), false),
                };
                (wildcard && name == base)
                    || (name.len() > base.len()
                        && name.ends_with(base)
                        && name.as_bytes()[name.len() - base.len() - 1] == b'.')
            }
            _ => false,
        }
    }
}

impl AccountPolicy {
    /// The first entry covering `id`, if any.
    pub fn entry_for(&self, id: &Identifier) -> Option<&PolicyEntry> {
        self.entries.iter().find(|e| e.matches(id))
    }

    /// Whether `id` may be ordered.
    pub fn allows(&self, id: &Identifier) -> bool {
        self.entry_for(id).is_some()
    }

    /// Whether `id` is pre-validated (some pre-validated entry covers it).
    pub fn pre_validated(&self, id: &Identifier) -> bool {
        self.entries
            .iter()
            .any(|e| e.pre_validated && e.matches(id))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn policy() -> AccountPolicy {
        AccountPolicy {
            entries: vec![
                PolicyEntry::new("*.Team-A.corp.example.", true).unwrap(),
                PolicyEntry::new("db.corp.example", false).unwrap(),
                PolicyEntry::new("10.20.0.0/16", false).unwrap(),
                PolicyEntry::new("2001:db8::/32", true).unwrap(),
            ],
        }
    }

    #[test]
    fn patterns_match_as_documented() {
        let p = policy();
        assert_eq!(p.entries[0].pattern, "*.team-a.corp.example");
        for (id, allowed, pre) in [
            (Identifier::dns("www.team-a.corp.example"), true, true),
            (Identifier::dns("a.b.team-a.corp.example"), true, true),
            (Identifier::dns("*.x.team-a.corp.example"), true, true),
            (Identifier::dns("*.team-a.corp.example"), true, true),
            (Identifier::dns("team-a.corp.example"), false, false),
            (Identifier::dns("evilteam-a.corp.example"), false, false),
            (Identifier::dns("www.team-b.corp.example"), false, false),
            (Identifier::dns("db.corp.example"), true, false),
            (Identifier::dns("x.db.corp.example"), false, false),
            (Identifier::ip("10.20.255.1".parse().unwrap()), true, false),
            (Identifier::ip("10.21.0.1".parse().unwrap()), false, false),
            (Identifier::ip("2001:db8::5".parse().unwrap()), true, true),
            (Identifier::ip("2001:db9::5".parse().unwrap()), false, false),
        ] {
            assert_eq!(p.allows(&id), allowed, "{id:?}");
            assert_eq!(p.pre_validated(&id), pre, "{id:?}");
        }
        assert!(!AccountPolicy::default().allows(&Identifier::dns("a.example")));
    }

    #[test]
    fn bad_patterns_are_refused() {
        for bad in [
            "",
            "*.",
            "a..b",
            "10.0.0.0/33",
            "::/129",
            "-a.example",
            "a_b.example",
            "*",
        ] {
            assert!(PolicyEntry::new(bad, false).is_err(), "{bad:?}");
        }
        assert!(PolicyEntry::new("10.1.2.3", false).is_ok());
    }
}
