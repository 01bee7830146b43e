//! [`DatastoreKey`]: AES-256-GCM encryption of the secrets the datastore holds (HPKE private
//! keys, VDAF verification keys, the leader's outgoing bearer tokens).
//!
//! Stored form: `0x01 || nonce (12 bytes) || ciphertext || tag`. The AAD names the table, the
//! column and the row, so a ciphertext copied into another row or column does not decrypt.
//! The key comes from the operator (environment variable) and never touches the database.

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use thiserror::Error;

const VERSION: u8 = 1;

/// Why a datastore key is unusable.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum KeyError {
    /// Not unpadded URL-safe base64 of exactly 32 bytes.
    #[error("the datastore key must be 32 bytes, unpadded URL-safe base64")]
    Malformed,
    /// The system random number generator failed.
    #[error("no randomness available")]
    Random,
}

/// The AES-256-GCM key that seals secrets at rest. `Debug` hides it.
#[derive(Clone)]
pub struct DatastoreKey {
    key: std::sync::Arc<LessSafeKey>,
}

impl std::fmt::Debug for DatastoreKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DatastoreKey(..)")
    }
}

impl DatastoreKey {
    /// The key encoded as unpadded URL-safe base64 (what `cairn dap datastore-key` prints).
    pub fn from_base64url(text: &str) -> Result<DatastoreKey, KeyError> {
        let bytes = URL_SAFE_NO_PAD
            .decode(text.trim())
            .map_err(|_| KeyError::Malformed)?;
        Self::from_bytes(&bytes)
    }

    /// The key from 32 raw bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<DatastoreKey, KeyError> {
        if bytes.len() != 32 {
            return Err(KeyError::Malformed);
        }
        let unbound = UnboundKey::new(&AES_256_GCM, bytes).map_err(|_| KeyError::Malformed)?;
        Ok(DatastoreKey {
            key: std::sync::Arc::new(LessSafeKey::new(unbound)),
        })
    }

    /// A fresh random key, as unpadded URL-safe base64.
    pub fn generate_base64url() -> Result<String, KeyError> {
        let mut bytes = [0u8; 32];
        SystemRandom::new()
            .fill(&mut bytes)
            .map_err(|_| KeyError::Random)?;
        Ok(URL_SAFE_NO_PAD.encode(bytes))
    }

    /// Seals `plaintext` for the row and column named by `aad`.
    pub(crate) fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, KeyError> {
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new()
            .fill(&mut nonce)
            .map_err(|_| KeyError::Random)?;
        let mut buf = plaintext.to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad),
                &mut buf,
            )
            .map_err(|_| KeyError::Random)?;
        let mut out = Vec::with_capacity(1 + NONCE_LEN + buf.len());
        out.push(VERSION);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&buf);
        Ok(out)
    }

    /// Opens what [`DatastoreKey::seal`] produced for the same `aad`; `None` if the key, the
    /// AAD or the bytes are wrong.
    pub(crate) fn open(&self, aad: &[u8], sealed: &[u8]) -> Option<Vec<u8>> {
        let (&version, rest) = sealed.split_first()?;
        if version != VERSION || rest.len() < NONCE_LEN {
            return None;
        }
        let (nonce, ct) = rest.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let mut buf = ct.to_vec();
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(aad), &mut buf)
            .ok()?;
        Some(plain.to_vec())
    }
}

/// The AAD for a secret in `table.column` of the row identified by `row`.
pub(crate) fn aad(table: &str, column: &str, row: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(table.len() + column.len() + row.len() + 2);
    out.extend_from_slice(table.as_bytes());
    out.push(b'/');
    out.extend_from_slice(column.as_bytes());
    out.push(b'/');
    out.extend_from_slice(row);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_secrets_open_only_with_the_same_key_and_row() {
        let key =
            DatastoreKey::from_base64url(&DatastoreKey::generate_base64url().unwrap()).unwrap();
        let other =
            DatastoreKey::from_base64url(&DatastoreKey::generate_base64url().unwrap()).unwrap();
        let a = aad("tasks", "vdaf_verify_key", b"task-1");
        let sealed = key.seal(&a, b"secret").unwrap();
        assert!(!sealed.windows(6).any(|w| w == b"secret"));
        assert_eq!(key.open(&a, &sealed).unwrap(), b"secret");
        assert!(other.open(&a, &sealed).is_none());
        assert!(
            key.open(&aad("tasks", "vdaf_verify_key", b"task-2"), &sealed)
                .is_none()
        );
        let mut tampered = sealed.clone();
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        assert!(key.open(&a, &tampered).is_none());
        assert!(key.open(&a, &sealed[..10]).is_none());
        assert!(key.open(&a, b"").is_none());
    }

    #[test]
    fn malformed_keys_are_refused() {
        assert!(DatastoreKey::from_base64url("short").is_err());
        assert!(DatastoreKey::from_bytes(&[0; 31]).is_err());
        assert!(DatastoreKey::from_base64url("!!!").is_err());
    }
}
