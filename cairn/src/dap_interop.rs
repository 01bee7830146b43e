//! The DAP interoperation test API (draft-dcook-ppm-dap-interop-test-design, with the
//! extensions Janus uses: string-encoded numbers, `max_measurement`, `batch_mode`,
//! `task_start`/`task_end`, the helper URL in the collector's `add_task`), so a test runner can
//! pair Cairn with any implementation in any role.
//!
//! Each role is a small axum server (`cairn dap interop-client|interop-aggregator|
//! interop-collector`). Every answer is `200` with a JSON object whose `status` is `success`
//! (or `complete` / `in progress` when polling) or `error` with an `error` text: a bad request
//! is an `error` answer, never a panic. The interop aggregator serves the DAP API on the same
//! port, at `/`: one process is leader for some tasks and helper for others (two
//! [`Aggregator`]s over one datastore, so one HPKE key set; each only sees tasks of its role).
//!
//! The API has no `task_info`, so all three roles use [`INTEROP_TASK_INFO`] (Janus' value), which
//! keeps the `TaskConfiguration` in the AADs identical on every party.

use anyhow::Context;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use cairn_dap_aggregator::{
    Aggregator, AggregatorParameters, AggregatorRole, AggregatorTask, BearerToken, Datastore,
    DatastoreKey, TokenHash,
};
use cairn_dap_collector::{CollectionJob, Collector, Poll};
use cairn_dap_core::{
    AggregateResult, Clock, HpkeKeypair, RealClock, TaskParameters, VdafInstance,
};
use cairn_dap_messages::{
    BatchMode, Decode, Duration, Encode, HpkeConfig, HpkeConfigId, Interval, Query, TaskId, Time,
};
use serde_json::{Map, Value, json};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tower::ServiceExt;

/// The `task_info` every Cairn interop role binds into the `TaskConfiguration` (the interop API
/// does not carry one; this is the value Janus' interop binaries use).
pub const INTEROP_TASK_INFO: &str = "task-info";

/// The port the draft has every test container listen on.
pub const DEFAULT_PORT: u16 = 8080;

/// A request the interop API refuses, with the text for its `error` field.
#[derive(Debug)]
struct ApiError(String);

impl<E: std::fmt::Display> From<E> for ApiError {
    fn from(e: E) -> Self {
        ApiError(e.to_string())
    }
}

type ApiResult = Result<Map<String, Value>, ApiError>;

/// `{"status": "success", …fields}` or `{"status": "error", "error": …}`, always `200` (the
/// draft's runners read the status from the body).
fn answer(result: ApiResult) -> Response {
    match result {
        Ok(mut fields) => {
            fields
                .entry("status")
                .or_insert_with(|| Value::from("success"));
            Json(Value::Object(fields)).into_response()
        }
        Err(ApiError(e)) => {
            tracing::info!(error = %e, "interop request refused");
            Json(json!({ "status": "error", "error": e })).into_response()
        }
    }
}

fn parse_body(body: &Bytes) -> Result<Map<String, Value>, ApiError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(ApiError("the request body must be a JSON object".into())),
        Err(e) => Err(ApiError(format!("the request body is not JSON: {e}"))),
    }
}

