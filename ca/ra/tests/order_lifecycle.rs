//! An order's states (RFC 8555 §7.1.6) as the RA drives them over fakes: pending until every
//! authorization is valid, ready, valid with its certificate once finalized (processing while a
//! crash interrupts issuance, resumed at start-up); invalid when a validation fails, when the
//! issuer refuses, or once the order expires.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod harness;

use cairn_api::{Lease, StorageAuthority};
use cairn_core::{AuthzStatus, ChallengeStatus, Identifier, OrderStatus, ProblemType, Serial};
use cairn_x509::CertInfo;
use harness::{Ca, csr, key};
use time::Duration;

#[tokio::test]
async fn an_order_is_pending_until_every_authorization_is_valid_then_ready() {
    let ca = Ca::new();
    let account = ca.account().await;
    let order = ca
        .order(&account, &["b.example.com", "a.example.com"])
        .await;
    assert_eq!(order.status, OrderStatus::Pending);
    // Identifiers come back normalized and sorted; one authorization each.
    assert_eq!(
        order.order.identifiers,
        vec![
            Identifier::dns("a.example.com"),
            Identifier::dns("b.example.com")
        ]
    );
    assert_eq!(order.order.authz_ids.len(), 2);

    let first = ca.validate(&account, &order.order.authz_ids[0]).await;
    assert_eq!(first.status, AuthzStatus::Valid);
    let valid = first
        .challenges
        .iter()
        .find(|c| c.status == ChallengeStatus::Valid)
        .unwrap();
    assert!(valid.validated.is_some());
    let half = ca.ra.get_order(&account, &order.order.id).await.unwrap();
    assert_eq!(half.status, OrderStatus::Pending);

    ca.validate(&account, &order.order.authz_ids[1]).await;
    let ready = ca.ra.get_order(&account, &order.order.id).await.unwrap();
    assert_eq!(ready.status, OrderStatus::Ready);
    // The VA was asked once per authorization, with the key authorization of the account.
    let asked = ca.va.validations();
    assert_eq!(asked.len(), 2);
    assert!(
        asked
            .iter()
            .all(|r| r.key_authorization.ends_with(&account.key_thumbprint))
    );
}

#[tokio::test]
async fn finalize_makes_a_ready_order_valid_with_a_certificate_for_its_names_and_the_csr_key() {
    let ca = Ca::new();
    let account = ca.account().await;
    let names = ["www.example.org", "example.org"];
    let order = ca.order(&account, &names).await;
    let ready = ca.validate_order(&account, &order).await;
    assert_eq!(ready.status, OrderStatus::Ready);

    let cert_key = key();
    let csr_der = csr(&cert_key, &names);
    let done = ca
        .ra
        .finalize(&account, &order.order.id, &csr_der)
        .await
        .unwrap();
    assert_eq!(done.status, OrderStatus::Valid);
    let serial = done.order.certificate_serial.clone().unwrap();
    // What storage says agrees: the order is valid with the CSR it was finalized with, and the
    // certificate is the issuer's, for the order's names and the CSR's key.
    let stored = ca.sa.get_order(&order.order.id).await.unwrap();
    assert_eq!(stored.status, OrderStatus::Valid);
    assert_eq!(stored.certificate_serial, Some(serial.clone()));
    assert_eq!(stored.csr_der, Some(csr_der));
    let cert = ca.ra.get_certificate(&serial).await.unwrap();
    assert_eq!(cert.account_id, account.id);
    let info = CertInfo::from_der(&cert.der).unwrap();
    assert_eq!(info.identifiers, stored.identifiers);
    assert_eq!(
        info.spki_der,
        rcgen::PublicKeyData::subject_public_key_info(&cert_key)
    );
    assert_eq!(Serial::from_bytes(&info.serial), serial);
    assert!(cairn_x509::is_signed_by(
        &cert.der,
        &CertInfo::from_der(ca.issuer.intermediate_der())
            .unwrap()
            .spki_der
    ));
    assert_eq!(ca.issuer.signed(), 1);

    // A valid order is finalized once.
    let again = ca
        .ra
        .finalize(&account, &order.order.id, &csr(&key(), &names))
        .await
        .unwrap_err();
    assert_eq!(again.typ, ProblemType::OrderNotReady);
    assert_eq!(ca.issuer.signed(), 1);
}

