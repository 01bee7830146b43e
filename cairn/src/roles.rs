//! The roles of a split deployment (issue 15), one per process: `cairn sa serve` (the storage
//! authority), `cairn ca serve` (the issuer, the only process with the CA's keys), `cairn ra
//! serve` (the registration authority, with its VA) and `cairn wfe serve` (the ACME API), next
//! to `cairn va serve` and `cairn nonce serve`. They talk gRPC over mutual TLS (`cairn-rpc`);
//! each gRPC role reads its listener and the client identities it answers from its own section
//! (`[services.sa]`, `[services.issuer]`, `[services.ra]`), every role its certificate from
//! `[rpc] tls` and where its peers are from `[peers]`. The components are the ones `cairn
//! serve` runs in one process, built by the same functions (`crate::serve`).

use anyhow::Context;
use cairn_api::CertificateIssuer;
use cairn_core::{Clock, SystemClock};
use cairn_rpc::{AllowedClients, RpcClientConfig, RpcRouter, TlsFiles};
use serde::{Deserialize, Serialize};
use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

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
}

/// `[services]`: the gRPC listeners of the roles this configuration may run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServicesSection {
    /// `cairn sa serve` (port 14030), called by the RA and by the issuer's public listener
    /// (CRLs, OCSP status).
    pub sa: RpcService,
    /// `cairn ca serve` (port 14031), called by the RA.
    pub issuer: RpcService,
    /// `cairn ra serve` (port 14032), called by the WFEs.
    pub ra: RpcService,
}

impl Default for ServicesSection {
    fn default() -> Self {
        Self {
            sa: RpcService::new(14030, &["ra", "ca"]),
            issuer: RpcService::new(14031, &["ra"]),
            ra: RpcService::new(14032, &["wfe"]),
        }
    }
}

fn default_peer_timeout() -> time::Duration {
    time::Duration::seconds(30)
}

/// One peer service, reached with this process's `[rpc] tls`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Peer {
    /// Its address, `https://host:port`.
    pub url: String,
    /// The DNS name its certificate carries; default: the development name of its role
    /// (`sa.cairn.internal`, `ca.cairn.internal`, `ra.cairn.internal`).
    #[serde(default)]
    pub server_name: Option<String>,
    /// Deadline of one call (`"30s"`).
    #[serde(default = "default_peer_timeout", with = "cairn_core::humane_duration")]
    pub timeout: time::Duration,
}

/// `[peers]`: where a role finds the services it calls.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PeersSection {
    /// The storage authority (for `cairn ra serve`).
    pub sa: Option<Peer>,
    /// The issuer (for `cairn ra serve`).
    pub issuer: Option<Peer>,
    /// The registration authorities (for `cairn wfe serve`): calls go round them, and on to
    /// the next when one is down.
    pub ra: Vec<Peer>,
}

/// The client configuration of `peer` (`[peers] <field>`), whose role's development name is
/// `role`.
fn peer_client(
    peer: Option<&Peer>,
    field: &str,
    role: &str,
    files: &TlsFiles,
) -> anyhow::Result<RpcClientConfig> {
    let peer = peer.with_context(|| format!("[peers] {field} must say where the {role} is"))?;
    Ok(RpcClientConfig {
        url: peer.url.clone(),
        server_name: peer
            .server_name
            .clone()
            .unwrap_or_else(|| cairn_rpc::dev_pki::identity(role)),
        tls: files.clone(),
        timeout: peer.timeout,
    })
}

/// How long a role waits at start-up for a peer it must ask something of (the issuer's
/// identity, the RA's directory): the roles of a deployment start in any order.
const PEER_WAIT: Duration = Duration::from_secs(60);

