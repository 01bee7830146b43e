//! Signing keys (aws-lc-rs): generation, PKCS#8 import and export, and X.509 signatures with the
//! matching `AlgorithmIdentifier`. Which public keys are accepted ([`KeyAlgorithm`]) is shared
//! with the CT log and lives in `cairn-pki`.

use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_ASN1_SIGNING, ECDSA_P384_SHA384_ASN1_SIGNING, EcdsaKeyPair, KeyPair,
    RSA_PKCS1_SHA256, RsaKeyPair,
};
use cairn_pki::PublicKeyError;
use cairn_pki::key::{
    OID_EC_PUBLIC_KEY, OID_ECDSA_SHA256, OID_ECDSA_SHA384, OID_ED25519, OID_P256, OID_P384,
    OID_P521, OID_RSA_ENCRYPTION, OID_SHA256_WITH_RSA, RsaPublicKey,
};
use der::Decode;
use der::asn1::{AnyRef, ObjectIdentifier};
use spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoRef};
use std::fmt;
use std::sync::Arc;

pub use cairn_pki::{ExternalSigner, ExternalSignerError};

pub use cairn_pki::KeyAlgorithm;

/// The RFC 7638 JWK thumbprint (base64url, unpadded, of the SHA-256 of the canonical JWK) of a
/// SubjectPublicKeyInfo, so a certificate or CSR key can be compared with an ACME account key.
/// Covers RSA, EC P-256/P-384/P-521 and Ed25519; `None` for anything else or malformed input.
pub fn spki_jwk_thumbprint(spki_der: &[u8]) -> Option<String> {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
    let spki = SubjectPublicKeyInfoRef::from_der(spki_der).ok()?;
    let bits = spki.subject_public_key.as_bytes()?;
    let oid = spki.algorithm.oid;
    let canonical = if oid == OID_RSA_ENCRYPTION {
        let rsa = RsaPublicKey::from_der(bits).ok()?;
        let strip = |b: &'_ [u8]| -> Vec<u8> {
            let start = b.iter().position(|x| *x != 0).unwrap_or(b.len());
            b[start..].to_vec()
        };
        format!(
            r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#,
            B64.encode(strip(rsa.public_exponent.as_bytes())),
            B64.encode(strip(rsa.modulus.as_bytes()))
        )
    } else if oid == OID_EC_PUBLIC_KEY {
        let curve: ObjectIdentifier = spki.algorithm.parameters?.decode_as().ok()?;
        let (crv, len) = if curve == OID_P256 {
            ("P-256", 32)
        } else if curve == OID_P384 {
            ("P-384", 48)
        } else if curve == OID_P521 {
            ("P-521", 66)
        } else {
            return None;
        };
        if bits.len() != 1 + 2 * len || bits.first() != Some(&0x04) {
            return None;
        }
        format!(
            r#"{{"crv":"{crv}","kty":"EC","x":"{}","y":"{}"}}"#,
            B64.encode(&bits[1..1 + len]),
            B64.encode(&bits[1 + len..])
        )
    } else if oid == OID_ED25519 {
        format!(
            r#"{{"crv":"Ed25519","kty":"OKP","x":"{}"}}"#,
            B64.encode(bits)
        )
    } else {
        return None;
    };
    Some(B64.encode(aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA256,
        canonical.as_bytes(),
    )))
}

/// Key handling failures.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The algorithm name is not one of `ecdsa-p256`, `ecdsa-p384`, `rsa-2048`, `rsa-3072`,
    /// `rsa-4096`.
    #[error(
        "unknown key algorithm {0:?} (expected ecdsa-p256, ecdsa-p384, rsa-2048, rsa-3072 or rsa-4096)"
    )]
    UnknownAlgorithm(String),
    /// The random number generator or key generation failed.
    #[error("key generation failed")]
    Generation,
    /// The private key is not a PKCS#8 key of a supported type, or is not valid PEM.
    #[error("invalid private key: {0}")]
    InvalidPrivateKey(String),
    /// The public key (SubjectPublicKeyInfo) does not decode.
    #[error("malformed public key: {0}")]
    MalformedPublicKey(String),
    /// The public key is well formed but of a type or size the CA refuses.
    #[error("unsupported key: {0}")]
    UnsupportedKey(String),
    /// Producing a signature failed.
    #[error("signing failed")]
    Signing,
    /// An external signer (an HSM) failed to sign; there is no fallback to another key.
    #[error("external key {key} failed to sign: {error}")]
    ExternalSigning {
        /// Where the key lives.
        key: String,
        /// What the signer said.
        error: String,
    },
}

