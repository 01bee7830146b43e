//! Several issuers at once ([`IssuerSet`]): an RSA key and an ECDSA key each get a certificate
//! from the issuer of their own family with the matching chain (checked by `openssl verify`),
//! and after a rotation the retired issuer signs nothing new but still answers OCSP and signs
//! its CRL shards for the certificates it issued.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use cairn_core::{Identifier, Serial};
use cairn_issuer::{
    CaHierarchy, CertUsage, CertificateIssuer, CrlRequest, IssueRequest, IssuerError, IssuerSet,
    KeyAlgorithm, LocalIssuer,
};
use cairn_ocsp::asn1::{CertId, CertStatusAsn1};
use cairn_ocsp::{CertStatus, HashAlgorithm, IssuerHashes, ResponseParams};
use cairn_x509::{CertInfo, CrlEntry, SigningKey, pem_encode};
use der::Decode;
use der::asn1::OctetString;
use std::path::Path;
use std::process::Command;
use time::{Duration, OffsetDateTime};
use x509_cert::crl::CertificateList;
use x509_cert::serial_number::SerialNumber;

fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc().replace_nanosecond(0).unwrap()
}

/// A fresh hierarchy (root and intermediate) of `algorithm` in `dir`, as its issuer.
fn issuer(dir: &Path, algorithm: KeyAlgorithm) -> LocalIssuer {
    let h = CaHierarchy::load_or_create(dir, algorithm, now()).unwrap();
    LocalIssuer::new(h, Default::default(), Vec::new()).unwrap()
}

/// A request for a 90-day certificate of `example.com` with a fresh key of `algorithm`.
fn request(algorithm: KeyAlgorithm) -> IssueRequest {
    let key = SigningKey::generate(algorithm).unwrap();
    let not_before = now() - Duration::hours(1);
    let not_after = now() + Duration::days(90);
    IssueRequest {
        serial: Serial::random(),
        spki_der: key.spki_der().to_vec(),
        identifiers: vec![Identifier::dns("example.com")],
        common_name: Some("example.com".into()),
        not_before,
        not_after,
        profile_validity: not_after - not_before + Duration::seconds(1),
        usage: CertUsage::default(),
    }
}

/// Runs `openssl` with `args` in `dir`, returning its stdout and stderr; panics unless it
/// succeeds.
fn openssl(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl must be installed for this test");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "openssl {args:?}: {text}");
    text
}

/// `openssl verify` of `leaf` with the default chain its issuer serves, up to the root of
/// `root_dir`.
fn openssl_verify(work: &Path, root_dir: &Path, leaf: &[u8], chain_pem: &str) {
    std::fs::write(work.join("leaf.pem"), pem_encode("CERTIFICATE", leaf)).unwrap();
    std::fs::write(work.join("chain.pem"), chain_pem).unwrap();
    let root = root_dir.join("root.pem");
    let out = openssl(
        work,
        &[
            "verify",
            "-CAfile",
            root.to_str().unwrap(),
            "-untrusted",
            "chain.pem",
            "-purpose",
            "sslserver",
            "leaf.pem",
        ],
    );
    assert!(out.contains("leaf.pem: OK"), "{out}");
}

#[tokio::test]
async fn each_key_family_gets_the_issuer_and_chain_of_its_own_family() {
    let (ecdsa_dir, rsa_dir, work) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let ecdsa = issuer(ecdsa_dir.path(), KeyAlgorithm::EcdsaP256);
    let rsa = issuer(rsa_dir.path(), KeyAlgorithm::Rsa2048);
    let (ecdsa_id, rsa_id) = (ecdsa.issuer_id().to_owned(), rsa.issuer_id().to_owned());
    let set = IssuerSet::new(ecdsa).with_issuer(rsa, false).unwrap();
    let ids: Vec<String> = set.identities().into_iter().map(|i| i.issuer_id).collect();
    assert_eq!(ids, [ecdsa_id.clone(), rsa_id.clone()]);

    for (algorithm, want_id, root_dir, other_root_dir) in [
        (KeyAlgorithm::Rsa2048, &rsa_id, &rsa_dir, &ecdsa_dir),
        (KeyAlgorithm::EcdsaP384, &ecdsa_id, &ecdsa_dir, &rsa_dir),
    ] {
        let issued = set.issue(request(algorithm)).await.unwrap();
        assert_eq!(&issued.issuer_id, want_id, "{algorithm}");
        let chains = set.chains(&issued.issuer_id);
        assert_eq!(chains.len(), 2, "default and alternate chain");
        openssl_verify(work.path(), root_dir.path(), &issued.der, &chains[0]);
        // The other family's chain does not lead to this certificate.
        let other = set.chains(if want_id == &rsa_id {
            &ecdsa_id
        } else {
            &rsa_id
        });
        std::fs::write(work.path().join("other.pem"), &other[0]).unwrap();
        let refused = Command::new("openssl")
            .args(["verify", "-CAfile"])
            .arg(other_root_dir.path().join("root.pem"))
            .args(["-untrusted", "other.pem", "leaf.pem"])
            .current_dir(work.path())
            .output()
            .unwrap();
        assert!(
            !refused.status.success(),
            "{algorithm}: wrong chain verified"
        );
    }
}

