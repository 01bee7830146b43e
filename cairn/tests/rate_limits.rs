//! Rate limits end to end: `rateLimited` problems with `Retry-After` and a help link, the ARI
//! `replaces` exemption, pausing after failed validations and unpausing, on the in-process
//! store and on Redis (when `CAIRN_TEST_REDIS_URL` is set).

mod common;

use cairn_ratelimit::{LimitConfig, LimitName};
use common::TestCa;
use common::raw::{RawClient, expect_problem};
use instant_acme::{ChallengeType, Identifier, NewOrder, OrderStatus};
use serde_json::json;
use std::borrow::Cow;

/// A shared Redis outlives test runs and serves every test at once: each CA gets buckets of its
/// own under a fresh key prefix.
fn redis_store(cfg: &mut cairn::config::Config, redis: Option<String>) {
    if redis.is_some() {
        cfg.server.redis_prefix = format!("cairn-test:rl:{}:", cairn_core::random_id(8));
    }
    cfg.server.redis_url = redis;
}

fn small(burst: u64) -> LimitConfig {
    LimitConfig {
        enabled: None,
        burst: Some(burst),
        count: Some(burst),
        period: Some(time::Duration::hours(3)),
    }
}

#[allow(clippy::unwrap_used)] // shared test body: a failure is a test failure
async fn orders_per_account_are_limited(redis: Option<String>) {
    let ca = TestCa::start_with(|cfg| {
        cfg.rate_limits
            .limits
            .insert(LimitName::NewOrdersPerAccount, small(2));
        redis_store(cfg, redis);
    })
    .await;
    let mut c = RawClient::new(ca.directory(), &ca.server.root_path).await;
    c.register().await;
    let new_order = c.url("newOrder");
    for name in ["one.example.com", "two.example.com"] {
        let body = json!({"identifiers": [{"type": "dns", "value": name}]});
        assert_eq!(c.post(&new_order, Some(&body)).await.status(), 201);
    }
    let body = json!({"identifiers": [{"type": "dns", "value": "three.example.com"}]});
    let resp = c.post(&new_order, Some(&body)).await;
    let retry: u64 = resp.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=3 * 3600).contains(&retry), "Retry-After {retry}");
    let links: Vec<_> = resp
        .headers()
        .get_all("link")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    assert!(
        links
            .iter()
            .any(|l| l.contains("rel=\"help\"") && l.contains("rate-limits")),
        "{links:?}"
    );
    let doc = expect_problem(resp, 429, "rateLimited").await;
    assert!(
        doc["detail"].as_str().unwrap().contains("new orders"),
        "{doc}"
    );
    // Asking again for an order that already exists costs nothing (order reuse).
    let body = json!({"identifiers": [{"type": "dns", "value": "one.example.com"}]});
    assert_eq!(c.post(&new_order, Some(&body)).await.status(), 201);
}

#[tokio::test]
async fn new_orders_per_account_in_memory() {
    orders_per_account_are_limited(None).await;
}

#[tokio::test]
async fn new_orders_per_account_on_redis() {
    let Some(url) = cairn_test_services::redis_url() else {
        return;
    };
    orders_per_account_are_limited(Some(url)).await;
}

#[tokio::test]
async fn new_accounts_per_ip() {
    let ca = TestCa::start_with(|cfg| {
        cfg.rate_limits
            .limits
            .insert(LimitName::NewAccountsPerIp, small(1));
    })
    .await;
    let mut first = RawClient::new(ca.directory(), &ca.server.root_path).await;
    first.register().await;
    let second = RawClient::new(ca.directory(), &ca.server.root_path).await;
    let resp = second
        .post(
            &second.url("newAccount"),
            Some(&json!({"termsOfServiceAgreed": true})),
        )
        .await;
    expect_problem(resp, 429, "rateLimited").await;
}

