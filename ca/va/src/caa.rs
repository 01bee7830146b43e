//! CAA checking (RFC 8659): find the relevant RRset by climbing the name tree, then decide
//! whether one of the CA's identities may issue.

use crate::Va;
use crate::resolver::LookupFailure;
use cairn_core::{Identifier, IdentifierType, Problem, ProblemType};
use hickory_resolver::proto::rr::rdata::CAA;
use hickory_resolver::proto::rr::{RData, RecordType};
use hickory_resolver::proto::serialize::binary::{BinDecoder, Restrict};

/// Tags this CA understands; a critical record with any other tag forbids issuance.
const KNOWN_TAGS: &[&str] = &["issue", "issuewild", "iodef"];

/// A parsed `issue`/`issuewild` value (RFC 8659 §4.2): the issuer domain (possibly empty) and
/// its parameters.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct IssueValue {
    /// The issuer domain name, lowercased (empty when the value names no issuer).
    pub(crate) domain: String,
    /// `tag=value` parameters in order, tags lowercased.
    pub(crate) params: Vec<(String, String)>,
}

/// Parses an `issue`/`issuewild` value; `None` if it is malformed (RFC 8659 §4.2), which makes
/// the record authorize nobody.
pub(crate) fn parse_issue_value(raw: &[u8]) -> Option<IssueValue> {
    let s = std::str::from_utf8(raw).ok()?;
    let mut parts = s.split(';');
    let domain = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
    if !domain
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
    {
        return None;
    }
    let mut params = Vec::new();
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
        params.push((k.to_ascii_lowercase(), v.to_owned()));
    }
    Some(IssueValue { domain, params })
}

/// What a CAA record is checked against.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CaaSubject<'a> {
    /// The name is a wildcard (`issuewild` applies when present).
    pub(crate) wildcard: bool,
    /// This CA's issuer domain names.
    pub(crate) ca_identities: &'a [String],
    /// The requesting account's URI forms, for RFC 8657 `accounturi`.
    pub(crate) account: Option<&'a crate::CaaAccount>,
    /// The validation method used, for RFC 8657 `validationmethods` (e.g. `http-01`).
    pub(crate) method: Option<&'a str>,
}

/// RFC 8657: a record with `accounturi` authorizes only that account; one with
/// `validationmethods` only those methods. Without the information to check them (no account,
/// no method), a record carrying them authorizes nothing.
fn params_allow(value: &IssueValue, subject: &CaaSubject<'_>) -> bool {
    value.params.iter().all(|(k, v)| match k.as_str() {
        "accounturi" => subject.account.is_some_and(|a| a.matches(v)),
        "validationmethods" => subject.method.is_some_and(|m| {
            v.split(',')
                .any(|listed| listed.trim().eq_ignore_ascii_case(m))
        }),
        _ => true,
    })
}

/// Decides whether the relevant CAA RRset allows issuance.
fn evaluate(rrset: &[CAA], subject: &CaaSubject<'_>) -> Result<(), String> {
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
    let relevant = if subject.wildcard && !wild.is_empty() {
        wild
    } else {
        with_tag("issue")
    };
    if relevant.is_empty() {
        return Ok(());
    }
    let mut named_us = false;
    for r in &relevant {
        let Some(value) = parse_issue_value(&r.value) else {
            continue;
        };
        let ours = !value.domain.is_empty()
            && subject
                .ca_identities
                .iter()
                .any(|id| id.trim_end_matches('.').eq_ignore_ascii_case(&value.domain));
        if ours {
            named_us = true;
            if params_allow(&value, subject) {
                return Ok(());
            }
        }
    }
    if named_us {
        Err(
            "the CAA records for this CA restrict the account or the validation method (RFC 8657)"
                .into(),
        )
    } else {
        Err("the CAA records do not authorize this CA".into())
    }
}