/// A number written either as a JSON number or as a decimal string (Janus sends strings).
fn number(v: &Value) -> Option<u64> {
    match v {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// Field accessors over a request object, with errors naming the field.
struct Fields<'a>(&'a Map<String, Value>, &'static str);

impl Fields<'_> {
    fn get(&self, name: &str) -> Option<&Value> {
        self.0.get(name).filter(|v| !v.is_null())
    }

    fn str(&self, name: &str) -> Result<&str, ApiError> {
        self.get(name)
            .and_then(Value::as_str)
            .ok_or_else(|| ApiError(format!("{}: \"{name}\" must be a string", self.1)))
    }

    fn u64(&self, name: &str) -> Result<u64, ApiError> {
        self.opt_u64(name)?
            .ok_or_else(|| ApiError(format!("{}: \"{name}\" is missing", self.1)))
    }

    fn opt_u64(&self, name: &str) -> Result<Option<u64>, ApiError> {
        match self.get(name) {
            None => Ok(None),
            Some(v) => number(v).map(Some).ok_or_else(|| {
                ApiError(format!(
                    "{}: \"{name}\" must be a non-negative integer",
                    self.1
                ))
            }),
        }
    }

    fn u32(&self, name: &str) -> Result<u32, ApiError> {
        u32::try_from(self.u64(name)?)
            .map_err(|_| ApiError(format!("{}: \"{name}\" is too large", self.1)))
    }

    fn base64(&self, name: &str) -> Result<Vec<u8>, ApiError> {
        URL_SAFE_NO_PAD
            .decode(self.str(name)?.trim_end_matches('='))
            .map_err(|_| ApiError(format!("{}: \"{name}\" is not base64url", self.1)))
    }

    fn task_id(&self) -> Result<TaskId, ApiError> {
        self.str("task_id")?
            .trim_end_matches('=')
            .parse()
            .map_err(|_| ApiError("\"task_id\" is not 32 bytes of base64url".into()))
    }

    fn endpoint(&self, name: &str) -> Result<String, ApiError> {
        let url = self.str(name)?;
        url::Url::parse(url)
            .map_err(|_| ApiError(format!("\"{name}\" is not a URL")))
            .map(|_| url.to_string())
    }

    /// `batch_mode` (Janus) or `query_type` (earlier drafts): 1 time-interval, 2 leader-selected.
    fn batch_mode(&self) -> Result<BatchMode, ApiError> {
        let code = match self.opt_u64("batch_mode")? {
            Some(c) => c,
            None => self.u64("query_type")?,
        };
        u8::try_from(code)
            .ok()
            .and_then(|c| BatchMode::from_code(c).ok())
            .ok_or_else(|| {
                ApiError(format!(
                    "unsupported batch mode {code} (1: time-interval, 2: leader-selected)"
                ))
            })
    }
}

/// The interop API's VDAF object (`{"type": "Prio3Count"}`, `{"type": "Prio3Sum",
/// "max_measurement": "255"}`, …) as a [`VdafInstance`]. `bits` (earlier drafts) stands for
/// `max_measurement = 2^bits - 1`.
fn vdaf_from_json(v: Option<&Value>) -> Result<VdafInstance, ApiError> {
    let obj = v
        .and_then(Value::as_object)
        .ok_or_else(|| ApiError("\"vdaf\" must be an object".into()))?;
    let f = Fields(obj, "vdaf");
    let max_measurement = || -> Result<u64, ApiError> {
        match (f.opt_u64("max_measurement")?, f.opt_u64("bits")?) {
            (Some(m), _) => Ok(m),
            (None, Some(bits)) if (1..=64).contains(&bits) => Ok(u64::MAX >> (64 - bits)),
            (None, Some(_)) => Err(ApiError("vdaf: \"bits\" must be 1 to 64".into())),
            (None, None) => Err(ApiError("vdaf: \"max_measurement\" is missing".into())),
        }
    };
    let vdaf = match f.str("type")? {
        "Prio3Count" => VdafInstance::Prio3Count,
        "Prio3Sum" => VdafInstance::Prio3Sum {
            max_measurement: max_measurement()?,
        },
        "Prio3SumVec" => VdafInstance::Prio3SumVec {
            length: f.u32("length")?,
            max_measurement: max_measurement()?,
            chunk_length: f.u32("chunk_length")?,
        },
        "Prio3Histogram" => VdafInstance::Prio3Histogram {
            length: f.u32("length")?,
            chunk_length: f.u32("chunk_length")?,
        },
        "Prio3MultihotCountVec" => VdafInstance::Prio3MultihotCountVec {
            length: f.u32("length")?,
            chunk_length: f.u32("chunk_length")?,
            max_weight: f.u64("max_weight")?,
        },
        other => return Err(ApiError(format!("unsupported VDAF type {other:?}"))),
    };
    vdaf.validate()?;
    Ok(vdaf)
}

/// The task parameters every role derives from an interop request. `min_batch_size` and the
/// task interval are bound into the `TaskConfiguration`, so every role must be given the same:
/// `min_batch_size` is required, and a task interval given to the aggregators must also be
/// given to the client and collector (Cairn's take `task_start`/`task_end` too).
fn task_parameters(f: &Fields<'_>) -> Result<TaskParameters, ApiError> {
    let task_id = f.task_id()?;
    let batch_mode = f.batch_mode()?;
    let time_precision = f.u64("time_precision")?;
    let params = TaskParameters {
        task_id,
        leader_endpoint: f.endpoint("leader")?,
        helper_endpoint: f.endpoint("helper")?,
        time_precision,
        min_batch_size: f.u64("min_batch_size")?,
        batch_mode,
        vdaf: vdaf_from_json(f.get("vdaf"))?,
        task_info: INTEROP_TASK_INFO.into(),
        task_interval: task_interval(f, time_precision)?,
        max_batch_size: match batch_mode {
            BatchMode::LeaderSelected => f.opt_u64("max_batch_size")?,
            _ => None,
        },
        differential_privacy: None,
    };
    Ok(params)
}

/// `task_start`/`task_end` (Janus) or `task_expiration` (the draft), POSIX seconds, as the task
/// interval in time-precision units: from the unit holding the start to the end rounded up.
fn task_interval(f: &Fields<'_>, precision: u64) -> Result<Option<Interval>, ApiError> {
    let start = f.opt_u64("task_start")?;
    let end = match f.opt_u64("task_end")? {
        Some(e) => Some(e),
        None => f.opt_u64("task_expiration")?,
    };
    let (start, end) = match (start, end) {
        (None, None) => return Ok(None),
        (Some(_), None) => {
            return Err(ApiError(
                "\"task_start\" needs \"task_end\" (or \"task_expiration\")".into(),
            ));
        }
        (start, Some(end)) => (start.unwrap_or(0), end),
    };
    if precision == 0 {
        return Err(ApiError("\"time_precision\" must be positive".into()));
    }
    let (first, last) = (start / precision, end.div_ceil(precision));
    if last <= first {
        return Err(ApiError("the task ends before it starts".into()));
    }
    Ok(Interval::new(Time(first), Duration(last - first)))
}

/// A measurement in the interop API's JSON (a number or decimal string, a bool, or an array of
/// those) in the text form [`VdafInstance::parse_measurement`] reads.
fn measurement_text(v: Option<&Value>) -> Result<String, ApiError> {
    fn scalar(v: &Value) -> Option<String> {
        match v {
            Value::Bool(b) => Some(if *b { "1" } else { "0" }.into()),
            Value::Number(n) => n.as_u64().map(|n| n.to_string()),
            Value::String(s) => s.trim().parse::<u64>().ok().map(|n| n.to_string()),
            _ => None,
        }
    }
    let bad = || ApiError("\"measurement\" must be a number, a string of one, or a list".into());
    match v {
        Some(Value::Array(items)) => Ok(items
            .iter()
            .map(|i| scalar(i).ok_or_else(bad))
            .collect::<Result<Vec<_>, _>>()?
            .join(",")),
        Some(v) => scalar(v).ok_or_else(bad),
        None => Err(ApiError("\"measurement\" is missing".into())),
    }
}

fn http_client() -> anyhow::Result<reqwest::Client> {
    reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(30))
        .build()
        .context("building the HTTP client")
}

