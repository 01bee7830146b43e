//! Certificate building: the CA hierarchy (root, intermediate) and end-entity TLS certificates,
//! encoded with x509-cert/der and signed with a [`SigningKey`].

use crate::key::{KeyAlgorithm, KeyError, SigningKey};
use crate::parse::{CertInfo, ParseError};
use cairn_core::{Identifier, IdentifierType, Serial};
use cairn_pki::pem_encode;
use const_oid::AssociatedOid;
use const_oid::db::rfc5912::{ID_AD_CA_ISSUERS, ID_AD_OCSP, ID_KP_CLIENT_AUTH, ID_KP_SERVER_AUTH};
use der::asn1::{Any, BitString, Ia5String, ObjectIdentifier, OctetString, UtcTime, Utf8StringRef};
use der::asn1::{AnyRef, GeneralizedTime};
use der::flagset::FlagSet;
use der::{DateTime, Decode, Encode, Sequence};
use serde::{Deserialize, Serialize};
use spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned, SubjectPublicKeyInfoRef};
use std::fmt;
use std::net::IpAddr;
use std::time::Duration;
use time::OffsetDateTime;
use x509_cert::attr::AttributeTypeAndValue;
use x509_cert::certificate::Version;
use x509_cert::ext::pkix::crl::dp::DistributionPoint;
use x509_cert::ext::pkix::name::{DistributionPointName, GeneralName};
use x509_cert::ext::pkix::{
    AccessDescription, AuthorityInfoAccessSyntax, AuthorityKeyIdentifier, BasicConstraints,
    CertificatePolicies, CrlDistributionPoints, ExtendedKeyUsage, KeyUsage, KeyUsages,
    SubjectAltName, SubjectKeyIdentifier, certpolicy::PolicyInformation,
};
use x509_cert::ext::{Extension, Extensions};
use x509_cert::name::{Name, RdnSequence, RelativeDistinguishedName};
use x509_cert::serial_number::SerialNumber;
use x509_cert::time::{Time, Validity};

/// CA/Browser Forum domain-validated certificate policy.
const OID_DOMAIN_VALIDATED: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.23.140.1.2.1");
/// commonName.
const OID_COMMON_NAME: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.4.3");
/// countryName.
const OID_COUNTRY: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.4.6");
/// organizationName.
const OID_ORGANIZATION: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.4.10");

