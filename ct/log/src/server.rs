//! Several logs (temporal shards) behind one HTTP listener, each mounted at its submission
//! prefix's path, plus a landing page at `/` describing every log, and `/health` (= `/health/ready`: 503 naming each log that is not ready) and
//! `/health/live` (200 while the process serves). `/health` is also 503 when a log has not
//! checkpointed within `health_max_checkpoint_age_ms`. With `[read_limits]` the monitoring
//! paths are rate-limited per client ([`crate::read_limits`]); with `rfc6962_read_endpoints`
//! the RFC 6962 read endpoints are served too ([`crate::rfc6962_read`]).

use crate::config::CtConfig;
use crate::log::{CtLog, StartError};
use crate::read_limits::{self, ReadLimiter};
use axum::Router;
use axum::http::StatusCode;
use axum::middleware::from_fn_with_state;
use axum::response::Html;
use axum::routing::get;
use std::net::SocketAddr;
use tokio::sync::watch;

/// Server start-up failures.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// A log did not start.
    #[error("log {name}: {source}")]
    Log {
        /// The log.
        name: String,
        /// The cause.
        #[source]
        source: StartError,
    },
    /// The listener could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// 200 `ready` when every log is and checkpointed within `max_age`, else 503 naming those
/// that are not and why.
async fn readiness(logs: &[CtLog], max_age: std::time::Duration) -> (StatusCode, String) {
    let mut failed = Vec::new();
    for log in logs {
        let age = log.checkpoint_age();
        if age > max_age {
            failed.push(format!(
                "{}: last checkpoint {} ms ago",
                log.name(),
                age.as_millis()
            ));
            continue;
        }
        let check = tokio::time::timeout(std::time::Duration::from_secs(2), log.check_ready());
        match check.await {
            Ok(Ok(())) => {}
            Ok(Err(reason)) => failed.push(format!("{}: {reason}", log.name())),
            Err(_) => failed.push(format!("{}: no answer within 2s", log.name())),
        }
    }
    if failed.is_empty() {
        (StatusCode::OK, "ready\n".into())
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {}\n", failed.join("; ")),
        )
    }
}

fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
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

/// The landing page of the monitoring prefix: one section per log (temporal shard) with what a
/// log list or monitor needs — description, URLs, log ID, key, NotAfter interval, MMD and the
/// signed-note verifier keys — and links to its `log.v3.json` and checkpoint.
fn landing_page(logs: &[CtLog]) -> String {
    let mut html = String::from(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head><meta charset=\"utf-8\"><title>Cairn CT logs</title></head>\n<body>\n<h1>Certificate Transparency logs</h1>\n<p>Static CT API (C2SP static-ct-api) logs, one per NotAfter shard.</p>\n",
    );
    for log in logs {
        let d = log.description();
        let mount = log.config().mount_path();
        let [ed25519, ml_dsa] = log.vkeys();
        let rows = [
            ("Submission prefix", d.submission_url.clone()),
            ("Monitoring prefix", d.monitoring_url.clone()),
            ("Log ID", d.log_id.clone()),
            ("Public key (SPKI, base64)", d.key.clone()),
            (
                "NotAfter interval",
                format!(
                    "{} to {} (exclusive)",
                    d.temporal_interval.start_inclusive, d.temporal_interval.end_exclusive
                ),
            ),
            ("MMD", format!("{} s", d.mmd)),
            ("Ed25519 verifier key", ed25519),
            ("ML-DSA-44 cosigner key", ml_dsa),
        ];
        html.push_str(&format!(
            "<section id=\"{name}\">\n<h2>{name}</h2>\n<p>{desc}</p>\n<dl>\n",
            name = escape_html(log.name()),
            desc = escape_html(&d.description)
        ));
        for (k, v) in rows {
            html.push_str(&format!(
                "<dt>{}</dt><dd><code>{}</code></dd>\n",
                escape_html(k),
                escape_html(&v)
            ));
        }
        html.push_str(&format!(
            "</dl>\n<p><a href=\"{m}/log.v3.json\">log.v3.json</a> · <a href=\"{m}/checkpoint\">checkpoint</a></p>\n</section>\n",
            m = escape_html(&mount)
        ));
    }
    html.push_str("</body>\n</html>\n");
    html
}

/// Running logs and their listener.
#[derive(Debug)]
pub struct CtServer {
    logs: Vec<CtLog>,
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl CtServer {
    /// Starts every log of `config` and serves them on `config.listen` with the default
    /// connection bounds.
    pub async fn start(config: &CtConfig) -> Result<CtServer, ServerError> {
        let mut limits = cairn_listen::Limits::default();
        if let Some(n) = config.max_connections {
            limits.max_connections = n;
        }
        Self::start_with_limits(config, limits).await
    }

    /// [`CtServer::start`] with the listener's connection bounds (timeouts, connection cap).
    pub async fn start_with_limits(
        config: &CtConfig,
        limits: cairn_listen::Limits,
    ) -> Result<CtServer, ServerError> {
        let mut logs: Vec<CtLog> = Vec::new();
        for cfg in &config.logs {
            match CtLog::start(cfg.clone()).await {
                Ok(l) => logs.push(l),
                Err(source) => {
                    for l in &logs {
                        l.shutdown().await;
                    }
                    return Err(ServerError::Log {
                        name: cfg.name.clone(),
                        source,
                    });
                }
            }
        }
        let max_age = std::time::Duration::from_millis(config.health_max_checkpoint_age_ms);
        let ready = {
            let logs = logs.clone();
            move || {
                let logs = logs.clone();
                async move { readiness(&logs, max_age).await }
            }
        };
        let limiter = config.read_limits.clone().map(ReadLimiter::new);
        let page = landing_page(&logs);
        let mut app = Router::new()
            .route(
                "/",
                get(move || {
                    let page = page.clone();
                    async move { Html(page) }
                }),
            )
            .route("/health", get(ready.clone()))
            .route("/health/ready", get(ready))
            .route("/health/live", get(|| async { "live\n" }));
        for log in &logs {
            let path = log.config().mount_path();
            let mut reads = log.monitoring_router();
            if config.rfc6962_read_endpoints {
                reads = reads.merge(log.rfc6962_read_router());
            }
            if let Some(l) = &limiter {
                reads = reads.layer(from_fn_with_state(l.clone(), read_limits::limit));
            }
            let router = log.submission_router().merge(reads);
            app = if path.is_empty() {
                app.merge(router)
            } else {
                app.nest(&path, router)
            };
        }
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(|source| ServerError::Listen {
                addr: config.listen,
                source,
            })?;
        let addr = listener
            .local_addr()
            .map_err(|source| ServerError::Listen {
                addr: config.listen,
                source,
            })?;
        let (stop, mut stop_rx) = watch::channel(false);
        let task = tokio::spawn(cairn_listen::Listener::new(listener, "ct", limits).serve(
            app,
            async move {
                let _ = stop_rx.changed().await;
            },
        ));
        Ok(CtServer {
            logs,
            addr,
            stop,
            task,
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The running logs.
    pub fn logs(&self) -> &[CtLog] {
        &self.logs
    }

    /// Stops accepting connections, then stops every log.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
        for l in &self.logs {
            l.shutdown().await;
        }
    }
}
