//! The roles of a split deployment that serve a component over gRPC with mutual TLS (issue 15):
//! `cairn sa serve` (the storage authority), `cairn ca serve` (the issuer) and the listener code every gRPC role shares
//! (`cairn nonce serve`, `cairn va serve` too). Each role reads its own section of the
//! configuration (`[sa]`, `[issuer]`, ...) for its listener and the client identities it answers, and
//! `[rpc] tls` for its certificate.

use anyhow::Context;
use cairn_rpc::{AllowedClients, RpcRouter, TlsFiles};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

/// A role's gRPC listener: where it listens and whom it answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RpcService {
    /// Address of the gRPC listener.
    pub listen: SocketAddr,
    /// The client identities (DNS names in their certificates) allowed to call it.
    pub allowed_clients: Vec<String>,
}

impl RpcService {
    fn new(port: u16, clients: &[&str]) -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], port)),
            allowed_clients: clients
                .iter()
                .map(|c| cairn_rpc::dev_pki::identity(c))
                .collect(),
        }
    }

    /// `[sa]`'s default: port 14030, called by the RA and the WFE.
    pub fn sa_default() -> Self {
        Self::new(14030, &["ra", "wfe"])
    }

    /// `[issuer]`'s default: port 14031, called by the RA.
    pub fn issuer_default() -> Self {
        Self::new(14031, &["ra"])
    }
}

/// `[sa]`: the storage authority of a split deployment (`cairn sa serve`); the database is
/// `[server] database_url` as in `cairn serve`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SaSection {
    /// The listener and its callers.
    #[serde(flatten)]
    pub service: RpcService,
}

impl Default for SaSection {
    fn default() -> Self {
        Self {
            service: RpcService::sa_default(),
        }
    }
}

/// `[issuer]`: the issuer of a split deployment (`cairn ca serve`), the only process holding
/// the CA's keys; the hierarchy is `[ca]`'s, as in `cairn serve`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IssuerSection {
    /// The listener and its callers.
    #[serde(flatten)]
    pub service: RpcService,
}

impl Default for IssuerSection {
    fn default() -> Self {
        Self {
            service: RpcService::issuer_default(),
        }
    }
}

/// Serves `router` on `listen` to the `allowed` identities, with `files` as this service's
/// certificate, until SIGTERM or Ctrl-C. `name` labels the listener in logs and metrics.
pub async fn serve_rpc(
    name: &'static str,
    listen: SocketAddr,
    allowed: &[String],
    files: &TlsFiles,
    router: RpcRouter,
) -> anyhow::Result<()> {
    anyhow::ensure!(
        !allowed.is_empty(),
        "{name}: allowed_clients is empty; no one could call this service"
    );
    let tls = cairn_rpc::tls::server_config(files)?;
    let socket = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    tracing::info!(listen = %socket.local_addr()?, service = router.service(),
        allowed_clients = ?allowed, "{name} serving");
    let router = router.into_router(AllowedClients(allowed.to_vec()));
    cairn_rpc::server::serve(
        socket,
        name,
        tls,
        router,
        crate::bootstrap::shutdown_signal(),
    )
    .await;
    Ok(())
}

/// `[rpc] tls` of `cfg`, which a role named `role` needs.
pub fn rpc_tls(cfg: &crate::config::Config, role: &str) -> anyhow::Result<TlsFiles> {
    cfg.rpc
        .tls
        .clone()
        .with_context(|| format!("cairn {role} serve needs [rpc] tls: this service's certificate"))
}

/// Runs `cairn sa serve --config <path>` until SIGTERM or Ctrl-C: the storage named by
/// `[server] database_url` (migrated on start), served to `[sa] allowed_clients`.
pub async fn run_sa(path: &Path) -> anyhow::Result<()> {
    crate::bootstrap::init_logging();
    let cfg = crate::config::Config::load(path)?;
    let files = rpc_tls(&cfg, "sa")?;
    let storage = Arc::new(crate::serve::open_storage(&cfg).await?);
    let router = cairn_rpc::sa::router(storage);
    serve_rpc(
        "sa-rpc",
        cfg.sa.service.listen,
        &cfg.sa.service.allowed_clients,
        &files,
        router,
    )
    .await
}

/// Runs `cairn ca serve --config <path>` until SIGTERM or Ctrl-C: the CA hierarchy of `[ca]`
/// (created in `<data_dir>/ca` on first start, as `cairn serve` does) behind the issuer,
/// served to `[issuer] allowed_clients`. Certificates name `[server] public_base_url`, by
/// default the address of `[server] public_listen`, where the WFE serves CRLs and CA
/// certificates.
pub async fn run_ca(path: &Path) -> anyhow::Result<()> {
    crate::bootstrap::init_logging();
    let cfg = crate::config::Config::load(path)?;
    let files = rpc_tls(&cfg, "ca")?;
    crate::data_dir::prepare(&cfg.server.data_dir)?;
    let public_base_url = cfg
        .server
        .public_base_url
        .clone()
        .unwrap_or_else(|| cairn_status::public::default_base_url(cfg.server.public_listen));
    let now = time::OffsetDateTime::now_utc();
    let hierarchy = crate::serve::load_hierarchy(&cfg, &public_base_url, now)?;
    let issuer = crate::serve::local_issuer(&cfg, hierarchy, &public_base_url, now)?;
    serve_rpc(
        "ca-rpc",
        cfg.issuer.service.listen,
        &cfg.issuer.service.allowed_clients,
        &files,
        cairn_rpc::issuer::router(Arc::new(issuer)),
    )
    .await
}
