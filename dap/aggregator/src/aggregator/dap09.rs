//! The leader's DAP-09 edge (tasks whose `protocol` is `dap-09`): one report per upload, and
//! collection jobs created with `PUT` at the collector's own ID and polled with `POST`. Each
//! DAP-09 message is converted to the DAP-18 value the rest of the aggregator handles (times in
//! seconds become time-precision units) and goes through the same pipeline: the same checks,
//! storage, drivers and helper protocol. What differs by version inside (AADs, HPKE labels,
//! VDAF-08) is the task's data, not a fork of this code.
//!
//! A DAP-09 message to a DAP-18 task, or the reverse, is refused with `invalidMessage` naming
//! the task's protocol, before anything is stored.

use super::Aggregator;
use super::collection_request::check_collection_query;
use super::helper_job::AggregationJobAnswer;
use crate::error::Error;
use crate::task::{AggregatorRole, AggregatorTask};
use cairn_dap_core::{Protocol, TaskParameters};
use cairn_dap_messages::{
    AggregateShareReq, AggregationJobInitReq, AggregationJobResp, BatchId, BatchSelector,
    CollectionJobId, CollectionJobReq, CollectionJobResp, DapProblemType, Decode, Duration, Encode,
    Extension, Interval, Query, Report, ReportError, ReportMetadata, ReportShare, TaskId, Time,
    VerifyInit, VerifyResp, VerifyStepResult, dap09, media_type,
};

/// What a DAP-09 collector's poll finds.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Dap09Poll {
    /// Not ready yet (`202 Accepted`).
    Pending,
    /// The encoded DAP-09 `Collection` (`200 OK`).
    Finished(Vec<u8>),
}

/// The refusal of a message of the other protocol.
fn wrong_protocol(task: &TaskParameters, sent: Protocol) -> Error {
    let how = match task.protocol {
        Protocol::Dap18 => format!(
            "upload with POST as {} and create collection jobs with POST",
            media_type::UPLOAD_REQ
        ),
        Protocol::Dap09 => format!(
            "upload one report with PUT as {} and create collection jobs with PUT",
            dap09::media_type::REPORT
        ),
    };
    Error::invalid_message(
        &task.task_id,
        format!(
            "this task speaks {}, and this is a {sent} message: {how}",
            task.protocol
        ),
    )
}

/// A DAP-09 task or the refusal of a DAP-09 message to a DAP-18 one.
pub(super) fn require_dap09(task: &AggregatorTask) -> Result<(), Error> {
    if task.parameters.protocol == Protocol::Dap09 {
        Ok(())
    } else {
        Err(wrong_protocol(&task.parameters, Protocol::Dap09))
    }
}

/// A DAP-18 task or the refusal of a DAP-18 collector message to a DAP-09 one.
pub(super) fn require_dap18(task: &AggregatorTask) -> Result<(), Error> {
    if task.parameters.protocol == Protocol::Dap18 {
        Ok(())
    } else {
        Err(wrong_protocol(&task.parameters, Protocol::Dap18))
    }
}

/// The DAP-09 answer to a refused report: DAP-09 has one report per request, so a refusal is
/// a problem document. A replay is not an error (the client may retry an upload whose answer
/// it lost; the report is stored once).
fn refusal(task_id: &TaskId, e: ReportError) -> Option<Error> {
    let (problem, detail) = match e {
        ReportError::ReportReplayed => return None,
        ReportError::OutdatedConfig | ReportError::HpkeUnknownConfigId => (
            DapProblemType::OutdatedConfig,
            "the report is encrypted to an HPKE configuration this leader does not hold",
        ),
        ReportError::ReportTooEarly => (
            DapProblemType::ReportTooEarly,
            "the report's time is too far in the future",
        ),
        other => (DapProblemType::ReportRejected, other.name()),
    };
    Some(Error::dap(problem, Some(*task_id), detail))
}

/// Seconds to time-precision units, for a boundary that must sit on the precision.
fn units(seconds: u64, precision: u64) -> Option<u64> {
    (precision > 0 && seconds.is_multiple_of(precision)).then(|| seconds / precision)
}

