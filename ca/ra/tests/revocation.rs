//! Who may revoke what (RFC 8555 §7.6): the account that ordered the certificate, an account
//! holding valid authorizations for every name in it, and the holder of the certificate's key;
//! nobody else. Only the reasons ACME allows; once only; keyCompromise blocks the key; the
//! registered listeners hear of every revocation.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod harness;

use async_trait::async_trait;
use cairn_api::{RevocationListener, StorageAuthority};
use cairn_core::{Account, Certificate, ProblemType, Revocation, RevocationReason, Serial};
use cairn_ra::{NewAccountRequest, RevocationRequester};
use harness::{Ca, csr, key};
use rcgen::{KeyPair, PublicKeyData};
use std::sync::{Arc, Mutex};

fn thumbprint(key: &KeyPair) -> String {
    cairn_x509::spki_jwk_thumbprint(&key.subject_public_key_info()).unwrap()
}

fn by(account: &Account) -> RevocationRequester {
    RevocationRequester::Account(account.clone())
}

async fn stored_revocation(ca: &Ca, cert: &Certificate) -> Option<Revocation> {
    ca.sa
        .get_certificate(&cert.serial)
        .await
        .unwrap()
        .revocation
}

/// Asserts `requester` is refused as `unauthorized` and the certificate stays unrevoked.
async fn refused(ca: &Ca, requester: RevocationRequester, cert: &Certificate) {
    let problem = ca.ra.revoke(requester, &cert.der, None).await.unwrap_err();
    assert_eq!(problem.typ, ProblemType::Unauthorized, "{problem:?}");
    assert_eq!(stored_revocation(ca, cert).await, None);
}

#[tokio::test]
async fn the_account_that_ordered_the_certificate_may_revoke_it() {
    let ca = Ca::new();
    let owner = ca.account().await;
    let (cert, _) = ca.issue(&owner, &["owner.example.com"]).await;
    let revoked = ca.ra.revoke(by(&owner), &cert.der, None).await.unwrap();
    let revocation = revoked.revocation.unwrap();
    assert_eq!(revocation.reason, RevocationReason::Unspecified);
    assert_eq!(revocation.revoked_at, ca.now());
    assert_eq!(stored_revocation(&ca, &cert).await, Some(revocation));
}

#[tokio::test]
async fn an_account_with_valid_authorizations_for_every_name_may_revoke() {
    let ca = Ca::new();
    let owner = ca.account().await;
    let names = ["x.example.com", "*.y.example.com"];
    let (cert, _) = ca.issue(&owner, &names).await;

    let holder = ca.account().await;
    // Authorizations for one name only are not enough.
    let partial = ca.order(&holder, &["x.example.com"]).await;
    ca.validate_order(&holder, &partial).await;
    refused(&ca, by(&holder), &cert).await;
    // For every name (the wildcard's through a wildcard authorization): allowed.
    let rest = ca.order(&holder, &["*.y.example.com"]).await;
    ca.validate_order(&holder, &rest).await;
    let revoked = ca.ra.revoke(by(&holder), &cert.der, Some(4)).await.unwrap();
    assert_eq!(
        revoked.revocation.unwrap().reason,
        RevocationReason::Superseded
    );
}

#[tokio::test]
async fn authorizations_that_are_only_pending_or_expired_do_not_allow_revocation() {
    let ca = Ca::new();
    let owner = ca.account().await;
    let (cert, _) = ca.issue(&owner, &["p.example.com"]).await;
    let other = ca.account().await;
    // Pending only.
    ca.order(&other, &["p.example.com"]).await;
    refused(&ca, by(&other), &cert).await;
    // Valid, then expired.
    let order = ca.order(&other, &["p.example.com"]).await;
    let authz = ca.validate(&other, &order.order.authz_ids[0]).await;
    ca.clock.set(authz.expires);
    refused(&ca, by(&other), &cert).await;
}

