//! The `cairn` binary: `cairn serve` runs the all-in-one CA; one subcommand per component and
//! tool shares the same bootstrap (config, logging, metrics).

use cairn::{admin, bootstrap, config, serve};
use clap::{Parser, Subcommand};
use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

mod dap;

/// Cairn: a memory-safe ACME certificate authority.
#[derive(Debug, Parser)]
#[command(name = "cairn", version, about)]
struct Cli {
    /// How logs are written to stderr: `text` (one readable line per event) or `json` (one
    /// JSON object per line, for Loki or Elasticsearch).
    #[arg(
        long,
        global = true,
        value_enum,
        env = "CAIRN_LOG_FORMAT",
        default_value = "text"
    )]
    log_format: bootstrap::LogFormat,
    /// Export trace spans over OTLP/HTTP (protobuf) to this collector base URL, such as
    /// `http://127.0.0.1:4318` (spans go to `/v1/traces`). Off when unset.
    #[arg(long, global = true, env = "OTEL_EXPORTER_OTLP_ENDPOINT", value_parser = http_url)]
    otlp_endpoint: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the whole CA in one process (ACME API, RA, VA, issuer, storage).
    Serve(cairn::ServeArgs),
    /// Run the challenge test server (pebble-challtestsrv compatible) for hermetic validation.
    Challtestsrv(ChallArgs),
    /// Configuration tools.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Operator tasks against the CA's storage.
    #[command(subcommand)]
    Admin(admin::AdminCommand),
    /// DAP (privacy-preserving metrics): aggregator, client and collector.
    #[command(subcommand)]
    Dap(dap::DapCommand),
    /// The nonce service of a split deployment (gRPC, mutual TLS).
    #[command(subcommand)]
    Nonce(NonceCommand),
    /// A validation authority as a gRPC service (a remote network perspective).
    #[command(subcommand)]
    Va(VaCommand),
    /// The storage authority as a gRPC service (split deployment).
    #[command(subcommand)]
    Sa(RoleCommand),
    /// The issuer (the CA's keys) as a gRPC service (split deployment).
    #[command(subcommand)]
    Ca(RoleCommand),
    /// The registration authority (with its VA) as a gRPC service (split deployment).
    #[command(subcommand)]
    Ra(RoleCommand),
    /// The ACME API of a split deployment, over a remote RA.
    #[command(subcommand)]
    Wfe(RoleCommand),
    /// Certificate Transparency log (C2SP static-ct-api).
    #[command(subcommand)]
    Ct(CtCommand),
    /// Black-box prober: issues through the ACME API, checks OCSP, the CRL and a CT log, and
    /// exports the results as Prometheus metrics.
    Probe(cairn::probe::ProbeArgs),
    /// Run one key-ceremony step (generate an HSM key, sign a root, intermediate, delegated
    /// signer or the root's CRL) from a reviewed TOML file; see docs/key-management.md.
    Ceremony {
        /// The ceremony step file.
        file: PathBuf,
    },
    /// Load generators and benchmarks: runs `cairn-bench` from this binary's directory (build
    /// it with `cargo build --release -p cairn-bench`; `cairn bench --help` lists them).
    #[command(disable_help_flag = true)]
    Bench {
        /// The benchmark and its flags, passed to `cairn-bench` unchanged.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<OsString>,
    },
}

