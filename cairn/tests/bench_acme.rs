//! `cairn bench acme`'s load generator against an in-process Cairn: a handful of certificates
//! of every flow kind, and the summary must count exactly what happened. Then the command
//! itself: `cairn bench acme` runs the `cairn-bench` binary beside `cairn` (build both, as
//! testing/test.sh does), and without it fails with one line saying how to build it.

#![allow(clippy::unwrap_used)] // test helper: a failed unwrap is a test failure
mod common;

use cairn_loadgen::{ChallengeMode, Http01Responder, LoadConfig, Mix, PollPolicy, Trust};
use common::TestCa;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// `cairn-bench`, found where `cairn bench` looks for it: beside the `cairn` binary cargo built
/// for these tests. Missing means it was not built (`cargo test` builds only `cairn`): a
/// failure, not a skip.
fn cairn_bench() -> PathBuf {
    let path = Path::new(env!("CARGO_BIN_EXE_cairn"))
        .with_file_name(format!("cairn-bench{}", std::env::consts::EXE_SUFFIX));
    assert!(
        path.is_file(),
        "{} is missing: build it with `cargo build -p cairn-bench` (testing/test.sh does)",
        path.display()
    );
    path
}

fn load(ca: &TestCa, challenge: ChallengeMode, accounts: u32, certs: u64, mix: &str) -> LoadConfig {
    LoadConfig {
        directory: ca.directory().parse().unwrap(),
        trust: Trust::Roots(std::fs::read(&ca.server.tls_root_path).unwrap()),
        accounts,
        certificates: Some(certs),
        duration: Duration::from_secs(120),
        mix: mix.parse().unwrap(),
        names_per_multi: 3,
        domain_suffix: "test".into(),
        challenge,
        poll: PollPolicy::default(),
        progress: false,
        keep_cert_ids: true,
        deactivate_authzs: false,
    }
}

#[tokio::test]
async fn http01_mix_of_every_flow_kind_is_counted_exactly() {
    let responder = Arc::new(
        Http01Responder::bind("127.0.0.1:0".parse().unwrap())
            .await
            .unwrap(),
    );
    let port = responder.local_addr().port();
    let ca = TestCa::start_with(|cfg| cfg.va.http01_port = port).await;
    // One account: its flows run in order, so the mix is deterministic (the first renewal
    // slot comes after a certificate exists to renew).
    let cfg = load(
        &ca,
        ChallengeMode::Http01(responder),
        1,
        8,
        "single=2,multi=1,renewal=1,revoke=1",
    );
    let mix: Mix = "single=2,multi=1,renewal=1,revoke=1".parse().unwrap();
    let expected_kinds: Vec<_> = (0..8).map(|i| mix.pick(i)).collect();
    let summary = cairn_loadgen::run(cfg).await.unwrap();
    assert_eq!(summary.errors_total, 0, "{summary}");
    assert_eq!(summary.certificates, 8, "{summary}");
    assert_eq!(summary.accounts, 1);
    let by = |k: &str| summary.certificates_by_kind[k];
    let want =
        |k: cairn_loadgen::FlowKind| expected_kinds.iter().filter(|&&x| x == k).count() as u64;
    assert_eq!(by("multi"), want(cairn_loadgen::FlowKind::Multi));
    assert_eq!(by("renewal"), want(cairn_loadgen::FlowKind::Renewal));
    assert_eq!(by("revoke"), want(cairn_loadgen::FlowKind::Revoke));
    assert_eq!(by("single"), want(cairn_loadgen::FlowKind::Single));
    assert_eq!(summary.revocations, by("revoke"));
    let endpoint = |e: &str| summary.endpoints.get(e).map_or(0, |l| l.count);
    assert_eq!(endpoint("newAccount"), 1);
    assert_eq!(endpoint("newOrder"), 8);
    assert_eq!(endpoint("finalize"), 8);
    assert_eq!(endpoint("certificate"), 8);
    assert_eq!(endpoint("issuance"), 8);
    assert_eq!(endpoint("revokeCert"), by("revoke"));
    // Renewals reuse the valid authorizations of the certificate they replace: one authz and
    // one challenge per new name only.
    let fresh_names = by("single") + by("revoke") + 3 * by("multi");
    assert_eq!(endpoint("challenge"), fresh_names, "{summary}");
    let l = &summary.endpoints["finalize"];
    assert!(l.p50_ms <= l.p90_ms && l.p90_ms <= l.p99_ms && l.p99_ms <= l.max_ms);
    assert!(summary.certificates_per_sec > 0.0);
    // The run ended by count, long before its duration: every certificate is within it.
    assert_eq!(summary.certificates_in_duration, 8, "{summary}");
    assert!(
        summary.duration_secs <= summary.elapsed_secs + 1e-9,
        "{summary}"
    );
    assert!(summary.certificates_per_sec_in_duration > 0.0);
    // Every issued certificate has an identifier, and each one has renewal information.
    assert_eq!(summary.cert_ids.len(), 8);
    let http = reqwest::Client::builder()
        .add_root_certificate(
            reqwest::Certificate::from_pem(&std::fs::read(&ca.server.tls_root_path).unwrap())
                .unwrap(),
        )
        .build()
        .unwrap();
    let base = ca.directory().replace("/directory", "/acme/renewal-info/");
    for id in &summary.cert_ids {
        let resp = http.get(format!("{base}{id}")).send().await.unwrap();
        assert_eq!(resp.status(), 200, "renewalInfo for {id}");
    }
    ca.server.shutdown().await.unwrap();
}

