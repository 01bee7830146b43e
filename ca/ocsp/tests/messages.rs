//! OCSP messages: requests written by OpenSSL parse and match their issuer, requests and
//! responses round-trip through DER, bad requests are refused with the right error, and signed
//! responses verify.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use cairn_ocsp::asn1::{
    CertId, CertStatusAsn1, OcspRequest, OcspResponseStatus, Request, ResponderId, TbsRequest,
    Version,
};
use cairn_ocsp::{
    BuildError, CertStatus, HashAlgorithm, IssuerHashes, RequestError, ResponseParams,
    ResponseSigner, error_response, key_hash_sha1, parse_request, parse_response, sign_response,
};
use cairn_x509::{KeyAlgorithm, SigningKey};
use der::asn1::{Any, ObjectIdentifier, OctetString};
use der::{Decode, Encode};
use spki::AlgorithmIdentifierOwned;
use time::OffsetDateTime;
use x509_cert::ext::Extension;
use x509_cert::ext::pkix::crl::CrlReason;
use x509_cert::serial_number::SerialNumber;

/// `openssl ocsp -issuer ca.pem -serial 0x0123456789abcdef -reqout req.der -no_nonce`
const OPENSSL_SHA1_REQUEST: &str = "30493047304530433041300906052b0e03021a05000414bf7052c8b9c0f760c89123e099815eb2c039422604142669fdfe854e6ba1f182714bde0cd106059dcf6c02080123456789abcdef";
/// `openssl ocsp -sha256 -issuer ca.pem -serial 0x7f -reqout req.der` (with OpenSSL's nonce)
const OPENSSL_SHA256_NONCE_REQUEST: &str = "308184308181305a30583056300d0609608648016503040201050004208048479c84625e7fde383cf9d59c450e415dae47be9d15c3f75bb6dc57aeb562042077108bb26dec05128beb073e8ea23983f670f9a99c8971348843cf2358bbf4b402017fa2233021301f06092b0601050507300102041204109459566907480501400d3df58639be48";
/// The `ca.pem` of both requests (a throwaway self-signed P-256 certificate, no key kept).
const OPENSSL_CA: &str = "308201783082011fa00302010202145e0c6d8ea5abc8ab5708bbf866d6134956016947300a06082a8648ce3d04030230123110300e06035504030c0754657374204341301e170d3236313132343038323935355a170d3236313232343038323935355a30123110300e06035504030c07546573742043413059301306072a8648ce3d020106082a8648ce3d030107034200040b75bfc60bee5a1371ddba6e7f94f828dacd97488fcb032d95e32a513316927d2f0aca0896f61dd7bcbd110f64e3060fb652ace915cd0bbddd650e412546816da3533051301d0603551d0e041604142669fdfe854e6ba1f182714bde0cd106059dcf6c301f0603551d230418301680142669fdfe854e6ba1f182714bde0cd106059dcf6c300f0603551d130101ff040530030101ff300a06082a8648ce3d040302034700304402202853cd50d3f92558c96f33b86a63ebebe5adf2a92535e558b2fe46a40baebfb1022069d52acd03d0209858c2d4839cbcf8e020251fe9134000326533ed4a24866a7e";

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

#[test]
fn openssl_sha1_request_parses_and_names_its_issuer() {
    let req = parse_request(&unhex(OPENSSL_SHA1_REQUEST)).unwrap();
    assert_eq!(req.hash_algorithm, HashAlgorithm::Sha1);
    assert_eq!(req.serial_hex(), "0123456789abcdef");
    assert!(req.nonce().unwrap().is_none());
    let hashes = IssuerHashes::from_certificate(&unhex(OPENSSL_CA)).unwrap();
    assert!(hashes.matches(&req.cert_id));
    // The key hash OpenSSL sent is the SHA-1 of the key bits (here also the CA's SKI).
    let (_, key) = hashes.get(HashAlgorithm::Sha1).unwrap();
    assert_eq!(
        key,
        unhex("2669fdfe854e6ba1f182714bde0cd106059dcf6c").as_slice()
    );
}

#[test]
fn openssl_sha256_request_with_nonce_parses() {
    let req = parse_request(&unhex(OPENSSL_SHA256_NONCE_REQUEST)).unwrap();
    assert_eq!(req.hash_algorithm, HashAlgorithm::Sha256);
    assert_eq!(req.serial_hex(), "7f");
    let nonce = req.nonce().unwrap().expect("nonce");
    assert_eq!(
        nonce.extn_value.as_bytes(),
        unhex("04109459566907480501400d3df58639be48").as_slice()
    );
    let hashes = IssuerHashes::from_certificate(&unhex(OPENSSL_CA)).unwrap();
    assert!(hashes.matches(&req.cert_id));
}

