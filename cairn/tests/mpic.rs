//! Multi-perspective corroboration with real processes: `cairn serve` is the primary perspective
//! and three `cairn va serve` processes are remote perspectives (gRPC over mutual TLS, made by
//! `cairn admin pki dev`). Each remote perspective has its own network view: its own challenge
//! test server, which answers its DNS queries and its http-01 fetches, so the test decides what
//! each perspective sees. The BR §3.2.2.9 quorum with 3 remotes: at most 1 may fail.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use cairn_challtestsrv::{CaaPolicy, ChallTestSrv, ChallTestSrvConfig, ChallTestSrvHandle};
use common::{KilledOnDrop, TestCa, free_port, spawn_serving};
use instant_acme::{
    AuthorizationStatus, ChallengeType, Identifier, NewOrder, OrderStatus, RetryPolicy,
};
use std::path::Path;
use std::time::Duration;

const RIRS: [&str; 3] = ["ARIN", "RIPE", "APNIC"];

/// One remote perspective: its VA process and the network it sees.
struct Remote {
    process: KilledOnDrop,
    view: ChallTestSrvHandle,
}

async fn start_remote(pki: &Path, dir: &Path, name: &str) -> (Remote, u16) {
    let view = ChallTestSrv::start(ChallTestSrvConfig::loopback_ephemeral())
        .await
        .unwrap();
    let port = free_port();
    let config = format!(
        r#"listen = "127.0.0.1:{port}"
perspective = "{name}"
allowed_clients = ["va.cairn.internal"]

[tls]
cert = "{pki}/va-{name}.pem"
key = "{pki}/va-{name}.key.pem"
ca = "{pki}/internal-ca.pem"

[va]
dns_server = "{dns}"
http01_port = {http}
tlsalpn01_port = {alpn}
timeout = "5s"
allow_private_addresses = true
"#,
        pki = pki.display(),
        dns = view.dns_addr().unwrap(),
        http = view.http01_addr().unwrap().port(),
        alpn = view.tlsalpn01_addr().unwrap().port(),
    );
    let path = dir.join(format!("va-{name}.toml"));
    std::fs::write(&path, config).unwrap();
    let process = spawn_serving(&["va", "serve"], &path, port).await;
    (Remote { process, view }, port)
}

struct Deployment {
    ca: TestCa,
    remotes: Vec<Remote>,
    _dir: tempfile::TempDir,
}

async fn deployment() -> Deployment {
    let dir = tempfile::tempdir().unwrap();
    let pki = dir.path().join("pki");
    let mut services = vec!["va".to_owned()];
    services.extend(["r0", "r1", "r2"].iter().map(|n| format!("va-{n}")));
    cairn_rpc::dev_pki::generate(&pki, &services).unwrap();
    let mut remotes = Vec::new();
    let mut configs = Vec::new();
    for (i, name) in ["r0", "r1", "r2"].iter().enumerate() {
        let (remote, port) = start_remote(&pki, dir.path(), name).await;
        remotes.push(remote);
        configs.push(cairn::va_serve::RemotePerspectiveConfig {
            name: (*name).to_owned(),
            rir: RIRS[i].to_owned(),
            rpc: cairn_rpc::RpcClientConfig {
                url: format!("https://127.0.0.1:{port}"),
                server_name: format!("va-{name}.cairn.internal"),
                tls: cairn_rpc::dev_pki::files(&pki, "va"),
                timeout: time::Duration::seconds(10),
            },
        });
    }
    let ca = TestCa::start_with(move |cfg| cfg.va.remote = configs).await;
    Deployment {
        ca,
        remotes,
        _dir: dir,
    }
}

