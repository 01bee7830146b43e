//! What a run measures: per-endpoint latencies, issued certificates by kind, errors by problem
//! type; and the summary computed from them.

use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The ACME resources a flow touches, for per-endpoint latency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub enum Endpoint {
    /// GET directory.
    Directory,
    /// HEAD newNonce.
    NewNonce,
    /// POST newAccount.
    NewAccount,
    /// POST newOrder.
    NewOrder,
    /// POST-as-GET an authorization.
    Authz,
    /// POST a challenge (respond).
    Challenge,
    /// POST-as-GET an order (polling).
    Order,
    /// POST finalize.
    Finalize,
    /// POST-as-GET the certificate.
    Certificate,
    /// POST revokeCert.
    RevokeCert,
    /// One complete issuance, newOrder to certificate download.
    Issuance,
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = match self {
            Endpoint::Directory => "directory",
            Endpoint::NewNonce => "newNonce",
            Endpoint::NewAccount => "newAccount",
            Endpoint::NewOrder => "newOrder",
            Endpoint::Authz => "authz",
            Endpoint::Challenge => "challenge",
            Endpoint::Order => "order",
            Endpoint::Finalize => "finalize",
            Endpoint::Certificate => "certificate",
            Endpoint::RevokeCert => "revokeCert",
            Endpoint::Issuance => "issuance",
        };
        f.write_str(name)
    }
}

/// The kinds of flow in a mix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum FlowKind {
    /// One DNS name.
    Single,
    /// Several DNS names under one registered domain.
    Multi,
    /// A renewal of the worker's previous certificate, naming it in `replaces` (RFC 9773).
    Renewal,
    /// A single-name certificate, revoked right after download.
    Revoke,
}

impl FlowKind {
    pub(crate) const ALL: [FlowKind; 4] = [
        FlowKind::Single,
        FlowKind::Multi,
        FlowKind::Renewal,
        FlowKind::Revoke,
    ];

    pub(crate) fn name(self) -> &'static str {
        match self {
            FlowKind::Single => "single",
            FlowKind::Multi => "multi",
            FlowKind::Renewal => "renewal",
            FlowKind::Revoke => "revoke",
        }
    }
}

/// One endpoint's responses by status class, as a service-level indicator counts them: the
/// client's mistakes (4xx) apart from the server's failures (5xx).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct StatusCounts {
    /// Answers below 400.
    pub ok: u64,
    /// 4xx answers (`badNonce` retries included).
    pub client_errors: u64,
    /// 5xx answers.
    pub server_errors: u64,
}

