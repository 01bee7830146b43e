//! Accounts over the fakes: one account per key, External Account Binding keys bound once.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod harness;

use cairn_api::StorageAuthority;
use cairn_core::{AccountStatus, EabKey, ProblemType};
use cairn_ra::{NewAccountRequest, RaConfig};
use harness::{Ca, T0, key};
use rcgen::PublicKeyData;

fn request(thumbprint: String, eab_key_id: Option<&str>) -> NewAccountRequest {
    NewAccountRequest {
        jwk: serde_json::json!({"kty": "EC", "thumbprint": thumbprint}),
        thumbprint,
        contact: vec![],
        terms_of_service_agreed: true,
        eab_key_id: eab_key_id.map(str::to_owned),
        remote_ip: None,
    }
}

fn thumbprint_of_new_key() -> String {
    cairn_x509::spki_jwk_thumbprint(&key().subject_public_key_info()).unwrap()
}

#[tokio::test]
async fn the_same_key_gets_the_same_account() {
    let ca = Ca::new();
    let thumbprint = thumbprint_of_new_key();
    let (first, created) = ca
        .ra
        .new_account(request(thumbprint.clone(), None))
        .await
        .unwrap();
    assert!(created);
    let (again, created) = ca.ra.new_account(request(thumbprint, None)).await.unwrap();
    assert!(!created);
    assert_eq!(again.id, first.id);
}

#[tokio::test]
async fn an_eab_key_binds_one_account_even_when_two_race_for_it() {
    let ca = Ca::new();
    ca.sa
        .new_eab_key(&EabKey {
            key_id: "kid-1".into(),
            hmac_key: vec![7; 32],
            created_at: T0,
            bound_account: None,
        })
        .await
        .unwrap();
    assert_eq!(
        ca.ra.eab_hmac_key("kid-1").await.unwrap(),
        Some(vec![7; 32])
    );
    let (first, _) = ca
        .ra
        .new_account(request(thumbprint_of_new_key(), Some("kid-1")))
        .await
        .unwrap();
    // The WFE now refuses the used key up front...
    assert_eq!(
        ca.ra.eab_hmac_key("kid-1").await.unwrap_err().typ,
        ProblemType::Unauthorized
    );
    // ...and a request that passed that check before the first one bound it is refused by
    // storage: the client hears it was used, not an internal error.
    let raced = ca
        .ra
        .new_account(request(thumbprint_of_new_key(), Some("kid-1")))
        .await
        .unwrap_err();
    assert_eq!(raced.typ, ProblemType::Unauthorized, "{raced:?}");
    assert_eq!(
        ca.sa.get_eab_key("kid-1").await.unwrap().bound_account,
        Some(first.id)
    );
}

#[tokio::test]
async fn a_stale_copy_of_an_account_cannot_undo_a_deactivation_by_another_instance() {
    let ca = Ca::new();
    let account = ca.account().await;
    // A WFE reads (and caches) the account while it is valid.
    let cached = ca.ra.get_account(&account.id).await.unwrap();
    assert_eq!(cached.status, AccountStatus::Valid);

    // Another instance on the same database deactivates it.
    let other = ca.restarted(None, RaConfig::default());
    let fresh = other.get_account(&account.id).await.unwrap();
    other.update_account(fresh, None, true).await.unwrap();

    // The RA reads storage: it sees the deactivation at once.
    assert_eq!(
        ca.ra.get_account(&account.id).await.unwrap().status,
        AccountStatus::Deactivated
    );
    // A contact update made with the stale copy is refused with a clear problem instead of
    // writing `valid` back.
    let refused = ca
        .ra
        .update_account(cached, Some(vec!["mailto:new@cairn-ca.net".into()]), false)
        .await
        .unwrap_err();
    assert_eq!(refused.typ, ProblemType::Unauthorized, "{refused:?}");
    assert!(refused.detail.contains("deactivated"), "{refused:?}");

    let stored = ca.sa.get_account(&account.id).await.unwrap();
    assert_eq!(stored.status, AccountStatus::Deactivated);
    assert_eq!(stored.contact, account.contact);
}

#[tokio::test]
async fn a_deactivated_account_cannot_be_deactivated_again_into_an_error() {
    let ca = Ca::new();
    let account = ca.account().await;
    let copy = account.clone();
    ca.ra.update_account(account, None, true).await.unwrap();
    let again = ca.ra.update_account(copy, None, true).await.unwrap_err();
    assert_eq!(again.typ, ProblemType::Unauthorized, "{again:?}");
}
