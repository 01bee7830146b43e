//! The Prometheus rules in `deploy/prometheus/` load (`promtool check rules`), their unit tests
//! pass (`promtool test rules`: every alert fires on a series showing its cause and stays quiet
//! beside it), the generated SLO rules match `slos.toml`, and every alert carries a severity,
//! a summary, a runbook link to a section of `docs/runbook.md` that exists, and a unit test.
//!
//! promtool comes from Debian's `prometheus` package (`.ci/run` installs it); outside CI the
//! promtool checks skip when it is missing, under CI they fail.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use cairn_deploy::promql::series_names;
use cairn_deploy::slo::SloConfig;
use common::{exported_metrics, files, is_known, read, recording_rules, rule_exprs, rule_files};
use std::path::{Path, PathBuf};
use std::process::Command;

fn prometheus_dir() -> PathBuf {
    common::deploy_dir().join("prometheus")
}

fn test_files() -> Vec<PathBuf> {
    let v = files(&prometheus_dir().join("tests"), ".test.yml");
    assert!(v.len() >= 2, "promtool test files missing: {v:?}");
    v
}

fn promtool(args: &[&str], files: &[PathBuf]) {
    let Some(promtool) = cairn_test_services::program("promtool") else {
        return;
    };
    let out = Command::new(promtool)
        .args(args)
        .args(files)
        .output()
        .expect("running promtool");
    assert!(
        out.status.success(),
        "promtool {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn rules_files_load_in_promtool() {
    promtool(&["check", "rules"], &rule_files());
}

#[test]
fn alert_and_recording_rule_unit_tests_pass_in_promtool() {
    promtool(&["test", "rules"], &test_files());
}

#[test]
fn slo_rules_are_generated_from_slos_toml() {
    let config = SloConfig::parse(&read(&prometheus_dir().join("slos.toml"))).unwrap();
    let committed = read(&prometheus_dir().join("slo.rules.yml"));
    assert!(
        committed == config.recording_rules(),
        "deploy/prometheus/slo.rules.yml is not what slos.toml generates; run\n  cargo run -p \
         cairn-deploy -- slo-rules deploy/prometheus/slos.toml > deploy/prometheus/slo.rules.yml"
    );
}

#[test]
fn rules_read_only_series_that_cairn_exports_or_the_rules_record() {
    let exported = exported_metrics();
    let recorded = recording_rules();
    let mut read_any = 0;
    for file in rule_files() {
        for expr in rule_exprs(&read(&file)) {
            for name in series_names(&expr) {
                assert!(
                    is_known(&name, &exported, &recorded),
                    "{}: {name} is neither exported by Cairn nor recorded by a rule:\n{expr}",
                    file.display()
                );
                read_any += 1;
            }
        }
    }
    assert!(read_any > 100, "only {read_any} series references found");
}

/// One alerting rule as the rules files spell it.
#[derive(Debug)]
struct AlertRule {
    name: String,
    severity: Option<String>,
    summary: Option<String>,
    runbook_url: Option<String>,
}

/// The alerting rules of a rules file: each `- alert:` item up to the next list item at the
/// same indentation, with the fields read from its lines.
fn alert_rules(text: &str) -> Vec<AlertRule> {
    let mut rules: Vec<AlertRule> = Vec::new();
    let mut indent = None;
    for line in text.lines() {
        let trimmed = line.trim_start();
        let depth = line.len() - trimmed.len();
        if let Some(name) = trimmed.strip_prefix("- alert:") {
            indent = Some(depth);
            rules.push(AlertRule {
                name: name.trim().to_owned(),
                severity: None,
                summary: None,
                runbook_url: None,
            });
            continue;
        }
        if trimmed.starts_with("- ") && indent.is_some_and(|i| depth <= i) {
            indent = None;
        }
        let (Some(_), Some(rule)) = (indent, rules.last_mut()) else {
            continue;
        };
        let value = |key: &str| {
            trimmed
                .strip_prefix(key)
                .map(|v| v.trim().trim_matches('"').to_owned())
        };
        if let Some(v) = value("severity:") {
            rule.severity = Some(v);
        } else if let Some(v) = value("summary:") {
            rule.summary = Some(v);
        } else if let Some(v) = value("runbook_url:") {
            rule.runbook_url = Some(v);
        }
    }
    rules
}

/// GitHub's anchor for a Markdown heading: lower case, spaces to `-`, other punctuation gone.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

#[test]
fn every_alert_has_severity_summary_runbook_section_and_unit_test() {
    let runbook = read(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/runbook.md"));
    let anchors: Vec<String> = runbook
        .lines()
        .filter_map(|l| l.strip_prefix("## "))
        .map(anchor)
        .collect();
    let tests: String = test_files().iter().map(|p| read(p)).collect();
    let mut names = Vec::new();
    for file in rule_files() {
        for rule in alert_rules(&read(&file)) {
            let at = format!("{} in {}", rule.name, file.display());
            assert!(
                matches!(rule.severity.as_deref(), Some("page" | "ticket")),
                "{at}: severity must be page or ticket: {rule:?}"
            );
            assert!(
                rule.summary.as_deref().is_some_and(|s| !s.is_empty()),
                "{at}: no summary"
            );
            let url = rule.runbook_url.as_deref().unwrap_or("");
            let (page, fragment) = url
                .split_once('#')
                .unwrap_or_else(|| panic!("{at}: runbook_url {url:?} has no #section"));
            assert!(
                page.ends_with("/docs/runbook.md"),
                "{at}: runbook_url {url:?} is not docs/runbook.md"
            );
            assert!(
                anchors.iter().any(|a| a == fragment),
                "{at}: docs/runbook.md has no section #{fragment}"
            );
            assert!(
                tests.contains(&format!("alertname: {}\n", rule.name)),
                "{at}: no promtool unit test names alertname {}",
                rule.name
            );
            names.push(rule.name);
        }
    }
    // The cause-based alerts and the burn-rate alert are all there.
    for want in [
        "SLOErrorBudgetBurn",
        "CtTooFewScts",
        "CtSubmissionsFailing",
        "CtSequencerBehind",
        "CtCheckpointStale",
        "CrlNearNextUpdate",
        "IssuerCertificateExpiringSoon",
        "DapJobDriverFailing",
        "DapReportsUnaggregated",
        "DependencyDown",
        "RateLimitStoreErrors",
    ] {
        assert!(names.iter().any(|n| n == want), "no alert {want}");
    }
}

#[test]
fn the_alert_rule_reader_sees_fields_per_rule() {
    let text = "groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: x\n        \
                labels:\n          severity: page\n        annotations:\n          summary: \"s\"\n\
                \x20     - record: r\n        expr: y\n      - alert: B\n        expr: z\n";
    let rules = alert_rules(text);
    assert_eq!(rules.len(), 2);
    assert_eq!(rules[0].severity.as_deref(), Some("page"));
    assert_eq!(rules[0].summary.as_deref(), Some("s"));
    assert_eq!(rules[1].name, "B");
    assert_eq!(rules[1].severity, None);
    assert_eq!(anchor("SLOErrorBudgetBurn"), "sloerrorbudgetburn");
}
