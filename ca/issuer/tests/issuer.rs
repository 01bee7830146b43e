//! The issuer end to end on a temporary directory: create, reload, issue, verify the chain with
//! rustls-webpki, refuse inconsistent files, manage the listener's TLS certificate.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use cairn_core::{Identifier, Serial};
use cairn_issuer::hierarchy::{
    INTERMEDIATE_CERT_FILE, INTERMEDIATE_KEY_FILE, ROOT_CERT_FILE, ROOT_KEY_FILE,
};
use cairn_issuer::tls::{
    TLS_CERT_FILE, TLS_KEY_FILE, TLS_ROOT_CERT_FILE, TLS_ROOT_KEY_FILE, tls_server_identity,
};
use cairn_issuer::{
    CaHierarchy, CertUsage, CertificateIssuer, EndEntityProfile, IssueRequest, IssuerError,
    KeyAlgorithm, LocalIssuer,
};
use cairn_x509::{CertInfo, SigningKey, pem_certificates};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use std::path::Path;
use time::{Duration, OffsetDateTime};

fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc().replace_nanosecond(0).unwrap()
}

/// Verifies `leaf` + `chain_pem` up to `root.pem` in `dir` as a TLS server certificate for `name`.
fn verify(dir: &Path, leaf: &[u8], chain_pem: &str, name: &str) {
    verify_to(dir, ROOT_CERT_FILE, leaf, chain_pem, name).unwrap();
}

/// Verifies `leaf` + `chain_pem` up to the root in `dir/root_file` as a TLS server certificate
/// for `name`.
fn verify_to(
    dir: &Path,
    root_file: &str,
    leaf: &[u8],
    chain_pem: &str,
    name: &str,
) -> Result<(), webpki::Error> {
    let root_der = pem_certificates(&std::fs::read_to_string(dir.join(root_file)).unwrap())
        .unwrap()
        .remove(0);
    let root = CertificateDer::from(root_der);
    let anchor = webpki::anchor_from_trusted_cert(&root).unwrap();
    let intermediates: Vec<CertificateDer<'_>> = pem_certificates(chain_pem)
        .unwrap()
        .into_iter()
        .map(CertificateDer::from)
        .collect();
    let leaf = CertificateDer::from(leaf.to_vec());
    let ee = webpki::EndEntityCert::try_from(&leaf).unwrap();
    ee.verify_for_usage(
        webpki::ALL_VERIFICATION_ALGS,
        &[anchor],
        &intermediates,
        UnixTime::now(),
        webpki::KeyUsage::server_auth(),
        None,
        None,
    )?;
    ee.verify_is_valid_for_subject_name(&ServerName::try_from(name.to_string()).unwrap())
}

fn request(spki_der: &[u8], not_after: OffsetDateTime) -> IssueRequest {
    IssueRequest {
        serial: Serial::random(),
        spki_der: spki_der.to_vec(),
        identifiers: vec![
            Identifier::dns("example.com"),
            Identifier::dns("www.example.com"),
            Identifier::ip("8.8.8.8".parse().unwrap()),
        ],
        common_name: Some("example.com".into()),
        not_before: now() - Duration::hours(1),
        not_after,
        // The request spans notAfter − notBefore: an hour of backdating plus the caller's time.
        profile_validity: not_after - (now() - Duration::hours(1)) + Duration::seconds(1),
        usage: CertUsage::default(),
    }
}

#[tokio::test]
async fn lint_errors_block_signing() {
    let tmp = tempfile::tempdir().unwrap();
    let h = CaHierarchy::load_or_create(&tmp.path().join("ca"), KeyAlgorithm::EcdsaP256, now())
        .unwrap();
    let issuer = LocalIssuer::new(h, EndEntityProfile::default(), Vec::new()).unwrap();
    let leaf_key = SigningKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
    // Longer than the profile allows.
    let mut req = request(leaf_key.spki_der(), now() + Duration::days(90));
    req.profile_validity = Duration::days(45);
    let err = issuer.issue(req).await.unwrap_err();
    assert!(
        matches!(&err, IssuerError::Lint(l) if l.contains("e_validity_longer_than_profile")),
        "{err}"
    );
    // A private address, unless the operator ignores that lint.
    let mut req = request(leaf_key.spki_der(), now() + Duration::days(30));
    req.identifiers
        .push(Identifier::ip("10.0.0.1".parse().unwrap()));
    let err = issuer.issue(req.clone()).await.unwrap_err();
    assert!(
        matches!(&err, IssuerError::Lint(l) if l.contains("reserved_ip")),
        "{err}"
    );
    let h2 = CaHierarchy::load_or_create(&tmp.path().join("ca"), KeyAlgorithm::EcdsaP256, now())
        .unwrap();
    let lenient = LocalIssuer::new(
        h2,
        EndEntityProfile::default(),
        vec!["e_ext_san_contains_reserved_ip".into()],
    )
    .unwrap();
    lenient.issue(req).await.unwrap();
}

