//! Aggregation job initialization at the helper (DAP-18 §4.5.3.2): the request-level checks
//! that fail the whole job, then each report decrypted (§4.5.3.3), validated (§4.5.3.4) and
//! VDAF-initialized ([`prepare_report_share`], pure), and the job's outcomes committed with
//! the replay and collected-batch checks in one transaction.
//!
//! The job's ID is derived from the request, so a re-sent identical request finds the same
//! job. With `async_aggregation` the helper answers at once with "processing", stores the
//! request and prepares the job in its own lease-based driver; the leader polls the job's
//! resource (`GET …?step=0`), which is also answered here.

use super::Aggregator;
use super::helper_job::AggregationJobAnswer;
use super::report_checks::{
    Checkpoint, check_expiry, check_extensions, check_time, keypair_for, open_input_share,
};
use super::resource_ids::{content_id, random16};
use crate::datastore::{BucketKey, DatastoreError, HpkeKeyState, Lease, ReportOutcome};
use crate::error::Error;
use crate::task::AggregatorTask;
use cairn_dap_core::HpkeKeypair;
use cairn_dap_core::hpke::Label;
use cairn_dap_core::vdaf::HelperFinished;
use cairn_dap_messages::{
    AggregationJobId, AggregationJobInitReq, AggregationJobResp, BatchMode, DapProblemType, Decode,
    Encode, Extension, ReportError, Role, TaskId, VerifyInit, VerifyResp, VerifyStepResult,
    extensions_strictly_increasing,
};
use std::sync::Arc;

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
        .map_err(|e| Error::invalid_message(task_id, format!("malformed aggregation job: {e}")))?;
    let batch_id = aggregation_job_batch_id(task, &req.extensions)?;
    if !task.parameters.vdaf.is_agg_param_valid(&req.agg_param) {
        return Err(Error::dap(
            DapProblemType::InvalidAggregationParameter,
            Some(*task_id),
            "invalid aggregation parameter",
        ));
    }
    if req.verification_key_id != 0 {
        return Err(Error::invalid_message(task_id, "unknown verification key"));
    }
    let mut ids: Vec<_> = req
        .verify_inits
        .iter()
        .map(|v| v.report_share.metadata.id)
        .collect();
    ids.sort();
    if ids.windows(2).any(|w| w[0] == w[1]) {
        return Err(Error::invalid_message(task_id, "duplicate report IDs"));
    }
    Ok(CheckedInit { req, batch_id })
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
        return Err(Error::invalid_message(task_id, "extensions out of order"));
    }
    match (task.parameters.batch_mode, extensions.first()) {
        (BatchMode::LeaderSelected, Some(e)) => <[u8; 32]>::try_from(e.extension_data.as_slice())
            .map(Some)
            .map_err(|_| Error::invalid_message(task_id, "malformed leader_selected_batch_id")),
        (BatchMode::LeaderSelected, None) => Err(Error::invalid_message(
            task_id,
            "a leader-selected task needs the leader_selected_batch_id extension",
        )),
        (_, Some(_)) => Err(Error::invalid_message(
            task_id,
            "leader_selected_batch_id in a time-interval task",
        )),
        (_, None) => Ok(None),
    }
}

