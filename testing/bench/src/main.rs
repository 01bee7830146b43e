//! `cairn-bench`: Cairn's load generators and benchmarks, a binary of its own so that the product
//! binary links none of them. `cairn bench …` runs it (it looks for `cairn-bench` next to
//! itself). One subcommand per system (`acme` here; `ct`, `crl`, `dap` beside it), each a thin
//! command line over a library in testing/ or the component's crate.

mod crl;
mod ct;
mod dap;
mod pg_schema;
mod stats;

use anyhow::Context;
use cairn_loadgen::{ChallengeMode, Http01Responder, LoadConfig, Mix, PollPolicy, Trust};
use clap::Parser;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

/// Cairn's load generators and benchmarks (also run as `cairn bench …`).
#[derive(Debug, Parser)]
#[command(name = "cairn-bench", version)]
struct Cli {
    #[command(subcommand)]
    command: BenchCommand,
}

/// The benchmarks.
#[derive(Debug, clap::Subcommand)]
#[allow(clippy::large_enum_variant)] // parsed once per process; boxing buys nothing
enum BenchCommand {
    /// ACME load generator: concurrent accounts running complete issuance flows against any
    /// ACME server (Cairn, Pebble, …) by its directory URL.
    Acme(AcmeArgs),
    /// DAP: sustained upload throughput at the leader and end-to-end aggregation throughput
    /// through leader + helper (in-process, loopback HTTP), on SQLite or PostgreSQL.
    Dap(dap::DapArgs),
    /// CT log: durable add-chain throughput and latency (P50/P99 of add-chain and of
    /// sequencing), N concurrent clients against an in-process log or a log by URL.
    Ct(ct::CtArgs),
    /// CRLs: time to regenerate every shard of one issuer with N revoked certificates (default
    /// 1,000,000) in a fresh SQLite database (and PostgreSQL with --postgres-url).
    Crl(crl::CrlBenchArgs),
    /// Public statistics: the `/stats` query and the counters' rebuild with N certificates
    /// (default 1,000,000) stored through the SA, on SQLite (and PostgreSQL with --postgres-url).
    Stats(stats::StatsBenchArgs),
}

/// Flags of `cairn bench acme`.
#[derive(Debug, clap::Args)]
struct AcmeArgs {
    /// The ACME directory URL (the only server contacted, besides --challtestsrv).
    #[arg(long)]
    directory: url::Url,
    /// PEM root(s) to trust for the server's TLS certificate.
    #[arg(long, conflicts_with = "insecure")]
    root: Option<PathBuf>,
    /// Accept any TLS certificate (loopback tests only).
    #[arg(long)]
    insecure: bool,
    /// Concurrent accounts, each running one flow at a time.
    #[arg(long, default_value_t = 10)]
    accounts: u32,
    /// Stop after this many certificate flows.
    #[arg(long)]
    certs: Option<u64>,
    /// Stop starting flows after this long (e.g. 30s, 2m).
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    duration: Duration,
    /// Flow mix by weight: single, multi (several names), renewal (with `replaces`), revoke.
    #[arg(long, default_value = "single=1")]
    mix: Mix,
    /// Names in a multi-name order.
    #[arg(long, default_value_t = 3)]
    names_per_multi: u32,
    /// Orders name `<random>.<suffix>` registered domains.
    #[arg(long, default_value = "test")]
    domain_suffix: String,
    /// Answer http-01 from a built-in responder on this address (the server must validate
    /// against its port).
    #[arg(
        long,
        default_value = "127.0.0.1:5002",
        conflicts_with = "challtestsrv"
    )]
    http01_listen: SocketAddr,
    /// Answer dns-01 instead, through this challenge test server management API
    /// (e.g. http://127.0.0.1:8055).
    #[arg(long)]
    challtestsrv: Option<url::Url>,
    /// The DNS method answered through --challtestsrv: dns-01, dns-account-01 (the server
    /// must know its account URLs: `ra.account_uri_prefixes`) or dns-persist-01 (one standing
    /// record per name and account, so renewals make no DNS change).
    #[arg(long, default_value = "dns-01", requires = "challtestsrv", value_parser = ["dns-01", "dns-account-01", "dns-persist-01"])]
    dns_method: String,
    /// Write the RFC 9773 identifiers of the issued certificates to this file, one a line
    /// (for renewalInfo benchmarks).
    #[arg(long)]
    cert_ids: Option<PathBuf>,
    /// Deactivate each order's authorizations after its download, so renewals validate again
    /// (as they do once the reuse window has passed).
    #[arg(long)]
    deactivate_authzs: bool,
    /// Print the summary as JSON on stdout.
    #[arg(long)]
    json: bool,
    /// No live progress line.
    #[arg(long)]
    quiet: bool,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?}: expected a duration like 30s, 2m or 1h"))?;
    let secs = match unit {
        "" | "s" => n,
        "m" => n.saturating_mul(60),
        "h" => n.saturating_mul(3600),
        _ => return Err(format!("{s:?}: the unit must be s, m or h")),
    };
    Ok(Duration::from_secs(secs))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cairn-bench: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = rt.block_on(async move {
        match cli.command {
            BenchCommand::Acme(args) => acme(args).await,
            BenchCommand::Dap(args) => dap::run(args).await,
            BenchCommand::Ct(args) => ct::run(args).await,
            BenchCommand::Crl(args) => crl::run(args).await,
            BenchCommand::Stats(args) => stats::run(args).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cairn-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn acme(args: AcmeArgs) -> anyhow::Result<()> {
    let trust = match (&args.root, args.insecure) {
        (Some(path), _) => Trust::Roots(
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?,
        ),
        (None, true) => Trust::Insecure,
        (None, false) => Trust::Roots(Vec::new()),
    };
    let challenge = match &args.challtestsrv {
        Some(url) => match args.dns_method.as_str() {
            "dns-account-01" => ChallengeMode::DnsAccount01(url.clone()),
            "dns-persist-01" => ChallengeMode::DnsPersist01(url.clone()),
            _ => ChallengeMode::Dns01(url.clone()),
        },
        None => ChallengeMode::Http01(Arc::new(
            Http01Responder::bind(args.http01_listen)
                .await
                .with_context(|| format!("cannot listen on {}", args.http01_listen))?,
        )),
    };
    let summary = cairn_loadgen::run(LoadConfig {
        directory: args.directory,
        trust,
        accounts: args.accounts,
        certificates: args.certs,
        duration: args.duration,
        mix: args.mix,
        names_per_multi: args.names_per_multi,
        domain_suffix: args.domain_suffix,
        challenge,
        poll: PollPolicy::default(),
        progress: !args.quiet,
        keep_cert_ids: args.cert_ids.is_some(),
        deactivate_authzs: args.deactivate_authzs,
    })
    .await?;
    if let Some(path) = &args.cert_ids {
        let mut text = summary.cert_ids.join("\n");
        text.push('\n');
        std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))?;
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        print!("{summary}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::parse_duration;
    use std::time::Duration;

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("45"), Ok(Duration::from_secs(45)));
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("3d").is_err());
    }
}
