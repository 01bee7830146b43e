//! Builds root → intermediate → leaf hierarchies and checks them with independent verifiers
//! (rustls-webpki, and the system `openssl verify` when it is installed).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use cairn_core::Identifier;
use cairn_x509::{
    CaCertificate, CertInfo, EndEntityParams, EndEntityProfile, KeyAlgorithm, SigningKey,
    build_end_entity, build_intermediate, build_root, build_tls_server_cert, pem_encode,
};
use der::Decode;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use std::net::IpAddr;
use std::process::Command;
use std::time::Duration;
use time::OffsetDateTime;

struct Hierarchy {
    root: CaCertificate,
    intermediate: CaCertificate,
}

fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc().replace_nanosecond(0).unwrap()
}

fn hierarchy(root_alg: KeyAlgorithm, int_alg: KeyAlgorithm) -> Hierarchy {
    let now = now();
    let root_key = SigningKey::generate(root_alg).unwrap();
    let root_der = build_root(
        &root_key,
        "Cairn Test Root",
        Some("Cairn"),
        now - time::Duration::hours(1),
        now + time::Duration::days(3650),
    )
    .unwrap();
    let root = CaCertificate::new(root_der, root_key).unwrap();
    let int_key = SigningKey::generate(int_alg).unwrap();
    let int_der = build_intermediate(
        &root,
        int_key.spki_der(),
        "Cairn Test Intermediate",
        Some("Cairn"),
        now - time::Duration::hours(1),
        now + time::Duration::days(1825),
    )
    .unwrap();
    let intermediate = CaCertificate::new(int_der, int_key).unwrap();
    Hierarchy { root, intermediate }
}

fn leaf(h: &Hierarchy, leaf_alg: KeyAlgorithm, ids: &[Identifier], cn: Option<&str>) -> Vec<u8> {
    let key = SigningKey::generate(leaf_alg).unwrap();
    let serial = cairn_x509::random_serial();
    let now = now();
    build_end_entity(
        &h.intermediate,
        &EndEntityParams {
            serial: &serial,
            spki_der: key.spki_der(),
            identifiers: ids,
            common_name: cn,
            not_before: now - time::Duration::minutes(5),
            not_after: now + time::Duration::days(90),
        },
        &EndEntityProfile {
            include_common_name: true,
            client_auth: true,
            rsa_key_encipherment: true,
            crl_url: Some("http://crl.example.test/1.crl".into()),
            ocsp_url: Some("http://ocsp.example.test".into()),
            issuer_url: Some("http://ca.example.test/int.der".into()),
        },
    )
    .unwrap()
}

fn webpki_verify(h: &Hierarchy, leaf: &[u8], name: &str) -> Result<(), webpki::Error> {
    let root = CertificateDer::from(h.root.der().to_vec());
    let anchor = webpki::anchor_from_trusted_cert(&root)?;
    let int = CertificateDer::from(h.intermediate.der().to_vec());
    let leaf = CertificateDer::from(leaf.to_vec());
    let ee = webpki::EndEntityCert::try_from(&leaf)?;
    let secs = OffsetDateTime::now_utc().unix_timestamp() as u64;
    ee.verify_for_usage(
        webpki::ALL_VERIFICATION_ALGS,
        &[anchor],
        std::slice::from_ref(&int),
        UnixTime::since_unix_epoch(Duration::from_secs(secs)),
        webpki::KeyUsage::server_auth(),
        None,
        None,
    )?;
    let server_name = ServerName::try_from(name.to_string()).unwrap();
    ee.verify_is_valid_for_subject_name(&server_name)
}

/// `openssl verify` (with hostname/IP checks); `None` when openssl is not installed.
fn openssl_verify(h: &Hierarchy, leaf: &[u8], check: &[&str]) -> Option<(bool, String)> {
    cairn_test_services::program("openssl")?;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root.pem");
    let int = dir.path().join("int.pem");
    let leaf_path = dir.path().join("leaf.pem");
    std::fs::write(&root, h.root.to_pem()).unwrap();
    std::fs::write(&int, h.intermediate.to_pem()).unwrap();
    std::fs::write(&leaf_path, pem_encode("CERTIFICATE", leaf)).unwrap();
    let out = Command::new("openssl")
        .arg("verify")
        .args(["-x509_strict", "-purpose", "sslserver"])
        .args(check)
        .arg("-CAfile")
        .arg(&root)
        .arg("-untrusted")
        .arg(&int)
        .arg(&leaf_path)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Some((out.status.success(), text))
}

fn ids() -> Vec<Identifier> {
    vec![
        Identifier::dns("example.com"),
        Identifier::dns("www.example.com"),
        Identifier::ip("192.0.2.7".parse().unwrap()),
        Identifier::ip("2001:db8::7".parse().unwrap()),
    ]
}

