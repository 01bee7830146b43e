//! [`Aggregator`]: the handle on one aggregator (leader or helper) — its datastore, clock, HPKE
//! keys and tunables — and the lookups every protocol step starts with (the task in this role,
//! the peer's bearer token). The HTTP layer ([`crate::http`]) only decodes requests and encodes
//! answers; the steps of DAP-18 each have a module:
//!
//! | Module | DAP-18 | Role |
//! |---|---|---|
//! | `hpke_keys` | §4.4.1 HPKE configuration | both |
//! | `upload` | §4.4.2 upload | leader |
//! | `aggregation_job_driver` | §4.5.3.1 leader initialization | leader |
//! | `aggregation_job_init` | §4.5.3.2 helper initialization | helper |
//! | `aggregation_job_continue` | §4.5.4.2 continuation, §4.5.5 deletion | helper |
//! | `collection_job` | §4.6.1 collection jobs, §4.6.3 deletion | leader |
//! | `collection_job_driver` | §4.6.6 finalization | leader |
//! | `aggregate_share` | §4.6.4 aggregate shares | helper |
//! | `gc` | report expiry (issue 18) | both |
//! | `key_rotator` | HPKE key rotation (issue 18) | both |
//! | `upload_limits` | upload rate limits (issue 18) | leader |
//!
//! What several steps share has its own module, so steps never import each other:
//! `report_checks` (the per-report checks, pure), `collection_request` (checks on a
//! collection request, made by the leader and again by the helper), `helper_job` (the
//! helper's aggregation job as init, poll, continue and delete see it), `helper_client`
//! (the leader's requests to the helper) and `resource_ids`.
//!
//! The helper answers aggregation-job initializations synchronously or, with
//! `async_aggregation`, at once with "processing", preparing the job in its own lease-based
//! driver; the leader polls a helper that defers. Aggregate-share requests are answered
//! synchronously.

mod aggregate_share;
mod aggregation_job_continue;
mod aggregation_job_driver;
mod aggregation_job_init;
mod collection_job;
mod collection_job_driver;
mod collection_request;
mod dap09;
mod gc;
mod helper_client;
mod helper_job;
mod hpke_keys;
mod key_rotator;
mod report_checks;
mod resource_ids;
mod taskprov;
mod upload;
mod upload_limits;

pub use aggregation_job_driver::{AggregationJobProgress, MAX_POLL_INTERVAL_SECS};
pub use collection_job::CollectionJobStatus;
pub use dap09::Dap09Poll;
pub use helper_job::{AggregationJobAnswer, HELPER_RETRY_AFTER_SECS};
pub use key_rotator::{KeyRotatorConfig, RotationStep, plan as plan_key_rotation};
pub use taskprov::TaskprovPeer;
pub use upload_limits::{TaskUploadLimit, UploadLimits};

use crate::datastore::{Datastore, DatastoreError};
use crate::error::Error;
use crate::task::{AggregatorRole, AggregatorTask, TokenHash};
use cairn_dap_core::Clock;
use cairn_dap_messages::{DapProblemType, TaskId};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Tunables of an aggregator.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AggregatorParameters {
    /// Most reports per aggregation job.
    pub max_aggregation_job_size: usize,
    /// How long a driver holds a job before another may take it over, in seconds.
    pub lease_secs: u64,
    /// How far in the future a report's time may be, in seconds.
    pub tolerable_clock_skew_secs: u64,
    /// How soon a waiting collection job is looked at again, in seconds.
    pub collection_retry_secs: u64,
    /// How often HPKE keys are re-read from the datastore (other processes may rotate them),
    /// in seconds.
    pub hpke_key_refresh_secs: u64,
    /// Helper only: answer aggregation-job initializations at once with "processing" and
    /// prepare the jobs in the helper's driver (the leader polls). Default: synchronous.
    pub async_aggregation: bool,
    /// How often the garbage collector runs, in seconds (0: never). It only deletes data of
    /// tasks with a report expiry age.
    pub gc_interval_secs: u64,
    /// Most rows per table one garbage-collection transaction deletes.
    pub gc_batch_size: u64,
    /// Automatic HPKE key rotation (off by default).
    pub key_rotator: KeyRotatorConfig,
    /// Leader: upload rate limits per task and per source address (off by default).
    pub upload_limits: UploadLimits,
}

