//! A real Prometheus (Debian `prometheus`; `.ci/run` installs it) scrapes a running
//! `cairn serve` with every rules file of `deploy/prometheus/` loaded, while the test drives the
//! ACME API with successes and client mistakes mixed in. The SLI recording rules, read back over
//! Prometheus' HTTP API, come out as the counts say: the successes are the valid events, the
//! client mistakes (4xx) are not, and the error ratio is 0 (no 5xx).
//!
//! `rate()` extrapolates a little past the first and last samples (at most one scrape interval
//! here, with 1 s scrapes over 20 s or more), so the valid events over the 5-minute window are
//! checked within 15 % of the count sent; counting the 4xx in would double them.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test")]

mod common;

use common::TestCa;
use instant_acme::{ChallengeType, Identifier};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// A Prometheus process, stopped on drop.
struct Prometheus {
    child: tokio::process::Child,
    url: String,
    _dir: tempfile::TempDir,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
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
        let port = free_port();
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

/// POSTs a body that is no JWS to new-order: a client mistake (400).
async fn malformed_new_order(ca: &TestCa, http: &reqwest::Client) {
    let url = ca.directory().replace("/directory", "/acme/new-order");
    let resp = http
        .post(url)
        .header("content-type", "application/jose+json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_records_slis_from_a_running_ca() {
    let Some(program) = cairn_test_services::program("prometheus") else {
        return;
    };
    let ca = TestCa::start().await;
    let root = std::fs::read(&ca.server.tls_root_path).unwrap();
    let http = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&root).unwrap())
        .build()
        .unwrap();
    let account = ca.account().await;
    let issue = |name: &'static str| {
        let ids = [Identifier::Dns(name.into())];
        let (ca, account) = (&ca, &account);
        async move { ca.issue(account, &ids, ChallengeType::Http01).await }
    };

    // Every series exists before Prometheus' first sample, so the load below falls between
    // samples and counts in full.
    http.get(ca.directory()).send().await.unwrap();
    malformed_new_order(&ca, &http).await;
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
        malformed_new_order(&ca, &http).await;
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
