//! DAP collector: creates a collection job at the leader, polls it (reporting why it is not
//! ready yet), opens both encrypted aggregate shares and unshards the aggregate result. A
//! `dap-09` task is collected the DAP-09 way (`PUT` at the collector's job ID, `POST` to poll,
//! VDAF-08); everything else follows DAP-18.

use cairn_dap_client::{ClientError, status_error};
use cairn_dap_core::hpke::{HpkeApplicationInfo, Label};
use cairn_dap_core::{AggregateResult, HpkeKeypair, Protocol, TaskParameters};
use cairn_dap_messages::{
    BatchSelector, CollectionJobId, CollectionJobReq, CollectionJobResp, Decode, Encode, Interval,
    Query, Role, Time, dap09, media_type,
};
use serde::Serialize;
use std::time::Duration;
use thiserror::Error;

/// Why a collection failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum CollectorError {
    /// HTTP or DAP-level failure.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// The leader did not say where the collection job is.
    #[error("the leader sent no Location for the collection job")]
    NoLocation,
    /// The leader's `Location` is not a URI reference that resolves against the request URL.
    #[error("the leader sent an unusable Location for the collection job: {0:?}")]
    BadLocation(String),
    /// An aggregate share could not be decrypted.
    #[error(transparent)]
    Hpke(#[from] cairn_dap_core::HpkeError),
    /// Unsharding failed.
    #[error(transparent)]
    Vdaf(#[from] cairn_dap_core::VdafError),
    /// The task parameters are unusable.
    #[error(transparent)]
    Task(#[from] cairn_dap_core::TaskError),
    /// No randomness for a DAP-09 collection job ID.
    #[error("no randomness for a collection job ID")]
    Random,
    /// A DAP-09 leader answered a fixed-size query without naming the batch.
    #[error("the leader's collection names no batch for a fixed-size query")]
    NoBatch,
    /// Polling gave up before the job was ready.
    #[error("collection job still pending ({reason}, {report_count} reports aggregated)")]
    StillPending {
        /// The leader's last stated reason.
        reason: String,
        /// Reports aggregated so far.
        report_count: u64,
    },
}

impl From<reqwest::Error> for CollectorError {
    fn from(e: reqwest::Error) -> Self {
        CollectorError::Client(ClientError::Http(e))
    }
}

impl From<cairn_dap_messages::CodecError> for CollectorError {
    fn from(e: cairn_dap_messages::CodecError) -> Self {
        CollectorError::Client(ClientError::Codec(e))
    }
}

/// A finished collection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Collection {
    /// Reports in the batch.
    pub report_count: u64,
    /// Smallest interval containing the reports (time-precision units).
    pub interval: Interval,
    /// The aggregate.
    pub aggregate_result: AggregateResult,
}

/// One poll's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Poll {
    /// Not ready: `aggregating`, `insufficient-reports` or `collecting`.
    Pending {
        /// The leader's reason.
        reason: String,
        /// Reports aggregated so far.
        report_count: u64,
    },
    /// Ready.
    Ready(Collection),
}

/// A collection job at the leader.
#[derive(Debug, Clone)]
pub struct CollectionJob {
    /// The resource URL.
    pub url: String,
    /// The request that created it (bound into the aggregate-share AAD).
    pub request: CollectionJobReq,
}

/// A collector for one task.
#[derive(Debug, Clone)]
pub struct Collector {
    parameters: TaskParameters,
    keypair: HpkeKeypair,
    auth_token: String,
    http: reqwest::Client,
}

impl Collector {
    /// A collector holding the HPKE keypair the task's aggregators encrypt to, and its bearer
    /// token for the leader.
    pub fn new(
        parameters: TaskParameters,
        keypair: HpkeKeypair,
        auth_token: String,
        http: reqwest::Client,
    ) -> Collector {
        Collector {
            parameters,
            keypair,
            auth_token,
            http,
        }
    }

    /// Creates a collection job for `query` (Prio3's aggregation parameter is empty).
    pub async fn start(&self, query: Query) -> Result<CollectionJob, CollectorError> {
        let request = CollectionJobReq {
            query,
            agg_param: Vec::new(),
            extensions: Vec::new(),
        };
        if self.parameters.protocol == Protocol::Dap09 {
            return self.start_dap09(request).await;
        }
        let request_url = TaskParameters::url(
            &self.parameters.leader_endpoint,
            &format!("tasks/{}/collection_jobs", self.parameters.task_id),
        );
        let resp = self
            .http
            .post(&request_url)
            .header("content-type", media_type::COLLECTION_JOB_REQ)
            .bearer_auth(&self.auth_token)
            .body(request.get_encoded()?)
            .send()
            .await?;
        if !resp.status().is_success() {
            return Err(status_error(resp).await.into());
        }
        let location = resp
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .ok_or(CollectorError::NoLocation)?;
        let url = resolve_location(&request_url, location)?;
        Ok(CollectionJob { url, request })
    }