/// Certificate building failures.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// The serial is empty, zero, negative or longer than 20 octets.
    #[error("invalid serial number")]
    InvalidSerial,
    /// notBefore is not before notAfter, or a date is before 1970 or after 9999.
    #[error("invalid validity period")]
    InvalidValidity,
    /// The subject public key is malformed or of an unsupported type.
    #[error("subject public key: {0}")]
    PublicKey(#[source] KeyError),
    /// No identifiers were given for the SAN extension.
    #[error("no identifiers for the subjectAltName extension")]
    NoIdentifiers,
    /// An identifier cannot be encoded in a SAN (non-ASCII or empty DNS name, bad IP text).
    #[error("identifier {0:?} cannot be put in a certificate")]
    InvalidIdentifier(String),
    /// The common name is not one of the identifiers, or is longer than 64 characters.
    #[error("common name {0:?} must be one of the identifiers and at most 64 characters")]
    InvalidCommonName(String),
    /// A subject or issuer name attribute cannot be encoded.
    #[error("invalid name attribute {0:?}")]
    InvalidName(String),
    /// A CRL entry's reason code is not an RFC 5280 CRLReason.
    #[error("invalid CRL reason code {0}")]
    InvalidReason(u8),
    /// A CRL/OCSP/issuer URL is not an ASCII http(s) URL.
    #[error("invalid URL {0:?} in the profile")]
    InvalidUrl(String),
    /// The issuer certificate does not parse.
    #[error("issuer certificate: {0}")]
    InvalidIssuer(#[source] ParseError),
    /// The issuer certificate is not a CA certificate.
    #[error("issuer certificate is not a CA (basicConstraints cA is not set)")]
    IssuerNotCa,
    /// The private key does not belong to the certificate.
    #[error("the private key does not match the certificate's public key")]
    KeyMismatch,
    /// DER encoding failed.
    #[error("encoding: {0}")]
    Encoding(#[source] der::Error),
    /// The signing key failed to sign.
    #[error("signing: {0}")]
    Signing(#[source] KeyError),
}

impl From<der::Error> for BuildError {
    fn from(e: der::Error) -> Self {
        BuildError::Encoding(e)
    }
}

/// A CA certificate and its private key: the issuer of the certificates built below it.
pub struct CaCertificate {
    der: Vec<u8>,
    key: SigningKey,
    info: CertInfo,
    subject: Name,
    key_id: Vec<u8>,
}

impl fmt::Debug for CaCertificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CaCertificate")
            .field("common_name", &self.info.common_name)
            .field("serial", &hex::encode(&self.info.serial))
            .field("not_after", &self.info.not_after)
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl CaCertificate {
    /// Pairs a CA certificate (DER) with its private key, checking that the key matches the
    /// certificate and that the certificate is a CA.
    pub fn new(cert_der: Vec<u8>, key: SigningKey) -> Result<CaCertificate, BuildError> {
        let info = CertInfo::from_der(&cert_der).map_err(BuildError::InvalidIssuer)?;
        if info.spki_der != key.spki_der() {
            return Err(BuildError::KeyMismatch);
        }
        if !info.is_ca {
            return Err(BuildError::IssuerNotCa);
        }
        let subject = Name::from_der(&info.subject_der)?;
        let key_id = match &info.subject_key_id {
            Some(ski) => ski.clone(),
            None => key_identifier(&info.spki_der)?,
        };
        Ok(CaCertificate {
            der: cert_der,
            key,
            info,
            subject,
            key_id,
        })
    }

    /// The certificate, DER.
    pub fn der(&self) -> &[u8] {
        &self.der
    }

    /// The certificate as a PEM `CERTIFICATE` block.
    pub fn to_pem(&self) -> String {
        pem_encode("CERTIFICATE", &self.der)
    }

    /// The private key.
    pub fn key(&self) -> &SigningKey {
        &self.key
    }

    /// The parsed certificate.
    pub fn info(&self) -> &CertInfo {
        &self.info
    }

    /// The subject name (the issuer name of what this CA signs).
    pub(crate) fn subject(&self) -> &Name {
        &self.subject
    }
}

/// How end-entity certificates look.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EndEntityProfile {
    /// Put the requested common name in the subject (otherwise the subject is empty and the SAN
    /// extension is critical).
    pub include_common_name: bool,
    /// Add the clientAuth EKU next to serverAuth.
    pub client_auth: bool,
    /// Add keyEncipherment to keyUsage when the subject key is RSA (RSA key transport; TLS 1.3
    /// and ECDHE suites need only digitalSignature).
    pub rsa_key_encipherment: bool,
    /// CRL distribution point URL.
    pub crl_url: Option<String>,
    /// OCSP responder URL (authorityInfoAccess).
    pub ocsp_url: Option<String>,
    /// Issuer certificate URL (authorityInfoAccess caIssuers).
    pub issuer_url: Option<String>,
}

impl Default for EndEntityProfile {
    fn default() -> Self {
        EndEntityProfile {
            include_common_name: true,
            client_auth: false,
            rsa_key_encipherment: true,
            crl_url: None,
            ocsp_url: None,
            issuer_url: None,
        }
    }
}

/// RFC 6962 precertificate poison extension (critical, value ASN.1 NULL).
pub const OID_CT_POISON: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.11129.2.4.3");
/// RFC 6962 §3.3 embedded SignedCertificateTimestampList extension.
pub const OID_CT_SCT_LIST: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.3.6.1.4.1.11129.2.4.2");

/// The Certificate Transparency extension an end-entity certificate carries, always last, so a
/// precertificate and its final certificate differ only in that one extension (RFC 6962 §3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CtExtension<'a> {
    /// None (CT off, or a certificate that is not for the Web PKI).
    None,
    /// The critical poison extension: the certificate is a precertificate.
    Poison,
    /// The non-critical SCT list extension holding this TLS-encoded
    /// `SignedCertificateTimestampList` (wrapped in an OCTET STRING here).
    SctList(&'a [u8]),
}

/// What an end-entity certificate certifies.
#[derive(Debug, Clone, Copy)]
pub struct EndEntityParams<'a> {
    /// The serial's big-endian bytes (positive, at most 20 octets).
    pub serial: &'a [u8],
    /// Subject public key, SubjectPublicKeyInfo DER.
    pub spki_der: &'a [u8],
    /// The SAN entries, in the order to encode them.
    pub identifiers: &'a [Identifier],
    /// Subject common name (used only if the profile includes one; must be an identifier).
    pub common_name: Option<&'a str>,
    /// notBefore (truncated to the second).
    pub not_before: OffsetDateTime,
    /// notAfter (truncated to the second).
    pub not_after: OffsetDateTime,
}

/// Builds and signs an end-entity TLS server certificate: v3, subject CN or empty subject, SAN
/// (critical when the subject is empty), AKI/SKI, basicConstraints CA:false (critical), keyUsage
/// (critical; digitalSignature, plus keyEncipherment for RSA keys if the profile says so), EKU serverAuth (+clientAuth),
/// the domain-validated policy, and CRL DP / AIA when the profile has URLs.
pub fn build_end_entity(
    issuer: &CaCertificate,
    params: &EndEntityParams<'_>,
    profile: &EndEntityProfile,
) -> Result<Vec<u8>, BuildError> {
    build_end_entity_ct(issuer, params, profile, CtExtension::None)
}

/// [`build_end_entity`] with a Certificate Transparency extension appended after every other
/// extension: the poison for a precertificate, the SCT list for its final certificate.
pub fn build_end_entity_ct(
    issuer: &CaCertificate,
    params: &EndEntityParams<'_>,
    profile: &EndEntityProfile,
    ct: CtExtension<'_>,
) -> Result<Vec<u8>, BuildError> {
    let subject_alg = KeyAlgorithm::from_spki_der(params.spki_der)
        .map_err(|e| BuildError::PublicKey(e.into()))?;
    if params.identifiers.is_empty() {
        return Err(BuildError::NoIdentifiers);
    }
    let common_name = match params.common_name {
        Some(cn) if profile.include_common_name => {
            let listed = params.identifiers.iter().any(|id| id.value == cn);
            if !listed || cn.chars().count() > 64 {
                return Err(BuildError::InvalidCommonName(cn.to_string()));
            }
            Some(cn)
        }
        _ => None,
    };
    let subject = build_name(common_name, None, None)?;

    let mut usages: FlagSet<KeyUsages> = KeyUsages::DigitalSignature.into();
    if subject_alg.is_rsa() && profile.rsa_key_encipherment {
        usages |= KeyUsages::KeyEncipherment;
    }
    let mut ekus = vec![ID_KP_SERVER_AUTH];
    if profile.client_auth {
        ekus.push(ID_KP_CLIENT_AUTH);
    }
    let san = SubjectAltName(
        params
            .identifiers
            .iter()
            .map(general_name)
            .collect::<Result<_, _>>()?,
    );

    let mut exts = vec![
        extension(true, &KeyUsage(usages))?,
        extension(false, &ExtendedKeyUsage(ekus))?,
        extension(
            true,
            &BasicConstraints {
                ca: false,
                path_len_constraint: None,
            },
        )?,
        extension(false, &subject_key_id(params.spki_der)?)?,
        extension(false, &authority_key_id(issuer)?)?,
    ];
    let mut access = Vec::new();
    if let Some(url) = &profile.ocsp_url {
        access.push(AccessDescription {
            access_method: ID_AD_OCSP,
            access_location: uri(url)?,
        });
    }
    if let Some(url) = &profile.issuer_url {
        access.push(AccessDescription {
            access_method: ID_AD_CA_ISSUERS,
            access_location: uri(url)?,
        });
    }
    if !access.is_empty() {
        exts.push(extension(false, &AuthorityInfoAccessSyntax(access))?);
    }
    exts.push(extension(subject.is_empty(), &san)?);
    exts.push(extension(false, &dv_policy())?);
    if let Some(url) = &profile.crl_url {
        exts.push(extension(false, &crl_distribution_point(url)?)?);
    }
    match ct {
        CtExtension::None => {}
        CtExtension::Poison => exts.push(Extension {
            extn_id: OID_CT_POISON,
            critical: true,
            extn_value: OctetString::new(der::asn1::Null.to_der()?)?,
        }),
        CtExtension::SctList(list) => exts.push(Extension {
            extn_id: OID_CT_SCT_LIST,
            critical: false,
            extn_value: OctetString::new(OctetString::new(list)?.to_der()?)?,
        }),
    }

    sign_certificate(
        &issuer.subject,
        &issuer.key,
        CertFields {
            serial: params.serial,
            subject,
            spki_der: params.spki_der,
            not_before: params.not_before,
            not_after: params.not_after,
            extensions: exts,
        },
    )
}

/// Builds a self-signed root: subject `O=<organization>, CN=<common_name>`, basicConstraints
/// CA:true (critical), keyUsage keyCertSign + cRLSign (critical), SKI. Random serial.
pub fn build_root(
    key: &SigningKey,
    common_name: &str,
    organization: Option<&str>,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
) -> Result<Vec<u8>, BuildError> {
    build_root_with(
        key,
        common_name,
        organization,
        &CaExtras::default(),
        not_before,
        not_after,
    )
}

/// What CA certificates may carry beyond the basics.
#[derive(Debug, Clone, Copy, Default)]
pub struct CaExtras<'a> {
    /// The subject's countryName (two uppercase letters), first in the subject.
    pub country: Option<&'a str>,
    /// For an intermediate: the URL of the root's CRL (CRL Distribution Points).
    pub crl_url: Option<&'a str>,
    /// For an intermediate: the URL of the root's certificate (AIA caIssuers).
    pub issuer_url: Option<&'a str>,
}

