//! A whole ACME session through the router, as a client sees it: account, order, authorization,
//! challenge, finalize, certificate download with its alternate chain, renewal information and
//! revocation; and an account kept out of another's resources.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod harness;

use axum::http::{Method, StatusCode};
use harness::{Acme, BASE, Client, b64, csr};
use serde_json::{Value, json};
use std::time::Duration;

/// Polls `url` (POST-as-GET) until its `status` is no longer `from`.
async fn poll(acme: &Acme, client: &Client, url: &str, from: &str) -> Value {
    for _ in 0..400 {
        let reply = acme.post(client, url, None).await;
        assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.json());
        let body = reply.json();
        if body["status"] != from {
            return body;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("{url} stayed {from}");
}

#[tokio::test]
async fn an_order_goes_from_new_order_to_a_downloaded_and_revoked_certificate() {
    let acme = Acme::new();
    let mut client = Client::new();
    let account = acme.new_account(&mut client).await;
    assert_eq!(account.json()["status"], "valid");
    let account_url = client.kid.clone().unwrap();
    assert!(account_url.starts_with(&format!("{BASE}/acme/acct/")));

    // newOrder.
    let names = ["flow.example.com", "www.flow.example.com"];
    let order = acme
        .post(
            &client,
            &format!("{BASE}/acme/new-order"),
            Some(&json!({"identifiers": names.iter().map(|n| json!({"type": "dns", "value": n})).collect::<Vec<_>>()})),
        )
        .await;
    assert_eq!(order.status, StatusCode::CREATED);
    let order_url = order.location();
    let body = order.json();
    assert_eq!(body["status"], "pending");
    assert_eq!(body["profile"], "classic");
    let authzs: Vec<String> = body["authorizations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(authzs.len(), 2);
    let finalize_url = body["finalize"].as_str().unwrap().to_owned();

    // Each authorization: read it, answer its http-01 challenge, wait for the validation.
    for authz_url in &authzs {
        let authz = acme.post(&client, authz_url, None).await.json();
        assert_eq!(authz["status"], "pending");
        let chall = authz["challenges"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == "http-01")
            .unwrap();
        assert_eq!(chall["status"], "pending");
        let answered = acme
            .post(&client, chall["url"].as_str().unwrap(), Some(&json!({})))
            .await;
        assert_eq!(answered.status, StatusCode::OK);
        assert!(
            answered
                .header("link")
                .is_some_and(|l| l.contains(&format!("<{authz_url}>;rel=\"up\"")))
        );
        let settled = poll(&acme, &client, authz_url, "pending").await;
        assert_eq!(settled["status"], "valid");
        // A valid authorization lists only the challenge that validated it.
        assert_eq!(settled["challenges"].as_array().unwrap().len(), 1);
    }
    assert_eq!(
        acme.post(&client, &order_url, None).await.json()["status"],
        "ready"
    );

    // Finalize.
    let done = acme
        .post(
            &client,
            &finalize_url,
            Some(&json!({"csr": b64(&csr(&names))})),
        )
        .await;
    assert_eq!(done.status, StatusCode::OK, "{:?}", done.json());
    assert_eq!(done.location(), order_url);
    let body = done.json();
    assert_eq!(body["status"], "valid");
    let cert_url = body["certificate"].as_str().unwrap().to_owned();

    // The certificate chain, and its alternate (with the root).
    let chain = acme.post(&client, &cert_url, None).await;
    assert_eq!(chain.status, StatusCode::OK);
    assert_eq!(
        chain.header("content-type"),
        Some("application/pem-certificate-chain")
    );
    let pem = String::from_utf8(chain.body.clone()).unwrap();
    let certs = cairn_x509::pem_certificates(&pem).unwrap();
    assert_eq!(certs.len(), 2);
    assert_eq!(certs[1], acme.issuer.intermediate_der());
    let leaf = cairn_x509::CertInfo::from_der(&certs[0]).unwrap();
    let mut sans: Vec<String> = leaf.identifiers.iter().map(|i| i.value.clone()).collect();
    sans.sort();
    assert_eq!(sans, names);
    let alternate = format!("{cert_url}/1");
    assert!(
        chain
            .header("link")
            .is_some_and(|l| l.contains(&format!("<{alternate}>;rel=\"alternate\"")))
    );
    let alt = acme.post(&client, &alternate, None).await;
    let alt_certs = cairn_x509::pem_certificates(std::str::from_utf8(&alt.body).unwrap()).unwrap();
    assert_eq!(alt_certs.len(), 3);
    assert_eq!(alt_certs[2], acme.issuer.root_der());

    // Renewal information: unauthenticated, cacheable, no nonce.
    let ari_id = cairn_ra::cert_id(&certs[0]).unwrap();
    let ari = acme
        .request(Method::GET, &format!("/acme/renewal-info/{ari_id}"))
        .await;
    assert_eq!(ari.status, StatusCode::OK);
    assert!(ari.header("replay-nonce").is_none());
    assert!(ari.header("retry-after").is_some());
    assert!(ari.json()["suggestedWindow"]["start"].is_string());

    // Revocation, once.
    let revoke = json!({"certificate": b64(&certs[0]), "reason": 4});
    let url = format!("{BASE}/acme/revoke-cert");
    let revoked = acme.post(&client, &url, Some(&revoke)).await;
    assert_eq!(revoked.status, StatusCode::OK);
    assert!(revoked.body.is_empty());
    let again = acme.post(&client, &url, Some(&revoke)).await;
    assert_eq!(
        again.problem_type(),
        "urn:ietf:params:acme:error:alreadyRevoked"
    );

    // The account lists its order.
    let list = acme
        .post(&client, &format!("{account_url}/orders"), None)
        .await;
    assert_eq!(list.json()["orders"], json!([order_url]));
}

#[tokio::test]
async fn a_failed_challenge_shows_its_error_and_the_order_turns_invalid() {
    let acme = Acme::new();
    acme.va
        .fail(cairn_core::Identifier::dns("broken.example.com"));
    let mut client = Client::new();
    acme.new_account(&mut client).await;
    let order = acme
        .post(
            &client,
            &format!("{BASE}/acme/new-order"),
            Some(&json!({"identifiers": [{"type": "dns", "value": "broken.example.com"}]})),
        )
        .await;
    let order_url = order.location();
    let authz_url = order.json()["authorizations"][0]
        .as_str()
        .unwrap()
        .to_owned();
    let authz = acme.post(&client, &authz_url, None).await.json();
    let chall_url = authz["challenges"][0]["url"].as_str().unwrap().to_owned();
    acme.post(&client, &chall_url, Some(&json!({}))).await;
    let settled = poll(&acme, &client, &authz_url, "pending").await;
    assert_eq!(settled["status"], "invalid");
    let chall = acme.post(&client, &chall_url, None).await.json();
    assert_eq!(chall["status"], "invalid");
    assert_eq!(
        chall["error"]["type"],
        "urn:ietf:params:acme:error:unauthorized"
    );
    assert_eq!(
        acme.post(&client, &order_url, None).await.json()["status"],
        "invalid"
    );
    // Finalizing it is refused.
    let refused = acme
        .post(
            &client,
            &format!("{order_url}/finalize"),
            Some(&json!({"csr": b64(&csr(&["broken.example.com"]))})),
        )
        .await;
    assert_eq!(
        refused.problem_type(),
        "urn:ietf:params:acme:error:orderNotReady"
    );
}

#[tokio::test]
async fn another_accounts_order_and_authorization_are_not_found() {
    let acme = Acme::new();
    let (mut owner, mut stranger) = (Client::new(), Client::new());
    acme.new_account(&mut owner).await;
    acme.new_account(&mut stranger).await;
    let order = acme
        .post(
            &owner,
            &format!("{BASE}/acme/new-order"),
            Some(&json!({"identifiers": [{"type": "dns", "value": "private.example.com"}]})),
        )
        .await;
    let order_url = order.location();
    let authz_url = order.json()["authorizations"][0]
        .as_str()
        .unwrap()
        .to_owned();
    for url in [&order_url, &authz_url] {
        let reply = acme.post(&stranger, url, None).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{url}");
    }
    // And the owner still sees them.
    assert_eq!(
        acme.post(&owner, &order_url, None).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn an_unsupported_identifier_type_is_refused_before_the_ra() {
    let acme = Acme::new();
    let mut client = Client::new();
    acme.new_account(&mut client).await;
    let reply = acme
        .post(
            &client,
            &format!("{BASE}/acme/new-order"),
            Some(&json!({"identifiers": [{"type": "email", "value": "a@example.com"}]})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        reply.problem_type(),
        "urn:ietf:params:acme:error:unsupportedIdentifier"
    );
}

/// Issue 14, finding 12: the orders list's `cursor` is the client's number; one whose offset
/// overflows (or exceeds what a database can offset) is `malformed`, never a panic or a 500.
#[tokio::test]
async fn an_order_list_cursor_that_would_overflow_is_malformed() {
    let acme = Acme::new();
    let mut client = Client::new();
    acme.new_account(&mut client).await;
    let orders = format!("{}/orders", client.kid.clone().unwrap());
    for cursor in [u64::MAX, u64::MAX / 2, 1 << 62] {
        let reply = acme
            .post(&client, &format!("{orders}?cursor={cursor}"), None)
            .await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "cursor={cursor}");
        assert_eq!(reply.problem_type(), "urn:ietf:params:acme:error:malformed");
    }
    let first = acme
        .post(&client, &format!("{orders}?cursor=0"), None)
        .await;
    assert_eq!(first.status, StatusCode::OK);
}
