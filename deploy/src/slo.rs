//! Service-level objectives as configuration, and the Prometheus recording rules they generate.
//!
//! An SLI here is the share of *valid* events the service got right. Valid events are what the
//! service answered minus the client's own mistakes (HTTP 4xx: a malformed JWS, a bad nonce, a
//! rate limit, an unknown order), so a client that sends garbage moves neither side of the
//! ratio; errors are the valid events that failed because of the service (HTTP 5xx, an OCSP
//! `internalError`/`tryLater`, a CT log that is full or down). Each SLO in `slos.toml` names its
//! events either as an HTTP endpoint of one of Cairn's listeners (the common case, counted by
//! `cairn_http_requests_total`) or as two explicit PromQL selectors.
//!
//! For every SLO and every window in [`WINDOWS`] the generated file records
//! `cairn:sli_error_ratio:rate<window>` and `cairn:sli_valid_events:rate<window>`, and once
//! `cairn:slo_objective:ratio` (the target, as a constant series), all labelled `slo` and
//! `service`. The burn-rate alerts (`slo-alerts.rules.yml`) are written once over those names,
//! so they cover every SLO without being generated themselves.

use serde::Deserialize;
use std::collections::HashSet;
use std::fmt::Write;

/// The windows the burn-rate alerts use (Google SRE workbook, multiwindow multi-burn-rate):
/// 1h/5m and 6h/30m page, 1d/2h and 3d/6h open a ticket.
pub const WINDOWS: [&str; 7] = ["5m", "30m", "1h", "2h", "6h", "1d", "3d"];

/// The contents of `slos.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SloConfig {
    /// The objectives, in the order the generated rules list them.
    #[serde(rename = "slo")]
    pub slos: Vec<Slo>,
}

/// One objective.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Slo {
    /// The `slo` label: lower-case letters, digits and `_`, unique.
    pub name: String,
    /// The `service` label (`acme`, `ct`, `ocsp`, `crl`, `dap`), for grouping on dashboards.
    pub service: String,
    /// The target share of valid events that succeed, strictly between 0 and 1 (0.999).
    pub objective: f64,
    /// What the objective is about, for people reading the file.
    pub description: String,
    /// The events are requests to an HTTP endpoint (4xx excluded, 5xx errors).
    pub http: Option<HttpEndpoint>,
    /// Explicit PromQL selector of the valid events (a counter); with `errors`, instead of `http`.
    pub valid: Option<String>,
    /// Explicit PromQL selector of the failed valid events (a counter).
    pub errors: Option<String>,
}

/// Requests counted by `cairn_http_requests_total` on one listener.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpEndpoint {
    /// The listener's name (`acme`, `public`, `ct`, `dap`).
    pub listener: String,
    /// A regular expression (RE2, fully anchored as PromQL anchors it) over route templates.
    pub endpoint: String,
}

/// Why a configuration was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SloError {
    /// The file is not valid TOML or does not have the expected shape.
    #[error("slos.toml: {0}")]
    Parse(#[from] toml::de::Error),
    /// The file defines no objective.
    #[error("slos.toml defines no [[slo]]")]
    Empty,
    /// Two objectives share a name.
    #[error("slo {0:?} is defined twice")]
    Duplicate(String),
    /// One objective is not usable; the reason says why.
    #[error("slo {slo:?}: {reason}")]
    Invalid {
        /// The objective's name.
        slo: String,
        /// What is wrong with it.
        reason: &'static str,
    },
}

impl SloConfig {
    /// Parses and checks `slos.toml`.
    pub fn parse(text: &str) -> Result<Self, SloError> {
        let config: SloConfig = toml::from_str(text)?;
        config.check()?;
        Ok(config)
    }

    fn check(&self) -> Result<(), SloError> {
        if self.slos.is_empty() {
            return Err(SloError::Empty);
        }
        let mut seen = HashSet::new();
        for slo in &self.slos {
            slo.check()?;
            if !seen.insert(slo.name.as_str()) {
                return Err(SloError::Duplicate(slo.name.clone()));
            }
        }
        Ok(())
    }

    /// The recording rules, as the YAML file Prometheus loads.
    pub fn recording_rules(&self) -> String {
        let mut out = String::from(
            "# Generated from slos.toml by `cargo run -p cairn-deploy -- slo-rules \
             deploy/prometheus/slos.toml`;\n# do not edit (a test fails when this file and \
             slos.toml disagree).\ngroups:\n  - name: cairn-slo-objectives\n    rules:\n",
        );
        for slo in &self.slos {
            let _ = write!(
                out,
                "      - record: cairn:slo_objective:ratio\n        expr: vector({})\n{}",
                slo.objective,
                slo.labels()
            );
        }
        for window in WINDOWS {
            let _ = write!(out, "  - name: cairn-sli-rate{window}\n    rules:\n");
            for slo in &self.slos {
                let (valid, errors) = slo.selectors();
                let _ = write!(
                    out,
                    "      - record: cairn:sli_error_ratio:rate{window}\n        expr: \
                     (sum(rate({errors}[{window}])) or vector(0)) / sum(rate({valid}[{window}]))\n{}",
                    slo.labels()
                );
                let _ = write!(
                    out,
                    "      - record: cairn:sli_valid_events:rate{window}\n        expr: \
                     sum(rate({valid}[{window}]))\n{}",
                    slo.labels()
                );
            }
        }
        out
    }
}

