//! A client of the aggregators' control plane (`/control/…`, see [`crate::http`]): task creation
//! on a leader and helper pair, task deletion, and HPKE key management. `cairn dap task create`, `cairn dap
//! hpke-key` and the tests of `cairn serve` use it; the secrets it sends travel only over the
//! bearer-protected control API.

use crate::datastore::HpkeKeyState;
use crate::http::{CreateTaskRequest, HpkeKeyStateChange, HpkeKeyView};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use cairn_dap_core::TaskParameters;

/// Why a control-plane call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ControlError {
    /// The system's random number generator failed.
    #[error("no randomness available")]
    Randomness,
    /// The aggregator could not be reached (or its answer not read).
    #[error("reaching the {aggregator}: {source}")]
    Unreachable {
        /// `leader`, `helper` or the aggregator's URL.
        aggregator: String,
        /// What the HTTP client said.
        #[source]
        source: reqwest::Error,
    },
    /// An aggregator refused to create the task; `detail` is its problem document's detail,
    /// else its body.
    #[error("the {aggregator} refused the task ({status}): {detail}")]
    TaskRefused {
        /// `leader` or `helper`.
        aggregator: &'static str,
        /// The HTTP status.
        status: reqwest::StatusCode,
        /// Why.
        detail: String,
    },
    /// The aggregator answered a key-management request with an error status.
    #[error("aggregator answered {status}: {detail}")]
    Refused {
        /// The HTTP status.
        status: reqwest::StatusCode,
        /// Its problem document's detail, else its body.
        detail: String,
    },
}

/// 32 random bytes (task IDs, tokens, VDAF verification keys).
pub fn random_bytes() -> Result<[u8; 32], ControlError> {
    use aws_lc_rs::rand::SecureRandom;
    let mut b = [0u8; 32];
    aws_lc_rs::rand::SystemRandom::new()
        .fill(&mut b)
        .map_err(|_| ControlError::Randomness)?;
    Ok(b)
}

/// Secrets for [`create_task`].
#[derive(Debug, Clone)]
pub struct TaskTokens {
    /// The leader's control-plane token.
    pub leader_control: String,
    /// The helper's control-plane token.
    pub helper_control: String,
    /// The token the collector will present to the leader.
    pub collector: String,
}

/// Creates the task on both aggregators (helper first, so a task the helper refused never
/// takes uploads at the leader). A random VDAF verification key and leader→helper token are
/// generated and sent only to the aggregators. `collector_config` is the collector's encoded
/// `HpkeConfig`, unpadded base64url.
pub async fn create_task(
    http: &reqwest::Client,
    params: &TaskParameters,
    collector_config: &str,
    tokens: &TaskTokens,
) -> Result<(), ControlError> {
    let at = ControlUrls {
        leader: &params.leader_endpoint,
        helper: &params.helper_endpoint,
    };
    create_task_via(http, params, at, collector_config, tokens).await
}

/// Where [`create_task_via`] reaches each aggregator's control plane.
#[derive(Debug, Clone, Copy)]
pub struct ControlUrls<'a> {
    /// The leader's base URL.
    pub leader: &'a str,
    /// The helper's base URL.
    pub helper: &'a str,
}

/// [`create_task`], reaching the control planes at `at` instead of the endpoints the task
/// names: for a caller that reaches an aggregator by another URL than clients do (the
/// endpoints are part of the `TaskConfiguration` every HPKE AAD binds, so the task must name
/// the clients' URL).
pub async fn create_task_via(
    http: &reqwest::Client,
    params: &TaskParameters,
    at: ControlUrls<'_>,
    collector_config: &str,
    tokens: &TaskTokens,
) -> Result<(), ControlError> {
    let aggregator_token = URL_SAFE_NO_PAD.encode(random_bytes()?);
    let verify_key = URL_SAFE_NO_PAD.encode(random_bytes()?);
    for (name, base, control, collector) in [
        ("helper", at.helper, &tokens.helper_control, None),
        (
            "leader",
            at.leader,
            &tokens.leader_control,
            Some(tokens.collector.clone()),
        ),
    ] {
        let req = CreateTaskRequest {
            parameters: params.clone(),
            vdaf_verify_key: verify_key.clone(),
            collector_hpke_config: collector_config.to_string(),
            aggregator_auth_token: aggregator_token.clone(),
            collector_auth_token: collector,
            report_expiry_age: None,
        };
        let resp = http
            .post(TaskParameters::url(base, "control/tasks"))
            .bearer_auth(control)
            .json(&req)
            .send()
            .await
            .map_err(|source| ControlError::Unreachable {
                aggregator: name.into(),
                source,
            })?;
        if let Err((status, detail)) = check(name, resp).await? {
            return Err(ControlError::TaskRefused {
                aggregator: name,
                status,
                detail,
            });
        }
    }
    Ok(())
}