#[test]
fn another_issuers_request_does_not_match() {
    let req = parse_request(&unhex(OPENSSL_SHA1_REQUEST)).unwrap();
    let key = SigningKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
    let other = cairn_x509::build_root(
        &key,
        "Other CA",
        None,
        OffsetDateTime::now_utc() - time::Duration::hours(1),
        OffsetDateTime::now_utc() + time::Duration::days(1),
    )
    .unwrap();
    assert!(
        !IssuerHashes::from_certificate(&other)
            .unwrap()
            .matches(&req.cert_id)
    );
}

fn cert_id(alg: HashAlgorithm, serial: &[u8]) -> CertId {
    CertId {
        hash_algorithm: alg.algorithm_identifier(),
        issuer_name_hash: OctetString::new(vec![1u8; alg.output_len()]).unwrap(),
        issuer_key_hash: OctetString::new(vec![2u8; alg.output_len()]).unwrap(),
        serial_number: SerialNumber::new(serial).unwrap(),
    }
}

fn request(ids: Vec<CertId>, extensions: Option<Vec<Extension>>) -> Vec<u8> {
    OcspRequest {
        tbs_request: TbsRequest {
            version: Version::V1,
            requestor_name: None,
            request_list: ids
                .into_iter()
                .map(|req_cert| Request {
                    req_cert,
                    single_request_extensions: None,
                })
                .collect(),
            request_extensions: extensions,
        },
        optional_signature: None,
    }
    .to_der()
    .unwrap()
}

fn nonce_extension(inner: &[u8]) -> Extension {
    Extension {
        extn_id: cairn_ocsp::OID_OCSP_NONCE,
        critical: false,
        extn_value: OctetString::new(inner.to_vec()).unwrap(),
    }
}

#[test]
fn built_requests_round_trip() {
    for alg in HashAlgorithm::ALL {
        let id = cert_id(alg, &[0x00, 0x80, 0x01]);
        let der = request(vec![id.clone()], None);
        let back = OcspRequest::from_der(&der).unwrap();
        assert_eq!(back.to_der().unwrap(), der);
        let parsed = parse_request(&der).unwrap();
        assert_eq!(parsed.cert_id, id);
        assert_eq!(parsed.hash_algorithm, alg);
        assert_eq!(parsed.serial, vec![0x80, 0x01]);
        assert_eq!(parsed.serial_hex(), "8001");
    }
}

#[test]
fn bad_requests_are_refused_with_the_reason() {
    let ok = cert_id(HashAlgorithm::Sha1, &[0x42]);
    assert!(matches!(parse_request(b""), Err(RequestError::Empty)));
    assert!(matches!(
        parse_request(b"GET / HTTP/1.1"),
        Err(RequestError::Decode(_))
    ));
    assert!(matches!(
        parse_request(&vec![0x30; cairn_ocsp::MAX_REQUEST_SIZE + 1]),
        Err(RequestError::TooLarge(_))
    ));
    let mut trailing = request(vec![ok.clone()], None);
    trailing.push(0);
    assert!(matches!(
        parse_request(&trailing),
        Err(RequestError::Decode(_))
    ));
    assert!(matches!(
        parse_request(&request(vec![], None)),
        Err(RequestError::NoRequests)
    ));
    assert!(matches!(
        parse_request(&request(vec![ok.clone(), ok.clone()], None)),
        Err(RequestError::TooManyRequests(2))
    ));
    let md5 = CertId {
        hash_algorithm: AlgorithmIdentifierOwned {
            oid: ObjectIdentifier::new_unwrap("1.2.840.113549.2.5"),
            parameters: None,
        },
        ..ok.clone()
    };
    assert!(matches!(
        parse_request(&request(vec![md5], None)),
        Err(RequestError::UnsupportedHashAlgorithm(_))
    ));
    let params = CertId {
        hash_algorithm: AlgorithmIdentifierOwned {
            oid: cairn_ocsp::OID_SHA1,
            parameters: Some(Any::encode_from(&OctetString::new(vec![1]).unwrap()).unwrap()),
        },
        ..ok.clone()
    };
    assert!(matches!(
        parse_request(&request(vec![params], None)),
        Err(RequestError::HashParameters)
    ));
    let absent_params = CertId {
        hash_algorithm: AlgorithmIdentifierOwned {
            oid: cairn_ocsp::OID_SHA1,
            parameters: None,
        },
        ..ok.clone()
    };
    assert!(parse_request(&request(vec![absent_params], None)).is_ok());
    let short = CertId {
        issuer_key_hash: OctetString::new(vec![2u8; 19]).unwrap(),
        ..ok.clone()
    };
    assert!(matches!(
        parse_request(&request(vec![short], None)),
        Err(RequestError::HashLength { expected: 20, .. })
    ));
    // SHA-1 sized hashes under SHA-256.
    let mixed = CertId {
        hash_algorithm: HashAlgorithm::Sha256.algorithm_identifier(),
        ..ok.clone()
    };
    assert!(matches!(
        parse_request(&request(vec![mixed], None)),
        Err(RequestError::HashLength { expected: 32, .. })
    ));
    let zero = cert_id(HashAlgorithm::Sha1, &[0x00]);
    assert!(matches!(
        parse_request(&request(vec![zero], None)),
        Err(RequestError::BadSerial)
    ));
    let critical = Extension {
        extn_id: ObjectIdentifier::new_unwrap("1.2.3.4"),
        critical: true,
        extn_value: OctetString::new(vec![5, 0]).unwrap(),
    };
    assert!(matches!(
        parse_request(&request(vec![ok.clone()], Some(vec![critical.clone()]))),
        Err(RequestError::UnsupportedCriticalExtension(_))
    ));
    let harmless = Extension {
        critical: false,
        ..critical
    };
    assert!(parse_request(&request(vec![ok.clone()], Some(vec![harmless]))).is_ok());
}

