//! The `cairn` binary: `cairn serve` runs the all-in-one CA; one subcommand per component and
//! tool shares the same bootstrap (config, logging, metrics).

mod admin;
mod bootstrap;
mod config;
mod serve;

use clap::{Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

/// Cairn: a memory-safe ACME certificate authority.
#[derive(Debug, Parser)]
#[command(name = "cairn", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the whole CA in one process (ACME API, RA, VA, issuer, storage).
    Serve(ServeArgs),
    /// Run the challenge test server (pebble-challtestsrv compatible) for hermetic validation.
    Challtestsrv(ChallArgs),
    /// Configuration tools.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Operator tasks against the CA's storage.
    #[command(subcommand)]
    Admin(admin::AdminCommand),
}

/// Flags of `cairn serve`; each overrides the config file.
#[derive(Debug, Clone, Default, clap::Args)]
pub(crate) struct ServeArgs {
    /// TOML configuration file (see docs/cairn.sample.toml).
    #[arg(long, short)]
    pub(crate) config: Option<PathBuf>,
    /// Folder for the database and the CA hierarchy [default: ./cairn-data].
    #[arg(long)]
    pub(crate) data_dir: Option<PathBuf>,
    /// Address of the ACME API [default: 127.0.0.1:14000].
    #[arg(long)]
    pub(crate) listen: Option<SocketAddr>,
    /// Address of /metrics and /health [default: 127.0.0.1:14001].
    #[arg(long)]
    pub(crate) metrics_listen: Option<SocketAddr>,
    /// Serve plain HTTP (behind a TLS-terminating proxy).
    #[arg(long)]
    pub(crate) plain_http: bool,
    /// Database URL (sqlite://… or postgres://…); also CAIRN_DATABASE_URL.
    #[arg(long)]
    pub(crate) database_url: Option<String>,
    /// Upstream DNS server for validation, HOST:PORT.
    #[arg(long)]
    pub(crate) dns_server: Option<SocketAddr>,
    /// Port that http-01 validation connects to [default: 80].
    #[arg(long)]
    pub(crate) http01_port: Option<u16>,
    /// Port that tls-alpn-01 validation connects to [default: 443].
    #[arg(long)]
    pub(crate) tlsalpn01_port: Option<u16>,
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

fn main() -> ExitCode {
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
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
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cairn: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run_challtestsrv(args: ChallArgs) -> anyhow::Result<()> {
    bootstrap::init_logging();
    let cfg = cairn_challtestsrv::ChallTestSrvConfig {
        management_addr: args.management,
        dns_addr: args.dns,
        http01_addr: args.http01,
        tlsalpn01_addr: args.tlsalpn01,
        default_ipv4: Some(args.default_ipv4),
        ..Default::default()
    };
    let handle = cairn_challtestsrv::ChallTestSrv::start(cfg).await?;
    println!(
        "challtestsrv: management http://{} dns {} http-01 {} tls-alpn-01 {}",
        handle.management_addr(),
        handle.dns_addr(),
        handle.http01_addr(),
        handle.tlsalpn01_addr()
    );
    bootstrap::shutdown_signal().await;
    handle.shutdown().await;
    Ok(())
}
