//! [`Aggregator`]: the protocol logic of both roles — upload, helper aggregation-job
//! initialization, collection jobs, aggregate shares — and the leader's lease-based job
//! drivers. The HTTP layer ([`crate::http`]) only decodes requests and encodes answers.
//!
//! The helper answers aggregation-job initializations synchronously or, with
//! `async_aggregation`, at once with "processing", preparing the job in its own lease-based
//! driver; the leader polls a helper that defers. Aggregate-share requests are answered
//! synchronously.

use crate::datastore::{
    BatchAggregate, BatchScope, BucketKey, CollectionReadiness, Datastore, DatastoreError,
    HelperAggregationJob, HelperJobState, HpkeKeyState, Lease, ReportOutcome, StoredReport,
    UploadOutcome,
};
use crate::error::Error;
use crate::task::{AggregatorRole, AggregatorTask};
use aws_lc_rs::{digest, rand::SecureRandom};
use cairn_dap_core::hpke::{self, HpkeApplicationInfo, Label};
use cairn_dap_core::{Clock, HpkeKeypair, VdafInstance};
use cairn_dap_messages::codec::{LengthPrefix, Reader, put_items};
use cairn_dap_messages::{
    AggregateShare, AggregateShareReq, AggregationJobContinueReq, AggregationJobId,
    AggregationJobInitReq, AggregationJobResp, BatchId, BatchMode, BatchSelector, CollectionJobId,
    CollectionJobReq, CollectionJobResp, DapProblemType, Decode, Duration, Encode, Extension,
    HpkeCiphertext, HpkeConfig, HpkeConfigId, HpkeConfigList, Interval, PlaintextInputShare, Query,
    ReportError, ReportMetadata, ReportShare, ReportUploadStatus, Role, TaskId, Time, UploadErrors,
    UploadRequest, VerifyInit, VerifyResp, VerifyStepResult, extensions_strictly_increasing,
    media_type,
};
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
        }
    }
}

/// The `Retry-After` (seconds) of the helper's deferred aggregation-job answers.
pub const HELPER_RETRY_AFTER_SECS: u64 = 1;
/// The longest the leader waits between polls of a helper, whatever `Retry-After` says.
pub const MAX_POLL_INTERVAL_SECS: u64 = 600;

/// The helper's answer about an aggregation job.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AggregationJobAnswer {
    /// Prepared: the encoded `AggregationJobResp`.
    Ready(Vec<u8>),
    /// Accepted but not prepared yet; the leader polls (step 0).
    Processing,
}

impl AggregationJobAnswer {
    fn of(job: HelperAggregationJob) -> Result<AggregationJobAnswer, Error> {
        match job.state {
            HelperJobState::Processing => Ok(AggregationJobAnswer::Processing),
            HelperJobState::Finished => Ok(AggregationJobAnswer::Ready(job.response)),
            HelperJobState::Deleted => Err(Error::Gone),
        }
    }
}

/// A successful answer from the helper.
enum HelperReply {
    /// The resource's representation.
    Body(Vec<u8>),
    /// An empty body: the helper deferred handling (DAP-18 §3.1).
    Deferred {
        location: Option<String>,
        retry_after: Option<String>,
    },
}

/// What one step of the leader's aggregation-job driver achieved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AggregationJobProgress {
    /// The job is committed.
    Finished,
    /// The helper deferred its answer; the job is stored for polling and its lease released.
    HelperProcessing,
}

/// Where a collection job stands, as the leader reports it to the collector.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CollectionJobStatus {
    /// Not ready: reports in the batch are still being aggregated (`aggregating`), or the
    /// batch has fewer than `min_batch_size` aggregated reports (`insufficient-reports`).
    Pending {
        /// `aggregating` or `insufficient-reports`.
        reason: String,
        /// Reports aggregated in the batch so far.
        report_count: u64,
    },
    /// Ready: the encoded `CollectionJobResp`.
    Finished(Vec<u8>),
    /// Failed with this DAP problem.
    Failed(DapProblemType),
}

/// The HPKE keys as last read from the datastore.
struct KeyCache {
    keys: Arc<Vec<(HpkeKeypair, HpkeKeyState)>>,
    loaded: std::time::Instant,
}

/// The keypair a ciphertext names, if this aggregator still holds it (in any state: pending
/// and expired keys still decrypt, so rotation drops no report in flight).
fn find_keypair<'a>(
    keys: &'a [(HpkeKeypair, HpkeKeyState)],
    ct: &HpkeCiphertext,
) -> Option<&'a HpkeKeypair> {
    keys.iter()
        .map(|(k, _)| k)
        .find(|k| k.config().id == ct.config_id)
}

