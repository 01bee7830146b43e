//! The Cairn side of the interop tests: a leader and a helper on loopback, each on its own
//! SQLite file, with the real clock and their drivers running, as `cairn dap serve` runs them.

#![allow(clippy::unwrap_used, clippy::expect_used, dead_code, unreachable_pub)] // shared by several test binaries

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use cairn_dap_aggregator::{
    Aggregator, AggregatorParameters, AggregatorRole, CreateTaskRequest, Datastore, DatastoreKey,
};
use cairn_dap_core::{Protocol, RealClock, TaskParameters, VdafInstance};
use cairn_dap_messages::{BatchMode, Duration, Interval, Query, TaskId, Time};
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

pub const PRECISION: u64 = 300;
const AGG_TOKEN: &str = "leader-to-helper-secret";
pub const COLLECTOR_TOKEN: &str = "collector-secret";
const CONTROL_TOKEN: &str = "control-secret";

/// A Cairn leader and helper on loopback with their drivers running.
pub struct Cairn {
    pub leader_url: String,
    pub helper_url: String,
    pub http: reqwest::Client,
    drivers: Vec<tokio::task::JoinHandle<()>>,
    _dir: tempfile::TempDir,
}

impl Drop for Cairn {
    fn drop(&mut self) {
        for d in &self.drivers {
            d.abort();
        }
    }
}

async fn aggregator(path: &std::path::Path, role: AggregatorRole) -> Aggregator {
    let url = format!("sqlite://{}?mode=rwc", path.display());
    let ds = Datastore::connect(&url, DatastoreKey::from_bytes(&[5; 32]).unwrap())
        .await
        .unwrap();
    Aggregator::new(
        ds,
        Arc::new(RealClock),
        role,
        AggregatorParameters::default(),
    )
    .await
    .unwrap()
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

impl Cairn {
    pub async fn start() -> Cairn {
        let dir = tempfile::tempdir().unwrap();
        let leader = aggregator(&dir.path().join("leader.db"), AggregatorRole::Leader).await;
        let helper = aggregator(&dir.path().join("helper.db"), AggregatorRole::Helper).await;
        let period = std::time::Duration::from_millis(100);
        let drivers = vec![leader.spawn_drivers(period), helper.spawn_drivers(period)];
        Cairn {
            leader_url: serve(leader).await,
            helper_url: serve(helper).await,
            http: reqwest::Client::new(),
            drivers,
            _dir: dir,
        }
    }

    /// A fresh `dap-09` task on both aggregators whose aggregate shares are sealed to
    /// `collector_config` (an encoded `HpkeConfig`).
    pub async fn task(
        &self,
        vdaf: VdafInstance,
        batch_mode: BatchMode,
        min_batch_size: u64,
        collector_config: &[u8],
    ) -> TaskParameters {
        static NEXT: AtomicU8 = AtomicU8::new(1);
        let mut id = [0x09u8; 32];
        id[0] = NEXT.fetch_add(1, Ordering::Relaxed);
        let params = TaskParameters {
            task_id: TaskId::from_bytes(id),
            leader_endpoint: self.leader_url.clone(),
            helper_endpoint: self.helper_url.clone(),
            time_precision: PRECISION,
            min_batch_size,
            batch_mode,
            vdaf,
            task_info: "janus interop".into(),
            task_interval: None,
            max_batch_size: None,
            differential_privacy: None,
            protocol: Protocol::Dap09,
        };
        for (base, collector_token) in [
            (&self.leader_url, Some(COLLECTOR_TOKEN.to_string())),
            (&self.helper_url, None),
        ] {
            let req = CreateTaskRequest {
                parameters: params.clone(),
                vdaf_verify_key: URL_SAFE_NO_PAD.encode([42u8; 32]),
                collector_hpke_config: URL_SAFE_NO_PAD.encode(collector_config),
                aggregator_auth_token: AGG_TOKEN.into(),
                collector_auth_token: collector_token,
                report_expiry_age: None,
            };
            let resp = self
                .http
                .post(format!("{base}control/tasks"))
                .bearer_auth(CONTROL_TOKEN)
                .json(&req)
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 201, "{}", resp.text().await.unwrap());
        }
        params
    }
}

pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A time-interval query (in precision units) around now: reports taken during the test fall
/// inside it whatever boundary the clock crosses.
pub fn query_around_now(mode: BatchMode) -> Query {
    match mode {
        BatchMode::LeaderSelected => Query::LeaderSelected,
        _ => Query::TimeInterval {
            batch_interval: Interval::new(Time(now() / PRECISION - 1), Duration(3)).unwrap(),
        },
    }
}
