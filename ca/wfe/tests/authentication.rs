//! Request authentication (RFC 8555 §6.2–6.5) ends in a problem document, never a 500: a body
//! that is not a JWS, a signature that does not verify, a wrong content type, a `url` that is
//! not the request's, an unknown account, a kid where a jwk belongs.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod harness;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use harness::{Acme, BASE, Client};
use serde_json::{Value, json};

const MALFORMED: &str = "urn:ietf:params:acme:error:malformed";

#[tokio::test]
async fn a_body_that_is_not_a_jws_is_a_malformed_problem() {
    let acme = Acme::new();
    for body in [
        &b""[..],
        &b"not json"[..],
        &b"{}"[..],
        &b"{\"protected\":\"!!\",\"payload\":\"\",\"signature\":\"\"}"[..],
        &b"[1,2,3]"[..],
    ] {
        let reply = acme.post_raw("/acme/new-acct", body.to_vec()).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{body:?}");
        assert_eq!(reply.problem_type(), MALFORMED, "{body:?}");
        assert!(reply.header("replay-nonce").is_some());
    }
}

#[tokio::test]
async fn a_signature_that_does_not_verify_is_refused() {
    let acme = Acme::new();
    let client = Client::new();
    let url = format!("{BASE}/acme/new-acct");
    let jws = client.sign(
        &url,
        &acme.nonce().await,
        Some(&json!({"termsOfServiceAgreed": true})),
    );
    let mut jws: Value = serde_json::from_slice(&jws).unwrap();
    let mut sig = B64.decode(jws["signature"].as_str().unwrap()).unwrap();
    sig[10] ^= 0x40;
    jws["signature"] = json!(B64.encode(&sig));
    let reply = acme
        .post_raw("/acme/new-acct", jws.to_string().into_bytes())
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.problem_type(), MALFORMED);
    assert!(
        reply.json()["detail"]
            .as_str()
            .unwrap()
            .contains("verification"),
        "{:?}",
        reply.json()
    );
    // Nothing was created: the same key's first good request makes the account.
    let mut client = client;
    acme.new_account(&mut client).await;
}

#[tokio::test]
async fn the_content_type_must_be_jose_json() {
    let acme = Acme::new();
    let client = Client::new();
    let body = client.sign(
        &format!("{BASE}/acme/new-acct"),
        &acme.nonce().await,
        Some(&json!({})),
    );
    let req = Request::builder()
        .method(Method::POST)
        .uri("/acme/new-acct")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body))
        .unwrap();
    let reply = acme.send(req).await;
    assert_eq!(reply.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(reply.problem_type(), MALFORMED);
}

#[tokio::test]
async fn a_url_header_naming_another_resource_is_unauthorized() {
    let acme = Acme::new();
    let client = Client::new();
    // Signed for newOrder, sent to newAccount.
    let body = client.sign(
        &format!("{BASE}/acme/new-order"),
        &acme.nonce().await,
        Some(&json!({"termsOfServiceAgreed": true})),
    );
    let reply = acme.post_raw("/acme/new-acct", body).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    assert_eq!(
        reply.problem_type(),
        "urn:ietf:params:acme:error:unauthorized"
    );
}

#[tokio::test]
async fn a_kid_that_names_no_account_is_account_does_not_exist() {
    let acme = Acme::new();
    let mut client = Client::new();
    client.kid = Some(format!("{BASE}/acme/acct/no-such-account"));
    let reply = acme
        .post(
            &client,
            &format!("{BASE}/acme/new-order"),
            Some(&json!({"identifiers": [{"type": "dns", "value": "example.com"}]})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        reply.problem_type(),
        "urn:ietf:params:acme:error:accountDoesNotExist"
    );
    // A kid outside this server's account URLs, too.
    client.kid = Some("https://elsewhere.test/acme/acct/1".into());
    let reply = acme
        .post(&client, &format!("{BASE}/acme/new-order"), Some(&json!({})))
        .await;
    assert_eq!(
        reply.problem_type(),
        "urn:ietf:params:acme:error:accountDoesNotExist"
    );
}

#[tokio::test]
async fn new_account_wants_a_jwk_and_new_order_a_kid() {
    let acme = Acme::new();
    let mut client = Client::new();
    acme.new_account(&mut client).await;
    let reply = acme
        .post(
            &client,
            &format!("{BASE}/acme/new-acct"),
            Some(&json!({"termsOfServiceAgreed": true})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.problem_type(), MALFORMED);

    let stranger = Client::new();
    let reply = acme
        .post(
            &stranger,
            &format!("{BASE}/acme/new-order"),
            Some(&json!({"identifiers": [{"type": "dns", "value": "example.com"}]})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.problem_type(), MALFORMED);
}

#[tokio::test]
async fn an_ra_refusal_reaches_the_client_as_its_problem() {
    let acme = Acme::new();
    let client = Client::new();
    // The RA requires agreement to the terms of service.
    let reply = acme
        .post(
            &client,
            &format!("{BASE}/acme/new-acct"),
            Some(&json!({"termsOfServiceAgreed": false})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.problem_type(), MALFORMED);
    assert!(
        reply.json()["detail"]
            .as_str()
            .unwrap()
            .contains("terms of service")
    );
}
