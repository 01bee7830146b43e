//! `cairn serve`: the whole CA in one process — storage, issuer, VA, RA and the ACME API — on
//! SQLite in a local data folder unless told otherwise.

use crate::bootstrap;
use crate::config::Config;
use anyhow::Context;
use cairn_core::{Clock, SystemClock};
use cairn_issuer::{CaHierarchy, LocalIssuer};
use cairn_ra::Ra;
use cairn_sa::SqlStorage;
use cairn_status::crl::CrlUpdater;
use cairn_status::ocsp::{OcspResponder, SignerChoice};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::net::TcpListener;

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
    /// Address of the public plain-HTTP listener for CRLs and CA certificates
    /// [default: 127.0.0.1:14002].
    #[arg(long)]
    pub public_listen: Option<SocketAddr>,
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
    /// Validate and issue for private and loopback addresses and reserved domains: a private
    /// PKI or a local test set-up (`[va] allow_private_addresses = true`).
    #[arg(long)]
    pub allow_private_addresses: bool,
    /// Do not run the DAP leader and helper (`[dap] enabled = false`).
    #[arg(long)]
    pub no_dap: bool,
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
    if let Some(p) = args.public_listen {
        cfg.server.public_listen = p;
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
    if args.allow_private_addresses {
        cfg.va.allow_private_addresses = true;
    }
    if args.no_dap {
        cfg.dap.enabled = false;
    }
    cfg.wfe.scheme = if cfg.server.tls { "https" } else { "http" }.into();
    cfg.validate()?;
    Ok(cfg)
}

/// Opens the storage named by the config (creating the data folder for SQLite).
pub async fn open_storage(cfg: &Config) -> anyhow::Result<SqlStorage> {
    crate::data_dir::prepare(&cfg.server.data_dir)?;
    let seal = crate::data_dir::eab_seal(&cfg.server.data_dir)?;
    let url = cfg.database_url();
    let storage = SqlStorage::connect(&url)
        .await
        .with_context(|| format!("cannot open the database ({})", redact(&url)))?
        .with_eab_seal(seal);
    let sealed = storage
        .seal_eab_keys_at_rest()
        .await
        .context("sealing the stored EAB keys")?;
    if sealed > 0 {
        tracing::info!(keys = sealed, "sealed EAB HMAC keys stored in plaintext");
    }
    Ok(storage)
}

/// The rate limiter over Redis when configured, else over this process's memory.
pub async fn rate_limiter(cfg: &Config) -> anyhow::Result<cairn_ratelimit::RateLimiter> {
    let store: Arc<dyn cairn_ratelimit::RateLimitStore> = match cfg.redis_url() {
        Some(url) => Arc::new(
            cairn_ratelimit::RedisStore::connect(&url, cfg.server.redis_prefix.clone())
                .await
                .with_context(|| format!("cannot connect to Redis ({})", redact(&url)))?,
        ),
        None => Arc::new(memory_rate_limit_store(cfg)),
    };
    cairn_ratelimit::RateLimiter::new(&cfg.rate_limits, store)
        .map_err(|e| anyhow::anyhow!("rate_limits: {e}"))
}

/// The rate-limit buckets of a process without Redis, at most `[server]
/// rate_limit_memory_keys` of them.
fn memory_rate_limit_store(cfg: &Config) -> cairn_ratelimit::MemoryStore {
    cairn_ratelimit::MemoryStore::with_max_keys(cfg.server.rate_limit_memory_keys)
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
    /// Where the public plain-HTTP listener (CRLs, CA certificates) listens.
    pub public_addr: SocketAddr,
    /// The public listener's external base URL, as written into certificates.
    pub public_base_url: String,
    /// The subscriber root: issued certificates, OCSP responses and CRLs chain to it.
    pub root_path: PathBuf,
    /// What ACME clients trust for the HTTPS listener: the local TLS root (not publicly
    /// trusted), written when `server.tls` is on.
    pub tls_root_path: PathBuf,
    /// The directory URL.
    pub directory_url: String,
    ra: Ra,
    /// Certificate Transparency: the local logs and the submitter.
    pub ct: crate::ct_issuance::CaCt,
    /// The DAP leader and helper, unless `[dap] enabled = false`.
    pub dap: Option<crate::dap_serve::DapPair>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Server {
    /// Registers a listener that hears about every revocation the running CA records.
    pub fn add_revocation_listener(&self, listener: Arc<dyn cairn_ra::RevocationListener>) {
        self.ra.add_revocation_listener(listener);
    }

    /// Stops accepting connections and waits for the listener to finish.
    pub async fn shutdown(mut self) -> anyhow::Result<()> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let res = (&mut self.task).await.context("server task panicked")?;
        self.ct.shutdown().await;
        if let Some(dap) = self.dap.take() {
            dap.shutdown().await;
        }
        res
    }

    /// Waits until the server stops (it stops on SIGINT/SIGTERM when started by [`run`]).
    pub async fn wait(mut self) -> anyhow::Result<()> {
        let res = (&mut self.task).await.context("server task panicked")?;
        self.ct.shutdown().await;
        if let Some(dap) = self.dap.take() {
            dap.shutdown().await;
        }
        res
    }
}