#[tokio::test]
async fn without_an_issuer_of_the_key_family_the_first_active_issuer_signs() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let first = issuer(a.path(), KeyAlgorithm::EcdsaP256);
    let second = issuer(b.path(), KeyAlgorithm::EcdsaP384);
    let first_id = first.issuer_id().to_owned();
    let set = IssuerSet::new(first).with_issuer(second, false).unwrap();
    let issued = set.issue(request(KeyAlgorithm::Rsa2048)).await.unwrap();
    assert_eq!(issued.issuer_id, first_id);
}

#[test]
fn a_set_refuses_a_duplicate_issuer_and_retiring_every_issuer() {
    let dir = tempfile::tempdir().unwrap();
    let one = issuer(dir.path(), KeyAlgorithm::EcdsaP256);
    let id = one.issuer_id().to_owned();
    let again = LocalIssuer::new(
        CaHierarchy::load(dir.path()).unwrap(),
        Default::default(),
        vec![],
    )
    .unwrap();
    let duplicate = IssuerSet::new(one).with_issuer(again, false);
    assert!(matches!(duplicate, Err(IssuerError::Inconsistent(_))));
    let alone = IssuerSet::new(issuer(dir.path(), KeyAlgorithm::EcdsaP256));
    assert!(matches!(
        alone.retire(&id),
        Err(IssuerError::Inconsistent(_))
    ));
}

/// A SHA-1 CertID (NULL parameters, as `openssl ocsp` builds it) for `serial` of `issuer_der`.
fn cert_id(issuer_der: &[u8], serial: &Serial) -> CertId {
    let hashes = IssuerHashes::from_certificate(issuer_der).unwrap();
    let (name, key) = hashes.get(HashAlgorithm::Sha1).unwrap();
    CertId {
        hash_algorithm: HashAlgorithm::Sha1.algorithm_identifier(),
        issuer_name_hash: OctetString::new(name.to_vec()).unwrap(),
        issuer_key_hash: OctetString::new(key.to_vec()).unwrap(),
        serial_number: SerialNumber::new(&serial.to_bytes()).unwrap(),
    }
}

