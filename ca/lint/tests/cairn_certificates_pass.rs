//! What cairn-x509 builds passes the linter with no errors, and the throwaway-key linter sees
//! exactly the TBSCertificate the real issuer signs.
#![allow(clippy::unwrap_used)] // fixtures outside #[test] fns: a panic is a failure with a location

use cairn_core::Identifier;
use cairn_lint::{Kind, LintContext, LintReport, Linter, Severity, lint_certificate, tbs_matches};
use cairn_x509::{
    CaCertificate, EndEntityParams, EndEntityProfile, KeyAlgorithm, SigningKey, build_end_entity,
    build_intermediate, build_root, is_signed_by, random_serial,
};
use std::net::IpAddr;
use std::time::Duration;
use time::OffsetDateTime;

const DAY: u64 = 86_400;

fn leaf_ctx() -> LintContext {
    LintContext::new(Kind::TlsServerLeaf {
        profile_validity: Duration::from_secs(90 * DAY),
        max_validity: Duration::from_secs(100 * DAY),
    })
}

fn hierarchy(alg: KeyAlgorithm) -> (CaCertificate, CaCertificate) {
    let now = OffsetDateTime::now_utc();
    let root_key = SigningKey::generate(alg).unwrap();
    let root_der = build_root(
        &root_key,
        "Cairn Test Root",
        Some("Cairn"),
        now - time::Duration::hours(1),
        now + time::Duration::days(3653),
    )
    .unwrap();
    let root = CaCertificate::new(root_der, root_key).unwrap();
    let int_key = SigningKey::generate(alg).unwrap();
    let int_der = build_intermediate(
        &root,
        int_key.spki_der(),
        "Cairn Test Intermediate",
        Some("Cairn"),
        now - time::Duration::hours(1),
        now + time::Duration::days(1826),
    )
    .unwrap();
    let intermediate = CaCertificate::new(int_der, int_key).unwrap();
    (root, intermediate)
}

/// The findings that are not errors, as `name` strings, for the record.
fn non_errors(report: &LintReport) -> Vec<&'static str> {
    report
        .findings
        .iter()
        .filter(|f| f.severity < Severity::Error)
        .map(|f| f.lint)
        .collect()
}

#[test]
fn roots_and_intermediates_of_every_algorithm_are_clean() {
    for alg in [
        KeyAlgorithm::EcdsaP256,
        KeyAlgorithm::EcdsaP384,
        KeyAlgorithm::Rsa2048,
    ] {
        let (root, intermediate) = hierarchy(alg);
        let r = lint_certificate(root.der(), &LintContext::new(Kind::Root));
        assert!(r.findings.is_empty(), "{alg} root: {r}");
        let i = lint_certificate(intermediate.der(), &LintContext::new(Kind::Intermediate));
        assert!(i.findings.is_empty(), "{alg} intermediate: {i}");
    }
}

#[test]
fn end_entities_of_every_shape_have_no_errors() {
    let (_, intermediate) = hierarchy(KeyAlgorithm::EcdsaP256);
    let now = OffsetDateTime::now_utc();
    let ids = vec![
        Identifier::dns("example.com"),
        Identifier::dns("*.example.com"),
        Identifier::ip("1.1.1.1".parse::<IpAddr>().unwrap()),
        Identifier::ip("2606:4700::1111".parse::<IpAddr>().unwrap()),
    ];
    let urls = EndEntityProfile {
        crl_url: Some("http://crl.example.net/1.crl".into()),
        ocsp_url: Some("http://ocsp.example.net".into()),
        issuer_url: Some("http://ca.example.net/int.der".into()),
        ..EndEntityProfile::default()
    };
    let no_cn = EndEntityProfile {
        include_common_name: false,
        ..EndEntityProfile::default()
    };
    let client_auth = EndEntityProfile {
        client_auth: true,
        ..EndEntityProfile::default()
    };
    let cases: [(&str, KeyAlgorithm, Option<&str>, &EndEntityProfile); 6] = [
        (
            "p256 with CN",
            KeyAlgorithm::EcdsaP256,
            Some("example.com"),
            &EndEntityProfile::default(),
        ),
        (
            "p384 with URLs",
            KeyAlgorithm::EcdsaP384,
            Some("example.com"),
            &urls,
        ),
        (
            "rsa2048",
            KeyAlgorithm::Rsa2048,
            Some("example.com"),
            &EndEntityProfile::default(),
        ),
        (
            "ip CN",
            KeyAlgorithm::EcdsaP256,
            Some("1.1.1.1"),
            &EndEntityProfile::default(),
        ),
        ("no CN", KeyAlgorithm::EcdsaP256, None, &no_cn),
        (
            "clientAuth",
            KeyAlgorithm::EcdsaP256,
            Some("example.com"),
            &client_auth,
        ),
    ];
    for (what, alg, cn, profile) in cases {
        let subject_key = SigningKey::generate(alg).unwrap();
        let serial = random_serial();
        let der = build_end_entity(
            &intermediate,
            &EndEntityParams {
                serial: &serial,
                spki_der: subject_key.spki_der(),
                identifiers: &ids,
                common_name: cn,
                not_before: now,
                not_after: now + time::Duration::days(90) - time::Duration::seconds(1),
            },
            profile,
        )
        .unwrap();
        let report = lint_certificate(&der, &leaf_ctx());
        assert!(!report.has_errors(), "{what}: {report}");
        // Expected: SKI is present (the BRs say NOT RECOMMENDED for subscribers; RFC 5280 says
        // SHOULD), and clientAuth draws the Chrome notice.
        let mut expected = vec!["n_sub_cert_subject_key_identifier_present"];
        if profile.client_auth {
            expected.push("n_sub_cert_eku_client_auth_present");
        }
        let mut got = non_errors(&report);
        got.sort_unstable();
        expected.sort_unstable();
        assert_eq!(got, expected, "{what}: {report}");
    }
}

