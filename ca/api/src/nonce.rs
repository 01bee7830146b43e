//! The nonce service's contract: [`NonceService`] mints and redeems the WFE's anti-replay nonces
//! (RFC 8555 §6.5). `cairn serve` runs one in the WFE's process; a split deployment runs
//! `cairn nonce serve` instances that every WFE shares, so a client can send each request to a
//! different WFE. The minting logic is `cairn-acme`'s `nonce` module either way.

use async_trait::async_trait;

/// A failure to reach the nonce service. A refused nonce is not an error: it is `Ok(false)`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NonceError {
    /// The service that minted the nonce (or every service, when minting) could not be reached
    /// or did not answer in time. The detail is for logs, not for clients.
    #[error("nonce service unavailable: {0}")]
    Unavailable(String),
}

/// Mints and redeems nonces.
#[async_trait]
pub trait NonceService: Send + Sync + std::fmt::Debug {
    /// A fresh nonce.
    async fn issue(&self) -> Result<String, NonceError>;

    /// Redeems `nonce`: `Ok(true)` exactly once for a fresh nonce this service (or the instance
    /// its prefix names) minted; `Ok(false)` for anything else (forged, expired, replayed,
    /// unknown prefix).
    async fn redeem(&self, nonce: &str) -> Result<bool, NonceError>;
}
