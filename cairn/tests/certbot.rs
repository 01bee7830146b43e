//! certbot against `cairn serve`, end to end and out of process: the `cairn` binary runs the
//! challenge test server (for DNS) and the CA as two child processes; certbot registers, gets a
//! certificate with its standalone http-01 server, renews it and revokes it.
//!
//! certbot comes from the virtualenv that `testing/test.sh` prepares (`CAIRN_VENV`).

mod common;

use cairn_core::Identifier;
use cairn_x509::CertInfo;
use common::{pem_chain, verify_chain};
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const NAME: &str = "certbot.example.com";

/// A free TCP port on 127.0.0.1.
// A test helper: no free port means the test cannot run.
#[allow(clippy::unwrap_used, clippy::expect_used)]
fn free_tcp_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free TCP port")
        .port()
}

/// A port on 127.0.0.1 free for both UDP and TCP (the DNS server listens on both).
// A test helper: no free port means the test cannot run.
#[allow(clippy::unwrap_used, clippy::expect_used)]
fn free_udp_tcp_port() -> u16 {
    for _ in 0..50 {
        let udp = UdpSocket::bind("127.0.0.1:0").expect("UDP socket");
        let port = udp.local_addr().expect("UDP address").port();
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no port free for both UDP and TCP on 127.0.0.1");
}

/// Child processes killed (and reaped) on drop, so that a failing test leaves no orphan. When
/// the test is failing, their logs are printed.
struct Children {
    procs: Vec<(String, Child, PathBuf)>,
}

impl Children {
    /// Starts `cairn <args>` with stdout and stderr going to `log`.
    // A test helper: a binary that cannot start is a test failure.
    #[allow(clippy::unwrap_used, clippy::expect_used)]
    fn spawn(&mut self, label: &str, args: &[String], log: PathBuf) {
        let out = std::fs::File::create(&log).expect("log file");
        let err = out.try_clone().expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_cairn"))
            .args(args)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start cairn {label}: {e}"));
        self.procs.push((label.to_owned(), child, log));
    }

    /// Panics (with the log) if a child has exited.
    fn assert_running(&mut self) {
        for (label, child, log) in &mut self.procs {
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "cairn {label} exited early ({status}):\n{}",
                    std::fs::read_to_string(log).unwrap_or_default()
                );
            }
        }
    }
}

impl Drop for Children {
    fn drop(&mut self) {
        for (label, child, log) in &mut self.procs {
            let _ = child.kill();
            let _ = child.wait();
            if std::thread::panicking() {
                eprintln!(
                    "----- log of cairn {label} -----\n{}",
                    std::fs::read_to_string(log).unwrap_or_default()
                );
            }
        }
    }
}

/// Runs certbot with the test's folders, server and trust anchor; panics with its output and
/// log when it fails.
// A test helper: certbot failing is a test failure.
#[allow(clippy::unwrap_used, clippy::expect_used)]
fn certbot(env: &CertbotEnv, args: &[&str]) -> Output {
    let out = certbot_unchecked(env, args);
    assert!(
        out.status.success(),
        "certbot {} failed ({}):\nstdout:\n{}\nstderr:\n{}\nlog:\n{}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        env.log_tail()
    );
    out
}

// A test helper: certbot that cannot be started is a test failure.
#[allow(clippy::unwrap_used, clippy::expect_used)]
fn certbot_unchecked(env: &CertbotEnv, args: &[&str]) -> Output {
    let exe = env.venv.join("bin").join("certbot");
    println!("$ certbot {}", args.join(" "));
    let started = Instant::now();
    let out = Command::new(&exe)
        .args(args)
        .arg("--config-dir")
        .arg(env.base.join("config"))
        .arg("--work-dir")
        .arg(env.base.join("work"))
        .arg("--logs-dir")
        .arg(env.base.join("logs"))
        .args(["--server", &env.directory])
        .args(["--non-interactive", "--agree-tos"])
        .env("REQUESTS_CA_BUNDLE", &env.root)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", exe.display()));
    println!(
        "  ({:.1}s, {})",
        started.elapsed().as_secs_f32(),
        out.status
    );
    out
}

struct CertbotEnv {
    venv: PathBuf,
    base: PathBuf,
    directory: String,
    root: PathBuf,
}

impl CertbotEnv {
    fn live(&self, file: &str) -> PathBuf {
        self.base.join("config/live").join(NAME).join(file)
    }

