//! Serde for byte strings (DER, keys) as standard base64 text: `#[serde(with =
//! "cairn_core::base64_bytes")]` on a `Vec<u8>`, [`option`] on an `Option<Vec<u8>>`.
//!
//! Serde's default for `Vec<u8>` in JSON is an array of numbers: about three times the size of
//! the bytes and slow to parse, and a certificate crosses the internal RPCs several times per
//! issuance. Decoding also accepts that array form, so a component that still sends it (one not
//! yet upgraded in a split deployment) is understood.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::de::{self, SeqAccess, Visitor};
use serde::{Deserializer, Serializer};
use std::fmt;

/// Serializes `bytes` as base64 text.
pub fn serialize<S: Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&STANDARD.encode(bytes))
}

/// Deserializes base64 text (or an array of byte values).
pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
    deserializer.deserialize_any(BytesVisitor)
}

struct BytesVisitor;

impl<'de> Visitor<'de> for BytesVisitor {
    type Value = Vec<u8>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("base64 text or an array of bytes")
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<Vec<u8>, E> {
        STANDARD
            .decode(text)
            .map_err(|e| E::custom(format_args!("invalid base64: {e}")))
    }

    fn visit_bytes<E: de::Error>(self, bytes: &[u8]) -> Result<Vec<u8>, E> {
        Ok(bytes.to_vec())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<u8>, A::Error> {
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64 * 1024));
        while let Some(b) = seq.next_element::<u8>()? {
            out.push(b);
        }
        Ok(out)
    }
}

/// The same for `Option<Vec<u8>>`: `null` is `None`.
pub mod option {
    use serde::{Deserialize, Deserializer, Serializer};

    /// Serializes `Some` as base64 text, `None` as `null`.
    pub fn serialize<S: Serializer>(
        bytes: &Option<Vec<u8>>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match bytes {
            Some(b) => super::serialize(b, serializer),
            None => serializer.serialize_none(),
        }
    }

    /// Deserializes `null`, base64 text or an array of byte values.
    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<Vec<u8>>, D::Error> {
        #[derive(Deserialize)]
        struct Wrapped(#[serde(with = "super")] Vec<u8>);
        Ok(Option::<Wrapped>::deserialize(deserializer)?.map(|w| w.0))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use serde::{Deserialize, Serialize};

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Holder {
        #[serde(with = "super")]
        der: Vec<u8>,
        #[serde(default, with = "super::option")]
        csr: Option<Vec<u8>>,
    }

    #[test]
    fn bytes_are_base64_text_and_round_trip() {
        let h = Holder {
            der: vec![0x30, 0x82, 0xff, 0x00],
            csr: Some(vec![1, 2, 3]),
        };
        let json = serde_json::to_string(&h).unwrap();
        assert_eq!(json, r#"{"der":"MIL/AA==","csr":"AQID"}"#);
        assert_eq!(serde_json::from_str::<Holder>(&json).unwrap(), h);
        let none = Holder {
            der: Vec::new(),
            csr: None,
        };
        let json = serde_json::to_string(&none).unwrap();
        assert_eq!(json, r#"{"der":"","csr":null}"#);
        assert_eq!(serde_json::from_str::<Holder>(&json).unwrap(), none);
        assert_eq!(
            serde_json::from_str::<Holder>(r#"{"der":""}"#).unwrap(),
            none
        );
    }

    #[test]
    fn the_array_form_an_older_peer_sends_is_still_read() {
        let h: Holder = serde_json::from_str(r#"{"der":[48,130,255,0],"csr":[1,2,3]}"#).unwrap();
        assert_eq!(h.der, vec![0x30, 0x82, 0xff, 0x00]);
        assert_eq!(h.csr, Some(vec![1, 2, 3]));
    }

    #[test]
    fn bad_input_is_an_error_not_a_panic() {
        for bad in [
            r#"{"der":"not base64!"}"#,
            r#"{"der":[256]}"#,
            r#"{"der":[-1]}"#,
            r#"{"der":7}"#,
            r#"{"der":"AA==","csr":{}}"#,
        ] {
            assert!(serde_json::from_str::<Holder>(bad).is_err(), "{bad}");
        }
    }
}
