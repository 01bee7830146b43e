//! The leader's aggregation-job driver (DAP-18 §4.5.3.1 leader initialization; §4.5.4.1
//! needs no step after it for a one-round VDAF). It groups uploaded reports into jobs, and for
//! each job it leases: initializes every report ([`leader_init_report`], pure), sends the job
//! to the helper — or polls the helper's job if the helper deferred — reads the helper's
//! verdict per report, and commits the outcome in one transaction that succeeds only while the
//! lease is still its own.
//!
//! Crash safety: nothing is committed before the helper's answer; a driver that dies leaves a
//! lease that expires, and the next driver redoes the leader's (deterministic) VDAF work and
//! sends byte for byte the same request, which the helper recognizes as the same job.

use super::Aggregator;
use super::helper_client::HelperReply;
use super::report_checks::helper_verdict;
use super::resource_ids::random16;
use crate::datastore::{BucketKey, DatastoreError, Lease, ReportOutcome, StoredReport};
use crate::error::Error;
use crate::task::{AggregatorRole, AggregatorTask};
use cairn_dap_messages::codec::{LengthPrefix, Reader};
use cairn_dap_messages::{
    AggregationJobId, AggregationJobInitReq, AggregationJobResp, BatchMode, DapProblemType, Decode,
    Encode, Extension, HpkeCiphertext, ReportError, ReportId, ReportMetadata, ReportShare, TaskId,
    Time, VerifyInit, VerifyResp, dap09, media_type,
};

/// The longest the leader waits between polls of a helper, whatever `Retry-After` says.
pub const MAX_POLL_INTERVAL_SECS: u64 = 600;

/// What one step of the leader's aggregation-job driver achieved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AggregationJobProgress {
    /// The job is committed.
    Finished,
    /// The helper deferred its answer; the job is stored for polling and its lease released.
    HelperProcessing,
}

/// The leader's initialization of one stored report: the helper's share of it with the
/// leader's first message, and the leader's VDAF state. A stored report that no longer
/// decodes is `invalid_message`; one the VDAF refuses is `vdaf_verify_error`.
fn leader_init_report(
    task: &AggregatorTask,
    agg_param: &[u8],
    r: &StoredReport,
) -> Result<(VerifyInit, Vec<u8>), ReportError> {
    let public_extensions: Vec<Extension> = Reader::new(&r.public_extensions)
        .items(LengthPrefix::U16)
        .map_err(|_| ReportError::InvalidMessage)?;
    let ct = HpkeCiphertext::get_decoded(&r.helper_encrypted_input_share)
        .map_err(|_| ReportError::InvalidMessage)?;
    let continued = task
        .parameters
        .engine()
        .leader_initialized(
            &task.vdaf_verify_key,
            agg_param,
            r.report_id.as_bytes(),
            &r.public_share,
            &r.leader_input_share,
        )
        .map_err(|_| ReportError::VdafVerifyError)?;
    let vi = VerifyInit {
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
    };
    Ok((vi, continued.state))
}

/// Whether the helper answered for exactly the reports sent, in order.
fn answers_match(resps: &[VerifyResp], sent: &[ReportId]) -> bool {
    resps.len() == sent.len() && resps.iter().zip(sent).all(|(v, id)| v.report_id == *id)
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

impl Aggregator {
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
                        random16,
                    )
                    .await?
                }
                _ => {
                    ds.create_aggregation_jobs(&task_id, max_job, random16)
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
                random16,
            )
            .await?)
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
                Err(e) => {
                    metrics::counter!("cairn_dap_job_step_failures_total", "job" => "aggregation")
                        .increment(1);
                    tracing::warn!(error = %e, "aggregation job step failed; will retry");
                }
            }
        }
        Ok(done)
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
        let ds = &self.inner.datastore;
        // A job the helper deferred is polled first: the leader's VDAF work is redone only
        // once the helper's answer is there.
        let polled = match ds
            .get_aggregation_job_helper_id(&lease.task_id, &lease.job_id)
            .await?
        {
            Some(helper_job) => match self.poll_helper(&task, lease, helper_job).await? {
                Some(body) => Some(body),
                None => return Ok(AggregationJobProgress::HelperProcessing),
            },
            None => None,
        };
        let reports = ds
            .get_aggregation_job_reports(&lease.task_id, &lease.job_id)
            .await?;
        let batch_id = ds
            .get_aggregation_job_batch_id(&lease.task_id, &lease.job_id)
            .await?;
        let extensions: Vec<Extension> = batch_id
            .iter()
            .map(|id| Extension {
                extension_type: Extension::LEADER_SELECTED_BATCH_ID,
                extension_data: id.to_vec(),
            })
            .collect();
        let engine = task.parameters.engine();
        let vdaf = &engine;
        let agg_param: Vec<u8> = Vec::new();
        let mut outcomes = Vec::with_capacity(reports.len());
        let mut states = Vec::new();
        let mut verify_inits = Vec::new();
        for r in &reports {
            let bucket = BucketKey::for_report(batch_id.as_ref(), r.time);
            match leader_init_report(&task, &agg_param, r) {
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
            let sent: Vec<ReportId> = states.iter().map(|s| s.0).collect();
            if !answers_match(&resp.verify_resps, &sent) {
                return Err(Error::Internal(
                    "helper's response does not match the job's reports".into(),
                ));
            }
            for (v, (id, time, bucket, state)) in resp.verify_resps.into_iter().zip(states) {
                let result = helper_verdict(v.result).and_then(|message| {
                    vdaf.leader_continued(&agg_param, &state, &message)
                        .map_err(|_| ReportError::VdafVerifyError)
                });
                outcomes.push(ReportOutcome {
                    report_id: id,
                    time,
                    bucket,
                    result,
                });
            }
        }
        match ds
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
        if task.parameters.protocol == cairn_dap_core::Protocol::Dap09 {
            // DAP-09: `PUT` at the leader's job ID, answered synchronously.
            let url = cairn_dap_core::TaskParameters::url(
                &task.parameters.helper_endpoint,
                &format!(
                    "tasks/{}/aggregation_jobs/{}",
                    lease.task_id,
                    AggregationJobId::from_bytes(lease.job_id)
                ),
            );
            let body = super::dap09::init_req_to_dap09(&task.parameters, &body)?;
            let reply = self
                .send_to_helper(
                    task,
                    reqwest::Method::PUT,
                    &url,
                    Some((dap09::media_type::AGGREGATION_JOB_INIT_REQ, body)),
                )
                .await
                .and_then(|reply| match reply {
                    HelperReply::Body(b) => {
                        super::dap09::resp_from_dap09(&b).map(HelperReply::Body)
                    }
                    HelperReply::Deferred { .. } => Err(Error::Internal(
                        "a DAP-09 helper deferred an aggregation job".into(),
                    )),
                });
            return self.settle_helper_reply(lease, None, reply).await;
        }
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
}

