//! tls-alpn-01 (RFC 8737, RFC 8738 for IP addresses): a TLS handshake negotiating `acme-tls/1`
//! whose certificate names exactly the identifier and carries the critical acmeIdentifier
//! extension with SHA-256 of the key authorization.

use crate::{Va, challenge_cert, connect_order, key_authorization_digest, reject};
use cairn_core::{Identifier, IdentifierType, Problem, ProblemType, ValidationRecord};
use const_oid::ObjectIdentifier;
use const_oid::db::rfc5280::ID_CE_SUBJECT_ALT_NAME;
use der::Decode;
use der::asn1::OctetString;
use rustls_pki_types::ServerName;
use std::net::{IpAddr, SocketAddr};
use tokio::net::TcpStream;
use x509_cert::ext::pkix::SubjectAltName;
use x509_cert::ext::pkix::name::GeneralName;

/// The ALPN protocol of RFC 8737.
pub const ACME_TLS_1: &[u8] = b"acme-tls/1";

/// id-pe-acmeIdentifier (RFC 8737 §6.1).
pub const ID_PE_ACME_IDENTIFIER: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.1.31");

/// The RFC 8738 §6 reverse-DNS name of an address: `4.3.2.1.in-addr.arpa` for 1.2.3.4, the
/// nibble form under `ip6.arpa` for IPv6. No trailing dot.
pub fn reverse_dns_name(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            format!("{}.{}.{}.{}.in-addr.arpa", o[3], o[2], o[1], o[0])
        }
        IpAddr::V6(v6) => {
            let mut s = String::with_capacity(72);
            for byte in v6.octets().iter().rev() {
                s.push_str(&format!("{:x}.{:x}.", byte & 0x0f, byte >> 4));
            }
            s.push_str("ip6.arpa");
            s
        }
    }
}

fn tls(detail: impl Into<String>) -> Problem {
    Problem::new(ProblemType::Tls, detail)
}

/// Checks a tls-alpn-01 challenge certificate (DER) against the identifier and key
/// authorization, as RFC 8737 §3 and RFC 8738 §6 require: exactly one subjectAltName naming
/// the identifier, and one critical acmeIdentifier extension holding SHA-256 of the key
/// authorization. Nothing else in the certificate is read (validity dates, issuer and
/// signature are ignored, so zero dates pass). A pure function over untrusted input.
pub fn check_challenge_certificate(
    der: &[u8],
    identifier: &Identifier,
    key_authorization: &str,
) -> Result<(), Problem> {
    let cert = challenge_cert::parse(der)
        .map_err(|_| reject("The tls-alpn-01 challenge certificate could not be parsed"))?;

    let sans: Vec<_> = cert
        .extensions
        .iter()
        .filter(|e| e.extn_id == ID_CE_SUBJECT_ALT_NAME)
        .collect();
    let san = match sans.as_slice() {
        [one] => SubjectAltName::from_der(one.extn_value.as_bytes()).map_err(|_| {
            reject("The tls-alpn-01 challenge certificate has a malformed subjectAltName extension")
        })?,
        [] => {
            return Err(reject(
                "The tls-alpn-01 challenge certificate has no subjectAltName extension",
            ));
        }
        _ => {
            return Err(reject(
                "The tls-alpn-01 challenge certificate has more than one subjectAltName extension",
            ));
        }
    };
    let names = &san.0;
    let matches = match (names.as_slice(), identifier.typ) {
        ([GeneralName::DnsName(d)], IdentifierType::Dns) => {
            d.as_str().eq_ignore_ascii_case(&identifier.value)
        }
        ([GeneralName::IpAddress(o)], IdentifierType::Ip) => {
            let want: Vec<u8> = match identifier.ip_addr() {
                Some(IpAddr::V4(a)) => a.octets().to_vec(),
                Some(IpAddr::V6(a)) => a.octets().to_vec(),
                None => Vec::new(),
            };
            o.as_bytes() == want.as_slice()
        }
        _ => false,
    };
    if !matches {
        return Err(reject(format!(
            "The tls-alpn-01 challenge certificate must contain exactly one subjectAltName, {}",
            identifier.value
        )));
    }

    let exts: Vec<_> = cert
        .extensions
        .iter()
        .filter(|e| e.extn_id == ID_PE_ACME_IDENTIFIER)
        .collect();
    let ext = match exts.as_slice() {
        [one] => *one,
        [] => {
            return Err(reject(
                "The tls-alpn-01 challenge certificate has no acmeIdentifier extension",
            ));
        }
        _ => {
            return Err(reject(
                "The tls-alpn-01 challenge certificate has more than one acmeIdentifier extension",
            ));
        }
    };
    if !ext.critical {
        return Err(reject(
            "The tls-alpn-01 challenge certificate's acmeIdentifier extension is not critical",
        ));
    }
    let value = OctetString::from_der(ext.extn_value.as_bytes()).map_err(|_| {
        reject("The tls-alpn-01 challenge certificate's acmeIdentifier extension is malformed")
    })?;
    if value.as_bytes() != key_authorization_digest(key_authorization).as_slice() {
        return Err(reject(
            "Incorrect validation certificate for tls-alpn-01 challenge: the acmeIdentifier extension does not match the key authorization",
        ));
    }
    Ok(())
}

