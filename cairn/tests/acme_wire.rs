//! RFC 8555 on the wire: headers, problem documents for every kind of bad input (and that bad
//! input writes nothing), the account's orders list, revocation by the certificate's own key,
//! and External Account Binding.

mod common;

use common::TestCa;
use common::raw::{RawClient, b64, expect_problem, jwk_of, new_p256, sign};
use serde_json::{Value, json};

async fn client(ca: &TestCa) -> RawClient {
    RawClient::new(ca.directory(), &ca.server.root_path).await
}

#[tokio::test]
async fn directory_and_nonces() {
    let ca = TestCa::start().await;
    let c = client(&ca).await;
    for k in [
        "newNonce",
        "newAccount",
        "newOrder",
        "revokeCert",
        "keyChange",
    ] {
        assert!(
            c.directory[k].as_str().unwrap().starts_with("https://"),
            "{k}"
        );
    }
    assert_eq!(c.directory["meta"]["externalAccountRequired"], false);
    assert!(c.directory["meta"]["termsOfService"].is_string());
    let head = c.http.head(c.url("newNonce")).send().await.unwrap();
    assert_eq!(head.status(), 200);
    assert_eq!(head.headers()["cache-control"], "no-store");
    let get = c.http.get(c.url("newNonce")).send().await.unwrap();
    assert_eq!(get.status(), 204);
    let n1 = head.headers()["replay-nonce"].to_str().unwrap();
    let n2 = get.headers()["replay-nonce"].to_str().unwrap();
    assert_ne!(n1, n2);
    let link = get.headers()["link"].to_str().unwrap();
    assert!(link.contains("rel=\"index\""), "{link}");
}

#[tokio::test]
async fn accounts_are_found_by_key_and_only_return_existing() {
    let ca = TestCa::start().await;
    let mut c = client(&ca).await;
    let missing = c
        .post(
            &c.url("newAccount"),
            Some(&json!({"onlyReturnExisting": true})),
        )
        .await;
    expect_problem(missing, 400, "accountDoesNotExist").await;
    let url = c.register().await;
    c.kid = None;
    let again = c
        .post(
            &c.url("newAccount"),
            Some(&json!({"termsOfServiceAgreed": true})),
        )
        .await;
    assert_eq!(again.status(), 200, "an existing key returns its account");
    assert_eq!(again.headers()["location"].to_str().unwrap(), url);
    let found = c
        .post(
            &c.url("newAccount"),
            Some(&json!({"onlyReturnExisting": true})),
        )
        .await;
    assert_eq!(found.status(), 200);
    assert_eq!(found.headers()["location"].to_str().unwrap(), url);
}

#[tokio::test]
async fn bad_requests_get_problem_documents_and_write_nothing() {
    let ca = TestCa::start().await;
    let c = client(&ca).await;
    let new_acct = c.url("newAccount");
    let good_payload = json!({"termsOfServiceAgreed": true});

    // Not JSON at all.
    expect_problem(
        c.post_body(&new_acct, b"{not json".to_vec()).await,
        400,
        "malformed",
    )
    .await;
    // Bad base64 in the protected header.
    let bad_b64 = json!({"protected": "***", "payload": "", "signature": "AA"});
    expect_problem(
        c.post_body(&new_acct, bad_b64.to_string().into_bytes())
            .await,
        400,
        "malformed",
    )
    .await;
    // Wrong content type.
    let h = c.header(&new_acct).await;
    let jws = sign(&c.key, &h, Some(&good_payload));
    let resp = c
        .http
        .post(&new_acct)
        .header("content-type", "application/json")
        .body(jws.to_string())
        .send()
        .await
        .unwrap();
    expect_problem(resp, 415, "malformed").await;
    // Oversized body.
    let huge = vec![b'a'; 100 * 1024];
    expect_problem(c.post_body(&new_acct, huge).await, 413, "malformed").await;
    // Wrong url in the protected header.
    let mut h = c.header(&new_acct).await;
    h["url"] = json!(c.url("newOrder"));
    let resp = c
        .post_body(
            &new_acct,
            sign(&c.key, &h, Some(&good_payload))
                .to_string()
                .into_bytes(),
        )
        .await;
    expect_problem(resp, 403, "unauthorized").await;
    // Unknown nonce, then a reused one.
    let mut h = c.header(&new_acct).await;
    h["nonce"] = json!(b64(b"made-up-nonce"));
    let resp = c
        .post_body(
            &new_acct,
            sign(&c.key, &h, Some(&good_payload))
                .to_string()
                .into_bytes(),
        )
        .await;
    expect_problem(resp, 400, "badNonce").await;
    // alg none.
    let mut h = c.header(&new_acct).await;
    h["alg"] = json!("none");
    let resp = c
        .post_body(
            &new_acct,
            sign(&c.key, &h, Some(&good_payload))
                .to_string()
                .into_bytes(),
        )
        .await;
    expect_problem(resp, 400, "badSignatureAlgorithm").await;
    // A signature that does not verify.
    let h = c.header(&new_acct).await;
    let mut jws = sign(&c.key, &h, Some(&good_payload));
    jws["payload"] = json!(b64(b"{\"termsOfServiceAgreed\":false}"));
    expect_problem(
        c.post_body(&new_acct, jws.to_string().into_bytes()).await,
        400,
        "malformed",
    )
    .await;
    // An unknown kid.
    let mut h = c.header(&new_acct).await;
    h.as_object_mut().unwrap().remove("jwk");
    h["kid"] = json!(format!(
        "{}x",
        c.url("newAccount").replace("new-acct", "acct/nope")
    ));
    h["url"] = json!(c.url("newOrder"));
    let resp = c
        .post_body(
            &c.url("newOrder"),
            sign(&c.key, &h, Some(&json!({"identifiers": []})))
                .to_string()
                .into_bytes(),
        )
        .await;
    expect_problem(resp, 400, "accountDoesNotExist").await;

    // None of that created an account for this key.
    let resp = c
        .post(&new_acct, Some(&json!({"onlyReturnExisting": true})))
        .await;
    expect_problem(resp, 400, "accountDoesNotExist").await;

    // A replayed request (same nonce twice) is refused the second time.
    let h = c.header(&new_acct).await;
    let jws = sign(&c.key, &h, Some(&good_payload))
        .to_string()
        .into_bytes();
    assert_eq!(c.post_body(&new_acct, jws.clone()).await.status(), 201);
    expect_problem(c.post_body(&new_acct, jws).await, 400, "badNonce").await;
}