/// Deletes the task at the aggregator at `base` with its control-plane `token`, everything
/// it holds for the task included; false if the aggregator has no such task.
pub async fn delete_task(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    task_id: &cairn_dap_messages::TaskId,
) -> Result<bool, ControlError> {
    let resp = http
        .delete(TaskParameters::url(
            base,
            &format!("control/tasks/{task_id}"),
        ))
        .bearer_auth(token)
        .send()
        .await
        .map_err(|source| ControlError::Unreachable {
            aggregator: base.to_owned(),
            source,
        })?;
    match check(base, resp).await? {
        Ok(_) => Ok(true),
        Err((reqwest::StatusCode::NOT_FOUND, _)) => Ok(false),
        Err((status, detail)) => Err(ControlError::Refused { status, detail }),
    }
}

/// What to do with an aggregator's HPKE keys (its configuration IDs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HpkeKeyCommand {
    /// List them with their states.
    List,
    /// Generate a new one (pending: decrypts, not yet advertised).
    Create,
    /// Advertise one.
    Activate(u8),
    /// Stop advertising one (it still decrypts reports in flight).
    Expire(u8),
    /// Delete an expired one.
    Delete(u8),
}

/// Runs `command` on the aggregator at `base` with its control-plane `token`; the keys it
/// answers with (all of them for `List`, the new one for `Create`, none otherwise).
pub async fn hpke_keys(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    command: HpkeKeyCommand,
) -> Result<Vec<HpkeKeyView>, ControlError> {
    let url = |path: &str| TaskParameters::url(base, path);
    let one = |id: u8| url(&format!("control/hpke_keys/{id}"));
    let state = |state| HpkeKeyStateChange { state };
    let req = match command {
        HpkeKeyCommand::List => http.get(url("control/hpke_keys")),
        HpkeKeyCommand::Create => http.post(url("control/hpke_keys")),
        HpkeKeyCommand::Activate(id) => http.patch(one(id)).json(&state(HpkeKeyState::Active)),
        HpkeKeyCommand::Expire(id) => http.patch(one(id)).json(&state(HpkeKeyState::Expired)),
        HpkeKeyCommand::Delete(id) => http.delete(one(id)),
    };
    let unreachable = |source| ControlError::Unreachable {
        aggregator: base.to_owned(),
        source,
    };
    let resp = req.bearer_auth(token).send().await.map_err(unreachable)?;
    let body = check(base, resp)
        .await?
        .map_err(|(status, detail)| ControlError::Refused { status, detail })?;
    Ok(
        if let Ok(keys) = serde_json::from_str::<Vec<HpkeKeyView>>(&body) {
            keys
        } else if let Ok(key) = serde_json::from_str::<HpkeKeyView>(&body) {
            vec![key]
        } else {
            Vec::new()
        },
    )
}

/// The body of a successful answer, or the error status with the problem document's detail
/// (else the body).
async fn check(
    aggregator: &str,
    resp: reqwest::Response,
) -> Result<Result<String, (reqwest::StatusCode, String)>, ControlError> {
    let status = resp.status();
    if !status.is_success() {
        let body = resp.text().await.unwrap_or_default();
        let detail = serde_json::from_str::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v.get("detail").and_then(|d| d.as_str()).map(str::to_string))
            .unwrap_or(body);
        return Ok(Err((status, detail)));
    }
    resp.text()
        .await
        .map(Ok)
        .map_err(|source| ControlError::Unreachable {
            aggregator: aggregator.to_owned(),
            source,
        })
}
