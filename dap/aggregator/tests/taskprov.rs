//! Taskprov end to end: a leader and a helper that share a `verify_key_init` and a bearer token
//! as taskprov peers, and no task made through any control plane. The client's uploads
//! advertise the task (`dap-taskprov`); the leader opts in and creates it, advertises it to the
//! helper with the first aggregation job, and the collector gets the right aggregate. Tasks the
//! aggregators must not take are refused with `invalidTask` (or `invalidMessage` for a header
//! that does not match the task ID) and leave nothing behind; an aggregator without taskprov
//! ignores the header; the helper takes a task only from its peer's token.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test: a panic is a failure with a location

use cairn_dap_aggregator::{
    Aggregator, AggregatorParameters, AggregatorRole, BearerToken, Datastore, DatastoreKey,
    TaskprovPeer, TokenHash,
};
use cairn_dap_client::{Client, ClientError};
use cairn_dap_collector::{Collector, Poll};
use cairn_dap_core::vdaf::VdafInstance;
use cairn_dap_core::{
    AggregateResult, HpkeKeypair, Measurement, MockClock, TaskParameters, taskprov,
};
use cairn_dap_messages::{
    BatchMode, DapProblemType, Decode, Duration, HpkeConfig, HpkeConfigId, HpkeConfigList,
    Interval, Query, TaskId, Time,
};
use std::sync::Arc;

const NOW: u64 = 1_700_000_000;
const PRECISION: u64 = 3600;
const AGG_TOKEN: &str = "taskprov-peer-token";
const COLLECTOR_TOKEN: &str = "taskprov-collector-token";
const VERIFY_KEY_INIT: [u8; 32] = [3; 32];
const FLOOR: u64 = 5;

struct Pair {
    leader: Aggregator,
    helper: Aggregator,
    leader_url: String,
    helper_url: String,
    collector_keys: HpkeKeypair,
    http: reqwest::Client,
    _dir: tempfile::TempDir,
}

async fn aggregator(
    dir: &tempfile::TempDir,
    name: &str,
    role: AggregatorRole,
) -> (Aggregator, String) {
    let url = format!("sqlite://{}?mode=rwc", dir.path().join(name).display());
    let ds = Datastore::connect(&url, DatastoreKey::from_bytes(&[5; 32]).unwrap())
        .await
        .unwrap();
    let agg = Aggregator::new(
        ds,
        Arc::new(MockClock::new(NOW)),
        role,
        AggregatorParameters::default(),
    )
    .await
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = cairn_dap_aggregator::router(agg.clone(), None);
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (agg, format!("http://{addr}/"))
}

fn peer(own: &str, other: &str, collector: &HpkeKeypair, leader: bool) -> TaskprovPeer {
    TaskprovPeer {
        own_endpoint: own.into(),
        peer_endpoint: other.into(),
        verify_key_init: VERIFY_KEY_INIT,
        aggregator_auth_token: BearerToken::new(AGG_TOKEN),
        collector_hpke_config: collector.config().clone(),
        collector_auth_token_hash: leader.then(|| TokenHash::of(COLLECTOR_TOKEN)),
        min_batch_size_floor: FLOOR,
        report_expiry_age: None,
    }
}

impl Pair {
    async fn start() -> Pair {
        let dir = tempfile::tempdir().unwrap();
        let (leader, leader_url) = aggregator(&dir, "leader.db", AggregatorRole::Leader).await;
        let (helper, helper_url) = aggregator(&dir, "helper.db", AggregatorRole::Helper).await;
        let collector_keys = HpkeKeypair::generate(HpkeConfigId(7));
        leader
            .enable_taskprov(peer(&leader_url, &helper_url, &collector_keys, true))
            .unwrap();
        helper
            .enable_taskprov(peer(&helper_url, &leader_url, &collector_keys, false))
            .unwrap();
        Pair {
            leader,
            helper,
            leader_url,
            helper_url,
            collector_keys,
            http: reqwest::Client::new(),
            _dir: dir,
        }
    }

