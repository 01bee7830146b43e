//! `cairn probe` against a running `cairn serve` (CT and OCSP on): one round passes every step
//! (ACME issuance, OCSP, CRL, CT add-chain) and exits 0; a round against a CT log that isn't
//! there fails its `ct` step and exits 1; in interval mode its metrics show success, then the
//! `ct` step failing once the CA's CT logs stop; and its `dap` step uploads a report to the
//! leader and collects it.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test")]

mod common;

use common::TestCa;
use std::process::Stdio;
use std::time::{Duration, Instant};

use cairn_test_services::free_port;

async fn start_ca() -> TestCa {
    TestCa::start_with(|cfg| {
        cfg.ct.enabled = true;
        cfg.ct.local_logs = true;
        cfg.ct.local_period_ms = 50;
        cfg.ocsp.enabled = true;
    })
    .await
}

/// The probe's flags against `ca`, submitting to its local log `log`.
fn probe_args(ca: &TestCa, log: &str) -> Vec<String> {
    let port = ca.server.acme_addr.port();
    vec![
        "probe".into(),
        "--directory".into(),
        ca.directory().to_owned(),
        "--tls-root".into(),
        ca.server.tls_root_path.display().to_string(),
        "--name".into(),
        "probe.example.com".into(),
        "--challtestsrv".into(),
        format!("http://{}", ca.chall.management_addr().unwrap()),
        "--ct-log".into(),
        format!("https://localhost:{port}/ct/{log}/"),
    ]
}

async fn probe_once(args: &[String]) -> std::process::Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(args)
        .arg("--once")
        .output()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_round_passes_every_step_against_a_healthy_ca() {
    let ca = start_ca().await;
    let out = probe_once(&probe_args(&ca, "local-a")).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    for step in ["acme", "ocsp", "crl", "ct"] {
        assert!(
            stdout
                .lines()
                .any(|l| l.starts_with(&format!("{step}: ok in "))),
            "{step}:\n{stdout}"
        );
    }

    // A log that does not exist: the ct step fails, the others pass, the exit code says so.
    let out = probe_once(&probe_args(&ca, "no-such-log")).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(stdout.contains("ct: FAILED"), "{stdout}");
    assert!(stdout.contains("acme: ok"), "{stdout}");
    assert!(stderr.contains("probe failed: ct: "), "{stderr}");
}

/// `cairn_probe_success{step="<step>"}` as the probe's metrics show it now, if shown.
async fn success_of(metrics: &str, step: &str) -> Option<String> {
    let text = reqwest::get(metrics).await.ok()?.text().await.ok()?;
    let prefix = format!("cairn_probe_success{{step=\"{step}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix).map(str::to_owned))
}

async fn wait_for(metrics: &str, step: &str, value: &str) {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        if success_of(metrics, step).await.as_deref() == Some(value) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "cairn_probe_success{{step=\"{step}\"}} never became {value}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_show_the_ct_step_failing_once_the_ct_log_stops() {
    let ca = start_ca().await;
    let listen = format!("127.0.0.1:{}", free_port());
    let _probe = tokio::process::Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(probe_args(&ca, "local-a"))
        .args(["--listen", &listen, "--interval", "1s"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let metrics = format!("http://{listen}/metrics");
    for step in ["acme", "ocsp", "crl", "ct"] {
        wait_for(&metrics, step, "1").await;
    }
    let text = reqwest::get(&metrics).await.unwrap().text().await.unwrap();
    assert!(text.contains("cairn_probe_duration_seconds{step=\"acme\"} "));
    assert!(text.contains("cairn_probe_runs_total{step=\"ct\",outcome=\"success\"} "));
    // The OCSP response's nextUpdate, for the OcspNearNextUpdate alert: in the future.
    let next: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("cairn_probe_ocsp_next_update_timestamp_seconds "))
        .expect("OCSP nextUpdate exported")
        .parse()
        .unwrap();
    let now = time::OffsetDateTime::now_utc().unix_timestamp() as f64;
    assert!(next > now, "nextUpdate {next} is not after {now}");

    ca.server.ct.shutdown().await;
    wait_for(&metrics, "ct", "0").await;
}

/// The `dap` step against `cairn serve`'s leader and helper: a leader-selected task with a
/// minimum batch size of 1, made for the probe; the wrong collector token fails the step.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dap_step_uploads_a_report_and_collects_it() {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use cairn_dap_aggregator::control_client;
    use cairn_dap_core::{HpkeKeypair, TaskParameters};
    use cairn_dap_messages::{BatchMode, Encode, HpkeConfigId, TaskId};

    let ca = TestCa::start_with(|cfg| {
        cfg.ocsp.enabled = true;
        cfg.dap.enabled = true;
        cfg.dap.driver_period_ms = 50;
    })
    .await;
    let dap = ca.server.dap.as_ref().expect("DAP runs in cairn serve");
    let keys = HpkeKeypair::generate(HpkeConfigId(1));
    let params = TaskParameters {
        task_id: TaskId::from_bytes(control_client::random_bytes().unwrap()),
        leader_endpoint: dap.leader_url.clone(),
        helper_endpoint: dap.helper_url.clone(),
        time_precision: 60,
        min_batch_size: 1,
        batch_mode: BatchMode::LeaderSelected,
        vdaf: serde_json::from_str(r#"{"type":"Prio3Count"}"#).unwrap(),
        task_info: "probe".into(),
        task_interval: None,
        max_batch_size: Some(1),
        differential_privacy: None,
        protocol: Default::default(),
    };
    let tokens = control_client::TaskTokens {
        leader_control: dap.control_token().to_owned(),
        helper_control: dap.control_token().to_owned(),
        collector: "probe-collector-token".into(),
    };
    let config = URL_SAFE_NO_PAD.encode(keys.config().get_encoded().unwrap());
    control_client::create_task(&reqwest::Client::new(), &params, &config, &tokens)
        .await
        .unwrap();
    let files = tempfile::tempdir().unwrap();
    let task_file = files.path().join("task.json");
    std::fs::write(&task_file, serde_json::to_string(&params).unwrap()).unwrap();
    let keypair_file = files.path().join("collector.json");
    let keypair = serde_json::json!({
        "config": config,
        "private_key": URL_SAFE_NO_PAD.encode(keys.private_key()),
    });
    std::fs::write(&keypair_file, keypair.to_string()).unwrap();

    let mut args = probe_args(&ca, "unused");
    // CT is off in this CA: no --ct-log.
    let at = args.iter().position(|a| a == "--ct-log").unwrap();
    args.drain(at..at + 2);
    args.extend([
        "--dap-task".into(),
        task_file.display().to_string(),
        "--dap-collector-keypair".into(),
        keypair_file.display().to_string(),
    ]);
    let run = |token: &'static str| {
        tokio::process::Command::new(env!("CARGO_BIN_EXE_cairn"))
            .args(&args)
            .arg("--once")
            .env("CAIRN_DAP_COLLECTOR_TOKEN", token)
            .output()
    };
    let out = run("probe-collector-token").await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("dap: ok in "), "{stdout}");
    assert!(
        !stdout.contains("ct: "),
        "no ct step without --ct-log: {stdout}"
    );

    let out = run("not-the-collector-token").await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("dap: FAILED"), "{stdout}");
    assert!(stdout.contains("acme: ok"), "{stdout}");
}
