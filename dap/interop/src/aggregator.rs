//! The interop aggregator: a leader and a helper over one datastore behind one port, tasks
//! from `add_task`, DAP requests routed to the role that serves them.

use super::{
    ApiError, ApiResult, Fields, InteropError, answer, parse_body, ready, serve, task_parameters,
};
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::response::Response;
use axum::routing::post;
use cairn_dap_aggregator::{
    Aggregator, AggregatorParameters, AggregatorRole, AggregatorTask, BearerToken, Datastore,
    DatastoreKey, TokenHash,
};
use cairn_dap_core::{Clock, RealClock};
use cairn_dap_messages::{Decode, HpkeConfig};
use serde_json::{Map, Value};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tower::ServiceExt;

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
        driver_period: Duration,
    ) -> Result<InteropAggregator, InteropError> {
        let key = DatastoreKey::generate_base64url()
            .and_then(|text| DatastoreKey::from_base64url(&text))
            .map_err(InteropError::DatastoreKey)?;
        let ds = Datastore::connect(database_url, key)
            .await
            .map_err(InteropError::Datastore)?;
        let params = AggregatorParameters::default();
        let clock: Arc<dyn Clock> = Arc::new(RealClock);
        // One after the other: the first creates the HPKE key both then serve.
        let leader = Aggregator::new(
            ds.clone(),
            clock.clone(),
            AggregatorRole::Leader,
            params.clone(),
        )
        .await
        .map_err(InteropError::Aggregator)?;
        let helper = Aggregator::new(ds, clock, AggregatorRole::Helper, params)
            .await
            .map_err(InteropError::Aggregator)?;
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

/// Runs an interop aggregator on `0.0.0.0:port` until `shutdown` resolves: over `database_url`,
/// or when it is `None` over a fresh SQLite database in a temporary directory that is removed
/// on return.
pub async fn run_aggregator(
    port: u16,
    database_url: Option<&str>,
    driver_period: Duration,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), InteropError> {
    let dir = tempfile::tempdir().map_err(InteropError::TempDir)?;
    let url = match database_url {
        Some(url) => url.to_owned(),
        None => format!(
            "sqlite://{}?mode=rwc",
            dir.path().join("interop.db").display()
        ),
    };
    let agg = InteropAggregator::start(&url, driver_period).await?;
    let served = serve(agg.router.clone(), port, "aggregator", shutdown).await;
    agg.shutdown().await;
    served
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
        report_expiry_age: None,
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
