//! PKCS#10 CSR parsing and checks: self-signature, key type and size, requested names.

use crate::key::{KeyAlgorithm, KeyError};
use crate::parse::ip_from_octets;
use aws_lc_rs::signature::UnparsedPublicKey;
use cairn_core::{Identifier, IdentifierError};
use cairn_pki::{RsaPublicKey, verification_algorithm};
use const_oid::AssociatedOid;
use const_oid::db::rfc5912::ID_EXTENSION_REQ;
use der::asn1::{AnyRef, BitStringRef};
use der::{Decode, Encode, Sequence};
use spki::{AlgorithmIdentifierRef, SubjectPublicKeyInfoRef};
use std::net::IpAddr;
use x509_cert::ext::Extension;
use x509_cert::ext::pkix::SubjectAltName;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::request::CertReqInfo;

/// id-pe-tlsfeature (RFC 7633 §6).
const ID_PE_TLS_FEATURE: const_oid::ObjectIdentifier =
    const_oid::ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.1.24");

/// The most names (SAN entries plus a common name) a CSR may request.
pub const MAX_CSR_NAMES: usize = 100;

/// The largest CSR accepted, in bytes (a 4096-bit RSA CSR with 100 long names fits easily).
pub const MAX_CSR_BYTES: usize = 64 * 1024;

/// The longest subject common name X.509 allows (RFC 5280 `ub-common-name`).
pub const MAX_COMMON_NAME_LEN: usize = 64;

/// Why a CSR was refused. Every message is safe to show to the ACME client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CsrError {
    /// The bytes are larger than [`MAX_CSR_BYTES`].
    #[error("CSR is too large ({0} bytes)")]
    TooLarge(usize),
    /// The bytes are not a DER PKCS#10 certification request.
    #[error("CSR is not a valid DER PKCS#10 request: {0}")]
    Malformed(String),
    /// The CSR's public key is of a type or size the CA does not issue for.
    #[error("CSR public key refused: {0}")]
    UnsupportedKey(#[source] KeyError),
    /// The signature algorithm is not one the CA verifies (RSA PKCS#1 v1.5 with SHA-256/384/512,
    /// ECDSA with SHA-256/384) or does not match the key type.
    #[error("CSR signature algorithm {0} is not supported for this key")]
    UnsupportedSignatureAlgorithm(String),
    /// The self-signature does not verify with the CSR's own public key.
    #[error("CSR signature is invalid")]
    BadSignature,
    /// The CSR asks for the TLS Feature extension (RFC 7633, "OCSP must-staple"), which the CA
    /// does not put in certificates; issuing without it would silently drop what was asked.
    #[error(
        "CSR requests the TLS Feature (OCSP must-staple) extension, which this CA does not issue; request a certificate without it"
    )]
    MustStapleUnsupported,
    /// The CSR asks for names of a kind the CA does not issue (email, URI, ...).
    #[error("CSR requests an unsupported name type: {0}")]
    UnsupportedName(String),
    /// A requested DNS name or IP address is syntactically invalid.
    #[error("CSR contains an invalid identifier: {0}")]
    InvalidIdentifier(#[source] IdentifierError),
    /// The common name is longer than [`MAX_COMMON_NAME_LEN`].
    #[error("CSR common name is longer than {MAX_COMMON_NAME_LEN} characters")]
    CommonNameTooLong,
    /// The CSR requests no name at all.
    #[error("CSR contains no DNS names or IP addresses")]
    NoIdentifiers,
    /// The CSR requests more than [`MAX_CSR_NAMES`] names.
    #[error("CSR contains {0} names; at most {MAX_CSR_NAMES} are allowed")]
    TooManyNames(usize),
}

