//! DAP-18 aggregator: leader and helper roles over HTTP (axum), a SQLite/PostgreSQL datastore,
//! and lease-based aggregation and collection job drivers.

pub mod aggregator;
pub mod config;
pub mod control_client;
pub mod datastore;
pub mod error;
pub mod http;
pub mod task;

pub use aggregator::{
    AggregationJobAnswer, AggregationJobProgress, Aggregator, AggregatorParameters,
    CollectionJobStatus, KeyRotatorConfig, RotationStep, TaskUploadLimit, TaskprovPeer,
    UploadLimits,
};
pub use config::{AggregatorConfig, DEFAULT_WRITER_CACHE_MIB, MAX_WRITER_CACHE_MIB};
pub use datastore::{
    Datastore, DatastoreError, DatastoreKey, HelperAggregationJob, HelperJobState, HpkeKeyState,
};
pub use error::Error;
pub use http::{CreateTaskRequest, HpkeKeyStateChange, HpkeKeyView, TaskMetrics, TaskView, router};
pub use task::{AggregatorRole, AggregatorTask, BearerToken, TokenHash};
