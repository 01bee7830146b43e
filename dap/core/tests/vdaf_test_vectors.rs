//! VDAF-18 test vectors (copied from the `prio` crate, see `test_vec/README.md`): `prio` itself
//! passes them, and Cairn's [`VdafInstance`] glue — leader/helper ping-pong initialization,
//! aggregation and unsharding over encoded bytes — reproduces every output share, aggregate share
//! and aggregate result byte for byte.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a panic is a failure with a location

use cairn_dap_core::vdaf::{AggregateResult, VdafInstance};
use prio::vdaf::prio3::{Prio3Count, Prio3Histogram, Prio3MultihotCountVec, Prio3Sum, Prio3SumVec};
use prio::vdaf::test_utils::{TestVector, check_test_vector};
use serde_json::Value;
use std::path::PathBuf;

fn load(name: &str) -> (String, Value) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/test_vec")
        .join(format!("{name}.json"));
    let text = std::fs::read_to_string(path).unwrap();
    let value: Value = serde_json::from_str(&text).unwrap();
    (text, value)
}

fn param(v: &Value, key: &str) -> u64 {
    v[key].as_u64().unwrap()
}

fn instance(name: &str, v: &Value) -> VdafInstance {
    let u32p = |k| u32::try_from(param(v, k)).unwrap();
    if name.starts_with("Prio3Count") {
        VdafInstance::Prio3Count
    } else if name.starts_with("Prio3SumVec") {
        VdafInstance::Prio3SumVec {
            length: u32p("length"),
            max_measurement: param(v, "max_measurement"),
            chunk_length: u32p("chunk_length"),
        }
    } else if name.starts_with("Prio3Sum") {
        VdafInstance::Prio3Sum {
            max_measurement: param(v, "max_measurement"),
        }
    } else if name.starts_with("Prio3Histogram") {
        VdafInstance::Prio3Histogram {
            length: u32p("length"),
            chunk_length: u32p("chunk_length"),
        }
    } else {
        VdafInstance::Prio3MultihotCountVec {
            length: u32p("length"),
            chunk_length: u32p("chunk_length"),
            max_weight: param(v, "max_weight"),
        }
    }
}

fn hex_of(v: &Value) -> Vec<u8> {
    hex::decode(v.as_str().unwrap()).unwrap()
}

/// Runs the two-aggregator ping-pong through the glue and compares with the vector.
fn check_glue(name: &str, v: &Value) {
    let vdaf = instance(name, v);
    let verify_key: [u8; 32] = hex_of(&v["verify_key"]).try_into().unwrap();
    let ctx = hex_of(&v["ctx"]);
    let agg_param = hex_of(&v["agg_param"]);
    let mut leader_outs = Vec::new();
    let mut helper_outs = Vec::new();
    for report in v["reports"].as_array().unwrap() {
        let nonce: [u8; 16] = hex_of(&report["nonce"]).try_into().unwrap();
        let public_share = hex_of(&report["public_share"]);
        let shares = report["input_shares"].as_array().unwrap();
        let leader = vdaf
            .leader_initialized(
                &verify_key,
                &ctx,
                &agg_param,
                &nonce,
                &public_share,
                &hex_of(&shares[0]),
            )
            .unwrap();
        let helper = vdaf
            .helper_initialized(
                &verify_key,
                &ctx,
                &agg_param,
                &nonce,
                &public_share,
                &hex_of(&shares[1]),
                &leader.outbound,
            )
            .unwrap();
        let leader_out = vdaf
            .leader_continued(&ctx, &agg_param, &leader.state, &helper.outbound)
            .unwrap();
        let expected = report["out_shares"].as_array().unwrap();
        assert_eq!(leader_out, hex_of(&expected[0]), "{name}: leader out share");
        assert_eq!(
            helper.output_share,
            hex_of(&expected[1]),
            "{name}: helper out share"
        );
        // The helper's outbound message carries the vector's verifier message.
        let msg = hex_of(&report["verifier_messages"][0]);
        assert!(
            msg.is_empty()
                || helper
                    .outbound
                    .windows(msg.len())
                    .any(|w| w == msg.as_slice()),
            "{name}: verifier message"
        );
        leader_outs.push(leader_out);
        helper_outs.push(helper.output_share);
    }
    let agg = |outs: &[Vec<u8>]| {
        let empty = vdaf.empty_aggregate_share(&agg_param).unwrap();
        vdaf.accumulate(&agg_param, &empty, outs.iter().map(Vec::as_slice))
            .unwrap()
    };
    let leader_agg = agg(&leader_outs);
    let helper_agg = agg(&helper_outs);
    let expected = v["agg_shares"].as_array().unwrap();
    assert_eq!(
        leader_agg,
        hex_of(&expected[0]),
        "{name}: leader aggregate share"
    );
    assert_eq!(
        helper_agg,
        hex_of(&expected[1]),
        "{name}: helper aggregate share"
    );
    // Merging is the same as accumulating everything at once.
    let halves = vdaf
        .merge(
            &agg_param,
            [agg(&leader_outs[..1]), agg(&leader_outs[1..])]
                .iter()
                .map(Vec::as_slice),
        )
        .unwrap();
    assert_eq!(halves, leader_agg);
    let count = u64::try_from(leader_outs.len()).unwrap();
    let result = vdaf
        .unshard(&agg_param, &leader_agg, &helper_agg, count)
        .unwrap();
    let expected: AggregateResult = match &v["agg_result"] {
        Value::Array(items) => AggregateResult::Vector(
            items
                .iter()
                .map(|x| u128::from(x.as_u64().unwrap()))
                .collect(),
        ),
        x => AggregateResult::Integer(x.as_u64().unwrap()),
    };
    assert_eq!(result, expected, "{name}: aggregate result");
}

