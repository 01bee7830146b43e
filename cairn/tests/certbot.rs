//! certbot against `cairn serve`, end to end and out of process: the `cairn` binary runs the
//! challenge test server (for DNS) and the CA as two child processes; certbot registers, gets a
//! certificate with its standalone http-01 server, renews it and revokes it.
//!
//! certbot comes from the virtualenv that `testing/test.sh` prepares (`CAIRN_VENV`).

mod common;

use cairn_core::Identifier;
use common::certbot::CertbotEnv;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const NAME: &str = "certbot.example.com";

use cairn_test_services::free_port;

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

/// Waits until the CA's directory answers over HTTPS with the local TLS root it wrote.
// A test helper: a CA that never answers is a test failure.
#[allow(clippy::unwrap_used, clippy::expect_used)]
async fn wait_for_directory(children: &mut Children, directory: &str, root: &Path) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut last_error = String::from("tls-root.pem not written yet");
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

#[tokio::test]
async fn certbot_registers_issues_renews_and_revokes() {
    let Some(venv) = cairn_test_services::venv() else {
        return;
    };
    CertbotEnv::check_installed(&venv);
    let tmp = tempfile::tempdir().unwrap();
    let data_dir = tmp.path().join("data");
    let mut children = Children { procs: Vec::new() };

    // The challenge test server only serves DNS here (any name → 127.0.0.1); certbot answers
    // http-01 itself.
    let dns: SocketAddr = ([127, 0, 0, 1], free_port()).into();
    let chall_log = tmp.path().join("challtestsrv.log");
    let loopback = |port: u16| format!("127.0.0.1:{port}");
    children.spawn(
        "challtestsrv",
        &[
            "challtestsrv".into(),
            "--management".into(),
            loopback(free_port()),
            "--dns".into(),
            dns.to_string(),
            "--http01".into(),
            loopback(free_port()),
            "--tlsalpn01".into(),
            loopback(free_port()),
            "--default-ipv4".into(),
            "127.0.0.1".into(),
        ],
        chall_log.clone(),
    );
    wait_for_challtestsrv(&mut children, &chall_log).await;

    let acme_port = free_port();
    let http01_port = free_port();
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
            loopback(free_port()),
            "--public-listen".into(),
            loopback(free_port()),
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
    let tls_root = data_dir.join("ca").join("tls-root.pem");
    wait_for_directory(&mut children, &directory, &tls_root).await;

    let env = CertbotEnv {
        venv,
        base: tmp.path().join("certbot"),
        directory,
        root,
        tls_root,
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
    env.run(&["register", "--register-unsafely-without-email"]);
    let accounts = env.base.join("config/accounts");
    assert!(accounts.is_dir(), "certbot saved no account");

    // Issue with certbot's standalone http-01 server.
    let mut args = vec!["certonly", "-d", NAME];
    args.extend(standalone);
    env.run(&args);
    let first_serial = env.check_saved_certificate(NAME);

    // Renew: a new certificate with a new serial replaces it.
    // Non-interactive renewals otherwise sleep up to 8 minutes to spread the load.
    let mut args = vec!["renew", "--force-renewal", "--no-random-sleep-on-renew"];
    args.extend(standalone);
    env.run(&args);
    let second_serial = env.check_saved_certificate(NAME);
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
    let cert_path = env.live(NAME, "cert.pem").display().to_string();
    env.run(&[
        "revoke",
        "--cert-path",
        &cert_path,
        "--reason",
        "keycompromise",
        "--no-delete-after-revoke",
    ]);
    assert!(
        env.live(NAME, "cert.pem").is_file(),
        "--no-delete-after-revoke"
    );
    // The CA now knows it is revoked: a second revocation is refused.
    let again = env.run_unchecked(&[
        "revoke",
        "--cert-path",
        &cert_path,
        "--reason",
        "keycompromise",
        "--no-delete-after-revoke",
    ]);
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
    env.run(&args);
    let short = env.saved_leaf("short", "short.example.com");
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
    env.run(&args);
    let ip = env.saved_leaf("ip", "127.0.0.1");
    assert_eq!(
        ip.identifiers,
        vec![Identifier::ip("127.0.0.1".parse().unwrap())]
    );

    drop(children);
}
