//! The DAP interop test API, driven exactly as an interop test runner drives it: four `cairn
//! dap interop-*` processes (client, two aggregators, collector), tasks provisioned with
//! `add_task`, measurements sent through `/internal/test/upload`, then `collection_start` and
//! `collection_poll` until `complete` — the aggregate equals the plain sum, for Prio3Count and
//! Prio3Histogram in both batch modes, Prio3SumVec, Prio3Sum and Prio3MultihotCountVec. Bad requests get `status: error` JSON
//! and leave the servers running.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a panic is a failure with a location

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use cairn_dap_aggregator::control_client;
use serde_json::{Value, json};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const TIME_PRECISION: u64 = 3600;

use cairn_test_services::free_port;

struct Killed(Vec<Child>);

impl Drop for Killed {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Four interop servers, each `cairn dap interop-<role>` on its own port.
struct Runner {
    client: u16,
    leader: u16,
    helper: u16,
    collector: u16,
    http: reqwest::Client,
    _procs: Killed,
    _logs: tempfile::TempDir,
}

fn spawn(role: &str, port: u16, logs: &std::path::Path) -> Child {
    let log = std::fs::File::create(logs.join(format!("{role}-{port}.log"))).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cairn"));
    cmd.args(["dap", &format!("interop-{role}")]);
    if role == "aggregator" {
        // The port from the environment, as a container would get it; the others by flag.
        cmd.env("PORT", port.to_string())
            .args(["--driver-period-ms", "100"]);
    } else {
        cmd.args(["--port", &port.to_string()]);
    }
    cmd.stdout(Stdio::null()).stderr(log).spawn().unwrap()
}

impl Runner {
    async fn start() -> Runner {
        let logs = tempfile::tempdir().unwrap();
        let (client, leader, helper, collector) =
            (free_port(), free_port(), free_port(), free_port());
        let procs = Killed(vec![
            spawn("client", client, logs.path()),
            spawn("aggregator", leader, logs.path()),
            spawn("aggregator", helper, logs.path()),
            spawn("collector", collector, logs.path()),
        ]);
        let runner = Runner {
            client,
            leader,
            helper,
            collector,
            http: reqwest::Client::new(),
            _procs: procs,
            _logs: logs,
        };
        for port in [client, leader, helper, collector] {
            runner.await_ready(port).await;
        }
        runner
    }

    async fn await_ready(&self, port: u16) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let r = self
                .http
                .post(format!("http://127.0.0.1:{port}/internal/test/ready"))
                .send()
                .await;
            if r.is_ok_and(|r| r.status().is_success()) {
                return;
            }
            assert!(Instant::now() < deadline, "port {port} never became ready");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// POSTs `body` to `/internal/test/{api}` and returns the JSON object (always HTTP 200 with
    /// a JSON content type, as the draft requires).
    async fn call(&self, port: u16, api: &str, body: impl Into<reqwest::Body>) -> Value {
        let resp = self
            .http
            .post(format!("http://127.0.0.1:{port}/internal/test/{api}"))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{api}");
        assert_eq!(
            resp.headers().get("content-type").unwrap(),
            "application/json",
            "{api}"
        );
        let v: Value = resp.json().await.unwrap();
        assert!(v.is_object(), "{api}: {v}");
        v
    }

    async fn ok(&self, port: u16, api: &str, body: &Value) -> Value {
        let v = self.call(port, api, body.to_string()).await;
        assert_eq!(v["status"], "success", "{api}: {v}");
        v
    }

    /// The whole runner sequence for one task; returns the completed poll answer. With
    /// `interval`, every role gets `task_start`/`task_end` (it is bound into the AADs).
    async fn aggregate(
        &self,
        vdaf: Value,
        batch_mode: u8,
        measurements: &[Value],
        interval: bool,
    ) -> Value {
        self.aggregate_in(None, vdaf, batch_mode, measurements, interval)
            .await
    }

