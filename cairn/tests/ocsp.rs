//! The OCSP responder end to end: OpenSSL's `openssl ocsp` (an independent client and parser)
//! verifies good, revoked and unknown answers signed by the issuer or a delegated responder;
//! answers come from the cache with RFC 5019 caching headers; a revocation replaces the cached
//! answer at once (in memory, and in Redis when `CAIRN_TEST_REDIS_URL` is set); bad requests get
//! OCSP error statuses or 400, never a 500.

// Helpers outside #[test] functions: a failed unwrap there is a test failure too.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test helpers")]

mod common;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use cairn::config::Config;
use cairn_ocsp::asn1::{CertStatusAsn1, OcspResponseStatus};
use cairn_status::ocsp::SignerChoice;
use common::TestCa;
use instant_acme::{Account, ChallengeType, Identifier, RevocationReason, RevocationRequest};
use rustls_pki_types::CertificateDer;
use std::path::{Path, PathBuf};

/// An OCSP-enabled CA with one issued certificate, and the PEM files `openssl ocsp` needs.
struct Fixture {
    ca: TestCa,
    account: Account,
    leaf_der: Vec<u8>,
    files: tempfile::TempDir,
}

impl Fixture {
    async fn start(tweak: impl FnOnce(&mut Config)) -> Fixture {
        let ca = TestCa::start_with(|cfg| {
            cfg.ocsp.enabled = true;
            tweak(cfg);
        })
        .await;
        let account = ca.account().await;
        let (pem, _) = ca
            .issue(
                &account,
                &[Identifier::Dns("ocsp.example.com".into())],
                ChallengeType::Http01,
            )
            .await;
        let chain = common::pem_chain(&pem);
        let files = tempfile::tempdir().expect("tempdir");
        let leaf_pem = cairn_x509::pem_encode("CERTIFICATE", &chain[0]);
        std::fs::write(files.path().join("leaf.pem"), leaf_pem).expect("leaf.pem");
        for name in ["root.pem", "intermediate.pem"] {
            std::fs::copy(
                ca.server.root_path.with_file_name(name),
                files.path().join(name),
            )
            .expect("copy CA file");
        }
        Fixture {
            ca,
            account,
            leaf_der: chain[0].clone(),
            files,
        }
    }

    fn url(&self) -> String {
        format!("{}/ocsp", self.ca.server.public_base_url)
    }

    fn file(&self, name: &str) -> PathBuf {
        self.files.path().join(name)
    }

    /// Runs `openssl ocsp -issuer intermediate.pem -CAfile root.pem <args>`; stdout + stderr.
    async fn openssl(&self, args: &[&str]) -> String {
        let out = tokio::process::Command::new("openssl")
            .arg("ocsp")
            .arg("-issuer")
            .arg(self.file("intermediate.pem"))
            .arg("-CAfile")
            .arg(self.file("root.pem"))
            .args(args)
            .output()
            .await
            .expect("openssl runs");
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    }

    /// Asks about the leaf over POST (openssl's default) and returns openssl's report.
    async fn query_leaf(&self, extra: &[&str]) -> String {
        let leaf = self.file("leaf.pem");
        let url = self.url();
        let mut args = vec!["-cert", leaf.to_str().unwrap(), "-url", url.as_str()];
        args.extend_from_slice(extra);
        self.openssl(&args).await
    }

    /// An OCSP request for the leaf written by openssl (`-reqout`), DER.
    async fn leaf_request(&self) -> Vec<u8> {
        let out = self.file("req.der");
        let report = self
            .openssl(&[
                "-cert",
                self.file("leaf.pem").to_str().unwrap(),
                "-no_nonce",
                "-reqout",
                out.to_str().unwrap(),
            ])
            .await;
        std::fs::read(&out).unwrap_or_else(|_| panic!("openssl wrote no request: {report}"))
    }

    async fn revoke(&self, reason: RevocationReason) {
        self.account
            .revoke(&RevocationRequest {
                certificate: &CertificateDer::from(self.leaf_der.clone()),
                reason: Some(reason),
            })
            .await
            .expect("revocation by the owner");
    }

    async fn get(&self, request: &[u8]) -> reqwest::Response {
        reqwest::get(format!("{}/{}", self.url(), STANDARD.encode(request)))
            .await
            .expect("GET")
    }
}

fn assert_verified(report: &str, status: &str) {
    assert!(report.contains("Response verify OK"), "{report}");
    assert!(report.contains(&format!(": {status}")), "{report}");
}

fn random_serial() -> String {
    format!("0x{}", cairn_core::Serial::random())
}

