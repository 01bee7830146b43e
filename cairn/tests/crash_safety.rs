//! Crash safety of finalize: "killing the server (SIGKILL) in the middle of finalize loses no
//! issued certificate and never leaves an order `valid` without its certificate".
//!
//! `cairn challtestsrv` and `cairn serve` run as separate processes on loopback. Each cycle
//! prepares a batch of `ready` orders, fires all their finalize requests at once and SIGKILLs the
//! server while some are still in flight. Then:
//! 1. a copy of the database exactly as the crash left it is checked (no `valid` order without
//!    its certificate, no certificate whose order is not `valid`, no `ready` order with a
//!    reserved serial, every order the client saw `valid` is stored `valid` with the certificate
//!    the client downloaded);
//! 2. the server is restarted on the same data folder and port, and every order of every cycle so
//!    far is checked through the ACME API: `valid` (interrupted issuance was resumed at
//!    start-up) with a certificate that chains to the root and is byte-for-byte the one seen
//!    before, or `invalid` with an error, or — only if its finalize never reached the server —
//!    still `ready`, in which case it is finalized now;
//! 3. after the last cycle the server is stopped and the database itself is checked again.

mod common;

use common::{csr_for, pem_chain, verify_chain};
use instant_acme::{
    Account, AuthorizationStatus, ChallengeType, Identifier, NewAccount, NewOrder, Order,
    OrderStatus, RetryPolicy,
};
use serde_json::json;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, ChildStdout, Command};

/// Kill/restart cycles, each with fresh orders.
const CYCLES: usize = 3;
/// Accounts the orders are spread over.
const ACCOUNTS: usize = 4;
/// Orders finalized concurrently in each cycle.
const ORDERS_PER_CYCLE: usize = 48;
/// When to SIGKILL the server, per cycle. Different points in the batch give different
/// interleavings: right after the first finalize answer (most issuances still running), once a
/// few clients have downloaded their certificates (so "still served identically" is exercised),
/// and after a few answers. (Not later: SQLite writes are committed in groups, so one commit
/// can release most of the batch's answers at once, and a kill after "half the answers" often
/// found none left in flight.)
const KILL_WHEN: [KillWhen; CYCLES] = [
    KillWhen::Answered(1),
    KillWhen::Downloaded(6),
    KillWhen::Answered(4),
];

#[derive(Debug, Clone, Copy)]
enum KillWhen {
    /// Once this many finalize requests got an answer.
    Answered(usize),
    /// Once this many clients downloaded their certificate (or three quarters of the finalize
    /// requests were answered, so that some are always still in flight).
    Downloaded(usize),
}

/// A child process that is SIGKILLed when dropped.
struct Proc {
    child: Child,
}