#[test]
fn negative_serials_are_refused() {
    // SerialNumber::new refuses to build a negative serial, so patch the encoding by hand:
    // INTEGER 0x42 -> 0xc2.
    let mut der = request(vec![cert_id(HashAlgorithm::Sha1, &[0x42])], None);
    let last = der.len() - 1;
    assert_eq!(der[last], 0x42);
    der[last] = 0xc2;
    assert!(parse_request(&der).is_err());
}

#[test]
fn nonces_are_checked_as_rfc_8954_says() {
    let ok = cert_id(HashAlgorithm::Sha1, &[0x42]);
    let good = OctetString::new(vec![7u8; 32]).unwrap().to_der().unwrap();
    let req = parse_request(&request(
        vec![ok.clone()],
        Some(vec![nonce_extension(&good)]),
    ))
    .unwrap();
    assert_eq!(
        req.nonce().unwrap().unwrap().extn_value.as_bytes(),
        good.as_slice()
    );
    let long = OctetString::new(vec![7u8; 33]).unwrap().to_der().unwrap();
    let empty = OctetString::new(Vec::new()).unwrap().to_der().unwrap();
    for bad in [long.as_slice(), empty.as_slice(), b"raw bytes".as_slice()] {
        let req = parse_request(&request(vec![ok.clone()], Some(vec![nonce_extension(bad)])))
            .expect("parses: the nonce is only checked when it is echoed");
        assert!(matches!(req.nonce(), Err(RequestError::BadNonce)));
    }
}

struct TestSigner {
    key: SigningKey,
    certs: Vec<Vec<u8>>,
}

impl ResponseSigner for TestSigner {
    fn responder_key_hash(&self) -> [u8; 20] {
        key_hash_sha1(self.key.spki_der()).unwrap()
    }
    fn signature_algorithm(&self) -> AlgorithmIdentifierOwned {
        self.key.signature_algorithm()
    }
    fn sign(&self, tbs: &[u8]) -> Result<Vec<u8>, BuildError> {
        self.key.sign(tbs).map_err(|_| BuildError::Signing)
    }
    fn certificates(&self) -> &[Vec<u8>] {
        &self.certs
    }
}

fn verify(spki_der: &[u8], message: &[u8], signature: &[u8]) -> bool {
    let spki = spki::SubjectPublicKeyInfoRef::from_der(spki_der).unwrap();
    aws_lc_rs::signature::UnparsedPublicKey::new(
        &aws_lc_rs::signature::ECDSA_P256_SHA256_ASN1,
        spki.subject_public_key.raw_bytes(),
    )
    .verify(message, signature)
    .is_ok()
}

fn at(unix: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(unix).unwrap()
}

