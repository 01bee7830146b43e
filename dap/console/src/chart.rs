//! The task page's chart of collected results over time: an inline SVG drawn on the server (no
//! script, nothing fetched), one bar per stored batch in time order, stacked by bucket or
//! option for vector metrics. Each bar has a `<title>` with its figures, and the page lists
//! the same figures in a table beside it. No I/O.

use crate::metric::Metric;
use crate::store::StoredResult;
use std::fmt::Write;

/// Bar colours, one per coordinate (cycled).
const PALETTE: [&str; 8] = [
    "#2271b1", "#d63638", "#00a32a", "#dba617", "#8c5fc1", "#1ba0a0", "#e26f24", "#50575e",
];

const WIDTH: f64 = 640.0;
const HEIGHT: f64 = 220.0;
const LEFT: f64 = 56.0;
const BOTTOM: f64 = 24.0;
const TOP: f64 = 8.0;

/// Escapes text for SVG/HTML content and attribute values.
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for ch in text.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A result's coordinates as numbers (a single number is one coordinate); `None` when the
/// JSON is not a number or an array of numbers.
pub(crate) fn coordinates(value: &serde_json::Value) -> Option<Vec<f64>> {
    match value {
        serde_json::Value::Number(n) => Some(vec![n.as_f64()?]),
        serde_json::Value::Array(items) => items
            .iter()
            .map(|v| v.as_f64().filter(|x| x.is_finite()))
            .collect(),
        _ => None,
    }
}

/// Checks a result against its metric: one number for a count or a sum, one per label for
/// the others.
pub(crate) fn check(metric: &Metric, value: &serde_json::Value) -> Result<(), String> {
    let coords = coordinates(value)
        .ok_or_else(|| "aggregate_result must be a number or an array of numbers".to_owned())?;
    let labels = metric.labels();
    match (labels.len(), value.is_array()) {
        (0, false) => Ok(()),
        (0, true) => Err("this metric's result is one number".into()),
        (n, true) if coords.len() == n => Ok(()),
        (n, _) => Err(format!("this metric's result is an array of {n} numbers")),
    }
}

/// `YYYY-MM-DD HH:MM` (UTC).
pub(crate) fn stamp(secs: u64) -> String {
    let days = i64::try_from(secs / 86400).unwrap_or(0);
    let (y, m, d) = crate::pages::civil_from_days(days);
    let rem = secs % 86400;
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60
    )
}

/// A short number for an axis.
fn short(x: f64) -> String {
    if x >= 1e6 {
        format!("{:.1}M", x / 1e6)
    } else if x >= 1e4 {
        format!("{:.0}k", x / 1e3)
    } else if x.fract() == 0.0 {
        format!("{x:.0}")
    } else {
        format!("{x:.1}")
    }
}

