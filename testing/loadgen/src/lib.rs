//! ACME load generator (`cairn bench acme`): N concurrent accounts, each running complete
//! issuance flows one after the other against any ACME server's directory, for a duration or a
//! number of certificates, with a mix of single-name, multi-name, renewal (`replaces`) and
//! revocation flows. Measures certificates/s, per-endpoint latency percentiles and errors by
//! problem type.
//!
//! Every name it orders is under a fresh random registered domain (`<random>.<suffix>`), so a
//! CA's per-domain limits do not end a run; per-account and per-IP limits still apply and must be
//! raised in the server's configuration for a long run (see testing/bench/).
//!
//! It only ever talks to the directory's origin (URLs elsewhere are refused), to the challenge
//! test server's management URL when dns-01 is used, and serves http-01 on the address given.

mod client;
mod flow;
mod responder;
mod stats;

pub use client::{FlowError, Trust};
pub use flow::{ChallengeMode, PollPolicy};
pub use responder::Http01Responder;
pub use stats::{Endpoint, FlowKind, Latency, StatusCounts, Summary};

use client::{Account, Server};
use flow::{FlowContext, Issued};
use stats::Stats;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use url::Url;

/// Weights of the flow kinds (each slot of the run is one certificate).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mix {
    weights: [u32; 4],
    sequence: Vec<FlowKind>,
}

impl Mix {
    /// A mix from weights in the order single, multi, renewal, revoke.
    pub fn new(single: u32, multi: u32, renewal: u32, revoke: u32) -> Result<Mix, String> {
        let weights = [single, multi, renewal, revoke];
        let total: u32 = weights.iter().sum();
        if total == 0 {
            return Err("the mix needs at least one non-zero weight".into());
        }
        if total > 10_000 {
            return Err("the mix's weights add up to more than 10000".into());
        }
        // Smooth weighted round robin: kinds interleave instead of coming in blocks.
        let mut current = [0i64; 4];
        let mut sequence = Vec::with_capacity(total as usize);
        for _ in 0..total {
            for (c, w) in current.iter_mut().zip(weights) {
                *c += i64::from(w);
            }
            let (best, _) = current
                .iter()
                .enumerate()
                .max_by_key(|&(i, c)| (*c, std::cmp::Reverse(i)))
                .unwrap_or((0, &0));
            current[best] -= i64::from(total);
            sequence.push(FlowKind::ALL[best]);
        }
        Ok(Mix { weights, sequence })
    }

    /// The kind of the `slot`-th certificate of the run.
    pub fn pick(&self, slot: u64) -> FlowKind {
        let len = self.sequence.len() as u64;
        self.sequence[(slot % len) as usize]
    }
}

impl Default for Mix {
    fn default() -> Self {
        Self {
            weights: [1, 0, 0, 0],
            sequence: vec![FlowKind::Single],
        }
    }
}

impl std::str::FromStr for Mix {
    type Err = String;

    /// `single=70,multi=20,renewal=5,revoke=5` (kinds left out weigh 0).
    fn from_str(s: &str) -> Result<Mix, String> {
        let mut w = [0u32; 4];
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (name, weight) = part
                .split_once('=')
                .ok_or_else(|| format!("{part:?}: expected KIND=WEIGHT"))?;
            let i = FlowKind::ALL
                .iter()
                .position(|k| k.name() == name.trim())
                .ok_or_else(|| {
                    format!("{name:?} is not a flow kind (single, multi, renewal, revoke)")
                })?;
            w[i] = weight
                .trim()
                .parse()
                .map_err(|_| format!("{part:?}: the weight must be a whole number"))?;
        }
        Mix::new(w[0], w[1], w[2], w[3])
    }
}

impl std::fmt::Display for Mix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<String> = FlowKind::ALL
            .iter()
            .zip(self.weights)
            .filter(|(_, w)| *w > 0)
            .map(|(k, w)| format!("{}={w}", k.name()))
            .collect();
        f.write_str(&parts.join(","))
    }
}