impl Proc {
    /// SIGKILL (`Child::start_kill` sends SIGKILL on Unix) and reap.
    async fn kill(&mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

/// `cairn challtestsrv` in its own process.
struct ChallSrv {
    _proc: Proc,
    // Kept open: the server must never see a closed stdout.
    _stdout: BufReader<ChildStdout>,
    management: SocketAddr,
    dns: SocketAddr,
    http01: SocketAddr,
    tlsalpn01: SocketAddr,
}

impl ChallSrv {
    /// Starts it on ephemeral loopback ports and reads the bound addresses from its banner
    /// (binding port 0 in the server itself leaves no window for another process to take them).
    #[allow(
        clippy::unwrap_used,
        clippy::expect_used,
        reason = "test helper: a failure is a test failure"
    )]
    async fn start(log_dir: &Path) -> ChallSrv {
        let log = std::fs::File::create(log_dir.join("challtestsrv.log")).unwrap();
        let any = "127.0.0.1:0";
        let child = Command::new(env!("CARGO_BIN_EXE_cairn"))
            .args(["challtestsrv", "--management", any, "--dns", any])
            .args(["--http01", any, "--tlsalpn01", any])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .expect("cairn challtestsrv starts");
        let mut proc = Proc { child };
        let mut stdout = BufReader::new(proc.child.stdout.take().unwrap());
        let mut banner = String::new();
        tokio::time::timeout(Duration::from_secs(20), stdout.read_line(&mut banner))
            .await
            .expect("challtestsrv prints its addresses within 20 s")
            .unwrap();
        // "challtestsrv: management http://A dns B http-01 C tls-alpn-01 D"
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
            tlsalpn01: addr("tls-alpn-01"),
            _proc: proc,
            _stdout: stdout,
        }
    }

    /// Serves `content` for `/.well-known/acme-challenge/<token>`, over the management API.
    #[allow(
        clippy::unwrap_used,
        reason = "test helper: a failure is a test failure"
    )]
    async fn add_http01(
        http: &reqwest::Client,
        management: SocketAddr,
        token: &str,
        content: &str,
    ) {
        http.post(format!("http://{management}/add-http01"))
            .json(&json!({ "token": token, "content": content }))
            .send()
            .await
            .unwrap()
            .error_for_status()
            .unwrap();
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

/// How to start `cairn serve`: always the same data folder and ports.
struct CaProcess {
    config: PathBuf,
    data_dir: PathBuf,
    log: PathBuf,
    listen: SocketAddr,
    metrics_listen: SocketAddr,
    public_listen: SocketAddr,
    dns: SocketAddr,
    http01_port: u16,
    tlsalpn01_port: u16,
}

/// Short leases on `processing` orders, so that the restarted server (a new instance as far
/// as leases go) resumes what the killed one was issuing within seconds, not the default minute.
const SHORT_LEASES: &str = "[ra]\norder_lease = \"3s\"\nrecovery_interval = \"1s\"\n";

impl CaProcess {
    #[allow(
        clippy::unwrap_used,
        reason = "test helper: a failure is a test failure"
    )]
    fn new(tmp: &Path, chall: &ChallSrv) -> CaProcess {
        std::fs::write(tmp.join("cairn.toml"), SHORT_LEASES).unwrap();
        CaProcess {
            config: tmp.join("cairn.toml"),
            data_dir: tmp.join("data"),
            log: tmp.join("serve.log"),
            listen: SocketAddr::from(([127, 0, 0, 1], free_port())),
            metrics_listen: SocketAddr::from(([127, 0, 0, 1], free_port())),
            public_listen: SocketAddr::from(([127, 0, 0, 1], free_port())),
            dns: chall.dns,
            http01_port: chall.http01.port(),
            tlsalpn01_port: chall.tlsalpn01.port(),
        }
    }

    /// What ACME clients trust for the HTTPS listener.
    fn tls_root_path(&self) -> PathBuf {
        self.data_dir.join("ca").join("tls-root.pem")
    }

    /// The subscriber hierarchy's root, which issued certificates chain to.
    fn root_path(&self) -> PathBuf {
        self.data_dir.join("ca").join("root.pem")
    }

    fn db_path(&self) -> PathBuf {
        self.data_dir.join("cairn.db")
    }

    fn directory_url(&self) -> String {
        format!("https://localhost:{}/directory", self.listen.port())
    }

    #[allow(
        clippy::unwrap_used,
        clippy::expect_used,
        reason = "test helper: a failure is a test failure"
    )]
    fn spawn(&self) -> Proc {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_cairn"))
            .arg("serve")
            .arg("--no-dap")
            .arg("--config")
            .arg(&self.config)
            .arg("--data-dir")
            .arg(&self.data_dir)
            .args(["--listen", &self.listen.to_string()])
            .args(["--metrics-listen", &self.metrics_listen.to_string()])
            .args(["--public-listen", &self.public_listen.to_string()])
            .args(["--dns-server", &self.dns.to_string()])
            .args(["--http01-port", &self.http01_port.to_string()])
            .args(["--tlsalpn01-port", &self.tlsalpn01_port.to_string()])
            // The challenge test server answers 127.0.0.1: a private-PKI set-up.
            .arg("--allow-private-addresses")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .expect("cairn serve starts");
        Proc { child }
    }

    /// Starts `cairn serve` and waits (bounded) until its directory answers. If the process exits
    /// first (its port may still be held for a moment after the previous instance was killed),
    /// it is started again, a few times.
    #[allow(
        clippy::unwrap_used,
        reason = "test helper: a failure is a test failure"
    )]
    async fn start(&self) -> Proc {
        for _attempt in 0..10 {
            let mut proc = self.spawn();
            let deadline = Instant::now() + Duration::from_secs(30);
            let mut http: Option<reqwest::Client> = None;
            loop {
                if let Some(status) = proc.child.try_wait().unwrap() {
                    eprintln!("cairn serve exited early ({status}); retrying");
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "cairn serve did not answer within 30 s (log: {})",
                    self.log.display()
                );
                if http.is_none()
                    && let Ok(root) = std::fs::read(self.tls_root_path())
                    && let Ok(cert) = reqwest::Certificate::from_pem(&root)
                {
                    http = reqwest::Client::builder()
                        .add_root_certificate(cert)
                        .timeout(Duration::from_secs(2))
                        .build()
                        .ok();
                }
                if let Some(http) = &http
                    && let Ok(resp) = http.get(self.directory_url()).send().await
                    && resp.status().is_success()
                {
                    return proc;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        panic!("cairn serve kept exiting (log: {})", self.log.display());
    }

    /// The accounts, logged in afresh (a new HTTP client: the old connections died with the
    /// server).
    #[allow(
        clippy::unwrap_used,
        reason = "test helper: a failure is a test failure"
    )]
    async fn login(&self, credentials: &[String]) -> Vec<Account> {
        let mut accounts = Vec::new();
        for c in credentials {
            let account = Account::builder_with_root(self.tls_root_path())
                .unwrap()
                .from_credentials(serde_json::from_str(c).unwrap())
                .await
                .unwrap();
            accounts.push(account);
        }
        accounts
    }
}

