//! `JwsError`: why a JWS, JWK or external account binding was refused, and its RFC 8555 problem type.

use crate::jwk::KeyType;
use crate::jws::JwsAlg;
use cairn_core::{Problem, ProblemType};

/// The longest piece of client input quoted back in an error detail.
const MAX_QUOTE: usize = 120;

/// Why a JWS, JWK or external account binding was refused.
///
/// Each variant maps to one RFC 8555 §6.7 problem type (see [`JwsError::problem_type`]); the
/// `Display` text is safe to send to the client and never quotes more than a few dozen
/// characters of its input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JwsError {
    /// Some JSON (`what`) did not parse or is not an object. → `malformed`
    #[error("{what} is not valid JSON: {}", shorten(detail))]
    InvalidJson {
        /// Which piece of the request (e.g. "JWS protected header").
        what: &'static str,
        /// The parser's complaint (shortened when displayed).
        detail: String,
    },
    /// A member that must be unpadded base64url is not. → `malformed`
    #[error("{member} is not unpadded base64url")]
    InvalidBase64 {
        /// The member's name.
        member: &'static str,
    },
    /// A required member is absent. → `malformed`
    #[error("{context} has no {member:?} member")]
    MissingMember {
        /// Where it was expected.
        context: &'static str,
        /// The missing member.
        member: &'static str,
    },
    /// A member has the wrong JSON type. → `malformed`
    #[error("{context} member {member:?} must be {expected}")]
    WrongType {
        /// Where it was found.
        context: &'static str,
        /// The member.
        member: &'static str,
        /// What type it must be.
        expected: &'static str,
    },
    /// A member that is not allowed there, e.g. an unprotected `header`, `signatures` (general
    /// serialization) or `crit`. → `malformed`
    #[error("{context} must not contain {:?}", shorten(member))]
    UnexpectedMember {
        /// Where it was found.
        context: &'static str,
        /// The member (shortened when displayed).
        member: String,
    },
    /// The protected header names neither or both of `jwk` and `kid`. → `malformed`
    #[error("JWS protected header must contain exactly one of \"jwk\" and \"kid\"")]
    KeyReference,
    /// The protected header has no `nonce`. → `badNonce`
    #[error("JWS has no anti-replay nonce")]
    MissingNonce,
    /// The `alg` is not one Cairn accepts for this JWS (never `none` or an HMAC for a request).
    /// → `badSignatureAlgorithm`
    #[error(
        "JWS algorithm {:?} is not supported; use one of RS256, ES256, ES384, ES512, EdDSA",
        shorten(.0)
    )]
    UnsupportedAlgorithm(String),
    /// The `alg` does not go with the key (e.g. ES256 with an RSA or P-384 key).
    /// → `badSignatureAlgorithm`
    #[error("JWS algorithm {alg} cannot be used with a {key} key")]
    AlgorithmKeyMismatch {
        /// The header's algorithm.
        alg: JwsAlg,
        /// The key's type.
        key: KeyType,
    },
    /// The JWK is not an acceptable public key (type, curve, size, exponent, point, or private
    /// members). → `badPublicKey`
    #[error("bad public key: {}", shorten(.0))]
    BadPublicKey(String),
    /// The signature does not verify. → `malformed`
    #[error("JWS verification error")]
    BadSignature,
    /// The inner JWS of a key change (RFC 8555 §7.3.5) breaks a rule. → `malformed`
    #[error("key change: {0}")]
    KeyChange(&'static str),
    /// The external account binding (RFC 8555 §7.3.4) is not shaped as required. → `malformed`
    #[error("external account binding: {0}")]
    EabMalformed(&'static str),
    /// The external account binding names a key ID the CA does not know. → `unauthorized`
    #[error("external account binding key ID {:?} is not known", shorten(.0))]
    EabUnknownKey(String),
    /// The external account binding's MAC does not verify. → `unauthorized`
    #[error("external account binding MAC is not valid")]
    EabBadMac,
    /// The external account binding binds a different key than the one signing the request.
    /// → `unauthorized`
    #[error("external account binding payload is not the account key")]
    EabKeyMismatch,
    /// The request payload does not match the expected message. → `malformed`
    #[error("invalid request payload: {}", shorten(.0))]
    InvalidPayload(String),
}

impl JwsError {
    /// The RFC 8555 problem type the error is reported as.
    pub fn problem_type(&self) -> ProblemType {
        match self {
            JwsError::UnsupportedAlgorithm(_) | JwsError::AlgorithmKeyMismatch { .. } => {
                ProblemType::BadSignatureAlgorithm
            }
            JwsError::BadPublicKey(_) => ProblemType::BadPublicKey,
            JwsError::MissingNonce => ProblemType::BadNonce,
            JwsError::EabUnknownKey(_) | JwsError::EabBadMac | JwsError::EabKeyMismatch => {
                ProblemType::Unauthorized
            }
            JwsError::InvalidJson { .. }
            | JwsError::InvalidBase64 { .. }
            | JwsError::MissingMember { .. }
            | JwsError::WrongType { .. }
            | JwsError::UnexpectedMember { .. }
            | JwsError::KeyReference
            | JwsError::BadSignature
            | JwsError::KeyChange(_)
            | JwsError::EabMalformed(_)
            | JwsError::InvalidPayload(_) => ProblemType::Malformed,
        }
    }

    /// A [`JwsError::InvalidJson`] from a serde_json error.
    pub(crate) fn json(what: &'static str, err: &serde_json::Error) -> Self {
        JwsError::InvalidJson {
            what,
            detail: err.to_string(),
        }
    }
}

impl From<JwsError> for Problem {
    fn from(err: JwsError) -> Self {
        Problem::new(err.problem_type(), err.to_string())
    }
}

/// Cuts client-controlled text to a length fit for an error detail.
pub(crate) fn shorten(text: &str) -> String {
    if text.chars().count() <= MAX_QUOTE {
        return text.to_owned();
    }
    let mut cut: String = text.chars().take(MAX_QUOTE).collect();
    cut.push('…');
    cut
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn problem_types_follow_rfc_8555() {
        let p = Problem::from(JwsError::UnsupportedAlgorithm("none".into()));
        assert_eq!(p.typ, ProblemType::BadSignatureAlgorithm);
        assert!(p.detail.contains("ES256"));
        assert_eq!(
            Problem::from(JwsError::BadSignature).detail,
            "JWS verification error"
        );
        assert_eq!(Problem::from(JwsError::EabBadMac).status, 403);
        assert_eq!(
            Problem::from(JwsError::MissingNonce).typ,
            ProblemType::BadNonce
        );
    }

    #[test]
    fn details_do_not_echo_long_input() {
        let long = "x".repeat(100_000);
        let p = Problem::from(JwsError::UnexpectedMember {
            context: "JWS",
            member: long,
        });
        assert!(p.detail.len() < 200, "{}", p.detail.len());
    }
}
