//! Newtypes for every identifier the CA hands out. IDs are random and URL-safe so they can be
//! used in ACME URLs directly and reveal nothing about volume.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use std::fmt;

/// A random, URL-safe identifier of `bytes` random bytes. Stops the process if the system
/// generator fails ([`crate::random`]).
pub fn random_id(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    crate::random::fill(&mut buf);
    URL_SAFE_NO_PAD.encode(&buf)
}

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident, $bytes:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub String);

        impl $name {
            /// A fresh random identifier.
            pub fn random() -> Self {
                Self(random_id($bytes))
            }

            /// The identifier as it appears in URLs and storage.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<String> for $name {
            fn from(s: String) -> Self {
                Self(s)
            }
        }
    };
}

string_id!(
    /// An ACME account.
    AccountId,
    12
);
string_id!(
    /// An ACME order.
    OrderId,
    15
);
string_id!(
    /// An ACME authorization.
    AuthzId,
    15
);
string_id!(
    /// A challenge within an authorization.
    ChallengeId,
    12
);

/// A certificate serial number: positive, 64+ bits of entropy (we use 18 random bytes with the top
/// bit cleared), rendered as lowercase hex in URLs and storage.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Serial(pub String);

impl Serial {
    /// A fresh serial: 18 random bytes, first byte in 0x01..=0x7f so the DER INTEGER is positive
    /// and has no leading zero to strip.
    pub fn random() -> Self {
        let mut buf = [0u8; 18];
        crate::random::fill(&mut buf);
        buf[0] &= 0x7f;
        if buf[0] == 0 {
            buf[0] = 0x01;
        }
        Self(hex::encode(buf))
    }

    /// The serial's big-endian bytes as they appear in the certificate.
    pub fn to_bytes(&self) -> Vec<u8> {
        hex::decode(&self.0).unwrap_or_default()
    }

    /// The serial from certificate bytes.
    pub fn from_bytes(bytes: &[u8]) -> Self {
        Self(hex::encode(bytes))
    }

    /// The hex form.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A serial as an operator types it: hexadecimal in any case, optionally `0x`-prefixed or
    /// colon-separated (as OpenSSL prints it), an odd number of digits padded; at most 21
    /// octets. The stored form is the lowercase hex of the octets.
    pub fn parse_hex(s: &str) -> Option<Self> {
        let s = s
            .trim()
            .trim_start_matches("0x")
            .replace(':', "")
            .to_ascii_lowercase();
        if s.is_empty() || s.len() > 42 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        Some(Self(if s.len() % 2 == 1 { format!("0{s}") } else { s }))
    }
}

impl fmt::Display for Serial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_serials_parse_to_the_stored_form() {
        let s = Serial::random();
        assert_eq!(Serial::parse_hex(&s.0), Some(s.clone()));
        assert_eq!(Serial::parse_hex(&s.0.to_uppercase()), Some(s));
        let abc = Some(Serial::from_bytes(&[0x0a, 0xbc]));
        assert_eq!(Serial::parse_hex("0x0abc"), abc);
        assert_eq!(Serial::parse_hex("abc"), abc);
        assert_eq!(Serial::parse_hex(" 0A:BC "), abc);
        assert_eq!(Serial::parse_hex("xyz"), None);
        assert_eq!(Serial::parse_hex(""), None);
        assert_eq!(Serial::parse_hex(&"1".repeat(43)), None);
    }

    #[test]
    fn serials_are_positive_and_unique() {
        let a = Serial::random();
        let b = Serial::random();
        assert_ne!(a, b);
        let bytes = a.to_bytes();
        assert_eq!(bytes.len(), 18);
        assert!(bytes[0] >= 1 && bytes[0] <= 0x7f);
        assert_eq!(Serial::from_bytes(&bytes), a);
    }

    #[test]
    fn ids_are_url_safe() {
        let id = OrderId::random();
        assert_eq!(id.as_str().len(), 20);
        assert!(
            id.as_str()
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        );
    }
}
