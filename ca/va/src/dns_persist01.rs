//! dns-persist-01 (draft-ietf-acme-dns-persist-01; CA/Browser Forum Baseline Requirements
//! §3.2.2.4.22): one standing TXT record at `_validation-persist.<name>` names the CA and the
//! account allowed to issue for `<name>`, so renewals need no DNS change.
//!
//! The record's RDATA is a CAA `issue-value` (RFC 8659 §4.2):
//! `<issuer-domain-name>; accounturi=<account URL>[; policy=wildcard][; persistUntil=<unix>]`.
//! A record validates when, read fresh at this attempt:
//! - its issuer domain name is one of the CA's issuer domain names (the CAA identities,
//!   compared lowercase without a trailing dot); records naming other CAs are ignored;
//! - its `accounturi` names the requesting account (the RFC 8657 comparison CAA uses);
//! - a wildcard authorization has `policy=wildcard` (value compared case-insensitively; any
//!   other value counts as absent);
//! - `persistUntil`, if present, is a base-10 integer not in the past (a malformed value
//!   rejects the record).
//!
//! Unknown parameters are ignored (forward compatibility). Several records may sit at the
//! name (several CAs, several accounts): each is judged on its own and one valid record is
//! enough. The `persistUntil` of the record that validated goes into the validation record so
//! the RA caps the authorization's lifetime at it.
//!
//! Left out on purpose (see docs/acme-divergences.md): issuing for subdomains of a name whose
//! record carries `policy=wildcard` (a MAY of the draft's §6: Cairn validates each name at its
//! own `_validation-persist` label), and just-in-time validation at order creation (§4.4).

use crate::caa::parse_issue_value;
use crate::resolver::LookupFailure;
use crate::{CaaAccount, Va, reject};
use cairn_core::{Identifier, IdentifierType, Problem, ProblemType, ValidationRecord};
use hickory_resolver::proto::rr::RecordType;

/// The DNS label of persistent validation records.
pub const VALIDATION_PERSIST_LABEL: &str = "_validation-persist";

/// What one validation is judged against.
#[derive(Debug, Clone, Copy)]
pub struct PersistSubject<'a> {
    /// The CA's issuer domain names (lowercase A-labels without trailing dot).
    pub issuer_domain_names: &'a [String],
    /// The requesting account.
    pub account: &'a CaaAccount,
    /// The authorization is for a wildcard name.
    pub wildcard: bool,
    /// The current time, UNIX seconds.
    pub now: i64,
}

/// Why a record at the name does not validate this request.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PersistRejection {
    /// Not an RFC 8659 issue-value.
    Malformed,
    /// Names another CA (ignored, as the draft requires).
    OtherIssuer,
    /// No `accounturi` parameter.
    NoAccountUri,
    /// The `accounturi` names another account.
    OtherAccount,
    /// The authorization is for a wildcard and the record lacks `policy=wildcard`.
    NotForWildcard,
    /// `persistUntil` is not a base-10 integer.
    BadPersistUntil,
    /// `persistUntil` has passed.
    Expired,
}

impl PersistRejection {
    fn describe(&self) -> &'static str {
        match self {
            Self::Malformed => "is not a valid issue-value",
            Self::OtherIssuer => "names another issuer",
            Self::NoAccountUri => "has no accounturi parameter",
            Self::OtherAccount => "has an accounturi naming another account",
            Self::NotForWildcard => "lacks policy=wildcard, needed for a wildcard name",
            Self::BadPersistUntil => "has a persistUntil that is not a base-10 integer",
            Self::Expired => "has a persistUntil in the past",
        }
    }
}

