//! dns-01 validation against the challenge test server's DNS.
// Test setup code outside #[test] functions may unwrap too (see clippy.toml).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use cairn_core::{ChallengeType::Dns01, Identifier, ProblemType};
use cairn_va::dns01_txt_value;
use support::*;

#[test]
fn txt_value_is_base64url_sha256() {
    // SHA-256("") in base64url without padding.
    assert_eq!(
        dns01_txt_value(""),
        "47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU"
    );
}

#[tokio::test]
async fn dns01_succeeds_among_several_txt_values() {
    let env = env().await;
    let name = "_acme-challenge.example.com";
    env.srv.set_txt(name, "unrelated");
    env.srv.set_txt(name, &dns01_txt_value(KEY_AUTH));
    env.srv.set_txt(name, "another");
    let o = env
        .validate(Identifier::dns("example.com"), Dns01, KEY_AUTH)
        .await;
    assert_valid(&o);
    assert_eq!(o.records.len(), 1);
    assert_eq!(o.records[0].hostname.as_deref(), Some("example.com"));
}

#[tokio::test]
async fn dns01_wrong_value_is_unauthorized() {
    let env = env().await;
    env.srv
        .set_txt("_acme-challenge.example.com", "not-the-digest");
    let o = env
        .validate(Identifier::dns("example.com"), Dns01, KEY_AUTH)
        .await;
    assert_problem(
        &o,
        ProblemType::Unauthorized,
        "Incorrect TXT record found at _acme-challenge.example.com",
    );
    assert!(!o.error.unwrap().detail.contains("not-the-digest"));
}

#[tokio::test]
async fn dns01_missing_record_is_unauthorized() {
    let env = env().await;
    let o = env
        .validate(Identifier::dns("example.com"), Dns01, KEY_AUTH)
        .await;
    assert_problem(
        &o,
        ProblemType::Unauthorized,
        "No TXT record found at _acme-challenge.example.com",
    );
}

#[tokio::test]
async fn dns01_servfail_is_a_dns_problem() {
    let env = env().await;
    env.srv
        .set_txt("_acme-challenge.example.com", &dns01_txt_value(KEY_AUTH));
    env.srv.set_servfail("_acme-challenge.example.com");
    let o = env
        .validate(Identifier::dns("example.com"), Dns01, KEY_AUTH)
        .await;
    assert_problem(
        &o,
        ProblemType::Dns,
        "SERVFAIL looking up TXT for _acme-challenge.example.com",
    );
    // Records change are seen at once: no caching.
    env.srv.clear_servfail("_acme-challenge.example.com");
    let o = env
        .validate(Identifier::dns("example.com"), Dns01, KEY_AUTH)
        .await;
    assert_valid(&o);
}

#[tokio::test]
async fn dns01_dns_timeout_is_a_dns_problem() {
    let env = env().await;
    // A UDP socket that never answers stands in for an unresponsive DNS server.
    let silent = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = silent.local_addr().unwrap();
    let va = va_for(&env.srv, |c| {
        c.dns_server = addr;
        c.timeout = std::time::Duration::from_millis(700);
    });
    let o = cairn_va::ValidationAuthority::validate(
        &va,
        request(Identifier::dns("example.com"), Dns01, KEY_AUTH),
    )
    .await;
    assert_eq!(
        o.error.as_ref().map(|p| p.typ),
        Some(ProblemType::Dns),
        "{:?}",
        o.error
    );
}

#[tokio::test]
async fn dns01_follows_cnames() {
    let env = env().await;
    env.srv.set_cname(
        "_acme-challenge.example.com",
        "delegated.validation.example",
    );
    env.srv
        .set_txt("delegated.validation.example", &dns01_txt_value(KEY_AUTH));
    let o = env
        .validate(Identifier::dns("example.com"), Dns01, KEY_AUTH)
        .await;
    assert_valid(&o);
}

#[tokio::test]
async fn dns01_refuses_ip_identifiers() {
    let env = env().await;
    let o = env
        .validate(
            Identifier::ip("127.0.0.1".parse().unwrap()),
            Dns01,
            KEY_AUTH,
        )
        .await;
    assert_problem(&o, ProblemType::Malformed, "IP");
}