#[cfg(test)]
mod tests {
    use super::super::report_checks::fixtures::{NOW, report, task, time};
    use super::*;
    use cairn_dap_core::HpkeKeypair;
    use cairn_dap_core::hpke::{HpkeApplicationInfo, Label};
    use cairn_dap_messages::{HpkeConfigId, PlaintextInputShare, Role, VerifyStepResult};

    #[test]
    fn stored_reports_are_initialized_or_failed_one_by_one() {
        let t = task(AggregatorRole::Leader, None);
        let leader = HpkeKeypair::generate(HpkeConfigId(1));
        let helper = HpkeKeypair::generate(HpkeConfigId(2));
        let r = report(&t.parameters, &leader, &helper, time(NOW), vec![], vec![]);
        let info = HpkeApplicationInfo::new(Label::InputShare, Role::Client, Role::Leader);
        let aad = t
            .parameters
            .input_share_aad(&r.metadata, &r.public_share)
            .unwrap();
        let share = PlaintextInputShare::get_decoded(
            &leader
                .open(&info, &r.leader_encrypted_input_share, &aad)
                .unwrap(),
        )
        .unwrap();
        let stored = StoredReport {
            report_id: r.metadata.id,
            time: r.metadata.time.0,
            public_extensions: vec![0, 0],
            public_share: r.public_share.clone(),
            leader_input_share: share.payload,
            helper_encrypted_input_share: r.helper_encrypted_input_share.get_encoded().unwrap(),
        };
        let (vi, state) = leader_init_report(&t, &[], &stored).unwrap();
        assert_eq!(vi.report_share.metadata, r.metadata);
        assert_eq!(
            vi.report_share.encrypted_input_share,
            r.helper_encrypted_input_share
        );
        assert!(!vi.payload.is_empty() && !state.is_empty());
        // Deterministic: a retried job sends the same message.
        assert_eq!(leader_init_report(&t, &[], &stored).unwrap().0, vi);

        let mut bad_extensions = stored.clone();
        bad_extensions.public_extensions = vec![0];
        let mut bad_ciphertext = stored.clone();
        bad_ciphertext.helper_encrypted_input_share.truncate(3);
        let mut bad_share = stored.clone();
        bad_share.leader_input_share = vec![0xff];
        for (s, expected) in [
            (bad_extensions, ReportError::InvalidMessage),
            (bad_ciphertext, ReportError::InvalidMessage),
            (bad_share, ReportError::VdafVerifyError),
        ] {
            assert_eq!(leader_init_report(&t, &[], &s).err(), Some(expected));
        }
    }

    #[test]
    fn the_helper_must_answer_for_exactly_the_reports_sent() {
        let id = |b| ReportId::from_bytes([b; 16]);
        let resp = |b| VerifyResp {
            report_id: id(b),
            result: VerifyStepResult::Finish,
        };
        assert!(answers_match(&[resp(1), resp(2)], &[id(1), id(2)]));
        assert!(answers_match(&[], &[]));
        assert!(!answers_match(&[resp(2), resp(1)], &[id(1), id(2)]));
        assert!(!answers_match(&[resp(1)], &[id(1), id(2)]));
        assert!(!answers_match(
            &[resp(1), resp(2), resp(3)],
            &[id(1), id(2)]
        ));
    }

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
