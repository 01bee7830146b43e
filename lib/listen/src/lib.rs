//! The accept loop every Cairn listener shares (the ACME API, the public CRL/OCSP listener, the
//! CT log, the DAP aggregators, metrics). Each listener faces clients that may never finish what
//! they start, so every stage of a connection has a bound:
//!
//! - the TLS handshake must finish within [`Limits::handshake_timeout`];
//! - an HTTP/1 request head must arrive within [`Limits::header_timeout`] (hyper's header-read
//!   timer, which needs a timer set to run at all);
//! - a request body must arrive whole within [`Limits::body_timeout`] of its head, and be no
//!   larger than [`Limits::max_body_bytes`];
//! - a connection with no request in flight is closed after [`Limits::idle_timeout`]; this also
//!   closes connections that never send a first byte, and HTTP/2 connections that trickle a
//!   header block;
//! - at most [`Limits::max_connections`] connections are open per listener (from the accept to
//!   the close, handshake included). One over the cap is accepted and closed at once, so the
//!   backlog does not fill with clients that will wait in vain.
//!
//! An accept error (EMFILE, ENFILE, ENOBUFS) backs off, doubling from 10 ms to 1 s, and is logged
//! at most once a second with the count of those left unlogged, instead of spinning. On shutdown
//! the loop stops accepting, asks every connection to finish its requests in flight (HTTP/1
//! closes when idle, HTTP/2 sends GOAWAY) and drops those still open after
//! [`Limits::shutdown_grace`].
//!
//! Handlers see the peer's address as axum's `ConnectInfo<SocketAddr>`, over TLS and plain
//! HTTP alike. When the TLS configuration asks for client certificates (mutual TLS between
//! Cairn's own services), handlers also see the client's chain as [`PeerCertificates`].

mod body;
mod conn;
mod nofile;
mod request_metrics;

pub use body::BodyTimeout;
pub use nofile::raise_nofile_limit;

use axum::Router;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::time::Instant;

/// The certificate chain a client presented in the TLS handshake (leaf first), put into every
/// request's extensions on connections whose server configuration verified client certificates.
#[derive(Debug, Clone)]
pub struct PeerCertificates(pub Arc<Vec<rustls::pki_types::CertificateDer<'static>>>);

/// The bounds of one listener. [`Limits::default`] suits a public listener.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Limits {
    /// Time allowed for a TLS handshake (10 s).
    pub handshake_timeout: Duration,
    /// Time allowed for an HTTP/1 request head, from the first byte the connection waits for
    /// (10 s).
    pub header_timeout: Duration,
    /// Time allowed for a whole request body, from its request head (30 s).
    pub body_timeout: Duration,
    /// A connection with no request in flight for this long is closed (60 s).
    pub idle_timeout: Duration,
    /// Open connections per listener (4096); more are closed as soon as they are accepted.
    pub max_connections: usize,
    /// Largest request body the listener reads (16 MiB); handlers may set smaller limits.
    pub max_body_bytes: usize,
    /// On shutdown, time given to requests in flight before their connections are dropped (10 s).
    pub shutdown_grace: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            handshake_timeout: Duration::from_secs(10),
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(60),
            max_connections: 4096,
            max_body_bytes: 16 << 20,
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

impl Limits {
    /// Whether every bound is usable (non-zero).
    pub fn check(&self) -> Result<(), &'static str> {
        let durations = [
            (self.handshake_timeout, "handshake_timeout"),
            (self.header_timeout, "header_timeout"),
            (self.body_timeout, "body_timeout"),
            (self.idle_timeout, "idle_timeout"),
        ];
        for (d, name) in durations {
            if d.is_zero() {
                return Err(name);
            }
        }
        if self.max_connections == 0 {
            return Err("max_connections");
        }
        if self.max_body_bytes == 0 {
            return Err("max_body_bytes");
        }
        Ok(())
    }
}

/// A listener to serve: the socket, a name for logs and metrics, its bounds and, for HTTPS,
/// its TLS configuration.
#[derive(Debug)]
pub struct Listener {
    socket: TcpListener,
    name: &'static str,
    limits: Limits,
    tls: Option<Arc<rustls::ServerConfig>>,
}

impl Listener {
    /// Plain HTTP on `socket`; `name` labels its logs and metrics (`acme`, `public`, `ct`, ...).
    pub fn new(socket: TcpListener, name: &'static str, limits: Limits) -> Self {
        Self {
            socket,
            name,
            limits,
            tls: None,
        }
    }

    /// Serves HTTPS with `config` instead of plain HTTP.
    pub fn with_tls(mut self, config: Arc<rustls::ServerConfig>) -> Self {
        self.tls = Some(config);
        self
    }

