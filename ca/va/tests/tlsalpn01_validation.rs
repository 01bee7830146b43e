//! tls-alpn-01 validation against the challenge test server and hand-made TLS servers.
// Test setup code outside #[test] functions may unwrap too (see clippy.toml).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use cairn_core::{ChallengeType::TlsAlpn01, Identifier, ProblemType};
use cairn_va::{ACME_TLS_1, ValidationAuthority};
use rcgen::{CertificateParams, CustomExtension, KeyPair, SanType};
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use std::sync::Arc;
use support::*;

#[tokio::test]
async fn tlsalpn01_succeeds_for_a_dns_name() {
    let env = env().await;
    env.srv.add_tlsalpn01("example.com", KEY_AUTH);
    let o = env
        .validate(Identifier::dns("example.com"), TlsAlpn01, KEY_AUTH)
        .await;
    assert_valid(&o);
    let port = env.srv.tlsalpn01_addr().unwrap().port().to_string();
    assert_eq!(o.records[0].port.as_deref(), Some(port.as_str()));
    assert_eq!(o.records[0].hostname.as_deref(), Some("example.com"));
    assert_eq!(o.records[0].address_used.as_deref(), Some("127.0.0.1"));
    let seen = env.srv.tlsalpn01_request_history("example.com");
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].supported_protos, ["acme-tls/1"]);
}

#[tokio::test]
async fn tlsalpn01_succeeds_for_an_ip_address_with_reverse_name_sni() {
    let env = env().await;
    env.srv.add_tlsalpn01("127.0.0.1", KEY_AUTH);
    let o = env
        .validate(
            Identifier::ip("127.0.0.1".parse().unwrap()),
            TlsAlpn01,
            KEY_AUTH,
        )
        .await;
    assert_valid(&o);
    let seen = env.srv.tlsalpn01_request_history("1.0.0.127.in-addr.arpa");
    assert_eq!(seen.len(), 1, "the SNI must be the reverse-DNS name");
}

#[tokio::test]
async fn tlsalpn01_wrong_key_authorization_is_unauthorized() {
    let env = env().await;
    env.srv.add_tlsalpn01("example.com", "tok123.someone-else");
    let o = env
        .validate(Identifier::dns("example.com"), TlsAlpn01, KEY_AUTH)
        .await;
    assert_problem(&o, ProblemType::Unauthorized, "acmeIdentifier");
}

#[tokio::test]
async fn tlsalpn01_without_a_registered_response_fails_the_handshake() {
    let env = env().await;
    let o = env
        .validate(Identifier::dns("example.com"), TlsAlpn01, KEY_AUTH)
        .await;
    assert_problem(&o, ProblemType::Tls, "TLS handshake failed");
}

/// Starts a one-purpose TLS server on loopback presenting `cert` with the given ALPN list.
async fn custom_server(params: CertificateParams, alpn: Vec<Vec<u8>>) -> u16 {
    custom_server_with(params, alpn, rustls::DEFAULT_VERSIONS).await
}

/// As [`custom_server`], limited to the given TLS versions.
async fn custom_server_with(
    params: CertificateParams,
    alpn: Vec<Vec<u8>>,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> u16 {
    let key = KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let signing_key = provider
        .key_provider
        .load_private_key(PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
            key.serialize_der(),
        )))
        .unwrap();
    // `with_single_cert` would refuse the critical acmeIdentifier extension.
    let certified = rustls::sign::CertifiedKey::new(vec![cert.der().clone()], signing_key);
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .unwrap()
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(rustls::sign::SingleCertAndKey::from(certified)));
    cfg.alpn_protocols = alpn;
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(cfg));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                if let Ok(mut tls) = acceptor.accept(s).await {
                    let _ = tokio::io::copy(&mut tls, &mut tokio::io::sink()).await;
                }
            });
        }
    });
    port
}

fn challenge_params(san: SanType, key_auth: &str) -> CertificateParams {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, key_auth.as_bytes());
    let mut p = CertificateParams::default();
    p.subject_alt_names = vec![san];
    p.custom_extensions
        .push(CustomExtension::new_acme_identifier(digest.as_ref()));
    p
}

async fn validate_against(env: &Env, port: u16, id: Identifier) -> cairn_va::ValidationOutcome {
    let va = va_for(&env.srv, |c| c.tlsalpn01_port = port);
    va.validate(request(id, TlsAlpn01, KEY_AUTH)).await
}

