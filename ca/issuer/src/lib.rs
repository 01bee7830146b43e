//! Issuer: the only component that holds CA signing keys. It creates or loads the CA hierarchy
//! (root and intermediate) and signs end-entity certificates from a validated request.

pub mod hierarchy;
pub mod local;
pub mod ocsp;
pub mod tls;

use async_trait::async_trait;
use cairn_core::{Identifier, Serial};
use time::OffsetDateTime;

pub use cairn_x509::{CtExtension, EndEntityProfile, KeyAlgorithm};
pub use hierarchy::{CaHierarchy, HierarchyOptions};
pub use local::{CrlRequest, DEFAULT_CRL_SHARDS, LocalIssuer, crl_shard_of};
pub use ocsp::{OcspSigner, OcspSignerKind};
pub use tls::TlsIdentity;

/// The URL of CRL shard `shard` of issuer `issuer_id` under the public base URL (what
/// certificates name in their CRL Distribution Points and the CRL in its
/// issuingDistributionPoint).
pub fn crl_url(base_url: &str, issuer_id: &str, shard: u32) -> String {
    format!("{base_url}/crl/{issuer_id}/{shard}.crl")
}

/// The URL of issuer `issuer_id`'s certificate (DER) under the public base URL (AIA caIssuers).
pub fn issuer_cert_url(base_url: &str, issuer_id: &str) -> String {
    format!("{base_url}/issuer/{issuer_id}.der")
}

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
    /// The profile's key usages and extended key usages.
    pub usage: CertUsage,
}

/// Key usages and EKUs a certificate profile asks for, on top of what every TLS server
/// certificate has (digitalSignature, serverAuth).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CertUsage {
    /// Add the clientAuth EKU.
    pub client_auth: bool,
    /// Add keyEncipherment for RSA subject keys.
    pub rsa_key_encipherment: bool,
}

impl Default for CertUsage {
    /// serverAuth only; keyEncipherment for RSA keys.
    fn default() -> Self {
        CertUsage {
            client_auth: false,
            rsa_key_encipherment: true,
        }
    }
}

/// A signed certificate.
#[derive(Debug, Clone)]
pub struct IssuedCertificate {
    /// The certificate, DER.
    pub der: Vec<u8>,
    /// Which issuer signed it (key of the chain set).
    pub issuer_id: String,
    /// The CRL shard the certificate belongs to (named by its CRL Distribution Point when the
    /// issuer publishes CRLs).
    pub crl_shard: u32,
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
    /// Signs the RFC 6962 precertificate for `req`: the certificate `issue` would sign plus
    /// the critical poison extension. It is submitted to CT logs, never served.
    async fn issue_precertificate(
        &self,
        req: IssueRequest,
    ) -> Result<IssuedCertificate, IssuerError>;
    /// Signs the final certificate for `req` carrying `sct_list` (a TLS-encoded
    /// `SignedCertificateTimestampList`): same serial and TBSCertificate as `precert_der`
    /// except that the poison is replaced by the SCT list. Refuses (`InvalidRequest`) if
    /// `precert_der` is not the precertificate of `req`.
    async fn issue_final(
        &self,
        req: IssueRequest,
        precert_der: &[u8],
        sct_list: &[u8],
    ) -> Result<IssuedCertificate, IssuerError>;
    /// The PEM chains (intermediate(s) then, optionally, root excluded) to serve after the leaf
    /// for `issuer_id`: the default chain first, then alternates.
    fn chains(&self, issuer_id: &str) -> Vec<String>;
}
