//! Challenge test server: DNS, HTTP-01 and TLS-ALPN-01 responders with a pebble-challtestsrv
//! compatible management API, for hermetic validation tests.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use cairn_challtestsrv::{ChallTestSrv, ChallTestSrvConfig};
//! let srv = ChallTestSrv::start(ChallTestSrvConfig::loopback_ephemeral()).await?;
//! srv.add_http01("token", "token.thumbprint");
//! let http01_port = srv.http01_addr().map(|a| a.port());
//! # Ok(()) }
//! ```

mod dns;
mod http01;
mod management;
mod state;
mod tlsalpn;

pub use state::{
    CaaPolicy, ChallTestSrv, DnsQuestion, DnsRequestEvent, HistoryKind, HttpRequestEvent,
    TlsAlpnRequestEvent, dns_account01_name,
};
pub use tlsalpn::{ACME_TLS_1, parse_reverse_name};

use anyhow::Context as _;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Where the servers listen; `None` disables a server (like an empty flag in pebble).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChallTestSrvConfig {
    /// The management API (default `0.0.0.0:8055`).
    pub management_addr: Option<SocketAddr>,
    /// The DNS server, UDP and TCP on the same port (default `0.0.0.0:8053`).
    pub dns_addr: Option<SocketAddr>,
    /// The HTTP-01 server (default `0.0.0.0:5002`).
    pub http01_addr: Option<SocketAddr>,
    /// The TLS-ALPN-01 server, which also serves HTTPS for HTTP-01 redirects (default
    /// `0.0.0.0:5001`).
    pub tlsalpn01_addr: Option<SocketAddr>,
    /// The A answer for names without explicit records (default 127.0.0.1).
    pub default_ipv4: Option<Ipv4Addr>,
    /// The AAAA answer for names without explicit records (default none).
    pub default_ipv6: Option<Ipv6Addr>,
}

impl Default for ChallTestSrvConfig {
    fn default() -> Self {
        let any = |port| Some(SocketAddr::from((Ipv4Addr::UNSPECIFIED, port)));
        Self {
            management_addr: any(8055),
            dns_addr: any(8053),
            http01_addr: any(5002),
            tlsalpn01_addr: any(5001),
            default_ipv4: Some(Ipv4Addr::LOCALHOST),
            default_ipv6: None,
        }
    }
}

impl ChallTestSrvConfig {
    /// Every server on 127.0.0.1 with an OS-chosen port: what tests want.
    pub fn loopback_ephemeral() -> Self {
        let lo = Some(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)));
        Self {
            management_addr: lo,
            dns_addr: lo,
            http01_addr: lo,
            tlsalpn01_addr: lo,
            ..Self::default()
        }
    }
}

/// A running challenge test server. Dereferences to its [`ChallTestSrv`] state; shuts the
/// servers down when dropped or on [`ChallTestSrvHandle::shutdown`].
#[derive(Debug)]
pub struct ChallTestSrvHandle {
    srv: ChallTestSrv,
    management_addr: Option<SocketAddr>,
    dns_addr: Option<SocketAddr>,
    http01_addr: Option<SocketAddr>,
    tlsalpn01_addr: Option<SocketAddr>,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl ChallTestSrvHandle {
    /// The state the servers answer from.
    pub fn srv(&self) -> &ChallTestSrv {
        &self.srv
    }

    /// The bound management API address.
    pub fn management_addr(&self) -> Option<SocketAddr> {
        self.management_addr
    }

    /// The bound DNS address (UDP and TCP).
    pub fn dns_addr(&self) -> Option<SocketAddr> {
        self.dns_addr
    }

    /// The bound HTTP-01 address.
    pub fn http01_addr(&self) -> Option<SocketAddr> {
        self.http01_addr
    }

    /// The bound TLS-ALPN-01 (and HTTPS) address.
    pub fn tlsalpn01_addr(&self) -> Option<SocketAddr> {
        self.tlsalpn01_addr
    }

    /// Stops accepting and waits (up to a few seconds) for the servers to finish.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        for task in std::mem::take(&mut self.tasks) {
            let abort = task.abort_handle();
            if tokio::time::timeout(Duration::from_secs(5), task)
                .await
                .is_err()
            {
                abort.abort();
            }
        }
    }
}

