//! The DAP leader and helper that `cairn serve` runs next to the CA (`[dap]`).
//!
//! Each aggregator gets its own listener and its own SQLite datastore under
//! `<data_dir>/dap/`. Secrets come from the environment when set; otherwise they are generated on
//! first start and kept in files readable only by the owner (0600) in that folder:
//! `datastore.key` (the key sealing HPKE private keys, verification keys and tokens at rest —
//! back it up) and `control.token` (the control planes' bearer token).

use anyhow::Context;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use cairn_dap_aggregator::control_client::random_bytes;
use cairn_dap_aggregator::{
    Aggregator, AggregatorParameters, AggregatorRole, Datastore, DatastoreKey,
};
use cairn_dap_console::{AggregatorEndpoint, Console, ConsoleConfig};
use cairn_dap_core::RealClock;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// `[dap]`: the DAP leader and helper of the all-in-one server.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DapSection {
    /// Run a DAP leader and helper in `cairn serve`.
    pub enabled: bool,
    /// Address of the leader's DAP API (and its control plane under `/control/`).
    pub leader_listen: SocketAddr,
    /// Address of the helper's DAP API (and its control plane under `/control/`).
    pub helper_listen: SocketAddr,
    /// How often the job drivers run, in milliseconds (the helper's only has work with
    /// `async_aggregation`).
    pub driver_period_ms: u64,
    /// The most MiB of pages each datastore's SQLite writer keeps cached (0: SQLite's default,
    /// about 2 MB). Every aggregator write goes through that one connection.
    pub sqlite_writer_cache_mib: u64,
    /// Aggregator tunables (shared by both).
    pub parameters: AggregatorParameters,
    /// `[dap.console]`: the management console, served by the leader under `/console/` and
    /// offering this helper as the shared helper.
    pub console: ConsoleConfig,
}

impl Default for DapSection {
    fn default() -> Self {
        DapSection {
            enabled: true,
            leader_listen: SocketAddr::from(([127, 0, 0, 1], 14010)),
            helper_listen: SocketAddr::from(([127, 0, 0, 1], 14011)),
            driver_period_ms: 1000,
            sqlite_writer_cache_mib: cairn_dap_aggregator::DEFAULT_WRITER_CACHE_MIB,
            parameters: AggregatorParameters::default(),
            console: ConsoleConfig::default(),
        }
    }
}

impl DapSection {
    /// Checks the values.
    pub fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            (10..=60_000).contains(&self.driver_period_ms),
            "dap.driver_period_ms must be within 10..=60000"
        );
        anyhow::ensure!(
            self.sqlite_writer_cache_mib <= cairn_dap_aggregator::MAX_WRITER_CACHE_MIB,
            "dap.sqlite_writer_cache_mib must be at most {}",
            cairn_dap_aggregator::MAX_WRITER_CACHE_MIB
        );
        self.parameters
            .validate()
            .map_err(|e| anyhow::anyhow!("dap.parameters: {e}"))?;
        self.console
            .validate()
            .map_err(|e| anyhow::anyhow!("dap.console: {e}"))?;
        Ok(())
    }
}

/// Environment variable with the datastore key (else `<data_dir>/dap/datastore.key`).
pub const DATASTORE_KEY_ENV: &str = "CAIRN_DAP_DATASTORE_KEY";
/// Environment variable with the control-plane token (else `<data_dir>/dap/control.token`).
pub const CONTROL_TOKEN_ENV: &str = "CAIRN_DAP_CONTROL_TOKEN";

