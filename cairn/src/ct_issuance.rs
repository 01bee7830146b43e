//! Certificate Transparency in `cairn serve`: the `[ct]` configuration, the two local logs an
//! all-in-one CA runs as two "operators" (rooted at its own root, served on the ACME listener
//! at `/ct/<name>/`), and the [`Publisher`] the RA submits precertificates through. The
//! publisher reaches the local logs through [`InProcessLog`], the adapter that only this
//! binary, which links both the CA and the log, can write.

use anyhow::Context;
use async_trait::async_trait;
use axum::Router;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use cairn_ct::{CtLog, LogConfig};
use cairn_issuer::CaHierarchy;
use cairn_publisher::{CtLogTarget, CtSubmitter, HttpLog, LogClient, LogError, Publisher};
use cairn_tlog::sct::SctResponse;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;

/// Names (and operators) of the local logs.
const LOCAL_LOGS: [(&str, &str); 2] = [
    ("local-a", "Cairn local operator A"),
    ("local-b", "Cairn local operator B"),
];

/// `[ct]`: Certificate Transparency for issuance.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CtSection {
    /// Embed SCTs in every certificate (precertificate first). Off: plain certificates.
    pub enabled: bool,
    /// SCTs are needed from logs of at least this many distinct operators.
    pub min_operators: usize,
    /// How long to wait for them, e.g. `"10s"`.
    pub timeout: String,
    /// Run two logs in this process as two operators, served at `/ct/local-a/` and
    /// `/ct/local-b/` on the ACME listener.
    pub local_logs: bool,
    /// Sequencing period of the local logs, in milliseconds.
    pub local_period_ms: u64,
    /// Memory for the gzip form of each local log's full tiles, in bytes (0: off); the two
    /// logs hold up to twice this. 16 MiB by default (`cairn ct serve`, a log run on its own
    /// for others, keeps 64 MiB).
    pub local_tile_cache_bytes: u64,
    /// Submissions each local log holds while they wait for the next sequencing (about 4 KiB
    /// each, precertificate and chain); more are refused until it runs.
    pub local_pool_size: usize,
    /// Other logs to submit to.
    pub logs: Vec<CtLogSection>,
}

/// Each local log's gzip tile cache by default: 16 MiB (the two logs together 32 MiB; see
/// docs/runbook.md, "Memory bounds").
pub const LOCAL_TILE_CACHE_BYTES: u64 = 16 << 20;

/// Each local log's submission pool by default: 1,024 submissions, about 4 MiB, sequenced every
/// 250 ms, so up to 4,096 certificates a second per log.
pub const LOCAL_POOL_SIZE: usize = 1024;

impl Default for CtSection {
    fn default() -> Self {
        CtSection {
            enabled: true,
            min_operators: 2,
            timeout: "10s".into(),
            local_logs: true,
            local_period_ms: 250,
            local_tile_cache_bytes: LOCAL_TILE_CACHE_BYTES,
            local_pool_size: LOCAL_POOL_SIZE,
            logs: Vec::new(),
        }
    }
}

/// One `[[ct.logs]]` entry.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CtLogSection {
    /// Short name for logs and metrics.
    pub name: String,
    /// Submission prefix (`…/ct/v1/add-pre-chain` is appended).
    pub url: String,
    /// The log's public key: base64 DER SubjectPublicKeyInfo (ECDSA P-256).
    pub key: String,
    /// The log's operator.
    pub operator: String,
}

