//! OCSP for the CA (RFC 6960 with the RFC 5019 lightweight profile): the ASN.1 structures written
//! by hand on `der` 0.8, request parsing with clear refusals, CertID matching against an issuer,
//! and response building around a signature the caller provides. No I/O, no keys: the issuer
//! signs (see `cairn-issuer`), the responder in `cairn serve` looks statuses up and caches.

pub mod asn1;
mod hash;
mod request;
mod response;

pub use hash::{HashAlgorithm, IssuerHashes, key_hash_sha1};
pub use request::{CertStatusRequest, MAX_REQUEST_SIZE, RequestError, parse_request};
pub use response::{
    BuildError, CertStatus, ParsedResponse, ResponseParams, ResponseSigner, error_response,
    parse_response, sign_response,
};

use der::asn1::ObjectIdentifier;

/// id-pkix-ocsp-basic (RFC 6960 §4.2.1): the only response type.
pub const OID_OCSP_BASIC: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.1.1");
/// id-pkix-ocsp-nonce (RFC 6960 §4.4.1, RFC 8954).
pub const OID_OCSP_NONCE: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.1.2");
/// id-pkix-ocsp-nocheck (RFC 6960 §4.2.2.2.1): a delegated responder's certificate is not checked.
pub const OID_OCSP_NOCHECK: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.1.5");
/// id-kp-OCSPSigning (RFC 5280 §4.2.1.12): the EKU of a delegated responder.
pub const OID_KP_OCSP_SIGNING: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.3.9");
/// id-sha1.
pub const OID_SHA1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.14.3.2.26");
/// id-sha256.
pub const OID_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1");
