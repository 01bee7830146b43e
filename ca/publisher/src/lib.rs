//! Publisher: Certificate Transparency submission for the CA (Boulder's publisher and its SCT
//! policy). The RA hands it a precertificate chain; it submits to every configured log in
//! parallel, checks each SCT against the log's key, and succeeds once logs of at least
//! `min_operators` distinct operators have answered within the timeout. Final certificates are
//! submitted too, best effort.
//!
//! ```text
//!  RA ─► CtSubmitter::get_scts(precert chain) ─┬─► log A (operator 1) ─► SCT ✓
//!                                              ├─► log B (operator 2) ─► SCT ✓  ⇒ enough
//!                                              └─► log C (operator 2) ─► (not awaited)
//! ```
//!
//! [`Publisher`] implements [`CtSubmitter`] (the contract the RA calls, defined in `cairn-api`).
//! Logs are reached through [`LogClient`]: over HTTP ([`HttpLog`], RFC 6962 `add-pre-chain`),
//! or in the same process through an implementation the binary that runs both the CA and a log
//! provides (so this crate needs only the I/O-free `cairn-tlog` from the CT side).

pub mod sct;

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use cairn_tlog::sct::SctResponse;
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

pub use cairn_api::ct::{CtError, CtSubmitter, SctList};
pub use sct::{Sct, SctError, sct_list};

/// Why one log did not give an SCT (logged, never shown to ACME clients).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LogError {
    /// The log could not be reached or did not answer in time.
    #[error("transport: {0}")]
    Transport(String),
    /// The log answered with an HTTP error status.
    #[error("HTTP status {0}: {1}")]
    Status(u16, String),
    /// The log's answer is not an SCT for this submission.
    #[error("bad SCT: {0}")]
    Sct(#[from] SctError),
    /// The in-process log refused or failed the submission.
    #[error("log refused the submission: {0}")]
    Refused(String),
}

/// One CT log's `add-chain`/`add-pre-chain` endpoint, remote ([`HttpLog`]) or in this process.
#[async_trait]
pub trait LogClient: Send + Sync + 'static {
    /// Submits `chain` (leaf first, DER); `precert` selects `add-pre-chain`.
    async fn add_chain(&self, chain: &[Vec<u8>], precert: bool) -> Result<SctResponse, LogError>;
}

/// A log reached over HTTP(S) at its submission prefix (e.g. `https://ct.example.org/2026h1/`).
#[derive(Debug, Clone)]
pub struct HttpLog {
    prefix: String,
    client: reqwest::Client,
}

/// The largest SCT answer accepted from a log.
const MAX_ANSWER: usize = 64 * 1024;

impl HttpLog {
    /// A client for the log at `submission_url`; each request gives up after `timeout`.
    pub fn new(submission_url: &str, timeout: Duration) -> Result<HttpLog, LogError> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .map_err(|e| LogError::Transport(e.to_string()))?;
        let mut prefix = submission_url.to_string();
        if !prefix.ends_with('/') {
            prefix.push('/');
        }
        Ok(HttpLog { prefix, client })
    }
}

#[async_trait]
impl LogClient for HttpLog {
    async fn add_chain(&self, chain: &[Vec<u8>], precert: bool) -> Result<SctResponse, LogError> {
        let endpoint = if precert {
            "add-pre-chain"
        } else {
            "add-chain"
        };
        let body = serde_json::json!({
            "chain": chain.iter().map(|c| B64.encode(c)).collect::<Vec<_>>()
        });
        let resp = self
            .client
            .post(format!("{}ct/v1/{endpoint}", self.prefix))
            .json(&body)
            .send()
            .await
            .map_err(|e| LogError::Transport(e.to_string()))?;
        let status = resp.status();
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| LogError::Transport(e.to_string()))?;
        if !status.is_success() {
            let text = String::from_utf8_lossy(&bytes[..bytes.len().min(200)]).into_owned();
            return Err(LogError::Status(status.as_u16(), text));
        }
        if bytes.len() > MAX_ANSWER {
            return Err(LogError::Sct(SctError::Malformed("answer too large")));
        }
        serde_json::from_slice(&bytes).map_err(|_| LogError::Sct(SctError::Malformed("JSON")))
    }
}

