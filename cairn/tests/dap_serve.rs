//! `cairn serve` runs a DAP leader and helper next to the CA: a task created through both
//! control planes takes uploads from the client library, and the collector library gets the
//! exact aggregate. The datastore key and control token generated on first start are kept in
//! the data folder (0600) and reused on the next start.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test: a panic is a failure with a location

mod common;

use cairn_dap_aggregator::control_client;
use cairn_dap_core::{AggregateResult, TaskParameters};
use cairn_dap_messages::Query;
use std::time::Duration;

#[tokio::test]
async fn all_in_one_server_aggregates_uploads_for_the_collector() {
    let ca = common::TestCa::start_with(|cfg| {
        cfg.dap.enabled = true;
        cfg.dap.driver_period_ms = 50;
    })
    .await;
    let dap = ca.server.dap.as_ref().expect("DAP runs in cairn serve");
    let http = reqwest::Client::new();

    let params = common::dap::task_parameters(dap, 10);
    let tokens = common::dap::tokens(dap);
    let (_, collector_config) = common::dap::collector_keys();

    // A wrong control token is refused and creates nothing.
    let bad = control_client::TaskTokens {
        helper_control: "not-the-token".into(),
        ..tokens.clone()
    };
    let err = control_client::create_task(&http, &params, &collector_config, &bad)
        .await
        .unwrap_err();
    assert!(format!("{err:#}").contains("helper refused"), "{err:#}");

    let collector = common::dap::create_task(dap, &params, &http).await;
    let values: Vec<u64> = (1..=10).map(|i| i * 7).collect();
    common::dap::upload(&params, &values, &http).await;
    let c = collector
        .collect(Query::LeaderSelected, 200, Duration::from_millis(100))
        .await
        .unwrap();
    assert_eq!(c.report_count, 10);
    assert_eq!(
        c.aggregate_result,
        AggregateResult::Integer(values.iter().sum())
    );

    // The generated secrets are in the data folder, owner-only, and a restart reuses them
    // (the sealed HPKE keys open again, so the advertised config is the same).
    let dap_dir = ca.dir.path().join("data").join("dap");
    let env_key = std::env::var("CAIRN_DAP_DATASTORE_KEY").is_ok();
    if !env_key {
        let meta = std::fs::metadata(dap_dir.join("datastore.key")).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        }
        let _ = meta;
    }
    let config_url = |base: &str| TaskParameters::url(base, "hpke_config");
    let before = http
        .get(config_url(&dap.helper_url))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let token = dap.control_token().to_owned();
    let data_dir = ca.dir.path().join("data");
    let common::TestCa { server, dir, .. } = ca;
    server.shutdown().await.unwrap();
    let mut cfg = cairn::config::Config::default();
    cfg.server.data_dir = data_dir;
    for addr in [
        &mut cfg.server.listen,
        &mut cfg.server.metrics_listen,
        &mut cfg.server.public_listen,
        &mut cfg.dap.leader_listen,
        &mut cfg.dap.helper_listen,
    ] {
        *addr = "127.0.0.1:0".parse().unwrap();
    }
    cfg.ct.enabled = false;
    let again = cairn::serve::start(cfg).await.unwrap();
    let dap2 = again.dap.as_ref().unwrap();
    if std::env::var("CAIRN_DAP_CONTROL_TOKEN").is_err() {
        assert_eq!(dap2.control_token(), token, "the stored token is reused");
    }
    let after = http
        .get(config_url(&dap2.helper_url))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(before, after);
    again.shutdown().await.unwrap();
    drop(dir);
}