/// Calls `connect` until it succeeds or [`PEER_WAIT`] has passed.
async fn wait_for<T, F, Fut>(what: &str, mut connect: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, cairn_rpc::RpcError>>,
{
    let deadline = tokio::time::Instant::now() + PEER_WAIT;
    loop {
        match connect().await {
            Ok(t) => return Ok(t),
            Err(e) if tokio::time::Instant::now() < deadline => {
                tracing::info!(error = %e, "waiting for the {what}");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => return Err(anyhow::anyhow!("the {what} does not answer: {e}")),
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

/// Serves `/metrics` and `/health` on `[server] metrics_listen`; `/health` says ready once
/// the role marks the returned readiness started.
pub(crate) async fn start_metrics(
    cfg: &crate::config::Config,
) -> anyhow::Result<crate::bootstrap::Readiness> {
    let readiness = crate::bootstrap::Readiness::default();
    crate::bootstrap::serve_metrics(
        cfg.server.metrics_listen,
        cfg.server.limits.limits(),
        readiness.clone(),
    )
    .await?;
    Ok(readiness)
}

/// Loads the configuration of `cairn <role> serve` and starts logging.
fn load(path: &Path, role: &str) -> anyhow::Result<(crate::config::Config, TlsFiles)> {
    crate::bootstrap::init_logging();
    let mut cfg = crate::config::Config::load(path)?;
    // The URLs the WFE writes name the scheme its listener serves, as in `cairn serve`.
    cfg.wfe.scheme = if cfg.server.tls { "https" } else { "http" }.into();
    let files = rpc_tls(&cfg, role)?;
    Ok((cfg, files))
}

/// Runs `cairn sa serve --config <path>` until SIGTERM or Ctrl-C: the storage named by
/// `[server] database_url` (migrated on start), served to `[services.sa] allowed_clients`.
/// `/metrics` and `/health` on `[server] metrics_listen`.
pub async fn run_sa(path: &Path) -> anyhow::Result<()> {
    let (cfg, files) = load(path, "sa")?;
    let readiness = start_metrics(&cfg).await?;
    let storage = Arc::new(crate::serve::open_storage(&cfg).await?);
    readiness.mark_started();
    let service = &cfg.services.sa;
    serve_rpc(
        "sa-rpc",
        service.listen,
        &service.allowed_clients,
        &files,
        cairn_rpc::sa::router(storage),
    )
    .await
}

/// Runs `cairn ca serve --config <path>` until SIGTERM or Ctrl-C: the CA hierarchy of `[ca]`
/// (created in `<data_dir>/ca` on first start, as `cairn serve` does) and those of
/// `[[ca.issuers]]`, each chosen as `cairn serve` chooses them, behind the issuer, served to `[services.issuer] allowed_clients`. Certificates name `[server]
/// public_base_url`, by default the address of `[server] public_listen`. `/metrics` and
/// `/health` on `[server] metrics_listen`.
pub async fn run_ca(path: &Path) -> anyhow::Result<()> {
    let (cfg, files) = load(path, "ca")?;
    let readiness = start_metrics(&cfg).await?;
    crate::data_dir::prepare(&cfg.server.data_dir)?;
    let public_base_url = cfg
        .server
        .public_base_url
        .clone()
        .unwrap_or_else(|| cairn_status::public::default_base_url(cfg.server.public_listen));
    let now = time::OffsetDateTime::now_utc();
    let hierarchy = crate::serve::load_hierarchy(&cfg, &public_base_url, now)?;
    let extra = crate::serve::load_extra_hierarchies(&cfg, &public_base_url, now)?;
    let parts = crate::serve::public_parts_with(&hierarchy, &extra);
    let issuer = crate::serve::issuer_of(&cfg, hierarchy, extra, &public_base_url, now)?;
    let public = serve_public(&cfg, &files, parts, issuer.clone()).await?;
    readiness.mark_started();
    let service = &cfg.services.issuer;
    let served = serve_rpc(
        "ca-rpc",
        service.listen,
        &service.allowed_clients,
        &files,
        cairn_rpc::issuer::router(issuer),
    )
    .await;
    if let Some(public) = public {
        public.abort();
    }
    served
}

/// The public plain-HTTP listener of `cairn ca serve` on `[server] public_listen`: the CA
/// certificates of `parts`, the CRLs stored by the SA of `[peers] sa`, and OCSP answers
/// signed by `issuer` when `[ocsp] enabled`. Without `[peers] sa` there is none (another
/// process must serve the URLs the certificates name).
async fn serve_public(
    cfg: &crate::config::Config,
    files: &TlsFiles,
    mut parts: cairn_status::public::PublicParts,
    issuer: Arc<dyn CertificateIssuer>,
) -> anyhow::Result<Option<tokio::task::JoinHandle<()>>> {
    let Some(peer) = cfg.peers.sa.as_ref() else {
        tracing::warn!(
            "no [peers] sa: the public listener (CA certificates, CRLs, OCSP) is not served"
        );
        return Ok(None);
    };
    let sa: Arc<dyn cairn_api::StorageAuthority> = Arc::new(cairn_rpc::sa::RemoteSa::new(
        &peer_client(Some(peer), "sa", "sa", files)?,
    )?);
    parts.crls = Some(sa.clone());
    let mut app = cairn_status::public::router(parts);
    if cfg.ocsp.enabled {
        let responder = cairn_status::ocsp::OcspResponder::start(
            &cfg.ocsp,
            issuer,
            sa,
            Arc::new(SystemClock),
            cfg.redis_url().as_deref(),
            cfg.crl.settings()?.poll_interval,
        )
        .await?;
        app = app.merge(cairn_status::ocsp::router(responder));
    }
    let listen = cfg.server.public_listen;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    tracing::info!(%listen, "public listener (CA certificates, CRLs, OCSP) serving");
    let limits = cfg.server.limits.limits();
    Ok(Some(tokio::spawn(
        cairn_listen::Listener::new(listener, "public", limits)
            .serve(app, std::future::pending::<()>()),
    )))
}

/// Runs `cairn ra serve --config <path>` until SIGTERM or Ctrl-C: the RA of `cairn serve`
/// (validation with `[va]` and its remote perspectives, rate limits in `[server] redis_url`,
/// the CRL updater, recovery of stale work) over the SA and the issuer of `[peers]`, submitting
/// to the CT logs of `[[ct.logs]]`, served to `[services.ra] allowed_clients`. `/metrics` and
/// `/health` on `[server] metrics_listen`.
pub async fn run_ra(path: &Path) -> anyhow::Result<()> {
    let (cfg, files) = load(path, "ra")?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let limits = cfg.server.limits.limits();
    let readiness = crate::bootstrap::Readiness::default();
    crate::bootstrap::serve_metrics(cfg.server.metrics_listen, limits, readiness.clone()).await?;
    let sa =
        cairn_rpc::sa::RemoteSa::new(&peer_client(cfg.peers.sa.as_ref(), "sa", "sa", &files)?)?;
    let issuer_peer = peer_client(cfg.peers.issuer.as_ref(), "issuer", "ca", &files)?;
    let issuer = wait_for("issuer", || {
        cairn_rpc::issuer::RemoteIssuer::connect(&issuer_peer)
    })
    .await?;
    let issuer_ids = issuer
        .identities()
        .into_iter()
        .map(|i| i.issuer_id)
        .collect();
    let ct = crate::ct_issuance::CaCt::start(&cfg.ct, &cfg.server.data_dir, &[]).await?;
    let sa: Arc<dyn cairn_api::StorageAuthority> = Arc::new(sa);
    let issuer: Arc<dyn CertificateIssuer> = Arc::new(issuer);
    let ra = crate::serve::start_ra(
        &cfg,
        sa.clone(),
        issuer.clone(),
        ct.ra_submitter(),
        clock.clone(),
        &readiness,
    )
    .await?;
    // With the OCSP cache shared in Redis, a revocation recorded here replaces the cached
    // answers at once (signed "revoked" by the issuer), as `cairn serve` does in process: the
    // issuer's responder, elsewhere, then never serves a cached "good" past the revocation.
    if cfg.ocsp.enabled
        && let Some(url) = cfg.redis_url()
    {
        let cache_writer =
            cairn_status::ocsp::OcspResponder::new(&cfg.ocsp, issuer, sa, clock, Some(&url))
                .await
                .context("the OCSP cache the RA writes revocations into")?;
        ra.ra.add_revocation_listener(Arc::new(cache_writer));
    }
    readiness.mark_started();
    let service = &cfg.services.ra;
    let served = serve_rpc(
        "ra-rpc",
        service.listen,
        &service.allowed_clients,
        &files,
        cairn_rpc::ra::router(Arc::new(ra.ra.clone()), issuer_ids),
    )
    .await;
    ra.abort();
    ct.shutdown().await;
    served
}

/// Runs `cairn wfe serve --config <path>` until SIGTERM or Ctrl-C: the ACME API of `cairn
/// serve` on `[server] listen` (HTTPS as `[server] tls` says), over the RA of `[peers]`, with
/// the nonce services of `[[wfe.nonce_services]]` (nonces in this process's memory when there
/// are none, which suits one WFE only). `/metrics` and `/health` on `[server] metrics_listen`.
pub async fn run_wfe(path: &Path) -> anyhow::Result<()> {
    let (cfg, files) = load(path, "wfe")?;
    let limits = cfg.server.limits.limits();
    let readiness = crate::bootstrap::Readiness::default();
    crate::bootstrap::serve_metrics(cfg.server.metrics_listen, limits.clone(), readiness.clone())
        .await?;
    anyhow::ensure!(
        !cfg.peers.ra.is_empty(),
        "[peers] ra must list the registration authorities"
    );
    let ras = cfg
        .peers
        .ra
        .iter()
        .map(|peer| peer_client(Some(peer), "ra", "ra", &files))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let ra = wait_for("registration authority", || {
        cairn_rpc::ra::RemoteRa::connect(&ras)
    })
    .await?;
    let nonces = crate::nonce_serve::routed_nonces(&cfg)?;
    let app = crate::serve::wfe_router(&cfg, Arc::new(ra), nonces);
    let tls = crate::serve::acme_tls(&cfg, time::OffsetDateTime::now_utc())?;
    let listener = tokio::net::TcpListener::bind(cfg.server.listen)
        .await
        .with_context(|| format!("cannot listen on {}", cfg.server.listen))?;
    let directory_url = crate::serve::directory_url(&cfg, listener.local_addr()?);
    tracing::info!(%directory_url, "WFE serving");
    readiness.mark_started();
    crate::serve::spawn_acme(
        listener,
        app,
        tls,
        limits,
        crate::bootstrap::shutdown_signal(),
    )
    .await
    .context("the ACME listener panicked")?
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::peer_client;
    use crate::config::Config;
    use cairn_rpc::TlsFiles;

    #[test]
    fn role_sections_parse_keep_their_defaults_and_refuse_mistakes() {
        let cfg = Config::parse(
            r#"
            [services.ra]
            listen = "127.0.0.1:9000"
            allowed_clients = ["wfe-a.example"]
            [peers]
            sa = { url = "https://sa.example:1" }
            ra = [
                { url = "https://ra1.example:1" },
                { url = "https://ra2.example:1", server_name = "ra2.example", timeout = "5s" },
            ]
            "#,
        )
        .unwrap();
        assert_eq!(cfg.services.ra.listen.port(), 9000);
        assert_eq!(cfg.services.ra.allowed_clients, ["wfe-a.example"]);
        // The sections not given keep their defaults.
        assert_eq!(cfg.services.sa.listen.port(), 14030);
        assert_eq!(
            cfg.services.sa.allowed_clients,
            ["ra.cairn.internal", "ca.cairn.internal"]
        );
        assert_eq!(cfg.services.issuer.listen.port(), 14031);

        let files = TlsFiles {
            cert: "ra.pem".into(),
            key: "ra.key.pem".into(),
            ca: "internal-ca.pem".into(),
        };
        let sa = peer_client(cfg.peers.sa.as_ref(), "sa", "sa", &files).unwrap();
        assert_eq!(sa.server_name, "sa.cairn.internal");
        assert_eq!(sa.timeout, time::Duration::seconds(30));
        let second = peer_client(cfg.peers.ra.get(1), "ra", "ra", &files).unwrap();
        assert_eq!(
            (second.url.as_str(), second.server_name.as_str()),
            ("https://ra2.example:1", "ra2.example")
        );
        assert_eq!(second.timeout, time::Duration::seconds(5));
        let missing = peer_client(cfg.peers.issuer.as_ref(), "issuer", "ca", &files).unwrap_err();
        assert!(missing.to_string().contains("[peers] issuer"), "{missing}");

        for (text, why) in [
            (
                "[peers]\nsa = { url = \"https://a:1\", port = 1 }",
                "unknown field",
            ),
            ("[services.sa]\nlisten = \"127.0.0.1:1\"", "allowed_clients"),
            ("[services.wfe]\nlisten = \"127.0.0.1:1\"", "unknown field"),
        ] {
            let err = format!("{:#}", Config::parse(text).unwrap_err());
            assert!(err.contains(why), "{text}: {err}");
        }
    }
}
