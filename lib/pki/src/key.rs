//! The public-key types Cairn's PKI accepts (ECDSA P-256/P-384, RSA 2048/3072/4096), told apart
//! from a SubjectPublicKeyInfo with the size and curve rules applied, and the algorithm OIDs that
//! go with them. Shared by the CA (CSR keys, its own keys) and the CT log (chain signatures).

use der::asn1::{ObjectIdentifier, UintRef};
use der::{Decode, Sequence};
use serde::{Deserialize, Serialize};
use spki::SubjectPublicKeyInfoRef;
use std::fmt;
use std::str::FromStr;

/// rsaEncryption (RFC 8017).
pub const OID_RSA_ENCRYPTION: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
/// sha256WithRSAEncryption.
pub const OID_SHA256_WITH_RSA: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.11");
/// sha384WithRSAEncryption.
pub const OID_SHA384_WITH_RSA: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.12");
/// sha512WithRSAEncryption.
pub const OID_SHA512_WITH_RSA: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.13");
/// id-ecPublicKey (RFC 5480).
pub const OID_EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
/// secp256r1 / P-256.
pub const OID_P256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
/// secp384r1 / P-384.
pub const OID_P384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.34");
/// secp521r1 / P-521 (recognized only to be named: not accepted).
pub const OID_P521: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.35");
/// id-Ed25519 (recognized only to be named: not accepted).
pub const OID_ED25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");
/// id-Ed448 (recognized only to be named: not accepted).
pub const OID_ED448: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.113");
/// ecdsa-with-SHA256 (RFC 5758).
pub const OID_ECDSA_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2");
/// ecdsa-with-SHA384 (RFC 5758).
pub const OID_ECDSA_SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.3");

/// Why a public key or a key algorithm name is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PublicKeyError {
    /// The algorithm name is not one of `ecdsa-p256`, `ecdsa-p384`, `rsa-2048`, `rsa-3072`,
    /// `rsa-4096`.
    #[error(
        "unknown key algorithm {0:?} (expected ecdsa-p256, ecdsa-p384, rsa-2048, rsa-3072 or rsa-4096)"
    )]
    UnknownAlgorithm(String),
    /// The public key (SubjectPublicKeyInfo) does not decode.
    #[error("malformed public key: {0}")]
    Malformed(String),
    /// The public key is well formed but of a type or size Cairn refuses.
    #[error("unsupported key: {0}")]
    Unsupported(String),
}

