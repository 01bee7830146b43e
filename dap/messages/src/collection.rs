//! The collection interaction: `Query`, `CollectionJobReq`/`CollectionJobResp`, `BatchSelector`,
//! `AggregateShareReq`/`AggregateShare` and the `AggregateShareAad`.

use crate::codec::{CodecError, Decode, Encode, LengthPrefix, Reader, put_items, put_opaque};
use crate::hpke::HpkeCiphertext;
use crate::id::{BatchChecksum, BatchId, TaskId};
use crate::task::{BatchMode, Extension, TaskConfiguration};
use crate::time::Interval;

/// `struct { BatchMode batch_mode; opaque config<0..2^16-1>; } Query`, decoded by mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Query {
    /// Time-interval: `TimeIntervalQueryConfig { Interval batch_interval; }`.
    TimeInterval {
        /// The batch interval.
        batch_interval: Interval,
    },
    /// Leader-selected: empty config, "the next batch".
    LeaderSelected,
}

impl Query {
    /// The query's batch mode.
    pub fn batch_mode(&self) -> BatchMode {
        match self {
            Query::TimeInterval { .. } => BatchMode::TimeInterval,
            Query::LeaderSelected => BatchMode::LeaderSelected,
        }
    }
}

impl Encode for Query {
    fn encode(&self, out: &mut Vec<u8>) -> Result<(), CodecError> {
        self.batch_mode().encode(out)?;
        let config = match self {
            Query::TimeInterval { batch_interval } => batch_interval.get_encoded()?,
            Query::LeaderSelected => Vec::new(),
        };
        put_opaque(out, LengthPrefix::U16, 0, &config, "config")
    }
}

impl Decode for Query {
    fn decode(r: &mut Reader<'_>) -> Result<Self, CodecError> {
        let mode = BatchMode::decode(r)?;
        let config = r.opaque(LengthPrefix::U16, 0, "config")?;
        match mode {
            BatchMode::TimeInterval => Ok(Query::TimeInterval {
                batch_interval: Interval::get_decoded(&config)?,
            }),
            BatchMode::LeaderSelected => {
                Reader::new(&config).finish()?;
                Ok(Query::LeaderSelected)
            }
        }
    }
}

/// `struct { BatchMode batch_mode; opaque config<0..2^16-1>; } BatchSelector`, decoded by mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BatchSelector {
    /// Time-interval: the batch interval.
    TimeInterval {
        /// The batch interval.
        batch_interval: Interval,
    },
    /// Leader-selected: the batch ID the leader chose.
    LeaderSelected {
        /// The batch.
        batch_id: BatchId,
    },
}

impl BatchSelector {
    /// The selector's batch mode.
    pub fn batch_mode(&self) -> BatchMode {
        match self {
            BatchSelector::TimeInterval { .. } => BatchMode::TimeInterval,
            BatchSelector::LeaderSelected { .. } => BatchMode::LeaderSelected,
        }
    }
}

impl Encode for BatchSelector {
    fn encode(&self, out: &mut Vec<u8>) -> Result<(), CodecError> {
        self.batch_mode().encode(out)?;
        let config = match self {
            BatchSelector::TimeInterval { batch_interval } => batch_interval.get_encoded()?,
            BatchSelector::LeaderSelected { batch_id } => batch_id.get_encoded()?,
        };
        put_opaque(out, LengthPrefix::U16, 0, &config, "config")
    }
}

impl Decode for BatchSelector {
    fn decode(r: &mut Reader<'_>) -> Result<Self, CodecError> {
        let mode = BatchMode::decode(r)?;
        let config = r.opaque(LengthPrefix::U16, 0, "config")?;
        match mode {
            BatchMode::TimeInterval => Ok(BatchSelector::TimeInterval {
                batch_interval: Interval::get_decoded(&config)?,
            }),
            BatchMode::LeaderSelected => Ok(BatchSelector::LeaderSelected {
                batch_id: BatchId::get_decoded(&config)?,
            }),
        }
    }
}

/// `struct { Query query; opaque agg_param<0..2^32-1>; CollectionJobExtension extensions<..>; }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CollectionJobReq {
    /// The collector's query.
    pub query: Query,
    /// The VDAF aggregation parameter.
    pub agg_param: Vec<u8>,
    /// Collection job extensions, strictly increasing by type.
    pub extensions: Vec<Extension>,
}

