//! The log's ECDSA P-256 key: generation, PKCS#8 (DER or PEM) import and export, or a key held
//! outside the process (an HSM, through [`ExternalSigner`]); the RFC 6962 LogID, signing, and
//! verification from a SubjectPublicKeyInfo. (The key file on disk is the server's business.)

use crate::merkle::{Hash, sha256};
use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_ASN1, ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair,
    UnparsedPublicKey,
};
use cairn_pki::{ExternalSigner, KeyAlgorithm};
use der::Decode;
use std::fmt;
use std::sync::Arc;
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
    /// An external key is not ECDSA P-256, the only key type RFC 6962 logs sign with.
    #[error("the log key must be ECDSA P-256, this one is {0}")]
    NotP256(KeyAlgorithm),
    /// The key is held outside the process (an HSM) and cannot be exported.
    #[error("the key is held outside the process and cannot be exported")]
    NotExportable,
    /// The external signer failed; there is no fallback to another key.
    #[error("external signer: {0}")]
    External(String),
}

/// Where the private key is.
enum Signer {
    /// In memory (a key file).
    Memory {
        pair: EcdsaKeyPair,
        rng: SystemRandom,
    },
    /// Outside the process, e.g. in an HSM.
    External(Arc<dyn ExternalSigner>),
}

/// The log's signing key.
pub struct LogKey {
    signer: Signer,
    spki_der: Vec<u8>,
    log_id: Hash,
}

impl fmt::Debug for LogKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("LogKey");
        d.field("log_id", &hex::encode(self.log_id));
        if let Signer::External(signer) = &self.signer {
            d.field("key", &signer.describe());
        }
        d.finish_non_exhaustive()
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
            signer: Signer::Memory {
                pair,
                rng: SystemRandom::new(),
            },
        })
    }

    /// A key held outside the process (e.g. `cairn_hsm::Pkcs11Signer`); it must be ECDSA P-256.
    pub fn from_external(signer: Arc<dyn ExternalSigner>) -> Result<LogKey, KeyError> {
        if signer.algorithm() != KeyAlgorithm::EcdsaP256 {
            return Err(KeyError::NotP256(signer.algorithm()));
        }
        let spki_der = signer.spki_der().to_vec();
        Ok(LogKey {
            log_id: sha256(&spki_der),
            spki_der,
            signer: Signer::External(signer),
        })
    }

    /// PKCS#8 DER of the private key ([`KeyError::NotExportable`] for an external key).
    pub fn to_pkcs8_der(&self) -> Result<Vec<u8>, KeyError> {
        let Signer::Memory { pair, .. } = &self.signer else {
            return Err(KeyError::NotExportable);
        };
        Ok(pair
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
        match &self.signer {
            Signer::Memory { pair, rng } => Ok(pair
                .sign(rng, message)
                .map_err(|_| KeyError::Crypto)?
                .as_ref()
                .to_vec()),
            Signer::External(signer) => signer
                .sign(message)
                .map_err(|e| KeyError::External(e.to_string())),
        }
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

    /// A key "outside the process" for the test: an in-memory ECDSA key behind the trait.
    #[derive(Debug)]
    struct Outside(KeyAlgorithm, LogKey);

    impl ExternalSigner for Outside {
        fn algorithm(&self) -> KeyAlgorithm {
            self.0
        }
        fn spki_der(&self) -> &[u8] {
            self.1.spki_der()
        }
        fn sign(&self, message: &[u8]) -> Result<Vec<u8>, cairn_pki::ExternalSignerError> {
            self.1
                .sign(message)
                .map_err(|e| cairn_pki::ExternalSignerError(e.to_string()))
        }
        fn describe(&self) -> String {
            "pkcs11:token=test".into()
        }
    }

    #[test]
    fn external_keys_sign_and_never_export() {
        let inner = LogKey::generate().unwrap();
        let spki = inner.spki_der().to_vec();
        let key = LogKey::from_external(Arc::new(Outside(KeyAlgorithm::EcdsaP256, inner))).unwrap();
        assert_eq!(key.spki_der(), spki.as_slice());
        assert_eq!(key.log_id(), sha256(&spki));
        let sig = key.sign(b"tree head").unwrap();
        assert!(verify_p256(&spki, b"tree head", &sig));
        assert_eq!(key.to_pkcs8_der().unwrap_err(), KeyError::NotExportable);
        assert!(format!("{key:?}").contains("pkcs11:token=test"));

        let p384 = Outside(KeyAlgorithm::EcdsaP384, LogKey::generate().unwrap());
        assert_eq!(
            LogKey::from_external(Arc::new(p384)).unwrap_err(),
            KeyError::NotP256(KeyAlgorithm::EcdsaP384)
        );
    }
}