/// A CSR that decoded, whose self-signature verified and whose key is acceptable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedCsr {
    /// The requested public key, SubjectPublicKeyInfo DER (as found in the CSR).
    pub spki_der: Vec<u8>,
    /// The key type.
    pub key_algorithm: KeyAlgorithm,
    /// The SAN dNSNames, as written in the CSR.
    pub dns_names: Vec<String>,
    /// The SAN iPAddresses.
    pub ip_addrs: Vec<IpAddr>,
    /// The subject common name, if present, in the canonical form of the identifier it names
    /// (DNS names lowercased without a trailing dot, IP addresses in their shortest text form),
    /// so the certificate's CN is spelled as its SAN is.
    pub common_name: Option<String>,
}

impl ParsedCsr {
    /// Every requested name (SANs and the common name) normalized, sorted and deduplicated. The
    /// names were validated by [`parse_csr`], so this cannot fail.
    pub fn identifiers(&self) -> Vec<Identifier> {
        let mut ids: Vec<Identifier> = self
            .dns_names
            .iter()
            .map(|n| Identifier::dns(n.clone()))
            .chain(self.ip_addrs.iter().map(|ip| Identifier::ip(*ip)))
            .chain(self.common_name.iter().map(|cn| cn_identifier(cn)))
            .filter_map(|id| id.normalized().ok())
            .collect();
        ids.sort();
        ids.dedup();
        ids
    }
}

/// The identifier a common name stands for: an IP address if it parses as one, else a DNS name.
fn cn_identifier(cn: &str) -> Identifier {
    match cn.parse::<IpAddr>() {
        Ok(ip) => Identifier::ip(ip),
        Err(_) => Identifier::dns(cn.to_string()),
    }
}

/// The outer CertificationRequest with the signed part kept as raw DER, so the signature is
/// checked over exactly the bytes the client signed.
#[derive(Sequence)]
struct RawCertReq<'a> {
    info: AnyRef<'a>,
    algorithm: AlgorithmIdentifierRef<'a>,
    signature: BitStringRef<'a>,
}