#[tokio::test]
async fn openssl_verifies_good_revoked_and_unknown_answers_signed_by_the_issuer() {
    let f = Fixture::start(|_| {}).await;
    // The certificate names the responder in its AIA extension.
    let url = f.url();
    assert!(
        f.leaf_der.windows(url.len()).any(|w| w == url.as_bytes()),
        "AIA OCSP URL {url} missing"
    );

    let report = f.query_leaf(&["-no_nonce"]).await;
    assert_verified(&report, "good");
    assert!(report.contains("Next Update"), "{report}");

    let serial = random_serial();
    let report = f
        .openssl(&["-serial", &serial, "-url", &url, "-no_nonce"])
        .await;
    assert_verified(&report, "unknown");

    f.revoke(RevocationReason::KeyCompromise).await;
    let report = f.query_leaf(&["-no_nonce"]).await;
    assert_verified(&report, "revoked");
    assert!(report.contains("Reason: keyCompromise"), "{report}");
    assert!(report.contains("Revocation Time"), "{report}");
}

#[tokio::test]
async fn a_delegated_responder_signs_echoes_nonces_and_openssl_accepts_it() {
    let f = Fixture::start(|cfg| {
        cfg.ocsp.signer = SignerChoice::Delegated;
        cfg.ocsp.echo_nonce = true;
    })
    .await;
    assert!(
        f.ca.server
            .root_path
            .with_file_name("ocsp-responder.pem")
            .exists()
    );
    let other = f.file("intermediate.pem");
    // With a nonce (openssl's default): it must come back, or openssl warns.
    let report = f
        .query_leaf(&["-verify_other", other.to_str().unwrap()])
        .await;
    assert_verified(&report, "good");
    assert!(!report.contains("WARNING"), "{report}");

    // The response carries the responder certificate; the responder is not the intermediate.
    let der = f.get(&f.leaf_request().await).await.bytes().await.unwrap();
    let parsed = cairn_ocsp::parse_response(&der).unwrap();
    let certs = parsed.basic.unwrap().certs.expect("responder certificate");
    assert_eq!(certs.len(), 1);

    f.revoke(RevocationReason::Superseded).await;
    let report = f
        .query_leaf(&["-verify_other", other.to_str().unwrap()])
        .await;
    assert_verified(&report, "revoked");
    assert!(report.contains("Reason: superseded"), "{report}");
}

