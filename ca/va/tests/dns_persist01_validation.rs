//! dns-persist-01 validation against the challenge test server's DNS: every negative case of
//! draft-ietf-acme-dns-persist-01 (wrong account URI, wrong issuer, expired persistUntil, a
//! wildcard without policy=wildcard, records for another account) and the positive ones
//! (several records at the name, persistUntil carried to the RA, CAA bound to the method).
// Test setup code outside #[test] functions may unwrap too (see clippy.toml).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use cairn_challtestsrv::CaaPolicy;
use cairn_core::{ChallengeType::DnsPersist01, Identifier, ProblemType};
use cairn_va::{CaaAccount, CaaCheck, ValidationAuthority, ValidationRequest};
use support::*;

const ISSUER: &str = "ca.example";
const ME: &str = "https://ca.example/acme/acct/alice";

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn request_for(name: &str, wildcard: bool) -> ValidationRequest {
    let mut req = request(Identifier::dns(name), DnsPersist01, KEY_AUTH);
    req.caa = Some(CaaCheck {
        wildcard,
        ca_identities: vec![ISSUER.into(), "other-name.ca.example".into()],
        account: Some(CaaAccount {
            path: "/acme/acct/alice".into(),
            prefixes: vec!["https://ca.example".into()],
        }),
        method: Some(DnsPersist01),
    });
    req
}

#[tokio::test]
async fn a_standing_record_validates_again_and_again() {
    let env = env().await;
    env.srv
        .add_persist_txt("example.com", ISSUER, ME, None, None);
    for _ in 0..3 {
        let o = env.va.validate(request_for("example.com", false)).await;
        assert_valid(&o);
        assert_eq!(o.records.len(), 1);
        assert_eq!(o.records[0].persist_until, None);
    }
}

#[tokio::test]
async fn wrong_account_uri_is_unauthorized() {
    let env = env().await;
    env.srv.add_persist_txt(
        "example.com",
        ISSUER,
        "https://ca.example/acme/acct/mallory",
        None,
        None,
    );
    let o = env.va.validate(request_for("example.com", false)).await;
    assert_problem(
        &o,
        ProblemType::Unauthorized,
        "accounturi naming another account",
    );
    // The same path under another CA's base URL is another account too.
    env.srv.clear_persist_txt("example.com");
    env.srv.add_persist_txt(
        "example.com",
        ISSUER,
        "https://evil.example/acme/acct/alice",
        None,
        None,
    );
    let o = env.va.validate(request_for("example.com", false)).await;
    assert_problem(
        &o,
        ProblemType::Unauthorized,
        "accounturi naming another account",
    );
}

#[tokio::test]
async fn wrong_issuer_is_ignored_and_so_unauthorized() {
    let env = env().await;
    env.srv
        .add_persist_txt("example.com", "other-ca.example", ME, None, None);
    let o = env.va.validate(request_for("example.com", false)).await;
    assert_problem(&o, ProblemType::Unauthorized, "names this CA");
}

#[tokio::test]
async fn expired_persist_until_is_unauthorized_and_a_future_one_is_reported() {
    let env = env().await;
    env.srv
        .add_persist_txt("example.com", ISSUER, ME, None, Some(now() - 60));
    let o = env.va.validate(request_for("example.com", false)).await;
    assert_problem(&o, ProblemType::Unauthorized, "persistUntil in the past");

    let until = now() + 86_400;
    env.srv.clear_persist_txt("example.com");
    env.srv
        .add_persist_txt("example.com", ISSUER, ME, None, Some(until));
    let o = env.va.validate(request_for("example.com", false)).await;
    assert_valid(&o);
    assert_eq!(o.records[0].persist_until, Some(until));
}

#[tokio::test]
async fn a_wildcard_needs_policy_wildcard() {
    let env = env().await;
    env.srv
        .add_persist_txt("example.com", ISSUER, ME, None, None);
    let o = env.va.validate(request_for("example.com", true)).await;
    assert_problem(&o, ProblemType::Unauthorized, "lacks policy=wildcard");

    env.srv.clear_persist_txt("example.com");
    env.srv
        .add_persist_txt("example.com", ISSUER, ME, Some("Wildcard"), None);
    let o = env.va.validate(request_for("example.com", true)).await;
    assert_valid(&o);
}

#[tokio::test]
async fn records_for_other_accounts_and_cas_sit_beside_ours() {
    let env = env().await;
    env.srv.add_persist_txt(
        "shared.example.com",
        "other-ca.example",
        "https://other-ca.example/acct/9",
        Some("wildcard"),
        None,
    );
    env.srv.add_persist_txt(
        "shared.example.com",
        ISSUER,
        "https://ca.example/acme/acct/bob",
        None,
        None,
    );
    // Only others' records: refused.
    let o = env
        .va
        .validate(request_for("shared.example.com", false))
        .await;
    assert_problem(&o, ProblemType::Unauthorized, "another account");
    // Ours added under the CA's second issuer domain name: accepted.
    env.srv.add_persist_txt(
        "shared.example.com",
        "Other-Name.CA.example.",
        ME,
        None,
        None,
    );
    let o = env
        .va
        .validate(request_for("shared.example.com", false))
        .await;
    assert_valid(&o);
}

#[tokio::test]
async fn malformed_persist_until_and_missing_records_are_unauthorized() {
    let env = env().await;
    let o = env.va.validate(request_for("example.com", false)).await;
    assert_problem(
        &o,
        ProblemType::Unauthorized,
        "No TXT record found at _validation-persist.example.com",
    );
    env.srv.set_txt(
        "_validation-persist.example.com",
        &format!("{ISSUER}; accounturi={ME}; persistUntil=tomorrow"),
    );
    let o = env.va.validate(request_for("example.com", false)).await;
    assert_problem(&o, ProblemType::Unauthorized, "not a base-10 integer");
}

#[tokio::test]
async fn caa_is_checked_with_the_method_and_account() {
    let env = env().await;
    env.srv
        .add_persist_txt("example.com", ISSUER, ME, None, None);
    // CAA allowing this CA for dns-persist-01 only: fine.
    env.srv.add_caa(
        "example.com",
        &[CaaPolicy::new(
            "issue",
            format!("{ISSUER}; validationmethods=dns-persist-01; accounturi={ME}"),
        )],
    );
    let o = env.va.validate(request_for("example.com", false)).await;
    assert_valid(&o);
    // CAA limiting this CA to http-01: the persistent record is not enough.
    env.srv.clear_caa("example.com");
    env.srv.add_caa(
        "example.com",
        &[CaaPolicy::new(
            "issue",
            format!("{ISSUER}; validationmethods=http-01"),
        )],
    );
    let o = env.va.validate(request_for("example.com", false)).await;
    assert_problem(&o, ProblemType::Caa, "prevents issuance");
}
