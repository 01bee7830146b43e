//! The leader's collection-job driver (DAP-18 §4.6: the batch is frozen, the helper's share
//! obtained per §4.6.4 and the result finalized per §4.6.6). For each job it leases it waits
//! until the batch is ready (all its reports aggregated, at least `min_batch_size` of them),
//! freezes it — its buckets are marked collected in the same transaction that stores the
//! leader's share — asks the helper for its aggregate share, adds the leader's noise if the
//! task asks for differential privacy, seals the leader's share to the collector and stores
//! the result.
//!
//! Crash safety: once frozen the batch never changes, so a driver that retries after the
//! helper call failed re-sums it and gets exactly what was stored; the helper answers a
//! repeated aggregate-share request with its stored answer.

use super::Aggregator;
use super::resource_ids::random16;
use crate::datastore::{BatchScope, CollectionReadiness, Lease};
use crate::error::Error;
use cairn_dap_core::hpke::{self, Label};
use cairn_dap_messages::{
    AggregateShare, AggregateShareReq, BatchId, BatchSelector, CollectionJobReq, CollectionJobResp,
    DapProblemType, Decode, Duration, Encode, Interval, Query, Role, Time, media_type,
};

/// The batch a job in `collecting` froze, from its query (and, leader-selected, the batch the
/// leader chose for it).
fn frozen_scope(query: &Query, batch_id: Option<[u8; 32]>) -> Result<BatchScope, Error> {
    match (query, batch_id) {
        (Query::TimeInterval { batch_interval }, _) => Ok(BatchScope::TimeInterval {
            start: batch_interval.start.0,
            end: batch_interval.end().0,
        }),
        (Query::LeaderSelected, Some(batch_id)) => Ok(BatchScope::LeaderSelected { batch_id }),
        (Query::LeaderSelected, None) => {
            Err(Error::Internal("collecting job without a batch".into()))
        }
    }
}

/// How the aggregate-share request names the batch.
fn batch_selector(query: &Query, scope: &BatchScope) -> Result<BatchSelector, Error> {
    match (query, scope) {
        (Query::TimeInterval { batch_interval }, _) => Ok(BatchSelector::TimeInterval {
            batch_interval: *batch_interval,
        }),
        (_, BatchScope::LeaderSelected { batch_id }) => Ok(BatchSelector::LeaderSelected {
            batch_id: BatchId::from_bytes(*batch_id),
        }),
        _ => Err(Error::Internal(
            "batch scope does not match the query".into(),
        )),
    }
}

/// The interval a collection result reports: from the batch's first to its last report time.
fn result_interval((first, last): (u64, u64)) -> Interval {
    Interval {
        start: Time(first),
        duration: Duration(last.saturating_sub(first).saturating_add(1)),
    }
}

impl Aggregator {
    /// Leases and advances every due collection job once. Returns how many finished or failed.
    pub async fn run_collection_jobs_once(&self) -> Result<usize, Error> {
        let now = self.inner.clock.now();
        let leases = self
            .inner
            .datastore
            .acquire_collection_jobs(now, self.inner.params.lease_secs, 100, random16)
            .await?;
        let mut done = 0;
        for lease in leases {
            match self.step_collection_job(&lease).await {
                Ok(true) => done += 1,
                Ok(false) => {}
                Err(e) => {
                    metrics::counter!("cairn_dap_job_step_failures_total", "job" => "collection")
                        .increment(1);
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

    /// Advances one leased collection job. Returns whether it finished or failed.
    async fn step_collection_job(&self, lease: &Lease) -> Result<bool, Error> {
        let ds = &self.inner.datastore;
        let task = self.task_in_role(&lease.task_id).await?;
        let job = ds
            .get_collection_job(&lease.task_id, &lease.job_id)
            .await?
            .ok_or(Error::NotFound)?;
        let req = CollectionJobReq::get_decoded(&job.request)
            .map_err(|e| Error::Internal(e.to_string()))?;
        let engine = task.parameters.engine();
        let vdaf = &engine;
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
            let scope = frozen_scope(&req.query, job.batch_id)?;
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
        let selector = batch_selector(&req.query, &scope)?;
        let share_req = AggregateShareReq {
            collection_job_req: req.clone(),
            batch_selector: selector.clone(),
            report_count: count,
            checksum,
        }
        .get_encoded()
        .map_err(|e| Error::Internal(e.to_string()))?;
        let url = cairn_dap_core::TaskParameters::url(
            &task.parameters.helper_endpoint,
            &format!("tasks/{}/aggregate_shares", lease.task_id),
        );
        let (content_type, share_req) = match task.parameters.protocol {
            cairn_dap_core::Protocol::Dap09 => (
                cairn_dap_messages::dap09::media_type::AGGREGATE_SHARE_REQ,
                super::dap09::share_req_to_dap09(&task.parameters, &share_req)?,
            ),
            cairn_dap_core::Protocol::Dap18 => (media_type::AGGREGATE_SHARE_REQ, share_req),
        };
        let helper_share = match self
            .post_to_helper(&task, &url, content_type, share_req)
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
            .aggregate_share_aad(&req, Some(&selector))
            .map_err(|e| Error::Internal(e.to_string()))?;
        let info = task
            .parameters
            .hpke_info(Label::AggregateShare, Role::Leader, Role::Collector);
        let leader_ct = hpke::seal(&task.collector_hpke_config, &info, &share, &aad)
            .map_err(|e| Error::Internal(e.to_string()))?;
        let result = CollectionJobResp {
            report_count: count,
            interval: result_interval(range),
            leader_encrypted_agg_share: leader_ct,
            helper_encrypted_agg_share: helper_share.encrypted_aggregate_share,
        }
        .get_encoded()
        .map_err(|e| Error::Internal(e.to_string()))?;
        ds.finish_collection_job(lease, Ok(result)).await?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frozen_batch_is_named_the_way_its_query_names_it() {
        let batch_interval = Interval {
            start: Time(10),
            duration: Duration(5),
        };
        let ti = Query::TimeInterval { batch_interval };
        let scope = frozen_scope(&ti, None).unwrap();
        assert_eq!(scope, BatchScope::TimeInterval { start: 10, end: 15 });
        assert_eq!(
            batch_selector(&ti, &scope).unwrap(),
            BatchSelector::TimeInterval { batch_interval }
        );
        let ls = Query::LeaderSelected;
        let scope = frozen_scope(&ls, Some([4; 32])).unwrap();
        assert_eq!(scope, BatchScope::LeaderSelected { batch_id: [4; 32] });
        assert_eq!(
            batch_selector(&ls, &scope).unwrap(),
            BatchSelector::LeaderSelected {
                batch_id: BatchId::from_bytes([4; 32])
            }
        );
        assert!(matches!(frozen_scope(&ls, None), Err(Error::Internal(_))));
        assert!(matches!(
            batch_selector(&ls, &BatchScope::TimeInterval { start: 1, end: 2 }),
            Err(Error::Internal(_))
        ));
    }

    #[test]
    fn the_result_interval_spans_the_reports_collected() {
        assert_eq!(
            result_interval((10, 12)),
            Interval {
                start: Time(10),
                duration: Duration(3)
            }
        );
        assert_eq!(result_interval((7, 7)).duration, Duration(1));
        assert_eq!(result_interval((0, u64::MAX)).duration, Duration(u64::MAX));
    }
}
