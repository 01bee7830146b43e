//! A validation interrupted by SIGKILL is never left stuck (issue 14, finding 4): `cairn serve`
//! is killed while its VA waits on an http-01 server that never answers, so the challenge is
//! stored `processing` with nothing validating it. After a restart (pointed at a working http-01
//! server), the lease of the dead process ends, recovery validates the challenge again, and the
//! name is issuable with the same order.
//!
//! `cairn challtestsrv` and `cairn serve` run as separate processes on loopback, as in
//! `crash_safety.rs`.

mod common;

use common::{csr_for, verify_chain};
use instant_acme::{
    Account, AuthorizationStatus, ChallengeType, Identifier, NewAccount, NewOrder, OrderStatus,
    RetryPolicy,
};
use serde_json::json;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, ChildStdout, Command};

/// Leases short enough for a test: the restarted server takes the challenge over two seconds
/// after the killed one marked it.
const SHORT_LEASES: &str = "[ra]\nchallenge_lease = \"2s\"\nrecovery_interval = \"1s\"\n";

/// A child process that is SIGKILLed when dropped.
struct Proc(Child);

impl Proc {
    /// SIGKILL (`Child::start_kill` sends SIGKILL on Unix) and reap.
    async fn kill(&mut self) {
        let _ = self.0.start_kill();
        let _ = self.0.wait().await;
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.start_kill();
    }
}

/// `cairn challtestsrv` on ephemeral loopback ports, read from its banner.
struct ChallSrv {
    _proc: Proc,
    _stdout: BufReader<ChildStdout>,
    management: SocketAddr,
    dns: SocketAddr,
    http01: SocketAddr,
}

impl ChallSrv {
    #[allow(
        clippy::unwrap_used,
        clippy::expect_used,
        reason = "test helper: a failure is a test failure"
    )]
    async fn start(log_dir: &Path) -> ChallSrv {
        let log = std::fs::File::create(log_dir.join("challtestsrv.log")).unwrap();
        let any = "127.0.0.1:0";
        let mut child = Command::new(env!("CARGO_BIN_EXE_cairn"))
            .args(["challtestsrv", "--management", any, "--dns", any])
            .args(["--http01", any, "--tlsalpn01", any])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .expect("cairn challtestsrv starts");
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut banner = String::new();
        tokio::time::timeout(Duration::from_secs(20), stdout.read_line(&mut banner))
            .await
            .expect("challtestsrv prints its addresses within 20 s")
            .unwrap();
        let words: Vec<&str> = banner.split_whitespace().collect();
        let addr = |key: &str| -> SocketAddr {
            let i = words
                .iter()
                .position(|w| *w == key)
                .unwrap_or_else(|| panic!("no {key} in banner {banner:?}"));
            words[i + 1].trim_start_matches("http://").parse().unwrap()
        };
        ChallSrv {
            management: addr("management"),
            dns: addr("dns"),
            http01: addr("http-01"),
            _proc: Proc(child),
            _stdout: stdout,
        }
    }
}

/// Prints the servers' logs if the test fails (the temporary folder is deleted afterwards).
struct ShowLogsOnPanic(PathBuf);

impl Drop for ShowLogsOnPanic {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            return;
        }
        for name in ["serve.log", "challtestsrv.log"] {
            let log = std::fs::read_to_string(self.0.join(name)).unwrap_or_default();
            let lines: Vec<&str> = log.lines().collect();
            let tail = &lines[lines.len().saturating_sub(60)..];
            eprintln!("---- last lines of {name} ----\n{}", tail.join("\n"));
        }
    }
}

use cairn_test_services::free_port;

/// How to start `cairn serve`: the same data folder and ports every time.
struct CaProcess {
    tmp: PathBuf,
    listen: SocketAddr,
    metrics_listen: SocketAddr,
    public_listen: SocketAddr,
    dns: SocketAddr,
}

impl CaProcess {
    fn data_dir(&self) -> PathBuf {
        self.tmp.join("data")
    }

    fn tls_root_path(&self) -> PathBuf {
        self.data_dir().join("ca").join("tls-root.pem")
    }

    fn directory_url(&self) -> String {
        format!("https://localhost:{}/directory", self.listen.port())
    }

    /// Starts `cairn serve` validating http-01 on `http01_port`, and waits (bounded) until its
    /// directory answers; started again if it exits first (its port may still be held for a
    /// moment after the previous process was killed).
    #[allow(
        clippy::unwrap_used,
        clippy::expect_used,
        reason = "test helper: a failure is a test failure"
    )]
    async fn start(&self, http01_port: u16) -> Proc {
        let config = self.tmp.join("cairn.toml");
        std::fs::write(&config, SHORT_LEASES).unwrap();
        for _attempt in 0..10 {
            let log = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(self.tmp.join("serve.log"))
                .unwrap();
            let child = Command::new(env!("CARGO_BIN_EXE_cairn"))
                .args(["serve", "--no-dap", "--config"])
                .arg(&config)
                .arg("--data-dir")
                .arg(self.data_dir())
                .args(["--listen", &self.listen.to_string()])
                .args(["--metrics-listen", &self.metrics_listen.to_string()])
                .args(["--public-listen", &self.public_listen.to_string()])
                .args(["--dns-server", &self.dns.to_string()])
                .args(["--http01-port", &http01_port.to_string()])
                // The challenge servers answer on 127.0.0.1: a private-PKI set-up.
                .arg("--allow-private-addresses")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log)
                .kill_on_drop(true)
                .spawn()
                .expect("cairn serve starts");
            let mut proc = Proc(child);
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                if let Some(status) = proc.0.try_wait().unwrap() {
                    eprintln!("cairn serve exited early ({status}); retrying");
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "cairn serve did not answer within 30 s"
                );
                if let Ok(root) = std::fs::read(self.tls_root_path())
                    && let Ok(cert) = reqwest::Certificate::from_pem(&root)
                    && let Ok(http) = reqwest::Client::builder()
                        .add_root_certificate(cert)
                        .timeout(Duration::from_secs(2))
                        .build()
                    && let Ok(resp) = http.get(self.directory_url()).send().await
                    && resp.status().is_success()
                {
                    return proc;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            proc.kill().await;
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        panic!("cairn serve kept exiting");
    }
}

