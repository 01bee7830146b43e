//! The service-level indicators the public statistics page shows, counted in this process:
//! per listener and route template, the requests that were not the client's mistake (valid:
//! any answer but a 4xx) and, of those, the ones the service failed (errors: a 5xx). The same
//! rule as the recording rules in `deploy/prometheus/` apply to `cairn_http_requests_total`.
//!
//! Prometheus keeps those counters for alerting; the page cannot ask it (a CA need not run
//! one, and the page must not depend on it). So [`SliTally`] counts the same events in memory,
//! and the page adds them to storage's per-day table ([`StatsStorage::add_sli_counts`]) every
//! minute and before each read: the 90-day table survives restarts and sums every process that
//! shares the database. A process that dies loses at most its last minute of events.
//!
//! Requests that match no route are not counted (their label is unbounded in meaning, and no
//! objective covers them).
//!
//! [`StatsStorage::add_sli_counts`]: cairn_api::StatsStorage::add_sli_counts

use axum::Router;
use axum::extract::{MatchedPath, Request};
use axum::middleware::{self, Next};
use cairn_api::SliCount;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

/// Events per (listener, route template): (valid, errors).
type Counts = BTreeMap<(String, String), (u64, u64)>;

/// This process's SLI events not yet added to storage.
#[derive(Debug, Default)]
pub struct SliTally {
    counts: Mutex<Counts>,
}

impl SliTally {
    /// An empty tally.
    pub fn new() -> Arc<SliTally> {
        Arc::new(SliTally::default())
    }

    /// `app` with every routed request counted under `listener` (the name its
    /// `cairn_listen::Listener` carries, so the page and Prometheus name endpoints alike).
    pub fn count(self: &Arc<SliTally>, app: Router, listener: &'static str) -> Router {
        let tally = self.clone();
        app.layer(middleware::from_fn(move |req: Request, next: Next| {
            let tally = tally.clone();
            async move {
                let endpoint = req
                    .extensions()
                    .get::<MatchedPath>()
                    .map(|p| p.as_str().to_owned());
                let resp = next.run(req).await;
                if let Some(endpoint) = endpoint {
                    tally.record(listener, endpoint, resp.status().as_u16());
                }
                resp
            }
        }))
    }

    /// Counts one answer with HTTP status `status`.
    fn record(&self, listener: &'static str, endpoint: String, status: u16) {
        if (400..500).contains(&status) {
            return;
        }
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        let entry = counts.entry((listener.to_owned(), endpoint)).or_default();
        entry.0 += 1;
        if status >= 500 {
            entry.1 += 1;
        }
    }

    /// Takes the events counted so far, leaving the tally empty.
    pub fn take(&self) -> Vec<SliCount> {
        let counts =
            std::mem::take(&mut *self.counts.lock().unwrap_or_else(PoisonError::into_inner));
        counts
            .into_iter()
            .map(|((listener, endpoint), (valid, errors))| SliCount {
                listener,
                endpoint,
                valid,
                errors,
            })
            .collect()
    }

    /// Puts back events [`take`](SliTally::take)n but not stored (storage failed), to be
    /// stored with the next ones.
    pub fn restore(&self, taken: Vec<SliCount>) {
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        for c in taken {
            let entry = counts.entry((c.listener, c.endpoint)).or_default();
            entry.0 += c.valid;
            entry.1 += c.errors;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::StatusCode;
    use axum::routing::get;
    use tower::ServiceExt;

    async fn status(app: &Router, path: &str) -> StatusCode {
        let req = axum::http::Request::get(path).body(Body::empty()).unwrap();
        app.clone().oneshot(req).await.unwrap().status()
    }

    #[tokio::test]
    async fn client_mistakes_do_not_count_and_server_failures_are_errors() {
        let tally = SliTally::new();
        let app = Router::new()
            .route("/ok/{id}", get(|| async { StatusCode::OK }))
            .route("/mistake", get(|| async { StatusCode::BAD_REQUEST }))
            .route("/limited", get(|| async { StatusCode::TOO_MANY_REQUESTS }))
            .route("/fail", get(|| async { StatusCode::SERVICE_UNAVAILABLE }));
        let app = tally.count(app, "acme");
        for path in [
            "/ok/1", "/ok/2", "/mistake", "/limited", "/fail", "/nowhere",
        ] {
            status(&app, path).await;
        }
        assert_eq!(status(&app, "/fail").await, StatusCode::SERVICE_UNAVAILABLE);
        let taken = tally.take();
        let got: Vec<(&str, &str, u64, u64)> = taken
            .iter()
            .map(|c| (c.listener.as_str(), c.endpoint.as_str(), c.valid, c.errors))
            .collect();
        assert_eq!(
            got,
            [("acme", "/fail", 2, 2), ("acme", "/ok/{id}", 2, 0)],
            "4xx and unrouted requests are left out"
        );
        assert!(tally.take().is_empty(), "taking empties the tally");

        tally.restore(taken);
        status(&app, "/ok/3").await;
        let again = tally.take();
        assert_eq!(again[1].valid, 3, "{again:?}");
        assert_eq!(again[0].errors, 2, "{again:?}");
    }
}
