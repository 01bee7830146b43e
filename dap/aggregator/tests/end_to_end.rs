//! Leader and helper on loopback (port 0), a client uploading, the leader's drivers run by hand
//! against a mock clock, a collector getting the aggregate — for every VDAF, on SQLite always
//! and on PostgreSQL when `CAIRN_TEST_POSTGRES_URL` is set (each aggregator in a fresh schema;
//! under CI it must be).
//! Also: bad input, the minimum batch size state, single collection, and lease takeover.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a panic is a failure with a location

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use cairn_dap_aggregator::{
    Aggregator, AggregatorParameters, AggregatorRole, CreateTaskRequest, Datastore, DatastoreKey,
};
use cairn_dap_client::{Client, ClientError};
use cairn_dap_collector::{Collector, Poll};
use cairn_dap_core::vdaf::VdafInstance;
use cairn_dap_core::{
    AggregateResult, Clock, DpStrategy, HpkeKeypair, Measurement, MockClock, Protocol,
    TaskParameters,
};
use cairn_dap_messages::{
    BatchMode, CollectionJobReq, DapProblemType, Duration, Encode, HpkeConfigId, Interval, Query,
    ReportError, TaskId, Time, media_type,
};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

const NOW: u64 = 1_700_000_000;
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
    http: reqwest::Client,
    _dir: tempfile::TempDir,
    schemas: Vec<String>,
    leader_db: String,
    helper_db: String,
    backend: Backend,
}

fn unique() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "dap_{}_{nanos:x}_{}",
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
        let _ = axum::serve(listener, app).await;
    });
    format!("http://{addr}/")
}