struct Inner {
    datastore: Datastore,
    clock: Arc<dyn Clock>,
    role: AggregatorRole,
    keys: std::sync::RwLock<KeyCache>,
    http: reqwest::Client,
    params: AggregatorParameters,
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

fn random16() -> [u8; 16] {
    let mut b = [0u8; 16];
    // The system RNG does not fail on supported platforms; zeros would still be unique enough
    // per (task, job) because IDs are also checked for conflicts by the database.
    let _ = aws_lc_rs::rand::SystemRandom::new().fill(&mut b);
    b
}

/// A resource ID derived from the request: identical requests name the same resource, which
/// makes creation idempotent (DAP-18 §3.2).
fn content_id(task_id: &TaskId, body: &[u8]) -> [u8; 16] {
    let mut ctx = digest::Context::new(&digest::SHA256);
    ctx.update(task_id.as_bytes());
    ctx.update(body);
    let d = ctx.finish();
    let mut out = [0u8; 16];
    out.copy_from_slice(&d.as_ref()[..16]);
    out
}

fn invalid(task_id: &TaskId, detail: impl Into<String>) -> Error {
    Error::dap(DapProblemType::InvalidMessage, Some(*task_id), detail)
}

/// Whether the report's time is acceptable now, and if not, which report error applies.
fn check_time(
    task: &AggregatorTask,
    time: Time,
    now: u64,
    skew: u64,
    upload: bool,
) -> Result<(), ReportError> {
    let p = task.parameters.precision();
    let seconds = time.to_seconds(p).ok_or(ReportError::InvalidMessage)?;
    if seconds > now.saturating_add(skew) {
        return Err(ReportError::ReportTooEarly);
    }
    if let Some(interval) = task.parameters.task_interval {
        if time < interval.start {
            return Err(if upload {
                ReportError::ReportDropped
            } else {
                ReportError::TaskNotStarted
            });
        }
        if time >= interval.end() {
            return Err(if upload {
                ReportError::ReportDropped
            } else {
                ReportError::TaskExpired
            });
        }
    }
    Ok(())
}

impl Aggregator {
    /// An aggregator of `role` over `datastore` (whose HPKE keypair is created on first use).
    pub async fn new(
        datastore: Datastore,
        clock: Arc<dyn Clock>,
        role: AggregatorRole,
        params: AggregatorParameters,
    ) -> Result<Aggregator, Error> {
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
                keys: std::sync::RwLock::new(KeyCache {
                    keys: Arc::new(keypairs),
                    loaded: std::time::Instant::now(),
                }),
                http,
                params,
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

    /// The `HpkeConfigList` served at `/hpke_config`: the active keys.
    pub async fn hpke_config_list(&self) -> Result<HpkeConfigList, Error> {
        Ok(HpkeConfigList(
            self.current_keys()
                .await?
                .iter()
                .filter(|(_, state)| *state == HpkeKeyState::Active)
                .map(|(k, _)| k.config().clone())
                .collect(),
        ))
    }

    /// The HPKE keys, re-read from the datastore when the cached copy is older than
    /// `hpke_key_refresh_secs`.
    async fn current_keys(&self) -> Result<Arc<Vec<(HpkeKeypair, HpkeKeyState)>>, Error> {
        let max_age = std::time::Duration::from_secs(self.inner.params.hpke_key_refresh_secs);
        {
            let cache = self
                .inner
                .keys
                .read()
                .map_err(|_| Error::Internal("key cache poisoned".into()))?;
            if cache.loaded.elapsed() < max_age {
                return Ok(cache.keys.clone());
            }
        }
        self.reload_keys().await
    }

    async fn reload_keys(&self) -> Result<Arc<Vec<(HpkeKeypair, HpkeKeyState)>>, Error> {
        let keys = Arc::new(self.inner.datastore.get_hpke_keypairs().await?);
        let mut cache = self
            .inner
            .keys
            .write()
            .map_err(|_| Error::Internal("key cache poisoned".into()))?;
        *cache = KeyCache {
            keys: keys.clone(),
            loaded: std::time::Instant::now(),
        };
        Ok(keys)
    }

    /// Every HPKE key's config and state (control plane).
    pub async fn hpke_keys(&self) -> Result<Vec<(HpkeConfig, HpkeKeyState)>, Error> {
        Ok(self
            .reload_keys()
            .await?
            .iter()
            .map(|(k, s)| (k.config().clone(), *s))
            .collect())
    }

    /// Generates a new HPKE key in state `pending` under the lowest free config ID above the
    /// highest in use (wrapping around), and returns its config.
    pub async fn create_hpke_key(&self) -> Result<HpkeConfig, Error> {
        let keys = self.reload_keys().await?;
        let used: std::collections::BTreeSet<u8> =
            keys.iter().map(|(k, _)| k.config().id.0).collect();
        let start = used.last().map_or(1, |m| m.wrapping_add(1));
        let id = (0..=255u8)
            .map(|i| start.wrapping_add(i))
            .find(|id| !used.contains(id))
            .ok_or_else(|| Error::BadRequest("all 256 HPKE config IDs are in use".into()))?;
        let kp = HpkeKeypair::generate(HpkeConfigId(id));
        match self
            .inner
            .datastore
            .put_hpke_keypair(&kp, HpkeKeyState::Pending)
            .await
        {
            Err(DatastoreError::Conflict(_)) => {
                return Err(Error::BadRequest("HPKE config ID taken; retry".into()));
            }
            other => other?,
        }
        self.reload_keys().await?;
        Ok(kp.config().clone())
    }

    /// Moves key `id` to `state`. Refuses to leave the aggregator without an active key.
    pub async fn set_hpke_key_state(
        &self,
        id: HpkeConfigId,
        state: HpkeKeyState,
    ) -> Result<(), Error> {
        let keys = self.reload_keys().await?;
        let Some((_, current)) = keys.iter().find(|(k, _)| k.config().id == id) else {
            return Err(Error::NotFound);
        };
        let active = keys
            .iter()
            .filter(|(_, s)| *s == HpkeKeyState::Active)
            .count();
        if *current == HpkeKeyState::Active && state != HpkeKeyState::Active && active == 1 {
            return Err(Error::BadRequest(
                "this is the only active HPKE key; activate another first".into(),
            ));
        }
        if !self.inner.datastore.set_hpke_key_state(id, state).await? {
            return Err(Error::NotFound);
        }
        self.reload_keys().await?;
        Ok(())
    }

    /// Deletes key `id`, which must be expired. Reports still sealed to it are then refused
    /// (`outdatedConfig` at upload, `hpke_decrypt_error` at the helper).
    pub async fn delete_hpke_key(&self, id: HpkeConfigId) -> Result<(), Error> {
        if !self.inner.datastore.delete_hpke_key(id).await? {
            return Err(Error::BadRequest(
                "no expired HPKE key with this ID (expire it first)".into(),
            ));
        }
        self.reload_keys().await?;
        Ok(())
    }

    async fn task_in_role(&self, task_id: &TaskId) -> Result<AggregatorTask, Error> {
        match self.inner.datastore.get_task(task_id).await? {
            Some(t) if t.role == self.inner.role => Ok(t),
            _ => Err(Error::dap(
                DapProblemType::UnrecognizedTask,
                Some(*task_id),
                "unknown task",
            )),
        }
    }

    // ---- upload (leader) ----

    /// Handles an `UploadRequest`: every accepted report is durably stored before this
    /// returns; refused ones are listed (in request order) and counted per reason.
    pub async fn handle_upload(
        &self,
        task_id: &TaskId,
        body: &[u8],
    ) -> Result<UploadErrors, Error> {
        let task = self.task_in_role(task_id).await?;
        if task.role != AggregatorRole::Leader {
            return Err(Error::dap(
                DapProblemType::UnrecognizedTask,
                Some(*task_id),
                "not a leader task",
            ));
        }
        let req = UploadRequest::get_decoded(body)
            .map_err(|e| invalid(task_id, format!("malformed upload request: {e}")))?;
        let now = self.inner.clock.now();
        let keys = self.current_keys().await?;
        let info = HpkeApplicationInfo::new(Label::InputShare, Role::Client, Role::Leader);
        let mut verdicts: Vec<Result<usize, ReportError>> = Vec::with_capacity(req.reports.len());
        let mut to_store = Vec::new();
        for report in &req.reports {
            let verdict = (|| {
                let kp = find_keypair(&keys, &report.leader_encrypted_input_share)
                    .ok_or(ReportError::OutdatedConfig)?;
                check_time(
                    &task,
                    report.metadata.time,
                    now,
                    self.inner.params.tolerable_clock_skew_secs,
                    true,
                )?;
                if !report.metadata.public_extensions.is_empty() {
                    // No report extension is recognized yet.
                    return Err(ReportError::InvalidMessage);
                }
                let aad = task
                    .parameters
                    .input_share_aad(&report.metadata, &report.public_share)
                    .map_err(|_| ReportError::InvalidMessage)?;
                let plaintext = kp
                    .open(&info, &report.leader_encrypted_input_share, &aad)
                    .map_err(|_| ReportError::HpkeDecryptError)?;
                let share = PlaintextInputShare::get_decoded(&plaintext)
                    .map_err(|_| ReportError::InvalidMessage)?;
                if !share.private_extensions.is_empty() {
                    return Err(ReportError::InvalidMessage);
                }
                let mut public_extensions = Vec::new();
                put_items(
                    &mut public_extensions,
                    LengthPrefix::U16,
                    &report.metadata.public_extensions,
                    "public_extensions",
                )
                .map_err(|_| ReportError::InvalidMessage)?;
                Ok(StoredReport {
                    report_id: report.metadata.id,
                    time: report.metadata.time.0,
                    public_extensions,
                    public_share: report.public_share.clone(),
                    leader_input_share: share.payload,
                    helper_encrypted_input_share: report
                        .helper_encrypted_input_share
                        .get_encoded()
                        .map_err(|_| ReportError::InvalidMessage)?,
                })
            })();
            verdicts.push(verdict.map(|stored| {
                to_store.push(stored);
                to_store.len() - 1
            }));
        }
        // Reports refused before storage, per reason: counted in the storing transaction.
        let mut refused: std::collections::BTreeMap<&'static str, u64> = Default::default();
        for e in verdicts.iter().filter_map(|v| v.as_ref().err()) {
            *refused.entry(e.name()).or_default() += 1;
        }
        let refused: Vec<(&'static str, u64)> = refused.into_iter().collect();
        let stored = self
            .inner
            .datastore
            .put_client_reports(task_id, &to_store, &refused)
            .await?;
        let mut errors = UploadErrors::default();
        let mut counts: std::collections::BTreeMap<&'static str, u64> = Default::default();
        for (report, verdict) in req.reports.iter().zip(verdicts) {
            let outcome = match verdict {
                Ok(i) => stored
                    .get(i)
                    .copied()
                    .unwrap_or(UploadOutcome::Refused(ReportError::ReportDropped)),
                Err(e) => UploadOutcome::Refused(e),
            };
            match outcome {
                UploadOutcome::Stored => *counts.entry("accepted").or_default() += 1,
                UploadOutcome::Refused(e) => {
                    *counts.entry(e.name()).or_default() += 1;
                    errors.status.push(ReportUploadStatus {
                        id: report.metadata.id,
                        error: e,
                    });
                }
            }
        }
        for (reason, n) in counts {
            metrics::counter!("cairn_dap_uploads_total", "outcome" => reason).increment(n);
        }
        Ok(errors)
    }

    // ---- aggregation jobs (helper) ----

    /// Checks the leader's bearer token for `task`.
    fn check_leader(&self, task: &AggregatorTask, auth: Option<&str>) -> Result<(), Error> {
        match (&task.aggregator_auth_token_hash, auth) {
            (Some(h), Some(t)) if h.matches(t) => Ok(()),
            _ => Err(Error::Unauthorized),
        }
    }

    /// Helper: the task, if it exists here and `auth` is the leader's token for it.
    pub async fn authorize_leader(
        &self,
        task_id: &TaskId,
        auth: Option<&str>,
    ) -> Result<AggregatorTask, Error> {
        let task = self.task_in_role(task_id).await?;
        self.check_leader(&task, auth)?;
        Ok(task)
    }

    /// Handles an `AggregationJobInitReq`. The job's ID is derived from the request, so a
    /// re-sent identical request finds the same job: its stored response, or — while an
    /// asynchronous job is still being prepared — the same deferred answer. A new job is
    /// prepared and committed at once, or, with `async_aggregation`, stored and left to
    /// [`Aggregator::run_helper_aggregation_jobs_once`].
    pub async fn handle_aggregation_job_init(
        &self,
        task_id: &TaskId,
        auth: Option<&str>,
        body: &[u8],
    ) -> Result<(AggregationJobId, AggregationJobAnswer), Error> {
        let task = self.authorize_leader(task_id, auth).await?;
        let init = check_init_request(&task, body)?;
        let job_id = AggregationJobId::from_bytes(content_id(task_id, body));
        let ds = &self.inner.datastore;
        if let Some(job) = ds.get_helper_aggregation_job(task_id, &job_id).await? {
            return Ok((job_id, AggregationJobAnswer::of(job)?));
        }
        if self.inner.params.async_aggregation {
            if !ds
                .put_helper_aggregation_job_request(task_id, &job_id, body)
                .await?
            {
                // A concurrent identical request stored it first.
                let job = ds
                    .get_helper_aggregation_job(task_id, &job_id)
                    .await?
                    .ok_or_else(|| Error::Internal("helper job vanished".into()))?;
                return Ok((job_id, AggregationJobAnswer::of(job)?));
            }
            return Ok((job_id, AggregationJobAnswer::Processing));
        }
        let prepared = self.prepare_helper_job(&task, &init).await?;
        let job = ds
            .commit_helper_aggregation_job(
                task_id,
                &job_id,
                &task.parameters.vdaf,
                &init.req.agg_param,
                &prepared.outcomes,
                &|results| prepared.response(results),
            )
            .await?;
        Ok((job_id, AggregationJobAnswer::of(job)?))
    }

    /// Decrypts, checks and VDAF-initializes every report of a job (no storage writes).
    async fn prepare_helper_job(
        &self,
        task: &AggregatorTask,
        init: &CheckedInit,
    ) -> Result<HelperPreparation, Error> {
        let req = &init.req;
        let vdaf = &task.parameters.vdaf;
        let now = self.inner.clock.now();
        let ctx = task.parameters.vdaf_ctx();
        let keys = self.current_keys().await?;
        let info = HpkeApplicationInfo::new(Label::InputShare, Role::Client, Role::Helper);
        let mut outcomes = Vec::with_capacity(req.verify_inits.len());
        let mut outbounds = Vec::with_capacity(req.verify_inits.len());
        for vi in &req.verify_inits {
            let rs = &vi.report_share;
            let result = (|| {
                check_time(
                    task,
                    rs.metadata.time,
                    now,
                    self.inner.params.tolerable_clock_skew_secs,
                    false,
                )?;
                let kp = find_keypair(&keys, &rs.encrypted_input_share)
                    .ok_or(ReportError::HpkeDecryptError)?;
                let aad = task
                    .parameters
                    .input_share_aad(&rs.metadata, &rs.public_share)
                    .map_err(|_| ReportError::InvalidMessage)?;
                let plaintext = kp
                    .open(&info, &rs.encrypted_input_share, &aad)
                    .map_err(|_| ReportError::HpkeDecryptError)?;
                let share = PlaintextInputShare::get_decoded(&plaintext)
                    .map_err(|_| ReportError::InvalidMessage)?;
                if !rs.metadata.public_extensions.is_empty() || !share.private_extensions.is_empty()
                {
                    return Err(ReportError::InvalidMessage);
                }
                vdaf.helper_initialized(
                    &task.vdaf_verify_key,
                    &ctx,
                    &req.agg_param,
                    rs.metadata.id.as_bytes(),
                    &rs.public_share,
                    &share.payload,
                    &vi.payload,
                )
                .map_err(|_| ReportError::VdafVerifyError)
            })();
            let (result, outbound) = match result {
                Ok(f) => (Ok(f.output_share), Some(f.outbound)),
                Err(e) => (Err(e), None),
            };
            outbounds.push(outbound);
            outcomes.push(ReportOutcome {
                report_id: rs.metadata.id,
                time: rs.metadata.time.0,
                bucket: bucket_key(init.batch_id.as_ref(), rs.metadata.time.0),
                result,
            });
        }
        Ok(HelperPreparation {
            outcomes,
            outbounds,
        })
    }

    /// A helper aggregation job's resource (`GET`, polled by the leader). `step` is the
    /// `step` query parameter, which DAP-18 requires; Prio3 finishes at step 0.
    pub async fn handle_get_aggregation_job(
        &self,
        task_id: &TaskId,
        job_id: &AggregationJobId,
        auth: Option<&str>,
        step: Option<&str>,
    ) -> Result<AggregationJobAnswer, Error> {
        self.authorize_leader(task_id, auth).await?;
        let job = self.helper_job(task_id, job_id).await?;
        let step: u16 = step
            .ok_or_else(|| invalid(task_id, "the step query parameter is required"))?
            .parse()
            .map_err(|_| invalid(task_id, "malformed step query parameter"))?;
        if step != 0 {
            return Err(Error::dap(
                DapProblemType::StepMismatch,
                Some(*task_id),
                format!("the job is at step 0, not {step}"),
            ));
        }
        AggregationJobAnswer::of(job)
    }

    /// Abandons a helper aggregation job (`DELETE`): a job still being prepared never will
    /// be; what a finished job committed stays committed (DAP-18 §4.5.5).
    pub async fn handle_delete_aggregation_job(
        &self,
        task_id: &TaskId,
        job_id: &AggregationJobId,
        auth: Option<&str>,
    ) -> Result<(), Error> {
        self.authorize_leader(task_id, auth).await?;
        if self
            .inner
            .datastore
            .delete_helper_aggregation_job(task_id, job_id)
            .await?
        {
            Ok(())
        } else {
            Err(unrecognized_job(task_id))
        }
    }

    /// Handles an `AggregationJobContinueReq`. Every VDAF Cairn runs is a one-round Prio3, so a
    /// job never has a report awaiting continuation: after the checks DAP-18 §4.5.4.2 orders
    /// (task, job, message, step 0), a request naming reports is `invalidMessage` (no report
    /// has a verification state to continue) and one naming none is `stepMismatch` (the job
    /// has no step after 0).
    pub async fn handle_aggregation_job_continue(
        &self,
        task_id: &TaskId,
        job_id: &AggregationJobId,
        auth: Option<&str>,
        body: &[u8],
    ) -> Result<AggregationJobAnswer, Error> {
        self.authorize_leader(task_id, auth).await?;
        self.helper_job(task_id, job_id).await?;
        let req = AggregationJobContinueReq::get_decoded(body)
            .map_err(|e| invalid(task_id, format!("malformed continuation: {e}")))?;
        if req.step == 0 {
            return Err(invalid(
                task_id,
                "an aggregation job cannot continue to step 0",
            ));
        }
        if !req.verify_continues.is_empty() {
            return Err(invalid(
                task_id,
                "no report in this job awaits continuation (the VDAF verifies in one round)",
            ));
        }
        Err(Error::dap(
            DapProblemType::StepMismatch,
            Some(*task_id),
            format!("the job finished at step 0; there is no step {}", req.step),
        ))
    }

    /// The helper's job, if it exists and was not deleted.
    async fn helper_job(
        &self,
        task_id: &TaskId,
        job_id: &AggregationJobId,
    ) -> Result<HelperAggregationJob, Error> {
        match self
            .inner
            .datastore
            .get_helper_aggregation_job(task_id, job_id)
            .await?
        {
            None => Err(unrecognized_job(task_id)),
            Some(job) if job.state == HelperJobState::Deleted => Err(Error::Gone),
            Some(job) => Ok(job),
        }
    }

    /// Helper: leases up to `limit` due asynchronous aggregation jobs.
    pub async fn acquire_helper_aggregation_jobs(&self, limit: u64) -> Result<Vec<Lease>, Error> {
        Ok(self
            .inner
            .datastore
            .acquire_helper_aggregation_jobs(
                self.inner.clock.now(),
                self.inner.params.lease_secs,
                limit,
                &mut random16,
            )
            .await?)
    }

    /// Helper: leases and prepares every due asynchronous aggregation job once. Returns how
    /// many were committed.
    pub async fn run_helper_aggregation_jobs_once(&self) -> Result<usize, Error> {
        let leases = self.acquire_helper_aggregation_jobs(100).await?;
        let mut done = 0;
        for lease in leases {
            match self.step_helper_aggregation_job(&lease).await {
                Ok(()) => done += 1,
                Err(Error::Datastore(DatastoreError::LeaseLost)) => {
                    tracing::warn!(task = %lease.task_id, "helper aggregation job lease lost or job deleted");
                }
                Err(e) => {
                    tracing::warn!(error = %e, "helper aggregation job failed; will retry");
                    let retry = self.inner.clock.now().saturating_add(1);
                    self.inner
                        .datastore
                        .release_helper_aggregation_job(&lease, retry)
                        .await?;
                }
            }
        }
        Ok(done)
    }

    /// Prepares one leased asynchronous helper job and commits it — in one transaction, and
    /// only if the lease is still ours and the job was not deleted meanwhile.
    pub async fn step_helper_aggregation_job(&self, lease: &Lease) -> Result<(), Error> {
        let task = self.task_in_role(&lease.task_id).await?;
        let body = self
            .inner
            .datastore
            .get_helper_aggregation_job_request(&lease.task_id, &lease.job_id)
            .await?
            .ok_or(Error::Datastore(DatastoreError::LeaseLost))?;
        let init = check_init_request(&task, &body)?;
        let prepared = self.prepare_helper_job(&task, &init).await?;
        self.inner
            .datastore
            .finish_helper_aggregation_job(
                lease,
                &task.parameters.vdaf,
                &init.req.agg_param,
                &prepared.outcomes,
                &|results| prepared.response(results),
            )
            .await?;
        Ok(())
    }

    // ---- aggregate shares (helper) ----

    /// Handles an `AggregateShareReq` synchronously: checks the batch, marks it collected and
    /// returns the encrypted share (stored, so a retried request gets the same answer).
    pub async fn handle_aggregate_share(
        &self,
        task_id: &TaskId,
        auth: Option<&str>,
        body: &[u8],
    ) -> Result<([u8; 16], Vec<u8>), Error> {
        let task = self.task_in_role(task_id).await?;
        let authorized = match (&task.aggregator_auth_token_hash, auth) {
            (Some(h), Some(t)) => h.matches(t),
            _ => false,
        };
        if !authorized {
            return Err(Error::Unauthorized);
        }
        let req = AggregateShareReq::get_decoded(body)
            .map_err(|e| invalid(task_id, format!("malformed aggregate share request: {e}")))?;
        let cjr = &req.collection_job_req;
        let vdaf = &task.parameters.vdaf;
        let mode = task.parameters.batch_mode;
        let scope = match (&cjr.query, &req.batch_selector) {
            (
                Query::TimeInterval { batch_interval: q },
                BatchSelector::TimeInterval { batch_interval: s },
            ) if mode == BatchMode::TimeInterval => {
                if !q.contains_interval(s) {
                    return Err(invalid(task_id, "batch selector outside the query"));
                }
                check_collection_query(task_id, vdaf, &cjr.agg_param, Some(s))?;
                BatchScope::TimeInterval {
                    start: s.start.0,
                    end: s.end().0,
                }
            }
            (Query::LeaderSelected, BatchSelector::LeaderSelected { batch_id })
                if mode == BatchMode::LeaderSelected =>
            {
                check_collection_query(task_id, vdaf, &cjr.agg_param, None)?;
                BatchScope::LeaderSelected {
                    batch_id: *batch_id.as_bytes(),
                }
            }
            _ => return Err(invalid(task_id, "batch mode does not match the task")),
        };
        check_collection_extensions(task_id, &cjr.extensions)?;
        let share_id = content_id(task_id, body);
        let aad = task
            .parameters
            .aggregate_share_aad(cjr)
            .map_err(|e| Error::Internal(e.to_string()))?;
        let info = HpkeApplicationInfo::new(Label::AggregateShare, Role::Helper, Role::Collector);
        let min = task.parameters.min_batch_size;
        let build = |agg: &BatchAggregate| -> Result<Vec<u8>, DapProblemType> {
            if agg.any_collected {
                return Err(DapProblemType::BatchOverlap);
            }
            if agg.agg_param_mismatch {
                return Err(DapProblemType::InvalidMessage);
            }
            if agg.report_count < min {
                return Err(DapProblemType::InvalidBatchSize);
            }
            if agg.report_count != req.report_count || agg.checksum != req.checksum {
                return Err(DapProblemType::BatchMismatch);
            }
            // Noise is drawn once: the sealed answer is stored, so a retried request gets the
            // same noisy share and repeating a request cannot average the noise away.
            let share = match &task.parameters.differential_privacy {
                Some(dp) => vdaf
                    .add_noise(dp, &cjr.agg_param, &agg.aggregate_share, agg.report_count)
                    .map_err(|e| {
                        tracing::error!(error = %e, "adding differential-privacy noise failed");
                        DapProblemType::InvalidMessage
                    })?,
                None => agg.aggregate_share.clone(),
            };
            let ct = hpke::seal(&task.collector_hpke_config, &info, &share, &aad)
                .map_err(|_| DapProblemType::InvalidMessage)?;
            AggregateShare {
                encrypted_aggregate_share: ct,
            }
            .get_encoded()
            .map_err(|_| DapProblemType::InvalidMessage)
        };
        match self
            .inner
            .datastore
            .helper_collect_batch(task_id, &share_id, vdaf, &cjr.agg_param, &scope, &build)
            .await?
        {
            Ok(resp) => Ok((share_id, resp)),
            Err(p) => Err(Error::dap(p, Some(*task_id), "aggregate share refused")),
        }
    }

    // ---- collection jobs (leader) ----

    fn check_collector(&self, task: &AggregatorTask, auth: Option<&str>) -> Result<(), Error> {
        match (&task.collector_auth_token_hash, auth) {
            (Some(h), Some(t)) if h.matches(t) => Ok(()),
            _ => Err(Error::Unauthorized),
        }
    }

    /// Handles a `CollectionJobReq`: validates it and creates the job (or finds the identical
    /// existing one). The job is then driven by [`Aggregator::run_collection_jobs_once`].
    pub async fn handle_create_collection_job(
        &self,
        task_id: &TaskId,
        auth: Option<&str>,
        body: &[u8],
    ) -> Result<CollectionJobId, Error> {
        let task = self.task_in_role(task_id).await?;
        self.check_collector(&task, auth)?;
        let req = CollectionJobReq::get_decoded(body)
            .map_err(|e| invalid(task_id, format!("malformed collection job request: {e}")))?;
        if req.query.batch_mode() != task.parameters.batch_mode {
            return Err(invalid(task_id, "batch mode does not match the task"));
        }
        check_collection_extensions(task_id, &req.extensions)?;
        let vdaf = &task.parameters.vdaf;
        let Query::TimeInterval { batch_interval } = req.query else {
            // Leader-selected: every query asks for "the next batch", so identical requests
            // are distinct jobs and the ID is random; the batch is chosen by the driver.
            check_collection_query(task_id, vdaf, &req.agg_param, None)?;
            let job_id = CollectionJobId::from_bytes(random16());
            self.inner
                .datastore
                .put_collection_job(task_id, &job_id, body, None)
                .await?;
            return Ok(job_id);
        };
        check_collection_query(task_id, vdaf, &req.agg_param, Some(&batch_interval))?;
        let job_id = CollectionJobId::from_bytes(content_id(task_id, body));
        if self
            .inner
            .datastore
            .get_collection_job(task_id, job_id.as_bytes())
            .await?
            .is_some()
        {
            return Ok(job_id);
        }
        let current = self
            .inner
            .datastore
            .aggregate_batch(
                task_id,
                vdaf,
                &req.agg_param,
                &BatchScope::TimeInterval {
                    start: batch_interval.start.0,
                    end: batch_interval.end().0,
                },
                false,
            )
            .await?;
        if current.any_collected {
            return Err(Error::dap(
                DapProblemType::BatchOverlap,
                Some(*task_id),
                "the interval overlaps a collected batch",
            ));
        }
        match self
            .inner
            .datastore
            .put_collection_job(
                task_id,
                &job_id,
                body,
                Some((batch_interval.start.0, batch_interval.duration.0)),
            )
            .await
        {
            Err(DatastoreError::Conflict(_)) => Err(Error::dap(
                DapProblemType::BatchOverlap,
                Some(*task_id),
                "the interval overlaps another collection job",
            )),
            other => {
                other?;
                Ok(job_id)
            }
        }
    }

    /// The collection job's status.
    pub async fn handle_get_collection_job(
        &self,
        task_id: &TaskId,
        job_id: &CollectionJobId,
        auth: Option<&str>,
    ) -> Result<CollectionJobStatus, Error> {
        let task = self.task_in_role(task_id).await?;
        self.check_collector(&task, auth)?;
        let job = self
            .inner
            .datastore
            .get_collection_job(task_id, job_id.as_bytes())
            .await?
            .ok_or(Error::NotFound)?;
        Ok(match job.state.as_str() {
            "finished" => CollectionJobStatus::Finished(job.result.unwrap_or_default()),
            "failed" => CollectionJobStatus::Failed(
                job.error
                    .as_deref()
                    .and_then(|t| {
                        DapProblemType::from_urn(&format!("{}{t}", DapProblemType::PREFIX))
                    })
                    .unwrap_or(DapProblemType::InvalidMessage),
            ),
            "deleted" => return Err(Error::NotFound),
            _ => CollectionJobStatus::Pending {
                reason: if job.state == "collecting" {
                    "collecting".into()
                } else {
                    job.wait_reason
                },
                report_count: job.report_count,
            },
        })
    }

    /// Abandons a collection job (`DELETE`).
    pub async fn handle_delete_collection_job(
        &self,
        task_id: &TaskId,
        job_id: &CollectionJobId,
        auth: Option<&str>,
    ) -> Result<(), Error> {
        let task = self.task_in_role(task_id).await?;
        self.check_collector(&task, auth)?;
        if self
            .inner
            .datastore
            .delete_collection_job(task_id, job_id.as_bytes())
            .await?
        {
            Ok(())
        } else {
            Err(Error::NotFound)
        }
    }

    // ---- leader drivers ----

    /// Creates aggregation jobs from every leader task's unaggregated reports.
    pub async fn create_aggregation_jobs(&self) -> Result<usize, Error> {
        let mut n = 0;
        let ds = &self.inner.datastore;
        let max_job = self.inner.params.max_aggregation_job_size;
        for task_id in ds.get_task_ids().await? {
            let Some(task) = ds.get_task(&task_id).await? else {
                continue;
            };
            if task.role != AggregatorRole::Leader {
                continue;
            }
            n += match task.parameters.batch_mode {
                BatchMode::LeaderSelected => {
                    ds.create_leader_selected_aggregation_jobs(
                        &task_id,
                        max_job,
                        task.parameters.effective_max_batch_size(),
                        &mut random16,
                    )
                    .await?
                }
                _ => {
                    ds.create_aggregation_jobs(&task_id, max_job, &mut random16)
                        .await?
                }
            }
            .len();
        }
        Ok(n)
    }

    /// Leases up to `limit` due aggregation jobs.
    pub async fn acquire_aggregation_jobs(&self, limit: u64) -> Result<Vec<Lease>, Error> {
        Ok(self
            .inner
            .datastore
            .acquire_aggregation_jobs(
                self.inner.clock.now(),
                self.inner.params.lease_secs,
                limit,
                &mut random16,
            )
            .await?)
    }

    /// Runs one leased aggregation job: leader initialization (recomputed on every attempt;
    /// Prio3's is deterministic), the helper round trip — or a poll if the helper deferred
    /// — then one transaction that commits only if the lease is still ours. If the helper is
    /// still processing, the job is stored for polling and its lease released.
    pub async fn step_aggregation_job(
        &self,
        lease: &Lease,
    ) -> Result<AggregationJobProgress, Error> {
        let task = self.task_in_role(&lease.task_id).await?;
        // A job the helper deferred is polled first: the leader's VDAF work is redone only
        // once the helper's answer is there.
        let polled = match self
            .inner
            .datastore
            .get_aggregation_job_helper_id(&lease.task_id, &lease.job_id)
            .await?
        {
            Some(helper_job) => match self.poll_helper(&task, lease, helper_job).await? {
                Some(body) => Some(body),
                None => return Ok(AggregationJobProgress::HelperProcessing),
            },
            None => None,
        };
        let reports = self
            .inner
            .datastore
            .get_aggregation_job_reports(&lease.task_id, &lease.job_id)
            .await?;
        let batch_id = self
            .inner
            .datastore
            .get_aggregation_job_batch_id(&lease.task_id, &lease.job_id)
            .await?;
        let extensions: Vec<Extension> = batch_id
            .iter()
            .map(|id| Extension {
                extension_type: Extension::LEADER_SELECTED_BATCH_ID,
                extension_data: id.to_vec(),
            })
            .collect();
        let vdaf = &task.parameters.vdaf;
        let ctx = task.parameters.vdaf_ctx();
        let agg_param: Vec<u8> = Vec::new();
        let mut outcomes = Vec::with_capacity(reports.len());
        let mut states = Vec::new();
        let mut verify_inits = Vec::new();
        for r in &reports {
            let bucket = bucket_key(batch_id.as_ref(), r.time);
            let init = (|| {
                let public_extensions: Vec<Extension> = Reader::new(&r.public_extensions)
                    .items(LengthPrefix::U16)
                    .map_err(|_| ReportError::InvalidMessage)?;
                let ct = HpkeCiphertext::get_decoded(&r.helper_encrypted_input_share)
                    .map_err(|_| ReportError::InvalidMessage)?;
                let continued = vdaf
                    .leader_initialized(
                        &task.vdaf_verify_key,
                        &ctx,
                        &agg_param,
                        r.report_id.as_bytes(),
                        &r.public_share,
                        &r.leader_input_share,
                    )
                    .map_err(|_| ReportError::VdafVerifyError)?;
                Ok::<_, ReportError>((
                    VerifyInit {
                        report_share: ReportShare {
                            metadata: ReportMetadata {
                                id: r.report_id,
                                time: Time(r.time),
                                public_extensions,
                            },
                            public_share: r.public_share.clone(),
                            encrypted_input_share: ct,
                        },
                        payload: continued.outbound,
                    },
                    continued.state,
                ))
            })();
            match init {
                Ok((vi, state)) => {
                    verify_inits.push(vi);
                    states.push((r.report_id, r.time, bucket, state));
                }
                Err(e) => outcomes.push(ReportOutcome {
                    report_id: r.report_id,
                    time: r.time,
                    bucket,
                    result: Err(e),
                }),
            }
        }
        if !verify_inits.is_empty() {
            let resp_body = match polled {
                Some(b) => b,
                None => {
                    let body = AggregationJobInitReq {
                        verification_key_id: 0,
                        agg_param: agg_param.clone(),
                        extensions,
                        verify_inits,
                    }
                    .get_encoded()
                    .map_err(|e| Error::Internal(e.to_string()))?;
                    match self.init_at_helper(&task, lease, body).await? {
                        Some(b) => b,
                        None => return Ok(AggregationJobProgress::HelperProcessing),
                    }
                }
            };
            let resp = AggregationJobResp::get_decoded(&resp_body).map_err(|e| {
                Error::Internal(format!(
                    "helper sent a malformed aggregation job response: {e}"
                ))
            })?;
            if resp.verify_resps.len() != states.len()
                || resp
                    .verify_resps
                    .iter()
                    .zip(&states)
                    .any(|(v, s)| v.report_id != s.0)
            {
                return Err(Error::Internal(
                    "helper's response does not match the job's reports".into(),
                ));
            }
            for (v, (id, time, bucket, state)) in resp.verify_resps.into_iter().zip(states) {
                let result = match v.result {
                    VerifyStepResult::Continue(payload) => vdaf
                        .leader_continued(&ctx, &agg_param, &state, &payload)
                        .map_err(|_| ReportError::VdafVerifyError),
                    VerifyStepResult::Reject(e) => Err(e),
                    VerifyStepResult::Finish => Err(ReportError::VdafVerifyError),
                };
                outcomes.push(ReportOutcome {
                    report_id: id,
                    time,
                    bucket,
                    result,
                });
            }
        }
        match self
            .inner
            .datastore
            .commit_leader_aggregation_job(lease, vdaf, &agg_param, &outcomes)
            .await
        {
            Err(DatastoreError::LeaseLost) => {
                tracing::warn!(task = %lease.task_id, "aggregation job lease lost; another driver owns it");
                Err(Error::Datastore(DatastoreError::LeaseLost))
            }
            other => {
                other?;
                Ok(AggregationJobProgress::Finished)
            }
        }
    }

    /// Sends the job's initialization to the helper (`body`, byte for byte the same on every
    /// attempt, so a helper that already has the job answers for it). `None` means the
    /// helper deferred: see [`Aggregator::settle_helper_reply`].
    async fn init_at_helper(
        &self,
        task: &AggregatorTask,
        lease: &Lease,
        body: Vec<u8>,
    ) -> Result<Option<Vec<u8>>, Error> {
        let url = cairn_dap_core::TaskParameters::url(
            &task.parameters.helper_endpoint,
            &format!("tasks/{}/aggregation_jobs", lease.task_id),
        );
        let reply = self
            .send_to_helper(
                task,
                reqwest::Method::POST,
                &url,
                Some((media_type::AGGREGATION_JOB_INIT_REQ, body)),
            )
            .await;
        self.settle_helper_reply(lease, None, reply).await
    }

    /// Polls (`GET`) the helper's job that it deferred. `None` means it is still processing.
    async fn poll_helper(
        &self,
        task: &AggregatorTask,
        lease: &Lease,
        helper_job: AggregationJobId,
    ) -> Result<Option<Vec<u8>>, Error> {
        let url = cairn_dap_core::TaskParameters::url(
            &task.parameters.helper_endpoint,
            &format!(
                "tasks/{}/aggregation_jobs/{helper_job}?step=0",
                lease.task_id
            ),
        );
        let reply = self
            .send_to_helper(task, reqwest::Method::GET, &url, None)
            .await;
        self.settle_helper_reply(lease, Some(helper_job), reply)
            .await
    }

    /// Turns the helper's reply about a leased job into its `AggregationJobResp`, or `None` if
    /// the helper deferred: then the helper's job ID (from `Location`, else the one `polling`)
    /// is stored on the job and the lease released until the helper's `Retry-After`. On
    /// failure the lease is released for a retry soon.
    async fn settle_helper_reply(
        &self,
        lease: &Lease,
        polling: Option<AggregationJobId>,
        answer: Result<HelperReply, Error>,
    ) -> Result<Option<Vec<u8>>, Error> {
        let ds = &self.inner.datastore;
        let task_id = &lease.task_id;
        let now = self.inner.clock.now();
        let deferred = match answer {
            Ok(HelperReply::Body(b)) => return Ok(Some(b)),
            Ok(HelperReply::Deferred {
                location,
                retry_after,
            }) => {
                let named = location
                    .as_deref()
                    .and_then(|l| helper_job_location(task_id, l));
                match (named, polling) {
                    (Some((id, 0)), _) => Ok((id, retry_after)),
                    (None, Some(id)) => Ok((id, retry_after)),
                    (Some((_, step)), _) => Err(Error::Internal(format!(
                        "helper deferred at step {step}; a one-round VDAF only has step 0"
                    ))),
                    (None, None) => Err(Error::Internal(
                        "helper deferred without a Location naming the aggregation job".into(),
                    )),
                }
            }
            Err(e) => Err(e),
        };
        match deferred {
            Ok((helper_job, retry_after)) => {
                let poll_at = now.saturating_add(poll_delay(retry_after.as_deref()));
                ds.set_aggregation_job_polling(lease, Some(&helper_job), poll_at)
                    .await?;
                tracing::debug!(task = %task_id, helper_job = %helper_job, poll_at, "helper is processing the aggregation job");
                Ok(None)
            }
            Err(e) => {
                let retry = now.saturating_add(1);
                let forget = matches!(
                    &e,
                    Error::Dap {
                        problem: DapProblemType::UnrecognizedAggregationJob,
                        ..
                    }
                );
                if forget && polling.is_some() {
                    // The helper no longer knows the job it deferred: initialize it again
                    // (replay and collection checks there keep that from counting twice).
                    ds.set_aggregation_job_polling(lease, None, retry).await?;
                } else {
                    ds.release_aggregation_job(lease, retry).await?;
                }
                Err(e)
            }
        }
    }

    /// Sends one request to the helper with the task's bearer token.
    async fn send_to_helper(
        &self,
        task: &AggregatorTask,
        method: reqwest::Method,
        url: &str,
        body: Option<(&str, Vec<u8>)>,
    ) -> Result<HelperReply, Error> {
        let token = task
            .aggregator_auth_token
            .as_ref()
            .ok_or_else(|| Error::Internal("leader task without aggregator token".into()))?;
        let mut req = self
            .inner
            .http
            .request(method, url)
            .bearer_auth(token.expose());
        if let Some((content_type, body)) = body {
            req = req.header("content-type", content_type).body(body);
        }
        let resp = req
            .send()
            .await
            .map_err(|e| Error::Internal(format!("helper request failed: {e}")))?;
        let status = resp.status();
        let header = |name| {
            resp.headers()
                .get(name)
                .and_then(|v: &reqwest::header::HeaderValue| v.to_str().ok())
                .map(str::to_string)
        };
        let (location, retry_after) = (
            header(reqwest::header::LOCATION),
            header(reqwest::header::RETRY_AFTER),
        );
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| Error::Internal(format!("helper response: {e}")))?;
        if status.is_success() {
            if bytes.is_empty() {
                return Ok(HelperReply::Deferred {
                    location,
                    retry_after,
                });
            }
            return Ok(HelperReply::Body(bytes.to_vec()));
        }
        let problem = serde_json::from_slice::<serde_json::Value>(&bytes)
            .ok()
            .and_then(|v| {
                v.get("type")
                    .and_then(|t| t.as_str())
                    .and_then(DapProblemType::from_urn)
            });
        match problem {
            Some(p) => Err(Error::dap(
                p,
                Some(task.parameters.task_id),
                format!("helper refused ({status})"),
            )),
            None => Err(Error::Internal(format!("helper answered {status}"))),
        }
    }

    /// POSTs to the helper and requires an immediate answer (aggregate shares: the leader
    /// does not poll those).
    async fn post_to_helper(
        &self,
        task: &AggregatorTask,
        url: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> Result<Vec<u8>, Error> {
        match self
            .send_to_helper(task, reqwest::Method::POST, url, Some((content_type, body)))
            .await?
        {
            HelperReply::Body(b) => Ok(b),
            HelperReply::Deferred { .. } => Err(Error::Internal(
                "helper deferred the aggregate share; polling aggregate shares is not implemented"
                    .into(),
            )),
        }
    }

    /// Leases and runs every due aggregation job once. Returns how many completed (jobs
    /// the helper is still processing wait for their next poll).
    pub async fn run_aggregation_jobs_once(&self) -> Result<usize, Error> {
        let leases = self.acquire_aggregation_jobs(100).await?;
        let mut done = 0;
        for lease in leases {
            match self.step_aggregation_job(&lease).await {
                Ok(AggregationJobProgress::Finished) => done += 1,
                Ok(AggregationJobProgress::HelperProcessing) => {}
                Err(e) => tracing::warn!(error = %e, "aggregation job step failed; will retry"),
            }
        }
        Ok(done)
    }

    /// Leases and advances every due collection job once. Returns how many finished or failed.
    pub async fn run_collection_jobs_once(&self) -> Result<usize, Error> {
        let now = self.inner.clock.now();
        let leases = self
            .inner
            .datastore
            .acquire_collection_jobs(now, self.inner.params.lease_secs, 100, &mut random16)
            .await?;
        let mut done = 0;
        for lease in leases {
            match self.step_collection_job(&lease).await {
                Ok(true) => done += 1,
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "collection job step failed; will retry");
                    let retry = self
                        .inner
                        .clock
                        .now()
                        .saturating_add(self.inner.params.collection_retry_secs);
                    self.inner
                        .datastore
                        .release_collection_job(&lease, retry)
                        .await?;
                }
            }
        }
        Ok(done)
    }

