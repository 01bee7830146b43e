//! Operator revocation (`cairn admin revoke`) over the fakes: what a selection names (missing
//! serials reported, key siblings added), revoking it (already-revoked ones counted, not
//! revoked twice; listeners told), and keyCompromise by key blocking the key even when no
//! certificate is left to revoke.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod harness;

use async_trait::async_trait;
use cairn_api::{CertificateSelector, RevocationListener, StorageAuthority};
use cairn_core::{Account, Certificate, OrderStatus, Revocation, RevocationReason, Serial};
use cairn_ra::Revoker;
use cairn_ra::admin_revocation::{RevokeError, Revoked, Selection, select};
use harness::{Ca, csr, key};
use rcgen::KeyPair;
use std::sync::{Arc, Mutex};

/// Issues a certificate for `names` with `cert_key`.
async fn issue_with(ca: &Ca, account: &Account, names: &[&str], cert_key: &KeyPair) -> Certificate {
    let order = ca.order(account, names).await;
    let order = ca.validate_order(account, &order).await;
    let done = ca
        .ra
        .finalize(account, &order.order.id, &csr(cert_key, names))
        .await
        .unwrap();
    assert_eq!(done.status, OrderStatus::Valid);
    ca.ra
        .get_certificate(&done.order.certificate_serial.unwrap())
        .await
        .unwrap()
}

fn revoker(ca: &Ca) -> Revoker {
    Revoker::new(Arc::new(ca.sa.clone()))
}

#[derive(Default)]
struct Heard(Mutex<Vec<Serial>>);

#[async_trait]
impl RevocationListener for Heard {
    async fn certificate_revoked(&self, serial: &Serial, _: &str, _: &Revocation) {
        self.0.lock().unwrap().push(serial.clone());
    }
}

#[tokio::test]
async fn serials_are_revoked_once_and_unknown_ones_reported() {
    let ca = Ca::new();
    let owner = ca.account().await;
    let (a, _) = ca.issue(&owner, &["a.example.com"]).await;
    let (b, _) = ca.issue(&owner, &["b.example.com"]).await;
    let unknown = Serial("0123".into());
    let selection = Selection::Serials(vec![a.serial.clone(), unknown.clone(), b.serial.clone()]);

    let selected = select(&ca.sa, &selection, false, ca.now()).await.unwrap();
    assert_eq!(selected.missing, vec![unknown]);
    let (already, todo) = selected.partition();
    assert!(already.is_empty());
    assert_eq!(todo.len(), 2);

    let revoker = revoker(&ca);
    let heard = Arc::new(Heard::default());
    revoker.add_listener(heard.clone());
    let mut progress = Vec::new();
    let outcome = revoker
        .revoke_selected(
            &selection,
            &todo,
            RevocationReason::Superseded,
            "test",
            |n| progress.push(n),
        )
        .await
        .unwrap();
    assert_eq!(
        outcome,
        Revoked {
            revoked: 2,
            raced: 0
        }
    );
    assert_eq!(progress, vec![1, 2]);
    assert_eq!(heard.0.lock().unwrap().len(), 2);
    for cert in [&a, &b] {
        let stored = ca.sa.get_certificate(&cert.serial).await.unwrap();
        assert_eq!(
            stored.revocation.unwrap().reason,
            RevocationReason::Superseded
        );
    }

    // A second run finds them revoked and has nothing to do.
    let again = select(&ca.sa, &selection, false, ca.now()).await.unwrap();
    let (already, todo) = again.partition();
    assert_eq!((already.len(), todo.len()), (2, 0));

    // Revoked by someone else between selection and revocation: counted, not an error.
    let outcome = revoker
        .revoke_selected(
            &selection,
            &[&a],
            RevocationReason::Superseded,
            "test",
            |_| {},
        )
        .await
        .unwrap();
    assert_eq!(
        outcome,
        Revoked {
            revoked: 0,
            raced: 1
        }
    );
}

#[tokio::test]
async fn key_siblings_of_other_accounts_are_added() {
    let ca = Ca::new();
    let (alice, bob) = (ca.account().await, ca.account().await);
    let shared = key();
    let mine = issue_with(&ca, &alice, &["alice.example.com"], &shared).await;
    let (other_key_cert, _) = ca.issue(&alice, &["alice2.example.com"]).await;
    let theirs = issue_with(&ca, &bob, &["bob.example.com"], &shared).await;
    let (unrelated, _) = ca.issue(&bob, &["bob2.example.com"]).await;

    let selection = Selection::Serials(vec![mine.serial.clone()]);
    let alone = select(&ca.sa, &selection, false, ca.now()).await.unwrap();
    assert_eq!(alone.certificates.len(), 1);
    let with_siblings = select(&ca.sa, &selection, true, ca.now()).await.unwrap();
    let serials: Vec<&Serial> = with_siblings.certificates.keys().collect();
    assert!(serials.contains(&&mine.serial) && serials.contains(&&theirs.serial));
    assert!(!serials.contains(&&other_key_cert.serial) && !serials.contains(&&unrelated.serial));

    let by_account = Selection::Matching(CertificateSelector::Account(alice.id.clone()));
    let selected = select(&ca.sa, &by_account, true, ca.now()).await.unwrap();
    assert_eq!(
        selected.certificates.len(),
        3,
        "alice's two and bob's sibling"
    );
}

#[tokio::test]
async fn key_compromise_by_key_blocks_the_key_even_with_nothing_to_revoke() {
    let ca = Ca::new();
    let spki_sha256 = "ab".repeat(32);
    let selection = Selection::Matching(CertificateSelector::SpkiSha256(spki_sha256.clone()));
    let selected = select(&ca.sa, &selection, false, ca.now()).await.unwrap();
    assert!(selected.certificates.is_empty());
    let revoker = revoker(&ca);

    revoker
        .revoke_selected(
            &selection,
            &[],
            RevocationReason::Superseded,
            "test",
            |_| {},
        )
        .await
        .unwrap();
    assert!(
        !ca.sa.is_key_blocked(&spki_sha256).await.unwrap(),
        "only for keyCompromise"
    );

    revoker
        .revoke_selected(
            &selection,
            &[],
            RevocationReason::KeyCompromise,
            "test",
            |_| {},
        )
        .await
        .unwrap();
    assert!(ca.sa.is_key_blocked(&spki_sha256).await.unwrap());
}

#[tokio::test]
async fn a_failed_revocation_says_which_and_how_many_went_before() {
    let ca = Ca::new();
    let owner = ca.account().await;
    let (a, _) = ca.issue(&owner, &["a.example.com"]).await;
    let mut ghost = a.clone();
    ghost.serial = Serial("0fff".into());
    let selection = Selection::Serials(vec![a.serial.clone(), ghost.serial.clone()]);
    let err = revoker(&ca)
        .revoke_selected(
            &selection,
            &[&a, &ghost],
            RevocationReason::Unspecified,
            "test",
            |_| {},
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&err, RevokeError::Revoke { serial, revoked: 1, .. } if *serial == ghost.serial),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .starts_with("revoking 0fff (after 1 revoked): "),
        "{err}"
    );
}
