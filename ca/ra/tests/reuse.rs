//! Order and authorization reuse (Boulder's rules): a pending or ready order for the same names,
//! account and profile comes back instead of a new one; an account's valid (or pending)
//! authorizations are reused within the profile's reuse window; nothing crosses accounts.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod harness;

use cairn_api::StorageAuthority;
use cairn_core::{AuthzStatus, OrderStatus};
use harness::{Ca, csr, key};
use time::Duration;

#[tokio::test]
async fn a_second_order_for_the_same_names_is_the_pending_order() {
    let ca = Ca::new();
    let account = ca.account().await;
    let first = ca
        .order(&account, &["a.example.com", "b.example.com"])
        .await;
    // The same names listed in another order: the same order.
    let second = ca
        .order(&account, &["b.example.com", "a.example.com"])
        .await;
    assert_eq!(second.order.id, first.order.id);
    assert_eq!(second.status, OrderStatus::Pending);
    // Still reused once ready.
    ca.validate_order(&account, &first).await;
    let third = ca
        .order(&account, &["a.example.com", "b.example.com"])
        .await;
    assert_eq!(third.order.id, first.order.id);
    assert_eq!(third.status, OrderStatus::Ready);
    // A subset is another order.
    let subset = ca.order(&account, &["a.example.com"]).await;
    assert_ne!(subset.order.id, first.order.id);
}

#[tokio::test]
async fn an_order_is_not_reused_across_accounts_profiles_or_once_finalized() {
    let ca = Ca::new();
    let account = ca.account().await;
    let other = ca.account().await;
    let names = ["c.example.com"];
    let first = ca.order(&account, &names).await;
    let theirs = ca.order(&other, &names).await;
    assert_ne!(theirs.order.id, first.order.id);
    let shortlived = ca
        .order_with_profile(&account, &names, Some("shortlived"))
        .await;
    assert_ne!(shortlived.order.id, first.order.id);
    assert_eq!(shortlived.order.profile.as_deref(), Some("shortlived"));

    ca.validate_order(&account, &first).await;
    let done = ca
        .ra
        .finalize(&account, &first.order.id, &csr(&key(), &names))
        .await
        .unwrap();
    assert_eq!(done.status, OrderStatus::Valid);
    let after = ca.order(&account, &names).await;
    assert_ne!(after.order.id, first.order.id);
    // A new order, but the authorization validated for the first one is reused: ready at once.
    assert_eq!(after.status, OrderStatus::Ready);
    assert_eq!(after.order.authz_ids, first.order.authz_ids);
}

#[tokio::test]
async fn an_invalid_order_is_not_reused_and_its_failed_authorization_neither() {
    let ca = Ca::new();
    let account = ca.account().await;
    let name = cairn_core::Identifier::dns("flaky.example.com");
    ca.va.fail(name.clone());
    let first = ca.order(&account, &["flaky.example.com"]).await;
    ca.validate_order(&account, &first).await;
    ca.va.succeed(&name);
    let second = ca.order(&account, &["flaky.example.com"]).await;
    assert_ne!(second.order.id, first.order.id);
    assert_ne!(second.order.authz_ids, first.order.authz_ids);
    assert_eq!(second.status, OrderStatus::Pending);
    let ready = ca.validate_order(&account, &second).await;
    assert_eq!(ready.status, OrderStatus::Ready);
}

#[tokio::test]
async fn valid_authorizations_of_the_account_are_reused_and_new_names_get_new_ones() {
    let ca = Ca::new();
    let account = ca.account().await;
    let first = ca.order(&account, &["d.example.com"]).await;
    ca.validate_order(&account, &first).await;
    let validated = first.order.authz_ids[0].clone();

    let wider = ca
        .order(&account, &["d.example.com", "e.example.com"])
        .await;
    assert_eq!(wider.status, OrderStatus::Pending);
    let authzs = ca
        .sa
        .get_authorizations(&wider.order.authz_ids)
        .await
        .unwrap();
    let reused: Vec<_> = authzs.iter().filter(|a| a.id == validated).collect();
    assert_eq!(reused.len(), 1);
    assert_eq!(reused[0].status, AuthzStatus::Valid);
    let fresh: Vec<_> = authzs.iter().filter(|a| a.id != validated).collect();
    assert_eq!(fresh.len(), 1);
    assert_eq!(fresh[0].identifier.value, "e.example.com");
    assert_eq!(fresh[0].status, AuthzStatus::Pending);

    // Another account validates its own.
    let other = ca.account().await;
    let theirs = ca.order(&other, &["d.example.com"]).await;
    assert_eq!(theirs.status, OrderStatus::Pending);
    assert_ne!(theirs.order.authz_ids[0], validated);
}

