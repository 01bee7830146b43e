//! Issuance with Certificate Transparency through the `CtSubmitter` seam: the precertificate
//! goes to the logs, the certificate embeds the SCT list they gave, the final certificate is
//! submitted too; without enough SCTs nothing but the precertificate is signed.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod harness;

use cairn_api::fake::FakeCt;
use cairn_core::{OrderStatus, ProblemType};
use harness::{Ca, csr, key};
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
