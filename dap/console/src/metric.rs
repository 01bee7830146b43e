//! "Create a metric in plain words": what the wizard asks ([`MetricForm`]) and how it becomes a
//! DAP task's parameters — the VDAF, the time precision and batch mode, the minimum batch size
//! (never below the operator's floor) and optional differential privacy, with the noise it
//! implies stated in the metric's own units. No I/O; the pages and the JSON API share it.

use cairn_dap_core::vdaf::{DpStrategy, VdafInstance};
use cairn_dap_messages::BatchMode;
use serde::{Deserialize, Serialize};

/// Why a metric description cannot become a task. Each message is for the person filling in
/// the form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct MetricError(pub String);

fn bad<T>(msg: impl Into<String>) -> Result<T, MetricError> {
    Err(MetricError(msg.into()))
}

/// Most buckets, options or vector entries the console offers (bigger tasks stay possible
/// through the control plane).
pub const MAX_LENGTH: usize = 1000;

/// What the wizard (or `POST …/api/tasks`) sends: flat fields, only those of the chosen kind
/// are read. Strings because HTML forms send strings; parsing is part of the validation.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct MetricForm {
    /// What the metric is called in the console.
    pub name: String,
    /// `count`, `sum`, `histogram`, `count_vector` or `multi_select`.
    pub kind: String,
    /// Sum: the largest value one report may carry.
    pub sum_max: String,
    /// Histogram: `named` (one label per line) or `ranges` (boundaries).
    pub bucket_style: String,
    /// Histogram buckets: labels, or increasing numeric boundaries, one per line or comma.
    pub buckets: String,
    /// Vector of counts: how many entries.
    pub vector_length: String,
    /// Vector of counts: the largest count one report may add to an entry.
    pub vector_max: String,
    /// Multi-select: the options, one per line or comma.
    pub options: String,
    /// Multi-select: most options one person may select (default: all).
    pub max_selected: String,
    /// The unit of a sum or vector entry ("ms", "items"); counts are "reports".
    pub unit: String,
    /// Seconds per time unit: 60, 3600 or 86400 in the wizard.
    pub time_precision: String,
    /// `time_windows` (collect a chosen interval) or `report_count` (a batch is ready as soon
    /// as it holds the minimum batch size).
    pub batching: String,
    /// Smallest batch the aggregators will release.
    pub min_batch_size: String,
    /// Empty for none; else ε > 0, e.g. `1` or `0.5`.
    pub epsilon: String,
    /// Days after which the task stops taking reports; empty for no end.
    pub stop_after_days: String,
    /// `shared` or a paired helper's ID.
    pub helper: String,
    /// A collector credential's ID.
    pub credential: String,
}

/// The kind of metric, with what the console needs to show results in plain words.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum MetricKind {
    /// How many reports said yes.
    Count,
    /// The sum of values in `0..=max`.
    Sum {
        /// Largest value.
        max: u64,
    },
    /// How many reports fell in each bucket.
    Histogram {
        /// One label per bucket ("< 10", "10 – 99", "≥ 100" for ranges).
        labels: Vec<String>,
        /// Ranges only: the boundaries the labels were made from.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        boundaries: Vec<u64>,
    },
    /// A vector of counts, each entry in `0..=max` per report.
    CountVector {
        /// Entries.
        length: u32,
        /// Largest count per entry and report.
        max: u64,
    },
    /// How many reports selected each option (several per report).
    MultiSelect {
        /// The options.
        options: Vec<String>,
        /// Most options per report.
        max_selected: u64,
    },
}

/// A metric as the console stores it beside the task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metric {
    /// Its name.
    pub name: String,
    /// Its kind and labels.
    #[serde(flatten)]
    pub kind: MetricKind,
    /// The unit of one value.
    pub unit: String,
    /// ε, when the aggregators add noise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epsilon: Option<f64>,
}

/// What the wizard's answers become.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskPlan {
    /// The metric, for the console's pages.
    pub metric: Metric,
    /// The VDAF.
    pub vdaf: VdafInstance,
    /// Seconds per time unit.
    pub time_precision: u64,
    /// How reports are batched.
    pub batch_mode: BatchMode,
    /// Smallest batch.
    pub min_batch_size: u64,
    /// Leader-selected batches: the largest batch.
    pub max_batch_size: Option<u64>,
    /// The aggregators' noise.
    pub differential_privacy: Option<DpStrategy>,
    /// Days until the task stops taking reports.
    pub stop_after_days: Option<u64>,
}

