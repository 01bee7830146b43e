//! End-to-end RFC 8555 flows with a real ACME client (instant-acme) against the all-in-one CA:
//! each challenge type, wildcards, IP identifiers, key rollover, deactivation and revocation.

mod common;

use common::{TestCa, verify_chain};
use instant_acme::{
    AuthorizationStatus, ChallengeType, Identifier, NewOrder, OrderStatus, RevocationReason,
    RevocationRequest,
};
use rustls_pki_types::CertificateDer;

#[tokio::test]
async fn http01_issues_a_certificate_that_chains_to_the_root() {
    let ca = TestCa::start().await;
    let account = ca.account().await;
    let ids = [Identifier::Dns("http01.example.com".into())];
    let (pem, _key) = ca.issue(&account, &ids, ChallengeType::Http01).await;
    verify_chain(&ca.server.root_path, &pem, "http01.example.com");
    // The CA really fetched the token over HTTP from the responder.
    let history = ca.chall.http_request_history("http01.example.com");
    assert!(!history.is_empty(), "the VA made no HTTP request");
}

#[tokio::test]
async fn dns01_and_wildcard_issue() {
    let ca = TestCa::start().await;
    let account = ca.account().await;
    let ids = [
        Identifier::Dns("*.wild.example.com".into()),
        Identifier::Dns("wild.example.com".into()),
    ];
    let mut order = account.new_order(&NewOrder::new(&ids)).await.unwrap();
    // The wildcard's authorization offers only the DNS methods (dns-account-01 needs
    // `ra.account_uri_prefixes`, unset here).
    {
        let mut authzs = order.authorizations();
        while let Some(a) = authzs.next().await {
            let a = a.unwrap();
            if a.wildcard {
                let types: Vec<_> = a.challenges.iter().map(|c| c.r#type.clone()).collect();
                assert_eq!(
                    types,
                    vec![
                        ChallengeType::Dns01,
                        ChallengeType::Unknown("dns-persist-01".into())
                    ]
                );
            }
        }
    }
    let status = ca.authorize(&mut order, ChallengeType::Dns01).await;
    assert_eq!(status, OrderStatus::Ready);
    let (csr, _key) = common::csr_for(&ids);
    order.finalize_csr(&csr).await.unwrap();
    let pem = order
        .poll_certificate(&instant_acme::RetryPolicy::new())
        .await
        .unwrap();
    verify_chain(&ca.server.root_path, &pem, "anything.wild.example.com");
    verify_chain(&ca.server.root_path, &pem, "wild.example.com");
}

#[tokio::test]
async fn tlsalpn01_issues_for_a_dns_name_and_an_ip_address() {
    let ca = TestCa::start().await;
    let account = ca.account().await;
    let (pem, _) = ca
        .issue(
            &account,
            &[Identifier::Dns("alpn.example.com".into())],
            ChallengeType::TlsAlpn01,
        )
        .await;
    verify_chain(&ca.server.root_path, &pem, "alpn.example.com");
    let (pem, _) = ca
        .issue(
            &account,
            &[Identifier::Ip("127.0.0.1".parse().unwrap())],
            ChallengeType::TlsAlpn01,
        )
        .await;
    verify_chain(&ca.server.root_path, &pem, "127.0.0.1");
}

#[tokio::test]
async fn ip_identifier_validates_over_http01() {
    let ca = TestCa::start().await;
    let account = ca.account().await;
    let ids = [Identifier::Ip("127.0.0.1".parse().unwrap())];
    let mut order = account
        .new_order(&NewOrder::new(&ids).profile("shortlived"))
        .await
        .unwrap();
    {
        let mut authzs = order.authorizations();
        let a = authzs.next().await.unwrap().unwrap();
        assert!(
            !a.challenges
                .iter()
                .any(|c| c.r#type == ChallengeType::Dns01),
            "IP identifiers must not offer dns-01"
        );
    }
    assert_eq!(
        ca.authorize(&mut order, ChallengeType::Http01).await,
        OrderStatus::Ready
    );
}

#[tokio::test]
async fn failed_validation_makes_the_order_invalid() {
    let ca = TestCa::start().await;
    let account = ca.account().await;
    let ids = [Identifier::Dns("wrong.example.com".into())];
    let mut order = account.new_order(&NewOrder::new(&ids)).await.unwrap();
    {
        let mut authzs = order.authorizations();
        let mut a = authzs.next().await.unwrap().unwrap();
        let mut ch = a.challenge(ChallengeType::Http01).unwrap();
        ca.chall.add_http01(&ch.token, "not-the-key-authorization");
        ch.set_ready().await.unwrap();
    }
    let status = order
        .poll_ready(&instant_acme::RetryPolicy::new())
        .await
        .unwrap();
    assert_eq!(status, OrderStatus::Invalid);
    let mut authzs = order.authorizations();
    let a = authzs.next().await.unwrap().unwrap();
    assert_eq!(a.status, AuthorizationStatus::Invalid);
    let err = a.challenges[0].error.as_ref().expect("challenge error");
    assert_eq!(
        err.r#type.as_deref(),
        Some("urn:ietf:params:acme:error:unauthorized")
    );
}

#[tokio::test]
async fn key_rollover_keeps_the_account() {
    let ca = TestCa::start().await;
    let mut account = ca.account().await;
    let id_before = account.id().to_owned();
    let thumb_before = account.key_thumbprint().to_owned();
    let _creds = account.update_key().await.expect("key change");
    assert_eq!(account.id(), id_before);
    assert_ne!(account.key_thumbprint(), thumb_before);
    // The new key works for new requests.
    let (pem, _) = ca
        .issue(
            &account,
            &[Identifier::Dns("rolled.example.com".into())],
            ChallengeType::Http01,
        )
        .await;
    verify_chain(&ca.server.root_path, &pem, "rolled.example.com");
}

#[tokio::test]
async fn authorization_and_account_deactivation() {
    let ca = TestCa::start().await;
    let account = ca.account().await;
    let ids = [Identifier::Dns("deact.example.com".into())];
    let mut order = account.new_order(&NewOrder::new(&ids)).await.unwrap();
    {
        let mut authzs = order.authorizations();
        let mut a = authzs.next().await.unwrap().unwrap();
        let st = a.deactivate().await.expect("deactivate authorization");
        assert_eq!(st.status, AuthorizationStatus::Deactivated);
    }
    assert_eq!(order.refresh().await.unwrap().status, OrderStatus::Invalid);

    let other = ca.account().await;
    other
        .clone()
        .deactivate()
        .await
        .expect("deactivate account");
    let Err(err) = other.new_order(&NewOrder::new(&ids)).await else {
        panic!("a deactivated account cannot order");
    };
    assert!(format!("{err:?}").contains("unauthorized"), "{err:?}");
}

#[tokio::test]
async fn revocation_by_the_owning_account_and_twice_is_refused() {
    let ca = TestCa::start().await;
    let account = ca.account().await;
    let (pem, _) = ca
        .issue(
            &account,
            &[Identifier::Dns("revoke.example.com".into())],
            ChallengeType::Http01,
        )
        .await;
    let der = CertificateDer::from(common::pem_chain(&pem).remove(0));
    account
        .revoke(&RevocationRequest {
            certificate: &der,
            reason: Some(RevocationReason::Superseded),
        })
        .await
        .expect("revocation by owner");
    let err = account
        .revoke(&RevocationRequest {
            certificate: &der,
            reason: None,
        })
        .await
        .expect_err("second revocation");
    assert!(format!("{err:?}").contains("alreadyRevoked"), "{err:?}");
}

#[tokio::test]
async fn revocation_by_another_account_needs_authorizations() {
    let ca = TestCa::start().await;
    let owner = ca.account().await;
    let ids = [Identifier::Dns("shared.example.com".into())];
    let (pem, _) = ca.issue(&owner, &ids, ChallengeType::Http01).await;
    let der = CertificateDer::from(common::pem_chain(&pem).remove(0));
    let stranger = ca.account().await;
    let err = stranger
        .revoke(&RevocationRequest {
            certificate: &der,
            reason: None,
        })
        .await
        .expect_err("an unrelated account may not revoke");
    assert!(format!("{err:?}").contains("unauthorized"), "{err:?}");
    // Once the stranger proves control of the name, it may.
    let mut order = stranger.new_order(&NewOrder::new(&ids)).await.unwrap();
    assert_eq!(
        ca.authorize(&mut order, ChallengeType::Dns01).await,
        OrderStatus::Ready
    );
    stranger
        .revoke(&RevocationRequest {
            certificate: &der,
            reason: Some(RevocationReason::KeyCompromise),
        })
        .await
        .expect("revocation by an authorized account");
}

#[tokio::test]
async fn caa_records_are_enforced_at_validation() {
    use cairn_challtestsrv::CaaPolicy;
    let ca = TestCa::start().await;
    let account = ca.account().await;
    // A CAA record on the parent naming another CA forbids issuance for names below it.
    ca.chall.add_caa(
        "caa-deny.example.com",
        &[CaaPolicy::new("issue", "other-ca.example")],
    );
    let ids = [Identifier::Dns("www.caa-deny.example.com".into())];
    let mut order = account.new_order(&NewOrder::new(&ids)).await.unwrap();
    assert_eq!(
        ca.authorize(&mut order, ChallengeType::Http01).await,
        OrderStatus::Invalid
    );
    let mut authzs = order.authorizations();
    let a = authzs.next().await.unwrap().unwrap();
    let err = a.challenges[0].error.as_ref().expect("challenge error");
    assert_eq!(
        err.r#type.as_deref(),
        Some("urn:ietf:params:acme:error:caa")
    );

    // A record naming this CA's identity (the default `cairn.invalid`) allows it.
    ca.chall.add_caa(
        "caa-allow.example.com",
        &[CaaPolicy::new("issue", "cairn.invalid")],
    );
    let (pem, _) = ca
        .issue(
            &account,
            &[Identifier::Dns("caa-allow.example.com".into())],
            ChallengeType::Http01,
        )
        .await;
    verify_chain(&ca.server.root_path, &pem, "caa-allow.example.com");
}

/// Public CA semantics by default: without `[va] allow_private_addresses`, a name whose DNS
/// answer is 127.0.0.1 fails validation before any connection, and an order for a private IP
/// address or a reserved domain is refused at newOrder.
#[tokio::test]
async fn a_public_ca_neither_validates_against_nor_issues_for_private_addresses() {
    let ca = TestCa::start_with(|cfg| cfg.va.allow_private_addresses = false).await;
    let account = ca.account().await;
    let ids = [Identifier::Dns("loopback.example.com".into())];
    let mut order = account.new_order(&NewOrder::new(&ids)).await.unwrap();
    {
        let mut authzs = order.authorizations();
        let mut a = authzs.next().await.unwrap().unwrap();
        let mut ch = a.challenge(ChallengeType::Http01).unwrap();
        let key_auth = ch.key_authorization();
        ca.chall.add_http01(&ch.token, key_auth.as_str());
        ch.set_ready().await.unwrap();
    }
    let status = order
        .poll_ready(&instant_acme::RetryPolicy::new())
        .await
        .unwrap();
    assert_eq!(status, OrderStatus::Invalid);
    let mut authzs = order.authorizations();
    let a = authzs.next().await.unwrap().unwrap();
    let err = a.challenges[0].error.as_ref().expect("challenge error");
    assert_eq!(
        err.r#type.as_deref(),
        Some("urn:ietf:params:acme:error:dns")
    );
    let detail = err.detail.as_deref().unwrap_or_default();
    assert!(
        detail.contains("127.0.0.1 is not a public address"),
        "{detail}"
    );
    assert!(
        ca.chall
            .http_request_history("loopback.example.com")
            .is_empty(),
        "the VA must not connect"
    );

    for id in [
        Identifier::Ip("127.0.0.1".parse().unwrap()),
        Identifier::Ip("::ffff:10.0.0.1".parse().unwrap()),
        Identifier::Dns("db.internal".into()),
        Identifier::Dns("co.uk".into()),
    ] {
        let refused = account
            .new_order(&NewOrder::new(std::slice::from_ref(&id)).profile("shortlived"))
            .await;
        match refused {
            Err(instant_acme::Error::Api(p)) => assert_eq!(
                p.r#type.as_deref(),
                Some("urn:ietf:params:acme:error:rejectedIdentifier"),
                "{id:?}: {p:?}"
            ),
            Err(e) => panic!("{id:?}: expected rejectedIdentifier, got {e:?}"),
            Ok(_) => panic!("{id:?}: expected rejectedIdentifier, the order was created"),
        }
    }
}
