//! Identifier policy: which names and addresses the CA will issue for.

use cairn_core::{Identifier, IdentifierType, Problem, ProblemType, Subproblem};
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
    /// Allow private, loopback and link-local IP addresses (a private PKI or a test setup wants
    /// them; a public CA does not).
    pub allow_non_public_ips: bool,
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
            allow_non_public_ips: true,
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
            if let Some(addr) = n.ip_addr()
                && !policy.allow_non_public_ips
                && !is_public(addr)
            {
                return Err((
                    ProblemType::RejectedIdentifier,
                    format!("{addr} is not a public IP address"),
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

fn is_public(addr: IpAddr) -> bool {
    match addr {
        IpAddr::V4(v4) => {
            !(v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_documentation()
                || v4.is_multicast()
                || v4.octets()[0] == 100 && (v4.octets()[1] & 0xc0) == 64)
        }
        IpAddr::V6(v6) => {
            let seg0 = v6.segments()[0];
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (seg0 & 0xfe00) == 0xfc00
                || (seg0 & 0xffc0) == 0xfe80
                || (seg0 == 0x2001 && v6.segments()[1] == 0x0db8))
        }
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
            allow_non_public_ips: false,
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
}