async fn ready() -> Response {
    Json(json!({})).into_response()
}

// ---- client ----

/// The interop client's router: `/internal/test/ready` and `/internal/test/upload`.
pub fn client_router() -> anyhow::Result<Router> {
    let http = http_client()?;
    Ok(Router::new()
        .route("/internal/test/ready", post(ready))
        .route(
            "/internal/test/upload",
            post(
                |State(http): State<reqwest::Client>, body: Bytes| async move {
                    answer(upload(&http, &body).await)
                },
            ),
        )
        .with_state(http))
}

async fn upload(http: &reqwest::Client, body: &Bytes) -> ApiResult {
    let req = parse_body(body)?;
    let f = Fields(&req, "upload");
    let params = task_parameters(&f)?;
    params.validate()?;
    let measurement = params
        .vdaf
        .parse_measurement(&measurement_text(f.get("measurement"))?)?;
    let time = match f.opt_u64("time")? {
        Some(t) => t,
        None => RealClock.now(),
    };
    let client = cairn_dap_client::Client::new(params, http.clone()).await?;
    let refused = client.upload_measurements(&[measurement], time).await?;
    if let Some(s) = refused.status.first() {
        return Err(ApiError(format!(
            "the leader refused the report: {}",
            s.error.name()
        )));
    }
    Ok(Map::new())
}

