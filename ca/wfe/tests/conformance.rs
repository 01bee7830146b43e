//! ACME details real clients trip on (issue 14, finding 13): a settled authorization's pending
//! challenge, a deactivated account's key at newAccount, statuses named as ACME names them,
//! contacts in reserved domains.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod harness;

use axum::http::StatusCode;
use harness::{Acme, BASE, Client};
use serde_json::{Value, json};
use std::time::Duration;

const MALFORMED: &str = "urn:ietf:params:acme:error:malformed";
const UNAUTHORIZED: &str = "urn:ietf:params:acme:error:unauthorized";
const INVALID_CONTACT: &str = "urn:ietf:params:acme:error:invalidContact";

/// Polls `url` (POST-as-GET) until its `status` is no longer `from`.
async fn poll(acme: &Acme, client: &Client, url: &str, from: &str) -> Value {
    for _ in 0..400 {
        let body = acme.post(client, url, None).await.json();
        if body["status"] != from {
            return body;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("{url} stayed {from}");
}

/// A new order for `name`; returns the authorization URL and its challenges.
async fn order_for(acme: &Acme, client: &Client, name: &str) -> (String, Vec<Value>) {
    let order = acme
        .post(
            client,
            &format!("{BASE}/acme/new-order"),
            Some(&json!({"identifiers": [{"type": "dns", "value": name}]})),
        )
        .await;
    assert_eq!(order.status, StatusCode::CREATED, "{:?}", order.json());
    let authz_url = order.json()["authorizations"][0]
        .as_str()
        .unwrap()
        .to_owned();
    let authz = acme.post(client, &authz_url, None).await.json();
    let challenges = authz["challenges"].as_array().unwrap().clone();
    (authz_url, challenges)
}

fn detail(reply: &harness::Reply) -> String {
    reply.json()["detail"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_pending_challenge_of_an_invalid_authorization_is_malformed() {
    let acme = Acme::new();
    acme.va
        .fail(cairn_core::Identifier::dns("broken.cairn-ca.net"));
    let mut client = Client::new();
    acme.new_account(&mut client).await;
    let (authz_url, challenges) = order_for(&acme, &client, "broken.cairn-ca.net").await;
    assert!(challenges.len() >= 2, "{challenges:?}");
    let first = challenges[0]["url"].as_str().unwrap();
    acme.post(&client, first, Some(&json!({}))).await;
    let settled = poll(&acme, &client, &authz_url, "pending").await;
    assert_eq!(settled["status"], "invalid");

    // A client falling back to another challenge type is told the authorization is settled,
    // instead of getting 200 and a challenge that stays pending forever.
    let other = challenges[1]["url"].as_str().unwrap();
    let reply = acme.post(&client, other, Some(&json!({}))).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{:?}", reply.json());
    assert_eq!(reply.problem_type(), MALFORMED);
    assert!(
        detail(&reply).contains("authorization is not pending"),
        "{}",
        detail(&reply)
    );
    assert!(detail(&reply).contains("invalid"), "{}", detail(&reply));
    // The failed challenge itself still answers with what it is.
    let again = acme.post(&client, first, Some(&json!({}))).await;
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(again.json()["status"], "invalid");
}

#[tokio::test]
async fn a_pending_challenge_of_a_deactivated_authorization_is_malformed() {
    let acme = Acme::new();
    let mut client = Client::new();
    acme.new_account(&mut client).await;
    let (authz_url, challenges) = order_for(&acme, &client, "gone.cairn-ca.net").await;
    let deactivated = acme
        .post(&client, &authz_url, Some(&json!({"status": "deactivated"})))
        .await;
    assert_eq!(deactivated.json()["status"], "deactivated");
    let reply = acme
        .post(
            &client,
            challenges[0]["url"].as_str().unwrap(),
            Some(&json!({})),
        )
        .await;
    assert_eq!(reply.problem_type(), MALFORMED);
    assert!(detail(&reply).contains("deactivated"), "{}", detail(&reply));
    assert!(acme.va.validations().is_empty());
}

#[tokio::test]
async fn problem_details_name_statuses_as_acme_does() {
    let acme = Acme::new();
    acme.va
        .fail(cairn_core::Identifier::dns("bad.cairn-ca.net"));
    let mut client = Client::new();
    acme.new_account(&mut client).await;
    let (authz_url, challenges) = order_for(&acme, &client, "bad.cairn-ca.net").await;
    acme.post(
        &client,
        challenges[0]["url"].as_str().unwrap(),
        Some(&json!({})),
    )
    .await;
    poll(&acme, &client, &authz_url, "pending").await;
    let reply = acme
        .post(&client, &authz_url, Some(&json!({"status": "deactivated"})))
        .await;
    assert_eq!(reply.problem_type(), MALFORMED);
    let d = detail(&reply);
    assert!(d.contains("invalid"), "{d}");
    assert!(!d.contains("Invalid"), "Rust variant name leaked: {d}");
}

#[tokio::test]
async fn new_account_with_a_deactivated_accounts_key_is_unauthorized() {
    let acme = Acme::new();
    let mut client = Client::new();
    acme.new_account(&mut client).await;
    let account_url = client.kid.clone().unwrap();
    let off = acme
        .post(
            &client,
            &account_url,
            Some(&json!({"status": "deactivated"})),
        )
        .await;
    assert_eq!(off.json()["status"], "deactivated");

    // The same key, as newAccount signs it (jwk, not kid).
    client.kid = None;
    for payload in [
        json!({"onlyReturnExisting": true}),
        json!({"termsOfServiceAgreed": true}),
    ] {
        let reply = acme
            .post(&client, &format!("{BASE}/acme/new-acct"), Some(&payload))
            .await;
        assert_eq!(reply.status, StatusCode::FORBIDDEN, "{payload}");
        assert_eq!(reply.problem_type(), UNAUTHORIZED, "{payload}");
        assert!(detail(&reply).contains("deactivated"), "{}", detail(&reply));
        assert!(reply.header("location").is_none());
    }
}

#[tokio::test]
async fn contacts_in_reserved_domains_are_invalid_contacts() {
    let acme = Acme::new();
    for contact in [
        "mailto:admin@example.org",
        "mailto:admin@example.com",
        "mailto:admin@mail.test",
        "mailto:admin@x.invalid",
        "mailto:admin@box.localhost",
    ] {
        let client = Client::new();
        let reply = acme
            .post(
                &client,
                &format!("{BASE}/acme/new-acct"),
                Some(&json!({"termsOfServiceAgreed": true, "contact": [contact]})),
            )
            .await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{contact}");
        assert_eq!(reply.problem_type(), INVALID_CONTACT, "{contact}");
    }
    // And on update.
    let mut client = Client::new();
    acme.new_account(&mut client).await;
    let url = client.kid.clone().unwrap();
    let reply = acme
        .post(
            &client,
            &url,
            Some(&json!({"contact": ["mailto:admin@example.net"]})),
        )
        .await;
    assert_eq!(reply.problem_type(), INVALID_CONTACT);
}

#[tokio::test]
async fn go_clients_capitalised_member_names_are_understood() {
    let acme = Acme::new();
    let mut client = Client::new();
    let created = acme
        .post(
            &client,
            &format!("{BASE}/acme/new-acct"),
            Some(&json!({"TermsOfServiceAgreed": true, "Contact": ["mailto:go@cairn-ca.net"]})),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.json());
    // The contact is kept, not dropped.
    assert_eq!(created.json()["contact"], json!(["mailto:go@cairn-ca.net"]));
    client.kid = Some(created.location());
    let order = acme
        .post(
            &client,
            &format!("{BASE}/acme/new-order"),
            Some(&json!({"Identifiers": [{"Type": "dns", "Value": "go.cairn-ca.net"}]})),
        )
        .await;
    assert_eq!(order.status, StatusCode::CREATED, "{:?}", order.json());
    assert_eq!(
        order.json()["identifiers"],
        json!([{"type": "dns", "value": "go.cairn-ca.net"}])
    );
    // Two spellings of one member are ambiguous: refused.
    let both = acme
        .post(
            &client,
            &format!("{BASE}/acme/new-order"),
            Some(&json!({
                "identifiers": [{"type": "dns", "value": "a.cairn-ca.net"}],
                "Identifiers": [{"type": "dns", "value": "b.cairn-ca.net"}],
            })),
        )
        .await;
    assert_eq!(both.problem_type(), MALFORMED);
}
