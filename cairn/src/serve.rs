//! `cairn serve`: the whole CA in one process — storage, issuer, VA, RA and the ACME API — on
//! SQLite in a local data folder unless told otherwise.

use crate::bootstrap;
use crate::config::{Config, system_dns_server};
use anyhow::Context;
use axum::Router;
use axum::extract::ConnectInfo;
use cairn_core::{Clock, SystemClock};
use cairn_issuer::{CaHierarchy, LocalIssuer};
use cairn_ra::Ra;
use cairn_sa::SqlStorage;
use cairn_va::{Va, VaConfig};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::service::TowerToHyperService;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::net::TcpListener;
use tower::ServiceExt;

/// Flags of `cairn serve`; each overrides the config file.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ServeArgs {
    /// TOML configuration file (see docs/cairn.sample.toml).
    #[arg(long, short)]
    pub config: Option<PathBuf>,
    /// Folder for the database and the CA hierarchy [default: ./cairn-data].
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Address of the ACME API [default: 127.0.0.1:14000].
    #[arg(long)]
    pub listen: Option<SocketAddr>,
    /// Address of /metrics and /health [default: 127.0.0.1:14001].
    #[arg(long)]
    pub metrics_listen: Option<SocketAddr>,
    /// Serve plain HTTP (behind a TLS-terminating proxy).
    #[arg(long)]
    pub plain_http: bool,
    /// Database URL (sqlite://… or postgres://…); also CAIRN_DATABASE_URL.
    #[arg(long)]
    pub database_url: Option<String>,
    /// Key algorithm of a CA hierarchy created on first start: ecdsa-p256, ecdsa-p384,
    /// rsa-2048, rsa-3072 or rsa-4096 [default: ecdsa-p256].
    #[arg(long)]
    pub key_algorithm: Option<String>,
    /// Upstream DNS server for validation, HOST:PORT.
    #[arg(long)]
    pub dns_server: Option<SocketAddr>,
    /// Port that http-01 validation connects to [default: 80].
    #[arg(long)]
    pub http01_port: Option<u16>,
    /// Port that tls-alpn-01 validation connects to [default: 443].
    #[arg(long)]
    pub tlsalpn01_port: Option<u16>,
}

/// Applies command-line flags over the file config.
pub fn effective_config(args: &ServeArgs) -> anyhow::Result<Config> {
    let mut cfg = match &args.config {
        Some(path) => Config::load(path)?,
        None => Config::default(),
    };
    if let Some(d) = &args.data_dir {
        cfg.server.data_dir = d.clone();
    }
    if let Some(l) = args.listen {
        cfg.server.listen = l;
    }
    if let Some(m) = args.metrics_listen {
        cfg.server.metrics_listen = m;
    }
    if args.plain_http {
        cfg.server.tls = false;
    }
    if let Some(u) = &args.database_url {
        cfg.server.database_url = Some(u.clone());
    }
    if let Some(k) = &args.key_algorithm {
        cfg.ca.key_algorithm = k.clone();
    }
    if let Some(d) = args.dns_server {
        cfg.va.dns_server = Some(d);
    }
    if let Some(p) = args.http01_port {
        cfg.va.http01_port = p;
    }
    if let Some(p) = args.tlsalpn01_port {
        cfg.va.tlsalpn01_port = p;
    }
    cfg.wfe.scheme = if cfg.server.tls { "https" } else { "http" }.into();
    cfg.validate()?;
    Ok(cfg)
}

/// Opens the storage named by the config (creating the data folder for SQLite).
pub async fn open_storage(cfg: &Config) -> anyhow::Result<SqlStorage> {
    std::fs::create_dir_all(&cfg.server.data_dir).with_context(|| {
        format!(
            "cannot create data folder {}",
            cfg.server.data_dir.display()
        )
    })?;
    let url = cfg.database_url();
    SqlStorage::connect(&url)
        .await
        .with_context(|| format!("cannot open the database ({})", redact(&url)))
}

