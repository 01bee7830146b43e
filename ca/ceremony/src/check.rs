//! The checks around every signature: before it, what is about to be signed is printed and the
//! inputs are held against the ceremony file; after it, the output is decoded and compared with
//! the file field by field, its signature verified against the issuer, and it is linted. An
//! output is written only when all of that passes.

use crate::config::Subject;
use crate::{CeremonyError, Console};
use cairn_lint::{Kind, LintContext, Severity};
use cairn_pki::{KeyAlgorithm, is_signed_by};
use cairn_x509::CertInfo;
use der::Decode;
use time::OffsetDateTime;
use x509_cert::name::Name;

/// What a certificate built by a step must say.
pub(crate) struct Expected<'a> {
    /// What kind of certificate it is (selects the lint rules and the cA flag).
    pub(crate) kind: Kind,
    /// The subject name's attributes.
    pub(crate) subject: &'a Subject,
    /// The issuer's subject name, DER.
    pub(crate) issuer_der: &'a [u8],
    /// The issuer's public key (the subject key for a root).
    pub(crate) issuer_spki: &'a [u8],
    /// The certified public key.
    pub(crate) spki: &'a [u8],
    /// notBefore.
    pub(crate) not_before: OffsetDateTime,
    /// notAfter.
    pub(crate) not_after: OffsetDateTime,
}

fn mismatch(what: impl Into<String>) -> CeremonyError {
    CeremonyError::Mismatch(what.into())
}

/// A name, RFC 4514 style, for the console (`CN=…,O=…,C=…`).
pub(crate) fn show_name(der: &[u8]) -> String {
    Name::from_der(der).map_or_else(|_| "(undecodable name)".into(), |n| n.to_string())
}

/// A time as RFC 3339, for the console and messages.
pub(crate) fn show_time(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| t.to_string())
}

/// The key type and SPKI hash, for the console.
pub(crate) fn show_key(spki: &[u8]) -> String {
    let alg = KeyAlgorithm::from_spki_der(spki).map_or_else(|e| e.to_string(), |a| a.to_string());
    format!("{alg}, SPKI SHA-256 {}", crate::keygen::spki_sha256(spki))
}

/// Before signing: the validity is a real interval within the issuer's (`None` for a root).
pub(crate) fn validity_fits(
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
    issuer: Option<&CertInfo>,
) -> Result<(), CeremonyError> {
    if not_before >= not_after {
        return Err(mismatch("not_before is not before not_after"));
    }
    if let Some(issuer) = issuer
        && (not_before < issuer.not_before || not_after > issuer.not_after)
    {
        return Err(mismatch(format!(
            "the validity {} to {} leaves the issuer's ({} to {})",
            show_time(not_before),
            show_time(not_after),
            show_time(issuer.not_before),
            show_time(issuer.not_after)
        )));
    }
    Ok(())
}

/// Before signing: the same certificate built with a throwaway key (a stand-in issuer, or a
/// throwaway root key) lints without errors, so the HSM never signs what the linter refuses.
pub(crate) fn prelint(copy: &[u8], kind: Kind) -> Result<(), CeremonyError> {
    let report = cairn_lint::lint_certificate(copy, &LintContext::new(kind));
    if report.has_errors() {
        return Err(CeremonyError::Lint {
            what: format!("the {kind:?} certificate (throwaway-key copy, before signing)"),
            report,
        });
    }
    Ok(())
}

/// After signing: the certificate says what `expected` says and lints clean. Warnings and
/// notices are printed; errors refuse.
pub(crate) fn certificate(
    der: &[u8],
    expected: &Expected<'_>,
    console: &mut Console<'_>,
) -> Result<CertInfo, CeremonyError> {
    let info =
        CertInfo::from_der(der).map_err(|e| mismatch(format!("the output does not parse: {e}")))?;
    let subject = Name::from_der(&info.subject_der)
        .map_err(|e| mismatch(format!("the output's subject does not decode: {e}")))?;
    let attr = |r: der::Result<Option<String>>| r.ok().flatten();
    let found = Subject {
        common_name: attr(subject.common_name().map(|v| v.map(String::from))).unwrap_or_default(),
        organization: attr(subject.organization().map(|v| v.map(String::from))),
        country: attr(subject.country().map(|v| v.map(|c| c.to_string()))),
    };
    let wanted_attrs = 1
        + usize::from(expected.subject.organization.is_some())
        + usize::from(expected.subject.country.is_some());
    if &found != expected.subject || subject.iter().count() != wanted_attrs {
        return Err(mismatch(format!(
            "the output's subject {subject} is not the configured {:?}",
            expected.subject
        )));
    }
    if info.issuer_der != expected.issuer_der {
        return Err(mismatch(format!(
            "the output's issuer {} is not {}",
            show_name(&info.issuer_der),
            show_name(expected.issuer_der)
        )));
    }
    if info.spki_der != expected.spki {
        return Err(mismatch("the output certifies another public key"));
    }
    if info.not_before.unix_timestamp() != expected.not_before.unix_timestamp()
        || info.not_after.unix_timestamp() != expected.not_after.unix_timestamp()
    {
        return Err(mismatch(format!(
            "the output's validity {} to {} is not the configured {} to {}",
            info.not_before, info.not_after, expected.not_before, expected.not_after
        )));
    }
    let want_ca = matches!(expected.kind, Kind::Root | Kind::Intermediate);
    if info.is_ca != want_ca {
        return Err(mismatch(format!("the output's cA flag is {}", info.is_ca)));
    }
    if !is_signed_by(der, expected.issuer_spki) {
        return Err(mismatch(
            "the output's signature does not verify with the issuer's public key",
        ));
    }
    let report = cairn_lint::lint_certificate(der, &LintContext::new(expected.kind));
    for finding in report.at_least(Severity::Notice) {
        console.line(format_args!("  lint: {finding}"))?;
    }
    if report.has_errors() {
        return Err(CeremonyError::Lint {
            what: format!("the {:?} certificate", expected.kind),
            report,
        });
    }
    Ok(info)
}