#[tokio::test]
async fn get_answers_come_from_the_cache_with_rfc5019_caching_headers() {
    let f = Fixture::start(|_| {}).await;
    let request = f.leaf_request().await;
    let first = f.get(&request).await;
    assert_eq!(first.status(), 200);
    let headers = first.headers().clone();
    assert_eq!(headers["content-type"], "application/ocsp-response");
    let cache_control = headers["cache-control"].to_str().unwrap().to_owned();
    let max_age: u64 = cache_control
        .split(',')
        .find_map(|p| p.trim().strip_prefix("max-age="))
        .expect("max-age")
        .parse()
        .unwrap();
    // Validity 4 days, re-signed 1 day before nextUpdate: about 3 days.
    assert!(
        (3 * 86_400 - 60..=3 * 86_400).contains(&max_age),
        "{cache_control}"
    );
    for name in ["etag", "last-modified", "expires"] {
        assert!(headers.contains_key(name), "{name} missing: {headers:?}");
    }
    let body = first.bytes().await.unwrap();
    let parsed = cairn_ocsp::parse_response(&body).unwrap();
    let single = parsed.single().unwrap();
    assert!(matches!(single.cert_status, CertStatusAsn1::Good(_)));
    let validity = single.next_update_time().unwrap() - single.this_update_time().unwrap();
    assert_eq!(validity, time::Duration::days(4));

    // ECDSA signatures are randomized: the same bytes again means the answer was cached.
    let second = f.get(&request).await;
    assert_eq!(second.headers()["etag"], headers["etag"]);
    assert_eq!(second.bytes().await.unwrap(), body);

    let not_modified = reqwest::Client::new()
        .get(format!("{}/{}", f.url(), STANDARD.encode(&request)))
        .header("if-none-match", headers["etag"].clone())
        .send()
        .await
        .unwrap();
    assert_eq!(not_modified.status(), 304);

    // POST gets the same cached answer.
    let posted = reqwest::Client::new()
        .post(f.url())
        .header("content-type", "application/ocsp-request")
        .body(request.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(posted.status(), 200);
    assert_eq!(posted.bytes().await.unwrap(), body);
}

/// Caches "good", revokes through ACME, and expects "revoked" at once (not after the cached
/// answer's 3 days).
async fn revocation_replaces_the_cached_answer(f: &Fixture) {
    let request = f.leaf_request().await;
    let good = f.get(&request).await.bytes().await.unwrap();
    assert_eq!(f.get(&request).await.bytes().await.unwrap(), good, "cached");
    assert!(matches!(
        cairn_ocsp::parse_response(&good)
            .unwrap()
            .single()
            .unwrap()
            .cert_status,
        CertStatusAsn1::Good(_)
    ));
    f.revoke(RevocationReason::CessationOfOperation).await;
    let after = f.get(&request).await.bytes().await.unwrap();
    let parsed = cairn_ocsp::parse_response(&after).unwrap();
    match &parsed.single().unwrap().cert_status {
        CertStatusAsn1::Revoked(info) => assert_eq!(
            info.revocation_reason,
            Some(x509_cert::ext::pkix::crl::CrlReason::CessationOfOperation)
        ),
        other => panic!("expected revoked, got {other:?}"),
    }
    // And the replacement is itself cached.
    assert_eq!(f.get(&request).await.bytes().await.unwrap(), after);
    let report = f.query_leaf(&["-no_nonce"]).await;
    assert_verified(&report, "revoked");
}

#[tokio::test]
async fn revocation_replaces_the_cached_answer_in_memory() {
    let f = Fixture::start(|_| {}).await;
    revocation_replaces_the_cached_answer(&f).await;
}

#[tokio::test]
async fn revocation_replaces_the_cached_answer_in_redis() {
    let Some(url) = cairn_test_services::redis_url() else {
        return;
    };
    let prefix = format!("cairn-test:ocsp:{}:", cairn_core::random_id(8));
    let f = Fixture::start(|cfg| {
        // A shared Redis outlives test runs: rate-limit buckets of this run's own.
        cfg.server.redis_prefix = format!("cairn-test:rl:{}:", cairn_core::random_id(8));
        cfg.server.redis_url = Some(url.clone());
        cfg.ocsp.redis_prefix = prefix.clone();
    })
    .await;
    let request = f.leaf_request().await;
    f.get(&request).await;
    // The answer is in Redis, under the prefix.
    let client = redis::Client::open(url.as_str()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(keys.len(), 1, "{keys:?}");
    let ttl: i64 = redis::cmd("TTL")
        .arg(&keys[0])
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(ttl > 2 * 86_400 && ttl <= 3 * 86_400, "ttl {ttl}");
    revocation_replaces_the_cached_answer(&f).await;
    let _: i64 = redis::cmd("DEL")
        .arg(&keys)
        .query_async(&mut conn)
        .await
        .unwrap();
}

/// Revokes the leaf with `cairn admin revoke` in a separate process (config `config_toml`),
/// having cached "good" first; returns the status answers of the next `polls` GETs, one every
/// 250 ms, stopping at the first "revoked".
async fn admin_revoke_then_poll(f: &Fixture, config_toml: &str, polls: usize) -> Vec<String> {
    let request = f.leaf_request().await;
    let good = f.get(&request).await.bytes().await.unwrap();
    assert_eq!(f.get(&request).await.bytes().await.unwrap(), good, "cached");
    let config = f.file("admin.toml");
    std::fs::write(&config, config_toml).unwrap();
    let serial: String = cairn_x509::CertInfo::from_der(&f.leaf_der)
        .unwrap()
        .serial
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args([
            "admin",
            "revoke",
            "--serial",
            &serial,
            "--reason",
            "keyCompromise",
        ])
        .arg("--config")
        .arg(&config)
        .arg("--data-dir")
        .arg(f.ca.dir.path().join("data"))
        .env_remove("CAIRN_REDIS_URL")
        .env_remove("CAIRN_DATABASE_URL")
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success() && stdout.contains("revoked 1 certificate"),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut seen = Vec::new();
    for _ in 0..polls {
        let der = f.get(&request).await.bytes().await.unwrap();
        let parsed = cairn_ocsp::parse_response(&der).unwrap();
        let status = match &parsed.single().unwrap().cert_status {
            CertStatusAsn1::Revoked(info) => {
                assert_eq!(
                    info.revocation_reason,
                    Some(x509_cert::ext::pkix::crl::CrlReason::KeyCompromise)
                );
                "revoked"
            }
            CertStatusAsn1::Good(_) => "good",
            CertStatusAsn1::Unknown(_) => "unknown",
        };
        seen.push(status.to_owned());
        if status == "revoked" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    seen
}

#[tokio::test]
async fn admin_revoke_in_another_process_reaches_the_memory_cache_within_the_poll_interval() {
    if std::env::var("CAIRN_REDIS_URL").is_ok() {
        assert!(
            !cairn_test_services::in_ci(),
            "CAIRN_REDIS_URL is set under CI: this test needs the in-memory OCSP cache"
        );
        println!("skipped: CAIRN_REDIS_URL set, the server would cache in Redis");
        return;
    }
    let f = Fixture::start(|cfg| cfg.crl.poll_interval = "1s".into()).await;
    let seen = admin_revoke_then_poll(&f, "[ocsp]\nenabled = true\n", 20).await;
    // Within the 1 s poll interval (plus slack), never after the cached answer's 3 days.
    assert_eq!(seen.last().map(String::as_str), Some("revoked"), "{seen:?}");
    assert!(seen.len() <= 12, "{seen:?}");
    let report = f.query_leaf(&["-no_nonce"]).await;
    assert_verified(&report, "revoked");
}

#[tokio::test]
async fn admin_revoke_in_another_process_replaces_the_redis_answer_at_once() {
    let Some(url) = cairn_test_services::redis_url() else {
        return;
    };
    let prefix = format!("cairn-test:ocsp:{}:", cairn_core::random_id(8));
    let f = Fixture::start(|cfg| {
        // A shared Redis outlives test runs: rate-limit buckets of this run's own.
        cfg.server.redis_prefix = format!("cairn-test:rl:{}:", cairn_core::random_id(8));
        cfg.server.redis_url = Some(url.clone());
        cfg.ocsp.redis_prefix = prefix.clone();
        // Long enough that only the admin process's own listener can explain a prompt answer.
        cfg.crl.poll_interval = "1h".into();
    })
    .await;
    let config = format!(
        "[server]\nredis_url = \"{url}\"\n[ocsp]\nenabled = true\nredis_prefix = \"{prefix}\"\n"
    );
    let seen = admin_revoke_then_poll(&f, &config, 1).await;
    assert_eq!(seen, ["revoked"]);
    let report = f.query_leaf(&["-no_nonce"]).await;
    assert_verified(&report, "revoked");
    let client = redis::Client::open(url.as_str()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query_async(&mut conn)
        .await
        .unwrap();
    if !keys.is_empty() {
        let _: i64 = redis::cmd("DEL")
            .arg(&keys)
            .query_async(&mut conn)
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn bad_requests_get_ocsp_errors_or_400_never_500() {
    let f = Fixture::start(|_| {}).await;
    let client = reqwest::Client::new();
    let status_of = |body: &[u8]| cairn_ocsp::parse_response(body).unwrap().status;

    // Garbage with the right content type: malformedRequest.
    let resp = client
        .post(f.url())
        .header("content-type", "application/ocsp-request")
        .body(&b"\x30\x03garbage"[..])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["cache-control"], "no-store");
    assert_eq!(
        status_of(&resp.bytes().await.unwrap()),
        OcspResponseStatus::MalformedRequest
    );

    // A good request with the wrong content type: 400.
    let request = f.leaf_request().await;
    let resp = client
        .post(f.url())
        .header("content-type", "application/json")
        .body(request.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert_eq!(
        status_of(&resp.bytes().await.unwrap()),
        OcspResponseStatus::MalformedRequest
    );

    // Too large: 413 before parsing.
    let resp = client
        .post(f.url())
        .header("content-type", "application/ocsp-request")
        .body(vec![0x30; 64 * 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 413);

    // GET with bad base64, with nothing, with a valid request for two certificates.
    for path in ["/!!!notbase64", "", "/"] {
        let resp = reqwest::get(format!("{}{path}", f.url())).await.unwrap();
        assert_eq!(resp.status(), 200, "{path}");
        assert_eq!(
            status_of(&resp.bytes().await.unwrap()),
            OcspResponseStatus::MalformedRequest,
            "{path}"
        );
    }
    let two = f.file("two.der");
    f.openssl(&[
        "-serial",
        "0x01",
        "-serial",
        "0x02",
        "-no_nonce",
        "-reqout",
        two.to_str().unwrap(),
    ])
    .await;
    let resp = f.get(&std::fs::read(&two).unwrap()).await;
    assert_eq!(
        status_of(&resp.bytes().await.unwrap()),
        OcspResponseStatus::MalformedRequest
    );

    // Another issuer's certificate: unauthorized (openssl reports the responder error).
    let other = other_issuer(f.files.path());
    let report = tokio::process::Command::new("openssl")
        .args(["ocsp", "-issuer"])
        .arg(&other)
        .args(["-serial", "0x01", "-no_nonce", "-url", &f.url()])
        .output()
        .await
        .unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&report.stdout),
        String::from_utf8_lossy(&report.stderr)
    );
    assert!(report.contains("unauthorized"), "{report}");
}

/// A throwaway CA certificate that did not issue anything here.
fn other_issuer(dir: &Path) -> PathBuf {
    let key = cairn_x509::SigningKey::generate(cairn_x509::KeyAlgorithm::EcdsaP256).unwrap();
    let now = time::OffsetDateTime::now_utc();
    let der = cairn_x509::build_root(
        &key,
        "Somebody Else",
        None,
        now - time::Duration::hours(1),
        now + time::Duration::days(1),
    )
    .unwrap();
    let path = dir.join("other.pem");
    std::fs::write(&path, cairn_x509::pem_encode("CERTIFICATE", &der)).unwrap();
    path
}

#[tokio::test]
async fn the_responder_is_off_by_default() {
    let ca = TestCa::start().await;
    let account = ca.account().await;
    let (pem, _) = ca
        .issue(
            &account,
            &[Identifier::Dns("no-ocsp.example.com".into())],
            ChallengeType::Http01,
        )
        .await;
    let leaf = common::pem_chain(&pem).remove(0);
    // id-ad-ocsp (1.3.6.1.5.5.7.48.1) does not occur in the certificate.
    let ad_ocsp = [0x06, 0x08, 0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x30, 0x01];
    assert!(!leaf.windows(ad_ocsp.len()).any(|w| w == ad_ocsp));
    let resp = reqwest::get(format!("{}/ocsp/MAA=", ca.server.public_base_url))
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
}

/// Runs `wrk` against `url` and returns its report.
async fn wrk(url: &str, duration: &str, connections: &str) -> String {
    let out = tokio::process::Command::new("wrk")
        .args(["-t2", "-c", connections, "-d", duration, "--latency", url])
        .output()
        .await
        .expect("wrk runs (apt-get install wrk)");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Throughput of GET /ocsp from the cache and with live signing (a request with a nonce and
/// `echo_nonce = true`: every answer is signed afresh after a storage lookup). A benchmark, not
/// a test: run it with `testing/bench/ocsp.sh`. `OCSP_BENCH_DURATION` (default 10s) and
/// `OCSP_BENCH_CONNECTIONS` (default 32) tune wrk.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "benchmark: run with testing/bench/ocsp.sh"]
async fn ocsp_throughput_with_wrk() {
    let duration = std::env::var("OCSP_BENCH_DURATION").unwrap_or_else(|_| "10s".into());
    let connections = std::env::var("OCSP_BENCH_CONNECTIONS").unwrap_or_else(|_| "32".into());
    let f = Fixture::start(|cfg| cfg.ocsp.echo_nonce = true).await;

    let cached = format!("{}/{}", f.url(), STANDARD.encode(f.leaf_request().await));
    let nonce_req = f.file("nonce.der");
    f.openssl(&[
        "-cert",
        f.file("leaf.pem").to_str().unwrap(),
        "-reqout",
        nonce_req.to_str().unwrap(),
    ])
    .await;
    let live = format!(
        "{}/{}",
        f.url(),
        STANDARD.encode(std::fs::read(&nonce_req).unwrap())
    );
    // Both answer "good"; the nonce one differs on every request (a fresh signature).
    for url in [&cached, &live] {
        let body = reqwest::get(url.as_str())
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        let parsed = cairn_ocsp::parse_response(&body).unwrap();
        assert!(matches!(
            parsed.single().unwrap().cert_status,
            CertStatusAsn1::Good(_)
        ));
    }
    let a = reqwest::get(live.as_str())
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let b = reqwest::get(live.as_str())
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_ne!(a, b, "nonce requests are signed live");

    let uptime = std::process::Command::new("uptime").output().unwrap();
    println!("before: {}", String::from_utf8_lossy(&uptime.stdout).trim());
    for (name, url) in [("cached", &cached), ("live signing", &live)] {
        let report = wrk(url, &duration, &connections).await;
        let rps = report
            .lines()
            .find(|l| l.starts_with("Requests/sec:"))
            .unwrap_or("Requests/sec: ?");
        println!("== {name}: {rps}\n{report}");
    }
    let uptime = std::process::Command::new("uptime").output().unwrap();
    println!("after: {}", String::from_utf8_lossy(&uptime.stdout).trim());
}
