//! The operations a long-running DAP service needs (issue 18), against a leader and a helper
//! on loopback with a mock clock, on SQLite always and on PostgreSQL when
//! `CAIRN_TEST_POSTGRES_URL` is set (under CI it must be):
//! garbage collection reaching a steady state while replays inside the expiry window are still
//! refused, and HPKE key rotation while reports are uploaded losing none of them.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a panic is a failure with a location

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use cairn_dap_aggregator::datastore::TaskRowCounts;
use cairn_dap_aggregator::{
    Aggregator, AggregatorParameters, AggregatorRole, CreateTaskRequest, Datastore, DatastoreKey,
};
use cairn_dap_client::Client;
use cairn_dap_collector::{Collector, Poll};
use cairn_dap_core::vdaf::VdafInstance;
use cairn_dap_core::{HpkeKeypair, Measurement, MockClock, TaskParameters};
use cairn_dap_messages::{
    BatchMode, Duration, Encode, HpkeConfigId, Interval, Query, ReportError, TaskId, Time,
};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// The first hour of the simulated run (a multiple of the time precision).
const START: u64 = 1_700_002_800;
const PRECISION: u64 = 3600;
const AGG_TOKEN: &str = "leader-to-helper-secret";
const COLLECTOR_TOKEN: &str = "collector-secret";
const CONTROL_TOKEN: &str = "control-secret";

#[derive(Clone, Copy, Debug)]
enum Backend {
    Sqlite,
    Postgres,
}

struct Deployment {
    leader: Aggregator,
    helper: Aggregator,
    clock: MockClock,
    params: TaskParameters,
    client: Client,
    collector: Collector,
    _dir: tempfile::TempDir,
    schemas: Vec<String>,
}

fn unique() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "dapops_{}_{nanos:x}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

async fn pg_schema_url(base: &str, schema: &str) -> String {
    use sqlx::{AssertSqlSafe, Connection};
    let mut admin = sqlx::PgConnection::connect(base).await.unwrap();
    sqlx::query(AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
        .execute(&mut admin)
        .await
        .unwrap();
    let sep = if base.contains('?') { '&' } else { '?' };
    format!("{base}{sep}options=-csearch_path%3D{schema}")
}

async fn serve(agg: Aggregator) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = cairn_dap_aggregator::router(agg, Some(CONTROL_TOKEN));
    tokio::spawn(async move {
        // With the peer's address, as the real listener gives it (per-source upload limits).
        let app = app.into_make_service_with_connect_info::<std::net::SocketAddr>();
        let _ = axum::serve(listener, app).await;
    });
    format!("http://{addr}/")
}