/// Decodes CAA records from their RDATA wire format (RFC 8659 §4.1), as the resolver does,
/// and decides whether the RRset lets one of `ca_identities` issue for a name (`wildcard`:
/// for a wildcard name). `Err` says why not, or that a record is malformed. A pure function
/// over untrusted input, for fuzzing.
pub fn check_caa_records(
    rdata: &[&[u8]],
    wildcard: bool,
    ca_identities: &[String],
) -> Result<(), String> {
    let mut rrset = Vec::with_capacity(rdata.len());
    for raw in rdata {
        let len = u16::try_from(raw.len()).map_err(|_| "a CAA record is too long".to_string())?;
        let mut decoder = BinDecoder::new(raw);
        match RData::read(&mut decoder, RecordType::CAA, Restrict::new(len)) {
            Ok(RData::CAA(c)) => rrset.push(c),
            _ => return Err("a CAA record is malformed".into()),
        }
    }
    evaluate(
        &rrset,
        &CaaSubject {
            wildcard,
            ca_identities,
            account: None,
            method: None,
        },
    )
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
        let subject = CaaSubject {
            wildcard,
            ca_identities,
            account: None,
            method: None,
        };
        self.check_caa_for(identifier, &subject).await
    }

    /// [`Va::check_caa`] with RFC 8657 account and method binding.
    pub(crate) async fn check_caa_for(
        &self,
        identifier: &Identifier,
        subject: &CaaSubject<'_>,
    ) -> Result<(), Problem> {
        let wildcard = subject.wildcard;
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
            let subject = CaaSubject {
                wildcard,
                ..*subject
            };
            return evaluate(&rrset, &subject).map_err(|why| {
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

    fn domain(raw: &[u8]) -> Option<String> {
        parse_issue_value(raw).map(|v| v.domain)
    }

    fn subject<'a>(wildcard: bool, ids: &'a [String]) -> CaaSubject<'a> {
        CaaSubject {
            wildcard,
            ca_identities: ids,
            account: None,
            method: None,
        }
    }

    #[test]
    fn caa_records_decode_from_wire_format() {
        let ids = vec!["ca.example".to_string()];
        // flags 0, tag "issue", value "ca.example".
        let ours: &[u8] = b"\x00\x05issueca.example";
        let theirs: &[u8] = b"\x00\x05issueother.example";
        assert!(check_caa_records(&[ours], false, &ids).is_ok());
        assert!(check_caa_records(&[theirs], false, &ids).is_err());
        assert!(check_caa_records(&[], false, &ids).is_ok());
        // A tag length past the end is malformed, never a panic.
        assert!(check_caa_records(&[b"\x00\xffissue"], false, &ids).is_err());
        assert!(check_caa_records(&[b""], false, &ids).is_err());
    }

    #[test]
    fn issue_values_parse() {
        assert_eq!(domain(b"ca.example").as_deref(), Some("ca.example"));
        let v =
            parse_issue_value(b" CA.example ; accounturi=https://x/1; validationmethods=dns-01")
                .unwrap();
        assert_eq!(v.domain, "ca.example");
        assert_eq!(v.params.len(), 2);
        assert_eq!(domain(b";").as_deref(), Some(""));
        assert_eq!(domain(b"ca.example; bad param"), None);
    }

    #[test]
    fn account_and_method_binding() {
        let ids = vec!["ca.example".to_string()];
        let account = crate::CaaAccount {
            path: "/acme/acct/A1".into(),
            prefixes: vec!["https://acme.example".into()],
        };
        let bound = [caa(
            0,
            "issue",
            "ca.example; accounturi=https://acme.example/acme/acct/A1; validationmethods=dns-01,http-01",
        )];
        let mut s = subject(false, &ids);
        s.account = Some(&account);
        s.method = Some("http-01");
        assert!(evaluate(&bound, &s).is_ok());
        s.method = Some("tls-alpn-01");
        assert!(evaluate(&bound, &s).is_err(), "method not listed");
        s.method = Some("dns-01");
        let other = crate::CaaAccount {
            path: "/acme/acct/B2".into(),
            prefixes: vec![],
        };
        s.account = Some(&other);
        assert!(evaluate(&bound, &s).is_err(), "another account");
        // Without the facts to check, a bound record authorizes nothing.
        assert!(evaluate(&bound, &subject(false, &ids)).is_err());
        // Any one permitting record suffices.
        let set = [bound[0].clone(), caa(0, "issue", "ca.example")];
        assert!(evaluate(&set, &s).is_ok());
    }

    #[test]
    fn evaluation_rules() {
        let ids = vec!["ca.example".to_string()];
        assert!(evaluate(&[caa(0, "issue", "ca.example")], &subject(false, &ids)).is_ok());
        assert!(evaluate(&[caa(0, "issue", "other.example")], &subject(false, &ids)).is_err());
        assert!(evaluate(&[caa(0, "issue", ";")], &subject(false, &ids)).is_err());
        assert!(evaluate(&[caa(0, "iodef", "mailto:x@y")], &subject(false, &ids)).is_ok());
        // issuewild wins for wildcards, issue applies otherwise.
        let set = [caa(0, "issue", "ca.example"), caa(0, "issuewild", ";")];
        assert!(evaluate(&set, &subject(false, &ids)).is_ok());
        assert!(evaluate(&set, &subject(true, &ids)).is_err());
        let set = [
            caa(0, "issue", "other.example"),
            caa(0, "issuewild", "ca.example"),
        ];
        assert!(evaluate(&set, &subject(true, &ids)).is_ok());
        // Unknown critical tag forbids, unknown non-critical is ignored.
        assert!(
            evaluate(
                &[caa(128, "tbs", "x"), caa(0, "issue", "ca.example")],
                &subject(false, &ids)
            )
            .is_err()
        );
        assert!(
            evaluate(
                &[caa(0, "tbs", "x"), caa(0, "issue", "ca.example")],
                &subject(false, &ids)
            )
            .is_ok()
        );
    }
}
