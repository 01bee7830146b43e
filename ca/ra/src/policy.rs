//! Identifier policy: which names and addresses the CA will issue for.
//!
//! IP identifiers pass the CA-wide address policy ([`cairn_core::address_policy`]): only
//! globally reachable addresses, unless the operator allows private addresses (a private PKI).
//! DNS names must not be in a reserved special-use domain (`.local`, `.internal`, `.test`, ...)
//! and must not be a bare public suffix (`com`, `co.uk`, `github.io`); a public CA also
//! refuses names whose top-level domain is not on the Public Suffix List. A private PKI
//! (`allow_private_addresses`) may issue for reserved and unlisted domains (internal names are
//! what it is for), never for a bare public suffix.

use cairn_core::{AddressPolicy, Identifier, IdentifierType, Problem, ProblemType, Subproblem};
use serde::{Deserialize, Serialize};
use std::net::IpAddr;

/// Which identifiers are acceptable.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IdentifierPolicy {
    /// Allow `ip` identifiers (RFC 8738).
    pub allow_ip: bool,
    /// Allow wildcard DNS names.
    pub allow_wildcards: bool,
    /// Allow private, loopback, link-local and other special-purpose IP addresses, and names
    /// in reserved or unlisted top-level domains: a private PKI. Not read from the `[ra]`
    /// section: `cairn serve` sets it from the one CA-wide setting,
    /// `[va] allow_private_addresses` (off by default: public CA semantics).
    #[serde(skip)]
    pub allow_private_addresses: bool,
    /// Most identifiers in one order.
    pub max_identifiers: usize,
    /// Names (and their subdomains) that are never issued for.
    pub blocked_names: Vec<String>,
}

impl Default for IdentifierPolicy {
    fn default() -> Self {
        Self {
            allow_ip: true,
            allow_wildcards: true,
            allow_private_addresses: false,
            max_identifiers: 100,
            blocked_names: Vec::new(),
        }
    }
}

/// Normalizes, deduplicates and sorts the identifiers of a new order, refusing the order with a
/// compound problem naming every bad identifier.
pub fn check_identifiers(
    ids: &[Identifier],
    policy: &IdentifierPolicy,
) -> Result<Vec<Identifier>, Problem> {
    if ids.is_empty() {
        return Err(Problem::malformed("the order names no identifiers"));
    }
    if ids.len() > policy.max_identifiers {
        return Err(Problem::new(
            ProblemType::RejectedIdentifier,
            format!(
                "an order may name at most {} identifiers, this one names {}",
                policy.max_identifiers,
                ids.len()
            ),
        ));
    }
    let mut out = Vec::with_capacity(ids.len());
    let mut subs = Vec::new();
    for id in ids {
        match check_one(id, policy) {
            Ok(n) => out.push(n),
            Err((typ, detail)) => subs.push(Subproblem {
                typ,
                detail,
                identifier: id.clone(),
            }),
        }
    }
    if !subs.is_empty() {
        let n = subs.len();
        let mut p = Problem::compound(
            format!("{n} identifier(s) of the order cannot be issued for"),
            subs,
        );
        if p.typ == ProblemType::Compound {
            p = Problem {
                typ: ProblemType::RejectedIdentifier,
                ..p
            };
        }
        return Err(p);
    }
    out.sort();
    out.dedup();
    Ok(out)
}