#[tokio::test]
async fn a_failed_validation_makes_the_authorization_and_the_order_invalid() {
    let ca = Ca::new();
    let account = ca.account().await;
    ca.va.fail(Identifier::dns("bad.example.com"));
    let order = ca
        .order(&account, &["good.example.com", "bad.example.com"])
        .await;
    let mut statuses = Vec::new();
    for authz in &order.order.authz_ids {
        let a = ca.validate(&account, authz).await;
        statuses.push((a.identifier.value.clone(), a.status));
        if a.status == AuthzStatus::Invalid {
            let failed = &a.challenges[0];
            assert_eq!(failed.status, ChallengeStatus::Invalid);
            assert_eq!(
                failed.error.as_ref().unwrap().typ,
                ProblemType::Unauthorized
            );
        }
    }
    statuses.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        statuses,
        vec![
            ("bad.example.com".to_owned(), AuthzStatus::Invalid),
            ("good.example.com".to_owned(), AuthzStatus::Valid),
        ]
    );
    let view = ca.ra.get_order(&account, &order.order.id).await.unwrap();
    assert_eq!(view.status, OrderStatus::Invalid);
    let refused = ca
        .ra
        .finalize(
            &account,
            &order.order.id,
            &csr(&key(), &["good.example.com", "bad.example.com"]),
        )
        .await
        .unwrap_err();
    assert_eq!(refused.typ, ProblemType::OrderNotReady);
    assert_eq!(ca.issuer.signed(), 0);
}

#[tokio::test]
async fn an_order_past_its_expiry_is_invalid_and_cannot_be_finalized() {
    let ca = Ca::new();
    let account = ca.account().await;
    let order = ca.order(&account, &["late.example.com"]).await;
    let ready = ca.validate_order(&account, &order).await;
    assert_eq!(ready.status, OrderStatus::Ready);

    ca.clock.set(order.order.expires - Duration::seconds(1));
    let view = ca.ra.get_order(&account, &order.order.id).await.unwrap();
    assert_eq!(view.status, OrderStatus::Ready);
    ca.clock.set(order.order.expires);
    let view = ca.ra.get_order(&account, &order.order.id).await.unwrap();
    assert_eq!(view.status, OrderStatus::Invalid);
    let refused = ca
        .ra
        .finalize(
            &account,
            &order.order.id,
            &csr(&key(), &["late.example.com"]),
        )
        .await
        .unwrap_err();
    assert_eq!(refused.typ, ProblemType::OrderNotReady);
}

#[tokio::test]
async fn a_pending_authorization_past_its_expiry_reads_as_expired() {
    let ca = Ca::new();
    let account = ca.account().await;
    let order = ca.order(&account, &["slow.example.com"]).await;
    let authz = &order.order.authz_ids[0];
    let pending = ca.ra.get_authorization(&account, authz).await.unwrap();
    assert_eq!(pending.status, AuthzStatus::Pending);
    ca.clock.set(pending.expires);
    let expired = ca.ra.get_authorization(&account, authz).await.unwrap();
    assert_eq!(expired.status, AuthzStatus::Expired);
    assert_eq!(
        ca.ra
            .get_order(&account, &order.order.id)
            .await
            .unwrap()
            .status,
        OrderStatus::Invalid
    );
}

#[tokio::test]
async fn when_the_issuer_refuses_the_order_becomes_invalid_without_saying_why() {
    let ca = Ca::new();
    let account = ca.account().await;
    let order = ca.order(&account, &["hsm.example.com"]).await;
    ca.validate_order(&account, &order).await;
    ca.issuer.refuse(Some("the HSM at 10.0.0.7 is down"));
    let view = ca
        .ra
        .finalize(
            &account,
            &order.order.id,
            &csr(&key(), &["hsm.example.com"]),
        )
        .await
        .unwrap();
    assert_eq!(view.status, OrderStatus::Invalid);
    let problem = view.order.error.unwrap();
    assert_eq!(problem.typ, ProblemType::ServerInternal);
    assert!(!problem.detail.contains("10.0.0.7"), "{}", problem.detail);
    assert_eq!(view.order.certificate_serial, None);
}