/// The periods the wizard offers, seconds and words.
pub const PERIODS: [(u64, &str); 3] = [(60, "minute"), (3600, "hour"), (86400, "day")];

fn list(text: &str) -> Vec<String> {
    text.split(['\n', ','])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

fn number(text: &str, what: &str) -> Result<u64, MetricError> {
    text.trim()
        .parse::<u64>()
        .or_else(|_| bad(format!("{what} must be a whole number")))
}

fn length_of(n: usize, what: &str) -> Result<u32, MetricError> {
    if n == 0 {
        return bad(format!("give at least one {what}"));
    }
    if n > MAX_LENGTH {
        return bad(format!("at most {MAX_LENGTH} {what}s"));
    }
    Ok(u32::try_from(n).unwrap_or(u32::MAX))
}

/// √n rounded down, at least 1: Prio's advice for the proof's chunk length.
fn chunk_length(n: u64) -> u32 {
    u32::try_from(n.max(1).isqrt().max(1)).unwrap_or(1)
}

/// Bits needed for values up to `max`.
fn bits(max: u64) -> u64 {
    u64::from(64 - max.leading_zeros()).max(1)
}

/// Labels for numeric range buckets with boundaries `b` (strictly increasing): `< b0`,
/// `b0 – b1-1`, …, `≥ bk`.
fn range_labels(b: &[u64]) -> Vec<String> {
    let mut labels = Vec::with_capacity(b.len() + 1);
    if let Some(first) = b.first() {
        labels.push(format!("< {first}"));
    }
    for w in b.windows(2) {
        labels.push(format!("{} – {}", w[0], w[1].saturating_sub(1)));
    }
    if let Some(last) = b.last() {
        labels.push(format!("≥ {last}"));
    }
    labels
}

/// ε as a fraction with denominator 1000 (reduced); the console accepts 0.001 to 100.
pub fn epsilon_fraction(epsilon: f64) -> Result<(u64, u64), MetricError> {
    if !(0.001..=100.0).contains(&epsilon) {
        return bad("ε must be between 0.001 and 100");
    }
    // Three decimals: the range check above bounds the product.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // 1 ..= 100_000
    let num = (epsilon * 1000.0).round() as u64;
    let g = gcd(num, 1000);
    Ok((num / g, 1000 / g))
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// The L1 sensitivity the aggregators' noise is calibrated to (as `cairn-dap-core` does):
/// 2 for a histogram, `max · length` for a vector of counts; `None` for kinds without noise.
pub fn sensitivity(kind: &MetricKind) -> Option<f64> {
    match kind {
        MetricKind::Histogram { .. } => Some(2.0),
        #[allow(clippy::cast_precision_loss)] // an estimate for people
        MetricKind::CountVector { length, max } => Some(*max as f64 * f64::from(*length)),
        _ => None,
    }
}

/// The standard deviation of the noise in each entry of a collected result, in the metric's
/// units: each of the two aggregators adds discrete Laplace noise of scale `t = Δ/ε`, whose
/// variance is `2p/(1-p)²` with `p = e^(-1/t)`.
pub fn noise_std_dev(kind: &MetricKind, epsilon: f64) -> Option<f64> {
    let t = sensitivity(kind)? / epsilon;
    let p = (-1.0 / t).exp();
    let one = 2.0 * p / ((1.0 - p) * (1.0 - p));
    Some((2.0 * one).sqrt())
}

impl MetricForm {
    /// Checks the answers and makes the plan; `floor` is the operator's smallest allowed
    /// minimum batch size.
    pub fn plan(&self, floor: u64) -> Result<TaskPlan, MetricError> {
        let name = self.name.trim();
        if name.is_empty() || name.len() > 200 {
            return bad("give the metric a name (up to 200 characters)");
        }
        let mut unit = self.unit.trim().to_owned();
        if unit.len() > 40 {
            return bad("the unit is at most 40 characters");
        }
        let (kind, vdaf) = match self.kind.as_str() {
            "count" => {
                unit = "reports".into();
                (MetricKind::Count, VdafInstance::Prio3Count)
            }
            "sum" => {
                let max = number(&self.sum_max, "the largest value")?;
                if max == 0 {
                    return bad("the largest value must be at least 1");
                }
                (
                    MetricKind::Sum { max },
                    VdafInstance::Prio3Sum {
                        max_measurement: max,
                    },
                )
            }
            "histogram" => {
                let items = list(&self.buckets);
                let (labels, boundaries) = if self.bucket_style == "ranges" {
                    let b = items
                        .iter()
                        .map(|s| number(s, "each boundary"))
                        .collect::<Result<Vec<_>, _>>()?;
                    if b.windows(2).any(|w| w[0] >= w[1]) {
                        return bad("range boundaries must increase");
                    }
                    (range_labels(&b), b)
                } else {
                    (items, Vec::new())
                };
                if labels.len() < 2 {
                    return bad("a histogram needs at least two buckets");
                }
                let length = length_of(labels.len(), "bucket")?;
                unit = "reports".into();
                (
                    MetricKind::Histogram { labels, boundaries },
                    VdafInstance::Prio3Histogram {
                        length,
                        chunk_length: chunk_length(u64::from(length)),
                    },
                )
            }
            "count_vector" => {
                let length = number(&self.vector_length, "the number of entries")?;
                let length = length_of(usize::try_from(length).unwrap_or(usize::MAX), "entry")?;
                let max = number(&self.vector_max, "the largest count")?;
                if max == 0 {
                    return bad("the largest count must be at least 1");
                }
                (
                    MetricKind::CountVector { length, max },
                    VdafInstance::Prio3SumVec {
                        length,
                        max_measurement: max,
                        chunk_length: chunk_length(u64::from(length) * bits(max)),
                    },
                )
            }
            "multi_select" => {
                let options = list(&self.options);
                let length = length_of(options.len(), "option")?;
                let max_selected = if self.max_selected.trim().is_empty() {
                    u64::from(length)
                } else {
                    number(&self.max_selected, "the most options selected")?
                };
                if max_selected == 0 || max_selected > u64::from(length) {
                    return bad(
                        "the most options selected must be between 1 and the number of options",
                    );
                }
                unit = "reports".into();
                (
                    MetricKind::MultiSelect {
                        options,
                        max_selected,
                    },
                    VdafInstance::Prio3MultihotCountVec {
                        length,
                        chunk_length: chunk_length(u64::from(length) + bits(max_selected)),
                        max_weight: max_selected,
                    },
                )
            }
            _ => return bad("choose what kind of metric to collect"),
        };
        if unit.is_empty() {
            unit = "units".into();
        }
        let time_precision = number(&self.time_precision, "the period")?;
        if !PERIODS.iter().any(|(s, _)| *s == time_precision) {
            return bad("the period is a minute, an hour or a day");
        }
        let min_batch_size = number(&self.min_batch_size, "the minimum batch size")?;
        if min_batch_size < floor {
            return bad(format!(
                "the minimum batch size is at least {floor} on this service"
            ));
        }
        if min_batch_size > 1_000_000_000 {
            return bad("the minimum batch size is at most 1000000000");
        }
        let (batch_mode, max_batch_size) = match self.batching.as_str() {
            "time_windows" | "" => (BatchMode::TimeInterval, None),
            "report_count" => (BatchMode::LeaderSelected, Some(min_batch_size)),
            _ => return bad("batches are time windows or report counts"),
        };
        let epsilon = match self.epsilon.trim() {
            "" => None,
            e => Some(
                e.parse::<f64>()
                    .ok()
                    .filter(|e| e.is_finite())
                    .ok_or_else(|| MetricError("ε must be a number".into()))?,
            ),
        };
        let differential_privacy = match epsilon {
            None => None,
            Some(e) => {
                if sensitivity(&kind).is_none() {
                    return bad(
                        "differential privacy is offered for histograms and vectors of counts",
                    );
                }
                let (epsilon_numerator, epsilon_denominator) = epsilon_fraction(e)?;
                Some(DpStrategy::PureDpDiscreteLaplace {
                    epsilon_numerator,
                    epsilon_denominator,
                })
            }
        };
        let stop_after_days = match self.stop_after_days.trim() {
            "" => None,
            d => {
                let d = number(d, "the number of days")?;
                if !(1..=3650).contains(&d) {
                    return bad("stop after 1 to 3650 days");
                }
                Some(d)
            }
        };
        Ok(TaskPlan {
            metric: Metric {
                name: name.to_owned(),
                kind,
                unit,
                epsilon,
            },
            vdaf,
            time_precision,
            batch_mode,
            min_batch_size,
            max_batch_size,
            differential_privacy,
            stop_after_days,
        })
    }
}

impl Metric {
    /// One line on the noise, e.g. "each bucket is off by about ±2.9 reports".
    pub fn noise_words(&self) -> Option<String> {
        let sd = noise_std_dev(&self.kind, self.epsilon?)?;
        let entry = match self.kind {
            MetricKind::Histogram { .. } => "bucket",
            _ => "entry",
        };
        Some(format!(
            "each {entry} of a result is off by about ±{sd:.1} {} (one standard deviation of the noise both aggregators add)",
            self.unit
        ))
    }

    /// Labels for each coordinate of a result (empty for a single number).
    pub fn labels(&self) -> Vec<String> {
        match &self.kind {
            MetricKind::Histogram { labels, .. } => labels.clone(),
            MetricKind::MultiSelect { options, .. } => options.clone(),
            MetricKind::CountVector { length, .. } => {
                (0..*length).map(|i| format!("#{i}")).collect()
            }
            _ => Vec::new(),
        }
    }

    /// An example measurement for the client snippet, as `cairn dap upload` takes it.
    pub fn example_measurement(&self) -> String {
        match &self.kind {
            MetricKind::Count => "1".into(),
            MetricKind::Sum { max } => (max / 2).to_string(),
            MetricKind::Histogram { .. } => "0".into(),
            MetricKind::CountVector { length, .. } => {
                let mut v = vec!["0"; usize::try_from(*length).unwrap_or(0)];
                if let Some(first) = v.first_mut() {
                    *first = "1";
                }
                v.join(",")
            }
            MetricKind::MultiSelect { options, .. } => {
                let mut v = vec!["0"; options.len()];
                if let Some(first) = v.first_mut() {
                    *first = "1";
                }
                v.join(",")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn form(kind: &str) -> MetricForm {
        MetricForm {
            name: "m".into(),
            kind: kind.into(),
            time_precision: "3600".into(),
            min_batch_size: "100".into(),
            ..MetricForm::default()
        }
    }

    #[test]
    fn numeric_ranges_become_one_bucket_more_than_boundaries() {
        let mut f = form("histogram");
        f.bucket_style = "ranges".into();
        f.buckets = "10, 100\n1000".into();
        let plan = f.plan(100).unwrap();
        assert_eq!(
            plan.vdaf,
            VdafInstance::Prio3Histogram {
                length: 4,
                chunk_length: 2
            }
        );
        assert_eq!(
            plan.metric.labels(),
            ["< 10", "10 – 99", "100 – 999", "≥ 1000"]
        );
        f.buckets = "10, 10".into();
        assert!(f.plan(100).is_err());
    }

    #[test]
    fn minimum_batch_size_below_the_floor_is_refused() {
        let mut f = form("count");
        f.min_batch_size = "99".into();
        assert!(f.plan(100).unwrap_err().0.contains("at least 100"));
        assert!(f.plan(10).is_ok());
    }

    #[test]
    fn differential_privacy_only_where_the_vdaf_offers_it() {
        let mut f = form("sum");
        f.sum_max = "10".into();
        f.epsilon = "1".into();
        assert!(f.plan(1).is_err());
        let mut h = form("histogram");
        h.buckets = "a\nb\nc".into();
        h.epsilon = "0.5".into();
        let plan = h.plan(1).unwrap();
        assert_eq!(
            plan.differential_privacy,
            Some(DpStrategy::PureDpDiscreteLaplace {
                epsilon_numerator: 1,
                epsilon_denominator: 2
            })
        );
        // Scale 4 per aggregator: a discrete Laplace standard deviation just under 4·√2,
        // and two aggregators: about 7.9.
        let sd = noise_std_dev(&plan.metric.kind, 0.5).unwrap();
        assert!((7.7..8.1).contains(&sd), "{sd}");
        assert!(plan.metric.noise_words().unwrap().contains("reports"));
    }

    #[test]
    fn multi_select_and_vectors_map_to_their_vdafs() {
        let mut m = form("multi_select");
        m.options = "red\ngreen\nblue".into();
        m.max_selected = "2".into();
        assert!(matches!(
            m.plan(1).unwrap().vdaf,
            VdafInstance::Prio3MultihotCountVec {
                length: 3,
                max_weight: 2,
                ..
            }
        ));
        m.max_selected = "4".into();
        assert!(m.plan(1).is_err());
        let mut v = form("count_vector");
        v.vector_length = "5".into();
        v.vector_max = "3".into();
        v.batching = "report_count".into();
        let plan = v.plan(1).unwrap();
        assert_eq!(plan.batch_mode, BatchMode::LeaderSelected);
        assert_eq!(plan.max_batch_size, Some(100));
        assert_eq!(plan.metric.example_measurement(), "1,0,0,0,0");
    }

    #[test]
    fn epsilon_is_kept_to_three_decimals() {
        assert_eq!(epsilon_fraction(0.25).unwrap(), (1, 4));
        assert_eq!(epsilon_fraction(3.0).unwrap(), (3, 1));
        assert!(epsilon_fraction(0.0).is_err());
    }
}
