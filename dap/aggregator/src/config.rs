//! The aggregator's configuration file (TOML). Secrets — the control-plane token and the
//! datastore key — come from the environment, never from the file.

use crate::aggregator::AggregatorParameters;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;

/// `cairn dap serve` configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AggregatorConfig {
    /// Where the DAP API listens.
    pub listen: SocketAddr,
    /// `sqlite://path?mode=rwc` (default backend) or `postgres://…`; may instead come from the
    /// environment variable named by `database_url_env`.
    #[serde(default)]
    pub database_url: Option<String>,
    /// Environment variable holding the database URL (for URLs with passwords).
    #[serde(default)]
    pub database_url_env: Option<String>,
    /// Environment variable holding the control-plane bearer token; unset disables the
    /// control plane.
    #[serde(default = "default_control_env")]
    pub control_token_env: String,
    /// Environment variable holding the datastore key (32 bytes, unpadded URL-safe base64)
    /// that seals HPKE private keys, VDAF verification keys and outgoing bearer tokens at
    /// rest. Required; `cairn dap datastore-key` prints a fresh one.
    #[serde(default = "default_datastore_key_env")]
    pub datastore_key_env: String,
    /// How often the job drivers run, in milliseconds (the helper's only with `async_aggregation`).
    #[serde(default = "default_driver_period")]
    pub driver_period_ms: u64,
    /// The most MiB of pages the SQLite datastore's writer connection keeps cached (0:
    /// SQLite's default, about 2 MB). Ignored on PostgreSQL.
    #[serde(default = "default_writer_cache_mib")]
    pub sqlite_writer_cache_mib: u64,
    /// Tunables.
    #[serde(default)]
    pub parameters: AggregatorParameters,
    /// In-band task provisioning with one peer aggregator (off when absent).
    #[serde(default)]
    pub taskprov: Option<TaskprovConfig>,
}

/// `[taskprov]`: the peer this aggregator takes tasks advertised in band with
/// (`dap-taskprov`), and where the secrets shared with it are.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskprovConfig {
    /// This aggregator's DAP base URL as tasks name it.
    pub own_endpoint: String,
    /// The peer aggregator's DAP base URL.
    pub peer_endpoint: String,
    /// Environment variable holding the 32-byte `verify_key_init` shared with the peer
    /// (unpadded base64url).
    #[serde(default = "default_verify_key_init_env")]
    pub verify_key_init_env: String,
    /// Environment variable holding the leader→helper bearer token.
    #[serde(default = "default_taskprov_token_env")]
    pub aggregator_auth_token_env: String,
    /// The collector's HPKE configuration (an encoded `HpkeConfig`, unpadded base64url).
    pub collector_hpke_config: String,
    /// Leader: environment variable holding the collector's bearer token.
    #[serde(default = "default_taskprov_collector_env")]
    pub collector_auth_token_env: String,
    /// The smallest minimum batch size accepted.
    #[serde(default = "default_taskprov_floor")]
    pub min_batch_size_floor: u64,
    /// Report expiry age of tasks made this way, in seconds (absent: keep reports).
    #[serde(default)]
    pub report_expiry_age_secs: Option<u64>,
}

fn default_verify_key_init_env() -> String {
    "CAIRN_DAP_TASKPROV_VERIFY_KEY_INIT".into()
}

fn default_taskprov_token_env() -> String {
    "CAIRN_DAP_TASKPROV_TOKEN".into()
}

fn default_taskprov_collector_env() -> String {
    "CAIRN_DAP_TASKPROV_COLLECTOR_TOKEN".into()
}

fn default_taskprov_floor() -> u64 {
    100
}

fn default_control_env() -> String {
    "CAIRN_DAP_CONTROL_TOKEN".into()
}

fn default_datastore_key_env() -> String {
    "CAIRN_DAP_DATASTORE_KEY".into()
}

fn default_driver_period() -> u64 {
    1000
}

/// The DAP datastore writer's page cache, in MiB: its default in `cairn dap serve` and in
/// `cairn serve`'s `[dap]`.
pub const DEFAULT_WRITER_CACHE_MIB: u64 = 16;

/// The most a datastore writer's page cache may be set to, in MiB.
pub const MAX_WRITER_CACHE_MIB: u64 = 4096;

fn default_writer_cache_mib() -> u64 {
    DEFAULT_WRITER_CACHE_MIB
}

impl AggregatorConfig {
    /// The database URL from the file or the environment.
    pub fn database_url(&self) -> Option<String> {
        self.database_url.clone().or_else(|| {
            self.database_url_env
                .as_deref()
                .and_then(|v| std::env::var(v).ok())
        })
    }
}
