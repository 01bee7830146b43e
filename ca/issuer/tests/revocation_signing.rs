//! CRLs and OCSP responses signed through the `CertificateIssuer` trait, as the CRL updater and
//! the OCSP responder call it: the right key signs each scope, and the issuer refuses to sign for
//! a scope or a CertID that is not its own.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use cairn_issuer::{
    CaHierarchy, CertificateIssuer, CrlRequest, IssuerError, KeyAlgorithm, LocalIssuer,
};
use cairn_ocsp::asn1::CertId;
use cairn_ocsp::{CertStatus, HashAlgorithm, IssuerHashes, ResponseParams};
use cairn_x509::{CertInfo, CrlEntry};
use der::asn1::OctetString;
use der::{Decode, Encode};
use std::path::Path;
use time::{Duration, OffsetDateTime};
use x509_cert::crl::CertificateList;
use x509_cert::serial_number::SerialNumber;

fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc().replace_nanosecond(0).unwrap()
}

fn issuer(dir: &Path) -> LocalIssuer {
    let h = CaHierarchy::load_or_create(dir, KeyAlgorithm::EcdsaP256, now()).unwrap();
    LocalIssuer::new(h, Default::default(), Vec::new()).unwrap()
}

/// Whether `signed` (TBS DER, signature bits) verifies under the P-256 key of `cert_der`.
fn p256_signed_by(tbs: &[u8], signature: &[u8], cert_der: &[u8]) -> bool {
    let info = CertInfo::from_der(cert_der).unwrap();
    let spki = spki::SubjectPublicKeyInfoRef::try_from(info.spki_der.as_slice()).unwrap();
    aws_lc_rs::signature::UnparsedPublicKey::new(
        &aws_lc_rs::signature::ECDSA_P256_SHA256_ASN1,
        spki.subject_public_key.raw_bytes(),
    )
    .verify(tbs, signature)
    .is_ok()
}

fn crl_signed_by(crl_der: &[u8], cert_der: &[u8]) -> bool {
    let crl: CertificateList = CertificateList::from_der(crl_der).unwrap();
    let tbs = crl.tbs_cert_list.to_der().unwrap();
    p256_signed_by(&tbs, crl.signature.raw_bytes(), cert_der)
}

#[tokio::test]
async fn the_intermediate_signs_its_shards_and_the_root_its_crl() {
    let dir = tempfile::tempdir().unwrap();
    let local = issuer(dir.path());
    let hierarchy_der = (
        local.hierarchy().intermediate().der().to_vec(),
        local.hierarchy().root().der().to_vec(),
    );
    let issuer: &dyn CertificateIssuer = &local;
    let identity = issuer.identity();
    assert_eq!(identity.issuer_certificate_der, hierarchy_der.0);
    let entries = [CrlEntry {
        serial: vec![0x12, 0x34],
        revoked_at: now() - Duration::hours(2),
        reason: 1,
    }];
    let shard = issuer
        .sign_crl(&CrlRequest {
            issuer_id: &identity.issuer_id,
            shard: 5,
            number: 7,
            this_update: now(),
            next_update: now() + Duration::days(7),
            entries: &entries,
        })
        .await
        .unwrap();
    assert!(crl_signed_by(&shard, &hierarchy_der.0));
    assert!(!crl_signed_by(&shard, &hierarchy_der.1));
    let listed: CertificateList = CertificateList::from_der(&shard).unwrap();
    assert_eq!(listed.tbs_cert_list.revoked_certificates.unwrap().len(), 1);

    let root_crl = issuer
        .sign_crl(&CrlRequest {
            issuer_id: &identity.root_id,
            shard: 0,
            number: 1,
            this_update: now(),
            next_update: now() + Duration::days(7),
            entries: &[],
        })
        .await
        .unwrap();
    assert!(crl_signed_by(&root_crl, &hierarchy_der.1));

    for (issuer_id, shard) in [(identity.root_id.as_str(), 1), ("someone-else", 0)] {
        let refused = issuer
            .sign_crl(&CrlRequest {
                issuer_id,
                shard,
                number: 1,
                this_update: now(),
                next_update: now() + Duration::days(7),
                entries: &[],
            })
            .await;
        assert!(
            matches!(refused, Err(IssuerError::InvalidRequest(_))),
            "{issuer_id}/{shard}: {refused:?}"
        );
    }
}

/// On a multi-threaded runtime the issuer signs a CRL in `block_in_place`: from a worker (a
/// spawned task, as the CRL updater runs) and from the runtime's `block_on` alike.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crls_are_signed_on_a_multi_threaded_runtime_from_any_task() {
    let dir = tempfile::tempdir().unwrap();
    let local = std::sync::Arc::new(issuer(dir.path()));
    let intermediate = local.hierarchy().intermediate().der().to_vec();
    let sign = |issuer: std::sync::Arc<LocalIssuer>| async move {
        let issuer: &dyn CertificateIssuer = &*issuer;
        issuer
            .sign_crl(&CrlRequest {
                issuer_id: &issuer.identity().issuer_id,
                shard: 0,
                number: 1,
                this_update: now(),
                next_update: now() + Duration::days(7),
                entries: &[],
            })
            .await
            .unwrap()
    };
    let spawned = tokio::spawn(sign(local.clone())).await.unwrap();
    assert!(crl_signed_by(&spawned, &intermediate));
    let inline = sign(local).await;
    assert!(crl_signed_by(&inline, &intermediate));
}

fn cert_id(issuer_der: &[u8]) -> CertId {
    let hashes = IssuerHashes::from_certificate(issuer_der).unwrap();
    let (name, key) = hashes.get(HashAlgorithm::Sha256).unwrap();
    CertId {
        hash_algorithm: HashAlgorithm::Sha256.algorithm_identifier(),
        issuer_name_hash: OctetString::new(name.to_vec()).unwrap(),
        issuer_key_hash: OctetString::new(key.to_vec()).unwrap(),
        serial_number: SerialNumber::new(&[0x0a, 0x0b]).unwrap(),
    }
}

#[tokio::test]
async fn ocsp_answers_are_signed_for_the_issuers_own_cert_ids_only() {
    let (ours, theirs) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let local = issuer(ours.path());
    let signer: &dyn CertificateIssuer = &local;
    let identity = signer.identity();
    let params = |id| ResponseParams {
        cert_id: id,
        status: CertStatus::Good,
        produced_at: now(),
        this_update: now(),
        next_update: now() + Duration::days(4),
        nonce: None,
    };

    let ours_id = cert_id(&identity.issuer_certificate_der);
    let der = signer.sign_ocsp(&params(&ours_id)).await.unwrap();
    let parsed = cairn_ocsp::parse_response(&der).unwrap();
    assert_eq!(parsed.single().unwrap().cert_id, ours_id);
    let basic = parsed.basic.as_ref().unwrap();
    assert!(p256_signed_by(
        &parsed.tbs_response_data_der().unwrap(),
        basic.signature.raw_bytes(),
        &identity.issuer_certificate_der,
    ));

    let other = issuer(theirs.path());
    let theirs_id = cert_id(other.hierarchy().intermediate().der());
    let refused = signer.sign_ocsp(&params(&theirs_id)).await;
    assert!(
        matches!(refused, Err(IssuerError::InvalidRequest(_))),
        "{refused:?}"
    );
}
