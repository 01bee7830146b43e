//! What every Cairn service shares at start-up: logging, the Prometheus recorder with its
//! `/metrics` and `/health` listener (readiness and liveness), and shutdown on SIGINT/SIGTERM.

use anyhow::Context;
use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

/// A readiness probe: `Err(reason)` when the dependency it checks is not usable.
pub type Probe =
    Arc<dyn Fn() -> Pin<Box<dyn Future<Output = Result<(), String>> + Send>> + Send + Sync>;

/// What `/health` (= `/health/ready`) checks: the service has finished starting, and every
/// probe (database, ...) answers within [`Readiness::PROBE_TIMEOUT`]. `/health/live` only says
/// the process serves.
///
/// Every probe's result is also exported as `cairn_dependency_up{dependency}` (the
/// `DependencyDown` alert), including monitored probes ([`Readiness::monitor`]) that do not
/// decide readiness.
#[derive(Clone, Default)]
pub struct Readiness {
    started: Arc<AtomicBool>,
    probes: Arc<Mutex<Vec<ProbeEntry>>>,
}

#[derive(Clone)]
struct ProbeEntry {
    name: &'static str,
    probe: Probe,
    /// Whether a failure makes the service unready (else it is only exported).
    gates: bool,
}

impl std::fmt::Debug for Readiness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Readiness")
            .field("started", &self.started.load(Ordering::SeqCst))
            .finish_non_exhaustive()
    }
}

impl Readiness {
    /// Time each probe gets before it counts as failed.
    pub const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

    /// Readiness of a service with nothing more to check once started.
    pub fn started() -> Self {
        let r = Self::default();
        r.mark_started();
        r
    }

    /// Adds a probe named `name` (the name is shown when it fails).
    pub fn add(&self, name: &'static str, probe: Probe) {
        self.push(name, probe, true);
    }

    /// Adds a probe whose result is only exported (`cairn_dependency_up`), for a dependency the
    /// service works without: taking every instance out of the load balancer because of it
    /// would turn a degraded service into an outage (Redis: the rate limiter fails open).
    pub fn monitor(&self, name: &'static str, probe: Probe) {
        self.push(name, probe, false);
    }

    fn push(&self, name: &'static str, probe: Probe, gates: bool) {
        self.probes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(ProbeEntry { name, probe, gates });
    }

    /// The service has started; from now on the probes decide.
    pub fn mark_started(&self) {
        self.started.store(true, Ordering::SeqCst);
    }

    /// `Ok` when ready, else the names of what is not, each with its reason.
    pub async fn check(&self) -> Result<(), Vec<String>> {
        if !self.started.load(Ordering::SeqCst) {
            return Err(vec!["starting".into()]);
        }
        let probes = self
            .probes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let mut failed = Vec::new();
        for ProbeEntry { name, probe, gates } in probes {
            let failure = match tokio::time::timeout(Self::PROBE_TIMEOUT, probe()).await {
                Ok(Ok(())) => None,
                Ok(Err(reason)) => Some(format!("{name}: {reason}")),
                Err(_) => Some(format!(
                    "{name}: no answer within {:?}",
                    Self::PROBE_TIMEOUT
                )),
            };
            let up = failure.is_none();
            if let Some(f) = failure
                && gates
            {
                failed.push(f);
            }
            // What the `DependencyDown` alert watches (set on every check: each scrape of
            // `/metrics` and each readiness request).
            metrics::gauge!("cairn_dependency_up", "dependency" => name)
                .set(f64::from(u8::from(up)));
        }
        if failed.is_empty() {
            Ok(())
        } else {
            Err(failed)
        }
    }
}

/// How log events are written to stderr: the binary's global `--log-format`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One human-readable line per event (colours on a terminal).
    #[default]
    Text,
    /// One JSON object per line, for Loki or Elasticsearch: `timestamp`, `level`, `target`,
    /// `message` and the event's fields at the top level; the fields of the span the event
    /// happened in (an ACME request's `request_id`, `endpoint`, `account_id`, `order_id`)
    /// under `span`.
    Json,
}

static LOG_FORMAT: OnceLock<LogFormat> = OnceLock::new();

/// Chooses the format [`init_logging`] installs; the first call wins (the binary calls it once,
/// from its global flag, before any subcommand runs).
pub fn set_log_format(format: LogFormat) {
    let _ = LOG_FORMAT.set(format);
}

static OTLP_ENDPOINT: OnceLock<String> = OnceLock::new();
static TRACER_PROVIDER: OnceLock<opentelemetry_sdk::trace::SdkTracerProvider> = OnceLock::new();

/// Exports spans to an OpenTelemetry collector at `endpoint` (its OTLP/HTTP base URL, such as
/// `http://collector:4318`; spans go to `{endpoint}/v1/traces` as protobuf) once
/// [`init_logging`] runs. The binary's global `--otlp-endpoint`; the first call wins.
pub fn set_otlp_endpoint(endpoint: String) {
    let _ = OTLP_ENDPOINT.set(endpoint);
}

/// Logs to stderr in the format [`set_log_format`] chose (text by default), filtered by
/// `RUST_LOG` (default `info`); with [`set_otlp_endpoint`], also exports the spans (an ACME
/// request's `acme_request` span with its fields, and the events in it) over OTLP.
pub fn init_logging() {
    use tracing_subscriber::Layer;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let fmt = match LOG_FORMAT.get().copied().unwrap_or_default() {
        LogFormat::Text => fmt
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .boxed(),
        LogFormat::Json => fmt
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .boxed(),
    };
    let otlp = OTLP_ENDPOINT
        .get()
        .and_then(|endpoint| match otlp_tracer(endpoint) {
            Ok(tracer) => Some(tracing_opentelemetry::layer().with_tracer(tracer)),
            Err(e) => {
                eprintln!("cairn: OTLP trace export to {endpoint} is off: {e}");
                None
            }
        });
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(fmt)
        .with(otlp)
        .try_init();
}

