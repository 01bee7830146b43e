//! `@divviup/dap` 0.9.1 from npm (divviup-ts, the client web and Node apps embed; DAP-09 with
//! VDAF-08), unmodified, uploads from a Node script (`node/upload.mjs`) to a Cairn leader paired
//! with a Cairn helper; Cairn's collector collects, and the aggregate must equal the plain sum.
//! The package is pinned in `node/package-lock.json`; `.ci/run` installs it with `npm ci`.
//! Outside CI the test skips when `node` or the installed package is missing; under `CI=true`
//! it fails.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure with a location

mod common;

use cairn_dap_core::{AggregateResult, HpkeKeypair, VdafInstance};
use cairn_dap_messages::{BatchMode, Encode, HpkeConfigId};
use common::{COLLECTOR_TOKEN, Cairn, PRECISION, query_around_now};
use serde_json::{Value, json};
use std::path::PathBuf;

/// The Node project holding `upload.mjs` and its pinned `node_modules`, if usable.
fn node_project() -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("node");
    cairn_test_services::program("node")?;
    if dir.join("node_modules/@divviup/dap/package.json").is_file() {
        return Some(dir);
    }
    assert!(
        !cairn_test_services::in_ci(),
        "{} has no node_modules: run `npm ci` there (.ci/run does)",
        dir.display()
    );
    eprintln!("skipping: @divviup/dap is not installed (npm ci in testing/dap-interop/node)");
    None
}

/// Uploads `measurements` with `@divviup/dap` and collects with Cairn's collector.
async fn divviup_ts_to_cairn(
    cairn: &Cairn,
    dir: &std::path::Path,
    vdaf: VdafInstance,
    ts_vdaf: Value,
    measurements: Value,
    mode: BatchMode,
) -> AggregateResult {
    let collector_keys = HpkeKeypair::generate(HpkeConfigId(5));
    let n = u64::try_from(measurements.as_array().unwrap().len()).unwrap();
    let params = cairn
        .task(
            vdaf,
            mode,
            n,
            &collector_keys.config().get_encoded().unwrap(),
        )
        .await;
    let args = json!({
        "id": params.task_id.to_string(),
        "leader": params.leader_endpoint,
        "helper": params.helper_endpoint,
        "timePrecisionSeconds": PRECISION,
        "vdaf": ts_vdaf,
        "measurements": measurements,
    });
    let out = tokio::process::Command::new("node")
        .arg("upload.mjs")
        .arg(args.to_string())
        .current_dir(dir)
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "node upload.mjs failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let printed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(printed["sent"], json!(n));
    let collector = cairn_dap_collector::Collector::new(
        params,
        collector_keys,
        COLLECTOR_TOKEN.into(),
        cairn.http.clone(),
    );
    let c = collector
        .collect(
            query_around_now(mode),
            300,
            std::time::Duration::from_millis(100),
        )
        .await
        .unwrap();
    assert_eq!(c.report_count, n);
    c.aggregate_result
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn divviup_ts_uploads_and_cairn_collects_every_vdaf() {
    let Some(dir) = node_project() else {
        return;
    };
    let cairn = Cairn::start().await;
    let cases = [
        (
            VdafInstance::Prio3Count,
            json!({"type": "count"}),
            json!([true, false, true, true]),
            AggregateResult::Integer(3),
        ),
        (
            VdafInstance::Prio3Sum {
                max_measurement: 255,
            },
            json!({"type": "sum", "bits": 8}),
            json!([10, 200, 255]),
            AggregateResult::Integer(465),
        ),
        (
            VdafInstance::Prio3SumVec {
                length: 3,
                max_measurement: 15,
                chunk_length: 2,
            },
            json!({"type": "sumVec", "bits": 4, "length": 3, "chunkLength": 2}),
            json!([[1, 2, 15], [3, 0, 1]]),
            AggregateResult::Vector(vec![4, 2, 16]),
        ),
        (
            VdafInstance::Prio3Histogram {
                length: 4,
                chunk_length: 2,
            },
            json!({"type": "histogram", "length": 4, "chunkLength": 2}),
            json!([1, 3, 1, 0]),
            AggregateResult::Vector(vec![1, 2, 0, 1]),
        ),
    ];
    for (vdaf, ts_vdaf, measurements, expected) in cases {
        let got = divviup_ts_to_cairn(
            &cairn,
            &dir,
            vdaf.clone(),
            ts_vdaf,
            measurements,
            BatchMode::TimeInterval,
        )
        .await;
        assert_eq!(got, expected, "{vdaf:?}");
    }
    // DAP-09's fixed-size batches too.
    let got = divviup_ts_to_cairn(
        &cairn,
        &dir,
        VdafInstance::Prio3Count,
        json!({"type": "count"}),
        json!([true, true, false]),
        BatchMode::LeaderSelected,
    )
    .await;
    assert_eq!(got, AggregateResult::Integer(2));
}