/// The rate limiter over Redis when configured, else over this process's memory.
pub async fn rate_limiter(cfg: &Config) -> anyhow::Result<cairn_ratelimit::RateLimiter> {
    let store: Arc<dyn cairn_ratelimit::RateLimitStore> = match cfg.redis_url() {
        Some(url) => Arc::new(
            cairn_ratelimit::RedisStore::connect(&url, "cairn")
                .await
                .with_context(|| format!("cannot connect to Redis ({})", redact(&url)))?,
        ),
        None => Arc::new(cairn_ratelimit::MemoryStore::new()),
    };
    cairn_ratelimit::RateLimiter::new(&cfg.rate_limits, store)
        .map_err(|e| anyhow::anyhow!("rate_limits: {e}"))
}

/// Hides a password in a database URL for messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..s + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

/// A running all-in-one CA.
#[derive(Debug)]
pub struct Server {
    /// Where the ACME API listens.
    pub acme_addr: SocketAddr,
    /// Where `/metrics` and `/health` listen.
    pub metrics_addr: SocketAddr,
    /// The root certificate clients should trust.
    pub root_path: PathBuf,
    /// The directory URL.
    pub directory_url: String,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Server {
    /// Stops accepting connections and waits for the listener to finish.
    pub async fn shutdown(mut self) -> anyhow::Result<()> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        self.task.await.context("server task panicked")?
    }

    /// Waits until the server stops (it stops on SIGINT/SIGTERM when started by [`run`]).
    pub async fn wait(self) -> anyhow::Result<()> {
        self.task.await.context("server task panicked")?
    }
}

/// `cairn serve`: starts the stack and runs until SIGINT/SIGTERM.
pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    bootstrap::init_logging();
    let cfg = effective_config(&args)?;
    let server = start(cfg).await?;
    println!("Cairn ACME CA is running.");
    println!("  ACME directory: {}", server.directory_url);
    println!(
        "  Root certificate to trust: {}",
        server.root_path.display()
    );
    println!("  Metrics: http://{}/metrics", server.metrics_addr);
    println!(
        "  Try: REQUESTS_CA_BUNDLE={} certbot certonly --server {} --standalone -d example.test --register-unsafely-without-email --agree-tos",
        server.root_path.display(),
        server.directory_url
    );
    let shutdown = bootstrap::shutdown_signal();
    tokio::pin!(shutdown);
    let mut server = server;
    tokio::select! {
        () = &mut shutdown => {
            tracing::info!("shutting down");
            server.shutdown().await
        }
        res = &mut server.task => res.context("server task panicked")?,
    }
}

