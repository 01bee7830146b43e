//! A real Prometheus (Debian `prometheus`; `.ci/run` installs it) scrapes a running
//! `cairn serve` with every rules file of `deploy/prometheus/` loaded, while the test drives the
//! ACME API with successes and client mistakes mixed in. The SLI recording rules, read back over
//! Prometheus' HTTP API, come out as the counts say: the successes are the valid events, the
//! client mistakes (4xx) are not, and the error ratio is 0 (no 5xx).
//!
//! With failures: the load generator (`cairn-loadgen`) drives a CA on PostgreSQL reached
//! through a TCP proxy, and the test cuts the database off for part of the run (a real outage:
//! the CA answers 5xx for whatever needs storage) while sending client mistakes. The raw
//! counters Prometheus scraped equal, per endpoint, the answers the load generator saw, and the
//! SLI recording rules (valid events and error ratio) agree with them.
//!
//! `rate()` extrapolates a little past the first and last samples (at most one scrape interval
//! here, with 1 s scrapes over 20 s or more), so the valid events over the 5-minute window are
//! checked within 15 % of the count sent; counting the 4xx in would double them.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test")]

mod common;

use cairn_loadgen::{ChallengeMode, Http01Responder, LoadConfig, PollPolicy, Summary, Trust};
use common::TestCa;
use instant_acme::{ChallengeType, Identifier, NewOrder};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A Prometheus process, stopped on drop.
struct Prometheus {
    child: tokio::process::Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    async fn start(program: PathBuf, target: std::net::SocketAddr) -> Prometheus {
        let dir = tempfile::tempdir().unwrap();
        let rules = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../deploy/prometheus");
        let rule_files: Vec<String> = ["slo.rules.yml", "slo-alerts.rules.yml", "alerts.rules.yml"]
            .iter()
            .map(|f| format!("  - {}", rules.join(f).display()))
            .collect();
        let config = format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
             rule_files:\n{}\n\
             scrape_configs:\n  - job_name: cairn-ca\n    static_configs:\n      - targets: [\"{target}\"]\n",
            rule_files.join("\n")
        );
        let config_path = dir.path().join("prometheus.yml");
        std::fs::write(&config_path, config).unwrap();
        let port = common::free_port();
        let child = tokio::process::Command::new(program)
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--log.level=warn")
            .kill_on_drop(true)
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("prometheus starts");
        let p = Prometheus {
            child,
            url: format!("http://127.0.0.1:{port}"),
            _dir: dir,
        };
        p.wait_for("up{job=\"cairn-ca\"}", |v| v == 1.0).await;
        p
    }

    /// The instant query's values (one per series).
    async fn query(&self, q: &str) -> Vec<f64> {
        let Ok(resp) = reqwest::Client::new()
            .get(format!(
                "{}/api/v1/query?query={}",
                self.url,
                percent_encode(q)
            ))
            .send()
            .await
        else {
            return vec![];
        };
        let Ok(body) = resp.json::<serde_json::Value>().await else {
            return vec![];
        };
        assert_eq!(body["status"], "success", "{q}: {body}");
        body["data"]["result"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["value"][1].as_str().unwrap().parse::<f64>().unwrap())
            .collect()
    }

