//! Key algorithms and signing keys (aws-lc-rs): generation, PKCS#8 import and export, and X.509
//! signatures with the matching `AlgorithmIdentifier`.

use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_ASN1_SIGNING, ECDSA_P384_SHA384_ASN1_SIGNING, EcdsaKeyPair, KeyPair,
    RSA_PKCS1_SHA256, RsaKeyPair, UnparsedPublicKey, VerificationAlgorithm,
};
use der::asn1::{AnyRef, ObjectIdentifier, UintRef};
use der::{Decode, Sequence};
use serde::{Deserialize, Serialize};
use spki::{AlgorithmIdentifierOwned, AlgorithmIdentifierRef, SubjectPublicKeyInfoRef};
use std::fmt;
use std::str::FromStr;

/// rsaEncryption (RFC 8017).
pub(crate) const OID_RSA_ENCRYPTION: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
/// sha256WithRSAEncryption.
pub(crate) const OID_SHA256_WITH_RSA: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.11");
/// sha384WithRSAEncryption.
pub(crate) const OID_SHA384_WITH_RSA: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.12");
/// sha512WithRSAEncryption.
pub(crate) const OID_SHA512_WITH_RSA: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.13");
/// id-ecPublicKey (RFC 5480).
pub(crate) const OID_EC_PUBLIC_KEY: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
/// secp256r1 / P-256.
pub(crate) const OID_P256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
/// secp384r1 / P-384.
pub(crate) const OID_P384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.34");
/// secp521r1 / P-521 (recognized only to be refused by name).
const OID_P521: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.35");
/// id-Ed25519 (recognized only to be refused by name).
const OID_ED25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");
/// id-Ed448 (recognized only to be refused by name).
const OID_ED448: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.113");
/// ecdsa-with-SHA256 (RFC 5758).
pub(crate) const OID_ECDSA_SHA256: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2");
/// ecdsa-with-SHA384 (RFC 5758).
pub(crate) const OID_ECDSA_SHA384: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.3");

/// The key types the CA accepts in CSRs and can use for its own keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum KeyAlgorithm {
    /// ECDSA on NIST P-256, signing with SHA-256 (the default).
    #[default]
    #[serde(rename = "ecdsa-p256")]
    EcdsaP256,
    /// ECDSA on NIST P-384, signing with SHA-384.
    #[serde(rename = "ecdsa-p384")]
    EcdsaP384,
    /// RSA with a 2048-bit modulus, PKCS#1 v1.5 with SHA-256.
    #[serde(rename = "rsa-2048")]
    Rsa2048,
    /// RSA with a 3072-bit modulus, PKCS#1 v1.5 with SHA-256.
    #[serde(rename = "rsa-3072")]
    Rsa3072,
    /// RSA with a 4096-bit modulus, PKCS#1 v1.5 with SHA-256.
    #[serde(rename = "rsa-4096")]
    Rsa4096,
}

impl KeyAlgorithm {
    /// Every supported algorithm.
    pub const ALL: [KeyAlgorithm; 5] = [
        KeyAlgorithm::EcdsaP256,
        KeyAlgorithm::EcdsaP384,
        KeyAlgorithm::Rsa2048,
        KeyAlgorithm::Rsa3072,
        KeyAlgorithm::Rsa4096,
    ];