/// The SVG for `results` (oldest first), or `None` when there are none.
pub(crate) fn svg(metric: &Metric, results: &[StoredResult]) -> Option<String> {
    if results.is_empty() {
        return None;
    }
    let labels = metric.labels();
    let rows: Vec<Vec<f64>> = results
        .iter()
        .map(|r| {
            coordinates(&r.aggregate_result)
                .unwrap_or_default()
                .into_iter()
                .map(|x| x.max(0.0))
                .collect()
        })
        .collect();
    let top = rows
        .iter()
        .map(|r| r.iter().sum::<f64>())
        .fold(0.0_f64, f64::max)
        .max(1.0);
    let plot_w = WIDTH - LEFT - 4.0;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let n = results.len() as f64;
    let slot = plot_w / n;
    let bar = (slot * 0.7).max(1.0);
    let mut s = String::new();
    let _ = write!(
        s,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" id=\"results-chart\" role=\"img\" \
         viewBox=\"0 0 {WIDTH} {HEIGHT}\" width=\"{WIDTH}\" height=\"{HEIGHT}\" \
         font-size=\"11\" font-family=\"sans-serif\">\
         <title>{} per collected batch</title>",
        escape(&metric.name)
    );
    // Axis and the top value.
    let base_y = TOP + plot_h;
    let _ = write!(
        s,
        "<line x1=\"{LEFT}\" y1=\"{TOP}\" x2=\"{LEFT}\" y2=\"{base_y}\" stroke=\"#8c8f94\"/>\
         <line x1=\"{LEFT}\" y1=\"{base_y}\" x2=\"{}\" y2=\"{base_y}\" stroke=\"#8c8f94\"/>\
         <text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>\
         <text x=\"{}\" y=\"{base_y}\" text-anchor=\"end\">0</text>",
        WIDTH - 4.0,
        LEFT - 4.0,
        TOP + 10.0,
        short(top),
        LEFT - 4.0,
    );
    for (i, (r, coords)) in results.iter().zip(&rows).enumerate() {
        let x = LEFT + slot * i as f64 + (slot - bar) / 2.0;
        let mut y = base_y;
        let total: f64 = coords.iter().sum();
        let what = if labels.is_empty() {
            format!("{} {}", short(total), escape(&metric.unit))
        } else {
            labels
                .iter()
                .zip(coords)
                .map(|(l, v)| format!("{}: {}", escape(l), short(*v)))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let _ = write!(
            s,
            "<g class=\"bar\"><title>{} · {} reports · {what}</title>",
            stamp(r.interval_start),
            r.report_count
        );
        for (j, v) in coords.iter().enumerate() {
            let h = v / top * plot_h;
            y -= h;
            let colour = PALETTE.get(j % PALETTE.len()).copied().unwrap_or("#2271b1");
            let _ = write!(
                s,
                "<rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{bar:.1}\" height=\"{h:.1}\" fill=\"{colour}\"/>"
            );
        }
        s.push_str("</g>");
    }
    // The first and last batch's times under the axis.
    if let (Some(first), Some(last)) = (results.first(), results.last()) {
        let _ = write!(
            s,
            "<text x=\"{LEFT}\" y=\"{}\">{}</text>",
            HEIGHT - 6.0,
            stamp(first.interval_start)
        );
        if results.len() > 1 {
            let _ = write!(
                s,
                "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>",
                WIDTH - 4.0,
                HEIGHT - 6.0,
                stamp(last.interval_start)
            );
        }
    }
    s.push_str("</svg>");
    Some(s)
}

/// The legend: each coordinate's label and colour (empty for a single number).
pub(crate) fn legend(metric: &Metric) -> Vec<(String, &'static str)> {
    metric
        .labels()
        .into_iter()
        .enumerate()
        .map(|(j, l)| {
            (
                l,
                PALETTE.get(j % PALETTE.len()).copied().unwrap_or("#2271b1"),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::metric::MetricKind;

    fn histogram() -> Metric {
        Metric {
            name: "Load <time>".into(),
            kind: MetricKind::Histogram {
                labels: vec!["fast".into(), "slow & late".into()],
                boundaries: vec![],
            },
            unit: "reports".into(),
            epsilon: None,
        }
    }

    fn result(start: u64, value: serde_json::Value) -> StoredResult {
        StoredResult {
            batch: format!("{start}+60"),
            interval_start: start,
            interval_duration: 60,
            report_count: 6,
            aggregate_result: value,
            stored_at: start,
        }
    }

    #[test]
    fn results_must_match_the_metric_shape() {
        let h = histogram();
        assert_eq!(check(&h, &serde_json::json!([1, 2])), Ok(()));
        assert!(check(&h, &serde_json::json!([1, 2, 3])).is_err());
        assert!(check(&h, &serde_json::json!(3)).is_err());
        assert!(check(&h, &serde_json::json!(["a", 1])).is_err());
        let count = Metric {
            kind: MetricKind::Count,
            ..h
        };
        assert_eq!(check(&count, &serde_json::json!(7)), Ok(()));
        assert!(check(&count, &serde_json::json!([7])).is_err());
    }

    #[test]
    fn bars_stack_to_each_batch_total_and_labels_are_escaped() {
        let h = histogram();
        let svg = svg(
            &h,
            &[
                result(1_800_000_000, serde_json::json!([1, 3])),
                result(1_800_000_060, serde_json::json!([2, 0])),
            ],
        )
        .unwrap();
        // Two bars, the first the tallest (4 = the top of the axis: the full plot height).
        assert_eq!(svg.matches("<g class=\"bar\">").count(), 2);
        assert!(svg.contains(">4</text>"), "{svg}");
        assert!(svg.contains("fast: 1, slow &amp; late: 3"), "{svg}");
        assert!(svg.contains("Load &lt;time&gt; per collected batch"));
        assert!(!svg.contains("<time>"));
        let plot_h = HEIGHT - TOP - BOTTOM;
        assert!(
            svg.contains(&format!("height=\"{:.1}\"", plot_h * 3.0 / 4.0)),
            "{svg}"
        );
        assert!(svg.contains("2027-01-15 08:00"), "{svg}");
        assert!(super::svg(&h, &[]).is_none());
    }
}
