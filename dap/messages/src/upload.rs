//! The upload interaction: `Report`, `UploadRequest`, `UploadErrors` and what a client encrypts
//! (`PlaintextInputShare` under an `InputShareAad`).

use crate::codec::{CodecError, Decode, Encode, LengthPrefix, Reader, put_items, put_opaque};
use crate::hpke::HpkeCiphertext;
use crate::id::{ReportId, TaskId};
use crate::task::{Extension, TaskConfiguration};
use crate::time::Time;

/// `ReportError`: why one report in an upload or aggregation job was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ReportError {
    /// `reserved(0)`.
    Reserved,
    /// `batch_collected(1)`.
    BatchCollected,
    /// `report_replayed(2)`.
    ReportReplayed,
    /// `report_dropped(3)`.
    ReportDropped,
    /// `hpke_unknown_config_id(4)`.
    HpkeUnknownConfigId,
    /// `hpke_decrypt_error(5)`.
    HpkeDecryptError,
    /// `vdaf_verify_error(6)`.
    VdafVerifyError,
    /// `task_expired(7)`.
    TaskExpired,
    /// `invalid_message(8)`.
    InvalidMessage,
    /// `report_too_early(9)`.
    ReportTooEarly,
    /// `task_not_started(10)`.
    TaskNotStarted,
    /// `outdated_config(11)`.
    OutdatedConfig,
}

impl ReportError {
    /// Every value, in codepoint order.
    pub const ALL: [ReportError; 12] = [
        ReportError::Reserved,
        ReportError::BatchCollected,
        ReportError::ReportReplayed,
        ReportError::ReportDropped,
        ReportError::HpkeUnknownConfigId,
        ReportError::HpkeDecryptError,
        ReportError::VdafVerifyError,
        ReportError::TaskExpired,
        ReportError::InvalidMessage,
        ReportError::ReportTooEarly,
        ReportError::TaskNotStarted,
        ReportError::OutdatedConfig,
    ];

    /// The codepoint.
    pub fn code(self) -> u8 {
        match self {
            ReportError::Reserved => 0,
            ReportError::BatchCollected => 1,
            ReportError::ReportReplayed => 2,
            ReportError::ReportDropped => 3,
            ReportError::HpkeUnknownConfigId => 4,
            ReportError::HpkeDecryptError => 5,
            ReportError::VdafVerifyError => 6,
            ReportError::TaskExpired => 7,
            ReportError::InvalidMessage => 8,
            ReportError::ReportTooEarly => 9,
            ReportError::TaskNotStarted => 10,
            ReportError::OutdatedConfig => 11,
        }
    }

    /// The registry name, e.g. `report_replayed` (used as a metrics label).
    pub fn name(self) -> &'static str {
        match self {
            ReportError::Reserved => "reserved",
            ReportError::BatchCollected => "batch_collected",
            ReportError::ReportReplayed => "report_replayed",
            ReportError::ReportDropped => "report_dropped",
            ReportError::HpkeUnknownConfigId => "hpke_unknown_config_id",
            ReportError::HpkeDecryptError => "hpke_decrypt_error",
            ReportError::VdafVerifyError => "vdaf_verify_error",
            ReportError::TaskExpired => "task_expired",
            ReportError::InvalidMessage => "invalid_message",
            ReportError::ReportTooEarly => "report_too_early",
            ReportError::TaskNotStarted => "task_not_started",
            ReportError::OutdatedConfig => "outdated_config",
        }
    }

    /// The value with codepoint `code`.
    pub fn from_code(code: u8) -> Option<ReportError> {
        ReportError::ALL.into_iter().find(|e| e.code() == code)
    }
}

impl Encode for ReportError {
    fn encode(&self, out: &mut Vec<u8>) -> Result<(), CodecError> {
        self.code().encode(out)
    }
}

impl Decode for ReportError {
    fn decode(r: &mut Reader<'_>) -> Result<Self, CodecError> {
        let v = r.u8()?;
        ReportError::from_code(v).ok_or(CodecError::UnknownValue {
            field: "ReportError",
            value: u64::from(v),
        })
    }
}

/// `struct { ReportID report_id; Time time; Extension public_extensions<0..2^16-1>; }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportMetadata {
    /// The report's ID (also the VDAF nonce).
    pub id: ReportId,
    /// When the report was generated, in `time_precision` units.
    pub time: Time,
    /// Extensions both aggregators see.
    pub public_extensions: Vec<Extension>,
}