    async fn step_collection_job(&self, lease: &Lease) -> Result<bool, Error> {
        let ds = &self.inner.datastore;
        let task = self.task_in_role(&lease.task_id).await?;
        let job = ds
            .get_collection_job(&lease.task_id, &lease.job_id)
            .await?
            .ok_or(Error::NotFound)?;
        let req = CollectionJobReq::get_decoded(&job.request)
            .map_err(|e| Error::Internal(e.to_string()))?;
        let vdaf = &task.parameters.vdaf;
        let retry = self
            .inner
            .clock
            .now()
            .saturating_add(self.inner.params.collection_retry_secs);
        let min = task.parameters.min_batch_size;
        let (share, count, checksum, range, scope) = if job.state == "start" {
            let readiness = match &req.query {
                Query::TimeInterval { batch_interval } => {
                    ds.try_collect_time_interval(
                        lease,
                        vdaf,
                        &req.agg_param,
                        batch_interval.start.0,
                        batch_interval.end().0,
                        min,
                        retry,
                    )
                    .await?
                }
                Query::LeaderSelected => {
                    ds.try_collect_leader_selected(lease, vdaf, &req.agg_param, min, retry)
                        .await?
                }
            };
            match readiness {
                CollectionReadiness::Waiting => return Ok(false),
                CollectionReadiness::Overlap => {
                    ds.finish_collection_job(
                        lease,
                        Err(DapProblemType::BatchOverlap.token().into()),
                    )
                    .await?;
                    return Ok(true);
                }
                CollectionReadiness::Ready {
                    aggregate_share,
                    report_count,
                    checksum,
                    time_range,
                    scope,
                } => (aggregate_share, report_count, checksum, time_range, scope),
            }
        } else {
            // Retrying after the helper call failed: the batch is frozen, so re-summing it
            // yields exactly what was stored.
            let scope = match (&req.query, job.batch_id) {
                (Query::TimeInterval { batch_interval }, _) => BatchScope::TimeInterval {
                    start: batch_interval.start.0,
                    end: batch_interval.end().0,
                },
                (Query::LeaderSelected, Some(batch_id)) => BatchScope::LeaderSelected { batch_id },
                (Query::LeaderSelected, None) => {
                    return Err(Error::Internal("collecting job without a batch".into()));
                }
            };
            let agg = ds
                .aggregate_batch(&lease.task_id, vdaf, &req.agg_param, &scope, false)
                .await?;
            (
                agg.aggregate_share,
                agg.report_count,
                agg.checksum,
                agg.time_range.unwrap_or((0, 0)),
                scope,
            )
        };
        let batch_selector = match (&req.query, &scope) {
            (Query::TimeInterval { batch_interval }, _) => BatchSelector::TimeInterval {
                batch_interval: *batch_interval,
            },
            (_, BatchScope::LeaderSelected { batch_id }) => BatchSelector::LeaderSelected {
                batch_id: BatchId::from_bytes(*batch_id),
            },
            _ => {
                return Err(Error::Internal(
                    "batch scope does not match the query".into(),
                ));
            }
        };
        let share_req = AggregateShareReq {
            collection_job_req: req.clone(),
            batch_selector,
            report_count: count,
            checksum,
        }
        .get_encoded()
        .map_err(|e| Error::Internal(e.to_string()))?;
        let url = cairn_dap_core::TaskParameters::url(
            &task.parameters.helper_endpoint,
            &format!("tasks/{}/aggregate_shares", lease.task_id),
        );
        let helper_share = match self
            .post_to_helper(&task, &url, media_type::AGGREGATE_SHARE_REQ, share_req)
            .await
        {
            Ok(body) => AggregateShare::get_decoded(&body)
                .map_err(|e| Error::Internal(format!("malformed aggregate share: {e}")))?,
            Err(Error::Dap { problem, .. }) => {
                ds.finish_collection_job(lease, Err(problem.token().into()))
                    .await?;
                return Ok(true);
            }
            Err(e) => return Err(e),
        };
        // The leader's noise: drawn here, after the helper answered; the noisy share is sealed
        // and stored with the finished job, and only that one is ever released.
        let share = match &task.parameters.differential_privacy {
            Some(dp) => vdaf
                .add_noise(dp, &req.agg_param, &share, count)
                .map_err(|e| Error::Internal(format!("adding differential-privacy noise: {e}")))?,
            None => share,
        };
        let aad = task
            .parameters
            .aggregate_share_aad(&req)
            .map_err(|e| Error::Internal(e.to_string()))?;
        let info = HpkeApplicationInfo::new(Label::AggregateShare, Role::Leader, Role::Collector);
        let leader_ct = hpke::seal(&task.collector_hpke_config, &info, &share, &aad)
            .map_err(|e| Error::Internal(e.to_string()))?;
        let result = CollectionJobResp {
            report_count: count,
            interval: Interval {
                start: Time(range.0),
                duration: Duration(range.1.saturating_sub(range.0).saturating_add(1)),
            },
            leader_encrypted_agg_share: leader_ct,
            helper_encrypted_agg_share: helper_share.encrypted_aggregate_share,
        }
        .get_encoded()
        .map_err(|e| Error::Internal(e.to_string()))?;
        ds.finish_collection_job(lease, Ok(result)).await?;
        Ok(true)
    }

