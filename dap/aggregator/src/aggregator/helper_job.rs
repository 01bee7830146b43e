//! The helper's aggregation job as the steps that touch it see it — initialization and its
//! poll (DAP-18 §4.5.3.2), continuation (§4.5.4.2) and deletion (§4.5.5): what the leader is
//! answered, and how a job named by the leader is found.

use super::Aggregator;
use crate::datastore::{HelperAggregationJob, HelperJobState};
use crate::error::Error;
use cairn_dap_messages::{AggregationJobId, DapProblemType, TaskId};

/// The `Retry-After` (seconds) of the helper's deferred aggregation-job answers.
pub const HELPER_RETRY_AFTER_SECS: u64 = 1;

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
    /// The answer a stored job gives: a deleted job is gone.
    pub(super) fn of(job: HelperAggregationJob) -> Result<AggregationJobAnswer, Error> {
        match job.state {
            HelperJobState::Processing => Ok(AggregationJobAnswer::Processing),
            HelperJobState::Finished => Ok(AggregationJobAnswer::Ready(job.response)),
            HelperJobState::Deleted => Err(Error::Gone),
        }
    }
}

/// `unrecognizedAggregationJob` about `task_id`.
pub(super) fn unrecognized_job(task_id: &TaskId) -> Error {
    Error::dap(
        DapProblemType::UnrecognizedAggregationJob,
        Some(*task_id),
        "unknown aggregation job",
    )
}

impl Aggregator {
    /// The helper's job, if it exists and was not deleted.
    pub(super) async fn helper_job(
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stored_job_answers_by_its_state() {
        let job = |state| HelperAggregationJob {
            state,
            response: vec![1, 2],
        };
        assert_eq!(
            AggregationJobAnswer::of(job(HelperJobState::Finished)).unwrap(),
            AggregationJobAnswer::Ready(vec![1, 2])
        );
        assert_eq!(
            AggregationJobAnswer::of(job(HelperJobState::Processing)).unwrap(),
            AggregationJobAnswer::Processing
        );
        assert!(matches!(
            AggregationJobAnswer::of(job(HelperJobState::Deleted)),
            Err(Error::Gone)
        ));
    }
}