impl Encode for ReportMetadata {
    fn encode(&self, out: &mut Vec<u8>) -> Result<(), CodecError> {
        self.id.encode(out)?;
        self.time.encode(out)?;
        put_items(
            out,
            LengthPrefix::U16,
            &self.public_extensions,
            "public_extensions",
        )
    }
}

impl Decode for ReportMetadata {
    fn decode(r: &mut Reader<'_>) -> Result<Self, CodecError> {
        Ok(ReportMetadata {
            id: ReportId::decode(r)?,
            time: Time::decode(r)?,
            public_extensions: r.items(LengthPrefix::U16)?,
        })
    }
}

/// One client report: metadata, public share and one encrypted input share per aggregator.
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

/// `struct { Report reports[message_length]; } UploadRequest`: many reports per request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadRequest {
    /// The reports, in the order the client sent them.
    pub reports: Vec<Report>,
}

impl Encode for UploadRequest {
    fn encode(&self, out: &mut Vec<u8>) -> Result<(), CodecError> {
        for r in &self.reports {
            r.encode(out)?;
        }
        Ok(())
    }
}

impl Decode for UploadRequest {
    fn decode(r: &mut Reader<'_>) -> Result<Self, CodecError> {
        Ok(UploadRequest { reports: r.rest()? })
    }
}

/// `struct { ReportID id; ReportError error; } ReportUploadStatus`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportUploadStatus {
    /// The refused report.
    pub id: ReportId,
    /// Why.
    pub error: ReportError,
}

impl Encode for ReportUploadStatus {
    fn encode(&self, out: &mut Vec<u8>) -> Result<(), CodecError> {
        self.id.encode(out)?;
        self.error.encode(out)
    }
}

impl Decode for ReportUploadStatus {
    fn decode(r: &mut Reader<'_>) -> Result<Self, CodecError> {
        Ok(ReportUploadStatus {
            id: ReportId::decode(r)?,
            error: ReportError::decode(r)?,
        })
    }
}

/// `struct { ReportUploadStatus status[message_length]; } UploadErrors`: only refused reports,
/// in request order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UploadErrors {
    /// One entry per refused report.
    pub status: Vec<ReportUploadStatus>,
}

impl Encode for UploadErrors {
    fn encode(&self, out: &mut Vec<u8>) -> Result<(), CodecError> {
        for s in &self.status {
            s.encode(out)?;
        }
        Ok(())
    }
}

impl Decode for UploadErrors {
    fn decode(r: &mut Reader<'_>) -> Result<Self, CodecError> {
        Ok(UploadErrors { status: r.rest()? })
    }
}

/// `struct { Extension private_extensions<0..2^16-1>; opaque payload<1..2^32-1>; }`: what the
/// client encrypts to each aggregator.
#[derive(Clone, PartialEq, Eq)]
pub struct PlaintextInputShare {
    /// Extensions only this aggregator sees.
    pub private_extensions: Vec<Extension>,
    /// The VDAF input share.
    pub payload: Vec<u8>,
}

impl std::fmt::Debug for PlaintextInputShare {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlaintextInputShare")
            .field("private_extensions", &self.private_extensions)
            .finish_non_exhaustive()
    }
}

impl Encode for PlaintextInputShare {
    fn encode(&self, out: &mut Vec<u8>) -> Result<(), CodecError> {
        put_items(
            out,
            LengthPrefix::U16,
            &self.private_extensions,
            "private_extensions",
        )?;
        put_opaque(out, LengthPrefix::U32, 1, &self.payload, "payload")
    }
}

impl Decode for PlaintextInputShare {
    fn decode(r: &mut Reader<'_>) -> Result<Self, CodecError> {
        Ok(PlaintextInputShare {
            private_extensions: r.items(LengthPrefix::U16)?,
            payload: r.opaque(LengthPrefix::U32, 1, "payload")?,
        })
    }
}

/// `InputShareAad`: binds an input share to its task, task configuration, metadata and public
/// share.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputShareAad {
    /// The task.
    pub task_id: TaskId,
    /// The task's configuration.
    pub task_configuration: TaskConfiguration,
    /// The report's metadata.
    pub metadata: ReportMetadata,
    /// The report's public share.
    pub public_share: Vec<u8>,
}

impl Encode for InputShareAad {
    fn encode(&self, out: &mut Vec<u8>) -> Result<(), CodecError> {
        self.task_id.encode(out)?;
        self.task_configuration.encode(out)?;
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
            task_configuration: TaskConfiguration::decode(r)?,
            metadata: ReportMetadata::decode(r)?,
            public_share: r.opaque(LengthPrefix::U32, 0, "public_share")?,
        })
    }
}
