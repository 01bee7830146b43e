//! `cairn dap …`: the DAP aggregator (`serve`), a client (`upload`), a collector (`collect`),
//! collector key generation (`keygen`) and the interop test API roles (`interop-*`) — thin
//! wrappers over the `cairn-dap-*` libraries.

use anyhow::{Context, bail};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use cairn_dap_aggregator::control_client::{self, HpkeKeyCommand, TaskTokens, random_bytes};
use cairn_dap_aggregator::{Aggregator, AggregatorConfig, AggregatorRole, Datastore, DatastoreKey};
use cairn_dap_core::{Clock, HpkeKeypair, RealClock, TaskParameters};
use cairn_dap_messages::{
    BatchMode, Decode, Duration, Encode, HpkeConfig, HpkeConfigId, Interval, Query, Time,
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
    /// Run the management console on a listener of its own, beside a leader run by
    /// `cairn dap serve --role leader` (see docs/dap-console.md).
    Console {
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
    /// Collect an aggregate as the DAP collector: over a time interval (`--start`,
    /// `--duration`) for a time-interval task, or the leader's next complete batch for a
    /// leader-selected task. The bearer token comes from `CAIRN_DAP_COLLECTOR_TOKEN`.
    Collect {
        /// Task parameters (JSON).
        #[arg(long)]
        task: PathBuf,
        /// The collector's HPKE keypair (JSON from `cairn dap keygen`).
        #[arg(long)]
        hpke_keypair: PathBuf,
        /// Time-interval tasks: batch interval start, POSIX seconds (rounded down to the time
        /// precision).
        #[arg(long)]
        start: Option<u64>,
        /// Time-interval tasks: batch interval length in seconds (rounded up to the time
        /// precision).
        #[arg(long)]
        duration: Option<u64>,
        /// How many times to poll, one second apart.
        #[arg(long, default_value_t = 60)]
        max_polls: u32,
        /// Also store the decrypted result at this console (e.g.
        /// `https://metrics.example/console`) for the task page's chart, with the account API
        /// token in `CAIRN_CONSOLE_TOKEN`.
        #[arg(long)]
        console: Option<String>,
    },
    /// Manage tasks.
    Task {
        /// What to do.
        #[command(subcommand)]
        action: TaskAction,
    },
    /// Print a fresh datastore key (for `CAIRN_DAP_DATASTORE_KEY`; keep it secret and backed
    /// up: without it the aggregator's stored secrets cannot be read).
    DatastoreKey,
    /// Manage an aggregator's HPKE keys through its control plane (token from
    /// `CAIRN_DAP_CONTROL_TOKEN`). Rotation: `create` (pending) → `activate` the new key →
    /// `expire` the old one once clients have refreshed → `delete` it when nothing sealed
    /// to it is in flight.
    HpkeKey {
        /// The aggregator's base URL, e.g. `http://127.0.0.1:8081/`.
        #[arg(long)]
        aggregator: String,
        /// What to do.
        #[command(subcommand)]
        action: HpkeKeyAction,
    },
    /// Interop test API (draft-dcook-ppm-dap-interop-test-design): a DAP client taking
    /// `/internal/test/upload` requests.
    InteropClient {
        /// Port to listen on (all addresses).
        #[arg(long, short, env = "PORT", default_value_t = cairn_dap_interop::DEFAULT_PORT)]
        port: u16,
    },
    /// Interop test API: an aggregator (leader or helper per task, chosen by `add_task`) with
    /// the DAP API at `/` on the same port. For tests only: tasks come from unauthenticated
    /// requests.
    InteropAggregator {
        /// Port to listen on (all addresses).
        #[arg(long, short, env = "PORT", default_value_t = cairn_dap_interop::DEFAULT_PORT)]
        port: u16,
        /// Datastore URL (`sqlite:…` or `postgres:…`); default: a fresh SQLite database in a
        /// temporary directory, removed on exit.
        #[arg(long)]
        database_url: Option<String>,
        /// How often the leader's job drivers run, in milliseconds.
        #[arg(long, default_value_t = 250)]
        driver_period_ms: u64,
    },
    /// Interop test API: a collector taking `add_task`, `collection_start` and
    /// `collection_poll` requests.
    InteropCollector {
        /// Port to listen on (all addresses).
        #[arg(long, short, env = "PORT", default_value_t = cairn_dap_interop::DEFAULT_PORT)]
        port: u16,
    },
    /// Generate a collector HPKE keypair (JSON on stdout; keep it private).
    Keygen {
        /// The configuration ID.
        #[arg(long, default_value_t = 1)]
        id: u8,
    },
}

/// `cairn dap task` actions.
#[derive(Debug, Subcommand)]
#[allow(clippy::large_enum_variant)] // parsed once per command line
pub(crate) enum TaskAction {
    /// Create a task on the leader and the helper through their control planes and print the
    /// task parameters (JSON) that clients and the collector use. A random task ID, VDAF
    /// verification key and leader→helper token are generated and sent only to the
    /// aggregators. Tokens: control planes from `CAIRN_DAP_LEADER_CONTROL_TOKEN` /
    /// `CAIRN_DAP_HELPER_CONTROL_TOKEN` (or `CAIRN_DAP_CONTROL_TOKEN` for both); the
    /// collector's from `CAIRN_DAP_COLLECTOR_TOKEN`.
    Create {
        /// The leader's DAP base URL.
        #[arg(long)]
        leader: String,
        /// The helper's DAP base URL.
        #[arg(long)]
        helper: String,
        /// The VDAF as JSON, e.g. `{"type":"Prio3Count"}` or
        /// `{"type":"Prio3Sum","max_measurement":255}`.
        #[arg(long)]
        vdaf: String,
        /// `time_interval` or `leader_selected`.
        #[arg(long, default_value = "time_interval")]
        batch_mode: String,
        /// Smallest collectable batch.
        #[arg(long, default_value_t = 100)]
        min_batch_size: u64,
        /// Leader-selected tasks: largest batch (default: min_batch_size).
        #[arg(long)]
        max_batch_size: Option<u64>,
        /// Seconds per DAP time unit.
        #[arg(long, default_value_t = 3600)]
        time_precision: u64,
        /// Distinguishes otherwise identical tasks.
        #[arg(long, default_value = "cairn")]
        task_info: String,
        /// The collector's HPKE keypair file (from `cairn dap keygen`); only its public
        /// config is sent.
        #[arg(long)]
        collector_hpke_keypair: PathBuf,
        /// Noise each aggregator adds to its aggregate share (Prio3Histogram, Prio3SumVec),
        /// e.g. `{"type":"PureDpDiscreteLaplace","epsilon_numerator":1,"epsilon_denominator":1}`.
        #[arg(long)]
        differential_privacy: Option<String>,
        /// The DAP version the task speaks: `dap-18`, or `dap-09` for the clients deployed
        /// today (`janus_client` 0.7, `@divviup/dap` 0.9).
        #[arg(long, default_value = "dap-18")]
        protocol: cairn_dap_core::Protocol,
        /// Write the task parameters here instead of stdout.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Make task parameters a taskprov task (in-band provisioning): print them with the task ID
    /// derived from their configuration. Clients of such a task advertise it to the leader in
    /// the `dap-taskprov` header; aggregators with a `[taskprov]` peer create it themselves.
    Taskprov {
        /// Task parameters (JSON); the task ID in it is replaced.
        #[arg(long)]
        task: PathBuf,
    },
}

/// `cairn dap hpke-key` actions.
#[derive(Debug, Subcommand)]
pub(crate) enum HpkeKeyAction {
    /// List keys and their states.
    List,
    /// Generate a new key (pending: decrypts, not yet advertised).
    Create,
    /// Advertise a key.
    Activate {
        /// Config ID.
        id: u8,
    },
    /// Stop advertising a key (it still decrypts reports in flight).
    Expire {
        /// Config ID.
        id: u8,
    },
    /// Delete an expired key.
    Delete {
        /// Config ID.
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

/// What `cairn dap collect` prints.
#[derive(serde::Serialize)]
struct PrintedCollection<'a> {
    #[serde(flatten)]
    collection: &'a cairn_dap_collector::Collection,
    /// Differential-privacy tasks: the aggregate read as signed numbers.
    #[serde(skip_serializing_if = "Option::is_none")]
    signed_aggregate_result: Option<Vec<i128>>,
}

/// Sends a decrypted collection to the console (`POST {console}/api/tasks/{task}/results`): a
/// time-interval batch is named by its interval, so collecting it again replaces it.
async fn store_in_console(
    console: &str,
    token: &str,
    params: &TaskParameters,
    query: &Query,
    c: &cairn_dap_collector::Collection,
    signed: Option<Vec<i128>>,
) -> anyhow::Result<()> {
    let p = params.time_precision;
    let seconds = |i: &Interval| (i.start.0.saturating_mul(p), i.duration.0.saturating_mul(p));
    let (batch, (start, duration)) = match query {
        Query::TimeInterval { batch_interval } => {
            let (s, d) = seconds(batch_interval);
            (Some(format!("{s}+{d}")), (s, d))
        }
        _ => (None, seconds(&c.interval)),
    };
    let result = match signed {
        Some(v) => serde_json::to_value(v)?,
        None => serde_json::to_value(&c.aggregate_result)?,
    };
    let body = serde_json::json!({
        "batch": batch,
        "interval": { "start": start, "duration": duration },
        "report_count": c.report_count,
        "aggregate_result": result,
    });
    let url = format!(
        "{}/api/tasks/{}/results",
        console.trim_end_matches('/'),
        params.task_id
    );
    let resp = reqwest::Client::new()
        .post(&url)
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .with_context(|| format!("storing the result at {url}"))?;
    if !resp.status().is_success() {
        let status = resp.status();
        let detail = resp.text().await.unwrap_or_default();
        bail!("the console refused the result ({status}): {detail}");
    }
    Ok(())
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
        DapCommand::Console { config } => console(config).await,
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
            console,
        } => {
            let params = read_task(&task)?;
            let console_token = match &console {
                Some(_) => Some(
                    std::env::var("CAIRN_CONSOLE_TOKEN")
                        .context("--console needs an API token in CAIRN_CONSOLE_TOKEN")?,
                ),
                None => None,
            };
            let file: KeypairFile = serde_json::from_str(&std::fs::read_to_string(&hpke_keypair)?)?;
            let config = HpkeConfig::get_decoded(&URL_SAFE_NO_PAD.decode(file.config)?)?;
            let keypair = HpkeKeypair::new(config, URL_SAFE_NO_PAD.decode(file.private_key)?)?;
            let token = std::env::var("CAIRN_DAP_COLLECTOR_TOKEN")
                .context("CAIRN_DAP_COLLECTOR_TOKEN is not set")?;
            let p = params.time_precision;
            let query = match (params.batch_mode, start, duration) {
                (BatchMode::LeaderSelected, None, None) => Query::LeaderSelected,
                (BatchMode::LeaderSelected, _, _) => {
                    bail!("a leader-selected task takes no --start/--duration")
                }
                (_, Some(start), Some(duration)) => Query::TimeInterval {
                    batch_interval: Interval::new(
                        Time(start / p),
                        Duration(duration.div_ceil(p).max(1)),
                    )
                    .context("interval overflows")?,
                },
                _ => bail!("a time-interval task needs --start and --duration"),
            };
            let collector = cairn_dap_collector::Collector::new(
                params.clone(),
                keypair,
                token,
                reqwest::Client::new(),
            );
            let c = collector
                .collect(query.clone(), max_polls, std::time::Duration::from_secs(1))
                .await?;
            // With differential privacy a coordinate may be pushed below zero, which the field
            // shows as a number just under its modulus: print the signed reading too.
            let signed_aggregate_result = params
                .differential_privacy
                .is_some()
                .then(|| c.aggregate_result.signed(&params.vdaf));
            let printed = PrintedCollection {
                collection: &c,
                signed_aggregate_result: signed_aggregate_result.clone(),
            };
            println!("{}", serde_json::to_string_pretty(&printed)?);
            if let (Some(console), Some(token)) = (console, console_token) {
                store_in_console(
                    &console,
                    &token,
                    &params,
                    &query,
                    &c,
                    signed_aggregate_result,
                )
                .await?;
                eprintln!("stored the result at the console");
            }
            Ok(())
        }
        DapCommand::Task {
            action:
                TaskAction::Create {
                    leader,
                    helper,
                    vdaf,
                    batch_mode,
                    min_batch_size,
                    max_batch_size,
                    time_precision,
                    task_info,
                    collector_hpke_keypair,
                    differential_privacy,
                    protocol,
                    out,
                },
        } => {
            let differential_privacy = differential_privacy
                .map(|dp| serde_json::from_str(&dp))
                .transpose()
                .context("--differential-privacy is not a DP strategy in JSON")?;
            let vdaf = serde_json::from_str(&vdaf).context("--vdaf is not a VDAF in JSON")?;
            let batch_mode: BatchMode =
                serde_json::from_value(serde_json::Value::String(batch_mode.replace('-', "_")))
                    .context("--batch-mode must be time_interval or leader_selected")?;
            let file: KeypairFile =
                serde_json::from_str(&std::fs::read_to_string(&collector_hpke_keypair)?)
                    .context("collector HPKE keypair file")?;
            let params = TaskParameters {
                task_id: cairn_dap_messages::TaskId::from_bytes(random_bytes()?),
                leader_endpoint: leader,
                helper_endpoint: helper,
                time_precision,
                min_batch_size,
                batch_mode,
                vdaf,
                task_info,
                task_interval: None,
                max_batch_size,
                differential_privacy,
                protocol,
            };
            params.validate()?;
            create_task(&params, &file.config).await?;
            let json = serde_json::to_string_pretty(&params)?;
            match out {
                Some(path) => std::fs::write(&path, json + "\n")
                    .with_context(|| format!("writing {}", path.display()))?,
                None => println!("{json}"),
            }
            Ok(())
        }
        DapCommand::Task {
            action: TaskAction::Taskprov { task },
        } => {
            let params = cairn_dap_core::taskprov::with_derived_task_id(read_task(&task)?)?;
            println!("{}", serde_json::to_string_pretty(&params)?);
            Ok(())
        }
        DapCommand::DatastoreKey => {
            println!("{}", DatastoreKey::generate_base64url()?);
            Ok(())
        }
        DapCommand::HpkeKey { aggregator, action } => hpke_key(&aggregator, action).await,
        DapCommand::InteropClient { port } => {
            crate::bootstrap::init_logging();
            let router = cairn_dap_interop::client_router()?;
            let shutdown = crate::bootstrap::shutdown_signal();
            Ok(cairn_dap_interop::serve(router, port, "client", shutdown).await?)
        }
        DapCommand::InteropCollector { port } => {
            crate::bootstrap::init_logging();
            let router = cairn_dap_interop::collector_router()?;
            let shutdown = crate::bootstrap::shutdown_signal();
            Ok(cairn_dap_interop::serve(router, port, "collector", shutdown).await?)
        }
        DapCommand::InteropAggregator {
            port,
            database_url,
            driver_period_ms,
        } => {
            crate::bootstrap::init_logging();
            anyhow::ensure!(
                (10..=60_000).contains(&driver_period_ms),
                "--driver-period-ms must be within 10..=60000"
            );
            let period = std::time::Duration::from_millis(driver_period_ms);
            let shutdown = crate::bootstrap::shutdown_signal();
            Ok(
                cairn_dap_interop::run_aggregator(port, database_url.as_deref(), period, shutdown)
                    .await?,
            )
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
    let key_text = std::env::var(&cfg.datastore_key_env).with_context(|| {
        format!(
            "{} is not set (the datastore key; `cairn dap datastore-key` prints a fresh one)",
            cfg.datastore_key_env
        )
    })?;
    let key = DatastoreKey::from_base64url(&key_text)
        .with_context(|| format!("{} is not a valid datastore key", cfg.datastore_key_env))?;
    anyhow::ensure!(
        cfg.sqlite_writer_cache_mib <= cairn_dap_aggregator::MAX_WRITER_CACHE_MIB,
        "sqlite_writer_cache_mib must be at most {} in {}",
        cairn_dap_aggregator::MAX_WRITER_CACHE_MIB,
        path.display()
    );
    let ds = Datastore::connect_with_cache(&url, key, cfg.sqlite_writer_cache_mib)
        .await
        .context("opening the DAP datastore")?;
    let agg = Aggregator::new(ds, Arc::new(RealClock), role, cfg.parameters.clone()).await?;
    if let Some(tp) = &cfg.taskprov {
        agg.enable_taskprov(taskprov_peer(tp, role)?)?;
        tracing::info!(peer = %tp.peer_endpoint, "taskprov enabled");
    }
    let control = std::env::var(&cfg.control_token_env).ok();
    if control.is_none() {
        tracing::warn!(env = %cfg.control_token_env, "control plane disabled: token variable unset");
    }
    // The leader's job drivers, or the helper's driver of asynchronous aggregation jobs.
    let drivers = agg.spawn_drivers(std::time::Duration::from_millis(cfg.driver_period_ms));
    // Deleting expired reports (tasks with a report expiry age) and rotating HPKE keys.
    let gc = agg.spawn_garbage_collector();
    let rotator = agg.spawn_key_rotator();
    let listener = tokio::net::TcpListener::bind(cfg.listen)
        .await
        .with_context(|| format!("cannot listen on {}", cfg.listen))?;
    tracing::info!(addr = %listener.local_addr()?, role = role.as_str(), "DAP aggregator listening");
    cairn_listen::Listener::new(listener, "dap", cairn_listen::Limits::default())
        .serve(
            cairn_dap_aggregator::router(agg.clone(), control.as_deref()),
            crate::bootstrap::shutdown_signal(),
        )
        .await;
    drivers.abort();
    gc.abort();
    rotator.abort();
    agg.datastore().close().await;
    Ok(())
}

/// The taskprov peer of a `[taskprov]` section, its secrets read from the environment.
fn taskprov_peer(
    tp: &cairn_dap_aggregator::config::TaskprovConfig,
    role: AggregatorRole,
) -> anyhow::Result<cairn_dap_aggregator::TaskprovPeer> {
    let env = |name: &str, what: &str| {
        std::env::var(name).with_context(|| format!("{name} is not set ({what})"))
    };
    let init = URL_SAFE_NO_PAD
        .decode(env(&tp.verify_key_init_env, "taskprov's verify_key_init")?.trim())
        .ok()
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
        .with_context(|| format!("{} is not 32 bytes of base64url", tp.verify_key_init_env))?;
    let collector_hpke_config = URL_SAFE_NO_PAD
        .decode(tp.collector_hpke_config.trim())
        .ok()
        .and_then(|b| HpkeConfig::get_decoded(&b).ok())
        .context("taskprov collector_hpke_config is not a base64url HpkeConfig")?;
    let collector_auth_token_hash = match role {
        AggregatorRole::Leader => Some(cairn_dap_aggregator::TokenHash::of(&env(
            &tp.collector_auth_token_env,
            "the collector's token for taskprov tasks",
        )?)),
        _ => None,
    };
    Ok(cairn_dap_aggregator::TaskprovPeer {
        own_endpoint: tp.own_endpoint.clone(),
        peer_endpoint: tp.peer_endpoint.clone(),
        verify_key_init: init,
        aggregator_auth_token: cairn_dap_aggregator::BearerToken::new(env(
            &tp.aggregator_auth_token_env,
            "the bearer token shared with the taskprov peer",
        )?),
        collector_hpke_config,
        collector_auth_token_hash,
        min_batch_size_floor: tp.min_batch_size_floor,
        report_expiry_age: tp.report_expiry_age_secs,
    })
}

/// `cairn dap console`: the console on its own listener, on the leader's datastore.
async fn console(path: PathBuf) -> anyhow::Result<()> {
    use cairn_dap_console::{AggregatorEndpoint, Console, StandaloneConfig};
    crate::bootstrap::init_logging();
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let cfg: StandaloneConfig = toml::from_str(&text).context("DAP console configuration")?;
    let Some(url) = cfg.database_url() else {
        bail!("set database_url or database_url_env in {}", path.display());
    };
    let env = |name: &str, what: &str| {
        std::env::var(name).with_context(|| format!("{name} is not set ({what})"))
    };
    let key = DatastoreKey::from_base64url(&env(&cfg.datastore_key_env, "the datastore key")?)
        .with_context(|| format!("{} is not a valid datastore key", cfg.datastore_key_env))?;
    let ds = Datastore::connect(&url, key)
        .await
        .context("opening the DAP datastore")?;
    let leader = AggregatorEndpoint {
        url: cfg.leader_url.clone(),
        control_token: env(&cfg.leader_control_token_env, "the leader's control token")?,
    };
    let shared_helper = match &cfg.shared_helper_url {
        Some(url) => Some(AggregatorEndpoint {
            url: url.clone(),
            control_token: env(
                &cfg.shared_helper_control_token_env,
                "the shared helper's control token",
            )?,
        }),
        None => None,
    };
    let console = Console::new(
        cfg.console.clone(),
        ds.clone(),
        leader,
        shared_helper,
        Arc::new(RealClock),
    )?;
    let app =
        axum::Router::new().nest(cairn_dap_console::MOUNT, cairn_dap_console::router(console));
    let listener = tokio::net::TcpListener::bind(cfg.listen)
        .await
        .with_context(|| format!("cannot listen on {}", cfg.listen))?;
    tracing::info!(addr = %listener.local_addr()?, "DAP console listening");
    cairn_listen::Listener::new(listener, "dap-console", cairn_listen::Limits::default())
        .serve(app, crate::bootstrap::shutdown_signal())
        .await;
    ds.close().await;
    Ok(())
}

async fn hpke_key(base: &str, action: HpkeKeyAction) -> anyhow::Result<()> {
    let token =
        std::env::var("CAIRN_DAP_CONTROL_TOKEN").context("CAIRN_DAP_CONTROL_TOKEN is not set")?;
    let command = match action {
        HpkeKeyAction::List => HpkeKeyCommand::List,
        HpkeKeyAction::Create => HpkeKeyCommand::Create,
        HpkeKeyAction::Activate { id } => HpkeKeyCommand::Activate(id),
        HpkeKeyAction::Expire { id } => HpkeKeyCommand::Expire(id),
        HpkeKeyAction::Delete { id } => HpkeKeyCommand::Delete(id),
    };
    for k in control_client::hpke_keys(&reqwest::Client::new(), base, &token, command).await? {
        println!("{}\t{}", k.config_id, k.state.as_str());
    }
    Ok(())
}

fn env_token(names: &[&str]) -> anyhow::Result<String> {
    names
        .iter()
        .find_map(|n| std::env::var(n).ok())
        .with_context(|| format!("set {}", names.join(" or ")))
}

/// Creates the task on both aggregators with the tokens from the environment.
async fn create_task(params: &TaskParameters, collector_config: &str) -> anyhow::Result<()> {
    let tokens = TaskTokens {
        leader_control: env_token(&["CAIRN_DAP_LEADER_CONTROL_TOKEN", "CAIRN_DAP_CONTROL_TOKEN"])?,
        helper_control: env_token(&["CAIRN_DAP_HELPER_CONTROL_TOKEN", "CAIRN_DAP_CONTROL_TOKEN"])?,
        collector: env_token(&["CAIRN_DAP_COLLECTOR_TOKEN"])?,
    };
    Ok(
        control_client::create_task(&reqwest::Client::new(), params, collector_config, &tokens)
            .await?,
    )
}