    /// A histogram task between this pair, its ID derived from its configuration.
    fn task(&self, min_batch_size: u64) -> TaskParameters {
        taskprov::with_derived_task_id(TaskParameters {
            task_id: TaskId::from_bytes([0; 32]),
            leader_endpoint: self.leader_url.clone(),
            helper_endpoint: self.helper_url.clone(),
            time_precision: PRECISION,
            min_batch_size,
            batch_mode: BatchMode::TimeInterval,
            vdaf: VdafInstance::Prio3Histogram {
                length: 3,
                chunk_length: 1,
            },
            task_info: "taskprov e2e".into(),
            task_interval: None,
            max_batch_size: None,
            differential_privacy: None,
            protocol: Default::default(),
        })
        .unwrap()
    }

    async fn config(&self, base: &str) -> HpkeConfig {
        let bytes = self
            .http
            .get(format!("{base}hpke_config"))
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        HpkeConfigList::get_decoded(&bytes).unwrap().0.remove(0)
    }

    /// A client of `params` with this pair's real HPKE configurations (whatever endpoints the
    /// task names).
    async fn client(&self, params: &TaskParameters) -> Client {
        Client::with_hpke_configs(
            params.clone(),
            self.config(&self.leader_url).await,
            self.config(&self.helper_url).await,
            self.http.clone(),
        )
    }

    /// Uploads one report of `params`, advertised in the header, to the pair's leader
    /// (whatever leader the task names); the problem type if refused.
    async fn upload_one(&self, params: &TaskParameters) -> Result<(), Option<DapProblemType>> {
        use cairn_dap_messages::Encode;
        let client = self.client(params).await;
        let report = client
            .prepare_report(&Measurement::Integer(0), NOW)
            .unwrap();
        let body = cairn_dap_messages::UploadRequest {
            reports: vec![report],
        }
        .get_encoded()
        .unwrap();
        let resp = self
            .http
            .post(format!(
                "{}tasks/{}/reports",
                self.leader_url, params.task_id
            ))
            .header("content-type", cairn_dap_messages::media_type::UPLOAD_REQ)
            .header(taskprov::HEADER, taskprov::header_value(params).unwrap())
            .body(body)
            .send()
            .await
            .unwrap();
        if resp.status().is_success() {
            return Ok(());
        }
        match cairn_dap_client::status_error(resp).await {
            ClientError::Status { problem, .. } => Err(problem),
            e => panic!("{e}"),
        }
    }
}

