//! ACME Renewal Information (RFC 9773) with an ARI-following client (instant-acme): the window
//! sits late in the lifetime; an operator's `cairn admin ari mark` moves it to the past; the
//! client renews with `replaces`; a certificate is replaced once; revocation also moves the
//! window.

mod common;

use common::{TestCa, pem_chain, verify_chain};
use instant_acme::{
    Account, CertificateIdentifier, ChallengeType, Identifier, NewOrder, OrderStatus, RetryPolicy,
    RevocationRequest,
};
use rustls_pki_types::CertificateDer;
use std::borrow::Cow;
use time::{Duration, OffsetDateTime};

#[allow(clippy::unwrap_used)] // test helper
fn ari_id(pem: &str) -> CertificateIdentifier<'static> {
    let id = cairn_ra::cert_id(&pem_chain(pem)[0]).unwrap();
    let (aki, serial) = id.split_once('.').unwrap();
    CertificateIdentifier {
        authority_key_identifier: Cow::Owned(aki.to_owned()),
        serial: Cow::Owned(serial.to_owned()),
    }
}

#[allow(clippy::unwrap_used)] // test helper
async fn renew(
    ca: &TestCa,
    account: &Account,
    ids: &[Identifier],
    old: CertificateIdentifier<'_>,
) -> String {
    let mut order = account
        .new_order(&NewOrder::new(ids).replaces(old))
        .await
        .unwrap();
    assert!(order.state().replaces.is_some());
    assert_eq!(
        ca.authorize(&mut order, ChallengeType::Http01).await,
        OrderStatus::Ready
    );
    let (csr, _) = common::csr_for(ids);
    order.finalize_csr(&csr).await.unwrap();
    order.poll_certificate(&RetryPolicy::new()).await.unwrap()
}

#[tokio::test]
async fn forced_early_renewal_through_ari() {
    // `cairn admin ari mark` runs in another process, so the server sees it only once its
    // renewal-window cache (`ra.ari.cache_for`, 30 s by default) has let the old window go;
    // with the cache off the change shows at once.
    let ca = TestCa::start_with(|c| c.ra.ari.cache_for = Duration::ZERO).await;
    let account = ca.account().await;
    let ids = [Identifier::Dns("ari.example.com".into())];
    let (pem, _) = ca.issue(&account, &ids, ChallengeType::Http01).await;
    let id = ari_id(&pem);

    // Normal window: late in the 90-day lifetime, with Retry-After.
    let (info, retry) = account.renewal_info(&id).await.unwrap();
    let now = OffsetDateTime::now_utc();
    assert!(
        info.suggested_window.start > now + Duration::days(55),
        "{info:?}"
    );
    assert!(
        info.suggested_window.end < now + Duration::days(90),
        "{info:?}"
    );
    assert!(retry > std::time::Duration::from_secs(3600), "{retry:?}");

    // The operator asks for early renewal of this certificate.
    let serial = hex_serial(&pem);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(["admin", "ari", "mark", "--serial", &serial, "--data-dir"])
        .arg(ca.dir.path().join("data"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("marked 1"));

    // The client sees a window in the past and renews now, saying what it replaces.
    let (info, _) = account.renewal_info(&id).await.unwrap();
    assert!(
        info.suggested_window.end < OffsetDateTime::now_utc(),
        "{info:?}"
    );
    let renewed = renew(&ca, &account, &ids, id.clone()).await;
    verify_chain(&ca.server.root_path, &renewed, "ari.example.com");

    // A certificate is replaced only once.
    let Err(err) = account.new_order(&NewOrder::new(&ids).replaces(id)).await else {
        panic!("second replacement must be refused");
    };
    assert!(format!("{err:?}").contains("alreadyReplaced"), "{err:?}");
}

#[tokio::test]
async fn revocation_moves_the_window_and_replaces_is_checked() {
    let ca = TestCa::start().await;
    let account = ca.account().await;
    let ids = [Identifier::Dns("ari-revoked.example.com".into())];
    let (pem, _) = ca.issue(&account, &ids, ChallengeType::Http01).await;
    let der = CertificateDer::from(pem_chain(&pem).remove(0));
    account
        .revoke(&RevocationRequest {
            certificate: &der,
            reason: None,
        })
        .await
        .unwrap();
    let (info, _) = account.renewal_info(&ari_id(&pem)).await.unwrap();
    assert!(info.suggested_window.end < OffsetDateTime::now_utc());

    // `replaces` must name a certificate of the same account sharing an identifier.
    let other = ca.account().await;
    let Err(err) = other
        .new_order(&NewOrder::new(&ids).replaces(ari_id(&pem)))
        .await
    else {
        panic!("another account's certificate cannot be replaced");
    };
    assert!(format!("{err:?}").contains("unauthorized"), "{err:?}");
    let unrelated = [Identifier::Dns("unrelated.example.com".into())];
    let Err(err) = account
        .new_order(&NewOrder::new(&unrelated).replaces(ari_id(&pem)))
        .await
    else {
        panic!("a replacement must share an identifier");
    };
    assert!(format!("{err:?}").contains("malformed"), "{err:?}");

    // Unknown and malformed identifiers.
    let http = reqwest::Client::builder()
        .add_root_certificate(
            reqwest::Certificate::from_pem(&std::fs::read(&ca.server.tls_root_path).unwrap())
                .unwrap(),
        )
        .build()
        .unwrap();
    let base = ca.directory().replace("/directory", "/acme/renewal-info");
    let resp = http.get(format!("{base}/AAAA.AAAA")).send().await.unwrap();
    assert_eq!(resp.status(), 404);
    let resp = http.get(format!("{base}/not-an-id")).send().await.unwrap();
    assert_eq!(resp.status(), 400);
}

#[allow(clippy::unwrap_used)] // test helper
fn hex_serial(pem: &str) -> String {
    let info = cairn_x509::CertInfo::from_der(&pem_chain(pem)[0]).unwrap();
    info.serial.iter().map(|b| format!("{b:02x}")).collect()
}
