//! The console's errors and how they are answered: RFC 9457 problem documents on the JSON API,
//! a short HTML page on the pages. Internal failures are logged with detail and answered with a
//! generic 500.

use crate::store::StoreError;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use cairn_dap_aggregator::DatastoreError;

/// Why a console request failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConsoleError {
    /// The configuration is not valid (at start).
    #[error("console configuration: {0}")]
    Config(String),
    /// The console's tables failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The DAP datastore failed (counters, sealing).
    #[error(transparent)]
    Datastore(#[from] DatastoreError),
    /// A template failed to render (a bug).
    #[error("template: {0}")]
    Template(#[from] minijinja::Error),
    /// No such page, or not one the caller may see (the two are answered alike).
    #[error("not found")]
    NotFound,
    /// Not logged in, or no valid API token.
    #[error("unauthorized")]
    Unauthorized,
    /// A state-changing request without the session's CSRF token.
    #[error("forbidden: {0}")]
    Forbidden(&'static str),
    /// The request is not valid; the detail is for the user.
    #[error("{0}")]
    BadRequest(String),
    /// Too many failed log-ins; retry after this many seconds.
    #[error("too many failed log-ins; try again in {0} s")]
    TooManyRequests(u64),
    /// An aggregator refused or could not be reached; the detail is for the user.
    #[error("{0}")]
    Aggregator(String),
    /// Something internal (randomness, hashing).
    #[error("internal: {0}")]
    Internal(&'static str),
}

impl ConsoleError {
    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            ConsoleError::NotFound => StatusCode::NOT_FOUND,
            ConsoleError::Unauthorized => StatusCode::UNAUTHORIZED,
            ConsoleError::Forbidden(_) => StatusCode::FORBIDDEN,
            ConsoleError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ConsoleError::TooManyRequests(_) => StatusCode::TOO_MANY_REQUESTS,
            ConsoleError::Aggregator(_) => StatusCode::BAD_GATEWAY,
            ConsoleError::Store(StoreError::Conflict(_)) => StatusCode::CONFLICT,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// What the user is told (internal detail stays in the log).
    pub fn public_detail(&self) -> String {
        if self.status() == StatusCode::INTERNAL_SERVER_ERROR {
            tracing::error!(error = %self, "console request failed");
            "internal error".into()
        } else {
            self.to_string()
        }
    }

    fn retry_after(&self, resp: &mut Response) {
        if let ConsoleError::TooManyRequests(s) = self {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(*s));
        }
    }

    /// An HTML answer (for the pages).
    pub fn into_page(self) -> Response {
        let status = self.status();
        let detail = self.public_detail();
        let body = format!(
            "<!doctype html><html><head><meta charset=\"utf-8\"><title>{s}</title>\
             <link rel=\"stylesheet\" href=\"{m}/assets/console.css\"></head><body><main>\
             <h1>{s}</h1><p class=\"error\">{d}</p><p><a href=\"{m}/accounts\">Back to the console</a></p>\
             </main></body></html>",
            s = status,
            m = crate::MOUNT,
            d = minijinja::HtmlEscape(&detail),
        );
        let mut resp = (status, axum::response::Html(body)).into_response();
        self.retry_after(&mut resp);
        resp
    }
}

impl IntoResponse for ConsoleError {
    fn into_response(self) -> Response {
        let status = self.status();
        let body = serde_json::json!({
            "type": "about:blank",
            "title": status.canonical_reason().unwrap_or("error"),
            "status": status.as_u16(),
            "detail": self.public_detail(),
        });
        let mut resp = (status, body.to_string()).into_response();
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if status == StatusCode::UNAUTHORIZED {
            resp.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        self.retry_after(&mut resp);
        resp
    }
}
