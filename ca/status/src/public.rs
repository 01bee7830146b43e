//! The public plain-HTTP listener for revocation and issuer data: the URLs that certificates
//! name in their CRL Distribution Points and Authority Information Access extensions, which the
//! Baseline Requirements want as `http://` (a relying party checking revocation cannot depend on
//! TLS that itself needs revocation checking). It is separate from the ACME listener so it can be
//! exposed (or put behind a CDN) on its own.
//!
//! Routes: `GET /issuer/{issuer_id}.der`, a CA certificate in DER (AIA caIssuers), and
//! `GET /crl/{issuer_id}/{shard}.crl`, a CRL in DER as the CRL updater last stored it. The OCSP
//! responder's routes are merged in when it runs. Its address and external base URL are the
//! binary's `server.public_listen` and `server.public_base_url` (next to its other listeners);
//! [`check_base_url`] and [`default_base_url`] are their rules.

use crate::ConfigError;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use std::collections::BTreeMap;
use std::sync::Arc;

/// What the public listener serves, assembled by the server.
#[derive(Clone, Default)]
pub struct PublicParts {
    /// CA certificates (DER) by issuer ID: the intermediates and the root.
    pub issuer_certificates: BTreeMap<String, Vec<u8>>,
    /// Where the CRLs are stored (none: `/crl/…` answers 404).
    pub crls: Option<Arc<dyn cairn_api::StorageAuthority>>,
}

impl std::fmt::Debug for PublicParts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PublicParts")
            .field("issuers", &self.issuer_certificates.keys())
            .field("crls", &self.crls.is_some())
            .finish()
    }
}

/// The public router built from its parts. Other components add their own public routes with
/// `.merge()` on the result (the OCSP responder: [`crate::ocsp::router`]).
pub fn router(parts: PublicParts) -> Router {
    Router::new()
        .route("/issuer/{file}", get(issuer_certificate))
        .route("/crl/{issuer_id}/{file}", get(crl))
        .with_state(Arc::new(parts))
}

/// `GET /issuer/{issuer_id}.der`.
async fn issuer_certificate(
    State(parts): State<Arc<PublicParts>>,
    Path(file): Path<String>,
) -> Response {
    let Some(der) = file
        .strip_suffix(".der")
        .and_then(|id| parts.issuer_certificates.get(id))
    else {
        return not_found();
    };
    der_response(der.clone(), "application/pkix-cert", 86_400)
}

/// `GET /crl/{issuer_id}/{shard}.crl`.
async fn crl(
    State(parts): State<Arc<PublicParts>>,
    Path((issuer_id, file)): Path<(String, String)>,
) -> Response {
    let Some(sa) = &parts.crls else {
        return not_found();
    };
    let Some(shard) = file
        .strip_suffix(".crl")
        .filter(|s| !s.is_empty() && s.len() <= 5 && s.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|s| s.parse::<u32>().ok())
    else {
        return not_found();
    };
    if !parts.issuer_certificates.contains_key(&issuer_id) {
        return not_found();
    }
    match sa.get_crl(&issuer_id, shard).await {
        Ok(crl) => {
            // Caches may keep it until the next update is due, at most an hour.
            let left = (crl.info.next_update - time::OffsetDateTime::now_utc()).whole_seconds();
            let max_age = u64::try_from(left).unwrap_or(0).min(3600);
            der_response(crl.der, "application/pkix-crl", max_age)
        }
        Err(cairn_api::SaError::NotFound) => not_found(),
        Err(e) => {
            tracing::error!(error = %e, issuer_id, shard, "loading a CRL");
            (StatusCode::INTERNAL_SERVER_ERROR, "internal error\n").into_response()
        }
    }
}

/// A DER body with its media type, cacheable for `max_age` seconds.
fn der_response(body: Vec<u8>, media_type: &'static str, max_age: u64) -> Response {
    let mut resp = body.into_response();
    let headers = resp.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(media_type));
    if let Ok(v) = HeaderValue::from_str(&format!("public, max-age={max_age}")) {
        headers.insert(header::CACHE_CONTROL, v);
    }
    resp
}

/// A plain 404.
fn not_found() -> Response {
    (StatusCode::NOT_FOUND, "not found\n").into_response()
}

/// Checks a configured public base URL: certificates name URLs under it, and the Baseline
/// Requirements want CRL and caIssuers URLs over plain HTTP.
pub fn check_base_url(url: &str) -> Result<(), ConfigError> {
    crate::ensure(
        url.starts_with("http://") && url.len() > "http://".len() && !url.ends_with('/'),
        "server.public_base_url must be an http:// URL without a trailing slash (the Baseline \
         Requirements want CRL and caIssuers URLs over plain HTTP)",
    )
}

