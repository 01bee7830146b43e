//! Finalize refuses a CSR it must not sign (RFC 8555 §7.4: `badCSR`, `badPublicKey`), and a
//! refusal changes nothing: the order stays ready, no serial is spent, the issuer signs nothing,
//! and a good CSR afterwards still works.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod harness;

use cairn_api::{BlockedKey, StorageAuthority};
use cairn_core::{OrderStatus, Problem, ProblemType};
use cairn_ra::OrderView;
use harness::{Ca, csr, key};
use rcgen::PublicKeyData;

const NAMES: [&str; 2] = ["shop.example.net", "www.shop.example.net"];

/// A ready order of a fresh account, and the account.
async fn ready(ca: &Ca) -> (cairn_core::Account, OrderView) {
    let account = ca.account().await;
    let order = ca.order(&account, &NAMES).await;
    let order = ca.validate_order(&account, &order).await;
    assert_eq!(order.status, OrderStatus::Ready);
    (account, order)
}

/// Finalizing with `csr_der` is refused with `typ`; the order is still ready and nothing was
/// signed; finalizing with a good CSR then issues.
async fn refused_without_effect(
    ca: &Ca,
    account: &cairn_core::Account,
    order: &OrderView,
    csr_der: &[u8],
    typ: ProblemType,
) -> Problem {
    let problem = ca
        .ra
        .finalize(account, &order.order.id, csr_der)
        .await
        .unwrap_err();
    assert_eq!(problem.typ, typ, "{problem:?}");
    let stored = ca.sa.get_order(&order.order.id).await.unwrap();
    assert_eq!(stored.status, OrderStatus::Pending);
    assert_eq!(stored.csr_der, None);
    assert_eq!(
        ca.ra
            .get_order(account, &order.order.id)
            .await
            .unwrap()
            .status,
        OrderStatus::Ready
    );
    assert_eq!(ca.issuer.signed(), 0);
    let issued = ca
        .ra
        .finalize(account, &order.order.id, &csr(&key(), &NAMES))
        .await
        .unwrap();
    assert_eq!(issued.status, OrderStatus::Valid);
    problem
}

#[tokio::test]
async fn a_csr_naming_other_identifiers_is_refused() {
    let ca = Ca::new();
    let (account, order) = ready(&ca).await;
    for names in [
        &["shop.example.net"][..],
        &[
            "shop.example.net",
            "www.shop.example.net",
            "admin.example.net",
        ][..],
        &["shop.example.net", "ww.shop.example.net"][..],
    ] {
        let problem = ca
            .ra
            .finalize(&account, &order.order.id, &csr(&key(), names))
            .await
            .unwrap_err();
        assert_eq!(problem.typ, ProblemType::BadCsr, "{names:?}");
        assert!(problem.detail.contains("differ"), "{}", problem.detail);
    }
    refused_without_effect(
        &ca,
        &account,
        &order,
        &csr(&key(), &["other.example.net"]),
        ProblemType::BadCsr,
    )
    .await;
}

#[tokio::test]
async fn a_csr_whose_signature_does_not_verify_is_refused() {
    let ca = Ca::new();
    let (account, order) = ready(&ca).await;
    let mut tampered = csr(&key(), &NAMES);
    // The signature is the CSR's last bytes.
    let last = tampered.len() - 1;
    tampered[last] ^= 0x01;
    let problem =
        refused_without_effect(&ca, &account, &order, &tampered, ProblemType::BadCsr).await;
    assert!(
        problem.detail.contains("signature is invalid"),
        "{}",
        problem.detail
    );
}

#[tokio::test]
async fn bytes_that_are_not_a_csr_are_refused() {
    let ca = Ca::new();
    let (account, order) = ready(&ca).await;
    for garbage in [&b""[..], &b"\x30\x03\x02\x01\x00"[..], &b"not a csr"[..]] {
        let problem = ca
            .ra
            .finalize(&account, &order.order.id, garbage)
            .await
            .unwrap_err();
        assert_eq!(problem.typ, ProblemType::BadCsr);
    }
    refused_without_effect(&ca, &account, &order, b"\x30\x00", ProblemType::BadCsr).await;
}

#[tokio::test]
async fn the_account_key_is_refused_as_the_certificate_key() {
    let ca = Ca::new();
    let account_key = key();
    let account = ca.account_with_key(&account_key).await;
    let order = ca.order(&account, &NAMES).await;
    let order = ca.validate_order(&account, &order).await;
    let problem = refused_without_effect(
        &ca,
        &account,
        &order,
        &csr(&account_key, &NAMES),
        ProblemType::BadCsr,
    )
    .await;
    assert!(problem.detail.contains("account key"), "{}", problem.detail);
}

#[tokio::test]
async fn a_blocked_key_is_refused_as_bad_public_key() {
    let ca = Ca::new();
    let (account, order) = ready(&ca).await;
    let compromised = key();
    let spki = compromised.subject_public_key_info();
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &spki);
    let spki_sha256: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    ca.sa
        .block_key(&BlockedKey {
            spki_sha256,
            jwk_thumbprint: None,
            blocked_at: ca.now(),
            comment: "test".into(),
        })
        .await
        .unwrap();
    refused_without_effect(
        &ca,
        &account,
        &order,
        &csr(&compromised, &NAMES),
        ProblemType::BadPublicKey,
    )
    .await;
}

#[tokio::test]
async fn another_accounts_order_is_not_found() {
    let ca = Ca::new();
    let (_, order) = ready(&ca).await;
    let stranger = ca.account().await;
    let problem = ca
        .ra
        .finalize(&stranger, &order.order.id, &csr(&key(), &NAMES))
        .await
        .unwrap_err();
    assert_eq!(problem.typ, ProblemType::NotFound);
    assert_eq!(ca.issuer.signed(), 0);
}

#[tokio::test]
async fn a_common_name_with_a_trailing_dot_is_issued_in_canonical_form() {
    let ca = Ca::new();
    let (account, order) = ready(&ca).await;
    // The CN names the first SAN as a fully qualified name, in capitals and with the root's dot.
    let cert_key = key();
    let mut params =
        rcgen::CertificateParams::new(NAMES.iter().map(|s| s.to_string()).collect::<Vec<_>>())
            .unwrap();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "Shop.Example.NET.");
    let csr_der = params.serialize_request(&cert_key).unwrap().der().to_vec();

    let done = ca
        .ra
        .finalize(&account, &order.order.id, &csr_der)
        .await
        .unwrap();
    assert_eq!(done.status, OrderStatus::Valid);
    let cert = ca
        .ra
        .get_certificate(&done.order.certificate_serial.unwrap())
        .await
        .unwrap();
    let info = cairn_x509::CertInfo::from_der(&cert.der).unwrap();
    assert_eq!(info.common_name.as_deref(), Some("shop.example.net"));
}