/// The DAP-18 `CollectionJobReq` a DAP-09 `CollectionReq` stands for on `task`.
fn collection_job_req(
    task: &TaskParameters,
    req: dap09::CollectionReq,
) -> Result<CollectionJobReq, Error> {
    let precision = task.time_precision;
    let query = match req.query {
        dap09::Query::TimeInterval { batch_interval } => {
            let (Some(start), Some(duration)) = (
                units(batch_interval.start.0, precision),
                units(batch_interval.duration.0, precision),
            ) else {
                return Err(Error::dap(
                    DapProblemType::BatchInvalid,
                    Some(task.task_id),
                    "the batch interval's start and duration must be multiples of time_precision",
                ));
            };
            Query::TimeInterval {
                batch_interval: Interval {
                    start: Time(start),
                    duration: Duration(duration),
                },
            }
        }
        dap09::Query::CurrentBatch => Query::LeaderSelected,
        dap09::Query::ByBatchId { .. } => {
            return Err(Error::dap(
                DapProblemType::BatchInvalid,
                Some(task.task_id),
                "collecting a batch by its ID is not supported; ask for the current batch",
            ));
        }
    };
    Ok(CollectionJobReq {
        query,
        agg_param: req.agg_param,
        extensions: Vec::new(),
    })
}

