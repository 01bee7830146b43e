//! What the checks of `deploy/` compare against: the series Cairn's code exports and the
//! recording rules the rules files define.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

pub(crate) fn deploy_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub(crate) fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The files in `dir` whose names end with `suffix`, sorted.
pub(crate) fn files(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_str().is_some_and(|s| s.ends_with(suffix)))
        .collect();
    v.sort();
    v
}

pub(crate) fn rule_files() -> Vec<PathBuf> {
    let v = files(&deploy_dir().join("prometheus"), ".rules.yml");
    assert!(v.len() >= 3, "rules files missing: {v:?}");
    v
}

/// The metric names that appear as string literals (`"cairn_…"`) in the non-test sources of
/// the workspace's crates: what a `metrics::counter!`/`gauge!`/`histogram!` can register.
pub(crate) fn exported_metrics() -> BTreeSet<String> {
    let root = deploy_dir().join("..");
    let mut out = BTreeSet::new();
    for top in ["ca", "ct", "dap", "lib", "cairn"] {
        collect_metric_literals(&root.join(top), &mut out);
    }
    assert!(
        out.contains("cairn_http_requests_total"),
        "the source scan found no request counter: {out:?}"
    );
    out
}

fn collect_metric_literals(dir: &Path, out: &mut BTreeSet<String>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if path.is_dir() {
            if name != "tests" && name != "target" {
                collect_metric_literals(&path, out);
            }
        } else if name.ends_with(".rs") {
            let text = read(&path);
            for piece in text.split("\"cairn_").skip(1) {
                let end = piece
                    .find(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'))
                    .unwrap_or(piece.len());
                if piece[end..].starts_with('"') && end > 0 {
                    out.insert(format!("cairn_{}", &piece[..end]));
                }
            }
        }
    }
}

/// The names the rules files record.
pub(crate) fn recording_rules() -> BTreeSet<String> {
    rule_files()
        .iter()
        .flat_map(|f| {
            read(f)
                .lines()
                .filter_map(|l| l.trim_start().strip_prefix("- record:"))
                .map(|n| n.trim().to_owned())
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Every `expr:` of a rules file, single-line or block (`expr: |` and the lines indented
/// deeper than it).
pub(crate) fn rule_exprs(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        let trimmed = line.trim_start();
        let Some(rest) = trimmed.strip_prefix("expr:") else {
            continue;
        };
        let rest = rest.trim();
        if rest == "|" || rest == ">" {
            let indent = line.len() - trimmed.len();
            let mut block = String::new();
            while let Some(next) = lines.peek() {
                let t = next.trim_start();
                if !t.is_empty() && next.len() - t.len() <= indent {
                    break;
                }
                block.push_str(t);
                block.push('\n');
                lines.next();
            }
            out.push(block);
        } else {
            out.push(rest.to_owned());
        }
    }
    out
}

/// Whether `series` exists: a recording rule, a metric Cairn exports (a summary's `_count`
/// and `_sum` included) or Prometheus' own `up`.
pub(crate) fn is_known(
    series: &str,
    exported: &BTreeSet<String>,
    recorded: &BTreeSet<String>,
) -> bool {
    if series == "up" || recorded.contains(series) || exported.contains(series) {
        return true;
    }
    ["_count", "_sum"]
        .iter()
        .any(|s| series.strip_suffix(s).is_some_and(|b| exported.contains(b)))
}
