//! A real Prometheus (Debian `prometheus`; `.ci/run` installs it) scrapes a running
//! `cairn serve` with every rules file of `deploy/prometheus/` loaded, while the test drives the
//! ACME API with successes and client mistakes mixed in. The SLI recording rules, read back over
//! Prometheus' HTTP API, come out as the counts say: the successes are the valid events, the
//! client mistakes (4xx) are not, and the error ratio is 0 (no 5xx).
//! (With failures mixed in: tests/prometheus_outage.rs.)
//!
//! `rate()` extrapolates a little past the first and last samples (at most one scrape interval
//! here, with 1 s scrapes over 20 s or more), so the valid events over the 5-minute window are
//! checked within 15 % of the count sent; counting the 4xx in would double them.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test")]

mod common;

use common::TestCa;
use common::prometheus::Prometheus;
use instant_acme::{ChallengeType, Identifier};
use std::time::{Duration, Instant};

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