/// [`build_root`] with a country in the subject (`extras.country`; the URLs do not apply to a
/// root).
pub fn build_root_with(
    key: &SigningKey,
    common_name: &str,
    organization: Option<&str>,
    extras: &CaExtras<'_>,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
) -> Result<Vec<u8>, BuildError> {
    let subject = build_name(Some(common_name), organization, extras.country)?;
    let exts = vec![
        extension(true, &KeyUsage(KeyUsages::KeyCertSign | KeyUsages::CRLSign))?,
        extension(
            true,
            &BasicConstraints {
                ca: true,
                path_len_constraint: None,
            },
        )?,
        extension(false, &subject_key_id(key.spki_der())?)?,
    ];
    sign_certificate(
        &subject.clone(),
        key,
        CertFields {
            serial: &random_serial(),
            subject,
            spki_der: key.spki_der(),
            not_before,
            not_after,
            extensions: exts,
        },
    )
}

/// Builds an intermediate signed by `root`: basicConstraints CA:true pathLen 0 (critical),
/// keyUsage digitalSignature + keyCertSign + cRLSign (critical), EKU serverAuth + clientAuth,
/// SKI, AKI and the domain-validated policy. Random serial.
pub fn build_intermediate(
    root: &CaCertificate,
    spki_der: &[u8],
    common_name: &str,
    organization: Option<&str>,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
) -> Result<Vec<u8>, BuildError> {
    build_intermediate_with(
        root,
        spki_der,
        common_name,
        organization,
        &CaExtras::default(),
        not_before,
        not_after,
    )
}