/// An http-01 server that accepts connections and never answers; says when the first
/// connection came in.
#[allow(
    clippy::unwrap_used,
    reason = "test helper: a failure is a test failure"
)]
async fn tarpit() -> (u16, tokio::sync::oneshot::Receiver<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let mut tx = Some(tx);
        let mut held = Vec::new();
        while let Ok((conn, _)) = listener.accept().await {
            held.push(conn);
            if let Some(tx) = tx.take() {
                let _ = tx.send(());
            }
        }
    });
    (port, rx)
}

/// The stored status of the challenge with `token`, read from the SQLite database as the
/// killed server left it.
#[allow(
    clippy::unwrap_used,
    reason = "test helper: a failure is a test failure"
)]
async fn stored_challenge_status(db: &Path, token: &str) -> String {
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(SqliteConnectOptions::new().filename(db).read_only(true))
        .await
        .unwrap();
    let status: String = sqlx::query_scalar("SELECT status FROM challenges WHERE token = $1")
        .bind(token)
        .fetch_one(&pool)
        .await
        .unwrap();
    pool.close().await;
    status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a failure is a test failure"
)]
async fn sigkill_during_validation_then_restart_leaves_the_name_issuable() {
    let tmp = tempfile::tempdir().unwrap();
    let _logs = ShowLogsOnPanic(tmp.path().to_owned());
    let chall = ChallSrv::start(tmp.path()).await;
    let ca = CaProcess {
        tmp: tmp.path().to_owned(),
        listen: SocketAddr::from(([127, 0, 0, 1], free_port())),
        metrics_listen: SocketAddr::from(([127, 0, 0, 1], free_port())),
        public_listen: SocketAddr::from(([127, 0, 0, 1], free_port())),
        dns: chall.dns,
    };

    // First life: http-01 goes to a server that never answers.
    let (hang_port, first_connection) = tarpit().await;
    let mut server = ca.start(hang_port).await;
    let (account, credentials) = Account::builder_with_root(ca.tls_root_path())
        .unwrap()
        .create(
            &NewAccount {
                contact: &[],
                terms_of_service_agreed: true,
                only_return_existing: false,
            },
            ca.directory_url(),
            None,
        )
        .await
        .unwrap();
    let name = "stuck.validation.example.com";
    let ids = [Identifier::Dns(name.to_owned())];
    let mut order = account.new_order(&NewOrder::new(&ids)).await.unwrap();
    let order_url = order.url().to_owned();
    let token = {
        let mut authzs = order.authorizations();
        let mut authz = authzs.next().await.unwrap().unwrap();
        assert_eq!(authz.status, AuthorizationStatus::Pending);
        let mut ch = authz.challenge(ChallengeType::Http01).expect("http-01");
        // The working http-01 server will answer after the restart.
        let key_auth = ch.key_authorization();
        reqwest::Client::new()
            .post(format!("http://{}/add-http01", chall.management))
            .json(&json!({ "token": ch.token, "content": key_auth.as_str() }))
            .send()
            .await
            .unwrap()
            .error_for_status()
            .unwrap();
        let token = ch.token.clone();
        ch.set_ready().await.unwrap();
        token
    };
    // The VA is connected and waiting for an answer: kill the server mid-validation.
    tokio::time::timeout(Duration::from_secs(20), first_connection)
        .await
        .expect("the VA connects to the http-01 server within 20 s")
        .unwrap();
    server.kill().await;
    assert_eq!(
        stored_challenge_status(&ca.data_dir().join("cairn.db"), &token).await,
        "processing",
        "the kill should have left the challenge processing"
    );

    // Second life: a working http-01 server; the same order becomes ready and is issued.
    let _server = ca.start(chall.http01.port()).await;
    let account = Account::builder_with_root(ca.tls_root_path())
        .unwrap()
        .from_credentials(credentials)
        .await
        .unwrap();
    let mut order = account.order(order_url).await.unwrap();
    let policy = RetryPolicy::new()
        .initial_delay(Duration::from_millis(200))
        .backoff(1.2)
        .timeout(Duration::from_secs(30));
    let status = order.poll_ready(&policy).await.unwrap();
    assert_eq!(status, OrderStatus::Ready, "{:?}", order.state());
    let (csr, _key) = csr_for(&ids);
    order.finalize_csr(&csr).await.unwrap();
    let pem = order.poll_certificate(&policy).await.unwrap();
    verify_chain(&ca.data_dir().join("ca").join("root.pem"), &pem, name);
}
