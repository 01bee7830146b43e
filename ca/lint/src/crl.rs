//! CRL linting: version, signature algorithm, thisUpdate/nextUpdate, CRL number, AKI,
//! issuingDistributionPoint and entry reason codes (RFC 5280 §5, BR §4.9.7 and §7.2).

use crate::asn1::CertificateListModel;
use crate::catalog as lints;
use crate::certificate::{
    Slot, check_extension_list, check_time_encoding, decode_ext, decode_ext_oid,
    describe_general_name, hex_bytes, is_http_uri, same_algorithm, signature_algorithm_allowed,
    unix_seconds,
};
use crate::{CrlContext, Findings, LintReport};
use const_oid::db::rfc5280::{
    ID_CE_AUTHORITY_KEY_IDENTIFIER, ID_CE_CRL_NUMBER, ID_CE_CRL_REASONS, ID_CE_DELTA_CRL_INDICATOR,
    ID_CE_FRESHEST_CRL, ID_CE_INVALIDITY_DATE, ID_CE_ISSUING_DISTRIBUTION_POINT,
};
use der::Decode;
use der::asn1::IntRef;
use x509_cert::ext::pkix::crl::dp::IssuingDistributionPoint;
use x509_cert::ext::pkix::name::DistributionPointName;
use x509_cert::ext::pkix::{AuthorityKeyIdentifier, CrlReason};

/// CRL extensions the linter knows.
const KNOWN_CRL_EXTENSIONS: [der::asn1::ObjectIdentifier; 5] = [
    ID_CE_AUTHORITY_KEY_IDENTIFIER,
    ID_CE_CRL_NUMBER,
    ID_CE_ISSUING_DISTRIBUTION_POINT,
    ID_CE_DELTA_CRL_INDICATOR,
    ID_CE_FRESHEST_CRL,
];

/// CRL entry extensions the linter knows.
const KNOWN_ENTRY_EXTENSIONS: [der::asn1::ObjectIdentifier; 2] =
    [ID_CE_CRL_REASONS, ID_CE_INVALIDITY_DATE];