    /// Runs the role's drivers every `period` until the returned handle is aborted: the
    /// leader's aggregation-job creator, aggregation-job and collection-job drivers, or the
    /// helper's driver of asynchronous aggregation jobs.
    pub fn spawn_drivers(&self, period: std::time::Duration) -> tokio::task::JoinHandle<()> {
        let this = self.clone();
        tokio::spawn(async move {
            loop {
                if this.role() == AggregatorRole::Helper {
                    if let Err(e) = this.run_helper_aggregation_jobs_once().await {
                        tracing::warn!(error = %e, "helper aggregation job driver failed");
                    }
                    tokio::time::sleep(period).await;
                    continue;
                }
                if let Err(e) = this.create_aggregation_jobs().await {
                    tracing::warn!(error = %e, "creating aggregation jobs failed");
                }
                if let Err(e) = this.run_aggregation_jobs_once().await {
                    tracing::warn!(error = %e, "aggregation job driver failed");
                }
                if let Err(e) = this.run_collection_jobs_once().await {
                    tracing::warn!(error = %e, "collection job driver failed");
                }
                tokio::time::sleep(period).await;
            }
        })
    }
}

/// The bucket a report of a job falls into: its time unit in time-interval mode, the
/// batch's one bucket in leader-selected mode.
fn bucket_key(batch_id: Option<&[u8; 32]>, time: u64) -> BucketKey {
    match batch_id {
        Some(id) => BucketKey {
            batch_id: id.to_vec(),
            bucket_start: 0,
        },
        None => BucketKey {
            batch_id: Vec::new(),
            bucket_start: time,
        },
    }
}

/// An `AggregationJobInitReq` that passed the request-level checks of DAP-18 §4.5.3.2.
struct CheckedInit {
    req: AggregationJobInitReq,
    /// The leader-selected batch the job names, if any.
    batch_id: Option<[u8; 32]>,
}

/// Decodes an `AggregationJobInitReq` and makes the checks that fail the whole job:
/// extensions, aggregation parameter, verification key, distinct report IDs.
fn check_init_request(task: &AggregatorTask, body: &[u8]) -> Result<CheckedInit, Error> {
    let task_id = &task.parameters.task_id;
    let req = AggregationJobInitReq::get_decoded(body)
        .map_err(|e| invalid(task_id, format!("malformed aggregation job: {e}")))?;
    let batch_id = aggregation_job_batch_id(task, &req.extensions)?;
    if !task.parameters.vdaf.is_agg_param_valid(&req.agg_param) {
        return Err(Error::dap(
            DapProblemType::InvalidAggregationParameter,
            Some(*task_id),
            "invalid aggregation parameter",
        ));
    }
    if req.verification_key_id != 0 {
        return Err(invalid(task_id, "unknown verification key"));
    }
    let mut ids: Vec<_> = req
        .verify_inits
        .iter()
        .map(|v| v.report_share.metadata.id)
        .collect();
    ids.sort();
    if ids.windows(2).any(|w| w[0] == w[1]) {
        return Err(invalid(task_id, "duplicate report IDs"));
    }
    Ok(CheckedInit { req, batch_id })
}

/// The helper's per-report results of initializing a job, before commitment.
struct HelperPreparation {
    outcomes: Vec<ReportOutcome>,
    /// The helper's outbound ping-pong message per report (`None` if rejected).
    outbounds: Vec<Option<Vec<u8>>>,
}

impl HelperPreparation {
    /// The encoded `AggregationJobResp` once commitment decided each report (`results`, in
    /// request order): `continue` with the outbound message, or `reject`.
    fn response(&self, results: &[Result<(), ReportError>]) -> Vec<u8> {
        let verify_resps = self
            .outcomes
            .iter()
            .zip(results)
            .zip(&self.outbounds)
            .map(|((o, r), out)| VerifyResp {
                report_id: o.report_id,
                result: match (r, out) {
                    (Ok(()), Some(m)) => VerifyStepResult::Continue(m.clone()),
                    (Err(e), _) => VerifyStepResult::Reject(*e),
                    (Ok(()), None) => VerifyStepResult::Reject(ReportError::VdafVerifyError),
                },
            })
            .collect();
        AggregationJobResp { verify_resps }
            .get_encoded()
            .unwrap_or_default()
    }
}

fn unrecognized_job(task_id: &TaskId) -> Error {
    Error::dap(
        DapProblemType::UnrecognizedAggregationJob,
        Some(*task_id),
        "unknown aggregation job",
    )
}

/// The helper's aggregation job named by a `Location` header (an absolute URL or a
/// reference such as `/tasks/{task-id}/aggregation_jobs/{job-id}?step=0`): the job ID and the
/// `step` query parameter (0 when absent). `None` if the reference does not name an
/// aggregation job of `task_id`.
fn helper_job_location(task_id: &TaskId, location: &str) -> Option<(AggregationJobId, u16)> {
    let (path, query) = location.split_once('?').unwrap_or((location, ""));
    let segments: Vec<&str> = path.split('/').collect();
    let i = segments.iter().rposition(|s| *s == "aggregation_jobs")?;
    if i < 2 || segments[i - 2] != "tasks" || segments[i - 1] != task_id.to_string() {
        return None;
    }
    let [job] = &segments[i + 1..] else {
        return None;
    };
    let job_id = job.parse().ok()?;
    let step = match query.split('&').find_map(|kv| kv.strip_prefix("step=")) {
        Some(s) => s.parse().ok()?,
        None => 0,
    };
    Some((job_id, step))
}

/// Seconds to wait before polling, from a `Retry-After` header (delta-seconds; an HTTP date
/// or nothing means the default of 1), kept within 1 to [`MAX_POLL_INTERVAL_SECS`].
fn poll_delay(retry_after: Option<&str>) -> u64 {
    retry_after
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or(1)
        .clamp(1, MAX_POLL_INTERVAL_SECS)
}

/// The batch an `AggregationJobInitReq` names through its extensions (DAP-18 §5.2.2): a
/// leader-selected task needs exactly a well-formed `leader_selected_batch_id`; a
/// time-interval task takes none. Unknown extension types are unsupported.
fn aggregation_job_batch_id(
    task: &AggregatorTask,
    extensions: &[Extension],
) -> Result<Option<[u8; 32]>, Error> {
    let task_id = &task.parameters.task_id;
    if let Some(e) = extensions
        .iter()
        .find(|e| e.extension_type != Extension::LEADER_SELECTED_BATCH_ID)
    {
        return Err(Error::dap(
            DapProblemType::UnsupportedExtension,
            Some(*task_id),
            format!("unsupported aggregation job extension {}", e.extension_type),
        ));
    }
    if !extensions_strictly_increasing(extensions) {
        return Err(invalid(task_id, "extensions out of order"));
    }
    match (task.parameters.batch_mode, extensions.first()) {
        (BatchMode::LeaderSelected, Some(e)) => <[u8; 32]>::try_from(e.extension_data.as_slice())
            .map(Some)
            .map_err(|_| invalid(task_id, "malformed leader_selected_batch_id")),
        (BatchMode::LeaderSelected, None) => Err(invalid(
            task_id,
            "a leader-selected task needs the leader_selected_batch_id extension",
        )),
        (_, Some(_)) => Err(invalid(
            task_id,
            "leader_selected_batch_id in a time-interval task",
        )),
        (_, None) => Ok(None),
    }
}

/// What a collection job and an aggregate-share request both require: an aggregation parameter
/// the VDAF accepts and a non-empty batch interval that does not overflow.
fn check_collection_query(
    task_id: &TaskId,
    vdaf: &VdafInstance,
    agg_param: &[u8],
    interval: Option<&Interval>,
) -> Result<(), Error> {
    if !vdaf.is_agg_param_valid(agg_param) {
        return Err(Error::dap(
            DapProblemType::InvalidAggregationParameter,
            Some(*task_id),
            "invalid aggregation parameter",
        ));
    }
    let Some(interval) = interval else {
        return Ok(());
    };
    if interval.duration.0 == 0 || Interval::new(interval.start, interval.duration).is_none() {
        return Err(Error::dap(
            DapProblemType::BatchInvalid,
            Some(*task_id),
            "empty or overflowing batch interval",
        ));
    }
    Ok(())
}

fn check_collection_extensions(task_id: &TaskId, extensions: &[Extension]) -> Result<(), Error> {
    if !extensions_strictly_increasing(extensions) {
        return Err(Error::dap(
            DapProblemType::InvalidExtension,
            Some(*task_id),
            "extensions out of order",
        ));
    }
    if !extensions.is_empty() {
        return Err(Error::dap(
            DapProblemType::UnsupportedExtension,
            Some(*task_id),
            "no collection job extension is supported",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn helper_job_location_names_the_job_and_step() {
        let task = TaskId::from_bytes([1; 32]);
        let job = AggregationJobId::from_bytes([2; 16]);
        let cases = [
            // Root-relative (Cairn, Janus) and with a path prefix (DAP-18's examples).
            (
                format!("/tasks/{task}/aggregation_jobs/{job}?step=0"),
                Some((job, 0)),
            ),
            (
                format!("/helper/tasks/{task}/aggregation_jobs/{job}?step=3"),
                Some((job, 3)),
            ),
            (
                format!("https://h.example/dap/tasks/{task}/aggregation_jobs/{job}"),
                Some((job, 0)),
            ),
            (
                format!("/tasks/{task}/aggregation_jobs/{job}?x=1&step=2"),
                Some((job, 2)),
            ),
            // Another task, no job, a malformed ID or step, trailing segments.
            (
                format!(
                    "/tasks/{}/aggregation_jobs/{job}",
                    TaskId::from_bytes([9; 32])
                ),
                None,
            ),
            (format!("/tasks/{task}/aggregation_jobs"), None),
            (format!("/tasks/{task}/aggregation_jobs/short"), None),
            (format!("/tasks/{task}/aggregation_jobs/{job}?step=x"), None),
            (format!("/tasks/{task}/aggregation_jobs/{job}/more"), None),
            (format!("/aggregation_jobs/{job}"), None),
        ];
        for (location, expected) in cases {
            assert_eq!(
                helper_job_location(&task, &location),
                expected,
                "{location}"
            );
        }
    }

    #[test]
    fn poll_delay_follows_retry_after_within_bounds() {
        assert_eq!(poll_delay(Some("5")), 5);
        assert_eq!(poll_delay(Some(" 30 ")), 30);
        assert_eq!(poll_delay(Some("0")), 1);
        assert_eq!(poll_delay(Some("86400")), MAX_POLL_INTERVAL_SECS);
        assert_eq!(poll_delay(Some("Wed, 21 Oct 2015 07:28:00 GMT")), 1);
        assert_eq!(poll_delay(None), 1);
    }
}
