//! OCSP request parsing (RFC 6960 §4.1) under the RFC 5019 profile: one certificate per
//! request, SHA-1 or SHA-256 CertIDs, signatures and unknown non-critical extensions ignored.

use crate::OID_OCSP_NONCE;
use crate::asn1::{CertId, OcspRequest, OcspResponseStatus};
use crate::hash::HashAlgorithm;
use der::Decode;
use der::asn1::{ObjectIdentifier, OctetString};
use x509_cert::ext::Extension;

/// The largest request accepted, in octets. A SHA-256 CertID request with a nonce is under 150
/// octets; a signed one with a certificate a few kilobytes.
pub const MAX_REQUEST_SIZE: usize = 8 * 1024;

/// Why a request is refused. Every variant is the client's fault and answers `malformedRequest`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RequestError {
    /// No bytes at all.
    #[error("empty OCSP request")]
    Empty,
    /// More than [`MAX_REQUEST_SIZE`] octets.
    #[error("OCSP request of {0} octets is larger than {MAX_REQUEST_SIZE}")]
    TooLarge(usize),
    /// Not a DER `OCSPRequest`.
    #[error("OCSP request does not decode: {0}")]
    Decode(#[source] der::Error),
    /// The request list is empty.
    #[error("OCSP request names no certificate")]
    NoRequests,
    /// More than one certificate in one request (RFC 5019 §2.1.1 allows one).
    #[error("OCSP request names {0} certificates; one per request is answered")]
    TooManyRequests(usize),
    /// The CertID hash is neither SHA-1 nor SHA-256.
    #[error("CertID hash algorithm {0} is not supported (SHA-1 or SHA-256)")]
    UnsupportedHashAlgorithm(ObjectIdentifier),
    /// The CertID hash algorithm has parameters other than NULL.
    #[error("CertID hash algorithm parameters must be NULL or absent")]
    HashParameters,
    /// A CertID hash is not as long as its algorithm's output.
    #[error("CertID hashes must be {expected} octets for {algorithm}")]
    HashLength {
        /// The algorithm named.
        algorithm: &'static str,
        /// Its output length.
        expected: usize,
    },
    /// The serial number is zero or negative.
    #[error("CertID serial number must be positive")]
    BadSerial,
    /// A critical extension the responder does not understand (RFC 6960 §4.4).
    #[error("unsupported critical extension {0}")]
    UnsupportedCriticalExtension(ObjectIdentifier),
    /// The nonce is not an OCTET STRING of 1 to 32 octets (RFC 8954 §2.1).
    #[error("the nonce must be an OCTET STRING of 1 to 32 octets")]
    BadNonce,
}

impl RequestError {
    /// The `OCSPResponseStatus` to answer with.
    pub fn response_status(&self) -> OcspResponseStatus {
        OcspResponseStatus::MalformedRequest
    }
}

/// A parsed request: the one certificate asked about, and the nonce extension if any.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertStatusRequest {
    /// The CertID as sent (echoed in the answer).
    pub cert_id: CertId,
    /// Its hash algorithm.
    pub hash_algorithm: HashAlgorithm,
    /// The serial's magnitude, big-endian, without leading zero octets.
    pub serial: Vec<u8>,
    nonce: Option<Extension>,
}

impl CertStatusRequest {
    /// The serial in lowercase hex (Cairn's `Serial` form).
    pub fn serial_hex(&self) -> String {
        self.serial.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The nonce extension to echo, checked as RFC 8954 requires of responders that support
    /// nonces (an OCTET STRING of 1 to 32 octets). `Ok(None)` when the request has none.
    pub fn nonce(&self) -> Result<Option<&Extension>, RequestError> {
        let Some(ext) = &self.nonce else {
            return Ok(None);
        };
        let inner =
            OctetString::from_der(ext.extn_value.as_bytes()).map_err(|_| RequestError::BadNonce)?;
        if inner.as_bytes().is_empty() || inner.as_bytes().len() > 32 {
            return Err(RequestError::BadNonce);
        }
        Ok(Some(ext))
    }
}

/// Parses a DER `OCSPRequest` and checks it against the RFC 5019 profile.
pub fn parse_request(der: &[u8]) -> Result<CertStatusRequest, RequestError> {
    if der.is_empty() {
        return Err(RequestError::Empty);
    }
    if der.len() > MAX_REQUEST_SIZE {
        return Err(RequestError::TooLarge(der.len()));
    }
    let request = OcspRequest::from_der(der).map_err(RequestError::Decode)?;
    let tbs = request.tbs_request;
    let mut list = tbs.request_list;
    let single = match list.len() {
        0 => return Err(RequestError::NoRequests),
        1 => list.remove(0),
        n => return Err(RequestError::TooManyRequests(n)),
    };
    let mut nonce = None;
    for ext in tbs.request_extensions.iter().flatten() {
        if ext.extn_id == OID_OCSP_NONCE {
            nonce = Some(ext.clone());
        } else if ext.critical {
            return Err(RequestError::UnsupportedCriticalExtension(ext.extn_id));
        }
    }
    if let Some(ext) = single
        .single_request_extensions
        .iter()
        .flatten()
        .find(|e| e.critical)
    {
        return Err(RequestError::UnsupportedCriticalExtension(ext.extn_id));
    }
    let cert_id = single.req_cert;
    let alg = &cert_id.hash_algorithm;
    let hash_algorithm =
        HashAlgorithm::from_oid(&alg.oid).ok_or(RequestError::UnsupportedHashAlgorithm(alg.oid))?;
    if alg.parameters.as_ref().is_some_and(|p| !p.is_null()) {
        return Err(RequestError::HashParameters);
    }
    let expected = hash_algorithm.output_len();
    if cert_id.issuer_name_hash.as_bytes().len() != expected
        || cert_id.issuer_key_hash.as_bytes().len() != expected
    {
        return Err(RequestError::HashLength {
            algorithm: hash_algorithm.as_str(),
            expected,
        });
    }
    let raw = cert_id.serial_number.as_bytes();
    if raw.first().is_some_and(|b| b & 0x80 != 0) {
        return Err(RequestError::BadSerial);
    }
    let start = raw.iter().position(|b| *b != 0).unwrap_or(raw.len());
    let serial = raw[start..].to_vec();
    if serial.is_empty() {
        return Err(RequestError::BadSerial);
    }
    Ok(CertStatusRequest {
        cert_id,
        hash_algorithm,
        serial,
        nonce,
    })
}
