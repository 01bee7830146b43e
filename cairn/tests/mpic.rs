//! Multi-perspective corroboration with real processes: `cairn serve` is the primary perspective
//! and three `cairn va serve` processes are remote perspectives (gRPC over mutual TLS, made by
//! `cairn admin pki dev`). Each remote perspective has its own network view: its own challenge
//! test server, which answers its DNS queries and its http-01 fetches, so the test decides what
//! each perspective sees. The BR §3.2.2.9 quorum with 3 remotes: at most 1 may fail.
//!
//! The same checks run twice: with every perspective on the loopback, and with each remote
//! perspective in a network namespace of its own (`ip netns`, a veth pair to the host): its VA
//! and its challenge test server run inside, so its DNS server and the address its http-01
//! fetch goes to (`127.0.0.1`, the namespace's own loopback) are not the primary's.

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

/// What a remote perspective sees: a challenge test server in this process (loopback), or a
/// `cairn challtestsrv` process in the perspective's namespace, driven by its management API.
enum View {
    Local(ChallTestSrvHandle),
    Namespaced { management: String },
}

impl View {
    async fn add_http01(&self, token: &str, content: &str) {
        match self {
            View::Local(v) => v.add_http01(token, content),
            View::Namespaced { management } => {
                manage(
                    management,
                    "add-http01",
                    serde_json::json!({"token": token, "content": content}),
                )
                .await
            }
        }
    }

    async fn add_caa(&self, host: &str, policies: &[CaaPolicy]) {
        match self {
            View::Local(v) => v.add_caa(host, policies),
            View::Namespaced { management } => {
                manage(
                    management,
                    "add-caa",
                    serde_json::json!({"host": host, "policies": policies}),
                )
                .await
            }
        }
    }
}

