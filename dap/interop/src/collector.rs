//! The interop collector: keeps an HPKE keypair per task (`add_task`), starts collection jobs at
//! the leader (`collection_start`) and polls them once per `collection_poll`.

use super::{
    ApiError, ApiResult, Fields, InteropError, answer, http_client, parse_body, ready,
    task_parameters,
};
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::routing::post;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use cairn_dap_collector::{CollectionJob, Collector, Poll};
use cairn_dap_core::{AggregateResult, HpkeKeypair};
use cairn_dap_messages::{Duration, Encode, HpkeConfigId, Interval, Query, TaskId, Time};
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

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
pub fn collector_router() -> Result<Router, InteropError> {
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
    let mut bytes = [0u8; 16];
    aws_lc_rs::rand::SecureRandom::fill(&aws_lc_rs::rand::SystemRandom::new(), &mut bytes)
        .map_err(|_| ApiError("no randomness available".into()))?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
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