#[derive(Debug, Subcommand)]
enum NonceCommand {
    /// Mint and redeem the WFEs' nonces (`[nonce]` and `[rpc]` of the configuration).
    Serve {
        /// The TOML configuration.
        #[arg(long)]
        config: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum RoleCommand {
    /// Serve this role over gRPC with mutual TLS (its own section of the configuration, and
    /// `[rpc] tls`).
    Serve {
        /// The TOML configuration.
        #[arg(long)]
        config: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum VaCommand {
    /// Serve one VA over gRPC with mutual TLS, for a primary VA to fan out to.
    Serve {
        /// The TOML configuration (`listen`, `perspective`, `allowed_clients`, `[tls]`, `[va]`).
        #[arg(long)]
        config: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum CtCommand {
    /// Run the CT logs of a configuration file (several temporal shards in one process).
    Serve {
        /// The TOML configuration (`listen`, optional `metrics_listen`, `[[log]]` list).
        #[arg(long)]
        config: PathBuf,
    },
    /// Run a C2SP tlog-witness: cosign checkpoints of the configured logs that extend the last
    /// one it cosigned (consistency proofs), refuse forks.
    Witness {
        /// The TOML configuration (`listen`, `name`, `key_file`, `state_dir`, `logs` vkeys).
        #[arg(long)]
        config: PathBuf,
    },
    /// Audit a static-ct-api log: verify its checkpoint's signatures (RFC 6962, Ed25519,
    /// ML-DSA-44), recompute the tree from every tile, check consistency with an older checkpoint.
    Verify {
        /// The log's monitoring prefix, e.g. https://ct.example.org/2026h1/.
        url: String,
        /// A signed checkpoint saved earlier; the current tree must extend it.
        #[arg(long)]
        old_checkpoint: Option<PathBuf>,
        /// A signed-note verifier key (repeatable); default: the log's `vkeys` file.
        #[arg(long)]
        vkey: Vec<String>,
        /// The log's `log.v3.json` as the log list has it; default: fetched from the log.
        #[arg(long)]
        log_json: Option<PathBuf>,
    },
}

#[derive(Debug, clap::Args)]
struct ChallArgs {
    /// Management API address.
    #[arg(long, default_value = "0.0.0.0:8055")]
    management: SocketAddr,
    /// DNS server address (UDP and TCP).
    #[arg(long, default_value = "0.0.0.0:8053")]
    dns: SocketAddr,
    /// HTTP-01 responder address.
    #[arg(long, default_value = "0.0.0.0:5002")]
    http01: SocketAddr,
    /// TLS-ALPN-01 responder address.
    #[arg(long, default_value = "0.0.0.0:5001")]
    tlsalpn01: SocketAddr,
    /// Default IPv4 address for A queries without an explicit record.
    #[arg(long, default_value = "127.0.0.1")]
    default_ipv4: std::net::Ipv4Addr,
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Check a configuration file and print the effective configuration.
    Validate {
        /// The file.
        file: PathBuf,
    },
}

/// An `http://` or `https://` URL (checked in full by the exporter).
fn http_url(s: &str) -> Result<String, String> {
    if s.starts_with("http://") || s.starts_with("https://") {
        Ok(s.to_owned())
    } else {
        Err("must be an http:// or https:// URL".into())
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    bootstrap::set_log_format(cli.log_format);
    if let Some(endpoint) = cli.otlp_endpoint.clone() {
        bootstrap::set_otlp_endpoint(endpoint);
    }
    // Before any runtime starts: this process becomes `cairn-bench`.
    if let Command::Bench { args } = cli.command {
        return run_bench(args);
    }
    // Every connection is a file descriptor: the listeners' caps, not a low soft limit, decide
    // when to refuse.
    cairn_listen::raise_nofile_limit();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cairn: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = rt.block_on(async move {
        match cli.command {
            Command::Serve(args) => serve::run(args).await,
            Command::Challtestsrv(args) => run_challtestsrv(args).await,
            Command::Config(ConfigCommand::Validate { file }) => {
                let cfg = config::Config::load(&file)?;
                println!("{}", toml::to_string_pretty(&cfg)?);
                eprintln!("{}: OK", file.display());
                Ok(())
            }
            Command::Admin(cmd) => admin::run(cmd).await,
            Command::Va(VaCommand::Serve { config }) => cairn::va_serve::run(&config).await,
            Command::Sa(RoleCommand::Serve { config }) => cairn::roles::run_sa(&config).await,
            Command::Ca(RoleCommand::Serve { config }) => cairn::roles::run_ca(&config).await,
            Command::Ra(RoleCommand::Serve { config }) => cairn::roles::run_ra(&config).await,
            Command::Wfe(RoleCommand::Serve { config }) => cairn::roles::run_wfe(&config).await,
            Command::Nonce(NonceCommand::Serve { config }) => {
                cairn::nonce_serve::run(&config).await
            }
            Command::Dap(cmd) => dap::run(cmd).await,
            Command::Ct(CtCommand::Serve { config }) => run_ct(&config).await,
            Command::Ct(CtCommand::Witness { config }) => run_ct_witness(&config).await,
            Command::Ct(CtCommand::Verify {
                url,
                old_checkpoint,
                vkey,
                log_json,
            }) => run_ct_verify(url, old_checkpoint, vkey, log_json).await,
            Command::Probe(args) => cairn::probe::run(args).await,
            Command::Ceremony { file } => {
                let mut stdout = std::io::stdout();
                cairn_ceremony::run_file(&file, &mut cairn_ceremony::Console::new(&mut stdout))
                    .map_err(anyhow::Error::from)
            }
            Command::Bench { .. } => Ok(()), // ran above
        }
    });
    bootstrap::shutdown_tracing();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cairn: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `cairn bench …`: the benchmarks are a binary of their own, `cairn-bench`, so that this one
/// links none of them. It is looked for beside this executable (the same target directory when
/// built by cargo) and replaces this process, arguments passed through.
fn run_bench(args: Vec<OsString>) -> ExitCode {
    let bench = match std::env::current_exe() {
        Ok(exe) => exe.with_file_name(format!("cairn-bench{}", std::env::consts::EXE_SUFFIX)),
        Err(e) => {
            eprintln!("cairn: cannot locate this executable to find cairn-bench beside it: {e}");
            return ExitCode::FAILURE;
        }
    };
    if !bench.is_file() {
        let profile = if cfg!(debug_assertions) {
            ""
        } else {
            " --release"
        };
        eprintln!(
            "cairn: the benchmarks are a separate binary, not found at {}; build it with `cargo build{profile} -p cairn-bench`",
            bench.display()
        );
        return ExitCode::FAILURE;
    }
    let mut command = std::process::Command::new(&bench);
    command.args(args);
    #[cfg(unix)]
    let error = {
        use std::os::unix::process::CommandExt;
        // Its usage lines then read `cairn bench …`, as typed.
        command.arg0("cairn bench").exec()
    };
    #[cfg(not(unix))]
    let error = match command.status() {
        Ok(status) => {
            return match status.code().and_then(|c| u8::try_from(c).ok()) {
                Some(code) => ExitCode::from(code),
                None => ExitCode::FAILURE,
            };
        }
        Err(e) => e,
    };
    eprintln!("cairn: cannot run {}: {error}", bench.display());
    ExitCode::FAILURE
}

async fn run_challtestsrv(args: ChallArgs) -> anyhow::Result<()> {
    bootstrap::init_logging();
    let cfg = cairn_challtestsrv::ChallTestSrvConfig {
        management_addr: Some(args.management),
        dns_addr: Some(args.dns),
        http01_addr: Some(args.http01),
        tlsalpn01_addr: Some(args.tlsalpn01),
        default_ipv4: Some(args.default_ipv4),
        ..Default::default()
    };
    let handle = cairn_challtestsrv::ChallTestSrv::start(cfg).await?;
    let show = |a: Option<SocketAddr>| a.map(|a| a.to_string()).unwrap_or_else(|| "off".into());
    println!(
        "challtestsrv: management http://{} dns {} http-01 {} tls-alpn-01 {}",
        show(handle.management_addr()),
        show(handle.dns_addr()),
        show(handle.http01_addr()),
        show(handle.tlsalpn01_addr())
    );
    bootstrap::shutdown_signal().await;
    handle.shutdown().await;
    Ok(())
}

async fn run_ct_verify(
    url: String,
    old_checkpoint: Option<PathBuf>,
    vkeys: Vec<String>,
    log_json: Option<PathBuf>,
) -> anyhow::Result<()> {
    let read = |p: &PathBuf| {
        std::fs::read_to_string(p).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", p.display()))
    };
    let opts = cairn_ct::verify::VerifyOptions {
        url,
        old_checkpoint: old_checkpoint.as_ref().map(read).transpose()?,
        vkeys,
        log_json: log_json.as_ref().map(read).transpose()?,
    };
    let report = cairn_ct::verify::verify_log(&opts).await?;
    println!("{report}");
    Ok(())
}

async fn run_ct_witness(config: &std::path::Path) -> anyhow::Result<()> {
    bootstrap::init_logging();
    let cfg = cairn_ct::witness::WitnessConfig::load(config).map_err(anyhow::Error::msg)?;
    let (addr, witness, task) = cairn_ct::witness::serve(&cfg, bootstrap::shutdown_signal())
        .await
        .map_err(anyhow::Error::msg)?;
    println!("cairn ct witness: listening on http://{addr}");
    println!("cairn ct witness: vkey {}", witness.vkey());
    let _ = task.await;
    Ok(())
}

async fn run_ct(config: &std::path::Path) -> anyhow::Result<()> {
    bootstrap::init_logging();
    let cfg = cairn_ct::CtConfig::load(config)?;
    if let Some(addr) = cfg.metrics_listen {
        let bound = bootstrap::serve_metrics(
            addr,
            cairn_listen::Limits::default(),
            bootstrap::Readiness::started(),
        )
        .await?;
        eprintln!("cairn ct: metrics on http://{bound}/metrics");
    }
    let server = cairn_ct::CtServer::start(&cfg).await?;
    println!("cairn ct: listening on http://{}", server.local_addr());
    for log in server.logs() {
        println!(
            "cairn ct: log {} ({}) at size {}",
            log.name(),
            log.origin(),
            log.tree_size()
        );
    }
    bootstrap::shutdown_signal().await;
    server.shutdown().await;
    Ok(())
}
