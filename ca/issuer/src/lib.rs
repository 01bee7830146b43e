//! Issuer: the only component that holds CA signing keys. It creates or loads the CA hierarchy
//! (root and intermediate) and signs end-entity certificates from a validated request.

pub mod hierarchy;
pub mod local;
pub mod tls;

use async_trait::async_trait;
use cairn_core::{Identifier, Serial};
use time::OffsetDateTime;

pub use cairn_x509::{EndEntityProfile, KeyAlgorithm};
pub use hierarchy::CaHierarchy;
pub use local::LocalIssuer;
pub use tls::TlsIdentity;

/// What the RA asks the issuer to sign. The RA has already checked authorizations and the CSR.
#[derive(Debug, Clone)]
pub struct IssueRequest {
    /// The serial the RA reserved.
    pub serial: Serial,
    /// The subject public key (SubjectPublicKeyInfo DER) taken from the CSR.
    pub spki_der: Vec<u8>,
    /// Identifiers for the SAN extension (already normalized and sorted).
    pub identifiers: Vec<Identifier>,
    /// The subject common name, if the profile includes one (must be one of `identifiers`).
    pub common_name: Option<String>,
    /// notBefore.
    pub not_before: OffsetDateTime,
    /// notAfter.
    pub not_after: OffsetDateTime,
    /// The profile's validity: the pre-issuance lint refuses a longer lifetime.
    pub profile_validity: time::Duration,
}

/// A signed certificate.
#[derive(Debug, Clone)]
pub struct IssuedCertificate {
    /// The certificate, DER.
    pub der: Vec<u8>,
    /// Which issuer signed it (key of the chain set).
    pub issuer_id: String,
}

/// Issuer failures.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IssuerError {
    /// The request cannot be turned into a certificate (bad SPKI, bad name).
    #[error("invalid issuance request: {0}")]
    InvalidRequest(String),
    /// Signing or encoding failed.
    #[error("signing failed: {0}")]
    Signing(String),
    /// Reading or writing the key material failed.
    #[error("key storage: {0}")]
    Storage(String),
    /// The CA files on disk do not belong together (a key that does not match its certificate,
    /// an intermediate not issued by the root, a missing file). Nothing is overwritten.
    #[error("inconsistent CA files: {0}")]
    Inconsistent(String),
    /// The pre-issuance lint found errors in the certificate; nothing was signed by the CA key.
    #[error("pre-issuance lint failed: {0}")]
    Lint(String),
}

/// The signing interface (in-process by default; remote when split).
#[async_trait]
pub trait CertificateIssuer: Send + Sync + 'static {
    /// Signs an end-entity certificate.
    async fn issue(&self, req: IssueRequest) -> Result<IssuedCertificate, IssuerError>;
    /// The PEM chains (intermediate(s) then, optionally, root excluded) to serve after the leaf
    /// for `issuer_id`: the default chain first, then alternates.
    fn chains(&self, issuer_id: &str) -> Vec<String>;
}