#[test]
fn hierarchies_verify_with_webpki_and_openssl() {
    let combos = [
        (
            KeyAlgorithm::EcdsaP256,
            KeyAlgorithm::EcdsaP256,
            KeyAlgorithm::EcdsaP256,
        ),
        (
            KeyAlgorithm::EcdsaP384,
            KeyAlgorithm::EcdsaP384,
            KeyAlgorithm::EcdsaP256,
        ),
        (
            KeyAlgorithm::EcdsaP384,
            KeyAlgorithm::EcdsaP256,
            KeyAlgorithm::EcdsaP384,
        ),
        (
            KeyAlgorithm::Rsa2048,
            KeyAlgorithm::Rsa2048,
            KeyAlgorithm::Rsa2048,
        ),
        (
            KeyAlgorithm::Rsa2048,
            KeyAlgorithm::EcdsaP256,
            KeyAlgorithm::Rsa3072,
        ),
        (
            KeyAlgorithm::EcdsaP256,
            KeyAlgorithm::Rsa2048,
            KeyAlgorithm::EcdsaP256,
        ),
    ];
    for (root_alg, int_alg, leaf_alg) in combos {
        let h = hierarchy(root_alg, int_alg);
        let cert = leaf(&h, leaf_alg, &ids(), Some("example.com"));
        let what = format!("{root_alg}/{int_alg}/{leaf_alg}");
        for name in ["example.com", "www.example.com", "192.0.2.7", "2001:db8::7"] {
            webpki_verify(&h, &cert, name).unwrap_or_else(|e| panic!("{what} {name}: {e:?}"));
        }
        assert!(
            webpki_verify(&h, &cert, "other.example.com").is_err(),
            "{what}: wrong name accepted"
        );
        if let Some((ok, text)) =
            openssl_verify(&h, &cert, &["-verify_hostname", "www.example.com"])
        {
            assert!(ok, "{what}: openssl verify failed: {text}");
        }
        if let Some((ok, text)) = openssl_verify(&h, &cert, &["-verify_ip", "2001:db8::7"]) {
            assert!(ok, "{what}: openssl verify (ip) failed: {text}");
        }
        if let Some((ok, _)) = openssl_verify(&h, &cert, &["-verify_hostname", "evil.example"]) {
            assert!(!ok, "{what}: openssl accepted a wrong host name");
        }
    }
}

#[test]
fn leaf_fields_read_back() {
    let h = hierarchy(KeyAlgorithm::EcdsaP256, KeyAlgorithm::EcdsaP256);
    let key = SigningKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
    let serial = cairn_core::Serial::random();
    let nb = now();
    let na = nb + time::Duration::days(90);
    let der = build_end_entity(
        &h.intermediate,
        &EndEntityParams {
            serial: &serial.to_bytes(),
            spki_der: key.spki_der(),
            identifiers: &ids(),
            common_name: None,
            not_before: nb,
            not_after: na,
        },
        &EndEntityProfile::default(),
    )
    .unwrap();
    let info = CertInfo::from_der(&der).unwrap();
    assert_eq!(cairn_core::Serial::from_bytes(&info.serial), serial);
    assert_eq!(info.not_before, nb);
    assert_eq!(info.not_after, na);
    assert_eq!(info.identifiers, ids());
    assert_eq!(info.common_name, None);
    assert_eq!(info.spki_der, key.spki_der());
    assert_eq!(info.spki_sha256_hex.len(), 64);
    assert!(!info.is_ca);
    assert_eq!(info.authority_key_id, h.intermediate.info().subject_key_id);
    assert_eq!(info.issuer_der, h.intermediate.info().subject_der);
    assert_eq!(
        h.intermediate.info().authority_key_id,
        h.root.info().subject_key_id
    );
    assert!(cairn_x509::is_signed_by(
        &der,
        h.intermediate.key().spki_der()
    ));
    assert!(cairn_x509::is_signed_by(
        h.intermediate.der(),
        h.root.key().spki_der()
    ));
    assert!(cairn_x509::is_signed_by(
        h.root.der(),
        h.root.key().spki_der()
    ));
    assert!(!cairn_x509::is_signed_by(&der, h.root.key().spki_der()));
    let mut tampered = der.clone();
    let n = tampered.len();
    tampered[n - 10] ^= 1;
    assert!(!cairn_x509::is_signed_by(
        &tampered,
        h.intermediate.key().spki_der()
    ));

    // Empty subject → SAN critical; EC key → digitalSignature only; no client auth by default.
    let cert = x509_cert::Certificate::from_der(&der).unwrap();
    let tbs = cert.tbs_certificate();
    assert!(tbs.subject().is_empty());
    let (critical, _) = tbs
        .get_extension::<x509_cert::ext::pkix::SubjectAltName>()
        .unwrap()
        .unwrap();
    assert!(critical);
    let (critical, ku) = tbs
        .get_extension::<x509_cert::ext::pkix::KeyUsage>()
        .unwrap()
        .unwrap();
    assert!(critical && ku.digital_signature() && !ku.key_encipherment());
    let (_, eku) = tbs
        .get_extension::<x509_cert::ext::pkix::ExtendedKeyUsage>()
        .unwrap()
        .unwrap();
    assert_eq!(eku.0.len(), 1);
    let (critical, bc) = tbs
        .get_extension::<x509_cert::ext::pkix::BasicConstraints>()
        .unwrap()
        .unwrap();
    assert!(critical && !bc.ca);
    assert_eq!(tbs.version(), x509_cert::certificate::Version::V3);
    assert!(matches!(
        tbs.validity().not_after,
        x509_cert::time::Time::UtcTime(_)
    ));
}

