//! Strict base64url (RFC 4648 §5) without padding, as JOSE (RFC 7515 §2) requires.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// Encodes bytes as unpadded base64url.
pub fn encode(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Decodes unpadded base64url. Padding, whitespace, the standard alphabet's `+`/`/` and
/// non-canonical trailing bits are all rejected, so every byte string has exactly one encoding.
pub fn decode(text: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(text).ok()
}

/// Decodes base64url, tolerating correct `=` padding (RFC 4648 §4: to a multiple of four
/// characters, at most two `=`). Only for fields outside the JWS framing (the `csr` and
/// `certificate` members), as Boulder tolerates it there; RFC 8555 §6.1 asks for refusal, see
/// `docs/acme-divergences.md`. Any other `=` (too many, a wrong count) is refused.
pub fn decode_lenient(text: &str) -> Option<Vec<u8>> {
    let bare = text.trim_end_matches('=');
    let pad = text.len() - bare.len();
    if pad > 0 && (pad > 2 || text.len() % 4 != 0) {
        return None;
    }
    decode(bare)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn rejects_padding_and_foreign_alphabet() {
        assert_eq!(decode("YQ").as_deref(), Some(&b"a"[..]));
        assert!(decode("YQ==").is_none());
        assert!(decode("+/8").is_none());
        assert!(decode("YQ ").is_none());
        // "YR" carries non-zero trailing bits: a second spelling of "a", refused.
        assert!(decode("YR").is_none());
        assert_eq!(decode_lenient("YQ==").as_deref(), Some(&b"a"[..]));
        assert_eq!(decode_lenient("YQ").as_deref(), Some(&b"a"[..]));
    }

    #[test]
    fn lenient_decoding_takes_only_correct_padding() {
        assert_eq!(decode_lenient("YWI=").as_deref(), Some(&b"ab"[..]));
        for bad in ["YQ=", "YQ===", "YQ=====", "YWI==", "YWJj=", "="] {
            assert!(decode_lenient(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn round_trips() {
        let data: Vec<u8> = (0u8..=255).collect();
        assert_eq!(decode(&encode(&data)), Some(data));
    }
}
