//! DAP as separate processes: `cairn dap serve` leader and helper, `cairn dap task create`
//! through both control planes, `cairn dap upload`, the leader SIGKILLed while its drivers
//! work and restarted, then `cairn dap collect` — the aggregate is exact. Again with an
//! asynchronous helper (`async_aggregation`), which is SIGKILLed and restarted too.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a panic is a failure with a location

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const CONTROL: &str = "control-token-for-the-test";
const COLLECTOR: &str = "collector-token-for-the-test";
// A fixed datastore key for the test only (32 bytes of 0x07, base64url).
const DATASTORE_KEY: &str = "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc";

fn cairn() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_cairn"));
    c.env("CAIRN_DAP_CONTROL_TOKEN", CONTROL)
        .env("CAIRN_DAP_COLLECTOR_TOKEN", COLLECTOR)
        .env("CAIRN_DAP_DATASTORE_KEY", DATASTORE_KEY);
    c
}

use cairn_test_services::free_port;

fn write_config(dir: &Path, name: &str, port: u16, async_aggregation: bool) -> std::path::PathBuf {
    let path = dir.join(format!("{name}.toml"));
    let db = dir.join(format!("{name}.db"));
    std::fs::write(
        &path,
        format!(
            "listen = \"127.0.0.1:{port}\"\ndatabase_url = \"sqlite://{}?mode=rwc\"\n\
             driver_period_ms = 100\n[parameters]\nlease_secs = 3\n\
             async_aggregation = {async_aggregation}\n",
            db.display()
        ),
    )
    .unwrap();
    path
}

fn serve(role: &str, config: &Path, log: &Path) -> Child {
    let log = std::fs::File::create(log).unwrap();
    cairn()
        .args(["dap", "serve", "--role", role, "--config"])
        .arg(config)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap()
}

