//! dns-account-01 end to end: instant-acme (which has no dns-account-01 helper, so the test
//! publishes the record itself) against the all-in-one CA. Two accounts validate one name at
//! the same time, each at its own label; one account's record does not serve another.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a failed unwrap is a test failure
mod common;

use common::{TestCa, csr_for, verify_chain};
use instant_acme::{
    Account, AuthorizationStatus, ChallengeType, Identifier, NewOrder, OrderStatus, RetryPolicy,
};
use std::time::Duration;

fn dns_account01() -> ChallengeType {
    ChallengeType::Unknown("dns-account-01".into())
}

/// A CA whose account URLs are known in advance (`ra.account_uri_prefixes`), which
/// dns-account-01 needs: the ACME port is chosen here, then handed to the CA.
async fn start_ca() -> TestCa {
    let port = cairn_test_services::free_port();
    TestCa::start_with(|cfg| {
        cfg.server.listen = format!("127.0.0.1:{port}").parse().unwrap();
        cfg.ra.account_uri_prefixes = vec![format!("https://localhost:{port}")];
    })
    .await
}

/// Publishes `account`'s dns-account-01 records for every pending authorization of `order`
/// and says ready; returns the order's status after polling.
async fn answer(ca: &TestCa, account: &Account, order: &mut instant_acme::Order) -> OrderStatus {
    let mut authzs = order.authorizations();
    while let Some(a) = authzs.next().await {
        let mut a = a.unwrap();
        if a.status != AuthorizationStatus::Pending {
            continue;
        }
        let Identifier::Dns(name) = a.identifier().identifier.clone() else {
            panic!("DNS identifiers only");
        };
        let mut ch = a
            .challenge(dns_account01())
            .expect("dns-account-01 offered");
        let value = ch.key_authorization().dns_value();
        ca.chall.set_dns_account01(&name, account.id(), &value);
        ch.set_ready().await.unwrap();
    }
    order
        .poll_ready(&RetryPolicy::new().timeout(Duration::from_secs(20)))
        .await
        .unwrap()
}

#[tokio::test]
async fn two_accounts_issue_for_one_name_and_a_wildcard_each_at_their_own_label() {
    let ca = start_ca().await;
    let (alice, bob) = (ca.account().await, ca.account().await);
    let ids = [
        Identifier::Dns("cdn.example.com".into()),
        Identifier::Dns("*.cdn.example.com".into()),
    ];
    let mut a = alice.new_order(&NewOrder::new(&ids)).await.unwrap();
    let mut b = bob.new_order(&NewOrder::new(&ids)).await.unwrap();
    let (sa, sb) = tokio::join!(answer(&ca, &alice, &mut a), answer(&ca, &bob, &mut b));
    assert_eq!(sa, OrderStatus::Ready);
    assert_eq!(sb, OrderStatus::Ready);
    for order in [&mut a, &mut b] {
        let (csr, _key) = csr_for(&ids);
        order.finalize_csr(&csr).await.unwrap();
        let pem = order
            .poll_certificate(&RetryPolicy::new().timeout(Duration::from_secs(20)))
            .await
            .unwrap();
        verify_chain(&ca.server.root_path, &pem, "x.cdn.example.com");
    }
}

#[tokio::test]
async fn another_accounts_record_does_not_validate() {
    let ca = start_ca().await;
    let (alice, bob) = (ca.account().await, ca.account().await);
    let ids = [Identifier::Dns("victim.example.com".into())];
    let mut order = bob.new_order(&NewOrder::new(&ids)).await.unwrap();
    let mut authzs = order.authorizations();
    let mut authz = authzs.next().await.unwrap().unwrap();
    let mut ch = authz.challenge(dns_account01()).unwrap();
    // Bob's digest, published under Alice's label.
    let value = ch.key_authorization().dns_value();
    ca.chall
        .set_dns_account01("victim.example.com", alice.id(), &value);
    ch.set_ready().await.unwrap();
    let status = order
        .poll_ready(&RetryPolicy::new().timeout(Duration::from_secs(20)))
        .await
        .unwrap();
    assert_eq!(status, OrderStatus::Invalid);
}

#[tokio::test]
async fn without_account_uri_prefixes_dns_account01_is_not_offered() {
    let ca = TestCa::start().await;
    let account = ca.account().await;
    let ids = [Identifier::Dns("plain.example.com".into())];
    let mut order = account.new_order(&NewOrder::new(&ids)).await.unwrap();
    let mut authzs = order.authorizations();
    let authz = authzs.next().await.unwrap().unwrap();
    assert!(authz.challenges.iter().all(|c| c.r#type != dns_account01()));
}

/// The load generator (the interop client for dns-account-01: Debian's lego 4.9.1 does not
/// implement it) publishes and withdraws account-scoped records through the challenge test
/// server's management API.
#[tokio::test]
async fn the_load_generator_issues_with_dns_account01() {
    let ca = start_ca().await;
    let mgmt = format!("http://{}/", ca.chall.management_addr().unwrap());
    let cfg = cairn_loadgen::LoadConfig {
        directory: ca.directory().parse().unwrap(),
        trust: cairn_loadgen::Trust::Roots(std::fs::read(&ca.server.tls_root_path).unwrap()),
        accounts: 2,
        certificates: Some(4),
        duration: Duration::from_secs(120),
        mix: "single=1,multi=1".parse().unwrap(),
        names_per_multi: 2,
        domain_suffix: "test".into(),
        challenge: cairn_loadgen::ChallengeMode::DnsAccount01(mgmt.parse().unwrap()),
        poll: cairn_loadgen::PollPolicy::default(),
        progress: false,
        keep_cert_ids: false,
        deactivate_authzs: false,
    };
    let summary = cairn_loadgen::run(cfg).await.unwrap();
    assert_eq!(summary.errors_total, 0, "{summary}");
    assert_eq!(summary.certificates, 4, "{summary}");
}