/// [`build_intermediate`] with a country in the subject, a CRL Distribution Point naming the
/// root's CRL and AIA caIssuers naming the root's certificate, each when given in `extras`.
pub fn build_intermediate_with(
    root: &CaCertificate,
    spki_der: &[u8],
    common_name: &str,
    organization: Option<&str>,
    extras: &CaExtras<'_>,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
) -> Result<Vec<u8>, BuildError> {
    KeyAlgorithm::from_spki_der(spki_der).map_err(|e| BuildError::PublicKey(e.into()))?;
    let subject = build_name(Some(common_name), organization, extras.country)?;
    let mut exts = vec![
        extension(
            true,
            &KeyUsage(KeyUsages::DigitalSignature | KeyUsages::KeyCertSign | KeyUsages::CRLSign),
        )?,
        extension(
            false,
            &ExtendedKeyUsage(vec![ID_KP_SERVER_AUTH, ID_KP_CLIENT_AUTH]),
        )?,
        extension(
            true,
            &BasicConstraints {
                ca: true,
                path_len_constraint: Some(0),
            },
        )?,
        extension(false, &subject_key_id(spki_der)?)?,
        extension(false, &authority_key_id(root)?)?,
        extension(false, &dv_policy())?,
    ];
    if let Some(url) = extras.issuer_url {
        exts.push(extension(
            false,
            &AuthorityInfoAccessSyntax(vec![AccessDescription {
                access_method: ID_AD_CA_ISSUERS,
                access_location: uri(url)?,
            }]),
        )?);
    }
    if let Some(url) = extras.crl_url {
        exts.push(extension(false, &crl_distribution_point(url)?)?);
    }
    sign_certificate(
        &root.subject,
        &root.key,
        CertFields {
            serial: &random_serial(),
            subject,
            spki_der,
            not_before,
            not_after,
            extensions: exts,
        },
    )
}