/// `cairn serve`: starts the stack and runs until SIGINT/SIGTERM.
pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    bootstrap::init_logging();
    let cfg = effective_config(&args)?;
    // The local TLS root exists only when Cairn makes the listener's certificate.
    let tls = cfg.server.tls && cfg.server.tls_cert.is_none();
    let server = start(cfg).await?;
    println!("Cairn ACME CA is running.");
    println!("  ACME directory: {}", server.directory_url);
    println!(
        "  Root of issued certificates: {}",
        server.root_path.display()
    );
    if tls {
        println!(
            "  Trust for the HTTPS listener (local, not publicly trusted): {}",
            server.tls_root_path.display()
        );
    }
    println!("  Metrics: http://{}/metrics", server.metrics_addr);
    println!("  CRLs and CA certificates: {}", server.public_base_url);
    if let Some(dap) = &server.dap {
        println!("  DAP leader: {}", dap.leader_url);
        println!("  DAP helper: {}", dap.helper_url);
        if let Some(file) = &dap.control_token_file {
            println!(
                "  DAP control-plane token: export CAIRN_DAP_CONTROL_TOKEN=$(cat {})",
                file.display()
            );
        }
    }
    println!(
        "  Try: REQUESTS_CA_BUNDLE={} certbot certonly --server {} --standalone -d example.test --register-unsafely-without-email --agree-tos",
        server.tls_root_path.display(),
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
    // A split deployment's WFE: nonces from the shared nonce services.
    let shared_nonces = crate::nonce_serve::routed_nonces(&cfg)?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);

    let limits = cfg.server.limits.limits();
    let readiness = bootstrap::Readiness::default();
    let metrics_addr =
        bootstrap::serve_metrics(cfg.server.metrics_listen, limits.clone(), readiness.clone())
            .await?;
    let storage = Arc::new(open_storage(&cfg).await?);
    readiness.add("database", database_probe(storage.clone()));

    // Bound before the issuer is built: certificates name the public listener's URLs.
    let public_listener = TcpListener::bind(cfg.server.public_listen)
        .await
        .with_context(|| format!("cannot listen on {}", cfg.server.public_listen))?;
    let public_addr = public_listener.local_addr()?;
    let public_base_url = cfg
        .server
        .public_base_url
        .clone()
        .unwrap_or_else(|| cairn_status::public::default_base_url(public_addr));

    let ca_dir = cfg.server.data_dir.join("ca");
    let hierarchy = load_hierarchy(&cfg, &public_base_url, clock.now())?;
    let extra_hierarchies = load_extra_hierarchies(&cfg, &public_base_url, clock.now())?;
    let tls = acme_tls(&cfg, clock.now())?;
    let root_path = match &cfg.ca.offline_root {
        Some(offline) => offline.root_certificate.clone(),
        None => ca_dir.join("root.pem"),
    };
    let tls_root_path = ca_dir.join(cairn_issuer::tls::TLS_ROOT_CERT_FILE);
    let mut public_parts = public_parts_with(&hierarchy, &extra_hierarchies);
    let ct = {
        let mut hierarchies = vec![&hierarchy];
        hierarchies.extend(extra_hierarchies.iter().map(|(h, _, _)| h));
        crate::ct_issuance::CaCt::start(&cfg.ct, &cfg.server.data_dir, &hierarchies).await?
    };
    // Ready only while an issuing (not retired) intermediate is valid and every local CT log
    // runs.
    let intermediate_not_after = hierarchy.intermediate().info().not_after;
    let mut active_not_after: Vec<time::OffsetDateTime> = extra_hierarchies
        .iter()
        .filter(|(_, _, retired)| !retired)
        .map(|(h, _, _)| h.intermediate().info().not_after)
        .collect();
    if !cfg.ca.retired {
        active_not_after.push(intermediate_not_after);
    }
    // What the `IssuerCertificateExpiringSoon` alert watches, for every issuer.
    let mut watched = vec![
        (hierarchy.issuer_id(), intermediate_not_after),
        (hierarchy.root_id(), hierarchy.root().info().not_after),
    ];
    for (extra, _, _) in &extra_hierarchies {
        watched.push((extra.issuer_id(), extra.intermediate().info().not_after));
        watched.push((extra.root_id(), extra.root().info().not_after));
    }
    for (id, not_after) in watched {
        metrics::gauge!("cairn_issuer_not_after_timestamp_seconds", "issuer" => id.to_owned())
            .set(not_after.unix_timestamp() as f64);
    }
    let issuing_until = active_not_after.into_iter().max();
    readiness.add(
        "issuer",
        Arc::new(move || {
            Box::pin(async move {
                match issuing_until {
                    Some(t) if time::OffsetDateTime::now_utc() < t => Ok(()),
                    _ => Err("every issuing intermediate has expired".to_owned()),
                }
            })
        }),
    );
    for log in &ct.local_logs {
        let log = log.clone();
        readiness.add(
            "ct",
            Arc::new(move || {
                let log = log.clone();
                Box::pin(async move {
                    log.check_ready()
                        .await
                        .map_err(|e| format!("log {}: {e}", log.name()))
                })
            }),
        );
    }
    let issuer = issuer_of(
        &cfg,
        hierarchy,
        extra_hierarchies,
        &public_base_url,
        clock.now(),
    )?;
    let storage_dyn: Arc<dyn cairn_sa::StorageAuthority> = storage.clone();
    public_parts.crls = Some(storage_dyn.clone());
    // The public statistics page (/stats, /stats.json) reads storage's counters, these SLI
    // events and the local CT logs' sizes (the DAP leader's count is added once it runs).
    let sli = cairn_status::sli::SliTally::new();
    let mut stats_sources = cairn_status::stats::Sources {
        sli: Some(sli.clone()),
        ..Default::default()
    };
    for log in &ct.local_logs {
        let log = log.clone();
        stats_sources
            .ct_logs
            .push((log.name().to_owned(), Arc::new(move || log.tree_size())));
    }
    let stats_storage = storage.clone();
    // The OCSP memory cache follows storage's revocation epoch as often as the CRL updater.
    let epoch_poll = cfg.crl.settings()?.poll_interval;
    let ocsp_parts = (storage_dyn.clone(), issuer.clone(), clock.clone());
    let ra_role = start_ra(
        &cfg,
        storage_dyn,
        issuer,
        ct.ra_submitter(),
        clock,
        &readiness,
    )
    .await?;
    let ra = ra_role.ra.clone();
    let app = sli.count(
        ct.mount(wfe_router(&cfg, Arc::new(ra.clone()), shared_nonces)),
        "acme",
    );

    let mut public_app = cairn_status::public::router(public_parts);
    if cfg.ocsp.enabled {
        let (sa, issuer, clock) = ocsp_parts;
        let redis_url = cfg.redis_url();
        let responder = OcspResponder::start(
            &cfg.ocsp,
            issuer,
            sa,
            clock,
            redis_url.as_deref(),
            epoch_poll,
        )
        .await?;
        ra.add_revocation_listener(responder.clone());
        public_app = public_app.merge(cairn_status::ocsp::router(responder));
    }
    let dap = if cfg.dap.enabled {
        Some(crate::dap_serve::start(&cfg.dap, &cfg.server.data_dir, &limits, &sli).await?)
    } else {
        None
    };
    stats_sources.dap_reports_aggregated = dap.as_ref().and_then(|d| d.reports_aggregated());
    let stats_page = cairn_status::stats::StatsPage::start(stats_storage, stats_sources)
        .await
        .map_err(|e| anyhow::anyhow!("cannot build the statistics counters: {e}"))?;
    let public_app = sli.count(
        public_app.merge(cairn_status::stats::router(stats_page)),
        "public",
    );
    let public_task = tokio::spawn(
        cairn_listen::Listener::new(public_listener, "public", limits.clone())
            .serve(public_app, std::future::pending::<()>()),
    );

    let listener = TcpListener::bind(cfg.server.listen)
        .await
        .with_context(|| format!("cannot listen on {}", cfg.server.listen))?;
    let acme_addr = listener.local_addr()?;
    let directory_url = directory_url(&cfg, acme_addr);

    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let stop = async move {
        let _ = rx.await;
        public_task.abort();
        ra_role.abort();
    };
    let task = spawn_acme(listener, app, tls, limits, stop);
    // Everything above (the issuer's hierarchy, CT logs, DAP) either started or failed start-up.
    readiness.mark_started();
    Ok(Server {
        acme_addr,
        metrics_addr,
        public_addr,
        public_base_url,
        root_path,
        tls_root_path,
        directory_url,
        ra,
        ct,
        dap,
        shutdown: Some(tx),
        task,
    })
}

