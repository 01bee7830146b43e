//! The Grafana dashboard (`deploy/grafana/cairn.json`) is valid dashboard JSON with the panels
//! the issue asks for (SLIs, issuance, latency per endpoint, CT, OCSP/CRL, DAP), every query
//! parses (`promtool check rules` over the queries as recording rules) and reads only series
//! that exist: recording rules of `deploy/prometheus/` or metrics Cairn's code exports.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use cairn_deploy::promql::series_names;
use common::{deploy_dir, exported_metrics, is_known, read, recording_rules};
use serde_json::Value;
use std::collections::HashSet;

fn dashboard() -> Value {
    let text = read(&deploy_dir().join("grafana/cairn.json"));
    serde_json::from_str(&text).expect("deploy/grafana/cairn.json is not JSON")
}

/// Every panel, rows' nested panels included.
fn panels(dashboard: &Value) -> Vec<&Value> {
    let mut out = Vec::new();
    for p in dashboard["panels"].as_array().expect("no panels") {
        out.push(p);
        if let Some(nested) = p["panels"].as_array() {
            out.extend(nested);
        }
    }
    out
}

/// (panel title, expr) for every query.
fn queries(dashboard: &Value) -> Vec<(String, String)> {
    panels(dashboard)
        .into_iter()
        .flat_map(|p| {
            let title = p["title"].as_str().unwrap_or("").to_owned();
            p["targets"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(move |t| Some((title.clone(), t["expr"].as_str()?.to_owned())))
        })
        .collect()
}

#[test]
fn dashboard_has_a_panel_for_each_area_and_a_sound_layout() {
    let d = dashboard();
    assert!(d["title"].as_str().is_some_and(|t| !t.is_empty()));
    assert!(d["uid"].as_str().is_some_and(|u| !u.is_empty()));
    let mut ids = HashSet::new();
    for p in panels(&d) {
        assert!(
            ids.insert(p["id"].as_u64().unwrap()),
            "duplicate panel id: {p}"
        );
        let g = &p["gridPos"];
        let (x, w) = (g["x"].as_u64().unwrap(), g["w"].as_u64().unwrap());
        assert!(
            x + w <= 24 && g["h"].as_u64().unwrap() > 0,
            "panel off the grid: {p}"
        );
        if p["type"] != "row" {
            assert!(
                p["targets"].as_array().is_some_and(|t| !t.is_empty()),
                "panel without queries: {p}"
            );
        }
    }
    let all: String = queries(&d).into_iter().map(|(_, e)| e + "\n").collect();
    for (area, needle) in [
        ("SLIs", "cairn:sli_error_ratio:rate"),
        ("SLO targets", "cairn:slo_objective:ratio"),
        ("issuance", "cairn_certificates_issued_total"),
        (
            "latency per endpoint",
            "max by (endpoint) (cairn_http_request_seconds",
        ),
        ("CT", "cairn_ct_tree_size"),
        ("OCSP", "cairn_ocsp_responses_total"),
        ("CRL", "cairn_crl_next_update_timestamp_seconds"),
        ("DAP", "cairn_dap_uploads_total"),
    ] {
        assert!(all.contains(needle), "no {area} panel ({needle})");
    }
}

#[test]
fn every_query_reads_only_series_that_exist() {
    let exported = exported_metrics();
    let recorded = recording_rules();
    let queries = queries(&dashboard());
    assert!(queries.len() >= 20, "only {} queries", queries.len());
    for (title, expr) in &queries {
        let names = series_names(expr);
        assert!(!names.is_empty(), "{title}: query reads no series: {expr}");
        for name in names {
            assert!(
                is_known(&name, &exported, &recorded),
                "panel {title:?}: {name} is neither exported by Cairn nor recorded by a rule \
                 in deploy/prometheus/: {expr}"
            );
        }
    }
}

#[test]
fn every_query_parses_in_promtool() {
    let Some(promtool) = cairn_test_services::program("promtool") else {
        return;
    };
    // promtool has no offline query parser, but it parses every rule's expression: check the
    // queries as the expressions of recording rules.
    let mut rules = String::from("groups:\n  - name: dashboard\n    rules:\n");
    for (i, (_, expr)) in queries(&dashboard()).iter().enumerate() {
        let expr = expr
            .replace("$__rate_interval", "5m")
            .replace("$__range", "1d")
            .replace("$__interval", "1m");
        let expr = serde_json::to_string(&expr).unwrap();
        rules.push_str(&format!(
            "      - record: dashboard:query_{i}\n        expr: {expr}\n"
        ));
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("dashboard.rules.yml");
    std::fs::write(&file, rules).unwrap();
    let out = std::process::Command::new(promtool)
        .args(["check", "rules"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "a dashboard query does not parse:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