/// Judges one TXT record: `Ok(persist_until)` if it validates the request.
pub fn check_persist_record(
    rdata: &str,
    subject: &PersistSubject<'_>,
) -> Result<Option<i64>, PersistRejection> {
    let value = parse_issue_value(rdata.trim().as_bytes()).ok_or(PersistRejection::Malformed)?;
    let issuer = value.domain.trim_end_matches('.');
    if issuer.is_empty()
        || !subject
            .issuer_domain_names
            .iter()
            .any(|n| n.trim_end_matches('.').eq_ignore_ascii_case(issuer))
    {
        return Err(PersistRejection::OtherIssuer);
    }
    let param = |tag: &str| {
        value
            .params
            .iter()
            .find(|(k, _)| k == tag)
            .map(|(_, v)| v.as_str())
    };
    let account_uri = param("accounturi").ok_or(PersistRejection::NoAccountUri)?;
    if !subject.account.matches(account_uri) {
        return Err(PersistRejection::OtherAccount);
    }
    let persist_until = match param("persistuntil") {
        None => None,
        Some(v) => {
            if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
                return Err(PersistRejection::BadPersistUntil);
            }
            let t: i64 = v.parse().map_err(|_| PersistRejection::BadPersistUntil)?;
            if t < subject.now {
                return Err(PersistRejection::Expired);
            }
            Some(t)
        }
    };
    let wildcard_policy = param("policy").is_some_and(|p| p.eq_ignore_ascii_case("wildcard"));
    if subject.wildcard && !wildcard_policy {
        return Err(PersistRejection::NotForWildcard);
    }
    Ok(persist_until)
}

/// Judges every record at the name: the `persistUntil` of a validating record (the latest
/// one when several validate; `None` inside means "no limit"), or why none validates — the
/// rejection of a record naming this CA if there is one, else [`PersistRejection::OtherIssuer`].
pub fn check_persist_records(
    rdatas: &[String],
    subject: &PersistSubject<'_>,
) -> Result<Option<i64>, PersistRejection> {
    let mut best: Option<Option<i64>> = None;
    let mut why = PersistRejection::OtherIssuer;
    for r in rdatas {
        match check_persist_record(r, subject) {
            Ok(until) => {
                best = Some(match (best, until) {
                    // No persistUntil on any validating record: no limit.
                    (Some(None), _) | (_, None) => None,
                    (Some(Some(a)), Some(b)) => Some(a.max(b)),
                    (None, Some(b)) => Some(b),
                });
            }
            Err(PersistRejection::OtherIssuer | PersistRejection::Malformed) => {}
            Err(e) => why = e,
        }
    }
    best.ok_or(why)
}

