//! ARI `replaces` (RFC 9773 §5) and rate limits (issue 14, finding 5): a renewal is exempt only
//! from the certificate counts of what it renews; a certificate has one replacement order at a
//! time; every other limit applies.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod harness;

use cairn_core::{Account, Certificate, Identifier, OrderStatus, Problem, ProblemType};
use cairn_ra::{NewOrderRequest, OrderView};
use cairn_ratelimit::{LimitConfig, LimitName, RateLimitConfig};
use harness::{Ca, csr, key};

fn small(burst: u64) -> LimitConfig {
    LimitConfig {
        enabled: None,
        burst: Some(burst),
        count: Some(burst),
        period: Some(time::Duration::hours(3)),
    }
}

fn limits(set: &[(LimitName, u64)]) -> RateLimitConfig {
    let mut cfg = RateLimitConfig::default();
    for (name, burst) in set {
        cfg.limits.insert(*name, small(*burst));
    }
    cfg
}

/// newOrder for `names`, replacing `old` if given.
async fn new_order(
    ca: &Ca,
    account: &Account,
    names: &[String],
    old: Option<&Certificate>,
) -> Result<OrderView, Problem> {
    ca.ra
        .new_order(
            account,
            NewOrderRequest {
                identifiers: names.iter().map(|n| Identifier::dns(n.clone())).collect(),
                not_before: None,
                not_after: None,
                profile: None,
                replaces: old.map(|c| cairn_ra::cert_id(&c.der).expect("an ARI certificate ID")),
            },
        )
        .await
}

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// The exploit: one certificate, then replacement orders each carrying 99 other names. Only one
/// replacement order may be outstanding per certificate.
#[tokio::test]
async fn one_certificate_cannot_open_many_replacement_orders() {
    let ca = Ca::new();
    let account = ca.account().await;
    let (old, _) = ca.issue(&account, &["mine.example.com"]).await;
    let with_others = |batch: usize| {
        let mut n = names(&["mine.example.com"]);
        n.extend((0..99).map(|i| format!("n{i}.victim{batch}.example.net")));
        n
    };
    let first = new_order(&ca, &account, &with_others(0), Some(&old))
        .await
        .expect("the first replacement order");
    for batch in 1..4 {
        let problem = new_order(&ca, &account, &with_others(batch), Some(&old))
            .await
            .expect_err("a second replacement order of the same certificate");
        assert_eq!(problem.typ, ProblemType::AlreadyReplaced, "{problem:?}");
        assert_eq!(problem.status, 409);
    }
    // Asking again for the same order (a client retrying) returns the outstanding one.
    let again = new_order(&ca, &account, &with_others(0), Some(&old))
        .await
        .unwrap();
    assert_eq!(again.order.id, first.order.id);
    // A plain order for the same names is not the replacement.
    let plain = new_order(&ca, &account, &names(&["mine.example.com"]), None)
        .await
        .unwrap();
    assert_ne!(plain.order.id, first.order.id);
}

/// Once the outstanding replacement order is invalid (here: expired), the certificate can be
/// replaced by a new order; once a replacement is issued, never again.
#[tokio::test]
async fn an_invalid_replacement_frees_the_certificate_and_an_issued_one_ends_it() {
    let ca = Ca::new();
    let account = ca.account().await;
    let (old, _) = ca.issue(&account, &["renew.example.com"]).await;
    let ids = names(&["renew.example.com"]);
    let abandoned = new_order(&ca, &account, &ids, Some(&old)).await.unwrap();
    ca.clock.set(abandoned.order.expires);
    let fresh = new_order(&ca, &account, &ids, Some(&old)).await.unwrap();
    assert_ne!(fresh.order.id, abandoned.order.id);
    let ready = ca.validate_order(&account, &fresh).await;
    assert_eq!(ready.status, OrderStatus::Ready);
    let done = ca
        .ra
        .finalize(
            &account,
            &fresh.order.id,
            &csr(&key(), &["renew.example.com"]),
        )
        .await
        .unwrap();
    assert_eq!(done.status, OrderStatus::Valid);
    let problem = new_order(&ca, &account, &ids, Some(&old))
        .await
        .unwrap_err();
    assert_eq!(problem.typ, ProblemType::AlreadyReplaced);
}

/// Renewals are not exempt from the new-orders-per-account limit.
#[tokio::test]
async fn a_replacement_order_counts_against_new_orders_per_account() {
    let ca = Ca::with_limits(limits(&[(LimitName::NewOrdersPerAccount, 1)]));
    let account = ca.account().await;
    let (old, _) = ca.issue(&account, &["count.example.com"]).await;
    let problem = new_order(&ca, &account, &names(&["count.example.com"]), Some(&old))
        .await
        .unwrap_err();
    assert_eq!(problem.typ, ProblemType::RateLimited, "{problem:?}");
}

/// A legitimate renewal still passes the certificate-count limits its plain twin hits, and is
/// issued; names the old certificate did not have are counted as for any order.
#[tokio::test]
async fn a_renewal_bypasses_only_the_certificate_counts_of_what_it_renews() {
    let ca = Ca::with_limits(limits(&[
        (LimitName::CertificatesPerDomain, 1),
        (LimitName::CertificatesPerFqdnSet, 1),
    ]));
    let account = ca.account().await;
    let (old, _) = ca.issue(&account, &["www.example.com"]).await;
    let ids = names(&["www.example.com"]);
    let problem = new_order(&ca, &account, &ids, None).await.unwrap_err();
    assert_eq!(problem.typ, ProblemType::RateLimited, "{problem:?}");

    // Another registered domain, its one certificate spent.
    ca.issue(&account, &["taken.example.org"]).await;
    let mut more = ids.clone();
    more.push("taken.example.org".into());
    let problem = new_order(&ca, &account, &more, Some(&old))
        .await
        .unwrap_err();
    assert_eq!(problem.typ, ProblemType::RateLimited, "{problem:?}");

    // The renewal of the same names goes through to a certificate.
    let renewal = new_order(&ca, &account, &ids, Some(&old)).await.unwrap();
    let renewal = ca.validate_order(&account, &renewal).await;
    let done = ca
        .ra
        .finalize(
            &account,
            &renewal.order.id,
            &csr(&key(), &["www.example.com"]),
        )
        .await
        .unwrap();
    assert_eq!(done.status, OrderStatus::Valid);
}