    /// The end of certbot's own log, for failure messages.
    fn log_tail(&self) -> String {
        let log =
            std::fs::read_to_string(self.base.join("logs/letsencrypt.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(60)..].join("\n")
    }
}

/// Waits until the CA's directory answers over HTTPS with the root it wrote.
// A test helper: a CA that never answers is a test failure.
#[allow(clippy::unwrap_used, clippy::expect_used)]
async fn wait_for_directory(children: &mut Children, directory: &str, root: &Path) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut last_error = String::from("root.pem not written yet");
    while Instant::now() < deadline {
        children.assert_running();
        if let Ok(pem) = std::fs::read(root) {
            let client = reqwest::Client::builder()
                .add_root_certificate(reqwest::Certificate::from_pem(&pem).expect("root PEM"))
                .timeout(Duration::from_secs(5))
                .build()
                .expect("HTTP client");
            match client.get(directory).send().await {
                Ok(resp) if resp.status().is_success() => {
                    let body: serde_json::Value = resp.json().await.expect("directory JSON");
                    assert!(body["newAccount"].is_string(), "directory: {body}");
                    return;
                }
                Ok(resp) => last_error = format!("status {}", resp.status()),
                Err(e) => last_error = format!("{e:#}"),
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("the directory {directory} did not answer within 60s: {last_error}");
}

/// Waits until the challenge test server has printed that it is listening.
// A test helper: a server that never starts is a test failure.
#[allow(clippy::unwrap_used, clippy::expect_used)]
async fn wait_for_challtestsrv(children: &mut Children, log: &Path) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        children.assert_running();
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if text.contains("challtestsrv: management") {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "challtestsrv did not start within 30s:\n{}",
        std::fs::read_to_string(log).unwrap_or_default()
    );
}

/// Checks the certificate certbot saved: the files, the chain up to the root, the names.
/// Returns its serial.
// A test helper: a bad certificate is a test failure.
#[allow(clippy::unwrap_used, clippy::expect_used)]
fn check_saved_certificate(env: &CertbotEnv) -> Vec<u8> {
    for file in ["cert.pem", "chain.pem", "fullchain.pem", "privkey.pem"] {
        assert!(env.live(file).is_file(), "{} is missing", file);
    }
    let fullchain = std::fs::read_to_string(env.live("fullchain.pem")).expect("fullchain.pem");
    verify_chain(&env.root, &fullchain, NAME);
    let cert = pem_chain(&std::fs::read_to_string(env.live("cert.pem")).expect("cert.pem"));
    assert_eq!(cert.len(), 1, "cert.pem holds the leaf only");
    assert_eq!(
        cert[0],
        pem_chain(&fullchain)[0],
        "fullchain.pem starts with cert.pem"
    );
    let chain = pem_chain(&std::fs::read_to_string(env.live("chain.pem")).expect("chain.pem"));
    assert!(!chain.is_empty(), "chain.pem holds the intermediate");
    let info = CertInfo::from_der(&cert[0]).expect("certificate parses");
    assert_eq!(info.identifiers, vec![Identifier::dns(NAME)], "SANs");
    assert!(!info.is_ca);
    info.serial
}

#[tokio::test]
async fn certbot_registers_issues_renews_and_revokes() {
    let Some(venv) = cairn_test_services::venv() else {
        return;
    };
    let certbot_exe = venv.join("bin").join("certbot");
    assert!(
        certbot_exe.is_file(),
        "{} is missing: run testing/test.sh",
        certbot_exe.display()
    );
    let tmp = tempfile::tempdir().unwrap();
    let data_dir = tmp.path().join("data");
    let mut children = Children { procs: Vec::new() };

    // The challenge test server only serves DNS here (any name → 127.0.0.1); certbot answers
    // http-01 itself.
    let dns: SocketAddr = ([127, 0, 0, 1], free_udp_tcp_port()).into();
    let chall_log = tmp.path().join("challtestsrv.log");
    let loopback = |port: u16| format!("127.0.0.1:{port}");
    children.spawn(
        "challtestsrv",
        &[
            "challtestsrv".into(),
            "--management".into(),
            loopback(free_tcp_port()),
            "--dns".into(),
            dns.to_string(),
            "--http01".into(),
            loopback(free_tcp_port()),
            "--tlsalpn01".into(),
            loopback(free_tcp_port()),
            "--default-ipv4".into(),
            "127.0.0.1".into(),
        ],
        chall_log.clone(),
    );
    wait_for_challtestsrv(&mut children, &chall_log).await;

    let acme_port = free_tcp_port();
    let http01_port = free_tcp_port();
    children.spawn(
        "serve",
        &[
            "serve".into(),
            "--no-dap".into(),
            "--data-dir".into(),
            data_dir.display().to_string(),
            "--listen".into(),
            loopback(acme_port),
            "--metrics-listen".into(),
            loopback(free_tcp_port()),
            "--public-listen".into(),
            loopback(free_tcp_port()),
            "--dns-server".into(),
            dns.to_string(),
            "--http01-port".into(),
            http01_port.to_string(),
            // certbot answers on 127.0.0.1: a private-PKI set-up.
            "--allow-private-addresses".into(),
        ],
        tmp.path().join("serve.log"),
    );
    let directory = format!("https://localhost:{acme_port}/directory");
    let root = data_dir.join("ca").join("root.pem");
    wait_for_directory(&mut children, &directory, &root).await;

    let env = CertbotEnv {
        venv,
        base: tmp.path().join("certbot"),
        directory,
        root,
    };
    let port = http01_port.to_string();
    let standalone = [
        "--standalone",
        "--http-01-port",
        &port,
        "--http-01-address",
        "127.0.0.1",
    ];

    // Register.
    certbot(&env, &["register", "--register-unsafely-without-email"]);
    let accounts = env.base.join("config/accounts");
    assert!(accounts.is_dir(), "certbot saved no account");

    // Issue with certbot's standalone http-01 server.
    let mut args = vec!["certonly", "-d", NAME];
    args.extend(standalone);
    certbot(&env, &args);
    let first_serial = check_saved_certificate(&env);

    // Renew: a new certificate with a new serial replaces it.
    // Non-interactive renewals otherwise sleep up to 8 minutes to spread the load.
    let mut args = vec!["renew", "--force-renewal", "--no-random-sleep-on-renew"];
    args.extend(standalone);
    certbot(&env, &args);
    let second_serial = check_saved_certificate(&env);
    assert_ne!(
        first_serial, second_serial,
        "renewal issued a new certificate"
    );
    assert!(
        env.base
            .join("config/archive")
            .join(NAME)
            .join("cert2.pem")
            .is_file(),
        "certbot archived the renewed certificate"
    );

    // Revoke for key compromise (signed with the account key), keeping the files.
    let cert_path = env.live("cert.pem").display().to_string();
    certbot(
        &env,
        &[
            "revoke",
            "--cert-path",
            &cert_path,
            "--reason",
            "keycompromise",
            "--no-delete-after-revoke",
        ],
    );
    assert!(env.live("cert.pem").is_file(), "--no-delete-after-revoke");
    // The CA now knows it is revoked: a second revocation is refused.
    let again = certbot_unchecked(
        &env,
        &[
            "revoke",
            "--cert-path",
            &cert_path,
            "--reason",
            "keycompromise",
            "--no-delete-after-revoke",
        ],
    );
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&again.stdout),
        String::from_utf8_lossy(&again.stderr)
    );
    assert!(
        !again.status.success() && text.to_lowercase().contains("already revoked"),
        "a second revocation should be refused as already revoked ({}):\n{text}",
        again.status
    );

    // certbot 5.x picks a profile: `shortlived` gives a 160-hour certificate without a CN.
    let mut args = vec![
        "certonly",
        "--cert-name",
        "short",
        "-d",
        "short.example.com",
        "--preferred-profile",
        "shortlived",
    ];
    args.extend(standalone);
    certbot(&env, &args);
    let short = saved_leaf(&env, "short", "short.example.com");
    assert_eq!(
        short.not_after - short.not_before,
        time::Duration::hours(160) - time::Duration::seconds(1)
    );
    assert_eq!(short.common_name, None);

    // An IP address certificate (certbot --ip-address), which only `shortlived` allows.
    let mut args = vec![
        "certonly",
        "--cert-name",
        "ip",
        "--ip-address",
        "127.0.0.1",
        "--preferred-profile",
        "shortlived",
    ];
    args.extend(standalone);
    certbot(&env, &args);
    let ip = saved_leaf(&env, "ip", "127.0.0.1");
    assert_eq!(
        ip.identifiers,
        vec![Identifier::ip("127.0.0.1".parse().unwrap())]
    );

    drop(children);
}

/// The leaf certbot saved under `cert_name`, after checking its chain for `name`.
// A test helper: a missing or bad certificate is a test failure.
#[allow(clippy::unwrap_used, clippy::expect_used)]
fn saved_leaf(env: &CertbotEnv, cert_name: &str, name: &str) -> CertInfo {
    let live = env.base.join("config/live").join(cert_name);
    let fullchain = std::fs::read_to_string(live.join("fullchain.pem")).expect("fullchain.pem");
    verify_chain(&env.root, &fullchain, name);
    CertInfo::from_der(&pem_chain(&fullchain)[0]).expect("certificate parses")
}
