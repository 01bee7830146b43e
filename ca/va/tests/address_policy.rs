//! The address policy in validation: DNS answers, redirect hops and IP identifiers that point
//! at loopback, private or other special-purpose addresses are refused by default (a public
//! CA), and accepted only when the operator allows private addresses. Also: the VA's one
//! deadline covers the CAA check, and response bytes never reach a problem detail.
// Test setup code outside #[test] functions may unwrap too (see clippy.toml).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use cairn_core::{AddressPolicy, ChallengeType, Identifier, ProblemType};
use cairn_va::{CaaCheck, ValidationAuthority};
use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};
use support::*;

use ChallengeType::{Http01, TlsAlpn01};

/// A VA with the public-CA default policy, against the test server (whose DNS answers
/// 127.0.0.1 for every name unless told otherwise).
fn public_va(env: &Env) -> cairn_va::Va {
    va_for(&env.srv, |c| c.address_policy = AddressPolicy::PublicOnly)
}

async fn validate(
    va: &cairn_va::Va,
    id: Identifier,
    typ: ChallengeType,
) -> cairn_va::ValidationOutcome {
    va.validate(request(id, typ, KEY_AUTH)).await
}

#[tokio::test]
async fn the_default_policy_is_public_only() {
    assert_eq!(
        cairn_va::VaConfig::default().address_policy,
        AddressPolicy::PublicOnly
    );
}

#[tokio::test]
async fn http01_to_a_name_resolving_to_loopback_is_refused_by_default_and_allowed_when_opted_in() {
    let env = env().await;
    env.srv.add_http01(TOKEN, KEY_AUTH);
    let o = validate(&public_va(&env), Identifier::dns("example.com"), Http01).await;
    assert_problem(
        &o,
        ProblemType::Dns,
        "127.0.0.1 is not a public address (loopback",
    );
    // Nothing was fetched.
    assert!(env.srv.srv().http_request_history("example.com").is_empty());
    // The resolved address is still recorded, and none was used.
    assert_eq!(
        o.records.len(),
        0,
        "no hop is recorded before the address check"
    );

    // The private-PKI opt-in (the shared test set-up) validates the same name.
    let o = env
        .validate(Identifier::dns("example.com"), Http01, KEY_AUTH)
        .await;
    assert_valid(&o);
}

#[tokio::test]
async fn http01_to_rfc1918_metadata_and_mapped_addresses_is_refused() {
    let env = env().await;
    env.srv.add_http01(TOKEN, KEY_AUTH);
    env.srv.add_a("ten.example", &[Ipv4Addr::new(10, 0, 0, 1)]);
    env.srv
        .add_a("metadata.example", &[Ipv4Addr::new(169, 254, 169, 254)]);
    env.srv
        .add_a("cgnat.example", &[Ipv4Addr::new(100, 64, 0, 1)]);
    env.srv
        .add_a("bench.example", &[Ipv4Addr::new(198, 18, 0, 1)]);
    env.srv.add_a("zero.example", &[Ipv4Addr::new(0, 1, 2, 3)]);
    env.srv
        .add_a("reserved.example", &[Ipv4Addr::new(240, 0, 0, 1)]);
    for (name, range) in [
        ("ten.example", "10.0.0.0/8"),
        ("metadata.example", "169.254.0.0/16"),
        ("cgnat.example", "100.64.0.0/10"),
        ("bench.example", "198.18.0.0/15"),
        ("zero.example", "0.0.0.0/8"),
        ("reserved.example", "240.0.0.0/4"),
    ] {
        let o = validate(&public_va(&env), Identifier::dns(name), Http01).await;
        assert_problem(&o, ProblemType::Dns, range);
    }
    // IPv6 answers only: an IPv4-mapped private address and a NAT64 one.
    for (name, addr) in [
        ("mapped.example", "::ffff:10.0.0.1"),
        ("nat64.example", "64:ff9b::a00:1"),
        ("ula.example", "fd00::1"),
    ] {
        env.srv.add_aaaa(name, &[addr.parse().unwrap()]);
        env.srv.set_default_ipv4(None);
        let o = validate(&public_va(&env), Identifier::dns(name), Http01).await;
        assert_problem(&o, ProblemType::Dns, "is not a public address");
    }
}

#[tokio::test]
async fn ip_identifiers_for_private_addresses_are_refused_by_default() {
    let env = env().await;
    env.srv.add_http01(TOKEN, KEY_AUTH);
    env.srv.add_tlsalpn01("127.0.0.1", KEY_AUTH);
    for typ in [Http01, TlsAlpn01] {
        let o = validate(
            &public_va(&env),
            Identifier::ip(Ipv4Addr::LOCALHOST.into()),
            typ,
        )
        .await;
        assert_problem(
            &o,
            ProblemType::RejectedIdentifier,
            "127.0.0.1 is not a public address",
        );
    }
    assert!(env.srv.srv().http_request_history("127.0.0.1").is_empty());
}

#[tokio::test]
async fn tlsalpn01_to_a_name_resolving_to_loopback_is_refused_by_default() {
    let env = env().await;
    env.srv.add_tlsalpn01("example.com", KEY_AUTH);
    let o = validate(&public_va(&env), Identifier::dns("example.com"), TlsAlpn01).await;
    assert_problem(&o, ProblemType::Dns, "127.0.0.1 is not a public address");
    assert!(
        env.srv
            .srv()
            .tlsalpn01_request_history("example.com")
            .is_empty()
    );
    let o = env
        .validate(Identifier::dns("example.com"), TlsAlpn01, KEY_AUTH)
        .await;
    assert_valid(&o);
}

