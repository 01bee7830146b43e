//! A DAP task on `cairn serve`'s leader and helper, created through both control planes, with
//! the collector's keys: what tests that upload and collect need.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use cairn_dap_aggregator::control_client;
use cairn_dap_core::{HpkeKeypair, TaskParameters};
use cairn_dap_messages::{BatchMode, Encode, HpkeConfigId, TaskId};

/// The collector's bearer token of [`task`]'s tasks.
pub const COLLECTOR_TOKEN: &str = "collector-token-of-the-test";

/// A leader-selected Prio3Sum task of batches of exactly `batch_size` reports.
pub fn task_parameters(dap: &cairn::dap_serve::DapPair, batch_size: u64) -> TaskParameters {
    TaskParameters {
        task_id: TaskId::from_bytes(control_client::random_bytes().unwrap()),
        leader_endpoint: dap.leader_url.clone(),
        helper_endpoint: dap.helper_url.clone(),
        time_precision: 60,
        min_batch_size: batch_size,
        batch_mode: BatchMode::LeaderSelected,
        vdaf: serde_json::from_str(r#"{"type":"Prio3Sum","max_measurement":1000}"#).unwrap(),
        task_info: "cairn test".into(),
        task_interval: None,
        max_batch_size: Some(batch_size),
        differential_privacy: None,
        protocol: Default::default(),
    }
}

/// The control tokens that create a task on `dap` with [`COLLECTOR_TOKEN`].
pub fn tokens(dap: &cairn::dap_serve::DapPair) -> control_client::TaskTokens {
    control_client::TaskTokens {
        leader_control: dap.control_token().to_owned(),
        helper_control: dap.control_token().to_owned(),
        collector: COLLECTOR_TOKEN.into(),
    }
}

/// The collector's HPKE keypair and its config as the control planes take it (base64url).
pub fn collector_keys() -> (HpkeKeypair, String) {
    let keys = HpkeKeypair::generate(HpkeConfigId(1));
    let config = URL_SAFE_NO_PAD.encode(keys.config().get_encoded().unwrap());
    (keys, config)
}

/// Creates `params` on both aggregators of `dap`; returns the collector for it.
pub async fn create_task(
    dap: &cairn::dap_serve::DapPair,
    params: &TaskParameters,
    http: &reqwest::Client,
) -> cairn_dap_collector::Collector {
    let (keys, config) = collector_keys();
    control_client::create_task(http, params, &config, &tokens(dap))
        .await
        .unwrap();
    cairn_dap_collector::Collector::new(params.clone(), keys, COLLECTOR_TOKEN.into(), http.clone())
}

/// Uploads `values` to the task `params` now; panics if any report is refused.
pub async fn upload(params: &TaskParameters, values: &[u64], http: &reqwest::Client) {
    let client = cairn_dap_client::Client::new(params.clone(), http.clone())
        .await
        .unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let ms: Vec<cairn_dap_core::Measurement> = values
        .iter()
        .map(|v| cairn_dap_core::Measurement::Integer(*v))
        .collect();
    let refused = client.upload_measurements(&ms, now).await.unwrap();
    assert!(refused.status.is_empty(), "{refused:?}");
}
