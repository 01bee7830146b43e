//! Debian's weak keys (CVE-2008-0166): from 2006 to 2008 Debian's OpenSSL seeded its random
//! generator with little more than the process ID, so every RSA key it made is one of a few
//! hundred thousand that can be listed. The lists ship in `openssl-vulnkey`'s format, which
//! operators supply as files (Cairn bundles none):
//!
//! - one fingerprint a line: the last 80 bits, in hex, of SHA-1 over
//!   `Modulus=<the modulus in uppercase hex, as `openssl rsa -modulus` prints it>\n`;
//! - lines starting with `#` are comments; blank lines are ignored.
//!
//! Parsing is strict: a line that is neither a comment nor 20 hex digits refuses the whole
//! file with its line number, so a truncated or wrong file is found at start-up instead of
//! silently blocking nothing.

use crate::RsaPublicKey;
use crate::key::OID_RSA_ENCRYPTION;
use der::Decode;
use spki::SubjectPublicKeyInfoRef;
use std::collections::HashSet;

/// Length of a fingerprint in bytes (80 bits).
const FINGERPRINT_LEN: usize = 10;

/// An 80-bit `openssl-vulnkey` fingerprint.
type Fingerprint = [u8; FINGERPRINT_LEN];

/// Why a blocklist could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BlocklistError {
    /// A line is neither a comment nor a fingerprint of 20 hex digits.
    #[error("line {line}: expected 20 hex digits (openssl-vulnkey format), found {found:?}")]
    BadLine {
        /// 1-based line number.
        line: usize,
        /// The start of the offending line.
        found: String,
    },
    /// The file holds no fingerprint at all: most likely the wrong file.
    #[error("no fingerprint in the file")]
    Empty,
}

/// A set of Debian weak-key fingerprints.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DebianWeakKeys {
    fingerprints: HashSet<Fingerprint>,
}

impl DebianWeakKeys {
    /// An empty set: nothing is refused.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds every fingerprint of one file's text. Nothing is added if any line is malformed.
    pub fn add_list(&mut self, text: &str) -> Result<(), BlocklistError> {
        let mut found = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let fingerprint = parse_fingerprint(line).ok_or_else(|| BlocklistError::BadLine {
                line: i + 1,
                found: line.chars().take(40).collect(),
            })?;
            found.push(fingerprint);
        }
        if found.is_empty() {
            return Err(BlocklistError::Empty);
        }
        self.fingerprints.extend(found);
        Ok(())
    }

    /// Number of distinct fingerprints.
    pub fn len(&self) -> usize {
        self.fingerprints.len()
    }

    /// True when no fingerprint is loaded.
    pub fn is_empty(&self) -> bool {
        self.fingerprints.is_empty()
    }

    /// True if the RSA modulus (big-endian, leading zeros allowed) is listed.
    pub fn contains_rsa_modulus(&self, n: &[u8]) -> bool {
        !self.fingerprints.is_empty() && self.fingerprints.contains(&fingerprint(n))
    }
}

impl DebianWeakKeys {
    /// True if the SubjectPublicKeyInfo (DER) is an RSA key whose modulus is listed. Keys of
    /// other types, and bytes that are not an RSA SubjectPublicKeyInfo, are not listed.
    pub fn contains_spki(&self, spki_der: &[u8]) -> bool {
        if self.fingerprints.is_empty() {
            return false;
        }
        let Ok(spki) = SubjectPublicKeyInfoRef::from_der(spki_der) else {
            return false;
        };
        if spki.algorithm.oid != OID_RSA_ENCRYPTION {
            return false;
        }
        spki.subject_public_key
            .as_bytes()
            .and_then(|bits| RsaPublicKey::from_der(bits).ok())
            .is_some_and(|rsa| self.contains_rsa_modulus(rsa.modulus.as_bytes()))
    }
}

/// The `openssl-vulnkey` fingerprint of an RSA modulus (big-endian, leading zeros allowed), as
/// 20 lowercase hex digits: the form of a blocklist line.
pub fn debian_weak_key_fingerprint(n: &[u8]) -> String {
    fingerprint(n).iter().map(|b| format!("{b:02x}")).collect()
}