// ---- collector ----

struct CollectorTask {
    collector: Collector,
    precision: u64,
}

enum JobState {
    Running(Arc<Collector>, CollectionJob, u64),
    Complete(Map<String, Value>),
    Failed(String),
}

#[derive(Clone)]
struct CollectorState {
    http: reqwest::Client,
    tasks: Arc<Mutex<HashMap<TaskId, Arc<CollectorTask>>>>,
    jobs: Arc<Mutex<HashMap<String, JobState>>>,
}

fn lock<T>(m: &Mutex<T>) -> Result<std::sync::MutexGuard<'_, T>, ApiError> {
    m.lock()
        .map_err(|_| ApiError("internal state is unavailable".into()))
}

/// The interop collector's router: `ready`, `add_task`, `collection_start`, `collection_poll`.
pub fn collector_router() -> anyhow::Result<Router> {
    let state = CollectorState {
        http: http_client()?,
        tasks: Arc::default(),
        jobs: Arc::default(),
    };
    Ok(Router::new()
        .route("/internal/test/ready", post(ready))
        .route(
            "/internal/test/add_task",
            post(|State(s): State<CollectorState>, body: Bytes| async move {
                answer(collector_add_task(&s, &body))
            }),
        )
        .route(
            "/internal/test/collection_start",
            post(|State(s): State<CollectorState>, body: Bytes| async move {
                answer(collection_start(&s, &body).await)
            }),
        )
        .route(
            "/internal/test/collection_poll",
            post(|State(s): State<CollectorState>, body: Bytes| async move {
                answer(collection_poll(&s, &body).await)
            }),
        )
        .with_state(state))
}

fn collector_add_task(s: &CollectorState, body: &Bytes) -> ApiResult {
    let req = parse_body(body)?;
    let f = Fields(&req, "add_task");
    let params = task_parameters(&f)?;
    params.validate()?;
    let token = f.str("collector_authentication_token")?.to_string();
    let mut id = [0u8; 1];
    aws_lc_rs::rand::SecureRandom::fill(&aws_lc_rs::rand::SystemRandom::new(), &mut id)
        .map_err(|_| ApiError("no randomness available".into()))?;
    let keypair = HpkeKeypair::generate(HpkeConfigId(id[0]));
    let config = URL_SAFE_NO_PAD.encode(keypair.config().get_encoded()?);
    let task_id = params.task_id;
    let precision = params.time_precision;
    let mut tasks = lock(&s.tasks)?;
    if tasks.contains_key(&task_id) {
        return Err(ApiError("a task with this ID was already added".into()));
    }
    tasks.insert(
        task_id,
        Arc::new(CollectorTask {
            collector: Collector::new(params, keypair, token, s.http.clone()),
            precision,
        }),
    );
    let mut out = Map::new();
    out.insert("collector_hpke_config".into(), Value::from(config));
    Ok(out)
}

fn random_handle() -> Result<String, ApiError> {
    let bytes =
        crate::dap_serve::random_bytes().map_err(|_| ApiError("no randomness available".into()))?;
    Ok(URL_SAFE_NO_PAD.encode(&bytes[..16]))
}

