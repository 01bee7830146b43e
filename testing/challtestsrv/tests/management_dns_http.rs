//! End-to-end tests: the management API drives what a real resolver and HTTP client see.
// Test setup code outside #[test] functions may unwrap too (see clippy.toml).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use cairn_challtestsrv::{ChallTestSrv, ChallTestSrvConfig, ChallTestSrvHandle};
use hickory_resolver::config::{
    ConnectionConfig, NameServerConfig, ProtocolConfig, ResolveHosts, ResolverConfig, ResolverOpts,
};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::{RData, RecordType};
use hickory_resolver::{Resolver, TokioResolver};
use serde_json::{Value, json};
use std::net::SocketAddr;

async fn start() -> ChallTestSrvHandle {
    ChallTestSrv::start(ChallTestSrvConfig::loopback_ephemeral())
        .await
        .unwrap()
}

fn resolver(dns: SocketAddr, proto: ProtocolConfig) -> TokioResolver {
    let mut conn = ConnectionConfig::new(proto);
    conn.port = dns.port();
    let ns = NameServerConfig::new(dns.ip(), true, vec![conn]);
    let mut opts = ResolverOpts::default();
    opts.cache_size = 0;
    opts.use_hosts_file = ResolveHosts::Never;
    opts.attempts = 1;
    let mut b = Resolver::builder_with_config(
        ResolverConfig::from_name_servers(vec![ns]),
        TokioRuntimeProvider::default(),
    );
    *b.options_mut() = opts;
    b.build().unwrap()
}

async fn post(srv: &ChallTestSrvHandle, path: &str, body: Value) -> reqwest::Response {
    let url = format!("http://{}{path}", srv.management_addr().unwrap());
    reqwest::Client::new()
        .post(url)
        .body(body.to_string())
        .send()
        .await
        .unwrap()
}

async fn ok(srv: &ChallTestSrvHandle, path: &str, body: Value) {
    let resp = post(srv, path, body).await;
    assert_eq!(resp.status(), 200, "{path}");
}

fn rdatas(l: &hickory_resolver::lookup::Lookup) -> Vec<RData> {
    l.answers().iter().map(|r| r.data.clone()).collect()
}

