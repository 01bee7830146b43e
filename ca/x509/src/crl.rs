//! CRL building (RFC 5280 §5, Baseline Requirements §7.2): a v2 CRL signed by a CA certificate,
//! with authorityKeyIdentifier, cRLNumber, optionally a critical issuingDistributionPoint (for a
//! CRL shard), and one entry per revoked certificate with its reasonCode (absent for
//! `unspecified`, as the Baseline Requirements want).

use crate::cert::{BuildError, CaCertificate, authority_key_id, extension, uri, x509_time};
use const_oid::db::rfc5280::ID_CE_ISSUING_DISTRIBUTION_POINT;
use der::asn1::{AnyRef, BitString, OctetString, Uint};
use der::{Decode, Encode, Sequence};
use spki::AlgorithmIdentifierOwned;
use time::OffsetDateTime;
use x509_cert::certificate::Version;
use x509_cert::ext::pkix::crl::dp::IssuingDistributionPoint;
use x509_cert::ext::pkix::name::DistributionPointName;
use x509_cert::ext::pkix::{CrlNumber, CrlReason};
use x509_cert::ext::{Extension, Extensions};
use x509_cert::name::Name;
use x509_cert::serial_number::SerialNumber;
use x509_cert::time::Time;

/// One revoked certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrlEntry {
    /// The serial's big-endian bytes (positive, at most 20 octets).
    pub serial: Vec<u8>,
    /// When it was revoked.
    pub revoked_at: OffsetDateTime,
    /// The RFC 5280 CRLReason code; 0 (`unspecified`) is encoded as no reasonCode.
    pub reason: u8,
}

/// What a CRL says.
#[derive(Debug, Clone)]
pub struct CrlParams<'a> {
    /// The cRLNumber (monotonic per CRL scope).
    pub number: u64,
    /// thisUpdate.
    pub this_update: OffsetDateTime,
    /// nextUpdate.
    pub next_update: OffsetDateTime,
    /// The URL that certificates name in their CRL Distribution Points, written into a
    /// critical issuingDistributionPoint. `None`: a complete CRL without one.
    pub distribution_point: Option<&'a str>,
    /// With a distribution point: the CRL covers only CA certificates (a root's CRL, an ARL)
    /// instead of only end-entity certificates (a shard).
    pub only_ca_certs: bool,
    /// The entries, in the order to encode them.
    pub entries: &'a [CrlEntry],
}

/// TBSCertList as this crate emits it: always v2, nextUpdate and extensions present.
#[derive(Sequence)]
struct TbsCertListOut {
    version: Version,
    signature: AlgorithmIdentifierOwned,
    issuer: Name,
    this_update: Time,
    next_update: Time,
    #[asn1(optional = "true")]
    revoked_certificates: Option<Vec<RevokedOut>>,
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT")]
    crl_extensions: Extensions,
}

#[derive(Sequence)]
struct RevokedOut {
    user_certificate: SerialNumber,
    revocation_date: Time,
    #[asn1(optional = "true")]
    crl_entry_extensions: Option<Extensions>,
}

#[derive(Sequence)]
struct CertificateListOut<'a> {
    tbs_cert_list: AnyRef<'a>,
    signature_algorithm: AlgorithmIdentifierOwned,
    signature: BitString,
}

/// Builds and signs a CRL with `issuer`'s key.
pub fn build_crl(issuer: &CaCertificate, params: &CrlParams<'_>) -> Result<Vec<u8>, BuildError> {
    if params.this_update >= params.next_update {
        return Err(BuildError::InvalidValidity);
    }
    let mut revoked = Vec::with_capacity(params.entries.len());
    for entry in params.entries {
        revoked.push(revoked_entry(entry)?);
    }
    let number = params.number.to_be_bytes();
    let mut exts = vec![
        extension(false, &authority_key_id(issuer)?)?,
        extension(false, &CrlNumber(Uint::new(&number)?))?,
    ];
    if let Some(url) = params.distribution_point {
        let idp = IssuingDistributionPoint {
            distribution_point: Some(DistributionPointName::FullName(vec![uri(url)?])),
            only_contains_user_certs: !params.only_ca_certs,
            only_contains_ca_certs: params.only_ca_certs,
            only_some_reasons: None,
            indirect_crl: false,
            only_contains_attribute_certs: false,
        };
        // x509-cert 0.3.0 associates the wrong OID with IssuingDistributionPoint.
        exts.push(Extension {
            extn_id: ID_CE_ISSUING_DISTRIBUTION_POINT,
            critical: true,
            extn_value: OctetString::new(idp.to_der()?)?,
        });
    }
    let key = issuer.key();
    let tbs = TbsCertListOut {
        version: Version::V2,
        signature: key.signature_algorithm(),
        issuer: issuer.subject().clone(),
        this_update: x509_time(params.this_update)?,
        next_update: x509_time(params.next_update)?,
        revoked_certificates: (!revoked.is_empty()).then_some(revoked),
        crl_extensions: exts,
    };
    let tbs_der = tbs.to_der()?;
    let signature = key.sign(&tbs_der).map_err(BuildError::Signing)?;
    let crl = CertificateListOut {
        tbs_cert_list: AnyRef::from_der(&tbs_der)?,
        signature_algorithm: key.signature_algorithm(),
        signature: BitString::from_bytes(&signature)?,
    };
    Ok(crl.to_der()?)
}

fn revoked_entry(entry: &CrlEntry) -> Result<RevokedOut, BuildError> {
    let serial = &entry.serial;
    if serial.is_empty()
        || serial.len() > 20
        || serial.iter().all(|b| *b == 0)
        || serial[0] & 0x80 != 0
    {
        return Err(BuildError::InvalidSerial);
    }
    let reason = match entry.reason {
        0 => None,
        1 => Some(CrlReason::KeyCompromise),
        2 => Some(CrlReason::CaCompromise),
        3 => Some(CrlReason::AffiliationChanged),
        4 => Some(CrlReason::Superseded),
        5 => Some(CrlReason::CessationOfOperation),
        6 => Some(CrlReason::CertificateHold),
        8 => Some(CrlReason::RemoveFromCRL),
        9 => Some(CrlReason::PrivilegeWithdrawn),
        10 => Some(CrlReason::AaCompromise),
        r => return Err(BuildError::InvalidReason(r)),
    };
    Ok(RevokedOut {
        user_certificate: SerialNumber::new(serial).map_err(|_| BuildError::InvalidSerial)?,
        revocation_date: x509_time(entry.revoked_at)?,
        crl_entry_extensions: match reason {
            Some(r) => Some(vec![extension(false, &r)?]),
            None => None,
        },
    })
}
