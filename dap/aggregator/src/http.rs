//! The HTTP API (axum): DAP-18 resources for the aggregator's role, plus the bearer-protected
//! JSON control plane (`/control/tasks`) for creating tasks on the fly.

use crate::aggregator::{
    AggregationJobAnswer, Aggregator, CollectionJobStatus, HELPER_RETRY_AFTER_SECS,
};
use crate::datastore::HpkeKeyState;
use crate::error::Error;
use crate::task::{AggregatorRole, AggregatorTask, BearerToken, TokenHash};
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use cairn_dap_core::TaskParameters;
use cairn_dap_messages::{
    AggregationJobId, CollectionJobId, DapProblemType, Decode, Encode, HpkeConfig, HpkeConfigId,
    TaskId, media_type,
};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

mod dap09;

/// Response header naming why a collection job is not ready: `aggregating` (reports in the
/// batch are still being verified), `insufficient-reports` (fewer than `min_batch_size`
/// aggregated so far; upload more and keep polling) or `collecting` (asking the helper).
pub const COLLECTION_STATE_HEADER: &str = "cairn-collection-state";
/// Response header with the number of reports aggregated in a pending batch.
pub const BATCH_REPORT_COUNT_HEADER: &str = "cairn-batch-report-count";

#[derive(Clone)]
struct AppState {
    aggregator: Aggregator,
    control_token: Option<Arc<TokenHash>>,
}

/// The router for `aggregator`. `control_token` enables `/control/tasks` behind that bearer
/// token (`None` disables the control plane).
pub fn router(aggregator: Aggregator, control_token: Option<&str>) -> Router {
    let role = aggregator.role();
    let state = AppState {
        aggregator,
        control_token: control_token.map(|t| Arc::new(TokenHash::of(t))),
    };
    let mut r = Router::new()
        .route("/hpke_config", get(hpke_config))
        .route("/control/tasks", get(list_tasks).post(create_task))
        .route(
            "/control/tasks/{task_id}",
            get(get_task).delete(delete_task),
        )
        .route("/control/tasks/{task_id}/metrics", get(task_metrics))
        .route(
            "/control/tasks/{task_id}/upload_counters",
            get(upload_counters),
        )
        .route(
            "/control/hpke_keys",
            get(list_hpke_keys).post(create_hpke_key),
        )
        .route(
            "/control/hpke_keys/{config_id}",
            axum::routing::patch(set_hpke_key_state).delete(delete_hpke_key),
        );
    r = match role {
        AggregatorRole::Leader => r
            .route(
                "/tasks/{task_id}/reports",
                post(upload)
                    .put(dap09::upload)
                    .options(dap09::upload_preflight)
                    .layer(axum::middleware::map_response(dap09::allow_any_origin)),
            )
            .route(
                "/tasks/{task_id}/collection_jobs",
                post(create_collection_job),
            )
            .route(
                "/tasks/{task_id}/collection_jobs/{job_id}",
                get(get_collection_job)
                    .delete(delete_collection_job)
                    .put(dap09::create_collection_job)
                    .post(dap09::poll_collection_job),
            ),
        AggregatorRole::Helper => r
            .route(
                "/tasks/{task_id}/aggregation_jobs",
                post(aggregation_job_init),
            )
            .route(
                "/tasks/{task_id}/aggregation_jobs/{job_id}",
                get(get_aggregation_job)
                    .post(aggregation_job_continue)
                    .delete(delete_aggregation_job)
                    .put(dap09::aggregation_job_init),
            )
            .route("/tasks/{task_id}/aggregate_shares", post(aggregate_share)),
    };
    r.with_state(state)
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
}

fn task_id(s: &str) -> Result<TaskId, Error> {
    s.parse()
        .map_err(|_| Error::dap(DapProblemType::UnrecognizedTask, None, "malformed task ID"))
}

fn body_response(status: StatusCode, content_type: &'static str, body: Vec<u8>) -> Response {
    let mut resp = (status, body).into_response();
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}

