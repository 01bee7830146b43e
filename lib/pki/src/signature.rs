//! X.509 signature verification with aws-lc-rs: which verification algorithm a signature
//! algorithm identifier means for a given key, and whether a certificate is signed by a key.

use crate::key::{
    KeyAlgorithm, OID_ECDSA_SHA256, OID_ECDSA_SHA384, OID_SHA256_WITH_RSA, OID_SHA384_WITH_RSA,
    OID_SHA512_WITH_RSA,
};
use aws_lc_rs::signature::{UnparsedPublicKey, VerificationAlgorithm};
use der::asn1::{AnyRef, BitStringRef};
use der::{Decode, Encode, Sequence};
use spki::{AlgorithmIdentifierRef, SubjectPublicKeyInfoRef};

/// The aws-lc verification algorithm for a signature by a `key` key under the X.509 signature
/// algorithm `alg`: RSA PKCS#1 v1.5 with SHA-256/384/512 (NULL or absent parameters) for RSA
/// keys, ECDSA with SHA-256/384 (no parameters) for P-256/P-384 keys. `None` for anything else,
/// including a mismatch between the algorithm and the key type.
pub fn verification_algorithm(
    key: KeyAlgorithm,
    alg: &AlgorithmIdentifierRef<'_>,
) -> Option<&'static dyn VerificationAlgorithm> {
    use aws_lc_rs::signature as sig;
    let oid = alg.oid;
    if key.is_rsa() {
        if alg.parameters.is_some_and(|p| !p.is_null()) {
            return None;
        }
        if oid == OID_SHA256_WITH_RSA {
            Some(&sig::RSA_PKCS1_2048_8192_SHA256)
        } else if oid == OID_SHA384_WITH_RSA {
            Some(&sig::RSA_PKCS1_2048_8192_SHA384)
        } else if oid == OID_SHA512_WITH_RSA {
            Some(&sig::RSA_PKCS1_2048_8192_SHA512)
        } else {
            None
        }
    } else {
        if alg.parameters.is_some() {
            return None;
        }
        let sha256 = oid == OID_ECDSA_SHA256;
        let sha384 = oid == OID_ECDSA_SHA384;
        match key {
            KeyAlgorithm::EcdsaP256 if sha256 => Some(&sig::ECDSA_P256_SHA256_ASN1),
            KeyAlgorithm::EcdsaP256 if sha384 => Some(&sig::ECDSA_P256_SHA384_ASN1),
            KeyAlgorithm::EcdsaP384 if sha256 => Some(&sig::ECDSA_P384_SHA256_ASN1),
            KeyAlgorithm::EcdsaP384 if sha384 => Some(&sig::ECDSA_P384_SHA384_ASN1),
            _ => None,
        }
    }
}

/// Verifies `signature` over `message` by the key `spki_der` under the X.509 signature
/// algorithm `alg` (see [`KeyAlgorithm::from_spki_der`] for the keys accepted).
pub fn verify_x509_signature(
    spki_der: &[u8],
    alg: &AlgorithmIdentifierRef<'_>,
    message: &[u8],
    signature: &[u8],
) -> bool {
    let Ok(key) = KeyAlgorithm::from_spki_der(spki_der) else {
        return false;
    };
    let Some(verify_alg) = verification_algorithm(key, alg) else {
        return false;
    };
    let Ok(spki) = SubjectPublicKeyInfoRef::from_der(spki_der) else {
        return false;
    };
    let Some(key_bits) = spki.subject_public_key.as_bytes() else {
        return false;
    };
    // aws-lc takes the PKCS#1 RSAPublicKey or the uncompressed EC point: the BIT STRING contents.
    UnparsedPublicKey::new(verify_alg, key_bits)
        .verify(message, signature)
        .is_ok()
}

/// The outer Certificate with the signed part kept as raw DER.
#[derive(Sequence)]
struct RawCertificate<'a> {
    tbs_certificate: AnyRef<'a>,
    signature_algorithm: AlgorithmIdentifierRef<'a>,
    signature: BitStringRef<'a>,
}

/// True if `cert_der`'s signature verifies with the issuer public key `issuer_spki_der`
/// (SubjectPublicKeyInfo DER; RSA 2048–4096 or ECDSA P-256/P-384).
pub fn is_signed_by(cert_der: &[u8], issuer_spki_der: &[u8]) -> bool {
    let Ok(raw) = RawCertificate::from_der(cert_der) else {
        return false;
    };
    let Ok(tbs) = raw.tbs_certificate.to_der() else {
        return false;
    };
    let Some(signature) = raw.signature.as_bytes() else {
        return false;
    };
    verify_x509_signature(issuer_spki_der, &raw.signature_algorithm, &tbs, signature)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn self_signed(alg: &'static rcgen::SignatureAlgorithm) -> (Vec<u8>, Vec<u8>) {
        let key = rcgen::KeyPair::generate_for(alg).unwrap();
        let params = rcgen::CertificateParams::new(vec!["example.com".to_string()]).unwrap();
        let cert = params.self_signed(&key).unwrap();
        (
            cert.der().to_vec(),
            rcgen::PublicKeyData::subject_public_key_info(&key),
        )
    }

    #[test]
    fn certificates_verify_only_under_their_signer() {
        let (p256, p256_spki) = self_signed(&rcgen::PKCS_ECDSA_P256_SHA256);
        let (p384, p384_spki) = self_signed(&rcgen::PKCS_ECDSA_P384_SHA384);
        assert!(is_signed_by(&p256, &p256_spki));
        assert!(is_signed_by(&p384, &p384_spki));
        assert!(!is_signed_by(&p256, &p384_spki));
        assert!(!is_signed_by(&p384, &p256_spki));
        let mut tampered = p256.clone();
        let n = tampered.len();
        tampered[n - 10] ^= 1;
        assert!(!is_signed_by(&tampered, &p256_spki));
        assert!(!is_signed_by(b"junk", &p256_spki));
        assert!(!is_signed_by(&p256, b"junk"));
    }

    #[test]
    fn algorithm_must_match_the_key_type() {
        let ecdsa_sha256 = AlgorithmIdentifierRef {
            oid: OID_ECDSA_SHA256,
            parameters: None,
        };
        let rsa_sha256 = AlgorithmIdentifierRef {
            oid: OID_SHA256_WITH_RSA,
            parameters: Some(AnyRef::NULL),
        };
        assert!(verification_algorithm(KeyAlgorithm::EcdsaP256, &ecdsa_sha256).is_some());
        assert!(verification_algorithm(KeyAlgorithm::Rsa2048, &rsa_sha256).is_some());
        assert!(verification_algorithm(KeyAlgorithm::EcdsaP256, &rsa_sha256).is_none());
        assert!(verification_algorithm(KeyAlgorithm::Rsa3072, &ecdsa_sha256).is_none());
        // ECDSA identifiers carry no parameters.
        let with_params = AlgorithmIdentifierRef {
            oid: OID_ECDSA_SHA256,
            parameters: Some(AnyRef::NULL),
        };
        assert!(verification_algorithm(KeyAlgorithm::EcdsaP256, &with_params).is_none());
    }
}