    /// Waits until `q` returns one value that `ok` accepts; returns it.
    async fn wait_for(&self, q: &str, ok: impl Fn(f64) -> bool) -> f64 {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let got = self.query(q).await;
            if let [v] = got[..]
                && ok(v)
            {
                return v;
            }
            assert!(Instant::now() < deadline, "{q} never held: last {got:?}");
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

/// `q` percent-encoded for a URL query (everything but unreserved characters).
fn percent_encode(q: &str) -> String {
    q.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_records_slis_from_a_running_ca() {
    let Some(program) = cairn_test_services::program("prometheus") else {
        return;
    };
    let ca = TestCa::start().await;
    let http = ca.http();
    let account = ca.account().await;
    let issue = |name: &'static str| {
        let ids = [Identifier::Dns(name.into())];
        let (ca, account) = (&ca, &account);
        async move { ca.issue(account, &ids, ChallengeType::Http01).await }
    };

    // Every series exists before Prometheus' first sample, so the load below falls between
    // samples and counts in full.
    http.get(ca.directory()).send().await.unwrap();
    ca.malformed_new_order(&http).await;
    issue("warm.example.com").await;
    let prom = Prometheus::start(program, ca.server.metrics_addr).await;
    let new_order_400 = "sum(cairn_http_requests_total{listener=\"acme\",\
                         endpoint=\"/acme/new-order\",status=\"400\"})";
    prom.wait_for(new_order_400, |v| v == 1.0).await;
    tokio::time::sleep(Duration::from_secs(3)).await;

    const DIRECTORY: u32 = 40;
    const MISTAKES: u32 = 40;
    const ORDERS: u32 = 2;
    let started = Instant::now();
    for _ in 0..DIRECTORY {
        let resp = http.get(ca.directory()).send().await.unwrap();
        assert_eq!(resp.status(), 200);
    }
    for _ in 0..MISTAKES {
        ca.malformed_new_order(&http).await;
    }
    issue("one.example.com").await;
    issue("two.example.com").await;
    // Spread the load over at least 20 s of samples.
    if let Some(left) = Duration::from_secs(20).checked_sub(started.elapsed()) {
        tokio::time::sleep(left).await;
    }

    // Prometheus scraped every request: the raw counters are exact.
    prom.wait_for(new_order_400, |v| v == f64::from(1 + MISTAKES))
        .await;
    prom.wait_for(
        "sum(cairn_http_requests_total{listener=\"acme\",endpoint=\"/directory\",status=\"200\"})",
        |v| v >= f64::from(1 + DIRECTORY),
    )
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;

    // The recording rules: valid events over 5 minutes, times 300 s, are the requests sent.
    let within = |sent: u32| {
        let sent = f64::from(sent);
        move |v: f64| v * 300.0 >= sent * 0.99 && v * 300.0 <= sent * 1.15
    };
    let directory = prom
        .wait_for(
            "cairn:sli_valid_events:rate5m{slo=\"acme_directory\"}",
            within(DIRECTORY),
        )
        .await;
    // The 40 mistakes are not valid events: only the orders count.
    let orders = prom
        .wait_for(
            "cairn:sli_valid_events:rate5m{slo=\"acme_new_order\"}",
            within(ORDERS),
        )
        .await;
    eprintln!(
        "valid events x 300 s: directory {:.2} (sent {DIRECTORY}), new-order {:.2} (sent \
         {ORDERS} orders and {MISTAKES} malformed)",
        directory * 300.0,
        orders * 300.0
    );
    assert!(directory > orders * 10.0, "{directory} vs {orders}");
    for slo in ["acme_directory", "acme_new_order", "acme_finalize"] {
        let ratio = prom
            .wait_for(
                &format!("cairn:sli_error_ratio:rate5m{{slo=\"{slo}\"}}"),
                |v| !v.is_nan(),
            )
            .await;
        assert_eq!(ratio, 0.0, "{slo}: no 5xx, so no errors");
    }
    // The objectives are recorded for the burn-rate alerts.
    let objective = prom
        .wait_for("cairn:slo_objective:ratio{slo=\"acme_new_order\"}", |_| {
            true
        })
        .await;
    assert!(objective > 0.9 && objective < 1.0);
}

/// The SLOs the load generator's endpoints fall under: (loadgen endpoint, SLO, route regex).
const LOADGEN_SLOS: [(&str, &str, &str); 8] = [
    ("newAccount", "acme_new_account", "/acme/new-acct"),
    ("newOrder", "acme_new_order", "/acme/new-order"),
    ("authz", "acme_authz", "/acme/authz/.*"),
    ("challenge", "acme_challenge", "/acme/chall/.*"),
    ("order", "acme_order", "/acme/order/[{]id[}]"),
    ("finalize", "acme_finalize", "/acme/order/[{]id[}]/finalize"),
    ("certificate", "acme_certificate", "/acme/cert/.*"),
    ("newNonce", "acme_new_nonce", "/acme/new-nonce"),
];

/// Prometheus' raw counts for one route: (valid, errors) as the SLI rules define them.
async fn raw_counts(prom: &Prometheus, route: &str) -> (f64, f64) {
    let sum = |status: &str| {
        format!(
            "sum(cairn_http_requests_total{{listener=\"acme\",endpoint=~\"{route}\",status{status}}}) or vector(0)"
        )
    };
    let valid = prom.query(&sum("!~\"4..\"")).await;
    let errors = prom.query(&sum("=~\"5..\"")).await;
    (valid[0], errors[0])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slis_count_a_database_outage_and_not_client_mistakes() {
    let Some(program) = cairn_test_services::program("prometheus") else {
        return;
    };
    let Some(base) = cairn_test_services::postgres_url() else {
        return;
    };
    let schema = common::pg::Schema::create(&base, "cairn_scrape").await;
    let proxy = common::pg::OutageProxy::start(common::pg::upstream(&base)).await;
    let responder = Arc::new(
        Http01Responder::bind("127.0.0.1:0".parse().unwrap())
            .await
            .unwrap(),
    );
    let port = responder.local_addr().port();
    let database_url = proxy.route(&schema.url);
    let ca = TestCa::start_with(|cfg| {
        cfg.va.http01_port = port;
        cfg.server.database_url = Some(database_url);
    })
    .await;
    let http = ca.http();
    let load = |accounts: u32, certificates: Option<u64>, seconds: u64| LoadConfig {
        directory: ca.directory().parse().unwrap(),
        trust: Trust::Roots(std::fs::read(&ca.server.tls_root_path).unwrap()),
        accounts,
        certificates,
        duration: Duration::from_secs(seconds),
        mix: "single=1".parse().unwrap(),
        names_per_multi: 2,
        domain_suffix: "test".into(),
        challenge: ChallengeMode::Http01(responder.clone()),
        poll: PollPolicy {
            timeout: Duration::from_secs(5),
            ..PollPolicy::default()
        },
        progress: false,
        keep_cert_ids: false,
    };

    // Warm-up, before Prometheus' first sample, so the series below exist and the run counts
    // in full: an issuance, a client mistake, and a new-order during a short outage (5xx).
    let warm = cairn_loadgen::run(load(1, Some(1), 60)).await.unwrap();
    assert_eq!(warm.certificates, 1, "{warm}");
    ca.malformed_new_order(&http).await;
    let account = ca.account().await;
    proxy.cut();
    let refused = account
        .new_order(&NewOrder::new(&[Identifier::Dns("cut.example.com".into())]))
        .await;
    assert!(refused.is_err(), "new-order without a database");
    proxy.restore();
    let prom = Prometheus::start(program, ca.server.metrics_addr).await;
    let new_order_400 = "sum(cairn_http_requests_total{listener=\"acme\",\
                         endpoint=\"/acme/new-order\",status=\"400\"})";
    prom.wait_for(new_order_400, |v| v >= 1.0).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut before = Vec::new();
    for (_, _, route) in LOADGEN_SLOS {
        before.push(raw_counts(&prom, route).await);
    }

    // The run: 24 s of load; the database is cut off from 8 s to 14 s; client mistakes all
    // along.
    const MISTAKES: u32 = 30;
    let run = tokio::spawn(cairn_loadgen::run(load(3, None, 24)));
    let mistakes = async {
        for i in 0..MISTAKES {
            ca.malformed_new_order(&http).await;
            if i % 10 == 9 {
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
        }
    };
    let outage = async {
        tokio::time::sleep(Duration::from_secs(8)).await;
        proxy.cut();
        tokio::time::sleep(Duration::from_secs(6)).await;
        proxy.restore();
    };
    tokio::join!(mistakes, outage);
    let run: Summary = run.await.unwrap().unwrap();
    eprintln!("{run}");
    let seen = |endpoint: &str| run.statuses.get(endpoint).copied().unwrap_or_default();
    let errors: u64 = run.statuses.values().map(|c| c.server_errors).sum();
    assert!(errors > 0, "the outage failed requests: {run}");
    assert!(run.certificates > 0, "issuance worked around the outage: {run}");
    prom.wait_for(new_order_400, |v| v >= f64::from(1 + MISTAKES))
        .await;
    tokio::time::sleep(Duration::from_secs(3)).await;

    // Prometheus' raw counters: exactly the answers the load generator saw, per endpoint.
    for ((endpoint, slo, route), (valid0, errors0)) in LOADGEN_SLOS.iter().zip(&before) {
        let c = seen(endpoint);
        let (valid, errors) = raw_counts(&prom, route).await;
        assert_eq!(
            (valid - valid0, errors - errors0),
            ((c.ok + c.server_errors) as f64, c.server_errors as f64),
            "{slo}: {c:?}"
        );
    }

    // The recording rules over 5 minutes (the whole run): valid events as the load generator
    // counted them, within rate()'s extrapolation; and new-order's error ratio (its 5xx series
    // existed before the run: a series that first appears mid-run loses its first sample's
    // count to rate(), so the other endpoints' few errors are not compared).
    let new_order = seen("newOrder");
    assert!(new_order.server_errors > 0, "{run}");
    for (endpoint, slo, _) in LOADGEN_SLOS {
        let c = seen(endpoint);
        let valid = (c.ok + c.server_errors) as f64;
        if valid < 5.0 {
            continue;
        }
        let events = prom
            .wait_for(
                &format!("cairn:sli_valid_events:rate5m{{slo=\"{slo}\"}}"),
                |v| !v.is_nan(),
            )
            .await
            * 300.0;
        assert!(
            events >= valid * 0.9 && events <= valid * 1.15,
            "{slo}: {events:.1} valid events recorded, {valid} seen"
        );
        if slo != "acme_new_order" {
            continue;
        }
        let ratio = prom
            .wait_for(
                &format!("cairn:sli_error_ratio:rate5m{{slo=\"{slo}\"}}"),
                |v| !v.is_nan(),
            )
            .await;
        let expected = c.server_errors as f64 / valid;
        eprintln!("{slo}: error ratio {ratio:.4} recorded, {expected:.4} seen ({c:?})");
        assert!(
            (ratio - expected).abs() <= 0.1 * expected + 0.01,
            "{slo}: error ratio {ratio} recorded, {expected} seen"
        );
    }
    drop(prom);
    drop(ca);
    drop(proxy);
    schema.drop().await;
}