impl Deployment {
    /// A Prio3Count time-interval task whose reports expire after `expiry_age` seconds (at
    /// both aggregators); `None` when the backend is PostgreSQL and no URL is configured.
    async fn start(
        backend: Backend,
        expiry_age: Option<u64>,
        params: AggregatorParameters,
    ) -> Option<Deployment> {
        let dir = tempfile::tempdir().unwrap();
        let mut schemas = Vec::new();
        let url = |name: &str| format!("sqlite://{}?mode=rwc", dir.path().join(name).display());
        let (leader_url, helper_url) = match backend {
            Backend::Sqlite => (url("leader.db"), url("helper.db")),
            Backend::Postgres => {
                let base = cairn_test_services::postgres_url()?;
                let (l, h) = (unique(), unique());
                schemas.push(l.clone());
                schemas.push(h.clone());
                (
                    pg_schema_url(&base, &l).await,
                    pg_schema_url(&base, &h).await,
                )
            }
        };
        let clock = MockClock::new(START);
        let key = DatastoreKey::from_bytes(&[5; 32]).unwrap();
        let mut aggs = Vec::new();
        for (url, role) in [
            (&leader_url, AggregatorRole::Leader),
            (&helper_url, AggregatorRole::Helper),
        ] {
            let ds = Datastore::connect(url, key.clone()).await.unwrap();
            aggs.push(
                Aggregator::new(ds, Arc::new(clock.clone()), role, params.clone())
                    .await
                    .unwrap(),
            );
        }
        let (leader, helper) = (aggs[0].clone(), aggs[1].clone());
        let params = TaskParameters {
            task_id: TaskId::from_bytes(*b"cairn-dap-operations-test-task-1"),
            leader_endpoint: serve(leader.clone()).await,
            helper_endpoint: serve(helper.clone()).await,
            time_precision: PRECISION,
            min_batch_size: 1,
            batch_mode: BatchMode::TimeInterval,
            vdaf: VdafInstance::Prio3Count,
            task_info: "operations".into(),
            task_interval: None,
            max_batch_size: None,
            differential_privacy: None,
            protocol: Default::default(),
        };
        let collector_keys = HpkeKeypair::generate(HpkeConfigId(9));
        let http = reqwest::Client::new();
        for (base, collector_token) in [
            (&params.leader_endpoint, Some(COLLECTOR_TOKEN.to_string())),
            (&params.helper_endpoint, None),
        ] {
            let req = CreateTaskRequest {
                parameters: params.clone(),
                vdaf_verify_key: URL_SAFE_NO_PAD.encode([42u8; 32]),
                collector_hpke_config: URL_SAFE_NO_PAD
                    .encode(collector_keys.config().get_encoded().unwrap()),
                aggregator_auth_token: AGG_TOKEN.into(),
                collector_auth_token: collector_token,
                report_expiry_age: expiry_age,
            };
            let resp = http
                .post(format!("{base}control/tasks"))
                .bearer_auth(CONTROL_TOKEN)
                .json(&req)
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 201, "{}", resp.text().await.unwrap());
        }
        let client = Client::new(params.clone(), http.clone()).await.unwrap();
        let collector = Collector::new(
            params.clone(),
            collector_keys,
            COLLECTOR_TOKEN.into(),
            http.clone(),
        );
        Some(Deployment {
            leader,
            helper,
            clock,
            params,
            client,
            collector,
            _dir: dir,
            schemas,
        })
    }

    /// One pass of every leader driver.
    async fn drive(&self) {
        self.leader.create_aggregation_jobs().await.unwrap();
        self.leader.run_aggregation_jobs_once().await.unwrap();
        self.leader.run_collection_jobs_once().await.unwrap();
    }

    /// Collects the time unit `unit`; returns the report count.
    async fn collect_unit(&self, unit: u64) -> u64 {
        let query = Query::TimeInterval {
            batch_interval: Interval::new(Time(unit), Duration(1)).unwrap(),
        };
        let job = self.collector.start(query).await.unwrap();
        for _ in 0..8 {
            self.drive().await;
            if let Poll::Ready(c) = self.collector.poll(&job).await.unwrap() {
                return c.report_count;
            }
        }
        panic!("collection of unit {unit} did not finish");
    }

    async fn rows(&self) -> (TaskRowCounts, TaskRowCounts) {
        let id = self.params.task_id;
        (
            self.leader.datastore().count_task_rows(&id).await.unwrap(),
            self.helper.datastore().count_task_rows(&id).await.unwrap(),
        )
    }

    async fn finish(self) {
        self.leader.datastore().close().await;
        self.helper.datastore().close().await;
        if !self.schemas.is_empty()
            && let Some(base) = cairn_test_services::postgres_url()
        {
            use sqlx::{AssertSqlSafe, Connection};
            let mut admin = sqlx::PgConnection::connect(&base).await.unwrap();
            for s in &self.schemas {
                sqlx::query(AssertSqlSafe(format!("DROP SCHEMA {s} CASCADE")))
                    .execute(&mut admin)
                    .await
                    .unwrap();
            }
        }
    }
}

