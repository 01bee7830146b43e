//! EAB HMAC keys sealed at rest: a copy of the database (a backup, a replica, a stolen disk)
//! must not be enough to create accounts under someone else's binding.
//!
//! A key is stored as `MAGIC || nonce (12 bytes) || AES-256-GCM(hmac key) || tag`, with the
//! key ID as associated data, so a sealed value copied onto another row does not open. The
//! sealing key lives outside the database (the operator's file or environment, see
//! `cairn serve`'s `server.eab_seal_key_file`). Rows written before sealing existed carry no
//! `MAGIC` and are read as plaintext until [`crate::SqlStorage::seal_eab_keys_at_rest`] seals
//! them, which `cairn` does at every start.
//!
//! Only [`crate::SqlStorage::get_eab_key`] opens a sealed key, and only the RA asks for it, to
//! verify an EAB binding.

use crate::SaError;
use aws_lc_rs::aead::{AES_256_GCM, Aad, NONCE_LEN, Nonce, RandomizedNonceKey};
use std::fmt;

/// Marks a sealed value (a raw HMAC key starts with it with probability 2⁻¹⁴⁴).
const MAGIC: &[u8] = b"cairn-eab-seal-v1:";

/// Bytes of a sealing key.
pub const EAB_SEAL_KEY_LEN: usize = 32;

/// The AES-256-GCM key that seals EAB HMAC keys.
pub struct EabSeal {
    key: RandomizedNonceKey,
}

impl fmt::Debug for EabSeal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("EabSeal(..)")
    }
}

impl EabSeal {
    /// A seal from a 32-byte key.
    ///
    /// # Errors
    /// [`SaError::Corrupt`] if `key` is not 32 bytes.
    pub fn new(key: &[u8]) -> Result<EabSeal, SaError> {
        if key.len() != EAB_SEAL_KEY_LEN {
            return Err(SaError::Corrupt(format!(
                "the EAB sealing key must be {EAB_SEAL_KEY_LEN} bytes, not {}",
                key.len()
            )));
        }
        let key = RandomizedNonceKey::new(&AES_256_GCM, key)
            .map_err(|_| SaError::Corrupt("the EAB sealing key is unusable".into()))?;
        Ok(EabSeal { key })
    }

    /// A fresh random sealing key.
    ///
    /// # Errors
    /// [`SaError::Corrupt`] if the system random number generator fails.
    pub fn generate_key() -> Result<[u8; EAB_SEAL_KEY_LEN], SaError> {
        let mut key = [0u8; EAB_SEAL_KEY_LEN];
        aws_lc_rs::rand::fill(&mut key)
            .map_err(|_| SaError::Corrupt("the system random number generator failed".into()))?;
        Ok(key)
    }

    /// Whether `stored` is a sealed value (else a plaintext key from before sealing).
    pub(crate) fn is_sealed(stored: &[u8]) -> bool {
        stored.starts_with(MAGIC)
    }

    /// Seals the HMAC key of `key_id`.
    pub(crate) fn seal(&self, key_id: &str, hmac_key: &[u8]) -> Result<Vec<u8>, SaError> {
        let mut in_out = hmac_key.to_vec();
        let nonce = self
            .key
            .seal_in_place_append_tag(Aad::from(key_id.as_bytes()), &mut in_out)
            .map_err(|_| SaError::Corrupt("sealing an EAB key failed".into()))?;
        let mut out = Vec::with_capacity(MAGIC.len() + NONCE_LEN + in_out.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(nonce.as_ref());
        out.extend_from_slice(&in_out);
        Ok(out)
    }

    /// Opens a sealed value of `key_id`.
    pub(crate) fn open(&self, key_id: &str, stored: &[u8]) -> Result<Vec<u8>, SaError> {
        let unusable = || {
            SaError::Corrupt(format!(
                "the EAB key {key_id} does not open with this sealing key (a different key, or a damaged row)"
            ))
        };
        let rest = stored.strip_prefix(MAGIC).ok_or_else(unusable)?;
        if rest.len() < NONCE_LEN {
            return Err(unusable());
        }
        let (nonce, sealed) = rest.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| unusable())?;
        let mut in_out = sealed.to_vec();
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(key_id.as_bytes()), &mut in_out)
            .map_err(|_| unusable())?;
        Ok(plain.to_vec())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_key_opens_only_with_its_key_and_key_id() {
        let seal = EabSeal::new(&EabSeal::generate_key().unwrap()).unwrap();
        let hmac = [7u8; 32];
        let sealed = seal.seal("kid1", &hmac).unwrap();
        assert!(EabSeal::is_sealed(&sealed));
        assert!(!sealed.windows(hmac.len()).any(|w| w == hmac));
        assert_eq!(seal.open("kid1", &sealed).unwrap(), hmac);
        // Another row's ID, another sealing key, a flipped bit: refused.
        assert!(seal.open("kid2", &sealed).is_err());
        let other = EabSeal::new(&EabSeal::generate_key().unwrap()).unwrap();
        assert!(other.open("kid1", &sealed).is_err());
        let mut damaged = sealed.clone();
        *damaged.last_mut().unwrap() ^= 1;
        assert!(seal.open("kid1", &damaged).is_err());
        // Two seals of one key differ (fresh nonce each time).
        assert_ne!(seal.seal("kid1", &hmac).unwrap(), sealed);
        assert!(EabSeal::new(&[0u8; 16]).is_err());
    }
}
