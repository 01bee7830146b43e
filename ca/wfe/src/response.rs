//! HTTP responses: problem documents and resource bodies with their ACME headers.

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use cairn_core::Problem;

/// A problem document response (`application/problem+json`).
#[derive(Debug)]
pub(crate) struct ProblemResponse {
    problem: Box<Problem>,
    location: Option<String>,
}

impl ProblemResponse {
    /// Adds a `Location` header (key-change conflicts name the key's account, §7.3.5).
    pub(crate) fn with_location(mut self, url: String) -> Self {
        self.location = Some(url);
        self
    }
}

impl From<Problem> for ProblemResponse {
    fn from(problem: Problem) -> Self {
        Self {
            problem: Box::new(problem),
            location: None,
        }
    }
}

impl IntoResponse for ProblemResponse {
    fn into_response(self) -> Response {
        let p = *self.problem;
        let status = StatusCode::from_u16(p.status).unwrap_or(StatusCode::BAD_REQUEST);
        let problem = SentProblem(p.typ.urn());
        let body = serde_json::to_vec(&p).unwrap_or_else(|_| b"{}".to_vec());
        let mut resp = Response::new(Body::from(body));
        *resp.status_mut() = status;
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if let Some(secs) = p.retry_after
            && let Ok(v) = HeaderValue::from_str(&secs.to_string())
        {
            resp.headers_mut().insert(header::RETRY_AFTER, v);
        }
        if let Some(loc) = self.location
            && let Ok(v) = HeaderValue::from_str(&loc)
        {
            resp.headers_mut().insert(header::LOCATION, v);
        }
        if let Some(help) = &p.help_url
            && let Ok(v) = HeaderValue::from_str(&format!("<{help}>;rel=\"help\""))
        {
            resp.headers_mut().append(header::LINK, v);
        }
        resp.extensions_mut().insert(problem);
        resp
    }
}

/// The problem type a response carries, for the request log line (a response extension; never
/// sent).
#[derive(Debug, Clone)]
pub(crate) struct SentProblem(pub(crate) String);

/// Result type of handlers.
pub(crate) type AcmeResult = Result<AcmeResponse, ProblemResponse>;

/// A successful ACME response.
#[derive(Debug)]
pub(crate) struct AcmeResponse {
    status: StatusCode,
    content_type: &'static str,
    body: Vec<u8>,
    location: Option<String>,
    links: Vec<String>,
    retry_after: Option<u64>,
}

impl AcmeResponse {
    /// A JSON body.
    pub(crate) fn json(value: &serde_json::Value) -> Self {
        Self {
            status: StatusCode::OK,
            content_type: "application/json",
            body: serde_json::to_vec(value).unwrap_or_default(),
            location: None,
            links: Vec::new(),
            retry_after: None,
        }
    }

    /// Any body with a content type.
    pub(crate) fn bytes(content_type: &'static str, body: Vec<u8>) -> Self {
        Self {
            content_type,
            body,
            ..Self::json(&serde_json::Value::Null)
        }
    }

    /// An empty 200.
    pub(crate) fn empty() -> Self {
        Self::bytes("text/plain", Vec::new())
    }

    pub(crate) fn status(mut self, s: StatusCode) -> Self {
        self.status = s;
        self
    }

    pub(crate) fn location(mut self, url: String) -> Self {
        self.location = Some(url);
        self
    }

    pub(crate) fn link(mut self, url: &str, rel: &str) -> Self {
        self.links.push(format!("<{url}>;rel=\"{rel}\""));
        self
    }

    pub(crate) fn retry_after(mut self, secs: u64) -> Self {
        self.retry_after = Some(secs);
        self
    }
}

impl IntoResponse for AcmeResponse {
    fn into_response(self) -> Response {
        let mut resp = Response::new(Body::from(self.body));
        *resp.status_mut() = self.status;
        let h = resp.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(self.content_type),
        );
        if let Some(loc) = self.location
            && let Ok(v) = HeaderValue::from_str(&loc)
        {
            h.insert(header::LOCATION, v);
        }
        for l in self.links {
            if let Ok(v) = HeaderValue::from_str(&l) {
                h.append(header::LINK, v);
            }
        }
        if let Some(secs) = self.retry_after
            && let Ok(v) = HeaderValue::from_str(&secs.to_string())
        {
            h.insert(header::RETRY_AFTER, v);
        }
        resp
    }
}

/// 404 for unknown paths, as a problem document.
pub(crate) async fn not_found() -> ProblemResponse {
    Problem::not_found("no such resource").into()
}

/// 405 for a known path with the wrong method.
pub(crate) async fn method_not_allowed() -> ProblemResponse {
    Problem::new(
        cairn_core::ProblemType::MethodNotAllowed,
        "method not allowed on this resource",
    )
    .into()
}