/// One order the test follows across cycles.
#[derive(Debug, Default)]
struct Tracked {
    cycle: usize,
    account: usize,
    name: String,
    url: String,
    /// The order's database ID (the last segment of its URL).
    id: String,
    /// The finalize request got an HTTP answer before the kill.
    answered: bool,
    /// The certificate URL of a `valid` finalize response received before the kill.
    seen_cert_url: Option<String>,
    /// The certificate chain downloaded before the kill.
    seen_pem: Option<String>,
    /// The chain served after the latest restart.
    final_pem: Option<String>,
    /// Ended `invalid`.
    invalid: bool,
    /// Was still `ready` after a restart (its finalize never reached the server) and was
    /// finalized then.
    finalized_after_restart: bool,
}

/// A `ready` order and the handle to finalize it with.
struct Prepared {
    tracked: Tracked,
    order: Order,
}

/// Creates `count` orders over the accounts and makes them `ready` through http-01, answered
/// by the challenge server as told over its management API.
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test helper: a failure is a test failure"
)]
async fn prepare_orders(
    accounts: &[Account],
    management: SocketAddr,
    cycle: usize,
    count: usize,
) -> Vec<Prepared> {
    let http = reqwest::Client::new();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..count {
        let account_idx = i % accounts.len();
        let account = accounts[account_idx].clone();
        let http = http.clone();
        tasks.spawn(async move {
            let name = format!("o{i}.c{cycle}.crash-safety.example.com");
            let ids = [Identifier::Dns(name.clone())];
            let mut order = account.new_order(&NewOrder::new(&ids)).await.unwrap();
            let mut authzs = order.authorizations();
            while let Some(authz) = authzs.next().await {
                let mut authz = authz.unwrap();
                if authz.status != AuthorizationStatus::Pending {
                    continue;
                }
                let mut ch = authz.challenge(ChallengeType::Http01).expect("http-01");
                let key_auth = ch.key_authorization();
                ChallSrv::add_http01(&http, management, &ch.token, key_auth.as_str()).await;
                ch.set_ready().await.unwrap();
            }
            let policy = RetryPolicy::new()
                .initial_delay(Duration::from_millis(100))
                .backoff(1.5)
                .timeout(Duration::from_secs(20));
            let status = order.poll_ready(&policy).await.unwrap();
            assert_eq!(status, OrderStatus::Ready, "{name}: {:?}", order.state());
            let url = order.url().to_owned();
            Prepared {
                tracked: Tracked {
                    cycle,
                    account: account_idx,
                    id: last_segment(&url),
                    name,
                    url,
                    ..Tracked::default()
                },
                order,
            }
        });
    }
    let mut prepared = tasks.join_all().await;
    prepared.sort_by(|a, b| a.tracked.name.cmp(&b.tracked.name));
    prepared
}

