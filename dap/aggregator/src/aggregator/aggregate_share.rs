//! Aggregate shares at the helper (DAP-18 §4.6.4): the batch the leader names is checked
//! against the collector's query and against what the helper aggregated ([`check_batch`],
//! pure), frozen (its buckets marked collected), noised if the task asks for differential
//! privacy, sealed to the collector and stored — all in one transaction, answered
//! synchronously. A retried request gets the stored answer, so repeating a request cannot
//! average the noise away.

use super::Aggregator;
use super::collection_request::{check_collection_extensions, check_collection_query};
use super::resource_ids::content_id;
use crate::datastore::{BatchAggregate, BatchScope};
use crate::error::Error;
use crate::task::AggregatorTask;
use cairn_dap_core::VdafInstance;
use cairn_dap_core::hpke::{self, Label};
use cairn_dap_messages::{
    AggregateShare, AggregateShareReq, BatchChecksum, BatchMode, BatchSelector, DapProblemType,
    Decode, Encode, Query, Role, TaskId,
};

/// The batch an aggregate-share request names, if it is one the collector's query allows in
/// the task's batch mode.
fn requested_scope(
    task_id: &TaskId,
    mode: BatchMode,
    vdaf: &VdafInstance,
    req: &AggregateShareReq,
) -> Result<BatchScope, Error> {
    let cjr = &req.collection_job_req;
    match (&cjr.query, &req.batch_selector) {
        (
            Query::TimeInterval { batch_interval: q },
            BatchSelector::TimeInterval { batch_interval: s },
        ) if mode == BatchMode::TimeInterval => {
            if !q.contains_interval(s) {
                return Err(Error::invalid_message(
                    task_id,
                    "batch selector outside the query",
                ));
            }
            check_collection_query(task_id, vdaf, &cjr.agg_param, Some(s))?;
            Ok(BatchScope::TimeInterval {
                start: s.start.0,
                end: s.end().0,
            })
        }
        (Query::LeaderSelected, BatchSelector::LeaderSelected { batch_id })
            if mode == BatchMode::LeaderSelected =>
        {
            check_collection_query(task_id, vdaf, &cjr.agg_param, None)?;
            Ok(BatchScope::LeaderSelected {
                batch_id: *batch_id.as_bytes(),
            })
        }
        _ => Err(Error::invalid_message(
            task_id,
            "batch mode does not match the task",
        )),
    }
}

/// Whether the helper may release its share of the batch it aggregated (`agg`): not collected
/// before (`batchOverlap`), aggregated under this parameter, big enough (`invalidBatchSize`),
/// and the same reports the leader counted (`batchMismatch`).
fn check_batch(
    agg: &BatchAggregate,
    min_batch_size: u64,
    report_count: u64,
    checksum: &BatchChecksum,
) -> Result<(), DapProblemType> {
    if agg.any_collected {
        return Err(DapProblemType::BatchOverlap);
    }
    if agg.agg_param_mismatch {
        return Err(DapProblemType::InvalidMessage);
    }
    if agg.report_count < min_batch_size {
        return Err(DapProblemType::InvalidBatchSize);
    }
    if agg.report_count != report_count || agg.checksum != *checksum {
        return Err(DapProblemType::BatchMismatch);
    }
    Ok(())
}

impl Aggregator {
    /// Handles an `AggregateShareReq` synchronously: checks the batch, marks it collected and
    /// returns the encrypted share (stored, so a retried request gets the same answer).
    pub async fn handle_aggregate_share(
        &self,
        task_id: &TaskId,
        auth: Option<&str>,
        body: &[u8],
    ) -> Result<([u8; 16], Vec<u8>), Error> {
        let task = self.authorize_leader(task_id, auth).await?;
        super::dap09::require_dap18(&task)?;
        self.aggregate_share_for(&task, body).await
    }

