//! `cairn bench ct`: durable `add-chain` throughput and latency of a CT log. N concurrent
//! clients post distinct, validly chained certificates (issued before the clock starts by a
//! local CA hierarchy) for a given duration, against an in-process log (a temporary directory
//! on the real filesystem, so every cycle fsyncs; loopback HTTP) or any log by URL. Every 200
//! counts as a durable submission: the log answers only after the entry's checkpoint is
//! committed. For the in-process log the sequencing cycles (tiles, checkpoint compare-and-swap,
//! fsync) are timed through the log's `cairn_ct_sequencing_duration_seconds` histogram.

use anyhow::{Context, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use cairn_core::{Identifier, Serial};
use cairn_issuer::{CaHierarchy, CertUsage, CertificateIssuer, IssueRequest, LocalIssuer};
use cairn_x509::{EndEntityProfile, KeyAlgorithm, SigningKey};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The issue's target for one log on the reference machine.
const TARGET_PER_SECOND: f64 = 2_000.0;
const TARGET_SEQUENCING_P99: Duration = Duration::from_millis(100);

/// Flags of `cairn bench ct`.
#[derive(Debug, clap::Args)]
pub(crate) struct CtArgs {
    /// Submit to this log (its submission prefix, e.g. https://ct.example/2026h2/) instead of
    /// an in-process one. It must trust the root of --ca-dir.
    #[arg(long)]
    url: Option<url::Url>,
    /// The CA hierarchy that issues the submitted certificates (created when missing; its root
    /// is `root.pem` there). Default: a fresh one in a temporary directory.
    #[arg(long)]
    ca_dir: Option<PathBuf>,
    /// Concurrent clients, each with one add-chain request in flight. Each waits for the next
    /// sequencing cycle, so throughput is at most clients / period.
    #[arg(long, default_value_t = 2048)]
    clients: usize,
    /// Stop starting requests after this long (e.g. 10s, 1m).
    #[arg(long, default_value = "10s", value_parser = crate::parse_duration)]
    duration: Duration,
    /// Sequencing period of the in-process log, in milliseconds.
    #[arg(long, default_value_t = 1000)]
    period_ms: u64,
    /// Pool size of the in-process log (beyond it, 503).
    #[arg(long, default_value_t = 100_000)]
    pool_size: usize,
    /// Distinct certificates prepared before the clock starts, each submitted once
    /// (default: 4,000 per second of --duration). The run ends early when they run out.
    #[arg(long)]
    certs: Option<usize>,
    /// Print the summary as JSON on stdout.
    #[arg(long)]
    json: bool,
}

/// Collects the sequencing-cycle durations the log records (the only metric kept).
#[derive(Default)]
struct SequencingRecorder {
    samples: Arc<Mutex<Vec<f64>>>,
}

struct Samples(Arc<Mutex<Vec<f64>>>);

impl metrics::HistogramFn for Samples {
    fn record(&self, value: f64) {
        if let Ok(mut s) = self.0.lock() {
            s.push(value);
        }
    }
}

impl metrics::Recorder for SequencingRecorder {
    fn describe_counter(
        &self,
        _: metrics::KeyName,
        _: Option<metrics::Unit>,
        _: metrics::SharedString,
    ) {
    }
    fn describe_gauge(
        &self,
        _: metrics::KeyName,
        _: Option<metrics::Unit>,
        _: metrics::SharedString,
    ) {
    }
    fn describe_histogram(
        &self,
        _: metrics::KeyName,
        _: Option<metrics::Unit>,
        _: metrics::SharedString,
    ) {
    }
    fn register_counter(&self, _: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Counter {
        metrics::Counter::noop()
    }
    fn register_gauge(&self, _: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Gauge {
        metrics::Gauge::noop()
    }
    fn register_histogram(
        &self,
        key: &metrics::Key,
        _: &metrics::Metadata<'_>,
    ) -> metrics::Histogram {
        if key.name() == "cairn_ct_sequencing_duration_seconds" {
            metrics::Histogram::from_arc(Arc::new(Samples(self.samples.clone())))
        } else {
            metrics::Histogram::noop()
        }
    }
}

/// Latency quantiles.
#[derive(Debug, serde::Serialize)]
struct Quantiles {
    count: usize,
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
}

impl Quantiles {
    /// Nearest-rank quantiles of `v` (sorted here); `None` when empty.
    fn of(mut v: Vec<Duration>) -> Option<Quantiles> {
        if v.is_empty() {
            return None;
        }
        v.sort_unstable();
        let at = |q: f64| {
            let rank = ((v.len() as f64) * q).ceil() as usize;
            v[rank.clamp(1, v.len()) - 1].as_secs_f64() * 1e3
        };
        Some(Quantiles {
            count: v.len(),
            p50_ms: at(0.50),
            p99_ms: at(0.99),
            max_ms: at(1.0),
        })
    }
}

impl std::fmt::Display for Quantiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "P50 {:.1} ms, P99 {:.1} ms, max {:.1} ms ({} samples)",
            self.p50_ms, self.p99_ms, self.max_ms, self.count
        )
    }
}