#[tokio::test]
async fn create_reload_issue_and_verify() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ca");
    let created = CaHierarchy::load_or_create(&dir, KeyAlgorithm::EcdsaP256, now()).unwrap();
    for f in [
        ROOT_CERT_FILE,
        ROOT_KEY_FILE,
        INTERMEDIATE_CERT_FILE,
        INTERMEDIATE_KEY_FILE,
    ] {
        assert!(dir.join(f).is_file(), "{f} missing");
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for f in [ROOT_KEY_FILE, INTERMEDIATE_KEY_FILE] {
            let mode = std::fs::metadata(dir.join(f)).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "{f} has mode {mode:o}");
        }
        let mode = std::fs::metadata(&dir).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
    }
    // No temporary files or creation marker left behind.
    let names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 4, "{names:?}");

    let root_info = created.root().info().clone();
    assert!(
        root_info
            .common_name
            .as_deref()
            .unwrap()
            .starts_with("Cairn Root CA ")
    );
    let validity = root_info.not_after - root_info.not_before;
    assert!(validity > Duration::days(3650) && validity < Duration::days(3660));
    let int_validity = created.intermediate().info().not_after - root_info.not_before;
    assert!(int_validity > Duration::days(1825) && int_validity < Duration::days(1830));

    // Debug output never shows key material.
    let debug = format!("{created:?}");
    let key_pem = std::fs::read_to_string(dir.join(INTERMEDIATE_KEY_FILE)).unwrap();
    let key_body: String = key_pem.lines().nth(1).unwrap().to_string();
    assert!(!debug.contains(&key_body));

    // Reload: same hierarchy, even with a different configured algorithm.
    let id = created.issuer_id().to_string();
    assert_eq!(id.len(), 16);
    drop(created);
    let loaded = CaHierarchy::load_or_create(&dir, KeyAlgorithm::Rsa2048, now()).unwrap();
    assert_eq!(loaded.issuer_id(), id);
    assert_eq!(loaded.root().info(), &root_info);
    assert_eq!(
        loaded.intermediate().key().algorithm(),
        KeyAlgorithm::EcdsaP256
    );

    // Issue and verify.
    let issuer = LocalIssuer::new(loaded, EndEntityProfile::default(), Vec::new()).unwrap();
    let leaf_key = SigningKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
    let req = request(leaf_key.spki_der(), now() + Duration::days(90));
    let serial = req.serial.clone();
    let issued = issuer.issue(req).await.unwrap();
    assert_eq!(issued.issuer_id, id);
    let info = CertInfo::from_der(&issued.der).unwrap();
    assert_eq!(Serial::from_bytes(&info.serial), serial);
    assert_eq!(info.common_name.as_deref(), Some("example.com"));

    let chains = issuer.chains(&id);
    assert_eq!(chains.len(), 2);
    assert_eq!(pem_certificates(&chains[0]).unwrap().len(), 1);
    assert_eq!(pem_certificates(&chains[1]).unwrap().len(), 2);
    for name in ["example.com", "www.example.com", "8.8.8.8"] {
        verify(&dir, &issued.der, &chains[0], name);
        verify(&dir, &issued.der, &chains[1], name);
    }
    assert!(issuer.chains("unknown").is_empty());

    // Requests the issuer must refuse.
    let too_long = request(leaf_key.spki_der(), now() + Duration::days(4000));
    assert!(matches!(
        issuer.issue(too_long).await,
        Err(IssuerError::InvalidRequest(_))
    ));
    // A key that does not parse is refused before the CA key signs (by the builder or the
    // pre-issuance lint, whichever sees it first).
    let bad_key = request(b"not a key", now() + Duration::days(90));
    assert!(matches!(
        issuer.issue(bad_key).await,
        Err(IssuerError::InvalidRequest(_) | IssuerError::Lint(_))
    ));
    let mut bad_cn = request(leaf_key.spki_der(), now() + Duration::days(90));
    bad_cn.common_name = Some("other.example.net".into());
    assert!(matches!(
        issuer.issue(bad_cn).await,
        Err(IssuerError::InvalidRequest(_))
    ));
}

