//! The TLS-ALPN-01 responder (RFC 8737, RFC 8738); connections that do not offer `acme-tls/1` get
//! HTTPS with a self-signed certificate and the HTTP-01 responder, as in pebble-challtestsrv.

use crate::http01::{self, ConnInfo};
use crate::state::{ChallTestSrv, TlsAlpnRequestEvent};
use anyhow::Context as _;
use rcgen::{CertificateParams, CustomExtension, KeyPair, SanType};
use rustls::ServerConfig;
use rustls::crypto::aws_lc_rs;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::sign::{CertifiedKey, SingleCertAndKey};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_rustls::LazyConfigAcceptor;

/// The ALPN protocol of RFC 8737.
pub const ACME_TLS_1: &[u8] = b"acme-tls/1";

/// How long a client may take to finish its handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Parses an RFC 8738 §6 reverse-DNS name (`4.3.2.1.in-addr.arpa`, nibble `ip6.arpa`).
pub fn parse_reverse_name(name: &str) -> Option<IpAddr> {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    if let Some(v4) = name.strip_suffix(".in-addr.arpa") {
        let mut octets: Vec<u8> = Vec::with_capacity(4);
        for label in v4.split('.') {
            if label.is_empty() || label.len() > 3 || (label.len() > 1 && label.starts_with('0')) {
                return None;
            }
            octets.push(label.parse().ok()?);
        }
        if octets.len() != 4 {
            return None;
        }
        octets.reverse();
        return Some(IpAddr::V4(Ipv4Addr::new(
            octets[0], octets[1], octets[2], octets[3],
        )));
    }
    if let Some(v6) = name.strip_suffix(".ip6.arpa") {
        let nibbles: Vec<&str> = v6.split('.').collect();
        if nibbles.len() != 32 {
            return None;
        }
        let mut value: u128 = 0;
        for n in nibbles.iter().rev() {
            if n.len() != 1 {
                return None;
            }
            value = (value << 4) | u128::from_str_radix(n, 16).ok()?;
        }
        return Some(IpAddr::V6(Ipv6Addr::from(value)));
    }
    None
}

fn server_config(
    certs: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    alpn: Vec<Vec<u8>>,
) -> anyhow::Result<Arc<ServerConfig>> {
    let provider = Arc::new(aws_lc_rs::default_provider());
    // Built by hand rather than with `with_single_cert`: that checks the certificate with
    // webpki, which refuses the critical acmeIdentifier extension.
    let signing_key = provider.key_provider.load_private_key(key)?;
    let certified = CertifiedKey::new(certs, signing_key);
    let mut cfg = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(SingleCertAndKey::from(certified)));
    cfg.alpn_protocols = alpn;
    Ok(Arc::new(cfg))
}

/// Keys and the HTTPS configuration of the responder.
pub(crate) struct TlsAlpnServer {
    srv: ChallTestSrv,
    key: KeyPair,
    https: Arc<ServerConfig>,
}

impl TlsAlpnServer {
    /// Generates the server's P-256 key and its self-signed HTTPS certificate.
    pub(crate) fn new(srv: ChallTestSrv) -> anyhow::Result<Self> {
        let key = KeyPair::generate().context("generating the TLS key")?;
        let params = CertificateParams::new(vec!["challenge-test-server.invalid".to_string()])?;
        let cert = params.self_signed(&key)?;
        let https = server_config(
            vec![cert.der().clone()],
            private_key(&key),
            vec![b"h2".to_vec(), b"http/1.1".to_vec()],
        )?;
        Ok(Self { srv, key, https })
    }

    /// A configuration presenting the RFC 8737 challenge certificate for `sni`, or `None` if no
    /// response is registered for it.
    fn challenge_config(&self, sni: &str) -> anyhow::Result<Option<Arc<ServerConfig>>> {
        let reverse_ip = parse_reverse_name(sni);
        let content = match self.srv.tlsalpn01_content(sni) {
            Some(c) => c,
            None => match reverse_ip.and_then(|ip| self.srv.tlsalpn01_content(&ip.to_string())) {
                Some(c) => c,
                None => return Ok(None),
            },
        };
        let digest = ::aws_lc_rs::digest::digest(&::aws_lc_rs::digest::SHA256, content.as_bytes());
        let mut params = CertificateParams::default();
        params.subject_alt_names = vec![match reverse_ip {
            Some(ip) => SanType::IpAddress(ip),
            None => SanType::DnsName(sni.trim_end_matches('.').to_string().try_into()?),
        }];
        params
            .custom_extensions
            .push(CustomExtension::new_acme_identifier(digest.as_ref()));
        let cert = params.self_signed(&self.key)?;
        Ok(Some(server_config(
            vec![cert.der().clone()],
            private_key(&self.key),
            vec![ACME_TLS_1.to_vec()],
        )?))
    }

    async fn handle(self: Arc<Self>, stream: TcpStream) -> anyhow::Result<()> {
        let acceptor = LazyConfigAcceptor::new(rustls::server::Acceptor::default(), stream);
        let start = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor).await??;
        let hello = start.client_hello();
        let sni = hello.server_name().unwrap_or_default().to_string();
        let protos: Vec<Vec<u8>> = hello
            .alpn()
            .map(|it| it.map(<[u8]>::to_vec).collect())
            .unwrap_or_default();
        self.srv.record_tlsalpn(TlsAlpnRequestEvent {
            server_name: sni.clone(),
            supported_protos: protos
                .iter()
                .map(|p| String::from_utf8_lossy(p).into_owned())
                .collect(),
        });
        if protos.iter().any(|p| p == ACME_TLS_1) {
            let Some(cfg) = self.challenge_config(&sni)? else {
                anyhow::bail!("no TLS-ALPN-01 response registered for {sni:?}");
            };
            let tls = tokio::time::timeout(HANDSHAKE_TIMEOUT, start.into_stream(cfg)).await??;
            // The validator only inspects the handshake; wait for it to hang up.
            let mut tls = tls;
            let mut sink = tokio::io::sink();
            let _ =
                tokio::time::timeout(HANDSHAKE_TIMEOUT, tokio::io::copy(&mut tls, &mut sink)).await;
            return Ok(());
        }
        let tls = tokio::time::timeout(HANDSHAKE_TIMEOUT, start.into_stream(self.https.clone()))
            .await??;
        http01::serve_connection(
            self.srv.clone(),
            tls,
            ConnInfo {
                https: true,
                server_name: sni,
            },
        )
        .await;
        Ok(())
    }
}

fn private_key(key: &KeyPair) -> PrivateKeyDer<'static> {
    PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()))
}

/// Accepts TLS connections until shutdown.
pub(crate) async fn run(
    server: Arc<TlsAlpnServer>,
    listener: TcpListener,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = shutdown.changed() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let server = server.clone();
                    tokio::spawn(async move {
                        if let Err(error) = server.handle(stream).await {
                            tracing::debug!(error = %format!("{error:#}"), "TLS-ALPN-01 connection failed");
                        }
                    });
                }
                Err(error) => tracing::warn!(%error, "TLS-ALPN-01 accept failed"),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reverse_names_parse() {
        assert_eq!(
            parse_reverse_name("1.0.0.127.in-addr.arpa"),
            Some("127.0.0.1".parse().unwrap())
        );
        let v6 = "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa.";
        assert_eq!(parse_reverse_name(v6), Some("2001:db8::1".parse().unwrap()));
        assert_eq!(parse_reverse_name("example.com"), None);
        assert_eq!(parse_reverse_name("1.0.0.in-addr.arpa"), None);
    }
}