#[tokio::test]
async fn a_retired_issuer_signs_nothing_new_but_keeps_answering_for_its_certificates() {
    let (a_dir, b_dir, work) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    // Before the rotation: A alone.
    let before = IssuerSet::new(issuer(a_dir.path(), KeyAlgorithm::EcdsaP256));
    let a_id = before.identity().issuer_id;
    let good_req = request(KeyAlgorithm::EcdsaP256);
    let revoked_req = request(KeyAlgorithm::EcdsaP256);
    let (good_serial, revoked_serial) = (good_req.serial.clone(), revoked_req.serial.clone());
    let good = before.issue(good_req).await.unwrap();
    let revoked = before.issue(revoked_req).await.unwrap();
    assert_eq!((&good.issuer_id, &revoked.issuer_id), (&a_id, &a_id));
    drop(before);

    // The rotation: B added, A retired (reloaded from its files, as after a restart).
    let a = LocalIssuer::new(
        CaHierarchy::load(a_dir.path()).unwrap(),
        Default::default(),
        vec![],
    )
    .unwrap();
    let b = issuer(b_dir.path(), KeyAlgorithm::EcdsaP256);
    let b_id = b.issuer_id().to_owned();
    let set = IssuerSet::new(a)
        .with_issuer(b, false)
        .unwrap()
        .retire(&a_id)
        .unwrap();
    assert_eq!(set.is_retired(&a_id), Some(true));
    assert_eq!(
        set.identity().issuer_id,
        b_id,
        "the default is the active issuer"
    );
    let ids: Vec<String> = set.identities().into_iter().map(|i| i.issuer_id).collect();
    assert_eq!(ids, [a_id.clone(), b_id.clone()], "A still publishes");
    for algorithm in [KeyAlgorithm::EcdsaP256, KeyAlgorithm::Rsa2048] {
        let fresh = set.issue(request(algorithm)).await.unwrap();
        assert_eq!(fresh.issuer_id, b_id, "{algorithm}");
        openssl_verify(work.path(), b_dir.path(), &fresh.der, &set.chains(&b_id)[0]);
    }
    // A's chain is still served for A's certificates.
    openssl_verify(work.path(), a_dir.path(), &good.der, &set.chains(&a_id)[0]);

    // OCSP about A's certificates: signed by A, checked by `openssl ocsp`.
    let a_cert = set
        .get(&a_id)
        .unwrap()
        .hierarchy()
        .intermediate()
        .der()
        .to_vec();
    std::fs::write(
        work.path().join("a.pem"),
        pem_encode("CERTIFICATE", &a_cert),
    )
    .unwrap();
    let revoked_at = now() - Duration::minutes(5);
    for (leaf, serial, status, expect) in [
        (&good.der, &good_serial, CertStatus::Good, "good"),
        (
            &revoked.der,
            &revoked_serial,
            CertStatus::Revoked {
                revoked_at,
                reason: None,
            },
            "revoked",
        ),
    ] {
        let id = cert_id(&a_cert, serial);
        let der = set
            .sign_ocsp(&ResponseParams {
                cert_id: &id,
                status,
                produced_at: now(),
                this_update: now(),
                next_update: now() + Duration::days(4),
                nonce: None,
            })
            .await
            .unwrap();
        let parsed = cairn_ocsp::parse_response(&der).unwrap();
        let single = parsed.single().unwrap();
        assert_eq!(single.cert_id, id);
        assert_eq!(
            matches!(single.cert_status, CertStatusAsn1::Revoked(_)),
            expect == "revoked"
        );
        std::fs::write(work.path().join("resp.der"), &der).unwrap();
        std::fs::write(
            work.path().join("leaf.pem"),
            pem_encode("CERTIFICATE", leaf),
        )
        .unwrap();
        let out = openssl(
            work.path(),
            &[
                "ocsp", "-respin", "resp.der", "-issuer", "a.pem", "-cert", "leaf.pem", "-VAfile",
                "a.pem",
            ],
        );
        assert!(out.contains(&format!("leaf.pem: {expect}")), "{out}");
        assert!(out.contains("Response verify OK"), "{out}");
    }
    // A's CRL shard lists A's revoked certificate, signed by A (checked by `openssl crl`).
    let entries = [CrlEntry {
        serial: revoked_serial.to_bytes(),
        revoked_at,
        reason: 1,
    }];
    let crl = set
        .sign_crl(&CrlRequest {
            issuer_id: &a_id,
            shard: good.crl_shard,
            number: 2,
            this_update: now(),
            next_update: now() + Duration::days(7),
            entries: &entries,
        })
        .await
        .unwrap();
    let list: CertificateList = CertificateList::from_der(&crl).unwrap();
    let listed = list.tbs_cert_list.revoked_certificates.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(
        listed[0].serial_number,
        cert_id(&a_cert, &revoked_serial).serial_number
    );
    assert_eq!(
        CertInfo::from_der(&a_cert).unwrap().subject_der,
        der::Encode::to_der(&list.tbs_cert_list.issuer).unwrap()
    );
    std::fs::write(work.path().join("crl.der"), &crl).unwrap();
    std::fs::write(work.path().join("a-root.pem"), {
        let mut pem = std::fs::read_to_string(a_dir.path().join("root.pem")).unwrap();
        pem.push_str(&pem_encode("CERTIFICATE", &a_cert));
        pem
    })
    .unwrap();
    let out = openssl(
        work.path(),
        &[
            "crl",
            "-inform",
            "DER",
            "-in",
            "crl.der",
            "-CAfile",
            "a-root.pem",
            "-noout",
        ],
    );
    assert!(out.contains("verify OK"), "{out}");

    // Each root's CRL is signed under its own root; an unknown issuer is refused.
    for identity in set.identities() {
        set.sign_crl(&CrlRequest {
            issuer_id: &identity.root_id,
            shard: 0,
            number: 1,
            this_update: now(),
            next_update: now() + Duration::days(7),
            entries: &[],
        })
        .await
        .unwrap();
    }
    let unknown = set
        .sign_crl(&CrlRequest {
            issuer_id: "0000000000000000",
            shard: 0,
            number: 1,
            this_update: now(),
            next_update: now() + Duration::days(7),
            entries: &[],
        })
        .await;
    assert!(matches!(unknown, Err(IssuerError::InvalidRequest(_))));
}
