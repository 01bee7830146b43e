//! DAP-09 (draft-ietf-ppm-dap-09) upload, aggregation and collection messages, for tasks whose protocol is `dap-09`: the
//! wire format that `janus_client` 0.7, `@divviup/dap` 0.9 and Divvi Up's service speak today.
//! Only what differs from DAP-18 lives here; `HpkeConfig`, `HpkeConfigList`, `HpkeCiphertext`,
//! `Extension`, `ReportId` and `TaskId` encode the same in both drafts and are reused.
//!
//! The differences this module carries (DAP-09 §4.4):
//! - one `Report` per upload request (`PUT /tasks/{task}/reports`), never a list;
//! - `ReportMetadata` holds only the ID and the time, which is in **seconds** (DAP-18: units of
//!   `time_precision`); extensions travel only inside the encrypted `PlaintextInputShare`;
//! - `InputShareAad` binds the task ID, metadata and public share, but no `TaskConfiguration`;
//! - the HPKE application info is labelled `dap-09 …` and the media types are
//!   `application/dap-*`.
//!
//! Wire only, like the rest of the crate: the aggregator converts at its HTTP edge and keeps one
//! report pipeline.

use crate::codec::{CodecError, Decode, Encode, LengthPrefix, Reader, put_items, put_opaque};
use crate::hpke::{HpkeCiphertext, Role};
use crate::id::{BatchChecksum, BatchId, ReportId, TaskId};
use crate::task::Extension;
use crate::time::{Interval, Time};

/// The protocol's name as a task names it (and the prefix of its HPKE labels).
pub const PROTOCOL: &str = "dap-09";

/// DAP-09 media types (§4.1, one per message).
pub mod media_type {
    /// `HpkeConfigList` (`GET /hpke_config`). `@divviup/dap` refuses any other `Content-Type`.
    pub const HPKE_CONFIG_LIST: &str = "application/dap-hpke-config-list";
    /// `Report` (`PUT /tasks/{task}/reports`).
    pub const REPORT: &str = "application/dap-report";
    /// `AggregationJobInitReq`.
    pub const AGGREGATION_JOB_INIT_REQ: &str = "application/dap-aggregation-job-init-req";
    /// `AggregationJobContinueReq`.
    pub const AGGREGATION_JOB_CONTINUE_REQ: &str = "application/dap-aggregation-job-continue-req";
    /// `AggregationJobResp`.
    pub const AGGREGATION_JOB_RESP: &str = "application/dap-aggregation-job-resp";
    /// `AggregateShareReq`.
    pub const AGGREGATE_SHARE_REQ: &str = "application/dap-aggregate-share-req";
    /// `AggregateShare`.
    pub const AGGREGATE_SHARE: &str = "application/dap-aggregate-share";
    /// `CollectionReq`.
    pub const COLLECT_REQ: &str = "application/dap-collect-req";
    /// `Collection`.
    pub const COLLECTION: &str = "application/dap-collection";
}

/// The HPKE application info for an input share: `"dap-09 input share" || 0x01 || receiver`
/// (the client is the sender).
pub fn input_share_info(receiver: Role) -> Vec<u8> {
    let mut info = format!("{PROTOCOL} input share").into_bytes();
    info.push(Role::Client.code());
    info.push(receiver.code());
    info
}

/// The HPKE application info for an aggregate share: `"dap-09 aggregate share" || sender ||
/// 0x00` (the collector receives).
pub fn aggregate_share_info(sender: Role) -> Vec<u8> {
    let mut info = format!("{PROTOCOL} aggregate share").into_bytes();
    info.push(sender.code());
    info.push(Role::Collector.code());
    info
}

/// `struct { ReportID report_id; Time time; } ReportMetadata`, the time in seconds since the
/// epoch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportMetadata {
    /// The report's ID (also the VDAF nonce).
    pub id: ReportId,
    /// When the report was generated, in seconds (the client rounds it down to the task's
    /// `time_precision`).
    pub time_seconds: u64,
}

impl ReportMetadata {
    /// The time in units of `time_precision` (seconds), as Cairn stores it; `None` if the time
    /// is not a multiple of the precision (a DAP-09 client rounds it down, so anything else is
    /// a malformed report) or the precision is zero.
    pub fn time_in_precision_units(&self, time_precision: u64) -> Option<Time> {
        if time_precision == 0 || !self.time_seconds.is_multiple_of(time_precision) {
            return None;
        }
        Some(Time(self.time_seconds / time_precision))
    }
}

