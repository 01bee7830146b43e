//! Errors at the HTTP edge: DAP-18 problem documents (RFC 9457). Internal failures are logged
//! with detail and answered with a generic 500 — never SQL text or key material.

use crate::datastore::DatastoreError;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use cairn_dap_messages::{DapProblemType, TaskId, media_type};
use thiserror::Error;

/// Why a request failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum Error {
    /// A DAP-defined error.
    #[error("{problem:?}: {detail}")]
    Dap {
        /// The DAP problem type.
        problem: DapProblemType,
        /// Human-readable detail (no secrets).
        detail: String,
        /// The task, when known.
        task_id: Option<TaskId>,
    },
    /// Missing or wrong bearer token. DAP-18 registers no problem type for this, and forbids
    /// inventing one in its namespace, so the response is a plain 403 `about:blank` problem.
    #[error("unauthorized")]
    Unauthorized,
    /// The resource does not exist (a route-level 404 outside DAP's types).
    #[error("not found")]
    NotFound,
    /// The resource existed but was deleted (an aggregation job the leader abandoned). DAP-18
    /// registers no problem type for this, so it is a 410 `about:blank` problem.
    #[error("gone")]
    Gone,
    /// The request is not valid for the control-plane API.
    #[error("bad request: {0}")]
    BadRequest(String),
    /// Storage failed.
    #[error(transparent)]
    Datastore(#[from] DatastoreError),
    /// Anything else internal.
    #[error("internal: {0}")]
    Internal(String),
    /// An upload limit was reached; retry after this many seconds (429 `about:blank`
    /// problem with `Retry-After`; DAP-18 registers no problem type for it).
    #[error("too many requests (retry after {0} s)")]
    TooManyRequests(u64),
}

impl Error {
    /// A DAP error about `task_id`.
    pub fn dap(
        problem: DapProblemType,
        task_id: Option<TaskId>,
        detail: impl Into<String>,
    ) -> Self {
        Error::Dap {
            problem,
            detail: detail.into(),
            task_id,
        }
    }

    /// `invalidMessage` about `task_id`: the request is malformed or inconsistent.
    pub(crate) fn invalid_message(task_id: &TaskId, detail: impl Into<String>) -> Self {
        Error::dap(DapProblemType::InvalidMessage, Some(*task_id), detail)
    }
}

fn problem(status: StatusCode, body: serde_json::Value) -> Response {
    let mut resp = (status, body.to_string()).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(media_type::PROBLEM_JSON),
    );
    resp
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        match self {
            Error::Dap {
                problem: p,
                detail,
                task_id,
            } => {
                let status =
                    StatusCode::from_u16(p.http_status()).unwrap_or(StatusCode::BAD_REQUEST);
                metrics::counter!("cairn_dap_problems_total", "type" => p.token()).increment(1);
                let mut body = serde_json::json!({
                    "type": p.urn(),
                    "title": p.token(),
                    "status": status.as_u16(),
                    "detail": detail,
                });
                if let Some(t) = task_id {
                    body["taskid"] = serde_json::Value::String(t.to_string());
                }
                problem(status, body)
            }
            Error::Unauthorized => problem(
                StatusCode::FORBIDDEN,
                serde_json::json!({"type": "about:blank", "title": "Forbidden", "status": 403}),
            ),
            Error::NotFound => problem(
                StatusCode::NOT_FOUND,
                serde_json::json!({"type": "about:blank", "title": "Not Found", "status": 404}),
            ),
            Error::Gone => problem(
                StatusCode::GONE,
                serde_json::json!({"type": "about:blank", "title": "Gone", "status": 410}),
            ),
            Error::BadRequest(detail) => problem(
                StatusCode::BAD_REQUEST,
                serde_json::json!({"type": "about:blank", "title": "Bad Request", "status": 400, "detail": detail}),
            ),
            Error::Datastore(e) => {
                tracing::error!(error = %e, "datastore failure");
                internal()
            }
            Error::Internal(e) => {
                tracing::error!(error = %e, "internal failure");
                internal()
            }
            Error::TooManyRequests(secs) => {
                let mut resp = problem(
                    StatusCode::TOO_MANY_REQUESTS,
                    serde_json::json!({"type": "about:blank", "title": "Too Many Requests",
                        "status": 429, "detail": "upload limit reached"}),
                );
                resp.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(secs));
                resp
            }
        }
    }
}

fn internal() -> Response {
    problem(
        StatusCode::INTERNAL_SERVER_ERROR,
        serde_json::json!({"type": "about:blank", "title": "serverInternal", "status": 500}),
    )
}
