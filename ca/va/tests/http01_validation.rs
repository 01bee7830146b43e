//! http-01 validation against the challenge test server.
// Test setup code outside #[test] functions may unwrap too (see clippy.toml).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use cairn_core::{ChallengeType::Http01, Identifier, ProblemType};
use std::net::Ipv4Addr;
use support::*;

const PATH: &str = "/.well-known/acme-challenge/tok123";

#[tokio::test]
async fn http01_succeeds_and_records_the_fetch() {
    let env = env().await;
    env.srv.add_http01(TOKEN, KEY_AUTH);
    let o = env
        .validate(Identifier::dns("example.com"), Http01, KEY_AUTH)
        .await;
    assert_valid(&o);
    assert_eq!(o.records.len(), 1);
    let r = &o.records[0];
    assert_eq!(
        r.url.as_deref(),
        Some("http://example.com/.well-known/acme-challenge/tok123")
    );
    assert_eq!(r.hostname.as_deref(), Some("example.com"));
    let port = env.srv.http01_addr().unwrap().port().to_string();
    assert_eq!(r.port.as_deref(), Some(port.as_str()));
    assert_eq!(r.addresses_resolved, ["127.0.0.1"]);
    assert_eq!(r.address_used.as_deref(), Some("127.0.0.1"));
    // The server saw the logical Host header and our User-Agent.
    let seen = env.srv.http_request_history("example.com");
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].host, "example.com");
    assert_eq!(seen[0].user_agent, "cairn-va-test");
    assert_eq!(seen[0].url, PATH);
}

#[tokio::test]
async fn http01_tolerates_trailing_whitespace() {
    let env = env().await;
    env.srv.add_http01(TOKEN, &format!("{KEY_AUTH}\r\n"));
    let o = env
        .validate(Identifier::dns("example.com"), Http01, KEY_AUTH)
        .await;
    assert_valid(&o);
}

#[tokio::test]
async fn http01_wrong_content_is_unauthorized() {
    let env = env().await;
    env.srv.add_http01(TOKEN, "tok123.somebody-else");
    let o = env
        .validate(Identifier::dns("example.com"), Http01, KEY_AUTH)
        .await;
    assert_problem(&o, ProblemType::Unauthorized, "did not match");
    // What was wrong, not what was there: the body never reaches the client.
    assert!(!o.error.as_ref().unwrap().detail.contains("somebody-else"));
    assert_eq!(
        o.error.as_ref().unwrap().identifier,
        Some(Identifier::dns("example.com"))
    );
}

#[tokio::test]
async fn http01_404_is_unauthorized() {
    let env = env().await;
    let o = env
        .validate(Identifier::dns("example.com"), Http01, KEY_AUTH)
        .await;
    assert_problem(&o, ProblemType::Unauthorized, "404");
}

#[tokio::test]
async fn http01_follows_redirects_and_records_each_hop() {
    let env = env().await;
    env.srv.add_http01(TOKEN, KEY_AUTH);
    env.srv.add_redirect(PATH, "http://second.example/hop");
    env.srv
        .add_redirect("/hop", &format!("https://third.example{PATH}"));
    let o = env
        .validate(Identifier::dns("example.com"), Http01, KEY_AUTH)
        .await;
    assert_valid(&o);
    let urls: Vec<_> = o.records.iter().map(|r| r.url.clone().unwrap()).collect();
    assert_eq!(
        urls,
        [
            format!("http://example.com{PATH}"),
            "http://second.example/hop".to_string(),
            format!("https://third.example{PATH}"),
        ]
    );
    let http = env.srv.http01_addr().unwrap().port().to_string();
    let https = env.srv.tlsalpn01_addr().unwrap().port().to_string();
    let ports: Vec<_> = o.records.iter().map(|r| r.port.clone().unwrap()).collect();
    assert_eq!(ports, [http.clone(), http, https]);
    let hosts: Vec<_> = o
        .records
        .iter()
        .map(|r| r.hostname.clone().unwrap())
        .collect();
    assert_eq!(hosts, ["example.com", "second.example", "third.example"]);
    assert!(
        o.records
            .iter()
            .all(|r| r.address_used.as_deref() == Some("127.0.0.1"))
    );
    // The HTTPS hop went to the TLS port with the right SNI.
    let seen = env.srv.http_request_history("third.example");
    assert_eq!(seen.len(), 1);
    assert!(seen[0].https);
    assert_eq!(seen[0].server_name, "third.example");
}

#[tokio::test]
async fn http01_relative_redirects_resolve_against_the_current_url() {
    let env = env().await;
    env.srv.add_http01("other", KEY_AUTH);
    env.srv
        .add_redirect(PATH, "/.well-known/acme-challenge/other");
    let o = env
        .validate(Identifier::dns("example.com"), Http01, KEY_AUTH)
        .await;
    assert_valid(&o);
    assert_eq!(o.records.len(), 2);
    assert_eq!(
        o.records[1].url.as_deref(),
        Some("http://example.com/.well-known/acme-challenge/other")
    );
}

#[tokio::test]
async fn http01_redirect_loop_is_rejected() {
    let env = env().await;
    env.srv.add_redirect(PATH, "http://example.com/a");
    env.srv.add_redirect("/a", "http://example.com/b");
    env.srv.add_redirect("/b", "http://example.com/a");
    let o = env
        .validate(Identifier::dns("example.com"), Http01, KEY_AUTH)
        .await;
    assert_problem(&o, ProblemType::Connection, "loop");
    assert_eq!(o.records.len(), 3);
}