/// A "bad" vector: some verification step must refuse the report.
fn check_glue_rejects(name: &str, v: &Value) {
    let vdaf = instance(name, v);
    let verify_key: [u8; 32] = hex_of(&v["verify_key"]).try_into().unwrap();
    let ctx = hex_of(&v["ctx"]);
    let agg_param = hex_of(&v["agg_param"]);
    let report = &v["reports"][0];
    let nonce: [u8; 16] = hex_of(&report["nonce"]).try_into().unwrap();
    let public_share = hex_of(&report["public_share"]);
    let shares = report["input_shares"].as_array().unwrap();
    if name.ends_with("bad_verifier_message") {
        // The vector's (corrupted) verifier message reaches the leader as the helper's
        // `finish` ping-pong message: type 2, then the message with a 32-bit length.
        let msg = hex_of(&report["verifier_messages"][0]);
        let mut finish = vec![2u8];
        finish.extend(u32::try_from(msg.len()).unwrap().to_be_bytes());
        finish.extend(&msg);
        let leader = vdaf
            .leader_initialized(
                &verify_key,
                &ctx,
                &agg_param,
                &nonce,
                &public_share,
                &hex_of(&shares[0]),
            )
            .unwrap();
        assert!(
            vdaf.leader_continued(&ctx, &agg_param, &leader.state, &finish)
                .is_err(),
            "{name}: corrupted verifier message accepted"
        );
        return;
    }
    let outcome = vdaf
        .leader_initialized(
            &verify_key,
            &ctx,
            &agg_param,
            &nonce,
            &public_share,
            &hex_of(&shares[0]),
        )
        .and_then(|leader| {
            let helper = vdaf.helper_initialized(
                &verify_key,
                &ctx,
                &agg_param,
                &nonce,
                &public_share,
                &hex_of(&shares[1]),
                &leader.outbound,
            )?;
            vdaf.leader_continued(&ctx, &agg_param, &leader.state, &helper.outbound)
        });
    assert!(outcome.is_err(), "{name}: bad report accepted");
}

fn run(name: &str) {
    let (text, value) = load(name);
    let tv: TestVector = serde_json::from_str(&text).unwrap();
    if name.starts_with("Prio3Count") {
        check_test_vector::<Prio3Count, 32, 16>(&tv);
    } else if name.starts_with("Prio3SumVec") {
        check_test_vector::<Prio3SumVec, 32, 16>(&tv);
    } else if name.starts_with("Prio3Sum") {
        check_test_vector::<Prio3Sum, 32, 16>(&tv);
    } else if name.starts_with("Prio3Histogram") {
        check_test_vector::<Prio3Histogram, 32, 16>(&tv);
    } else {
        check_test_vector::<Prio3MultihotCountVec, 32, 16>(&tv);
    }
    // Cairn runs DAP with exactly two aggregators.
    if value["shares"].as_u64() == Some(2) {
        if name.contains("_bad_") {
            check_glue_rejects(name, &value);
        } else {
            check_glue(name, &value);
        }
    }
}