fn check_one(
    id: &Identifier,
    policy: &IdentifierPolicy,
) -> Result<Identifier, (ProblemType, String)> {
    let n = id.normalized().map_err(|e| {
        let typ = if id.typ == IdentifierType::Ip {
            ProblemType::Malformed
        } else {
            ProblemType::RejectedIdentifier
        };
        (typ, e.to_string())
    })?;
    match n.typ {
        IdentifierType::Ip => {
            if !policy.allow_ip {
                return Err((
                    ProblemType::UnsupportedIdentifier,
                    "IP address identifiers are not accepted by this CA".into(),
                ));
            }
            let addr = n.ip_addr().ok_or((
                ProblemType::Malformed,
                format!("{:?} is not an IP address", n.value),
            ))?;
            AddressPolicy::allowing_private(policy.allow_private_addresses)
                .check(addr)
                .map_err(|e| {
                    (
                        ProblemType::RejectedIdentifier,
                        format!("this CA does not issue for {e}"),
                    )
                })?;
            if let IpAddr::V6(v6) = addr
                && !policy.allow_private_addresses
                && (v6.to_ipv4_mapped().is_some()
                    || v6.segments()[0] == 0x2001 && v6.segments()[1] < 0x200)
            {
                // Certificates name the IPv4 address itself, and the pre-issuance lint
                // (e_ext_san_contains_reserved_ip) refuses all of 2001::/23.
                return Err((
                    ProblemType::RejectedIdentifier,
                    format!(
                        "this CA does not issue for {addr}: IPv4-mapped and 2001::/23 addresses are not certified (ask for the IPv4 address itself)"
                    ),
                ));
            }
        }
        IdentifierType::Dns => {
            if n.is_wildcard() && !policy.allow_wildcards {
                return Err((
                    ProblemType::RejectedIdentifier,
                    "wildcard names are not accepted by this CA".into(),
                ));
            }
            let base = n.authz_identifier().value;
            check_domain(&base, policy.allow_private_addresses)
                .map_err(|why| (ProblemType::RejectedIdentifier, why))?;
            for blocked in &policy.blocked_names {
                let blocked = blocked.trim_end_matches('.').to_ascii_lowercase();
                if base == blocked || base.ends_with(&format!(".{blocked}")) {
                    return Err((
                        ProblemType::RejectedIdentifier,
                        format!("{} is blocked by the CA's policy", n.value),
                    ));
                }
            }
        }
    }
    Ok(n)
}

/// Special-use domains (the IANA special-use domain names registry and ICANN's reserved
/// `.internal`): names under them never belong to anyone on the public Internet.
pub(crate) const RESERVED_DOMAINS: &[&str] = &[
    "alt",       // RFC 9476
    "arpa",      // infrastructure, including home.arpa (RFC 8375) and the reverse zones
    "example",   // RFC 2606, RFC 6761
    "internal",  // ICANN, for private use
    "invalid",   // RFC 2606, RFC 6761
    "local",     // RFC 6762 (multicast DNS)
    "localhost", // RFC 2606, RFC 6761
    "onion",     // RFC 7686
    "test",      // RFC 2606, RFC 6761
];