impl Va {
    /// Performs dns-persist-01 validation.
    pub(crate) async fn validate_dns_persist01(
        &self,
        identifier: &Identifier,
        subject: Option<PersistSubject<'_>>,
        records: &mut Vec<ValidationRecord>,
    ) -> Result<(), Problem> {
        if identifier.typ != IdentifierType::Dns {
            return Err(Problem::new(
                ProblemType::Malformed,
                "dns-persist-01 cannot validate IP address identifiers",
            ));
        }
        let Some(subject) = subject else {
            return Err(Problem::new(
                ProblemType::ServerInternal,
                "dns-persist-01 needs the account and the CA's issuer domain names",
            ));
        };
        let name = format!("{VALIDATION_PERSIST_LABEL}.{}", identifier.value);
        let mut record = ValidationRecord {
            hostname: Some(identifier.value.clone()),
            resolver_addrs: Some(vec![self.config.dns_server.to_string()]),
            ..Default::default()
        };
        let values = match self.dns.lookup_txt(&name).await {
            Ok(v) => v,
            Err(LookupFailure::NxDomain) => Vec::new(),
            Err(e) => {
                records.push(record);
                return Err(e.problem(RecordType::TXT, &name));
            }
        };
        let result = check_persist_records(&values, &subject);
        if let Ok(until) = result {
            record.persist_until = until;
        }
        records.push(record);
        match result {
            Ok(_) => Ok(()),
            Err(_) if values.is_empty() => Err(reject(format!("No TXT record found at {name}"))),
            Err(PersistRejection::OtherIssuer) => Err(reject(format!(
                "No TXT record at {name} names this CA (issuer domain names: {})",
                subject.issuer_domain_names.join(", ")
            ))),
            Err(e) => Err(reject(format!(
                "The TXT record at {name} for this CA {}",
                e.describe()
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account() -> CaaAccount {
        CaaAccount {
            path: "/acme/acct/abc123".into(),
            prefixes: vec!["https://ca.example".into()],
        }
    }

    fn subject<'a>(ids: &'a [String], acct: &'a CaaAccount, wildcard: bool) -> PersistSubject<'a> {
        PersistSubject {
            issuer_domain_names: ids,
            account: acct,
            wildcard,
            now: 1_800_000_000,
        }
    }

    #[test]
    fn records_are_judged_as_the_draft_says() {
        let ids = vec!["authority.example".to_owned()];
        let acct = account();
        let s = subject(&ids, &acct, false);
        let w = subject(&ids, &acct, true);
        let ok = "authority.example; accounturi=https://ca.example/acme/acct/abc123";
        assert_eq!(check_persist_record(ok, &s), Ok(None));
        // Issuer compared case-insensitively, trailing dot ignored; unknown tags ignored.
        assert_eq!(
            check_persist_record(
                "Authority.Example.;accounturi=https://ca.example/acme/acct/abc123;future=1",
                &s
            ),
            Ok(None)
        );
        assert_eq!(
            check_persist_record(
                "other.example; accounturi=https://ca.example/acme/acct/abc123",
                &s
            ),
            Err(PersistRejection::OtherIssuer)
        );
        assert_eq!(
            check_persist_record(
                "authority.example; accounturi=https://ca.example/acme/acct/zzz",
                &s
            ),
            Err(PersistRejection::OtherAccount)
        );
        assert_eq!(
            check_persist_record(
                "authority.example; accounturi=https://evil.example/acme/acct/abc123",
                &s
            ),
            Err(PersistRejection::OtherAccount)
        );
        assert_eq!(
            check_persist_record("authority.example; policy=wildcard", &s),
            Err(PersistRejection::NoAccountUri)
        );
        assert_eq!(
            check_persist_record(ok, &w),
            Err(PersistRejection::NotForWildcard)
        );
        assert_eq!(
            check_persist_record(&format!("{ok}; policy=WILDCARD"), &w),
            Ok(None)
        );
        assert_eq!(
            check_persist_record(&format!("{ok}; policy=subdomains"), &w),
            Err(PersistRejection::NotForWildcard)
        );
        assert_eq!(
            check_persist_record(&format!("{ok}; persistUntil=1800000001"), &s),
            Ok(Some(1_800_000_001))
        );
        assert_eq!(
            check_persist_record(&format!("{ok}; persistUntil=1799999999"), &s),
            Err(PersistRejection::Expired)
        );
        assert_eq!(
            check_persist_record(&format!("{ok}; persistUntil=-5"), &s),
            Err(PersistRejection::BadPersistUntil)
        );
        assert_eq!(
            check_persist_record(&format!("{ok}; persistUntil=2026-01-01"), &s),
            Err(PersistRejection::BadPersistUntil)
        );
        assert_eq!(
            check_persist_record("authority.example accounturi", &s),
            Err(PersistRejection::Malformed)
        );
    }

    #[test]
    fn one_valid_record_among_many_is_enough() {
        let ids = vec!["authority.example".to_owned()];
        let acct = account();
        let s = subject(&ids, &acct, false);
        let other_ca = "ca2.example; accounturi=https://ca2.example/acct/1".to_owned();
        let other_acct =
            "authority.example; accounturi=https://ca.example/acme/acct/zzz".to_owned();
        let mine = "authority.example; accounturi=https://ca.example/acme/acct/abc123; persistUntil=1900000000".to_owned();
        assert_eq!(
            check_persist_records(&[other_ca.clone(), other_acct.clone(), mine], &s),
            Ok(Some(1_900_000_000))
        );
        // The reason given is about this CA's record, not the other CA's.
        assert_eq!(
            check_persist_records(&[other_ca.clone(), other_acct], &s),
            Err(PersistRejection::OtherAccount)
        );
        assert_eq!(
            check_persist_records(&[other_ca], &s),
            Err(PersistRejection::OtherIssuer)
        );
        assert_eq!(
            check_persist_records(&[], &s),
            Err(PersistRejection::OtherIssuer)
        );
    }
}