fn last_segment(url: &str) -> String {
    url.rsplit('/').next().unwrap_or_default().to_owned()
}

/// What happened around one kill.
#[derive(Debug)]
struct KillStats {
    fired: usize,
    answered_at_kill: usize,
    in_flight_at_kill: usize,
    kill_after: Duration,
}

/// Fires every finalize at once, SIGKILLs the server at the point `when` names, and returns what the client saw before the kill.
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test helper: a failure is a test failure"
)]
async fn finalize_then_kill(
    server: &mut Proc,
    prepared: Vec<Prepared>,
    when: KillWhen,
) -> (Vec<Tracked>, KillStats) {
    let fired = prepared.len();
    // (finalize answers, certificates downloaded)
    let (progress_tx, mut progress_rx) = tokio::sync::watch::channel((0usize, 0usize));
    let progress_tx = Arc::new(progress_tx);
    let go = Arc::new(tokio::sync::Barrier::new(fired + 1));
    let mut tasks = tokio::task::JoinSet::new();
    for Prepared {
        mut tracked,
        mut order,
    } in prepared
    {
        // The CSR and its key are made before the start line so the requests leave together.
        let (csr, _key) = csr_for(&[Identifier::Dns(tracked.name.clone())]);
        let go = go.clone();
        let progress_tx = progress_tx.clone();
        tasks.spawn(async move {
            go.wait().await;
            let result = order.finalize_csr(&csr).await;
            progress_tx.send_modify(|p| p.0 += 1);
            // Connection errors (the server died) leave `answered` false.
            if result.is_ok() {
                tracked.answered = true;
                let state = order.state();
                if state.status == OrderStatus::Valid {
                    tracked.seen_cert_url = Some(
                        state
                            .certificate
                            .clone()
                            .expect("a valid order names its certificate"),
                    );
                    // May fail if the kill comes first; then only the URL was seen.
                    if let Ok(Some(pem)) = order.certificate().await {
                        tracked.seen_pem = Some(pem);
                        progress_tx.send_modify(|p| p.1 += 1);
                    }
                }
            }
            tracked
        });
    }
    go.wait().await;
    let fired_at = Instant::now();
    tokio::time::timeout(
        Duration::from_secs(30),
        progress_rx.wait_for(|&(answered, downloaded)| match when {
            KillWhen::Answered(n) => answered >= n,
            KillWhen::Downloaded(n) => downloaded >= n || answered >= fired * 3 / 4,
        }),
    )
    .await
    .expect("finalize answers within 30 s")
    .unwrap();
    let answered_at_kill = progress_rx.borrow().0;
    let kill_after = fired_at.elapsed();
    server.kill().await;
    let tracked = tokio::time::timeout(Duration::from_secs(30), tasks.join_all())
        .await
        .expect("finalize requests end once the server is dead");
    let stats = KillStats {
        fired,
        answered_at_kill,
        in_flight_at_kill: fired - answered_at_kill,
        kill_after,
    };
    (tracked, stats)
}

/// The rows that matter, read straight from a SQLite file.
#[derive(Debug)]
struct DbState {
    /// id → (status, certificate_serial, has a CSR)
    orders: HashMap<String, (String, Option<String>, bool)>,
    /// serial → (order_id, der): final certificates
    certificates: HashMap<String, (String, Vec<u8>)>,
    /// serial → order_id: precertificates whose final certificate is not stored (yet)
    precertificates: HashMap<String, String>,
    /// reserved serial → order_id
    serials: HashMap<String, String>,
}