#[test]
fn signed_responses_round_trip_and_verify() {
    let key = SigningKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
    let spki = key.spki_der().to_vec();
    let signer = TestSigner {
        key,
        certs: Vec::new(),
    };
    let id = cert_id(HashAlgorithm::Sha1, &[0x01, 0x02]);
    let statuses = [
        CertStatus::Good,
        CertStatus::Unknown,
        CertStatus::Revoked {
            revoked_at: at(1_700_000_000),
            reason: Some(CrlReason::KeyCompromise),
        },
        CertStatus::Revoked {
            revoked_at: at(1_700_000_001),
            reason: None,
        },
    ];
    for status in statuses {
        let der = sign_response(
            &ResponseParams {
                cert_id: &id,
                status,
                produced_at: at(1_800_000_000),
                this_update: at(1_800_000_000),
                next_update: at(1_800_345_600),
                nonce: None,
            },
            &signer,
        )
        .unwrap();
        let parsed = parse_response(&der).unwrap();
        assert_eq!(parsed.status, OcspResponseStatus::Successful);
        let basic = parsed.basic.as_ref().unwrap();
        assert!(verify(
            &spki,
            &parsed.tbs_response_data_der().unwrap(),
            basic.signature.raw_bytes()
        ));
        assert!(basic.certs.is_none());
        let data = &basic.tbs_response_data;
        assert_eq!(
            data.responder_id,
            ResponderId::ByKey(OctetString::new(signer.responder_key_hash().to_vec()).unwrap())
        );
        assert!(data.response_extensions.is_none());
        let single = parsed.single().unwrap();
        assert_eq!(single.cert_id, id);
        assert_eq!(single.this_update_time(), Some(at(1_800_000_000)));
        assert_eq!(single.next_update_time(), Some(at(1_800_345_600)));
        match (status, &single.cert_status) {
            (CertStatus::Good, CertStatusAsn1::Good(_))
            | (CertStatus::Unknown, CertStatusAsn1::Unknown(_)) => {}
            (CertStatus::Revoked { revoked_at, reason }, CertStatusAsn1::Revoked(info)) => {
                assert_eq!(
                    info.revocation_time.to_unix_duration().as_secs() as i64,
                    revoked_at.unix_timestamp()
                );
                assert_eq!(info.revocation_reason, reason);
            }
            other => panic!("status mismatch: {other:?}"),
        }
        // A flipped bit in the signed data breaks the signature.
        let mut tampered = parsed.tbs_response_data_der().unwrap();
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        assert!(!verify(&spki, &tampered, basic.signature.raw_bytes()));
    }
}

#[test]
fn nonce_is_echoed_and_delegate_certificate_included() {
    let key = SigningKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
    let now = OffsetDateTime::now_utc();
    let cert = cairn_x509::build_root(
        &key,
        "Responder",
        None,
        now - time::Duration::hours(1),
        now + time::Duration::days(1),
    )
    .unwrap();
    let signer = TestSigner {
        key,
        certs: vec![cert.clone()],
    };
    let nonce = nonce_extension(&OctetString::new(vec![9u8; 16]).unwrap().to_der().unwrap());
    let id = cert_id(HashAlgorithm::Sha256, &[0x33]);
    let der = sign_response(
        &ResponseParams {
            cert_id: &id,
            status: CertStatus::Good,
            produced_at: at(1_800_000_000),
            this_update: at(1_800_000_000),
            next_update: at(1_800_000_060),
            nonce: Some(&nonce),
        },
        &signer,
    )
    .unwrap();
    let parsed = parse_response(&der).unwrap();
    let basic = parsed.basic.unwrap();
    assert_eq!(
        basic.tbs_response_data.response_extensions,
        Some(vec![nonce])
    );
    let certs = basic.certs.unwrap();
    assert_eq!(certs.len(), 1);
    assert_eq!(certs[0].to_der().unwrap(), cert);
}

#[test]
fn validity_must_be_positive() {
    let signer = TestSigner {
        key: SigningKey::generate(KeyAlgorithm::EcdsaP256).unwrap(),
        certs: Vec::new(),
    };
    let id = cert_id(HashAlgorithm::Sha1, &[0x33]);
    let err = sign_response(
        &ResponseParams {
            cert_id: &id,
            status: CertStatus::Good,
            produced_at: at(1_800_000_000),
            this_update: at(1_800_000_000),
            next_update: at(1_800_000_000),
            nonce: None,
        },
        &signer,
    )
    .unwrap_err();
    assert!(matches!(err, BuildError::InvalidValidity));
}

#[test]
fn error_responses_decode_to_their_status() {
    for status in [
        OcspResponseStatus::MalformedRequest,
        OcspResponseStatus::InternalError,
        OcspResponseStatus::TryLater,
        OcspResponseStatus::SigRequired,
        OcspResponseStatus::Unauthorized,
    ] {
        let parsed = parse_response(&error_response(status)).unwrap();
        assert_eq!(parsed.status, status);
        assert!(parsed.basic.is_none());
    }
}