/// What one run measured.
#[derive(Debug, serde::Serialize)]
struct Summary {
    target: String,
    clients: usize,
    period_ms: Option<u64>,
    elapsed_s: f64,
    durable: usize,
    per_second: f64,
    rejected_503: usize,
    errors: usize,
    first_error: Option<String>,
    certificates_exhausted: bool,
    add_chain: Option<Quantiles>,
    sequencing: Option<Quantiles>,
    mean_batch: Option<f64>,
    tree_size: Option<u64>,
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "cairn bench ct: {}, {} clients",
            self.target, self.clients
        )?;
        writeln!(
            f,
            "  durable add-chain: {} in {:.2} s = {:.0}/s (503: {}, other errors: {}){}",
            self.durable,
            self.elapsed_s,
            self.per_second,
            self.rejected_503,
            self.errors,
            if self.certificates_exhausted {
                " — prepared certificates ran out: raise --certs"
            } else {
                ""
            }
        )?;
        if let Some(e) = &self.first_error {
            writeln!(f, "  first error: {e}")?;
        }
        match &self.add_chain {
            Some(q) => writeln!(f, "  add-chain latency: {q}")?,
            None => writeln!(f, "  add-chain latency: no successful request")?,
        }
        match (&self.sequencing, self.mean_batch) {
            (Some(q), Some(b)) => writeln!(f, "  sequencing cycle: {q}; {b:.0} entries per cycle")?,
            _ => writeln!(
                f,
                "  sequencing cycle: not measured (remote log: see its cairn_ct_sequencing_duration_seconds)"
            )?,
        }
        let seq_ok = self
            .sequencing
            .as_ref()
            .map(|q| q.p99_ms <= TARGET_SEQUENCING_P99.as_secs_f64() * 1e3);
        write!(
            f,
            "  target ≥ {TARGET_PER_SECOND:.0}/s: {}; sequencing P99 ≤ {} ms: {}",
            if self.per_second >= TARGET_PER_SECOND {
                "met"
            } else {
                "NOT met"
            },
            TARGET_SEQUENCING_P99.as_millis(),
            match seq_ok {
                Some(true) => "met",
                Some(false) => "NOT met",
                None => "not measured",
            }
        )?;
        writeln!(f)
    }
}

/// Issues `n` distinct leaf certificates (one shared subject key) and returns the add-chain
/// request bodies, already serialized.
async fn prepare(issuer: Arc<LocalIssuer>, n: usize) -> anyhow::Result<Vec<Vec<u8>>> {
    let key = SigningKey::generate(KeyAlgorithm::EcdsaP256).context("leaf key")?;
    let spki = Arc::new(key.spki_der().to_vec());
    let intermediate = B64.encode(issuer.hierarchy().intermediate().der());
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
    let mut tasks = Vec::new();
    for w in 0..workers {
        let (issuer, spki, intermediate) = (issuer.clone(), spki.clone(), intermediate.clone());
        tasks.push(tokio::spawn(async move {
            let mut out = Vec::new();
            let run = Serial::random().0;
            for i in (w..n).step_by(workers) {
                let now = time::OffsetDateTime::now_utc();
                let not_before = now - time::Duration::hours(1);
                let not_after = now + time::Duration::days(7);
                let cert = issuer
                    .issue(IssueRequest {
                        serial: Serial::random(),
                        spki_der: spki.to_vec(),
                        identifiers: vec![Identifier::dns(format!(
                            "b{i}-{}.bench.example",
                            &run[..8]
                        ))],
                        common_name: None,
                        not_before,
                        not_after,
                        profile_validity: not_after - not_before + time::Duration::seconds(1),
                        usage: CertUsage::default(),
                    })
                    .await?;
                let body = serde_json::json!({ "chain": [B64.encode(&cert.der), intermediate] });
                out.push(serde_json::to_vec(&body)?);
            }
            anyhow::Ok(out)
        }));
    }
    let mut bodies = Vec::with_capacity(n);
    for t in tasks {
        bodies.extend(t.await.context("certificate worker")??);
    }
    Ok(bodies)
}

