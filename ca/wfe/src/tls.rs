//! The ACME API over HTTPS (RFC 8555 §6.1 requires TLS): the rustls configuration of the
//! listener's certificate (aws-lc-rs; HTTP/2 and HTTP/1.1 by ALPN) and the accept loop that
//! serves a router on it. Handlers see the peer's address as `ConnectInfo`, as they do over plain
//! HTTP behind a TLS-terminating proxy, so the account's initial IP and rate limits work the
//! same either way. A connection whose handshake fails is dropped without touching the others.

use axum::Router;
use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::service::TowerToHyperService;
use std::sync::Arc;
use tokio::net::TcpListener;
use tower::ServiceExt;

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

/// Serves `app` over TLS on `listener` until `shutdown` completes; connections in progress
/// then finish on their own tasks.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    server_config: Arc<rustls::ServerConfig>,
    shutdown: impl Future<Output = ()>,
) {
    let acceptor = tokio_rustls::TlsAcceptor::from(server_config);
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => return,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    continue;
                }
            },
        };
        let acceptor = acceptor.clone();
        let app = app.clone();
        tokio::spawn(async move {
            let Ok(tls) = acceptor.accept(stream).await else {
                return;
            };
            let svc = app.map_request(move |mut req: http::Request<hyper::body::Incoming>| {
                req.extensions_mut().insert(ConnectInfo(peer));
                req.map(axum::body::Body::new)
            });
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(tls), TowerToHyperService::new(svc))
                .await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
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
        let server = tokio::spawn(serve(listener, app, Arc::new(config), async {
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