impl CtSection {
    /// Checks the values.
    pub fn validate(&self) -> anyhow::Result<()> {
        if !self.enabled {
            return Ok(());
        }
        crate_duration(&self.timeout).context("ct.timeout")?;
        anyhow::ensure!(
            self.min_operators >= 1,
            "ct.min_operators must be at least 1"
        );
        anyhow::ensure!(
            (10..=60_000).contains(&self.local_period_ms),
            "ct.local_period_ms must be within 10..=60000"
        );
        let tiles = cairn_ct::config::GZIP_TILE_CACHE_BYTES_RANGE;
        anyhow::ensure!(
            tiles.contains(&self.local_tile_cache_bytes),
            "ct.local_tile_cache_bytes must be within {}..={}",
            tiles.start(),
            tiles.end()
        );
        anyhow::ensure!(
            (1..=1_000_000).contains(&self.local_pool_size),
            "ct.local_pool_size must be within 1..=1000000"
        );
        let mut operators: HashSet<&str> = HashSet::new();
        if self.local_logs {
            operators.extend(LOCAL_LOGS.iter().map(|(_, op)| *op));
        }
        for log in &self.logs {
            anyhow::ensure!(
                log.url.starts_with("https://") || log.url.starts_with("http://"),
                "ct.logs {:?}: url must start with https:// or http://",
                log.name
            );
            public_key(log).with_context(|| format!("ct.logs {:?}", log.name))?;
            anyhow::ensure!(
                !log.operator.is_empty(),
                "ct.logs {:?}: operator is empty",
                log.name
            );
            operators.insert(&log.operator);
        }
        anyhow::ensure!(
            operators.len() >= self.min_operators,
            "ct: {} distinct log operator(s) configured, min_operators is {}",
            operators.len(),
            self.min_operators
        );
        Ok(())
    }

    fn timeout(&self) -> std::time::Duration {
        crate_duration(&self.timeout).unwrap_or(std::time::Duration::from_secs(10))
    }
}

fn crate_duration(text: &str) -> anyhow::Result<std::time::Duration> {
    let d = cairn_core::humane_duration::parse(text).map_err(|e| anyhow::anyhow!(e))?;
    std::time::Duration::try_from(d).map_err(|_| anyhow::anyhow!("negative duration"))
}

fn public_key(log: &CtLogSection) -> anyhow::Result<Vec<u8>> {
    let der = B64
        .decode(log.key.trim())
        .map_err(|_| anyhow::anyhow!("key is not base64"))?;
    cairn_x509::KeyAlgorithm::from_spki_der(&der)
        .ok()
        .filter(|a| *a == cairn_x509::KeyAlgorithm::EcdsaP256)
        .ok_or_else(|| anyhow::anyhow!("key is not an ECDSA P-256 SubjectPublicKeyInfo"))?;
    Ok(der)
}

/// A CT log running in this process, as the publisher reaches it: a submission is a call into
/// the log, not an HTTP request.
#[derive(Debug, Clone)]
struct InProcessLog(CtLog);

#[async_trait]
impl LogClient for InProcessLog {
    async fn add_chain(&self, chain: &[Vec<u8>], precert: bool) -> Result<SctResponse, LogError> {
        self.0
            .submit(chain, precert)
            .await
            .map_err(|e| LogError::Refused(e.to_string()))
    }
}

/// The CA's CT set-up: the submitter for the RA and the local logs to serve and stop.
#[derive(Debug, Default)]
pub struct CaCt {
    /// What the RA submits through; `None` when CT is off.
    pub submitter: Option<Arc<Publisher>>,
    /// The logs running in this process.
    pub local_logs: Vec<CtLog>,
}

