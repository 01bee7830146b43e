//! The WFE's account cache (`wfe.account_cache_for`): two front ends over one RA, as a split
//! deployment runs them. A change made through one WFE applies there at once; the other
//! serves its copy until the copy's lifetime ends, and that copy can't undo the change.
#![allow(clippy::unwrap_used)]

mod harness;

use axum::http::StatusCode;
use cairn_wfe::WfeConfig;
use harness::{Acme, BASE, Client};
use serde_json::json;
use std::time::Duration;

const UNAUTHORIZED: &str = "urn:ietf:params:acme:error:unauthorized";

fn two_wfes(account_cache_for: time::Duration) -> Vec<Acme> {
    Acme::fronts_with(
        &[None, None],
        WfeConfig {
            account_cache_for,
            ..WfeConfig::default()
        },
    )
}

/// An account made at the first WFE and loaded (kept) by the second, then deactivated through
/// the first.
async fn deactivated_after_both_loaded_it(wfes: &[Acme]) -> Client {
    let mut client = Client::new();
    wfes[0].new_account(&mut client).await;
    assert_eq!(
        fetch_account(&wfes[1], &client).await.status,
        StatusCode::OK
    );
    let kid = client.kid.clone().unwrap();
    let deactivated = wfes[0]
        .post(&client, &kid, Some(&json!({"status": "deactivated"})))
        .await;
    assert_eq!(
        deactivated.status,
        StatusCode::OK,
        "{:?}",
        deactivated.json()
    );
    assert_eq!(deactivated.json()["status"], "deactivated");
    client
}

/// POST-as-GET of the client's account at `wfe`.
async fn fetch_account(wfe: &Acme, client: &Client) -> harness::Reply {
    let kid = client.kid.clone().unwrap();
    wfe.post(client, &kid, None).await
}

#[tokio::test]
async fn a_deactivation_applies_at_once_where_it_was_made_and_within_the_lifetime_elsewhere() {
    let lifetime = time::Duration::milliseconds(700);
    let wfes = two_wfes(lifetime);
    // The deactivating request itself loaded the account at the first WFE.
    let client = deactivated_after_both_loaded_it(&wfes).await;

    // This WFE dropped its copy: the account is refused at once.
    let here = fetch_account(&wfes[0], &client).await;
    assert_eq!(here.problem_type(), UNAUTHORIZED, "{:?}", here.json());
    // The other still serves its copy, read before the change...
    let there = fetch_account(&wfes[1], &client).await;
    assert_eq!(there.status, StatusCode::OK);
    assert_eq!(there.json()["status"], "valid", "the copy is cached");
    // ...until its lifetime ends.
    tokio::time::sleep(Duration::try_from(lifetime).unwrap() + Duration::from_millis(100)).await;
    let later = fetch_account(&wfes[1], &client).await;
    assert_eq!(later.problem_type(), UNAUTHORIZED, "{:?}", later.json());
}

#[tokio::test]
async fn a_stale_copy_cannot_undo_a_deactivation_and_is_dropped_by_the_refusal() {
    let wfes = two_wfes(time::Duration::minutes(5));
    let client = deactivated_after_both_loaded_it(&wfes).await;
    let kid = client.kid.clone().unwrap();

    // The other WFE authenticates with its stale copy, but storage refuses the update.
    let update = wfes[1]
        .post(
            &client,
            &kid,
            Some(&json!({"contact": ["mailto:new@cairn-ca.net"]})),
        )
        .await;
    assert_eq!(update.problem_type(), UNAUTHORIZED, "{:?}", update.json());
    assert!(
        update.json()["detail"]
            .as_str()
            .unwrap()
            .contains("deactivated"),
        "{:?}",
        update.json()
    );
    // The refusal dropped the copy: that WFE now sees the deactivation.
    let after = fetch_account(&wfes[1], &client).await;
    assert_eq!(after.problem_type(), UNAUTHORIZED, "{:?}", after.json());
}

#[tokio::test]
async fn after_a_key_change_the_old_key_is_refused_at_once_by_the_wfe_that_made_it() {
    let wfes = two_wfes(time::Duration::minutes(5));
    let mut client = Client::new();
    wfes[0].new_account(&mut client).await;
    let kid = client.kid.clone().unwrap();
    assert_eq!(
        fetch_account(&wfes[0], &client).await.status,
        StatusCode::OK
    );

    let mut new_key = Client::new();
    let inner = new_key.key_change_inner(&kid, &client.jwk());
    let changed = wfes[0]
        .post(&client, &format!("{BASE}/acme/key-change"), Some(&inner))
        .await;
    assert_eq!(changed.status, StatusCode::OK, "{:?}", changed.json());

    // The cached copy held the old key: it is gone, so the old key no longer verifies here.
    let old = fetch_account(&wfes[0], &client).await;
    assert_eq!(old.status, StatusCode::BAD_REQUEST, "{:?}", old.json());
    assert!(
        old.json()["detail"]
            .as_str()
            .unwrap()
            .contains("verification"),
        "{:?}",
        old.json()
    );
    new_key.kid = Some(kid);
    assert_eq!(
        fetch_account(&wfes[0], &new_key).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn with_the_cache_off_every_wfe_sees_a_change_at_once() {
    let wfes = two_wfes(time::Duration::ZERO);
    let client = deactivated_after_both_loaded_it(&wfes).await;
    let there = fetch_account(&wfes[1], &client).await;
    assert_eq!(there.problem_type(), UNAUTHORIZED, "{:?}", there.json());
}