/// The ACME listener's TLS configuration when `[server] tls` is on: the operator's certificate,
/// or one from the local TLS root in `<data_dir>/ca`; never one from the subscriber hierarchy
/// (see cairn_issuer::tls).
pub fn acme_tls(
    cfg: &Config,
    now: time::OffsetDateTime,
) -> anyhow::Result<Option<rustls::ServerConfig>> {
    if !cfg.server.tls {
        return Ok(None);
    }
    let ca_dir = cfg.server.data_dir.join("ca");
    let identity = match (&cfg.server.tls_cert, &cfg.server.tls_key) {
        (Some(cert), Some(key)) => cairn_issuer::tls::operator_tls_identity(cert, key)
            .context("server.tls_cert / server.tls_key")?,
        (None, None) => {
            // A WFE of a split deployment has no hierarchy that made the folder.
            crate::data_dir::prepare(&ca_dir)?;
            cairn_issuer::tls::tls_server_identity(&ca_dir, &cfg.ca.tls_names, now)
                .context("cannot set up the ACME listener's TLS certificate")?
        }
        _ => anyhow::bail!("server.tls_cert and server.tls_key must be set together"),
    };
    let config =
        cairn_wfe::tls::server_config(identity.cert_chain_der(), identity.private_key_pkcs8_der())
            .context("the ACME listener's TLS configuration")?;
    Ok(Some(config))
}