#[tokio::test]
async fn rsa_hierarchy_issues_for_ec_and_rsa_keys() {
    let tmp = tempfile::tempdir().unwrap();
    let h = CaHierarchy::load_or_create(tmp.path(), KeyAlgorithm::Rsa2048, now()).unwrap();
    assert_eq!(h.intermediate().key().algorithm(), KeyAlgorithm::Rsa2048);
    let issuer = LocalIssuer::new(h, EndEntityProfile::default(), Vec::new()).unwrap();
    for alg in [KeyAlgorithm::EcdsaP384, KeyAlgorithm::Rsa2048] {
        let key = SigningKey::generate(alg).unwrap();
        let issued = issuer
            .issue(request(key.spki_der(), now() + Duration::days(90)))
            .await
            .unwrap();
        let chain = issuer.chains(&issued.issuer_id).remove(0);
        verify(tmp.path(), &issued.der, &chain, "www.example.com");
    }
}

/// keyUsage bits and EKU OIDs of a certificate, read with x509-cert (not the builder's code).
fn usages(der: &[u8]) -> (x509_cert::ext::pkix::KeyUsage, Vec<String>) {
    use der::Decode;
    use x509_cert::ext::pkix::{ExtendedKeyUsage, KeyUsage};
    let cert = x509_cert::Certificate::from_der(der).unwrap();
    let exts = cert.tbs_certificate().extensions().unwrap();
    let get = |oid: &str| {
        exts.iter()
            .find(|e| e.extn_id.to_string() == oid)
            .unwrap()
            .extn_value
            .as_bytes()
            .to_vec()
    };
    let ku = KeyUsage::from_der(&get("2.5.29.15")).unwrap();
    let eku = ExtendedKeyUsage::from_der(&get("2.5.29.37")).unwrap();
    (ku, eku.0.iter().map(|o| o.to_string()).collect())
}

#[tokio::test]
async fn profile_usages_shape_key_usage_and_eku() {
    use x509_cert::ext::pkix::KeyUsages;
    const SERVER_AUTH: &str = "1.3.6.1.5.5.7.3.1";
    const CLIENT_AUTH: &str = "1.3.6.1.5.5.7.3.2";
    let tmp = tempfile::tempdir().unwrap();
    let h = CaHierarchy::load_or_create(tmp.path(), KeyAlgorithm::EcdsaP256, now()).unwrap();
    let issuer = LocalIssuer::new(h, EndEntityProfile::default(), Vec::new()).unwrap();
    let rsa = SigningKey::generate(KeyAlgorithm::Rsa2048).unwrap();
    let ec = SigningKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
    let issue = |key: &SigningKey, usage: CertUsage| {
        let mut req = request(key.spki_der(), now() + Duration::days(30));
        req.usage = usage;
        let issuer = &issuer;
        async move { issuer.issue(req).await.unwrap().der }
    };

    // Default: serverAuth only; RSA gets keyEncipherment.
    let (ku, eku) = usages(&issue(&rsa, CertUsage::default()).await);
    assert!(ku.0.contains(KeyUsages::DigitalSignature));
    assert!(ku.0.contains(KeyUsages::KeyEncipherment));
    assert_eq!(eku, [SERVER_AUTH]);

    // A profile without keyEncipherment and with clientAuth.
    let both = CertUsage {
        client_auth: true,
        rsa_key_encipherment: false,
    };
    let (ku, eku) = usages(&issue(&rsa, both).await);
    assert!(ku.0.contains(KeyUsages::DigitalSignature));
    assert!(!ku.0.contains(KeyUsages::KeyEncipherment));
    assert_eq!(eku, [SERVER_AUTH, CLIENT_AUTH]);

    // EC keys never get keyEncipherment.
    let (ku, _) = usages(&issue(&ec, CertUsage::default()).await);
    assert!(!ku.0.contains(KeyUsages::KeyEncipherment));
}

fn expect_inconsistent(dir: &Path, needle: &str) {
    match CaHierarchy::load_or_create(dir, KeyAlgorithm::EcdsaP256, now()) {
        Err(IssuerError::Inconsistent(msg)) => {
            assert!(msg.contains(needle), "{msg:?} does not mention {needle:?}")
        }
        other => panic!("expected an inconsistency error, got {other:?}"),
    }
}

