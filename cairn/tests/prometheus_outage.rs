//! The SLIs with failures mixed in: the load generator (`cairn-loadgen`) drives `cairn serve`
//! on PostgreSQL, reached through a TCP proxy, and the test cuts the database off for part of
//! the run (a real outage: the CA answers 5xx for whatever needs storage) while sending client
//! mistakes. A real Prometheus scrapes it with the rules of `deploy/prometheus/` loaded; the raw
//! counters it scraped equal, per endpoint, the answers the load generator saw, and the SLI
//! recording rules agree with them (valid events within `rate()`'s extrapolation, the 4xx left
//! out; new-order's error ratio within 10 %).
//!
//! Needs PostgreSQL (`CAIRN_TEST_POSTGRES_URL`) and `prometheus`; under CI a missing one fails.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test")]

mod common;

use cairn_loadgen::{ChallengeMode, Http01Responder, LoadConfig, PollPolicy, Summary, Trust};
use common::TestCa;
use common::prometheus::Prometheus;
use instant_acme::{Identifier, NewOrder};
use std::sync::Arc;
use std::time::Duration;

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
        deactivate_authzs: false,
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
    assert!(
        run.certificates > 0,
        "issuance worked around the outage: {run}"
    );
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