fn wait_ready(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("aggregator on port {port} did not start");
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{:?}: {}",
        cmd,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

struct Killed(Vec<Child>);

impl Drop for Killed {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

#[test]
fn leader_sigkilled_mid_aggregation_restarts_and_the_aggregate_is_exact() {
    sigkill_mid_aggregation(false);
}

#[test]
fn async_helper_and_leader_sigkilled_mid_aggregation_restart_and_the_aggregate_is_exact() {
    sigkill_mid_aggregation(true);
}

/// With `async_helper`, the helper defers every aggregation job and is SIGKILLed and
/// restarted along with the leader: its driver resumes the stored jobs, the leader's polls.
fn sigkill_mid_aggregation(async_helper: bool) {
    let dir = tempfile::tempdir().unwrap();
    let (lp, hp) = (free_port(), free_port());
    let leader_cfg = write_config(dir.path(), "leader", lp, false);
    let helper_cfg = write_config(dir.path(), "helper", hp, async_helper);
    let mut procs = Killed(vec![
        serve("helper", &helper_cfg, &dir.path().join("helper.log")),
        serve("leader", &leader_cfg, &dir.path().join("leader.log")),
    ]);
    wait_ready(hp);
    wait_ready(lp);

    let keypair = dir.path().join("collector.json");
    std::fs::write(&keypair, run(cairn().args(["dap", "keygen"]))).unwrap();
    let task = dir.path().join("task.json");
    run(cairn()
        .args(["dap", "task", "create"])
        .args(["--leader", &format!("http://127.0.0.1:{lp}/")])
        .args(["--helper", &format!("http://127.0.0.1:{hp}/")])
        .args(["--vdaf", r#"{"type":"Prio3Sum","max_measurement":1000}"#])
        .args(["--batch-mode", "leader_selected", "--min-batch-size", "20"])
        .args(["--max-batch-size", "40", "--time-precision", "60"])
        .arg("--collector-hpke-keypair")
        .arg(&keypair)
        .arg("--out")
        .arg(&task));

    // 40 reports, values 1..=40, in four uploads.
    let mut expected = 0u64;
    for wave in 0..4u64 {
        let values: Vec<String> = (1..=10).map(|i| (wave * 10 + i).to_string()).collect();
        expected += (1..=10).map(|i| wave * 10 + i).sum::<u64>();
        let out = run(cairn()
            .args(["dap", "upload", "--task"])
            .arg(&task)
            .args(&values));
        assert!(out.contains("uploaded 10 of 10"), "{out}");
    }
    // Let the drivers start on them, then SIGKILL the leader. A job it held is taken over
    // once its lease (3 s here) expires.
    std::thread::sleep(Duration::from_millis(150));
    procs.0[1].kill().unwrap();
    procs.0[1].wait().unwrap();
    if async_helper {
        procs.0[0].kill().unwrap();
        procs.0[0].wait().unwrap();
        procs.0[0] = serve("helper", &helper_cfg, &dir.path().join("helper2.log"));
        wait_ready(hp);
    }
    procs.0[1] = serve("leader", &leader_cfg, &dir.path().join("leader2.log"));
    wait_ready(lp);

    let out = run(cairn()
        .args(["dap", "collect", "--task"])
        .arg(&task)
        .arg("--hpke-keypair")
        .arg(&keypair)
        .args(["--max-polls", "60"]));
    let c: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(c["report_count"], 40, "{out}");
    assert_eq!(c["aggregate_result"], expected, "{out}");
    // Only jobs that the helper deferred were leased by its driver.
    let deferred = helper_jobs_leased(&dir.path().join("helper.db"));
    if async_helper {
        assert!(deferred > 0, "the helper deferred no job");
    } else {
        assert_eq!(deferred, 0);
    }
}

fn helper_jobs_leased(db: &Path) -> i64 {
    let url = format!("sqlite://{}?mode=ro", db.display());
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
        let n = sqlx::query_scalar(
            "SELECT COUNT(*) FROM helper_aggregation_jobs WHERE lease_expiry > 0",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        pool.close().await;
        n
    })
}

/// `task create --differential-privacy`: refused for a VDAF without a DP mechanism (before
/// either aggregator is asked), accepted for a histogram, whose collected result is then the
/// exact count plus bounded noise from both aggregators.
#[test]
fn task_create_with_differential_privacy_yields_a_noisy_histogram_within_bounds() {
    let dir = tempfile::tempdir().unwrap();
    let (lp, hp) = (free_port(), free_port());
    let leader_cfg = write_config(dir.path(), "leader", lp, false);
    let helper_cfg = write_config(dir.path(), "helper", hp, false);
    let _procs = Killed(vec![
        serve("helper", &helper_cfg, &dir.path().join("helper.log")),
        serve("leader", &leader_cfg, &dir.path().join("leader.log")),
    ]);
    wait_ready(hp);
    wait_ready(lp);
    let keypair = dir.path().join("collector.json");
    std::fs::write(&keypair, run(cairn().args(["dap", "keygen"]))).unwrap();
    let dp = r#"{"type":"PureDpDiscreteLaplace","epsilon_numerator":1,"epsilon_denominator":1}"#;
    let create = |vdaf: &str, out: &Path| {
        cairn()
            .args(["dap", "task", "create"])
            .args(["--leader", &format!("http://127.0.0.1:{lp}/")])
            .args(["--helper", &format!("http://127.0.0.1:{hp}/")])
            .args(["--vdaf", vdaf, "--differential-privacy", dp])
            .args(["--batch-mode", "leader_selected", "--min-batch-size", "12"])
            .args(["--time-precision", "60", "--collector-hpke-keypair"])
            .arg(&keypair)
            .arg("--out")
            .arg(out)
            .output()
            .unwrap()
    };
    let refused = create(r#"{"type":"Prio3Count"}"#, &dir.path().join("count.json"));
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(err.contains("differential privacy"), "{err}");

    let task = dir.path().join("task.json");
    let made = create(
        r#"{"type":"Prio3Histogram","length":3,"chunk_length":2}"#,
        &task,
    );
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let params: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&task).unwrap()).unwrap();
    assert_eq!(
        params["differential_privacy"]["type"], "PureDpDiscreteLaplace",
        "{params}"
    );
    // 12 reports: buckets 0, 1, 2 taken 2, 4 and 6 times.
    let values: Vec<&str> = [0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2]
        .iter()
        .map(|b| ["0", "1", "2"][*b])
        .collect();
    let out = run(cairn()
        .args(["dap", "upload", "--task"])
        .arg(&task)
        .args(&values));
    assert!(out.contains("uploaded 12 of 12"), "{out}");
    let out = run(cairn()
        .args(["dap", "collect", "--task"])
        .arg(&task)
        .arg("--hpke-keypair")
        .arg(&keypair)
        .args(["--max-polls", "60"]));
    let c: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(c["report_count"], 12, "the count is exact: {out}");
    // Noise may push a coordinate below zero; `signed_aggregate_result` reads it back.
    let got: Vec<i64> = c["signed_aggregate_result"]
        .as_array()
        .unwrap_or_else(|| panic!("no signed result: {out}"))
        .iter()
        .map(|v| v.as_i64().unwrap())
        .collect();
    assert_eq!(got.len(), 3, "{out}");
    for (g, e) in got.iter().zip([2i64, 4, 6]) {
        assert!(
            (g - e).abs() <= 40,
            "noisy histogram {got:?} too far from [2, 4, 6]"
        );
    }
}

/// Taskprov between two processes: `cairn dap serve` leader and helper with `[taskprov]`
/// sections naming each other (secrets from the environment) and no task created through any
/// control plane. The author derives the task ID with `cairn dap task taskprov`;
/// `cairn dap upload` advertises the task, both aggregators create it, and `cairn dap collect`
/// gets the exact sum.
#[test]
fn aggregators_configured_for_taskprov_take_a_task_from_the_uploads() {
    let dir = tempfile::tempdir().unwrap();
    let (lp, hp) = (free_port(), free_port());
    let (leader_url, helper_url) = (
        format!("http://127.0.0.1:{lp}/"),
        format!("http://127.0.0.1:{hp}/"),
    );
    let keypair = dir.path().join("collector.json");
    std::fs::write(&keypair, run(cairn().args(["dap", "keygen"]))).unwrap();
    let key_file: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&keypair).unwrap()).unwrap();
    let collector_config = key_file["config"].as_str().unwrap();
    let taskprov = |own: &str, peer: &str| {
        format!(
            "[taskprov]\nown_endpoint = \"{own}\"\npeer_endpoint = \"{peer}\"\n\
             collector_hpke_config = \"{collector_config}\"\nmin_batch_size_floor = 10\n"
        )
    };
    let leader_cfg = write_config(dir.path(), "leader", lp, false);
    let helper_cfg = write_config(dir.path(), "helper", hp, false);
    for (cfg, own, peer) in [
        (&leader_cfg, &leader_url, &helper_url),
        (&helper_cfg, &helper_url, &leader_url),
    ] {
        let text = std::fs::read_to_string(cfg).unwrap();
        // `[taskprov]` goes before `[parameters]` would swallow it: put it first among tables.
        let (top, rest) = text.split_once("[parameters]").unwrap();
        std::fs::write(
            cfg,
            format!("{top}{}[parameters]{rest}", taskprov(own, peer)),
        )
        .unwrap();
    }
    let with_secrets = |mut c: Command| {
        c.env(
            "CAIRN_DAP_TASKPROV_VERIFY_KEY_INIT",
            "AwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwM",
        )
        .env("CAIRN_DAP_TASKPROV_TOKEN", "taskprov-peer-token")
        .env("CAIRN_DAP_TASKPROV_COLLECTOR_TOKEN", COLLECTOR)
        .env_remove("CAIRN_DAP_CONTROL_TOKEN");
        c
    };
    let spawn = |role: &str, cfg: &Path| {
        let log = std::fs::File::create(dir.path().join(format!("{role}.log"))).unwrap();
        with_secrets(cairn())
            .args(["dap", "serve", "--role", role, "--config"])
            .arg(cfg)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap()
    };
    let _procs = Killed(vec![
        spawn("helper", &helper_cfg),
        spawn("leader", &leader_cfg),
    ]);
    wait_ready(hp);
    wait_ready(lp);

    let draft = dir.path().join("draft.json");
    std::fs::write(
        &draft,
        serde_json::json!({
            "task_id": "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
            "leader_endpoint": leader_url,
            "helper_endpoint": helper_url,
            "time_precision": 60,
            "min_batch_size": 12,
            "batch_mode": "leader_selected",
            "vdaf": { "type": "Prio3Sum", "max_measurement": 100 },
            "task_info": "taskprov between processes",
        })
        .to_string(),
    )
    .unwrap();
    let task = dir.path().join("task.json");
    std::fs::write(
        &task,
        run(cairn()
            .args(["dap", "task", "taskprov", "--task"])
            .arg(&draft)),
    )
    .unwrap();
    let derived: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&task).unwrap()).unwrap();
    assert_ne!(
        derived["task_id"],
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    );

    let values: Vec<String> = (1..=12).map(|i| i.to_string()).collect();
    let out = run(cairn()
        .args(["dap", "upload", "--task"])
        .arg(&task)
        .args(&values));
    assert!(out.contains("uploaded 12 of 12"), "{out}");
    let out = run(cairn()
        .args(["dap", "collect", "--task"])
        .arg(&task)
        .arg("--hpke-keypair")
        .arg(&keypair)
        .args(["--max-polls", "60"]));
    let c: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(c["report_count"], 12, "{out}");
    assert_eq!(c["aggregate_result"], 78, "{out}");
    let log = std::fs::read_to_string(dir.path().join("helper.log")).unwrap();
    assert!(log.contains("task provisioned in band"), "{log}");
}
