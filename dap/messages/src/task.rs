//! `TaskConfiguration`, bound into the AAD of input and aggregate shares, and `BatchMode`.

use crate::codec::{CodecError, Decode, Encode, LengthPrefix, Reader, put_items, put_opaque};
use crate::time::{Interval, TimePrecision};
use serde::{Deserialize, Serialize};

/// `BatchMode`: how reports are grouped into batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum BatchMode {
    /// `time_interval(1)`: batches are intervals of report time.
    TimeInterval,
    /// `leader_selected(2)`: the leader assigns reports to batches it names.
    LeaderSelected,
}

impl BatchMode {
    /// The codepoint.
    pub fn code(self) -> u8 {
        match self {
            BatchMode::TimeInterval => 1,
            BatchMode::LeaderSelected => 2,
        }
    }

    /// The mode with codepoint `code`.
    pub fn from_code(code: u8) -> Result<BatchMode, CodecError> {
        match code {
            1 => Ok(BatchMode::TimeInterval),
            2 => Ok(BatchMode::LeaderSelected),
            v => Err(CodecError::UnknownValue {
                field: "BatchMode",
                value: u64::from(v),
            }),
        }
    }
}

impl Encode for BatchMode {
    fn encode(&self, out: &mut Vec<u8>) -> Result<(), CodecError> {
        self.code().encode(out)
    }
}

impl Decode for BatchMode {
    fn decode(r: &mut Reader<'_>) -> Result<Self, CodecError> {
        BatchMode::from_code(r.u8()?)
    }
}

/// A type-length-value extension, the shape shared by report, task, aggregation-job and
/// collection-job extensions: `struct { uint16 extension_type; opaque extension_data<0..2^16-1>; }`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Extension {
    /// The extension's codepoint in its registry.
    pub extension_type: u16,
    /// The extension's encoded body.
    pub extension_data: Vec<u8>,
}

impl Extension {
    /// Task extension `task_interval(1)`.
    pub const TASK_INTERVAL: u16 = 1;
    /// Aggregation job extension `leader_selected_batch_id(1)`.
    pub const LEADER_SELECTED_BATCH_ID: u16 = 1;
}

impl Encode for Extension {
    fn encode(&self, out: &mut Vec<u8>) -> Result<(), CodecError> {
        self.extension_type.encode(out)?;
        put_opaque(
            out,
            LengthPrefix::U16,
            0,
            &self.extension_data,
            "extension_data",
        )
    }
}

impl Decode for Extension {
    fn decode(r: &mut Reader<'_>) -> Result<Self, CodecError> {
        Ok(Extension {
            extension_type: r.u16()?,
            extension_data: r.opaque(LengthPrefix::U16, 0, "extension_data")?,
        })
    }
}

/// Whether `extensions` are in strictly increasing order of type, as DAP-18 requires of every
/// extension list.
pub fn extensions_strictly_increasing(extensions: &[Extension]) -> bool {
    extensions
        .windows(2)
        .all(|w| w[0].extension_type < w[1].extension_type)
}

/// `TaskConfiguration` (DAP-18 §4.2): the task parameters every participant agrees on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskConfiguration {
    /// `task_info<1..2^8-1>`.
    pub task_info: Vec<u8>,
    /// The leader's API base URL, as ASCII bytes.
    pub leader_aggregator_endpoint: Vec<u8>,
    /// The helper's API base URL, as ASCII bytes.
    pub helper_aggregator_endpoint: Vec<u8>,
    /// Seconds per time unit.
    pub time_precision: TimePrecision,
    /// The smallest batch that may be collected.
    pub min_batch_size: u64,
    /// The batch mode.
    pub batch_mode: BatchMode,
    /// The batch mode's configuration (empty for both modes in DAP-18).
    pub batch_config: Vec<u8>,
    /// The VDAF's codepoint.
    pub vdaf_type: u32,
    /// The VDAF's encoded configuration (DAP-18 appendix B).
    pub vdaf_configuration: Vec<u8>,
    /// Task extensions, strictly increasing by type.
    pub extensions: Vec<Extension>,
}

impl TaskConfiguration {
    /// The `task_interval` extension's interval, if present and well formed.
    pub fn task_interval(&self) -> Option<Interval> {
        self.extensions
            .iter()
            .find(|e| e.extension_type == Extension::TASK_INTERVAL)
            .and_then(|e| Interval::get_decoded(&e.extension_data).ok())
    }
}

impl Encode for TaskConfiguration {
    fn encode(&self, out: &mut Vec<u8>) -> Result<(), CodecError> {
        put_opaque(out, LengthPrefix::U8, 1, &self.task_info, "task_info")?;
        put_opaque(
            out,
            LengthPrefix::U16,
            1,
            &self.leader_aggregator_endpoint,
            "leader_aggregator_endpoint",
        )?;
        put_opaque(
            out,
            LengthPrefix::U16,
            1,
            &self.helper_aggregator_endpoint,
            "helper_aggregator_endpoint",
        )?;
        self.time_precision.0.encode(out)?;
        self.min_batch_size.encode(out)?;
        self.batch_mode.encode(out)?;
        put_opaque(
            out,
            LengthPrefix::U16,
            0,
            &self.batch_config,
            "batch_config",
        )?;
        self.vdaf_type.encode(out)?;
        put_opaque(
            out,
            LengthPrefix::U16,
            0,
            &self.vdaf_configuration,
            "vdaf_configuration",
        )?;
        put_items(out, LengthPrefix::U16, &self.extensions, "extensions")
    }
}

impl Decode for TaskConfiguration {
    fn decode(r: &mut Reader<'_>) -> Result<Self, CodecError> {
        Ok(TaskConfiguration {
            task_info: r.opaque(LengthPrefix::U8, 1, "task_info")?,
            leader_aggregator_endpoint: r.opaque(LengthPrefix::U16, 1, "leader endpoint")?,
            helper_aggregator_endpoint: r.opaque(LengthPrefix::U16, 1, "helper endpoint")?,
            time_precision: TimePrecision(r.u64()?),
            min_batch_size: r.u64()?,
            batch_mode: BatchMode::decode(r)?,
            batch_config: r.opaque(LengthPrefix::U16, 0, "batch_config")?,
            vdaf_type: r.u32()?,
            vdaf_configuration: r.opaque(LengthPrefix::U16, 0, "vdaf_configuration")?,
            extensions: r.items(LengthPrefix::U16)?,
        })
    }
}
