//! Issuance with Certificate Transparency through the `CtSubmitter` seam: the precertificate
//! goes to the logs, the certificate embeds the SCT list they gave, the final certificate is
//! submitted too; without enough SCTs nothing but the precertificate is signed.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod harness;

use cairn_api::StorageAuthority;
use cairn_api::fake::FakeCt;
use cairn_core::{Account, OrderStatus, ProblemType, Revocation, RevocationReason, Serial};
use cairn_ra::admin_revocation::{Selection, select};
use cairn_ra::{OrderView, RaConfig};
use cairn_x509::CertInfo;
use harness::{Ca, csr, key};
use std::sync::Arc;
use std::time::Duration;

/// DER of the OID 1.3.6.1.4.1.11129.2.4.2 (embedded SCT list), without its last arc.
const CT_OID_PREFIX: [u8; 11] = [
    0x06, 0x0a, 0x2b, 0x06, 0x01, 0x04, 0x01, 0xd6, 0x79, 0x02, 0x04,
];
/// The last arc: 2 for the SCT list, 3 for the precertificate poison.
const SCT_LIST: u8 = 0x02;
const POISON: u8 = 0x03;

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn has_ct_extension(der: &[u8], arc: u8) -> bool {
    let mut oid = CT_OID_PREFIX.to_vec();
    oid.push(arc);
    contains(der, &oid)
}

