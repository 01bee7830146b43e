//! The log's ECDSA P-256 key: loading (or generating on first start, kept 0600), the RFC 6962
//! LogID, signing, and verification from a SubjectPublicKeyInfo.

use crate::merkle::{Hash, sha256};
use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_ASN1, ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair,
    UnparsedPublicKey,
};
use der::Decode;
use std::fmt;
use std::io::Write;
use std::path::Path;
use x509_cert::spki::SubjectPublicKeyInfoRef;

/// Key loading and signing failures.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// Reading or writing the key file failed.
    #[error("key file {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a PEM PKCS#8 P-256 private key.
    #[error("key file {0} does not hold a PKCS#8 ECDSA P-256 private key")]
    BadKey(String),
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
            .map_err(|_| KeyError::BadKey("(PKCS#8)".into()))?;
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

    /// Loads the PEM PKCS#8 key at `path`, or generates one and writes it there (mode 0600,
    /// written to a temporary file, synced, then renamed) if the file does not exist.
    pub fn load_or_generate(path: &Path) -> Result<LogKey, KeyError> {
        let io = |source| KeyError::Io {
            path: path.display().to_string(),
            source,
        };
        match std::fs::read_to_string(path) {
            Ok(pem) => {
                let blocks = cairn_x509::pem_decode_all(&pem)
                    .map_err(|_| KeyError::BadKey(path.display().to_string()))?;
                let der = blocks
                    .into_iter()
                    .find(|(label, _)| label == "PRIVATE KEY")
                    .map(|(_, der)| der)
                    .ok_or_else(|| KeyError::BadKey(path.display().to_string()))?;
                LogKey::from_pkcs8_der(&der)
                    .map_err(|_| KeyError::BadKey(path.display().to_string()))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key = LogKey::generate()?;
                let pem = cairn_x509::pem_encode("PRIVATE KEY", &key.to_pkcs8_der()?);
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir).map_err(io)?;
                }
                let tmp = path.with_extension("tmp");
                let mut opts = std::fs::OpenOptions::new();
                opts.write(true).create(true).truncate(true);
                #[cfg(unix)]
                {
                    use std::os::unix::fs::OpenOptionsExt;
                    opts.mode(0o600);
                }
                let mut f = opts.open(&tmp).map_err(io)?;
                f.write_all(pem.as_bytes()).map_err(io)?;
                f.sync_all().map_err(io)?;
                std::fs::rename(&tmp, path).map_err(io)?;
                crate::storage::sync_parent(path).map_err(io)?;
                tracing::info!(path = %path.display(), "generated a new CT log key");
                Ok(key)
            }
            Err(e) => Err(io(e)),
        }
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
    fn key_is_generated_once_with_private_mode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys/log.pem");
        let a = LogKey::load_or_generate(&path).unwrap();
        let b = LogKey::load_or_generate(&path).unwrap();
        assert_eq!(a.log_id(), b.log_id());
        assert_eq!(a.log_id(), sha256(a.spki_der()));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let sig = a.sign(b"hello").unwrap();
        assert!(verify_p256(b.spki_der(), b"hello", &sig));
        assert!(!verify_p256(b.spki_der(), b"hellO", &sig));
        std::fs::write(&path, "garbage").unwrap();
        assert!(LogKey::load_or_generate(&path).is_err());
    }
}