#[tokio::test]
async fn redirects_to_ip_literals_are_refused_even_for_a_private_pki() {
    let env = env().await;
    env.srv.add_http01("final", KEY_AUTH);
    for target in [
        "http://127.0.0.1/.well-known/acme-challenge/final",
        "http://[::ffff:127.0.0.1]/.well-known/acme-challenge/final",
        "http://2130706433/.well-known/acme-challenge/final",
    ] {
        env.srv
            .add_redirect("/.well-known/acme-challenge/tok123", target);
        let o = env
            .validate(Identifier::dns("example.com"), Http01, KEY_AUTH)
            .await;
        assert_problem(
            &o,
            ProblemType::Connection,
            "redirects to IP addresses are not followed",
        );
        assert_eq!(
            o.records.len(),
            1,
            "{target}: only the first hop is fetched"
        );
    }
}

#[tokio::test]
async fn redirect_targets_are_resolved_again_and_checked_against_the_policy() {
    let env = env().await;
    env.srv.add_http01("final", KEY_AUTH);
    // 0.0.0.0 reaches this host on Linux, but it names no host: refused by every policy.
    env.srv.add_a("zero.example", &[Ipv4Addr::UNSPECIFIED]);
    env.srv.add_redirect(
        "/.well-known/acme-challenge/tok123",
        "http://zero.example/.well-known/acme-challenge/final",
    );
    let o = env
        .validate(Identifier::dns("example.com"), Http01, KEY_AUTH)
        .await;
    assert_problem(&o, ProblemType::Dns, "0.0.0.0 is not a public address");
    assert_eq!(o.records.len(), 1, "the refused hop is never connected to");
    assert!(
        env.srv
            .srv()
            .http_request_history("zero.example")
            .is_empty()
    );
}

#[tokio::test]
async fn a_wrong_http01_body_is_never_echoed() {
    let env = env().await;
    let secret = "internal-service-secret-7f3a {\"AccessKeyId\":\"AKIA...\"}";
    env.srv.add_http01(TOKEN, secret);
    let o = env
        .validate(Identifier::dns("example.com"), Http01, KEY_AUTH)
        .await;
    assert_problem(&o, ProblemType::Unauthorized, "did not match");
    let detail = &o.error.unwrap().detail;
    for fragment in ["internal-service", "secret", "AccessKeyId", "AKIA"] {
        assert!(!detail.contains(fragment), "{detail}");
    }
    assert!(
        detail.contains(&format!("{} bytes", secret.len())),
        "{detail}"
    );
}

/// A DNS forwarder to `upstream` that silently drops CAA queries (an unresponsive CAA
/// server, as attackers can arrange for their own zone).
async fn dropping_caa(upstream: SocketAddr) -> SocketAddr {
    let sock = std::sync::Arc::new(tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap());
    let addr = sock.local_addr().unwrap();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 4096];
        while let Ok((n, from)) = sock.recv_from(&mut buf).await {
            let query = buf[..n].to_vec();
            if qtype(&query) == Some(257) {
                continue;
            }
            let sock = sock.clone();
            tokio::spawn(async move {
                let up = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
                up.send_to(&query, upstream).await.unwrap();
                let mut answer = vec![0u8; 4096];
                if let Ok(Ok(n)) =
                    tokio::time::timeout(Duration::from_secs(2), up.recv(&mut answer)).await
                {
                    let _ = sock.send_to(&answer[..n], from).await;
                }
            });
        }
    });
    addr
}

/// The QTYPE of a DNS query's first question.
fn qtype(msg: &[u8]) -> Option<u16> {
    let mut i = 12;
    loop {
        let len = usize::from(*msg.get(i)?);
        i += 1;
        if len == 0 {
            break;
        }
        i += len;
    }
    Some(u16::from_be_bytes([*msg.get(i)?, *msg.get(i + 1)?]))
}

#[tokio::test]
async fn the_caa_check_after_validation_runs_inside_the_validation_deadline() {
    let env = env().await;
    env.srv.add_http01(TOKEN, KEY_AUTH);
    let dns = dropping_caa(env.srv.dns_addr().unwrap()).await;
    let timeout = Duration::from_millis(1500);
    let va = va_for(&env.srv, |c| {
        c.dns_server = dns;
        c.timeout = timeout;
    });
    let mut req = request(Identifier::dns("example.com"), Http01, KEY_AUTH);
    req.caa = Some(CaaCheck {
        wildcard: false,
        ca_identities: vec!["cairn.test".into()],
        account: None,
        method: Some(Http01),
    });
    let started = Instant::now();
    let o = va.validate(req).await;
    let took = started.elapsed();
    assert_problem(&o, ProblemType::Dns, "CAA");
    // One deadline for the whole validation: the resolver's own retries (two attempts of
    // the full timeout each) would take twice as long.
    assert!(
        took < timeout + Duration::from_millis(700),
        "validation with a hanging CAA lookup took {took:?}, the time limit is {timeout:?}"
    );
}