#[test]
fn inconsistent_files_are_refused_and_left_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    CaHierarchy::load_or_create(dir, KeyAlgorithm::EcdsaP256, now()).unwrap();
    let int_key_path = dir.join(INTERMEDIATE_KEY_FILE);
    let original_key = std::fs::read(&int_key_path).unwrap();

    // A valid key that is not the intermediate's.
    let other = SigningKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
    std::fs::write(&int_key_path, other.to_pkcs8_pem().unwrap()).unwrap();
    expect_inconsistent(
        dir,
        "intermediate.key.pem is not the key of intermediate.pem",
    );
    // The refused file was not replaced.
    assert_eq!(
        std::fs::read_to_string(&int_key_path).unwrap(),
        other.to_pkcs8_pem().unwrap()
    );

    // Garbage in the key file.
    std::fs::write(
        &int_key_path,
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
    )
    .unwrap();
    expect_inconsistent(dir, INTERMEDIATE_KEY_FILE);
    std::fs::write(&int_key_path, &original_key).unwrap();
    CaHierarchy::load_or_create(dir, KeyAlgorithm::EcdsaP256, now()).unwrap();

    // An intermediate (with its own key) from another hierarchy.
    let tmp2 = tempfile::tempdir().unwrap();
    CaHierarchy::load_or_create(tmp2.path(), KeyAlgorithm::EcdsaP256, now()).unwrap();
    for f in [INTERMEDIATE_CERT_FILE, INTERMEDIATE_KEY_FILE] {
        std::fs::copy(tmp2.path().join(f), dir.join(f)).unwrap();
    }
    expect_inconsistent(dir, "was not issued by root.pem");

    // A missing file.
    std::fs::remove_file(dir.join(ROOT_KEY_FILE)).unwrap();
    expect_inconsistent(dir, "root.key.pem");
    assert!(dir.join(ROOT_CERT_FILE).exists());
}

#[test]
fn interrupted_creation_is_redone() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let first = CaHierarchy::load_or_create(dir, KeyAlgorithm::EcdsaP256, now()).unwrap();
    // Simulate a crash before the root certificate was written.
    std::fs::remove_file(dir.join(ROOT_CERT_FILE)).unwrap();
    std::fs::write(dir.join(".creating"), b"").unwrap();
    let second = CaHierarchy::load_or_create(dir, KeyAlgorithm::EcdsaP256, now()).unwrap();
    assert_ne!(first.issuer_id(), second.issuer_id());
    assert!(!dir.join(".creating").exists());
    let third = CaHierarchy::load_or_create(dir, KeyAlgorithm::EcdsaP256, now()).unwrap();
    assert_eq!(third.issuer_id(), second.issuer_id());
}

#[test]
fn tls_identity_is_kept_and_reissued_when_needed() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let h = CaHierarchy::load_or_create(dir, KeyAlgorithm::EcdsaP256, now()).unwrap();
    let extra = vec!["acme.test.internal".to_string(), "10.0.0.5".to_string()];
    let first = tls_server_identity(dir, &extra, now()).unwrap();
    assert_eq!(first.cert_chain_der().len(), 1);
    assert!(!format!("{first:?}").contains("PRIVATE"));
    let key = SigningKey::from_pkcs8_der(first.private_key_pkcs8_der()).unwrap();
    let leaf = &first.cert_chain_der()[0];
    assert_eq!(CertInfo::from_der(leaf).unwrap().spki_der, key.spki_der());
    for name in [
        "localhost",
        "acme.test.internal",
        "127.0.0.1",
        "::1",
        "10.0.0.5",
    ] {
        verify_to(dir, TLS_ROOT_CERT_FILE, leaf, "", name).unwrap();
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for file in [TLS_KEY_FILE, TLS_ROOT_KEY_FILE] {
            let mode = std::fs::metadata(dir.join(file))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{file}");
        }
    }
    assert_eq!(
        pem_certificates(&std::fs::read_to_string(dir.join(TLS_CERT_FILE)).unwrap()).unwrap(),
        first.cert_chain_der()
    );

    // Same names, fresh: kept (names compared case- and order-insensitively).
    let extra_shuffled = vec!["10.0.0.5".to_string(), "ACME.test.internal".to_string()];
    let again = tls_server_identity(dir, &extra_shuffled, now()).unwrap();
    assert_eq!(again.cert_chain_der(), first.cert_chain_der());
    assert_eq!(again.private_key_pkcs8_der(), first.private_key_pkcs8_der());

    // Names changed: reissued.
    let changed = tls_server_identity(dir, &[], now()).unwrap();
    assert_ne!(changed.cert_chain_der()[0], first.cert_chain_der()[0]);
    assert_eq!(
        CertInfo::from_der(&changed.cert_chain_der()[0])
            .unwrap()
            .identifiers
            .len(),
        3
    );

    // Within 30 days of expiry: reissued.
    let later = now() + Duration::days(340);
    let renewed = tls_server_identity(dir, &[], later).unwrap();
    assert_ne!(renewed.cert_chain_der()[0], changed.cert_chain_der()[0]);

    // A corrupt stored key: reissued rather than failing start-up.
    std::fs::write(dir.join(TLS_KEY_FILE), "junk").unwrap();
    let repaired = tls_server_identity(dir, &[], later).unwrap();
    assert_ne!(repaired.cert_chain_der()[0], renewed.cert_chain_der()[0]);

    // A new local TLS root in the same place: reissued from it.
    std::fs::remove_file(dir.join(TLS_ROOT_CERT_FILE)).unwrap();
    std::fs::remove_file(dir.join(TLS_ROOT_KEY_FILE)).unwrap();
    let moved = tls_server_identity(dir, &[], later).unwrap();
    assert_ne!(moved.cert_chain_der()[0], repaired.cert_chain_der()[0]);
    let new_root =
        pem_certificates(&std::fs::read_to_string(dir.join(TLS_ROOT_CERT_FILE)).unwrap()).unwrap();
    let new_root = CertInfo::from_der(&new_root[0]).unwrap();
    assert!(cairn_x509::is_signed_by(
        &moved.cert_chain_der()[0],
        &new_root.spki_der
    ));

    // Only one of the TLS root's files: refused, not silently replaced.
    std::fs::remove_file(dir.join(TLS_ROOT_KEY_FILE)).unwrap();
    let err = tls_server_identity(dir, &[], later).unwrap_err();
    assert!(matches!(err, IssuerError::Inconsistent(_)), "{err:?}");
    drop(h);
}