/// A reverse proxy on loopback that serves `upstream` under `prefix` (a path such as
/// `/dap/leader/`, stripped before forwarding, as proxies in front of an aggregator do) and
/// answers 404 for any other path. Returns the proxied base URL.
async fn serve_behind_prefix(upstream: &str, prefix: &'static str) -> String {
    use axum::extract::Request;
    use axum::response::IntoResponse;
    let upstream = upstream.trim_end_matches('/').to_string();
    let http = reqwest::Client::new();
    let app = axum::Router::new().fallback(move |req: Request| {
        let (upstream, http) = (upstream.clone(), http.clone());
        async move {
            let (parts, body) = req.into_parts();
            let path_and_query = parts.uri.path_and_query().map_or("/", |p| p.as_str());
            let Some(rest) = path_and_query.strip_prefix(prefix) else {
                return (axum::http::StatusCode::NOT_FOUND, "outside the prefix").into_response();
            };
            let body = axum::body::to_bytes(body, usize::MAX).await.unwrap();
            let mut headers = parts.headers.clone();
            headers.remove(axum::http::header::HOST);
            let resp = http
                .request(parts.method, format!("{upstream}/{rest}"))
                .headers(headers)
                .body(body)
                .send()
                .await
                .unwrap();
            let (status, headers) = (resp.status(), resp.headers().clone());
            let mut out = resp.bytes().await.unwrap().into_response();
            *out.status_mut() = status;
            *out.headers_mut() = headers;
            out
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://{addr}{prefix}")
}

/// Optional parts of a deployment.
#[derive(Default)]
struct Extras {
    /// The task's differential privacy.
    differential_privacy: Option<DpStrategy>,
    /// Leader and helper each behind a reverse proxy, under `/dap/leader/` and `/dap/helper/`.
    behind_proxy: bool,
    /// The task's protocol (DAP-18 by default).
    protocol: Protocol,
}

fn test_parameters() -> AggregatorParameters {
    AggregatorParameters {
        max_aggregation_job_size: 7,
        ..Default::default()
    }
}

async fn open_aggregator(
    url: &str,
    clock: MockClock,
    role: AggregatorRole,
    params: AggregatorParameters,
) -> Aggregator {
    let key = DatastoreKey::from_bytes(&[5; 32]).unwrap();
    let ds = Datastore::connect(url, key).await.unwrap();
    Aggregator::new(ds, Arc::new(clock), role, params)
        .await
        .unwrap()
}

impl Deployment {
    /// Returns `None` when the backend is PostgreSQL and no URL is configured.
    async fn start(
        backend: Backend,
        vdaf: VdafInstance,
        min_batch_size: u64,
    ) -> Option<Deployment> {
        Self::start_in_mode(backend, vdaf, min_batch_size, BatchMode::TimeInterval, None).await
    }

    async fn start_in_mode(
        backend: Backend,
        vdaf: VdafInstance,
        min_batch_size: u64,
        batch_mode: BatchMode,
        max_batch_size: Option<u64>,
    ) -> Option<Deployment> {
        Self::start_with(
            backend,
            vdaf,
            min_batch_size,
            batch_mode,
            max_batch_size,
            false,
            Extras::default(),
        )
        .await
    }

    /// A time-interval deployment whose helper answers aggregation jobs asynchronously.
    async fn start_async(
        backend: Backend,
        vdaf: VdafInstance,
        min_batch_size: u64,
    ) -> Option<Deployment> {
        Self::start_with(
            backend,
            vdaf,
            min_batch_size,
            BatchMode::TimeInterval,
            None,
            true,
            Extras::default(),
        )
        .await
    }

    async fn start_with(
        backend: Backend,
        vdaf: VdafInstance,
        min_batch_size: u64,
        batch_mode: BatchMode,
        max_batch_size: Option<u64>,
        async_helper: bool,
        extras: Extras,
    ) -> Option<Deployment> {
        let Extras {
            differential_privacy,
            behind_proxy,
            protocol,
        } = extras;
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
        let clock = MockClock::new(NOW);
        let make = |url: String, role| {
            let clock = clock.clone();
            async move {
                let params = AggregatorParameters {
                    async_aggregation: async_helper && role == AggregatorRole::Helper,
                    ..test_parameters()
                };
                open_aggregator(&url, clock, role, params).await
            }
        };
        let (leader_db, helper_db) = (leader_url.clone(), helper_url.clone());
        let leader = make(leader_url, AggregatorRole::Leader).await;
        let helper = make(helper_url, AggregatorRole::Helper).await;
        let mut leader_endpoint = serve(leader.clone()).await;
        let mut helper_endpoint = serve(helper.clone()).await;
        if behind_proxy {
            leader_endpoint = serve_behind_prefix(&leader_endpoint, "/dap/leader/").await;
            helper_endpoint = serve_behind_prefix(&helper_endpoint, "/dap/helper/").await;
        }
        let params = TaskParameters {
            task_id: TaskId::from_bytes(*b"cairn-dap-end-to-end-test-task-1"),
            leader_endpoint,
            helper_endpoint,
            time_precision: PRECISION,
            min_batch_size,
            batch_mode,
            vdaf,
            task_info: "e2e".into(),
            task_interval: None,
            max_batch_size,
            differential_privacy,
            protocol,
        };
        let collector_keys = HpkeKeypair::generate(HpkeConfigId(9));
        let http = reqwest::Client::new();
        // Create the task on both aggregators through the control-plane API.
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
                report_expiry_age: None,
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
            http,
            _dir: dir,
            schemas,
            leader_db,
            helper_db,
            backend,
        })
    }

    fn query(&self) -> Query {
        if self.params.batch_mode == BatchMode::LeaderSelected {
            return Query::LeaderSelected;
        }
        Query::TimeInterval {
            batch_interval: Interval::new(Time(NOW / PRECISION), Duration(1)).unwrap(),
        }
    }

    /// One pass of every leader driver.
    async fn drive(&self) {
        self.leader.create_aggregation_jobs().await.unwrap();
        self.leader.run_aggregation_jobs_once().await.unwrap();
        self.leader.run_collection_jobs_once().await.unwrap();
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

async fn collect_once(d: &Deployment) -> cairn_dap_collector::Collection {
    let job = d.collector.start(d.query()).await.unwrap();
    for _ in 0..5 {
        d.drive().await;
        if let Poll::Ready(c) = d.collector.poll(&job).await.unwrap() {
            return c;
        }
    }
    panic!("collection did not finish");
}

async fn end_to_end(
    backend: Backend,
    vdaf: VdafInstance,
    inputs: &[&str],
    expected: AggregateResult,
) {
    let Some(d) = Deployment::start(backend, vdaf.clone(), 3).await else {
        return;
    };
    let measurements: Vec<Measurement> = inputs
        .iter()
        .map(|m| vdaf.parse_measurement(m).unwrap())
        .collect();
    let errors = d
        .client
        .upload_measurements(&measurements, NOW)
        .await
        .unwrap();
    assert!(errors.status.is_empty(), "{errors:?}");
    let c = collect_once(&d).await;
    assert_eq!(c.aggregate_result, expected);
    assert_eq!(c.report_count, u64::try_from(inputs.len()).unwrap());
    assert_eq!(c.interval.start, Time(NOW / PRECISION));
    d.finish().await;
}

async fn count(b: Backend) {
    let inputs = ["1", "0", "1", "1", "0", "1", "1", "1", "0", "1"];
    end_to_end(
        b,
        VdafInstance::Prio3Count,
        &inputs,
        AggregateResult::Integer(7),
    )
    .await;
}

async fn sum(b: Backend) {
    let inputs = ["10", "200", "0", "255", "3"];
    end_to_end(
        b,
        VdafInstance::Prio3Sum {
            max_measurement: 255,
        },
        &inputs,
        AggregateResult::Integer(468),
    )
    .await;
}

async fn histogram(b: Backend) {
    let inputs = ["0", "3", "3", "1", "3"];
    let vdaf = VdafInstance::Prio3Histogram {
        length: 4,
        chunk_length: 2,
    };
    end_to_end(b, vdaf, &inputs, AggregateResult::Vector(vec![1, 1, 0, 3])).await;
}

async fn sum_vec(b: Backend) {
    let inputs = ["1,2,3", "4,5,6", "7,0,7"];
    let vdaf = VdafInstance::Prio3SumVec {
        length: 3,
        max_measurement: 7,
        chunk_length: 2,
    };
    end_to_end(b, vdaf, &inputs, AggregateResult::Vector(vec![12, 7, 16])).await;
}

async fn multihot_count_vec(b: Backend) {
    let inputs = ["1,0,1,0", "0,0,1,1", "1,0,0,0"];
    let vdaf = VdafInstance::Prio3MultihotCountVec {
        length: 4,
        chunk_length: 2,
        max_weight: 2,
    };
    end_to_end(b, vdaf, &inputs, AggregateResult::Vector(vec![2, 0, 2, 1])).await;
}

async fn problem_of(resp: reqwest::Response) -> (u16, Option<String>) {
    let status = resp.status().as_u16();
    let v: serde_json::Value = resp.json().await.unwrap_or_default();
    (
        status,
        v.get("type").and_then(|t| t.as_str()).map(str::to_string),
    )
}

async fn bad_input_is_refused_and_nothing_stored(b: Backend) {
    let Some(d) = Deployment::start(b, VdafInstance::Prio3Count, 1).await else {
        return;
    };
    let tid = d.params.task_id;
    let reports_url = format!("{}tasks/{tid}/reports", d.params.leader_endpoint);
    let good = d
        .client
        .prepare_report(&Measurement::Count(true), NOW)
        .unwrap();
    let good_bytes = cairn_dap_messages::UploadRequest {
        reports: vec![good.clone()],
    }
    .get_encoded()
    .unwrap();

    // Garbage and truncated bodies: invalidMessage, 400.
    for body in [vec![0xffu8; 7], good_bytes[..good_bytes.len() - 3].to_vec()] {
        let resp = d.http.post(&reports_url).body(body).send().await.unwrap();
        assert_eq!(
            problem_of(resp).await,
            (400, Some(DapProblemType::InvalidMessage.urn()))
        );
    }
    // Unknown task: unrecognizedTask, 404.
    let other = TaskId::from_bytes([1; 32]);
    let resp = d
        .http
        .post(format!("{}tasks/{other}/reports", d.params.leader_endpoint))
        .body(good_bytes.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(
        problem_of(resp).await,
        (404, Some(DapProblemType::UnrecognizedTask.urn()))
    );
    // Wrong HPKE config ID: outdated_config; undecryptable: hpke_decrypt_error; from the far
    // future: report_too_early.
    let mut wrong_config = d
        .client
        .prepare_report(&Measurement::Count(true), NOW)
        .unwrap();
    wrong_config.leader_encrypted_input_share.config_id = HpkeConfigId(77);
    let mut tampered = d
        .client
        .prepare_report(&Measurement::Count(true), NOW)
        .unwrap();
    tampered.leader_encrypted_input_share.payload[0] ^= 1;
    let future = d
        .client
        .prepare_report(&Measurement::Count(true), NOW + 86_400)
        .unwrap();
    let errors = d
        .client
        .upload(vec![wrong_config, tampered, future])
        .await
        .unwrap();
    let got: Vec<ReportError> = errors.status.iter().map(|s| s.error).collect();
    assert_eq!(
        got,
        [
            ReportError::OutdatedConfig,
            ReportError::HpkeDecryptError,
            ReportError::ReportTooEarly
        ]
    );
    assert_eq!(
        d.leader
            .datastore()
            .count_client_reports(&tid)
            .await
            .unwrap(),
        0,
        "nothing stored"
    );

    // A good report is stored once; its replay is refused.
    assert!(
        d.client
            .upload(vec![good.clone()])
            .await
            .unwrap()
            .status
            .is_empty()
    );
    let replay = d.client.upload(vec![good.clone()]).await.unwrap();
    assert_eq!(replay.status[0].error, ReportError::ReportReplayed);
    assert_eq!(
        d.leader
            .datastore()
            .count_client_reports(&tid)
            .await
            .unwrap(),
        1
    );
    let counters = d
        .leader
        .datastore()
        .get_upload_counters(&tid)
        .await
        .unwrap();
    for (reason, n) in [
        ("accepted", 1),
        ("outdated_config", 1),
        ("hpke_decrypt_error", 1),
        ("report_too_early", 1),
        ("report_replayed", 1),
    ] {
        assert!(
            counters.contains(&(reason.to_string(), n)),
            "{reason}: {counters:?}"
        );
    }

    // One request repeating a new report and an old one: the first copy is stored, the
    // second copy and the old report are replays. Then a request larger than one multi-row
    // insert (500 rows): all stored.
    let fresh = d
        .client
        .prepare_report(&Measurement::Count(true), NOW)
        .unwrap();
    let errors = d
        .client
        .upload(vec![fresh.clone(), fresh.clone(), good.clone()])
        .await
        .unwrap();
    let refused: Vec<_> = errors.status.iter().map(|s| (s.id, s.error)).collect();
    assert_eq!(
        refused,
        [
            (fresh.metadata.id, ReportError::ReportReplayed),
            (good.metadata.id, ReportError::ReportReplayed)
        ]
    );
    let many: Vec<_> = (0..1100)
        .map(|_| {
            d.client
                .prepare_report(&Measurement::Count(false), NOW)
                .unwrap()
        })
        .collect();
    assert!(d.client.upload(many).await.unwrap().status.is_empty());
    assert_eq!(
        d.leader
            .datastore()
            .count_client_reports(&tid)
            .await
            .unwrap(),
        1102
    );

    // Wrong bearer tokens: the collector at the leader, the leader at the helper.
    let coll_url = format!("{}tasks/{tid}/collection_jobs", d.params.leader_endpoint);
    let body = CollectionJobReq {
        query: d.query(),
        agg_param: vec![],
        extensions: vec![],
    }
    .get_encoded()
    .unwrap();
    for token in [None, Some("wrong")] {
        let mut req = d.http.post(&coll_url).body(body.clone());
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        assert_eq!(req.send().await.unwrap().status(), 403);
    }
    let agg_url = format!("{}tasks/{tid}/aggregation_jobs", d.params.helper_endpoint);
    let resp = d
        .http
        .post(&agg_url)
        .bearer_auth("wrong")
        .body(vec![0u8; 8])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    // The right token with a garbage job: invalidMessage.
    let resp = d
        .http
        .post(&agg_url)
        .bearer_auth(AGG_TOKEN)
        .body(vec![0u8; 8])
        .send()
        .await
        .unwrap();
    assert_eq!(
        problem_of(resp).await,
        (400, Some(DapProblemType::InvalidMessage.urn()))
    );
    // Control plane without its token.
    let resp = d
        .http
        .post(format!("{}control/tasks", d.params.leader_endpoint))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    d.finish().await;
}

async fn collection_waits_for_min_batch_size_then_collects_once(b: Backend) {
    let Some(d) = Deployment::start(
        b,
        VdafInstance::Prio3Sum {
            max_measurement: 100,
        },
        5,
    )
    .await
    else {
        return;
    };
    let ms: Vec<_> = [1u64, 2, 3]
        .iter()
        .map(|v| Measurement::Integer(*v))
        .collect();
    d.client.upload_measurements(&ms, NOW).await.unwrap();
    let job = d.collector.start(d.query()).await.unwrap();
    // Before the drivers run, the leader says reports are still being aggregated.
    assert_eq!(
        d.collector.poll(&job).await.unwrap(),
        Poll::Pending {
            reason: "aggregating".into(),
            report_count: 0
        }
    );
    d.drive().await;
    d.drive().await;
    // Three aggregated, five needed: a specific, documented state — not an error.
    assert_eq!(
        d.collector.poll(&job).await.unwrap(),
        Poll::Pending {
            reason: "insufficient-reports".into(),
            report_count: 3
        }
    );
    let ms: Vec<_> = [10u64, 20]
        .iter()
        .map(|v| Measurement::Integer(*v))
        .collect();
    d.client.upload_measurements(&ms, NOW).await.unwrap();
    d.clock.advance(2);
    let mut result = None;
    for _ in 0..5 {
        d.drive().await;
        d.clock.advance(2);
        if let Poll::Ready(c) = d.collector.poll(&job).await.unwrap() {
            result = Some(c);
            break;
        }
    }
    let c = result.expect("collection finished");
    assert_eq!(
        (c.report_count, c.aggregate_result),
        (5, AggregateResult::Integer(36))
    );
    // Polling again returns the same collection; re-posting the same request finds the job.
    assert!(matches!(
        d.collector.poll(&job).await.unwrap(),
        Poll::Ready(_)
    ));
    let again = d.collector.start(d.query()).await.unwrap();
    assert_eq!(again.url, job.url);
    // A different query overlapping the collected batch: batchOverlap.
    let wider = Query::TimeInterval {
        batch_interval: Interval::new(Time(NOW / PRECISION - 1), Duration(2)).unwrap(),
    };
    match d.collector.start(wider).await {
        Err(cairn_dap_collector::CollectorError::Client(ClientError::Status {
            status,
            problem,
        })) => {
            assert_eq!((status, problem), (400, Some(DapProblemType::BatchOverlap)));
        }
        other => panic!("expected batchOverlap, got {other:?}"),
    }
    // A late report for the collected batch is refused as collected (DAP-18 `batch_collected`).
    let late = d
        .client
        .upload_measurements(&[Measurement::Integer(1)], NOW)
        .await
        .unwrap();
    assert_eq!(late.status[0].error, ReportError::BatchCollected);
    d.finish().await;
}

async fn crashed_driver_is_taken_over_without_double_counting(b: Backend) {
    let Some(d) = Deployment::start(
        b,
        VdafInstance::Prio3Sum {
            max_measurement: 100,
        },
        1,
    )
    .await
    else {
        return;
    };
    let ms: Vec<_> = (1..=5u64).map(Measurement::Integer).collect();
    d.client.upload_measurements(&ms, NOW).await.unwrap();
    assert_eq!(d.leader.create_aggregation_jobs().await.unwrap(), 1);
    // Driver A takes the job and "crashes" without finishing.
    let crashed = d.leader.acquire_aggregation_jobs(10).await.unwrap();
    assert_eq!(crashed.len(), 1);
    // While A's lease is live, nobody else gets the job.
    assert!(
        d.leader
            .acquire_aggregation_jobs(10)
            .await
            .unwrap()
            .is_empty()
    );
    // The lease expires; driver B takes over and finishes.
    d.clock.advance(61);
    assert_eq!(d.leader.run_aggregation_jobs_once().await.unwrap(), 1);
    // A wakes up and replays its step: the helper answers from its stored job (no second
    // commit there), and A's commit fails because the lease is no longer A's.
    let err = d
        .leader
        .step_aggregation_job(&crashed[0])
        .await
        .unwrap_err();
    assert!(err.to_string().contains("lease lost"), "{err}");
    let c = collect_once(&d).await;
    assert_eq!(
        (c.report_count, c.aggregate_result),
        (5, AggregateResult::Integer(15))
    );
    d.finish().await;
}

/// Leader-selected Prio3Count: seven reports become a batch of five and a batch of two;
/// collecting twice yields both, and together they sum to the plain measurements.
async fn leader_selected_end_to_end(b: Backend) {
    let Some(d) = Deployment::start_in_mode(
        b,
        VdafInstance::Prio3Count,
        2,
        BatchMode::LeaderSelected,
        Some(5),
    )
    .await
    else {
        return;
    };
    let inputs = ["1", "0", "1", "1", "1", "1", "0"];
    let ms: Vec<_> = inputs
        .iter()
        .map(|m| VdafInstance::Prio3Count.parse_measurement(m).unwrap())
        .collect();
    let errors = d.client.upload_measurements(&ms, NOW).await.unwrap();
    assert!(errors.status.is_empty(), "{errors:?}");
    let (c1, c2) = (collect_once(&d).await, collect_once(&d).await);
    assert_eq!((c1.report_count, c2.report_count), (5, 2));
    let total = match (c1.aggregate_result, c2.aggregate_result) {
        (AggregateResult::Integer(a), AggregateResult::Integer(b)) => a + b,
        other => panic!("{other:?}"),
    };
    assert_eq!(total, 5);
    d.finish().await;
}

/// Reports fill the leader's batches oldest first, up to `max_batch_size`; each collection
/// takes the next complete batch (never one twice), a batch below `min_batch_size` is a
/// documented waiting state, and the sums equal the plain measurements batch by batch.
async fn leader_selected_batches_fill_up_and_are_collected_once_each(b: Backend) {
    let Some(d) = Deployment::start_in_mode(
        b,
        VdafInstance::Prio3Sum {
            max_measurement: 1000,
        },
        3,
        BatchMode::LeaderSelected,
        Some(4),
    )
    .await
    else {
        return;
    };
    // Three waves an hour apart, so the batch order (oldest first) is known: four 1s, four
    // 10s, two 100s.
    let hour = PRECISION;
    for (value, n, age) in [(1u64, 4, 3 * hour), (10, 4, 2 * hour), (100, 2, hour)] {
        let ms = vec![Measurement::Integer(value); n];
        let errors = d.client.upload_measurements(&ms, NOW - age).await.unwrap();
        assert!(errors.status.is_empty(), "{errors:?}");
    }
    let c1 = collect_once(&d).await;
    assert_eq!(
        (c1.report_count, c1.aggregate_result),
        (4, AggregateResult::Integer(4))
    );
    assert_eq!(c1.interval.start, Time((NOW - 3 * hour) / PRECISION));
    let c2 = collect_once(&d).await;
    assert_eq!(
        (c2.report_count, c2.aggregate_result),
        (4, AggregateResult::Integer(40))
    );
    // The third batch holds two reports, fewer than min_batch_size.
    let job = d.collector.start(Query::LeaderSelected).await.unwrap();
    d.drive().await;
    d.drive().await;
    assert_eq!(
        d.collector.poll(&job).await.unwrap(),
        Poll::Pending {
            reason: "insufficient-reports".into(),
            report_count: 2
        }
    );
    // One more report joins the open batch and makes it collectable.
    d.client
        .upload_measurements(&[Measurement::Integer(100)], NOW)
        .await
        .unwrap();
    let mut result = None;
    for _ in 0..5 {
        d.clock.advance(2);
        d.drive().await;
        if let Poll::Ready(c) = d.collector.poll(&job).await.unwrap() {
            result = Some(c);
            break;
        }
    }
    let c3 = result.expect("third batch collected");
    assert_eq!(
        (c3.report_count, c3.aggregate_result),
        (3, AggregateResult::Integer(300))
    );
    // Nothing is left: a fourth collection waits rather than re-collecting a batch.
    let job = d.collector.start(Query::LeaderSelected).await.unwrap();
    d.clock.advance(2);
    d.drive().await;
    assert_eq!(
        d.collector.poll(&job).await.unwrap(),
        Poll::Pending {
            reason: "insufficient-reports".into(),
            report_count: 0
        }
    );
    // A time-interval query on a leader-selected task is refused.
    let ti = Query::TimeInterval {
        batch_interval: Interval::new(Time(NOW / PRECISION), Duration(1)).unwrap(),
    };
    match d.collector.start(ti).await {
        Err(cairn_dap_collector::CollectorError::Client(ClientError::Status {
            status,
            problem,
        })) => assert_eq!(
            (status, problem),
            (400, Some(DapProblemType::InvalidMessage))
        ),
        other => panic!("expected invalidMessage, got {other:?}"),
    }
    d.finish().await;
}

/// POSTs an encoded `CollectionJobReq` to the leader as the collector; returns the status and
/// the `Location` header.
async fn post_collection_job(d: &Deployment, req: &CollectionJobReq) -> (u16, String) {
    let resp = d
        .http
        .post(collection_jobs_url(d))
        .header("content-type", media_type::COLLECTION_JOB_REQ)
        .bearer_auth(COLLECTOR_TOKEN)
        .body(req.get_encoded().unwrap())
        .send()
        .await
        .unwrap();
    let location = resp
        .headers()
        .get("location")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    (resp.status().as_u16(), location)
}

fn collection_jobs_url(d: &Deployment) -> String {
    format!(
        "{}tasks/{}/collection_jobs",
        d.params.leader_endpoint, d.params.task_id
    )
}

/// DAP-18 §4.6.1: a byte-identical leader-selected `CollectionJobReq` names the existing job —
/// concurrent duplicates included, and after the job finished — rather than starting a new
/// job on the next batch. Once the collector has deleted the collected job, the same request
/// asks for the next batch.
async fn identical_leader_selected_collection_requests_name_one_job(b: Backend) {
    let Some(d) = Deployment::start_in_mode(
        b,
        VdafInstance::Prio3Count,
        2,
        BatchMode::LeaderSelected,
        Some(3),
    )
    .await
    else {
        return;
    };
    let ms: Vec<_> = ["1", "1", "0", "1", "1"]
        .iter()
        .map(|m| VdafInstance::Prio3Count.parse_measurement(m).unwrap())
        .collect();
    let errors = d.client.upload_measurements(&ms, NOW).await.unwrap();
    assert!(errors.status.is_empty(), "{errors:?}");
    let req = CollectionJobReq {
        query: Query::LeaderSelected,
        agg_param: Vec::new(),
        extensions: Vec::new(),
    };
    // Four identical requests, at once: one job.
    let (a, b, c, e) = tokio::join!(
        post_collection_job(&d, &req),
        post_collection_job(&d, &req),
        post_collection_job(&d, &req),
        post_collection_job(&d, &req),
    );
    let answers = [a, b, c, e];
    let first = answers[0].1.clone();
    assert!(!first.is_empty());
    assert!(answers.iter().all(|(_, location)| *location == first));
    let mut statuses: Vec<u16> = answers.iter().map(|(status, _)| *status).collect();
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 200, 200, 201], "one creates the job");
    for _ in 0..3 {
        d.drive().await;
    }
    // Finished, still the same job; its result is the first batch (three reports).
    assert_eq!(post_collection_job(&d, &req).await, (200, first.clone()));
    let job = cairn_dap_collector::CollectionJob {
        url: reqwest::Url::parse(&collection_jobs_url(&d))
            .unwrap()
            .join(&first)
            .unwrap()
            .to_string(),
        request: req.clone(),
    };
    let Poll::Ready(c1) = d.collector.poll(&job).await.unwrap() else {
        panic!("the first batch is ready");
    };
    assert_eq!(c1.report_count, 3);
    // The collector deleted the collected job; the same request now names a new job, which
    // gets the other batch.
    let (status, second) = post_collection_job(&d, &req).await;
    assert_eq!(status, 201);
    assert_ne!(second, first);
    let resp = d
        .http
        .get(&job.url)
        .bearer_auth(COLLECTOR_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    let c2 = collect_once(&d).await;
    assert_eq!(c2.report_count, 2);
    let total = match (c1.aggregate_result, c2.aggregate_result) {
        (AggregateResult::Integer(a), AggregateResult::Integer(b)) => a + b,
        other => panic!("{other:?}"),
    };
    assert_eq!(total, 4);
    d.finish().await;
}

/// A time-interval job the collector deleted before it finished does not block its batch: the
/// identical request starts it again under the same `Location` (which answered 404 while
/// deleted) and it collects. Once a finished job is deleted, the identical request meets
/// `batchOverlap`: the batch was collected.
async fn a_deleted_time_interval_job_is_started_again_by_the_identical_request(b: Backend) {
    let Some(d) = Deployment::start(b, VdafInstance::Prio3Count, 3).await else {
        return;
    };
    let ms: Vec<_> = ["1", "1", "0"]
        .iter()
        .map(|m| VdafInstance::Prio3Count.parse_measurement(m).unwrap())
        .collect();
    let errors = d.client.upload_measurements(&ms, NOW).await.unwrap();
    assert!(errors.status.is_empty(), "{errors:?}");
    let req = CollectionJobReq {
        query: d.query(),
        agg_param: Vec::new(),
        extensions: Vec::new(),
    };
    let (status, location) = post_collection_job(&d, &req).await;
    assert_eq!(status, 201);
    let job = cairn_dap_collector::CollectionJob {
        url: reqwest::Url::parse(&collection_jobs_url(&d))
            .unwrap()
            .join(&location)
            .unwrap()
            .to_string(),
        request: req.clone(),
    };
    let get_status = || async {
        d.http
            .get(&job.url)
            .bearer_auth(COLLECTOR_TOKEN)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    };
    d.collector.delete(&job).await.unwrap();
    assert_eq!(get_status().await, 404);
    assert_eq!(post_collection_job(&d, &req).await, (201, location.clone()));
    assert_eq!(get_status().await, 202);
    let mut result = None;
    for _ in 0..5 {
        d.drive().await;
        if let Poll::Ready(c) = d.collector.poll(&job).await.unwrap() {
            result = Some(c);
            break;
        }
    }
    let c = result.expect("collected after the restart");
    assert_eq!(
        (c.report_count, c.aggregate_result),
        (3, AggregateResult::Integer(2))
    );
    d.collector.delete(&job).await.unwrap();
    let resp = d
        .http
        .post(collection_jobs_url(&d))
        .header("content-type", media_type::COLLECTION_JOB_REQ)
        .bearer_auth(COLLECTOR_TOKEN)
        .body(req.get_encoded().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(
        problem_of(resp).await,
        (400, Some(DapProblemType::BatchOverlap.urn()))
    );
    d.finish().await;
}

/// Marks every collection job of the leader failed with `invalidBatchSize`, as a leader that
/// gave up on them would (DAP-18 §4.6.1).
async fn fail_collection_jobs(d: &Deployment) {
    const SQL: &str = "UPDATE collection_jobs SET state = 'failed', error = 'invalidBatchSize'";
    match d.backend {
        Backend::Sqlite => {
            let pool = sqlx::SqlitePool::connect(&d.leader_db).await.unwrap();
            sqlx::query(SQL).execute(&pool).await.unwrap();
            pool.close().await;
        }
        Backend::Postgres => {
            let pool = sqlx::PgPool::connect(&d.leader_db).await.unwrap();
            sqlx::query(SQL).execute(&pool).await.unwrap();
            pool.close().await;
        }
    }
}

/// A failed collection job does not answer the identical request forever: DAP-18 §4.6.1 lets
/// the collector retry it. A time-interval job starts again under its ID and collects; a
/// leader-selected request gets a new job.
async fn a_failed_collection_job_is_retried_by_the_identical_request(b: Backend) {
    for mode in [BatchMode::TimeInterval, BatchMode::LeaderSelected] {
        let Some(d) = Deployment::start_in_mode(b, VdafInstance::Prio3Count, 2, mode, None).await
        else {
            return;
        };
        let ms = vec![Measurement::Count(true); 2];
        let errors = d.client.upload_measurements(&ms, NOW).await.unwrap();
        assert!(errors.status.is_empty(), "{errors:?}");
        let req = CollectionJobReq {
            query: d.query(),
            agg_param: Vec::new(),
            extensions: Vec::new(),
        };
        let (status, first) = post_collection_job(&d, &req).await;
        assert_eq!(status, 201);
        fail_collection_jobs(&d).await;
        let job = |location: &str| cairn_dap_collector::CollectionJob {
            url: reqwest::Url::parse(&collection_jobs_url(&d))
                .unwrap()
                .join(location)
                .unwrap()
                .to_string(),
            request: req.clone(),
        };
        match d.collector.poll(&job(&first)).await {
            Err(cairn_dap_collector::CollectorError::Client(ClientError::Status {
                problem,
                ..
            })) => assert_eq!(problem, Some(DapProblemType::InvalidBatchSize)),
            other => panic!("expected the failure, got {other:?}"),
        }
        let (status, second) = post_collection_job(&d, &req).await;
        assert_eq!(status, 201, "{mode:?}");
        assert_eq!(second == first, mode == BatchMode::TimeInterval, "{mode:?}");
        let mut result = None;
        for _ in 0..5 {
            d.drive().await;
            if let Poll::Ready(c) = d.collector.poll(&job(&second)).await.unwrap() {
                result = Some(c);
                break;
            }
        }
        let c = result.expect("the retry collects");
        assert_eq!(
            (c.report_count, c.aggregate_result),
            (2, AggregateResult::Integer(2))
        );
        d.finish().await;
    }
}

/// Leader and helper each behind a reverse proxy that mounts them under a path prefix (and
/// strips it): the upload, the leader's polling of the asynchronous helper, the collection
/// job and its result all go through the prefix. The leader's `Location` for a collection
/// job, resolved as RFC 3986 says against the request URL, names the job under the prefix.
async fn leader_and_helper_under_a_path_prefix(b: Backend) {
    let Some(d) = Deployment::start_with(
        b,
        VdafInstance::Prio3Count,
        3,
        BatchMode::TimeInterval,
        None,
        true,
        Extras {
            behind_proxy: true,
            ..Extras::default()
        },
    )
    .await
    else {
        return;
    };
    assert!(d.params.leader_endpoint.ends_with("/dap/leader/"));
    assert!(d.params.helper_endpoint.ends_with("/dap/helper/"));
    let ms: Vec<_> = ["1", "0", "1", "1"]
        .iter()
        .map(|m| VdafInstance::Prio3Count.parse_measurement(m).unwrap())
        .collect();
    let errors = d.client.upload_measurements(&ms, NOW).await.unwrap();
    assert!(errors.status.is_empty(), "{errors:?}");
    let req = CollectionJobReq {
        query: d.query(),
        agg_param: Vec::new(),
        extensions: Vec::new(),
    };
    let (status, location) = post_collection_job(&d, &req).await;
    assert_eq!(status, 201);
    let resolved = reqwest::Url::parse(&collection_jobs_url(&d))
        .unwrap()
        .join(&location)
        .unwrap();
    assert!(
        resolved.path().starts_with("/dap/leader/tasks/"),
        "{location} resolves to {resolved}"
    );
    let resp = d
        .http
        .get(resolved)
        .bearer_auth(COLLECTOR_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    // The async helper defers; the leader polls it through the prefix until it answers.
    let job = d.collector.start(d.query()).await.unwrap();
    let mut result = None;
    for _ in 0..8 {
        d.clock.advance(2);
        drive_helper(&d).await;
        d.drive().await;
        if let Poll::Ready(c) = d.collector.poll(&job).await.unwrap() {
            result = Some(c);
            break;
        }
    }
    let c = result.expect("collected through the proxies");
    assert_eq!(
        (c.report_count, c.aggregate_result),
        (4, AggregateResult::Integer(3))
    );
    d.finish().await;
}

/// What a DAP-09 client (`janus_client` 0.7, `@divviup/dap` 0.9) sends first: `GET
/// /hpke_config?task_id=` with DAP-09's `Accept` gets the same configs under DAP-09's media type,
/// readable from any origin; an unknown or malformed task ID is `unrecognizedTask`. Its upload
/// — `PUT` of an `application/dap-report`, or that body `POST`ed — is refused with a problem
/// document naming the task's protocol, and nothing is stored.
async fn dap09_clients_get_configs_and_a_clear_refusal(b: Backend) {
    use cairn_dap_messages::{Decode, HpkeCiphertext, HpkeConfigList, ReportId, dap09};
    let Some(d) = Deployment::start(b, VdafInstance::Prio3Count, 1).await else {
        return;
    };
    let tid = d.params.task_id;
    let base = &d.params.leader_endpoint;
    let plain = d
        .http
        .get(format!("{base}hpke_config"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        plain.headers()["content-type"],
        media_type::HPKE_CONFIG_LIST
    );
    let plain = plain.bytes().await.unwrap();
    let resp = d
        .http
        .get(format!("{base}hpke_config?task_id={tid}"))
        .header("accept", dap09::media_type::HPKE_CONFIG_LIST)
        .header("origin", "https://app.example")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()["content-type"],
        dap09::media_type::HPKE_CONFIG_LIST
    );
    assert_eq!(resp.headers()["access-control-allow-origin"], "*");
    let body = resp.bytes().await.unwrap();
    assert_eq!(body, plain);
    let configs = HpkeConfigList::get_decoded(&body).unwrap();
    for task in [TaskId::from_bytes([1; 32]).to_string(), "not-a-task".into()] {
        let resp = d
            .http
            .get(format!("{base}hpke_config?task_id={task}"))
            .header("accept", dap09::media_type::HPKE_CONFIG_LIST)
            .send()
            .await
            .unwrap();
        assert_eq!(
            problem_of(resp).await,
            (404, Some(DapProblemType::UnrecognizedTask.urn())),
            "{task}"
        );
    }

    let report = dap09::Report {
        metadata: dap09::ReportMetadata {
            id: ReportId::from_bytes([4; 16]),
            time_seconds: NOW / PRECISION * PRECISION,
        },
        public_share: Vec::new(),
        leader_encrypted_input_share: HpkeCiphertext {
            config_id: configs.0[0].id,
            enc: vec![1; 32],
            payload: vec![2; 40],
        },
        helper_encrypted_input_share: HpkeCiphertext {
            config_id: configs.0[0].id,
            enc: vec![3; 32],
            payload: vec![4; 40],
        },
    }
    .get_encoded()
    .unwrap();
    let reports = |task: &TaskId| format!("{base}tasks/{task}/reports");
    for req in [d.http.put(reports(&tid)), d.http.post(reports(&tid))] {
        let resp = req
            .header("content-type", dap09::media_type::REPORT)
            .body(report.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 400);
        let problem: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(problem["type"], DapProblemType::InvalidMessage.urn());
        assert!(
            problem["detail"].as_str().unwrap().contains("dap-18"),
            "{problem}"
        );
    }
    let resp = d
        .http
        .put(reports(&TaskId::from_bytes([1; 32])))
        .header("content-type", dap09::media_type::REPORT)
        .body(report)
        .send()
        .await
        .unwrap();
    assert_eq!(
        problem_of(resp).await,
        (404, Some(DapProblemType::UnrecognizedTask.urn()))
    );
    // A DAP-09 aggregation job for the DAP-18 task is refused by the helper.
    let helper = &d.params.helper_endpoint;
    let init = dap09::AggregationJobInitReq {
        agg_param: Vec::new(),
        batch_id: None,
        prepare_inits: Vec::new(),
    };
    let resp = d
        .http
        .put(format!(
            "{helper}tasks/{tid}/aggregation_jobs/AAAAAAAAAAAAAAAAAAAAAA"
        ))
        .header("content-type", dap09::media_type::AGGREGATION_JOB_INIT_REQ)
        .bearer_auth(AGG_TOKEN)
        .body(init.get_encoded().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let problem: serde_json::Value = resp.json().await.unwrap();
    assert!(
        problem["detail"].as_str().unwrap().contains("dap-18"),
        "{problem}"
    );
    let ds = d.leader.datastore();
    assert_eq!(ds.count_client_reports(&tid).await.unwrap(), 0);
    assert!(
        ds.get_upload_counters(&tid)
            .await
            .unwrap()
            .iter()
            .all(|(_, n)| *n == 0),
        "nothing counted"
    );
    d.finish().await;
}

/// A `dap-09` task end to end with Cairn's own client and collector speaking DAP-09 (one
/// report per `PUT`, collection jobs `PUT` at the collector's ID and polled with `POST`,
/// VDAF-08 with DAP-09's labels and AADs): every VDAF in both batch modes gives the plain sum.
/// DAP-18 messages to the task are refused with a problem naming `dap-09`, and store nothing.
async fn dap09_task_end_to_end(b: Backend) {
    let cases: [(VdafInstance, &[&str], AggregateResult); 5] = [
        (
            VdafInstance::Prio3Count,
            &["1", "0", "1"],
            AggregateResult::Integer(2),
        ),
        (
            VdafInstance::Prio3Sum {
                max_measurement: 255,
            },
            &["10", "200", "255"],
            AggregateResult::Integer(465),
        ),
        (
            VdafInstance::Prio3Histogram {
                length: 4,
                chunk_length: 2,
            },
            &["0", "3", "3"],
            AggregateResult::Vector(vec![1, 0, 0, 2]),
        ),
        (
            VdafInstance::Prio3SumVec {
                length: 3,
                max_measurement: 7,
                chunk_length: 2,
            },
            &["1,2,3", "4,5,6", "7,0,7"],
            AggregateResult::Vector(vec![12, 7, 16]),
        ),
        (
            VdafInstance::Prio3MultihotCountVec {
                length: 4,
                chunk_length: 2,
                max_weight: 2,
            },
            &["1,0,1,0", "0,0,1,1", "1,0,0,0"],
            AggregateResult::Vector(vec![2, 0, 2, 1]),
        ),
    ];
    for mode in [BatchMode::TimeInterval, BatchMode::LeaderSelected] {
        for (vdaf, inputs, expected) in &cases {
            let Some(d) = Deployment::start_with(
                b,
                vdaf.clone(),
                3,
                mode,
                None,
                false,
                Extras {
                    protocol: Protocol::Dap09,
                    ..Extras::default()
                },
            )
            .await
            else {
                return;
            };
            let measurements: Vec<Measurement> = inputs
                .iter()
                .map(|m| vdaf.parse_measurement(m).unwrap())
                .collect();
            let errors = d
                .client
                .upload_measurements(&measurements, NOW)
                .await
                .unwrap();
            assert!(errors.status.is_empty());
            let c = collect_once(&d).await;
            assert_eq!(&c.aggregate_result, expected, "{vdaf:?} {mode:?}");
            assert_eq!(c.report_count, 3);
            assert_eq!(c.interval.start, Time(NOW / PRECISION));
            d.finish().await;
        }
    }

    // The other protocol's messages are refused before anything is stored.
    let Some(d) = Deployment::start_with(
        b,
        VdafInstance::Prio3Count,
        1,
        BatchMode::TimeInterval,
        None,
        false,
        Extras {
            protocol: Protocol::Dap09,
            ..Extras::default()
        },
    )
    .await
    else {
        return;
    };
    let tid = d.params.task_id;
    let base = &d.params.leader_endpoint;
    let mut dap18 = d.params.clone();
    dap18.protocol = Protocol::Dap18;
    let dap18_client = Client::new(dap18, d.http.clone()).await.unwrap();
    let report = dap18_client
        .prepare_report(&Measurement::Count(true), NOW)
        .unwrap();
    let resp = d
        .http
        .post(format!("{base}tasks/{tid}/reports"))
        .header("content-type", media_type::UPLOAD_REQ)
        .body(
            cairn_dap_messages::UploadRequest {
                reports: vec![report],
            }
            .get_encoded()
            .unwrap(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    // A page of any origin may read the upload route's answers, problems included.
    assert_eq!(resp.headers()["access-control-allow-origin"], "*");
    let problem: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(problem["type"], DapProblemType::InvalidMessage.urn());
    assert!(
        problem["detail"].as_str().unwrap().contains("dap-09"),
        "{problem}"
    );
    // The CORS preflight a browser sends before `@divviup/dap` uploads from a page.
    let resp = d
        .http
        .request(
            reqwest::Method::OPTIONS,
            format!("{base}tasks/{tid}/reports"),
        )
        .header("origin", "https://app.example")
        .header("access-control-request-method", "PUT")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    assert_eq!(resp.headers()["access-control-allow-origin"], "*");
    assert!(
        resp.headers()["access-control-allow-methods"]
            .to_str()
            .unwrap()
            .contains("PUT")
    );
    let resp = d
        .http
        .post(collection_jobs_url(&d))
        .header("content-type", media_type::COLLECTION_JOB_REQ)
        .bearer_auth(COLLECTOR_TOKEN)
        .body(
            CollectionJobReq {
                query: d.query(),
                agg_param: Vec::new(),
                extensions: Vec::new(),
            }
            .get_encoded()
            .unwrap(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let problem: serde_json::Value = resp.json().await.unwrap();
    assert!(
        problem["detail"].as_str().unwrap().contains("dap-09"),
        "{problem}"
    );
    // A DAP-09 collection request that is not one is refused too.
    let resp = d
        .http
        .put(format!(
            "{base}tasks/{tid}/collection_jobs/AAAAAAAAAAAAAAAAAAAAAA"
        ))
        .bearer_auth(COLLECTOR_TOKEN)
        .body(vec![9u8, 9, 9])
        .send()
        .await
        .unwrap();
    assert_eq!(
        problem_of(resp).await,
        (400, Some(DapProblemType::InvalidMessage.urn()))
    );
    // Between the aggregators too: the helper refuses a DAP-18 aggregation job or aggregate
    // share for the dap-09 task.
    let helper = &d.params.helper_endpoint;
    let init = cairn_dap_messages::AggregationJobInitReq {
        verification_key_id: 0,
        agg_param: Vec::new(),
        extensions: Vec::new(),
        verify_inits: Vec::new(),
    };
    let resp = d
        .http
        .post(format!("{helper}tasks/{tid}/aggregation_jobs"))
        .header("content-type", media_type::AGGREGATION_JOB_INIT_REQ)
        .bearer_auth(AGG_TOKEN)
        .body(init.get_encoded().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let problem: serde_json::Value = resp.json().await.unwrap();
    assert!(
        problem["detail"].as_str().unwrap().contains("dap-09"),
        "{problem}"
    );
    let ds = d.leader.datastore();
    assert_eq!(ds.count_client_reports(&tid).await.unwrap(), 0);
    d.finish().await;
}

/// The helper of a leader-selected task refuses an aggregation job without the
/// `leader_selected_batch_id` extension (DAP-18 §5.2.2) and one with an unknown extension.
async fn leader_selected_helper_requires_the_batch_id_extension(b: Backend) {
    let Some(d) = Deployment::start_in_mode(
        b,
        VdafInstance::Prio3Count,
        1,
        BatchMode::LeaderSelected,
        None,
    )
    .await
    else {
        return;
    };
    use cairn_dap_messages::{AggregationJobInitReq, Extension, media_type};
    let url = format!(
        "{}tasks/{}/aggregation_jobs",
        d.params.helper_endpoint, d.params.task_id
    );
    let cases = [
        (vec![], DapProblemType::InvalidMessage),
        (
            vec![Extension {
                extension_type: Extension::LEADER_SELECTED_BATCH_ID,
                extension_data: vec![7; 31],
            }],
            DapProblemType::InvalidMessage,
        ),
        (
            vec![Extension {
                extension_type: 0x7777,
                extension_data: vec![],
            }],
            DapProblemType::UnsupportedExtension,
        ),
    ];
    for (extensions, expected) in cases {
        let body = AggregationJobInitReq {
            verification_key_id: 0,
            agg_param: vec![],
            extensions,
            verify_inits: vec![],
        }
        .get_encoded()
        .unwrap();
        let resp = d
            .http
            .post(&url)
            .bearer_auth(AGG_TOKEN)
            .header("content-type", media_type::AGGREGATION_JOB_INIT_REQ)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(
            problem_of(resp).await,
            (400, Some(expected.urn().to_string()))
        );
    }
    d.finish().await;
}

async fn control(
    d: &Deployment,
    base: &str,
    method: reqwest::Method,
    path: &str,
    body: Option<serde_json::Value>,
) -> (u16, serde_json::Value) {
    let mut req = d
        .http
        .request(method, format!("{base}control/{path}"))
        .bearer_auth(CONTROL_TOKEN);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or_default())
}

async fn advertised_ids(d: &Deployment, base: &str) -> Vec<u8> {
    use cairn_dap_messages::{Decode, HpkeConfigList};
    let body = d
        .http
        .get(format!("{base}hpke_config"))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    HpkeConfigList::get_decoded(&body)
        .unwrap()
        .0
        .iter()
        .map(|c| c.id.0)
        .collect()
}

/// Rotation on both aggregators: a new key starts pending (not advertised), is activated,
/// the old one expires — and reports a client sealed to the old keys before the rotation are
/// still accepted and aggregated. Only deleting the expired key makes them outdated.
async fn hpke_key_rotation_keeps_in_flight_reports(b: Backend) {
    let Some(d) = Deployment::start(b, VdafInstance::Prio3Count, 1).await else {
        return;
    };
    use reqwest::Method;
    let old_client = &d.client;
    for base in [&d.params.leader_endpoint, &d.params.helper_endpoint] {
        assert_eq!(advertised_ids(&d, base).await, vec![1]);
        let (status, created) = control(&d, base, Method::POST, "hpke_keys", None).await;
        assert_eq!((status, created["state"].as_str()), (201, Some("pending")));
        assert_eq!(created["config_id"], 2);
        // Pending: not advertised yet.
        assert_eq!(advertised_ids(&d, base).await, vec![1]);
        // The only active key cannot be expired before another is active.
        let expire = serde_json::json!({ "state": "expired" });
        let activate = serde_json::json!({ "state": "active" });
        let (status, _) =
            control(&d, base, Method::PATCH, "hpke_keys/1", Some(expire.clone())).await;
        assert_eq!(status, 400);
        let (status, _) = control(&d, base, Method::PATCH, "hpke_keys/2", Some(activate)).await;
        assert_eq!(status, 204);
        let (status, _) = control(&d, base, Method::PATCH, "hpke_keys/1", Some(expire)).await;
        assert_eq!(status, 204);
        assert_eq!(advertised_ids(&d, base).await, vec![2]);
        let (status, list) = control(&d, base, Method::GET, "hpke_keys", None).await;
        assert_eq!(status, 200);
        let states: Vec<_> = list
            .as_array()
            .unwrap()
            .iter()
            .map(|k| {
                (
                    k["config_id"].as_u64().unwrap(),
                    k["state"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        assert_eq!(states, vec![(1, "expired".into()), (2, "active".into())]);
        // A malformed config ID is a client error, not a 500.
        let (status, _) = control(&d, base, Method::DELETE, "hpke_keys/300", None).await;
        assert_eq!(status, 400);
    }
    // The old client still seals to config 1 on both aggregators (in flight during rotation).
    let m = |v: &str| VdafInstance::Prio3Count.parse_measurement(v).unwrap();
    let ms = vec![m("1"), m("1"), m("1")];
    let errors = old_client.upload_measurements(&ms, NOW).await.unwrap();
    assert!(errors.status.is_empty(), "{errors:?}");
    // A new client learns config 2.
    let new_client = Client::new(d.params.clone(), d.http.clone()).await.unwrap();
    let errors = new_client
        .upload_measurements(&[m("1"), m("0")], NOW)
        .await
        .unwrap();
    assert!(errors.status.is_empty(), "{errors:?}");
    let c = collect_once(&d).await;
    assert_eq!(
        (c.report_count, c.aggregate_result),
        (5, AggregateResult::Integer(4))
    );
    // Deleting the expired leader key: reports sealed to it are now outdated.
    let base = &d.params.leader_endpoint;
    let (status, _) = control(&d, base, Method::DELETE, "hpke_keys/2", None).await;
    assert_eq!(status, 400, "an active key cannot be deleted");
    let (status, _) = control(&d, base, Method::DELETE, "hpke_keys/1", None).await;
    assert_eq!(status, 204);
    let late = old_client
        .upload_measurements(&[m("1")], NOW)
        .await
        .unwrap();
    assert_eq!(late.status[0].error, ReportError::OutdatedConfig);
    d.finish().await;
}

/// The leader's HPKE private key, VDAF verification key and outgoing bearer token are
/// sealed in the database; with another datastore key they do not open.
async fn secrets_are_sealed_at_rest(b: Backend) {
    let Some(d) = Deployment::start(b, VdafInstance::Prio3Count, 1).await else {
        return;
    };
    let tid = d.params.task_id.as_bytes().to_vec();
    let (verify_key, token, private_key): (Vec<u8>, String, Vec<u8>) = match d.backend {
        Backend::Sqlite => {
            let pool = sqlx::SqlitePool::connect(&d.leader_db).await.unwrap();
            raw_secrets(&pool, &tid).await
        }
        Backend::Postgres => {
            let pool = sqlx::PgPool::connect(&d.leader_db).await.unwrap();
            raw_secrets(&pool, &tid).await
        }
    };
    assert!(!verify_key.windows(32).any(|w| w == [42u8; 32]));
    assert_eq!(verify_key.len(), 1 + 12 + 32 + 16);
    assert!(!token.contains(AGG_TOKEN));
    assert_eq!(private_key.len(), 1 + 12 + 32 + 16);
    // The right key opens them (the deployment works); a wrong key is a clear error.
    let wrong = Datastore::connect(&d.leader_db, DatastoreKey::from_bytes(&[6; 32]).unwrap())
        .await
        .unwrap();
    let err = wrong.get_task(&d.params.task_id).await.unwrap_err();
    assert!(err.to_string().contains("does not open"), "{err}");
    let err = wrong.get_hpke_keypairs().await.unwrap_err();
    assert!(err.to_string().contains("does not open"), "{err}");
    wrong.close().await;
    d.finish().await;
}

async fn raw_secrets<'c, DB: sqlx::Database>(
    pool: &'c sqlx::Pool<DB>,
    tid: &[u8],
) -> (Vec<u8>, String, Vec<u8>)
where
    for<'q> Vec<u8>: sqlx::Encode<'q, DB> + sqlx::Decode<'q, DB> + sqlx::Type<DB>,
    for<'q> String: sqlx::Decode<'q, DB> + sqlx::Type<DB>,
    for<'q> <DB as sqlx::Database>::Arguments: sqlx::IntoArguments<DB>,
    for<'q> &'c sqlx::Pool<DB>: sqlx::Executor<'c, Database = DB>,
    usize: sqlx::ColumnIndex<DB::Row>,
{
    use sqlx::Row;
    let row = sqlx::query::<DB>(
        "SELECT vdaf_verify_key, aggregator_auth_token FROM tasks WHERE task_id = $1",
    )
    .bind(tid.to_vec())
    .fetch_one(pool)
    .await
    .unwrap();
    let pk = sqlx::query::<DB>("SELECT private_key FROM hpke_keys WHERE config_id = 1")
        .fetch_one(pool)
        .await
        .unwrap();
    (row.get(0), row.get(1), pk.get(0))
}

// ---- asynchronous helper ----

/// One pass of the helper's driver of asynchronous aggregation jobs.
async fn drive_helper(d: &Deployment) -> usize {
    d.helper.run_helper_aggregation_jobs_once().await.unwrap()
}

/// The helper's ID of every leader aggregation job that is waiting for the helper, found by
/// leasing the due jobs and giving the leases straight back.
async fn helper_job_ids(d: &Deployment) -> Vec<Option<cairn_dap_messages::AggregationJobId>> {
    let ds = d.leader.datastore();
    let mut ids = Vec::new();
    for lease in d.leader.acquire_aggregation_jobs(100).await.unwrap() {
        ids.push(
            ds.get_aggregation_job_helper_id(&lease.task_id, &lease.job_id)
                .await
                .unwrap(),
        );
        ds.release_aggregation_job(&lease, d.clock.now())
            .await
            .unwrap();
    }
    ids
}

/// Client → leader ↔ asynchronous helper → collector: the helper defers every job, the
/// leader stores that and polls (not before `Retry-After`), and the aggregate is exact.
async fn async_helper_end_to_end(b: Backend) {
    let vdaf = VdafInstance::Prio3Histogram {
        length: 4,
        chunk_length: 2,
    };
    let Some(d) = Deployment::start_async(b, vdaf.clone(), 3).await else {
        return;
    };
    let inputs = ["0", "3", "3", "1", "3", "2", "3", "0", "3", "1"];
    let ms: Vec<_> = inputs
        .iter()
        .map(|m| vdaf.parse_measurement(m).unwrap())
        .collect();
    let errors = d.client.upload_measurements(&ms, NOW).await.unwrap();
    assert!(errors.status.is_empty(), "{errors:?}");
    // Ten reports, at most seven per job: two jobs, both deferred by the helper.
    assert_eq!(d.leader.create_aggregation_jobs().await.unwrap(), 2);
    assert_eq!(d.leader.run_aggregation_jobs_once().await.unwrap(), 0);
    // Not polled again before the helper's Retry-After.
    assert!(
        d.leader
            .acquire_aggregation_jobs(10)
            .await
            .unwrap()
            .is_empty()
    );
    d.clock.advance(1);
    let ids = helper_job_ids(&d).await;
    assert_eq!(ids.len(), 2);
    assert!(ids.iter().all(Option::is_some), "{ids:?}");
    // Polling while the helper has not prepared the jobs changes nothing.
    assert_eq!(d.leader.run_aggregation_jobs_once().await.unwrap(), 0);
    let job = d.collector.start(d.query()).await.unwrap();
    d.leader.run_collection_jobs_once().await.unwrap();
    assert!(matches!(
        d.collector.poll(&job).await.unwrap(),
        Poll::Pending { .. }
    ));
    // The helper's driver prepares both; the leader's next pass finishes them: one by
    // polling, the other by re-sending its initialization (as if the leader had lost the
    // helper's first answer), which the helper answers from the stored job without
    // counting its reports again.
    assert_eq!(drive_helper(&d).await, 2);
    assert_eq!(drive_helper(&d).await, 0, "prepared once");
    d.clock.advance(1);
    let leases = d.leader.acquire_aggregation_jobs(10).await.unwrap();
    d.leader
        .datastore()
        .set_aggregation_job_polling(&leases[0], None, d.clock.now())
        .await
        .unwrap();
    d.leader
        .datastore()
        .release_aggregation_job(&leases[1], d.clock.now())
        .await
        .unwrap();
    assert_eq!(d.leader.run_aggregation_jobs_once().await.unwrap(), 2);
    let mut collection = None;
    for _ in 0..5 {
        d.drive().await;
        if let Poll::Ready(c) = d.collector.poll(&job).await.unwrap() {
            collection = Some(c);
            break;
        }
    }
    let c = collection.expect("collection did not finish");
    assert_eq!(
        c.aggregate_result,
        AggregateResult::Vector(vec![2, 2, 1, 5])
    );
    assert_eq!(c.report_count, 10);
    d.finish().await;
}

/// The leader's polling state lives in the datastore: a leader that forgets the helper's
/// answer re-sends the identical initialization and finds the same helper job; a driver that
/// crashes mid-poll is replaced by a new leader process after its lease expires, as is a
/// crashed helper driver — and no report is counted twice on either side.
async fn leader_polling_survives_restart_without_double_counting(b: Backend) {
    let Some(d) = Deployment::start_async(
        b,
        VdafInstance::Prio3Sum {
            max_measurement: 100,
        },
        1,
    )
    .await
    else {
        return;
    };
    let ms: Vec<_> = (1..=5u64).map(Measurement::Integer).collect();
    d.client.upload_measurements(&ms, NOW).await.unwrap();
    assert_eq!(d.leader.create_aggregation_jobs().await.unwrap(), 1);
    assert_eq!(d.leader.run_aggregation_jobs_once().await.unwrap(), 0);
    d.clock.advance(1);
    // As if the leader had crashed between sending the job and storing the helper's answer:
    // it sends the same request again and the helper answers for the job it already has.
    let leases = d.leader.acquire_aggregation_jobs(10).await.unwrap();
    let ds = d.leader.datastore();
    let first = ds
        .get_aggregation_job_helper_id(&leases[0].task_id, &leases[0].job_id)
        .await
        .unwrap()
        .expect("polling state stored");
    ds.set_aggregation_job_polling(&leases[0], None, d.clock.now())
        .await
        .unwrap();
    assert_eq!(d.leader.run_aggregation_jobs_once().await.unwrap(), 0);
    d.clock.advance(1);
    assert_eq!(helper_job_ids(&d).await, [Some(first)]);

    // Helper driver A and leader driver A take their jobs and crash.
    let helper_crashed = d.helper.acquire_helper_aggregation_jobs(10).await.unwrap();
    assert_eq!(helper_crashed.len(), 1);
    let leader_crashed = d.leader.acquire_aggregation_jobs(10).await.unwrap();
    assert_eq!(leader_crashed.len(), 1);
    // A new leader process on the same datastore finds nothing due while A's lease lives.
    let restarted = open_aggregator(
        &d.leader_db,
        d.clock.clone(),
        AggregatorRole::Leader,
        test_parameters(),
    )
    .await;
    assert_eq!(restarted.run_aggregation_jobs_once().await.unwrap(), 0);
    assert_eq!(drive_helper(&d).await, 0, "the helper job is leased");
    // The leases expire: helper driver B prepares the job, the new leader polls and commits.
    d.clock.advance(61);
    assert_eq!(drive_helper(&d).await, 1);
    assert_eq!(restarted.run_aggregation_jobs_once().await.unwrap(), 1);
    // The crashed drivers wake up: neither commits a second time.
    let err = d
        .helper
        .step_helper_aggregation_job(&helper_crashed[0])
        .await
        .unwrap_err();
    assert!(err.to_string().contains("lease lost"), "{err}");
    let err = d
        .leader
        .step_aggregation_job(&leader_crashed[0])
        .await
        .unwrap_err();
    assert!(err.to_string().contains("lease lost"), "{err}");
    let c = collect_once(&d).await;
    assert_eq!(
        (c.report_count, c.aggregate_result),
        (5, AggregateResult::Integer(15))
    );
    restarted.datastore().close().await;
    d.finish().await;
}

/// A helper that no longer knows a job it deferred (`unrecognizedAggregationJob` on the poll)
/// gets the initialization again, and the job finishes with an exact aggregate.
async fn leader_reinitializes_a_job_the_helper_lost(b: Backend) {
    let Some(d) = Deployment::start_async(b, VdafInstance::Prio3Count, 1).await else {
        return;
    };
    let ms = [true, true, false].map(Measurement::Count);
    d.client.upload_measurements(&ms, NOW).await.unwrap();
    d.leader.create_aggregation_jobs().await.unwrap();
    assert_eq!(d.leader.run_aggregation_jobs_once().await.unwrap(), 0);
    // The helper loses its job (say, restored from an older backup).
    let lose = "DELETE FROM helper_aggregation_jobs";
    match d.backend {
        Backend::Sqlite => {
            let pool = sqlx::SqlitePool::connect(&d.helper_db).await.unwrap();
            sqlx::query(lose).execute(&pool).await.unwrap();
            pool.close().await;
        }
        Backend::Postgres => {
            let pool = sqlx::PgPool::connect(&d.helper_db).await.unwrap();
            sqlx::query(lose).execute(&pool).await.unwrap();
            pool.close().await;
        }
    }
    // The poll fails and the leader forgets the helper's job ID ...
    d.clock.advance(1);
    assert_eq!(d.leader.run_aggregation_jobs_once().await.unwrap(), 0);
    d.clock.advance(1);
    assert_eq!(helper_job_ids(&d).await, [None]);
    // ... so its next pass initializes the job again; the helper defers and prepares it.
    assert_eq!(d.leader.run_aggregation_jobs_once().await.unwrap(), 0);
    assert_eq!(drive_helper(&d).await, 1);
    d.clock.advance(1);
    assert_eq!(d.leader.run_aggregation_jobs_once().await.unwrap(), 1);
    let c = collect_once(&d).await;
    assert_eq!(
        (c.report_count, c.aggregate_result),
        (3, AggregateResult::Integer(2))
    );
    d.finish().await;
}

/// The helper's aggregation-job resource: `GET` answers "processing" (empty body, `Location`
/// with `step=0`, `Retry-After`); unknown or malformed jobs, other tasks, bad tokens, a
/// missing or wrong step and continuations a one-round VDAF never needs get the right
/// problems; `DELETE` abandons the job, which is then never prepared.
async fn helper_aggregation_job_resources_refuse_bad_input(b: Backend) {
    use cairn_dap_messages::{
        AggregationJobContinueReq, AggregationJobId, ReportId, VerifyContinue, media_type,
    };
    let Some(d) = Deployment::start_async(b, VdafInstance::Prio3Count, 1).await else {
        return;
    };
    let tid = d.params.task_id;
    let ms = [Measurement::Count(true), Measurement::Count(false)];
    d.client.upload_measurements(&ms, NOW).await.unwrap();
    d.leader.create_aggregation_jobs().await.unwrap();
    d.leader.run_aggregation_jobs_once().await.unwrap();
    d.clock.advance(1);
    let [Some(job)] = helper_job_ids(&d).await[..] else {
        panic!("one deferred job expected");
    };
    let helper = &d.params.helper_endpoint;
    let job_url = |task: &TaskId, job: &str| format!("{helper}tasks/{task}/aggregation_jobs/{job}");
    let url = job_url(&tid, &job.to_string());
    let get = |url: String, token: Option<&'static str>| {
        let mut req = d.http.get(url);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send()
    };

    // Processing.
    let resp = get(format!("{url}?step=0"), Some(AGG_TOKEN)).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()["location"].to_str().unwrap(),
        format!("{job}?step=0")
    );
    assert!(resp.headers().contains_key("retry-after"));
    assert!(resp.bytes().await.unwrap().is_empty());

    // Bearer token missing or wrong: 403.
    for token in [None, Some("not-the-token")] {
        let resp = get(format!("{url}?step=0"), token).await.unwrap();
        assert_eq!(problem_of(resp).await, (403, Some("about:blank".into())));
    }
    let unknown_job = AggregationJobId::from_bytes([9; 16]).to_string();
    let other_task = TaskId::from_bytes([7; 32]);
    // A second task on the helper, with the same leader token: the job is not its job.
    let mut second = d.params.clone();
    second.task_id = TaskId::from_bytes(*b"cairn-dap-end-to-end-test-task-2");
    let collector_keys = HpkeKeypair::generate(HpkeConfigId(9));
    let create = CreateTaskRequest {
        parameters: second.clone(),
        vdaf_verify_key: URL_SAFE_NO_PAD.encode([42u8; 32]),
        collector_hpke_config: URL_SAFE_NO_PAD
            .encode(collector_keys.config().get_encoded().unwrap()),
        aggregator_auth_token: AGG_TOKEN.into(),
        collector_auth_token: None,
        report_expiry_age: None,
    };
    let resp = d
        .http
        .post(format!("{helper}control/tasks"))
        .bearer_auth(CONTROL_TOKEN)
        .json(&create)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let not_found = [
        (
            job_url(&tid, &unknown_job),
            DapProblemType::UnrecognizedAggregationJob,
        ),
        (
            job_url(&tid, "not-an-id"),
            DapProblemType::UnrecognizedAggregationJob,
        ),
        (
            job_url(&second.task_id, &job.to_string()),
            DapProblemType::UnrecognizedAggregationJob,
        ),
        (
            job_url(&other_task, &job.to_string()),
            DapProblemType::UnrecognizedTask,
        ),
    ];
    for (u, problem) in &not_found {
        let resp = get(format!("{u}?step=0"), Some(AGG_TOKEN)).await.unwrap();
        assert_eq!(
            problem_of(resp).await,
            (404, Some(problem.urn())),
            "GET {u}"
        );
        let resp = d
            .http
            .delete(u)
            .bearer_auth(AGG_TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(
            problem_of(resp).await,
            (404, Some(problem.urn())),
            "DELETE {u}"
        );
    }
    // The step parameter is required, and the job is at step 0.
    let resp = get(url.clone(), Some(AGG_TOKEN)).await.unwrap();
    assert_eq!(
        problem_of(resp).await,
        (400, Some(DapProblemType::InvalidMessage.urn()))
    );
    let resp = get(format!("{url}?step=1"), Some(AGG_TOKEN)).await.unwrap();
    assert_eq!(
        problem_of(resp).await,
        (400, Some(DapProblemType::StepMismatch.urn()))
    );
    // Continuations: to step 0, naming a report, or past the job's only step.
    let continuation = |step, reports: Vec<VerifyContinue>| {
        d.http
            .post(url.clone())
            .bearer_auth(AGG_TOKEN)
            .header("content-type", media_type::AGGREGATION_JOB_CONTINUE_REQ)
            .body(
                AggregationJobContinueReq {
                    step,
                    verify_continues: reports,
                }
                .get_encoded()
                .unwrap(),
            )
            .send()
    };
    let report = VerifyContinue {
        report_id: ReportId::from_bytes([3; 16]),
        payload: vec![1],
    };
    for (step, reports, problem) in [
        (0, vec![], DapProblemType::InvalidMessage),
        (1, vec![report], DapProblemType::InvalidMessage),
        (1, vec![], DapProblemType::StepMismatch),
    ] {
        let resp = continuation(step, reports).await.unwrap();
        assert_eq!(
            problem_of(resp).await,
            (400, Some(problem.urn())),
            "step {step}"
        );
    }
    // None of that touched the job.
    let resp = get(format!("{url}?step=0"), Some(AGG_TOKEN)).await.unwrap();
    assert_eq!(resp.status(), 200);

    // DELETE with a wrong token is refused; then it abandons the job.
    let resp = d
        .http
        .delete(&url)
        .bearer_auth("nope")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    let resp = d
        .http
        .delete(&url)
        .bearer_auth(AGG_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let resp = get(format!("{url}?step=0"), Some(AGG_TOKEN)).await.unwrap();
    assert_eq!(problem_of(resp).await, (410, Some("about:blank".into())));
    assert_eq!(drive_helper(&d).await, 0, "a deleted job is never prepared");
    // The leader's poll fails; its job waits, nothing is aggregated.
    assert_eq!(d.leader.run_aggregation_jobs_once().await.unwrap(), 0);
    assert_eq!(
        d.leader
            .datastore()
            .count_pending_aggregation_jobs(&tid)
            .await
            .unwrap(),
        1
    );
    d.finish().await;
}

/// Differential privacy: each aggregator adds discrete Laplace noise (ε = 1, so scale 2 for a
/// histogram's sensitivity of 2) to its aggregate share. Six batches (one per hour) of known
/// content: every noisy coordinate lies within a bound the noise exceeds with probability
/// below 10^-5, noise was really added (most coordinates differ from the exact counts; with
/// no noise none would), and its spread is plausible for the configured scale.
async fn differential_privacy_noise_is_added_within_bounds(b: Backend) {
    let vdaf = VdafInstance::Prio3Histogram {
        length: 4,
        chunk_length: 2,
    };
    let dp = DpStrategy::PureDpDiscreteLaplace {
        epsilon_numerator: 1,
        epsilon_denominator: 1,
    };
    let Some(d) = Deployment::start_with(
        b,
        vdaf.clone(),
        5,
        BatchMode::TimeInterval,
        None,
        false,
        Extras {
            differential_privacy: Some(dp),
            ..Extras::default()
        },
    )
    .await
    else {
        return;
    };
    let hours = 6u64;
    let mut deviations = Vec::new();
    for h in 0..hours {
        // Hour h: 5 reports, buckets (h + i) % 4 for i in 0..5.
        let mut exact = [0i128; 4];
        let ms: Vec<Measurement> = (0..5u64)
            .map(|i| {
                let bucket = (h + i) % 4;
                exact[usize::try_from(bucket).unwrap()] += 1;
                Measurement::Integer(bucket)
            })
            .collect();
        let when = NOW - h * PRECISION;
        let errors = d.client.upload_measurements(&ms, when).await.unwrap();
        assert!(errors.status.is_empty(), "{errors:?}");
        let query = Query::TimeInterval {
            batch_interval: Interval::new(Time(when / PRECISION), Duration(1)).unwrap(),
        };
        let job = d.collector.start(query).await.unwrap();
        let mut collected = None;
        for _ in 0..5 {
            d.drive().await;
            if let Poll::Ready(c) = d.collector.poll(&job).await.unwrap() {
                collected = Some(c);
                break;
            }
        }
        let c = collected.expect("collection did not finish");
        assert_eq!(c.report_count, 5, "the report count is exact");
        let noisy = c.aggregate_result.signed(&vdaf);
        assert_eq!(noisy.len(), 4);
        for (n, e) in noisy.iter().zip(exact) {
            let deviation = n - e;
            // Two independent discrete Laplace draws of scale 2: P(|sum| > 40) < 10^-7.
            assert!(
                deviation.abs() <= 40,
                "noise {deviation} out of bounds: {noisy:?}"
            );
            deviations.push(deviation);
        }
    }
    let nonzero = deviations.iter().filter(|d| **d != 0).count();
    // P(a coordinate's total noise is 0) is about 0.15, so 24 coordinates with fewer than 8
    // nonzero happen with probability below 10^-9 — unless no noise is added at all.
    assert!(
        nonzero >= 8,
        "noise was not added: deviations {deviations:?}"
    );
    // The mean absolute deviation of the sum of two discrete Laplace(2) draws is about 2.8.
    let mad = deviations.iter().map(|d| d.abs()).sum::<i128>() as f64 / deviations.len() as f64;
    assert!(
        (0.75..=8.0).contains(&mad),
        "implausible noise spread {mad}: {deviations:?}"
    );
    d.finish().await;
}

/// A SumVec task with noise: the result stays close to the exact sum (sensitivity
/// `max_measurement · length` = 3 · 2 = 6, ε = 10, scale 0.6 per aggregator).
async fn differential_privacy_sum_vec_stays_close(b: Backend) {
    let vdaf = VdafInstance::Prio3SumVec {
        length: 2,
        max_measurement: 3,
        chunk_length: 1,
    };
    let dp = DpStrategy::PureDpDiscreteLaplace {
        epsilon_numerator: 10,
        epsilon_denominator: 1,
    };
    let Some(d) = Deployment::start_with(
        b,
        vdaf.clone(),
        3,
        BatchMode::TimeInterval,
        None,
        false,
        Extras {
            differential_privacy: Some(dp),
            ..Extras::default()
        },
    )
    .await
    else {
        return;
    };
    let ms: Vec<Measurement> = ["1,2", "3,3", "0,1", "2,2"]
        .iter()
        .map(|m| vdaf.parse_measurement(m).unwrap())
        .collect();
    assert!(
        d.client
            .upload_measurements(&ms, NOW)
            .await
            .unwrap()
            .status
            .is_empty()
    );
    let c = collect_once(&d).await;
    let noisy = c.aggregate_result.signed(&vdaf);
    for (n, e) in noisy.iter().zip([6i128, 8]) {
        assert!((n - e).abs() <= 20, "{noisy:?}");
    }
    d.finish().await;
}

/// Tasks asking for noise on a VDAF without a DP mechanism are refused at creation.
#[test]
fn differential_privacy_is_refused_for_count() {
    let mut params: TaskParameters = serde_json::from_value(serde_json::json!({
        "task_id": TaskId::from_bytes([3; 32]).to_string(),
        "leader_endpoint": "https://l.example/", "helper_endpoint": "https://h.example/",
        "time_precision": 3600, "min_batch_size": 1, "batch_mode": "time_interval",
        "vdaf": {"type": "Prio3Count"},
        "differential_privacy": {"type": "PureDpDiscreteLaplace",
                                 "epsilon_numerator": 1, "epsilon_denominator": 1},
    }))
    .unwrap();
    assert!(params.validate().is_err());
    params.vdaf = VdafInstance::Prio3Histogram {
        length: 2,
        chunk_length: 1,
    };
    assert!(params.validate().is_ok());
    params.differential_privacy = Some(DpStrategy::PureDpDiscreteLaplace {
        epsilon_numerator: 0,
        epsilon_denominator: 1,
    });
    assert!(params.validate().is_err(), "epsilon 0");
}

macro_rules! on_backends {
    ($($name:ident),+ $(,)?) => {
        mod sqlite {
            $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
               async fn $name() { super::$name(super::Backend::Sqlite).await } )+
        }
        mod postgres {
            $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
               async fn $name() { super::$name(super::Backend::Postgres).await } )+
        }
    };
}

on_backends!(
    count,
    sum,
    histogram,
    sum_vec,
    multihot_count_vec,
    bad_input_is_refused_and_nothing_stored,
    collection_waits_for_min_batch_size_then_collects_once,
    crashed_driver_is_taken_over_without_double_counting,
    leader_selected_end_to_end,
    leader_selected_batches_fill_up_and_are_collected_once_each,
    leader_selected_helper_requires_the_batch_id_extension,
    identical_leader_selected_collection_requests_name_one_job,
    leader_and_helper_under_a_path_prefix,
    dap09_clients_get_configs_and_a_clear_refusal,
    dap09_task_end_to_end,
    a_deleted_time_interval_job_is_started_again_by_the_identical_request,
    a_failed_collection_job_is_retried_by_the_identical_request,
    hpke_key_rotation_keeps_in_flight_reports,
    secrets_are_sealed_at_rest,
    async_helper_end_to_end,
    leader_polling_survives_restart_without_double_counting,
    helper_aggregation_job_resources_refuse_bad_input,
    leader_reinitializes_a_job_the_helper_lost,
    differential_privacy_noise_is_added_within_bounds,
    differential_privacy_sum_vec_stays_close,
);
