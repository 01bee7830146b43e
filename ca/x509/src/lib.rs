//! X.509 for the CA: key pairs, CSR parsing and checks, certificate and CA hierarchy building on
//! x509-cert/der 0.8 and aws-lc-rs. No I/O. The pieces the CT log needs too (accepted key types,
//! signature checks, PEM) come from `cairn-pki` and are re-exported here.

pub mod cert;
pub mod crl;
pub mod csr;
pub mod key;
pub mod parse;

pub use cairn_pki::{PemError, is_signed_by, pem_certificates, pem_decode_all, pem_encode};
pub use cert::{
    BuildError, CaCertificate, CaExtras, CtExtension, EndEntityParams, EndEntityProfile,
    OID_CT_POISON, OID_CT_SCT_LIST, build_crl_signer, build_end_entity, build_end_entity_ct,
    build_intermediate, build_intermediate_with, build_ocsp_responder, build_root, build_root_with,
    build_tls_server_cert, random_serial,
};
pub use crl::{CrlEntry, CrlParams, build_crl};
pub use csr::{CsrError, MAX_CSR_NAMES, ParsedCsr, parse_csr};
pub use key::{KeyAlgorithm, KeyError, SigningKey, spki_jwk_thumbprint};
pub use parse::{CertInfo, ParseError};