/// A run's settings.
#[derive(Debug, Clone)]
pub struct LoadConfig {
    /// The ACME directory URL.
    pub directory: Url,
    /// How to trust the server's certificate.
    pub trust: Trust,
    /// Concurrent accounts (each runs one flow at a time).
    pub accounts: u32,
    /// Stop after this many certificate flows (successful or not).
    pub certificates: Option<u64>,
    /// Stop starting flows after this long.
    pub duration: Duration,
    /// The mix of flows.
    pub mix: Mix,
    /// Names in a multi-name order.
    pub names_per_multi: u32,
    /// Registered domains are `<random>.<suffix>`.
    pub domain_suffix: String,
    /// How challenges are answered.
    pub challenge: ChallengeMode,
    /// Order polling.
    pub poll: PollPolicy,
    /// Print a progress line to stderr every second.
    pub progress: bool,
    /// Keep the RFC 9773 identifiers of issued certificates in the summary (e.g. to drive
    /// renewalInfo GETs afterwards).
    pub keep_cert_ids: bool,
    /// Deactivate each order's authorizations once its certificate is downloaded (RFC 8555
    /// §7.5.2), so that the account's next order for the same names (a renewal) must validate
    /// again, as a renewal does in practice once the reuse window has passed.
    pub deactivate_authzs: bool,
}

/// Runs the load and returns its summary. Failed flows are counted, not fatal; an error is
/// returned only if the directory cannot be fetched at all.
pub async fn run(cfg: LoadConfig) -> anyhow::Result<Summary> {
    anyhow::ensure!(cfg.accounts > 0, "at least one account is needed");
    anyhow::ensure!(
        (1..=100).contains(&cfg.names_per_multi),
        "names per multi-name order must be 1 to 100"
    );
    let stats = Arc::new(Stats::default());
    // Fail early and clearly if the directory is unreachable or foreign.
    Server::connect(&cfg.directory, &cfg.trust, Arc::new(Stats::default()))
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let ctx = Arc::new(FlowContext {
        challenge: cfg.challenge.clone(),
        poll: cfg.poll,
        deactivate_authzs: cfg.deactivate_authzs,
        mgmt_http: reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(10))
            .build()?,
    });
    let run = Arc::new(RunState {
        cfg,
        slots: AtomicU64::new(0),
        started: Instant::now(),
        shown_errors: AtomicU64::new(0),
    });
    let progress = run.cfg.progress.then(|| {
        let stats = stats.clone();
        let run = run.clone();
        tokio::spawn(async move { show_progress(&run, &stats).await })
    });
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..run.cfg.accounts {
        let (run, ctx, stats) = (run.clone(), ctx.clone(), stats.clone());
        workers.spawn(async move { worker(&run, &ctx, stats).await });
    }
    while workers.join_next().await.is_some() {}
    let elapsed = run.started.elapsed();
    if let Some(p) = progress {
        p.abort();
        eprintln!();
    }
    Ok(stats.summary(elapsed, run.cfg.duration, run.cfg.directory.as_str()))
}

#[derive(Debug)]
struct RunState {
    cfg: LoadConfig,
    slots: AtomicU64,
    started: Instant,
    shown_errors: AtomicU64,
}

impl RunState {
    fn next_slot(&self) -> Option<u64> {
        if self.started.elapsed() >= self.cfg.duration {
            return None;
        }
        let slot = self.slots.fetch_add(1, Ordering::Relaxed);
        match self.cfg.certificates {
            Some(max) if slot >= max => None,
            _ => Some(slot),
        }
    }

    fn report(&self, stats: &Stats, e: &FlowError) {
        stats.error(e.kind());
        // The first few errors in full, so a broken set-up is obvious.
        if self.shown_errors.fetch_add(1, Ordering::Relaxed) < 5 {
            eprintln!("\rerror: {e}");
        }
    }

    fn names(&self, kind: FlowKind) -> Vec<String> {
        let mut r = [0u8; 8];
        // Without randomness every run would ask for the same names: stop instead.
        if aws_lc_rs::rand::fill(&mut r).is_err() {
            panic!("the system random number generator failed");
        }
        let hex: String = r.iter().map(|b| format!("{b:02x}")).collect();
        let domain = format!("lg{hex}.{}", self.cfg.domain_suffix);
        match kind {
            FlowKind::Multi => (0..self.cfg.names_per_multi)
                .map(|i| {
                    if i == 0 {
                        domain.clone()
                    } else {
                        format!("n{i}.{domain}")
                    }
                })
                .collect(),
            _ => vec![format!("www.{domain}")],
        }
    }
}

