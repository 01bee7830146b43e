//! `cairn probe`: a black-box prober, as Let's Encrypt's external monitoring is. It uses only
//! what the world sees of a CA — the ACME API, the OCSP responder and CRLs named in the
//! certificate, a CT log's submission API — and exports what it found as Prometheus metrics.
//!
//! One round runs these steps, in order, each timed:
//! - `acme`: a new account, an order for `--name`, its http-01 challenge answered through a
//!   challenge server's management API (pebble-challtestsrv's `/add-http01`, so the name must
//!   resolve to that server for the CA), finalize, download;
//! - `ocsp`: the certificate's status from the OCSP URL it names: `good`, with a nextUpdate in
//!   the future;
//! - `crl`: the CRL its distribution point names: fetched, not past its nextUpdate, and not
//!   listing the certificate;
//! - `ct`: the certificate chain submitted to `--ct-log` (`add-chain`): an SCT comes back;
//! - `dap`: one report (the measurement `1`) uploaded to the `--dap-task` (a leader-selected
//!   task, minimum batch size 1, provisioned for the probe) and the leader's next batch
//!   collected with the collector's key (`--dap-collector-keypair`) and bearer token
//!   (`CAIRN_DAP_COLLECTOR_TOKEN`): it must hold a report.
//!
//! A step that needs the certificate fails when `acme` failed; `ct` and `dap` run only when
//! their flags are given.
//!
//! Metrics on `--listen` (`/metrics`): `cairn_probe_success{step}` (1 or 0),
//! `cairn_probe_duration_seconds{step}`, `cairn_probe_runs_total{step,outcome}`,
//! `cairn_probe_last_run_timestamp_seconds`, and the thisUpdate and nextUpdate of the last OCSP
//! response seen (`cairn_probe_ocsp_this_update_timestamp_seconds`,
//! `cairn_probe_ocsp_next_update_timestamp_seconds`: what the `OcspNearNextUpdate` alert reads). `--once` runs one round and exits non-zero if a step
//! failed; otherwise a round runs every `--interval`.

use anyhow::{Context, anyhow, bail};
use cairn_ocsp::HashAlgorithm;
use cairn_ocsp::asn1::{CertId, CertStatusAsn1, OcspRequest, Request, TbsRequest};
use der::asn1::{ObjectIdentifier, OctetString};
use der::{Decode, Encode};
use instant_acme::{
    Account, AuthorizationStatus, ChallengeType, Identifier, NewAccount, NewOrder, OrderStatus,
    RetryPolicy,
};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use x509_cert::Certificate;
use x509_cert::ext::pkix::name::{DistributionPointName, GeneralName};
use x509_cert::ext::pkix::{AuthorityInfoAccessSyntax, CrlDistributionPoints};

/// id-ad-ocsp (RFC 5280 §4.2.2.1).
const ID_AD_OCSP: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.1");

/// The steps of one round, in order.
pub const STEPS: [&str; 5] = ["acme", "ocsp", "crl", "ct", "dap"];

// The metric names (deploy/'s tests find the exported names as string literals).
const SUCCESS: &str = "cairn_probe_success";
const DURATION: &str = "cairn_probe_duration_seconds";
const RUNS: &str = "cairn_probe_runs_total";
const LAST_RUN: &str = "cairn_probe_last_run_timestamp_seconds";
const OCSP_THIS_UPDATE: &str = "cairn_probe_ocsp_this_update_timestamp_seconds";
const OCSP_NEXT_UPDATE: &str = "cairn_probe_ocsp_next_update_timestamp_seconds";

