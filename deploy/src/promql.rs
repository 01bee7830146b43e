//! The series names a PromQL expression reads, so a test can check that the dashboard and the
//! rules ask only for series that exist (recording rules of `deploy/prometheus/` or metrics
//! Cairn exports). It is a scanner, not a parser: `promtool check rules` judges the syntax;
//! this only has to tell a metric name from a function, a keyword, a label name, a string, a
//! number or a duration.

use std::collections::BTreeSet;

/// Words that are operators or modifiers, never series names.
const KEYWORDS: [&str; 14] = [
    "and",
    "or",
    "unless",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "offset",
    "inf",
    "nan",
    "atan2",
];

/// Aggregation operators: their grouping clause may come between the name and the `(`
/// (`sum by (log) (…)`), so they are known by name.
const AGGREGATIONS: [&str; 14] = [
    "sum",
    "min",
    "max",
    "avg",
    "group",
    "stddev",
    "stdvar",
    "count",
    "count_values",
    "bottomk",
    "topk",
    "quantile",
    "limitk",
    "limit_ratio",
];

/// Keywords followed by a parenthesised list of label names.
const LABEL_LISTS: [&str; 6] = [
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
];

/// The series names `expr` selects, with Grafana's `$variables` ignored.
pub fn series_names(expr: &str) -> BTreeSet<String> {
    let chars: Vec<char> = expr.chars().collect();
    let mut names = BTreeSet::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '"' | '\'' | '`' => i = skip_string(&chars, i),
            '{' => i = skip_until(&chars, i, '}'),
            '[' => i = skip_until(&chars, i, ']'),
            '#' => i = skip_until(&chars, i, '\n'),
            '$' => {
                i += 1;
                while i < chars.len() && is_word(chars[i]) {
                    i += 1;
                }
            }
            c if c.is_ascii_digit()
                || (c == '.' && chars.get(i + 1).is_some_and(char::is_ascii_digit)) =>
            {
                // Numbers (1, 0.25, 1e3, 0x1f) and durations (5m, 1h30m).
                while i < chars.len() && (is_word(chars[i]) || chars[i] == '.') {
                    i += 1;
                }
            }
            c if c.is_ascii_alphabetic() || c == '_' || c == ':' => {
                let start = i;
                while i < chars.len() && is_word(chars[i]) {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                let mut next = i;
                while next < chars.len() && chars[next].is_whitespace() {
                    next += 1;
                }
                let lower = word.to_ascii_lowercase();
                if LABEL_LISTS.contains(&lower.as_str()) && chars.get(next) == Some(&'(') {
                    i = skip_until(&chars, next, ')');
                } else if KEYWORDS.contains(&lower.as_str())
                    || AGGREGATIONS.contains(&lower.as_str())
                    || chars.get(next) == Some(&'(')
                {
                    // An operator, or a function or aggregation about to be called.
                } else {
                    names.insert(word);
                }
            }
            _ => i += 1,
        }
    }
    names
}

fn is_word(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == ':'
}

/// The index after the string literal opening at `start` (backslash escapes honoured, except
/// in raw backtick strings).
fn skip_string(chars: &[char], start: usize) -> usize {
    let quote = chars[start];
    let mut i = start + 1;
    while i < chars.len() {
        match chars[i] {
            '\\' if quote != '`' => i += 2,
            c if c == quote => return i + 1,
            _ => i += 1,
        }
    }
    i
}

/// The index after the first `end` from `start` on, skipping string literals inside.
fn skip_until(chars: &[char], start: usize, end: char) -> usize {
    let mut i = start + 1;
    while i < chars.len() {
        match chars[i] {
            '"' | '\'' | '`' => i = skip_string(chars, i),
            c if c == end => return i + 1,
            _ => i += 1,
        }
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(expr: &str) -> Vec<String> {
        series_names(expr).into_iter().collect()
    }

    #[test]
    fn finds_series_but_not_functions_keywords_labels_strings_or_numbers() {
        assert_eq!(
            names(
                r#"sum by (log, outcome) (rate(cairn_ct_submissions_total{outcome="pool_full", x=~"a{b}"}[5m] offset 1h))
                   / on(slo) group_left() (1 - cairn:slo_objective:ratio) > bool 14.4e0
                   and time() - max(cairn_ct_checkpoint_timestamp_seconds) > 2 * 86400 unless up"#
            ),
            [
                "cairn:slo_objective:ratio",
                "cairn_ct_checkpoint_timestamp_seconds",
                "cairn_ct_submissions_total",
                "up",
            ]
        );
    }

    #[test]
    fn ignores_grafana_variables_and_subquery_steps() {
        assert_eq!(
            names("max_over_time(a_total[$__range:1m]) + rate(b[$__rate_interval]) * $scale"),
            ["a_total", "b"]
        );
    }
}
