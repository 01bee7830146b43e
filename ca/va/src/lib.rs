//! Validation authority: proves control of identifiers with http-01, dns-01 and tls-alpn-01.

use async_trait::async_trait;
use cairn_core::{ChallengeType, Identifier, Problem, ValidationRecord};

/// One validation to perform.
#[derive(Debug, Clone)]
pub struct ValidationRequest {
    /// The identifier (authorization form: no wildcard prefix).
    pub identifier: Identifier,
    /// The method.
    pub challenge: ChallengeType,
    /// The challenge token.
    pub token: String,
    /// The key authorization: `token || '.' || base64url(JWK thumbprint)`.
    pub key_authorization: String,
}

/// What a validation did and how it ended.
#[derive(Debug, Clone)]
pub struct ValidationOutcome {
    /// Network records (one per HTTP hop, or the DNS lookup).
    pub records: Vec<ValidationRecord>,
    /// `None` on success; the client-facing problem on failure.
    pub error: Option<Problem>,
}

/// The validation interface (in-process by default; remote perspectives later).
#[async_trait]
pub trait ValidationAuthority: Send + Sync + 'static {
    /// Performs one validation. Never panics; every failure is a `Problem` in the outcome.
    async fn validate(&self, req: ValidationRequest) -> ValidationOutcome;
}