/// The public base URL for a listener bound to `addr` when none is configured:
/// `http://localhost:<port>` for loopback and unspecified addresses, else `http://<ip>:<port>`.
pub fn default_base_url(addr: std::net::SocketAddr) -> String {
    let ip = addr.ip();
    if ip.is_unspecified() || ip.is_loopback() {
        format!("http://localhost:{}", addr.port())
    } else if ip.is_ipv6() {
        format!("http://[{ip}]:{}", addr.port())
    } else {
        format!("http://{ip}:{}", addr.port())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use cairn_api::StorageAuthority;
    use tower::ServiceExt;

    #[tokio::test]
    async fn issuer_certificates_are_served_by_id_and_unknown_ids_are_404() {
        let mut parts = PublicParts::default();
        parts
            .issuer_certificates
            .insert("abcd".into(), vec![0x30, 0x03, 0x02, 0x01, 0x01]);
        let app = router(parts);
        let get = |uri: &str| {
            app.clone()
                .oneshot(Request::get(uri).body(Body::empty()).unwrap())
        };
        let resp = get("/issuer/abcd.der").await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(
            resp.headers()[header::CONTENT_TYPE],
            "application/pkix-cert"
        );
        let body = axum::body::to_bytes(resp.into_body(), 1024).await.unwrap();
        assert_eq!(&body[..], &[0x30, 0x03, 0x02, 0x01, 0x01]);
        for uri in [
            "/issuer/abcd",
            "/issuer/abce.der",
            "/issuer/.der",
            "/issuer/abcd.pem",
        ] {
            assert_eq!(
                get(uri).await.unwrap().status(),
                StatusCode::NOT_FOUND,
                "{uri}"
            );
        }
    }

    #[tokio::test]
    async fn crls_are_served_as_stored_with_a_max_age_until_their_next_update() {
        let sa = cairn_api::fake::MemoryStorage::new();
        let now = time::OffsetDateTime::now_utc()
            .replace_nanosecond(0)
            .unwrap();
        let der = vec![0x30, 0x02, 0x05, 0x00];
        sa.put_crl(&cairn_api::StoredCrl {
            info: cairn_api::CrlInfo {
                issuer_id: "abcd".into(),
                shard: 3,
                number: 1,
                this_update: now,
                next_update: now + time::Duration::minutes(10),
                entries: 0,
            },
            der: der.clone(),
        })
        .await
        .unwrap();
        let mut parts = PublicParts {
            crls: Some(Arc::new(sa)),
            ..PublicParts::default()
        };
        parts
            .issuer_certificates
            .insert("abcd".into(), vec![0x30, 0x00]);
        let app = router(parts);
        let get = |uri: &str| {
            app.clone()
                .oneshot(Request::get(uri).body(Body::empty()).unwrap())
        };
        let resp = get("/crl/abcd/3.crl").await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(resp.headers()[header::CONTENT_TYPE], "application/pkix-crl");
        let cache = resp.headers()[header::CACHE_CONTROL]
            .to_str()
            .unwrap()
            .to_owned();
        let max_age: u64 = cache
            .strip_prefix("public, max-age=")
            .unwrap()
            .parse()
            .unwrap();
        assert!((500..=600).contains(&max_age), "{cache}");
        let body = axum::body::to_bytes(resp.into_body(), 1024).await.unwrap();
        assert_eq!(&body[..], &der[..]);
        for uri in [
            "/crl/abcd/2.crl",
            "/crl/abcd/3",
            "/crl/abcd/+3.crl",
            "/crl/abcd/123456.crl",
            "/crl/other/3.crl",
        ] {
            assert_eq!(
                get(uri).await.unwrap().status(),
                StatusCode::NOT_FOUND,
                "{uri}"
            );
        }
    }

    #[test]
    fn base_urls_must_be_plain_http_without_a_trailing_slash() {
        assert!(check_base_url("http://crl.example").is_ok());
        assert!(check_base_url("http://crl.example:8080").is_ok());
        for bad in [
            "https://crl.example",
            "http://crl.example/",
            "http://",
            "crl.example",
        ] {
            assert!(check_base_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn default_base_urls() {
        assert_eq!(
            default_base_url("127.0.0.1:14002".parse().unwrap()),
            "http://localhost:14002"
        );
        assert_eq!(
            default_base_url("0.0.0.0:80".parse().unwrap()),
            "http://localhost:80"
        );
        assert_eq!(
            default_base_url("192.0.2.1:8080".parse().unwrap()),
            "http://192.0.2.1:8080"
        );
    }
}