/// Orders `name` and answers http-01 at the primary and at the remote perspectives whose index
/// is in `seen_by`; returns the order's status and the challenge's error (type, detail).
async fn order(
    d: &Deployment,
    account: &instant_acme::Account,
    name: &str,
    seen_by: &[usize],
) -> (OrderStatus, Option<(String, String)>) {
    let ids = [Identifier::Dns(name.to_owned())];
    let mut order = account.new_order(&NewOrder::new(&ids)).await.unwrap();
    {
        let mut authzs = order.authorizations();
        while let Some(authz) = authzs.next().await {
            let mut authz = authz.unwrap();
            if authz.status != AuthorizationStatus::Pending {
                continue;
            }
            let mut ch = authz.challenge(ChallengeType::Http01).unwrap();
            let key_auth = ch.key_authorization();
            d.ca.chall.add_http01(&ch.token, key_auth.as_str());
            for &i in seen_by {
                d.remotes[i].view.add_http01(&ch.token, key_auth.as_str());
            }
            ch.set_ready().await.unwrap();
        }
    }
    let status = order
        .poll_ready(&RetryPolicy::new().timeout(Duration::from_secs(30)))
        .await
        .unwrap();
    let mut authzs = order.authorizations();
    let a = authzs.next().await.unwrap().unwrap();
    let err = a.challenges.iter().find_map(|c| c.error.as_ref()).map(|e| {
        (
            e.r#type.clone().unwrap_or_default(),
            e.detail.clone().unwrap_or_default(),
        )
    });
    (status, err)
}

#[tokio::test]
async fn remote_perspectives_corroborate_by_br_quorum() {
    let mut d = deployment().await;
    let account = d.ca.account().await;

    // All three remote perspectives see the challenge.
    let (status, err) = order(&d, &account, "all.example.com", &[0, 1, 2]).await;
    assert_eq!((status, err), (OrderStatus::Ready, None));

    // One of three does not: still issued (2 corroborate, spanning 2 RIRs).
    let (status, err) = order(&d, &account, "one-off.example.com", &[0, 2]).await;
    assert_eq!((status, err), (OrderStatus::Ready, None));

    // Two of three do not: refused, naming them.
    let (status, err) = order(&d, &account, "two-off.example.com", &[1]).await;
    assert_eq!(status, OrderStatus::Invalid);
    let (typ, detail) = err.unwrap();
    assert_eq!(typ, "urn:ietf:params:acme:error:unauthorized");
    assert!(detail.contains("r0, r2"), "{detail}");

    // A CAA record forbidding issuance, seen from one remote perspective only: that perspective
    // fails, the other two corroborate, so the BR quorum issues. Seen from two: refused.
    let forbid = [CaaPolicy::new("issue", "other-ca.example")];
    d.remotes[1].view.add_caa("caa-one.example.com", &forbid);
    let (status, err) = order(&d, &account, "caa-one.example.com", &[0, 1, 2]).await;
    assert_eq!((status, err), (OrderStatus::Ready, None));
    d.remotes[0].view.add_caa("caa-two.example.com", &forbid);
    d.remotes[1].view.add_caa("caa-two.example.com", &forbid);
    let (status, err) = order(&d, &account, "caa-two.example.com", &[0, 1, 2]).await;
    assert_eq!(status, OrderStatus::Invalid);
    assert_eq!(err.unwrap().0, "urn:ietf:params:acme:error:caa");

    // A remote VA that is down counts as a failure: with r2 down, r0 and r1 still corroborate;
    // with r2 down and r1 not seeing the challenge, quorum is out of reach.
    let _ = d.remotes[2].process.0.kill();
    let _ = d.remotes[2].process.0.wait();
    let (status, err) = order(&d, &account, "down-ok.example.com", &[0, 1]).await;
    assert_eq!((status, err), (OrderStatus::Ready, None));
    let (status, err) = order(&d, &account, "down-bad.example.com", &[0]).await;
    assert_eq!(status, OrderStatus::Invalid);
    let (_, detail) = err.unwrap();
    assert!(detail.contains("r1, r2"), "{detail}");
    assert!(
        !detail.contains("127.0.0.1"),
        "no internal detail: {detail}"
    );
    d.remotes.clear();
}