impl Encode for CollectionJobReq {
    fn encode(&self, out: &mut Vec<u8>) -> Result<(), CodecError> {
        self.query.encode(out)?;
        put_opaque(out, LengthPrefix::U32, 0, &self.agg_param, "agg_param")?;
        put_items(out, LengthPrefix::U16, &self.extensions, "extensions")
    }
}

impl Decode for CollectionJobReq {
    fn decode(r: &mut Reader<'_>) -> Result<Self, CodecError> {
        Ok(CollectionJobReq {
            query: Query::decode(r)?,
            agg_param: r.opaque(LengthPrefix::U32, 0, "agg_param")?,
            extensions: r.items(LengthPrefix::U16)?,
        })
    }
}

/// `CollectionJobResp`: the finished collection (the brief's "Collection").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CollectionJobResp {
    /// Reports in the batch.
    pub report_count: u64,
    /// The smallest interval containing every report's time.
    pub interval: Interval,
    /// The leader's aggregate share, encrypted to the collector.
    pub leader_encrypted_agg_share: HpkeCiphertext,
    /// The helper's aggregate share, encrypted to the collector.
    pub helper_encrypted_agg_share: HpkeCiphertext,
}

impl Encode for CollectionJobResp {
    fn encode(&self, out: &mut Vec<u8>) -> Result<(), CodecError> {
        self.report_count.encode(out)?;
        self.interval.encode(out)?;
        self.leader_encrypted_agg_share.encode(out)?;
        self.helper_encrypted_agg_share.encode(out)
    }
}

impl Decode for CollectionJobResp {
    fn decode(r: &mut Reader<'_>) -> Result<Self, CodecError> {
        Ok(CollectionJobResp {
            report_count: r.u64()?,
            interval: Interval::decode(r)?,
            leader_encrypted_agg_share: HpkeCiphertext::decode(r)?,
            helper_encrypted_agg_share: HpkeCiphertext::decode(r)?,
        })
    }
}

/// `AggregateShareReq`: the leader asks the helper for its share of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AggregateShareReq {
    /// The collector's request, verbatim.
    pub collection_job_req: CollectionJobReq,
    /// The batch.
    pub batch_selector: BatchSelector,
    /// The leader's report count for the batch.
    pub report_count: u64,
    /// The leader's checksum for the batch.
    pub checksum: BatchChecksum,
}

impl Encode for AggregateShareReq {
    fn encode(&self, out: &mut Vec<u8>) -> Result<(), CodecError> {
        self.collection_job_req.encode(out)?;
        self.batch_selector.encode(out)?;
        self.report_count.encode(out)?;
        self.checksum.encode(out)
    }
}

impl Decode for AggregateShareReq {
    fn decode(r: &mut Reader<'_>) -> Result<Self, CodecError> {
        Ok(AggregateShareReq {
            collection_job_req: CollectionJobReq::decode(r)?,
            batch_selector: BatchSelector::decode(r)?,
            report_count: r.u64()?,
            checksum: BatchChecksum::decode(r)?,
        })
    }
}

/// `struct { HpkeCiphertext encrypted_aggregate_share; } AggregateShare`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AggregateShare {
    /// The helper's aggregate share, encrypted to the collector.
    pub encrypted_aggregate_share: HpkeCiphertext,
}

impl Encode for AggregateShare {
    fn encode(&self, out: &mut Vec<u8>) -> Result<(), CodecError> {
        self.encrypted_aggregate_share.encode(out)
    }
}

impl Decode for AggregateShare {
    fn decode(r: &mut Reader<'_>) -> Result<Self, CodecError> {
        Ok(AggregateShare {
            encrypted_aggregate_share: HpkeCiphertext::decode(r)?,
        })
    }
}

/// `AggregateShareAad`: binds an encrypted aggregate share to task, configuration and request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AggregateShareAad {
    /// The task.
    pub task_id: TaskId,
    /// The task's configuration.
    pub task_configuration: TaskConfiguration,
    /// The collector's request.
    pub collection_job_req: CollectionJobReq,
}

impl Encode for AggregateShareAad {
    fn encode(&self, out: &mut Vec<u8>) -> Result<(), CodecError> {
        self.task_id.encode(out)?;
        self.task_configuration.encode(out)?;
        self.collection_job_req.encode(out)
    }
}

impl Decode for AggregateShareAad {
    fn decode(r: &mut Reader<'_>) -> Result<Self, CodecError> {
        Ok(AggregateShareAad {
            task_id: TaskId::decode(r)?,
            task_configuration: TaskConfiguration::decode(r)?,
            collection_job_req: CollectionJobReq::decode(r)?,
        })
    }
}