impl Default for AggregatorParameters {
    fn default() -> Self {
        AggregatorParameters {
            max_aggregation_job_size: 100,
            lease_secs: 60,
            tolerable_clock_skew_secs: 300,
            collection_retry_secs: 1,
            hpke_key_refresh_secs: 10,
            async_aggregation: false,
            gc_interval_secs: 60,
            gc_batch_size: 1000,
            key_rotator: KeyRotatorConfig::default(),
            upload_limits: UploadLimits::default(),
        }
    }
}

impl AggregatorParameters {
    /// Checks the values that could lose reports or never make progress.
    pub fn validate(&self) -> Result<(), String> {
        if self.gc_batch_size == 0 {
            return Err("gc_batch_size must be positive".into());
        }
        if self.key_rotator.enabled {
            self.key_rotator.validate(self.hpke_key_refresh_secs)?;
        }
        Ok(())
    }
}

struct Inner {
    datastore: Datastore,
    clock: Arc<dyn Clock>,
    role: AggregatorRole,
    keys: std::sync::RwLock<hpke_keys::KeyCache>,
    http: reqwest::Client,
    params: AggregatorParameters,
    upload_limiter: upload_limits::UploadLimiter,
    taskprov: std::sync::OnceLock<TaskprovPeer>,
}

/// One aggregator (leader or helper). Cloning is cheap.
#[derive(Clone)]
pub struct Aggregator {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Aggregator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Aggregator")
            .field("role", &self.inner.role)
            .finish_non_exhaustive()
    }
}

/// Whether `auth` is the bearer token whose hash the task holds (`None`: the task expects no
/// such token, so nothing matches).
fn check_bearer(expected: Option<&TokenHash>, auth: Option<&str>) -> Result<(), Error> {
    match (expected, auth) {
        (Some(h), Some(t)) if h.matches(t) => Ok(()),
        _ => Err(Error::Unauthorized),
    }
}