#[tokio::test]
async fn the_holder_of_the_certificate_key_may_revoke_and_no_other_key() {
    let ca = Ca::new();
    let owner = ca.account().await;
    let (cert, cert_key) = ca.issue(&owner, &["key.example.com"]).await;
    refused(
        &ca,
        RevocationRequester::CertificateKey(thumbprint(&key())),
        &cert,
    )
    .await;
    let revoked = ca
        .ra
        .revoke(
            RevocationRequester::CertificateKey(thumbprint(&cert_key)),
            &cert.der,
            Some(1),
        )
        .await
        .unwrap();
    assert_eq!(
        revoked.revocation.unwrap().reason,
        RevocationReason::KeyCompromise
    );
}

#[tokio::test]
async fn another_account_without_authorizations_is_refused() {
    let ca = Ca::new();
    let owner = ca.account().await;
    let (cert, _) = ca.issue(&owner, &["mine.example.com"]).await;
    let stranger = ca.account().await;
    refused(&ca, by(&stranger), &cert).await;
    // Authorizations for other names do not help.
    let order = ca.order(&stranger, &["theirs.example.com"]).await;
    ca.validate_order(&stranger, &order).await;
    refused(&ca, by(&stranger), &cert).await;
}

#[tokio::test]
async fn only_the_reasons_acme_allows_are_accepted() {
    let ca = Ca::new();
    let owner = ca.account().await;
    for (i, code) in [0u8, 1, 3, 4, 5, 9].into_iter().enumerate() {
        let name = format!("ok{i}.example.com");
        let (cert, _) = ca.issue(&owner, &[name.as_str()]).await;
        let revoked = ca
            .ra
            .revoke(by(&owner), &cert.der, Some(code))
            .await
            .unwrap();
        assert_eq!(revoked.revocation.unwrap().reason.code(), code);
    }
    let (cert, _) = ca.issue(&owner, &["refused.example.com"]).await;
    // cACompromise (2), certificateHold (6), 7 (unused), removeFromCRL (8), aACompromise (10).
    for code in [2u8, 6, 7, 8, 10, 255] {
        let problem = ca
            .ra
            .revoke(by(&owner), &cert.der, Some(code))
            .await
            .unwrap_err();
        assert_eq!(problem.typ, ProblemType::BadRevocationReason, "{code}");
    }
    assert_eq!(stored_revocation(&ca, &cert).await, None);
}

#[tokio::test]
async fn a_certificate_is_revoked_once() {
    let ca = Ca::new();
    let owner = ca.account().await;
    let (cert, _) = ca.issue(&owner, &["once.example.com"]).await;
    ca.ra.revoke(by(&owner), &cert.der, None).await.unwrap();
    let first = stored_revocation(&ca, &cert).await;
    let problem = ca
        .ra
        .revoke(by(&owner), &cert.der, Some(4))
        .await
        .unwrap_err();
    assert_eq!(problem.typ, ProblemType::AlreadyRevoked);
    assert_eq!(stored_revocation(&ca, &cert).await, first);
}

#[tokio::test]
async fn certificates_this_ca_did_not_issue_are_not_found_and_garbage_is_malformed() {
    let ca = Ca::new();
    let owner = ca.account().await;
    let (cert, _) = ca.issue(&owner, &["real.example.com"]).await;
    // A certificate of another CA (with its own storage): not found here.
    let elsewhere = Ca::new();
    let other_owner = elsewhere.account().await;
    let (foreign, _) = elsewhere.issue(&other_owner, &["real.example.com"]).await;
    let problem = ca
        .ra
        .revoke(by(&owner), &foreign.der, None)
        .await
        .unwrap_err();
    assert_eq!(problem.typ, ProblemType::NotFound);
    let problem = ca
        .ra
        .revoke(by(&owner), b"\x30\x03\x02\x01\x01", None)
        .await
        .unwrap_err();
    assert_eq!(problem.typ, ProblemType::Malformed);
    assert_eq!(stored_revocation(&ca, &cert).await, None);
}