fn fingerprint(n: &[u8]) -> Fingerprint {
    // OpenSSL prints the modulus in uppercase hex without leading zero digits.
    let hex: String = n.iter().map(|b| format!("{b:02X}")).collect();
    let digits = hex.trim_start_matches('0');
    let digits = if digits.is_empty() { "0" } else { digits };
    let text = format!("Modulus={digits}\n");
    let digest = aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY,
        text.as_bytes(),
    );
    let digest = digest.as_ref();
    let mut out = [0u8; FINGERPRINT_LEN];
    out.copy_from_slice(&digest[digest.len() - FINGERPRINT_LEN..]);
    out
}

fn parse_fingerprint(line: &str) -> Option<Fingerprint> {
    let bytes = line.as_bytes();
    if bytes.len() != 2 * FINGERPRINT_LEN {
        return None;
    }
    let mut out = [0u8; FINGERPRINT_LEN];
    for (o, pair) in out.iter_mut().zip(bytes.chunks_exact(2)) {
        let hi = char::from(pair[0]).to_digit(16)?;
        let lo = char::from(pair[1]).to_digit(16)?;
        *o = u8::try_from(hi * 16 + lo).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_rs::rsa::KeySize;
    use aws_lc_rs::signature::{KeyPair, RsaKeyPair};

    fn rsa_modulus() -> Vec<u8> {
        let key = RsaKeyPair::generate(KeySize::Rsa2048).unwrap();
        let der = key.public_key().as_ref().to_vec();
        let rsa = RsaPublicKey::from_der(&der).unwrap();
        rsa.modulus.as_bytes().to_vec()
    }

    #[test]
    fn the_fingerprint_is_the_tail_of_sha1_over_openssls_modulus_line() {
        // Independent of the code above: SHA-1 of "Modulus=C0FFEE\n", last 20 hex digits.
        let digest = aws_lc_rs::digest::digest(
            &aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY,
            b"Modulus=C0FFEE\n",
        );
        let full = hex::encode(digest.as_ref());
        assert_eq!(debian_weak_key_fingerprint(&[0xc0, 0xff, 0xee]), full[20..]);
        // Leading zero bytes (a DER INTEGER's sign byte) and a leading zero digit are not
        // part of what OpenSSL prints.
        assert_eq!(
            debian_weak_key_fingerprint(&[0x00, 0xc0, 0xff, 0xee]),
            full[20..]
        );
        let digest = aws_lc_rs::digest::digest(
            &aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY,
            b"Modulus=BEEF1\n",
        );
        assert_eq!(
            debian_weak_key_fingerprint(&[0x0b, 0xee, 0xf1]),
            hex::encode(digest.as_ref())[20..]
        );
    }

    #[test]
    fn a_listed_modulus_is_found_and_another_is_not() {
        let weak = rsa_modulus();
        let good = rsa_modulus();
        let list = format!(
            "# blacklist.RSA-2048\n\n{}\n{}\n",
            "0123456789abcdef0123",
            debian_weak_key_fingerprint(&weak).to_uppercase()
        );
        let mut keys = DebianWeakKeys::new();
        keys.add_list(&list).unwrap();
        assert_eq!(keys.len(), 2);
        assert!(keys.contains_rsa_modulus(&weak));
        assert!(!keys.contains_rsa_modulus(&good));
        assert!(!DebianWeakKeys::new().contains_rsa_modulus(&weak));
    }

    #[test]
    fn a_malformed_list_is_refused_whole_with_its_line() {
        let mut keys = DebianWeakKeys::new();
        for (text, line) in [
            ("# ok\n0123456789abcdef0123\n0123456789abcdef012\n", 3),
            ("0123456789abcdef0123\n0123456789abcdef012g\n", 2),
            ("-----BEGIN RSA PUBLIC KEY-----\n", 1),
            ("0123456789abcdef0123 extra\n", 1),
        ] {
            match keys.add_list(text) {
                Err(BlocklistError::BadLine { line: l, .. }) => assert_eq!(l, line, "{text}"),
                other => panic!("{text}: {other:?}"),
            }
        }
        assert_eq!(keys.add_list("# nothing\n\n"), Err(BlocklistError::Empty));
        assert!(keys.is_empty(), "nothing of a refused file is kept");
    }
}