async fn collection_start(s: &CollectorState, body: &Bytes) -> ApiResult {
    let req = parse_body(body)?;
    let f = Fields(&req, "collection_start");
    let task_id = f.task_id()?;
    let task = lock(&s.tasks)?
        .get(&task_id)
        .cloned()
        .ok_or_else(|| ApiError("unknown task (call add_task first)".into()))?;
    if f.get("agg_param").is_some() && !f.base64("agg_param")?.is_empty() {
        return Err(ApiError(
            "Prio3 takes no aggregation parameter; \"agg_param\" must be empty".into(),
        ));
    }
    let query_obj = f
        .get("query")
        .and_then(Value::as_object)
        .ok_or_else(|| ApiError("\"query\" must be an object".into()))?;
    let q = Fields(query_obj, "query");
    let code = match q.opt_u64("type")? {
        Some(c) => c,
        None => q.u64("batch_mode")?,
    };
    let p = task.precision;
    let query = match code {
        1 => {
            let start = q.u64("batch_interval_start")?;
            let duration = q.u64("batch_interval_duration")?;
            if start % p != 0 || duration % p != 0 || duration == 0 {
                return Err(ApiError(
                    "the batch interval must be a positive multiple of the time precision".into(),
                ));
            }
            Query::TimeInterval {
                batch_interval: Interval::new(Time(start / p), Duration(duration / p))
                    .ok_or_else(|| ApiError("the batch interval overflows".into()))?,
            }
        }
        2 => Query::LeaderSelected,
        other => return Err(ApiError(format!("unsupported query type {other}"))),
    };
    let collector = Arc::new(task.collector.clone());
    let job = collector.start(query).await?;
    let handle = random_handle()?;
    lock(&s.jobs)?.insert(handle.clone(), JobState::Running(collector, job, p));
    let mut out = Map::new();
    out.insert("handle".into(), Value::from(handle));
    Ok(out)
}

fn result_json(r: &AggregateResult) -> Value {
    match r {
        AggregateResult::Integer(n) => Value::from(n.to_string()),
        AggregateResult::Vector(v) => {
            Value::Array(v.iter().map(|n| Value::from(n.to_string())).collect())
        }
        _ => Value::Null,
    }
}

async fn collection_poll(s: &CollectorState, body: &Bytes) -> ApiResult {
    let req = parse_body(body)?;
    let handle = Fields(&req, "collection_poll").str("handle")?.to_string();
    let (collector, job, precision) = match lock(&s.jobs)?.get(&handle) {
        None => return Err(ApiError("unknown collection handle".into())),
        Some(JobState::Complete(done)) => return Ok(done.clone()),
        Some(JobState::Failed(e)) => return Err(ApiError(e.clone())),
        Some(JobState::Running(c, j, p)) => (c.clone(), j.clone(), *p),
    };
    let outcome = match collector.poll(&job).await {
        Ok(Poll::Ready(c)) => {
            let mut out = Map::new();
            out.insert("status".into(), Value::from("complete"));
            out.insert("report_count".into(), Value::from(c.report_count));
            out.insert(
                "interval_start".into(),
                Value::from(c.interval.start.0.saturating_mul(precision)),
            );
            out.insert(
                "interval_duration".into(),
                Value::from(c.interval.duration.0.saturating_mul(precision)),
            );
            out.insert("result".into(), result_json(&c.aggregate_result));
            JobState::Complete(out)
        }
        Ok(_) => {
            let mut out = Map::new();
            out.insert("status".into(), Value::from("in progress"));
            return Ok(out);
        }
        Err(e) => JobState::Failed(format!("collection failed: {e}")),
    };
    let answer = match &outcome {
        JobState::Complete(out) => Ok(out.clone()),
        JobState::Failed(e) => Err(ApiError(e.clone())),
        JobState::Running(..) => Err(ApiError("collection is still running".into())),
    };
    lock(&s.jobs)?.insert(handle, outcome);
    answer
}

// ---- aggregator ----

#[derive(Clone)]
struct AggregatorState {
    leader: Aggregator,
    helper: Aggregator,
}

