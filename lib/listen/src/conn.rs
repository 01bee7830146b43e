//! One accepted connection: hyper's HTTP/1 and HTTP/2 server with its timers set, each request's
//! body bounded in time and size, and a watchdog that closes the connection once it has had no
//! request in flight for the idle timeout or when the listener shuts down.

use crate::Limits;
use crate::body::DeadlineBody;
use axum::Router;
use axum::extract::ConnectInfo;
use http_body_util::{BodyExt, Limited};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;
use tokio::time::Instant;
use tower::ServiceExt;

/// What a connection task needs from its listener.
pub(crate) struct Connection {
    pub(crate) peer: SocketAddr,
    pub(crate) app: Router,
    pub(crate) limits: Arc<Limits>,
    pub(crate) stop: watch::Receiver<bool>,
    /// The client's certificate chain, when the TLS handshake asked for one and got it.
    pub(crate) peer_certificates: Option<crate::PeerCertificates>,
}

impl Connection {
    /// Serves requests on `io` until the client closes, a bound is hit or the listener stops.
    pub(crate) async fn serve<I>(mut self, io: I)
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let activity = Arc::new(Activity::new());
        let service = {
            let activity = activity.clone();
            let app = self.app.clone();
            let peer = self.peer;
            let limits = self.limits.clone();
            let peer_certificates = self.peer_certificates.clone();
            tower::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                let busy = activity.start();
                let app = app.clone();
                let deadline = Instant::now() + limits.body_timeout;
                let max_body = limits.max_body_bytes;
                let peer_certificates = peer_certificates.clone();
                async move {
                    let mut req = req.map(|body| {
                        axum::body::Body::new(Limited::new(
                            DeadlineBody::new(body, deadline),
                            max_body,
                        ))
                    });
                    req.extensions_mut().insert(ConnectInfo(peer));
                    if let Some(certs) = peer_certificates {
                        req.extensions_mut().insert(certs);
                    }
                    let resp = app.oneshot(req).await?;
                    // The request stays in flight until its response body is written or dropped.
                    Ok::<_, std::convert::Infallible>(resp.map(|body| {
                        axum::body::Body::new(body.map_frame(move |frame| {
                            let _ = &busy;
                            frame
                        }))
                    }))
                }
            })
        };
        let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(self.limits.header_timeout);
        builder.http2().timer(TokioTimer::new());
        let conn = builder.serve_connection(TokioIo::new(io), TowerToHyperService::new(service));
        tokio::pin!(conn);
        let grace = tokio::select! {
            _ = conn.as_mut() => return,
            _ = self.stop.wait_for(|stopping| *stopping) => self.limits.shutdown_grace,
            () = activity.idle_for(self.limits.idle_timeout) => self.limits.header_timeout,
        };
        conn.as_mut().graceful_shutdown();
        let _ = tokio::time::timeout(grace, conn).await;
    }
}

/// Requests in flight on a connection, and since when it has had none.
struct Activity {
    in_flight: AtomicUsize,
    idle_since: Mutex<Instant>,
}

impl Activity {
    fn new() -> Self {
        Self {
            in_flight: AtomicUsize::new(0),
            idle_since: Mutex::new(Instant::now()),
        }
    }

    /// Marks a request in flight until the guard drops.
    fn start(self: &Arc<Self>) -> Busy {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        Busy(self.clone())
    }

    fn idle_since(&self) -> Instant {
        *self.idle_since.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Completes once no request has been in flight for `limit`.
    async fn idle_for(&self, limit: Duration) {
        loop {
            let wake = if self.in_flight.load(Ordering::SeqCst) > 0 {
                Instant::now() + limit
            } else {
                let due = self.idle_since() + limit;
                if Instant::now() >= due {
                    return;
                }
                due
            };
            tokio::time::sleep_until(wake).await;
        }
    }
}

/// A request in flight.
struct Busy(Arc<Activity>);

impl Drop for Busy {
    fn drop(&mut self) {
        *self.0.idle_since.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}