/// Counters shared by the workers.
#[derive(Debug, Default)]
pub(crate) struct Stats {
    latencies: Mutex<BTreeMap<Endpoint, Vec<u32>>>,
    statuses: Mutex<BTreeMap<Endpoint, StatusCounts>>,
    pub(crate) issued: AtomicU64,
    /// Certificates finished before the run's duration was up.
    pub(crate) issued_in_duration: AtomicU64,
    issued_by_kind: Mutex<BTreeMap<FlowKind, u64>>,
    pub(crate) revoked: AtomicU64,
    pub(crate) in_flight: AtomicU64,
    pub(crate) errors_total: AtomicU64,
    errors: Mutex<BTreeMap<String, u64>>,
    bad_nonce_retries: AtomicU64,
    accounts: AtomicU64,
    cert_ids: Mutex<Vec<String>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panicking worker cannot leave a counter map half-updated in a way that matters.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Stats {
    pub(crate) fn record(&self, endpoint: Endpoint, took: Duration) {
        let micros = u32::try_from(took.as_micros()).unwrap_or(u32::MAX);
        lock(&self.latencies)
            .entry(endpoint)
            .or_default()
            .push(micros);
    }

    /// Counts one HTTP answer from `endpoint`.
    pub(crate) fn status(&self, endpoint: Endpoint, status: u16) {
        let mut statuses = lock(&self.statuses);
        let counts = statuses.entry(endpoint).or_default();
        match status {
            500.. => counts.server_errors += 1,
            400..500 => counts.client_errors += 1,
            _ => counts.ok += 1,
        }
    }

    pub(crate) fn issued(&self, kind: FlowKind) {
        self.issued.fetch_add(1, Ordering::Relaxed);
        *lock(&self.issued_by_kind).entry(kind).or_default() += 1;
    }

    pub(crate) fn cert_id(&self, id: String) {
        lock(&self.cert_ids).push(id);
    }

    pub(crate) fn error(&self, kind: String) {
        self.errors_total.fetch_add(1, Ordering::Relaxed);
        *lock(&self.errors).entry(kind).or_default() += 1;
    }

    pub(crate) fn bad_nonce_retry(&self) {
        self.bad_nonce_retries.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn account_created(&self) {
        self.accounts.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn summary(
        &self,
        elapsed: Duration,
        duration: Duration,
        directory: &str,
    ) -> Summary {
        let certificates = self.issued.load(Ordering::Relaxed);
        let in_duration = self.issued_in_duration.load(Ordering::Relaxed);
        let secs = elapsed.as_secs_f64();
        let duration_secs = duration.as_secs_f64().min(secs);
        let mut by_kind = BTreeMap::new();
        let issued_by_kind = lock(&self.issued_by_kind);
        for kind in FlowKind::ALL {
            by_kind.insert(
                kind.name().to_owned(),
                issued_by_kind.get(&kind).copied().unwrap_or(0),
            );
        }
        let endpoints = lock(&self.latencies)
            .iter_mut()
            .map(|(e, v)| (e.to_string(), Latency::of(v)))
            .collect();
        Summary {
            directory: directory.to_owned(),
            elapsed_secs: secs,
            accounts: self.accounts.load(Ordering::Relaxed),
            certificates,
            certificates_by_kind: by_kind,
            revocations: self.revoked.load(Ordering::Relaxed),
            certificates_per_sec: if secs > 0.0 {
                certificates as f64 / secs
            } else {
                0.0
            },
            duration_secs,
            certificates_in_duration: in_duration,
            certificates_per_sec_in_duration: if duration_secs > 0.0 {
                in_duration as f64 / duration_secs
            } else {
                0.0
            },
            errors_total: self.errors_total.load(Ordering::Relaxed),
            errors: lock(&self.errors).clone(),
            bad_nonce_retries: self.bad_nonce_retries.load(Ordering::Relaxed),
            endpoints,
            statuses: lock(&self.statuses)
                .iter()
                .map(|(e, c)| (e.to_string(), *c))
                .collect(),
            cert_ids: std::mem::take(&mut *lock(&self.cert_ids)),
        }
    }
}

/// Latency percentiles of one endpoint, in milliseconds.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Latency {
    /// Requests answered (successfully or with a problem).
    pub count: u64,
    /// Median.
    pub p50_ms: f64,
    /// 90th percentile.
    pub p90_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// Slowest.
    pub max_ms: f64,
}

impl Latency {
    fn of(micros: &mut [u32]) -> Latency {
        micros.sort_unstable();
        // Nearest-rank percentile.
        let pct = |p: f64| -> f64 {
            if micros.is_empty() {
                return 0.0;
            }
            let rank = ((p / 100.0) * micros.len() as f64).ceil() as usize;
            f64::from(micros[rank.clamp(1, micros.len()) - 1]) / 1000.0
        };
        Latency {
            count: micros.len() as u64,
            p50_ms: pct(50.0),
            p90_ms: pct(90.0),
            p99_ms: pct(99.0),
            max_ms: micros.last().map(|m| f64::from(*m) / 1000.0).unwrap_or(0.0),
        }
    }
}

/// The result of a run.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// The directory URL driven.
    pub directory: String,
    /// Wall-clock duration of the run, including the drain of flows in flight at the end.
    pub elapsed_secs: f64,
    /// Accounts registered.
    pub accounts: u64,
    /// Certificates issued and downloaded.
    pub certificates: u64,
    /// Certificates by flow kind.
    pub certificates_by_kind: BTreeMap<String, u64>,
    /// Certificates revoked.
    pub revocations: u64,
    /// `certificates / elapsed_secs`.
    pub certificates_per_sec: f64,
    /// How long new flows were started (the run's `duration`, or less if it ended sooner).
    pub duration_secs: f64,
    /// Certificates finished within `duration_secs` of the start.
    pub certificates_in_duration: u64,
    /// `certificates_in_duration / duration_secs`: the steady rate, without the drain of the
    /// flows still in flight at the end (which a server that stops answering stretches to the
    /// client's timeout).
    pub certificates_per_sec_in_duration: f64,
    /// Failed flows.
    pub errors_total: u64,
    /// Failed flows by problem type (or `transport`, `timeout`, `unexpectedResponse`).
    pub errors: BTreeMap<String, u64>,
    /// Requests re-sent after a `badNonce` problem (not counted as errors).
    pub bad_nonce_retries: u64,
    /// Latency by endpoint (`issuance`: one whole flow).
    pub endpoints: BTreeMap<String, Latency>,
    /// HTTP answers by endpoint and status class (every request that got an answer).
    pub statuses: BTreeMap<String, StatusCounts>,
    /// RFC 9773 identifiers of the certificates issued (when asked for with
    /// [`crate::LoadConfig::keep_cert_ids`]).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cert_ids: Vec<String>,
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "directory     {}", self.directory)?;
        writeln!(
            f,
            "certificates  {} in {:.2} s = {:.1} /s ({} accounts)",
            self.certificates, self.elapsed_secs, self.certificates_per_sec, self.accounts
        )?;
        writeln!(
            f,
            "in duration   {} in {:.2} s = {:.1} /s",
            self.certificates_in_duration,
            self.duration_secs,
            self.certificates_per_sec_in_duration
        )?;
        let kinds: Vec<String> = self
            .certificates_by_kind
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        writeln!(f, "by kind       {}", kinds.join(", "))?;
        writeln!(f, "revocations   {}", self.revocations)?;
        writeln!(
            f,
            "errors        {} (badNonce retries {})",
            self.errors_total, self.bad_nonce_retries
        )?;
        for (typ, n) in &self.errors {
            writeln!(f, "  {typ:<24} {n}")?;
        }
        writeln!(
            f,
            "{:<16} {:>8} {:>10} {:>10} {:>10} {:>10}",
            "latency (ms)", "count", "P50", "P90", "P99", "max"
        )?;
        for (name, l) in &self.endpoints {
            writeln!(
                f,
                "{:<16} {:>8} {:>10.2} {:>10.2} {:>10.2} {:>10.2}",
                name, l.count, l.p50_ms, l.p90_ms, l.p99_ms, l.max_ms
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let mut v: Vec<u32> = (1..=100).map(|ms| ms * 1000).collect();
        v.reverse();
        let l = Latency::of(&mut v);
        assert_eq!(l.count, 100);
        assert_eq!(l.p50_ms, 50.0);
        assert_eq!(l.p90_ms, 90.0);
        assert_eq!(l.p99_ms, 99.0);
        assert_eq!(l.max_ms, 100.0);
        let mut one = vec![7000];
        assert_eq!(Latency::of(&mut one).p99_ms, 7.0);
        assert_eq!(Latency::of(&mut []).p50_ms, 0.0);
    }

    #[test]
    fn statuses_are_counted_by_class() {
        let stats = Stats::default();
        for status in [200, 201, 204, 302, 400, 429, 499, 500, 503] {
            stats.status(Endpoint::Finalize, status);
        }
        stats.status(Endpoint::NewOrder, 201);
        let summary = stats.summary(Duration::from_secs(1), Duration::from_secs(1), "d");
        let finalize = StatusCounts {
            ok: 4,
            client_errors: 3,
            server_errors: 2,
        };
        assert_eq!(summary.statuses["finalize"], finalize);
        assert_eq!(summary.statuses["newOrder"].ok, 1);
        assert!(!summary.statuses.contains_key("authz"));
    }
}
