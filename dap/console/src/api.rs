//! The JSON API (`/console/api/…`), authenticated by an account's API token
//! (`Authorization: Bearer <prefix>.<secret>`). A token acts for its account only: every
//! lookup takes the token's account, so another account's task answers 404. Bearer requests
//! carry no ambient credential, so they need no CSRF token. Errors are RFC 9457 problem
//! documents.

use crate::metric::MetricForm;
use crate::provision;
use crate::store::StoredResult;
use crate::{Console, ConsoleError, auth};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use std::sync::Arc;

type St = State<Arc<Console>>;

pub(crate) fn routes() -> Router<Arc<Console>> {
    Router::new()
        .route("/api/account", get(account))
        .route("/api/tasks", get(list_tasks).post(create_task))
        .route("/api/tasks/{task}", get(get_task).delete(delete_task))
        .route(
            "/api/tasks/{task}/results",
            get(list_results).post(store_result),
        )
        .route("/api/tokens", get(list_tokens))
        .route("/api/helpers", get(list_helpers).post(pair_helper))
        .route(
            "/api/collector_credentials",
            get(list_credentials).post(add_credential),
        )
}

/// The account the request's API token belongs to.
async fn token_account(c: &Console, headers: &HeaderMap) -> Result<String, ConsoleError> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or(ConsoleError::Unauthorized)?;
    let parts = auth::parse_api_token(token).ok_or(ConsoleError::Unauthorized)?;
    let (account, hash) = c
        .store
        .get_api_token(&parts.prefix)
        .await?
        .ok_or(ConsoleError::Unauthorized)?;
    if !auth::constant_time_eq(&hash, &parts.hash) {
        return Err(ConsoleError::Unauthorized);
    }
    Ok(account)
}

async fn account(State(c): St, headers: HeaderMap) -> Result<Response, ConsoleError> {
    let account = token_account(&c, &headers).await?;
    Ok(Json(serde_json::json!({ "account_id": account })).into_response())
}

async fn list_tasks(State(c): St, headers: HeaderMap) -> Result<Response, ConsoleError> {
    let account = token_account(&c, &headers).await?;
    let tasks: Vec<_> = c
        .store
        .get_tasks(&account)
        .await?
        .into_iter()
        .map(|t| serde_json::json!({ "task_id": t.task_id, "name": t.name, "created_at": t.created_at }))
        .collect();
    Ok(Json(tasks).into_response())
}

async fn get_task(
    State(c): St,
    headers: HeaderMap,
    Path(task_id): Path<String>,
) -> Result<Response, ConsoleError> {
    let account = token_account(&c, &headers).await?;
    let task = c
        .store
        .get_task(&account, &task_id)
        .await?
        .ok_or(ConsoleError::NotFound)?;
    let (metric, params) = provision::parse_task(&task)?;
    let status = provision::task_status(&c, &task, &params).await?;
    Ok(Json(serde_json::json!({
        "task_id": task.task_id,
        "metric": metric,
        "parameters": params,
        "helper": task.helper,
        "credential_id": task.credential_id,
        "status": status,
    }))
    .into_response())
}