/// Builds a certificate for the CA's own HTTPS endpoint: the given DNS names (which need not be
/// public names, e.g. `localhost`) and IP addresses, empty subject, serverAuth, random serial.
pub fn build_tls_server_cert(
    issuer: &CaCertificate,
    spki_der: &[u8],
    dns_names: &[String],
    ip_addrs: &[IpAddr],
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
) -> Result<Vec<u8>, BuildError> {
    let identifiers: Vec<Identifier> = dns_names
        .iter()
        .map(|n| Identifier::dns(n.to_ascii_lowercase()))
        .chain(ip_addrs.iter().map(|ip| Identifier::ip(*ip)))
        .collect();
    let serial = random_serial();
    build_end_entity(
        issuer,
        &EndEntityParams {
            serial: &serial,
            spki_der,
            identifiers: &identifiers,
            common_name: None,
            not_before,
            not_after,
        },
        &EndEntityProfile {
            include_common_name: false,
            ..EndEntityProfile::default()
        },
    )
}

/// id-kp-OCSPSigning (RFC 5280 §4.2.1.12).
const OID_KP_OCSP_SIGNING: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.3.9");
/// id-pkix-ocsp-nocheck (RFC 6960 §4.2.2.2.1).
const OID_OCSP_NOCHECK: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.1.5");

/// Builds a delegated OCSP responder certificate (RFC 6960 §4.2.2.2) issued by `issuer`:
/// subject `CN=<common_name>`, keyUsage digitalSignature (critical), EKU id-kp-OCSPSigning only,
/// basicConstraints CA:false (critical), id-pkix-ocsp-nocheck (clients do not check its own
/// revocation, so keep it short-lived), SKI, AKI. Random serial.
pub fn build_ocsp_responder(
    issuer: &CaCertificate,
    spki_der: &[u8],
    common_name: &str,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
) -> Result<Vec<u8>, BuildError> {
    let nocheck = Extension {
        extn_id: OID_OCSP_NOCHECK,
        critical: false,
        extn_value: OctetString::new(der::asn1::Null.to_der()?)?,
    };
    build_delegated_signer(
        issuer,
        spki_der,
        common_name,
        (not_before, not_after),
        KeyUsages::DigitalSignature.into(),
        vec![
            extension(false, &ExtendedKeyUsage(vec![OID_KP_OCSP_SIGNING]))?,
            nocheck,
        ],
    )
}

/// Builds a delegated CRL signer certificate (RFC 5280 §5: the signer of an indirect CRL for
/// `issuer`'s certificates) issued by `issuer`: subject `CN=<common_name>`, keyUsage cRLSign
/// (critical), basicConstraints CA:false (critical), no extKeyUsage, SKI, AKI. Random serial.
pub fn build_crl_signer(
    issuer: &CaCertificate,
    spki_der: &[u8],
    common_name: &str,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
) -> Result<Vec<u8>, BuildError> {
    build_delegated_signer(
        issuer,
        spki_der,
        common_name,
        (not_before, not_after),
        KeyUsages::CRLSign.into(),
        Vec::new(),
    )
}

/// The part OCSP responder and CRL signer certificates share: a non-CA certificate with a
/// critical keyUsage `usage`, SKI, AKI and the role's `extra` extensions.
fn build_delegated_signer(
    issuer: &CaCertificate,
    spki_der: &[u8],
    common_name: &str,
    (not_before, not_after): (OffsetDateTime, OffsetDateTime),
    usage: FlagSet<KeyUsages>,
    extra: Vec<Extension>,
) -> Result<Vec<u8>, BuildError> {
    KeyAlgorithm::from_spki_der(spki_der).map_err(|e| BuildError::PublicKey(e.into()))?;
    let mut exts = vec![
        extension(true, &KeyUsage(usage))?,
        extension(
            true,
            &BasicConstraints {
                ca: false,
                path_len_constraint: None,
            },
        )?,
        extension(false, &subject_key_id(spki_der)?)?,
        extension(false, &authority_key_id(issuer)?)?,
    ];
    exts.extend(extra);
    sign_certificate(
        &issuer.subject,
        &issuer.key,
        CertFields {
            serial: &random_serial(),
            subject: build_name(Some(common_name), None, None)?,
            spki_der,
            not_before,
            not_after,
            extensions: exts,
        },
    )
}

