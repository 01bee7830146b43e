//! [`TaskParameters`]: what client, aggregators and collector agree on for a task, and the
//! DAP-18 bindings derived from it (`TaskConfiguration`, the VDAF context, the AADs).

use crate::hpke::{DAP_VERSION_TAG, HpkeApplicationInfo, Label};
use crate::vdaf::{DpStrategy, VdafError, VdafInstance};
use crate::vdaf_engine::VdafEngine;
use cairn_dap_messages::{
    AggregateShareAad, BatchMode, BatchSelector, CollectionJobReq, Duration, Encode, Extension,
    InputShareAad, Interval, ReportMetadata, Role, TaskConfiguration, TaskId, Time, TimePrecision,
    dap09,
};
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Why task parameters are unusable.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum TaskError {
    /// `time_precision` is zero.
    #[error("time_precision must be positive")]
    TimePrecision,
    /// `min_batch_size` is zero.
    #[error("min_batch_size must be positive")]
    MinBatchSize,
    /// An endpoint is not an absolute http(s) URL.
    #[error("{0} must be an http:// or https:// URL")]
    Endpoint(&'static str),
    /// `task_info` is empty or longer than 255 bytes.
    #[error("task_info must be 1 to 255 bytes")]
    TaskInfo,
    /// `max_batch_size` is set but smaller than `min_batch_size`, or set for a time-interval
    /// task.
    #[error("max_batch_size must be at least min_batch_size, and only for leader_selected tasks")]
    MaxBatchSize,
    /// The VDAF parameters are invalid.
    #[error(transparent)]
    Vdaf(#[from] VdafError),
    /// A binding could not be encoded.
    #[error("cannot encode the task configuration")]
    Encode,
    /// The task speaks DAP-09 and asks for something DAP-09 (or VDAF-08) does not have.
    #[error("a dap-09 task cannot have {0}")]
    Dap09(&'static str),
}

/// The version of DAP a task speaks, fixed when the task is created. `dap-18` is Cairn's own;
/// `dap-09` is what the clients deployed today speak (`janus_client` 0.7, `@divviup/dap` 0.9):
/// the HTTP edge, the HPKE labels, the AADs and the VDAF (VDAF-08) follow it, and everything
/// inside the aggregator is shared.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Protocol {
    /// draft-ietf-ppm-dap-18 with VDAF-18.
    #[default]
    #[serde(rename = "dap-18")]
    Dap18,
    /// draft-ietf-ppm-dap-09 with VDAF-08.
    #[serde(rename = "dap-09")]
    Dap09,
}

impl Protocol {
    /// `dap-18` or `dap-09`.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Dap18 => DAP_VERSION_TAG,
            Protocol::Dap09 => dap09::PROTOCOL,
        }
    }

    fn is_dap18(&self) -> bool {
        *self == Protocol::Dap18
    }
}

impl std::fmt::Display for Protocol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Protocol {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "dap-18" => Ok(Protocol::Dap18),
            "dap-09" => Ok(Protocol::Dap09),
            other => Err(format!("unknown protocol {other:?} (dap-18 or dap-09)")),
        }
    }
}

/// The public parameters of a task, shared by every participant. JSON field names are stable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskParameters {
    /// The task's ID.
    pub task_id: TaskId,
    /// The leader's API base URL (resources are relative to it).
    pub leader_endpoint: String,
    /// The helper's API base URL.
    pub helper_endpoint: String,
    /// Seconds per DAP time unit.
    pub time_precision: u64,
    /// Smallest collectable batch.
    pub min_batch_size: u64,
    /// How reports are batched.
    pub batch_mode: BatchMode,
    /// The VDAF.
    pub vdaf: VdafInstance,
    /// Distinguishes otherwise identical tasks; 1 to 255 bytes.
    #[serde(default = "default_task_info")]
    pub task_info: String,
    /// If set, reports outside this interval (in time-precision units) are refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_interval: Option<Interval>,
    /// Leader-selected tasks: the most reports the leader puts in one batch (defaults to
    /// `min_batch_size`). A leader-local setting, not part of the `TaskConfiguration`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_batch_size: Option<u64>,
    /// Noise each aggregator adds to its aggregate share (Prio3Histogram and Prio3SumVec). An
    /// aggregator-local setting, not part of the `TaskConfiguration`; clients ignore it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub differential_privacy: Option<DpStrategy>,
    /// The DAP version the task speaks (`dap-18` when absent).
    #[serde(default, skip_serializing_if = "Protocol::is_dap18")]
    pub protocol: Protocol,
}