#[tokio::test]
async fn issuance_a_crash_left_processing_is_resumed_at_start_up() {
    let ca = Ca::new();
    let account = ca.account().await;
    let names = ["resume.example.com"];
    let order = ca.order(&account, &names).await;
    ca.validate_order(&account, &order).await;
    // The state a crash between the move to processing and the signature leaves behind.
    let moved = ca
        .sa
        .set_order_processing(
            &order.order.id,
            &csr(&key(), &names),
            &Serial::random(),
            ca.now(),
            &Lease {
                owner: "crashed-instance".into(),
                until: ca.now() + Duration::minutes(5),
            },
        )
        .await
        .unwrap();
    assert!(moved);
    assert_eq!(
        ca.ra
            .get_order(&account, &order.order.id)
            .await
            .unwrap()
            .status,
        OrderStatus::Processing
    );

    // Not while the crashed instance's lease lasts (it might be alive and issuing).
    assert_eq!(ca.ra.resume_interrupted_issuance().await.unwrap(), 0);
    ca.clock.advance(Duration::minutes(5));
    assert_eq!(ca.ra.resume_interrupted_issuance().await.unwrap(), 1);
    let view = ca.ra.get_order(&account, &order.order.id).await.unwrap();
    assert_eq!(view.status, OrderStatus::Valid);
    let cert = ca
        .ra
        .get_certificate(&view.order.certificate_serial.unwrap())
        .await
        .unwrap();
    assert_eq!(cert.order_id, order.order.id);
    // Nothing is left to resume.
    assert_eq!(ca.ra.resume_interrupted_issuance().await.unwrap(), 0);
}

#[tokio::test]
async fn caa_is_rechecked_at_finalize_only_for_authorizations_validated_long_ago() {
    let ca = Ca::new();
    let account = ca.account().await;
    let (early, late) = (["caa-early.example.com"], ["caa-late.example.com"]);
    let early_order = ca.order(&account, &early).await;
    ca.validate_order(&account, &early_order).await;
    let late_order = ca.order(&account, &late).await;
    ca.validate_order(&account, &late_order).await;
    // CAA changes after the validations.
    ca.va.forbid_caa(Identifier::dns(early[0]));
    ca.va.forbid_caa(Identifier::dns(late[0]));

    // Within eight hours the validation's own check stands.
    ca.clock.advance(Duration::hours(7));
    let issued = ca
        .ra
        .finalize(&account, &early_order.order.id, &csr(&key(), &early))
        .await
        .unwrap();
    assert_eq!(issued.status, OrderStatus::Valid);
    assert!(ca.va.caa_checks().is_empty());

    // Later, CAA is asked again, and its answer refuses issuance.
    ca.clock.advance(Duration::hours(2));
    let refused = ca
        .ra
        .finalize(&account, &late_order.order.id, &csr(&key(), &late))
        .await
        .unwrap_err();
    assert_eq!(refused.typ, ProblemType::Caa);
    assert_eq!(refused.identifier, Some(Identifier::dns(late[0])));
    let checks = ca.va.caa_checks();
    assert_eq!(checks.len(), 1);
    // The recheck names the account and the method that validated, for RFC 8657.
    let check = &checks[0].1;
    assert_eq!(check.method, Some(cairn_core::ChallengeType::Http01));
    assert!(
        check
            .account
            .as_ref()
            .unwrap()
            .matches(&format!("https://ca.example/acme/acct/{}", account.id))
    );
    assert_eq!(
        ca.ra
            .get_order(&account, &late_order.order.id)
            .await
            .unwrap()
            .status,
        OrderStatus::Ready
    );
    assert_eq!(ca.issuer.signed(), 1);
}