/// The key types Cairn accepts: in CSRs, for its own keys, and in the chains its CT log checks.
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
    pub fn from_spki_der(spki_der: &[u8]) -> Result<KeyAlgorithm, PublicKeyError> {
        let spki = SubjectPublicKeyInfoRef::from_der(spki_der)
            .map_err(|e| PublicKeyError::Malformed(e.to_string()))?;
        let key_bits = spki
            .subject_public_key
            .as_bytes()
            .ok_or_else(|| PublicKeyError::Malformed("public key has unused bits".into()))?;
        let oid = spki.algorithm.oid;
        if oid == OID_RSA_ENCRYPTION {
            // The parameters must be NULL (RFC 3279 §2.3.1); tolerate absent ones as OpenSSL does.
            if let Some(params) = spki.algorithm.parameters
                && !params.is_null()
            {
                return Err(PublicKeyError::Malformed(
                    "rsaEncryption parameters are not NULL".into(),
                ));
            }
            let rsa = RsaPublicKey::from_der(key_bits)
                .map_err(|e| PublicKeyError::Malformed(format!("RSA public key: {e}")))?;
            let bits = uint_bits(rsa.modulus.as_bytes());
            let e = rsa.public_exponent.as_bytes();
            let e_odd = e.last().is_some_and(|b| b & 1 == 1);
            if !e_odd || uint_bits(e) < 17 {
                return Err(PublicKeyError::Unsupported(
                    "RSA public exponent must be odd and at least 65537".into(),
                ));
            }
            match bits {
                2048 => Ok(KeyAlgorithm::Rsa2048),
                3072 => Ok(KeyAlgorithm::Rsa3072),
                4096 => Ok(KeyAlgorithm::Rsa4096),
                other => Err(PublicKeyError::Unsupported(format!(
                    "RSA {other}-bit keys are not allowed (2048, 3072 or 4096 bits only)"
                ))),
            }
        } else if oid == OID_EC_PUBLIC_KEY {
            let curve: ObjectIdentifier = spki
                .algorithm
                .parameters
                .ok_or_else(|| PublicKeyError::Malformed("EC key without a curve".into()))?
                .decode_as()
                .map_err(|_| {
                    PublicKeyError::Unsupported("EC keys must name their curve (namedCurve)".into())
                })?;
            let (alg, coord_len) = if curve == OID_P256 {
                (KeyAlgorithm::EcdsaP256, 32)
            } else if curve == OID_P384 {
                (KeyAlgorithm::EcdsaP384, 48)
            } else if curve == OID_P521 {
                return Err(PublicKeyError::Unsupported(
                    "EC P-521 keys are not allowed (P-256 or P-384 only)".into(),
                ));
            } else {
                return Err(PublicKeyError::Unsupported(format!(
                    "EC curve {curve} is not allowed (P-256 or P-384 only)"
                )));
            };
            if key_bits.len() != 1 + 2 * coord_len || key_bits.first() != Some(&0x04) {
                return Err(PublicKeyError::Malformed(
                    "EC public key is not an uncompressed point of the curve's size".into(),
                ));
            }
            Ok(alg)
        } else if oid == OID_ED25519 || oid == OID_ED448 {
            Err(PublicKeyError::Unsupported(
                "EdDSA keys are not allowed (ECDSA P-256/P-384 or RSA only)".into(),
            ))
        } else {
            Err(PublicKeyError::Unsupported(format!(
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

/// PKCS#1 `RSAPublicKey`.
#[derive(Sequence)]
pub struct RsaPublicKey<'a> {
    /// The modulus `n`.
    pub modulus: UintRef<'a>,
    /// The public exponent `e`.
    pub public_exponent: UintRef<'a>,
}

impl fmt::Display for KeyAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for KeyAlgorithm {
    type Err = PublicKeyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        KeyAlgorithm::ALL
            .into_iter()
            .find(|alg| alg.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| PublicKeyError::UnknownAlgorithm(s.to_string()))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use aws_lc_rs::encoding::AsDer;
    use aws_lc_rs::signature::{
        ECDSA_P256_SHA256_ASN1_SIGNING, ECDSA_P384_SHA384_ASN1_SIGNING,
        ECDSA_P521_SHA512_ASN1_SIGNING, EcdsaKeyPair, KeyPair,
    };

    #[test]
    fn algorithm_names_round_trip() {
        for alg in KeyAlgorithm::ALL {
            assert_eq!(alg.as_str().parse::<KeyAlgorithm>().unwrap(), alg);
            assert_eq!(alg.to_string(), alg.as_str());
            let json = serde_json::to_string(&alg).unwrap();
            assert_eq!(json, format!("\"{}\"", alg.as_str()));
            assert_eq!(serde_json::from_str::<KeyAlgorithm>(&json).unwrap(), alg);
        }
        assert_eq!(
            " RSA-2048 ".parse::<KeyAlgorithm>(),
            Ok(KeyAlgorithm::Rsa2048)
        );
        assert_eq!(
            "ecdsa-p521".parse::<KeyAlgorithm>(),
            Err(PublicKeyError::UnknownAlgorithm("ecdsa-p521".into()))
        );
        assert_eq!(KeyAlgorithm::default(), KeyAlgorithm::EcdsaP256);
        assert!(KeyAlgorithm::Rsa4096.is_rsa() && !KeyAlgorithm::EcdsaP384.is_rsa());
    }

    fn ec_spki(alg: &'static aws_lc_rs::signature::EcdsaSigningAlgorithm) -> Vec<u8> {
        let pair = EcdsaKeyPair::generate(alg).unwrap();
        pair.public_key().as_der().unwrap().as_ref().to_vec()
    }

    #[test]
    fn spki_classification_applies_the_curve_and_size_rules() {
        assert_eq!(
            KeyAlgorithm::from_spki_der(&ec_spki(&ECDSA_P256_SHA256_ASN1_SIGNING)),
            Ok(KeyAlgorithm::EcdsaP256)
        );
        assert_eq!(
            KeyAlgorithm::from_spki_der(&ec_spki(&ECDSA_P384_SHA384_ASN1_SIGNING)),
            Ok(KeyAlgorithm::EcdsaP384)
        );
        let rsa = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
        let rsa_spki = rsa.public_key().as_der().unwrap();
        assert_eq!(
            KeyAlgorithm::from_spki_der(rsa_spki.as_ref()),
            Ok(KeyAlgorithm::Rsa2048)
        );
        let p521 = KeyAlgorithm::from_spki_der(&ec_spki(&ECDSA_P521_SHA512_ASN1_SIGNING));
        assert!(
            matches!(&p521, Err(PublicKeyError::Unsupported(m)) if m.contains("P-521")),
            "{p521:?}"
        );
        assert!(matches!(
            KeyAlgorithm::from_spki_der(b"junk"),
            Err(PublicKeyError::Malformed(_))
        ));
        // A well-formed P-256 SubjectPublicKeyInfo whose point is one byte short.
        let mut short =
            hex::decode("3058301306072a8648ce3d020106082a8648ce3d030107034100").unwrap();
        short.push(0x04);
        short.extend_from_slice(&[7u8; 63]);
        assert!(matches!(
            KeyAlgorithm::from_spki_der(&short),
            Err(PublicKeyError::Malformed(m)) if m.contains("uncompressed point")
        ));
    }

    #[test]
    fn uint_bits_counts_significant_bits() {
        assert_eq!(uint_bits(&[]), 0);
        assert_eq!(uint_bits(&[0, 0x01]), 1);
        assert_eq!(uint_bits(&[0x01, 0x00, 0x01]), 17);
        assert_eq!(uint_bits(&[0x80, 0x00]), 16);
    }
}
