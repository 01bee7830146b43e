//! Lenient DER models of certificates and CRLs: they decode what the strict x509-cert types
//! refuse (any version number, negative or long serials, unique identifiers) so the linter can
//! name the problem instead of failing, and they re-encode byte for byte.

use der::asn1::{AnyRef, BitStringRef, IntRef};
use der::{Decode, Encode, Sequence};
use spki::{AlgorithmIdentifierRef, SubjectPublicKeyInfoRef};
use x509_cert::ext::Extension;
use x509_cert::name::Name;
use x509_cert::time::Time;

/// `Certificate` with the signed part decoded (RFC 5280 §4.1).
#[derive(Clone, Debug, Sequence)]
pub(crate) struct CertificateModel<'a> {
    pub(crate) tbs_certificate: TbsCertificateModel<'a>,
    pub(crate) signature_algorithm: AlgorithmIdentifierRef<'a>,
    pub(crate) signature: BitStringRef<'a>,
}

/// `TBSCertificate` (RFC 5280 §4.1) with every field kept as it was encoded.
#[derive(Clone, Debug, Sequence)]
pub(crate) struct TbsCertificateModel<'a> {
    /// The raw version number (absent means v1).
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT", optional = "true")]
    pub(crate) version: Option<IntRef<'a>>,
    pub(crate) serial_number: IntRef<'a>,
    pub(crate) signature: AlgorithmIdentifierRef<'a>,
    pub(crate) issuer: Name,
    pub(crate) validity: ValidityModel,
    pub(crate) subject: Name,
    pub(crate) subject_public_key_info: SubjectPublicKeyInfoRef<'a>,
    #[asn1(context_specific = "1", tag_mode = "IMPLICIT", optional = "true")]
    pub(crate) issuer_unique_id: Option<BitStringRef<'a>>,
    #[asn1(context_specific = "2", tag_mode = "IMPLICIT", optional = "true")]
    pub(crate) subject_unique_id: Option<BitStringRef<'a>>,
    #[asn1(context_specific = "3", tag_mode = "EXPLICIT", optional = "true")]
    pub(crate) extensions: Option<Vec<Extension>>,
}

/// `Validity`, without x509-cert's re-encoding of dates.
#[derive(Clone, Debug, Sequence)]
pub(crate) struct ValidityModel {
    pub(crate) not_before: Time,
    pub(crate) not_after: Time,
}

/// `CertificateList` (RFC 5280 §5.1).
#[derive(Clone, Debug, Sequence)]
pub(crate) struct CertificateListModel<'a> {
    pub(crate) tbs_cert_list: TbsCertListModel<'a>,
    pub(crate) signature_algorithm: AlgorithmIdentifierRef<'a>,
    pub(crate) signature: BitStringRef<'a>,
}

/// `TBSCertList` (RFC 5280 §5.1) with an optional, raw version.
#[derive(Clone, Debug, Sequence)]
pub(crate) struct TbsCertListModel<'a> {
    pub(crate) version: Option<IntRef<'a>>,
    pub(crate) signature: AlgorithmIdentifierRef<'a>,
    pub(crate) issuer: Name,
    pub(crate) this_update: Time,
    pub(crate) next_update: Option<Time>,
    pub(crate) revoked_certificates: Option<Vec<RevokedEntryModel<'a>>>,
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT", optional = "true")]
    pub(crate) crl_extensions: Option<Vec<Extension>>,
}

/// One `revokedCertificates` entry.
#[derive(Clone, Debug, Sequence)]
pub(crate) struct RevokedEntryModel<'a> {
    pub(crate) user_certificate: IntRef<'a>,
    pub(crate) revocation_date: Time,
    pub(crate) crl_entry_extensions: Option<Vec<Extension>>,
}

/// The DER of the TBSCertificate of `cert_der`, if it is a certificate.
pub(crate) fn tbs_der(cert_der: &[u8]) -> Option<Vec<u8>> {
    #[derive(Sequence)]
    struct Outer<'a> {
        tbs: AnyRef<'a>,
        alg: AnyRef<'a>,
        sig: AnyRef<'a>,
    }
    // DER lengths are canonical, so re-encoding the element gives back the original bytes.
    Outer::from_der(cert_der).ok()?.tbs.to_der().ok()
}
