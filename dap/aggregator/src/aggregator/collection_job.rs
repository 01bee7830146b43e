//! Collection jobs at the leader, as the collector sees them (DAP-18 §4.6.1 creation and
//! polling, §4.6.3 deletion). Creating a job validates the request and stores it; the
//! [`collection_job_driver`](super::collection_job_driver) does the work.

use super::Aggregator;
use super::collection_request::{check_collection_extensions, check_collection_query};
use super::resource_ids::{content_id, random16};
use crate::datastore::{BatchScope, CollectionJob, DatastoreError};
use crate::error::Error;
use crate::task::AggregatorTask;
use cairn_dap_messages::{
    CollectionJobId, CollectionJobReq, DapProblemType, Decode, Interval, Query, TaskId,
};

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

/// What the collector is told about a stored job; a deleted job is not found.
fn status_of(job: CollectionJob) -> Result<CollectionJobStatus, Error> {
    Ok(match job.state.as_str() {
        "finished" => CollectionJobStatus::Finished(job.result.unwrap_or_default()),
        "failed" => CollectionJobStatus::Failed(
            job.error
                .as_deref()
                .and_then(|t| DapProblemType::from_urn(&format!("{}{t}", DapProblemType::PREFIX)))
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

impl Aggregator {
    /// Handles a `CollectionJobReq`: validates it and creates the job, or finds the identical
    /// existing one (DAP-18 §4.6.1: byte-identical requests name the same live job). Returns
    /// the job's ID and whether this request created it. The job is then driven by
    /// [`Aggregator::run_collection_jobs_once`].
    pub async fn handle_create_collection_job(
        &self,
        task_id: &TaskId,
        auth: Option<&str>,
        body: &[u8],
    ) -> Result<(CollectionJobId, bool), Error> {
        let task = self.authorize_collector(task_id, auth).await?;
        super::dap09::require_dap18(&task)?;
        let req = CollectionJobReq::get_decoded(body).map_err(|e| {
            Error::invalid_message(task_id, format!("malformed collection job request: {e}"))
        })?;
        if req.query.batch_mode() != task.parameters.batch_mode {
            return Err(Error::invalid_message(
                task_id,
                "batch mode does not match the task",
            ));
        }
        check_collection_extensions(task_id, &req.extensions)?;
        let vdaf = &task.parameters.vdaf;
        let ds = &self.inner.datastore;
        let Query::TimeInterval { batch_interval } = req.query else {
            // Leader-selected: every query asks for "the next batch", so a byte-identical
            // request names the live job that already asks for it (§4.6.1); the collector
            // deletes a collected job to ask for another batch. The batch is chosen by the
            // driver.
            check_collection_query(task_id, vdaf, &req.agg_param, None)?;
            let fresh = CollectionJobId::from_bytes(random16());
            return Ok(ds
                .put_leader_selected_collection_job(task_id, &fresh, body)
                .await?);
        };
        check_collection_query(task_id, vdaf, &req.agg_param, Some(&batch_interval))?;
        let job_id = CollectionJobId::from_bytes(content_id(task_id, body));
        // A job the collector deleted, or that failed, does not count: the identical request
        // starts it afresh (or meets `batchOverlap` below, if that job had collected the batch).
        if ds
            .get_collection_job(task_id, job_id.as_bytes())
            .await?
            .is_some_and(|job| !matches!(job.state.as_str(), "deleted" | "failed"))
        {
            return Ok((job_id, false));
        }
        let created = self
            .store_collection_job(&task, &job_id, body, &req.agg_param, Some(batch_interval))
            .await?;
        Ok((job_id, created))
    }

    /// Stores the collection job `job_id` (`request`: an encoded DAP-18 `CollectionJobReq`) of
    /// `task`, unless a live job holds that ID (`Ok(false)`). A time-interval job (`interval`)
    /// that overlaps a collected batch or another live job's interval is `batchOverlap`.
    pub(super) async fn store_collection_job(
        &self,
        task: &AggregatorTask,
        job_id: &CollectionJobId,
        request: &[u8],
        agg_param: &[u8],
        interval: Option<Interval>,
    ) -> Result<bool, Error> {
        let task_id = &task.parameters.task_id;
        let ds = &self.inner.datastore;
        if let Some(i) = interval {
            let current = ds
                .aggregate_batch(
                    task_id,
                    &task.parameters.engine(),
                    agg_param,
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
        match ds
            .put_collection_job(
                task_id,
                job_id,
                request,
                interval.map(|i| (i.start.0, i.duration.0)),
            )
            .await
        {
            Err(DatastoreError::Conflict(_)) => Err(Error::dap(
                DapProblemType::BatchOverlap,
                Some(*task_id),
                "the interval overlaps another collection job",
            )),
            other => Ok(other?),
        }
    }

    /// The collection job's status.
    pub async fn handle_get_collection_job(
        &self,
        task_id: &TaskId,
        job_id: &CollectionJobId,
        auth: Option<&str>,
    ) -> Result<CollectionJobStatus, Error> {
        self.authorize_collector(task_id, auth).await?;
        let job = self
            .inner
            .datastore
            .get_collection_job(task_id, job_id.as_bytes())
            .await?
            .ok_or(Error::NotFound)?;
        status_of(job)
    }

    /// Abandons a collection job (`DELETE`).
    pub async fn handle_delete_collection_job(
        &self,
        task_id: &TaskId,
        job_id: &CollectionJobId,
        auth: Option<&str>,
    ) -> Result<(), Error> {
        self.authorize_collector(task_id, auth).await?;
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

    fn job(state: &str) -> CollectionJob {
        CollectionJob {
            request: Vec::new(),
            state: state.into(),
            wait_reason: "insufficient-reports".into(),
            report_count: 4,
            result: None,
            error: None,
            leader_aggregate_share: None,
            checksum: None,
            batch_id: None,
        }
    }

    #[test]
    fn the_collector_sees_each_stored_state() {
        let pending = |reason: &str| CollectionJobStatus::Pending {
            reason: reason.into(),
            report_count: 4,
        };
        assert_eq!(
            status_of(job("start")).unwrap(),
            pending("insufficient-reports")
        );
        assert_eq!(status_of(job("collecting")).unwrap(), pending("collecting"));
        let mut finished = job("finished");
        finished.result = Some(vec![1, 2]);
        assert_eq!(
            status_of(finished).unwrap(),
            CollectionJobStatus::Finished(vec![1, 2])
        );
        let mut failed = job("failed");
        failed.error = Some(DapProblemType::BatchOverlap.token().into());
        assert_eq!(
            status_of(failed).unwrap(),
            CollectionJobStatus::Failed(DapProblemType::BatchOverlap)
        );
        let mut unknown = job("failed");
        unknown.error = Some("noSuchProblem".into());
        assert_eq!(
            status_of(unknown).unwrap(),
            CollectionJobStatus::Failed(DapProblemType::InvalidMessage)
        );
        assert!(matches!(status_of(job("deleted")), Err(Error::NotFound)));
    }
}
