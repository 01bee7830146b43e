//! CSR parsing + checking and end-entity certificate building + signing, each next to the raw
//! aws-lc-rs operation it wraps (the CSR's signature check; one ECDSA signature).
//! `cargo bench -p cairn-x509`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // benchmark set-up

use aws_lc_rs::signature::{self, UnparsedPublicKey};
use cairn_core::Identifier;
use cairn_x509::{
    CaCertificate, EndEntityParams, EndEntityProfile, KeyAlgorithm, SigningKey, build_end_entity,
    build_root, parse_csr,
};
use time::{Duration, OffsetDateTime};

fn main() {
    divan::main();
}

fn csr() -> Vec<u8> {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["www.example.com".to_string()]).unwrap();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.serialize_request(&key).unwrap().der().to_vec()
}

/// Cairn: decode, check the self-signature, the key and the names.
#[divan::bench]
fn cairn_parse_csr(bencher: divan::Bencher) {
    let der = csr();
    bencher.bench(|| parse_csr(divan::black_box(&der)).unwrap());
}

/// Raw aws-lc-rs: the CSR's ECDSA P-256 signature check alone.
#[divan::bench]
fn raw_csr_signature_verify(bencher: divan::Bencher) {
    use der::{Decode, Encode};
    let der = csr();
    let req = x509_cert::request::CertReq::from_der(&der).unwrap();
    let info = req.info.to_der().unwrap();
    let sig = req.signature.raw_bytes().to_vec();
    let point = req.info.public_key.subject_public_key.raw_bytes().to_vec();
    bencher.bench(|| {
        UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_ASN1, &point)
            .verify(divan::black_box(&info), &sig)
            .unwrap();
    });
}

fn issuer() -> CaCertificate {
    let key = SigningKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
    let now = OffsetDateTime::now_utc();
    let der = build_root(&key, "Bench CA", None, now, now + Duration::days(365)).unwrap();
    CaCertificate::new(der, key).unwrap()
}

/// Cairn: build the TBSCertificate (extensions, names) and sign it with the CA's P-256 key.
#[divan::bench]
fn cairn_build_end_entity(bencher: divan::Bencher) {
    let ca = issuer();
    let subject = SigningKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
    let ids = [Identifier::dns("www.example.com")];
    let now = OffsetDateTime::now_utc();
    let profile = EndEntityProfile::default();
    bencher.bench(|| {
        let params = EndEntityParams {
            serial: &[0x42; 16],
            spki_der: subject.spki_der(),
            identifiers: &ids,
            common_name: Some("www.example.com"),
            not_before: now,
            not_after: now + Duration::days(90),
        };
        build_end_entity(&ca, divan::black_box(&params), &profile).unwrap()
    });
}

/// Raw aws-lc-rs: one ECDSA P-256 signature over a TBSCertificate-sized message.
#[divan::bench]
fn raw_ecdsa_p256_sign(bencher: divan::Bencher) {
    let key = SigningKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
    let tbs = vec![0x30u8; 600];
    bencher.bench(|| key.sign(divan::black_box(&tbs)).unwrap());
}