impl Aggregator {
    /// `PUT /tasks/{task}/reports`: one DAP-09 report for a `dap-09` leader task, checked and
    /// stored like a DAP-18 upload. `Ok` once it is durably stored (or was already).
    pub async fn handle_dap09_upload(
        &self,
        task_id: &TaskId,
        body: &[u8],
        source: Option<std::net::IpAddr>,
    ) -> Result<(), Error> {
        let task = self.task_in_role(task_id).await?;
        if task.role != AggregatorRole::Leader {
            return Err(Error::dap(
                DapProblemType::UnrecognizedTask,
                Some(*task_id),
                "not a leader task",
            ));
        }
        require_dap09(&task)?;
        let report = dap09::Report::get_decoded(body)
            .map_err(|e| Error::invalid_message(task_id, format!("malformed report: {e}")))?;
        let time = report
            .metadata
            .time_in_precision_units(task.parameters.time_precision)
            .ok_or_else(|| {
                Error::invalid_message(
                    task_id,
                    "the report's time must be a multiple of the task's time_precision",
                )
            })?;
        let report = Report {
            metadata: ReportMetadata {
                id: report.metadata.id,
                time,
                public_extensions: Vec::new(),
            },
            public_share: report.public_share,
            leader_encrypted_input_share: report.leader_encrypted_input_share,
            helper_encrypted_input_share: report.helper_encrypted_input_share,
        };
        let errors = self
            .upload_reports(&task, std::slice::from_ref(&report), source)
            .await?;
        match errors
            .status
            .first()
            .and_then(|s| refusal(task_id, s.error))
        {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// `PUT /tasks/{task}/collection_jobs/{job}`: creates the DAP-09 collection job at the
    /// collector's ID. Repeating the same request is answered the same; another request under
    /// a live job's ID is refused.
    pub async fn handle_dap09_create_collection_job(
        &self,
        task_id: &TaskId,
        job_id: &CollectionJobId,
        auth: Option<&str>,
        body: &[u8],
    ) -> Result<(), Error> {
        let task = self.authorize_collector(task_id, auth).await?;
        require_dap09(&task)?;
        let req = dap09::CollectionReq::get_decoded(body).map_err(|e| {
            Error::invalid_message(task_id, format!("malformed collection request: {e}"))
        })?;
        let req = collection_job_req(&task.parameters, req)?;
        if req.query.batch_mode() != task.parameters.batch_mode {
            return Err(Error::invalid_message(
                task_id,
                "query type does not match the task",
            ));
        }
        let interval = match &req.query {
            Query::TimeInterval { batch_interval } => Some(*batch_interval),
            Query::LeaderSelected => None,
        };
        check_collection_query(
            task_id,
            &task.parameters.vdaf,
            &req.agg_param,
            interval.as_ref(),
        )?;
        let stored = req
            .get_encoded()
            .map_err(|e| Error::Internal(e.to_string()))?;
        let created = self
            .store_collection_job(&task, job_id, &stored, &req.agg_param, interval)
            .await?;
        if created {
            return Ok(());
        }
        match self
            .inner
            .datastore
            .get_collection_job(task_id, job_id.as_bytes())
            .await?
        {
            Some(job) if job.request == stored => Ok(()),
            _ => Err(Error::invalid_message(
                task_id,
                "a collection job with this ID exists for another query",
            )),
        }
    }

    /// `POST /tasks/{task}/collection_jobs/{job}`: the DAP-09 collector's poll.
    pub async fn handle_dap09_poll_collection_job(
        &self,
        task_id: &TaskId,
        job_id: &CollectionJobId,
        auth: Option<&str>,
    ) -> Result<Dap09Poll, Error> {
        let task = self.authorize_collector(task_id, auth).await?;
        require_dap09(&task)?;
        let job = self
            .inner
            .datastore
            .get_collection_job(task_id, job_id.as_bytes())
            .await?
            .ok_or(Error::NotFound)?;
        match job.state.as_str() {
            "finished" => {
                let resp = CollectionJobResp::get_decoded(job.result.as_deref().unwrap_or(&[]))
                    .map_err(|e| Error::Internal(format!("stored collection result: {e}")))?;
                let collection = dap09::Collection {
                    batch_id: job.batch_id.map(BatchId::from_bytes),
                    report_count: resp.report_count,
                    interval: task.parameters.interval_in_seconds(&resp.interval),
                    leader_encrypted_agg_share: resp.leader_encrypted_agg_share,
                    helper_encrypted_agg_share: resp.helper_encrypted_agg_share,
                };
                Ok(Dap09Poll::Finished(
                    collection
                        .get_encoded()
                        .map_err(|e| Error::Internal(e.to_string()))?,
                ))
            }
            "failed" => {
                let problem = job
                    .error
                    .as_deref()
                    .and_then(|t| {
                        DapProblemType::from_urn(&format!("{}{t}", DapProblemType::PREFIX))
                    })
                    .unwrap_or(DapProblemType::InvalidMessage);
                Err(Error::dap(problem, Some(*task_id), "the collection failed"))
            }
            "deleted" => Err(Error::NotFound),
            _ => Ok(Dap09Poll::Pending),
        }
    }

    /// `DELETE /tasks/{task}/collection_jobs/{job}` on a DAP-09 task.
    pub async fn handle_dap09_delete_collection_job(
        &self,
        task_id: &TaskId,
        job_id: &CollectionJobId,
        auth: Option<&str>,
    ) -> Result<(), Error> {
        let task = self.authorize_collector(task_id, auth).await?;
        require_dap09(&task)?;
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
}

/// DAP-09's `PrepareError` code for a DAP-18 report error.
fn prepare_error(e: ReportError) -> u8 {
    use dap09::prepare_error as p;
    match e {
        ReportError::BatchCollected => p::BATCH_COLLECTED,
        ReportError::ReportReplayed => p::REPORT_REPLAYED,
        ReportError::ReportDropped | ReportError::TaskNotStarted => p::REPORT_DROPPED,
        ReportError::HpkeUnknownConfigId | ReportError::OutdatedConfig => p::HPKE_UNKNOWN_CONFIG_ID,
        ReportError::HpkeDecryptError => p::HPKE_DECRYPT_ERROR,
        ReportError::VdafVerifyError => p::VDAF_PREP_ERROR,
        ReportError::TaskExpired => p::TASK_EXPIRED,
        ReportError::ReportTooEarly => p::REPORT_TOO_EARLY,
        _ => p::INVALID_MESSAGE,
    }
}

/// The DAP-18 report error for a DAP-09 `PrepareError` code.
fn report_error(code: u8) -> ReportError {
    use dap09::prepare_error as p;
    match code {
        p::BATCH_COLLECTED => ReportError::BatchCollected,
        p::REPORT_REPLAYED => ReportError::ReportReplayed,
        p::REPORT_DROPPED | p::BATCH_SATURATED => ReportError::ReportDropped,
        p::HPKE_UNKNOWN_CONFIG_ID => ReportError::HpkeUnknownConfigId,
        p::HPKE_DECRYPT_ERROR => ReportError::HpkeDecryptError,
        p::VDAF_PREP_ERROR => ReportError::VdafVerifyError,
        p::TASK_EXPIRED => ReportError::TaskExpired,
        p::REPORT_TOO_EARLY => ReportError::ReportTooEarly,
        _ => ReportError::InvalidMessage,
    }
}

fn internal(e: impl std::fmt::Display) -> Error {
    Error::Internal(e.to_string())
}

/// Leader: the DAP-09 `AggregationJobInitReq` for the DAP-18 one the driver built.
pub(super) fn init_req_to_dap09(task: &TaskParameters, body: &[u8]) -> Result<Vec<u8>, Error> {
    let req = AggregationJobInitReq::get_decoded(body).map_err(internal)?;
    let batch_id = req
        .extensions
        .iter()
        .find(|e| e.extension_type == Extension::LEADER_SELECTED_BATCH_ID)
        .map(|e| {
            <[u8; 32]>::try_from(e.extension_data.as_slice())
                .map(BatchId::from_bytes)
                .map_err(internal)
        })
        .transpose()?;
    dap09::AggregationJobInitReq {
        agg_param: req.agg_param,
        batch_id,
        prepare_inits: req
            .verify_inits
            .into_iter()
            .map(|v| dap09::PrepareInit {
                report_share: dap09::ReportShare {
                    metadata: dap09::ReportMetadata {
                        id: v.report_share.metadata.id,
                        time_seconds: task.seconds(v.report_share.metadata.time),
                    },
                    public_share: v.report_share.public_share,
                    encrypted_input_share: v.report_share.encrypted_input_share,
                },
                message: v.payload,
            })
            .collect(),
    }
    .get_encoded()
    .map_err(internal)
}

/// Leader: the DAP-18 `AggregationJobResp` a DAP-09 helper's answer stands for. Anything it
/// cannot read is an error of the helper's, which fails the attempt (retried later).
pub(super) fn resp_from_dap09(body: &[u8]) -> Result<Vec<u8>, Error> {
    let resp = dap09::AggregationJobResp::get_decoded(body)
        .map_err(|e| Error::Internal(format!("helper's DAP-09 aggregation job response: {e}")))?;
    AggregationJobResp {
        verify_resps: resp
            .prepare_resps
            .into_iter()
            .map(|p| VerifyResp {
                report_id: p.report_id,
                result: match p.result {
                    dap09::PrepareStepResult::Continue(m) => VerifyStepResult::Continue(m),
                    dap09::PrepareStepResult::Finished => VerifyStepResult::Finish,
                    dap09::PrepareStepResult::Reject(code) => {
                        VerifyStepResult::Reject(report_error(code))
                    }
                },
            })
            .collect(),
    }
    .get_encoded()
    .map_err(internal)
}

/// Leader: the DAP-09 `AggregateShareReq` for the DAP-18 one the collection driver built.
pub(super) fn share_req_to_dap09(task: &TaskParameters, body: &[u8]) -> Result<Vec<u8>, Error> {
    let req = AggregateShareReq::get_decoded(body).map_err(internal)?;
    let batch_selector = match req.batch_selector {
        BatchSelector::TimeInterval { batch_interval } => dap09::BatchSelector::TimeInterval {
            batch_interval: task.interval_in_seconds(&batch_interval),
        },
        BatchSelector::LeaderSelected { batch_id } => dap09::BatchSelector::FixedSize { batch_id },
    };
    dap09::AggregateShareReq {
        batch_selector,
        agg_param: req.collection_job_req.agg_param,
        report_count: req.report_count,
        checksum: req.checksum,
    }
    .get_encoded()
    .map_err(internal)
}

impl Aggregator {
    /// Helper: `PUT /tasks/{task}/aggregation_jobs/{job}` from a DAP-09 leader on a `dap-09`
    /// task. The request becomes the DAP-18 one and is prepared and committed synchronously
    /// (DAP-09 has no deferred answers) by the same code; the encoded DAP-09
    /// `AggregationJobResp` is returned. The job's identity is its content, as for DAP-18, so
    /// the leader's retry of the same request gets the same answer.
    pub async fn handle_dap09_aggregation_job_init(
        &self,
        task_id: &TaskId,
        auth: Option<&str>,
        body: &[u8],
    ) -> Result<Vec<u8>, Error> {
        let task = self.authorize_leader(task_id, auth).await?;
        require_dap09(&task)?;
        let req = dap09::AggregationJobInitReq::get_decoded(body).map_err(|e| {
            Error::invalid_message(task_id, format!("malformed aggregation job: {e}"))
        })?;
        let mut verify_inits = Vec::with_capacity(req.prepare_inits.len());
        for p in req.prepare_inits {
            let rs = p.report_share;
            let time = rs
                .metadata
                .time_in_precision_units(task.parameters.time_precision)
                .ok_or_else(|| {
                    Error::invalid_message(
                        task_id,
                        "a report's time is not a multiple of the task's time_precision",
                    )
                })?;
            verify_inits.push(VerifyInit {
                report_share: ReportShare {
                    metadata: ReportMetadata {
                        id: rs.metadata.id,
                        time,
                        public_extensions: Vec::new(),
                    },
                    public_share: rs.public_share,
                    encrypted_input_share: rs.encrypted_input_share,
                },
                payload: p.message,
            });
        }
        let extensions = req
            .batch_id
            .map(|b| Extension {
                extension_type: Extension::LEADER_SELECTED_BATCH_ID,
                extension_data: b.as_bytes().to_vec(),
            })
            .into_iter()
            .collect();
        let dap18 = AggregationJobInitReq {
            verification_key_id: 0,
            agg_param: req.agg_param,
            extensions,
            verify_inits,
        }
        .get_encoded()
        .map_err(internal)?;
        let resp = match self.init_helper_job(&task, &dap18, false).await?.1 {
            AggregationJobAnswer::Ready(resp) => resp,
            AggregationJobAnswer::Processing => {
                return Err(Error::Internal(
                    "a DAP-09 aggregation job must be answered synchronously".into(),
                ));
            }
        };
        let resp = AggregationJobResp::get_decoded(&resp).map_err(internal)?;
        dap09::AggregationJobResp {
            prepare_resps: resp
                .verify_resps
                .into_iter()
                .map(|v| dap09::PrepareResp {
                    report_id: v.report_id,
                    result: match v.result {
                        VerifyStepResult::Continue(m) => dap09::PrepareStepResult::Continue(m),
                        VerifyStepResult::Finish => dap09::PrepareStepResult::Finished,
                        VerifyStepResult::Reject(e) => {
                            dap09::PrepareStepResult::Reject(prepare_error(e))
                        }
                    },
                })
                .collect(),
        }
        .get_encoded()
        .map_err(internal)
    }

    /// Helper: `POST /tasks/{task}/aggregate_shares` of a DAP-09 `AggregateShareReq` on a
    /// `dap-09` task: converted and answered by the same code as DAP-18 (the share sealed
    /// under DAP-09's AAD). `AggregateShare` encodes the same in both drafts.
    pub async fn handle_dap09_aggregate_share(
        &self,
        task_id: &TaskId,
        auth: Option<&str>,
        body: &[u8],
    ) -> Result<Vec<u8>, Error> {
        let task = self.authorize_leader(task_id, auth).await?;
        require_dap09(&task)?;
        let req = dap09::AggregateShareReq::get_decoded(body).map_err(|e| {
            Error::invalid_message(task_id, format!("malformed aggregate share request: {e}"))
        })?;
        let precision = task.parameters.time_precision;
        let (query, batch_selector) = match req.batch_selector {
            dap09::BatchSelector::TimeInterval { batch_interval } => {
                let (Some(start), Some(duration)) = (
                    units(batch_interval.start.0, precision),
                    units(batch_interval.duration.0, precision),
                ) else {
                    return Err(Error::dap(
                        DapProblemType::BatchInvalid,
                        Some(*task_id),
                        "the batch interval's start and duration must be multiples of time_precision",
                    ));
                };
                let batch_interval = Interval {
                    start: Time(start),
                    duration: Duration(duration),
                };
                (
                    Query::TimeInterval { batch_interval },
                    BatchSelector::TimeInterval { batch_interval },
                )
            }
            dap09::BatchSelector::FixedSize { batch_id } => (
                Query::LeaderSelected,
                BatchSelector::LeaderSelected { batch_id },
            ),
        };
        let dap18 = AggregateShareReq {
            collection_job_req: CollectionJobReq {
                query,
                agg_param: req.agg_param,
                extensions: Vec::new(),
            },
            batch_selector,
            report_count: req.report_count,
            checksum: req.checksum,
        }
        .get_encoded()
        .map_err(internal)?;
        Ok(self.aggregate_share_for(&task, &dap18).await?.1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> TaskParameters {
        TaskParameters {
            task_id: TaskId::from_bytes([1; 32]),
            leader_endpoint: "https://l.example/".into(),
            helper_endpoint: "https://h.example/".into(),
            time_precision: 300,
            min_batch_size: 1,
            batch_mode: cairn_dap_messages::BatchMode::TimeInterval,
            vdaf: cairn_dap_core::VdafInstance::Prio3Count,
            task_info: "t".into(),
            task_interval: None,
            max_batch_size: None,
            differential_privacy: None,
            protocol: Protocol::Dap09,
        }
    }

    fn problem(e: Error) -> DapProblemType {
        match e {
            Error::Dap { problem, .. } => problem,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn dap09_queries_map_onto_dap18_requests() {
        let p = params();
        let ti = |start, duration| dap09::CollectionReq {
            query: dap09::Query::TimeInterval {
                batch_interval: Interval {
                    start: Time(start),
                    duration: Duration(duration),
                },
            },
            agg_param: Vec::new(),
        };
        let req = collection_job_req(&p, ti(600, 900)).unwrap();
        assert_eq!(
            req.query,
            Query::TimeInterval {
                batch_interval: Interval {
                    start: Time(2),
                    duration: Duration(3)
                }
            }
        );
        assert_eq!(
            problem(collection_job_req(&p, ti(601, 900)).unwrap_err()),
            DapProblemType::BatchInvalid
        );
        assert_eq!(
            problem(collection_job_req(&p, ti(600, 901)).unwrap_err()),
            DapProblemType::BatchInvalid
        );
        let current = dap09::CollectionReq {
            query: dap09::Query::CurrentBatch,
            agg_param: Vec::new(),
        };
        assert_eq!(
            collection_job_req(&p, current).unwrap().query,
            Query::LeaderSelected
        );
        let named = dap09::CollectionReq {
            query: dap09::Query::ByBatchId {
                batch_id: BatchId::from_bytes([3; 32]),
            },
            agg_param: Vec::new(),
        };
        assert_eq!(
            problem(collection_job_req(&p, named).unwrap_err()),
            DapProblemType::BatchInvalid
        );
    }

    #[test]
    fn refused_reports_become_dap09_problems() {
        let t = TaskId::from_bytes([1; 32]);
        assert!(refusal(&t, ReportError::ReportReplayed).is_none());
        assert_eq!(
            problem(refusal(&t, ReportError::OutdatedConfig).unwrap()),
            DapProblemType::OutdatedConfig
        );
        assert_eq!(
            problem(refusal(&t, ReportError::ReportTooEarly).unwrap()),
            DapProblemType::ReportTooEarly
        );
        for e in [
            ReportError::HpkeDecryptError,
            ReportError::BatchCollected,
            ReportError::ReportDropped,
            ReportError::InvalidMessage,
        ] {
            assert_eq!(
                problem(refusal(&t, e).unwrap()),
                DapProblemType::ReportRejected
            );
        }
    }
}
