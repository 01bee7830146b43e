//! Every service exposes Prometheus metrics: after one issuance, `/metrics` counts requests by
//! endpoint and status, validations by method and outcome, and issued certificates.

mod common;

use common::TestCa;
use instant_acme::{ChallengeType, Identifier};

#[tokio::test]
async fn metrics_count_requests_validations_and_issuance() {
    let ca = TestCa::start().await;
    let account = ca.account().await;
    let ids = [Identifier::Dns("metrics.example.com".into())];
    ca.issue(&account, &ids, ChallengeType::Http01).await;

    let url = format!("http://{}/metrics", ca.server.metrics_addr);
    let body = reqwest::get(&url).await.unwrap().text().await.unwrap();
    let has = |needle: &str| {
        body.lines()
            .any(|l| !l.starts_with('#') && l.contains(needle))
    };
    assert!(
        has(
            "cairn_http_requests_total{listener=\"acme\",endpoint=\"/acme/new-order\",method=\"POST\",status=\"201\"}"
        ),
        "requests by endpoint and status missing:\n{body}"
    );
    assert!(
        has("cairn_validations_total{method=\"http-01\",outcome=\"valid\"}"),
        "validations by method and outcome missing:\n{body}"
    );
    assert!(
        has("cairn_certificates_issued_total"),
        "issuance counter missing:\n{body}"
    );

    // Inputs of the cause-based alerts in deploy/prometheus/alerts.rules.yml.
    assert!(
        has("cairn_dependency_up{dependency=\"database\"} 1"),
        "database probe gauge missing:\n{body}"
    );
    let not_after = body
        .lines()
        .find_map(|l| {
            l.strip_prefix("cairn_issuer_not_after_timestamp_seconds{")?
                .split_once("} ")?
                .1
                .parse::<f64>()
                .ok()
        })
        .unwrap_or_else(|| panic!("issuer expiry gauge missing:\n{body}"));
    let now = time::OffsetDateTime::now_utc().unix_timestamp() as f64;
    assert!(
        not_after > now,
        "issuer expiry {not_after} is not in the future"
    );

    let health = reqwest::get(format!("http://{}/health", ca.server.metrics_addr))
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
}

/// With a shared Redis configured, its reachability is exported for the `DependencyDown` alert
/// (and, the rate limiter failing open, it does not decide readiness).
#[tokio::test]
async fn redis_reachability_is_exported() {
    let Some(url) = cairn_test_services::redis_url() else {
        return;
    };
    let ca = TestCa::start_with(|cfg| {
        cfg.server.redis_url = Some(url);
        cfg.server.redis_prefix = format!("cairn-test-metrics-{}:", std::process::id());
    })
    .await;
    let body = reqwest::get(format!("http://{}/metrics", ca.server.metrics_addr))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        body.lines()
            .any(|l| l == "cairn_dependency_up{dependency=\"redis\"} 1"),
        "redis probe gauge missing:\n{body}"
    );
}
