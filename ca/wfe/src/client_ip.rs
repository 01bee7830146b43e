//! The client's address behind TLS-terminating proxies. Per-IP rate limits (new accounts per
//! IP) key on the address the request came from; behind a proxy every request comes from the
//! proxy, and one limit would cover every client. `X-Forwarded-For` is believed only from the
//! proxies the operator lists (`wfe.trusted_proxies`), and only up to the first address that is
//! not one of them, reading from the right: each trusted proxy appends the peer it saw, so the
//! rightmost untrusted entry is the client as seen by the outermost trusted proxy, and anything
//! to its left is the client's own claim.

use axum::extract::{ConnectInfo, Request};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::Response;
use std::net::{IpAddr, SocketAddr};

/// The client's address for a request from `peer` with `headers`.
pub(crate) fn client_address(
    peer: SocketAddr,
    headers: &HeaderMap,
    trusted: &[IpAddr],
) -> SocketAddr {
    let is_trusted = |ip: IpAddr| trusted.contains(&ip.to_canonical());
    if !is_trusted(peer.ip()) {
        return peer;
    }
    // Every X-Forwarded-For field, in order, as one list.
    let hops: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    for hop in hops.iter().rev() {
        match hop.parse::<IpAddr>() {
            Ok(ip) if is_trusted(ip) => continue,
            Ok(ip) => return SocketAddr::new(ip.to_canonical(), 0),
            // A hop that is not an address: nothing to its left can be believed either.
            Err(_) => return peer,
        }
    }
    peer
}

/// Middleware: replaces the `ConnectInfo` that handlers see with the client's address.
pub(crate) async fn resolve(
    trusted: std::sync::Arc<[IpAddr]>,
    mut req: Request,
    next: Next,
) -> Response {
    if !trusted.is_empty()
        && let Some(ConnectInfo(peer)) = req.extensions().get::<ConnectInfo<SocketAddr>>().copied()
    {
        let client = client_address(peer, req.headers(), &trusted);
        req.extensions_mut().insert(ConnectInfo(client));
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::Router;
    use axum::routing::get;
    use tower::ServiceExt;

    /// A router that answers with the client address its handler sees.
    async fn seen(trusted: &[&str], peer: &str, xff: &[&str]) -> String {
        let trusted: std::sync::Arc<[IpAddr]> =
            trusted.iter().map(|t| t.parse().unwrap()).collect();
        let app = Router::new()
            .route(
                "/",
                get(|ConnectInfo(c): ConnectInfo<SocketAddr>| async move { c.ip().to_string() }),
            )
            .layer(axum::middleware::from_fn(move |req, next| {
                resolve(trusted.clone(), req, next)
            }));
        let mut req = http::Request::get("/");
        for v in xff {
            req = req.header("x-forwarded-for", *v);
        }
        let mut req = req.body(axum::body::Body::empty()).unwrap();
        let peer = SocketAddr::new(peer.parse().unwrap(), 4000);
        req.extensions_mut().insert(ConnectInfo(peer));
        let resp = app.oneshot(req).await.unwrap();
        let body = axum::body::to_bytes(resp.into_body(), 1024).await.unwrap();
        String::from_utf8(body.to_vec()).unwrap()
    }

    #[tokio::test]
    async fn behind_a_trusted_proxy_each_client_is_its_own_address() {
        let proxy = ["10.0.0.1"];
        assert_eq!(seen(&proxy, "10.0.0.1", &["192.0.2.7"]).await, "192.0.2.7");
        assert_eq!(seen(&proxy, "10.0.0.1", &["192.0.2.8"]).await, "192.0.2.8");
        // A client's own X-Forwarded-For claim is left of what the proxy appended.
        assert_eq!(
            seen(&proxy, "10.0.0.1", &["203.0.113.9, 192.0.2.7"]).await,
            "192.0.2.7"
        );
        // Chained trusted proxies are skipped, across several header fields.
        let chain = ["10.0.0.1", "10.0.0.2"];
        assert_eq!(
            seen(&chain, "10.0.0.1", &["198.51.100.3", "10.0.0.2"]).await,
            "198.51.100.3"
        );
        // A mapped IPv4 peer counts as its IPv4 address.
        assert_eq!(
            seen(&proxy, "::ffff:10.0.0.1", &["192.0.2.7"]).await,
            "192.0.2.7"
        );
    }

    #[tokio::test]
    async fn x_forwarded_for_is_ignored_from_untrusted_peers_and_when_malformed() {
        // No proxy configured, or a peer that is not one: the header is a client's claim.
        assert_eq!(
            seen(&[], "198.51.100.1", &["192.0.2.7"]).await,
            "198.51.100.1"
        );
        assert_eq!(
            seen(&["10.0.0.1"], "198.51.100.1", &["192.0.2.7"]).await,
            "198.51.100.1"
        );
        // Garbage in the chain: the proxy's own address, not the claim left of it.
        assert_eq!(
            seen(&["10.0.0.1"], "10.0.0.1", &["192.0.2.7, nonsense"]).await,
            "10.0.0.1"
        );
        // No header at all.
        assert_eq!(seen(&["10.0.0.1"], "10.0.0.1", &[]).await, "10.0.0.1");
    }
}