/// A running interop aggregator: its router and what must outlive it.
pub struct InteropAggregator {
    /// The interop API and the DAP API (leader and helper resources) on one router.
    pub router: Router,
    leader: Aggregator,
    drivers: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for InteropAggregator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InteropAggregator").finish_non_exhaustive()
    }
}

impl InteropAggregator {
    /// Opens the datastore at `database_url`, starts a leader and a helper over it and the
    /// leader's drivers (every `driver_period`).
    pub async fn start(
        database_url: &str,
        driver_period: std::time::Duration,
    ) -> anyhow::Result<InteropAggregator> {
        let key = DatastoreKey::from_base64url(&DatastoreKey::generate_base64url()?)
            .context("datastore key")?;
        let ds = Datastore::connect(database_url, key)
            .await
            .context("opening the DAP datastore")?;
        let params = AggregatorParameters::default();
        let clock: Arc<dyn Clock> = Arc::new(RealClock);
        // One after the other: the first creates the HPKE key both then serve.
        let leader = Aggregator::new(
            ds.clone(),
            clock.clone(),
            AggregatorRole::Leader,
            params.clone(),
        )
        .await?;
        let helper = Aggregator::new(ds, clock, AggregatorRole::Helper, params).await?;
        let drivers = leader.spawn_drivers(driver_period);
        let leader_dap = cairn_dap_aggregator::router(leader.clone(), None);
        let helper_dap = cairn_dap_aggregator::router(helper.clone(), None);
        let router = Router::new()
            .route("/internal/test/ready", post(ready))
            .route(
                "/internal/test/endpoint_for_task",
                post(|body: Bytes| async move { answer(endpoint_for_task(&body)) }),
            )
            .route(
                "/internal/test/add_task",
                post(|State(s): State<AggregatorState>, body: Bytes| async move {
                    answer(aggregator_add_task(&s, &body).await)
                }),
            )
            .with_state(AggregatorState {
                leader: leader.clone(),
                helper,
            })
            .fallback(move |req: Request<Body>| dispatch(leader_dap, helper_dap, req));
        Ok(InteropAggregator {
            router,
            leader,
            drivers,
        })
    }

    /// Stops the drivers and closes the datastore.
    pub async fn shutdown(self) {
        self.drivers.abort();
        let _ = self.drivers.await;
        self.leader.datastore().close().await;
    }
}

/// Sends DAP requests to the role that serves them: aggregation jobs and aggregate shares to
/// the helper, everything else (uploads, collection jobs, `/hpke_config`) to the leader.
async fn dispatch(leader: Router, helper: Router, req: Request<Body>) -> Response {
    let path = req.uri().path();
    let to_helper = path.starts_with("/tasks/")
        && (path.contains("/aggregation_jobs") || path.contains("/aggregate_shares"));
    let router = if to_helper { helper } else { leader };
    match router.oneshot(req).await {
        Ok(resp) => resp,
        Err(never) => match never {},
    }
}

/// The DAP API is served at the root for every task and role.
fn endpoint_for_task(body: &Bytes) -> ApiResult {
    let req = parse_body(body)?;
    let f = Fields(&req, "endpoint_for_task");
    f.task_id()?;
    let mut out = Map::new();
    out.insert("endpoint".into(), Value::from("/"));
    Ok(out)
}

