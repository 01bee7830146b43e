//! The issuer's contract: [`CertificateIssuer`] is the only component that holds the CA's signing
//! keys. It signs end-entity certificates (and their CT precertificates) for the RA, CRLs for the
//! CRL updater and OCSP responses for the responder; nothing else signs anything.
//!
//! `cairn-issuer`'s `LocalIssuer` implements it in-process with keys on disk; a hardware-key or
//! remote issuer is a second implementation behind the same calls.

use async_trait::async_trait;
use cairn_core::{Identifier, Serial};
use cairn_ocsp::ResponseParams;
use cairn_x509::CrlEntry;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// What the RA asks the issuer to sign. The RA has already checked authorizations and the CSR.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IssueRequest {
    /// The serial the RA reserved.
    pub serial: Serial,
    /// The subject public key (SubjectPublicKeyInfo DER) taken from the CSR.
    #[serde(with = "cairn_core::base64_bytes")]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IssuedCertificate {
    /// The certificate, DER.
    #[serde(with = "cairn_core::base64_bytes")]
    pub der: Vec<u8>,
    /// Which issuer signed it (key of the chain set).
    pub issuer_id: String,
    /// The CRL shard the certificate belongs to (named by its CRL Distribution Point when the
    /// issuer publishes CRLs).
    pub crl_shard: u32,
}

/// Who the issuer signs as: what the CRL updater and the OCSP responder need to know about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssuerIdentity {
    /// The ID of the intermediate that signs end-entity certificates, the shards of their CRL
    /// and OCSP responses about them.
    pub issuer_id: String,
    /// That intermediate's certificate, DER (an OCSP request's CertID hashes its name and key).
    #[serde(with = "cairn_core::base64_bytes")]
    pub issuer_certificate_der: Vec<u8>,
    /// The root's ID: it signs the CRL of CA certificates (always shard 0).
    pub root_id: String,
}

/// What a CRL signed by [`CertificateIssuer::sign_crl`] says.
#[derive(Debug, Clone)]
pub struct CrlRequest<'a> {
    /// The issuer ID (the intermediate's, or the root's for the CRL of CA certificates).
    pub issuer_id: &'a str,
    /// The shard (always 0 for the root).
    pub shard: u32,
    /// The cRLNumber.
    pub number: u64,
    /// thisUpdate.
    pub this_update: OffsetDateTime,
    /// nextUpdate.
    pub next_update: OffsetDateTime,
    /// Entries.
    pub entries: &'a [CrlEntry],
}

/// Issuer failures.
#[derive(Debug, thiserror::Error, Serialize, Deserialize)]
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
    /// A remote issuer could not be reached, or did not answer in time.
    #[error("issuer unavailable: {0}")]
    Unavailable(String),
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
    /// Who this issuer signs as (with several issuers: the default one).
    fn identity(&self) -> IssuerIdentity;
    /// Every issuer this signs as: active ones and retired ones that still sign CRLs and OCSP
    /// responses for their certificates.
    fn identities(&self) -> Vec<IssuerIdentity> {
        vec![self.identity()]
    }
    /// Signs a CRL: a shard of the intermediate's (`req.issuer_id` is
    /// [`IssuerIdentity::issuer_id`]) or the root's CRL of CA certificates
    /// ([`IssuerIdentity::root_id`], shard 0). Refuses (`InvalidRequest`) any other scope, and
    /// (`Lint`) a CRL with an error finding.
    async fn sign_crl(&self, req: &CrlRequest<'_>) -> Result<Vec<u8>, IssuerError>;
    /// Builds and signs one OCSP response (`OCSPResponse` DER) saying what `params` say about a
    /// certificate of this issuer. Refuses (`InvalidRequest`) a CertID that does not name
    /// [`IssuerIdentity::issuer_id`]'s certificate: the issuer vouches only for its own.
    async fn sign_ocsp(&self, params: &ResponseParams<'_>) -> Result<Vec<u8>, IssuerError>;
}
