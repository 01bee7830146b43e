//! The responder on HTTP (RFC 6960 Appendix A, RFC 5019 §5–6): `GET /ocsp/{base64 request}` and
//! `POST /ocsp` with `application/ocsp-request`. Every answer is an `application/ocsp-response`
//! (OCSP error statuses included), with RFC 5019 caching headers for signed answers; only a POST
//! of another media type gets a 400, and storage trouble a 503.

use super::responder::{Answer, OcspResponder, error_answer};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use cairn_ocsp::MAX_REQUEST_SIZE;
use cairn_ocsp::asn1::OcspResponseStatus;
use std::sync::Arc;
use time::OffsetDateTime;

/// The responder's routes, to merge into the public listener's router.
pub fn router(responder: Arc<OcspResponder>) -> Router {
    Router::new()
        .route("/ocsp", post(post_request).get(get_empty))
        .route("/ocsp/", post(post_request).get(get_empty))
        .route("/ocsp/{*request}", get(get_request))
        .layer(DefaultBodyLimit::max(MAX_REQUEST_SIZE))
        .with_state(responder)
}

/// `GET /ocsp/{base64(DER OCSPRequest)}` (RFC 6960 Appendix A.1, RFC 5019 §5).
async fn get_request(
    State(responder): State<Arc<OcspResponder>>,
    Path(encoded): Path<String>,
    headers: HeaderMap,
) -> Response {
    let Some(der) = decode_get_path(&encoded) else {
        return ocsp_response(
            StatusCode::OK,
            &error_answer(OcspResponseStatus::MalformedRequest, "malformed"),
            None,
        );
    };
    let answer = responder.respond(&der).await;
    ocsp_response(StatusCode::OK, &answer, Some(&headers))
}

/// `GET /ocsp` without a request.
async fn get_empty() -> Response {
    ocsp_response(
        StatusCode::OK,
        &error_answer(OcspResponseStatus::MalformedRequest, "malformed"),
        None,
    )
}

/// `POST /ocsp` with `Content-Type: application/ocsp-request`.
async fn post_request(
    State(responder): State<Arc<OcspResponder>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase());
    if content_type.as_deref() != Some("application/ocsp-request") {
        return ocsp_response(
            StatusCode::BAD_REQUEST,
            &error_answer(OcspResponseStatus::MalformedRequest, "malformed"),
            None,
        );
    }
    let answer = responder.respond(&body).await;
    ocsp_response(StatusCode::OK, &answer, None)
}

/// The request of a GET path: base64 (standard or URL-safe alphabet, padding optional), after
/// the percent-decoding the router already did.
fn decode_get_path(encoded: &str) -> Option<Vec<u8>> {
    use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
    let lenient =
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);
    let standard = GeneralPurpose::new(&base64::alphabet::STANDARD, lenient);
    let url_safe = GeneralPurpose::new(&base64::alphabet::URL_SAFE, lenient);
    let trimmed = encoded.trim();
    if trimmed.is_empty() || trimmed.len() > MAX_REQUEST_SIZE * 2 {
        return None;
    }
    standard
        .decode(trimmed)
        .or_else(|_| url_safe.decode(trimmed))
        .ok()
}

/// An `application/ocsp-response` with RFC 5019 §6 caching headers for successful answers
/// (Last-Modified = thisUpdate, Expires = nextUpdate, max-age until the answer leaves the cache,
/// ETag), and `304 Not Modified` for a GET whose `If-None-Match` names the current answer.
fn ocsp_response(status: StatusCode, answer: &Answer, request: Option<&HeaderMap>) -> Response {
    let status = if answer.try_later {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        status
    };
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/ocsp-response"),
    );
    let Some(meta) = &answer.cached else {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        return (status, headers, answer.der.clone()).into_response();
    };
    let now = OffsetDateTime::now_utc();
    let etag = format!("\"{}\"", etag(&answer.der));
    let values = [
        (header::ETAG, Some(etag.clone())),
        (
            header::CACHE_CONTROL,
            Some(format!(
                "public, max-age={}, no-transform, must-revalidate",
                meta.ttl_seconds(now)
            )),
        ),
        (header::LAST_MODIFIED, http_date(meta.this_update)),
        (header::EXPIRES, http_date(meta.next_update)),
    ];
    for (name, value) in values {
        if let Some(v) = value.and_then(|v| HeaderValue::from_str(&v).ok()) {
            headers.insert(name, v);
        }
    }
    let not_modified = request
        .and_then(|h| h.get(header::IF_NONE_MATCH))
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    if not_modified {
        return (StatusCode::NOT_MODIFIED, headers).into_response();
    }
    (status, headers, answer.der.clone()).into_response()
}

fn etag(der: &[u8]) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, der);
    digest.as_ref()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// An IMF-fixdate (RFC 9110 §5.6.7).
fn http_date(unix: i64) -> Option<String> {
    let format = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    OffsetDateTime::from_unix_timestamp(unix)
        .ok()?
        .format(format)
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_dates_are_imf_fixdates() {
        assert_eq!(
            http_date(784_111_777).as_deref(),
            Some("Sun, 06 Nov 1994 08:49:37 GMT")
        );
    }

    #[test]
    fn get_paths_decode_in_either_alphabet_with_or_without_padding() {
        let der = vec![0xfb, 0xff, 0x30, 0x01];
        for form in ["+/8wAQ==", "+/8wAQ", "-_8wAQ==", "-_8wAQ"] {
            assert_eq!(decode_get_path(form), Some(der.clone()), "{form}");
        }
        assert_eq!(decode_get_path(""), None);
        assert_eq!(decode_get_path("not base64!"), None);
    }
}