impl Encode for ReportMetadata {
    fn encode(&self, out: &mut Vec<u8>) -> Result<(), CodecError> {
        self.id.encode(out)?;
        self.time_seconds.encode(out)
    }
}

impl Decode for ReportMetadata {
    fn decode(r: &mut Reader<'_>) -> Result<Self, CodecError> {
        Ok(ReportMetadata {
            id: ReportId::decode(r)?,
            time_seconds: r.u64()?,
        })
    }
}

/// One DAP-09 report, the whole body of an upload request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// Public metadata.
    pub metadata: ReportMetadata,
    /// The VDAF public share (may be empty).
    pub public_share: Vec<u8>,
    /// The leader's encrypted `PlaintextInputShare`.
    pub leader_encrypted_input_share: HpkeCiphertext,
    /// The helper's encrypted `PlaintextInputShare`.
    pub helper_encrypted_input_share: HpkeCiphertext,
}

impl Report {
    /// The AAD the client sealed each input share under.
    pub fn input_share_aad(&self, task_id: &TaskId) -> InputShareAad {
        InputShareAad {
            task_id: *task_id,
            metadata: self.metadata.clone(),
            public_share: self.public_share.clone(),
        }
    }
}

impl Encode for Report {
    fn encode(&self, out: &mut Vec<u8>) -> Result<(), CodecError> {
        self.metadata.encode(out)?;
        put_opaque(
            out,
            LengthPrefix::U32,
            0,
            &self.public_share,
            "public_share",
        )?;
        self.leader_encrypted_input_share.encode(out)?;
        self.helper_encrypted_input_share.encode(out)
    }
}

impl Decode for Report {
    fn decode(r: &mut Reader<'_>) -> Result<Self, CodecError> {
        Ok(Report {
            metadata: ReportMetadata::decode(r)?,
            public_share: r.opaque(LengthPrefix::U32, 0, "public_share")?,
            leader_encrypted_input_share: HpkeCiphertext::decode(r)?,
            helper_encrypted_input_share: HpkeCiphertext::decode(r)?,
        })
    }
}

/// `struct { Extension extensions<0..2^16-1>; opaque payload<0..2^32-1>; }`: what the client
/// encrypts to each aggregator.
#[derive(Clone, PartialEq, Eq)]
pub struct PlaintextInputShare {
    /// Report extensions (DAP-09 has only private ones).
    pub extensions: Vec<Extension>,
    /// The VDAF input share.
    pub payload: Vec<u8>,
}

impl std::fmt::Debug for PlaintextInputShare {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlaintextInputShare")
            .field("extensions", &self.extensions)
            .finish_non_exhaustive()
    }
}

impl Encode for PlaintextInputShare {
    fn encode(&self, out: &mut Vec<u8>) -> Result<(), CodecError> {
        put_items(out, LengthPrefix::U16, &self.extensions, "extensions")?;
        put_opaque(out, LengthPrefix::U32, 0, &self.payload, "payload")
    }
}

impl Decode for PlaintextInputShare {
    fn decode(r: &mut Reader<'_>) -> Result<Self, CodecError> {
        Ok(PlaintextInputShare {
            extensions: r.items(LengthPrefix::U16)?,
            payload: r.opaque(LengthPrefix::U32, 0, "payload")?,
        })
    }
}

/// `struct { TaskID task_id; ReportMetadata metadata; opaque public_share<0..2^32-1>; }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputShareAad {
    /// The task.
    pub task_id: TaskId,
    /// The report's metadata.
    pub metadata: ReportMetadata,
    /// The report's public share.
    pub public_share: Vec<u8>,
}

impl Encode for InputShareAad {
    fn encode(&self, out: &mut Vec<u8>) -> Result<(), CodecError> {
        self.task_id.encode(out)?;
        self.metadata.encode(out)?;
        put_opaque(
            out,
            LengthPrefix::U32,
            0,
            &self.public_share,
            "public_share",
        )
    }
}

impl Decode for InputShareAad {
    fn decode(r: &mut Reader<'_>) -> Result<Self, CodecError> {
        Ok(InputShareAad {
            task_id: TaskId::decode(r)?,
            metadata: ReportMetadata::decode(r)?,
            public_share: r.opaque(LengthPrefix::U32, 0, "public_share")?,
        })
    }
}