/// The tracer of a provider that batches spans and sends them from the SDK's own thread, with
/// a blocking HTTP client (built on a thread of its own, so this works inside the runtime).
fn otlp_tracer(endpoint: &str) -> anyhow::Result<opentelemetry_sdk::trace::SdkTracer> {
    use opentelemetry::trace::TracerProvider as _;
    use opentelemetry_otlp::WithExportConfig;
    let url = format!("{}/v1/traces", endpoint.trim_end_matches('/'));
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
        .with_endpoint(url)
        .with_timeout(Duration::from_secs(10))
        .build()?;
    let provider = TRACER_PROVIDER.get_or_init(|| {
        opentelemetry_sdk::trace::SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(
                opentelemetry_sdk::Resource::builder()
                    .with_service_name("cairn")
                    .build(),
            )
            .build()
    });
    Ok(provider.tracer("cairn"))
}

/// Sends the spans still batched (a clean exit; after SIGKILL they are lost, as any exporter's).
pub fn shutdown_tracing() {
    if let Some(provider) = TRACER_PROVIDER.get()
        && let Err(e) = provider.shutdown_with_timeout(Duration::from_secs(5))
    {
        eprintln!("cairn: flushing OTLP traces: {e}");
    }
}

/// Installs the Prometheus recorder and serves `/metrics`, `/health` (readiness, also
/// `/health/ready`) and `/health/live` on `addr` within `limits`.
/// The recorder is process-wide: installed once, shared by every listener (tests start several
/// servers in one process).
pub async fn serve_metrics(
    addr: SocketAddr,
    limits: cairn_listen::Limits,
    readiness: Readiness,
) -> anyhow::Result<SocketAddr> {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    let handle = HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new().build_recorder();
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!("a metrics recorder was already installed; /metrics stays empty");
            }
            handle
        })
        .clone();
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen for metrics on {addr}"))?;
    let bound = listener.local_addr()?;
    let app = metrics_router(handle, readiness);
    tokio::spawn(
        cairn_listen::Listener::new(listener, "metrics", limits)
            .serve(app, std::future::pending::<()>()),
    );
    Ok(bound)
}

fn metrics_router(handle: PrometheusHandle, readiness: Readiness) -> Router {
    Router::new()
        .route(
            "/metrics",
            get({
                let readiness = readiness.clone();
                move || {
                    let h = handle.clone();
                    let readiness = readiness.clone();
                    // Probes first, so `cairn_dependency_up` is as fresh as the scrape.
                    async move {
                        let _ = readiness.check().await;
                        h.render()
                    }
                }
            }),
        )
        .merge(health_router(readiness))
}

/// `/health` and `/health/ready`: 200 `ready`, or 503 naming what is not; `/health/live`: 200
/// while the process serves.
pub fn health_router(readiness: Readiness) -> Router {
    let ready = move || {
        let readiness = readiness.clone();
        async move {
            match readiness.check().await {
                Ok(()) => (StatusCode::OK, "ready\n".to_owned()),
                Err(failed) => (
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("not ready: {}\n", failed.join("; ")),
                ),
            }
        }
    };
    Router::new()
        .route("/health", get(ready.clone()))
        .route("/health/ready", get(ready))
        .route("/health/live", get(|| async { "live\n" }))
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tower::ServiceExt;

    async fn get(app: &Router, path: &str) -> (StatusCode, String) {
        let req = axum::http::Request::get(path)
            .body(axum::body::Body::empty())
            .unwrap();
        let resp = app.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let body = axum::body::to_bytes(resp.into_body(), 1 << 16)
            .await
            .unwrap();
        (status, String::from_utf8(body.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn health_is_ready_only_once_started_and_while_the_database_answers() {
        let dir = tempfile::tempdir().unwrap();
        let storage = Arc::new(
            cairn_sa::SqlStorage::open_sqlite_in(dir.path())
                .await
                .unwrap(),
        );
        let readiness = Readiness::default();
        readiness.add("database", crate::serve::database_probe(storage.clone()));
        let app = health_router(readiness.clone());

        let (status, body) = get(&app, "/health").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
        assert!(body.contains("starting"), "{body}");
        assert_eq!(get(&app, "/health/live").await.0, StatusCode::OK);

        readiness.mark_started();
        assert_eq!(
            get(&app, "/health").await,
            (StatusCode::OK, "ready\n".into())
        );
        assert_eq!(get(&app, "/health/ready").await.0, StatusCode::OK);

        // The database goes away: not ready, and it says why; still live.
        storage.close().await;
        let (status, body) = get(&app, "/health").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
        assert!(body.contains("database"), "{body}");
        assert_eq!(
            get(&app, "/health/ready").await.0,
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(get(&app, "/health/live").await.0, StatusCode::OK);
    }

    #[test]
    fn every_probe_is_exported_and_monitored_ones_do_not_decide_readiness() {
        let recorder = PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let result = metrics::with_local_recorder(&recorder, || {
            rt.block_on(async {
                let readiness = Readiness::started();
                readiness.add("database", Arc::new(|| Box::pin(async { Ok(()) })));
                readiness.monitor(
                    "redis",
                    Arc::new(|| Box::pin(async { Err("connection refused".to_owned()) })),
                );
                readiness.check().await
            })
        });
        assert_eq!(result, Ok(()), "a monitored probe made the service unready");
        let text = handle.render();
        assert!(
            text.contains("cairn_dependency_up{dependency=\"database\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("cairn_dependency_up{dependency=\"redis\"} 0"),
            "{text}"
        );
    }
}
