//! Issuer: the only component that holds CA signing keys. It creates or loads the CA hierarchy
//! (root and intermediate) and signs end-entity certificates from a validated request, CRLs and
//! OCSP responses. [`LocalIssuer`] implements [`CertificateIssuer`] (the contract, defined in
//! `cairn-api` with its requests and [`IssuerError`]) in-process.

pub mod hierarchy;
pub mod local;
pub mod ocsp;
pub mod offline;
pub mod set;
pub mod tls;

pub use cairn_api::issuer::{
    CertUsage, CertificateIssuer, CrlRequest, IssueRequest, IssuedCertificate, IssuerError,
    IssuerIdentity,
};
pub use cairn_x509::{CtExtension, EndEntityProfile, KeyAlgorithm};
pub use hierarchy::{CaHierarchy, HierarchyOptions, RootCa};
pub use local::{DEFAULT_CRL_SHARDS, LocalIssuer, crl_shard_of};
pub use ocsp::OcspSignerKind;
pub use offline::{KeySource, OfflineRootConfig};
pub use set::IssuerSet;
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