async fn create_task(
    State(c): St,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, ConsoleError> {
    let account = token_account(&c, &headers).await?;
    let form: MetricForm = serde_json::from_slice(&body)
        .map_err(|e| ConsoleError::BadRequest(format!("metric JSON: {e}")))?;
    let created = provision::create_task(&c, &account, &form).await?;
    let params: serde_json::Value = serde_json::from_str(&created.task.parameters)
        .map_err(|_| ConsoleError::Internal("parameters"))?;
    Ok((
        StatusCode::CREATED,
        Json(serde_json::json!({
            "task_id": created.task.task_id,
            "parameters": params,
            "collector_auth_token": created.collector_auth_token,
        })),
    )
        .into_response())
}

async fn delete_task(
    State(c): St,
    headers: HeaderMap,
    Path(task_id): Path<String>,
) -> Result<Response, ConsoleError> {
    let account = token_account(&c, &headers).await?;
    provision::delete_task(&c, &account, &task_id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// A collected result to keep for the task page's chart (the collector decrypted it; the
/// console never can).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ResultBody {
    /// Names the batch: storing the same batch again replaces it. Absent: a new batch.
    #[serde(default)]
    batch: Option<String>,
    /// The interval the batch covers, in seconds.
    interval: IntervalBody,
    report_count: u64,
    aggregate_result: serde_json::Value,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct IntervalBody {
    start: u64,
    duration: u64,
}

async fn store_result(
    State(c): St,
    headers: HeaderMap,
    Path(task_id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Response, ConsoleError> {
    let account = token_account(&c, &headers).await?;
    let task = c
        .store
        .get_task(&account, &task_id)
        .await?
        .ok_or(ConsoleError::NotFound)?;
    let body: ResultBody = serde_json::from_slice(&body)
        .map_err(|e| ConsoleError::BadRequest(format!("result JSON: {e}")))?;
    let (metric, _) = provision::parse_task(&task)?;
    crate::chart::check(&metric, &body.aggregate_result).map_err(ConsoleError::BadRequest)?;
    let batch = match body.batch {
        Some(b) if !b.is_empty() && b.len() <= 200 => b,
        Some(_) => {
            return Err(ConsoleError::BadRequest(
                "batch: 1 to 200 characters".into(),
            ));
        }
        None => auth::random_token::<16>().ok_or(ConsoleError::Internal("no randomness"))?,
    };
    let result = StoredResult {
        batch,
        interval_start: body.interval.start,
        interval_duration: body.interval.duration,
        report_count: body.report_count,
        aggregate_result: body.aggregate_result,
        stored_at: c.now(),
    };
    if !c.store.put_result(&account, &task_id, &result).await? {
        return Err(ConsoleError::NotFound);
    }
    Ok((StatusCode::CREATED, Json(result)).into_response())
}

async fn list_results(
    State(c): St,
    headers: HeaderMap,
    Path(task_id): Path<String>,
) -> Result<Response, ConsoleError> {
    let account = token_account(&c, &headers).await?;
    if c.store.get_task(&account, &task_id).await?.is_none() {
        return Err(ConsoleError::NotFound);
    }
    Ok(Json(
        c.store
            .get_results(&account, &task_id, RESULTS_KEPT)
            .await?,
    )
    .into_response())
}

/// How many stored results the API and the chart show (the newest).
pub(crate) const RESULTS_KEPT: u32 = 100;

async fn list_tokens(State(c): St, headers: HeaderMap) -> Result<Response, ConsoleError> {
    let account = token_account(&c, &headers).await?;
    Ok(Json(c.store.get_api_tokens(&account).await?).into_response())
}

async fn list_helpers(State(c): St, headers: HeaderMap) -> Result<Response, ConsoleError> {
    let account = token_account(&c, &headers).await?;
    let mut helpers = serde_json::to_value(c.store.get_helpers(&account).await?)
        .map_err(|_| ConsoleError::Internal("helpers JSON"))?;
    if let (Some(list), Some(shared)) = (helpers.as_array_mut(), &c.shared_helper) {
        list.insert(
            0,
            serde_json::json!({ "helper_id": provision::SHARED_HELPER, "name": "shared", "dap_url": shared.url }),
        );
    }
    Ok(Json(helpers).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PairHelper {
    name: String,
    dap_url: String,
    control_token: String,
}

async fn pair_helper(
    State(c): St,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, ConsoleError> {
    let account = token_account(&c, &headers).await?;
    let req: PairHelper = serde_json::from_slice(&body)
        .map_err(|e| ConsoleError::BadRequest(format!("helper JSON: {e}")))?;
    let id = crate::pages::pair_helper(
        &c,
        &account,
        req.name.trim(),
        req.dap_url.trim(),
        &req.control_token,
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(serde_json::json!({ "helper_id": id })),
    )
        .into_response())
}

async fn list_credentials(State(c): St, headers: HeaderMap) -> Result<Response, ConsoleError> {
    let account = token_account(&c, &headers).await?;
    Ok(Json(c.store.get_credentials(&account).await?).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AddCredential {
    name: String,
    hpke_config: String,
}

async fn add_credential(
    State(c): St,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, ConsoleError> {
    let account = token_account(&c, &headers).await?;
    let req: AddCredential = serde_json::from_slice(&body)
        .map_err(|e| ConsoleError::BadRequest(format!("credential JSON: {e}")))?;
    let name = req.name.trim();
    if name.is_empty() || name.len() > 100 {
        return Err(ConsoleError::BadRequest(
            "name the credential (up to 100 characters)".into(),
        ));
    }
    let config = crate::pages::check_hpke_config(&req.hpke_config)?;
    let id = auth::random_token::<16>().ok_or(ConsoleError::Internal("no randomness"))?;
    c.store
        .put_credential(&id, &account, name, &config, "api", c.now())
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(serde_json::json!({ "credential_id": id })),
    )
        .into_response())
}