/// DAP-09's `QueryType` codepoints (`time_interval(1)`, `fixed_size(2)`).
pub mod query_type {
    /// `time_interval`.
    pub const TIME_INTERVAL: u8 = 1;
    /// `fixed_size`, what DAP-18 calls leader-selected.
    pub const FIXED_SIZE: u8 = 2;
}

/// A DAP-09 collection `Query`. Intervals are in **seconds** here (DAP-18: time-precision
/// units); the encoding of `Interval` is the same two `u64`s in both drafts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Query {
    /// `time_interval`: the batch interval, in seconds.
    TimeInterval {
        /// Start and duration in seconds.
        batch_interval: Interval,
    },
    /// `fixed_size` with `by_batch_id(0)`: a batch the collector already knows.
    ByBatchId {
        /// The batch.
        batch_id: BatchId,
    },
    /// `fixed_size` with `current_batch(1)`: the next batch the leader fills.
    CurrentBatch,
}

impl Encode for Query {
    fn encode(&self, out: &mut Vec<u8>) -> Result<(), CodecError> {
        match self {
            Query::TimeInterval { batch_interval } => {
                out.push(query_type::TIME_INTERVAL);
                batch_interval.encode(out)
            }
            Query::ByBatchId { batch_id } => {
                out.extend([query_type::FIXED_SIZE, 0]);
                batch_id.encode(out)
            }
            Query::CurrentBatch => {
                out.extend([query_type::FIXED_SIZE, 1]);
                Ok(())
            }
        }
    }
}

impl Decode for Query {
    fn decode(r: &mut Reader<'_>) -> Result<Self, CodecError> {
        match r.u8()? {
            query_type::TIME_INTERVAL => Ok(Query::TimeInterval {
                batch_interval: Interval::decode(r)?,
            }),
            query_type::FIXED_SIZE => match r.u8()? {
                0 => Ok(Query::ByBatchId {
                    batch_id: BatchId::decode(r)?,
                }),
                1 => Ok(Query::CurrentBatch),
                other => Err(CodecError::UnknownValue {
                    field: "fixed_size_query_type",
                    value: u64::from(other),
                }),
            },
            other => Err(CodecError::UnknownValue {
                field: "query_type",
                value: u64::from(other),
            }),
        }
    }
}

/// `struct { Query query; opaque agg_param<0..2^32-1>; } CollectionReq` (DAP-09 §4.6.1), the
/// body of `PUT /tasks/{task}/collection_jobs/{job}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CollectionReq {
    /// Which batch.
    pub query: Query,
    /// The VDAF aggregation parameter (empty for Prio3).
    pub agg_param: Vec<u8>,
}

impl Encode for CollectionReq {
    fn encode(&self, out: &mut Vec<u8>) -> Result<(), CodecError> {
        self.query.encode(out)?;
        put_opaque(out, LengthPrefix::U32, 0, &self.agg_param, "agg_param")
    }
}

impl Decode for CollectionReq {
    fn decode(r: &mut Reader<'_>) -> Result<Self, CodecError> {
        Ok(CollectionReq {
            query: Query::decode(r)?,
            agg_param: r.opaque(LengthPrefix::U32, 0, "agg_param")?,
        })
    }
}

/// DAP-09's `BatchSelector`: the batch an aggregate share is for. It is bound into the
/// aggregate share's AAD.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BatchSelector {
    /// `time_interval`: the batch interval, in seconds.
    TimeInterval {
        /// Start and duration in seconds.
        batch_interval: Interval,
    },
    /// `fixed_size`: the batch the leader chose.
    FixedSize {
        /// The batch.
        batch_id: BatchId,
    },
}

impl Encode for BatchSelector {
    fn encode(&self, out: &mut Vec<u8>) -> Result<(), CodecError> {
        match self {
            BatchSelector::TimeInterval { batch_interval } => {
                out.push(query_type::TIME_INTERVAL);
                batch_interval.encode(out)
            }
            BatchSelector::FixedSize { batch_id } => {
                out.push(query_type::FIXED_SIZE);
                batch_id.encode(out)
            }
        }
    }
}