#[tokio::test]
async fn bad_orders_and_csrs_are_refused_cleanly() {
    let ca = TestCa::start().await;
    let mut c = client(&ca).await;
    let acct = c.register().await;
    let new_order = c.url("newOrder");
    let resp = c
        .post(
            &new_order,
            Some(&json!({"identifiers": [{"type": "email", "value": "a@example.com"}]})),
        )
        .await;
    expect_problem(resp, 400, "unsupportedIdentifier").await;
    let resp = c
        .post(
            &new_order,
            Some(&json!({"identifiers": [{"type": "dns", "value": "bad name.example"}]})),
        )
        .await;
    expect_problem(resp, 400, "rejectedIdentifier").await;
    let resp = c.post(&new_order, Some(&json!({"identifiers": []}))).await;
    expect_problem(resp, 400, "malformed").await;
    // Nothing above created an order.
    let list: Value = c
        .post(&format!("{acct}/orders"), None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list["orders"].as_array().unwrap().len(), 0);

    // A real order, finalized too early and with garbage.
    let resp = c
        .post(
            &new_order,
            Some(&json!({"identifiers": [{"type": "dns", "value": "csr.example.com"}]})),
        )
        .await;
    assert_eq!(resp.status(), 201);
    let order_url = resp.headers()["location"].to_str().unwrap().to_owned();
    let order: Value = resp.json().await.unwrap();
    let finalize = order["finalize"].as_str().unwrap();
    let resp = c
        .post(finalize, Some(&json!({"csr": b64(b"garbage")})))
        .await;
    expect_problem(resp, 403, "orderNotReady").await;
    let list: Value = c
        .post(&format!("{acct}/orders"), None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list["orders"], json!([order_url]));

    // Validate it, then send a garbage CSR and a CSR for other names.
    let authz_url = order["authorizations"][0].as_str().unwrap();
    let authz: Value = c.post(authz_url, None).await.json().await.unwrap();
    let ch = authz["challenges"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "dns-01")
        .unwrap();
    let thumb = thumbprint(&jwk_of(&c.key));
    let key_auth = format!("{}.{}", ch["token"].as_str().unwrap(), thumb);
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, key_auth.as_bytes());
    ca.chall
        .set_txt("_acme-challenge.csr.example.com.", &b64(digest.as_ref()));
    let resp = c.post(ch["url"].as_str().unwrap(), Some(&json!({}))).await;
    assert_eq!(resp.status(), 200);
    for _ in 0..50 {
        let o: Value = c.post(&order_url, None).await.json().await.unwrap();
        if o["status"] == "ready" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let resp = c
        .post(finalize, Some(&json!({"csr": b64(b"garbage")})))
        .await;
    expect_problem(resp, 400, "badCSR").await;
    let (other_csr, _) =
        common::csr_for(&[instant_acme::Identifier::Dns("other.example.com".into())]);
    let resp = c
        .post(finalize, Some(&json!({"csr": b64(&other_csr)})))
        .await;
    expect_problem(resp, 400, "badCSR").await;
    // The order is still ready: bad CSRs changed nothing.
    let o: Value = c.post(&order_url, None).await.json().await.unwrap();
    assert_eq!(o["status"], "ready");
}

