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
use crate::datastore::{BatchScope, DatastoreError};
use crate::error::Error;
use crate::task::{AggregatorRole, AggregatorTask};
use cairn_dap_core::{Protocol, TaskParameters};
use cairn_dap_messages::{
    BatchId, CollectionJobId, CollectionJobReq, CollectionJobResp, DapProblemType, Decode,
    Duration, Encode, Interval, Query, Report, ReportError, ReportMetadata, TaskId, Time, dap09,
    media_type,
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
fn require_dap09(task: &AggregatorTask) -> Result<(), Error> {
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
        let ds = &self.inner.datastore;
        if let Some(i) = interval {
            let current = ds
                .aggregate_batch(
                    task_id,
                    &task.parameters.engine(),
                    &req.agg_param,
                    &BatchScope::TimeInterval {
                        start: i.start.0,
                        end: i.end().0,
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
        }
        let created = match ds
            .put_collection_job(
                task_id,
                job_id,
                &stored,
                interval.map(|i| (i.start.0, i.duration.0)),
            )
            .await
        {
            Err(DatastoreError::Conflict(_)) => {
                return Err(Error::dap(
                    DapProblemType::BatchOverlap,
                    Some(*task_id),
                    "the interval overlaps another collection job",
                ));
            }
            other => other?,
        };
        if created {
            return Ok(());
        }
        match ds.get_collection_job(task_id, job_id.as_bytes()).await? {
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