#[tokio::test]
async fn key_compromise_proven_with_the_key_blocks_it_for_certificates_and_accounts() {
    let ca = Ca::new();
    let owner = ca.account().await;
    let (cert, cert_key) = ca.issue(&owner, &["leaked.example.com"]).await;
    ca.ra
        .revoke(
            RevocationRequester::CertificateKey(thumbprint(&cert_key)),
            &cert.der,
            Some(1),
        )
        .await
        .unwrap();
    assert!(key_blocked(&ca, &cert).await);

    let order = ca.order(&owner, &["leaked.example.com"]).await;
    let order = ca.validate_order(&owner, &order).await;
    let problem = ca
        .ra
        .finalize(
            &owner,
            &order.order.id,
            &csr(&cert_key, &["leaked.example.com"]),
        )
        .await
        .unwrap_err();
    assert_eq!(problem.typ, ProblemType::BadPublicKey);

    let problem = ca
        .ra
        .new_account(NewAccountRequest {
            jwk: serde_json::json!({"kty": "EC"}),
            thumbprint: thumbprint(&cert_key),
            contact: vec![],
            terms_of_service_agreed: true,
            eab_key_id: None,
            remote_ip: None,
        })
        .await
        .unwrap_err();
    assert_eq!(problem.typ, ProblemType::BadPublicKey);
}

async fn key_blocked(ca: &Ca, cert: &Certificate) -> bool {
    ca.sa.is_key_blocked(&cert.spki_sha256).await.unwrap()
}

/// Issue 14, finding 9: an account proves nothing about the certificate's key, so its
/// keyCompromise revocation revokes the certificate without blocking the key CA-wide (else any
/// account that validated a name could deny the key's holder service everywhere).
#[tokio::test]
async fn key_compromise_by_an_account_revokes_without_blocking_the_key() {
    let ca = Ca::new();
    let owner = ca.account().await;
    let (cert, cert_key) = ca.issue(&owner, &["victim.example.com"]).await;
    // Another account that validated the name revokes for keyCompromise.
    let validator = ca.account().await;
    let order = ca.order(&validator, &["victim.example.com"]).await;
    ca.validate_order(&validator, &order).await;
    let revoked = ca
        .ra
        .revoke(by(&validator), &cert.der, Some(1))
        .await
        .unwrap();
    assert_eq!(
        revoked.revocation.unwrap().reason,
        RevocationReason::KeyCompromise
    );
    assert!(
        !key_blocked(&ca, &cert).await,
        "the key must not be blocked"
    );
    // The key's holder can still use it, in a CSR and as an account key.
    let (again, _) = ca.issue(&owner, &["victim.example.com"]).await;
    let order = ca.order(&owner, &["victim.example.com"]).await;
    let order = ca.validate_order(&owner, &order).await;
    ca.ra
        .finalize(
            &owner,
            &order.order.id,
            &csr(&cert_key, &["victim.example.com"]),
        )
        .await
        .expect("the key was not blocked");
    ca.account_with_key(&cert_key).await;

    // Nor does the ordering account's own keyCompromise revocation block the key.
    ca.ra.revoke(by(&owner), &again.der, Some(1)).await.unwrap();
    assert!(!key_blocked(&ca, &again).await);
}

/// Records what it hears.
#[derive(Default)]
struct Heard(Mutex<Vec<(Serial, String)>>);

#[async_trait]
impl RevocationListener for Heard {
    async fn certificate_revoked(&self, serial: &Serial, issuer_id: &str, _: &Revocation) {
        self.0
            .lock()
            .unwrap()
            .push((serial.clone(), issuer_id.to_owned()));
    }
}

#[tokio::test]
async fn listeners_hear_each_revocation_once_and_refusals_not_at_all() {
    let ca = Ca::new();
    let heard = Arc::new(Heard::default());
    ca.ra.add_revocation_listener(heard.clone());
    let owner = ca.account().await;
    let (cert, _) = ca.issue(&owner, &["heard.example.com"]).await;
    let stranger = ca.account().await;
    refused(&ca, by(&stranger), &cert).await;
    assert!(heard.0.lock().unwrap().is_empty());
    ca.ra.revoke(by(&owner), &cert.der, None).await.unwrap();
    ca.ra.revoke(by(&owner), &cert.der, None).await.unwrap_err();
    assert_eq!(
        *heard.0.lock().unwrap(),
        vec![(cert.serial.clone(), cert.issuer_id.clone())]
    );
}
