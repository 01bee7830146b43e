//! The log's ECDSA P-256 key: generation, PKCS#8 (DER or PEM) import and export, the RFC 6962
//! LogID, signing, and verification from a SubjectPublicKeyInfo. (The key file on disk is the
//! server's business.)

use crate::merkle::{Hash, sha256};
use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_ASN1, ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair,
    UnparsedPublicKey,
};
use der::Decode;
use std::fmt;
use x509_cert::spki::SubjectPublicKeyInfoRef;

/// Key decoding and signing failures.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyError {
    /// The bytes are not a PKCS#8 ECDSA P-256 private key (DER, or a PEM `PRIVATE KEY` block).
    #[error("not a PKCS#8 ECDSA P-256 private key")]
    BadKey,
    /// The crypto library failed to generate or sign.
    #[error("cryptographic operation failed")]
    Crypto,
}

/// The log's signing key.
pub struct LogKey {
    pair: EcdsaKeyPair,
    spki_der: Vec<u8>,
    log_id: Hash,
    rng: SystemRandom,
}

impl fmt::Debug for LogKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LogKey")
            .field("log_id", &hex::encode(self.log_id))
            .finish_non_exhaustive()
    }
}

impl LogKey {
    /// A fresh random key.
    pub fn generate() -> Result<LogKey, KeyError> {
        let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_ASN1_SIGNING)
            .map_err(|_| KeyError::Crypto)?;
        LogKey::from_pair(pair)
    }

    /// A key from PKCS#8 DER.
    pub fn from_pkcs8_der(der: &[u8]) -> Result<LogKey, KeyError> {
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, der)
            .map_err(|_| KeyError::BadKey)?;
        LogKey::from_pair(pair)
    }

    fn from_pair(pair: EcdsaKeyPair) -> Result<LogKey, KeyError> {
        let spki_der = pair
            .public_key()
            .as_der()
            .map_err(|_| KeyError::Crypto)?
            .as_ref()
            .to_vec();
        Ok(LogKey {
            log_id: sha256(&spki_der),
            spki_der,
            pair,
            rng: SystemRandom::new(),
        })
    }

    /// PKCS#8 DER of the private key.
    pub fn to_pkcs8_der(&self) -> Result<Vec<u8>, KeyError> {
        Ok(self
            .pair
            .to_pkcs8v1()
            .map_err(|_| KeyError::Crypto)?
            .as_ref()
            .to_vec())
    }

    /// A key from the first PEM `PRIVATE KEY` (PKCS#8) block of `pem`.
    pub fn from_pkcs8_pem(pem: &str) -> Result<LogKey, KeyError> {
        let der = cairn_pki::pem_decode_all(pem)
            .map_err(|_| KeyError::BadKey)?
            .into_iter()
            .find(|(label, _)| label == "PRIVATE KEY")
            .map(|(_, der)| der)
            .ok_or(KeyError::BadKey)?;
        LogKey::from_pkcs8_der(&der)
    }

    /// The private key as a PEM `PRIVATE KEY` (PKCS#8) block. Handle with care: the secret.
    pub fn to_pkcs8_pem(&self) -> Result<String, KeyError> {
        Ok(cairn_pki::pem_encode("PRIVATE KEY", &self.to_pkcs8_der()?))
    }

    /// The SubjectPublicKeyInfo, DER.
    pub fn spki_der(&self) -> &[u8] {
        &self.spki_der
    }

    /// The RFC 6962 LogID: SHA-256 of the SubjectPublicKeyInfo.
    pub fn log_id(&self) -> Hash {
        self.log_id
    }

    /// An ECDSA P-256 SHA-256 signature over `message`, ASN.1 DER.
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, KeyError> {
        Ok(self
            .pair
            .sign(&self.rng, message)
            .map_err(|_| KeyError::Crypto)?
            .as_ref()
            .to_vec())
    }
}

/// True if `signature` (ASN.1 DER) is a valid ECDSA P-256 SHA-256 signature of `message` under
/// the key in `spki_der`.
pub fn verify_p256(spki_der: &[u8], message: &[u8], signature: &[u8]) -> bool {
    let Ok(spki) = SubjectPublicKeyInfoRef::from_der(spki_der) else {
        return false;
    };
    let Some(point) = spki.subject_public_key.as_bytes() else {
        return false;
    };
    UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, point)
        .verify(message, signature)
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_through_pkcs8_and_sign() {
        let a = LogKey::generate().unwrap();
        assert_eq!(a.log_id(), sha256(a.spki_der()));
        let pem = a.to_pkcs8_pem().unwrap();
        let b = LogKey::from_pkcs8_pem(&format!("junk\n{pem}")).unwrap();
        assert_eq!(b.log_id(), a.log_id());
        let c = LogKey::from_pkcs8_der(&a.to_pkcs8_der().unwrap()).unwrap();
        assert_eq!(c.spki_der(), a.spki_der());
        assert!(!format!("{a:?}").contains(&pem[40..80]));

        let sig = a.sign(b"hello").unwrap();
        assert!(verify_p256(b.spki_der(), b"hello", &sig));
        assert!(!verify_p256(b.spki_der(), b"hellO", &sig));
        let other = LogKey::generate().unwrap();
        assert!(!verify_p256(other.spki_der(), b"hello", &sig));
        assert!(!verify_p256(b"junk", b"hello", &sig));

        assert_eq!(
            LogKey::from_pkcs8_pem("garbage").unwrap_err(),
            KeyError::BadKey
        );
        let cert_block = cairn_pki::pem_encode("CERTIFICATE", &a.to_pkcs8_der().unwrap());
        assert_eq!(
            LogKey::from_pkcs8_pem(&cert_block).unwrap_err(),
            KeyError::BadKey
        );
        assert_eq!(
            LogKey::from_pkcs8_der(b"junk").unwrap_err(),
            KeyError::BadKey
        );
    }
}