/// The directory URL of an ACME listener bound to `acme_addr`.
pub fn directory_url(cfg: &Config, acme_addr: SocketAddr) -> String {
    let scheme = if cfg.server.tls { "https" } else { "http" };
    let host = if acme_addr.ip().is_unspecified() || acme_addr.ip().is_loopback() {
        "localhost".to_string()
    } else {
        acme_addr.ip().to_string()
    };
    format!("{scheme}://{host}:{}/directory", acme_addr.port())
}

/// The ACME API over `ra`, with the shared nonce services when `[[wfe.nonce_services]]` lists
/// them (else nonces in this process's memory).
pub fn wfe_router(
    cfg: &Config,
    ra: Arc<dyn cairn_api::RegistrationAuthority>,
    shared_nonces: Option<Arc<dyn cairn_api::NonceService>>,
) -> axum::Router {
    match shared_nonces {
        Some(nonces) => cairn_wfe::router_with_nonces(ra, cfg.wfe.clone(), nonces),
        None => cairn_wfe::router(ra, cfg.wfe.clone()),
    }
}

/// Serves the ACME API `app` on `listener` (over TLS when `tls` is set) until `stop`.
pub fn spawn_acme(
    listener: TcpListener,
    app: axum::Router,
    tls: Option<rustls::ServerConfig>,
    limits: cairn_listen::Limits,
    stop: impl Future<Output = ()> + Send + 'static,
) -> tokio::task::JoinHandle<anyhow::Result<()>> {
    match tls {
        Some(server_config) => tokio::spawn(async move {
            cairn_wfe::tls::serve(listener, app, Arc::new(server_config), limits, stop).await;
            Ok(())
        }),
        None => tokio::spawn(async move {
            cairn_listen::Listener::new(listener, "acme", limits)
                .serve(app, stop)
                .await;
            Ok(())
        }),
    }
}