impl DbState {
    #[allow(
        clippy::unwrap_used,
        reason = "test helper: a failure is a test failure"
    )]
    async fn read(path: &Path) -> DbState {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(false);
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options)
            .await
            .unwrap();
        let orders: Vec<(String, String, Option<String>, i64)> =
            sqlx::query_as("SELECT id, status, certificate_serial, csr IS NOT NULL FROM orders")
                .fetch_all(&pool)
                .await
                .unwrap();
        let certificates: Vec<(String, String, Vec<u8>)> = sqlx::query_as(
            "SELECT serial, order_id, der FROM certificates WHERE precertificate = 0",
        )
        .fetch_all(&pool)
        .await
        .unwrap();
        let precertificates: Vec<(String, String)> =
            sqlx::query_as("SELECT serial, order_id FROM certificates WHERE precertificate = 1")
                .fetch_all(&pool)
                .await
                .unwrap();
        let serials: Vec<(String, String)> = sqlx::query_as("SELECT serial, order_id FROM serials")
            .fetch_all(&pool)
            .await
            .unwrap();
        pool.close().await;
        DbState {
            orders: orders
                .into_iter()
                .map(|(id, status, serial, csr)| (id, (status, serial, csr != 0)))
                .collect(),
            certificates: certificates
                .into_iter()
                .map(|(serial, order, der)| (serial, (order, der)))
                .collect(),
            precertificates: precertificates.into_iter().collect(),
            serials: serials.into_iter().collect(),
        }
    }

    /// The invariants that must hold in any state a crash can leave.
    fn check_invariants(&self, when: &str) {
        for (id, (status, serial, has_csr)) in &self.orders {
            if status == "valid" {
                let serial = serial
                    .as_ref()
                    .unwrap_or_else(|| panic!("{when}: order {id} is valid without a serial"));
                let (cert_order, _) = self.certificates.get(serial).unwrap_or_else(|| {
                    panic!("{when}: order {id} is valid but certificate {serial} is missing")
                });
                assert_eq!(cert_order, id, "{when}: certificate {serial}'s order");
            }
            if status == "processing" {
                assert!(has_csr, "{when}: order {id} is processing without its CSR");
            }
        }
        for (serial, (order, _)) in &self.certificates {
            let (status, order_serial, _) = self
                .orders
                .get(order)
                .unwrap_or_else(|| panic!("{when}: certificate {serial} has no order {order}"));
            assert_eq!(
                status, "valid",
                "{when}: certificate {serial} stored but its order {order} is {status}"
            );
            assert_eq!(
                order_serial.as_deref(),
                Some(serial.as_str()),
                "{when}: order {order} names another certificate than {serial}"
            );
            assert_eq!(
                self.serials.get(serial),
                Some(order),
                "{when}: certificate {serial} was not reserved for its order"
            );
        }
        // A precertificate is stored before any log sees it (issue 14, finding 3); until its final
        // certificate replaces the row, its order is still being issued, under that serial.
        for (serial, order) in &self.precertificates {
            let (status, _, _) = self
                .orders
                .get(order)
                .unwrap_or_else(|| panic!("{when}: precertificate {serial} has no order {order}"));
            assert_eq!(
                status, "processing",
                "{when}: precertificate {serial} without its final certificate, but its order {order} is {status}"
            );
            assert_eq!(
                self.serials.get(serial),
                Some(order),
                "{when}: precertificate {serial} was not reserved for its order"
            );
        }
        for (serial, order) in &self.serials {
            let (status, _, _) = &self.orders[order];
            assert!(
                status != "pending" && status != "ready",
                "{when}: order {order} is {status} with reserved serial {serial}"
            );
        }
    }

    fn status(&self, id: &str) -> &str {
        self.orders
            .get(id)
            .map(|(s, _, _)| s.as_str())
            .unwrap_or("missing")
    }

    fn count(&self, orders: &[Tracked], status: &str) -> usize {
        orders
            .iter()
            .filter(|t| self.status(&t.id) == status)
            .count()
    }
}

/// Copies the database files (main file and WAL, as the killed process left them) aside.
#[allow(
    clippy::unwrap_used,
    reason = "test helper: a failure is a test failure"
)]
fn snapshot_db(db: &Path, into: &Path) -> PathBuf {
    std::fs::create_dir_all(into).unwrap();
    let copy = into.join("cairn.db");
    std::fs::copy(db, &copy).unwrap();
    let wal = db.with_file_name("cairn.db-wal");
    if wal.exists() {
        std::fs::copy(&wal, into.join("cairn.db-wal")).unwrap();
    }
    // No -shm: SQLite rebuilds it from the WAL, as it would after a real crash.
    copy
}