fn default_task_info() -> String {
    "cairn".to_string()
}

impl TaskParameters {
    /// Checks the parameters.
    pub fn validate(&self) -> Result<(), TaskError> {
        if self.time_precision == 0 {
            return Err(TaskError::TimePrecision);
        }
        if self.min_batch_size == 0 {
            return Err(TaskError::MinBatchSize);
        }
        for (name, url) in [
            ("leader_endpoint", &self.leader_endpoint),
            ("helper_endpoint", &self.helper_endpoint),
        ] {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(TaskError::Endpoint(name));
            }
        }
        if let Some(max) = self.max_batch_size
            && (max < self.min_batch_size || self.batch_mode != BatchMode::LeaderSelected)
        {
            return Err(TaskError::MaxBatchSize);
        }
        if self.task_info.is_empty() || self.task_info.len() > 255 {
            return Err(TaskError::TaskInfo);
        }
        self.vdaf.validate()?;
        if let Some(dp) = &self.differential_privacy {
            self.vdaf.validate_dp(dp)?;
        }
        if self.protocol == Protocol::Dap09 {
            if self.differential_privacy.is_some() {
                return Err(TaskError::Dap09(
                    "differential_privacy (VDAF-08 has no noise)",
                ));
            }
            crate::vdaf08::validate(&self.vdaf)?;
        }
        self.task_configuration()?;
        Ok(())
    }

    /// The task's VDAF as its protocol runs it: VDAF-18 under the task's context for `dap-18`,
    /// VDAF-08 for `dap-09`.
    pub fn engine(&self) -> VdafEngine {
        VdafEngine::new(self.vdaf.clone(), self.protocol, self.vdaf_ctx())
    }

    /// The HPKE application info for `label` from `sender` to `recipient`, labelled with the
    /// task's protocol.
    pub fn hpke_info(&self, label: Label, sender: Role, recipient: Role) -> HpkeApplicationInfo {
        HpkeApplicationInfo::for_protocol(self.protocol.as_str(), label, sender, recipient)
    }

    /// A time in the task's precision units as seconds (DAP-09's unit on the wire).
    pub fn seconds(&self, t: Time) -> u64 {
        t.0.saturating_mul(self.time_precision)
    }

    /// An interval in precision units as seconds.
    pub fn interval_in_seconds(&self, i: &Interval) -> Interval {
        Interval {
            start: Time(self.seconds(i.start)),
            duration: Duration(i.duration.0.saturating_mul(self.time_precision)),
        }
    }

    /// The largest batch the leader fills in leader-selected mode.
    pub fn effective_max_batch_size(&self) -> u64 {
        self.max_batch_size.unwrap_or(self.min_batch_size)
    }

    /// The time precision.
    pub fn precision(&self) -> TimePrecision {
        TimePrecision(self.time_precision)
    }

    /// The `TaskConfiguration` bound into every AAD.
    pub fn task_configuration(&self) -> Result<TaskConfiguration, TaskError> {
        let mut extensions = Vec::new();
        if let Some(interval) = &self.task_interval {
            extensions.push(Extension {
                extension_type: Extension::TASK_INTERVAL,
                extension_data: interval.get_encoded().map_err(|_| TaskError::Encode)?,
            });
        }
        Ok(TaskConfiguration {
            task_info: self.task_info.as_bytes().to_vec(),
            leader_aggregator_endpoint: self.leader_endpoint.as_bytes().to_vec(),
            helper_aggregator_endpoint: self.helper_endpoint.as_bytes().to_vec(),
            time_precision: self.precision(),
            min_batch_size: self.min_batch_size,
            batch_mode: self.batch_mode,
            batch_config: Vec::new(),
            vdaf_type: self.vdaf.vdaf_type(),
            vdaf_configuration: self.vdaf.vdaf_configuration(),
            extensions,
        })
    }

    /// The VDAF application context: `"dap-18" || task_id`.
    pub fn vdaf_ctx(&self) -> Vec<u8> {
        let mut ctx = DAP_VERSION_TAG.as_bytes().to_vec();
        ctx.extend_from_slice(self.task_id.as_bytes());
        ctx
    }

    /// The encoded `InputShareAad` for a report, in the task's protocol (DAP-09's binds the
    /// time in seconds and no `TaskConfiguration`).
    pub fn input_share_aad(
        &self,
        metadata: &ReportMetadata,
        public_share: &[u8],
    ) -> Result<Vec<u8>, TaskError> {
        if self.protocol == Protocol::Dap09 {
            return dap09::InputShareAad {
                task_id: self.task_id,
                metadata: dap09::ReportMetadata {
                    id: metadata.id,
                    time_seconds: self.seconds(metadata.time),
                },
                public_share: public_share.to_vec(),
            }
            .get_encoded()
            .map_err(|_| TaskError::Encode);
        }
        InputShareAad {
            task_id: self.task_id,
            task_configuration: self.task_configuration()?,
            metadata: metadata.clone(),
            public_share: public_share.to_vec(),
        }
        .get_encoded()
        .map_err(|_| TaskError::Encode)
    }

    /// The encoded `AggregateShareAad` for a collection of the batch `batch`, in the task's
    /// protocol: DAP-18 binds the collector's request (and `batch` may be `None`), DAP-09 the
    /// aggregation parameter and the batch, which it needs.
    pub fn aggregate_share_aad(
        &self,
        req: &CollectionJobReq,
        batch: Option<&BatchSelector>,
    ) -> Result<Vec<u8>, TaskError> {
        if self.protocol == Protocol::Dap09 {
            let batch_selector =
                match batch.ok_or(TaskError::Dap09("an aggregate share without its batch"))? {
                    BatchSelector::TimeInterval { batch_interval } => {
                        dap09::BatchSelector::TimeInterval {
                            batch_interval: self.interval_in_seconds(batch_interval),
                        }
                    }
                    BatchSelector::LeaderSelected { batch_id } => dap09::BatchSelector::FixedSize {
                        batch_id: *batch_id,
                    },
                };
            return dap09::AggregateShareAad {
                task_id: self.task_id,
                agg_param: req.agg_param.clone(),
                batch_selector,
            }
            .get_encoded()
            .map_err(|_| TaskError::Encode);
        }
        AggregateShareAad {
            task_id: self.task_id,
            task_configuration: self.task_configuration()?,
            collection_job_req: req.clone(),
        }
        .get_encoded()
        .map_err(|_| TaskError::Encode)
    }

    /// `base` joined with `path` (no leading slash), tolerating a missing trailing slash.
    pub fn url(base: &str, path: &str) -> String {
        if base.ends_with('/') {
            format!("{base}{path}")
        } else {
            format!("{base}/{path}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(batch_mode: BatchMode, max_batch_size: Option<u64>) -> TaskParameters {
        TaskParameters {
            task_id: TaskId::from_bytes([1; 32]),
            leader_endpoint: "https://leader.example/".into(),
            helper_endpoint: "https://helper.example/".into(),
            time_precision: 3600,
            min_batch_size: 10,
            batch_mode,
            vdaf: VdafInstance::Prio3Count,
            task_info: "t".into(),
            task_interval: None,
            max_batch_size,
            differential_privacy: None,
            protocol: Protocol::Dap18,
        }
    }

    #[test]
    fn max_batch_size_is_for_leader_selected_tasks_and_at_least_min() {
        assert!(params(BatchMode::LeaderSelected, None).validate().is_ok());
        assert!(
            params(BatchMode::LeaderSelected, Some(10))
                .validate()
                .is_ok()
        );
        assert!(matches!(
            params(BatchMode::LeaderSelected, Some(9)).validate(),
            Err(TaskError::MaxBatchSize)
        ));
        assert!(matches!(
            params(BatchMode::TimeInterval, Some(20)).validate(),
            Err(TaskError::MaxBatchSize)
        ));
        assert_eq!(
            params(BatchMode::LeaderSelected, None).effective_max_batch_size(),
            10
        );
    }

    #[test]
    fn max_batch_size_is_not_bound_into_the_task_configuration() {
        // Only the leader uses it, so the client's and helper's AADs must not depend on it.
        let a = params(BatchMode::LeaderSelected, None).task_configuration();
        let b = params(BatchMode::LeaderSelected, Some(50)).task_configuration();
        assert_eq!(a.unwrap(), b.unwrap());
    }
}