/// How long one HTTP request or ACME poll may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// `cairn probe` flags.
#[derive(Debug, Clone, clap::Args)]
pub struct ProbeArgs {
    /// The ACME directory URL.
    #[arg(long)]
    pub directory: String,
    /// A PEM root to trust for the ACME API's TLS (default: the system's roots).
    #[arg(long)]
    pub tls_root: Option<PathBuf>,
    /// The DNS name to get a certificate for; it must resolve, for the CA, to the challenge
    /// server.
    #[arg(long)]
    pub name: String,
    /// The challenge server's management API (pebble-challtestsrv compatible), e.g.
    /// http://127.0.0.1:8055.
    #[arg(long)]
    pub challtestsrv: String,
    /// A CT log's submission prefix (the `add-chain` step), e.g.
    /// https://ct.example.org/2026h1/. Without it the step is skipped.
    #[arg(long)]
    pub ct_log: Option<String>,
    /// DAP task parameters (JSON, as `cairn dap task create` prints them) for the `dap` step:
    /// a leader-selected task with a minimum batch size of 1. Without it the step is skipped.
    #[arg(long, requires = "dap_collector_keypair")]
    pub dap_task: Option<PathBuf>,
    /// The task's collector HPKE keypair (JSON from `cairn dap keygen`); the collector's bearer
    /// token comes from `CAIRN_DAP_COLLECTOR_TOKEN`.
    #[arg(long, requires = "dap_task")]
    pub dap_collector_keypair: Option<PathBuf>,
    /// Where to serve `/metrics`.
    #[arg(long, default_value = "127.0.0.1:9115")]
    pub listen: SocketAddr,
    /// Time between rounds, e.g. "60s" or "5m".
    #[arg(long, default_value = "60s")]
    pub interval: String,
    /// Run one round, print each step's result and exit: 0 if every step passed, else 1.
    #[arg(long)]
    pub once: bool,
    /// Write the chain the `acme` step got (PEM, leaf first) to this file, e.g. to check it with
    /// another verifier.
    #[arg(long)]
    pub chain_out: Option<PathBuf>,
}

/// One step's last result.
#[derive(Debug, Clone)]
struct StepResult {
    ok: bool,
    seconds: f64,
}

/// What `/metrics` shows.
#[derive(Debug, Default)]
struct Results {
    last: BTreeMap<&'static str, StepResult>,
    runs: BTreeMap<(&'static str, bool), u64>,
    last_run_unix: f64,
    /// thisUpdate and nextUpdate (unix seconds) of the last good OCSP response.
    ocsp_updates: Option<(f64, f64)>,
}

impl Results {
    fn record(&mut self, step: &'static str, ok: bool, seconds: f64) {
        self.last.insert(step, StepResult { ok, seconds });
        *self.runs.entry((step, ok)).or_default() += 1;
    }

    fn render(&self) -> String {
        use std::fmt::Write as _;
        let mut out = String::new();
        let head = |out: &mut String, name: &str, kind: &str, help: &str| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        };
        head(
            &mut out,
            SUCCESS,
            "gauge",
            "Whether the step passed in the last round.",
        );
        for (step, r) in &self.last {
            let _ = writeln!(out, "{SUCCESS}{{step=\"{step}\"}} {}", u8::from(r.ok));
        }
        head(
            &mut out,
            DURATION,
            "gauge",
            "How long the step took in the last round.",
        );
        for (step, r) in &self.last {
            let _ = writeln!(out, "{DURATION}{{step=\"{step}\"}} {}", r.seconds);
        }
        head(&mut out, RUNS, "counter", "Steps run, by outcome.");
        for ((step, ok), n) in &self.runs {
            let outcome = if *ok { "success" } else { "failure" };
            let _ = writeln!(out, "{RUNS}{{step=\"{step}\",outcome=\"{outcome}\"}} {n}");
        }
        head(&mut out, LAST_RUN, "gauge", "When the last round ended.");
        let _ = writeln!(out, "{LAST_RUN} {}", self.last_run_unix);
        if let Some((this, next)) = self.ocsp_updates {
            head(
                &mut out,
                OCSP_THIS_UPDATE,
                "gauge",
                "thisUpdate of the last OCSP response.",
            );
            let _ = writeln!(out, "{OCSP_THIS_UPDATE} {this}");
            head(
                &mut out,
                OCSP_NEXT_UPDATE,
                "gauge",
                "nextUpdate of the last OCSP response.",
            );
            let _ = writeln!(out, "{OCSP_NEXT_UPDATE} {next}");
        }
        out
    }
}

