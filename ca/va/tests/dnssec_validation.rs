//! In-process DNSSEC validation against a real signed zone: BIND (`named`) serves a zone
//! signed by `dnssec-signzone`, started by the test, and the VA trusts the zone's KSK.
//! - a validly signed zone validates (dns-01 and CAA);
//! - a record changed after signing (a broken signature: bogus) is refused with a `dns`
//!   problem, for dns-01 and for CAA, though without validation it would have passed;
//! - an unsigned delegation (no DS: provably insecure) validates as before.
//!
//! Needs `named`, `dnssec-keygen` and `dnssec-signzone` (Debian `bind9`, `bind9-utils`): under
//! CI their absence is a failure; elsewhere the test says it skips.
// Test setup code outside #[test] functions may unwrap too (see clippy.toml).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use cairn_core::{ChallengeType::Dns01, Identifier, ProblemType};
use cairn_va::{Dnssec, Va, VaConfig, ValidationAuthority, dns01_txt_value};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use support::*;

/// A running `named` serving `test.` (signed) and `unsigned.test.` (delegated without DS).
struct Bind {
    child: Child,
    dir: PathBuf,
    addr: SocketAddr,
    /// The DNSKEY records of `test.`: the trust anchor.
    anchor: PathBuf,
}

impl Drop for Bind {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn tools_present() -> bool {
    ["named", "dnssec-keygen", "dnssec-signzone"]
        .iter()
        .all(|t| find_tool(t).is_some())
}

fn find_tool(name: &str) -> Option<PathBuf> {
    [
        "/usr/sbin",
        "/usr/bin",
        "/sbin",
        "/bin",
        "/usr/local/sbin",
        "/usr/local/bin",
    ]
    .iter()
    .map(|d| Path::new(d).join(name))
    .find(|p| p.is_file())
}

fn run(dir: &Path, tool: &str, args: &[&str]) -> String {
    let out = Command::new(find_tool(tool).unwrap())
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{tool} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

use cairn_test_services::free_port;

const SOA: &str = "@ IN SOA ns.test. admin.test. 1 3600 600 86400 300";

async fn start_bind() -> Option<Bind> {
    if !tools_present() {
        assert!(
            !cairn_test_services::in_ci(),
            "named, dnssec-keygen and dnssec-signzone are required under CI (Debian: bind9 bind9-utils)"
        );
        eprintln!("SKIP: BIND (named, dnssec-keygen, dnssec-signzone) is not installed");
        return None;
    }
    let dir = std::env::temp_dir().join(format!(
        "cairn-dnssec-{}-{}",
        std::process::id(),
        cairn_core::random_id(8)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let digest = dns01_txt_value(KEY_AUTH);
    // `bad` and `badcaa` are signed with one value and served with another: bogus.
    let zone = format!(
        "$TTL 300\n{SOA}\n@ IN NS ns.test.\nns IN A 127.0.0.1\n\
         _acme-challenge.good IN TXT \"{digest}\"\ngood IN CAA 0 issue \"ca.example\"\n\
         _acme-challenge.bad IN TXT \"signed-value\"\n\
         badcaa IN CAA 0 issue \"other.example\"\n\
         unsigned IN NS ns.test.\n"
    );
    std::fs::write(dir.join("db.test"), zone).unwrap();
    let child_zone =
        format!("$TTL 300\n{SOA}\n@ IN NS ns.test.\n_acme-challenge IN TXT \"{digest}\"\n");
    std::fs::write(dir.join("db.unsigned"), child_zone).unwrap();
    let ksk = run(
        &dir,
        "dnssec-keygen",
        &["-q", "-a", "ECDSAP256SHA256", "-f", "KSK", "test"],
    );
    let zsk = run(
        &dir,
        "dnssec-keygen",
        &["-q", "-a", "ECDSAP256SHA256", "test"],
    );
    run(
        &dir,
        "dnssec-signzone",
        &[
            "-q",
            "-S",
            "-K",
            ".",
            "-o",
            "test",
            "-f",
            "db.test.signed",
            "db.test",
        ],
    );
    // Break the signatures of two RRsets by changing their data after signing.
    let signed = std::fs::read_to_string(dir.join("db.test.signed")).unwrap();
    assert!(signed.contains("\"signed-value\"") && signed.contains("\"other.example\""));
    let tampered = signed
        .replace("\"signed-value\"", &format!("\"{digest}\""))
        .replace("\"other.example\"", "\"ca.example\"");
    std::fs::write(dir.join("db.test.signed"), tampered).unwrap();
    // The trust anchor: the zone's DNSKEY RRset (KSK and ZSK; Hickory looks for a DS in the
    // parent unless every key of the set is an anchor), without the comment lines.
    let anchor = dir.join("anchor.keys");
    let mut lines = Vec::new();
    for k in [&ksk, &zsk] {
        let key = std::fs::read_to_string(dir.join(format!("{k}.key"))).unwrap();
        lines.extend(
            key.lines()
                .filter(|l| !l.starts_with(';'))
                .map(str::to_owned),
        );
    }
    std::fs::write(&anchor, lines.join("\n") + "\n").unwrap();

    let port = free_port();
    let d = dir.display();
    let conf = format!(
        "options {{ directory \"{d}\"; pid-file \"{d}/named.pid\"; \
         session-keyfile \"{d}/session.key\"; managed-keys-directory \"{d}\"; \
         listen-on port {port} {{ 127.0.0.1; }}; listen-on-v6 {{ none; }}; \
         recursion no; dnssec-validation no; allow-query {{ any; }}; }};\n\
         controls {{ }};\n\
         zone \"test\" {{ type primary; file \"{d}/db.test.signed\"; }};\n\
         zone \"unsigned.test\" {{ type primary; file \"{d}/db.unsigned\"; }};\n"
    );
    std::fs::write(dir.join("named.conf"), conf).unwrap();
    let child = Command::new(find_tool("named").unwrap())
        .args(["-g", "-c"])
        .arg(dir.join("named.conf"))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("named.log")).unwrap())
        .spawn()
        .unwrap();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let bind = Bind {
        child,
        dir,
        addr,
        anchor,
    };
    // Ready once it accepts TCP (zones are loaded before named listens).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while tokio::net::TcpStream::connect(addr).await.is_err() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "named did not start: {}",
            std::fs::read_to_string(bind.dir.join("named.log")).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Some(bind)
}

fn va(bind: &Bind, dnssec: Dnssec) -> Va {
    Va::new(VaConfig {
        dns_server: bind.addr,
        timeout: Duration::from_secs(5),
        dnssec,
        ..Default::default()
    })
    .unwrap()
}

async fn dns01(va: &Va, name: &str) -> cairn_va::ValidationOutcome {
    va.validate(request(Identifier::dns(name), Dns01, KEY_AUTH))
        .await
}

#[tokio::test]
async fn signed_zones_validate_bogus_answers_are_refused_and_unsigned_delegations_pass() {
    let Some(bind) = start_bind().await else {
        return;
    };
    let validating = va(
        &bind,
        Dnssec::Validate {
            trust_anchor: Some(bind.anchor.clone()),
        },
    );
    let plain = va(&bind, Dnssec::Off);

    // A validly signed answer.
    assert_valid(&dns01(&validating, "good.test").await);
    // A broken signature: refused with a dns problem, though the value is right.
    let o = dns01(&validating, "bad.test").await;
    assert_problem(&o, ProblemType::Dns, "DNSSEC validation failed");
    assert_valid(&dns01(&plain, "bad.test").await);
    // An unsigned delegation (no DS in the signed parent): insecure, so used as before.
    assert_valid(&dns01(&validating, "unsigned.test").await);

    // CAA lookups are validated too.
    let ids = vec!["ca.example".to_owned()];
    validating
        .check_caa(&Identifier::dns("good.test"), false, &ids)
        .await
        .unwrap();
    let p = validating
        .check_caa(&Identifier::dns("badcaa.test"), false, &ids)
        .await
        .unwrap_err();
    assert_eq!(p.typ, ProblemType::Dns, "{p:?}");
    assert!(p.detail.contains("DNSSEC validation failed"), "{p:?}");
    plain
        .check_caa(&Identifier::dns("badcaa.test"), false, &ids)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_missing_trust_anchor_file_is_a_configuration_error() {
    let err = Va::new(VaConfig {
        dnssec: Dnssec::Validate {
            trust_anchor: Some("/nonexistent/anchor.keys".into()),
        },
        ..Default::default()
    })
    .unwrap_err();
    assert!(err.to_string().contains("trust anchor"), "{err}");
}