#[test]
fn rsa_leaf_has_key_encipherment_and_cn() {
    let h = hierarchy(KeyAlgorithm::EcdsaP256, KeyAlgorithm::EcdsaP256);
    let der = leaf(&h, KeyAlgorithm::Rsa2048, &ids(), Some("www.example.com"));
    let cert = x509_cert::Certificate::from_der(&der).unwrap();
    let tbs = cert.tbs_certificate();
    let (_, ku) = tbs
        .get_extension::<x509_cert::ext::pkix::KeyUsage>()
        .unwrap()
        .unwrap();
    assert!(ku.digital_signature() && ku.key_encipherment());
    let (critical, _) = tbs
        .get_extension::<x509_cert::ext::pkix::SubjectAltName>()
        .unwrap()
        .unwrap();
    assert!(!critical);
    let info = CertInfo::from_der(&der).unwrap();
    assert_eq!(info.common_name.as_deref(), Some("www.example.com"));
}

#[test]
fn dates_from_2050_use_generalized_time() {
    let key = SigningKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
    let nb = time::macros::datetime!(2049-12-31 23:59:59 UTC);
    let na = time::macros::datetime!(2050-01-01 00:00:00 UTC);
    let der = build_root(&key, "Far Future Root", None, nb, na).unwrap();
    let cert = x509_cert::Certificate::from_der(&der).unwrap();
    let v = cert.tbs_certificate().validity();
    assert!(matches!(v.not_before, x509_cert::time::Time::UtcTime(_)));
    assert!(matches!(v.not_after, x509_cert::time::Time::GeneralTime(_)));
    let info = CertInfo::from_der(&der).unwrap();
    assert_eq!(info.not_before, nb);
    assert_eq!(info.not_after, na);
    assert!(info.is_ca);
}

#[test]
fn tls_server_cert_covers_localhost() {
    let h = hierarchy(KeyAlgorithm::EcdsaP256, KeyAlgorithm::EcdsaP256);
    let key = SigningKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
    let ips: Vec<IpAddr> = vec!["127.0.0.1".parse().unwrap(), "::1".parse().unwrap()];
    let nb = now() - time::Duration::minutes(1);
    let der = build_tls_server_cert(
        &h.intermediate,
        key.spki_der(),
        &["localhost".to_string(), "acme.internal.test".to_string()],
        &ips,
        nb,
        nb + time::Duration::days(365),
    )
    .unwrap();
    for name in ["localhost", "acme.internal.test", "127.0.0.1", "::1"] {
        webpki_verify(&h, &der, name).unwrap_or_else(|e| panic!("{name}: {e:?}"));
    }
}

#[test]
fn bad_inputs_are_refused() {
    let h = hierarchy(KeyAlgorithm::EcdsaP256, KeyAlgorithm::EcdsaP256);
    let key = SigningKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
    let nb = now();
    let base = EndEntityParams {
        serial: &[0x01, 0x02],
        spki_der: key.spki_der(),
        identifiers: &[Identifier::dns("example.com")],
        common_name: None,
        not_before: nb,
        not_after: nb + time::Duration::days(1),
    };
    let profile = EndEntityProfile::default();
    assert!(build_end_entity(&h.intermediate, &base, &profile).is_ok());
    let cases: Vec<EndEntityParams<'_>> = vec![
        EndEntityParams {
            serial: &[],
            ..base
        },
        EndEntityParams {
            serial: &[0x80, 1],
            ..base
        },
        EndEntityParams {
            serial: &[0],
            ..base
        },
        EndEntityParams {
            serial: &[1; 21],
            ..base
        },
        EndEntityParams {
            identifiers: &[],
            ..base
        },
        EndEntityParams {
            common_name: Some("other.example.com"),
            ..base
        },
        EndEntityParams {
            not_after: nb,
            ..base
        },
        EndEntityParams {
            spki_der: b"garbage",
            ..base
        },
    ];
    for (i, case) in cases.iter().enumerate() {
        assert!(
            build_end_entity(&h.intermediate, case, &profile).is_err(),
            "case {i} accepted"
        );
    }
    let bad_url = EndEntityProfile {
        crl_url: Some("ldap://x".into()),
        ..EndEntityProfile::default()
    };
    assert!(build_end_entity(&h.intermediate, &base, &bad_url).is_err());

    // A CA certificate with the wrong key, and a leaf used as an issuer, are refused.
    let other = SigningKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
    assert!(CaCertificate::new(h.root.der().to_vec(), other).is_err());
    let leaf_key = SigningKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
    let leaf_der = build_end_entity(
        &h.intermediate,
        &EndEntityParams {
            spki_der: leaf_key.spki_der(),
            ..base
        },
        &profile,
    )
    .unwrap();
    assert!(CaCertificate::new(leaf_der, leaf_key).is_err());
}