impl Va {
    /// Performs tls-alpn-01 validation.
    pub(crate) async fn validate_tlsalpn01(
        &self,
        identifier: &Identifier,
        key_authorization: &str,
        records: &mut Vec<ValidationRecord>,
    ) -> Result<(), Problem> {
        let port = self.config.tlsalpn01_port;
        let (sni, resolved, addrs) = match identifier.typ {
            IdentifierType::Dns => {
                let (resolved, permitted) = self.resolve_permitted(&identifier.value).await?;
                (identifier.value.clone(), resolved, permitted)
            }
            IdentifierType::Ip => {
                let ip = identifier
                    .ip_addr()
                    .ok_or_else(|| Problem::malformed("invalid IP identifier"))?;
                (reverse_dns_name(ip), vec![ip], vec![ip])
            }
        };
        records.push(ValidationRecord {
            hostname: Some(identifier.value.clone()),
            port: Some(port.to_string()),
            addresses_resolved: resolved.iter().map(IpAddr::to_string).collect(),
            ..Default::default()
        });
        for ip in &addrs {
            self.check_address(*ip)?;
        }
        let record = records.last_mut().ok_or_else(Problem::internal)?;
        let server_name = ServerName::try_from(sni.clone())
            .map_err(|_| Problem::malformed("the identifier is not a valid TLS server name"))?;

        let mut last = None;
        let mut tcp = None;
        for ip in connect_order(&addrs) {
            record.address_used = Some(ip.to_string());
            match tokio::time::timeout(
                self.config.timeout,
                TcpStream::connect(SocketAddr::new(ip, port)),
            )
            .await
            {
                Ok(Ok(s)) => {
                    tcp = Some(s);
                    break;
                }
                Ok(Err(e)) => {
                    tracing::debug!(error = %e, %ip, port, "tls-alpn-01 connect failed");
                    last = Some(Problem::new(
                        ProblemType::Connection,
                        if e.kind() == std::io::ErrorKind::ConnectionRefused {
                            format!(
                                "Connecting to {} on port {port}: Connection refused",
                                identifier.value
                            )
                        } else {
                            format!(
                                "Connecting to {} on port {port}: Error connecting",
                                identifier.value
                            )
                        },
                    ));
                }
                Err(_) => {
                    last = Some(Problem::new(
                        ProblemType::Connection,
                        format!(
                            "Connecting to {} on port {port}: Timeout during connect",
                            identifier.value
                        ),
                    ))
                }
            }
        }
        let Some(tcp) = tcp else {
            return Err(last.unwrap_or_else(|| {
                Problem::new(ProblemType::Connection, "no address to connect to")
            }));
        };
        let stream = tokio_rustls::TlsConnector::from(self.alpn_tls.clone())
            .connect(server_name, tcp)
            .await
            .map_err(|e| {
                let no_alpn = e
                    .get_ref()
                    .and_then(|i| i.downcast_ref::<rustls::Error>())
                    .is_some_and(|r| {
                        matches!(
                            r,
                            rustls::Error::AlertReceived(
                                rustls::AlertDescription::NoApplicationProtocol
                            )
                        )
                    });
                if no_alpn {
                    reject(
                        "Cannot negotiate ALPN protocol \"acme-tls/1\" for tls-alpn-01 challenge",
                    )
                } else {
                    tls(format!(
                        "Error getting validation data from {}: TLS handshake failed: {e}",
                        identifier.value
                    ))
                }
            })?;
        let (_, conn) = stream.get_ref();
        if conn.alpn_protocol() != Some(ACME_TLS_1) {
            return Err(reject(
                "Cannot negotiate ALPN protocol \"acme-tls/1\" for tls-alpn-01 challenge",
            ));
        }
        let leaf = conn
            .peer_certificates()
            .and_then(|c| c.first())
            .ok_or_else(|| tls("The server presented no certificate"))?;
        check_challenge_certificate(leaf.as_ref(), identifier, key_authorization)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{CertificateParams, CustomExtension, KeyPair, SanType};

    fn challenge_cert(not_before_year: i32, key_auth: &str) -> Vec<u8> {
        let mut p = CertificateParams::default();
        p.subject_alt_names = vec![SanType::DnsName("example.com".try_into().unwrap())];
        p.custom_extensions
            .push(CustomExtension::new_acme_identifier(
                &key_authorization_digest(key_auth),
            ));
        p.not_before = rcgen::date_time_ymd(not_before_year, 1, 1);
        p.not_after = rcgen::date_time_ymd(not_before_year, 1, 1);
        let key = KeyPair::generate().unwrap();
        p.self_signed(&key).unwrap().der().to_vec()
    }

    #[test]
    fn zero_validity_dates_are_ignored() {
        let id = Identifier::dns("example.com");
        for year in [1, 1949, 1970, 2049, 9999] {
            let der = challenge_cert(year, "k.a");
            assert!(
                check_challenge_certificate(&der, &id, "k.a").is_ok(),
                "{year}"
            );
            let p = check_challenge_certificate(&der, &id, "k.b").unwrap_err();
            assert!(
                p.detail.contains("does not match the key authorization"),
                "{year}"
            );
        }
        let p = check_challenge_certificate(b"\x30\x03\x02\x01\x00", &id, "k.a").unwrap_err();
        assert!(p.detail.contains("could not be parsed"));
    }

    #[test]
    fn reverse_names() {
        assert_eq!(
            reverse_dns_name("127.0.0.1".parse().unwrap()),
            "1.0.0.127.in-addr.arpa"
        );
        assert_eq!(
            reverse_dns_name("2001:db8::1".parse().unwrap()),
            "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa"
        );
    }
}
