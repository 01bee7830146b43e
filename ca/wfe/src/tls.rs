//! The ACME API over HTTPS (RFC 8555 §6.1 requires TLS): the rustls configuration of the
//! listener's certificate (aws-lc-rs; HTTP/2 and HTTP/1.1 by ALPN) and the accept loop that
//! serves a router on it (the shared, bounded one of `cairn_listen`). Handlers see the peer's address as `ConnectInfo`, as they do over plain
//! HTTP behind a TLS-terminating proxy, so the account's initial IP and rate limits work the
//! same either way. A connection whose handshake fails is dropped without touching the others.

use axum::Router;
use std::sync::Arc;
use tokio::net::TcpListener;

/// A server configuration for the certificate chain `chain_der` (leaf first) and its PKCS #8
/// private key.
pub fn server_config(
    chain_der: &[Vec<u8>],
    key_pkcs8_der: &[u8],
) -> Result<rustls::ServerConfig, rustls::Error> {
    let chain = chain_der
        .iter()
        .cloned()
        .map(rustls_pki_types::CertificateDer::from)
        .collect();
    let key = rustls_pki_types::PrivateKeyDer::Pkcs8(key_pkcs8_der.to_vec().into());
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// Serves `app` over TLS on `listener` within `limits` (handshake, header, body and idle
/// timeouts, a connection cap: see `cairn_listen`) until `shutdown` completes; requests in flight
/// then get [`cairn_listen::Limits::shutdown_grace`] to finish.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    server_config: Arc<rustls::ServerConfig>,
    limits: cairn_listen::Limits,
    shutdown: impl Future<Output = ()>,
) {
    cairn_listen::Listener::new(listener, "acme", limits)
        .with_tls(server_config)
        .serve(app, shutdown)
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::extract::ConnectInfo;
    use axum::routing::get;
    use std::net::SocketAddr;

    #[tokio::test]
    async fn a_router_is_served_over_tls_with_the_peer_address() {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let cert = rcgen::CertificateParams::new(vec!["localhost".to_string()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let config = server_config(&[cert.der().to_vec()], &key.serialize_der()).unwrap();
        let app = Router::new().route(
            "/peer",
            get(|ConnectInfo(peer): ConnectInfo<SocketAddr>| async move { peer.ip().to_string() }),
        );
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let limits = cairn_listen::Limits::default();
        let server = tokio::spawn(serve(listener, app, Arc::new(config), limits, async {
            let _ = stopped.await;
        }));

        let trusting = || {
            reqwest::Client::builder()
                .add_root_certificate(reqwest::Certificate::from_der(cert.der()).unwrap())
                .build()
                .unwrap()
        };
        let client = trusting();
        let url = format!("https://localhost:{port}/peer");
        let resp = client.get(&url).send().await.unwrap();
        assert_eq!(resp.version(), reqwest::Version::HTTP_2, "h2 by ALPN");
        assert_eq!(resp.text().await.unwrap(), "127.0.0.1");
        // A client that does not trust the certificate fails its handshake; the server goes on.
        assert!(reqwest::get(&url).await.is_err());
        assert!(client.get(&url).send().await.unwrap().status().is_success());

        stop.send(()).unwrap();
        server.await.unwrap();
        // No new connections after the shutdown (a new client: the old one keeps its own).
        assert!(trusting().get(&url).send().await.is_err());
    }
}
