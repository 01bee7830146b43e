//! Nonces across WFE instances: two front ends over one RA share two nonce services (routed by
//! the nonces' prefixes), and a client that sends each request to the other front end, always
//! with the nonce the previous response carried, never gets `badNonce`; a replayed nonce is
//! refused by either front end, and so is a nonce of a service no front end knows.
#![allow(clippy::unwrap_used)]

mod harness;

use async_trait::async_trait;
use axum::http::{Method, StatusCode};
use cairn_acme::nonce::NoncePrefix;
use cairn_api::{NonceError, NonceService};
use cairn_wfe::{DEFAULT_CAPACITY, DEFAULT_LIFETIME, LocalNonces, RoutedNonces};
use harness::{Acme, BASE, Client};
use serde_json::json;
use std::collections::BTreeSet;
use std::sync::Arc;

const BAD_NONCE: &str = "urn:ietf:params:acme:error:badNonce";

fn service(prefix: &str) -> Arc<LocalNonces> {
    Arc::new(LocalNonces::new(
        Some(NoncePrefix::new(prefix).unwrap()),
        DEFAULT_LIFETIME,
        DEFAULT_CAPACITY,
    ))
}

/// One WFE's view of the nonce services: the same services, named by their prefixes.
fn routed(services: &[Arc<LocalNonces>]) -> Arc<dyn NonceService> {
    Arc::new(RoutedNonces::new(services.iter().map(|s| {
        (s.prefix().clone(), s.clone() as Arc<dyn NonceService>)
    })))
}

#[tokio::test]
async fn a_client_alternating_between_two_wfes_never_gets_bad_nonce_and_replays_are_refused() {
    let services = [service("nonceAAA"), service("nonceBBB")];
    let wfes = Acme::fronts(&[Some(routed(&services)), Some(routed(&services))]);
    let mut client = Client::new();
    let mut nonce = wfes[0].nonce().await;
    let mut used = Vec::new();
    let mut minted_by = BTreeSet::new();

    // Account, then orders, each request to the other WFE with the last response's nonce.
    for i in 0..12 {
        let wfe = &wfes[i % 2];
        let (path, payload) = if i == 0 {
            ("/acme/new-acct", json!({"termsOfServiceAgreed": true}))
        } else {
            (
                "/acme/new-order",
                json!({"identifiers": [{"type": "dns", "value": format!("n{i}.example.com")}]}),
            )
        };
        let url = format!("{BASE}{path}");
        let reply = wfe
            .post_raw(path, client.sign(&url, &nonce, Some(&payload)))
            .await;
        assert_eq!(
            reply.status,
            StatusCode::CREATED,
            "request {i} to WFE {}: {:?}",
            i % 2,
            reply.json()
        );
        if i == 0 {
            client.kid = Some(reply.location());
        }
        used.push(nonce);
        nonce = reply.header("replay-nonce").unwrap().to_owned();
        minted_by.insert(nonce[..8].to_owned());
    }
    assert_eq!(minted_by.len(), 2, "both services minted: {minted_by:?}");

    // Every used nonce is refused by both WFEs, whichever service minted it.
    let url = format!("{BASE}/acme/new-order");
    let payload = json!({"identifiers": [{"type": "dns", "value": "replay.example.com"}]});
    for old in &used[1..] {
        for wfe in &wfes {
            let reply = wfe
                .post_raw("/acme/new-order", client.sign(&url, old, Some(&payload)))
                .await;
            assert_eq!(reply.status, StatusCode::BAD_REQUEST);
            assert_eq!(reply.problem_type(), BAD_NONCE);
        }
    }
    // A nonce of a service that no WFE routes to (a third instance's) is refused.
    let stranger = service("nonceCCC").mint();
    let reply = wfes[1]
        .post_raw(
            "/acme/new-order",
            client.sign(&url, &stranger, Some(&payload)),
        )
        .await;
    assert_eq!(reply.problem_type(), BAD_NONCE);
    // The last fresh nonce still works after all those refusals.
    let reply = wfes[1]
        .post_raw("/acme/new-order", client.sign(&url, &nonce, Some(&payload)))
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.json());
}

/// A nonce service that does not answer, as a killed `cairn nonce serve` does.
#[derive(Debug)]
struct Unreachable;

#[async_trait]
impl NonceService for Unreachable {
    async fn issue(&self) -> Result<String, NonceError> {
        Err(NonceError::Unavailable("connection refused".into()))
    }
    async fn redeem(&self, _: &str) -> Result<bool, NonceError> {
        Err(NonceError::Unavailable("connection refused".into()))
    }
}

#[tokio::test]
async fn a_dead_nonce_service_costs_its_own_nonces_only_and_new_nonce_fails_cleanly_without_any() {
    let live = service("nonceAAA");
    let dead = NoncePrefix::new("nonceDDD").unwrap();
    let nonces: Arc<dyn NonceService> = Arc::new(RoutedNonces::new([
        (live.prefix().clone(), live.clone() as Arc<dyn NonceService>),
        (dead.clone(), Arc::new(Unreachable) as Arc<dyn NonceService>),
    ]));
    let wfe = Acme::fronts(&[Some(nonces)]).pop().unwrap();
    // Minting skips the dead service: every nonce handed out is the live one's.
    for _ in 0..6 {
        assert!(wfe.nonce().await.starts_with("nonceAAA"));
    }
    // A nonce the dead service minted before it died cannot be checked: badNonce, not a 500.
    let client = Client::new();
    let url = format!("{BASE}/acme/new-acct");
    let payload = json!({"termsOfServiceAgreed": true});
    let orphan = format!("nonceDDD{}", &live.mint()[8..]);
    let reply = wfe
        .post_raw("/acme/new-acct", client.sign(&url, &orphan, Some(&payload)))
        .await;
    assert_eq!(reply.problem_type(), BAD_NONCE);

    // With no nonce service at all, newNonce is a server error (problem document), not a 200
    // without a nonce.
    let none: Arc<dyn NonceService> = Arc::new(RoutedNonces::new([(
        dead,
        Arc::new(Unreachable) as Arc<dyn NonceService>,
    )]));
    let wfe = Acme::fronts(&[Some(none)]).pop().unwrap();
    for method in [Method::HEAD, Method::GET] {
        let reply = wfe.request(method, "/acme/new-nonce").await;
        assert_eq!(reply.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(reply.header("replay-nonce").is_none());
    }
}
