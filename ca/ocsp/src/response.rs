//! OCSP response building (RFC 6960 §4.2, RFC 5019 §2.2): a `BasicOCSPResponse` with one
//! `SingleResponse`, the responder named by key hash, nextUpdate always present, the nonce
//! echoed when asked; and the unsigned error responses.

use crate::OID_OCSP_BASIC;
use crate::asn1::{
    BasicOcspResponse, CertId, CertStatusAsn1, OcspResponse, OcspResponseStatus, ResponderId,
    ResponseBytes, ResponseData, RevokedInfo, SingleResponse, Version,
};
use der::asn1::{Any, BitString, GeneralizedTime, Null, OctetString};
use der::{DateTime, Decode, Encode};
use spki::AlgorithmIdentifierOwned;
use time::OffsetDateTime;
use x509_cert::ext::Extension;
use x509_cert::ext::pkix::crl::CrlReason;

/// Response building failures (all on the responder's side).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// DER encoding failed.
    #[error("encoding: {0}")]
    Encoding(#[from] der::Error),
    /// A time is before 1970 or after 9999.
    #[error("time out of range")]
    InvalidTime,
    /// thisUpdate is not before nextUpdate.
    #[error("nextUpdate must be later than thisUpdate")]
    InvalidValidity,
    /// The signer failed.
    #[error("signing failed")]
    Signing,
}

/// A certificate's status as the responder knows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CertStatus {
    /// Issued by this CA and not revoked.
    Good,
    /// Revoked at `revoked_at`, for `reason` (omitted when `None`).
    Revoked {
        /// When.
        revoked_at: OffsetDateTime,
        /// The CRLReason code.
        reason: Option<CrlReason>,
    },
    /// Not a certificate this CA issued.
    Unknown,
}

impl CertStatus {
    /// `good`, `revoked` or `unknown`.
    pub fn as_str(&self) -> &'static str {
        match self {
            CertStatus::Good => "good",
            CertStatus::Revoked { .. } => "revoked",
            CertStatus::Unknown => "unknown",
        }
    }
}

/// What one response says.
#[derive(Clone, Debug)]
pub struct ResponseParams<'a> {
    /// The CertID to answer for (the request's, echoed).
    pub cert_id: &'a CertId,
    /// The status.
    pub status: CertStatus,
    /// producedAt.
    pub produced_at: OffsetDateTime,
    /// thisUpdate.
    pub this_update: OffsetDateTime,
    /// nextUpdate.
    pub next_update: OffsetDateTime,
    /// The request's nonce extension, to echo.
    pub nonce: Option<&'a Extension>,
}

/// The key that signs responses: the issuing CA's own key or a delegated responder's. It signs
/// only `ResponseData` built by [`sign_response`].
pub trait ResponseSigner {
    /// SHA-1 of the signer's subjectPublicKey value (the `ResponderID` byKey).
    fn responder_key_hash(&self) -> [u8; 20];
    /// The `AlgorithmIdentifier` of [`ResponseSigner::sign`]'s signatures.
    fn signature_algorithm(&self) -> AlgorithmIdentifierOwned;
    /// Signs the DER of a `ResponseData`.
    fn sign(&self, tbs_response_data: &[u8]) -> Result<Vec<u8>, BuildError>;
    /// Certificates to include (a delegated responder's certificate; none for the CA itself).
    fn certificates(&self) -> &[Vec<u8>];
}

