//! `cairn dap …`: the DAP aggregator (`serve`), a client (`upload`), a collector (`collect`) and
//! collector key generation (`keygen`) — thin wrappers over the `cairn-dap-*` libraries.

use anyhow::{Context, bail};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use cairn_dap_aggregator::{Aggregator, AggregatorConfig, AggregatorRole, Datastore};
use cairn_dap_core::{Clock, HpkeKeypair, RealClock, TaskParameters};
use cairn_dap_messages::{
    Decode, Duration, Encode, HpkeConfig, HpkeConfigId, Interval, Query, Time,
};
use clap::{Subcommand, ValueEnum};
use std::path::PathBuf;
use std::sync::Arc;

/// DAP subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum DapCommand {
    /// Run a DAP aggregator (leader or helper).
    Serve {
        /// The aggregator's role.
        #[arg(long, value_enum)]
        role: Role,
        /// TOML configuration file.
        #[arg(long)]
        config: PathBuf,
    },
    /// Upload measurements as a DAP client.
    Upload {
        /// Task parameters (JSON, as given to the control plane).
        #[arg(long)]
        task: PathBuf,
        /// Measurements, e.g. `1` (Count), `42` (Sum, Histogram bucket), `1,0,3` (vectors).
        #[arg(required = true)]
        measurements: Vec<String>,
    },
    /// Collect an aggregate over a time interval as the DAP collector. The bearer token comes
    /// from `CAIRN_DAP_COLLECTOR_TOKEN`.
    Collect {
        /// Task parameters (JSON).
        #[arg(long)]
        task: PathBuf,
        /// The collector's HPKE keypair (JSON from `cairn dap keygen`).
        #[arg(long)]
        hpke_keypair: PathBuf,
        /// Batch interval start, POSIX seconds (rounded down to the time precision).
        #[arg(long)]
        start: u64,
        /// Batch interval length in seconds (rounded up to the time precision).
        #[arg(long)]
        duration: u64,
        /// How many times to poll, one second apart.
        #[arg(long, default_value_t = 60)]
        max_polls: u32,
    },
    /// Generate a collector HPKE keypair (JSON on stdout; keep it private).
    Keygen {
        /// The configuration ID.
        #[arg(long, default_value_t = 1)]
        id: u8,
    },
}

/// Aggregator role on the command line.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum Role {
    /// The leader.
    Leader,
    /// The helper.
    Helper,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct KeypairFile {
    config: String,
    private_key: String,
}

fn read_task(path: &PathBuf) -> anyhow::Result<TaskParameters> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let params: TaskParameters = serde_json::from_str(&text).context("task parameters")?;
    params.validate()?;
    Ok(params)
}

/// Runs a DAP subcommand.
pub(crate) async fn run(cmd: DapCommand) -> anyhow::Result<()> {
    match cmd {
        DapCommand::Serve { role, config } => serve(role, config).await,
        DapCommand::Upload { task, measurements } => {
            let params = read_task(&task)?;
            let ms = measurements
                .iter()
                .map(|m| params.vdaf.parse_measurement(m))
                .collect::<Result<Vec<_>, _>>()?;
            let client = cairn_dap_client::Client::new(params, reqwest::Client::new()).await?;
            let errors = client.upload_measurements(&ms, RealClock.now()).await?;
            for s in &errors.status {
                eprintln!("report {} refused: {}", s.id, s.error.name());
            }
            println!(
                "uploaded {} of {}",
                ms.len() - errors.status.len(),
                ms.len()
            );
            Ok(())
        }
        DapCommand::Collect {
            task,
            hpke_keypair,
            start,
            duration,
            max_polls,
        } => {
            let params = read_task(&task)?;
            let file: KeypairFile = serde_json::from_str(&std::fs::read_to_string(&hpke_keypair)?)?;
            let config = HpkeConfig::get_decoded(&URL_SAFE_NO_PAD.decode(file.config)?)?;
            let keypair = HpkeKeypair::new(config, URL_SAFE_NO_PAD.decode(file.private_key)?)?;
            let token = std::env::var("CAIRN_DAP_COLLECTOR_TOKEN")
                .context("CAIRN_DAP_COLLECTOR_TOKEN is not set")?;
            let p = params.time_precision;
            let interval = Interval::new(Time(start / p), Duration(duration.div_ceil(p).max(1)))
                .context("interval overflows")?;
            let collector =
                cairn_dap_collector::Collector::new(params, keypair, token, reqwest::Client::new());
            let c = collector
                .collect(
                    Query::TimeInterval {
                        batch_interval: interval,
                    },
                    max_polls,
                    std::time::Duration::from_secs(1),
                )
                .await?;
            println!("{}", serde_json::to_string_pretty(&c)?);
            Ok(())
        }
        DapCommand::Keygen { id } => {
            let kp = HpkeKeypair::generate(HpkeConfigId(id));
            let file = KeypairFile {
                config: URL_SAFE_NO_PAD.encode(kp.config().get_encoded()?),
                private_key: URL_SAFE_NO_PAD.encode(kp.private_key()),
            };
            println!("{}", serde_json::to_string_pretty(&file)?);
            Ok(())
        }
    }
}

async fn serve(role: Role, path: PathBuf) -> anyhow::Result<()> {
    crate::bootstrap::init_logging();
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let cfg: AggregatorConfig = toml::from_str(&text).context("DAP aggregator configuration")?;
    let Some(url) = cfg.database_url() else {
        bail!("set database_url or database_url_env in {}", path.display());
    };
    let role = match role {
        Role::Leader => AggregatorRole::Leader,
        Role::Helper => AggregatorRole::Helper,
    };
    let ds = Datastore::connect(&url)
        .await
        .context("opening the DAP datastore")?;
    let agg = Aggregator::new(ds, Arc::new(RealClock), role, cfg.parameters.clone()).await?;
    let control = std::env::var(&cfg.control_token_env).ok();
    if control.is_none() {
        tracing::warn!(env = %cfg.control_token_env, "control plane disabled: token variable unset");
    }
    let drivers = (role == AggregatorRole::Leader)
        .then(|| agg.spawn_drivers(std::time::Duration::from_millis(cfg.driver_period_ms)));
    let listener = tokio::net::TcpListener::bind(cfg.listen)
        .await
        .with_context(|| format!("cannot listen on {}", cfg.listen))?;
    tracing::info!(addr = %listener.local_addr()?, role = role.as_str(), "DAP aggregator listening");
    axum::serve(
        listener,
        cairn_dap_aggregator::router(agg.clone(), control.as_deref()),
    )
    .with_graceful_shutdown(crate::bootstrap::shutdown_signal())
    .await?;
    if let Some(d) = drivers {
        d.abort();
    }
    agg.datastore().close().await;
    Ok(())
}