impl From<PublicKeyError> for KeyError {
    fn from(e: PublicKeyError) -> Self {
        match e {
            PublicKeyError::UnknownAlgorithm(s) => KeyError::UnknownAlgorithm(s),
            PublicKeyError::Malformed(s) => KeyError::MalformedPublicKey(s),
            PublicKeyError::Unsupported(s) => KeyError::UnsupportedKey(s),
            // `PublicKeyError` is non-exhaustive: a future refusal is still a refused key.
            other => KeyError::UnsupportedKey(other.to_string()),
        }
    }
}

/// The aws-lc key pair behind a [`SigningKey`].
enum KeyPairInner {
    Ecdsa(EcdsaKeyPair),
    Rsa(RsaKeyPair),
    /// A key held outside the process (an HSM through PKCS#11): it signs, it never exports.
    External(Arc<dyn ExternalSigner>),
}

/// A private key that signs certificates. The key bytes never appear in `Debug` output.
pub struct SigningKey {
    inner: KeyPairInner,
    algorithm: KeyAlgorithm,
    spki_der: Vec<u8>,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("algorithm", &self.algorithm)
            .field("spki_sha256", &hex::encode(spki_digest(&self.spki_der)))
            .field("external", &self.external_description())
            .finish_non_exhaustive()
    }
}

fn spki_digest(spki_der: &[u8]) -> Vec<u8> {
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, spki_der)
        .as_ref()
        .to_vec()
}

impl SigningKey {
    /// Generates a fresh key.
    pub fn generate(algorithm: KeyAlgorithm) -> Result<SigningKey, KeyError> {
        let inner = match algorithm {
            KeyAlgorithm::EcdsaP256 => KeyPairInner::Ecdsa(
                EcdsaKeyPair::generate(&ECDSA_P256_SHA256_ASN1_SIGNING)
                    .map_err(|_| KeyError::Generation)?,
            ),
            KeyAlgorithm::EcdsaP384 => KeyPairInner::Ecdsa(
                EcdsaKeyPair::generate(&ECDSA_P384_SHA384_ASN1_SIGNING)
                    .map_err(|_| KeyError::Generation)?,
            ),
            KeyAlgorithm::Rsa2048 | KeyAlgorithm::Rsa3072 | KeyAlgorithm::Rsa4096 => {
                let size = match algorithm {
                    KeyAlgorithm::Rsa2048 => KeySize::Rsa2048,
                    KeyAlgorithm::Rsa3072 => KeySize::Rsa3072,
                    _ => KeySize::Rsa4096,
                };
                KeyPairInner::Rsa(RsaKeyPair::generate(size).map_err(|_| KeyError::Generation)?)
            }
        };
        Self::from_inner(inner)
    }

    /// A key held by an external signer (an HSM). Its public key must be one Cairn accepts and
    /// match the algorithm it reports.
    pub fn from_external(signer: Arc<dyn ExternalSigner>) -> Result<SigningKey, KeyError> {
        let algorithm = KeyAlgorithm::from_spki_der(signer.spki_der())?;
        if algorithm != signer.algorithm() {
            return Err(KeyError::UnsupportedKey(format!(
                "{} reports {} but its public key is {algorithm}",
                signer.describe(),
                signer.algorithm()
            )));
        }
        Ok(SigningKey {
            spki_der: signer.spki_der().to_vec(),
            inner: KeyPairInner::External(signer),
            algorithm,
        })
    }

    /// Where an external key lives (`None` for an in-memory key).
    pub fn external_description(&self) -> Option<String> {
        match &self.inner {
            KeyPairInner::External(signer) => Some(signer.describe()),
            _ => None,
        }
    }

