//! Nonces across WFEs: two `cairn nonce serve` processes (gRPC over mutual TLS, certificates
//! from `cairn admin pki dev`) shared by two ACME front ends. A client that takes each nonce from
//! one WFE and spends it at the other never sees `badNonce`; a nonce is spent once, wherever it
//! is presented; a nonce service that is down costs only its own nonces.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use cairn_acme::nonce::NoncePrefix;
use common::raw::{RawClient, expect_problem, new_account_with_nonce as new_account};
use common::{KilledOnDrop, TestCa, free_port, spawn_serving};
use std::path::Path;

async fn nonce_service(pki: &Path, dir: &Path, prefix: &str) -> (KilledOnDrop, u16) {
    let port = free_port();
    let path = dir.join(format!("{prefix}.toml"));
    std::fs::write(
        &path,
        format!(
            r#"[server]
metrics_listen = "127.0.0.1:0"

[nonce]
listen = "127.0.0.1:{port}"
prefix = "{prefix}"
allowed_clients = ["wfe.cairn.internal"]

[rpc.tls]
cert = "{pki}/nonce.pem"
key = "{pki}/nonce.key.pem"
ca = "{pki}/internal-ca.pem"
"#,
            pki = pki.display()
        ),
    )
    .unwrap();
    (spawn_serving(&["nonce", "serve"], &path, port).await, port)
}

async fn wfe(pki: &Path, services: &[(&str, u16)]) -> TestCa {
    let addrs: Vec<cairn_wfe::NonceServiceAddr> = services
        .iter()
        .map(|(prefix, port)| cairn_wfe::NonceServiceAddr {
            prefix: NoncePrefix::new(prefix).unwrap(),
            address: format!("https://127.0.0.1:{port}"),
            server_name: None,
        })
        .collect();
    let tls = cairn_rpc::dev_pki::files(pki, "wfe");
    TestCa::start_with(move |cfg| {
        cfg.wfe.nonce_services = addrs;
        cfg.rpc.tls = Some(tls);
    })
    .await
}

#[tokio::test]
async fn two_wfes_share_two_nonce_services() {
    let dir = tempfile::tempdir().unwrap();
    let pki = dir.path().join("pki");
    cairn_rpc::dev_pki::generate(&pki, &["wfe".into(), "nonce".into()]).unwrap();
    let (s1, p1) = nonce_service(&pki, dir.path(), "nonce-01").await;
    let (s2, p2) = nonce_service(&pki, dir.path(), "nonce-02").await;
    let services = [("nonce-01", p1), ("nonce-02", p2)];
    let ca_a = wfe(&pki, &services).await;
    let ca_b = wfe(&pki, &services).await;
    let a = RawClient::new(&ca_a.server.directory_url, &ca_a.server.tls_root_path).await;
    let b = RawClient::new(&ca_b.server.directory_url, &ca_b.server.tls_root_path).await;

    // Each WFE mints round the services: two nonces in a row come from both.
    let (n1, n2) = (a.nonce().await, a.nonce().await);
    let mut both = [n1[..8].to_owned(), n2[..8].to_owned()];
    both.sort();
    assert_eq!(both, ["nonce-01", "nonce-02"], "both services mint");

    // Alternate: every nonce is taken from one WFE and spent at the other.
    for i in 0..12 {
        let (from, to) = if i % 2 == 0 { (&a, &b) } else { (&b, &a) };
        let nonce = from.nonce().await;
        let resp = new_account(to, &nonce).await;
        assert_eq!(resp.status(), 201, "request {i}: {:?}", resp.text().await);
        // Spent: refused by both WFEs from now on.
        expect_problem(new_account(from, &nonce).await, 400, "badNonce").await;
        expect_problem(new_account(to, &nonce).await, 400, "badNonce").await;
    }

    // A nonce with a prefix no service has, and a forged one with a real prefix: refused.
    expect_problem(
        new_account(&a, "nonce-99AAAAAAAAAAAAAAAAAAAAAAAAAAAAAA").await,
        400,
        "badNonce",
    )
    .await;
    expect_problem(
        new_account(&a, "nonce-01AAAAAAAAAAAAAAAAAAAAAAAAAAAAAA").await,
        400,
        "badNonce",
    )
    .await;

    // Service 1 goes down: its outstanding nonces are refused (badNonce, not a 500), the WFEs
    // keep minting from service 2, and those work across WFEs.
    let mut outstanding = a.nonce().await;
    while !outstanding.starts_with("nonce-01") {
        outstanding = a.nonce().await;
    }
    drop(s1);
    expect_problem(new_account(&b, &outstanding).await, 400, "badNonce").await;
    for _ in 0..4 {
        let nonce = b.nonce().await;
        assert!(nonce.starts_with("nonce-02"), "{nonce}");
        let resp = new_account(&a, &nonce).await;
        assert_eq!(resp.status(), 201, "{:?}", resp.text().await);
    }
    drop(s2);
}

#[tokio::test]
async fn a_wfe_whose_identity_the_service_does_not_allow_gets_no_nonces() {
    let dir = tempfile::tempdir().unwrap();
    let pki = dir.path().join("pki");
    // The WFE presents `ra.cairn.internal`, which the nonce service does not allow.
    cairn_rpc::dev_pki::generate(&pki, &["ra".into(), "nonce".into()]).unwrap();
    let (_s, port) = nonce_service(&pki, dir.path(), "nonce-01").await;
    let tls = cairn_rpc::dev_pki::files(&pki, "ra");
    let ca = TestCa::start_with(move |cfg| {
        cfg.wfe.nonce_services = vec![cairn_wfe::NonceServiceAddr {
            prefix: NoncePrefix::new("nonce-01").unwrap(),
            address: format!("https://127.0.0.1:{port}"),
            server_name: None,
        }];
        cfg.rpc.tls = Some(tls);
    })
    .await;
    let http = reqwest::Client::builder()
        .add_root_certificate(
            reqwest::Certificate::from_pem(&std::fs::read(&ca.server.tls_root_path).unwrap())
                .unwrap(),
        )
        .build()
        .unwrap();
    let dir_json: serde_json::Value = http
        .get(&ca.server.directory_url)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let resp = http
        .head(dir_json["newNonce"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 500);
    assert!(!resp.headers().contains_key("replay-nonce"));
}
