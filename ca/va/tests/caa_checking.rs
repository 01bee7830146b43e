//! CAA checks (RFC 8659) against the challenge test server's DNS.
// Test setup code outside #[test] functions may unwrap too (see clippy.toml).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use cairn_challtestsrv::CaaPolicy;
use cairn_core::{Identifier, ProblemType};
use support::*;

fn ids() -> Vec<String> {
    vec!["cairn.test".to_string()]
}

#[tokio::test]
async fn caa_absent_everywhere_allows_issuance() {
    let env = env().await;
    env.va
        .check_caa(&Identifier::dns("www.example.com"), false, &ids())
        .await
        .unwrap();
}

#[tokio::test]
async fn caa_on_a_parent_is_found_by_climbing() {
    let env = env().await;
    env.srv
        .add_caa("example.com", &[CaaPolicy::new("issue", "other-ca.test")]);
    let p = env
        .va
        .check_caa(&Identifier::dns("a.b.example.com"), false, &ids())
        .await
        .unwrap_err();
    assert_eq!(p.typ, ProblemType::Caa);
    assert!(p.detail.contains("example.com"), "{}", p.detail);

    // Unknown parameters are tolerated (RFC 8659 §4.2). RFC 8657's `accounturi` and
    // `validationmethods` bind the record instead; see the account-binding tests.
    env.srv.add_caa(
        "example.com",
        &[CaaPolicy::new("issue", "cairn.test; policy=dv")],
    );
    env.va
        .check_caa(&Identifier::dns("a.b.example.com"), false, &ids())
        .await
        .unwrap();
}

#[tokio::test]
async fn caa_closest_rrset_wins() {
    let env = env().await;
    env.srv
        .add_caa("example.com", &[CaaPolicy::new("issue", "other-ca.test")]);
    env.srv
        .add_caa("sub.example.com", &[CaaPolicy::new("issue", "cairn.test")]);
    env.va
        .check_caa(&Identifier::dns("sub.example.com"), false, &ids())
        .await
        .unwrap();
    env.va
        .check_caa(&Identifier::dns("other.example.com"), false, &ids())
        .await
        .unwrap_err();
}

#[tokio::test]
async fn caa_issuewild_governs_wildcards() {
    let env = env().await;
    env.srv.add_caa(
        "example.com",
        &[
            CaaPolicy::new("issue", "cairn.test"),
            CaaPolicy::new("issuewild", ";"),
        ],
    );
    env.va
        .check_caa(&Identifier::dns("example.com"), false, &ids())
        .await
        .unwrap();
    let p = env
        .va
        .check_caa(&Identifier::dns("example.com"), true, &ids())
        .await
        .unwrap_err();
    assert_eq!(p.typ, ProblemType::Caa);
    // The `*.` prefix also marks a wildcard.
    env.va
        .check_caa(&Identifier::dns("*.example.com"), false, &ids())
        .await
        .unwrap_err();
}

#[tokio::test]
async fn caa_unknown_critical_tag_forbids_issuance() {
    let env = env().await;
    env.srv.add_caa(
        "example.com",
        &[
            CaaPolicy::new("issue", "cairn.test"),
            CaaPolicy {
                tag: "futuretag".into(),
                value: "x".into(),
                flag: 128,
            },
        ],
    );
    let p = env
        .va
        .check_caa(&Identifier::dns("example.com"), false, &ids())
        .await
        .unwrap_err();
    assert_eq!(p.typ, ProblemType::Caa);
    assert!(p.detail.contains("futuretag"));
}

#[tokio::test]
async fn caa_servfail_is_a_dns_problem_not_absence() {
    let env = env().await;
    env.srv.set_servfail("example.com");
    let p = env
        .va
        .check_caa(&Identifier::dns("www.example.com"), false, &ids())
        .await
        .unwrap_err();
    assert_eq!(p.typ, ProblemType::Dns);
    assert!(p.detail.contains("SERVFAIL"), "{}", p.detail);
}

#[tokio::test]
async fn caa_does_not_apply_to_ip_addresses() {
    let env = env().await;
    env.va
        .check_caa(&Identifier::ip("127.0.0.1".parse().unwrap()), false, &ids())
        .await
        .unwrap();
}