impl Aggregator {
    /// An aggregator of `role` over `datastore` (whose HPKE keypair is created on first use).
    pub async fn new(
        datastore: Datastore,
        clock: Arc<dyn Clock>,
        role: AggregatorRole,
        params: AggregatorParameters,
    ) -> Result<Aggregator, Error> {
        params
            .validate()
            .map_err(|e| Error::BadRequest(format!("aggregator parameters: {e}")))?;
        let keypairs = datastore.get_or_create_hpke_keypairs().await?;
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(60))
            .build()
            .map_err(|e| Error::Internal(format!("HTTP client: {e}")))?;
        Ok(Aggregator {
            inner: Arc::new(Inner {
                datastore,
                clock,
                role,
                keys: std::sync::RwLock::new(hpke_keys::KeyCache::new(keypairs)),
                http,
                params,
                upload_limiter: upload_limits::UploadLimiter::default(),
                taskprov: std::sync::OnceLock::new(),
            }),
        })
    }

    /// The role.
    pub fn role(&self) -> AggregatorRole {
        self.inner.role
    }

    /// The datastore.
    pub fn datastore(&self) -> &Datastore {
        &self.inner.datastore
    }

    /// Creates a task (the library form of the control-plane API).
    pub async fn add_task(&self, task: &AggregatorTask) -> Result<(), Error> {
        if task.role != self.inner.role {
            return Err(Error::BadRequest(format!(
                "this aggregator is a {}, the task is for a {}",
                self.inner.role.as_str(),
                task.role.as_str()
            )));
        }
        task.validate().map_err(|e| Error::BadRequest(e.into()))?;
        match self.inner.datastore.put_task(task).await {
            Err(DatastoreError::Conflict(_)) => {
                Err(Error::BadRequest("a task with this ID exists".into()))
            }
            other => Ok(other?),
        }
    }

    /// The task, if this aggregator holds it in its own role; otherwise `unrecognizedTask`.
    pub(crate) async fn task_in_role(&self, task_id: &TaskId) -> Result<AggregatorTask, Error> {
        match self.inner.datastore.get_task(task_id).await? {
            Some(t) if t.role == self.inner.role => Ok(t),
            _ => Err(Error::dap(
                DapProblemType::UnrecognizedTask,
                Some(*task_id),
                "unknown task",
            )),
        }
    }

    /// Helper: the task, if it exists here and `auth` is the leader's token for it.
    pub async fn authorize_leader(
        &self,
        task_id: &TaskId,
        auth: Option<&str>,
    ) -> Result<AggregatorTask, Error> {
        let task = self.task_in_role(task_id).await?;
        check_bearer(task.aggregator_auth_token_hash.as_ref(), auth)?;
        Ok(task)
    }

    /// Leader: the task, if it exists here and `auth` is the collector's token for it.
    async fn authorize_collector(
        &self,
        task_id: &TaskId,
        auth: Option<&str>,
    ) -> Result<AggregatorTask, Error> {
        let task = self.task_in_role(task_id).await?;
        check_bearer(task.collector_auth_token_hash.as_ref(), auth)?;
        Ok(task)
    }

    /// Runs the role's drivers every `period` until the returned handle is aborted: the
    /// leader's aggregation-job creator, aggregation-job and collection-job drivers, or the
    /// helper's driver of asynchronous aggregation jobs.
    pub fn spawn_drivers(&self, period: std::time::Duration) -> tokio::task::JoinHandle<()> {
        let this = self.clone();
        tokio::spawn(async move {
            loop {
                if this.role() == AggregatorRole::Helper {
                    let pass = this.run_helper_aggregation_jobs_once().await;
                    count_driver_pass("helper_aggregation", pass.is_ok());
                    if let Err(e) = pass {
                        tracing::warn!(error = %e, "helper aggregation job driver failed");
                    }
                    tokio::time::sleep(period).await;
                    continue;
                }
                let pass = this.create_aggregation_jobs().await;
                count_driver_pass("create_aggregation_jobs", pass.is_ok());
                if let Err(e) = pass {
                    tracing::warn!(error = %e, "creating aggregation jobs failed");
                }
                let pass = this.run_aggregation_jobs_once().await;
                count_driver_pass("aggregation", pass.is_ok());
                match pass {
                    Ok(finished) => {
                        metrics::counter!("cairn_dap_aggregation_jobs_finished_total")
                            .increment(finished as u64);
                    }
                    Err(e) => tracing::warn!(error = %e, "aggregation job driver failed"),
                }
                let pass = this.run_collection_jobs_once().await;
                count_driver_pass("collection", pass.is_ok());
                if let Err(e) = pass {
                    tracing::warn!(error = %e, "collection job driver failed");
                }
                tokio::time::sleep(period).await;
            }
        })
    }
}

/// One pass of a job driver, by driver and outcome (`cairn_dap_driver_passes_total`): what the
/// `DapJobDriverFailing` alert watches.
fn count_driver_pass(driver: &'static str, ok: bool) {
    let outcome = if ok { "ok" } else { "error" };
    metrics::counter!("cairn_dap_driver_passes_total", "driver" => driver, "outcome" => outcome)
        .increment(1);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_expected_bearer_token_is_accepted() {
        let hash = TokenHash::of("secret");
        assert!(check_bearer(Some(&hash), Some("secret")).is_ok());
        for (expected, auth) in [
            (Some(&hash), Some("other")),
            (Some(&hash), None),
            (None, Some("secret")),
            (None, None),
        ] {
            assert!(matches!(
                check_bearer(expected, auth),
                Err(Error::Unauthorized)
            ));
        }
    }
}