impl std::ops::Deref for ChallTestSrvHandle {
    type Target = ChallTestSrv;

    fn deref(&self) -> &ChallTestSrv {
        &self.srv
    }
}

impl Drop for ChallTestSrvHandle {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Binds UDP and TCP on the same port; with port 0, retries until both get the same one.
async fn bind_dns(addr: SocketAddr) -> anyhow::Result<(UdpSocket, TcpListener)> {
    let mut last_err = None;
    for _ in 0..16 {
        let udp = UdpSocket::bind(addr)
            .await
            .with_context(|| format!("binding DNS UDP {addr}"))?;
        let bound = udp.local_addr()?;
        match TcpListener::bind(bound).await {
            Ok(tcp) => return Ok((udp, tcp)),
            Err(e) if addr.port() == 0 => last_err = Some(e),
            Err(e) => return Err(e).with_context(|| format!("binding DNS TCP {addr}")),
        }
    }
    Err(anyhow::anyhow!(
        "no port free for both DNS UDP and TCP: {last_err:?}"
    ))
}

impl ChallTestSrv {
    /// Binds and starts the configured servers. Must be called inside a Tokio runtime.
    pub async fn start(config: ChallTestSrvConfig) -> anyhow::Result<ChallTestSrvHandle> {
        let srv = ChallTestSrv::new();
        srv.set_default_ipv4(config.default_ipv4);
        srv.set_default_ipv6(config.default_ipv6);
        let (shutdown, rx) = watch::channel(false);
        let mut handle = ChallTestSrvHandle {
            srv: srv.clone(),
            management_addr: None,
            dns_addr: None,
            http01_addr: None,
            tlsalpn01_addr: None,
            shutdown,
            tasks: Vec::new(),
        };

        if let Some(addr) = config.dns_addr {
            let (udp, tcp) = bind_dns(addr).await?;
            handle.dns_addr = Some(udp.local_addr()?);
            let mut server = hickory_server::Server::new(dns::DnsHandler { srv: srv.clone() });
            server.register_socket(udp);
            server.register_listener(tcp, Duration::from_secs(5), 32);
            let mut rx = rx.clone();
            handle.tasks.push(tokio::spawn(async move {
                let _ = rx.changed().await;
                if let Err(error) = server.shutdown_gracefully().await {
                    tracing::debug!(%error, "DNS server shutdown");
                }
            }));
        }

        if let Some(addr) = config.http01_addr {
            let listener = TcpListener::bind(addr)
                .await
                .with_context(|| format!("binding HTTP-01 {addr}"))?;
            handle.http01_addr = Some(listener.local_addr()?);
            handle
                .tasks
                .push(tokio::spawn(http01::run(srv.clone(), listener, rx.clone())));
        }

        if let Some(addr) = config.tlsalpn01_addr {
            let listener = TcpListener::bind(addr)
                .await
                .with_context(|| format!("binding TLS-ALPN-01 {addr}"))?;
            handle.tlsalpn01_addr = Some(listener.local_addr()?);
            let server = Arc::new(tlsalpn::TlsAlpnServer::new(srv.clone())?);
            handle
                .tasks
                .push(tokio::spawn(tlsalpn::run(server, listener, rx.clone())));
        }

        if let Some(addr) = config.management_addr {
            let listener = TcpListener::bind(addr)
                .await
                .with_context(|| format!("binding management API {addr}"))?;
            handle.management_addr = Some(listener.local_addr()?);
            let router = management::router(srv.clone());
            let mut rx = rx.clone();
            handle.tasks.push(tokio::spawn(async move {
                let served = axum::serve(listener, router).with_graceful_shutdown(async move {
                    let _ = rx.changed().await;
                });
                if let Err(error) = served.await {
                    tracing::warn!(%error, "management API stopped");
                }
            }));
        }

        tracing::info!(
            management = ?handle.management_addr,
            dns = ?handle.dns_addr,
            http01 = ?handle.http01_addr,
            tlsalpn01 = ?handle.tlsalpn01_addr,
            "challenge test server started"
        );
        Ok(handle)
    }
}
