//! dns-persist-01 end to end: one standing `_validation-persist` record lets its account issue
//! and renew with no DNS change; the challenge lists the CA's issuer domain names; every
//! record that is not the account's own (another account, another CA, expired, a wildcard
//! without policy=wildcard) is refused.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a failed unwrap is a test failure
mod common;

use common::{TestCa, csr_for, verify_chain};
use instant_acme::{
    Account, AuthorizationStatus, ChallengeType, Identifier, NewOrder, OrderStatus, RetryPolicy,
};
use std::time::Duration;

const ISSUER: &str = "cairn.invalid";

fn dns_persist01() -> ChallengeType {
    ChallengeType::Unknown("dns-persist-01".into())
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// Says ready to dns-persist-01 for every pending authorization (the records are already in
/// place) and returns the order's status after polling.
async fn answer(order: &mut instant_acme::Order) -> OrderStatus {
    let mut authzs = order.authorizations();
    while let Some(a) = authzs.next().await {
        let mut a = a.unwrap();
        if a.status != AuthorizationStatus::Pending {
            continue;
        }
        let mut ch = a
            .challenge(dns_persist01())
            .expect("dns-persist-01 offered");
        ch.set_ready().await.unwrap();
    }
    order
        .poll_ready(&RetryPolicy::new().timeout(Duration::from_secs(20)))
        .await
        .unwrap()
}

async fn issue(account: &Account, ids: &[Identifier]) -> String {
    let mut order = account.new_order(&NewOrder::new(ids)).await.unwrap();
    assert_eq!(answer(&mut order).await, OrderStatus::Ready);
    let (csr, _key) = csr_for(ids);
    order.finalize_csr(&csr).await.unwrap();
    order
        .poll_certificate(&RetryPolicy::new().timeout(Duration::from_secs(20)))
        .await
        .unwrap()
}

#[tokio::test]
async fn one_standing_record_issues_a_name_and_its_wildcard() {
    let ca = TestCa::start().await;
    let account = ca.account().await;
    ca.chall.add_persist_txt(
        "persist.example.com",
        ISSUER,
        account.id(),
        Some("wildcard"),
        Some(now() + 7 * 86_400),
    );
    let ids = [
        Identifier::Dns("persist.example.com".into()),
        Identifier::Dns("*.persist.example.com".into()),
    ];
    let pem = issue(&account, &ids).await;
    verify_chain(&ca.server.root_path, &pem, "www.persist.example.com");
    // The record is still there, unchanged: a renewal needs no DNS change.
    let pem = issue(&account, &ids).await;
    verify_chain(&ca.server.root_path, &pem, "persist.example.com");
}

#[tokio::test]
async fn the_challenge_lists_the_cas_issuer_domain_names() {
    let ca = TestCa::start_with(|cfg| {
        cfg.ra.caa_identities = vec!["CA.Example.".into(), "second.example".into()];
    })
    .await;
    let mut raw = common::raw::RawClient::new(ca.directory(), &ca.server.tls_root_path).await;
    raw.register().await;
    let resp = raw
        .post(
            &raw.url("newOrder"),
            Some(
                &serde_json::json!({"identifiers": [{"type": "dns", "value": "idn.example.com"}]}),
            ),
        )
        .await;
    assert_eq!(resp.status(), 201);
    let order: serde_json::Value = resp.json().await.unwrap();
    let authz_url = order["authorizations"][0].as_str().unwrap().to_owned();
    let authz: serde_json::Value = raw.post(&authz_url, None).await.json().await.unwrap();
    let persist = authz["challenges"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "dns-persist-01")
        .expect("dns-persist-01 offered");
    assert_eq!(
        persist["issuer-domain-names"],
        serde_json::json!(["ca.example", "second.example"])
    );
    let http = authz["challenges"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "http-01")
        .unwrap();
    assert!(http.get("issuer-domain-names").is_none());
}

/// Orders `name` for `account` and expects its dns-persist-01 validation to fail with a
/// problem whose detail contains `needle`.
async fn refused(account: &Account, name: &str, needle: &str) {
    let ids = [Identifier::Dns(name.into())];
    let mut order = account.new_order(&NewOrder::new(&ids)).await.unwrap();
    assert_eq!(answer(&mut order).await, OrderStatus::Invalid);
    let mut authzs = order.authorizations();
    let a = authzs.next().await.unwrap().unwrap();
    let ch = a
        .challenges
        .iter()
        .find(|c| c.r#type == dns_persist01())
        .unwrap();
    let err = ch.error.as_ref().expect("problem recorded");
    assert_eq!(
        err.r#type.as_deref(),
        Some("urn:ietf:params:acme:error:unauthorized")
    );
    let detail = err.detail.clone().unwrap_or_default();
    assert!(detail.contains(needle), "{detail:?} lacks {needle:?}");
}

#[tokio::test]
async fn records_that_are_not_the_accounts_own_are_refused() {
    let ca = TestCa::start().await;
    let (alice, bob) = (ca.account().await, ca.account().await);
    // Another account's record.
    ca.chall
        .add_persist_txt("a.example.com", ISSUER, alice.id(), None, None);
    refused(&bob, "a.example.com", "another account").await;
    // Another CA's record.
    ca.chall
        .add_persist_txt("b.example.com", "other-ca.example", bob.id(), None, None);
    refused(&bob, "b.example.com", "names this CA").await;
    // An expired record.
    ca.chall
        .add_persist_txt("c.example.com", ISSUER, bob.id(), None, Some(now() - 1));
    refused(&bob, "c.example.com", "persistUntil in the past").await;
    // A wildcard without policy=wildcard.
    ca.chall
        .add_persist_txt("d.example.com", ISSUER, bob.id(), None, None);
    refused(&bob, "*.d.example.com", "policy=wildcard").await;
    // ...while the same record issues the name itself.
    let pem = issue(&bob, &[Identifier::Dns("d.example.com".into())]).await;
    verify_chain(&ca.server.root_path, &pem, "d.example.com");
}

/// The load generator (the interop client for dns-persist-01: Debian's lego 4.9.1 does not
/// implement it) publishes one standing record per name and account, read from the
/// challenge's `issuer-domain-names`, and never withdraws it.
#[tokio::test]
async fn the_load_generator_issues_with_dns_persist01() {
    let ca = TestCa::start().await;
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
        challenge: cairn_loadgen::ChallengeMode::DnsPersist01(mgmt.parse().unwrap()),
        poll: cairn_loadgen::PollPolicy::default(),
        progress: false,
        keep_cert_ids: false,
        deactivate_authzs: false,
    };
    let summary = cairn_loadgen::run(cfg).await.unwrap();
    assert_eq!(summary.errors_total, 0, "{summary}");
    assert_eq!(summary.certificates, 4, "{summary}");
}