#[tokio::test]
async fn ari_replacements_are_exempt_from_the_certificate_counts_only() {
    let ca = TestCa::start_with(|cfg| {
        cfg.rate_limits
            .limits
            .insert(LimitName::CertificatesPerDomain, small(1));
    })
    .await;
    let account = ca.account().await;
    let ids = [Identifier::Dns("exempt.example.com".into())];
    let (pem, _) = ca.issue(&account, &ids, ChallengeType::Http01).await;
    let Err(err) = account.new_order(&NewOrder::new(&ids)).await else {
        panic!("the domain's one certificate is spent");
    };
    assert!(format!("{err:?}").contains("rateLimited"), "{err:?}");
    let id = cairn_ra::cert_id(&common::pem_chain(&pem)[0]).unwrap();
    let (aki, serial) = id.split_once('.').unwrap();
    let replaces = instant_acme::CertificateIdentifier {
        authority_key_identifier: Cow::Owned(aki.to_owned()),
        serial: Cow::Owned(serial.to_owned()),
    };
    account
        .new_order(&NewOrder::new(&ids).replaces(replaces.clone()))
        .await
        .expect("a renewal is exempt from the certificate count");
    // One replacement order per certificate at a time.
    let more = [
        Identifier::Dns("exempt.example.com".into()),
        Identifier::Dns("other.example.net".into()),
    ];
    let Err(err) = account
        .new_order(&NewOrder::new(&more).replaces(replaces))
        .await
    else {
        panic!("a second replacement order of the same certificate");
    };
    assert!(format!("{err:?}").contains("alreadyReplaced"), "{err:?}");
}

#[tokio::test]
async fn repeated_failures_pause_the_account_for_the_name() {
    let redis = cairn_test_services::redis_url();
    let mut prefix = String::new();
    let ca = TestCa::start_with(|cfg| {
        cfg.rate_limits.limits.insert(
            LimitName::FailedAuthorizationsForPausingPerDomainPerAccount,
            small(2),
        );
        redis_store(cfg, redis.clone());
        prefix.clone_from(&cfg.server.redis_prefix);
    })
    .await;
    let account = ca.account().await;
    // Random names: a shared Redis outlives test runs.
    let flaky = format!("flaky-{}.example.com", std::process::id());
    let ids = [Identifier::Dns(flaky)];
    for _ in 0..2 {
        let mut order = account.new_order(&NewOrder::new(&ids)).await.unwrap();
        {
            let mut authzs = order.authorizations();
            let mut a = authzs.next().await.unwrap().unwrap();
            let mut ch = a.challenge(ChallengeType::Http01).unwrap();
            ca.chall.add_http01(&ch.token, "wrong");
            ch.set_ready().await.unwrap();
        }
        let status = order
            .poll_ready(&instant_acme::RetryPolicy::new())
            .await
            .unwrap();
        assert_eq!(status, OrderStatus::Invalid);
    }
    let Err(err) = account.new_order(&NewOrder::new(&ids)).await else {
        panic!("the account is paused for the name");
    };
    assert!(format!("{err:?}").contains("paused"), "{err:?}");
    // Other names are not affected.
    let other = [Identifier::Dns(format!(
        "steady-{}.example.com",
        std::process::id()
    ))];
    account.new_order(&NewOrder::new(&other)).await.unwrap();

    // With the shared Redis store, the operator can unpause from another process.
    if let Some(url) = redis {
        let account_id = account.id().rsplit('/').next().unwrap().to_owned();
        // The same Redis and key prefix as the server's.
        let config = ca.dir.path().join("admin.toml");
        std::fs::write(
            &config,
            format!("[server]\nredis_url = \"{url}\"\nredis_prefix = \"{prefix}\"\n"),
        )
        .unwrap();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_cairn"))
            .args(["admin", "unpause", "--account", &account_id, "--config"])
            .arg(&config)
            .arg("--data-dir")
            .arg(ca.dir.path().join("data"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        account
            .new_order(&NewOrder::new(&ids))
            .await
            .expect("unpaused");
    }
}

#[tokio::test]
async fn duplicate_certificates_count_issued_certificates_not_orders() {
    let ca = TestCa::start_with(|cfg| {
        cfg.rate_limits
            .limits
            .insert(LimitName::CertificatesPerFqdnSet, small(1));
    })
    .await;
    let account = ca.account().await;
    let ids = [Identifier::Dns("dup.example.com".into())];
    // An order that is never finalized uses no certificate token: deactivate it and reorder.
    let mut order = account.new_order(&NewOrder::new(&ids)).await.unwrap();
    {
        let mut authzs = order.authorizations();
        let mut a = authzs.next().await.unwrap().unwrap();
        a.deactivate().await.unwrap();
    }
    ca.issue(&account, &ids, ChallengeType::Http01).await;
    // Now the one certificate for this exact set is spent.
    let Err(err) = account.new_order(&NewOrder::new(&ids)).await else {
        panic!("a second certificate for the same set is over the limit");
    };
    assert!(format!("{err:?}").contains("rateLimited"), "{err:?}");
}