async fn aggregator_add_task(s: &AggregatorState, body: &Bytes) -> ApiResult {
    let req = parse_body(body)?;
    let f = Fields(&req, "add_task");
    let parameters = task_parameters(&f)?;
    let role = AggregatorRole::parse(f.str("role")?)
        .ok_or_else(|| ApiError("\"role\" must be \"leader\" or \"helper\"".into()))?;
    let verify_key = <[u8; 32]>::try_from(f.base64("vdaf_verify_key")?.as_slice())
        .map_err(|_| ApiError("\"vdaf_verify_key\" must be 32 bytes".into()))?;
    let collector_hpke_config = HpkeConfig::get_decoded(&f.base64("collector_hpke_config")?)
        .map_err(|_| ApiError("\"collector_hpke_config\" is not an encoded HpkeConfig".into()))?;
    let leader_token = f.str("leader_authentication_token")?;
    let collector_token = match role {
        AggregatorRole::Leader => Some(f.str("collector_authentication_token")?),
        _ => None,
    };
    let task = AggregatorTask {
        parameters,
        role,
        vdaf_verify_key: verify_key,
        collector_hpke_config,
        aggregator_auth_token: (role == AggregatorRole::Leader)
            .then(|| BearerToken::new(leader_token)),
        aggregator_auth_token_hash: (role == AggregatorRole::Helper)
            .then(|| TokenHash::of(leader_token)),
        collector_auth_token_hash: collector_token.map(TokenHash::of),
    };
    let aggregator = match role {
        AggregatorRole::Helper => &s.helper,
        _ => &s.leader,
    };
    aggregator.add_task(&task).await.map_err(|e| match e {
        cairn_dap_aggregator::Error::BadRequest(detail) => ApiError(detail),
        other => {
            tracing::error!(error = %other, "interop add_task failed");
            ApiError("the task could not be stored".into())
        }
    })?;
    tracing::info!(task = %task.parameters.task_id, role = role.as_str(), "interop task added");
    Ok(Map::new())
}

// ---- serving ----

/// Serves `router` on `0.0.0.0:port` until SIGINT/SIGTERM.
pub async fn serve(router: Router, port: u16, what: &str) -> anyhow::Result<()> {
    let addr = SocketAddr::from(([0, 0, 0, 0], port));
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    tracing::info!(addr = %listener.local_addr()?, role = what, "DAP interop API listening");
    axum::serve(listener, router)
        .with_graceful_shutdown(crate::bootstrap::shutdown_signal())
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn vdaf_objects_take_numbers_or_strings_and_bits() {
        let v = vdaf_from_json(Some(&json!({"type": "Prio3Sum", "max_measurement": "255"})));
        assert_eq!(
            v.unwrap(),
            VdafInstance::Prio3Sum {
                max_measurement: 255
            }
        );
        let v = vdaf_from_json(Some(
            &json!({"type": "Prio3SumVec", "bits": 8, "length": "4", "chunk_length": 2}),
        ));
        assert_eq!(
            v.unwrap(),
            VdafInstance::Prio3SumVec {
                length: 4,
                max_measurement: 255,
                chunk_length: 2
            }
        );
        assert!(vdaf_from_json(Some(&json!({"type": "Poplar1", "bits": 8}))).is_err());
        assert!(vdaf_from_json(Some(&json!({"type": "Prio3Histogram", "length": 4}))).is_err());
        assert!(vdaf_from_json(Some(&json!("Prio3Count"))).is_err());
    }

    #[test]
    fn measurements_become_the_text_form() {
        assert_eq!(measurement_text(Some(&json!("1"))).unwrap(), "1");
        assert_eq!(measurement_text(Some(&json!(7))).unwrap(), "7");
        assert_eq!(
            measurement_text(Some(&json!(["1", 2, true]))).unwrap(),
            "1,2,1"
        );
        assert!(measurement_text(Some(&json!({"a": 1}))).is_err());
        assert!(measurement_text(Some(&json!("-1"))).is_err());
        assert!(measurement_text(None).is_err());
    }

    #[test]
    fn task_interval_rounds_outwards_and_refuses_inverted_bounds() {
        let req = json!({"task_start": 3700, "task_end": 7300});
        let f = Fields(req.as_object().unwrap(), "t");
        assert_eq!(
            task_interval(&f, 3600).unwrap(),
            Some(Interval {
                start: Time(1),
                duration: Duration(2)
            })
        );
        let req = json!({"task_start": 7300, "task_end": 100});
        assert!(task_interval(&Fields(req.as_object().unwrap(), "t"), 3600).is_err());
        let req = json!({"task_start": 7300});
        assert!(task_interval(&Fields(req.as_object().unwrap(), "t"), 3600).is_err());
        let req = json!({});
        assert_eq!(
            task_interval(&Fields(req.as_object().unwrap(), "t"), 3600).unwrap(),
            None
        );
    }
}
