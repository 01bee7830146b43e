//! Several logs (temporal shards) behind one HTTP listener, each mounted at its submission
//! prefix's path, plus `/health` (= `/health/ready`: 503 naming each log that is not ready) and
//! `/health/live` (200 while the process serves).

use crate::config::CtConfig;
use crate::log::{CtLog, StartError};
use axum::Router;
use axum::http::StatusCode;
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

/// 200 `ready` when every log is, else 503 naming those that are not and why.
async fn readiness(logs: &[CtLog]) -> (StatusCode, String) {
    let mut failed = Vec::new();
    for log in logs {
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
        Self::start_with_limits(config, cairn_listen::Limits::default()).await
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
        let ready = {
            let logs = logs.clone();
            move || {
                let logs = logs.clone();
                async move { readiness(&logs).await }
            }
        };
        let mut app = Router::new()
            .route("/health", get(ready.clone()))
            .route("/health/ready", get(ready))
            .route("/health/live", get(|| async { "live\n" }));
        for log in &logs {
            let path = log.config().mount_path();
            app = if path.is_empty() {
                app.merge(log.router())
            } else {
                app.nest(&path, log.router())
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