    /// [`Runner::aggregate`] with Cairn's `protocol` extension given to every role.
    async fn aggregate_in(
        &self,
        protocol: Option<&str>,
        vdaf: Value,
        batch_mode: u8,
        measurements: &[Value],
        interval: bool,
    ) -> Value {
        let task_id = URL_SAFE_NO_PAD.encode(rand32());
        let verify_key = URL_SAFE_NO_PAD.encode(rand32());
        let aggregator_token = URL_SAFE_NO_PAD.encode(&rand32()[..16]);
        let collector_token = URL_SAFE_NO_PAD.encode(&rand32()[..16]);
        let leader = format!("http://127.0.0.1:{}/", self.leader);
        let helper = format!("http://127.0.0.1:{}/", self.helper);
        let min_batch_size = measurements.len();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let with_interval = |mut v: Value| {
            if interval {
                v["task_start"] = json!(now - 86_400);
                v["task_end"] = json!(now + 86_400);
            }
            if let Some(p) = protocol {
                v["protocol"] = json!(p);
            }
            v
        };

        for (port, role) in [(self.leader, "leader"), (self.helper, "helper")] {
            let v = self
                .ok(
                    port,
                    "endpoint_for_task",
                    &json!({"task_id": task_id, "role": role, "hostname": "127.0.0.1"}),
                )
                .await;
            assert_eq!(v["endpoint"], "/");
        }
        let v = self
            .ok(
                self.collector,
                "add_task",
                &with_interval(json!({
                    "task_id": task_id, "leader": leader, "helper": helper, "vdaf": vdaf,
                    "collector_authentication_token": collector_token,
                    "batch_mode": batch_mode, "min_batch_size": min_batch_size,
                    "time_precision": TIME_PRECISION,
                })),
            )
            .await;
        let collector_config = v["collector_hpke_config"].as_str().unwrap().to_string();
        for (port, role) in [(self.leader, "leader"), (self.helper, "helper")] {
            let mut req = with_interval(json!({
                "task_id": task_id, "leader": leader, "helper": helper, "vdaf": vdaf,
                "leader_authentication_token": aggregator_token, "role": role,
                "vdaf_verify_key": verify_key, "batch_mode": batch_mode,
                "min_batch_size": min_batch_size, "time_precision": TIME_PRECISION,
                "collector_hpke_config": collector_config,
            }));
            if role == "leader" {
                req["collector_authentication_token"] = json!(collector_token);
            }
            self.ok(port, "add_task", &req).await;
        }
        for m in measurements {
            self.ok(
                self.client,
                "upload",
                &with_interval(json!({
                    "task_id": task_id, "leader": leader, "helper": helper, "vdaf": vdaf,
                    "measurement": m, "time_precision": TIME_PRECISION,
                    "batch_mode": batch_mode, "min_batch_size": min_batch_size,
                })),
            )
            .await;
        }
        let query = if batch_mode == 1 {
            json!({"type": 1, "batch_interval_start": now / TIME_PRECISION * TIME_PRECISION,
                   "batch_interval_duration": 2 * TIME_PRECISION})
        } else {
            json!({"type": 2, "subtype": 1})
        };
        let v = self
            .ok(
                self.collector,
                "collection_start",
                &json!({"task_id": task_id, "agg_param": "", "query": query}),
            )
            .await;
        let handle = v["handle"].as_str().unwrap().to_string();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let v = self
                .call(
                    self.collector,
                    "collection_poll",
                    json!({ "handle": handle }).to_string(),
                )
                .await;
            match v["status"].as_str().unwrap() {
                "complete" => {
                    assert_eq!(v["report_count"], json!(measurements.len()), "{v}");
                    let start = v["interval_start"].as_u64().unwrap();
                    let duration = v["interval_duration"].as_u64().unwrap();
                    assert_eq!(start % TIME_PRECISION, 0, "{v}");
                    assert!(start <= now && now < start + duration, "{v}");
                    // A second poll gives the same answer.
                    let again = self
                        .call(
                            self.collector,
                            "collection_poll",
                            json!({ "handle": handle }).to_string(),
                        )
                        .await;
                    assert_eq!(again, v);
                    return v["result"].clone();
                }
                "in progress" => {}
                other => panic!("collection_poll answered {other}: {v}"),
            }
            assert!(Instant::now() < deadline, "collection never completed");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

fn rand32() -> [u8; 32] {
    control_client::random_bytes().unwrap()
}

fn strings(v: &[u64]) -> Value {
    Value::Array(v.iter().map(|n| json!(n.to_string())).collect())
}

#[tokio::test]
async fn cairn_in_all_four_roles_aggregates_exactly_in_both_batch_modes() {
    let r = Runner::start().await;

    // Prio3Count, time-interval, numbers as strings (as Janus' runner sends them), with a task
    // interval given to every role.
    let counts = [1u64, 0, 1, 1, 0, 1, 0, 1, 1, 1];
    let ms: Vec<Value> = counts.iter().map(|c| json!(c.to_string())).collect();
    let result = r
        .aggregate(json!({"type": "Prio3Count"}), 1, &ms, true)
        .await;
    assert_eq!(result, json!(counts.iter().sum::<u64>().to_string()));

    // Prio3Count, leader-selected, numbers as JSON numbers.
    let ms: Vec<Value> = counts.iter().map(|c| json!(c)).collect();
    let result = r
        .aggregate(json!({"type": "Prio3Count"}), 2, &ms, false)
        .await;
    assert_eq!(result, json!(counts.iter().sum::<u64>().to_string()));

    // Prio3Histogram in both modes: bucket indices.
    let buckets = [0usize, 3, 3, 1, 3, 2, 0, 3];
    let mut expected = [0u64; 4];
    for b in buckets {
        expected[b] += 1;
    }
    let ms: Vec<Value> = buckets.iter().map(|b| json!(b.to_string())).collect();
    let vdaf = json!({"type": "Prio3Histogram", "length": "4", "chunk_length": "2"});
    for mode in [1, 2] {
        let result = r.aggregate(vdaf.clone(), mode, &ms, false).await;
        assert_eq!(result, strings(&expected), "batch mode {mode}");
    }

    // Prio3SumVec, time-interval.
    let vectors = [[1u64, 2, 3], [4, 5, 6], [7, 0, 255]];
    let ms: Vec<Value> = vectors.iter().map(|v| strings(v)).collect();
    let vdaf = json!({"type": "Prio3SumVec", "max_measurement": "255", "length": "3",
                      "chunk_length": "2"});
    let result = r.aggregate(vdaf, 1, &ms, false).await;
    assert_eq!(result, strings(&[12, 7, 264]));

    // Prio3Sum given by `bits` (max 2^8 - 1), leader-selected.
    let ms: Vec<Value> = [10u64, 255, 0, 31].iter().map(|n| json!(n)).collect();
    let vdaf = json!({"type": "Prio3Sum", "bits": "8"});
    let result = r.aggregate(vdaf, 2, &ms, false).await;
    assert_eq!(result, json!("296"));

    // Prio3MultihotCountVec with boolean vectors, time-interval.
    let ms = [
        json!([true, false, true, false]),
        json!([false, false, true, true]),
        json!(["1", "0", "0", "0"]),
    ];
    let vdaf = json!({"type": "Prio3MultihotCountVec", "length": 4, "chunk_length": 2,
                      "max_weight": 2});
    let result = r.aggregate(vdaf, 1, &ms, false).await;
    assert_eq!(result, strings(&[2, 0, 2, 1]));

    // Cairn's `protocol` extension: a DAP-09 task (VDAF-08) in both batch modes.
    let vdaf = json!({"type": "Prio3Histogram", "length": "4", "chunk_length": "2"});
    let ms: Vec<Value> = buckets.iter().map(|b| json!(b.to_string())).collect();
    for mode in [1, 2] {
        let result = r
            .aggregate_in(Some("dap-09"), vdaf.clone(), mode, &ms, false)
            .await;
        assert_eq!(result, strings(&expected), "dap-09, batch mode {mode}");
    }
}

#[tokio::test]
async fn bad_interop_requests_get_json_errors_and_the_servers_keep_running() {
    let r = Runner::start().await;
    let expect_error = |v: &Value, needle: &str| {
        assert_eq!(v["status"], "error", "{v}");
        let e = v["error"].as_str().unwrap();
        assert!(e.contains(needle), "{needle:?} not in {e:?}");
    };

    for port in [r.client, r.leader, r.collector] {
        let api = if port == r.client {
            "upload"
        } else {
            "add_task"
        };
        expect_error(&r.call(port, api, "not json").await, "not JSON");
        expect_error(&r.call(port, api, "[1, 2]").await, "JSON object");
        expect_error(&r.call(port, api, "{}").await, "task_id");
    }
    let task = URL_SAFE_NO_PAD.encode(rand32());
    let base = json!({
        "task_id": task, "leader": "http://127.0.0.1:1/", "helper": "http://127.0.0.1:2/",
        "vdaf": {"type": "Prio3Count"}, "batch_mode": 1, "min_batch_size": 1,
        "time_precision": 3600, "role": "leader", "vdaf_verify_key": URL_SAFE_NO_PAD.encode(rand32()),
        "leader_authentication_token": "t", "collector_authentication_token": "c",
        "collector_hpke_config": "AA", "measurement": "1",
    });
    let with = |k: &str, v: Value| {
        let mut b = base.clone();
        b[k] = v;
        b.to_string()
    };
    expect_error(
        &r.call(
            r.leader,
            "add_task",
            with("vdaf", json!({"type": "Poplar1"})),
        )
        .await,
        "unsupported VDAF",
    );
    expect_error(
        &r.call(r.leader, "add_task", with("batch_mode", json!(3)))
            .await,
        "batch mode",
    );
    expect_error(
        &r.call(r.leader, "add_task", with("role", json!("collector")))
            .await,
        "role",
    );
    expect_error(
        &r.call(r.leader, "add_task", with("vdaf_verify_key", json!("AAAA")))
            .await,
        "32 bytes",
    );
    expect_error(
        &r.call(r.leader, "add_task", base.to_string()).await,
        "collector_hpke_config",
    );
    let mut inverted = base.clone();
    inverted["task_start"] = json!(100_000);
    inverted["task_end"] = json!(5);
    expect_error(
        &r.call(r.leader, "add_task", inverted.to_string()).await,
        "ends before",
    );
    expect_error(
        &r.call(
            r.client,
            "upload",
            with("vdaf", json!({"type": "Prio3Sum", "max_measurement": "x"})),
        )
        .await,
        "max_measurement",
    );
    // The leader is unreachable: the error says so instead of hanging or panicking.
    expect_error(&r.call(r.client, "upload", base.to_string()).await, "HTTP");
    expect_error(
        &r.call(r.collector, "collection_poll", r#"{"handle": "nope"}"#)
            .await,
        "unknown collection handle",
    );
    expect_error(
        &r.call(
            r.collector,
            "collection_start",
            json!({"task_id": task, "agg_param": "", "query": {"type": 1}}).to_string(),
        )
        .await,
        "unknown task",
    );
    // Adding the collector's task twice is refused the second time.
    assert_eq!(
        r.call(r.collector, "add_task", base.to_string()).await["status"],
        "success"
    );
    expect_error(
        &r.call(r.collector, "add_task", base.to_string()).await,
        "already added",
    );
    expect_error(
        &r.call(
            r.collector,
            "collection_start",
            json!({"task_id": task, "agg_param": "", "query": {"type": 1}}).to_string(),
        )
        .await,
        "batch_interval_start",
    );
    expect_error(
        &r.call(
            r.collector,
            "collection_start",
            json!({"task_id": task, "agg_param": "AQ", "query": {"type": 2}}).to_string(),
        )
        .await,
        "agg_param",
    );
    // Every server still answers.
    for port in [r.client, r.leader, r.helper, r.collector] {
        r.await_ready(port).await;
    }
}
