//! CAA checking (RFC 8659): find the relevant RRset by climbing the name tree, then decide
//! whether one of the CA's identities may issue.

use crate::Va;
use crate::resolver::LookupFailure;
use cairn_core::{Identifier, IdentifierType, Problem, ProblemType};
use hickory_resolver::proto::rr::RecordType;
use hickory_resolver::proto::rr::rdata::CAA;

/// Tags this CA understands; a critical record with any other tag forbids issuance.
const KNOWN_TAGS: &[&str] = &["issue", "issuewild", "iodef"];

/// Parses an `issue`/`issuewild` value: the issuer domain (possibly empty) and whether the
/// parameter list is well formed (RFC 8659 §4.2).
fn parse_issue_value(raw: &[u8]) -> Option<String> {
    let s = std::str::from_utf8(raw).ok()?;
    let mut parts = s.split(';');
    let domain = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
    if !domain
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
    {
        return None;
    }
    for p in parts {
        let p = p.trim();
        if p.is_empty() {
            continue;
        }
        let (k, v) = p.split_once('=')?;
        let (k, v) = (k.trim(), v.trim());
        if k.is_empty() || !k.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return None;
        }
        if v.bytes().any(|b| !(0x21..=0x7e).contains(&b) || b == b';') {
            return None;
        }
    }
    Some(domain)
}

/// Decides whether the relevant CAA RRset allows issuance.
fn evaluate(rrset: &[CAA], wildcard: bool, ca_identities: &[String]) -> Result<(), String> {
    for r in rrset {
        if r.issuer_critical && !KNOWN_TAGS.iter().any(|t| r.tag.eq_ignore_ascii_case(t)) {
            return Err(format!(
                "a critical CAA record with the unknown tag {:?} is present",
                r.tag
            ));
        }
    }
    let with_tag = |tag: &str| -> Vec<&CAA> {
        rrset
            .iter()
            .filter(|r| r.tag.eq_ignore_ascii_case(tag))
            .collect()
    };
    let wild = with_tag("issuewild");
    let relevant = if wildcard && !wild.is_empty() {
        wild
    } else {
        with_tag("issue")
    };
    if relevant.is_empty() {
        return Ok(());
    }
    let allowed = relevant.iter().any(|r| {
        parse_issue_value(&r.value).is_some_and(|d| {
            !d.is_empty()
                && ca_identities
                    .iter()
                    .any(|id| id.trim_end_matches('.').eq_ignore_ascii_case(&d))
        })
    });
    if allowed {
        Ok(())
    } else {
        Err("the CAA records do not authorize this CA".into())
    }
}

impl Va {
    /// Checks CAA for `identifier` (RFC 8659): climbs from the name towards the root (the root
    /// itself excluded) and evaluates the first non-empty CAA RRset. `issuewild` governs
    /// wildcard names when present, `issue` otherwise; parameters are accepted; a critical
    /// record with an unknown tag forbids issuance. No CAA anywhere allows issuance. Lookup
    /// failures (SERVFAIL, timeouts) are `dns` problems, never "no records". IP identifiers
    /// have no CAA and always pass.
    pub async fn check_caa(
        &self,
        identifier: &Identifier,
        wildcard: bool,
        ca_identities: &[String],
    ) -> Result<(), Problem> {
        if identifier.typ == IdentifierType::Ip {
            return Ok(());
        }
        let lower = identifier.value.trim_end_matches('.').to_ascii_lowercase();
        let (wildcard, name) = match lower.strip_prefix("*.") {
            Some(base) => (true, base.to_string()),
            None => (wildcard, lower),
        };
        let labels: Vec<&str> = name.split('.').filter(|l| !l.is_empty()).collect();
        for i in 0..labels.len() {
            let candidate = labels[i..].join(".");
            let rrset = match self.dns.lookup_caa(&candidate).await {
                Ok(v) => v,
                Err(LookupFailure::NxDomain) => Vec::new(),
                Err(e) => {
                    let mut p = e.problem(RecordType::CAA, &candidate);
                    p.detail = format!("{} while checking CAA for {name}", p.detail);
                    return Err(p);
                }
            };
            if rrset.is_empty() {
                continue;
            }
            return evaluate(&rrset, wildcard, ca_identities).map_err(|why| {
                Problem::new(
                    ProblemType::Caa,
                    format!("CAA record for {candidate} prevents issuance: {why}"),
                )
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caa(flag: u8, tag: &str, value: &str) -> CAA {
        let mut c = CAA::new_issue(false, None, Vec::new());
        c.issuer_critical = flag & 0x80 != 0;
        c.tag = tag.into();
        c.value = value.as_bytes().to_vec();
        c
    }

    #[test]
    fn issue_values_parse() {
        assert_eq!(
            parse_issue_value(b"ca.example").as_deref(),
            Some("ca.example")
        );
        assert_eq!(
            parse_issue_value(b" CA.example ; accounturi=https://x/1; validationmethods=dns-01")
                .as_deref(),
            Some("ca.example")
        );
        assert_eq!(parse_issue_value(b";").as_deref(), Some(""));
        assert_eq!(parse_issue_value(b"ca.example; bad param"), None);
    }

    #[test]
    fn evaluation_rules() {
        let ids = vec!["ca.example".to_string()];
        assert!(evaluate(&[caa(0, "issue", "ca.example")], false, &ids).is_ok());
        assert!(evaluate(&[caa(0, "issue", "other.example")], false, &ids).is_err());
        assert!(evaluate(&[caa(0, "issue", ";")], false, &ids).is_err());
        assert!(evaluate(&[caa(0, "iodef", "mailto:x@y")], false, &ids).is_ok());
        // issuewild wins for wildcards, issue applies otherwise.
        let set = [caa(0, "issue", "ca.example"), caa(0, "issuewild", ";")];
        assert!(evaluate(&set, false, &ids).is_ok());
        assert!(evaluate(&set, true, &ids).is_err());
        let set = [
            caa(0, "issue", "other.example"),
            caa(0, "issuewild", "ca.example"),
        ];
        assert!(evaluate(&set, true, &ids).is_ok());
        // Unknown critical tag forbids, unknown non-critical is ignored.
        assert!(
            evaluate(
                &[caa(128, "tbs", "x"), caa(0, "issue", "ca.example")],
                false,
                &ids
            )
            .is_err()
        );
        assert!(
            evaluate(
                &[caa(0, "tbs", "x"), caa(0, "issue", "ca.example")],
                false,
                &ids
            )
            .is_ok()
        );
    }
}