impl CaCt {
    /// Starts the local logs (if configured; they need the CA's hierarchies: the main one and
    /// those of `[[ca.issuers]]`, whose roots they all accept) and builds the publisher.
    pub async fn start(
        section: &CtSection,
        data_dir: &Path,
        hierarchies: &[&CaHierarchy],
    ) -> anyhow::Result<CaCt> {
        if !section.enabled {
            return Ok(CaCt::default());
        }
        let timeout = section.timeout();
        let mut targets = Vec::new();
        let mut local_logs = Vec::new();
        if section.local_logs {
            // The local logs accept what the CA's hierarchies sign. A process without them
            // (the RA of a split deployment) submits to the logs of `[[ct.logs]]` only.
            let infos: Vec<_> = hierarchies
                .iter()
                .map(|h| h.intermediate().info())
                .collect();
            let window = infos
                .iter()
                .map(|i| i.not_before)
                .min()
                .zip(infos.iter().map(|i| i.not_after).max())
                .context(
                    "ct.local_logs runs CT logs next to the CA hierarchy, in cairn serve only; \
                     turn it off and list the logs under [[ct.logs]]",
                )?;
            let base = data_dir.join("ct");
            let roots = base.join("roots");
            std::fs::create_dir_all(&roots)
                .with_context(|| format!("cannot create {}", roots.display()))?;
            // The main root keeps its file name; each other issuer's root gets its own.
            let mut written = std::collections::BTreeSet::new();
            for (i, hierarchy) in hierarchies.iter().enumerate() {
                if !written.insert(hierarchy.root_id()) {
                    continue;
                }
                let file = match i {
                    0 => "root.pem".to_owned(),
                    _ => format!("root-{}.pem", hierarchy.root_id()),
                };
                std::fs::write(roots.join(file), hierarchy.root_pem())
                    .with_context(|| format!("cannot write {}", roots.display()))?;
            }
            // Every certificate any of the intermediates can sign.
            let (not_after_start, not_after_end) = window;
            let tile_cache = usize::try_from(section.local_tile_cache_bytes)
                .context("ct.local_tile_cache_bytes does not fit this machine's memory")?;
            for (name, operator) in LOCAL_LOGS {
                let dir = base.join(name);
                let config = LogConfig {
                    name: name.into(),
                    description: Some(format!("Cairn local CT log {name} ({operator})")),
                    submission_url: format!("https://localhost/ct/{name}/"),
                    monitoring_url: None,
                    key_file: dir.join("key.pem"),
                    key_pkcs11: None,
                    note_key_file: None,
                    roots_dir: roots.clone(),
                    data_dir: dir.join("data"),
                    lock_db: None,
                    s3: None,
                    lock_s3: None,
                    ccadb_csv: None,
                    merge_delay_monitor_root: true,
                    not_after_start,
                    not_after_limit: not_after_end + time::Duration::seconds(1),
                    period_ms: section.local_period_ms,
                    pool_size: section.local_pool_size,
                    witnesses: Vec::new(),
                    inception: None,
                    read_only_after_s: None,
                };
                config
                    .validate()
                    .map_err(|e| anyhow::anyhow!("local CT log {name}: {e}"))?;
                let log = match CtLog::start_with_tile_cache(config, tile_cache).await {
                    Ok(l) => l,
                    Err(e) => {
                        for l in &local_logs {
                            CtLog::shutdown(l).await;
                        }
                        return Err(anyhow::anyhow!("local CT log {name}: {e}"));
                    }
                };
                targets.push(CtLogTarget {
                    name: name.into(),
                    operator: operator.into(),
                    public_key_der: log.public_key_der().to_vec(),
                    client: Arc::new(InProcessLog(log.clone())),
                });
                local_logs.push(log);
            }
        }
        for log in &section.logs {
            targets.push(CtLogTarget {
                name: log.name.clone(),
                operator: log.operator.clone(),
                public_key_der: public_key(log)?,
                client: Arc::new(
                    HttpLog::new(&log.url, timeout)
                        .map_err(|e| anyhow::anyhow!("CT log {}: {e}", log.name))?,
                ),
            });
        }
        Ok(CaCt {
            submitter: Some(Arc::new(Publisher::new(
                targets,
                section.min_operators,
                timeout,
            ))),
            local_logs,
        })
    }

    /// The submitter as the RA takes it.
    pub fn ra_submitter(&self) -> Option<Arc<dyn CtSubmitter>> {
        self.submitter.clone().map(|p| p as Arc<dyn CtSubmitter>)
    }

    /// `app` with each local log's routes under `/ct/<name>`.
    pub fn mount(&self, mut app: Router) -> Router {
        for log in &self.local_logs {
            app = app.nest(&format!("/ct/{}", log.name()), log.router());
        }
        app
    }

    /// Stops the local logs.
    pub async fn shutdown(&self) {
        for log in &self.local_logs {
            log.shutdown().await;
        }
    }
}
