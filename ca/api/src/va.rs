//! The validation authority's contract: [`ValidationAuthority`] proves control of an identifier
//! (http-01, dns-01, tls-alpn-01) and checks CAA (RFC 8659, with RFC 8657's account and method
//! binding). Failures are client-facing [`Problem`]s in the outcome, never errors of the call.

use async_trait::async_trait;
use cairn_core::{ChallengeType, Identifier, Problem, ValidationRecord};
use serde::{Deserialize, Serialize};

/// One validation to perform.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ValidationRequest {
    /// The identifier (authorization form: no wildcard prefix).
    pub identifier: Identifier,
    /// The method.
    pub challenge: ChallengeType,
    /// The challenge token.
    pub token: String,
    /// The key authorization: `token || '.' || base64url(JWK thumbprint)`.
    pub key_authorization: String,
    /// Check CAA (RFC 8659) after a successful validation, as Boulder does. `None` skips it.
    pub caa: Option<CaaCheck>,
}

impl ValidationRequest {
    /// The requesting account's URL as the CA gave it in `Location` (dns-account-01 derives
    /// its label from it): the first of the CA's configured base URLs followed by the account's
    /// path. `None` when the CA has no configured base URL, which is why the RA offers
    /// dns-account-01 only with one.
    pub fn account_url(&self) -> Option<String> {
        let account = self.caa.as_ref()?.account.as_ref()?;
        let base = account.prefixes.first()?;
        Some(format!("{}{}", base.trim_end_matches('/'), account.path))
    }
}

/// The CAA check that accompanies a validation. dns-persist-01 also reads it: the record must
/// name one of `ca_identities` (the draft's issuer domain names are this CA's CAA identities),
/// bind `account`, and carry `policy=wildcard` when `wildcard` is set.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CaaCheck {
    /// The authorization is for a wildcard name (`issuewild` applies).
    pub wildcard: bool,
    /// Issuer domain names that identify this CA in CAA `issue`/`issuewild` records.
    pub ca_identities: Vec<String>,
    /// The requesting account, for RFC 8657 `accounturi`.
    pub account: Option<CaaAccount>,
    /// The validation method that succeeded, for RFC 8657 `validationmethods` (`None` when
    /// CAA is rechecked at finalize without a method at hand: method-bound records then
    /// authorize nothing).
    pub method: Option<ChallengeType>,
}

/// How an account is named in RFC 8657 `accounturi` parameters: its URL is one of
/// `prefixes` followed by `path`. With no prefixes configured, any URL ending in `path`
/// matches (the path holds the account's unguessable random ID).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CaaAccount {
    /// The account URL's path, e.g. `/acme/acct/<id>`.
    pub path: String,
    /// The CA's external base URLs, e.g. `https://acme.example.com`.
    pub prefixes: Vec<String>,
}

impl CaaAccount {
    /// Whether an `accounturi` value names this account.
    pub fn matches(&self, uri: &str) -> bool {
        match uri.strip_suffix(self.path.as_str()) {
            None => false,
            Some(prefix) if self.prefixes.is_empty() => {
                prefix.starts_with("https://") || prefix.starts_with("http://")
            }
            Some(prefix) => self
                .prefixes
                .iter()
                .any(|p| p.trim_end_matches('/') == prefix),
        }
    }
}

/// What a validation did and how it ended.
#[derive(Debug, Clone, Serialize, Deserialize)]
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
    /// Checks CAA alone (the recheck at finalize for authorizations validated long ago).
    async fn check_caa(&self, identifier: &Identifier, check: &CaaCheck) -> Result<(), Problem>;
}