/// Builds the whole CA from `cfg` and starts serving. Used by `cairn serve` and by tests.
pub async fn start(cfg: Config) -> anyhow::Result<Server> {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);

    let metrics_addr = bootstrap::serve_metrics(cfg.server.metrics_listen).await?;
    let storage = Arc::new(open_storage(&cfg).await?);

    let ca_dir = cfg.server.data_dir.join("ca");
    let hierarchy = CaHierarchy::load_or_create(&ca_dir, cfg.key_algorithm()?, clock.now())
        .with_context(|| format!("cannot set up the CA hierarchy in {}", ca_dir.display()))?;
    let tls = if cfg.server.tls {
        let identity = hierarchy
            .tls_server_identity(&ca_dir, &cfg.ca.tls_names, clock.now())
            .context("cannot set up the ACME listener's TLS certificate")?;
        Some(tls_server_config(&identity)?)
    } else {
        None
    };
    let root_path = ca_dir.join("root.pem");
    // A CA that may issue for private addresses (a private PKI, a test set-up) must not let the
    // pre-issuance lint refuse them.
    let mut ignored_lints = cfg.ca.ignored_lints.clone();
    if cfg.ra.identifiers.allow_non_public_ips {
        ignored_lints.push("e_ext_san_contains_reserved_ip".into());
    }
    let issuer = Arc::new(
        LocalIssuer::new(hierarchy, Default::default(), ignored_lints)
            .context("cannot set up the issuer")?,
    );

    let va_timeout =
        cairn_ra::humane_duration::parse(&cfg.va.timeout).map_err(|e| anyhow::anyhow!(e))?;
    let va = Arc::new(Va::new(VaConfig {
        dns_server: cfg.va.dns_server.unwrap_or_else(system_dns_server),
        http01_port: cfg.va.http01_port,
        tlsalpn01_port: cfg.va.tlsalpn01_port,
        timeout: std::time::Duration::try_from(va_timeout)
            .unwrap_or(std::time::Duration::from_secs(10)),
        ..Default::default()
    })?);

    let limiter = rate_limiter(&cfg).await?;
    let ra = Ra::new(storage, va, issuer, limiter, clock, cfg.ra.clone());
    let resumed = ra
        .resume_interrupted_issuance()
        .await
        .map_err(|p| anyhow::anyhow!("resuming interrupted issuance: {p}"))?;
    if resumed > 0 {
        tracing::info!(
            resumed,
            "finished issuance interrupted by the last shutdown"
        );
    }
    let app = cairn_wfe::router(ra, cfg.wfe.clone());

    let listener = TcpListener::bind(cfg.server.listen)
        .await
        .with_context(|| format!("cannot listen on {}", cfg.server.listen))?;
    let acme_addr = listener.local_addr()?;
    let scheme = if cfg.server.tls { "https" } else { "http" };
    let host = if acme_addr.ip().is_unspecified() || acme_addr.ip().is_loopback() {
        "localhost".to_string()
    } else {
        acme_addr.ip().to_string()
    };
    let directory_url = format!("{scheme}://{host}:{}/directory", acme_addr.port());

    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let stop = async move {
        let _ = rx.await;
    };
    let task = match tls {
        Some(server_config) => {
            tokio::spawn(serve_tls(listener, app, Arc::new(server_config), stop))
        }
        None => tokio::spawn(async move {
            axum::serve(
                listener,
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .with_graceful_shutdown(stop)
            .await?;
            Ok(())
        }),
    };
    Ok(Server {
        acme_addr,
        metrics_addr,
        root_path,
        directory_url,
        shutdown: Some(tx),
        task,
    })
}

/// A rustls server configuration (aws-lc-rs provider, HTTP/1.1 and HTTP/2) for the ACME
/// listener's certificate.
fn tls_server_config(identity: &cairn_issuer::TlsIdentity) -> anyhow::Result<rustls::ServerConfig> {
    let chain = identity
        .cert_chain_der()
        .iter()
        .cloned()
        .map(rustls_pki_types::CertificateDer::from)
        .collect();
    let key =
        rustls_pki_types::PrivateKeyDer::Pkcs8(identity.private_key_pkcs8_der().to_vec().into());
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .context("the ACME listener's TLS certificate")?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

async fn serve_tls(
    listener: TcpListener,
    app: Router,
    server_config: Arc<rustls::ServerConfig>,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let acceptor = tokio_rustls::TlsAcceptor::from(server_config);
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => return Ok(()),
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    continue;
                }
            },
        };
        let acceptor = acceptor.clone();
        let app = app.clone();
        tokio::spawn(async move {
            let Ok(tls) = acceptor.accept(stream).await else {
                return;
            };
            let svc =
                app.map_request(move |mut req: axum::http::Request<hyper::body::Incoming>| {
                    req.extensions_mut().insert(ConnectInfo(peer));
                    req.map(axum::body::Body::new)
                });
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(tls), TowerToHyperService::new(svc))
                .await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn database_passwords_are_redacted() {
        assert_eq!(
            redact("postgres://cairn:s3cret@db:5432/cairn"),
            "postgres://cairn:***@db:5432/cairn"
        );
        assert_eq!(
            redact("sqlite://cairn-data/cairn.db"),
            "sqlite://cairn-data/cairn.db"
        );
    }
}
