//! Request metrics every listener exports, so the service-level indicators in
//! `deploy/prometheus/` see the ACME API, the public CRL/OCSP listener, the CT log and the DAP
//! aggregators alike:
//!
//! - `cairn_http_requests_total{listener, endpoint, method, status}`: one per answered request;
//! - `cairn_http_request_seconds{listener, endpoint}`: time to the response head.
//!
//! `endpoint` is the route template (`/acme/order/{id}`), never the request path, and `method`
//! and `status` come from fixed sets, so no client can grow the label space. A request that
//! matches no route counts as `unmatched`. Whether a status is the client's mistake (4xx) or
//! the service's (5xx) is for the recording rules to decide; the status is kept as sent.

use axum::Router;
use axum::extract::{MatchedPath, Request};
use axum::middleware::{self, Next};
use axum::response::Response;
use std::time::Instant;

/// `app` with every request counted and timed under `listener`.
pub(crate) fn instrument(app: Router, listener: &'static str) -> Router {
    app.layer(middleware::from_fn(move |req: Request, next: Next| {
        count(listener, req, next)
    }))
}

async fn count(listener: &'static str, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let endpoint = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = method_label(req.method());
    let resp = next.run(req).await;
    let status = resp.status().as_u16().to_string();
    metrics::counter!("cairn_http_requests_total",
        "listener" => listener, "endpoint" => endpoint.clone(), "method" => method, "status" => status)
    .increment(1);
    metrics::histogram!("cairn_http_request_seconds", "listener" => listener, "endpoint" => endpoint)
        .record(started.elapsed().as_secs_f64());
    resp
}

/// The metrics label of a request method: the methods of RFC 9110 by name, any other token
/// (clients choose them freely) as `other`, so the label's values stay a fixed set.
fn method_label(method: &http::Method) -> &'static str {
    use http::Method;
    const KNOWN: [(Method, &str); 9] = [
        (Method::GET, "GET"),
        (Method::HEAD, "HEAD"),
        (Method::POST, "POST"),
        (Method::PUT, "PUT"),
        (Method::DELETE, "DELETE"),
        (Method::OPTIONS, "OPTIONS"),
        (Method::PATCH, "PATCH"),
        (Method::TRACE, "TRACE"),
        (Method::CONNECT, "CONNECT"),
    ];
    KNOWN
        .iter()
        .find(|(m, _)| m == method)
        .map_or("other", |(_, name)| name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_methods_share_one_label() {
        assert_eq!(method_label(&http::Method::POST), "POST");
        let odd = http::Method::from_bytes(b"BREW").unwrap();
        assert_eq!(method_label(&odd), "other");
    }
}
