//! Pre-authorization (RFC 8555 §7.4.1): newAuthz is in the directory, creates an
//! authorization the account validates before ordering, and the order that follows uses it
//! (ready at once, no new challenge). Wildcards and unsupported identifier types are refused.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a failed unwrap is a test failure
mod common;

use common::TestCa;
use common::raw::{RawClient, b64, expect_problem, jwk_of};
use serde_json::{Value, json};
use std::time::Duration;

fn thumbprint(raw: &RawClient) -> String {
    let jwk = jwk_of(&raw.key);
    // RFC 7638: the required members in lexicographic order, no whitespace.
    let canonical = format!(
        r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
        jwk["x"].as_str().unwrap(),
        jwk["y"].as_str().unwrap()
    );
    b64(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, canonical.as_bytes()).as_ref())
}

async fn get(raw: &RawClient, url: &str) -> Value {
    raw.post(url, None).await.json().await.unwrap()
}

#[tokio::test]
async fn a_pre_authorization_is_validated_then_used_by_the_order() {
    let ca = TestCa::start().await;
    let mut raw = RawClient::new(ca.directory(), &ca.server.tls_root_path).await;
    raw.register().await;
    let new_authz = raw.url("newAuthz");
    assert!(new_authz.ends_with("/acme/new-authz"));

    let ident = json!({"type": "dns", "value": "pre.example.com"});
    let resp = raw
        .post(&new_authz, Some(&json!({ "identifier": ident })))
        .await;
    assert_eq!(resp.status(), 201);
    let authz_url = resp.headers()["location"].to_str().unwrap().to_owned();
    let authz: Value = resp.json().await.unwrap();
    assert_eq!(authz["status"], "pending");
    assert_eq!(authz["identifier"], ident);

    // Asking again gives the same authorization, not a second one.
    let again = raw
        .post(&new_authz, Some(&json!({ "identifier": ident })))
        .await;
    assert_eq!(again.status(), 200);
    assert_eq!(again.headers()["location"].to_str().unwrap(), authz_url);

    // Validate it with http-01.
    let chall = authz["challenges"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "http-01")
        .unwrap()
        .clone();
    let token = chall["token"].as_str().unwrap();
    ca.chall
        .add_http01(token, &format!("{token}.{}", thumbprint(&raw)));
    let resp = raw
        .post(chall["url"].as_str().unwrap(), Some(&json!({})))
        .await;
    assert_eq!(resp.status(), 200);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let a = get(&raw, &authz_url).await;
        if a["status"] == "valid" {
            break;
        }
        assert_eq!(a["status"], "pending", "{a}");
        assert!(tokio::time::Instant::now() < deadline, "not validated");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The order for the name reuses it: ready without any challenge.
    let resp = raw
        .post(
            &raw.url("newOrder"),
            Some(&json!({ "identifiers": [ident] })),
        )
        .await;
    assert_eq!(resp.status(), 201);
    let order: Value = resp.json().await.unwrap();
    assert_eq!(order["status"], "ready", "{order}");
    assert_eq!(order["authorizations"], json!([authz_url]));
}

#[tokio::test]
async fn wildcards_unsupported_types_and_policy_are_refused() {
    let ca = TestCa::start().await;
    let mut raw = RawClient::new(ca.directory(), &ca.server.tls_root_path).await;
    raw.register().await;
    let url = raw.url("newAuthz");
    let resp = raw
        .post(
            &url,
            Some(&json!({"identifier": {"type": "dns", "value": "*.example.com"}})),
        )
        .await;
    expect_problem(resp, 400, "malformed").await;
    let resp = raw
        .post(
            &url,
            Some(&json!({"identifier": {"type": "email", "value": "a@example.com"}})),
        )
        .await;
    expect_problem(resp, 400, "unsupportedIdentifier").await;
    let resp = raw
        .post(
            &url,
            Some(&json!({"identifier": {"type": "dns", "value": "bad..name"}})),
        )
        .await;
    expect_problem(resp, 400, "rejectedIdentifier").await;
    // A pre-authorization needs an account.
    let mut anon = RawClient::new(ca.directory(), &ca.server.tls_root_path).await;
    anon.kid = None;
    let resp = anon
        .post(
            &url,
            Some(&json!({"identifier": {"type": "dns", "value": "x.example.com"}})),
        )
        .await;
    assert!(resp.status().is_client_error());
}