/// Builds and signs a successful `OCSPResponse` (DER).
pub fn sign_response(
    params: &ResponseParams<'_>,
    signer: &dyn ResponseSigner,
) -> Result<Vec<u8>, BuildError> {
    if params.this_update >= params.next_update {
        return Err(BuildError::InvalidValidity);
    }
    let cert_status = match params.status {
        CertStatus::Good => CertStatusAsn1::Good(Null),
        CertStatus::Unknown => CertStatusAsn1::Unknown(Null),
        CertStatus::Revoked { revoked_at, reason } => CertStatusAsn1::Revoked(RevokedInfo {
            revocation_time: generalized_time(revoked_at)?,
            revocation_reason: reason,
        }),
    };
    let tbs = ResponseData {
        version: Version::V1,
        responder_id: ResponderId::ByKey(OctetString::new(signer.responder_key_hash().to_vec())?),
        produced_at: generalized_time(params.produced_at)?,
        responses: vec![SingleResponse {
            cert_id: params.cert_id.clone(),
            cert_status,
            this_update: generalized_time(params.this_update)?,
            next_update: Some(generalized_time(params.next_update)?),
            single_extensions: None,
        }],
        response_extensions: params.nonce.map(|n| vec![n.clone()]),
    };
    let tbs_der = tbs.to_der()?;
    let signature = signer.sign(&tbs_der)?;
    let certs = signer.certificates();
    let basic = BasicOcspResponse {
        tbs_response_data: tbs,
        signature_algorithm: signer.signature_algorithm(),
        signature: BitString::from_bytes(&signature)?,
        certs: if certs.is_empty() {
            None
        } else {
            Some(
                certs
                    .iter()
                    .map(|c| Any::from_der(c))
                    .collect::<Result<_, _>>()?,
            )
        },
    };
    let response = OcspResponse {
        response_status: OcspResponseStatus::Successful,
        response_bytes: Some(ResponseBytes {
            response_type: OID_OCSP_BASIC,
            response: OctetString::new(basic.to_der()?)?,
        }),
    };
    Ok(response.to_der()?)
}

/// An unsigned `OCSPResponse` with only an error status (`malformedRequest`, `internalError`,
/// `tryLater`, `sigRequired`, `unauthorized`). Never fails: the encoding is fixed.
pub fn error_response(status: OcspResponseStatus) -> Vec<u8> {
    // SEQUENCE { ENUMERATED status }
    vec![0x30, 0x03, 0x0a, 0x01, status as u8]
}

/// A decoded `OCSPResponse`, for checking what was built (tests, tooling).
#[derive(Clone, Debug)]
pub struct ParsedResponse {
    /// The response status.
    pub status: OcspResponseStatus,
    /// The basic response (present when `successful`).
    pub basic: Option<BasicOcspResponse>,
}

impl ParsedResponse {
    /// The DER of `ResponseData`, which the signature covers.
    pub fn tbs_response_data_der(&self) -> Option<Vec<u8>> {
        self.basic
            .as_ref()
            .and_then(|b| b.tbs_response_data.to_der().ok())
    }

    /// The one `SingleResponse`, when there is exactly one.
    pub fn single(&self) -> Option<&SingleResponse> {
        match self
            .basic
            .as_ref()
            .map(|b| b.tbs_response_data.responses.as_slice())
        {
            Some([one]) => Some(one),
            _ => None,
        }
    }
}

/// Decodes an `OCSPResponse` (DER); a `basic` response type is decoded too, others refused.
pub fn parse_response(der: &[u8]) -> Result<ParsedResponse, der::Error> {
    let response = OcspResponse::from_der(der)?;
    let basic = match response.response_bytes {
        None => None,
        Some(bytes) => {
            if bytes.response_type != OID_OCSP_BASIC {
                return Err(der::Tag::ObjectIdentifier.value_error().into());
            }
            Some(BasicOcspResponse::from_der(bytes.response.as_bytes())?)
        }
    };
    Ok(ParsedResponse {
        status: response.response_status,
        basic,
    })
}

/// `GeneralizedTime` in whole seconds (RFC 5280 §4.1.2.5.2 form, which RFC 6960 follows).
fn generalized_time(t: OffsetDateTime) -> Result<GeneralizedTime, BuildError> {
    let secs = u64::try_from(t.unix_timestamp()).map_err(|_| BuildError::InvalidTime)?;
    let dt = DateTime::from_unix_duration(std::time::Duration::from_secs(secs))
        .map_err(|_| BuildError::InvalidTime)?;
    Ok(GeneralizedTime::from_date_time(dt))
}

/// The `OffsetDateTime` of a `GeneralizedTime`.
pub(crate) fn to_offset_date_time(t: &GeneralizedTime) -> Option<OffsetDateTime> {
    let secs = i64::try_from(t.to_unix_duration().as_secs()).ok()?;
    OffsetDateTime::from_unix_timestamp(secs).ok()
}

impl SingleResponse {
    /// thisUpdate as an `OffsetDateTime`.
    pub fn this_update_time(&self) -> Option<OffsetDateTime> {
        to_offset_date_time(&self.this_update)
    }

    /// nextUpdate as an `OffsetDateTime`.
    pub fn next_update_time(&self) -> Option<OffsetDateTime> {
        self.next_update.as_ref().and_then(to_offset_date_time)
    }
}