    /// The configuration name (`ecdsa-p256`, `rsa-2048`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            KeyAlgorithm::EcdsaP256 => "ecdsa-p256",
            KeyAlgorithm::EcdsaP384 => "ecdsa-p384",
            KeyAlgorithm::Rsa2048 => "rsa-2048",
            KeyAlgorithm::Rsa3072 => "rsa-3072",
            KeyAlgorithm::Rsa4096 => "rsa-4096",
        }
    }

    /// True for the RSA sizes.
    pub fn is_rsa(self) -> bool {
        matches!(
            self,
            KeyAlgorithm::Rsa2048 | KeyAlgorithm::Rsa3072 | KeyAlgorithm::Rsa4096
        )
    }

    /// Classifies a SubjectPublicKeyInfo (DER), refusing every key type and size that is not
    /// one of [`KeyAlgorithm::ALL`]: RSA must be exactly 2048, 3072 or 4096 bits with an odd
    /// exponent of at least 65537; EC keys must be uncompressed points on P-256 or P-384.
    pub fn from_spki_der(spki_der: &[u8]) -> Result<KeyAlgorithm, KeyError> {
        let spki = SubjectPublicKeyInfoRef::from_der(spki_der)
            .map_err(|e| KeyError::MalformedPublicKey(e.to_string()))?;
        let key_bits = spki
            .subject_public_key
            .as_bytes()
            .ok_or_else(|| KeyError::MalformedPublicKey("public key has unused bits".into()))?;
        let oid = spki.algorithm.oid;
        if oid == OID_RSA_ENCRYPTION {
            // The parameters must be NULL (RFC 3279 §2.3.1); tolerate absent ones as OpenSSL does.
            if let Some(params) = spki.algorithm.parameters
                && !params.is_null()
            {
                return Err(KeyError::MalformedPublicKey(
                    "rsaEncryption parameters are not NULL".into(),
                ));
            }
            let rsa = RsaPublicKey::from_der(key_bits)
                .map_err(|e| KeyError::MalformedPublicKey(format!("RSA public key: {e}")))?;
            let bits = uint_bits(rsa.modulus.as_bytes());
            let e = rsa.public_exponent.as_bytes();
            let e_odd = e.last().is_some_and(|b| b & 1 == 1);
            if !e_odd || uint_bits(e) < 17 {
                return Err(KeyError::UnsupportedKey(
                    "RSA public exponent must be odd and at least 65537".into(),
                ));
            }
            match bits {
                2048 => Ok(KeyAlgorithm::Rsa2048),
                3072 => Ok(KeyAlgorithm::Rsa3072),
                4096 => Ok(KeyAlgorithm::Rsa4096),
                other => Err(KeyError::UnsupportedKey(format!(
                    "RSA {other}-bit keys are not allowed (2048, 3072 or 4096 bits only)"
                ))),
            }
        } else if oid == OID_EC_PUBLIC_KEY {
            let curve: ObjectIdentifier = spki
                .algorithm
                .parameters
                .ok_or_else(|| KeyError::MalformedPublicKey("EC key without a curve".into()))?
                .decode_as()
                .map_err(|_| {
                    KeyError::UnsupportedKey("EC keys must name their curve (namedCurve)".into())
                })?;
            let (alg, coord_len) = if curve == OID_P256 {
                (KeyAlgorithm::EcdsaP256, 32)
            } else if curve == OID_P384 {
                (KeyAlgorithm::EcdsaP384, 48)
            } else if curve == OID_P521 {
                return Err(KeyError::UnsupportedKey(
                    "EC P-521 keys are not allowed (P-256 or P-384 only)".into(),
                ));
            } else {
                return Err(KeyError::UnsupportedKey(format!(
                    "EC curve {curve} is not allowed (P-256 or P-384 only)"
                )));
            };
            if key_bits.len() != 1 + 2 * coord_len || key_bits.first() != Some(&0x04) {
                return Err(KeyError::MalformedPublicKey(
                    "EC public key is not an uncompressed point of the curve's size".into(),
                ));
            }
            Ok(alg)
        } else if oid == OID_ED25519 || oid == OID_ED448 {
            Err(KeyError::UnsupportedKey(
                "EdDSA keys are not allowed (ECDSA P-256/P-384 or RSA only)".into(),
            ))
        } else {
            Err(KeyError::UnsupportedKey(format!(
                "public key algorithm {oid} is not allowed"
            )))
        }
    }
}

/// Number of significant bits of a big-endian unsigned integer.
fn uint_bits(bytes: &[u8]) -> usize {
    let trimmed: &[u8] = {
        let start = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
        &bytes[start..]
    };
    match trimmed.first() {
        None => 0,
        Some(first) => (trimmed.len() - 1) * 8 + (8 - first.leading_zeros() as usize),
    }
}

/// The aws-lc verification algorithm for a signature by a `key` key under the X.509 signature
/// algorithm `alg`: RSA PKCS#1 v1.5 with SHA-256/384/512 (NULL or absent parameters) for RSA
/// keys, ECDSA with SHA-256/384 (no parameters) for P-256/P-384 keys. `None` for anything else,
/// including a mismatch between the algorithm and the key type.
pub(crate) fn verification_algorithm(
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
pub(crate) fn verify_x509_signature(
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

/// PKCS#1 `RSAPublicKey`.
#[derive(Sequence)]
struct RsaPublicKey<'a> {
    modulus: UintRef<'a>,
    public_exponent: UintRef<'a>,
}

impl fmt::Display for KeyAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for KeyAlgorithm {
    type Err = KeyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        KeyAlgorithm::ALL
            .into_iter()
            .find(|alg| alg.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| KeyError::UnknownAlgorithm(s.to_string()))
    }
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
}

/// The aws-lc key pair behind a [`SigningKey`].
enum KeyPairInner {
    Ecdsa(EcdsaKeyPair),
    Rsa(RsaKeyPair),
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

    fn from_inner(inner: KeyPairInner) -> Result<SigningKey, KeyError> {
        let spki_der = match &inner {
            KeyPairInner::Ecdsa(kp) => kp.public_key().as_der().map(|d| d.as_ref().to_vec()),
            KeyPairInner::Rsa(kp) => kp.public_key().as_der().map(|d| d.as_ref().to_vec()),
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
        }
    }

    /// The private key as a PEM `PRIVATE KEY` block. Handle with care: this is the secret.
    pub fn to_pkcs8_pem(&self) -> Result<String, KeyError> {
        Ok(crate::parse::pem_encode(
            "PRIVATE KEY",
            &self.to_pkcs8_der()?,
        ))
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
    fn algorithm_names_round_trip() {
        for alg in KeyAlgorithm::ALL {
            assert_eq!(alg.as_str().parse::<KeyAlgorithm>().unwrap(), alg);
            let json = serde_json::to_string(&alg).unwrap();
            assert_eq!(json, format!("\"{}\"", alg.as_str()));
            assert_eq!(serde_json::from_str::<KeyAlgorithm>(&json).unwrap(), alg);
        }
        assert!("ecdsa-p521".parse::<KeyAlgorithm>().is_err());
        assert_eq!(KeyAlgorithm::default(), KeyAlgorithm::EcdsaP256);
    }

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

    #[test]
    fn uint_bits_counts_significant_bits() {
        assert_eq!(uint_bits(&[]), 0);
        assert_eq!(uint_bits(&[0, 0x01]), 1);
        assert_eq!(uint_bits(&[0x01, 0x00, 0x01]), 17);
        assert_eq!(uint_bits(&[0x80, 0x00]), 16);
    }
}