/// Runs `cairn probe`.
pub async fn run(args: ProbeArgs) -> anyhow::Result<()> {
    let interval = cairn_core::humane_duration::parse(&args.interval)
        .map_err(|e| anyhow!("--interval: {e}"))?;
    let interval = Duration::try_from(interval)
        .ok()
        .filter(|d| *d >= Duration::from_secs(1))
        .ok_or_else(|| anyhow!("--interval must be at least 1s"))?;
    let prober = Prober::new(&args)?;
    if args.once {
        let mut results = Results::default();
        let failed = prober.round(&mut results).await;
        for (step, r) in &results.last {
            println!(
                "{step}: {} in {:.3}s",
                if r.ok { "ok" } else { "FAILED" },
                r.seconds
            );
        }
        if failed.is_empty() {
            return Ok(());
        }
        bail!("probe failed: {}", failed.join("; "));
    }
    let results = Arc::new(Mutex::new(Results::default()));
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let shown = results.clone();
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let text = shown.lock().map(|r| r.render()).unwrap_or_default();
            async move {
                (
                    [(
                        axum::http::header::CONTENT_TYPE,
                        "text/plain; version=0.0.4",
                    )],
                    text,
                )
            }
        }),
    );
    eprintln!(
        "cairn probe: metrics on http://{}/metrics",
        listener.local_addr()?
    );
    // Only Prometheus scrapes it: few connections, no request bodies.
    let mut limits = cairn_listen::Limits::default();
    limits.max_connections = 64;
    limits.max_body_bytes = 1024;
    tokio::spawn(
        cairn_listen::Listener::new(listener, "probe-metrics", limits)
            .serve(app, std::future::pending::<()>()),
    );
    loop {
        let mut round = Results::default();
        let failed = prober.round(&mut round).await;
        if !failed.is_empty() {
            eprintln!("cairn probe: {}", failed.join("; "));
        }
        if let Ok(mut shown) = results.lock() {
            for (step, r) in round.last {
                shown.record(step, r.ok, r.seconds);
            }
            shown.last_run_unix = round.last_run_unix;
            if round.ocsp_updates.is_some() {
                shown.ocsp_updates = round.ocsp_updates;
            }
        }
        tokio::time::sleep(interval).await;
    }
}

/// What the prober keeps between rounds.
struct Prober {
    args: ProbeArgs,
    http: reqwest::Client,
    dap: Option<DapProbe>,
}

/// The `dap` step's task and collector.
struct DapProbe {
    params: cairn_dap_core::TaskParameters,
    collector: cairn_dap_collector::Collector,
}

/// A collector keypair file, as `cairn dap keygen` writes it.
#[derive(serde::Deserialize)]
struct KeypairFile {
    config: String,
    private_key: String,
}

impl DapProbe {
    fn load(task: &Path, keypair: &Path, http: &reqwest::Client) -> anyhow::Result<DapProbe> {
        use base64::Engine as _;
        use cairn_dap_messages::Decode as _;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let text =
            std::fs::read_to_string(task).with_context(|| format!("reading {}", task.display()))?;
        let params: cairn_dap_core::TaskParameters =
            serde_json::from_str(&text).context("--dap-task: task parameters")?;
        params.validate()?;
        if params.batch_mode != cairn_dap_messages::BatchMode::LeaderSelected {
            bail!("--dap-task: the probe needs a leader-selected task");
        }
        let text = std::fs::read_to_string(keypair)
            .with_context(|| format!("reading {}", keypair.display()))?;
        let file: KeypairFile = serde_json::from_str(&text).context("--dap-collector-keypair")?;
        let config = cairn_dap_messages::HpkeConfig::get_decoded(&b64.decode(file.config)?)?;
        let keypair = cairn_dap_core::HpkeKeypair::new(config, b64.decode(file.private_key)?)?;
        let token = std::env::var("CAIRN_DAP_COLLECTOR_TOKEN")
            .context("CAIRN_DAP_COLLECTOR_TOKEN is not set")?;
        let collector =
            cairn_dap_collector::Collector::new(params.clone(), keypair, token, http.clone());
        Ok(DapProbe { params, collector })
    }
}

/// A certificate the `acme` step obtained: leaf first.
struct Issued {
    chain: Vec<Vec<u8>>,
}

