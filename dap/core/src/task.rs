//! [`TaskParameters`]: what client, aggregators and collector agree on for a task, and the
//! DAP-18 bindings derived from it (`TaskConfiguration`, the VDAF context, the AADs).

use crate::hpke::DAP_VERSION_TAG;
use crate::vdaf::{DpStrategy, VdafError, VdafInstance};
use cairn_dap_messages::{
    AggregateShareAad, BatchMode, CollectionJobReq, Encode, Extension, InputShareAad, Interval,
    ReportMetadata, TaskConfiguration, TaskId, TimePrecision,
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
        self.task_configuration()?;
        Ok(())
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

    /// The encoded `InputShareAad` for a report.
    pub fn input_share_aad(
        &self,
        metadata: &ReportMetadata,
        public_share: &[u8],
    ) -> Result<Vec<u8>, TaskError> {
        InputShareAad {
            task_id: self.task_id,
            task_configuration: self.task_configuration()?,
            metadata: metadata.clone(),
            public_share: public_share.to_vec(),
        }
        .get_encoded()
        .map_err(|_| TaskError::Encode)
    }

    /// The encoded `AggregateShareAad` for a collection.
    pub fn aggregate_share_aad(&self, req: &CollectionJobReq) -> Result<Vec<u8>, TaskError> {
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