/// Adds `Location`. Every location the aggregator sends is a relative reference (RFC 3986
/// §4.2) that the peer resolves against the URL of its own request (RFC 9110 §10.2.2): a POST
/// to `{prefix}/tasks/{task}/collection_jobs` is answered with `collection_jobs/{job}`. So the
/// aggregator needs no knowledge of its public URL, and a path prefix added by a reverse proxy
/// in front of it (stripped or not) is kept, which a root-relative `/tasks/...` would lose.
fn with_location(mut resp: Response, location: String) -> Response {
    if let Ok(v) = HeaderValue::from_str(&location) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp
}

/// `GET /hpke_config`. DAP-09 clients name their task (`?task_id=`, which must be known) and
/// ask for DAP-09's media type; the configs are aggregator-wide either way. Public data, so any
/// origin may read it (browsers running `@divviup/dap`).
async fn hpke_config(
    State(s): State<AppState>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Response, Error> {
    // DAP-09 clients name the task; its protocol picks the media type too, whatever `Accept`.
    let mut media = dap09::hpke_config_media_type(&headers);
    if let Some(task) = dap09::hpke_config_task(query.as_deref()) {
        let task = s.aggregator.task_in_role(&task_id(task)?).await?;
        if task.parameters.protocol == cairn_dap_core::Protocol::Dap09 {
            media = cairn_dap_messages::dap09::media_type::HPKE_CONFIG_LIST;
        }
    }
    let body = s
        .aggregator
        .hpke_config_list()
        .await?
        .get_encoded()
        .map_err(|e| Error::Internal(e.to_string()))?;
    let mut resp = body_response(StatusCode::OK, media, body);
    let h = resp.headers_mut();
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("max-age=86400"),
    );
    h.insert(header::VARY, HeaderValue::from_static("accept"));
    h.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    Ok(resp)
}

/// Whether `e` is `unrecognizedTask`.
fn is_unrecognized_task(e: &Error) -> bool {
    matches!(
        e,
        Error::Dap {
            problem: DapProblemType::UnrecognizedTask,
            ..
        }
    )
}

async fn upload(
    State(s): State<AppState>,
    Path(task): Path<String>,
    headers: HeaderMap,
    peer: Option<axum::Extension<axum::extract::ConnectInfo<std::net::SocketAddr>>>,
    body: Bytes,
) -> Result<Response, Error> {
    let task_id = task_id(&task)?;
    // The peer address, when the listener knows it, for the per-source upload limit.
    let source = peer.map(|axum::Extension(axum::extract::ConnectInfo(addr))| addr.ip());
    if dap09::is_dap09_report(&headers) {
        s.aggregator
            .handle_dap09_upload(&task_id, &body, source)
            .await?;
        return Ok(StatusCode::OK.into_response());
    }
    let mut result = s
        .aggregator
        .handle_upload_from(&task_id, &body, source)
        .await;
    // Taskprov: a task advertised in the header is looked at only when it is not held yet
    // (the common upload reads nothing more).
    if let (Err(e), Some(advert)) = (&result, headers.get(cairn_dap_core::taskprov::HEADER))
        && is_unrecognized_task(e)
    {
        s.aggregator
            .provision_in_band(&task_id, advert.as_bytes())
            .await?;
        result = s
            .aggregator
            .handle_upload_from(&task_id, &body, source)
            .await;
    }
    let errors = result?;
    if errors.status.is_empty() {
        return Ok(StatusCode::OK.into_response());
    }
    let body = errors
        .get_encoded()
        .map_err(|e| Error::Internal(e.to_string()))?;
    Ok(body_response(
        StatusCode::OK,
        media_type::UPLOAD_ERRORS,
        body,
    ))
}

/// The aggregation job ID of a helper URL. A malformed one names no job; it is reported only
/// after the task and the bearer token were checked, in DAP-18's order.
async fn aggregation_job_id(
    s: &AppState,
    task_id: &TaskId,
    headers: &HeaderMap,
    job: &str,
) -> Result<AggregationJobId, Error> {
    match job.parse() {
        Ok(id) => Ok(id),
        Err(_) => {
            s.aggregator
                .authorize_leader(task_id, bearer(headers))
                .await?;
            Err(Error::dap(
                DapProblemType::UnrecognizedAggregationJob,
                Some(*task_id),
                "malformed aggregation job ID",
            ))
        }
    }
}

/// Which URL a request about an aggregation job was sent to, so that `Location` can be
/// relative to it.
#[derive(Clone, Copy)]
enum AggregationJobUrl {
    /// `{prefix}/tasks/{task}/aggregation_jobs` (creation).
    Collection,
    /// `{prefix}/tasks/{task}/aggregation_jobs/{job}`.
    Job,
}