/// Lints one DER CRL. Never panics: bytes that are not a CRL give a single
/// [`Severity::Fatal`](crate::Severity::Fatal) finding `e_crl_malformed`.
pub fn lint_crl(der: &[u8], ctx: &CrlContext) -> LintReport {
    let mut findings = Findings::new(&ctx.ignored_lints);
    let crl = match CertificateListModel::from_der(der) {
        Ok(crl) => crl,
        Err(e) => {
            findings.report(lints::CRL_MALFORMED, e.to_string());
            return findings.finish();
        }
    };
    let tbs = &crl.tbs_cert_list;
    if tbs.version.map(|v| v.as_bytes()) != Some(&[1]) {
        findings.report(lints::CRL_VERSION_NOT_2, "the CRL is not v2");
    }
    if !same_algorithm(&tbs.signature, &crl.signature_algorithm) {
        findings.report(
            lints::CRL_SIG_ALG_NOT_MATCH_TBS_SIG_ALG,
            format!(
                "TBS says {}, the CRL says {}",
                tbs.signature.oid, crl.signature_algorithm.oid
            ),
        );
    }
    if !signature_algorithm_allowed(&crl.signature_algorithm) {
        findings.report(
            lints::SIGNATURE_ALGORITHM_NOT_ALLOWED,
            format!(
                "signature algorithm {} is not allowed",
                crl.signature_algorithm.oid
            ),
        );
    }
    if tbs.issuer.is_empty() {
        findings.report(lints::CRL_ISSUER_EMPTY, "the issuer name is empty");
    }

    check_time_encoding("thisUpdate", &tbs.this_update, &mut findings);
    match &tbs.next_update {
        None => findings.report(lints::CRL_NEXT_UPDATE_MISSING, "no nextUpdate"),
        Some(next) => {
            check_time_encoding("nextUpdate", next, &mut findings);
            let (this, next_s) = (unix_seconds(&tbs.this_update), unix_seconds(next));
            if next_s <= this {
                findings.report(
                    lints::CRL_NEXT_UPDATE_NOT_AFTER_THIS_UPDATE,
                    format!(
                        "nextUpdate {next} is not after thisUpdate {}",
                        tbs.this_update
                    ),
                );
            } else if next_s - this > ctx.max_validity.as_secs() {
                findings.report(
                    lints::CRL_VALIDITY_TOO_LONG,
                    format!(
                        "nextUpdate is {} s after thisUpdate; at most {} s allowed",
                        next_s - this,
                        ctx.max_validity.as_secs()
                    ),
                );
            }
        }
    }

    match &tbs.revoked_certificates {
        Some(entries) if entries.is_empty() => findings.report(
            lints::CRL_EMPTY_REVOKED_CERTIFICATES,
            "revokedCertificates is present but empty",
        ),
        Some(entries) => {
            for entry in entries {
                check_time_encoding("revocationDate", &entry.revocation_date, &mut findings);
                let exts = entry.crl_entry_extensions.as_deref().unwrap_or(&[]);
                check_extension_list(exts, &KNOWN_ENTRY_EXTENSIONS, &mut findings);
                match decode_ext::<CrlReason>(exts, &mut findings) {
                    Slot::Present { value, .. } => {
                        let allowed = matches!(
                            value,
                            CrlReason::KeyCompromise
                                | CrlReason::AffiliationChanged
                                | CrlReason::Superseded
                                | CrlReason::CessationOfOperation
                                | CrlReason::PrivilegeWithdrawn
                        );
                        if !allowed {
                            findings.report(
                                lints::CRL_REASON_CODE_NOT_ALLOWED,
                                format!(
                                    "serial 0x{}: reason {value:?}",
                                    hex_bytes(entry.user_certificate.as_bytes())
                                ),
                            );
                        }
                    }
                    Slot::Absent | Slot::Malformed => {}
                }
            }
        }
        None => {}
    }

    let exts = tbs.crl_extensions.as_deref().unwrap_or(&[]);
    check_extension_list(exts, &KNOWN_CRL_EXTENSIONS, &mut findings);
    match exts.iter().find(|e| e.extn_id == ID_CE_CRL_NUMBER) {
        None => findings.report(lints::CRL_NUMBER_MISSING, "no CRL number"),
        Some(ext) => {
            if ext.critical {
                findings.report(lints::CRL_NUMBER_CRITICAL, "the CRL number is critical");
            }
            match IntRef::from_der(ext.extn_value.as_bytes()) {
                Err(_) => findings.report(
                    lints::EXT_VALUE_MALFORMED,
                    "the CRL number is not an INTEGER",
                ),
                Ok(n) => {
                    let bytes = n.as_bytes();
                    if bytes.first().is_some_and(|b| b & 0x80 != 0) || bytes.len() > 20 {
                        findings.report(
                            lints::CRL_NUMBER_INVALID,
                            format!(
                                "CRL number 0x{} is negative or over 20 octets",
                                hex_bytes(bytes)
                            ),
                        );
                    }
                }
            }
        }
    }
    match decode_ext::<AuthorityKeyIdentifier>(exts, &mut findings) {
        Slot::Absent => findings.report(lints::CRL_AKI_MISSING, "no authorityKeyIdentifier"),
        Slot::Present { value, .. } if value.key_identifier.is_none() => findings.report(
            lints::CRL_AKI_MISSING,
            "authorityKeyIdentifier has no keyIdentifier",
        ),
        Slot::Present { .. } | Slot::Malformed => {}
    }
    match decode_ext_oid::<IssuingDistributionPoint>(
        exts,
        ID_CE_ISSUING_DISTRIBUTION_POINT,
        &mut findings,
    ) {
        Slot::Absent if ctx.sharded => findings.report(
            lints::CRL_IDP_MISSING,
            "a CRL shard has no issuingDistributionPoint",
        ),
        Slot::Present { critical, value } => {
            if !critical {
                findings.report(
                    lints::CRL_IDP_NOT_CRITICAL,
                    "issuingDistributionPoint is not critical",
                );
            }
            match &value.distribution_point {
                Some(DistributionPointName::FullName(names)) if !names.is_empty() => {
                    for name in names.iter().filter(|n| !is_http_uri(n)) {
                        findings.report(
                            lints::CRL_IDP_URI_NOT_HTTP,
                            format!("distribution point {}", describe_general_name(name)),
                        );
                    }
                }
                _ if ctx.sharded => findings.report(
                    lints::CRL_IDP_URI_NOT_HTTP,
                    "issuingDistributionPoint has no fullName URI",
                ),
                _ => {}
            }
        }
        Slot::Absent | Slot::Malformed => {}
    }
    findings.finish()
}