/// Decodes and checks a PKCS#10 CSR (DER): the self-signature must verify, the key must be one of
/// [`KeyAlgorithm`], and the requested names must be valid DNS names / IP addresses (at most
/// [`MAX_CSR_NAMES`], at least one). Never panics, whatever the input.
pub fn parse_csr(der: &[u8]) -> Result<ParsedCsr, CsrError> {
    if der.len() > MAX_CSR_BYTES {
        return Err(CsrError::TooLarge(der.len()));
    }
    let malformed = |e: der::Error| CsrError::Malformed(e.to_string());
    let raw = RawCertReq::from_der(der).map_err(malformed)?;
    let info_der = raw.info.to_der().map_err(malformed)?;
    let info = CertReqInfo::from_der(&info_der).map_err(malformed)?;

    let spki_der = info.public_key.to_der().map_err(malformed)?;
    let key_algorithm =
        KeyAlgorithm::from_spki_der(&spki_der).map_err(|e| CsrError::UnsupportedKey(e.into()))?;
    let spki = SubjectPublicKeyInfoRef::from_der(&spki_der).map_err(malformed)?;
    let key_bits = spki
        .subject_public_key
        .as_bytes()
        .ok_or_else(|| CsrError::Malformed("public key bit string has unused bits".to_string()))?;
    if key_algorithm.is_rsa() {
        // BR §6.1.1.3: weak RSA keys are refused (small factors, close primes, ROCA).
        let rsa = RsaPublicKey::from_der(key_bits).map_err(malformed)?;
        cairn_pki::check_rsa_modulus(rsa.modulus.as_bytes())
            .map_err(|e| CsrError::UnsupportedKey(KeyError::UnsupportedKey(e.to_string())))?;
    }
    let verify_alg = verification_algorithm(key_algorithm, &raw.algorithm)
        .ok_or_else(|| CsrError::UnsupportedSignatureAlgorithm(raw.algorithm.oid.to_string()))?;
    let sig = raw.signature.as_bytes().ok_or(CsrError::BadSignature)?;
    // For RSA, aws-lc takes the PKCS#1 RSAPublicKey (the BIT STRING contents); for ECDSA the
    // uncompressed point — both are exactly `key_bits`.
    UnparsedPublicKey::new(verify_alg, key_bits)
        .verify(&info_der, sig)
        .map_err(|_| CsrError::BadSignature)?;

    let mut dns_names = Vec::new();
    let mut ip_addrs = Vec::new();
    let mut seen_ext_req = false;
    for attr in info.attributes.iter() {
        if attr.oid != ID_EXTENSION_REQ {
            continue;
        }
        if seen_ext_req || attr.values.len() != 1 {
            return Err(CsrError::Malformed(
                "extensionRequest must appear once with one value".to_string(),
            ));
        }
        seen_ext_req = true;
        for value in attr.values.iter() {
            let exts: Vec<Extension> = value.decode_as().map_err(malformed)?;
            if exts.iter().any(|e| e.extn_id == ID_PE_TLS_FEATURE) {
                return Err(CsrError::MustStapleUnsupported);
            }
            let mut seen_san = false;
            for ext in exts.iter().filter(|e| e.extn_id == SubjectAltName::OID) {
                if seen_san {
                    return Err(CsrError::Malformed(
                        "duplicate subjectAltName extension".to_string(),
                    ));
                }
                seen_san = true;
                let san = SubjectAltName::from_der(ext.extn_value.as_bytes()).map_err(malformed)?;
                for name in san.0 {
                    collect_name(name, &mut dns_names, &mut ip_addrs)?;
                    if dns_names.len() + ip_addrs.len() > MAX_CSR_NAMES {
                        return Err(CsrError::TooManyNames(dns_names.len() + ip_addrs.len()));
                    }
                }
            }
        }
    }

    let common_name = match info.subject.common_name().map_err(malformed)? {
        Some(cn) => {
            let cn = cn.value();
            if cn.chars().count() > MAX_COMMON_NAME_LEN {
                return Err(CsrError::CommonNameTooLong);
            }
            let id = cn_identifier(&cn)
                .normalized()
                .map_err(CsrError::InvalidIdentifier)?;
            Some(id.value)
        }
        None => None,
    };
    for name in &dns_names {
        Identifier::dns(name.clone())
            .normalized()
            .map_err(CsrError::InvalidIdentifier)?;
    }

    let csr = ParsedCsr {
        spki_der,
        key_algorithm,
        dns_names,
        ip_addrs,
        common_name,
    };
    let count = csr.identifiers().len();
    if count == 0 {
        return Err(CsrError::NoIdentifiers);
    }
    if count > MAX_CSR_NAMES {
        return Err(CsrError::TooManyNames(count));
    }
    Ok(csr)
}

fn collect_name(
    name: GeneralName,
    dns_names: &mut Vec<String>,
    ip_addrs: &mut Vec<IpAddr>,
) -> Result<(), CsrError> {
    match name {
        GeneralName::DnsName(dns) => dns_names.push(dns.to_string()),
        GeneralName::IpAddress(octets) => ip_addrs.push(
            ip_from_octets(octets.as_bytes())
                .map_err(|e| CsrError::UnsupportedName(e.to_string()))?,
        ),
        GeneralName::Rfc822Name(_) => return Err(CsrError::UnsupportedName("email".into())),
        GeneralName::UniformResourceIdentifier(_) => {
            return Err(CsrError::UnsupportedName("URI".into()));
        }
        GeneralName::OtherName(_) => return Err(CsrError::UnsupportedName("otherName".into())),
        GeneralName::DirectoryName(_) => {
            return Err(CsrError::UnsupportedName("directoryName".into()));
        }
        GeneralName::EdiPartyName(_) => {
            return Err(CsrError::UnsupportedName("ediPartyName".into()));
        }
        GeneralName::RegisteredId(_) => {
            return Err(CsrError::UnsupportedName("registeredID".into()));
        }
    }
    Ok(())
}