#[tokio::test]
async fn a_pending_authorization_is_shared_by_the_accounts_orders() {
    let ca = Ca::new();
    let account = ca.account().await;
    let first = ca.order(&account, &["f.example.com"]).await;
    let second = ca
        .order(&account, &["f.example.com", "g.example.com"])
        .await;
    assert!(second.order.authz_ids.contains(&first.order.authz_ids[0]));
    // Validating it once moves both orders on.
    ca.validate(&account, &first.order.authz_ids[0]).await;
    let first = ca.ra.get_order(&account, &first.order.id).await.unwrap();
    assert_eq!(first.status, OrderStatus::Ready);
}

#[tokio::test]
async fn an_authorization_validated_longer_ago_than_the_profile_allows_is_not_reused() {
    let ca = Ca::new();
    let account = ca.account().await;
    // shortlived reuses authorizations for 7 hours after their validation.
    let first = ca
        .order_with_profile(&account, &["h.example.com"], Some("shortlived"))
        .await;
    ca.validate_order(&account, &first).await;

    ca.clock.advance(Duration::hours(6));
    let soon = ca
        .order_with_profile(
            &account,
            &["h.example.com", "i.example.com"],
            Some("shortlived"),
        )
        .await;
    assert!(soon.order.authz_ids.contains(&first.order.authz_ids[0]));

    ca.clock.advance(Duration::hours(2));
    let late = ca
        .order_with_profile(
            &account,
            &["h.example.com", "j.example.com"],
            Some("shortlived"),
        )
        .await;
    assert!(!late.order.authz_ids.contains(&first.order.authz_ids[0]));
    // The default profile's window (30 days) still covers it.
    let classic = ca
        .order(&account, &["h.example.com", "k.example.com"])
        .await;
    assert!(classic.order.authz_ids.contains(&first.order.authz_ids[0]));
}

#[tokio::test]
async fn an_authorization_too_old_for_the_profile_at_finalize_is_refused() {
    let ca = Ca::new();
    let account = ca.account().await;
    let first = ca
        .order_with_profile(&account, &["h.example.com"], Some("shortlived"))
        .await;
    ca.validate_order(&account, &first).await;

    // Six hours on, a new shortlived order reuses the authorization (inside the 7-hour window)...
    ca.clock.advance(Duration::hours(6));
    let names = ["h.example.com", "i.example.com"];
    let order = ca
        .order_with_profile(&account, &names, Some("shortlived"))
        .await;
    assert!(order.order.authz_ids.contains(&first.order.authz_ids[0]));
    let order = ca.validate_order(&account, &order).await;
    assert_eq!(order.status, OrderStatus::Ready);

    // ...but the client finalizes two hours later, when it is nine hours old: refused.
    ca.clock.advance(Duration::hours(2));
    let refused = ca
        .ra
        .finalize(&account, &order.order.id, &csr(&key(), &names))
        .await
        .unwrap_err();
    assert_eq!(
        refused.typ,
        cairn_core::ProblemType::Unauthorized,
        "{refused:?}"
    );
    assert!(refused.detail.contains("h.example.com"), "{refused:?}");
    assert!(!refused.detail.contains("i.example.com"), "{refused:?}");
    assert!(refused.detail.contains("shortlived"), "{refused:?}");
    assert_eq!(ca.issuer.signed(), 0);

    // The default profile's 30-day window still allows the same authorization.
    let classic = ca.order(&account, &names).await;
    assert_eq!(classic.status, OrderStatus::Ready);
    let done = ca
        .ra
        .finalize(&account, &classic.order.id, &csr(&key(), &names))
        .await
        .unwrap();
    assert_eq!(done.status, OrderStatus::Valid);
}
