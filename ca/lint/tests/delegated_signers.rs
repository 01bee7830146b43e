//! The delegated-signer kinds: cairn-x509's OCSP responder and CRL signer certificates lint
//! clean as what they are, and each draws the named findings when linted as the other or when
//! a CA certificate is presented as one.
#![allow(clippy::unwrap_used)]

use cairn_lint::{Kind, LintContext, lint_certificate};
use cairn_x509::{
    CaCertificate, KeyAlgorithm, SigningKey, build_crl_signer, build_intermediate,
    build_ocsp_responder, build_root,
};
use time::{Duration, OffsetDateTime};

fn names(der: &[u8], kind: Kind) -> Vec<&'static str> {
    lint_certificate(der, &LintContext::new(kind)).lint_names()
}

#[test]
fn delegated_signers_lint_clean_as_themselves_and_not_as_each_other() {
    let now = OffsetDateTime::now_utc();
    let root_key = SigningKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
    let root_der = build_root(
        &root_key,
        "Lint Root",
        None,
        now,
        now + Duration::days(3650),
    )
    .unwrap();
    let root = CaCertificate::new(root_der, root_key).unwrap();
    let signer = SigningKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
    let until = now + Duration::days(30);
    let ocsp = build_ocsp_responder(&root, signer.spki_der(), "OCSP", now, until).unwrap();
    let crl = build_crl_signer(&root, signer.spki_der(), "CRL signer", now, until).unwrap();
    let int = build_intermediate(&root, signer.spki_der(), "Int", None, now, until).unwrap();

    assert_eq!(names(&ocsp, Kind::OcspResponder), Vec::<&str>::new());
    assert_eq!(names(&crl, Kind::CrlSigner), Vec::<&str>::new());
    assert_eq!(
        names(&ocsp, Kind::CrlSigner),
        vec!["e_delegated_signer_key_usage"]
    );
    assert_eq!(
        names(&crl, Kind::OcspResponder),
        vec![
            "e_delegated_signer_key_usage",
            "e_ocsp_responder_eku_not_ocsp_signing",
            "e_ocsp_responder_nocheck_missing"
        ]
    );
    let as_ocsp = names(&int, Kind::OcspResponder);
    assert!(as_ocsp.contains(&"e_delegated_signer_is_ca"), "{as_ocsp:?}");
    assert!(
        as_ocsp.contains(&"e_ocsp_responder_eku_not_ocsp_signing"),
        "{as_ocsp:?}"
    );
    // And a delegated signer is no CA.
    assert!(lint_certificate(&ocsp, &LintContext::new(Kind::Intermediate)).has_errors());
}