impl Decode for BatchSelector {
    fn decode(r: &mut Reader<'_>) -> Result<Self, CodecError> {
        match r.u8()? {
            query_type::TIME_INTERVAL => Ok(BatchSelector::TimeInterval {
                batch_interval: Interval::decode(r)?,
            }),
            query_type::FIXED_SIZE => Ok(BatchSelector::FixedSize {
                batch_id: BatchId::decode(r)?,
            }),
            other => Err(CodecError::UnknownValue {
                field: "query_type",
                value: u64::from(other),
            }),
        }
    }
}

/// `struct { TaskID task_id; opaque agg_param<0..2^32-1>; BatchSelector batch_selector; }`:
/// the AAD each aggregator seals its aggregate share to the collector under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AggregateShareAad {
    /// The task.
    pub task_id: TaskId,
    /// The aggregation parameter.
    pub agg_param: Vec<u8>,
    /// The batch.
    pub batch_selector: BatchSelector,
}

impl Encode for AggregateShareAad {
    fn encode(&self, out: &mut Vec<u8>) -> Result<(), CodecError> {
        self.task_id.encode(out)?;
        put_opaque(out, LengthPrefix::U32, 0, &self.agg_param, "agg_param")?;
        self.batch_selector.encode(out)
    }
}

/// `struct { PartialBatchSelector part_batch_selector; uint64 report_count; Interval interval;
/// HpkeCiphertext leader_encrypted_agg_share; HpkeCiphertext helper_encrypted_agg_share; }
/// Collection` (DAP-09 §4.6.1): a finished collection job. The partial batch selector is the
/// query type, and the batch ID for a fixed-size batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Collection {
    /// `Some(batch_id)` for a fixed-size batch, `None` for a time interval.
    pub batch_id: Option<BatchId>,
    /// Reports in the batch.
    pub report_count: u64,
    /// The smallest interval, in seconds, that holds every report's time.
    pub interval: Interval,
    /// The leader's aggregate share, encrypted to the collector.
    pub leader_encrypted_agg_share: HpkeCiphertext,
    /// The helper's aggregate share, encrypted to the collector.
    pub helper_encrypted_agg_share: HpkeCiphertext,
}

impl Encode for Collection {
    fn encode(&self, out: &mut Vec<u8>) -> Result<(), CodecError> {
        put_partial_batch_selector(out, self.batch_id.as_ref())?;
        self.report_count.encode(out)?;
        self.interval.encode(out)?;
        self.leader_encrypted_agg_share.encode(out)?;
        self.helper_encrypted_agg_share.encode(out)
    }
}

impl Decode for Collection {
    fn decode(r: &mut Reader<'_>) -> Result<Self, CodecError> {
        Ok(Collection {
            batch_id: read_partial_batch_selector(r)?,
            report_count: r.u64()?,
            interval: Interval::decode(r)?,
            leader_encrypted_agg_share: HpkeCiphertext::decode(r)?,
            helper_encrypted_agg_share: HpkeCiphertext::decode(r)?,
        })
    }
}

/// DAP-09's `ReportShare`: what the leader forwards of a report to the helper.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportShare {
    /// The report's metadata (time in seconds).
    pub metadata: ReportMetadata,
    /// The VDAF public share.
    pub public_share: Vec<u8>,
    /// The helper's encrypted input share.
    pub encrypted_input_share: HpkeCiphertext,
}

impl Encode for ReportShare {
    fn encode(&self, out: &mut Vec<u8>) -> Result<(), CodecError> {
        self.metadata.encode(out)?;
        put_opaque(
            out,
            LengthPrefix::U32,
            0,
            &self.public_share,
            "public_share",
        )?;
        self.encrypted_input_share.encode(out)
    }
}

impl Decode for ReportShare {
    fn decode(r: &mut Reader<'_>) -> Result<Self, CodecError> {
        Ok(ReportShare {
            metadata: ReportMetadata::decode(r)?,
            public_share: r.opaque(LengthPrefix::U32, 0, "public_share")?,
            encrypted_input_share: HpkeCiphertext::decode(r)?,
        })
    }
}

/// `struct { ReportShare report_share; opaque payload<0..2^32-1>; } PrepareInit`: a report and
/// the leader's first ping-pong message for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrepareInit {
    /// The report.
    pub report_share: ReportShare,
    /// The encoded ping-pong message.
    pub message: Vec<u8>,
}