    /// The bound address.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.socket.local_addr()
    }

    /// Serves `app` until `shutdown` completes, then lets requests in flight finish (up to
    /// [`Limits::shutdown_grace`]) and returns. Every request is counted and timed under the
    /// listener's name (see `request_metrics`).
    pub async fn serve(self, app: Router, shutdown: impl Future<Output = ()>) {
        let Listener {
            socket,
            name,
            limits,
            tls,
        } = self;
        let app = request_metrics::instrument(app, name);
        let limits = Arc::new(limits);
        let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
        let permits = Arc::new(Semaphore::new(limits.max_connections));
        let (stop_tx, stop_rx) = watch::channel(false);
        // Each connection task holds a sender; `recv` yields `None` once all are gone.
        let (open_tx, mut open_rx) = mpsc::channel::<()>(1);
        let mut accept_errors = Backoff::default();
        let mut refusals = RateLimitedLog::default();
        tokio::pin!(shutdown);
        loop {
            let (stream, peer) = tokio::select! {
                () = &mut shutdown => break,
                accepted = socket.accept() => match accepted {
                    Ok(a) => {
                        accept_errors.reset();
                        a
                    }
                    Err(e) => {
                        let pause = accept_errors.next(name, &e);
                        tokio::select! {
                            () = &mut shutdown => break,
                            () = tokio::time::sleep(pause) => continue,
                        }
                    }
                },
            };
            let Ok(permit) = permits.clone().try_acquire_owned() else {
                metrics::counter!("cairn_listener_connections_refused_total", "listener" => name)
                    .increment(1);
                if let Some(unlogged) = refusals.should_log() {
                    tracing::warn!(
                        listener = name,
                        max_connections = limits.max_connections,
                        unlogged,
                        "connection cap reached; closing new connections"
                    );
                }
                drop(stream);
                continue;
            };
            let _ = stream.set_nodelay(true);
            let conn = conn::Connection {
                peer,
                app: app.clone(),
                limits: limits.clone(),
                stop: stop_rx.clone(),
                peer_certificates: None,
            };
            let acceptor = acceptor.clone();
            let open = open_tx.clone();
            tokio::spawn(async move {
                let _permit = permit;
                let _open = open;
                match acceptor {
                    None => conn.serve(stream).await,
                    Some(acceptor) => {
                        let handshake = tokio::time::timeout(
                            conn.limits.handshake_timeout,
                            acceptor.accept(stream),
                        );
                        if let Ok(Ok(tls)) = handshake.await {
                            let mut conn = conn;
                            conn.peer_certificates = tls
                                .get_ref()
                                .1
                                .peer_certificates()
                                .map(|chain| PeerCertificates(Arc::new(chain.to_vec())));
                            conn.serve(tls).await;
                        }
                    }
                }
            });
        }
        drop(socket);
        let _ = stop_tx.send(true);
        drop(open_tx);
        let _ = tokio::time::timeout(limits.shutdown_grace, open_rx.recv()).await;
    }
}

/// Pauses after accept errors: 10 ms doubling to 1 s, logged at most once a second.
#[derive(Debug, Default)]
struct Backoff {
    pause: Option<Duration>,
    log: RateLimitedLog,
}

impl Backoff {
    const FIRST: Duration = Duration::from_millis(10);
    const MAX: Duration = Duration::from_secs(1);

    fn next(&mut self, name: &'static str, error: &std::io::Error) -> Duration {
        let pause = match self.pause {
            None => Self::FIRST,
            Some(p) => (p * 2).min(Self::MAX),
        };
        self.pause = Some(pause);
        metrics::counter!("cairn_listener_accept_errors_total", "listener" => name).increment(1);
        if let Some(unlogged) = self.log.should_log() {
            tracing::warn!(listener = name, error = %error, ?pause, unlogged, "accept failed; pausing");
        }
        pause
    }

    fn reset(&mut self) {
        self.pause = None;
    }
}

/// Lets a message through at most once a second and counts the ones held back.
#[derive(Debug, Default)]
struct RateLimitedLog {
    last: Option<Instant>,
    unlogged: u64,
}

impl RateLimitedLog {
    /// `Some(held back since the last one)` when this occurrence should be logged.
    fn should_log(&mut self) -> Option<u64> {
        let now = Instant::now();
        match self.last {
            Some(last) if now.duration_since(last) < Duration::from_secs(1) => {
                self.unlogged += 1;
                None
            }
            _ => {
                self.last = Some(now);
                Some(std::mem::take(&mut self.unlogged))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_errors_back_off_up_to_a_second_and_reset() {
        let mut b = Backoff::default();
        let e = std::io::Error::from_raw_os_error(24);
        let pauses: Vec<_> = (0..9).map(|_| b.next("test", &e)).collect();
        assert_eq!(pauses[0], Duration::from_millis(10));
        assert_eq!(pauses[1], Duration::from_millis(20));
        assert_eq!(pauses[8], Duration::from_secs(1));
        b.reset();
        assert_eq!(b.next("test", &e), Duration::from_millis(10));
    }

    #[test]
    fn repeated_messages_are_logged_once_a_second_with_a_count() {
        let mut log = RateLimitedLog::default();
        assert_eq!(log.should_log(), Some(0));
        assert_eq!(log.should_log(), None);
        assert_eq!(log.should_log(), None);
        log.last = Some(Instant::now() - Duration::from_secs(2));
        assert_eq!(log.should_log(), Some(2));
    }

    #[test]
    fn zero_bounds_are_refused() {
        assert!(Limits::default().check().is_ok());
        let l = Limits {
            idle_timeout: Duration::ZERO,
            ..Limits::default()
        };
        assert_eq!(l.check(), Err("idle_timeout"));
    }
}
