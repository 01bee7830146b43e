//! The interop client: `/internal/test/upload` shards, seals and uploads one measurement with
//! Cairn's DAP client.

use super::{
    ApiError, ApiResult, Fields, InteropError, answer, http_client, measurement_text, parse_body,
    ready, task_parameters,
};
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::routing::post;
use cairn_dap_core::{Clock, RealClock};
use serde_json::Map;

/// The interop client's router: `/internal/test/ready` and `/internal/test/upload`.
pub fn client_router() -> Result<Router, InteropError> {
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
