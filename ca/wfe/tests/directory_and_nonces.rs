//! The unauthenticated resources: the directory (RFC 8555 §7.1.1) with the RA's policy in its
//! `meta`, and newNonce (§7.2) with nonces that are fresh on every response and good once.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod harness;

use axum::http::{Method, StatusCode};
use harness::{Acme, BASE, Client};
use serde_json::json;

#[tokio::test]
async fn the_directory_names_every_resource_and_the_ras_policy() {
    let acme = Acme::new();
    let reply = acme.request(Method::GET, "/directory").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.header("content-type"), Some("application/json"));
    assert_eq!(reply.header("cache-control"), Some("no-store"));
    assert!(
        reply.header("replay-nonce").is_none(),
        "a GET other than newNonce mints no nonce"
    );
    let dir = reply.json();
    for (field, path) in [
        ("newNonce", "/acme/new-nonce"),
        ("newAccount", "/acme/new-acct"),
        ("newOrder", "/acme/new-order"),
        ("revokeCert", "/acme/revoke-cert"),
        ("keyChange", "/acme/key-change"),
        ("renewalInfo", "/acme/renewal-info"),
    ] {
        assert_eq!(dir[field], format!("{BASE}{path}"), "{field}");
    }
    // The RA's default policy, as `RegistrationAuthority::directory_info` gives it.
    let meta = &dir["meta"];
    assert_eq!(meta["caaIdentities"], json!(["cairn.invalid"]));
    assert_eq!(meta["externalAccountRequired"], json!(false));
    let profiles = meta["profiles"].as_object().unwrap();
    let mut names: Vec<&str> = profiles.keys().map(String::as_str).collect();
    names.sort_unstable();
    assert_eq!(names, ["classic", "shortlived", "tlsserver"]);
    assert!(
        profiles["shortlived"]
            .as_str()
            .unwrap()
            .contains("160-hour")
    );
}

#[tokio::test]
async fn new_nonce_answers_head_with_200_and_get_with_204_each_with_a_fresh_nonce() {
    let acme = Acme::new();
    let head = acme.request(Method::HEAD, "/acme/new-nonce").await;
    assert_eq!(head.status, StatusCode::OK);
    let get = acme.request(Method::GET, "/acme/new-nonce").await;
    assert_eq!(get.status, StatusCode::NO_CONTENT);
    let (a, b) = (
        head.header("replay-nonce").unwrap(),
        get.header("replay-nonce").unwrap(),
    );
    assert_ne!(a, b);
    assert!(
        a.len() >= 16
            && a.bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
    );
    assert_eq!(
        get.header("link"),
        Some(format!("<{BASE}/directory>;rel=\"index\"").as_str())
    );
}

#[tokio::test]
async fn a_nonce_is_good_once_and_a_made_up_one_never() {
    let acme = Acme::new();
    let client = Client::new();
    let url = format!("{BASE}/acme/new-acct");
    let payload = json!({"termsOfServiceAgreed": true});
    let nonce = acme.nonce().await;
    let first = acme
        .post_raw("/acme/new-acct", client.sign(&url, &nonce, Some(&payload)))
        .await;
    assert_eq!(first.status, StatusCode::CREATED);
    // Every response carries the next nonce.
    assert!(first.header("replay-nonce").is_some());

    let replayed = acme
        .post_raw("/acme/new-acct", client.sign(&url, &nonce, Some(&payload)))
        .await;
    assert_eq!(replayed.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        replayed.problem_type(),
        "urn:ietf:params:acme:error:badNonce"
    );
    let made_up = acme
        .post_raw(
            "/acme/new-acct",
            client.sign(&url, "bm90LWEtbm9uY2U", Some(&payload)),
        )
        .await;
    assert_eq!(
        made_up.problem_type(),
        "urn:ietf:params:acme:error:badNonce"
    );
}

#[tokio::test]
async fn unknown_paths_and_methods_get_problem_documents() {
    let acme = Acme::new();
    let missing = acme.request(Method::GET, "/acme/nothing-here").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(
        missing.problem_type(),
        "urn:ietf:params:acme:error:malformed"
    );
    let wrong = acme.request(Method::GET, "/acme/new-order").await;
    assert_eq!(wrong.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(wrong.problem_type(), "urn:ietf:params:acme:error:malformed");
}

/// Issue 14, finding 12: unauthenticated requests (newNonce, the directory, unknown paths) in
/// any number leave an outstanding nonce usable: minting stores nothing.
#[tokio::test]
async fn a_flood_of_unauthenticated_requests_leaves_an_issued_nonce_usable() {
    let acme = Acme::new();
    let client = Client::new();
    let nonce = acme.nonce().await;
    for i in 0..600 {
        let (method, path) = match i % 3 {
            0 => (Method::HEAD, "/acme/new-nonce"),
            1 => (Method::GET, "/directory"),
            _ => (Method::GET, "/nope"),
        };
        acme.request(method, path).await;
    }
    let url = format!("{BASE}/acme/new-acct");
    let reply = acme
        .post_raw(
            "/acme/new-acct",
            client.sign(&url, &nonce, Some(&json!({"termsOfServiceAgreed": true}))),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED);
}