    /// Answers the `AggregateShareReq` `body` (DAP-18 encoding) of `task`, whose leader is
    /// authorized.
    pub(super) async fn aggregate_share_for(
        &self,
        task: &AggregatorTask,
        body: &[u8],
    ) -> Result<([u8; 16], Vec<u8>), Error> {
        let task_id = &task.parameters.task_id;
        let req = AggregateShareReq::get_decoded(body).map_err(|e| {
            Error::invalid_message(task_id, format!("malformed aggregate share request: {e}"))
        })?;
        let cjr = &req.collection_job_req;
        let vdaf = &task.parameters.vdaf;
        let scope = requested_scope(task_id, task.parameters.batch_mode, vdaf, &req)?;
        check_collection_extensions(task_id, &cjr.extensions)?;
        let share_id = content_id(task_id, body);
        let aad = task
            .parameters
            .aggregate_share_aad(cjr, Some(&req.batch_selector))
            .map_err(|e| Error::Internal(e.to_string()))?;
        let info = task
            .parameters
            .hpke_info(Label::AggregateShare, Role::Helper, Role::Collector);
        let engine = task.parameters.engine();
        let min = task.parameters.min_batch_size;
        // The builder runs inside the write that stores the answer, so it owns what it uses.
        let (report_count, checksum) = (req.report_count, req.checksum);
        let dp = task.parameters.differential_privacy.clone();
        let collector = task.collector_hpke_config.clone();
        let (noise_vdaf, agg_param) = (engine.clone(), cjr.agg_param.clone());
        let build = move |agg: &BatchAggregate| -> Result<Vec<u8>, DapProblemType> {
            check_batch(agg, min, report_count, &checksum)?;
            // Noise is drawn once: the sealed answer is stored, so a retried request gets the
            // same noisy share and repeating a request cannot average the noise away.
            let share = match &dp {
                Some(dp) => noise_vdaf
                    .add_noise(dp, &agg_param, &agg.aggregate_share, agg.report_count)
                    .map_err(|e| {
                        tracing::error!(error = %e, "adding differential-privacy noise failed");
                        DapProblemType::InvalidMessage
                    })?,
                None => agg.aggregate_share.clone(),
            };
            let ct = hpke::seal(&collector, &info, &share, &aad)
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
            .helper_collect_batch(
                task_id,
                &share_id,
                &engine,
                &cjr.agg_param,
                &scope,
                Box::new(build),
            )
            .await?
        {
            Ok(resp) => Ok((share_id, resp)),
            Err(p) => Err(Error::dap(p, Some(*task_id), "aggregate share refused")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_dap_messages::{BatchId, CollectionJobReq, Duration, Interval, Time};

    fn aggregate(report_count: u64, checksum: u8) -> BatchAggregate {
        BatchAggregate {
            aggregate_share: Vec::new(),
            report_count,
            checksum: BatchChecksum::from_bytes([checksum; 32]),
            time_range: None,
            any_collected: false,
            agg_param_mismatch: false,
        }
    }

    #[test]
    fn a_batch_is_released_only_once_and_only_as_the_leader_counted_it() {
        let sum = BatchChecksum::from_bytes([5; 32]);
        assert_eq!(check_batch(&aggregate(10, 5), 10, 10, &sum), Ok(()));
        let collected = BatchAggregate {
            any_collected: true,
            ..aggregate(10, 5)
        };
        let other_param = BatchAggregate {
            agg_param_mismatch: true,
            ..aggregate(10, 5)
        };
        let cases = [
            (collected, 10, DapProblemType::BatchOverlap),
            (other_param, 10, DapProblemType::InvalidMessage),
            (aggregate(9, 5), 9, DapProblemType::InvalidBatchSize),
            (aggregate(11, 5), 10, DapProblemType::BatchMismatch),
            (aggregate(10, 6), 10, DapProblemType::BatchMismatch),
        ];
        for (agg, leader_count, expected) in cases {
            assert_eq!(check_batch(&agg, 10, leader_count, &sum), Err(expected));
        }
    }

    #[test]
    fn the_batch_selector_must_fit_the_query_and_the_mode() {
        let t = TaskId::from_bytes([1; 32]);
        let vdaf = VdafInstance::Prio3Count;
        let interval = |start, duration| Interval {
            start: Time(start),
            duration: Duration(duration),
        };
        let req = |query, batch_selector| AggregateShareReq {
            collection_job_req: CollectionJobReq {
                query,
                agg_param: Vec::new(),
                extensions: Vec::new(),
            },
            batch_selector,
            report_count: 1,
            checksum: BatchChecksum::from_bytes([0; 32]),
        };
        let ti = |q, s| {
            req(
                Query::TimeInterval { batch_interval: q },
                BatchSelector::TimeInterval { batch_interval: s },
            )
        };
        let ls = req(
            Query::LeaderSelected,
            BatchSelector::LeaderSelected {
                batch_id: BatchId::from_bytes([2; 32]),
            },
        );
        let scope = |mode, r: &AggregateShareReq| requested_scope(&t, mode, &vdaf, r);
        assert_eq!(
            scope(
                BatchMode::TimeInterval,
                &ti(interval(10, 10), interval(12, 3))
            )
            .unwrap(),
            BatchScope::TimeInterval { start: 12, end: 15 }
        );
        assert_eq!(
            scope(BatchMode::LeaderSelected, &ls).unwrap(),
            BatchScope::LeaderSelected { batch_id: [2; 32] }
        );
        let problem = |r: Result<BatchScope, Error>| match r {
            Err(Error::Dap { problem, .. }) => problem,
            other => panic!("{other:?}"),
        };
        let outside = ti(interval(10, 10), interval(15, 10));
        assert_eq!(
            problem(scope(BatchMode::TimeInterval, &outside)),
            DapProblemType::InvalidMessage
        );
        let empty = ti(interval(10, 10), interval(12, 0));
        assert_eq!(
            problem(scope(BatchMode::TimeInterval, &empty)),
            DapProblemType::BatchInvalid
        );
        assert_eq!(
            problem(scope(
                BatchMode::LeaderSelected,
                &ti(interval(10, 10), interval(12, 3))
            )),
            DapProblemType::InvalidMessage
        );
        assert_eq!(
            problem(scope(BatchMode::TimeInterval, &ls)),
            DapProblemType::InvalidMessage
        );
    }
}
