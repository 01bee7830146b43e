//! ACME problem documents (RFC 8555 §6.7, RFC 7807) as the CA's typed error currency.
//! The HTTP edge serializes them; inner components produce them for client-facing failures.

use crate::Identifier;
use serde::{Deserialize, Serialize};
use std::fmt;

/// The `urn:ietf:params:acme:error:*` types (RFC 8555 §6.7 and later documents).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub enum ProblemType {
    /// The request specified an account that does not exist.
    AccountDoesNotExist,
    /// The request specified a certificate to be revoked that has already been revoked.
    AlreadyRevoked,
    /// The CSR is unacceptable (e.g., due to a short key).
    #[serde(rename = "badCSR")]
    BadCsr,
    /// The client sent an unacceptable anti-replay nonce.
    BadNonce,
    /// The JWS was signed by a public key the server does not support.
    BadPublicKey,
    /// The revocation reason provided is not allowed by the server.
    BadRevocationReason,
    /// The JWS was signed with an algorithm the server does not support.
    BadSignatureAlgorithm,
    /// CAA records forbid the CA from issuing a certificate.
    Caa,
    /// Specific error conditions are indicated in the "subproblems" array.
    Compound,
    /// The server could not connect to the validation target.
    Connection,
    /// There was a problem with a DNS query during identifier validation.
    Dns,
    /// The request must include a value for the "externalAccountBinding" field.
    ExternalAccountRequired,
    /// Response received didn't match the challenge's requirements.
    IncorrectResponse,
    /// A contact URL for an account was invalid.
    InvalidContact,
    /// The request message was malformed.
    Malformed,
    /// The request attempted to finalize an order that is not ready to be finalized.
    OrderNotReady,
    /// The request exceeds a rate limit.
    RateLimited,
    /// The server will not issue certificates for the identifier.
    RejectedIdentifier,
    /// The server experienced an internal error.
    ServerInternal,
    /// The server received a TLS error during validation.
    Tls,
    /// The client lacks sufficient authorization.
    Unauthorized,
    /// A contact URL for an account used an unsupported protocol scheme.
    UnsupportedContact,
    /// An identifier is of an unsupported type.
    UnsupportedIdentifier,
    /// Visit the "instance" URL and take actions specified there.
    UserActionRequired,
    /// The profile named in newOrder is unknown (draft-ietf-acme-profiles).
    InvalidProfile,
    /// The request used a `replaces` value that cannot be honoured (RFC 9773).
    AlreadyReplaced,
    /// The resource was not found (Cairn-specific plain 404, sent as `malformed` per Boulder).
    NotFound,
    /// The HTTP method is not allowed on this resource.
    MethodNotAllowed,
}

impl ProblemType {
    /// The full URN.
    pub fn urn(self) -> String {
        let name = serde_json::to_value(self)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_else(|| "serverInternal".into());
        match self {
            ProblemType::NotFound | ProblemType::MethodNotAllowed => {
                "urn:ietf:params:acme:error:malformed".into()
            }
            _ => format!("urn:ietf:params:acme:error:{name}"),
        }
    }

    /// Parses a full URN back into a type.
    pub fn from_urn(urn: &str) -> Option<Self> {
        let name = urn.strip_prefix("urn:ietf:params:acme:error:")?;
        serde_json::from_value(serde_json::Value::String(name.into())).ok()
    }

    /// The HTTP status that goes with the type.
    pub fn default_status(self) -> u16 {
        match self {
            ProblemType::NotFound => 404,
            ProblemType::Unauthorized => 403,
            ProblemType::RateLimited => 429,
            ProblemType::ServerInternal => 500,
            ProblemType::MethodNotAllowed => 405,
            ProblemType::OrderNotReady => 403,
            ProblemType::AlreadyReplaced => 409,
            _ => 400,
        }
    }
}

/// A per-identifier failure inside a compound problem.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subproblem {
    /// The problem type.
    #[serde(rename = "type", with = "urn_serde")]
    pub typ: ProblemType,
    /// Human-readable detail.
    pub detail: String,
    /// The identifier the problem is about.
    pub identifier: Identifier,
}