impl Encode for PrepareInit {
    fn encode(&self, out: &mut Vec<u8>) -> Result<(), CodecError> {
        self.report_share.encode(out)?;
        put_opaque(out, LengthPrefix::U32, 0, &self.message, "payload")
    }
}

impl Decode for PrepareInit {
    fn decode(r: &mut Reader<'_>) -> Result<Self, CodecError> {
        Ok(PrepareInit {
            report_share: ReportShare::decode(r)?,
            message: r.opaque(LengthPrefix::U32, 0, "payload")?,
        })
    }
}

/// DAP-09's `AggregationJobInitReq` (`PUT /tasks/{task}/aggregation_jobs/{job}`): the
/// aggregation parameter, the partial batch selector (the batch ID of a fixed-size task) and
/// the reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AggregationJobInitReq {
    /// The aggregation parameter.
    pub agg_param: Vec<u8>,
    /// `Some(batch)` for a fixed-size task, `None` for a time-interval one.
    pub batch_id: Option<BatchId>,
    /// The reports, in order.
    pub prepare_inits: Vec<PrepareInit>,
}

/// Encodes a partial batch selector: the query type, and the batch ID if fixed-size.
fn put_partial_batch_selector(
    out: &mut Vec<u8>,
    batch_id: Option<&BatchId>,
) -> Result<(), CodecError> {
    match batch_id {
        None => {
            out.push(query_type::TIME_INTERVAL);
            Ok(())
        }
        Some(b) => {
            out.push(query_type::FIXED_SIZE);
            b.encode(out)
        }
    }
}

fn read_partial_batch_selector(r: &mut Reader<'_>) -> Result<Option<BatchId>, CodecError> {
    match r.u8()? {
        query_type::TIME_INTERVAL => Ok(None),
        query_type::FIXED_SIZE => Ok(Some(BatchId::decode(r)?)),
        other => Err(CodecError::UnknownValue {
            field: "query_type",
            value: u64::from(other),
        }),
    }
}

impl Encode for AggregationJobInitReq {
    fn encode(&self, out: &mut Vec<u8>) -> Result<(), CodecError> {
        put_opaque(out, LengthPrefix::U32, 0, &self.agg_param, "agg_param")?;
        put_partial_batch_selector(out, self.batch_id.as_ref())?;
        put_items(out, LengthPrefix::U32, &self.prepare_inits, "prepare_inits")
    }
}

impl Decode for AggregationJobInitReq {
    fn decode(r: &mut Reader<'_>) -> Result<Self, CodecError> {
        Ok(AggregationJobInitReq {
            agg_param: r.opaque(LengthPrefix::U32, 0, "agg_param")?,
            batch_id: read_partial_batch_selector(r)?,
            prepare_inits: r.items(LengthPrefix::U32)?,
        })
    }
}

/// DAP-09's `PrepareError` codes.
pub mod prepare_error {
    /// `batch_collected`.
    pub const BATCH_COLLECTED: u8 = 0;
    /// `report_replayed`.
    pub const REPORT_REPLAYED: u8 = 1;
    /// `report_dropped`.
    pub const REPORT_DROPPED: u8 = 2;
    /// `hpke_unknown_config_id`.
    pub const HPKE_UNKNOWN_CONFIG_ID: u8 = 3;
    /// `hpke_decrypt_error`.
    pub const HPKE_DECRYPT_ERROR: u8 = 4;
    /// `vdaf_prep_error`.
    pub const VDAF_PREP_ERROR: u8 = 5;
    /// `batch_saturated`.
    pub const BATCH_SATURATED: u8 = 6;
    /// `task_expired`.
    pub const TASK_EXPIRED: u8 = 7;
    /// `invalid_message`.
    pub const INVALID_MESSAGE: u8 = 8;
    /// `report_too_early`.
    pub const REPORT_TOO_EARLY: u8 = 9;
}

/// DAP-09's `PrepareStepResult` with its payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PrepareStepResult {
    /// `continue(0)` with the encoded ping-pong message.
    Continue(Vec<u8>),
    /// `finished(1)`.
    Finished,
    /// `reject(2)` with a [`prepare_error`] code.
    Reject(u8),
}

/// `struct { ReportID report_id; PrepareStepResult result; ... } PrepareResp`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrepareResp {
    /// The report.
    pub report_id: ReportId,
    /// The helper's answer for it.
    pub result: PrepareStepResult,
}