#[tokio::test]
async fn the_certificate_embeds_the_scts_its_precertificate_got() {
    let ca = Ca::with_ct();
    let ct = ca.ct.clone().unwrap();
    let account = ca.account().await;
    let (cert, _) = ca.issue(&account, &["ct.example.com"]).await;

    assert!(has_ct_extension(&cert.der, SCT_LIST));
    assert!(!has_ct_extension(&cert.der, POISON));
    assert!(contains(&cert.der, &FakeCt::sct_list().encoded));
    // The logs saw the precertificate with its issuer.
    let submitted = ct.precert_chains();
    assert_eq!(submitted.len(), 1);
    assert!(has_ct_extension(&submitted[0][0], POISON));
    assert_eq!(submitted[0][1], ca.issuer.intermediate_der());
    assert_eq!(ca.issuer.signed(), 2);
    // The final certificate follows, in the background.
    for _ in 0..200 {
        if !ct.final_chains().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(
        ct.final_chains(),
        vec![vec![
            cert.der.clone(),
            ca.issuer.intermediate_der().to_vec()
        ]]
    );
}

#[tokio::test]
async fn without_enough_scts_the_order_fails_with_a_retryable_problem() {
    let ca = Ca::with_ct();
    let ct = ca.ct.clone().unwrap();
    ct.refuse(true);
    let account = ca.account().await;
    let order = ca.order(&account, &["dark.example.com"]).await;
    ca.validate_order(&account, &order).await;
    let view = ca
        .ra
        .finalize(
            &account,
            &order.order.id,
            &csr(&key(), &["dark.example.com"]),
        )
        .await
        .unwrap();
    assert_eq!(view.status, OrderStatus::Invalid);
    assert_eq!(view.order.error.unwrap().typ, ProblemType::RateLimited);
    assert_eq!(view.order.certificate_serial, None);
    // The precertificate only.
    assert_eq!(ca.issuer.signed(), 1);
    assert_eq!(ct.precert_chains().len(), 1);
    assert!(ct.final_chains().is_empty());
}

// ---- issue 14, finding 3: every serial a log saw is known and revocable ----

/// Every serial in a chain any log was given (precertificate or final certificate).
fn logged_serials(ct: &FakeCt) -> Vec<Serial> {
    let mut serials: Vec<Serial> = ct
        .precert_chains()
        .iter()
        .chain(ct.final_chains().iter())
        .map(|chain| Serial::from_bytes(&CertInfo::from_der(&chain[0]).unwrap().serial))
        .collect();
    serials.sort();
    serials.dedup();
    serials
}

/// Each serial is issued for revocation status (what OCSP reads), an operator's revocation by
/// serial selects it, and once revoked it is an entry of its issuer's CRL.
async fn assert_known_and_revocable(ca: &Ca, serials: &[Serial]) {
    assert!(!serials.is_empty(), "no log saw anything");
    for serial in serials {
        let issued = ca
            .sa
            .get_issued(serial)
            .await
            .unwrap_or_else(|e| panic!("serial {serial} a log saw is unknown: {e}"));
        assert_eq!(issued.revocation, None);
        let selected = select(
            &ca.sa,
            &Selection::Serials(vec![serial.clone()]),
            false,
            ca.now(),
        )
        .await
        .unwrap();
        assert!(selected.missing.is_empty(), "{serial} not selectable");
        ca.sa
            .revoke_certificate(
                serial,
                &Revocation {
                    revoked_at: ca.now(),
                    reason: RevocationReason::Superseded,
                },
            )
            .await
            .unwrap();
        let crl = ca
            .sa
            .get_revoked_certificates(&issued.issuer_id, ca.now())
            .await
            .unwrap();
        assert!(
            crl.iter().any(|r| &r.serial == serial),
            "{serial} is not on the CRL"
        );
    }
}

fn quick() -> RaConfig {
    RaConfig {
        finalize_wait: time::Duration::milliseconds(200),
        ..RaConfig::default()
    }
}

/// Finalizes an order for `name` and returns it (still `processing` if issuance hangs).
async fn finalize_one(ca: &Ca, name: &str) -> (Account, OrderView) {
    let account = ca.account().await;
    let order = ca.order(&account, &[name]).await;
    ca.validate_order(&account, &order).await;
    let view = ca
        .ra
        .finalize(&account, &order.order.id, &csr(&key(), &[name]))
        .await
        .unwrap();
    (account, view)
}

#[tokio::test]
async fn a_precertificate_whose_scts_were_refused_stays_known_and_revocable() {
    let ca = Ca::with_ct();
    let ct = ca.ct.clone().unwrap();
    ct.refuse(true);
    let (_, view) = finalize_one(&ca, "refused.example.com").await;
    assert_eq!(view.status, OrderStatus::Invalid);
    let serials = logged_serials(&ct);
    assert_eq!(serials.len(), 1);
    // Not a certificate (nothing to download), but issued.
    assert!(ca.sa.get_certificate(&serials[0]).await.is_err());
    assert_known_and_revocable(&ca, &serials).await;
}

/// A crash while the logs were being asked (the precertificate is stored and a log saw it):
/// the restarted RA finishes with the same serial and precertificate, signing no other.
#[tokio::test]
async fn crash_during_ct_submission_resumes_with_the_same_serial() {
    let ca = Ca::with_ct_config(quick());
    let ct = ca.ct.clone().unwrap();
    ct.hang(true);
    let (account, view) = finalize_one(&ca, "crash-ct.example.com").await;
    assert_eq!(view.status, OrderStatus::Processing);
    let seen = logged_serials(&ct);
    assert_eq!(seen.len(), 1);

    let ct2 = Arc::new(FakeCt::new());
    // The crashed instance's lease on the order runs out before anyone resumes it.
    ca.clock.advance(quick().order_lease);
    let restarted = ca.restarted(Some(ct2.clone()), quick());
    assert_eq!(restarted.resume_interrupted_issuance().await.unwrap(), 1);
    let done = restarted.get_order(&account, &view.order.id).await.unwrap();
    assert_eq!(done.status, OrderStatus::Valid);
    assert_eq!(done.order.certificate_serial.as_ref(), Some(&seen[0]));
    // The same precertificate went to the logs again; one precertificate, one final.
    assert_eq!(ct2.precert_chains()[0][0], ct.precert_chains()[0][0]);
    assert_eq!(ca.issuer.signed(), 2);
    for _ in 0..200 {
        if !ct2.final_chains().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let mut all = logged_serials(&ct);
    all.extend(logged_serials(&ct2));
    all.dedup();
    assert_eq!(all, seen);
    assert_known_and_revocable(&ca, &all).await;
}

/// A crash after the logs answered, while (or after) the final certificate was signed and
/// before it was stored: the restarted RA signs the final certificate for the stored
/// precertificate, under its serial.
#[tokio::test]
async fn crash_before_the_final_certificate_is_stored_resumes_with_the_same_serial() {
    let ca = Ca::with_ct_config(quick());
    let ct = ca.ct.clone().unwrap();
    ca.issuer.hang_final(true);
    let (account, view) = finalize_one(&ca, "crash-final.example.com").await;
    assert_eq!(view.status, OrderStatus::Processing);
    let seen = logged_serials(&ct);
    assert_eq!(seen.len(), 1);
    // Known and good before anything else happens.
    assert_eq!(ca.sa.get_issued(&seen[0]).await.unwrap().revocation, None);

    ca.issuer.hang_final(false);
    ca.clock.advance(quick().order_lease);
    let restarted = ca.restarted(Some(ct.clone()), quick());
    assert_eq!(restarted.resume_interrupted_issuance().await.unwrap(), 1);
    let done = restarted.get_order(&account, &view.order.id).await.unwrap();
    assert_eq!(done.status, OrderStatus::Valid);
    assert_eq!(done.order.certificate_serial.as_ref(), Some(&seen[0]));
    let cert = ca.sa.get_certificate(&seen[0]).await.unwrap();
    assert!(has_ct_extension(&cert.der, SCT_LIST));
    for _ in 0..200 {
        if !ct.final_chains().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(ct.final_chains()[0][0], cert.der);
    assert_eq!(logged_serials(&ct), seen);
    assert_known_and_revocable(&ca, &seen).await;
}

/// The final certificate goes to the logs only once it is stored: whenever a log has it, the
/// stored certificate is that one.
#[tokio::test]
async fn the_final_certificate_reaches_the_logs_only_after_it_is_stored() {
    let ca = Ca::with_ct();
    let ct = ca.ct.clone().unwrap();
    let account = ca.account().await;
    let (cert, _) = ca.issue(&account, &["stored-first.example.com"]).await;
    for _ in 0..200 {
        if !ct.final_chains().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let logged = &ct.final_chains()[0][0];
    let serial = Serial::from_bytes(&CertInfo::from_der(logged).unwrap().serial);
    assert_eq!(ca.sa.get_certificate(&serial).await.unwrap().der, cert.der);
    assert_known_and_revocable(&ca, &logged_serials(&ct)).await;
}