/// A problem document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    /// The problem type.
    #[serde(rename = "type", with = "urn_serde")]
    pub typ: ProblemType,
    /// Human-readable detail, safe to show a client.
    pub detail: String,
    /// HTTP status code.
    pub status: u16,
    /// Per-identifier problems.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subproblems: Vec<Subproblem>,
    /// The identifier this problem is about, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identifier: Option<Identifier>,
    /// Seconds the client should wait before retrying (sent as `Retry-After`, not in the body).
    #[serde(skip)]
    pub retry_after: Option<u32>,
    /// Documentation for the client (sent as `Link: <…>;rel="help"`, not in the body).
    #[serde(skip)]
    pub help_url: Option<Box<str>>,
}

impl Problem {
    /// A problem of type `typ` with the type's default status.
    pub fn new(typ: ProblemType, detail: impl Into<String>) -> Self {
        Self {
            typ,
            detail: detail.into(),
            status: typ.default_status(),
            subproblems: Vec::new(),
            identifier: None,
            retry_after: None,
            help_url: None,
        }
    }

    /// Overrides the HTTP status.
    pub fn with_status(mut self, status: u16) -> Self {
        self.status = status;
        self
    }

    /// Attaches an identifier.
    pub fn with_identifier(mut self, id: Identifier) -> Self {
        self.identifier = Some(id);
        self
    }

    /// Sets `Retry-After`.
    pub fn with_retry_after(mut self, secs: u64) -> Self {
        self.retry_after = Some(u32::try_from(secs).unwrap_or(u32::MAX));
        self
    }

    /// Adds a documentation link (`Link: rel="help"`).
    pub fn with_help_url(mut self, url: impl Into<String>) -> Self {
        self.help_url = Some(url.into().into_boxed_str());
        self
    }

    /// `malformed`.
    pub fn malformed(detail: impl Into<String>) -> Self {
        Self::new(ProblemType::Malformed, detail)
    }

    /// `unauthorized`.
    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new(ProblemType::Unauthorized, detail)
    }

    /// A 404 for an unknown resource.
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(ProblemType::NotFound, detail)
    }

    /// `serverInternal` with a generic detail. Log the real cause before returning this.
    pub fn internal() -> Self {
        Self::new(
            ProblemType::ServerInternal,
            "the server experienced an internal error",
        )
    }

    /// A compound problem with one subproblem per identifier; a single failure is returned as
    /// itself with its identifier.
    pub fn compound(detail: impl Into<String>, subs: Vec<Subproblem>) -> Self {
        if subs.len() == 1 {
            let s = subs
                .into_iter()
                .next()
                .map(|s| (s.typ, s.detail, s.identifier));
            if let Some((typ, detail, id)) = s {
                return Problem::new(typ, detail).with_identifier(id);
            }
            return Problem::internal();
        }
        Self {
            subproblems: subs,
            ..Self::new(ProblemType::Compound, detail)
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.typ.urn(), self.detail)
    }
}

impl std::error::Error for Problem {}

mod urn_serde {
    use super::ProblemType;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(t: &ProblemType, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&t.urn())
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<ProblemType, D::Error> {
        let s = String::deserialize(d)?;
        ProblemType::from_urn(&s)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown problem type {s}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problem_serializes_with_urn() {
        let p = Problem::new(ProblemType::BadNonce, "stale nonce");
        let v = serde_json::to_value(&p).unwrap();
        assert_eq!(v["type"], "urn:ietf:params:acme:error:badNonce");
        assert_eq!(v["status"], 400);
        assert!(v.get("subproblems").is_none());
        let back: Problem = serde_json::from_value(v).unwrap();
        assert_eq!(back, p);
    }

    #[test]
    fn urns_match_rfc_8555_spelling() {
        assert_eq!(
            ProblemType::BadCsr.urn(),
            "urn:ietf:params:acme:error:badCSR"
        );
        assert_eq!(
            ProblemType::from_urn("urn:ietf:params:acme:error:badCSR"),
            Some(ProblemType::BadCsr)
        );
        assert_eq!(ProblemType::AccountDoesNotExist.default_status(), 400);
    }

    #[test]
    fn compound_with_one_subproblem_collapses() {
        let id = Identifier::dns("example.com");
        let p = Problem::compound(
            "x",
            vec![Subproblem {
                typ: ProblemType::RejectedIdentifier,
                detail: "no".into(),
                identifier: id.clone(),
            }],
        );
        assert_eq!(p.typ, ProblemType::RejectedIdentifier);
        assert_eq!(p.identifier, Some(id));
    }
}
