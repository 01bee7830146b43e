//! `cairn serve`: the whole CA in one process — storage, issuer, VA, RA and the ACME API — on
//! SQLite in a local data folder unless told otherwise.

use crate::ServeArgs;
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
use std::path::Path;
use std::sync::Arc;
use tokio::net::TcpListener;
use tower::ServiceExt;

/// Applies command-line flags over the file config.
pub(crate) fn effective_config(args: &ServeArgs) -> anyhow::Result<Config> {
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
pub(crate) async fn open_storage(cfg: &Config) -> anyhow::Result<SqlStorage> {
    std::fs::create_dir_all(&cfg.server.data_dir).with_context(|| {
        format!("cannot create data folder {}", cfg.server.data_dir.display())
    })?;
    let url = cfg.database_url();
    SqlStorage::connect(&url)
        .await
        .with_context(|| format!("cannot open the database ({})", redact(&url)))
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

pub(crate) async fn run(args: ServeArgs) -> anyhow::Result<()> {
    bootstrap::init_logging();
    let cfg = effective_config(&args)?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);

    let metrics_addr = bootstrap::serve_metrics(cfg.server.metrics_listen).await?;
    let storage = Arc::new(open_storage(&cfg).await?);

    let ca_dir = cfg.server.data_dir.join("ca");
    let hierarchy = CaHierarchy::load_or_create(&ca_dir, cfg.key_algorithm()?, clock.now())
        .with_context(|| format!("cannot set up the CA hierarchy in {}", ca_dir.display()))?;
    let tls = if cfg.server.tls {
        Some(
            hierarchy
                .tls_server_identity(&ca_dir, &cfg.ca.tls_names, clock.now())
                .context("cannot set up the ACME listener's TLS certificate")?,
        )
    } else {
        None
    };
    let root_path = ca_dir.join("root.pem");
    let issuer = Arc::new(LocalIssuer::new(hierarchy, Default::default()));

    let va_timeout = cairn_ra::humane_duration::parse(&cfg.va.timeout)
        .map_err(|e| anyhow::anyhow!(e))?;
    let va = Arc::new(Va::new(VaConfig {
        dns_server: cfg.va.dns_server.unwrap_or_else(system_dns_server),
        http01_port: cfg.va.http01_port,
        tlsalpn01_port: cfg.va.tlsalpn01_port,
        timeout: std::time::Duration::try_from(va_timeout).unwrap_or(std::time::Duration::from_secs(10)),
        ..Default::default()
    })?);

    let ra = Ra::new(storage, va, issuer, clock, cfg.ra.clone());
    let resumed = ra
        .resume_interrupted_issuance()
        .await
        .map_err(|p| anyhow::anyhow!("resuming interrupted issuance: {p}"))?;
    if resumed > 0 {
        tracing::info!(resumed, "finished issuance interrupted by the last shutdown");
    }
    let app = cairn_wfe::router(ra, cfg.wfe.clone());

    let listener = TcpListener::bind(cfg.server.listen)
        .await
        .with_context(|| format!("cannot listen on {}", cfg.server.listen))?;
    let bound = listener.local_addr()?;
    print_banner(&cfg, bound, metrics_addr, &root_path);

    match tls {
        Some(server_config) => serve_tls(listener, app, Arc::new(server_config)).await,
        None => {
            axum::serve(
                listener,
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .with_graceful_shutdown(bootstrap::shutdown_signal())
            .await?;
            Ok(())
        }
    }
}

fn print_banner(cfg: &Config, bound: SocketAddr, metrics: SocketAddr, root: &Path) {
    let scheme = if cfg.server.tls { "https" } else { "http" };
    let host = if bound.ip().is_unspecified() || bound.ip().is_loopback() {
        "localhost".to_string()
    } else {
        bound.ip().to_string()
    };
    let directory = format!("{scheme}://{host}:{}/directory", bound.port());
    println!("Cairn ACME CA is running.");
    println!("  ACME directory: {directory}");
    println!("  Root certificate to trust: {}", root.display());
    println!("  Metrics: http://{metrics}/metrics");
    println!(
        "  Try: REQUESTS_CA_BUNDLE={} certbot certonly --server {directory} --standalone -d example.test --register-unsafely-without-email --agree-tos",
        root.display()
    );
}

async fn serve_tls(
    listener: TcpListener,
    app: Router,
    server_config: Arc<rustls::ServerConfig>,
) -> anyhow::Result<()> {
    let acceptor = tokio_rustls::TlsAcceptor::from(server_config);
    let shutdown = bootstrap::shutdown_signal();
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
            let svc = app.map_request(move |mut req: axum::http::Request<hyper::body::Incoming>| {
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
        assert_eq!(redact("sqlite://cairn-data/cairn.db"), "sqlite://cairn-data/cairn.db");
    }
}