    /// DAP-09: the collector picks the job's ID and `PUT`s a `CollectionReq` there (times in
    /// seconds, leader-selected is "the current fixed-size batch").
    async fn start_dap09(
        &self,
        request: CollectionJobReq,
    ) -> Result<CollectionJob, CollectorError> {
        let p = &self.parameters;
        let query = match &request.query {
            Query::TimeInterval { batch_interval } => dap09::Query::TimeInterval {
                batch_interval: p.interval_in_seconds(batch_interval),
            },
            Query::LeaderSelected => dap09::Query::CurrentBatch,
        };
        let body = dap09::CollectionReq {
            query,
            agg_param: request.agg_param.clone(),
        }
        .get_encoded()?;
        let mut id = [0u8; 16];
        aws_lc_rs::rand::fill(&mut id).map_err(|_| CollectorError::Random)?;
        // The job ID is the collector's own (DAP-09 §4.6.1).
        let url = TaskParameters::url(
            &p.leader_endpoint,
            &format!(
                "tasks/{}/collection_jobs/{}",
                p.task_id,
                CollectionJobId::from_bytes(id)
            ),
        );
        let resp = self
            .http
            .put(&url)
            .header("content-type", dap09::media_type::COLLECT_REQ)
            .bearer_auth(&self.auth_token)
            .body(body)
            .send()
            .await?;
        if !resp.status().is_success() {
            return Err(status_error(resp).await.into());
        }
        Ok(CollectionJob { url, request })
    }

    /// DAP-09's poll: `POST` to the job; `202` is "not ready", `200` carries the `Collection`.
    async fn poll_dap09(&self, job: &CollectionJob) -> Result<Poll, CollectorError> {
        let resp = self
            .http
            .post(&job.url)
            .bearer_auth(&self.auth_token)
            .send()
            .await?;
        if !resp.status().is_success() {
            return Err(status_error(resp).await.into());
        }
        if resp.status().as_u16() == 202 {
            return Ok(Poll::Pending {
                reason: "pending".into(),
                report_count: 0,
            });
        }
        let body = dap09::Collection::get_decoded(&resp.bytes().await?)?;
        let p = &self.parameters;
        let batch = match (&job.request.query, body.batch_id) {
            (Query::TimeInterval { batch_interval }, _) => BatchSelector::TimeInterval {
                batch_interval: *batch_interval,
            },
            (Query::LeaderSelected, Some(batch_id)) => BatchSelector::LeaderSelected { batch_id },
            (Query::LeaderSelected, None) => return Err(CollectorError::NoBatch),
        };
        let aad = p.aggregate_share_aad(&job.request, Some(&batch))?;
        let open = |role: Role, ct| {
            let info = p.hpke_info(Label::AggregateShare, role, Role::Collector);
            self.keypair.open(&info, ct, &aad)
        };
        let leader = open(Role::Leader, &body.leader_encrypted_agg_share)?;
        let helper = open(Role::Helper, &body.helper_encrypted_agg_share)?;
        let aggregate_result =
            p.engine()
                .unshard(&job.request.agg_param, &leader, &helper, body.report_count)?;
        let precision = p.time_precision.max(1);
        Ok(Poll::Ready(Collection {
            report_count: body.report_count,
            interval: Interval {
                start: Time(body.interval.start.0 / precision),
                duration: cairn_dap_messages::Duration(body.interval.duration.0 / precision),
            },
            aggregate_result,
        }))
    }

    /// Abandons (or, once collected, releases) a collection job: `DELETE` (DAP-18 §4.6.3).
    pub async fn delete(&self, job: &CollectionJob) -> Result<(), CollectorError> {
        let resp = self
            .http
            .delete(&job.url)
            .bearer_auth(&self.auth_token)
            .send()
            .await?;
        if !resp.status().is_success() {
            return Err(status_error(resp).await.into());
        }
        Ok(())
    }

