//! Taskprov, in-band task provisioning (draft-ietf-ppm-dap-taskprov as Cairn maps it onto
//! DAP-18, see `cairn_dap_core::taskprov`): a request for a task this aggregator does not hold
//! may carry the task's configuration in the `dap-taskprov` header. An aggregator with a
//! taskprov peer configured opts in — creates the task, with the verification key derived from
//! the secret it shares with the peer — or opts out with `invalidTask`.
//!
//! - The leader reads the header on uploads; the helper on aggregation-job creation, after the
//!   leader's bearer token (the peer's) is checked, so only the peer makes it create tasks.
//! - The leader sends the header on every aggregation-job creation of a taskprov task.
//! - Opt-in needs: this aggregator's endpoint and the configured peer's in the right places, a
//!   minimum batch size at least the operator's floor, a task interval not yet over, and a VDAF,
//!   batch mode and extensions Cairn supports.
//! - An aggregator without a taskprov peer ignores the header, as the draft says.

use super::Aggregator;
use crate::datastore::DatastoreError;
use crate::error::Error;
use crate::task::{AggregatorRole, AggregatorTask, BearerToken, TokenHash};
use cairn_dap_core::taskprov::{self, TaskprovError};
use cairn_dap_messages::{DapProblemType, HpkeConfig, TaskId};

/// What an aggregator needs to take tasks advertised in band: the one peer it runs them with
/// and the secrets shared with it out of band.
#[derive(Clone)]
pub struct TaskprovPeer {
    /// This aggregator's DAP base URL, as advertised tasks name it.
    pub own_endpoint: String,
    /// The peer aggregator's DAP base URL.
    pub peer_endpoint: String,
    /// The 32-byte secret both aggregators derive verification keys from.
    pub verify_key_init: [u8; 32],
    /// The leader→helper bearer token: the leader sends it, the helper checks it.
    pub aggregator_auth_token: BearerToken,
    /// Where aggregate shares are encrypted to (the collector of every taskprov task).
    pub collector_hpke_config: HpkeConfig,
    /// Leader: the hash of the collector's bearer token.
    pub collector_auth_token_hash: Option<TokenHash>,
    /// The smallest minimum batch size this aggregator accepts.
    pub min_batch_size_floor: u64,
    /// The report expiry age given to tasks made this way (seconds; `None` keeps reports).
    pub report_expiry_age: Option<u64>,
}

impl std::fmt::Debug for TaskprovPeer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TaskprovPeer")
            .field("own_endpoint", &self.own_endpoint)
            .field("peer_endpoint", &self.peer_endpoint)
            .field("min_batch_size_floor", &self.min_batch_size_floor)
            .finish_non_exhaustive()
    }
}

/// URLs compared as tasks name them: a missing final `/` is the same base URL.
fn same_endpoint(a: &str, b: &str) -> bool {
    a.trim_end_matches('/') == b.trim_end_matches('/')
}

fn opt_out(task_id: &TaskId, why: impl Into<String>) -> Error {
    Error::dap(DapProblemType::InvalidTask, Some(*task_id), why)
}

impl Aggregator {
    /// Configures the taskprov peer (once, before serving).
    pub fn enable_taskprov(&self, peer: TaskprovPeer) -> Result<(), Error> {
        if peer.min_batch_size_floor == 0 {
            return Err(Error::BadRequest(
                "taskprov: min_batch_size_floor must be at least 1".into(),
            ));
        }
        if self.inner.role == AggregatorRole::Leader && peer.collector_auth_token_hash.is_none() {
            return Err(Error::BadRequest(
                "taskprov: a leader needs the collector's token".into(),
            ));
        }
        self.inner
            .taskprov
            .set(peer)
            .map_err(|_| Error::BadRequest("taskprov is configured already".into()))
    }

