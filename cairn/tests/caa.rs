//! CAA (RFC 8659) with account and method binding (RFC 8657), through the challenge test
//! server's DNS: `accounturi`, `validationmethods`, `issuewild`, SERVFAIL, and the recheck at
//! finalize for authorizations validated before the CAA record changed.

mod common;

use cairn_challtestsrv::CaaPolicy;
use common::TestCa;
use instant_acme::{ChallengeType, Identifier, NewOrder, OrderStatus};

/// Orders `name`, answers `typ`, and returns the order status and the first challenge error.
#[allow(clippy::expect_used)] // test helper: a failure is a test failure
async fn outcome(
    ca: &TestCa,
    account: &instant_acme::Account,
    name: &str,
    typ: ChallengeType,
) -> (OrderStatus, Option<String>) {
    let ids = [Identifier::Dns(name.to_owned())];
    let mut order = account
        .new_order(&NewOrder::new(&ids))
        .await
        .expect("order");
    let status = ca.authorize(&mut order, typ).await;
    let mut authzs = order.authorizations();
    let a = authzs.next().await.expect("authz").expect("authz");
    let err = a
        .challenges
        .iter()
        .find_map(|c| c.error.as_ref())
        .and_then(|e| e.r#type.clone());
    (status, err)
}

const CAA: &str = "urn:ietf:params:acme:error:caa";

#[tokio::test]
async fn accounturi_binds_issuance_to_one_account() {
    let ca = TestCa::start().await;
    let owner = ca.account().await;
    let stranger = ca.account().await;
    ca.chall.add_caa(
        "bound.example.com",
        &[CaaPolicy::new(
            "issue",
            format!("cairn.invalid; accounturi={}", owner.id()),
        )],
    );
    let (status, err) = outcome(&ca, &stranger, "bound.example.com", ChallengeType::Http01).await;
    assert_eq!((status, err.as_deref()), (OrderStatus::Invalid, Some(CAA)));
    let (status, _) = outcome(&ca, &owner, "bound.example.com", ChallengeType::Http01).await;
    assert_eq!(status, OrderStatus::Ready);
}

#[tokio::test]
async fn validationmethods_binds_the_method() {
    let ca = TestCa::start().await;
    let account = ca.account().await;
    ca.chall.add_caa(
        "methods.example.com",
        &[CaaPolicy::new(
            "issue",
            "cairn.invalid; validationmethods=dns-01",
        )],
    );
    let (status, err) = outcome(&ca, &account, "methods.example.com", ChallengeType::Http01).await;
    assert_eq!((status, err.as_deref()), (OrderStatus::Invalid, Some(CAA)));
    let (status, _) = outcome(&ca, &account, "methods.example.com", ChallengeType::Dns01).await;
    assert_eq!(status, OrderStatus::Ready);
}

#[tokio::test]
async fn issuewild_governs_wildcards_and_servfail_refuses() {
    let ca = TestCa::start().await;
    let account = ca.account().await;
    ca.chall.add_caa(
        "wild-caa.example.com",
        &[
            CaaPolicy::new("issue", "cairn.invalid"),
            CaaPolicy::new("issuewild", ";"),
        ],
    );
    let (status, err) = outcome(
        &ca,
        &account,
        "*.wild-caa.example.com",
        ChallengeType::Dns01,
    )
    .await;
    assert_eq!((status, err.as_deref()), (OrderStatus::Invalid, Some(CAA)));
    let (status, _) = outcome(&ca, &account, "wild-caa.example.com", ChallengeType::Dns01).await;
    assert_eq!(status, OrderStatus::Ready);

    // A CAA lookup that fails is never taken for "no CAA record".
    ca.chall.set_servfail("broken-caa.example.com");
    let (status, err) = outcome(
        &ca,
        &account,
        "broken-caa.example.com",
        ChallengeType::Http01,
    )
    .await;
    assert_eq!(status, OrderStatus::Invalid);
    assert_eq!(err.as_deref(), Some("urn:ietf:params:acme:error:dns"));
}

#[tokio::test]
async fn caa_is_rechecked_at_finalize_for_older_authorizations() {
    let ca = TestCa::start_with(|cfg| cfg.ra.caa_recheck_after = time::Duration::ZERO).await;
    let account = ca.account().await;
    let ids = [Identifier::Dns("recheck.example.com".into())];
    let mut order = account.new_order(&NewOrder::new(&ids)).await.unwrap();
    assert_eq!(
        ca.authorize(&mut order, ChallengeType::Http01).await,
        OrderStatus::Ready
    );
    // The domain owner forbids this CA after validation but before finalize.
    ca.chall.add_caa(
        "recheck.example.com",
        &[CaaPolicy::new("issue", "other-ca.example")],
    );
    let (csr, _) = common::csr_for(&ids);
    let err = order
        .finalize_csr(&csr)
        .await
        .expect_err("CAA forbids issuance now");
    assert!(format!("{err:?}").contains("caa"), "{err:?}");
    assert_eq!(
        order.refresh().await.unwrap().status,
        OrderStatus::Ready,
        "nothing was issued"
    );
}
