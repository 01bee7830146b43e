//! Rules for CA certificates: roots and TLS subordinate CAs (RFC 5280 §4.2.1.9, BR §7.1.2.1,
//! §7.1.2.10).

use crate::Findings;
use crate::catalog as lints;
use crate::certificate::{Cert, OID_CT_POISON, require};
use crate::subscriber::{check_aki, check_urls};
use const_oid::db::rfc5280::{ANY_EXTENDED_KEY_USAGE, ID_KP_SERVER_AUTH};
use der::Encode;
use x509_cert::ext::pkix::KeyUsages;

/// Runs the CA rules; `root` selects the root rules, otherwise the subordinate CA rules.
pub(crate) fn check(cert: &Cert<'_>, root: bool, findings: &mut Findings<'_>) {
    if let Some((critical, bc)) = require(
        &cert.exts.basic_constraints,
        lints::CA_BASIC_CONSTRAINTS_MISSING,
        "no basicConstraints extension",
        findings,
    ) {
        if !critical {
            findings.report(
                lints::CA_BASIC_CONSTRAINTS_NOT_CRITICAL,
                "basicConstraints is not critical",
            );
        }
        if !bc.ca {
            findings.report(lints::CA_BASIC_CONSTRAINTS_CA_FALSE, "cA is false");
        }
    }
    if let Some((critical, ku)) = require(
        &cert.exts.key_usage,
        lints::CA_KEY_USAGE_MISSING,
        "no keyUsage extension",
        findings,
    ) {
        if !critical {
            findings.report(lints::CA_KEY_USAGE_NOT_CRITICAL, "keyUsage is not critical");
        }
        if !ku.0.contains(KeyUsages::KeyCertSign) {
            findings.report(lints::CA_KEY_CERT_SIGN_NOT_SET, "keyCertSign is not set");
        }
        if !ku.0.contains(KeyUsages::CRLSign) {
            findings.report(lints::CA_CRL_SIGN_NOT_SET, "cRLSign is not set");
        }
    }
    if cert.exts.ski.is_absent() {
        findings.report(
            lints::EXT_SUBJECT_KEY_IDENTIFIER_MISSING_CA,
            "no subjectKeyIdentifier extension",
        );
    }
    check_urls(cert, findings);
    if cert.exts.raw(OID_CT_POISON).is_some() {
        findings.report(
            lints::POISON_IN_NON_PRECERTIFICATE,
            "a CA certificate carries the precertificate poison",
        );
    }
    if root {
        if !cert.exts.eku.is_absent() {
            findings.report(
                lints::ROOT_CA_EXTENDED_KEY_USAGE_PRESENT,
                "a root carries extKeyUsage",
            );
        }
        if cert.tbs.subject.to_der().ok() != cert.tbs.issuer.to_der().ok() {
            findings.report(lints::ROOT_NOT_SELF_ISSUED, "the subject is not the issuer");
        }
        return;
    }
    check_aki(cert, findings);
    if let Some((_, eku)) = require(
        &cert.exts.eku,
        lints::SUB_CA_EKU_MISSING,
        "no extKeyUsage extension",
        findings,
    ) {
        if !eku.0.contains(&ID_KP_SERVER_AUTH) {
            findings.report(
                lints::SUB_CA_EKU_SERVER_AUTH_MISSING,
                "extKeyUsage has no id-kp-serverAuth",
            );
        }
        if eku.0.contains(&ANY_EXTENDED_KEY_USAGE) {
            findings.report(
                lints::SUB_CA_EKU_ANY_PRESENT,
                "extKeyUsage has anyExtendedKeyUsage",
            );
        }
    }
}