    /// The `dap-taskprov` header value to send with requests about `task`, if it was
    /// provisioned in band.
    pub(crate) fn taskprov_header(&self, task: &AggregatorTask) -> Option<String> {
        self.inner.taskprov.get()?;
        if !task.taskbound() {
            return None;
        }
        taskprov::header_value(&task.parameters).ok()
    }

    /// Handles a `dap-taskprov` header sent with a request for `task_id`: creates the task if
    /// this aggregator opts in, refuses with `invalidTask` if it opts out. Without a taskprov
    /// peer, or for a task held already, it does nothing. The helper calls it only after the
    /// leader's bearer token was checked against the peer's.
    pub async fn provision_in_band(&self, task_id: &TaskId, header: &[u8]) -> Result<(), Error> {
        let Some(peer) = self.inner.taskprov.get() else {
            return Ok(());
        };
        let advertised = taskprov::read_header(header, task_id).map_err(|e| match e {
            TaskprovError::Unsupported(_) => opt_out(task_id, e.to_string()),
            _ => Error::invalid_message(task_id, e.to_string()),
        })?;
        if self.inner.datastore.get_task(task_id).await?.is_some() {
            // The ID is the configuration's hash: the task held is this one.
            return Ok(());
        }
        let p = &advertised.parameters;
        let role = self.inner.role;
        let (own, other) = match role {
            AggregatorRole::Leader => (&p.leader_endpoint, &p.helper_endpoint),
            AggregatorRole::Helper => (&p.helper_endpoint, &p.leader_endpoint),
        };
        if !same_endpoint(own, &peer.own_endpoint) {
            return Err(opt_out(
                task_id,
                format!("the task names another {} endpoint", role.as_str()),
            ));
        }
        if !same_endpoint(other, &peer.peer_endpoint) {
            return Err(opt_out(
                task_id,
                "the task's other aggregator is not a taskprov peer of this one",
            ));
        }
        if p.min_batch_size < peer.min_batch_size_floor {
            return Err(opt_out(
                task_id,
                format!(
                    "a minimum batch size under {} is not private enough here",
                    peer.min_batch_size_floor
                ),
            ));
        }
        if let Some(interval) = p.task_interval {
            let end = interval.end().0.saturating_mul(p.time_precision);
            if self.inner.clock.now() >= end {
                return Err(opt_out(task_id, "the task has expired"));
            }
        }
        let leader = role == AggregatorRole::Leader;
        let task = AggregatorTask {
            parameters: advertised.parameters.clone(),
            role,
            vdaf_verify_key: taskprov::verify_key(&peer.verify_key_init, task_id),
            collector_hpke_config: peer.collector_hpke_config.clone(),
            aggregator_auth_token: leader.then(|| peer.aggregator_auth_token.clone()),
            aggregator_auth_token_hash: (!leader)
                .then(|| TokenHash::of(peer.aggregator_auth_token.expose())),
            collector_auth_token_hash: if leader {
                peer.collector_auth_token_hash.clone()
            } else {
                None
            },
            report_expiry_age: peer.report_expiry_age,
        };
        task.validate()
            .map_err(|e| opt_out(task_id, format!("the task is not valid here: {e}")))?;
        match self.inner.datastore.put_task(&task).await {
            // Another request provisioned it at the same moment.
            Ok(()) | Err(DatastoreError::Conflict(_)) => {}
            Err(e) => return Err(e.into()),
        }
        metrics::counter!("cairn_dap_taskprov_tasks_total", "role" => role.as_str()).increment(1);
        tracing::info!(task = %task_id, role = role.as_str(), "task provisioned in band");
        Ok(())
    }

    /// Helper: whether `auth` is the taskprov peer's token (checked before the header may
    /// create a task).
    pub(crate) fn is_taskprov_peer(&self, auth: Option<&str>) -> bool {
        match (self.inner.taskprov.get(), auth) {
            (Some(peer), Some(token)) => {
                TokenHash::of(peer.aggregator_auth_token.expose()).matches(token)
            }
            _ => false,
        }
    }
}