/// RFC 7638 thumbprint of a P-256 JWK (independent of the server's implementation).
#[allow(clippy::unwrap_used)] // test helper
fn thumbprint(jwk: &Value) -> String {
    let canonical = format!(
        r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
        jwk["x"].as_str().unwrap(),
        jwk["y"].as_str().unwrap()
    );
    b64(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, canonical.as_bytes()).as_ref())
}

#[tokio::test]
async fn revocation_by_the_certificate_key() {
    use instant_acme::{ChallengeType, Identifier};
    let ca = TestCa::start().await;
    let account = ca.account().await;
    let ids = [Identifier::Dns("keyrevoke.example.com".into())];
    let (pem, key) = ca.issue(&account, &ids, ChallengeType::Http01).await;
    let der = common::pem_chain(&pem).remove(0);

    let c = client(&ca).await;
    let revoke_url = c.url("revokeCert");
    let payload = json!({"certificate": b64(&der), "reason": 1});
    // Signed by an unrelated key: refused.
    let stranger = new_p256();
    let h = json!({"alg": "ES256", "nonce": c.nonce().await, "url": revoke_url, "jwk": jwk_of(&stranger)});
    let resp = c
        .post_body(
            &revoke_url,
            sign(&stranger, &h, Some(&payload)).to_string().into_bytes(),
        )
        .await;
    expect_problem(resp, 403, "unauthorized").await;
    // Signed by the certificate's own key: accepted.
    let cert_key = aws_lc_rs::signature::EcdsaKeyPair::from_pkcs8(
        &aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
        &key.serialize_der(),
    )
    .unwrap();
    let h = json!({"alg": "ES256", "nonce": c.nonce().await, "url": revoke_url, "jwk": jwk_of(&cert_key)});
    let resp = c
        .post_body(
            &revoke_url,
            sign(&cert_key, &h, Some(&payload)).to_string().into_bytes(),
        )
        .await;
    assert_eq!(resp.status(), 200, "{:?}", resp.text().await);
    // A bad reason code is refused.
    let bad = json!({"certificate": b64(&der), "reason": 7});
    let h = json!({"alg": "ES256", "nonce": c.nonce().await, "url": revoke_url, "jwk": jwk_of(&cert_key)});
    let resp = c
        .post_body(
            &revoke_url,
            sign(&cert_key, &h, Some(&bad)).to_string().into_bytes(),
        )
        .await;
    expect_problem(resp, 400, "badRevocationReason").await;
}

#[tokio::test]
async fn external_account_binding_is_required_and_single_use() {
    let ca = TestCa::start_with(|cfg| cfg.ra.external_account_required = true).await;
    let mut c = client(&ca).await;
    assert_eq!(c.directory["meta"]["externalAccountRequired"], true);
    let new_acct = c.url("newAccount");
    let resp = c
        .post(&new_acct, Some(&json!({"termsOfServiceAgreed": true})))
        .await;
    expect_problem(resp, 400, "externalAccountRequired").await;

    // An operator creates a key (what `cairn admin eab new` does), sealed with the server's key.
    let data_dir = ca.dir.path().join("data");
    let storage = cairn_sa::SqlStorage::open_sqlite_in(&data_dir)
        .await
        .unwrap()
        .with_eab_seal(cairn::data_dir::eab_seal(&data_dir).unwrap());
    let key = cairn_core::EabKey {
        key_id: "kid-1".into(),
        hmac_key: vec![7u8; 32],
        created_at: time::OffsetDateTime::now_utc(),
        bound_account: None,
    };
    cairn_sa::StorageAuthority::new_eab_key(&storage, &key)
        .await
        .unwrap();

    let eab_for = |account_key: &aws_lc_rs::signature::EcdsaKeyPair, hmac: &[u8]| {
        let protected = b64(json!({"alg": "HS256", "kid": "kid-1", "url": new_acct})
            .to_string()
            .as_bytes());
        let payload = b64(jwk_of(account_key).to_string().as_bytes());
        let k = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, hmac);
        let tag = aws_lc_rs::hmac::sign(&k, format!("{protected}.{payload}").as_bytes());
        json!({"protected": protected, "payload": payload, "signature": b64(tag.as_ref())})
    };
    // Wrong MAC key: refused.
    let body = json!({"termsOfServiceAgreed": true, "externalAccountBinding": eab_for(&c.key, &[8u8; 32])});
    expect_problem(c.post(&new_acct, Some(&body)).await, 403, "unauthorized").await;
    // Right MAC key: created.
    let body = json!({"termsOfServiceAgreed": true, "externalAccountBinding": eab_for(&c.key, &[7u8; 32])});
    assert_eq!(c.post(&new_acct, Some(&body)).await.status(), 201);
    // The same EAB key cannot bind a second account.
    c.key = new_p256();
    let body = json!({"termsOfServiceAgreed": true, "externalAccountBinding": eab_for(&c.key, &[7u8; 32])});
    expect_problem(c.post(&new_acct, Some(&body)).await, 403, "unauthorized").await;
}