#[test]
fn a_90_day_profile_certificate_is_exactly_at_the_limit() {
    let (_, intermediate) = hierarchy(KeyAlgorithm::EcdsaP256);
    let now = OffsetDateTime::now_utc();
    let key = SigningKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
    let ids = [Identifier::dns("example.com")];
    let build = |not_after| {
        build_end_entity(
            &intermediate,
            &EndEntityParams {
                serial: &random_serial(),
                spki_der: key.spki_der(),
                identifiers: &ids,
                common_name: Some("example.com"),
                not_before: now,
                not_after,
            },
            &EndEntityProfile::default(),
        )
        .unwrap()
    };
    // The RA's notAfter = notBefore + validity − 1 s is a lifetime of exactly the validity.
    let at_limit = build(now + time::Duration::days(90) - time::Duration::seconds(1));
    assert!(!lint_certificate(&at_limit, &leaf_ctx()).has_errors());
    let one_second_over = build(now + time::Duration::days(90));
    assert_eq!(
        lint_certificate(&one_second_over, &leaf_ctx())
            .at_least(Severity::Error)
            .map(|f| f.lint)
            .collect::<Vec<_>>(),
        vec!["e_validity_longer_than_profile"]
    );
}

#[test]
fn the_throwaway_copy_has_the_real_tbs_and_a_signature_nobody_trusts() {
    for alg in [KeyAlgorithm::EcdsaP256, KeyAlgorithm::Rsa2048] {
        let (_, intermediate) = hierarchy(alg);
        let linter = Linter::new(&intermediate).unwrap();
        let now = OffsetDateTime::now_utc();
        let subject_key = SigningKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
        let serial = random_serial();
        let ids = [
            Identifier::dns("example.com"),
            Identifier::dns("www.example.com"),
        ];
        let params = EndEntityParams {
            serial: &serial,
            spki_der: subject_key.spki_der(),
            identifiers: &ids,
            common_name: Some("example.com"),
            not_before: now,
            not_after: now + time::Duration::days(90) - time::Duration::seconds(1),
        };
        let profile = EndEntityProfile {
            crl_url: Some("http://crl.example.net/1.crl".into()),
            ..EndEntityProfile::default()
        };
        let linted = linter
            .check_end_entity(&params, &profile, &leaf_ctx())
            .unwrap();
        assert!(!linted.report.has_errors(), "{alg}: {}", linted.report);

        let real = build_end_entity(&intermediate, &params, &profile).unwrap();
        assert!(tbs_matches(&linted.der, &real), "{alg}: TBS differs");
        assert!(is_signed_by(&real, intermediate.key().spki_der()));
        assert!(!is_signed_by(&linted.der, intermediate.key().spki_der()));
        assert!(!tbs_matches(&linted.der, b"junk"));

        // A different request does not match.
        let other_serial = random_serial();
        let other = build_end_entity(
            &intermediate,
            &EndEntityParams {
                serial: &other_serial,
                ..params
            },
            &profile,
        )
        .unwrap();
        assert!(!tbs_matches(&linted.der, &other));
    }
}
