//! The helper's answers to the requests on an aggregation job after initialization:
//! continuation (DAP-18 §4.5.4.2) and abandonment (§4.5.5, `DELETE`).
//!
//! Every VDAF Cairn runs is a one-round Prio3, so no job ever has a report awaiting
//! continuation: a continuation request is refused once it passes the checks §4.5.4.2 orders.

use super::Aggregator;
use super::helper_job::{AggregationJobAnswer, unrecognized_job};
use crate::error::Error;
use cairn_dap_messages::{
    AggregationJobContinueReq, AggregationJobId, DapProblemType, Decode, TaskId,
};

/// Why a decoded continuation is refused (the job's checks passed): step 0 is never a
/// continuation (`invalidMessage`); naming reports is `invalidMessage` too (none has a
/// verification state to continue); naming none is `stepMismatch` (the job has no step after
/// 0).
fn refuse_continuation(task_id: &TaskId, req: &AggregationJobContinueReq) -> Error {
    if req.step == 0 {
        return Error::invalid_message(task_id, "an aggregation job cannot continue to step 0");
    }
    if !req.verify_continues.is_empty() {
        return Error::invalid_message(
            task_id,
            "no report in this job awaits continuation (the VDAF verifies in one round)",
        );
    }
    Error::dap(
        DapProblemType::StepMismatch,
        Some(*task_id),
        format!("the job finished at step 0; there is no step {}", req.step),
    )
}

impl Aggregator {
    /// Handles an `AggregationJobContinueReq`: after the checks DAP-18 §4.5.4.2 orders (task,
    /// job, message), it is refused with `invalidMessage` or `stepMismatch`, as no report of a
    /// one-round job awaits continuation.
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
            .map_err(|e| Error::invalid_message(task_id, format!("malformed continuation: {e}")))?;
        Err(refuse_continuation(task_id, &req))
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_dap_messages::{ReportId, VerifyContinue};

    #[test]
    fn a_one_round_job_refuses_every_continuation() {
        let task_id = TaskId::from_bytes([1; 32]);
        let req = |step, reports: usize| AggregationJobContinueReq {
            step,
            verify_continues: (0..reports)
                .map(|i| VerifyContinue {
                    report_id: ReportId::from_bytes([u8::try_from(i).unwrap(); 16]),
                    payload: vec![1],
                })
                .collect(),
        };
        let problem = |r: &AggregationJobContinueReq| match refuse_continuation(&task_id, r) {
            Error::Dap { problem, .. } => problem,
            other => panic!("{other:?}"),
        };
        assert_eq!(problem(&req(0, 0)), DapProblemType::InvalidMessage);
        assert_eq!(problem(&req(0, 1)), DapProblemType::InvalidMessage);
        assert_eq!(problem(&req(1, 1)), DapProblemType::InvalidMessage);
        assert_eq!(problem(&req(1, 0)), DapProblemType::StepMismatch);
        assert_eq!(problem(&req(7, 0)), DapProblemType::StepMismatch);
    }
}