#[tokio::test]
async fn certificate_download_offers_an_alternate_chain() {
    use instant_acme::{Account, ChallengeType, Identifier, NewAccount};
    let ca = TestCa::start().await;
    let (account, creds) = Account::builder_with_root(&ca.server.root_path)
        .unwrap()
        .create(
            &NewAccount {
                contact: &[],
                terms_of_service_agreed: true,
                only_return_existing: false,
            },
            ca.directory().to_owned(),
            None,
        )
        .await
        .unwrap();
    let ids = [Identifier::Dns("alt.example.com".into())];
    let (pem, _) = ca.issue(&account, &ids, ChallengeType::Http01).await;
    let default_chain = common::pem_chain(&pem);
    assert_eq!(default_chain.len(), 2, "leaf + intermediate");
    let serial: String = cairn_x509::CertInfo::from_der(&default_chain[0])
        .unwrap()
        .serial
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();

    // Another account cannot download it.
    let mut stranger = client(&ca).await;
    stranger.register().await;
    let cert_url = stranger
        .url("newAccount")
        .replace("new-acct", &format!("cert/{serial}"));
    expect_problem(stranger.post(&cert_url, None).await, 404, "malformed").await;

    // The owner (a raw client holding the same account key) gets the PEM chain with a Link to
    // the alternate, which adds the root.
    let mut owner = client(&ca).await;
    owner.key = aws_lc_rs::signature::EcdsaKeyPair::from_pkcs8(
        &aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
        creds.private_key().secret_pkcs8_der(),
    )
    .unwrap();
    owner.kid = Some(account.id().to_owned());
    let resp = owner.post(&cert_url, None).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()["content-type"],
        "application/pem-certificate-chain"
    );
    let alternate = resp
        .headers()
        .get_all("link")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|l| l.contains("rel=\"alternate\""))
        .and_then(|l| {
            l.split_once('<')
                .and_then(|(_, r)| r.split_once('>'))
                .map(|(u, _)| u.to_owned())
        })
        .expect("Link rel=alternate");
    assert_eq!(resp.text().await.unwrap(), pem);
    let alt = owner.post(&alternate, None).await.text().await.unwrap();
    let alt_chain = common::pem_chain(&alt);
    assert_eq!(alt_chain.len(), 3, "leaf + intermediate + root");
    assert_eq!(alt_chain[0], default_chain[0]);
}

#[tokio::test]
async fn nonces_on_post_responses_and_new_nonce_only() {
    let ca = TestCa::start().await;
    let c = client(&ca).await;
    let dir = c.http.get(ca.directory()).send().await.unwrap();
    assert!(
        !dir.headers().contains_key("replay-nonce"),
        "GET directory mints no nonce"
    );
    let missing = c
        .http
        .post(c.url("newOrder") + "/nope")
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    assert!(
        missing.headers().contains_key("replay-nonce"),
        "error responses to POSTs carry one too"
    );
    let ari = c
        .http
        .get(c.url("renewalInfo") + "/not-a-cert-id")
        .send()
        .await
        .unwrap();
    assert!(ari.status().is_client_error(), "{}", ari.status());
    assert!(
        !ari.headers().contains_key("replay-nonce"),
        "cacheable renewal information mints no nonce"
    );
    let head = c.http.head(c.url("newNonce")).send().await.unwrap();
    assert!(head.headers().contains_key("replay-nonce"));
    let post = c
        .post(
            &c.url("newAccount"),
            Some(&json!({"onlyReturnExisting": true})),
        )
        .await;
    assert!(
        post.headers().contains_key("replay-nonce"),
        "POST responses carry a nonce"
    );
}