/// A log the CA submits to.
#[derive(Clone)]
pub struct CtLogTarget {
    /// Name for logs and metrics.
    pub name: String,
    /// The log operator: SCTs count once per operator.
    pub operator: String,
    /// The log's public key, SubjectPublicKeyInfo DER.
    pub public_key_der: Vec<u8>,
    /// How to reach it.
    pub client: Arc<dyn LogClient>,
}

impl std::fmt::Debug for CtLogTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CtLogTarget")
            .field("name", &self.name)
            .field("operator", &self.operator)
            .finish_non_exhaustive()
    }
}

/// The policy-enforcing submitter over a set of logs.
#[derive(Debug, Clone)]
pub struct Publisher {
    logs: Vec<CtLogTarget>,
    min_operators: usize,
    timeout: Duration,
}

impl Publisher {
    /// Submits to `logs`, requiring SCTs of `min_operators` distinct operators within `timeout`.
    pub fn new(logs: Vec<CtLogTarget>, min_operators: usize, timeout: Duration) -> Publisher {
        Publisher {
            logs,
            min_operators,
            timeout,
        }
    }

    /// The logs.
    pub fn logs(&self) -> &[CtLogTarget] {
        &self.logs
    }
}

#[async_trait]
impl CtSubmitter for Publisher {
    async fn get_scts(&self, precert_chain: &[Vec<u8>]) -> Result<SctList, CtError> {
        let (precert, issuer) = match precert_chain {
            [p, i, ..] => (p, i),
            _ => return Err(CtError::NoIssuer),
        };
        let issuer_spki = cairn_x509::CertInfo::from_der(issuer)
            .map_err(|_| CtError::NoIssuer)?
            .spki_der;
        let issuer_spki = &issuer_spki;
        let mut pending: FuturesUnordered<_> = self
            .logs
            .iter()
            .map(|log| async move {
                let started = std::time::Instant::now();
                let res = log
                    .client
                    .add_chain(precert_chain, true)
                    .await
                    .and_then(|r| {
                        let sct = Sct::from_response(&r)?;
                        sct.verify_precert(&log.public_key_der, precert, issuer_spki)?;
                        Ok(sct)
                    });
                metrics::histogram!("cairn_ct_submission_seconds", "log" => log.name.clone(),
                    "outcome" => if res.is_ok() { "ok" } else { "error" })
                .record(started.elapsed().as_secs_f64());
                (log, res)
            })
            .collect();
        let mut scts = Vec::new();
        let mut operators = HashSet::new();
        let deadline = tokio::time::Instant::now() + self.timeout;
        while operators.len() < self.min_operators {
            match tokio::time::timeout_at(deadline, pending.next()).await {
                Ok(Some((log, Ok(sct)))) => {
                    if operators.insert(log.operator.clone()) {
                        scts.push(sct);
                    }
                }
                Ok(Some((log, Err(e)))) => {
                    tracing::warn!(log = %log.name, error = %e, "CT log gave no SCT for a precertificate");
                }
                Ok(None) => break,
                Err(_) => {
                    tracing::warn!(
                        timeout_ms = self.timeout.as_millis() as u64,
                        "CT logs did not answer in time"
                    );
                    break;
                }
            }
        }
        if operators.len() < self.min_operators {
            metrics::counter!("cairn_ct_sct_shortfalls_total").increment(1);
            return Err(CtError::NotEnoughScts {
                got: operators.len(),
                required: self.min_operators,
            });
        }
        Ok(SctList {
            encoded: sct_list(&scts),
            count: scts.len(),
        })
    }

    async fn submit_final(&self, chain: Vec<Vec<u8>>) {
        let chain = &chain;
        let all = self.logs.iter().map(|log| async move {
            let res = tokio::time::timeout(self.timeout, log.client.add_chain(chain, false)).await;
            match res {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => {
                    tracing::warn!(log = %log.name, error = %e, "submitting a final certificate failed");
                }
                Err(_) => {
                    tracing::warn!(log = %log.name, "submitting a final certificate timed out");
                }
            }
        });
        futures::future::join_all(all).await;
    }
}
