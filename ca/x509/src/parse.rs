//! Reading certificates back: serial, validity, SANs, key identifiers. (PEM and signature checks
//! are shared with the CT log and live in `cairn-pki`.)

use cairn_core::Identifier;
use der::{Decode, Encode};
use std::net::IpAddr;
use time::OffsetDateTime;
use x509_cert::Certificate;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::{
    AuthorityKeyIdentifier, BasicConstraints, SubjectAltName, SubjectKeyIdentifier,
};

/// Certificate parsing failures.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ParseError {
    /// The bytes are not a DER X.509 certificate (or an extension inside it does not decode).
    #[error("malformed certificate: {0}")]
    Malformed(#[source] der::Error),
    /// A validity date is outside what `time` can represent.
    #[error("certificate validity date out of range")]
    InvalidTime,
    /// A SAN entry cannot be turned into an identifier (bad IP length, non-ASCII name).
    #[error("unsupported subjectAltName entry: {0}")]
    BadSubjectAltName(String),
}

impl From<der::Error> for ParseError {
    fn from(e: der::Error) -> Self {
        ParseError::Malformed(e)
    }
}

/// What the CA needs to know about a certificate it issued or holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    /// The serial number's big-endian bytes, without a sign-padding leading zero.
    pub serial: Vec<u8>,
    /// notBefore.
    pub not_before: OffsetDateTime,
    /// notAfter.
    pub not_after: OffsetDateTime,
    /// The dNSName and iPAddress SAN entries as identifiers (in certificate order).
    pub identifiers: Vec<Identifier>,
    /// The subject common name, if any.
    pub common_name: Option<String>,
    /// SubjectPublicKeyInfo DER.
    pub spki_der: Vec<u8>,
    /// Lowercase hex SHA-256 of `spki_der` (the key fingerprint used for key-reuse checks).
    pub spki_sha256_hex: String,
    /// The subject key identifier extension, if present.
    pub subject_key_id: Option<Vec<u8>>,
    /// The key identifier of the authority key identifier extension, if present.
    pub authority_key_id: Option<Vec<u8>>,
    /// The subject Name, DER.
    pub subject_der: Vec<u8>,
    /// The issuer Name, DER.
    pub issuer_der: Vec<u8>,
    /// basicConstraints cA.
    pub is_ca: bool,
}

impl CertInfo {
    /// Parses a DER certificate.
    pub fn from_der(der: &[u8]) -> Result<CertInfo, ParseError> {
        let cert = Certificate::from_der(der)?;
        let tbs = cert.tbs_certificate();
        let spki_der = tbs.subject_public_key_info().to_der()?;
        let spki_sha256_hex = hex::encode(aws_lc_rs::digest::digest(
            &aws_lc_rs::digest::SHA256,
            &spki_der,
        ));

        let mut serial = tbs.serial_number().as_bytes();
        if serial.len() > 1 && serial[0] == 0 {
            serial = &serial[1..];
        }

        let mut identifiers = Vec::new();
        if let Some((_, san)) = tbs.get_extension::<SubjectAltName>()? {
            for name in san.0 {
                match name {
                    GeneralName::DnsName(dns) => identifiers.push(Identifier::dns(dns.to_string())),
                    GeneralName::IpAddress(octets) => {
                        identifiers.push(Identifier::ip(ip_from_octets(octets.as_bytes())?))
                    }
                    _ => {}
                }
            }
        }
        let subject_key_id = tbs
            .get_extension::<SubjectKeyIdentifier>()?
            .map(|(_, ski)| ski.0.as_bytes().to_vec());
        let authority_key_id = tbs
            .get_extension::<AuthorityKeyIdentifier>()?
            .and_then(|(_, aki)| aki.key_identifier.map(|k| k.as_bytes().to_vec()));
        let is_ca = tbs
            .get_extension::<BasicConstraints>()?
            .is_some_and(|(_, bc)| bc.ca);
        let common_name = tbs
            .subject()
            .common_name()?
            .map(|cn| cn.value().into_owned());

        Ok(CertInfo {
            serial: serial.to_vec(),
            not_before: to_offset(tbs.validity().not_before.to_unix_duration())?,
            not_after: to_offset(tbs.validity().not_after.to_unix_duration())?,
            identifiers,
            common_name,
            spki_der,
            spki_sha256_hex,
            subject_key_id,
            authority_key_id,
            subject_der: tbs.subject().to_der()?,
            issuer_der: tbs.issuer().to_der()?,
            is_ca,
        })
    }
}

/// An IP address from the 4 or 16 octets of an iPAddress GeneralName.
pub(crate) fn ip_from_octets(octets: &[u8]) -> Result<IpAddr, ParseError> {
    if let Ok(v4) = <[u8; 4]>::try_from(octets) {
        Ok(IpAddr::from(v4))
    } else if let Ok(v6) = <[u8; 16]>::try_from(octets) {
        Ok(IpAddr::from(v6))
    } else {
        Err(ParseError::BadSubjectAltName(format!(
            "iPAddress of {} octets",
            octets.len()
        )))
    }
}

fn to_offset(d: std::time::Duration) -> Result<OffsetDateTime, ParseError> {
    let secs = i64::try_from(d.as_secs()).map_err(|_| ParseError::InvalidTime)?;
    OffsetDateTime::from_unix_timestamp(secs).map_err(|_| ParseError::InvalidTime)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn garbage_is_not_a_certificate() {
        assert!(CertInfo::from_der(b"").is_err());
        assert!(CertInfo::from_der(&[0x30, 0x03, 0x02, 0x01, 0x01]).is_err());
    }
}
