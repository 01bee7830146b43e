//! Debian weak keys (CVE-2008-0166) from an operator's blocklist are refused as account keys
//! (`badPublicKey`, at newAccount and key change) and as certificate keys (`badCSR`); keys not
//! on the list pass.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod harness;

use aws_lc_rs::encoding::AsDer;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use cairn_core::{OrderStatus, ProblemType};
use cairn_pki::{DebianWeakKeys, RsaPublicKey, debian_weak_key_fingerprint};
use cairn_ra::{KeyChangeError, NewAccountRequest};
use der::Decode;
use harness::{Ca, csr};
use rcgen::{KeyPair, PublicKeyData};

/// A fresh RSA-2048 key and its modulus.
struct RsaKey {
    key: KeyPair,
    modulus: Vec<u8>,
}

fn rsa_key() -> RsaKey {
    let kp = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
    // The public key is the PKCS#1 RSAPublicKey.
    let pkcs1 = aws_lc_rs::signature::KeyPair::public_key(&kp)
        .as_ref()
        .to_vec();
    let modulus = RsaPublicKey::from_der(&pkcs1)
        .unwrap()
        .modulus
        .as_bytes()
        .to_vec();
    let pkcs8: aws_lc_rs::encoding::Pkcs8V1Der<'static> = kp.as_der().unwrap();
    RsaKey {
        key: KeyPair::try_from(pkcs8.as_ref()).unwrap(),
        modulus,
    }
}

/// A blocklist listing `key`, as openssl-vulnkey ships them.
fn blocklist(key: &RsaKey) -> DebianWeakKeys {
    let text = format!(
        "# RSA-2048\n{}\n",
        debian_weak_key_fingerprint(&key.modulus)
    );
    let mut keys = DebianWeakKeys::new();
    keys.add_list(&text).unwrap();
    keys
}

fn rsa_account_request(key: &RsaKey) -> NewAccountRequest {
    let thumbprint = cairn_x509::spki_jwk_thumbprint(&key.key.subject_public_key_info()).unwrap();
    NewAccountRequest {
        jwk: serde_json::json!({
            "kty": "RSA",
            "n": URL_SAFE_NO_PAD.encode(&key.modulus),
            "e": "AQAB",
        }),
        thumbprint,
        contact: vec![],
        terms_of_service_agreed: true,
        eab_key_id: None,
        remote_ip: None,
    }
}

#[tokio::test]
async fn a_listed_account_key_is_refused_and_another_passes() {
    let ca = Ca::new();
    let weak = rsa_key();
    // Without a list, the key is an ordinary RSA key.
    let other = Ca::new();
    other
        .ra
        .new_account(rsa_account_request(&weak))
        .await
        .unwrap();

    assert!(ca.ra.refuse_debian_weak_keys(blocklist(&weak)));
    let refused = ca
        .ra
        .new_account(rsa_account_request(&weak))
        .await
        .unwrap_err();
    assert_eq!(refused.typ, ProblemType::BadPublicKey, "{refused:?}");
    assert!(refused.detail.contains("CVE-2008-0166"), "{refused:?}");

    let good = rsa_key();
    let (account, created) = ca.ra.new_account(rsa_account_request(&good)).await.unwrap();
    assert!(created);

    // Rolling over to the weak key is refused as well.
    let weak_request = rsa_account_request(&weak);
    match ca
        .ra
        .change_key(&account, weak_request.jwk, &weak_request.thumbprint)
        .await
    {
        Err(KeyChangeError::Problem(p)) => assert_eq!(p.typ, ProblemType::BadPublicKey, "{p:?}"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_listed_csr_key_is_refused_and_another_passes() {
    let ca = Ca::new();
    let weak = rsa_key();
    assert!(ca.ra.refuse_debian_weak_keys(blocklist(&weak)));
    let account = ca.account().await;
    let names = ["weak.example.net"];
    let order = ca.order(&account, &names).await;
    let order = ca.validate_order(&account, &order).await;
    assert_eq!(order.status, OrderStatus::Ready);

    let refused = ca
        .ra
        .finalize(&account, &order.order.id, &csr(&weak.key, &names))
        .await
        .unwrap_err();
    assert_eq!(refused.typ, ProblemType::BadCsr, "{refused:?}");
    assert!(refused.detail.contains("CVE-2008-0166"), "{refused:?}");
    assert_eq!(ca.issuer.signed(), 0);

    let done = ca
        .ra
        .finalize(&account, &order.order.id, &csr(&rsa_key().key, &names))
        .await
        .unwrap();
    assert_eq!(done.status, OrderStatus::Valid);
}