/// What the crashed state must show for what the client saw before the kill.
fn check_client_view_against_db(crashed: &DbState, orders: &[Tracked]) {
    for t in orders {
        let Some(url) = &t.seen_cert_url else {
            continue;
        };
        let serial = last_segment(url);
        let (status, order_serial, _) = &crashed.orders[&t.id];
        assert_eq!(status, "valid", "{}: the client saw it valid", t.name);
        assert_eq!(order_serial.as_deref(), Some(serial.as_str()), "{}", t.name);
        if let Some(pem) = &t.seen_pem {
            let (_, der) = &crashed.certificates[&serial];
            assert_eq!(
                &pem_chain(pem)[0],
                der,
                "{}: downloaded certificate differs from the stored one",
                t.name
            );
        }
    }
}

/// Checks every order through the ACME API after a restart; finalizes the ones still `ready`.
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test helper: a failure is a test failure"
)]
async fn check_after_restart(accounts: &[Account], root: &Path, orders: &mut Vec<Tracked>) {
    let mut tasks = tokio::task::JoinSet::new();
    for t in orders.drain(..) {
        tasks.spawn(check_order_after_restart(
            accounts[t.account].clone(),
            root.to_owned(),
            t,
        ));
    }
    *orders = tasks.join_all().await;
    orders.sort_by(|a, b| (a.cycle, &a.name).cmp(&(b.cycle, &b.name)));
}