async fn worker(run: &RunState, ctx: &FlowContext, stats: Arc<Stats>) {
    let server = match Server::connect(&run.cfg.directory, &run.cfg.trust, stats.clone()).await {
        Ok(s) => s,
        Err(e) => return run.report(&stats, &e),
    };
    let mut acct = match Account::generate(server) {
        Ok(a) => a,
        Err(e) => return run.report(&stats, &e),
    };
    if let Err(e) = acct.register().await {
        return run.report(&stats, &e);
    }
    stats.account_created();
    let mut previous: Option<Issued> = None;
    while let Some(slot) = run.next_slot() {
        let mut kind = run.cfg.mix.pick(slot);
        if kind == FlowKind::Renewal && previous.as_ref().is_none_or(|p| p.cert_id.is_none()) {
            // Nothing to renew yet on this account: a first certificate instead.
            kind = FlowKind::Single;
        }
        stats.in_flight.fetch_add(1, Ordering::Relaxed);
        let outcome = tokio::time::timeout(
            run.cfg.poll.timeout * 2,
            one_flow(run, ctx, &stats, &mut acct, kind, previous.as_ref()),
        )
        .await;
        stats.in_flight.fetch_sub(1, Ordering::Relaxed);
        match outcome {
            Ok(Ok(issued)) => {
                stats.issued(kind);
                if run.started.elapsed() <= run.cfg.duration {
                    stats.issued_in_duration.fetch_add(1, Ordering::Relaxed);
                }
                if run.cfg.keep_cert_ids
                    && let Some(id) = &issued.cert_id
                {
                    stats.cert_id(id.clone());
                }
                if kind != FlowKind::Revoke {
                    previous = Some(issued);
                }
            }
            Ok(Err(e)) => run.report(&stats, &e),
            Err(_) => run.report(&stats, &FlowError::Timeout(Endpoint::Issuance)),
        }
    }
}

async fn one_flow(
    run: &RunState,
    ctx: &FlowContext,
    stats: &Stats,
    acct: &mut Account,
    kind: FlowKind,
    previous: Option<&Issued>,
) -> Result<Issued, FlowError> {
    match (kind, previous) {
        (FlowKind::Renewal, Some(prev)) => {
            flow::issue(acct, ctx, &prev.names, prev.cert_id.as_deref()).await
        }
        (FlowKind::Revoke, _) => {
            let issued = flow::issue(acct, ctx, &run.names(kind), None).await?;
            flow::revoke(acct, &issued.leaf_der).await?;
            stats.revoked.fetch_add(1, Ordering::Relaxed);
            Ok(issued)
        }
        _ => flow::issue(acct, ctx, &run.names(kind), None).await,
    }
}

async fn show_progress(run: &RunState, stats: &Stats) {
    use std::io::{IsTerminal, Write};
    let tty = std::io::stderr().is_terminal();
    let mut last = 0;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.tick().await;
    loop {
        tick.tick().await;
        let issued = stats.issued.load(Ordering::Relaxed);
        let line = format!(
            "{:>6.1}s  certificates {issued}  ({}/s)  in flight {}  errors {}",
            run.started.elapsed().as_secs_f64(),
            issued - last,
            stats.in_flight.load(Ordering::Relaxed),
            stats.errors_total.load(Ordering::Relaxed),
        );
        last = issued;
        let mut err = std::io::stderr().lock();
        let _ = if tty {
            write!(err, "\r{line}   ")
        } else {
            writeln!(err, "{line}")
        };
        let _ = err.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mixes_parse_and_interleave() {
        let mix: Mix = "single=2, multi=1,renewal=1".parse().unwrap();
        assert_eq!(mix.to_string(), "single=2,multi=1,renewal=1");
        let seq: Vec<FlowKind> = (0..8).map(|i| mix.pick(i)).collect();
        let count = |k| seq.iter().filter(|&&s| s == k).count();
        assert_eq!(count(FlowKind::Single), 4);
        assert_eq!(count(FlowKind::Multi), 2);
        assert_eq!(count(FlowKind::Renewal), 2);
        assert_eq!(seq[0], FlowKind::Single, "the heaviest kind comes first");
        assert_ne!(seq[0..2], [FlowKind::Single, FlowKind::Single]);
    }

    #[test]
    fn bad_mixes_are_refused() {
        assert!("".parse::<Mix>().is_err());
        assert!("single=0".parse::<Mix>().is_err());
        assert!("single".parse::<Mix>().is_err());
        assert!("wildcard=3".parse::<Mix>().is_err());
        assert!("single=-1".parse::<Mix>().is_err());
        assert!("single=9999,multi=9999".parse::<Mix>().is_err());
    }
}