/// Issue 14, finding 8: the listener's certificate comes from a separate, clearly non-public
/// root. Neither the subscriber root nor the intermediate signs it, and its chain does not
/// verify up to `root.pem`; a listener certificate that an old version issued from the
/// intermediate is replaced.
#[test]
fn tls_listener_certificate_is_not_from_the_subscriber_hierarchy() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let h = CaHierarchy::load_or_create(dir, KeyAlgorithm::EcdsaP256, now()).unwrap();

    // What an old version left behind: a listener certificate from the intermediate.
    let old_key = SigningKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
    let old_leaf = cairn_x509::build_tls_server_cert(
        h.intermediate(),
        old_key.spki_der(),
        &["localhost".to_string()],
        &["127.0.0.1".parse().unwrap(), "::1".parse().unwrap()],
        now() - Duration::hours(1),
        now() + Duration::days(365),
    )
    .unwrap();
    std::fs::write(
        dir.join(TLS_CERT_FILE),
        cairn_x509::pem_encode("CERTIFICATE", &old_leaf)
            + &cairn_x509::pem_encode("CERTIFICATE", h.intermediate().der()),
    )
    .unwrap();
    std::fs::write(dir.join(TLS_KEY_FILE), old_key.to_pkcs8_pem().unwrap()).unwrap();

    let identity = tls_server_identity(dir, &[], now()).unwrap();
    let leaf = &identity.cert_chain_der()[0];
    assert_ne!(
        leaf, &old_leaf,
        "the intermediate's listener certificate was kept"
    );
    for served in identity.cert_chain_der() {
        assert_ne!(served.as_slice(), h.intermediate().der());
        assert_ne!(served.as_slice(), h.root().der());
    }
    let info = CertInfo::from_der(leaf).unwrap();
    assert_ne!(info.issuer_der, h.intermediate().info().subject_der);
    assert_ne!(info.issuer_der, h.root().info().subject_der);
    assert!(!cairn_x509::is_signed_by(
        leaf,
        h.intermediate().key().spki_der()
    ));
    assert!(!cairn_x509::is_signed_by(leaf, &h.root().info().spki_der));

    // It verifies to tls-root.pem, whose name says it is not publicly trusted, and not to
    // root.pem, even with the intermediate offered as a chain certificate.
    verify_to(dir, TLS_ROOT_CERT_FILE, leaf, "", "localhost").unwrap();
    assert!(
        verify_to(
            dir,
            ROOT_CERT_FILE,
            leaf,
            &h.intermediate_pem(),
            "localhost"
        )
        .is_err()
    );
    let tls_root =
        pem_certificates(&std::fs::read_to_string(dir.join(TLS_ROOT_CERT_FILE)).unwrap()).unwrap();
    let tls_root = CertInfo::from_der(&tls_root[0]).unwrap();
    assert_eq!(
        tls_root.common_name.as_deref(),
        Some("Cairn local TLS root (not publicly trusted)")
    );
    assert_ne!(tls_root.spki_der, h.root().info().spki_der);
}