#[tokio::test]
async fn tlsalpn01_server_without_the_alpn_is_rejected() {
    let env = env().await;
    let params = challenge_params(
        SanType::DnsName("example.com".try_into().unwrap()),
        KEY_AUTH,
    );
    // No ALPN configured: the handshake completes without a negotiated protocol.
    let port = custom_server(params.clone(), Vec::new()).await;
    let o = validate_against(&env, port, Identifier::dns("example.com")).await;
    assert_problem(&o, ProblemType::Unauthorized, "Cannot negotiate ALPN");
    // Other protocols only: the server answers with a no_application_protocol alert.
    let port = custom_server(params, vec![b"http/1.1".to_vec()]).await;
    let o = validate_against(&env, port, Identifier::dns("example.com")).await;
    assert_problem(&o, ProblemType::Unauthorized, "Cannot negotiate ALPN");

    // Control: the same certificate with the ALPN passes.
    let params = challenge_params(
        SanType::DnsName("example.com".try_into().unwrap()),
        KEY_AUTH,
    );
    let port = custom_server(params, vec![ACME_TLS_1.to_vec()]).await;
    let o = validate_against(&env, port, Identifier::dns("example.com")).await;
    assert_valid(&o);
}

#[tokio::test]
async fn tlsalpn01_certificate_must_name_exactly_the_identifier() {
    let env = env().await;
    let params = challenge_params(
        SanType::DnsName("other.example".try_into().unwrap()),
        KEY_AUTH,
    );
    let port = custom_server(params, vec![ACME_TLS_1.to_vec()]).await;
    let o = validate_against(&env, port, Identifier::dns("example.com")).await;
    assert_problem(&o, ProblemType::Unauthorized, "exactly one subjectAltName");

    let mut params = challenge_params(
        SanType::DnsName("example.com".try_into().unwrap()),
        KEY_AUTH,
    );
    params
        .subject_alt_names
        .push(SanType::DnsName("extra.example".try_into().unwrap()));
    let port = custom_server(params, vec![ACME_TLS_1.to_vec()]).await;
    let o = validate_against(&env, port, Identifier::dns("example.com")).await;
    assert_problem(&o, ProblemType::Unauthorized, "exactly one subjectAltName");
}

#[tokio::test]
async fn tlsalpn01_acme_identifier_must_be_present_and_critical() {
    let env = env().await;
    let mut params = CertificateParams::default();
    params.subject_alt_names = vec![SanType::DnsName("example.com".try_into().unwrap())];
    let port = custom_server(params, vec![ACME_TLS_1.to_vec()]).await;
    let o = validate_against(&env, port, Identifier::dns("example.com")).await;
    assert_problem(&o, ProblemType::Unauthorized, "no acmeIdentifier");

    let mut params = challenge_params(
        SanType::DnsName("example.com".try_into().unwrap()),
        KEY_AUTH,
    );
    for ext in &mut params.custom_extensions {
        ext.set_criticality(false);
    }
    let port = custom_server(params, vec![ACME_TLS_1.to_vec()]).await;
    let o = validate_against(&env, port, Identifier::dns("example.com")).await;
    assert_problem(&o, ProblemType::Unauthorized, "not critical");
}

#[tokio::test]
async fn tlsalpn01_connection_refused_is_a_connection_problem() {
    let env = env().await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let o = validate_against(&env, closed, Identifier::dns("example.com")).await;
    assert_problem(&o, ProblemType::Connection, "Connection refused");
}

#[tokio::test]
async fn tlsalpn01_works_over_tls12_too() {
    let env = env().await;
    for versions in [
        &[&rustls::version::TLS12][..],
        &[&rustls::version::TLS13][..],
    ] {
        let params = challenge_params(
            SanType::DnsName("example.com".try_into().unwrap()),
            KEY_AUTH,
        );
        let port = custom_server_with(params, vec![ACME_TLS_1.to_vec()], versions).await;
        let o = validate_against(&env, port, Identifier::dns("example.com")).await;
        assert_valid(&o);
    }
}

/// Challenge certificates with Go's zero time (year 1) as both validity dates, as the challenge
/// servers of Pebble and Boulder make them: RFC 8737 puts no requirement on the dates, so the
/// handshake (TLS 1.3 and 1.2) and the check succeed.
#[tokio::test]
async fn tlsalpn01_accepts_challenge_certificates_with_zero_validity_dates() {
    let env = env().await;
    let year_one = rcgen::date_time_ymd(1, 1, 1);
    for versions in [rustls::DEFAULT_VERSIONS, &[&rustls::version::TLS12][..]] {
        let mut params = challenge_params(
            SanType::DnsName("example.com".try_into().unwrap()),
            KEY_AUTH,
        );
        params.not_before = year_one;
        params.not_after = year_one;
        let port = custom_server_with(params, vec![ACME_TLS_1.to_vec()], versions).await;
        let o = validate_against(&env, port, Identifier::dns("example.com")).await;
        assert_valid(&o);
    }
    // The certificate is still checked: a wrong digest with zero dates is refused.
    let mut params = challenge_params(
        SanType::DnsName("example.com".try_into().unwrap()),
        "another.key-authorization",
    );
    params.not_before = year_one;
    params.not_after = year_one;
    let port = custom_server(params, vec![ACME_TLS_1.to_vec()]).await;
    let o = validate_against(&env, port, Identifier::dns("example.com")).await;
    assert_problem(
        &o,
        ProblemType::Unauthorized,
        "does not match the key authorization",
    );
}