macro_rules! vectors {
    ($($test:ident => $file:literal),+ $(,)?) => {
        $( #[test] fn $test() { run($file); } )+
    };
}

vectors! {
    count_0 => "Prio3Count_0",
    count_1 => "Prio3Count_1",
    count_2 => "Prio3Count_2",
    count_bad_meas_share => "Prio3Count_bad_meas_share",
    count_bad_helper_seed => "Prio3Count_bad_helper_seed",
    sum_0 => "Prio3Sum_0",
    sum_1 => "Prio3Sum_1",
    sum_2 => "Prio3Sum_2",
    sum_vec_0 => "Prio3SumVec_0",
    sum_vec_1 => "Prio3SumVec_1",
    histogram_0 => "Prio3Histogram_0",
    histogram_1 => "Prio3Histogram_1",
    histogram_2 => "Prio3Histogram_2",
    histogram_bad_public_share => "Prio3Histogram_bad_public_share",
    histogram_bad_verifier_message => "Prio3Histogram_bad_verifier_message",
    multihot_0 => "Prio3MultihotCountVec_0",
    multihot_1 => "Prio3MultihotCountVec_1",
    multihot_2 => "Prio3MultihotCountVec_2",
}

#[test]
fn shard_then_verify_round_trip_every_vdaf() {
    let cases = [
        (
            VdafInstance::Prio3Count,
            vec!["1", "0", "1"],
            AggregateResult::Integer(2),
        ),
        (
            VdafInstance::Prio3Sum {
                max_measurement: 255,
            },
            vec!["3", "200", "0"],
            AggregateResult::Integer(203),
        ),
        (
            VdafInstance::Prio3SumVec {
                length: 3,
                max_measurement: 7,
                chunk_length: 2,
            },
            vec!["1,2,3", "7,0,1"],
            AggregateResult::Vector(vec![8, 2, 4]),
        ),
        (
            VdafInstance::Prio3Histogram {
                length: 4,
                chunk_length: 2,
            },
            vec!["0", "3", "3"],
            AggregateResult::Vector(vec![1, 0, 0, 2]),
        ),
        (
            VdafInstance::Prio3MultihotCountVec {
                length: 3,
                chunk_length: 2,
                max_weight: 2,
            },
            vec!["1,0,1", "0,1,1"],
            AggregateResult::Vector(vec![1, 1, 2]),
        ),
    ];
    let key = [7u8; 32];
    let ctx = b"dap-18 test";
    for (vdaf, measurements, expected) in cases {
        let mut leader_agg = vdaf.empty_aggregate_share(&[]).unwrap();
        let mut helper_agg = leader_agg.clone();
        for (i, text) in measurements.iter().enumerate() {
            let m = vdaf.parse_measurement(text).unwrap();
            let nonce = [u8::try_from(i).unwrap(); 16];
            let s = vdaf.shard(ctx, &m, &nonce).unwrap();
            let l = vdaf
                .leader_initialized(
                    &key,
                    ctx,
                    &[],
                    &nonce,
                    &s.public_share,
                    &s.leader_input_share,
                )
                .unwrap();
            let h = vdaf
                .helper_initialized(
                    &key,
                    ctx,
                    &[],
                    &nonce,
                    &s.public_share,
                    &s.helper_input_share,
                    &l.outbound,
                )
                .unwrap();
            let lo = vdaf
                .leader_continued(ctx, &[], &l.state, &h.outbound)
                .unwrap();
            leader_agg = vdaf.accumulate(&[], &leader_agg, [lo.as_slice()]).unwrap();
            helper_agg = vdaf
                .accumulate(&[], &helper_agg, [h.output_share.as_slice()])
                .unwrap();
        }
        let n = u64::try_from(measurements.len()).unwrap();
        assert_eq!(
            vdaf.unshard(&[], &leader_agg, &helper_agg, n).unwrap(),
            expected,
            "{vdaf:?}"
        );
    }
    // A measurement of the wrong shape, or out of range, is refused at sharding.
    let sum = VdafInstance::Prio3Sum {
        max_measurement: 10,
    };
    assert!(
        sum.shard(ctx, &cairn_dap_core::Measurement::Count(true), &[0; 16])
            .is_err()
    );
    assert!(
        sum.shard(ctx, &cairn_dap_core::Measurement::Integer(11), &[0; 16])
            .is_err()
    );
    assert!(VdafInstance::Prio3Count.parse_measurement("2").is_err());
}