/// Checks a (normalized, wildcard-free) DNS name against the reserved-domain and public-suffix
/// rules; `Err` says why the CA does not issue for it.
fn check_domain(name: &str, private_pki: bool) -> Result<(), String> {
    let tld = name.rsplit('.').next().unwrap_or(name);
    if !private_pki && let Some(reserved) = RESERVED_DOMAINS.iter().find(|r| **r == tld) {
        return Err(format!(
            "{name} is in the reserved domain .{reserved}, which this CA does not issue for"
        ));
    }
    match psl::suffix(name.as_bytes()) {
        Some(suffix)
            if suffix.as_bytes() == name.as_bytes() && (suffix.is_known() || !private_pki) =>
        {
            Err(format!(
                "{name} is a public suffix: certificates are issued for names under it, not for it"
            ))
        }
        Some(suffix) if !suffix.is_known() && !private_pki => Err(format!(
            "{name} does not end in a top-level domain on the Public Suffix List"
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_normalized_sorted_and_deduplicated() {
        let out = check_identifiers(
            &[
                Identifier::dns("B.example.com"),
                Identifier::dns("a.example.com"),
                Identifier::dns("b.example.com."),
            ],
            &IdentifierPolicy::default(),
        )
        .unwrap();
        assert_eq!(
            out,
            vec![
                Identifier::dns("a.example.com"),
                Identifier::dns("b.example.com")
            ]
        );
    }

    #[test]
    fn every_bad_identifier_is_reported() {
        let err = check_identifiers(
            &[
                Identifier::dns("ok.example.com"),
                Identifier::dns("bad name.com"),
                Identifier::dns("*.*.example.com"),
            ],
            &IdentifierPolicy::default(),
        )
        .unwrap_err();
        assert_eq!(err.typ, ProblemType::RejectedIdentifier);
        assert_eq!(err.subproblems.len(), 2);
    }

    #[test]
    fn public_ca_policy_refuses_private_ips_and_blocked_names() {
        let policy = IdentifierPolicy {
            blocked_names: vec!["example.net".into()],
            ..Default::default()
        };
        let e = check_identifiers(&[Identifier::ip("10.0.0.1".parse().unwrap())], &policy);
        assert_eq!(e.unwrap_err().typ, ProblemType::RejectedIdentifier);
        assert!(check_identifiers(&[Identifier::ip("8.8.8.8".parse().unwrap())], &policy).is_ok());
        let e = check_identifiers(&[Identifier::dns("www.example.net")], &policy);
        assert_eq!(e.unwrap_err().typ, ProblemType::RejectedIdentifier);
    }

    #[test]
    fn too_many_or_no_identifiers_are_refused() {
        let policy = IdentifierPolicy {
            max_identifiers: 1,
            ..Default::default()
        };
        let two = [
            Identifier::dns("a.example.com"),
            Identifier::dns("b.example.com"),
        ];
        assert!(check_identifiers(&two, &policy).is_err());
        assert_eq!(
            check_identifiers(&[], &policy).unwrap_err().typ,
            ProblemType::Malformed
        );
    }

    fn refused(id: Identifier, policy: &IdentifierPolicy) -> String {
        let p = check_identifiers(std::slice::from_ref(&id), policy).unwrap_err();
        assert_eq!(p.typ, ProblemType::RejectedIdentifier, "{id}: {p:?}");
        p.subproblems
            .first()
            .map_or(p.detail.clone(), |s| s.detail.clone())
    }

    #[test]
    fn the_default_policy_refuses_every_non_public_address() {
        let policy = IdentifierPolicy::default();
        assert!(!policy.allow_private_addresses);
        for a in [
            "10.0.0.1",
            "127.0.0.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.1.2.3",
            "240.0.0.1",
            "198.18.0.1",
            "192.0.0.8",
            "::1",
            "::ffff:10.0.0.1",
            "::ffff:127.0.0.1",
            "64:ff9b::a00:1",
            "64:ff9b:1::1",
            "2002:a00:1::1",
            "fd00::1",
            "fe80::1",
            "2001:db8::1",
        ] {
            let detail = refused(Identifier::ip(a.parse().unwrap()), &policy);
            assert!(detail.contains("is not a public address"), "{a}: {detail}");
        }
        for a in ["::ffff:8.8.8.8", "2001:1::1"] {
            let detail = refused(Identifier::ip(a.parse().unwrap()), &policy);
            assert!(detail.contains("are not certified"), "{a}: {detail}");
        }
        for a in ["8.8.8.8", "2606:4700:4700::1111", "64:ff9b::808:808"] {
            assert!(
                check_identifiers(&[Identifier::ip(a.parse().unwrap())], &policy).is_ok(),
                "{a}"
            );
        }
    }

    #[test]
    fn a_private_pki_may_issue_for_private_addresses_but_not_for_non_hosts() {
        let policy = IdentifierPolicy {
            allow_private_addresses: true,
            ..Default::default()
        };
        for a in ["10.0.0.1", "127.0.0.1", "::1", "fd00::1"] {
            assert!(
                check_identifiers(&[Identifier::ip(a.parse().unwrap())], &policy).is_ok(),
                "{a}"
            );
        }
        for a in ["0.0.0.0", "224.0.0.1", "255.255.255.255", "::", "ff02::1"] {
            refused(Identifier::ip(a.parse().unwrap()), &policy);
        }
    }

    #[test]
    fn reserved_domains_and_public_suffixes_are_refused() {
        let policy = IdentifierPolicy::default();
        for name in [
            "printer.local",
            "db.internal",
            "app.localhost",
            "x.invalid",
            "cairn.test",
            "www.example",
            "abcdefghijklmnop.onion",
            "name.alt",
            "router.home.arpa",
            "1.0.0.127.in-addr.arpa",
            "*.corp.internal",
        ] {
            let detail = refused(Identifier::dns(name), &policy);
            assert!(detail.contains("reserved domain"), "{name}: {detail}");
        }
        for name in ["co.uk", "github.io", "*.co.uk"] {
            let detail = refused(Identifier::dns(name), &policy);
            assert!(detail.contains("is a public suffix"), "{name}: {detail}");
        }
        let detail = refused(Identifier::dns("host.notatld"), &policy);
        assert!(detail.contains("Public Suffix List"), "{detail}");
        for name in [
            "example.com",
            "www.example.co.uk",
            "*.example.com",
            "me.github.io",
        ] {
            assert!(
                check_identifiers(&[Identifier::dns(name)], &policy).is_ok(),
                "{name}"
            );
        }
    }

    #[test]
    fn a_private_pki_may_issue_for_internal_names_but_never_for_a_public_suffix() {
        let policy = IdentifierPolicy {
            allow_private_addresses: true,
            ..Default::default()
        };
        for name in ["db.internal", "printer.local", "cairn.test", "host.corp"] {
            assert!(
                check_identifiers(&[Identifier::dns(name)], &policy).is_ok(),
                "{name}"
            );
        }
        for name in ["co.uk", "github.io", "*.co.uk"] {
            refused(Identifier::dns(name), &policy);
        }
    }
}
