//! dns-account-01 validation against the challenge test server's DNS: the record sits at the
//! account-scoped name, so another account's record (or a plain dns-01 record) proves nothing.
// Test setup code outside #[test] functions may unwrap too (see clippy.toml).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use cairn_core::{ChallengeType::DnsAccount01, Identifier, ProblemType};
use cairn_va::{CaaAccount, CaaCheck, ValidationAuthority, dns_account01_name, dns01_txt_value};
use support::*;

const BASE: &str = "https://ca.example";

fn request_for(account_id: &str, name: &str) -> cairn_va::ValidationRequest {
    let mut req = request(Identifier::dns(name), DnsAccount01, KEY_AUTH);
    req.caa = Some(CaaCheck {
        wildcard: false,
        ca_identities: vec!["ca.example".into()],
        account: Some(CaaAccount {
            path: format!("/acme/acct/{account_id}"),
            prefixes: vec![BASE.into()],
        }),
        method: Some(DnsAccount01),
    });
    req
}

#[tokio::test]
async fn the_accounts_own_record_validates_and_others_do_not() {
    let env = env().await;
    let digest = dns01_txt_value(KEY_AUTH);
    let mine = format!("{BASE}/acme/acct/alice");
    let theirs = format!("{BASE}/acme/acct/bob");
    // The challenge test server computes the label independently of the VA.
    let name = env.srv.set_dns_account01("example.com", &mine, &digest);
    assert_eq!(name, dns_account01_name(&mine, "example.com"));

    let o = env.va.validate(request_for("alice", "example.com")).await;
    assert_valid(&o);

    // Bob's label differs: Alice's record does not validate Bob.
    let o = env.va.validate(request_for("bob", "example.com")).await;
    assert_problem(
        &o,
        ProblemType::Unauthorized,
        &format!(
            "No TXT record found at {}",
            dns_account01_name(&theirs, "example.com")
        ),
    );
}

#[tokio::test]
async fn records_for_another_account_or_dns01_prove_nothing() {
    let env = env().await;
    let digest = dns01_txt_value(KEY_AUTH);
    // The right digest, but at another account's name and at the dns-01 name.
    env.srv
        .set_dns_account01("example.com", &format!("{BASE}/acme/acct/bob"), &digest);
    env.srv.set_txt("_acme-challenge.example.com", &digest);
    let o = env.va.validate(request_for("alice", "example.com")).await;
    assert_problem(&o, ProblemType::Unauthorized, "No TXT record found at _");
}

#[tokio::test]
async fn a_wrong_digest_is_unauthorized_without_echoing_it() {
    let env = env().await;
    env.srv.set_dns_account01(
        "example.com",
        &format!("{BASE}/acme/acct/alice"),
        "not-the-digest",
    );
    let o = env.va.validate(request_for("alice", "example.com")).await;
    assert_problem(
        &o,
        ProblemType::Unauthorized,
        "Incorrect TXT record found at _",
    );
    assert!(!o.error.unwrap().detail.contains("not-the-digest"));
}

#[tokio::test]
async fn two_accounts_validate_one_name_at_the_same_time() {
    let env = env().await;
    let digest = dns01_txt_value(KEY_AUTH);
    for who in ["alice", "bob"] {
        env.srv.set_dns_account01(
            "cdn.example.com",
            &format!("{BASE}/acme/acct/{who}"),
            &digest,
        );
    }
    let (a, b) = tokio::join!(
        env.va.validate(request_for("alice", "cdn.example.com")),
        env.va.validate(request_for("bob", "cdn.example.com"))
    );
    assert_valid(&a);
    assert_valid(&b);
}

#[tokio::test]
async fn without_a_known_account_url_the_va_refuses_and_ip_addresses_are_malformed() {
    let env = env().await;
    let mut req = request_for("alice", "example.com");
    req.caa
        .as_mut()
        .unwrap()
        .account
        .as_mut()
        .unwrap()
        .prefixes
        .clear();
    let o = env.va.validate(req).await;
    assert_problem(&o, ProblemType::ServerInternal, "account URL");

    let mut req = request_for("alice", "example.com");
    req.identifier = Identifier::ip("127.0.0.1".parse().unwrap());
    let o = env.va.validate(req).await;
    assert_problem(&o, ProblemType::Malformed, "IP address");
}

#[tokio::test]
async fn servfail_is_a_dns_problem() {
    let env = env().await;
    let name = dns_account01_name(&format!("{BASE}/acme/acct/alice"), "example.com");
    env.srv.set_servfail(&name);
    let o = env.va.validate(request_for("alice", "example.com")).await;
    assert_problem(&o, ProblemType::Dns, "SERVFAIL");
}