impl Prober {
    fn new(args: &ProbeArgs) -> anyhow::Result<Prober> {
        let mut http = reqwest::Client::builder().timeout(REQUEST_TIMEOUT);
        if let Some(root) = &args.tls_root {
            let pem = std::fs::read(root).with_context(|| format!("reading {}", root.display()))?;
            http = http.add_root_certificate(reqwest::Certificate::from_pem(&pem)?);
        }
        let http = http.build()?;
        let dap = match (&args.dap_task, &args.dap_collector_keypair) {
            (Some(task), Some(keypair)) => Some(DapProbe::load(task, keypair, &http)?),
            _ => None,
        };
        Ok(Prober {
            args: args.clone(),
            http,
            dap,
        })
    }

    /// Runs every step once, recording each in `results`; returns the failures, one line each.
    async fn round(&self, results: &mut Results) -> Vec<String> {
        let mut failed = vec![];
        let mut timed = |step: &'static str, started: Instant, outcome: &anyhow::Result<()>| {
            results.record(step, outcome.is_ok(), started.elapsed().as_secs_f64());
            if let Err(e) = outcome {
                failed.push(format!("{step}: {e:#}"));
            }
        };
        let started = Instant::now();
        let issued = self.acme().await;
        timed(
            "acme",
            started,
            &issued.as_ref().map(|_| ()).map_err(|e| anyhow!("{e:#}")),
        );
        let no_certificate = || Err(anyhow!("no certificate (the acme step failed)"));
        let started = Instant::now();
        let outcome = match &issued {
            Ok(issued) => self.ocsp(issued).await,
            Err(_) => Err(anyhow!("no certificate (the acme step failed)")),
        };
        let ocsp_updates = outcome.as_ref().ok().copied();
        timed(
            "ocsp",
            started,
            &outcome.map(|_| ()).map_err(|e| anyhow!("{e:#}")),
        );
        let started = Instant::now();
        let outcome = match &issued {
            Ok(issued) => self.crl(issued).await,
            Err(_) => no_certificate(),
        };
        timed("crl", started, &outcome);
        if let Some(log) = &self.args.ct_log {
            let started = Instant::now();
            let outcome = match &issued {
                Ok(issued) => self.ct(issued, log).await,
                Err(_) => no_certificate(),
            };
            timed("ct", started, &outcome);
        }
        if let Some(dap) = &self.dap {
            let started = Instant::now();
            let outcome = self.dap(dap).await;
            timed("dap", started, &outcome);
        }
        results.last_run_unix = time::OffsetDateTime::now_utc().unix_timestamp() as f64;
        if ocsp_updates.is_some() {
            results.ocsp_updates = ocsp_updates;
        }
        failed
    }

    /// The `acme` step.
    async fn acme(&self) -> anyhow::Result<Issued> {
        let builder = match &self.args.tls_root {
            Some(root) => Account::builder_with_root(root)?,
            None => Account::builder()?,
        };
        let (account, _) = builder
            .create(
                &NewAccount {
                    contact: &[],
                    terms_of_service_agreed: true,
                    only_return_existing: false,
                },
                self.args.directory.clone(),
                None,
            )
            .await
            .context("new account")?;
        let ids = [Identifier::Dns(self.args.name.clone())];
        let mut order = account
            .new_order(&NewOrder::new(&ids))
            .await
            .context("new order")?;
        let mut authzs = order.authorizations();
        while let Some(authz) = authzs.next().await {
            let mut authz = authz.context("authorization")?;
            if authz.status != AuthorizationStatus::Pending {
                continue;
            }
            let mut challenge = authz
                .challenge(ChallengeType::Http01)
                .ok_or_else(|| anyhow!("no http-01 challenge offered"))?;
            let key_auth = challenge.key_authorization();
            let url = format!(
                "{}/add-http01",
                self.args.challtestsrv.trim_end_matches('/')
            );
            self.http
                .post(&url)
                .json(&serde_json::json!({
                    "token": challenge.token,
                    "content": key_auth.as_str(),
                }))
                .send()
                .await
                .and_then(reqwest::Response::error_for_status)
                .with_context(|| format!("publishing the challenge response at {url}"))?;
            challenge.set_ready().await.context("challenge ready")?;
        }
        let policy = RetryPolicy::new().timeout(REQUEST_TIMEOUT);
        let status = order
            .poll_ready(&policy)
            .await
            .context("polling the order")?;
        if status != OrderStatus::Ready {
            bail!("order is {status:?}, not ready: {:?}", order.state().error);
        }
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        let mut params = rcgen::CertificateParams::new(vec![self.args.name.clone()])?;
        params.distinguished_name = rcgen::DistinguishedName::new();
        let csr = params.serialize_request(&key)?;
        order.finalize_csr(csr.der()).await.context("finalize")?;
        let pem = order
            .poll_certificate(&policy)
            .await
            .context("downloading the certificate")?;
        let chain = cairn_x509::pem_certificates(&pem).map_err(|e| anyhow!("{e}"))?;
        if chain.len() < 2 {
            bail!("the certificate chain has {} certificate(s)", chain.len());
        }
        if let Some(path) = &self.args.chain_out {
            std::fs::write(path, &pem).with_context(|| format!("writing {}", path.display()))?;
        }
        Ok(Issued { chain })
    }

    /// The `ocsp` step; returns the response's thisUpdate and nextUpdate (unix seconds).
    async fn ocsp(&self, issued: &Issued) -> anyhow::Result<(f64, f64)> {
        let leaf = Certificate::from_der(&issued.chain[0])?;
        let issuer = Certificate::from_der(&issued.chain[1])?;
        let url = urls(&leaf)?
            .ocsp
            .ok_or_else(|| anyhow!("the certificate names no OCSP responder"))?;
        let sha1 = HashAlgorithm::Sha1;
        let issuer_tbs = issuer.tbs_certificate();
        let request = OcspRequest {
            tbs_request: TbsRequest {
                version: Default::default(),
                requestor_name: None,
                request_list: vec![Request {
                    req_cert: CertId {
                        hash_algorithm: sha1.algorithm_identifier(),
                        issuer_name_hash: OctetString::new(
                            sha1.digest(&issuer_tbs.subject().to_der()?),
                        )?,
                        issuer_key_hash: OctetString::new(
                            sha1.digest(
                                issuer_tbs
                                    .subject_public_key_info()
                                    .subject_public_key
                                    .raw_bytes(),
                            ),
                        )?,
                        serial_number: leaf.tbs_certificate().serial_number().clone(),
                    },
                    single_request_extensions: None,
                }],
                request_extensions: None,
            },
            optional_signature: None,
        };
        let body = self
            .http
            .post(&url)
            .header(reqwest::header::CONTENT_TYPE, "application/ocsp-request")
            .body(request.to_der()?)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .with_context(|| format!("POST {url}"))?
            .bytes()
            .await?;
        let response = cairn_ocsp::parse_response(&body).context("parsing the OCSP response")?;
        let single = response
            .single()
            .ok_or_else(|| anyhow!("OCSP response status {:?}", response.status))?;
        if !matches!(single.cert_status, CertStatusAsn1::Good(_)) {
            bail!("OCSP says {:?}, not good", single.cert_status);
        }
        let next = single
            .next_update
            .ok_or_else(|| anyhow!("the OCSP response has no nextUpdate"))?;
        if next.to_unix_duration() <= unix_now() {
            bail!("the OCSP response is past its nextUpdate");
        }
        Ok((
            single.this_update.to_unix_duration().as_secs_f64(),
            next.to_unix_duration().as_secs_f64(),
        ))
    }

    /// The `crl` step.
    async fn crl(&self, issued: &Issued) -> anyhow::Result<()> {
        let leaf = Certificate::from_der(&issued.chain[0])?;
        let url = urls(&leaf)?
            .crl
            .ok_or_else(|| anyhow!("the certificate names no CRL distribution point"))?;
        let body = self
            .http
            .get(&url)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .with_context(|| format!("GET {url}"))?
            .bytes()
            .await?;
        let crl = x509_cert::crl::CertificateList::from_der(&body).context("parsing the CRL")?;
        let next = crl
            .tbs_cert_list
            .next_update
            .ok_or_else(|| anyhow!("the CRL has no nextUpdate"))?;
        if next.to_unix_duration() <= unix_now() {
            bail!("the CRL at {url} is past its nextUpdate");
        }
        let serial = leaf.tbs_certificate().serial_number();
        let listed = crl
            .tbs_cert_list
            .revoked_certificates
            .iter()
            .flatten()
            .any(|e| &e.serial_number == serial);
        if listed {
            bail!("the CRL at {url} lists the new certificate as revoked");
        }
        Ok(())
    }

    /// The `ct` step.
    async fn ct(&self, issued: &Issued, log: &str) -> anyhow::Result<()> {
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::STANDARD;
        let url = format!("{}/ct/v1/add-chain", log.trim_end_matches('/'));
        let chain: Vec<String> = issued.chain.iter().map(|c| b64.encode(c)).collect();
        let sct: serde_json::Value = self
            .http
            .post(&url)
            .json(&serde_json::json!({ "chain": chain }))
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .with_context(|| format!("POST {url}"))?
            .json()
            .await
            .context("the add-chain answer is not JSON")?;
        let signed = sct["signature"].as_str().is_some_and(|s| !s.is_empty());
        if !signed || sct["sct_version"] != 0 {
            bail!("the add-chain answer is not an SCT: {sct}");
        }
        Ok(())
    }
}