/// The answer about an aggregation job: its `AggregationJobResp`, or — while the helper is
/// still preparing it — an empty body with `Retry-After` and the `Location` to poll (with
/// `step=0`, DAP-18 §4.5.3.2).
fn aggregation_job_response(
    status: StatusCode,
    request_url: AggregationJobUrl,
    job_id: &AggregationJobId,
    answer: AggregationJobAnswer,
) -> Response {
    let location = match request_url {
        AggregationJobUrl::Collection => format!("aggregation_jobs/{job_id}"),
        AggregationJobUrl::Job => job_id.to_string(),
    };
    match answer {
        AggregationJobAnswer::Ready(body) => with_location(
            body_response(status, media_type::AGGREGATION_JOB_RESP, body),
            location,
        ),
        AggregationJobAnswer::Processing => {
            let mut resp = with_location(status.into_response(), format!("{location}?step=0"));
            resp.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from(HELPER_RETRY_AFTER_SECS),
            );
            resp
        }
    }
}

async fn aggregation_job_init(
    State(s): State<AppState>,
    Path(task): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Error> {
    let task_id = task_id(&task)?;
    let mut result = s
        .aggregator
        .handle_aggregation_job_init(&task_id, bearer(&headers), &body)
        .await;
    // Taskprov: a task the helper does not hold may be advertised in the header, and only
    // its peer (the bearer token checked first) may make it create the task.
    if let (Err(e), Some(advert)) = (&result, headers.get(cairn_dap_core::taskprov::HEADER))
        && is_unrecognized_task(e)
        && s.aggregator.is_taskprov_peer(bearer(&headers))
    {
        s.aggregator
            .provision_in_band(&task_id, advert.as_bytes())
            .await?;
        result = s
            .aggregator
            .handle_aggregation_job_init(&task_id, bearer(&headers), &body)
            .await;
    }
    let (job_id, answer) = result?;
    Ok(aggregation_job_response(
        StatusCode::CREATED,
        AggregationJobUrl::Collection,
        &job_id,
        answer,
    ))
}

/// The `step` parameter of a query string, if present.
fn step_param(query: Option<&str>) -> Option<&str> {
    query?.split('&').find_map(|kv| kv.strip_prefix("step="))
}

async fn get_aggregation_job(
    State(s): State<AppState>,
    Path((task, job)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Response, Error> {
    let task_id = task_id(&task)?;
    let job_id = aggregation_job_id(&s, &task_id, &headers, &job).await?;
    let answer = s
        .aggregator
        .handle_get_aggregation_job(
            &task_id,
            &job_id,
            bearer(&headers),
            step_param(query.as_deref()),
        )
        .await?;
    Ok(aggregation_job_response(
        StatusCode::OK,
        AggregationJobUrl::Job,
        &job_id,
        answer,
    ))
}

async fn aggregation_job_continue(
    State(s): State<AppState>,
    Path((task, job)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Error> {
    let task_id = task_id(&task)?;
    let job_id = aggregation_job_id(&s, &task_id, &headers, &job).await?;
    let answer = s
        .aggregator
        .handle_aggregation_job_continue(&task_id, &job_id, bearer(&headers), &body)
        .await?;
    Ok(aggregation_job_response(
        StatusCode::OK,
        AggregationJobUrl::Job,
        &job_id,
        answer,
    ))
}

async fn delete_aggregation_job(
    State(s): State<AppState>,
    Path((task, job)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, Error> {
    let task_id = task_id(&task)?;
    let job_id = aggregation_job_id(&s, &task_id, &headers, &job).await?;
    s.aggregator
        .handle_delete_aggregation_job(&task_id, &job_id, bearer(&headers))
        .await?;
    Ok(StatusCode::OK.into_response())
}

async fn aggregate_share(
    State(s): State<AppState>,
    Path(task): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Error> {
    let task_id = task_id(&task)?;
    if dap09::has_media_type(
        &headers,
        cairn_dap_messages::dap09::media_type::AGGREGATE_SHARE_REQ,
    ) {
        let resp = s
            .aggregator
            .handle_dap09_aggregate_share(&task_id, bearer(&headers), &body)
            .await?;
        return Ok(body_response(
            StatusCode::OK,
            cairn_dap_messages::dap09::media_type::AGGREGATE_SHARE,
            resp,
        ));
    }
    let (share_id, resp) = s
        .aggregator
        .handle_aggregate_share(&task_id, bearer(&headers), &body)
        .await?;
    Ok(with_location(
        body_response(StatusCode::CREATED, media_type::AGGREGATE_SHARE, resp),
        format!("aggregate_shares/{}", URL_SAFE_NO_PAD.encode(share_id)),
    ))
}

async fn create_collection_job(
    State(s): State<AppState>,
    Path(task): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Error> {
    let task_id = task_id(&task)?;
    let (job_id, created) = s
        .aggregator
        .handle_create_collection_job(&task_id, bearer(&headers), &body)
        .await?;
    // An identical request names the existing job: 200 with its location, not 201.
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let mut resp = with_location(status.into_response(), format!("collection_jobs/{job_id}"));
    resp.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    Ok(resp)
}

async fn get_collection_job(
    State(s): State<AppState>,
    Path((task, job)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, Error> {
    let task_id = task_id(&task)?;
    let job_id: CollectionJobId = job.parse().map_err(|_| Error::NotFound)?;
    match s
        .aggregator
        .handle_get_collection_job(&task_id, &job_id, bearer(&headers))
        .await?
    {
        CollectionJobStatus::Finished(body) => Ok(body_response(
            StatusCode::OK,
            media_type::COLLECTION_JOB_RESP,
            body,
        )),
        CollectionJobStatus::Pending {
            reason,
            report_count,
        } => {
            let mut resp = StatusCode::ACCEPTED.into_response();
            let h = resp.headers_mut();
            h.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            if let Ok(v) = HeaderValue::from_str(&reason) {
                h.insert(COLLECTION_STATE_HEADER, v);
            }
            h.insert(BATCH_REPORT_COUNT_HEADER, HeaderValue::from(report_count));
            Ok(resp)
        }
        CollectionJobStatus::Failed(problem) => Err(Error::dap(
            problem,
            Some(task_id),
            "the collection job failed",
        )),
    }
}

async fn delete_collection_job(
    State(s): State<AppState>,
    Path((task, job)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, Error> {
    let task_id = task_id(&task)?;
    let job_id: CollectionJobId = job.parse().map_err(|_| Error::NotFound)?;
    s.aggregator
        .handle_delete_collection_job(&task_id, &job_id, bearer(&headers))
        .await?;
    Ok(StatusCode::OK.into_response())
}

/// The control plane's task creation request (JSON). Secrets travel only here, over the
/// bearer-protected control API, and are never logged.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CreateTaskRequest {
    /// The task's public parameters.
    #[serde(flatten)]
    pub parameters: TaskParameters,
    /// The VDAF verification key, unpadded URL-safe base64 of 32 bytes.
    pub vdaf_verify_key: String,
    /// The collector's `HpkeConfig`, encoded, in unpadded URL-safe base64.
    pub collector_hpke_config: String,
    /// The leader→helper bearer token.
    pub aggregator_auth_token: String,
    /// Leader only: the collector's bearer token.
    #[serde(default)]
    pub collector_auth_token: Option<String>,
    /// Seconds after which reports are too old and deleted; absent keeps everything.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report_expiry_age: Option<u64>,
}

impl CreateTaskRequest {
    /// The task as held by an aggregator in `role`.
    pub fn into_task(self, role: AggregatorRole) -> Result<AggregatorTask, Error> {
        let bad = |what: &str| Error::BadRequest(format!("invalid {what}"));
        let key = URL_SAFE_NO_PAD
            .decode(&self.vdaf_verify_key)
            .map_err(|_| bad("vdaf_verify_key"))?;
        let collector = URL_SAFE_NO_PAD
            .decode(&self.collector_hpke_config)
            .ok()
            .and_then(|b| HpkeConfig::get_decoded(&b).ok())
            .ok_or_else(|| bad("collector_hpke_config"))?;
        Ok(AggregatorTask {
            parameters: self.parameters,
            role,
            vdaf_verify_key: <[u8; 32]>::try_from(key.as_slice())
                .map_err(|_| bad("vdaf_verify_key"))?,
            collector_hpke_config: collector,
            aggregator_auth_token: (role == AggregatorRole::Leader)
                .then(|| BearerToken::new(self.aggregator_auth_token.clone())),
            aggregator_auth_token_hash: (role == AggregatorRole::Helper)
                .then(|| TokenHash::of(&self.aggregator_auth_token)),
            collector_auth_token_hash: self.collector_auth_token.as_deref().map(TokenHash::of),
            report_expiry_age: self.report_expiry_age,
        })
    }
}

fn check_control(s: &AppState, headers: &HeaderMap) -> Result<(), Error> {
    match (&s.control_token, bearer(headers)) {
        (Some(h), Some(t)) if h.matches(t) => Ok(()),
        (None, _) => Err(Error::NotFound),
        _ => Err(Error::Unauthorized),
    }
}

async fn create_task(
    State(s): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Error> {
    check_control(&s, &headers)?;
    let req: CreateTaskRequest =
        serde_json::from_slice(&body).map_err(|e| Error::BadRequest(format!("task JSON: {e}")))?;
    let task = req.into_task(s.aggregator.role())?;
    let id = task.parameters.task_id;
    s.aggregator.add_task(&task).await?;
    tracing::info!(task = %id, role = s.aggregator.role().as_str(), "task created");
    Ok((
        StatusCode::CREATED,
        Json(serde_json::json!({ "task_id": id.to_string() })),
    )
        .into_response())
}

async fn list_tasks(State(s): State<AppState>, headers: HeaderMap) -> Result<Response, Error> {
    check_control(&s, &headers)?;
    let ids: Vec<String> = s
        .aggregator
        .datastore()
        .get_task_ids()
        .await?
        .iter()
        .map(TaskId::to_string)
        .collect();
    Ok(Json(serde_json::json!({ "task_ids": ids })).into_response())
}

/// A task as `GET /control/tasks/{task_id}` shows it: its parameters and this aggregator's
/// settings, never a secret (the verification key and tokens stay in the datastore).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TaskView {
    /// The task ID (unpadded base64url).
    pub task_id: String,
    /// `leader` or `helper`.
    pub role: String,
    /// The shared parameters.
    pub parameters: TaskParameters,
    /// The collector's encoded `HpkeConfig` (unpadded base64url).
    pub collector_hpke_config: String,
    /// Seconds after which reports expire (`None`: never).
    pub report_expiry_age: Option<u64>,
}

async fn get_task(
    State(s): State<AppState>,
    Path(task): Path<String>,
    headers: HeaderMap,
) -> Result<Response, Error> {
    check_control(&s, &headers)?;
    let task_id = task_id(&task)?;
    let task = s
        .aggregator
        .datastore()
        .get_task(&task_id)
        .await?
        .ok_or(Error::NotFound)?;
    let config = task
        .collector_hpke_config
        .get_encoded()
        .map_err(|e| Error::Internal(e.to_string()))?;
    Ok(Json(TaskView {
        task_id: task_id.to_string(),
        role: task.role.as_str().to_owned(),
        parameters: task.parameters,
        collector_hpke_config: URL_SAFE_NO_PAD.encode(config),
        report_expiry_age: task.report_expiry_age,
    })
    .into_response())
}

async fn delete_task(
    State(s): State<AppState>,
    Path(task): Path<String>,
    headers: HeaderMap,
) -> Result<Response, Error> {
    check_control(&s, &headers)?;
    let task_id = task_id(&task)?;
    if !s.aggregator.datastore().delete_task(&task_id).await? {
        return Err(Error::NotFound);
    }
    tracing::info!(task = %task_id, role = s.aggregator.role().as_str(), "task deleted");
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `GET /control/tasks/{task_id}/metrics`: what the aggregator holds for the task.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct TaskMetrics {
    /// Upload outcomes by reason (`accepted`, `report_replayed`, …; the leader's).
    pub upload_counters: std::collections::BTreeMap<String, u64>,
    /// Stored reports by state (`start`, `aggregating`, `aggregated`, `failed`; the
    /// leader's).
    pub reports: std::collections::BTreeMap<String, u64>,
    /// Report IDs kept for replay protection.
    pub replay_records: u64,
    /// Aggregation jobs (the leader's, or the helper's).
    pub aggregation_jobs: u64,
    /// Collection jobs (the leader's).
    pub collection_jobs: u64,
}

async fn task_metrics(
    State(s): State<AppState>,
    Path(task): Path<String>,
    headers: HeaderMap,
) -> Result<Response, Error> {
    check_control(&s, &headers)?;
    let task_id = task_id(&task)?;
    let ds = s.aggregator.datastore();
    if ds.get_task(&task_id).await?.is_none() {
        return Err(Error::NotFound);
    }
    let rows = ds.count_task_rows(&task_id).await?;
    Ok(Json(TaskMetrics {
        upload_counters: ds
            .get_upload_counters(&task_id)
            .await?
            .into_iter()
            .collect(),
        reports: ds
            .count_client_reports_by_state(&task_id)
            .await?
            .into_iter()
            .collect(),
        replay_records: rows.aggregated_reports,
        aggregation_jobs: rows.aggregation_jobs + rows.helper_aggregation_jobs,
        collection_jobs: rows.collection_jobs,
    })
    .into_response())
}

async fn upload_counters(
    State(s): State<AppState>,
    Path(task): Path<String>,
    headers: HeaderMap,
) -> Result<Response, Error> {
    check_control(&s, &headers)?;
    let task_id = task_id(&task)?;
    let counters = s
        .aggregator
        .datastore()
        .get_upload_counters(&task_id)
        .await?;
    let map: serde_json::Map<String, serde_json::Value> = counters
        .into_iter()
        .map(|(k, v)| (k, serde_json::Value::from(v)))
        .collect();
    Ok(Json(map).into_response())
}

/// One HPKE key as the control plane shows it (never the private key).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HpkeKeyView {
    /// The config ID.
    pub config_id: u8,
    /// `pending`, `active` or `expired`.
    pub state: HpkeKeyState,
    /// The encoded `HpkeConfig`, unpadded URL-safe base64.
    pub config: String,
}

/// Body of `PATCH /control/hpke_keys/{config_id}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HpkeKeyStateChange {
    /// The new state.
    pub state: HpkeKeyState,
}

fn key_view(config: &HpkeConfig, state: HpkeKeyState) -> Result<HpkeKeyView, Error> {
    Ok(HpkeKeyView {
        config_id: config.id.0,
        state,
        config: URL_SAFE_NO_PAD.encode(
            config
                .get_encoded()
                .map_err(|e| Error::Internal(e.to_string()))?,
        ),
    })
}

fn config_id(s: &str) -> Result<HpkeConfigId, Error> {
    s.parse::<u8>()
        .map(HpkeConfigId)
        .map_err(|_| Error::BadRequest("HPKE config ID must be 0 to 255".into()))
}

async fn list_hpke_keys(State(s): State<AppState>, headers: HeaderMap) -> Result<Response, Error> {
    check_control(&s, &headers)?;
    let keys = s
        .aggregator
        .hpke_keys()
        .await?
        .iter()
        .map(|(c, st)| key_view(c, *st))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Json(keys).into_response())
}

async fn create_hpke_key(State(s): State<AppState>, headers: HeaderMap) -> Result<Response, Error> {
    check_control(&s, &headers)?;
    let config = s.aggregator.create_hpke_key().await?;
    tracing::info!(config_id = config.id.0, "HPKE key created (pending)");
    Ok((
        StatusCode::CREATED,
        Json(key_view(&config, HpkeKeyState::Pending)?),
    )
        .into_response())
}

async fn set_hpke_key_state(
    State(s): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Error> {
    check_control(&s, &headers)?;
    let id = config_id(&id)?;
    let change: HpkeKeyStateChange =
        serde_json::from_slice(&body).map_err(|e| Error::BadRequest(format!("state JSON: {e}")))?;
    s.aggregator.set_hpke_key_state(id, change.state).await?;
    tracing::info!(
        config_id = id.0,
        state = change.state.as_str(),
        "HPKE key state changed"
    );
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn delete_hpke_key(
    State(s): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, Error> {
    check_control(&s, &headers)?;
    let id = config_id(&id)?;
    s.aggregator.delete_hpke_key(id).await?;
    tracing::info!(config_id = id.0, "HPKE key deleted");
    Ok(StatusCode::NO_CONTENT.into_response())
}