/// A fresh random positive serial (18 bytes, as [`Serial::random`]).
pub fn random_serial() -> Vec<u8> {
    Serial::random().to_bytes()
}

/// The inputs common to every certificate this module signs.
struct CertFields<'a> {
    serial: &'a [u8],
    subject: Name,
    spki_der: &'a [u8],
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
    extensions: Extensions,
}

/// TBSCertificate as this crate emits it: always v3, no unique identifiers, extensions present.
#[derive(Sequence)]
struct TbsCertificateOut {
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT")]
    version: Version,
    serial_number: SerialNumber,
    signature: AlgorithmIdentifierOwned,
    issuer: Name,
    validity: Validity,
    subject: Name,
    subject_public_key_info: SubjectPublicKeyInfoOwned,
    #[asn1(context_specific = "3", tag_mode = "EXPLICIT")]
    extensions: Extensions,
}

/// Certificate: the encoded TBSCertificate, the algorithm and the signature.
#[derive(Sequence)]
struct CertificateOut<'a> {
    tbs_certificate: AnyRef<'a>,
    signature_algorithm: AlgorithmIdentifierOwned,
    signature: BitString,
}

fn sign_certificate(
    issuer: &Name,
    key: &SigningKey,
    fields: CertFields<'_>,
) -> Result<Vec<u8>, BuildError> {
    let serial_number = SerialNumber::new(fields.serial).map_err(|_| BuildError::InvalidSerial)?;
    if fields.serial.iter().all(|b| *b == 0) || fields.serial.first().is_some_and(|b| b & 0x80 != 0)
    {
        return Err(BuildError::InvalidSerial);
    }
    if fields.not_before >= fields.not_after {
        return Err(BuildError::InvalidValidity);
    }
    let spki = SubjectPublicKeyInfoOwned::from_der(fields.spki_der)
        .map_err(|e| BuildError::PublicKey(KeyError::MalformedPublicKey(e.to_string())))?;
    let tbs = TbsCertificateOut {
        version: Version::V3,
        serial_number,
        signature: key.signature_algorithm(),
        issuer: issuer.clone(),
        validity: Validity::new(x509_time(fields.not_before)?, x509_time(fields.not_after)?),
        subject: fields.subject,
        subject_public_key_info: spki,
        extensions: fields.extensions,
    };
    let tbs_der = tbs.to_der()?;
    let signature = key.sign(&tbs_der).map_err(BuildError::Signing)?;
    let cert = CertificateOut {
        tbs_certificate: AnyRef::from_der(&tbs_der)?,
        signature_algorithm: key.signature_algorithm(),
        signature: BitString::from_bytes(&signature)?,
    };
    let der = cert.to_der()?;
    // Self-check: what we emit must decode with the strict RFC 5280 parser.
    x509_cert::Certificate::from_der(&der)?;
    Ok(der)
}

/// RFC 5280 time: UTCTime through 2049, GeneralizedTime from 2050, whole seconds.
pub(crate) fn x509_time(t: OffsetDateTime) -> Result<Time, BuildError> {
    let secs = u64::try_from(t.unix_timestamp()).map_err(|_| BuildError::InvalidValidity)?;
    let dt = DateTime::from_unix_duration(Duration::from_secs(secs))
        .map_err(|_| BuildError::InvalidValidity)?;
    if dt.year() <= UtcTime::MAX_YEAR {
        Ok(Time::UtcTime(
            UtcTime::from_date_time(dt).map_err(|_| BuildError::InvalidValidity)?,
        ))
    } else {
        Ok(Time::GeneralTime(GeneralizedTime::from_date_time(dt)))
    }
}