impl Prober {
    /// The `dap` step.
    async fn dap(&self, dap: &DapProbe) -> anyhow::Result<()> {
        let measurement = dap.params.vdaf.parse_measurement("1")?;
        let client = cairn_dap_client::Client::new(dap.params.clone(), self.http.clone())
            .await
            .context("fetching the aggregators' HPKE configs")?;
        let refused = client
            .upload_measurements(&[measurement], unix_now().as_secs())
            .await
            .context("upload")?;
        if let Some(s) = refused.status.first() {
            bail!("the leader refused the report: {}", s.error.name());
        }
        let collection = dap
            .collector
            .collect(
                cairn_dap_messages::Query::LeaderSelected,
                60,
                Duration::from_millis(500),
            )
            .await
            .context("collection")?;
        if collection.report_count == 0 {
            bail!("the collected batch holds no report");
        }
        Ok(())
    }
}

fn unix_now() -> Duration {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
}

/// The OCSP and CRL URLs a certificate names.
struct StatusUrls {
    ocsp: Option<String>,
    crl: Option<String>,
}

fn urls(cert: &Certificate) -> anyhow::Result<StatusUrls> {
    let tbs = cert.tbs_certificate();
    let mut found = StatusUrls {
        ocsp: None,
        crl: None,
    };
    if let Some((_, aia)) = tbs.get_extension::<AuthorityInfoAccessSyntax>()? {
        found.ocsp = aia.0.iter().find_map(|ad| match &ad.access_location {
            GeneralName::UniformResourceIdentifier(uri) if ad.access_method == ID_AD_OCSP => {
                Some(uri.to_string())
            }
            _ => None,
        });
    }
    if let Some((_, dps)) = tbs.get_extension::<CrlDistributionPoints>()? {
        found.crl = dps.0.iter().find_map(|dp| match &dp.distribution_point {
            Some(DistributionPointName::FullName(names)) => names.iter().find_map(|n| match n {
                GeneralName::UniformResourceIdentifier(uri) => Some(uri.to_string()),
                _ => None,
            }),
            _ => None,
        });
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_show_the_last_result_of_each_step_and_count_runs() {
        let mut r = Results::default();
        r.record("acme", true, 0.5);
        r.record("ct", false, 1.25);
        r.record("ct", true, 0.75);
        r.last_run_unix = 1_700_000_000.0;
        assert!(
            !r.render().contains(OCSP_NEXT_UPDATE),
            "no OCSP response seen yet"
        );
        r.ocsp_updates = Some((1_700_000_000.0, 1_700_086_400.0));
        let text = r.render();
        for line in [
            "cairn_probe_success{step=\"acme\"} 1",
            "cairn_probe_success{step=\"ct\"} 1",
            "cairn_probe_duration_seconds{step=\"ct\"} 0.75",
            "cairn_probe_runs_total{step=\"ct\",outcome=\"failure\"} 1",
            "cairn_probe_runs_total{step=\"ct\",outcome=\"success\"} 1",
            "cairn_probe_last_run_timestamp_seconds 1700000000",
            "cairn_probe_ocsp_this_update_timestamp_seconds 1700000000",
            "cairn_probe_ocsp_next_update_timestamp_seconds 1700086400",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing:\n{text}");
        }
    }
}