    fn from_inner(inner: KeyPairInner) -> Result<SigningKey, KeyError> {
        let spki_der = match &inner {
            KeyPairInner::Ecdsa(kp) => kp.public_key().as_der().map(|d| d.as_ref().to_vec()),
            KeyPairInner::Rsa(kp) => kp.public_key().as_der().map(|d| d.as_ref().to_vec()),
            KeyPairInner::External(signer) => return Self::from_external(signer.clone()),
        }
        .map_err(|_| KeyError::InvalidPrivateKey("cannot encode the public key".into()))?;
        let algorithm = KeyAlgorithm::from_spki_der(&spki_der)?;
        Ok(SigningKey {
            inner,
            algorithm,
            spki_der,
        })
    }

    /// Loads a PKCS#8 (RFC 5208 v1 or RFC 5958 v2) private key of a supported type.
    pub fn from_pkcs8_der(der: &[u8]) -> Result<SigningKey, KeyError> {
        if let Ok(kp) = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, der) {
            return Self::from_inner(KeyPairInner::Ecdsa(kp));
        }
        if let Ok(kp) = EcdsaKeyPair::from_pkcs8(&ECDSA_P384_SHA384_ASN1_SIGNING, der) {
            return Self::from_inner(KeyPairInner::Ecdsa(kp));
        }
        match RsaKeyPair::from_pkcs8(der) {
            Ok(kp) => Self::from_inner(KeyPairInner::Rsa(kp)),
            Err(e) => Err(KeyError::InvalidPrivateKey(format!(
                "not a PKCS#8 ECDSA P-256/P-384 or RSA key ({e})"
            ))),
        }
    }

    /// Loads a PEM `PRIVATE KEY` (PKCS#8).
    pub fn from_pkcs8_pem(pem: &str) -> Result<SigningKey, KeyError> {
        let (label, der) = der::pem::decode_vec(pem.trim().as_bytes())
            .map_err(|e| KeyError::InvalidPrivateKey(format!("PEM: {e}")))?;
        if label != "PRIVATE KEY" {
            return Err(KeyError::InvalidPrivateKey(format!(
                "expected a PEM \"PRIVATE KEY\" block, found {label:?}"
            )));
        }
        Self::from_pkcs8_der(&der)
    }

    /// The private key as PKCS#8 DER. Handle with care: this is the secret.
    pub fn to_pkcs8_der(&self) -> Result<Vec<u8>, KeyError> {
        let err = |_| KeyError::InvalidPrivateKey("cannot encode the private key".into());
        match &self.inner {
            KeyPairInner::Ecdsa(kp) => kp.to_pkcs8v1().map(|d| d.as_ref().to_vec()).map_err(err),
            KeyPairInner::Rsa(kp) => AsDer::<Pkcs8V1Der<'static>>::as_der(kp)
                .map(|d| d.as_ref().to_vec())
                .map_err(err),
            KeyPairInner::External(signer) => Err(KeyError::InvalidPrivateKey(format!(
                "{} is held outside the process and cannot be exported",
                signer.describe()
            ))),
        }
    }

    /// The private key as a PEM `PRIVATE KEY` block. Handle with care: this is the secret.
    pub fn to_pkcs8_pem(&self) -> Result<String, KeyError> {
        Ok(cairn_pki::pem_encode("PRIVATE KEY", &self.to_pkcs8_der()?))
    }

    /// The key type.
    pub fn algorithm(&self) -> KeyAlgorithm {
        self.algorithm
    }

    /// The public key as SubjectPublicKeyInfo DER.
    pub fn spki_der(&self) -> &[u8] {
        &self.spki_der
    }

    /// Signs `message` the way X.509 expects for this key: ECDSA with an ASN.1 DER signature
    /// (SHA-256 for P-256, SHA-384 for P-384) or RSA PKCS#1 v1.5 with SHA-256.
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, KeyError> {
        let rng = SystemRandom::new();
        match &self.inner {
            KeyPairInner::Ecdsa(kp) => kp
                .sign(&rng, message)
                .map(|sig| sig.as_ref().to_vec())
                .map_err(|_| KeyError::Signing),
            KeyPairInner::Rsa(kp) => {
                let mut sig = vec![0u8; kp.public_modulus_len()];
                kp.sign(&RSA_PKCS1_SHA256, &rng, message, &mut sig)
                    .map_err(|_| KeyError::Signing)?;
                Ok(sig)
            }
            KeyPairInner::External(signer) => {
                signer.sign(message).map_err(|e| KeyError::ExternalSigning {
                    key: signer.describe(),
                    error: e.0,
                })
            }
        }
    }

    /// The `AlgorithmIdentifier` of the signatures [`SigningKey::sign`] produces:
    /// ecdsa-with-SHA256, ecdsa-with-SHA384 (no parameters) or sha256WithRSAEncryption (NULL).
    pub fn signature_algorithm(&self) -> AlgorithmIdentifierOwned {
        match self.algorithm {
            KeyAlgorithm::EcdsaP256 => AlgorithmIdentifierOwned {
                oid: OID_ECDSA_SHA256,
                parameters: None,
            },
            KeyAlgorithm::EcdsaP384 => AlgorithmIdentifierOwned {
                oid: OID_ECDSA_SHA384,
                parameters: None,
            },
            KeyAlgorithm::Rsa2048 | KeyAlgorithm::Rsa3072 | KeyAlgorithm::Rsa4096 => {
                AlgorithmIdentifierOwned {
                    oid: OID_SHA256_WITH_RSA,
                    parameters: Some(AnyRef::NULL.into()),
                }
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_through_pkcs8_and_sign() {
        for alg in [
            KeyAlgorithm::EcdsaP256,
            KeyAlgorithm::EcdsaP384,
            KeyAlgorithm::Rsa2048,
        ] {
            let key = SigningKey::generate(alg).unwrap();
            assert_eq!(key.algorithm(), alg);
            assert_eq!(KeyAlgorithm::from_spki_der(key.spki_der()).unwrap(), alg);
            let pem = key.to_pkcs8_pem().unwrap();
            assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"));
            let back = SigningKey::from_pkcs8_pem(&pem).unwrap();
            assert_eq!(back.spki_der(), key.spki_der());
            assert_eq!(back.algorithm(), alg);
            let sig = back.sign(b"hello").unwrap();
            assert!(!sig.is_empty());
            let debug = format!("{key:?}");
            assert!(!debug.contains(&pem[30..60]));
            assert!(debug.contains(alg_debug_name(alg)));
        }
    }

    fn alg_debug_name(alg: KeyAlgorithm) -> &'static str {
        match alg {
            KeyAlgorithm::EcdsaP256 => "EcdsaP256",
            KeyAlgorithm::EcdsaP384 => "EcdsaP384",
            KeyAlgorithm::Rsa2048 => "Rsa2048",
            KeyAlgorithm::Rsa3072 => "Rsa3072",
            KeyAlgorithm::Rsa4096 => "Rsa4096",
        }
    }

    #[test]
    fn garbage_private_keys_are_refused() {
        assert!(SigningKey::from_pkcs8_der(b"not a key").is_err());
        assert!(
            SigningKey::from_pkcs8_pem(
                "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
            )
            .is_err()
        );
        assert!(SigningKey::from_pkcs8_pem("junk").is_err());
    }

    #[test]
    fn jwk_thumbprints_follow_rfc7638() {
        // RFC 7638 §3.1 example key, as an SPKI built from its n and e.
        use base64::Engine;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let n = b64.decode("0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw").unwrap();
        let components = aws_lc_rs::rsa::PublicKeyComponents {
            n: n.as_slice(),
            e: &[1u8, 0, 1][..],
        };
        let spki =
            AsDer::<aws_lc_rs::encoding::PublicKeyX509Der<'static>>::as_der(&components).unwrap();
        assert_eq!(
            spki_jwk_thumbprint(spki.as_ref()).as_deref(),
            Some("NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs")
        );
        let ec = SigningKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
        assert_eq!(
            spki_jwk_thumbprint(ec.spki_der()).map(|t| t.len()),
            Some(43)
        );
        assert_eq!(spki_jwk_thumbprint(b"junk"), None);
    }
}