/// Runs `cairn bench ct`.
pub(crate) async fn run(args: CtArgs) -> anyhow::Result<()> {
    if args.clients == 0 {
        bail!("--clients must be at least 1");
    }
    if args.period_ms == 0 {
        bail!("--period-ms must be at least 1");
    }
    let tmp = tempfile::tempdir().context("temporary directory")?;
    let ca_dir = args.ca_dir.clone().unwrap_or_else(|| tmp.path().join("ca"));
    let hierarchy = CaHierarchy::load_or_create(
        &ca_dir,
        KeyAlgorithm::EcdsaP256,
        time::OffsetDateTime::now_utc(),
    )
    .with_context(|| format!("CA hierarchy in {}", ca_dir.display()))?;
    let root_pem = hierarchy.root_pem();
    let issuer = Arc::new(
        LocalIssuer::new(hierarchy, EndEntityProfile::default(), Vec::new()).context("issuer")?,
    );

    let n = args
        .certs
        .unwrap_or_else(|| (args.duration.as_secs_f64() * 4_000.0).ceil() as usize)
        .max(1);
    let prep = Instant::now();
    let bodies = Arc::new(prepare(issuer, n).await?);
    if !args.json {
        eprintln!(
            "prepared {n} certificates in {:.1} s",
            prep.elapsed().as_secs_f64()
        );
    }

    // The log: remote, or in-process with a recorder for its sequencing histogram.
    let samples = Arc::new(Mutex::new(Vec::new()));
    let (server, base, target) = match &args.url {
        Some(url) => {
            let base = url.as_str().trim_end_matches('/').to_owned();
            (None, base, format!("log at {url}"))
        }
        None => {
            metrics::set_global_recorder(SequencingRecorder {
                samples: samples.clone(),
            })
            .map_err(|_| anyhow::anyhow!("a metrics recorder is already installed"))?;
            let dir = tmp.path().join("log");
            std::fs::create_dir_all(dir.join("roots"))?;
            std::fs::write(dir.join("roots/root.pem"), &root_pem)?;
            let log = cairn_ct::LogConfig {
                name: "bench".into(),
                description: None,
                submission_url: "https://ct.bench.invalid/bench/".into(),
                monitoring_url: None,
                key_file: dir.join("key.pem"),
                key_pkcs11: None,
                note_key_file: None,
                roots_dir: dir.join("roots"),
                data_dir: dir.join("data"),
                lock_db: None,
                s3: None,
                lock_s3: None,
                ccadb_csv: None,
                merge_delay_monitor_root: true,
                not_after_start: time::macros::datetime!(2000-01-01 0:00 UTC),
                not_after_limit: time::macros::datetime!(2100-01-01 0:00 UTC),
                period_ms: args.period_ms,
                pool_size: args.pool_size,
                witnesses: Vec::new(),
                inception: None,
                read_only_after_s: None,
            };
            let server = cairn_ct::CtServer::start(&cairn_ct::CtConfig {
                listen: "127.0.0.1:0".parse()?,
                metrics_listen: None,
                health_max_checkpoint_age_ms: 15_000,
                read_limits: None,
                rfc6962_read_endpoints: false,
                max_connections: None,
                logs: vec![log],
            })
            .await
            .context("starting the in-process log")?;
            let base = format!("http://{}/bench", server.local_addr());
            let target = format!(
                "in-process log (temp dir {}, fsync), period {} ms",
                tmp.path().display(),
                args.period_ms
            );
            (Some(server), base, target)
        }
    };

    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .pool_max_idle_per_host(args.clients)
        .build()
        .context("HTTP client")?;
    let url = format!("{base}/ct/v1/add-chain");
    let next = Arc::new(AtomicUsize::new(0));
    let exhausted = Arc::new(AtomicBool::new(false));
    let first_error: Arc<Mutex<Option<String>>> = Arc::new(Mutex::new(None));
    let started = Instant::now();
    let deadline = started + args.duration;
    let mut tasks = Vec::new();
    for _ in 0..args.clients {
        let (client, url, bodies, next, exhausted, first_error) = (
            client.clone(),
            url.clone(),
            bodies.clone(),
            next.clone(),
            exhausted.clone(),
            first_error.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let (mut lat, mut rejected, mut errors) = (Vec::new(), 0usize, 0usize);
            while Instant::now() < deadline {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(body) = bodies.get(i) else {
                    exhausted.store(true, Ordering::Relaxed);
                    break;
                };
                let t = Instant::now();
                let result = client
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(body.clone())
                    .send()
                    .await;
                match result {
                    Ok(r) if r.status() == reqwest::StatusCode::OK => {
                        // Read the SCT: the submission counts once the answer is complete.
                        match r.bytes().await {
                            Ok(_) => lat.push(t.elapsed()),
                            Err(e) => {
                                errors += 1;
                                note(&first_error, format!("reading the SCT: {e}"));
                            }
                        }
                    }
                    Ok(r) if r.status() == reqwest::StatusCode::SERVICE_UNAVAILABLE => {
                        rejected += 1;
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    Ok(r) => {
                        errors += 1;
                        let status = r.status();
                        let text = r.text().await.unwrap_or_default();
                        note(&first_error, format!("HTTP {status}: {}", text.trim()));
                    }
                    Err(e) => {
                        errors += 1;
                        note(&first_error, e.to_string());
                    }
                }
            }
            (lat, rejected, errors)
        }));
    }
    let (mut lat, mut rejected, mut errors) = (Vec::new(), 0, 0);
    for t in tasks {
        let (l, r, e) = t.await.context("client task")?;
        lat.extend(l);
        rejected += r;
        errors += e;
    }
    let elapsed = started.elapsed();
    let durable = lat.len();
    let tree_size = match server {
        Some(server) => {
            let size = server.logs()[0].tree_size();
            server.shutdown().await;
            Some(size)
        }
        None => None,
    };
    let seq: Vec<Duration> = samples
        .lock()
        .map(|s| s.iter().map(|v| Duration::from_secs_f64(*v)).collect())
        .unwrap_or_default();
    let mean_batch = (!seq.is_empty()).then(|| durable as f64 / seq.len() as f64);
    let summary = Summary {
        target,
        clients: args.clients,
        period_ms: args.url.is_none().then_some(args.period_ms),
        elapsed_s: elapsed.as_secs_f64(),
        durable,
        per_second: durable as f64 / elapsed.as_secs_f64(),
        rejected_503: rejected,
        errors,
        first_error: first_error.lock().ok().and_then(|e| e.clone()),
        certificates_exhausted: exhausted.load(Ordering::Relaxed),
        add_chain: Quantiles::of(lat),
        sequencing: Quantiles::of(seq),
        mean_batch,
        tree_size,
    };
    if let Some(size) = tree_size {
        // Every 200 is an entry of the committed tree.
        if size < durable as u64 {
            bail!("the log's tree holds {size} entries but {durable} SCTs were returned");
        }
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        print!("{summary}");
    }
    if durable == 0 {
        bail!("no submission succeeded");
    }
    Ok(())
}

/// Keeps the first error message.
fn note(slot: &Mutex<Option<String>>, message: String) {
    if let Ok(mut s) = slot.lock() {
        s.get_or_insert(message);
    }
}

#[cfg(test)]
mod tests {
    use super::Quantiles;
    use std::time::Duration;

    #[test]
    fn quantiles_are_nearest_rank() {
        let v: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        let q = Quantiles::of(v).unwrap();
        assert_eq!(q.count, 100);
        assert!((q.p50_ms - 50.0).abs() < 1e-9);
        assert!((q.p99_ms - 99.0).abs() < 1e-9);
        assert!((q.max_ms - 100.0).abs() < 1e-9);
        assert!(Quantiles::of(Vec::new()).is_none());
    }
}