/// A running leader and helper.
#[derive(Debug)]
pub struct DapPair {
    /// The leader's DAP base URL (ends with `/`).
    pub leader_url: String,
    /// The helper's DAP base URL (ends with `/`).
    pub helper_url: String,
    /// The control-plane bearer token of both aggregators.
    control_token: String,
    /// Where the control token is stored, when it was not given in the environment.
    pub control_token_file: Option<PathBuf>,
    aggregators: Vec<Aggregator>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl DapPair {
    /// The control-plane bearer token (for in-process callers; never logged).
    pub fn control_token(&self) -> &str {
        &self.control_token
    }

    /// The reports the leader has aggregated, for the public statistics page.
    pub fn reports_aggregated(&self) -> Option<cairn_status::stats::Figure> {
        let leader = self
            .aggregators
            .iter()
            .find(|a| a.role() == AggregatorRole::Leader)?
            .clone();
        Some(Arc::new(move || {
            let leader = leader.clone();
            Box::pin(async move {
                leader
                    .datastore()
                    .count_aggregated_reports()
                    .await
                    .map_err(|e| e.to_string())
            })
        }))
    }

    /// Stops the listeners and drivers and closes the datastores.
    pub async fn shutdown(self) {
        for t in &self.tasks {
            t.abort();
        }
        for t in self.tasks {
            let _ = t.await;
        }
        for a in &self.aggregators {
            a.datastore().close().await;
        }
    }
}

/// Reads a secret from `env`, else from `file`, else generates one with `generate` and stores
/// it in `file` (0600). Returns the secret and the file it lives in (None: from the env).
fn secret(
    env: &str,
    file: &Path,
    generate: impl FnOnce() -> anyhow::Result<String>,
) -> anyhow::Result<(String, Option<PathBuf>)> {
    if let Ok(v) = std::env::var(env) {
        return Ok((v, None));
    }
    match std::fs::read_to_string(file) {
        Ok(text) => return Ok((text.trim().to_owned(), Some(file.to_owned()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("reading {}", file.display())),
    }
    let value = generate()?;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts
        .open(file)
        .with_context(|| format!("creating {}", file.display()))?;
    std::io::Write::write_all(&mut f, format!("{value}\n").as_bytes())
        .and_then(|()| f.sync_all())
        .with_context(|| format!("writing {}", file.display()))?;
    Ok((value, Some(file.to_owned())))
}

/// Starts the leader and helper with their datastores under `<data_dir>/dap/`, their requests
/// counted in `sli` for the statistics page.
pub async fn start(
    section: &DapSection,
    data_dir: &Path,
    limits: &cairn_listen::Limits,
    sli: &Arc<cairn_status::sli::SliTally>,
) -> anyhow::Result<DapPair> {
    let dir = data_dir.join("dap");
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let (key_text, _) = secret(DATASTORE_KEY_ENV, &dir.join("datastore.key"), || {
        Ok(DatastoreKey::generate_base64url()?)
    })?;
    let key = DatastoreKey::from_base64url(&key_text).with_context(|| {
        format!("the DAP datastore key ({DATASTORE_KEY_ENV} or dap/datastore.key) is not valid")
    })?;
    let (control_token, control_token_file) =
        secret(CONTROL_TOKEN_ENV, &dir.join("control.token"), || {
            Ok(URL_SAFE_NO_PAD.encode(random_bytes()?))
        })?;

    let mut pair = DapPair {
        leader_url: String::new(),
        helper_url: String::new(),
        control_token,
        control_token_file,
        aggregators: Vec::new(),
        tasks: Vec::new(),
    };
    for (role, listen) in [
        (AggregatorRole::Helper, section.helper_listen),
        (AggregatorRole::Leader, section.leader_listen),
    ] {
        let db = dir.join(format!("{}.db", role.as_str()));
        let url = format!("sqlite://{}?mode=rwc", db.display());
        let ds = Datastore::connect_with_cache(&url, key.clone(), section.sqlite_writer_cache_mib)
            .await
            .with_context(|| format!("opening the DAP {} datastore", role.as_str()))?;
        let agg = Aggregator::new(ds, Arc::new(RealClock), role, section.parameters.clone())
            .await
            .with_context(|| format!("starting the DAP {}", role.as_str()))?;
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("cannot listen on {listen} (DAP {})", role.as_str()))?;
        let addr = listener.local_addr()?;
        let base = format!("http://{addr}/");
        if role == AggregatorRole::Leader {
            pair.leader_url = base;
        } else {
            pair.helper_url = base;
        }
        // The leader's job drivers, or the helper's driver of asynchronous aggregation jobs.
        pair.tasks
            .push(agg.spawn_drivers(std::time::Duration::from_millis(section.driver_period_ms)));
        pair.tasks.push(agg.spawn_garbage_collector());
        pair.tasks.push(agg.spawn_key_rotator());
        let mut app = sli.count(
            cairn_dap_aggregator::router(agg.clone(), Some(&pair.control_token)),
            "dap",
        );
        if role == AggregatorRole::Leader && section.console.enabled {
            app = app.nest(
                cairn_dap_console::MOUNT,
                console_router(section, &pair, &agg)?,
            );
        }
        pair.tasks.push(tokio::spawn(
            cairn_listen::Listener::new(listener, "dap", limits.clone())
                .serve(app, std::future::pending::<()>()),
        ));
        pair.aggregators.push(agg);
    }
    Ok(pair)
}

/// The console on the leader: tasks are created at this leader and this helper (the shared
/// helper every account is offered), both through their control planes.
fn console_router(
    section: &DapSection,
    pair: &DapPair,
    leader: &Aggregator,
) -> anyhow::Result<axum::Router> {
    let endpoint = |url: &str| AggregatorEndpoint {
        url: url.to_owned(),
        control_token: pair.control_token.clone(),
    };
    let console = Console::new(
        section.console.clone(),
        leader.datastore().clone(),
        endpoint(&pair.leader_url),
        Some(endpoint(&pair.helper_url)),
        Arc::new(RealClock),
    )
    .context("starting the DAP console")?;
    Ok(cairn_dap_console::router(console))
}