impl Encode for PrepareResp {
    fn encode(&self, out: &mut Vec<u8>) -> Result<(), CodecError> {
        self.report_id.encode(out)?;
        match &self.result {
            PrepareStepResult::Continue(message) => {
                out.push(0);
                put_opaque(out, LengthPrefix::U32, 0, message, "payload")
            }
            PrepareStepResult::Finished => {
                out.push(1);
                Ok(())
            }
            PrepareStepResult::Reject(code) => {
                out.extend([2, *code]);
                Ok(())
            }
        }
    }
}

impl Decode for PrepareResp {
    fn decode(r: &mut Reader<'_>) -> Result<Self, CodecError> {
        let report_id = ReportId::decode(r)?;
        let result = match r.u8()? {
            0 => PrepareStepResult::Continue(r.opaque(LengthPrefix::U32, 0, "payload")?),
            1 => PrepareStepResult::Finished,
            2 => match r.u8()? {
                code @ 0..=9 => PrepareStepResult::Reject(code),
                other => {
                    return Err(CodecError::UnknownValue {
                        field: "prepare_error",
                        value: u64::from(other),
                    });
                }
            },
            other => {
                return Err(CodecError::UnknownValue {
                    field: "prepare_step_result",
                    value: u64::from(other),
                });
            }
        };
        Ok(PrepareResp { report_id, result })
    }
}

/// `struct { PrepareResp prepare_resps<0..2^32-1>; } AggregationJobResp`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AggregationJobResp {
    /// One answer per report, in the request's order.
    pub prepare_resps: Vec<PrepareResp>,
}

impl Encode for AggregationJobResp {
    fn encode(&self, out: &mut Vec<u8>) -> Result<(), CodecError> {
        put_items(out, LengthPrefix::U32, &self.prepare_resps, "prepare_resps")
    }
}

impl Decode for AggregationJobResp {
    fn decode(r: &mut Reader<'_>) -> Result<Self, CodecError> {
        Ok(AggregationJobResp {
            prepare_resps: r.items(LengthPrefix::U32)?,
        })
    }
}

/// DAP-09's `AggregateShareReq` (`POST /tasks/{task}/aggregate_shares`): the batch, the
/// aggregation parameter, and the leader's report count and checksum for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AggregateShareReq {
    /// The batch.
    pub batch_selector: BatchSelector,
    /// The aggregation parameter.
    pub agg_param: Vec<u8>,
    /// The leader's report count.
    pub report_count: u64,
    /// The leader's checksum (XOR of the SHA-256 of the report IDs).
    pub checksum: BatchChecksum,
}

impl Encode for AggregateShareReq {
    fn encode(&self, out: &mut Vec<u8>) -> Result<(), CodecError> {
        self.batch_selector.encode(out)?;
        put_opaque(out, LengthPrefix::U32, 0, &self.agg_param, "agg_param")?;
        self.report_count.encode(out)?;
        self.checksum.encode(out)
    }
}