/// The helper's checks of one report of a job, in the order §4.5.3.4 lists them — time, then
/// the input share (a key it holds, decrypted and decoded), then extensions — and its VDAF
/// initialization on the leader's message. `now` is the current POSIX time.
fn prepare_report_share(
    task: &AggregatorTask,
    keys: &[(HpkeKeypair, HpkeKeyState)],
    now: u64,
    skew: u64,
    agg_param: &[u8],
    vi: &VerifyInit,
) -> Result<HelperFinished, ReportError> {
    let rs = &vi.report_share;
    check_time(
        &task.parameters,
        rs.metadata.time,
        now,
        skew,
        Checkpoint::Aggregation,
    )?;
    check_expiry(task, rs.metadata.time, now)?;
    let kp = keypair_for(keys, &rs.encrypted_input_share, Checkpoint::Aggregation)?;
    let info = task
        .parameters
        .hpke_info(Label::InputShare, Role::Client, Role::Helper);
    let share = open_input_share(
        &task.parameters,
        kp,
        &info,
        &rs.metadata,
        &rs.public_share,
        &rs.encrypted_input_share,
    )?;
    check_extensions(&rs.metadata.public_extensions, || task.taskbound())?;
    check_extensions(&share.private_extensions, || task.taskbound())?;
    task.parameters
        .engine()
        .helper_initialized(
            &task.vdaf_verify_key,
            agg_param,
            rs.metadata.id.as_bytes(),
            &rs.public_share,
            &share.payload,
            &vi.payload,
        )
        .map_err(|_| ReportError::VdafVerifyError)
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

impl Aggregator {
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
        super::dap09::require_dap18(&task)?;
        self.init_helper_job(&task, body, self.inner.params.async_aggregation)
            .await
    }

    /// Initializes the job `body` (an encoded DAP-18 `AggregationJobInitReq`) of `task`, whose
    /// leader is authorized: finds the identical job, or stores it for the driver
    /// (`allow_async`), or prepares and commits it now.
    pub(super) async fn init_helper_job(
        &self,
        task: &AggregatorTask,
        body: &[u8],
        allow_async: bool,
    ) -> Result<(AggregationJobId, AggregationJobAnswer), Error> {
        let task_id = &task.parameters.task_id;
        let init = check_init_request(task, body)?;
        let job_id = AggregationJobId::from_bytes(content_id(task_id, body));
        let ds = &self.inner.datastore;
        if let Some(job) = ds.get_helper_aggregation_job(task_id, &job_id).await? {
            return Ok((job_id, AggregationJobAnswer::of(job)?));
        }
        if allow_async {
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
        let prepared = Arc::new(self.prepare_helper_job(task, &init).await?);
        let respond = Arc::clone(&prepared);
        let job = ds
            .commit_helper_aggregation_job(
                task_id,
                &job_id,
                &task.parameters.engine(),
                &init.req.agg_param,
                &prepared.outcomes,
                Box::new(move |results| respond.response(results)),
            )
            .await?;
        Ok((job_id, AggregationJobAnswer::of(job)?))
    }

    /// Checks and VDAF-initializes every report of a job (no storage writes).
    async fn prepare_helper_job(
        &self,
        task: &AggregatorTask,
        init: &CheckedInit,
    ) -> Result<HelperPreparation, Error> {
        let req = &init.req;
        let now = self.inner.clock.now();
        let skew = self.inner.params.tolerable_clock_skew_secs;
        let keys = self.current_keys().await?;
        let mut outcomes = Vec::with_capacity(req.verify_inits.len());
        let mut outbounds = Vec::with_capacity(req.verify_inits.len());
        for vi in &req.verify_inits {
            let metadata = &vi.report_share.metadata;
            let (result, outbound) =
                match prepare_report_share(task, &keys, now, skew, &req.agg_param, vi) {
                    Ok(f) => (Ok(f.output_share), Some(f.outbound)),
                    Err(e) => (Err(e), None),
                };
            outbounds.push(outbound);
            outcomes.push(ReportOutcome {
                report_id: metadata.id,
                time: metadata.time.0,
                bucket: BucketKey::for_report(init.batch_id.as_ref(), metadata.time.0),
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
            .ok_or_else(|| Error::invalid_message(task_id, "the step query parameter is required"))?
            .parse()
            .map_err(|_| Error::invalid_message(task_id, "malformed step query parameter"))?;
        if step != 0 {
            return Err(Error::dap(
                DapProblemType::StepMismatch,
                Some(*task_id),
                format!("the job is at step 0, not {step}"),
            ));
        }
        AggregationJobAnswer::of(job)
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
                random16,
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
                    metrics::counter!("cairn_dap_job_step_failures_total", "job" => "helper_aggregation")
                        .increment(1);
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
        let prepared = Arc::new(self.prepare_helper_job(&task, &init).await?);
        let respond = Arc::clone(&prepared);
        self.inner
            .datastore
            .finish_helper_aggregation_job(
                lease,
                &task.parameters.engine(),
                &init.req.agg_param,
                &prepared.outcomes,
                Box::new(move |results| respond.response(results)),
            )
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::report_checks::fixtures::{NOW, extension, report, task, time};
    use super::*;
    use crate::task::AggregatorRole;
    use cairn_dap_core::hpke::HpkeApplicationInfo;
    use cairn_dap_messages::{
        Duration, HpkeConfigId, Interval, Report, ReportId, ReportMetadata, ReportShare, Time,
    };

    /// The leader's first message for report `r` (opened with the leader's key `leader`).
    fn verify_init(t: &AggregatorTask, leader: &HpkeKeypair, r: &Report) -> VerifyInit {
        let info = HpkeApplicationInfo::new(Label::InputShare, Role::Client, Role::Leader);
        let share = open_input_share(
            &t.parameters,
            leader,
            &info,
            &r.metadata,
            &r.public_share,
            &r.leader_encrypted_input_share,
        )
        .unwrap();
        let leader_init = t
            .parameters
            .vdaf
            .leader_initialized(
                &t.vdaf_verify_key,
                &t.parameters.vdaf_ctx(),
                &[],
                r.metadata.id.as_bytes(),
                &r.public_share,
                &share.payload,
            )
            .unwrap();
        VerifyInit {
            report_share: ReportShare {
                metadata: r.metadata.clone(),
                public_share: r.public_share.clone(),
                encrypted_input_share: r.helper_encrypted_input_share.clone(),
            },
            payload: leader_init.outbound,
        }
    }

    #[test]
    fn each_report_share_is_checked_then_initialized() {
        let interval = Interval::new(time(NOW - 7200), Duration(2)).unwrap();
        let t = task(AggregatorRole::Helper, Some(interval));
        let leader = HpkeKeypair::generate(HpkeConfigId(1));
        let helper = HpkeKeypair::generate(HpkeConfigId(2));
        let keys = [(helper.clone(), HpkeKeyState::Pending)];
        let at = |time: Time, public: Vec<Extension>, private: Vec<Extension>| {
            verify_init(
                &t,
                &leader,
                &report(&t.parameters, &leader, &helper, time, public, private),
            )
        };
        let prepare = |vi: &VerifyInit| prepare_report_share(&t, &keys, NOW, 300, &[], vi);

        let ok = at(time(NOW - 3600), vec![], vec![]);
        let finished = prepare(&ok).unwrap();
        assert!(!finished.output_share.is_empty() && !finished.outbound.is_empty());

        let mut bad_message = ok.clone();
        bad_message.payload = vec![0xff; 4];
        let mut unknown_key = ok.clone();
        unknown_key.report_share.encrypted_input_share.config_id = HpkeConfigId(1);
        let mut tampered = ok.clone();
        tampered.report_share.public_share.push(0);
        let cases = [
            (
                at(time(NOW + 7200), vec![], vec![]),
                ReportError::ReportTooEarly,
            ),
            (
                at(Time(interval.start.0 - 1), vec![], vec![]),
                ReportError::TaskNotStarted,
            ),
            (at(interval.end(), vec![], vec![]), ReportError::TaskExpired),
            (unknown_key, ReportError::HpkeDecryptError),
            (tampered, ReportError::HpkeDecryptError),
            (
                at(time(NOW - 3600), vec![extension(9)], vec![]),
                ReportError::InvalidMessage,
            ),
            (
                at(time(NOW - 3600), vec![], vec![extension(9)]),
                ReportError::InvalidMessage,
            ),
            (bad_message, ReportError::VdafVerifyError),
        ];
        for (vi, expected) in cases {
            assert_eq!(prepare(&vi).err(), Some(expected));
        }
        // The time is checked before the key.
        let mut early_unknown = at(time(NOW + 7200), vec![], vec![]);
        early_unknown.report_share.encrypted_input_share.config_id = HpkeConfigId(1);
        assert_eq!(
            prepare(&early_unknown).err(),
            Some(ReportError::ReportTooEarly)
        );
    }

    fn init_body(
        extensions: Vec<Extension>,
        key_id: u8,
        agg_param: Vec<u8>,
        ids: &[u8],
    ) -> Vec<u8> {
        let share = |id: u8| VerifyInit {
            report_share: ReportShare {
                metadata: ReportMetadata {
                    id: ReportId::from_bytes([id; 16]),
                    time: Time(1),
                    public_extensions: Vec::new(),
                },
                public_share: Vec::new(),
                encrypted_input_share: cairn_dap_messages::HpkeCiphertext {
                    config_id: HpkeConfigId(1),
                    enc: vec![1],
                    payload: vec![1],
                },
            },
            payload: vec![1],
        };
        AggregationJobInitReq {
            verification_key_id: key_id,
            agg_param,
            extensions,
            verify_inits: ids.iter().map(|&id| share(id)).collect(),
        }
        .get_encoded()
        .unwrap()
    }

    fn problem(r: Result<CheckedInit, Error>) -> Option<DapProblemType> {
        match r {
            Err(Error::Dap { problem, .. }) => Some(problem),
            _ => None,
        }
    }

    #[test]
    fn job_level_checks_fail_the_whole_request() {
        let ti = task(AggregatorRole::Helper, None);
        let ok = check_init_request(&ti, &init_body(vec![], 0, vec![], &[1, 2])).unwrap();
        assert_eq!(ok.batch_id, None);
        assert_eq!(ok.req.verify_inits.len(), 2);
        let cases = [
            (b"\x00".to_vec(), DapProblemType::InvalidMessage),
            (
                init_body(vec![], 1, vec![], &[1]),
                DapProblemType::InvalidMessage,
            ),
            (
                init_body(vec![], 0, vec![], &[1, 2, 1]),
                DapProblemType::InvalidMessage,
            ),
            (
                init_body(vec![], 0, vec![1], &[1]),
                DapProblemType::InvalidAggregationParameter,
            ),
            (
                init_body(vec![extension(0x7777)], 0, vec![], &[1]),
                DapProblemType::UnsupportedExtension,
            ),
        ];
        for (body, expected) in cases {
            assert_eq!(problem(check_init_request(&ti, &body)), Some(expected));
        }
    }

    #[test]
    fn the_batch_id_extension_matches_the_batch_mode() {
        let batch = |data: Vec<u8>| Extension {
            extension_type: Extension::LEADER_SELECTED_BATCH_ID,
            extension_data: data,
        };
        let ti = task(AggregatorRole::Helper, None);
        let mut ls = task(AggregatorRole::Helper, None);
        ls.parameters.batch_mode = BatchMode::LeaderSelected;
        assert_eq!(aggregation_job_batch_id(&ti, &[]).unwrap(), None);
        assert_eq!(
            aggregation_job_batch_id(&ls, &[batch(vec![5; 32])]).unwrap(),
            Some([5; 32])
        );
        let refusals = [
            (
                &ti,
                vec![batch(vec![5; 32])],
                DapProblemType::InvalidMessage,
            ),
            (&ls, vec![], DapProblemType::InvalidMessage),
            (
                &ls,
                vec![batch(vec![5; 31])],
                DapProblemType::InvalidMessage,
            ),
            (
                &ls,
                vec![batch(vec![5; 32]), batch(vec![6; 32])],
                DapProblemType::InvalidMessage,
            ),
            (
                &ls,
                vec![extension(0x7777)],
                DapProblemType::UnsupportedExtension,
            ),
        ];
        for (t, extensions, expected) in refusals {
            match aggregation_job_batch_id(t, &extensions) {
                Err(Error::Dap { problem, .. }) => assert_eq!(problem, expected),
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn the_response_continues_committed_reports_and_rejects_the_others() {
        let outcome = |id: u8| ReportOutcome {
            report_id: ReportId::from_bytes([id; 16]),
            time: 1,
            bucket: BucketKey::for_report(None, 1),
            result: Ok(Vec::new()),
        };
        let prepared = HelperPreparation {
            outcomes: vec![outcome(1), outcome(2), outcome(3)],
            outbounds: vec![Some(vec![9]), Some(vec![8]), None],
        };
        let body = prepared.response(&[Ok(()), Err(ReportError::ReportReplayed), Ok(())]);
        let resp = AggregationJobResp::get_decoded(&body).unwrap();
        let results: Vec<_> = resp.verify_resps.into_iter().map(|v| v.result).collect();
        assert_eq!(
            results,
            [
                VerifyStepResult::Continue(vec![9]),
                VerifyStepResult::Reject(ReportError::ReportReplayed),
                VerifyStepResult::Reject(ReportError::VdafVerifyError),
            ]
        );
    }
}
