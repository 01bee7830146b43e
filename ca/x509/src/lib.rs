//! X.509 for the CA: key pairs, CSR parsing and checks, certificate and CA hierarchy building on
//! x509-cert/der 0.8 and aws-lc-rs. No I/O.

pub mod cert;
pub mod csr;
pub mod key;
pub mod parse;

pub use cert::{
    BuildError, CaCertificate, EndEntityParams, EndEntityProfile, build_end_entity,
    build_intermediate, build_root, build_tls_server_cert, random_serial,
};
pub use csr::{CsrError, MAX_CSR_NAMES, ParsedCsr, parse_csr};
pub use key::{KeyAlgorithm, KeyError, SigningKey, spki_jwk_thumbprint};
pub use parse::{CertInfo, ParseError, is_signed_by, pem_certificates, pem_decode_all, pem_encode};