/// One order after a restart: see [`check_after_restart`].
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test helper: a failure is a test failure"
)]
async fn check_order_after_restart(account: Account, root: PathBuf, mut t: Tracked) -> Tracked {
    let mut order = account.order(t.url.clone()).await.unwrap();
    // Interrupted issuance is resumed once the killed instance's lease (3 s, renewed while it
    // issued) has ended: at start-up, or by the recovery timer (1 s) soon after. Allow that and
    // a margin, then fail.
    let deadline = Instant::now() + Duration::from_secs(15);
    while order.state().status == OrderStatus::Processing {
        assert!(
            Instant::now() < deadline,
            "{}: still processing after the restart",
            t.name
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
        order.refresh().await.unwrap();
    }
    match order.state().status {
        OrderStatus::Ready => {
            assert!(
                t.seen_cert_url.is_none() && t.final_pem.is_none(),
                "{}: was valid, is ready again",
                t.name
            );
            let (csr, _key) = csr_for(&[Identifier::Dns(t.name.clone())]);
            order.finalize_csr(&csr).await.unwrap();
            let policy = RetryPolicy::new()
                .initial_delay(Duration::from_millis(100))
                .timeout(Duration::from_secs(20));
            let pem = order.poll_certificate(&policy).await.unwrap();
            verify_chain(&root, &pem, &t.name);
            t.finalized_after_restart = true;
            t.final_pem = Some(pem);
        }
        OrderStatus::Valid => {
            let url = order
                .state()
                .certificate
                .clone()
                .expect("a valid order names its certificate");
            if let Some(seen) = &t.seen_cert_url {
                assert_eq!(seen, &url, "{}: certificate URL changed", t.name);
            }
            let pem = order
                .certificate()
                .await
                .unwrap()
                .expect("the certificate of a valid order downloads");
            verify_chain(&root, &pem, &t.name);
            for earlier in [&t.seen_pem, &t.final_pem].into_iter().flatten() {
                assert_eq!(earlier, &pem, "{}: served certificate changed", t.name);
            }
            t.final_pem = Some(pem);
        }
        OrderStatus::Invalid => {
            assert!(
                order.state().error.is_some(),
                "{}: invalid without an error",
                t.name
            );
            assert!(
                t.seen_cert_url.is_none() && t.final_pem.is_none(),
                "{}: was valid, is invalid now",
                t.name
            );
            t.invalid = true;
        }
        other => panic!("{}: unexpected status {other:?} after restart", t.name),
    }
    t
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_during_finalize_loses_no_certificate() {
    let started = Instant::now();
    let tmp = tempfile::tempdir().unwrap();
    let _logs = ShowLogsOnPanic(tmp.path().to_owned());
    let chall = ChallSrv::start(tmp.path()).await;
    let ca = CaProcess::new(tmp.path(), &chall);
    let mut server = ca.start().await;
    let root = ca.tls_root_path();

    let mut credentials = Vec::new();
    for i in 0..ACCOUNTS {
        let (_account, creds) = Account::builder_with_root(&root)
            .unwrap()
            .create(
                &NewAccount {
                    contact: &[&format!("mailto:crash{i}@cairn-ca.net")],
                    terms_of_service_agreed: true,
                    only_return_existing: false,
                },
                ca.directory_url(),
                None,
            )
            .await
            .unwrap();
        credentials.push(serde_json::to_string(&creds).unwrap());
    }

    let mut all: Vec<Tracked> = Vec::new();
    let mut total_interrupted = 0;
    for (cycle, &when) in KILL_WHEN.iter().enumerate() {
        let accounts = ca.login(&credentials).await;
        let prepare = Instant::now();
        let prepared = prepare_orders(&accounts, chall.management, cycle, ORDERS_PER_CYCLE).await;
        let prepare_took = prepare.elapsed();
        let (batch, stats) = finalize_then_kill(&mut server, prepared, when).await;
        assert!(
            stats.in_flight_at_kill > 0,
            "cycle {cycle}: every finalize was answered before the kill: {stats:?}"
        );

        // The database exactly as the crash left it.
        let snapshot = snapshot_db(&ca.db_path(), &tmp.path().join(format!("crash-{cycle}")));
        let crashed = DbState::read(&snapshot).await;
        crashed.check_invariants(&format!("cycle {cycle} at the crash"));
        check_client_view_against_db(&crashed, &batch);
        let interrupted = crashed.count(&batch, "processing");
        let crash_valid = crashed.count(&batch, "valid");
        let crash_ready = crashed.count(&batch, "pending") + crashed.count(&batch, "ready");
        total_interrupted += interrupted;

        let restart = Instant::now();
        server = ca.start().await;
        let restart_took = restart.elapsed();
        all.extend(batch);
        let accounts = ca.login(&credentials).await;
        check_after_restart(&accounts, &ca.root_path(), &mut all).await;

        let batch = all.iter().filter(|t| t.cycle == cycle);
        println!(
            "cycle {cycle}: {} orders made ready in {prepare_took:?}; finalizes fired; SIGKILL \
             ({when:?}) {:?} after firing, when {} were answered \
             ({} in flight). At the crash the database had {} valid, {} processing (interrupted \
             issuance), {} not yet finalized. The client had seen {} valid and downloaded {} \
             certificates. Restart (with resumption) took {restart_took:?}; afterwards {} \
             valid, {} invalid, {} were still ready and were finalized then.",
            stats.fired,
            stats.kill_after,
            stats.answered_at_kill,
            stats.in_flight_at_kill,
            crash_valid,
            interrupted,
            crash_ready,
            batch.clone().filter(|t| t.seen_cert_url.is_some()).count(),
            batch.clone().filter(|t| t.seen_pem.is_some()).count(),
            batch
                .clone()
                .filter(|t| t.final_pem.is_some() && !t.finalized_after_restart)
                .count(),
            batch.clone().filter(|t| t.invalid).count(),
            batch.filter(|t| t.finalized_after_restart).count(),
        );
    }
    assert!(
        total_interrupted > 0,
        "no kill caught an order in processing, so resumption was never exercised"
    );

    // The database itself, with the server stopped.
    server.kill().await;
    let db = DbState::read(&ca.db_path()).await;
    db.check_invariants("after the last restart");
    for t in &all {
        let (status, serial, _) = &db.orders[&t.id];
        if t.invalid {
            assert_eq!(status, "invalid", "{}", t.name);
            continue;
        }
        assert_eq!(status, "valid", "{}", t.name);
        let pem = t
            .final_pem
            .as_ref()
            .expect("every valid order was downloaded");
        let serial = serial.as_ref().expect("valid order has a serial");
        assert_eq!(db.certificates[serial].1, pem_chain(pem)[0], "{}", t.name);
    }
    assert_eq!(db.orders.len(), all.len(), "only this test's orders exist");
    // A serial reserved by an issuance the kill interrupted stays reserved (and unused): the
    // resumed issuance reserves a new one.
    let abandoned_serials = db.serials.len() - db.certificates.len();
    println!(
        "{} orders over {CYCLES} cycles, {total_interrupted} issuances interrupted and resumed \
         ({abandoned_serials} reserved serials abandoned), in {:?}",
        all.len(),
        started.elapsed()
    );
}

/// Not a SIGKILL but the same promise: a client that gives up on its finalize request (the
/// connection closes, hyper drops the request's future wherever it is) must not leave the order
/// `processing` with nothing issuing for it until the next restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn abandoned_finalize_requests_never_strand_an_order_in_processing() {
    let tmp = tempfile::tempdir().unwrap();
    let _logs = ShowLogsOnPanic(tmp.path().to_owned());
    let chall = ChallSrv::start(tmp.path()).await;
    let ca = CaProcess::new(tmp.path(), &chall);
    let _server = ca.start().await;
    let (_account, creds) = Account::builder_with_root(ca.tls_root_path())
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
    let credentials = vec![serde_json::to_string(&creds).unwrap()];
    // How long a finalize takes varies with the machine; each round spreads the clients'
    // patience over twice the previous range until some requests were cut short while others
    // got through (so some were cut somewhere inside the server's finalize).
    let mut range_ms = 20;
    let mut straddled = false;
    for round in 0..6 {
        let counts = abandon_finalizes(&ca, &credentials, chall.management, round, range_ms).await;
        println!("abandoned finalizes, patience 0–{range_ms} ms: orders ended {counts:?}");
        let ready = counts.get("Ready").copied().unwrap_or_default();
        if ready > 0 && ready < ABANDONED_PER_ROUND {
            straddled = true;
            break;
        }
        range_ms = if ready == 0 {
            range_ms / 2
        } else {
            range_ms * 2
        };
    }
    assert!(
        straddled,
        "no round cut requests inside the server's finalize"
    );
}

/// Orders per round of [`abandoned_finalize_requests_never_strand_an_order_in_processing`].
const ABANDONED_PER_ROUND: usize = 32;

/// Prepares a batch of orders, sends their finalize requests with patience spread evenly over
/// 0..`range_ms`, and checks that none is left `processing` (bounded wait). Returns how many
/// orders ended in each status.
#[allow(
    clippy::unwrap_used,
    reason = "test helper: a failure is a test failure"
)]
async fn abandon_finalizes(
    ca: &CaProcess,
    credentials: &[String],
    management: SocketAddr,
    round: usize,
    range_ms: u64,
) -> HashMap<String, usize> {
    let accounts = ca.login(credentials).await;
    let prepared = prepare_orders(&accounts, management, 100 + round, ABANDONED_PER_ROUND).await;
    let mut tasks = tokio::task::JoinSet::new();
    for (i, Prepared { tracked, mut order }) in prepared.into_iter().enumerate() {
        let (csr, _key) = csr_for(&[Identifier::Dns(tracked.name.clone())]);
        let patience = Duration::from_millis(range_ms * i as u64 / ABANDONED_PER_ROUND as u64);
        tasks.spawn(async move {
            let _ = tokio::time::timeout(patience, order.finalize_csr(&csr)).await;
            tracked
        });
    }
    let tracked = tasks.join_all().await;

    let accounts = ca.login(credentials).await;
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut counts: HashMap<String, usize> = HashMap::new();
    let mut stuck = Vec::new();
    for t in &tracked {
        let mut order = accounts[t.account].order(t.url.clone()).await.unwrap();
        while order.state().status == OrderStatus::Processing && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
            order.refresh().await.unwrap();
        }
        let status = order.state().status;
        *counts.entry(format!("{status:?}")).or_default() += 1;
        if status == OrderStatus::Processing {
            stuck.push(t.name.clone());
        }
    }
    assert!(
        stuck.is_empty(),
        "stranded in processing 5 s after their clients gave up: {stuck:?}"
    );
    counts
}
