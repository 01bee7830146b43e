//! Rules for delegated signers: an OCSP responder certificate (BR §7.1.2.8, RFC 6960 §4.2.2.2)
//! and a CRL signer certificate (the signer of an indirect CRL, RFC 5280 §5). Both are end
//! entities of their CA that sign one kind of status information and nothing else.

use crate::Findings;
use crate::catalog as lints;
use crate::certificate::Cert;
use crate::subscriber::{check_aki, check_urls};
use der::asn1::ObjectIdentifier;
use x509_cert::ext::pkix::KeyUsages;

/// id-kp-OCSPSigning (RFC 5280 §4.2.1.12).
const OID_KP_OCSP_SIGNING: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.3.9");
/// id-pkix-ocsp-nocheck (RFC 6960 §4.2.2.2.1).
const OID_OCSP_NOCHECK: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.1.5");

/// Runs the delegated-signer rules; `ocsp` selects the OCSP responder rules, otherwise the CRL
/// signer rules.
pub(crate) fn check(cert: &Cert<'_>, ocsp: bool, findings: &mut Findings<'_>) {
    check_aki(cert, findings);
    check_urls(cert, findings);
    if let Some((_, bc)) = cert.exts.basic_constraints.present()
        && bc.ca
    {
        findings.report(lints::DELEGATED_SIGNER_IS_CA, "basicConstraints cA is true");
    }
    let needed = if ocsp {
        KeyUsages::DigitalSignature
    } else {
        KeyUsages::CRLSign
    };
    match cert.exts.key_usage.present() {
        None => findings.report(lints::DELEGATED_SIGNER_KEY_USAGE, "no keyUsage extension"),
        Some((critical, ku)) => {
            if ku.0.contains(KeyUsages::KeyCertSign) {
                findings.report(lints::DELEGATED_SIGNER_IS_CA, "keyUsage has keyCertSign");
            }
            if !critical {
                findings.report(
                    lints::DELEGATED_SIGNER_KEY_USAGE,
                    "keyUsage is not critical",
                );
            }
            if !ku.0.contains(needed) {
                findings.report(
                    lints::DELEGATED_SIGNER_KEY_USAGE,
                    format!("keyUsage lacks {needed:?}"),
                );
            }
        }
    }
    if !ocsp {
        return;
    }
    let eku_ok = cert
        .exts
        .eku
        .present()
        .is_some_and(|(_, eku)| eku.0 == [OID_KP_OCSP_SIGNING]);
    if !eku_ok {
        findings.report(
            lints::OCSP_RESPONDER_EKU,
            "extKeyUsage is not exactly id-kp-OCSPSigning",
        );
    }
    if cert.exts.raw(OID_OCSP_NOCHECK).is_none() {
        findings.report(
            lints::OCSP_RESPONDER_NOCHECK_MISSING,
            "no id-pkix-ocsp-nocheck extension",
        );
    }
}