impl Decode for AggregateShareReq {
    fn decode(r: &mut Reader<'_>) -> Result<Self, CodecError> {
        Ok(AggregateShareReq {
            batch_selector: BatchSelector::decode(r)?,
            agg_param: r.opaque(LengthPrefix::U32, 0, "agg_param")?,
            report_count: r.u64()?,
            checksum: BatchChecksum::decode(r)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hpke::HpkeConfigId;

    fn ciphertext(config_id: u8, enc: &[u8], payload: &[u8]) -> HpkeCiphertext {
        HpkeCiphertext {
            config_id: HpkeConfigId(config_id),
            enc: enc.to_vec(),
            payload: payload.to_vec(),
        }
    }

    fn report() -> Report {
        Report {
            metadata: ReportMetadata {
                id: ReportId::from_bytes([7; 16]),
                time_seconds: 1_700_002_800,
            },
            public_share: vec![0xaa, 0xbb],
            leader_encrypted_input_share: ciphertext(1, &[2, 3], &[4]),
            helper_encrypted_input_share: ciphertext(9, &[5], &[6, 7]),
        }
    }

    /// The layout written out field by field from DAP-09 §4.4.2 (`Report`, `ReportMetadata`,
    /// `HpkeCiphertext`): this is the byte string `janus_client` 0.7 and `@divviup/dap` 0.9 put.
    #[test]
    fn a_report_has_the_dap09_layout() {
        let mut want = vec![7u8; 16]; // report_id
        want.extend(1_700_002_800u64.to_be_bytes()); // time, seconds
        want.extend([0, 0, 0, 2, 0xaa, 0xbb]); // public_share<0..2^32-1>
        want.extend([1, 0, 2, 2, 3, 0, 0, 0, 1, 4]); // leader: config_id, enc<1..2^16-1>, payload<1..2^32-1>
        want.extend([9, 0, 1, 5, 0, 0, 0, 2, 6, 7]); // helper
        assert_eq!(report().get_encoded().unwrap(), want);
        assert_eq!(Report::get_decoded(&want).unwrap(), report());
    }

    /// One report per request: trailing bytes (a second report, as a DAP-18 batch would carry)
    /// and truncations are refused.
    #[test]
    fn an_upload_is_exactly_one_report() {
        let one = report().get_encoded().unwrap();
        let two = [one.clone(), one.clone()].concat();
        assert!(Report::get_decoded(&two).is_err());
        for cut in 0..one.len() {
            assert!(Report::get_decoded(&one[..cut]).is_err(), "cut at {cut}");
        }
    }

    /// A DAP-18 report carries a public-extensions list after the time, which shifts every
    /// later field: this one fails to decode as DAP-09. (Bytes alone cannot always tell the
    /// drafts apart; the task's protocol decides which decoder runs.)
    #[test]
    fn this_dap18_report_does_not_decode_as_dap09() {
        let dap18 = crate::Report {
            metadata: crate::ReportMetadata {
                id: ReportId::from_bytes([7; 16]),
                time: Time(472_223),
                public_extensions: Vec::new(),
            },
            public_share: vec![0xaa, 0xbb],
            leader_encrypted_input_share: ciphertext(1, &[2, 3], &[4]),
            helper_encrypted_input_share: ciphertext(9, &[5], &[6, 7]),
        };
        let bytes = dap18.get_encoded().unwrap();
        assert!(Report::get_decoded(&bytes).is_err());
    }

    #[test]
    fn times_convert_to_precision_units_only_when_rounded() {
        let at = |time_seconds| ReportMetadata {
            id: ReportId::from_bytes([0; 16]),
            time_seconds,
        };
        assert_eq!(at(7200).time_in_precision_units(3600), Some(Time(2)));
        assert_eq!(at(0).time_in_precision_units(3600), Some(Time(0)));
        assert_eq!(at(7201).time_in_precision_units(3600), None);
        assert_eq!(at(7200).time_in_precision_units(0), None);
        assert_eq!(
            at(u64::MAX).time_in_precision_units(1),
            Some(Time(u64::MAX))
        );
    }

    #[test]
    fn the_aad_binds_task_metadata_and_public_share_only() {
        let task = TaskId::from_bytes([3; 32]);
        let aad = report().input_share_aad(&task).get_encoded().unwrap();
        let mut want = vec![3u8; 32];
        want.extend([7u8; 16]);
        want.extend(1_700_002_800u64.to_be_bytes());
        want.extend([0, 0, 0, 2, 0xaa, 0xbb]);
        assert_eq!(aad, want);
        assert_eq!(
            InputShareAad::get_decoded(&aad).unwrap(),
            report().input_share_aad(&task)
        );
    }

    #[test]
    fn plaintext_input_shares_round_trip_and_allow_an_empty_payload() {
        let share = PlaintextInputShare {
            extensions: vec![Extension {
                extension_type: 0xff00,
                extension_data: vec![1],
            }],
            payload: Vec::new(),
        };
        let bytes = share.get_encoded().unwrap();
        assert_eq!(bytes, [0, 5, 0xff, 0, 0, 1, 1, 0, 0, 0, 0]);
        assert_eq!(PlaintextInputShare::get_decoded(&bytes).unwrap(), share);
        assert!(!format!("{share:?}").contains("payload"));
    }

    #[test]
    fn hpke_labels_name_dap09() {
        assert_eq!(
            input_share_info(Role::Leader),
            b"dap-09 input share\x01\x02"
        );
        assert_eq!(
            input_share_info(Role::Helper),
            b"dap-09 input share\x01\x03"
        );
        assert_eq!(
            aggregate_share_info(Role::Helper),
            b"dap-09 aggregate share\x03\x00"
        );
    }
}
