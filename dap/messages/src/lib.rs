//! DAP-18 (draft-ietf-ppm-dap-18) wire messages with their TLS-syntax codecs. No I/O: every type
//! encodes to and decodes from bytes, and decoding untrusted input returns errors, never panics.

pub mod aggregation;
pub mod codec;
pub mod collection;
pub mod dap09;
pub mod hpke;
pub mod id;
pub mod problem_type;
pub mod task;
pub mod time;
pub mod upload;

pub use aggregation::{
    AggregationJobContinueReq, AggregationJobInitReq, AggregationJobResp, ReportShare,
    VerifyContinue, VerifyInit, VerifyResp, VerifyStepResult,
};
pub use codec::{CodecError, Decode, Encode};
pub use collection::{
    AggregateShare, AggregateShareAad, AggregateShareReq, BatchSelector, CollectionJobReq,
    CollectionJobResp, Query,
};
pub use hpke::{
    HpkeAeadId, HpkeCiphertext, HpkeConfig, HpkeConfigId, HpkeConfigList, HpkeKdfId, HpkeKemId,
    Role,
};
pub use id::{
    AggregateShareId, AggregationJobId, BatchChecksum, BatchId, CollectionJobId, IdParseError,
    ReportId, TaskId,
};
pub use problem_type::{DapProblemType, media_type};
pub use task::{BatchMode, Extension, TaskConfiguration, extensions_strictly_increasing};
pub use time::{Duration, Interval, Time, TimePrecision};
pub use upload::{
    InputShareAad, PlaintextInputShare, Report, ReportError, ReportMetadata, ReportUploadStatus,
    UploadErrors, UploadRequest,
};

#[cfg(test)]
mod tests;