#[tokio::test]
async fn dns01_through_the_challenge_test_server_with_concurrent_accounts() {
    let ca = TestCa::start().await;
    let mgmt = format!("http://{}/", ca.chall.management_addr().unwrap());
    let cfg = load(
        &ca,
        ChallengeMode::Dns01(mgmt.parse().unwrap()),
        3,
        6,
        "single=1,multi=1",
    );
    let summary = cairn_loadgen::run(cfg).await.unwrap();
    assert_eq!(summary.errors_total, 0, "{summary}");
    assert_eq!(summary.certificates, 6);
    assert_eq!(summary.accounts, 3);
    assert_eq!(
        summary.certificates_by_kind["single"] + summary.certificates_by_kind["multi"],
        6
    );
    assert_eq!(summary.endpoints["newOrder"].count, 6);
    ca.server.shutdown().await.unwrap();
}

#[tokio::test]
async fn failures_are_counted_by_problem_type() {
    // The CA validates http-01 against a port where nobody answers: every flow fails with a
    // connection problem, and the summary says so instead of counting certificates.
    let responder = Arc::new(
        Http01Responder::bind("127.0.0.1:0".parse().unwrap())
            .await
            .unwrap(),
    );
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_port = closed.local_addr().unwrap().port();
    drop(closed);
    let ca = TestCa::start_with(|cfg| cfg.va.http01_port = dead_port).await;
    let cfg = load(&ca, ChallengeMode::Http01(responder), 1, 2, "single=1");
    let summary = cairn_loadgen::run(cfg).await.unwrap();
    assert_eq!(summary.certificates, 0);
    assert_eq!(summary.errors_total, 2, "{summary}");
    assert_eq!(summary.errors.get("connection"), Some(&2), "{summary}");
    ca.server.shutdown().await.unwrap();
}

#[tokio::test]
async fn the_cairn_bench_command_runs_the_load_generator_binary() {
    cairn_bench();
    let ca = TestCa::start().await;
    let mgmt = format!("http://{}/", ca.chall.management_addr().unwrap());
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(["bench", "acme", "--directory", ca.directory(), "--root"])
        .arg(&ca.server.tls_root_path)
        .args(["--accounts", "2", "--certs", "3", "--mix", "single=1"])
        .args(["--challtestsrv", &mgmt, "--json", "--quiet"])
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["certificates"], 3, "{summary}");
    assert_eq!(summary["accounts"], 2, "{summary}");
    assert_eq!(summary["errors_total"], 0, "{summary}");
    assert_eq!(summary["endpoints"]["finalize"]["count"], 3, "{summary}");

    // Flags are cairn-bench's: a bad one is its usage error, naming the command as typed.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(["bench", "acme", "--no-such-flag"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("--no-such-flag"), "{stderr}");
    assert!(stderr.contains("Usage: cairn bench acme"), "{stderr}");
    ca.server.shutdown().await.unwrap();
}

#[test]
fn without_cairn_bench_beside_it_the_command_says_how_to_build_it() {
    // A `cairn` alone in a directory of its own (a hard link, or a copy across file systems).
    let cairn = Path::new(env!("CARGO_BIN_EXE_cairn"));
    let dir = tempfile::Builder::new()
        .prefix("bench-dispatch-")
        .tempdir_in(cairn.parent().unwrap())
        .unwrap();
    let alone = dir.path().join(cairn.file_name().unwrap());
    if std::fs::hard_link(cairn, &alone).is_err() {
        std::fs::copy(cairn, &alone).unwrap();
    }
    let out = std::process::Command::new(&alone)
        .args(["bench", "crl", "--revoked", "10"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(out.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("cairn: "), "{stderr}");
    assert!(stderr.contains("-p cairn-bench"), "{stderr}");
    assert!(stderr.contains("cargo build"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}