/// A Name of `C=<country>, O=<organization>, CN=<common_name>` (each optional; the country a
/// two-letter PrintableString, the others UTF8String).
fn build_name(
    common_name: Option<&str>,
    organization: Option<&str>,
    country: Option<&str>,
) -> Result<Name, BuildError> {
    let mut rdns = Vec::new();
    if let Some(c) = country {
        if c.len() != 2 || !c.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(BuildError::InvalidName(c.to_string()));
        }
        let printable =
            der::asn1::PrintableStringRef::new(c).map_err(|_| BuildError::InvalidName(c.into()))?;
        let atv = AttributeTypeAndValue {
            oid: OID_COUNTRY,
            value: Any::encode_from(&printable)?,
        };
        rdns.push(RelativeDistinguishedName::try_from(vec![atv])?);
    }
    for (oid, value) in [
        (OID_ORGANIZATION, organization),
        (OID_COMMON_NAME, common_name),
    ] {
        let Some(value) = value else { continue };
        if value.is_empty() || value.chars().count() > 64 {
            return Err(BuildError::InvalidName(value.to_string()));
        }
        let utf8 =
            Utf8StringRef::new(value).map_err(|_| BuildError::InvalidName(value.to_string()))?;
        let atv = AttributeTypeAndValue {
            oid,
            value: Any::encode_from(&utf8)?,
        };
        rdns.push(RelativeDistinguishedName::try_from(vec![atv])?);
    }
    Ok(Name::from_der(&RdnSequence::from(rdns).to_der()?)?)
}

pub(crate) fn extension<T: Encode + AssociatedOid>(
    critical: bool,
    value: &T,
) -> Result<Extension, BuildError> {
    Ok(Extension {
        extn_id: T::OID,
        critical,
        extn_value: OctetString::new(value.to_der()?)?,
    })
}

fn general_name(id: &Identifier) -> Result<GeneralName, BuildError> {
    let bad = || BuildError::InvalidIdentifier(id.to_string());
    match id.typ {
        IdentifierType::Dns => {
            let ok = !id.value.is_empty()
                && id
                    .value
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'*');
            if !ok {
                return Err(bad());
            }
            Ok(GeneralName::DnsName(
                Ia5String::new(&id.value).map_err(|_| bad())?,
            ))
        }
        IdentifierType::Ip => {
            let ip: IpAddr = id.value.parse().map_err(|_| bad())?;
            let octets = match ip {
                IpAddr::V4(v4) => v4.octets().to_vec(),
                IpAddr::V6(v6) => v6.octets().to_vec(),
            };
            Ok(GeneralName::IpAddress(
                OctetString::new(octets).map_err(|_| bad())?,
            ))
        }
    }
}

pub(crate) fn uri(url: &str) -> Result<GeneralName, BuildError> {
    let ok = (url.starts_with("http://") || url.starts_with("https://"))
        && url.bytes().all(|b| b.is_ascii_graphic());
    if !ok {
        return Err(BuildError::InvalidUrl(url.to_string()));
    }
    Ok(GeneralName::UniformResourceIdentifier(
        Ia5String::new(url).map_err(|_| BuildError::InvalidUrl(url.to_string()))?,
    ))
}

fn crl_distribution_point(url: &str) -> Result<CrlDistributionPoints, BuildError> {
    Ok(CrlDistributionPoints(vec![DistributionPoint {
        distribution_point: Some(DistributionPointName::FullName(vec![uri(url)?])),
        reasons: None,
        crl_issuer: None,
    }]))
}

fn dv_policy() -> CertificatePolicies {
    CertificatePolicies(vec![PolicyInformation {
        policy_identifier: OID_DOMAIN_VALIDATED,
        policy_qualifiers: None,
    }])
}

/// RFC 7093 §2 method 1: the leftmost 160 bits of the SHA-256 of the subjectPublicKey bits.
fn key_identifier(spki_der: &[u8]) -> Result<Vec<u8>, BuildError> {
    let spki = SubjectPublicKeyInfoRef::from_der(spki_der)
        .map_err(|e| BuildError::PublicKey(KeyError::MalformedPublicKey(e.to_string())))?;
    let digest = aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA256,
        spki.subject_public_key.raw_bytes(),
    );
    Ok(digest.as_ref()[..20].to_vec())
}

fn subject_key_id(spki_der: &[u8]) -> Result<SubjectKeyIdentifier, BuildError> {
    Ok(SubjectKeyIdentifier(OctetString::new(key_identifier(
        spki_der,
    )?)?))
}

pub(crate) fn authority_key_id(
    issuer: &CaCertificate,
) -> Result<AuthorityKeyIdentifier, BuildError> {
    Ok(AuthorityKeyIdentifier {
        key_identifier: Some(OctetString::new(issuer.key_id.clone())?),
        authority_cert_issuer: None,
        authority_cert_serial_number: None,
    })
}