/// A running RA with its background work: the CRL updater and the recovery of validation and
/// issuance left `processing` past their lease.
#[derive(Debug)]
pub struct RaRole {
    /// The RA.
    pub ra: Ra,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl RaRole {
    /// Stops the background work.
    pub fn abort(&self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Builds the RA over `storage` and `issuer` as `cfg` says (its VA with the remote perspectives
/// of `[[va.remote]]`, rate limits, CRL updater, Debian weak keys), recovers the work left
/// `processing` past its lease (by the last shutdown, or by another instance on the same
/// database that died), and starts doing so on a timer. `cairn serve` and `cairn ra serve`.
pub async fn start_ra(
    cfg: &Config,
    storage: Arc<dyn cairn_sa::StorageAuthority>,
    issuer: Arc<dyn cairn_api::CertificateIssuer>,
    ct: Option<Arc<dyn cairn_api::CtSubmitter>>,
    clock: Arc<dyn Clock>,
    readiness: &bootstrap::Readiness,
) -> anyhow::Result<RaRole> {
    let crl_updater = CrlUpdater::new(
        issuer.clone(),
        storage.clone(),
        clock.clone(),
        cfg.crl.settings()?,
    );
    let va = crate::va_serve::with_perspectives(
        Arc::new(crate::va_serve::local_va(&cfg.va)?),
        &cfg.va.remote,
    )?;
    // One setting for the whole CA: the addresses validation may reach are the addresses
    // (and the reserved domains) the RA may issue for.
    let mut ra_config = cfg.ra.clone();
    ra_config.identifiers.allow_private_addresses = cfg.va.allow_private_addresses;

    let limiter = rate_limiter(cfg).await?;
    if let Some(url) = cfg.redis_url() {
        readiness.monitor("redis", redis_probe(&url).await?);
    }
    let ra = Ra::new_with_ct(storage, va, issuer, ct, limiter, clock, ra_config);
    if let Some(keys) = cfg.debian_weak_keys()? {
        tracing::info!(fingerprints = keys.len(), "refusing Debian weak keys");
        ra.refuse_debian_weak_keys(keys);
    }
    ra.add_revocation_listener(crl_updater.revocation_listener());
    let crl_task = tokio::spawn(crl_updater.run());
    // Work left `processing` past its lease (by the last shutdown, or by another instance on
    // the same database that died): at start-up, then on a timer.
    let (challenges, orders) = ra
        .recover_stale_work()
        .await
        .map_err(|p| anyhow::anyhow!("recovering interrupted validation and issuance: {p}"))?;
    if challenges + orders > 0 {
        tracing::info!(
            challenges,
            orders,
            "took over validation and issuance left processing past their lease"
        );
    }
    let recovery_task = {
        let ra = ra.clone();
        let every = std::time::Duration::try_from(ra.config().recovery_interval)
            .unwrap_or(std::time::Duration::from_secs(60));
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                // Failures are logged by the RA; the next tick tries again.
                let _ = ra.recover_stale_work().await;
            }
        })
    };
    Ok(RaRole {
        ra,
        tasks: vec![crl_task, recovery_task],
    })
}

/// The public listener's CA certificates: `hierarchy`'s issuing intermediate and root (no
/// CRL store yet).
pub fn public_parts(hierarchy: &CaHierarchy) -> cairn_status::public::PublicParts {
    let mut parts = cairn_status::public::PublicParts::default();
    parts.issuer_certificates.insert(
        hierarchy.issuer_id().to_owned(),
        hierarchy.intermediate().der().to_vec(),
    );
    parts.issuer_certificates.insert(
        hierarchy.root_id().to_owned(),
        hierarchy.root().der().to_vec(),
    );
    parts
}

/// [`public_parts`] with the CA certificates of every `[[ca.issuers]]` hierarchy too.
pub fn public_parts_with(
    hierarchy: &CaHierarchy,
    extra: &[(CaHierarchy, PathBuf, bool)],
) -> cairn_status::public::PublicParts {
    let mut parts = public_parts(hierarchy);
    for (extra, _, _) in extra {
        for (id, der) in [
            (extra.issuer_id(), extra.intermediate().der()),
            (extra.root_id(), extra.root().der()),
        ] {
            parts
                .issuer_certificates
                .insert(id.to_owned(), der.to_vec());
        }
    }
    parts
}

/// What signs (`cairn serve` and `cairn ca serve`): the main issuer alone, or with the
/// `[[ca.issuers]]` ones as an [`cairn_issuer::IssuerSet`].
pub fn issuer_of(
    cfg: &Config,
    hierarchy: CaHierarchy,
    extra: Vec<(CaHierarchy, PathBuf, bool)>,
    public_base_url: &str,
    now: time::OffsetDateTime,
) -> anyhow::Result<Arc<dyn cairn_api::CertificateIssuer>> {
    if extra.is_empty() {
        anyhow::ensure!(
            !cfg.ca.retired,
            "ca.retired needs an active [[ca.issuers]] entry to take new issuance"
        );
        return Ok(Arc::new(local_issuer(
            cfg,
            hierarchy,
            public_base_url,
            now,
        )?));
    }
    Ok(Arc::new(issuer_set(
        cfg,
        hierarchy,
        extra,
        public_base_url,
        now,
    )?))
}

/// The CA hierarchy: `[ca.offline_root]`'s, or the one in `<data_dir>/ca`, created there on
/// first start with certificates naming `public_base_url`.
pub fn load_hierarchy(
    cfg: &Config,
    public_base_url: &str,
    now: time::OffsetDateTime,
) -> anyhow::Result<CaHierarchy> {
    let ca_dir = cfg.server.data_dir.join("ca");
    Ok(match &cfg.ca.offline_root {
        Some(offline) => CaHierarchy::load_offline_root(offline, now)
            .context("cannot load the CA ([ca.offline_root])")?,
        None => CaHierarchy::load_or_create_with(
            &ca_dir,
            cfg.key_algorithm()?,
            now,
            &cairn_issuer::HierarchyOptions {
                country: Some(cfg.ca.country.clone()),
                public_base_url: Some(public_base_url.to_owned()),
            },
        )
        .with_context(|| format!("cannot set up the CA hierarchy in {}", ca_dir.display()))?,
    })
}

/// The hierarchies of `[[ca.issuers]]` (a development one created in `data_dir/ca-<name>` on
/// first start, or an intermediate under an offline root), each with its directory and whether
/// it is retired.
pub fn load_extra_hierarchies(
    cfg: &Config,
    public_base_url: &str,
    now: time::OffsetDateTime,
) -> anyhow::Result<Vec<(CaHierarchy, PathBuf, bool)>> {
    cfg.ca
        .issuers
        .iter()
        .map(|extra| {
            let dir = extra.dir(&cfg.server.data_dir)?;
            let hierarchy = match extra.source()? {
                crate::config::ExtraIssuerSource::OfflineRoot(offline) => {
                    CaHierarchy::load_offline_root(offline, now).with_context(|| {
                        format!("cannot load [[ca.issuers]] {:?} (offline_root)", extra.name)
                    })?
                }
                crate::config::ExtraIssuerSource::Development(algorithm) => {
                    CaHierarchy::load_or_create_with(
                        &dir,
                        algorithm,
                        now,
                        &cairn_issuer::HierarchyOptions {
                            country: Some(cfg.ca.country.clone()),
                            public_base_url: Some(public_base_url.to_owned()),
                        },
                    )
                    .with_context(|| {
                        format!("cannot set up the CA hierarchy in {}", dir.display())
                    })?
                }
            };
            Ok((hierarchy, dir, extra.retired))
        })
        .collect()
}

/// The main issuer and those of `[[ca.issuers]]` as one, retired ones as configured.
pub fn issuer_set(
    cfg: &Config,
    hierarchy: CaHierarchy,
    extra: Vec<(CaHierarchy, PathBuf, bool)>,
    public_base_url: &str,
    now: time::OffsetDateTime,
) -> anyhow::Result<cairn_issuer::IssuerSet> {
    let main = local_issuer(cfg, hierarchy, public_base_url, now)?;
    let main_id = main.issuer_id().to_owned();
    let mut set = cairn_issuer::IssuerSet::new(main);
    for (hierarchy, dir, retired) in extra {
        let issuer = local_issuer_in(cfg, hierarchy, &dir, public_base_url, now)?;
        set = set
            .with_issuer(issuer, retired)
            .map_err(|e| anyhow::anyhow!("[[ca.issuers]]: {e}"))?;
    }
    if cfg.ca.retired {
        set = set
            .retire(&main_id)
            .map_err(|e| anyhow::anyhow!("ca.retired: {e}"))?;
    }
    Ok(set)
}

/// The issuer that signs with `hierarchy`: its profile, lints, CRL shards and OCSP signer as
/// `cfg` says (`cairn serve` and `cairn ca serve`).
pub fn local_issuer(
    cfg: &Config,
    hierarchy: CaHierarchy,
    public_base_url: &str,
    now: time::OffsetDateTime,
) -> anyhow::Result<LocalIssuer> {
    let ca_dir = cfg.server.data_dir.join("ca");
    local_issuer_in(cfg, hierarchy, &ca_dir, public_base_url, now)
}

/// [`local_issuer`] for a hierarchy whose files (and delegated OCSP responder) are in `ca_dir`.
fn local_issuer_in(
    cfg: &Config,
    hierarchy: CaHierarchy,
    ca_dir: &std::path::Path,
    public_base_url: &str,
    now: time::OffsetDateTime,
) -> anyhow::Result<LocalIssuer> {
    // A CA that may issue for private addresses (a private PKI, a test set-up) must not let the
    // pre-issuance lint refuse them.
    let mut ignored_lints = cfg.ca.ignored_lints.clone();
    if cfg.va.allow_private_addresses {
        ignored_lints.push("e_ext_san_contains_reserved_ip".into());
    }
    let mut profile = cairn_issuer::EndEntityProfile::default();
    if cfg.ocsp.enabled {
        profile.ocsp_url = Some(format!("{public_base_url}/ocsp"));
    }
    let mut issuer = LocalIssuer::new(hierarchy, profile, ignored_lints)
        .context("cannot set up the issuer")?
        .with_public_base_url(public_base_url)
        .with_crl_shards(cfg.crl.settings()?.shards);
    if cfg.ocsp.enabled {
        issuer = issuer
            .with_ocsp_signer(ocsp_signer_kind(cfg.ocsp.signer), ca_dir, now)
            .map_err(|e| anyhow::anyhow!("cannot set up OCSP signing: {e}"))?;
    }
    Ok(issuer)
}

/// A readiness probe that the database answers a read (a count over an index, cheap on both
/// backends).
pub fn database_probe(storage: Arc<SqlStorage>) -> bootstrap::Probe {
    Arc::new(move || {
        let storage = storage.clone();
        Box::pin(async move {
            use cairn_sa::StorageAuthority;
            storage
                .count_accounts_by_ip("", time::OffsetDateTime::now_utc())
                .await
                .map(|_| ())
                .map_err(|_| "the database does not answer".to_owned())
        })
    })
}

/// Pings the shared Redis (rate limits, OCSP cache) over a connection of its own, so a
/// saturated rate-limit connection does not hide or fake an outage.
async fn redis_probe(url: &str) -> anyhow::Result<bootstrap::Probe> {
    let client =
        redis::Client::open(url).with_context(|| format!("invalid Redis URL ({})", redact(url)))?;
    let conn = redis::aio::ConnectionManager::new(client)
        .await
        .with_context(|| format!("cannot connect to Redis ({})", redact(url)))?;
    Ok(Arc::new(move || {
        let mut conn = conn.clone();
        Box::pin(async move {
            redis::cmd("PING")
                .query_async::<String>(&mut conn)
                .await
                .map(|_| ())
                .map_err(|_| "Redis does not answer PING".to_owned())
        })
    }))
}

/// The issuer's OCSP signing key for `[ocsp] signer` (the issuer is built with it; the responder
/// only asks it to sign).
pub fn ocsp_signer_kind(choice: SignerChoice) -> cairn_issuer::OcspSignerKind {
    match choice {
        SignerChoice::Issuer => cairn_issuer::OcspSignerKind::Issuer,
        SignerChoice::Delegated => cairn_issuer::OcspSignerKind::Delegated,
    }
}

#[cfg(test)]
mod tests {
    use super::{memory_rate_limit_store, redact};
    use cairn_ratelimit::{RateLimitStore, Tat, TatUpdate};

    #[tokio::test]
    async fn the_memory_rate_limit_store_holds_at_most_the_configured_keys() {
        let mut cfg = crate::config::Config::default();
        cfg.server.rate_limit_memory_keys = 1_000;
        let store = memory_rate_limit_store(&cfg);
        for i in 0..5_000u64 {
            let update = TatUpdate {
                key: format!("noa:{i}"),
                expected: None,
                new: Tat(1),
                ttl: std::time::Duration::from_secs(3600 + i),
            };
            assert!(store.compare_and_set_tats(&[update]).await.unwrap());
        }
        // 16 shards of ceil(1000 / 16) = 63 keys.
        assert!(store.len() <= 1_008, "{} keys held", store.len());
    }

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
