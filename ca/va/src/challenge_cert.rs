//! Tolerant parsing of the certificates a validation peer presents: only the parts validation
//! needs (the subject public key for the handshake signature; the extensions for RFC 8737's
//! subjectAltName and acmeIdentifier checks).
//!
//! RFC 8737 puts no requirement on a challenge certificate's validity, serial, issuer or
//! subject, and the challenge servers of Pebble and Boulder write zero (year 1) validity dates,
//! which a strict X.509 decoder refuses (`der` refuses times before 1970). So those fields are
//! taken as opaque DER values here and never interpreted.

use der::asn1::{AnyRef, BitStringRef};
use der::{Decode, Encode, Sequence};
use x509_cert::ext::Extension;
use x509_cert::spki::SubjectPublicKeyInfoRef;

/// `Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm, signatureValue }`
#[derive(Sequence)]
struct LaxCertificate<'a> {
    tbs: LaxTbsCertificate<'a>,
    signature_algorithm: AnyRef<'a>,
    signature: AnyRef<'a>,
}

/// RFC 5280 §4.1's TBSCertificate with every field validation does not use left opaque.
#[derive(Sequence)]
struct LaxTbsCertificate<'a> {
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT", optional = "true")]
    version: Option<AnyRef<'a>>,
    serial_number: AnyRef<'a>,
    signature: AnyRef<'a>,
    issuer: AnyRef<'a>,
    validity: AnyRef<'a>,
    subject: AnyRef<'a>,
    subject_public_key_info: SubjectPublicKeyInfoRef<'a>,
    #[asn1(context_specific = "1", tag_mode = "IMPLICIT", optional = "true")]
    issuer_unique_id: Option<BitStringRef<'a>>,
    #[asn1(context_specific = "2", tag_mode = "IMPLICIT", optional = "true")]
    subject_unique_id: Option<BitStringRef<'a>>,
    #[asn1(context_specific = "3", tag_mode = "EXPLICIT", optional = "true")]
    extensions: Option<Vec<Extension>>,
}

/// What validation reads from a peer certificate.
#[derive(Debug, Clone)]
pub(crate) struct ChallengeCertificate {
    /// The DER SubjectPublicKeyInfo.
    pub(crate) spki_der: Vec<u8>,
    /// The public key algorithm identifier's contents (inside the SEQUENCE, as webpki names
    /// algorithms).
    pub(crate) spki_alg_id: Vec<u8>,
    /// The raw public key bits.
    pub(crate) public_key: Vec<u8>,
    /// The extensions, in order (empty when there are none).
    pub(crate) extensions: Vec<Extension>,
}

/// Parses a certificate, ignoring validity, serial, names and signature.
pub(crate) fn parse(der: &[u8]) -> Result<ChallengeCertificate, der::Error> {
    let cert = LaxCertificate::from_der(der)?;
    let spki = cert.tbs.subject_public_key_info;
    let alg_der = spki.algorithm.to_der()?;
    let spki_alg_id = AnyRef::from_der(&alg_der)?.value().to_vec();
    let public_key = spki
        .subject_public_key
        .as_bytes()
        .ok_or(der::Tag::BitString.value_error())?
        .to_vec();
    Ok(ChallengeCertificate {
        spki_der: spki.to_der()?,
        spki_alg_id,
        public_key,
        extensions: cert.tbs.extensions.unwrap_or_default(),
    })
}