    /// Polls a collection job once. A collected leader-selected job is then deleted: the
    /// leader answers a byte-identical request with the live job that already asks for "the
    /// next batch" (DAP-18 §4.6.1), so the next [`Collector::start`] would otherwise name
    /// this batch again. If the delete fails the error is returned and polling again gives
    /// the same result.
    pub async fn poll(&self, job: &CollectionJob) -> Result<Poll, CollectorError> {
        if self.parameters.protocol == Protocol::Dap09 {
            return self.poll_dap09(job).await;
        }
        let resp = self
            .http
            .get(&job.url)
            .bearer_auth(&self.auth_token)
            .send()
            .await?;
        if !resp.status().is_success() {
            return Err(status_error(resp).await.into());
        }
        if resp.status().as_u16() == 202 {
            let header = |name: &str| {
                resp.headers()
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string)
            };
            return Ok(Poll::Pending {
                reason: header("cairn-collection-state").unwrap_or_else(|| "pending".into()),
                report_count: header("cairn-batch-report-count")
                    .and_then(|c| c.parse().ok())
                    .unwrap_or(0),
            });
        }
        let body = CollectionJobResp::get_decoded(&resp.bytes().await?)?;
        let aad = self.parameters.aggregate_share_aad(&job.request, None)?;
        let open = |role: Role, ct| {
            let info = HpkeApplicationInfo::new(Label::AggregateShare, role, Role::Collector);
            self.keypair.open(&info, ct, &aad)
        };
        let leader = open(Role::Leader, &body.leader_encrypted_agg_share)?;
        let helper = open(Role::Helper, &body.helper_encrypted_agg_share)?;
        let aggregate_result = self.parameters.vdaf.unshard(
            &job.request.agg_param,
            &leader,
            &helper,
            body.report_count,
        )?;
        if job.request.query == Query::LeaderSelected {
            self.delete(job).await?;
        }
        Ok(Poll::Ready(Collection {
            report_count: body.report_count,
            interval: body.interval,
            aggregate_result,
        }))
    }

    /// Starts a collection job and polls it up to `max_polls` times, `delay` apart.
    pub async fn collect(
        &self,
        query: Query,
        max_polls: u32,
        delay: Duration,
    ) -> Result<Collection, CollectorError> {
        let job = self.start(query).await?;
        let mut last = (String::from("pending"), 0);
        for _ in 0..max_polls {
            match self.poll(&job).await? {
                Poll::Ready(c) => return Ok(c),
                Poll::Pending {
                    reason,
                    report_count,
                } => last = (reason, report_count),
            }
            tokio::time::sleep(delay).await;
        }
        Err(CollectorError::StillPending {
            reason: last.0,
            report_count: last.1,
        })
    }
}

/// The absolute URL a `Location` header names: a URI reference resolved against the URL of
/// the request it answered (RFC 9110 §10.2.2, RFC 3986 §5), so a leader under a path prefix
/// keeps it whether it sends an absolute URL, a relative reference or an absolute path.
fn resolve_location(request_url: &str, location: &str) -> Result<String, CollectorError> {
    let bad = || CollectorError::BadLocation(location.to_string());
    let base = reqwest::Url::parse(request_url).map_err(|_| bad())?;
    let url = base.join(location).map_err(|_| bad())?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad());
    }
    Ok(url.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_resolve_against_the_request_url() {
        let req = "https://dap.example/prefix/tasks/T/collection_jobs";
        let cases = [
            // A relative reference keeps the prefix.
            (
                "collection_jobs/J",
                "https://dap.example/prefix/tasks/T/collection_jobs/J",
            ),
            // An absolute path replaces the whole path, prefix included, as RFC 3986 says.
            (
                "/prefix/tasks/T/collection_jobs/J",
                "https://dap.example/prefix/tasks/T/collection_jobs/J",
            ),
            (
                "/tasks/T/collection_jobs/J",
                "https://dap.example/tasks/T/collection_jobs/J",
            ),
            // An absolute URL is taken as is.
            ("https://other.example/x/J", "https://other.example/x/J"),
        ];
        for (location, want) in cases {
            assert_eq!(resolve_location(req, location).unwrap(), want, "{location}");
        }
        for bad in ["http://[::1", "ftp://dap.example/J", "javascript:alert(1)"] {
            assert!(
                matches!(
                    resolve_location(req, bad),
                    Err(CollectorError::BadLocation(_))
                ),
                "{bad}"
            );
        }
    }
}
