//! The DAP-18 problem types (`urn:ietf:params:ppm:dap:error:*`) and the media types of messages.

/// A DAP-18 error type (DAP-18 §3.7, table "DAP errors").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DapProblemType {
    /// A message could not be parsed or was otherwise invalid.
    InvalidMessage,
    /// Unknown task ID.
    UnrecognizedTask,
    /// Unknown aggregation job ID.
    UnrecognizedAggregationJob,
    /// The query's batch boundary check failed.
    BatchInvalid,
    /// Too few (or too many) reports in the batch.
    InvalidBatchSize,
    /// The aggregation parameter is invalid.
    InvalidAggregationParameter,
    /// The aggregators disagree on the reports in a batch.
    BatchMismatch,
    /// The aggregators disagree on the aggregation step.
    StepMismatch,
    /// The query includes reports already collected in another batch.
    BatchOverlap,
    /// An unknown extension.
    UnsupportedExtension,
    /// An extension list out of order or badly encoded.
    InvalidExtension,
    /// Taskprov: the aggregator opted out of the advertised task (draft-ietf-ppm-dap-taskprov).
    InvalidTask,
    /// DAP-09 only (one report per upload, so a refusal is a problem document): the report
    /// was rejected.
    ReportRejected,
    /// DAP-09 only: the report's time is too far in the future.
    ReportTooEarly,
    /// DAP-09 only: the report was encrypted to an HPKE configuration the leader does not hold.
    OutdatedConfig,
}

impl DapProblemType {
    /// Every type.
    pub const ALL: [DapProblemType; 15] = [
        DapProblemType::InvalidMessage,
        DapProblemType::UnrecognizedTask,
        DapProblemType::UnrecognizedAggregationJob,
        DapProblemType::BatchInvalid,
        DapProblemType::InvalidBatchSize,
        DapProblemType::InvalidAggregationParameter,
        DapProblemType::BatchMismatch,
        DapProblemType::StepMismatch,
        DapProblemType::BatchOverlap,
        DapProblemType::UnsupportedExtension,
        DapProblemType::InvalidExtension,
        DapProblemType::InvalidTask,
        DapProblemType::ReportRejected,
        DapProblemType::ReportTooEarly,
        DapProblemType::OutdatedConfig,
    ];

    /// The token, e.g. `invalidMessage`.
    pub fn token(self) -> &'static str {
        match self {
            DapProblemType::InvalidMessage => "invalidMessage",
            DapProblemType::UnrecognizedTask => "unrecognizedTask",
            DapProblemType::UnrecognizedAggregationJob => "unrecognizedAggregationJob",
            DapProblemType::BatchInvalid => "batchInvalid",
            DapProblemType::InvalidBatchSize => "invalidBatchSize",
            DapProblemType::InvalidAggregationParameter => "invalidAggregationParameter",
            DapProblemType::BatchMismatch => "batchMismatch",
            DapProblemType::StepMismatch => "stepMismatch",
            DapProblemType::BatchOverlap => "batchOverlap",
            DapProblemType::UnsupportedExtension => "unsupportedExtension",
            DapProblemType::InvalidExtension => "invalidExtension",
            DapProblemType::InvalidTask => "invalidTask",
            DapProblemType::ReportRejected => "reportRejected",
            DapProblemType::ReportTooEarly => "reportTooEarly",
            DapProblemType::OutdatedConfig => "outdatedConfig",
        }
    }

    /// The full URN, e.g. `urn:ietf:params:ppm:dap:error:invalidMessage`.
    pub fn urn(self) -> String {
        format!("{}{}", Self::PREFIX, self.token())
    }

    /// The URN prefix shared by every type.
    pub const PREFIX: &'static str = "urn:ietf:params:ppm:dap:error:";

    /// The type named by `urn`, if it is one of these.
    pub fn from_urn(urn: &str) -> Option<DapProblemType> {
        let token = urn.strip_prefix(Self::PREFIX)?;
        Self::ALL.into_iter().find(|t| t.token() == token)
    }

    /// The HTTP status an aggregator answers with (404 for an unknown task or job, else 400).
    pub fn http_status(self) -> u16 {
        match self {
            DapProblemType::UnrecognizedTask | DapProblemType::UnrecognizedAggregationJob => 404,
            _ => 400,
        }
    }
}

/// `application/ppm-dap;message=…` media types.
pub mod media_type {
    /// `HpkeConfigList`.
    pub const HPKE_CONFIG_LIST: &str = "application/ppm-dap;message=hpke-config-list";
    /// `UploadRequest`.
    pub const UPLOAD_REQ: &str = "application/ppm-dap;message=upload-req";
    /// `UploadErrors`.
    pub const UPLOAD_ERRORS: &str = "application/ppm-dap;message=upload-errors";
    /// `AggregationJobInitReq`.
    pub const AGGREGATION_JOB_INIT_REQ: &str =
        "application/ppm-dap;message=aggregation-job-init-req";
    /// `AggregationJobResp`.
    pub const AGGREGATION_JOB_RESP: &str = "application/ppm-dap;message=aggregation-job-resp";
    /// `AggregationJobContinueReq`.
    pub const AGGREGATION_JOB_CONTINUE_REQ: &str =
        "application/ppm-dap;message=aggregation-job-continue-req";
    /// `AggregateShareReq`.
    pub const AGGREGATE_SHARE_REQ: &str = "application/ppm-dap;message=aggregate-share-req";
    /// `AggregateShare`.
    pub const AGGREGATE_SHARE: &str = "application/ppm-dap;message=aggregate-share";
    /// `CollectionJobReq`.
    pub const COLLECTION_JOB_REQ: &str = "application/ppm-dap;message=collection-job-req";
    /// `CollectionJobResp`.
    pub const COLLECTION_JOB_RESP: &str = "application/ppm-dap;message=collection-job-resp";
    /// RFC 9457 problem details.
    pub const PROBLEM_JSON: &str = "application/problem+json";
}