#[tokio::test]
async fn http01_more_than_ten_redirects_are_rejected() {
    let env = env().await;
    env.srv.add_redirect(PATH, "http://example.com/r0");
    for i in 0..20 {
        env.srv
            .add_redirect(&format!("/r{i}"), &format!("http://example.com/r{}", i + 1));
    }
    let o = env
        .validate(Identifier::dns("example.com"), Http01, KEY_AUTH)
        .await;
    assert_problem(&o, ProblemType::Connection, "Too many redirects");
    assert_eq!(o.records.len(), 11);
}

#[tokio::test]
async fn http01_ten_redirects_are_allowed() {
    let env = env().await;
    env.srv.add_http01("final", KEY_AUTH);
    env.srv.add_redirect(PATH, "http://example.com/r1");
    for i in 1..9 {
        env.srv
            .add_redirect(&format!("/r{i}"), &format!("http://example.com/r{}", i + 1));
    }
    // Ten redirects in all: the initial path, /r1 ... /r9.
    env.srv
        .add_redirect("/r9", "http://example.com/.well-known/acme-challenge/final");
    let o = env
        .validate(Identifier::dns("example.com"), Http01, KEY_AUTH)
        .await;
    assert_valid(&o);
    assert_eq!(o.records.len(), 11);
}

#[tokio::test]
async fn http01_redirect_to_disallowed_port_or_scheme_is_rejected() {
    let env = env().await;
    env.srv.add_redirect(PATH, "http://example.com:8080/x");
    let o = env
        .validate(Identifier::dns("example.com"), Http01, KEY_AUTH)
        .await;
    assert_problem(&o, ProblemType::Connection, "Invalid port");
    assert_eq!(o.records.len(), 1);

    env.srv.add_redirect(PATH, "ftp://example.com/x");
    let o = env
        .validate(Identifier::dns("example.com"), Http01, KEY_AUTH)
        .await;
    assert_problem(&o, ProblemType::Connection, "scheme");

    env.srv.add_redirect(PATH, "http://localhost/x");
    let o = env
        .validate(Identifier::dns("example.com"), Http01, KEY_AUTH)
        .await;
    assert_problem(&o, ProblemType::Connection, "Invalid host");
}

#[tokio::test]
async fn http01_oversized_body_is_rejected() {
    let env = env().await;
    let big = format!("{KEY_AUTH}{}", " x".repeat(100 * 1024));
    env.srv.add_http01(TOKEN, &big);
    let o = env
        .validate(Identifier::dns("example.com"), Http01, KEY_AUTH)
        .await;
    assert_problem(&o, ProblemType::Unauthorized, "larger than");
}

#[tokio::test]
async fn http01_dns_failures_are_dns_problems() {
    let env = env().await;
    env.srv.add_http01(TOKEN, KEY_AUTH);
    env.srv.set_servfail("broken.example");
    let o = env
        .validate(Identifier::dns("broken.example"), Http01, KEY_AUTH)
        .await;
    assert_problem(&o, ProblemType::Dns, "SERVFAIL");

    env.srv.set_default_ipv4(None);
    let o = env
        .validate(Identifier::dns("nowhere.example"), Http01, KEY_AUTH)
        .await;
    assert_problem(&o, ProblemType::Dns, "no valid A or AAAA records");
    assert!(o.records.is_empty());
}

#[tokio::test]
async fn http01_connection_refused_is_a_connection_problem() {
    let env = env().await;
    // A port nothing listens on: bind, note the port, close.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let va = va_for(&env.srv, |c| c.http01_port = closed);
    let o = cairn_va::ValidationAuthority::validate(
        &va,
        request(Identifier::dns("example.com"), Http01, KEY_AUTH),
    )
    .await;
    assert_problem(&o, ProblemType::Connection, "Connection refused");
    assert_eq!(o.records[0].address_used.as_deref(), Some("127.0.0.1"));
}

#[tokio::test]
async fn http01_prefers_ipv6_and_falls_back_to_ipv4() {
    let env = env().await;
    env.srv.add_http01(TOKEN, KEY_AUTH);
    // The test server listens on 127.0.0.1 only, so ::1 is refused and IPv4 is used.
    env.srv.add_aaaa("dual.example", &["::1".parse().unwrap()]);
    let o = env
        .validate(Identifier::dns("dual.example"), Http01, KEY_AUTH)
        .await;
    assert_valid(&o);
    let r = &o.records[0];
    assert!(r.addresses_resolved.contains(&"::1".to_string()));
    assert!(r.addresses_resolved.contains(&"127.0.0.1".to_string()));
    assert_eq!(r.address_used.as_deref(), Some("127.0.0.1"));
}

#[tokio::test]
async fn http01_validates_ip_identifiers_without_dns() {
    let env = env().await;
    env.srv.add_http01(TOKEN, KEY_AUTH);
    env.srv.set_default_ipv4(None);
    let o = env
        .validate(Identifier::ip(Ipv4Addr::LOCALHOST.into()), Http01, KEY_AUTH)
        .await;
    assert_valid(&o);
    assert_eq!(
        o.records[0].url.as_deref(),
        Some("http://127.0.0.1/.well-known/acme-challenge/tok123")
    );
    assert_eq!(o.records[0].hostname.as_deref(), Some("127.0.0.1"));
}