impl Slo {
    fn invalid(&self, reason: &'static str) -> SloError {
        SloError::Invalid {
            slo: self.name.clone(),
            reason,
        }
    }

    fn check(&self) -> Result<(), SloError> {
        let label_value = |s: &str| {
            !s.is_empty()
                && s.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        };
        if !label_value(&self.name) {
            return Err(self.invalid("name must be lower-case letters, digits and _"));
        }
        if !label_value(&self.service) {
            return Err(self.invalid("service must be lower-case letters, digits and _"));
        }
        if !(self.objective > 0.0 && self.objective < 1.0) {
            return Err(self.invalid("objective must be strictly between 0 and 1"));
        }
        // A PromQL string literal or selector that could close its quotes or its line would
        // turn the generated file into something else.
        let safe = |s: &str| !s.is_empty() && !s.contains(['"', '\\', '\n', '\r']);
        let safe_selector = |s: &str| !s.trim().is_empty() && !s.contains(['\n', '\r']);
        match (&self.http, &self.valid, &self.errors) {
            (Some(h), None, None) => {
                if !safe(&h.listener) || !safe(&h.endpoint) {
                    return Err(self.invalid(
                        "http.listener and http.endpoint must be non-empty, without quotes, \
                         backslashes or line breaks",
                    ));
                }
            }
            (None, Some(v), Some(e)) => {
                if !safe_selector(v) || !safe_selector(e) {
                    return Err(self.invalid("valid and errors must be one-line selectors"));
                }
            }
            _ => {
                return Err(self.invalid("give either http = {...} or both valid and errors"));
            }
        }
        Ok(())
    }

    /// The selectors of the valid events and of the errors among them.
    fn selectors(&self) -> (String, String) {
        match (&self.http, &self.valid, &self.errors) {
            (Some(h), _, _) => {
                let base = format!(
                    "cairn_http_requests_total{{listener=\"{}\",endpoint=~\"{}\"",
                    h.listener, h.endpoint
                );
                (
                    format!("{base},status!~\"4..\"}}"),
                    format!("{base},status=~\"5..\"}}"),
                )
            }
            (None, Some(v), Some(e)) => (v.trim().to_owned(), e.trim().to_owned()),
            // `check` refuses every other shape.
            _ => (String::new(), String::new()),
        }
    }

    fn labels(&self) -> String {
        format!(
            "        labels:\n          slo: {}\n          service: {}\n",
            self.name, self.service
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ONE: &str = r#"
        [[slo]]
        name = "acme_new_order"
        service = "acme"
        objective = 0.999
        description = "POST /acme/new-order"
        http = { listener = "acme", endpoint = "/acme/new-order" }
    "#;

    #[test]
    fn an_http_slo_counts_5xx_against_valid_requests_without_4xx() {
        let rules = SloConfig::parse(ONE).unwrap().recording_rules();
        assert!(rules.contains(
            "(sum(rate(cairn_http_requests_total{listener=\"acme\",endpoint=~\"/acme/new-order\",\
             status=~\"5..\"}[1h])) or vector(0)) / sum(rate(cairn_http_requests_total\
             {listener=\"acme\",endpoint=~\"/acme/new-order\",status!~\"4..\"}[1h]))"
        ));
        assert!(rules.contains("expr: vector(0.999)"));
        for w in WINDOWS {
            assert!(rules.contains(&format!("record: cairn:sli_error_ratio:rate{w}\n")));
            assert!(rules.contains(&format!("record: cairn:sli_valid_events:rate{w}\n")));
        }
    }

    #[test]
    fn bad_configurations_are_refused_with_the_reason() {
        let cases = [
            (ONE.replace("0.999", "1.0"), "strictly between 0 and 1"),
            (ONE.replace("acme_new_order", "New-Order"), "lower-case"),
            (
                ONE.replace("/acme/new-order\"", "/acme/\\\"x\""),
                "without quotes",
            ),
            (
                ONE.replace("http = {", "valid = \"x\"\nhttp = {"),
                "either http",
            ),
            (format!("{ONE}\n{ONE}"), "defined twice"),
            (String::new(), "missing field"),
            (ONE.replace("description", "descr"), "unknown field"),
        ];
        for (text, want) in cases {
            let err = SloConfig::parse(&text).unwrap_err().to_string();
            assert!(err.contains(want), "{want:?} not in {err:?}");
        }
    }
}
