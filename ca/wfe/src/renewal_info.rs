//! The `renewalInfo` resource (RFC 9773 §4): unauthenticated, cacheable GETs of a
//! certificate's suggested renewal window.

use crate::WfeState;
use crate::response::{AcmeResponse, ProblemResponse};
use axum::extract::Path;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

pub(crate) async fn renewal_info(
    state: WfeState,
    Path(id): Path<String>,
) -> Result<Response, ProblemResponse> {
    let wfe = &state.0;
    let info = wfe.ra.renewal_info(&id).await?;
    let mut body = json!({
        "suggestedWindow": {
            "start": crate::render::rfc3339(info.start),
            "end": crate::render::rfc3339(info.end),
        }
    });
    if let Some(url) = &info.explanation_url {
        body["explanationURL"] = json!(url);
    }
    let mut resp = AcmeResponse::json(&body)
        .retry_after(info.retry_after_secs)
        .into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("public, max-age={}", info.retry_after_secs)) {
        resp.headers_mut().insert(header::CACHE_CONTROL, v);
    }
    Ok(resp)
}