#[tokio::test]
async fn both_aggregators_take_a_task_only_through_taskprov() {
    let pair = Pair::start().await;
    let params = pair.task(6);
    assert!(
        pair.leader
            .datastore()
            .get_task(&params.task_id)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        pair.helper
            .datastore()
            .get_task(&params.task_id)
            .await
            .unwrap()
            .is_none()
    );

    let client = Client::new(params.clone(), pair.http.clone())
        .await
        .unwrap();
    let ms: Vec<Measurement> = [0, 1, 2, 2, 1, 2].map(Measurement::Integer).to_vec();
    let refused = client.upload_measurements(&ms, NOW).await.unwrap();
    assert!(refused.status.is_empty(), "{refused:?}");

    // The leader made the task from the header, with the derived verification key.
    let at_leader = pair
        .leader
        .datastore()
        .get_task(&params.task_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(at_leader.role, AggregatorRole::Leader);
    assert_eq!(at_leader.parameters, params);
    let key = taskprov::verify_key(&VERIFY_KEY_INIT, &params.task_id);
    assert_eq!(at_leader.vdaf_verify_key, key);
    assert!(
        pair.helper
            .datastore()
            .get_task(&params.task_id)
            .await
            .unwrap()
            .is_none()
    );

    // The first aggregation job advertises it to the helper.
    pair.leader.create_aggregation_jobs().await.unwrap();
    pair.leader.run_aggregation_jobs_once().await.unwrap();
    let at_helper = pair
        .helper
        .datastore()
        .get_task(&params.task_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(at_helper.role, AggregatorRole::Helper);
    assert_eq!(at_helper.parameters, params);
    assert_eq!(at_helper.vdaf_verify_key, key);

    let collector = Collector::new(
        params.clone(),
        pair.collector_keys.clone(),
        COLLECTOR_TOKEN.into(),
        pair.http.clone(),
    );
    let query = Query::TimeInterval {
        batch_interval: Interval::new(Time(NOW / PRECISION), Duration(1)).unwrap(),
    };
    let job = collector.start(query).await.unwrap();
    let mut result = None;
    for _ in 0..5 {
        pair.leader.run_aggregation_jobs_once().await.unwrap();
        pair.leader.run_collection_jobs_once().await.unwrap();
        if let Poll::Ready(c) = collector.poll(&job).await.unwrap() {
            result = Some(c);
            break;
        }
    }
    let c = result.expect("collection finished");
    assert_eq!(c.report_count, 6);
    assert_eq!(c.aggregate_result, AggregateResult::Vector(vec![1, 2, 3]));

    // Uploads keep advertising the task; for a task held already that changes nothing (this
    // report's batch was collected, so only the report is refused).
    let refused = client.upload_measurements(&ms[..1], NOW).await.unwrap();
    assert_eq!(refused.status.len(), 1);
}

#[tokio::test]
async fn tasks_the_aggregators_must_not_take_are_refused_and_leave_nothing() {
    let pair = Pair::start().await;
    let invalid = Some(DapProblemType::InvalidTask);

    // A helper that is not the leader's peer.
    let mut other_helper = pair.task(6);
    other_helper.helper_endpoint = "https://helper.elsewhere.example/".into();
    let other_helper = taskprov::with_derived_task_id(other_helper).unwrap();
    // A minimum batch size under the operator's floor.
    let small = pair.task(FLOOR - 1);
    // A task interval that is over.
    let mut ended = pair.task(6);
    ended.task_interval = Interval::new(Time(NOW / PRECISION - 10), Duration(2));
    let ended = taskprov::with_derived_task_id(ended).unwrap();
    // A task naming another leader endpoint.
    let mut other_leader = pair.task(6);
    other_leader.leader_endpoint = "https://leader.elsewhere.example/".into();
    let other_leader = taskprov::with_derived_task_id(other_leader).unwrap();
    for (what, params) in [
        ("other helper", &other_helper),
        ("small batches", &small),
        ("ended", &ended),
        ("other leader", &other_leader),
    ] {
        assert_eq!(pair.upload_one(params).await, Err(invalid), "{what}");
        let stored = pair
            .leader
            .datastore()
            .get_task(&params.task_id)
            .await
            .unwrap();
        assert!(stored.is_none(), "{what}");
    }

    // A header whose configuration does not hash to the request's task ID.
    let good = pair.task(6);
    let header = taskprov::header_value(&good).unwrap();
    let wrong_id = TaskId::from_bytes([9; 32]);
    let resp = pair
        .http
        .post(format!("{}tasks/{wrong_id}/reports", pair.leader_url))
        .header("content-type", cairn_dap_messages::media_type::UPLOAD_REQ)
        .header(taskprov::HEADER, &header)
        .body(vec![0, 0, 0, 0])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let problem: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(
        problem["type"],
        "urn:ietf:params:ppm:dap:error:invalidMessage"
    );

    // The helper takes a task only from its peer: the right header with another token does
    // not create it.
    let resp = pair
        .http
        .post(format!(
            "{}tasks/{}/aggregation_jobs",
            pair.helper_url, good.task_id
        ))
        .bearer_auth("not the peer")
        .header(
            "content-type",
            cairn_dap_messages::media_type::AGGREGATION_JOB_INIT_REQ,
        )
        .header(taskprov::HEADER, &header)
        .body(Vec::new())
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_client_error(), "{}", resp.status());
    assert!(
        pair.helper
            .datastore()
            .get_task(&good.task_id)
            .await
            .unwrap()
            .is_none()
    );

    // An aggregator without taskprov ignores the header: the task is simply unknown.
    let dir = tempfile::tempdir().unwrap();
    let (plain, plain_url) = aggregator(&dir, "plain.db", AggregatorRole::Leader).await;
    let mut at_plain = good.clone();
    at_plain.leader_endpoint = plain_url;
    let at_plain = taskprov::with_derived_task_id(at_plain).unwrap();
    let client = Client::with_hpke_configs(
        at_plain.clone(),
        pair.config(&at_plain.leader_endpoint).await,
        pair.config(&pair.helper_url).await,
        pair.http.clone(),
    );
    let report = client
        .prepare_report(&Measurement::Integer(0), NOW)
        .unwrap();
    match client.upload(vec![report]).await {
        Err(ClientError::Status { status, problem }) => {
            assert_eq!(status, 404);
            assert_eq!(problem, Some(DapProblemType::UnrecognizedTask));
        }
        other => panic!("{other:?}"),
    }
    assert!(
        plain
            .datastore()
            .get_task(&at_plain.task_id)
            .await
            .unwrap()
            .is_none()
    );
}
