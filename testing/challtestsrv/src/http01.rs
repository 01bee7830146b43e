//! The HTTP-01 responder: key authorizations, redirects and request history, over plain HTTP or
//! (from the TLS-ALPN-01 port) HTTPS.

use crate::state::{ChallTestSrv, HttpRequestEvent};
use axum::body::Body;
use axum::http::{Request, Response, StatusCode, header};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use std::convert::Infallible;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::watch;

/// The path prefix of HTTP-01 challenge responses.
const WELL_KNOWN: &str = "/.well-known/acme-challenge/";

/// How a request reached the responder.
#[derive(Debug, Clone, Default)]
pub(crate) struct ConnInfo {
    /// Over TLS.
    pub(crate) https: bool,
    /// The TLS SNI.
    pub(crate) server_name: String,
}

fn respond(status: StatusCode, body: impl Into<Body>) -> Response<Body> {
    let mut resp = Response::new(body.into());
    *resp.status_mut() = status;
    resp
}

/// Answers one request.
pub(crate) fn handle(
    srv: &ChallTestSrv,
    req: &Request<Incoming>,
    conn: &ConnInfo,
) -> Response<Body> {
    let header_str = |name: header::HeaderName| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    let host = match req.uri().authority() {
        Some(a) => a.to_string(),
        None => header_str(header::HOST),
    };
    let url = req
        .uri()
        .path_and_query()
        .map(|p| p.to_string())
        .unwrap_or_else(|| "/".into());
    srv.record_http(HttpRequestEvent {
        url,
        host,
        https: conn.https,
        server_name: conn.server_name.clone(),
        user_agent: header_str(header::USER_AGENT),
        method: req.method().to_string(),
    });
    let path = req.uri().path();
    if !conn.https
        && let Some(target) = srv.redirect_for(path)
    {
        let mut resp = respond(StatusCode::FOUND, Body::empty());
        if let Ok(v) = header::HeaderValue::from_str(&target) {
            resp.headers_mut().insert(header::LOCATION, v);
        }
        return resp;
    }
    if let Some(token) = path.strip_prefix(WELL_KNOWN)
        && let Some(content) = srv.http01_content(token)
    {
        let mut resp = respond(StatusCode::OK, content);
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            header::HeaderValue::from_static("text/plain"),
        );
        return resp;
    }
    respond(StatusCode::NOT_FOUND, "not found\n")
}

/// Serves HTTP/1.1 (and h2 when negotiated) on one established connection.
pub(crate) async fn serve_connection<IO>(srv: ChallTestSrv, io: IO, conn: ConnInfo)
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
        let resp = handle(&srv, &req, &conn);
        async move { Ok::<_, Infallible>(resp) }
    });
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder.http1().keep_alive(false);
    if let Err(error) = builder.serve_connection(TokioIo::new(io), svc).await {
        tracing::debug!(%error, "HTTP-01 connection ended with an error");
    }
}

/// Accepts plain-HTTP connections until shutdown.
pub(crate) async fn run(
    srv: ChallTestSrv,
    listener: TcpListener,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = shutdown.changed() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    tokio::spawn(serve_connection(srv.clone(), stream, ConnInfo::default()));
                }
                Err(error) => tracing::warn!(%error, "HTTP-01 accept failed"),
            },
        }
    }
}
