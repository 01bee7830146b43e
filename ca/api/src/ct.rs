//! Certificate Transparency as the RA sees it: [`CtSubmitter`] submits a precertificate to the
//! CA's logs and hands back the SCT list to embed. `cairn-publisher` implements it over HTTP and
//! in-process logs, with the SCT policy (enough distinct operators within a timeout).

use async_trait::async_trait;

/// The signed certificate timestamps a certificate embeds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SctList {
    /// The TLS-encoded `SignedCertificateTimestampList` (RFC 6962 §3.3), the value of the
    /// certificate's SCT list extension.
    pub encoded: Vec<u8>,
    /// How many SCTs it holds.
    pub count: usize,
}

/// Why the CA could not get enough SCTs.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CtError {
    /// Fewer than the required number of distinct operators' logs answered in time.
    #[error("SCTs from {got} log operator(s) within the timeout; {required} required")]
    NotEnoughScts {
        /// Distinct operators whose logs returned a valid SCT.
        got: usize,
        /// Distinct operators required.
        required: usize,
    },
    /// The chain to submit is empty or lacks the issuer certificate.
    #[error("the precertificate chain has no issuer certificate")]
    NoIssuer,
}

/// CT submission as the RA sees it.
#[async_trait]
pub trait CtSubmitter: Send + Sync + 'static {
    /// Submits a precertificate chain (precertificate, its issuer, …) and returns the SCTs to
    /// embed: one per distinct operator, at least the configured number, or an error.
    async fn get_scts(&self, precert_chain: &[Vec<u8>]) -> Result<SctList, CtError>;
    /// Submits the final certificate chain to every log, best effort (failures are logged).
    async fn submit_final(&self, chain: Vec<Vec<u8>>);
}