/// Twelve simulated hours of uploads, aggregation and hourly collection with a three-hour
/// report expiry and the garbage collector run every hour (in small batches): the row counts
/// of both aggregators stop growing once the first reports expire, a report replayed inside
/// the expiry window is refused as a replay even after collection and GC passes, and once
/// its time has expired it is refused as too old (`report_dropped`), never accepted again.
async fn gc_reaches_a_steady_state(backend: Backend) {
    const PER_HOUR: usize = 20;
    const EXPIRY_HOURS: u64 = 3;
    let params = AggregatorParameters {
        max_aggregation_job_size: 7,
        gc_batch_size: 5,
        ..Default::default()
    };
    let Some(d) = Deployment::start(backend, Some(EXPIRY_HOURS * PRECISION), params).await else {
        return;
    };
    let first_unit = START / PRECISION;
    let one = Measurement::Count(true);
    let replayed = d.client.prepare_report(&one, START).unwrap();
    let mut history = Vec::new();
    for hour in 0..12u64 {
        let now = START + hour * PRECISION;
        d.clock.set(now);
        let mut reports: Vec<_> = (0..PER_HOUR)
            .map(|_| d.client.prepare_report(&one, now).unwrap())
            .collect();
        if hour == 0 {
            reports[0] = replayed.clone();
        }
        let errors = d.client.upload(reports).await.unwrap();
        assert!(errors.status.is_empty(), "hour {hour}: {errors:?}");
        if hour > 1 {
            // Collect the previous hour: all of its reports, whatever GC did meanwhile. (Hour
            // 0 is never collected, so its replays meet the replay record, not a collected
            // batch.)
            assert_eq!(d.collect_unit(first_unit + hour - 1).await, PER_HOUR as u64);
        } else if hour == 1 {
            // Aggregate hour 0 (without collecting it): its replay record now exists.
            d.drive().await;
            d.drive().await;
        }
        if hour > 0 {
            // The report of hour 0, replayed: a replay while inside the window, too old after.
            let errors = d.client.upload(vec![replayed.clone()]).await.unwrap();
            let expected = if hour < EXPIRY_HOURS + 1 {
                ReportError::ReportReplayed
            } else {
                ReportError::ReportDropped
            };
            assert_eq!(errors.status.len(), 1, "hour {hour}");
            assert_eq!(errors.status[0].error, expected, "hour {hour}");
        }
        // Several GC passes, as several instances or ticks would run them.
        for _ in 0..4 {
            d.leader.collect_garbage_once().await.unwrap();
            d.helper.collect_garbage_once().await.unwrap();
        }
        history.push(d.rows().await);
    }
    let (leader, helper) = *history.last().unwrap();
    eprintln!("rows per hour (leader, helper): {history:?}");
    // Only the reports of the unexpired hours remain: the cutoff hour through the current one.
    let live = (EXPIRY_HOURS + 1) * PER_HOUR as u64;
    assert!(leader.client_reports <= live, "{leader:?}");
    assert!(helper.aggregated_reports <= live, "{helper:?}");
    assert!(leader.aggregated_reports <= live, "{leader:?}");
    assert!(leader.collection_jobs <= EXPIRY_HOURS + 1, "{leader:?}");
    assert!(
        helper.helper_aggregate_shares <= EXPIRY_HOURS + 1,
        "{helper:?}"
    );
    // Three jobs of at most seven reports per hour.
    assert!(
        helper.helper_aggregation_jobs <= 3 * (EXPIRY_HOURS + 1),
        "{helper:?}"
    );
    // Steady state: the last hours look exactly alike.
    for pair in history[6..].windows(2) {
        assert_eq!(pair[0], pair[1], "{history:#?}");
    }
    // And something was deleted: twelve hours of reports were uploaded.
    assert!(
        leader.client_reports < 12 * PER_HOUR as u64 / 2,
        "{leader:?}"
    );
    d.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gc_reaches_a_steady_state_sqlite() {
    gc_reaches_a_steady_state(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gc_reaches_a_steady_state_postgres() {
    gc_reaches_a_steady_state(Backend::Postgres).await;
}

/// Without a report expiry age, the garbage collector deletes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gc_keeps_everything_without_an_expiry_age() {
    let Some(d) = Deployment::start(Backend::Sqlite, None, AggregatorParameters::default()).await
    else {
        return;
    };
    let one = Measurement::Count(true);
    d.client
        .upload_measurements(&[one.clone(), one], START)
        .await
        .unwrap();
    assert_eq!(d.collect_unit(START / PRECISION).await, 2);
    let before = d.rows().await;
    d.clock.set(START + 1000 * PRECISION);
    assert_eq!(d.leader.collect_garbage_once().await.unwrap().total(), 0);
    assert_eq!(d.helper.collect_garbage_once().await.unwrap().total(), 0);
    assert_eq!(d.rows().await, before);
    d.finish().await;
}

/// Five simulated hours with the key rotator on at both aggregators (keys advertised for an
/// hour, pending for 20 minutes, expired for an hour), clients refetching the configuration
/// every 20 minutes and uploading every 10, the leader aggregating only every 30 minutes:
/// several rotations happen, old keys are deleted, and every uploaded report is accepted and
/// aggregated.
async fn rotation_loses_no_report(backend: Backend) {
    let rotator = cairn_dap_aggregator::KeyRotatorConfig {
        enabled: true,
        interval_secs: 1,
        propagation_delay_secs: 1200,
        active_secs: 3600,
        expired_grace_secs: 3600,
    };
    let params = AggregatorParameters {
        max_aggregation_job_size: 10,
        key_rotator: rotator,
        ..Default::default()
    };
    let Some(d) = Deployment::start(backend, None, params).await else {
        return;
    };
    let one = Measurement::Count(true);
    let http = reqwest::Client::new();
    let mut client = Client::new(d.params.clone(), http.clone()).await.unwrap();
    let (mut uploaded, mut activations, mut deletions) = (0u64, 0, 0);
    for step in 0..30u64 {
        d.clock.set(START + step * 600);
        for agg in [&d.leader, &d.helper] {
            for s in agg.rotate_hpke_keys_once(&rotator).await.unwrap() {
                match s {
                    cairn_dap_aggregator::RotationStep::Move(
                        _,
                        _,
                        cairn_dap_aggregator::HpkeKeyState::Active,
                    ) => {
                        activations += 1;
                    }
                    cairn_dap_aggregator::RotationStep::Delete(_) => deletions += 1,
                    _ => {}
                }
            }
        }
        if step % 2 == 0 {
            client = Client::new(d.params.clone(), http.clone()).await.unwrap();
        }
        let reports = (0..5)
            .map(|_| client.prepare_report(&one, START + step * 600).unwrap())
            .collect();
        let errors = client.upload(reports).await.unwrap();
        assert!(errors.status.is_empty(), "step {step}: {errors:?}");
        uploaded += 5;
        if step % 3 == 2 {
            d.leader.create_aggregation_jobs().await.unwrap();
            d.leader.run_aggregation_jobs_once().await.unwrap();
        }
    }
    assert!(
        activations >= 6,
        "{activations} activations at two aggregators"
    );
    assert!(deletions >= 4, "{deletions} deletions at two aggregators");
    // Collect once the six hours are over.
    d.clock.set(START + 6 * PRECISION + 60);
    let query = Query::TimeInterval {
        batch_interval: Interval::new(Time(START / PRECISION), Duration(6)).unwrap(),
    };
    let job = d.collector.start(query).await.unwrap();
    let mut collected = None;
    for _ in 0..8 {
        d.drive().await;
        if let Poll::Ready(c) = d.collector.poll(&job).await.unwrap() {
            collected = Some(c);
            break;
        }
    }
    let c = collected.expect("collection finished");
    assert_eq!(
        c.report_count, uploaded,
        "every uploaded report is aggregated"
    );
    assert_eq!(
        c.aggregate_result,
        cairn_dap_core::AggregateResult::Integer(uploaded)
    );
    d.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_loses_no_report_sqlite() {
    rotation_loses_no_report(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_loses_no_report_postgres() {
    rotation_loses_no_report(Backend::Postgres).await;
}

/// A time interval longer than the 10,000 empty buckets created at collection: a late report
/// for a time unit past that bound is still refused (`batch_collected`), and creates no
/// bucket.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_reports_are_refused_anywhere_in_a_long_collected_interval() {
    let Some(d) = Deployment::start(Backend::Sqlite, None, AggregatorParameters::default()).await
    else {
        return;
    };
    const UNITS: u64 = 10_005;
    let first_unit = START / PRECISION;
    d.clock.set(START + (UNITS + 2) * PRECISION);
    let one = Measurement::Count(true);
    let errors = d
        .client
        .upload_measurements(std::slice::from_ref(&one), START)
        .await
        .unwrap();
    assert!(errors.status.is_empty(), "{errors:?}");
    let query = Query::TimeInterval {
        batch_interval: Interval::new(Time(first_unit), Duration(UNITS)).unwrap(),
    };
    let job = d.collector.start(query).await.unwrap();
    let mut done = false;
    for _ in 0..8 {
        d.drive().await;
        if let Poll::Ready(c) = d.collector.poll(&job).await.unwrap() {
            assert_eq!(c.report_count, 1);
            done = true;
            break;
        }
    }
    assert!(done, "collection finished");
    let buckets = d.rows().await.0.batch_buckets;
    for unit in [first_unit + 1, first_unit + 10_002, first_unit + UNITS - 1] {
        let late = d
            .client
            .upload_measurements(std::slice::from_ref(&one), unit * PRECISION)
            .await
            .unwrap();
        assert_eq!(late.status.len(), 1, "unit {unit}");
        assert_eq!(
            late.status[0].error,
            ReportError::BatchCollected,
            "unit {unit}"
        );
    }
    // Past the interval, reports are taken again.
    let after = d
        .client
        .upload_measurements(&[one], (first_unit + UNITS) * PRECISION)
        .await
        .unwrap();
    assert!(after.status.is_empty(), "{after:?}");
    d.drive().await;
    assert_eq!(
        d.rows().await.0.batch_buckets,
        buckets + 1,
        "one new bucket, after the interval"
    );
    d.finish().await;
}

/// A task's upload limit: its burst is taken, the next request is refused whole with 429 and
/// a `Retry-After`, and nothing of it is stored; once the rate refills, uploads are taken again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_past_the_task_limit_are_refused_with_429() {
    let params = AggregatorParameters {
        upload_limits: cairn_dap_aggregator::UploadLimits {
            task_reports_per_sec: 1,
            task_burst: 10,
            ..Default::default()
        },
        ..Default::default()
    };
    let Some(d) = Deployment::start(Backend::Sqlite, None, params).await else {
        return;
    };
    let one = Measurement::Count(true);
    let ten = vec![one.clone(); 10];
    let errors = d.client.upload_measurements(&ten, START).await.unwrap();
    assert!(errors.status.is_empty(), "{errors:?}");
    let report = d.client.prepare_report(&one, START).unwrap();
    let body = cairn_dap_messages::UploadRequest {
        reports: vec![report.clone(); 1],
    }
    .get_encoded()
    .unwrap();
    let resp = reqwest::Client::new()
        .post(format!(
            "{}tasks/{}/reports",
            d.params.leader_endpoint, d.params.task_id
        ))
        .header("content-type", cairn_dap_messages::media_type::UPLOAD_REQ)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 429);
    assert_eq!(resp.headers()["retry-after"], "1");
    let id = d.params.task_id;
    assert_eq!(
        d.leader
            .datastore()
            .count_client_reports(&id)
            .await
            .unwrap(),
        10
    );
    // A second later the rate has refilled one report.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert!(
        d.client
            .upload(vec![report])
            .await
            .unwrap()
            .status
            .is_empty()
    );
    d.finish().await;
}

/// The per-source upload limit counts a whole IPv6 /64 as one source (and other /64s apart),
/// applies to the peer address of HTTP uploads, and a task's own limit replaces the default.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_past_the_source_limit_are_refused_per_ipv6_64() {
    let task_id = TaskId::from_bytes(*b"cairn-dap-operations-test-task-1");
    let mut upload_limits = cairn_dap_aggregator::UploadLimits {
        // The default task limit would refuse the second request; this task's own does not.
        task_reports_per_sec: 1,
        task_burst: 2,
        source_reports_per_sec: 1,
        source_burst: 2,
        ..Default::default()
    };
    upload_limits.tasks.insert(
        task_id,
        cairn_dap_aggregator::TaskUploadLimit {
            reports_per_sec: 1,
            burst: 100,
        },
    );
    let params = AggregatorParameters {
        upload_limits,
        ..Default::default()
    };
    let Some(d) = Deployment::start(Backend::Sqlite, None, params).await else {
        return;
    };
    assert_eq!(d.params.task_id, task_id);
    let one = Measurement::Count(true);
    let body = |n: usize| {
        cairn_dap_messages::UploadRequest {
            reports: (0..n)
                .map(|_| d.client.prepare_report(&one, START).unwrap())
                .collect(),
        }
        .get_encoded()
        .unwrap()
    };
    let upload = |ip: &str, n: usize| {
        let (body, ip) = (body(n), ip.parse().unwrap());
        let leader = d.leader.clone();
        async move { leader.handle_upload_from(&task_id, &body, Some(ip)).await }
    };
    let refused = |r: Result<_, cairn_dap_aggregator::error::Error>| matches!(r, Err(cairn_dap_aggregator::error::Error::TooManyRequests(secs)) if secs >= 1);
    assert!(upload("2001:db8::1", 2).await.unwrap().status.is_empty());
    assert!(
        refused(upload("2001:db8::ffff:2", 1).await),
        "same /64: the source's burst is spent"
    );
    assert!(
        upload("2001:db8:0:1::1", 2)
            .await
            .unwrap()
            .status
            .is_empty(),
        "another /64 is another source"
    );
    // Over HTTP the source is the peer's address (127.0.0.1 here).
    let post = |n: usize| {
        reqwest::Client::new()
            .post(format!(
                "{}tasks/{task_id}/reports",
                d.params.leader_endpoint
            ))
            .header("content-type", cairn_dap_messages::media_type::UPLOAD_REQ)
            .body(body(n))
            .send()
    };
    assert_eq!(post(2).await.unwrap().status(), 200);
    let resp = post(1).await.unwrap();
    assert_eq!(resp.status(), 429);
    assert!(resp.headers().contains_key("retry-after"));
    let problem: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(problem["type"], "about:blank");
    assert_eq!(problem["status"], 429);
    // Only the admitted requests were stored: 2 + 2 + 2.
    assert_eq!(
        d.leader
            .datastore()
            .count_client_reports(&task_id)
            .await
            .unwrap(),
        6
    );
    d.finish().await;
}
