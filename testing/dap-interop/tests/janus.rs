//! Other people's DAP-09 software, unmodified, against Cairn: `janus_client` 0.7 (crates.io)
//! uploads to a Cairn leader paired with a Cairn helper and Cairn's collector collects; Cairn's
//! client uploads and `janus_collector` 0.7 collects. Every Prio3 VDAF the 0.7 line offers, in
//! both batch modes (DAP-09's `time_interval` and `fixed_size`); each result must equal the
//! plain sum of the measurements.
//!
//! Leader and helper run in this process (`common`).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure with a location

mod common;

use cairn_dap_core::{AggregateResult, HpkeKeypair, Measurement, TaskParameters, VdafInstance};
use cairn_dap_messages::{BatchMode, Encode, HpkeConfigId};
use common::{COLLECTOR_TOKEN, Cairn, PRECISION, now, query_around_now};
use janus_collector::{AuthenticationToken, ExponentialBackoff};
use janus_messages::query_type::{FixedSize, TimeInterval};
use prio_vdaf08::codec::Encode as _;
use prio_vdaf08::vdaf::prio3::Prio3;

/// Uploads `measurements` with `janus_client` 0.7 and collects them with Cairn's collector.
async fn janus_client_to_cairn<V>(
    cairn: &Cairn,
    vdaf: VdafInstance,
    janus_vdaf: V,
    measurements: &[V::Measurement],
    mode: BatchMode,
) -> AggregateResult
where
    V: prio_vdaf08::vdaf::Client<16>,
{
    let collector_keys = HpkeKeypair::generate(HpkeConfigId(7));
    let n = u64::try_from(measurements.len()).unwrap();
    let params = cairn
        .task(
            vdaf,
            mode,
            n,
            &collector_keys.config().get_encoded().unwrap(),
        )
        .await;
    let client = janus_client::Client::builder(
        janus_messages::TaskId::from(*params.task_id.as_bytes()),
        cairn.leader_url.parse().unwrap(),
        cairn.helper_url.parse().unwrap(),
        janus_messages::Duration::from_seconds(PRECISION),
        janus_vdaf,
    )
    .build()
    .await
    .unwrap();
    for m in measurements {
        client.upload(m).await.unwrap();
    }
    let collector = cairn_dap_collector::Collector::new(
        params,
        collector_keys,
        COLLECTOR_TOKEN.into(),
        cairn.http.clone(),
    );
    let collection = collector
        .collect(
            query_around_now(mode),
            300,
            std::time::Duration::from_millis(100),
        )
        .await
        .unwrap();
    assert_eq!(collection.report_count, n);
    collection.aggregate_result
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn janus_client_uploads_and_cairn_collects_every_vdaf_in_both_batch_modes() {
    let cairn = Cairn::start().await;
    for mode in [BatchMode::TimeInterval, BatchMode::LeaderSelected] {
        assert_eq!(
            janus_client_to_cairn(
                &cairn,
                VdafInstance::Prio3Count,
                Prio3::new_count(2).unwrap(),
                &[true, false, true, true],
                mode,
            )
            .await,
            AggregateResult::Integer(3),
            "{mode:?}"
        );
        assert_eq!(
            janus_client_to_cairn(
                &cairn,
                VdafInstance::Prio3Sum {
                    max_measurement: 255
                },
                Prio3::new_sum(2, 8).unwrap(),
                &[10u128, 200, 255],
                mode,
            )
            .await,
            AggregateResult::Integer(465),
            "{mode:?}"
        );
        assert_eq!(
            janus_client_to_cairn(
                &cairn,
                VdafInstance::Prio3SumVec {
                    length: 3,
                    max_measurement: 15,
                    chunk_length: 2
                },
                Prio3::new_sum_vec(2, 4, 3, 2).unwrap(),
                &[vec![1u128, 2, 15], vec![3, 0, 1]],
                mode,
            )
            .await,
            AggregateResult::Vector(vec![4, 2, 16]),
            "{mode:?}"
        );
        assert_eq!(
            janus_client_to_cairn(
                &cairn,
                VdafInstance::Prio3Histogram {
                    length: 4,
                    chunk_length: 2
                },
                Prio3::new_histogram(2, 4, 2).unwrap(),
                &[1usize, 3, 1, 0],
                mode,
            )
            .await,
            AggregateResult::Vector(vec![1, 2, 0, 1]),
            "{mode:?}"
        );
    }
}

/// A `janus_collector` 0.7 with a short poll backoff.
fn janus_collector<V: prio_vdaf08::vdaf::Collector>(
    cairn: &Cairn,
    params: &TaskParameters,
    keypair: janus_core::hpke::HpkeKeypair,
    vdaf: V,
) -> janus_collector::Collector<V> {
    janus_collector::Collector::builder(
        janus_messages::TaskId::from(*params.task_id.as_bytes()),
        cairn.leader_url.parse().unwrap(),
        AuthenticationToken::new_bearer_token_from_string(COLLECTOR_TOKEN).unwrap(),
        keypair,
        vdaf,
    )
    .with_collect_poll_backoff(ExponentialBackoff {
        initial_interval: std::time::Duration::from_millis(100),
        max_interval: std::time::Duration::from_millis(500),
        multiplier: 1.5,
        max_elapsed_time: Some(std::time::Duration::from_secs(60)),
        ..Default::default()
    })
    .build()
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cairn_client_uploads_and_janus_collector_collects() {
    use janus_messages::{HpkeAeadId, HpkeKdfId, HpkeKemId};
    let cairn = Cairn::start().await;
    for mode in [BatchMode::TimeInterval, BatchMode::LeaderSelected] {
        let keypair = janus_core::hpke::HpkeKeypair::generate(
            janus_messages::HpkeConfigId::from(3),
            HpkeKemId::X25519HkdfSha256,
            HpkeKdfId::HkdfSha256,
            HpkeAeadId::Aes128Gcm,
        )
        .unwrap();
        let vdaf = VdafInstance::Prio3Histogram {
            length: 5,
            chunk_length: 2,
        };
        let params = cairn
            .task(vdaf, mode, 4, &keypair.config().get_encoded().unwrap())
            .await;
        let client = cairn_dap_client::Client::new(params.clone(), cairn.http.clone())
            .await
            .unwrap();
        let measurements: Vec<Measurement> =
            [4, 0, 4, 2].into_iter().map(Measurement::Integer).collect();
        let errors = client
            .upload_measurements(&measurements, now())
            .await
            .unwrap();
        assert!(errors.status.is_empty());
        let collector = janus_collector(
            &cairn,
            &params,
            keypair,
            Prio3::new_histogram(2, 5, 2).unwrap(),
        );
        let result = match mode {
            BatchMode::LeaderSelected => {
                let query = janus_messages::Query::<FixedSize>::new_fixed_size(
                    janus_messages::FixedSizeQuery::CurrentBatch,
                );
                let c = collector.collect(query, &()).await.unwrap();
                assert_eq!(c.report_count(), 4);
                c.aggregate_result().clone()
            }
            _ => {
                let start = (now() / PRECISION - 1) * PRECISION;
                let query = janus_messages::Query::<TimeInterval>::new_time_interval(
                    janus_messages::Interval::new(
                        janus_messages::Time::from_seconds_since_epoch(start),
                        janus_messages::Duration::from_seconds(3 * PRECISION),
                    )
                    .unwrap(),
                );
                let c = collector.collect(query, &()).await.unwrap();
                assert_eq!(c.report_count(), 4);
                c.aggregate_result().clone()
            }
        };
        assert_eq!(result, vec![1u128, 0, 1, 0, 2], "{mode:?}");
    }
}