async fn manage(management: &str, path: &str, body: serde_json::Value) {
    let r = reqwest::Client::new()
        .post(format!("{management}/{path}"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{path}: {}", r.status());
}

/// One remote perspective: its VA process and the network it sees (and, when it has one, its
/// namespace, removed last).
struct Remote {
    process: KilledOnDrop,
    view: View,
    _view_process: Option<KilledOnDrop>,
    _netns: Option<Netns>,
}

fn va_config(listen: &str, name: &str, pki: &Path, dns: &str, http: u16, alpn: u16) -> String {
    format!(
        r#"listen = "{listen}"
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
    )
}

async fn start_remote(pki: &Path, dir: &Path, name: &str) -> (Remote, String) {
    let view = ChallTestSrv::start(ChallTestSrvConfig::loopback_ephemeral())
        .await
        .unwrap();
    let port = free_port();
    let config = va_config(
        &format!("127.0.0.1:{port}"),
        name,
        pki,
        &view.dns_addr().unwrap().to_string(),
        view.http01_addr().unwrap().port(),
        view.tlsalpn01_addr().unwrap().port(),
    );
    let path = dir.join(format!("va-{name}.toml"));
    std::fs::write(&path, config).unwrap();
    let process = spawn_serving(&["va", "serve"], &path, port).await;
    let remote = Remote {
        process,
        view: View::Local(view),
        _view_process: None,
        _netns: None,
    };
    (remote, format!("https://127.0.0.1:{port}"))
}

/// A network namespace joined to the host by a veth pair: the host side is `10.231.{n}.1/24`,
/// the namespace side `10.231.{n}.2/24`, and the namespace's loopback is up. Deleted on drop
/// (which also deletes the veth pair).
struct Netns {
    name: String,
    n: u8,
}

fn ip(args: &[&str]) -> Result<(), String> {
    let out = std::process::Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("ip: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

impl Netns {
    fn create(n: u8) -> Result<Netns, String> {
        let tag = std::process::id() % 100_000;
        let netns = Netns {
            name: format!("cairn-mpic-{tag}-{n}"),
            n,
        };
        let (host, inside) = (format!("cm{tag}h{n}"), format!("cm{tag}n{n}"));
        ip(&["netns", "add", &netns.name])?;
        ip(&[
            "link", "add", &host, "type", "veth", "peer", "name", &inside,
        ])?;
        ip(&["link", "set", &inside, "netns", &netns.name])?;
        ip(&[
            "addr",
            "add",
            &format!("{}/24", netns.host_ip()),
            "dev",
            &host,
        ])?;
        ip(&["link", "set", &host, "up"])?;
        netns.exec_ip(&["addr", "add", &format!("{}/24", netns.ip()), "dev", &inside])?;
        netns.exec_ip(&["link", "set", &inside, "up"])?;
        netns.exec_ip(&["link", "set", "lo", "up"])?;
        Ok(netns)
    }

    fn exec_ip(&self, args: &[&str]) -> Result<(), String> {
        let mut all = vec!["netns", "exec", &self.name, "ip"];
        all.extend_from_slice(args);
        ip(&all)
    }

    fn host_ip(&self) -> String {
        format!("10.231.{}.1", self.n)
    }

    fn ip(&self) -> String {
        format!("10.231.{}.2", self.n)
    }

    /// `cairn <args>` inside the namespace.
    fn cairn(&self, args: &[&str]) -> KilledOnDrop {
        KilledOnDrop(
            std::process::Command::new("ip")
                .args(["netns", "exec", &self.name, env!("CARGO_BIN_EXE_cairn")])
                .args(args)
                .stdout(std::process::Stdio::null())
                .spawn()
                .unwrap(),
        )
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = ip(&["netns", "del", &self.name]);
    }
}

/// Waits until `addr` accepts TCP connections, or panics naming `what`.
async fn wait_listening(addr: &str, what: &str, process: &mut KilledOnDrop) {
    for _ in 0..600 {
        if std::net::TcpStream::connect(addr).is_ok() {
            return;
        }
        if let Some(status) = process.0.try_wait().unwrap() {
            panic!("{what} exited: {status}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{what} did not listen on {addr}");
}

/// A remote perspective in namespace `n`: its challenge test server and its VA run inside, at
/// fixed ports of the namespace's own stack. Only the VA's gRPC port is reached from the host
/// (and the management API, by the test).
async fn start_namespaced_remote(pki: &Path, dir: &Path, name: &str, n: u8) -> (Remote, String) {
    let netns = Netns::create(n).unwrap();
    let inside = netns.ip();
    let mut view_process = netns.cairn(&[
        "challtestsrv",
        "--management",
        &format!("{inside}:8055"),
        "--dns",
        "127.0.0.1:8053",
        "--http01",
        "127.0.0.1:5002",
        "--tlsalpn01",
        "127.0.0.1:5001",
        "--default-ipv4",
        "127.0.0.1",
    ]);
    wait_listening(
        &format!("{inside}:8055"),
        "the namespace's challtestsrv",
        &mut view_process,
    )
    .await;
    let config = va_config(
        &format!("{inside}:9443"),
        name,
        pki,
        "127.0.0.1:8053",
        5002,
        5001,
    );
    let path = dir.join(format!("va-{name}.toml"));
    std::fs::write(&path, config).unwrap();
    let config_arg = path.to_str().unwrap().to_owned();
    let mut process = netns.cairn(&["va", "serve", "--config", &config_arg]);
    wait_listening(
        &format!("{inside}:9443"),
        "the namespace's VA",
        &mut process,
    )
    .await;
    let remote = Remote {
        process,
        view: View::Namespaced {
            management: format!("http://{inside}:8055"),
        },
        _view_process: Some(view_process),
        _netns: Some(netns),
    };
    (remote, format!("https://{inside}:9443"))
}

/// Whether this machine lets the test make network namespaces (root with `ip`); the reason if
/// not.
fn namespaces_unavailable() -> Option<String> {
    let probe = format!("cairn-mpic-probe-{}", std::process::id());
    match ip(&["netns", "add", &probe]) {
        Ok(()) => {
            let _ = ip(&["netns", "del", &probe]);
            None
        }
        Err(e) => Some(e),
    }
}

struct Deployment {
    ca: TestCa,
    remotes: Vec<Remote>,
    _dir: tempfile::TempDir,
}

async fn deployment(namespaced: bool) -> Deployment {
    let dir = tempfile::tempdir().unwrap();
    let pki = dir.path().join("pki");
    let mut services = vec!["va".to_owned()];
    services.extend(["r0", "r1", "r2"].iter().map(|n| format!("va-{n}")));
    cairn_rpc::dev_pki::generate(&pki, &services).unwrap();
    let mut remotes = Vec::new();
    let mut configs = Vec::new();
    for (i, name) in ["r0", "r1", "r2"].iter().enumerate() {
        let (remote, url) = if namespaced {
            start_namespaced_remote(&pki, dir.path(), name, u8::try_from(i).unwrap()).await
        } else {
            start_remote(&pki, dir.path(), name).await
        };
        remotes.push(remote);
        configs.push(cairn::va_serve::RemotePerspectiveConfig {
            name: (*name).to_owned(),
            rir: RIRS[i].to_owned(),
            rpc: cairn_rpc::RpcClientConfig {
                url,
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
                d.remotes[i]
                    .view
                    .add_http01(&ch.token, key_auth.as_str())
                    .await;
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
    corroborate_by_br_quorum(deployment(false).await).await;
}

#[tokio::test]
async fn remote_perspectives_in_their_own_network_namespaces_corroborate_by_br_quorum() {
    if let Some(reason) = namespaces_unavailable() {
        // CI here runs as root and can make namespaces: there, not being able to is a failure.
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true but network namespaces cannot be made: {reason}"
        );
        eprintln!("skipped: network namespaces cannot be made here ({reason})");
        return;
    }
    corroborate_by_br_quorum(deployment(true).await).await;
}

async fn corroborate_by_br_quorum(mut d: Deployment) {
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
    d.remotes[1]
        .view
        .add_caa("caa-one.example.com", &forbid)
        .await;
    let (status, err) = order(&d, &account, "caa-one.example.com", &[0, 1, 2]).await;
    assert_eq!((status, err), (OrderStatus::Ready, None));
    d.remotes[0]
        .view
        .add_caa("caa-two.example.com", &forbid)
        .await;
    d.remotes[1]
        .view
        .add_caa("caa-two.example.com", &forbid)
        .await;
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
        !detail.contains("127.0.0.1") && !detail.contains("10.231."),
        "no internal detail: {detail}"
    );
    d.remotes.clear();
}
