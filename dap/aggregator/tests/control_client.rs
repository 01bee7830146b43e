//! The control-plane client against two real aggregators on loopback (SQLite): task creation on
//! the pair (a refusal names the aggregator and creates nothing at the leader), and an HPKE key's
//! whole rotation (create, activate, expire, delete), with a wrong token refused.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a panic is a failure with a location

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use cairn_dap_aggregator::control_client::{
    self, ControlError, HpkeKeyCommand, TaskTokens, create_task, hpke_keys,
};
use cairn_dap_aggregator::{
    Aggregator, AggregatorParameters, AggregatorRole, Datastore, DatastoreKey, HpkeKeyState,
};
use cairn_dap_core::{HpkeKeypair, RealClock, TaskParameters};
use cairn_dap_messages::{BatchMode, Encode, HpkeConfigId, TaskId};
use std::sync::Arc;

const CONTROL_TOKEN: &str = "control-secret";

/// An aggregator in `role` with its datastore in `dir`, served on loopback; its base URL.
async fn serve(dir: &std::path::Path, role: AggregatorRole) -> String {
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.join(format!("{}.db", role.as_str())).display()
    );
    let ds = Datastore::connect(&url, DatastoreKey::from_bytes(&[5; 32]).unwrap())
        .await
        .unwrap();
    let agg = Aggregator::new(
        ds,
        Arc::new(RealClock),
        role,
        AggregatorParameters::default(),
    )
    .await
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = cairn_dap_aggregator::router(agg, Some(CONTROL_TOKEN));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://{addr}/")
}

#[tokio::test]
async fn tasks_are_created_on_the_helper_then_the_leader() {
    let dir = tempfile::tempdir().unwrap();
    let leader = serve(dir.path(), AggregatorRole::Leader).await;
    let helper = serve(dir.path(), AggregatorRole::Helper).await;
    let http = reqwest::Client::new();
    let params = TaskParameters {
        task_id: TaskId::from_bytes(control_client::random_bytes().unwrap()),
        leader_endpoint: leader.clone(),
        helper_endpoint: helper,
        time_precision: 60,
        min_batch_size: 10,
        batch_mode: BatchMode::TimeInterval,
        vdaf: serde_json::from_str(r#"{"type":"Prio3Count"}"#).unwrap(),
        task_info: "control client".into(),
        task_interval: None,
        max_batch_size: None,
        differential_privacy: None,
        protocol: Default::default(),
    };
    let collector = HpkeKeypair::generate(HpkeConfigId(1));
    let collector_config = URL_SAFE_NO_PAD.encode(collector.config().get_encoded().unwrap());
    let tokens = TaskTokens {
        leader_control: CONTROL_TOKEN.into(),
        helper_control: CONTROL_TOKEN.into(),
        collector: "collector-secret".into(),
    };

    let bad = TaskTokens {
        helper_control: "wrong".into(),
        ..tokens.clone()
    };
    let err = create_task(&http, &params, &collector_config, &bad)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ControlError::TaskRefused { aggregator: "helper", status, .. } if status.as_u16() == 403),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .starts_with("the helper refused the task (403"),
        "{err}"
    );
    // The leader never heard of it: creating it there now succeeds.
    create_task(&http, &params, &collector_config, &tokens)
        .await
        .unwrap();
    // A second creation of the same task is refused, by the helper first.
    let again = create_task(&http, &params, &collector_config, &tokens)
        .await
        .unwrap_err();
    assert!(
        matches!(
            &again,
            ControlError::TaskRefused {
                aggregator: "helper",
                ..
            }
        ),
        "{again:?}"
    );

    let unreachable = TaskParameters {
        helper_endpoint: "http://127.0.0.1:1/".into(),
        ..params.clone()
    };
    let err = create_task(&http, &unreachable, &collector_config, &tokens)
        .await
        .unwrap_err();
    assert!(err.to_string().starts_with("reaching the helper"), "{err}");
}

#[tokio::test]
async fn an_hpke_key_is_rotated_through_the_control_plane() {
    let dir = tempfile::tempdir().unwrap();
    let base = serve(dir.path(), AggregatorRole::Helper).await;
    let http = reqwest::Client::new();
    let run = |command| hpke_keys(&http, &base, CONTROL_TOKEN, command);

    let before = run(HpkeKeyCommand::List).await.unwrap();
    let created = run(HpkeKeyCommand::Create).await.unwrap();
    let [new] = created.as_slice() else {
        panic!("create answers with the new key: {created:?}");
    };
    assert_eq!(new.state, HpkeKeyState::Pending);
    assert!(before.iter().all(|k| k.config_id != new.config_id));
    let state_of = |keys: Vec<cairn_dap_aggregator::HpkeKeyView>| {
        keys.into_iter()
            .find(|k| k.config_id == new.config_id)
            .map(|k| k.state)
    };

    assert!(
        run(HpkeKeyCommand::Activate(new.config_id))
            .await
            .unwrap()
            .is_empty()
    );
    let listed = run(HpkeKeyCommand::List).await.unwrap();
    assert_eq!(listed.len(), before.len() + 1);
    assert_eq!(state_of(listed), Some(HpkeKeyState::Active));
    run(HpkeKeyCommand::Expire(new.config_id)).await.unwrap();
    assert_eq!(
        state_of(run(HpkeKeyCommand::List).await.unwrap()),
        Some(HpkeKeyState::Expired)
    );
    run(HpkeKeyCommand::Delete(new.config_id)).await.unwrap();
    assert_eq!(state_of(run(HpkeKeyCommand::List).await.unwrap()), None);

    let err = hpke_keys(&http, &base, "wrong", HpkeKeyCommand::List)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ControlError::Refused { status, .. } if status.as_u16() == 403),
        "{err:?}"
    );
    assert!(
        err.to_string().starts_with("aggregator answered 403"),
        "{err}"
    );
}