#[tokio::test]
async fn dns_answers_follow_management_api_over_udp_and_tcp() {
    let srv = start().await;
    let dns = srv.dns_addr().unwrap();
    for proto in [ProtocolConfig::Udp, ProtocolConfig::Tcp] {
        let r = resolver(dns, proto);
        // Default A answer, no AAAA.
        let a = r.lookup("anything.example.", RecordType::A).await.unwrap();
        assert_eq!(rdatas(&a), vec![RData::A("127.0.0.1".parse().unwrap())]);
        assert!(
            r.lookup("anything.example.", RecordType::AAAA)
                .await
                .is_err()
        );
    }
    let r = resolver(dns, ProtocolConfig::Udp);

    ok(
        &srv,
        "/add-a",
        json!({"host": "a.example", "addresses": ["10.0.0.1", "10.0.0.2"]}),
    )
    .await;
    let a = r.lookup("a.example.", RecordType::A).await.unwrap();
    assert_eq!(rdatas(&a).len(), 2);
    ok(&srv, "/clear-a", json!({"host": "a.example."})).await;
    let a = r.lookup("a.example.", RecordType::A).await.unwrap();
    assert_eq!(rdatas(&a), vec![RData::A("127.0.0.1".parse().unwrap())]);

    ok(&srv, "/set-default-ipv6", json!({"ip": "::1"})).await;
    let aaaa = r.lookup("v6.example.", RecordType::AAAA).await.unwrap();
    assert_eq!(rdatas(&aaaa), vec![RData::AAAA("::1".parse().unwrap())]);
    ok(
        &srv,
        "/add-aaaa",
        json!({"Host": "v6.example", "Addresses": ["2001:db8::5"]}),
    )
    .await;
    let aaaa = r.lookup("v6.example.", RecordType::AAAA).await.unwrap();
    assert_eq!(
        rdatas(&aaaa),
        vec![RData::AAAA("2001:db8::5".parse().unwrap())]
    );
    ok(&srv, "/set-default-ipv4", json!({"ip": ""})).await;
    assert!(r.lookup("none.example.", RecordType::A).await.is_err());

    ok(
        &srv,
        "/set-txt",
        json!({"host": "_acme-challenge.t.example.", "value": "one"}),
    )
    .await;
    ok(
        &srv,
        "/set-txt",
        json!({"host": "_acme-challenge.t.example", "value": "two"}),
    )
    .await;
    let txt = r
        .lookup("_acme-challenge.t.example.", RecordType::TXT)
        .await
        .unwrap();
    let mut values: Vec<String> = rdatas(&txt)
        .into_iter()
        .filter_map(|d| match d {
            RData::TXT(t) => Some(t.to_string()),
            _ => None,
        })
        .collect();
    values.sort();
    assert_eq!(values, ["one", "two"]);
    ok(
        &srv,
        "/clear-txt",
        json!({"host": "_acme-challenge.t.example"}),
    )
    .await;
    assert!(
        r.lookup("_acme-challenge.t.example.", RecordType::TXT)
            .await
            .is_err()
    );

    ok(
        &srv,
        "/add-caa",
        json!({"host": "caa.example", "policies": [{"tag": "issue", "value": "cairn.test"}]}),
    )
    .await;
    let caa = r.lookup("caa.example.", RecordType::CAA).await.unwrap();
    match &rdatas(&caa)[..] {
        [RData::CAA(c)] => {
            assert_eq!(c.tag, "issue");
            assert_eq!(c.value, b"cairn.test");
        }
        other => panic!("unexpected CAA answer {other:?}"),
    }

    ok(
        &srv,
        "/set-cname",
        json!({"host": "alias.example", "target": "caa.example"}),
    )
    .await;
    let caa = r.lookup("alias.example.", RecordType::CAA).await.unwrap();
    assert!(rdatas(&caa).iter().any(|d| matches!(d, RData::CAA(_))));
    ok(&srv, "/clear-cname", json!({"host": "alias.example"})).await;

    ok(&srv, "/set-servfail", json!({"host": "broken.example"})).await;
    let err = r
        .lookup("broken.example.", RecordType::TXT)
        .await
        .unwrap_err();
    assert!(
        !err.is_no_records_found(),
        "SERVFAIL must not look like an empty answer: {err}"
    );
    ok(&srv, "/clear-servfail", json!({"host": "broken.example"})).await;
    assert!(
        r.lookup("broken.example.", RecordType::TXT)
            .await
            .unwrap_err()
            .is_no_records_found()
    );

    let hist = post(
        &srv,
        "/dns-request-history",
        json!({"host": "broken.example"}),
    )
    .await;
    let hist: Value = hist.json().await.unwrap();
    assert!(!hist.as_array().unwrap().is_empty());
    assert_eq!(hist[0]["Question"]["Name"], "broken.example.");
    ok(
        &srv,
        "/clear-request-history",
        json!({"host": "broken.example", "type": "dns"}),
    )
    .await;
    let hist: Value = post(
        &srv,
        "/dns-request-history",
        json!({"host": "broken.example"}),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(hist, json!([]));
}

#[tokio::test]
async fn http01_serves_tokens_redirects_and_records_history() {
    let srv = start().await;
    let http = srv.http01_addr().unwrap();
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let url = |path: &str| format!("http://{http}{path}");

    ok(
        &srv,
        "/add-http01",
        json!({"token": "tok", "content": "tok.thumb"}),
    )
    .await;
    let resp = client
        .get(url("/.well-known/acme-challenge/tok"))
        .header("Host", "web.example")
        .header("User-Agent", "cairn-test")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.text().await.unwrap(), "tok.thumb");

    let resp = client
        .get(url("/.well-known/acme-challenge/other"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);

    ok(
        &srv,
        "/add-redirect",
        json!({"path": "/r", "targetURL": "http://elsewhere.example/x"}),
    )
    .await;
    let resp = client.get(url("/r")).send().await.unwrap();
    assert_eq!(resp.status(), 302);
    assert_eq!(resp.headers()["location"], "http://elsewhere.example/x");
    ok(&srv, "/del-redirect", json!({"path": "/r"})).await;
    assert_eq!(client.get(url("/r")).send().await.unwrap().status(), 404);

    ok(&srv, "/del-http01", json!({"token": "tok"})).await;
    let resp = client
        .get(url("/.well-known/acme-challenge/tok"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);

    let hist: Value = post(
        &srv,
        "/http-request-history",
        json!({"host": "web.example"}),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(hist.as_array().unwrap().len(), 1);
    assert_eq!(hist[0]["URL"], "/.well-known/acme-challenge/tok");
    assert_eq!(hist[0]["Host"], "web.example");
    assert_eq!(hist[0]["Method"], "GET");
    assert_eq!(hist[0]["UserAgent"], "cairn-test");
    assert_eq!(hist[0]["HTTPS"], false);
    // The in-process API sees the same history.
    assert_eq!(srv.http_request_history("web.example").len(), 1);
}

#[tokio::test]
async fn management_api_rejects_bad_bodies() {
    let srv = start().await;
    assert_eq!(
        post(&srv, "/add-a", json!({"host": "x.example"}))
            .await
            .status(),
        400
    );
    assert_eq!(
        post(
            &srv,
            "/add-a",
            json!({"host": "x.example", "addresses": ["::1"]})
        )
        .await
        .status(),
        400
    );
    assert_eq!(
        post(&srv, "/set-txt", json!({"host": "x.example"}))
            .await
            .status(),
        400
    );
    assert_eq!(
        post(
            &srv,
            "/clear-request-history",
            json!({"host": "x", "type": "smtp"})
        )
        .await
        .status(),
        400
    );
    let url = format!("http://{}/add-http01", srv.management_addr().unwrap());
    let resp = reqwest::Client::new()
        .post(url)
        .body("not json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
}

#[tokio::test]
async fn shutdown_releases_the_ports() {
    let srv = start().await;
    let http = srv.http01_addr().unwrap();
    srv.shutdown().await;
    // Give the listener a moment to close, then nothing answers on the port.
    let res = tokio::net::TcpStream::connect(http).await;
    assert!(res.is_err(), "HTTP-01 port still accepting after shutdown");
}

async fn txt_at(srv: &ChallTestSrvHandle, name: &str) -> Vec<String> {
    let r = resolver(srv.dns_addr().unwrap(), ProtocolConfig::Udp);
    match r.lookup(name, RecordType::TXT).await {
        Ok(l) => rdatas(&l)
            .into_iter()
            .filter_map(|d| match d {
                RData::TXT(t) => Some(
                    t.txt_data
                        .iter()
                        .map(|s| String::from_utf8_lossy(s).into_owned())
                        .collect(),
                ),
                _ => None,
            })
            .collect(),
        Err(_) => Vec::new(),
    }
}

#[tokio::test]
async fn dns_account01_and_persist_records_follow_management_api() {
    let srv = start().await;
    // draft-ietf-acme-dns-account-label's example account and label.
    let acct = "https://example.com/acme/acct/ExampleAccount";
    assert_eq!(
        cairn_challtestsrv::dns_account01_name("example.org", acct),
        "_ujmmovf2vn55tgye._acme-challenge.example.org"
    );
    ok(
        &srv,
        "/set-dns-account01",
        json!({"host": "example.org", "accountURL": acct, "value": "digest"}),
    )
    .await;
    let name = "_ujmmovf2vn55tgye._acme-challenge.example.org.";
    assert_eq!(txt_at(&srv, name).await, vec!["digest".to_owned()]);
    ok(
        &srv,
        "/clear-dns-account01",
        json!({"host": "example.org", "accountURL": acct}),
    )
    .await;
    assert!(txt_at(&srv, name).await.is_empty());
    assert_eq!(
        post(&srv, "/set-dns-account01", json!({"host": "example.org"}))
            .await
            .status(),
        400
    );

    // Persistent records accumulate: two CAs at one name.
    ok(
        &srv,
        "/add-persist-txt",
        json!({"host": "example.org", "issuerDomainName": "ca1.example",
               "accountURI": "https://ca1.example/acct/1", "policy": "wildcard"}),
    )
    .await;
    ok(
        &srv,
        "/add-persist-txt",
        json!({"host": "example.org", "issuerDomainName": "ca2.example",
               "accountURI": "https://ca2.example/acct/2", "persistUntil": 1767225600}),
    )
    .await;
    let mut got = txt_at(&srv, "_validation-persist.example.org.").await;
    got.sort();
    assert_eq!(
        got,
        vec![
            "ca1.example; accounturi=https://ca1.example/acct/1; policy=wildcard".to_owned(),
            "ca2.example; accounturi=https://ca2.example/acct/2; persistUntil=1767225600"
                .to_owned(),
        ]
    );
    ok(&srv, "/clear-persist-txt", json!({"host": "example.org"})).await;
    assert!(
        txt_at(&srv, "_validation-persist.example.org.")
            .await
            .is_empty()
    );
}
