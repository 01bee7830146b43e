//! [`Datastore`]: every table of the aggregator on SQLite (default) or PostgreSQL, each statement
//! written once (`$N` placeholders, `ON CONFLICT`, `RETURNING` work in both). The only dialect
//! differences are how a write transaction starts and how a row is locked ([`Dialect`]).
//!
//! Exactly-once accounting: aggregate-share accumulation, the replay record and the report
//! state change of an aggregation job commit in one transaction, and only while the caller
//! still holds the job's lease token.

mod postgres;
mod secrets;
mod sqlite;

pub use secrets::{DatastoreKey, KeyError};

use crate::task::{AggregatorRole, AggregatorTask, BearerToken, TokenHash};
use aws_lc_rs::digest;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use cairn_dap_core::vdaf::VdafInstance;
use cairn_dap_core::{HpkeKeypair, TaskParameters};
use cairn_dap_messages::{
    AggregationJobId, BatchChecksum, CollectionJobId, Decode, Encode, HpkeConfig, HpkeConfigId,
    ReportError, ReportId, TaskId,
};
use sqlx::error::ErrorKind;
use sqlx::{Database, Pool, Postgres, Row, Sqlite, Transaction};
use thiserror::Error;

/// Why a storage operation failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum DatastoreError {
    /// The database failed.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// The URL scheme is neither `sqlite:` nor `postgres:`.
    #[error("unsupported database URL scheme (expected sqlite: or postgres:)")]
    UnsupportedUrl,
    /// A stored value could not be decoded.
    #[error("corrupt stored {0}")]
    Corrupt(&'static str),
    /// A VDAF operation on stored shares failed.
    #[error("VDAF: {0}")]
    Vdaf(#[from] cairn_dap_core::VdafError),
    /// A sealed secret does not open with the configured datastore key (wrong key, or the
    /// value was tampered with or moved).
    #[error("a stored secret does not open with the datastore key ({0})")]
    Sealed(&'static str),
    /// The secret could not be sealed.
    #[error("sealing a secret: {0}")]
    Seal(#[from] KeyError),
    /// The row already exists.
    #[error("{0} already exists")]
    Conflict(&'static str),
    /// The caller's lease on a job is gone (expired and taken by another driver).
    #[error("lease lost")]
    LeaseLost,
}

type Result<T> = std::result::Result<T, DatastoreError>;

/// The database behind a [`Datastore`]. Cloning shares the pool.
#[derive(Clone)]
pub struct Datastore {
    backend: Backend,
    key: DatastoreKey,
}

#[derive(Clone)]
enum Backend {
    Sqlite(sqlx::SqlitePool),
    Postgres(sqlx::PgPool),
}

impl std::fmt::Debug for Datastore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // No URL: it may carry a password.
        f.debug_struct("Datastore")
            .field("backend", &self.backend_name())
            .finish()
    }
}

macro_rules! on_pool {
    ($self:ident, |$pool:ident| $body:expr) => {
        match &$self.backend {
            Backend::Sqlite($pool) => $body,
            Backend::Postgres($pool) => $body,
        }
    };
}

/// What differs between the dialects.
trait Dialect: Database {
    /// Starts a write transaction (SQLite takes the write lock up front).
    const BEGIN_WRITE: &'static str;
    /// Locks a task's row for the rest of the transaction (serializes job creation against
    /// collection for that task). SQLite's `BEGIN IMMEDIATE` already serializes writers.
    const LOCK_TASK: &'static str;
    /// Picks due jobs for leasing.
    const DUE_AGGREGATION_JOBS: &'static str;
    /// Picks due collection jobs for leasing.
    const DUE_COLLECTION_JOBS: &'static str;
    /// Picks the helper's due asynchronous aggregation jobs for leasing.
    const DUE_HELPER_AGGREGATION_JOBS: &'static str;
    /// Locks one batch bucket row.
    const LOCK_BUCKET: &'static str;
}

impl Dialect for Sqlite {
    const BEGIN_WRITE: &'static str = "BEGIN IMMEDIATE";
    const LOCK_TASK: &'static str = "SELECT task_id FROM tasks WHERE task_id = $1";
    const DUE_AGGREGATION_JOBS: &'static str = "SELECT task_id, job_id FROM aggregation_jobs \
         WHERE state = 'pending' AND lease_expiry <= $1 ORDER BY lease_expiry LIMIT $2";
    const DUE_COLLECTION_JOBS: &'static str = "SELECT task_id, job_id FROM collection_jobs \
         WHERE state IN ('start', 'collecting') AND lease_expiry <= $1 ORDER BY lease_expiry LIMIT $2";
    const DUE_HELPER_AGGREGATION_JOBS: &'static str = "SELECT task_id, job_id \
         FROM helper_aggregation_jobs WHERE state = 'processing' AND lease_expiry <= $1 \
         ORDER BY lease_expiry LIMIT $2";
    const LOCK_BUCKET: &'static str = "SELECT aggregate_share, report_count, checksum, min_time, \
         max_time, collected, agg_param FROM batch_buckets \
         WHERE task_id = $1 AND batch_id = $2 AND bucket_start = $3";
}

impl Dialect for Postgres {
    const BEGIN_WRITE: &'static str = "BEGIN";
    const LOCK_TASK: &'static str = "SELECT task_id FROM tasks WHERE task_id = $1 FOR UPDATE";
    const DUE_AGGREGATION_JOBS: &'static str = "SELECT task_id, job_id FROM aggregation_jobs \
         WHERE state = 'pending' AND lease_expiry <= $1 ORDER BY lease_expiry LIMIT $2 \
         FOR UPDATE SKIP LOCKED";
    const DUE_COLLECTION_JOBS: &'static str = "SELECT task_id, job_id FROM collection_jobs \
         WHERE state IN ('start', 'collecting') AND lease_expiry <= $1 ORDER BY lease_expiry LIMIT $2 \
         FOR UPDATE SKIP LOCKED";
    const DUE_HELPER_AGGREGATION_JOBS: &'static str = "SELECT task_id, job_id \
         FROM helper_aggregation_jobs WHERE state = 'processing' AND lease_expiry <= $1 \
         ORDER BY lease_expiry LIMIT $2 FOR UPDATE SKIP LOCKED";
    const LOCK_BUCKET: &'static str = "SELECT aggregate_share, report_count, checksum, min_time, \
         max_time, collected, agg_param FROM batch_buckets \
         WHERE task_id = $1 AND batch_id = $2 AND bucket_start = $3 FOR UPDATE";
}

async fn begin_write<DB: Dialect>(pool: &Pool<DB>) -> Result<Transaction<'static, DB>> {
    Ok(pool.begin_with(DB::BEGIN_WRITE).await?)
}

fn int(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn uint(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.kind() == ErrorKind::UniqueViolation)
}

/// The AAD of an HPKE private key's sealed form.
fn hpke_key_aad(config_id: i64) -> Vec<u8> {
    secrets::aad("hpke_keys", "private_key", &config_id.to_be_bytes())
}

/// Where an HPKE key is in its rotation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum HpkeKeyState {
    /// Decrypts, not advertised yet (give caches time to learn it before activating).
    Pending,
    /// Advertised in the HPKE config list and decrypts.
    Active,
    /// No longer advertised; still decrypts reports sealed to it that are in flight.
    Expired,
}

impl HpkeKeyState {
    /// `"pending"`, `"active"` or `"expired"`.
    pub fn as_str(self) -> &'static str {
        match self {
            HpkeKeyState::Pending => "pending",
            HpkeKeyState::Active => "active",
            HpkeKeyState::Expired => "expired",
        }
    }

    /// The state named `s`.
    pub fn parse(s: &str) -> Option<HpkeKeyState> {
        match s {
            "pending" => Some(HpkeKeyState::Pending),
            "active" => Some(HpkeKeyState::Active),
            "expired" => Some(HpkeKeyState::Expired),
            _ => None,
        }
    }
}

/// SHA-256 of a report ID: its contribution to a batch checksum.
pub fn report_checksum(id: &ReportId) -> BatchChecksum {
    let d = digest::digest(&digest::SHA256, id.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    BatchChecksum::from_bytes(out)
}

/// A batch bucket's key: the batch ID (empty in time-interval mode) and the bucket's start
/// time (the report's time unit in time-interval mode; 0 in leader-selected mode).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BucketKey {
    /// Leader-selected batch ID bytes, or empty.
    pub batch_id: Vec<u8>,
    /// Time-interval bucket start (time-precision units), or 0.
    pub bucket_start: u64,
}

/// Which batch buckets make up a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BatchScope {
    /// Time-interval: the buckets of `[start, end)` (time-precision units).
    TimeInterval {
        /// First time unit.
        start: u64,
        /// One past the last time unit.
        end: u64,
    },
    /// Leader-selected: the batch's one bucket (start 0).
    LeaderSelected {
        /// The batch ID.
        batch_id: [u8; 32],
    },
}

impl BatchScope {
    /// `(batch_id, first bucket_start, one past the last)` as bound in SQL.
    fn bounds(&self) -> (Vec<u8>, i64, i64) {
        match self {
            BatchScope::TimeInterval { start, end } => (Vec::new(), int(*start), int(*end)),
            BatchScope::LeaderSelected { batch_id } => (batch_id.to_vec(), 0, 1),
        }
    }
}

/// A report as the leader stores it after upload.
#[derive(Debug, Clone)]
pub struct StoredReport {
    /// The report's ID.
    pub report_id: ReportId,
    /// Its time (time-precision units).
    pub time: u64,
    /// Encoded public extensions list.
    pub public_extensions: Vec<u8>,
    /// The public share.
    pub public_share: Vec<u8>,
    /// The leader's decrypted input share payload.
    pub leader_input_share: Vec<u8>,
    /// The helper's encrypted input share, encoded.
    pub helper_encrypted_input_share: Vec<u8>,
}

/// What happened to one report of an upload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum UploadOutcome {
    /// Stored.
    Stored,
    /// Refused for this reason; nothing stored.
    Refused(ReportError),
}

/// Builds the helper's aggregate-share response from a batch, or refuses it with a problem.
pub type ShareBuilder<'a> = dyn Fn(&BatchAggregate) -> std::result::Result<Vec<u8>, cairn_dap_messages::DapProblemType>
    + Sync
    + 'a;

/// Builds the helper's encoded `AggregationJobResp` from the committed per-report outcomes.
pub type ResponseBuilder<'a> =
    dyn Fn(&[std::result::Result<(), ReportError>]) -> Vec<u8> + Sync + 'a;

/// Where a helper's aggregation job stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum HelperJobState {
    /// Accepted and stored; the helper's driver has not prepared it yet.
    Processing,
    /// Prepared and committed; the response is stored.
    Finished,
    /// Abandoned by the leader (`DELETE`). What it committed stays committed.
    Deleted,
}

impl HelperJobState {
    fn parse(s: &str) -> Result<HelperJobState> {
        match s {
            "processing" => Ok(HelperJobState::Processing),
            "finished" => Ok(HelperJobState::Finished),
            "deleted" => Ok(HelperJobState::Deleted),
            _ => Err(DatastoreError::Corrupt("helper aggregation job state")),
        }
    }
}

/// A helper's aggregation job as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HelperAggregationJob {
    /// Where it stands.
    pub state: HelperJobState,
    /// The encoded `AggregationJobResp` once finished (empty before).
    pub response: Vec<u8>,
}

/// A leased job: who holds it and until the lease is taken over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The task.
    pub task_id: TaskId,
    /// The job (aggregation or collection).
    pub job_id: [u8; 16],
    /// Proves the holder; the commit succeeds only with it.
    pub token: [u8; 16],
}

/// One report's outcome in an aggregation job, ready to commit.
#[derive(Debug, Clone)]
pub struct ReportOutcome {
    /// The report.
    pub report_id: ReportId,
    /// Its time.
    pub time: u64,
    /// Its bucket.
    pub bucket: BucketKey,
    /// The output share, or why the report was rejected.
    pub result: std::result::Result<Vec<u8>, ReportError>,
}

/// The leader's view of a collection job.
#[derive(Debug, Clone)]
pub struct CollectionJob {
    /// The encoded `CollectionJobReq`.
    pub request: Vec<u8>,
    /// `start`, `collecting`, `finished`, `failed` or `deleted`.
    pub state: String,
    /// While waiting: `aggregating` or `insufficient-reports`.
    pub wait_reason: String,
    /// Reports aggregated in the batch so far (or final).
    pub report_count: u64,
    /// Finished: the encoded `CollectionJobResp`.
    pub result: Option<Vec<u8>>,
    /// Failed: the DAP problem token.
    pub error: Option<String>,
    /// Collecting: the leader's merged aggregate share.
    pub leader_aggregate_share: Option<Vec<u8>>,
    /// Collecting: the batch checksum.
    pub checksum: Option<BatchChecksum>,
    /// Leader-selected: the batch the leader chose for this job, once chosen.
    pub batch_id: Option<[u8; 32]>,
}

/// What a collection attempt found.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum CollectionReadiness {
    /// Not ready; the reason is stored on the job.
    Waiting,
    /// The batch's buckets are now marked collected and the leader's share is stored.
    Ready {
        /// Merged aggregate share.
        aggregate_share: Vec<u8>,
        /// Reports in the batch.
        report_count: u64,
        /// Batch checksum.
        checksum: BatchChecksum,
        /// Smallest and largest report time in the batch.
        time_range: (u64, u64),
        /// The batch collected.
        scope: BatchScope,
    },
    /// The batch overlaps a collected one.
    Overlap,
}

/// The sum of a set of buckets.
#[derive(Debug, Clone)]
pub struct BatchAggregate {
    /// Merged aggregate share.
    pub aggregate_share: Vec<u8>,
    /// Reports.
    pub report_count: u64,
    /// XOR checksum.
    pub checksum: BatchChecksum,
    /// (min, max) report time, if any report.
    pub time_range: Option<(u64, u64)>,
    /// Whether any bucket was already collected.
    pub any_collected: bool,
    /// Whether any bucket used a different aggregation parameter.
    pub agg_param_mismatch: bool,
}

impl Datastore {
    /// Connects to `sqlite:…` (created if missing) or `postgres:…` and migrates; `key` seals
    /// the secrets stored. Errors never include the URL.
    pub async fn connect(url: &str, key: DatastoreKey) -> Result<Datastore> {
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite(sqlite::connect_url(url).await?)
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Backend::Postgres(postgres::connect_url(url).await?)
        } else {
            return Err(DatastoreError::UnsupportedUrl);
        };
        Ok(Datastore { backend, key })
    }

    /// `"sqlite"` or `"postgres"`.
    pub fn backend_name(&self) -> &'static str {
        match self.backend {
            Backend::Sqlite(_) => "sqlite",
            Backend::Postgres(_) => "postgres",
        }
    }

    /// Closes the pool.
    pub async fn close(&self) {
        on_pool!(self, |pool| pool.close().await)
    }

    // ---- HPKE keys ----

    /// The aggregator's HPKE keypairs with their states, generating and storing an active one
    /// (config ID 1) if there is none at all.
    pub async fn get_or_create_hpke_keypairs(&self) -> Result<Vec<(HpkeKeypair, HpkeKeyState)>> {
        if self.get_hpke_keypairs().await?.is_empty() {
            let fresh = HpkeKeypair::generate(HpkeConfigId(1));
            match self.put_hpke_keypair(&fresh, HpkeKeyState::Active).await {
                Ok(()) | Err(DatastoreError::Conflict(_)) => {}
                Err(e) => return Err(e),
            }
        }
        self.get_hpke_keypairs().await
    }

    /// Every HPKE keypair with its state, by config ID.
    pub async fn get_hpke_keypairs(&self) -> Result<Vec<(HpkeKeypair, HpkeKeyState)>> {
        on_pool!(self, |pool| {
            let rows = sqlx::query(
                "SELECT config_id, config, private_key, state FROM hpke_keys ORDER BY config_id",
            )
            .fetch_all(pool)
            .await?;
            rows.into_iter()
                .map(|row| {
                    let id: i64 = row.try_get(0)?;
                    let config = HpkeConfig::get_decoded(&row.try_get::<Vec<u8>, _>(1)?)
                        .map_err(|_| DatastoreError::Corrupt("hpke config"))?;
                    let sealed: Vec<u8> = row.try_get(2)?;
                    let private = self
                        .key
                        .open(&hpke_key_aad(id), &sealed)
                        .ok_or(DatastoreError::Sealed("hpke private key"))?;
                    let state = HpkeKeyState::parse(&row.try_get::<String, _>(3)?)
                        .ok_or(DatastoreError::Corrupt("hpke key state"))?;
                    let kp = HpkeKeypair::new(config, private)
                        .map_err(|_| DatastoreError::Corrupt("hpke key"))?;
                    Ok((kp, state))
                })
                .collect()
        })
    }

    /// Stores a new HPKE keypair (private key sealed); `Conflict` if its config ID is taken.
    pub async fn put_hpke_keypair(&self, kp: &HpkeKeypair, state: HpkeKeyState) -> Result<()> {
        let id = i64::from(kp.config().id.0);
        let config = kp
            .config()
            .get_encoded()
            .map_err(|_| DatastoreError::Corrupt("hpke config"))?;
        let sealed = self.key.seal(&hpke_key_aad(id), kp.private_key())?;
        on_pool!(self, |pool| {
            sqlx::query(
                "INSERT INTO hpke_keys (config_id, config, private_key, state) \
                 VALUES ($1, $2, $3, $4)",
            )
            .bind(id)
            .bind(config)
            .bind(sealed)
            .bind(state.as_str())
            .execute(pool)
            .await
            .map_err(|e| {
                if is_unique_violation(&e) {
                    DatastoreError::Conflict("hpke key")
                } else {
                    e.into()
                }
            })?;
            Ok(())
        })
    }

    /// Moves a key to `state`; `false` if there is no such key.
    pub async fn set_hpke_key_state(&self, id: HpkeConfigId, state: HpkeKeyState) -> Result<bool> {
        on_pool!(self, |pool| {
            let n = sqlx::query("UPDATE hpke_keys SET state = $2 WHERE config_id = $1")
                .bind(i64::from(id.0))
                .bind(state.as_str())
                .execute(pool)
                .await?
                .rows_affected();
            Ok(n == 1)
        })
    }

    /// Deletes an expired key; `false` if there is no expired key with this ID.
    pub async fn delete_hpke_key(&self, id: HpkeConfigId) -> Result<bool> {
        on_pool!(self, |pool| {
            let n = sqlx::query("DELETE FROM hpke_keys WHERE config_id = $1 AND state = 'expired'")
                .bind(i64::from(id.0))
                .execute(pool)
                .await?
                .rows_affected();
            Ok(n == 1)
        })
    }

    // ---- tasks ----

    /// Stores a new task; `Conflict` if its ID exists.
    pub async fn put_task(&self, task: &AggregatorTask) -> Result<()> {
        let params = serde_json::to_string(&task.parameters)
            .map_err(|_| DatastoreError::Corrupt("task parameters"))?;
        let collector = task
            .collector_hpke_config
            .get_encoded()
            .map_err(|_| DatastoreError::Corrupt("collector hpke config"))?;
        let tid = task.parameters.task_id.as_bytes();
        let verify_key = self.key.seal(
            &secrets::aad("tasks", "vdaf_verify_key", tid),
            &task.vdaf_verify_key,
        )?;
        let token = task
            .aggregator_auth_token
            .as_ref()
            .map(|t| {
                self.key
                    .seal(
                        &secrets::aad("tasks", "aggregator_auth_token", tid),
                        t.expose().as_bytes(),
                    )
                    .map(|sealed| URL_SAFE_NO_PAD.encode(sealed))
            })
            .transpose()?;
        on_pool!(self, |pool| {
            sqlx::query(
                "INSERT INTO tasks (task_id, role, parameters, vdaf_verify_key, \
                 collector_hpke_config, aggregator_auth_token, aggregator_auth_token_hash, \
                 collector_auth_token_hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(task.parameters.task_id.as_bytes().to_vec())
            .bind(task.role.as_str())
            .bind(params)
            .bind(verify_key)
            .bind(collector)
            .bind(token)
            .bind(
                task.aggregator_auth_token_hash
                    .as_ref()
                    .map(|h| h.0.to_vec()),
            )
            .bind(
                task.collector_auth_token_hash
                    .as_ref()
                    .map(|h| h.0.to_vec()),
            )
            .execute(pool)
            .await
            .map_err(|e| {
                if is_unique_violation(&e) {
                    DatastoreError::Conflict("task")
                } else {
                    e.into()
                }
            })?;
            Ok(())
        })
    }

    /// The task, if known.
    pub async fn get_task(&self, task_id: &TaskId) -> Result<Option<AggregatorTask>> {
        on_pool!(self, |pool| {
            let row = sqlx::query(
                "SELECT role, parameters, vdaf_verify_key, collector_hpke_config, \
                 aggregator_auth_token, aggregator_auth_token_hash, collector_auth_token_hash \
                 FROM tasks WHERE task_id = $1",
            )
            .bind(task_id.as_bytes().to_vec())
            .fetch_optional(pool)
            .await?;
            let Some(row) = row else { return Ok(None) };
            let role = AggregatorRole::parse(&row.try_get::<String, _>(0)?)
                .ok_or(DatastoreError::Corrupt("role"))?;
            let parameters: TaskParameters = serde_json::from_str(&row.try_get::<String, _>(1)?)
                .map_err(|_| DatastoreError::Corrupt("task parameters"))?;
            let tid = task_id.as_bytes();
            let key = self
                .key
                .open(
                    &secrets::aad("tasks", "vdaf_verify_key", tid),
                    &row.try_get::<Vec<u8>, _>(2)?,
                )
                .ok_or(DatastoreError::Sealed("vdaf verify key"))?;
            let token = row
                .try_get::<Option<String>, _>(4)?
                .map(|t| {
                    URL_SAFE_NO_PAD
                        .decode(t)
                        .ok()
                        .and_then(|sealed| {
                            self.key.open(
                                &secrets::aad("tasks", "aggregator_auth_token", tid),
                                &sealed,
                            )
                        })
                        .and_then(|plain| String::from_utf8(plain).ok())
                        .map(BearerToken::new)
                        .ok_or(DatastoreError::Sealed("aggregator auth token"))
                })
                .transpose()?;
            let hash = |v: Option<Vec<u8>>| -> Result<Option<TokenHash>> {
                v.map(|v| {
                    <[u8; 32]>::try_from(v.as_slice())
                        .map(TokenHash)
                        .map_err(|_| DatastoreError::Corrupt("token hash"))
                })
                .transpose()
            };
            Ok(Some(AggregatorTask {
                parameters,
                role,
                vdaf_verify_key: <[u8; 32]>::try_from(key.as_slice())
                    .map_err(|_| DatastoreError::Corrupt("verify key"))?,
                collector_hpke_config: HpkeConfig::get_decoded(&row.try_get::<Vec<u8>, _>(3)?)
                    .map_err(|_| DatastoreError::Corrupt("collector hpke config"))?,
                aggregator_auth_token: token,
                aggregator_auth_token_hash: hash(row.try_get(5)?)?,
                collector_auth_token_hash: hash(row.try_get(6)?)?,
            }))
        })
    }

    // ---- uploads (leader) ----

    /// Stores the accepted reports of one upload request in one transaction (durable before
    /// the client hears 2xx). A report whose ID exists (or repeats an earlier one of the same
    /// request), or whose batch bucket was collected, is refused. Multi-row statements: one
    /// collected-bucket query for the request's distinct report times, then inserts of up to
    /// [`MULTI_ROW_CHUNK`] reports each, whose `RETURNING` names the reports that were new.
    /// The task's upload counters move in the same transaction: `accepted` and
    /// `report_replayed` from these outcomes, plus `refused` (reports the caller turned away
    /// before storage, counted per reason).
    pub async fn put_client_reports(
        &self,
        task_id: &TaskId,
        reports: &[StoredReport],
        refused: &[(&'static str, u64)],
    ) -> Result<Vec<UploadOutcome>> {
        let tid = task_id.as_bytes().to_vec();
        let times: Vec<u64> = reports
            .iter()
            .map(|r| r.time)
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        on_pool!(self, |pool| {
            let mut tx = begin_write(pool).await?;
            let mut collected = std::collections::HashSet::new();
            for chunk in times.chunks(MULTI_ROW_CHUNK) {
                let sql = format!(
                    "SELECT bucket_start FROM batch_buckets WHERE task_id = $1 AND batch_id = $2 \
                     AND collected = 1 AND bucket_start IN ({})",
                    placeholders(3, chunk.len())
                );
                let mut q = sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(sql))
                    .bind(tid.clone())
                    .bind(Vec::<u8>::new());
                for t in chunk {
                    q = q.bind(int(*t));
                }
                collected.extend(q.fetch_all(&mut *tx).await?.into_iter().map(uint));
            }
            // Candidates: not in a collected bucket and not repeating an earlier report of
            // this request.
            let mut seen = std::collections::HashSet::new();
            let candidates: Vec<&StoredReport> = reports
                .iter()
                .filter(|r| !collected.contains(&r.time) && seen.insert(r.report_id))
                .collect();
            let mut stored = std::collections::HashSet::new();
            for chunk in candidates.chunks(MULTI_ROW_CHUNK) {
                let rows: Vec<String> = (0..chunk.len())
                    .map(|k| {
                        let b = 2 + k * 6;
                        format!(
                            "($1, ${}, ${}, ${}, ${}, ${}, ${}, 'start')",
                            b,
                            b + 1,
                            b + 2,
                            b + 3,
                            b + 4,
                            b + 5
                        )
                    })
                    .collect();
                let sql = format!(
                    "INSERT INTO client_reports (task_id, report_id, client_time, \
                     public_extensions, public_share, leader_input_share, \
                     helper_encrypted_input_share, state) VALUES {} \
                     ON CONFLICT DO NOTHING RETURNING report_id",
                    rows.join(", ")
                );
                let mut q =
                    sqlx::query_scalar::<_, Vec<u8>>(sqlx::AssertSqlSafe(sql)).bind(tid.clone());
                for r in chunk {
                    q = q
                        .bind(r.report_id.as_bytes().to_vec())
                        .bind(int(r.time))
                        .bind(r.public_extensions.clone())
                        .bind(r.public_share.clone())
                        .bind(r.leader_input_share.clone())
                        .bind(r.helper_encrypted_input_share.clone());
                }
                stored.extend(q.fetch_all(&mut *tx).await?);
            }
            // A report counts as stored once: a later copy in the same request is a replay.
            let mut out = Vec::with_capacity(reports.len());
            for r in reports {
                out.push(if stored.remove(r.report_id.as_bytes().as_slice()) {
                    UploadOutcome::Stored
                } else {
                    UploadOutcome::Refused(ReportError::ReportReplayed)
                });
            }
            let accepted = out
                .iter()
                .filter(|o| matches!(o, UploadOutcome::Stored))
                .count() as u64;
            let mut counts: std::collections::BTreeMap<&str, u64> = Default::default();
            for (reason, n) in refused
                .iter()
                .copied()
                .chain([
                    ("accepted", accepted),
                    (
                        ReportError::ReportReplayed.name(),
                        reports.len() as u64 - accepted,
                    ),
                ])
                .filter(|(_, n)| *n > 0)
            {
                *counts.entry(reason).or_default() += n;
            }
            for (reason, n) in counts {
                sqlx::query(
                    "INSERT INTO upload_counters (task_id, reason, count) VALUES ($1, $2, $3) \
                     ON CONFLICT (task_id, reason) DO UPDATE SET count = upload_counters.count + $3",
                )
                .bind(tid.clone())
                .bind(reason.to_string())
                .bind(int(n))
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            Ok(out)
        })
    }

    /// The task's upload counters, by reason.
    pub async fn get_upload_counters(&self, task_id: &TaskId) -> Result<Vec<(String, u64)>> {
        on_pool!(self, |pool| {
            let rows = sqlx::query(
                "SELECT reason, count FROM upload_counters WHERE task_id = $1 ORDER BY reason",
            )
            .bind(task_id.as_bytes().to_vec())
            .fetch_all(pool)
            .await?;
            rows.into_iter()
                .map(|r| Ok((r.try_get(0)?, uint(r.try_get(1)?))))
                .collect()
        })
    }

    /// How many reports the leader holds for the task.
    pub async fn count_client_reports(&self, task_id: &TaskId) -> Result<u64> {
        on_pool!(self, |pool| {
            let n: i64 =
                sqlx::query_scalar("SELECT COUNT(*) FROM client_reports WHERE task_id = $1")
                    .bind(task_id.as_bytes().to_vec())
                    .fetch_one(pool)
                    .await?;
            Ok(uint(n))
        })
    }

    // ---- aggregation jobs (leader) ----

    /// Groups unaggregated reports of a time-interval task into new jobs of at most
    /// `max_job_size` reports, each job's reports sorted by ID. Reports whose bucket was
    /// collected are failed instead. Returns the new job IDs.
    pub async fn create_aggregation_jobs(
        &self,
        task_id: &TaskId,
        max_job_size: usize,
        new_id: &mut (dyn FnMut() -> [u8; 16] + Send),
    ) -> Result<Vec<AggregationJobId>> {
        let tid = task_id.as_bytes().to_vec();
        on_pool!(self, |pool| {
            let mut tx = begin_write(pool).await?;
            sqlx::query(lock_task_sql(pool))
                .bind(tid.clone())
                .execute(&mut *tx)
                .await?;
            let rows = sqlx::query(
                "SELECT r.report_id, COALESCE(b.collected, 0) FROM client_reports r \
                 LEFT JOIN batch_buckets b ON b.task_id = r.task_id AND b.batch_id = $2 \
                 AND b.bucket_start = r.client_time \
                 WHERE r.task_id = $1 AND r.state = 'start' ORDER BY r.report_id LIMIT 100000",
            )
            .bind(tid.clone())
            .bind(Vec::<u8>::new())
            .fetch_all(&mut *tx)
            .await?;
            let mut fresh = Vec::new();
            for row in rows {
                let id: Vec<u8> = row.try_get(0)?;
                let collected: i64 = row.try_get(1)?;
                if collected == 1 {
                    sqlx::query(
                        "UPDATE client_reports SET state = 'failed' \
                         WHERE task_id = $1 AND report_id = $2",
                    )
                    .bind(tid.clone())
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                } else {
                    fresh.push(id);
                }
            }
            let mut jobs = Vec::new();
            for chunk in fresh.chunks(max_job_size.max(1)) {
                let job = new_id();
                sqlx::query(
                    "INSERT INTO aggregation_jobs (task_id, job_id, batch_id, state, \
                     lease_token, lease_expiry, attempts) VALUES ($1, $2, $3, 'pending', NULL, 0, 0)",
                )
                .bind(tid.clone())
                .bind(job.to_vec())
                .bind(Vec::<u8>::new())
                .execute(&mut *tx)
                .await?;
                for id in chunk {
                    sqlx::query(
                        "UPDATE client_reports SET state = 'aggregating', aggregation_job_id = $3 \
                         WHERE task_id = $1 AND report_id = $2",
                    )
                    .bind(tid.clone())
                    .bind(id.clone())
                    .bind(job.to_vec())
                    .execute(&mut *tx)
                    .await?;
                }
                jobs.push(AggregationJobId::from_bytes(job));
            }
            tx.commit().await?;
            Ok(jobs)
        })
    }

    /// Leader-selected tasks: assigns unaggregated reports (oldest first) to the task's open
    /// batches, filling each up to `max_batch_size` reports that are aggregated or in flight
    /// before opening a new one, and groups each batch's new reports into jobs of at most
    /// `max_job_size`. Returns the new job IDs. Runs under the task lock, like collection, so
    /// a batch is never filled while it is being chosen for collection.
    pub async fn create_leader_selected_aggregation_jobs(
        &self,
        task_id: &TaskId,
        max_job_size: usize,
        max_batch_size: u64,
        new_id: &mut (dyn FnMut() -> [u8; 16] + Send),
    ) -> Result<Vec<AggregationJobId>> {
        let tid = task_id.as_bytes().to_vec();
        let max_batch_size = max_batch_size.max(1);
        on_pool!(self, |pool| {
            let mut tx = begin_write(pool).await?;
            sqlx::query(lock_task_sql(pool))
                .bind(tid.clone())
                .execute(&mut *tx)
                .await?;
            let fresh: Vec<Vec<u8>> = sqlx::query_scalar(
                "SELECT report_id FROM client_reports WHERE task_id = $1 AND state = 'start' \
                 ORDER BY client_time, report_id LIMIT 100000",
            )
            .bind(tid.clone())
            .fetch_all(&mut *tx)
            .await?;
            if fresh.is_empty() {
                tx.commit().await?;
                return Ok(Vec::new());
            }
            let open = sqlx::query(
                "SELECT b.batch_id, (SELECT COUNT(*) FROM client_reports r WHERE r.task_id = b.task_id \
                 AND r.batch_id = b.batch_id AND r.state IN ('aggregating', 'aggregated')) \
                 FROM leader_batches b WHERE b.task_id = $1 AND b.state = 'open' \
                 ORDER BY b.seq",
            )
            .bind(tid.clone())
            .fetch_all(&mut *tx)
            .await?;
            let mut batches: Vec<(Vec<u8>, u64)> = open
                .into_iter()
                .map(|r| Ok((r.try_get(0)?, uint(r.try_get(1)?))))
                .collect::<Result<_>>()?;
            let mut reports = fresh.as_slice();
            let mut jobs = Vec::new();
            let mut next_batch = 0;
            while !reports.is_empty() {
                let (batch_id, filled) = match batches.get(next_batch) {
                    Some(b) => b.clone(),
                    None => {
                        let mut id = [0u8; 32];
                        id[..16].copy_from_slice(&new_id());
                        id[16..].copy_from_slice(&new_id());
                        sqlx::query(
                            "INSERT INTO leader_batches (task_id, batch_id, state, seq) \
                             SELECT $1, $2, 'open', COALESCE(MAX(seq), 0) + 1 \
                             FROM leader_batches WHERE task_id = $1",
                        )
                        .bind(tid.clone())
                        .bind(id.to_vec())
                        .execute(&mut *tx)
                        .await?;
                        batches.push((id.to_vec(), 0));
                        (id.to_vec(), 0)
                    }
                };
                next_batch += 1;
                let room =
                    usize::try_from(max_batch_size.saturating_sub(filled)).unwrap_or(usize::MAX);
                if room == 0 {
                    continue;
                }
                let (take, rest) = reports.split_at(room.min(reports.len()));
                reports = rest;
                for chunk in take.chunks(max_job_size.max(1)) {
                    let job = new_id();
                    sqlx::query(
                        "INSERT INTO aggregation_jobs (task_id, job_id, batch_id, state, \
                         lease_token, lease_expiry, attempts) \
                         VALUES ($1, $2, $3, 'pending', NULL, 0, 0)",
                    )
                    .bind(tid.clone())
                    .bind(job.to_vec())
                    .bind(batch_id.clone())
                    .execute(&mut *tx)
                    .await?;
                    for id in chunk {
                        sqlx::query(
                            "UPDATE client_reports SET state = 'aggregating', \
                             aggregation_job_id = $3, batch_id = $4 \
                             WHERE task_id = $1 AND report_id = $2",
                        )
                        .bind(tid.clone())
                        .bind(id.clone())
                        .bind(job.to_vec())
                        .bind(batch_id.clone())
                        .execute(&mut *tx)
                        .await?;
                    }
                    jobs.push(AggregationJobId::from_bytes(job));
                }
            }
            tx.commit().await?;
            Ok(jobs)
        })
    }

    /// The batch an aggregation job belongs to: a leader-selected batch ID, or `None` in
    /// time-interval mode.
    pub async fn get_aggregation_job_batch_id(
        &self,
        task_id: &TaskId,
        job_id: &[u8; 16],
    ) -> Result<Option<[u8; 32]>> {
        on_pool!(self, |pool| {
            let id: Option<Vec<u8>> = sqlx::query_scalar(
                "SELECT batch_id FROM aggregation_jobs WHERE task_id = $1 AND job_id = $2",
            )
            .bind(task_id.as_bytes().to_vec())
            .bind(job_id.to_vec())
            .fetch_optional(pool)
            .await?;
            match id {
                None => Err(DatastoreError::Corrupt("aggregation job")),
                Some(b) if b.is_empty() => Ok(None),
                Some(b) => <[u8; 32]>::try_from(b.as_slice())
                    .map(Some)
                    .map_err(|_| DatastoreError::Corrupt("batch id")),
            }
        })
    }

    /// Leases up to `limit` pending aggregation jobs whose lease is free or expired, until
    /// `now + lease_secs`. Each gets a fresh token; an expired holder's commit will fail.
    pub async fn acquire_aggregation_jobs(
        &self,
        now: u64,
        lease_secs: u64,
        limit: u64,
        new_token: &mut (dyn FnMut() -> [u8; 16] + Send),
    ) -> Result<Vec<Lease>> {
        self.acquire_leases(JobKind::Aggregation, now, lease_secs, limit, new_token)
            .await
    }

    /// Leases up to `limit` due jobs of one kind until `now + lease_secs`, each with a fresh
    /// token, in one write transaction.
    async fn acquire_leases(
        &self,
        kind: JobKind,
        now: u64,
        lease_secs: u64,
        limit: u64,
        new_token: &mut (dyn FnMut() -> [u8; 16] + Send),
    ) -> Result<Vec<Lease>> {
        on_pool!(self, |pool| {
            let mut tx = begin_write(pool).await?;
            let rows = sqlx::query(due_jobs_sql(pool, kind))
                .bind(int(now))
                .bind(int(limit))
                .fetch_all(&mut *tx)
                .await?;
            let mut leases = Vec::new();
            for row in rows {
                let task: Vec<u8> = row.try_get(0)?;
                let job: Vec<u8> = row.try_get(1)?;
                let token = new_token();
                sqlx::query(kind.lease_sql())
                    .bind(task.clone())
                    .bind(job.clone())
                    .bind(token.to_vec())
                    .bind(int(now.saturating_add(lease_secs)))
                    .execute(&mut *tx)
                    .await?;
                leases.push(Lease {
                    task_id: TaskId::try_from_slice(&task).ok_or(DatastoreError::Corrupt("id"))?,
                    job_id: job.try_into().map_err(|_| DatastoreError::Corrupt("id"))?,
                    token,
                });
            }
            tx.commit().await?;
            Ok(leases)
        })
    }

    /// The reports of an aggregation job, sorted by report ID.
    pub async fn get_aggregation_job_reports(
        &self,
        task_id: &TaskId,
        job_id: &[u8; 16],
    ) -> Result<Vec<StoredReport>> {
        on_pool!(self, |pool| {
            let rows = sqlx::query(
                "SELECT report_id, client_time, public_extensions, public_share, \
                 leader_input_share, helper_encrypted_input_share FROM client_reports \
                 WHERE task_id = $1 AND aggregation_job_id = $2 ORDER BY report_id",
            )
            .bind(task_id.as_bytes().to_vec())
            .bind(job_id.to_vec())
            .fetch_all(pool)
            .await?;
            rows.into_iter()
                .map(|r| {
                    Ok(StoredReport {
                        report_id: ReportId::try_from_slice(&r.try_get::<Vec<u8>, _>(0)?)
                            .ok_or(DatastoreError::Corrupt("report id"))?,
                        time: uint(r.try_get(1)?),
                        public_extensions: r.try_get(2)?,
                        public_share: r.try_get(3)?,
                        leader_input_share: r.try_get(4)?,
                        helper_encrypted_input_share: r.try_get(5)?,
                    })
                })
                .collect()
        })
    }

    /// Commits a finished aggregation job at the leader: accumulates output shares into their
    /// buckets, records report IDs against replay, sets report states and finishes the job —
    /// all in one transaction, and only if `lease` is still the job's lease.
    pub async fn commit_leader_aggregation_job(
        &self,
        lease: &Lease,
        vdaf: &VdafInstance,
        agg_param: &[u8],
        outcomes: &[ReportOutcome],
    ) -> Result<()> {
        let tid = lease.task_id.as_bytes().to_vec();
        on_pool!(self, |pool| {
            let mut tx = begin_write(pool).await?;
            let owned = sqlx::query(
                "UPDATE aggregation_jobs SET state = 'finished', lease_token = NULL \
                 WHERE task_id = $1 AND job_id = $2 AND lease_token = $3 AND state = 'pending'",
            )
            .bind(tid.clone())
            .bind(lease.job_id.to_vec())
            .bind(lease.token.to_vec())
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if owned != 1 {
                return Err(DatastoreError::LeaseLost);
            }
            let results =
                BucketOps::commit_output_shares(&mut tx, &tid, vdaf, agg_param, outcomes).await?;
            let (mut aggregated, mut failed) = (Vec::new(), Vec::new());
            for (o, r) in outcomes.iter().zip(&results) {
                if r.is_ok() {
                    aggregated.push(&o.report_id);
                } else {
                    failed.push(&o.report_id);
                }
            }
            BucketOps::set_report_states(&mut tx, &tid, &aggregated, "aggregated").await?;
            BucketOps::set_report_states(&mut tx, &tid, &failed, "failed").await?;
            tx.commit().await?;
            Ok(())
        })
    }

    /// Gives a lease back early (after a transient failure) so another attempt can start soon.
    pub async fn release_aggregation_job(&self, lease: &Lease, retry_at: u64) -> Result<()> {
        on_pool!(self, |pool| {
            sqlx::query(
                "UPDATE aggregation_jobs SET lease_token = NULL, lease_expiry = $4 \
                 WHERE task_id = $1 AND job_id = $2 AND lease_token = $3",
            )
            .bind(lease.task_id.as_bytes().to_vec())
            .bind(lease.job_id.to_vec())
            .bind(lease.token.to_vec())
            .bind(int(retry_at))
            .execute(pool)
            .await?;
            Ok(())
        })
    }

    /// The helper's ID for a leader aggregation job, once the helper has deferred its answer
    /// (the driver then polls that resource instead of initializing the job again).
    pub async fn get_aggregation_job_helper_id(
        &self,
        task_id: &TaskId,
        job_id: &[u8; 16],
    ) -> Result<Option<AggregationJobId>> {
        on_pool!(self, |pool| {
            let id: Option<Option<Vec<u8>>> = sqlx::query_scalar(
                "SELECT helper_job_id FROM aggregation_jobs WHERE task_id = $1 AND job_id = $2",
            )
            .bind(task_id.as_bytes().to_vec())
            .bind(job_id.to_vec())
            .fetch_optional(pool)
            .await?;
            match id {
                None => Err(DatastoreError::Corrupt("aggregation job")),
                Some(None) => Ok(None),
                Some(Some(b)) => AggregationJobId::try_from_slice(&b)
                    .map(Some)
                    .ok_or(DatastoreError::Corrupt("helper job id")),
            }
        })
    }

    /// Records that the helper is still processing a leased job (under `helper_job_id`, or
    /// `None` to forget it and initialize again) and gives the lease back until `poll_at`.
    /// Fails with `LeaseLost` unless `lease` still holds the unfinished job.
    pub async fn set_aggregation_job_polling(
        &self,
        lease: &Lease,
        helper_job_id: Option<&AggregationJobId>,
        poll_at: u64,
    ) -> Result<()> {
        on_pool!(self, |pool| {
            let n = sqlx::query(
                "UPDATE aggregation_jobs SET helper_job_id = $4, lease_token = NULL, \
                 lease_expiry = $5 \
                 WHERE task_id = $1 AND job_id = $2 AND lease_token = $3 AND state = 'pending'",
            )
            .bind(lease.task_id.as_bytes().to_vec())
            .bind(lease.job_id.to_vec())
            .bind(lease.token.to_vec())
            .bind(helper_job_id.map(|id| id.as_bytes().to_vec()))
            .bind(int(poll_at))
            .execute(pool)
            .await?
            .rows_affected();
            if n == 1 {
                Ok(())
            } else {
                Err(DatastoreError::LeaseLost)
            }
        })
    }

    /// Jobs not yet finished for the task.
    pub async fn count_pending_aggregation_jobs(&self, task_id: &TaskId) -> Result<u64> {
        on_pool!(self, |pool| {
            let n: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM aggregation_jobs WHERE task_id = $1 AND state = 'pending'",
            )
            .bind(task_id.as_bytes().to_vec())
            .fetch_one(pool)
            .await?;
            Ok(uint(n))
        })
    }

    // ---- aggregation jobs (helper) ----

    /// A helper aggregation job, if it exists.
    pub async fn get_helper_aggregation_job(
        &self,
        task_id: &TaskId,
        job_id: &AggregationJobId,
    ) -> Result<Option<HelperAggregationJob>> {
        on_pool!(self, |pool| {
            let row = sqlx::query(
                "SELECT state, response FROM helper_aggregation_jobs \
                 WHERE task_id = $1 AND job_id = $2",
            )
            .bind(task_id.as_bytes().to_vec())
            .bind(job_id.as_bytes().to_vec())
            .fetch_optional(pool)
            .await?;
            row.map(|r| {
                Ok(HelperAggregationJob {
                    state: HelperJobState::parse(&r.try_get::<String, _>(0)?)?,
                    response: r.try_get(1)?,
                })
            })
            .transpose()
        })
    }

    /// Commits a helper aggregation job prepared synchronously: for each report with an output
    /// share, the replay and collected-bucket checks and accumulation; then stores the job
    /// (`finished`) and the response built by `respond` from the final per-report outcomes.
    /// If the job already exists (a retried request), nothing changes and the stored job is
    /// returned.
    pub async fn commit_helper_aggregation_job(
        &self,
        task_id: &TaskId,
        job_id: &AggregationJobId,
        vdaf: &VdafInstance,
        agg_param: &[u8],
        outcomes: &[ReportOutcome],
        respond: &ResponseBuilder<'_>,
    ) -> Result<HelperAggregationJob> {
        let tid = task_id.as_bytes().to_vec();
        on_pool!(self, |pool| {
            let mut tx = begin_write(pool).await?;
            let claimed = sqlx::query(
                "INSERT INTO helper_aggregation_jobs (task_id, job_id, response, state) \
                 VALUES ($1, $2, $3, 'finished') ON CONFLICT DO NOTHING",
            )
            .bind(tid.clone())
            .bind(job_id.as_bytes().to_vec())
            .bind(Vec::<u8>::new())
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if claimed != 1 {
                drop(tx);
                return self
                    .get_helper_aggregation_job(task_id, job_id)
                    .await?
                    .ok_or(DatastoreError::Corrupt("helper aggregation job"));
            }
            let results =
                BucketOps::commit_output_shares(&mut tx, &tid, vdaf, agg_param, outcomes).await?;
            let response = respond(&results);
            sqlx::query(
                "UPDATE helper_aggregation_jobs SET response = $3 WHERE task_id = $1 AND job_id = $2",
            )
            .bind(tid.clone())
            .bind(job_id.as_bytes().to_vec())
            .bind(response.clone())
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(HelperAggregationJob {
                state: HelperJobState::Finished,
                response,
            })
        })
    }

    /// Stores an aggregation job to be prepared later (state `processing`) with its encoded
    /// `AggregationJobInitReq`. Returns `false`, changing nothing, if the job exists.
    pub async fn put_helper_aggregation_job_request(
        &self,
        task_id: &TaskId,
        job_id: &AggregationJobId,
        request: &[u8],
    ) -> Result<bool> {
        on_pool!(self, |pool| {
            let n = sqlx::query(
                "INSERT INTO helper_aggregation_jobs (task_id, job_id, response, state, request, \
                 lease_token, lease_expiry) VALUES ($1, $2, $3, 'processing', $4, NULL, 0) \
                 ON CONFLICT DO NOTHING",
            )
            .bind(task_id.as_bytes().to_vec())
            .bind(job_id.as_bytes().to_vec())
            .bind(Vec::<u8>::new())
            .bind(request.to_vec())
            .execute(pool)
            .await?
            .rows_affected();
            Ok(n == 1)
        })
    }

    /// Leases up to `limit` helper aggregation jobs still `processing` whose lease is free or
    /// expired, until `now + lease_secs` (like [`Datastore::acquire_aggregation_jobs`]).
    pub async fn acquire_helper_aggregation_jobs(
        &self,
        now: u64,
        lease_secs: u64,
        limit: u64,
        new_token: &mut (dyn FnMut() -> [u8; 16] + Send),
    ) -> Result<Vec<Lease>> {
        self.acquire_leases(
            JobKind::HelperAggregation,
            now,
            lease_secs,
            limit,
            new_token,
        )
        .await
    }

    /// The stored `AggregationJobInitReq` of a helper job that is still `processing`.
    pub async fn get_helper_aggregation_job_request(
        &self,
        task_id: &TaskId,
        job_id: &[u8; 16],
    ) -> Result<Option<Vec<u8>>> {
        on_pool!(self, |pool| {
            let request: Option<Option<Vec<u8>>> = sqlx::query_scalar(
                "SELECT request FROM helper_aggregation_jobs \
                 WHERE task_id = $1 AND job_id = $2 AND state = 'processing'",
            )
            .bind(task_id.as_bytes().to_vec())
            .bind(job_id.to_vec())
            .fetch_optional(pool)
            .await?;
            Ok(request.flatten())
        })
    }

    /// Commits a helper aggregation job prepared by the helper's driver, like
    /// [`Datastore::commit_helper_aggregation_job`], in one transaction and only if `lease`
    /// still holds the job and it is still `processing` (not taken over, not deleted);
    /// otherwise `LeaseLost` and nothing changes.
    pub async fn finish_helper_aggregation_job(
        &self,
        lease: &Lease,
        vdaf: &VdafInstance,
        agg_param: &[u8],
        outcomes: &[ReportOutcome],
        respond: &ResponseBuilder<'_>,
    ) -> Result<()> {
        let tid = lease.task_id.as_bytes().to_vec();
        on_pool!(self, |pool| {
            let mut tx = begin_write(pool).await?;
            let owned = sqlx::query(
                "UPDATE helper_aggregation_jobs SET state = 'finished', lease_token = NULL, \
                 request = NULL \
                 WHERE task_id = $1 AND job_id = $2 AND lease_token = $3 AND state = 'processing'",
            )
            .bind(tid.clone())
            .bind(lease.job_id.to_vec())
            .bind(lease.token.to_vec())
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if owned != 1 {
                return Err(DatastoreError::LeaseLost);
            }
            let results =
                BucketOps::commit_output_shares(&mut tx, &tid, vdaf, agg_param, outcomes).await?;
            sqlx::query(
                "UPDATE helper_aggregation_jobs SET response = $3 WHERE task_id = $1 AND job_id = $2",
            )
            .bind(tid.clone())
            .bind(lease.job_id.to_vec())
            .bind(respond(&results))
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(())
        })
    }

    /// Gives a helper job's lease back early so another attempt can start at `retry_at`.
    pub async fn release_helper_aggregation_job(&self, lease: &Lease, retry_at: u64) -> Result<()> {
        on_pool!(self, |pool| {
            sqlx::query(
                "UPDATE helper_aggregation_jobs SET lease_token = NULL, lease_expiry = $4 \
                 WHERE task_id = $1 AND job_id = $2 AND lease_token = $3",
            )
            .bind(lease.task_id.as_bytes().to_vec())
            .bind(lease.job_id.to_vec())
            .bind(lease.token.to_vec())
            .bind(int(retry_at))
            .execute(pool)
            .await?;
            Ok(())
        })
    }

    /// Marks a helper aggregation job `deleted` (a job still processing is never prepared;
    /// what a finished job committed stays committed, for replay and collection checks).
    /// Returns `false` if there is no such job.
    pub async fn delete_helper_aggregation_job(
        &self,
        task_id: &TaskId,
        job_id: &AggregationJobId,
    ) -> Result<bool> {
        on_pool!(self, |pool| {
            let n = sqlx::query(
                "UPDATE helper_aggregation_jobs SET state = 'deleted', request = NULL, \
                 lease_token = NULL WHERE task_id = $1 AND job_id = $2",
            )
            .bind(task_id.as_bytes().to_vec())
            .bind(job_id.as_bytes().to_vec())
            .execute(pool)
            .await?
            .rows_affected();
            Ok(n == 1)
        })
    }

    // ---- batches ----

    /// Sums the batch's buckets; if `mark_collected`, marks them collected in the same
    /// transaction (after checking none was).
    pub async fn aggregate_batch(
        &self,
        task_id: &TaskId,
        vdaf: &VdafInstance,
        agg_param: &[u8],
        scope: &BatchScope,
        mark_collected: bool,
    ) -> Result<BatchAggregate> {
        let tid = task_id.as_bytes().to_vec();
        on_pool!(self, |pool| {
            let mut tx = begin_write(pool).await?;
            sqlx::query(lock_task_sql(pool))
                .bind(tid.clone())
                .execute(&mut *tx)
                .await?;
            let agg = BucketOps::sum_buckets(&mut tx, &tid, vdaf, agg_param, scope).await?;
            if mark_collected && !agg.any_collected && !agg.agg_param_mismatch {
                BucketOps::mark_buckets_collected(&mut tx, &tid, vdaf, agg_param, scope).await?;
            }
            tx.commit().await?;
            Ok(agg)
        })
    }

    /// The helper's side of collecting a batch, in one transaction: returns the stored
    /// response if `share_id` exists; otherwise sums the batch's buckets, lets `build` check
    /// them and produce the response (or refuse with a problem type), then marks the buckets
    /// collected and stores the response.
    pub async fn helper_collect_batch(
        &self,
        task_id: &TaskId,
        share_id: &[u8; 16],
        vdaf: &VdafInstance,
        agg_param: &[u8],
        scope: &BatchScope,
        build: &ShareBuilder<'_>,
    ) -> Result<std::result::Result<Vec<u8>, cairn_dap_messages::DapProblemType>> {
        let tid = task_id.as_bytes().to_vec();
        on_pool!(self, |pool| {
            let mut tx = begin_write(pool).await?;
            sqlx::query(lock_task_sql(pool))
                .bind(tid.clone())
                .execute(&mut *tx)
                .await?;
            let existing: Option<Vec<u8>> = sqlx::query_scalar(
                "SELECT response FROM helper_aggregate_shares WHERE task_id = $1 AND share_id = $2",
            )
            .bind(tid.clone())
            .bind(share_id.to_vec())
            .fetch_optional(&mut *tx)
            .await?;
            if let Some(r) = existing {
                return Ok(Ok(r));
            }
            let agg = BucketOps::sum_buckets(&mut tx, &tid, vdaf, agg_param, scope).await?;
            let response = match build(&agg) {
                Ok(r) => r,
                Err(p) => return Ok(Err(p)),
            };
            BucketOps::mark_buckets_collected(&mut tx, &tid, vdaf, agg_param, scope).await?;
            sqlx::query(
                "INSERT INTO helper_aggregate_shares (task_id, share_id, response) VALUES ($1, $2, $3)",
            )
            .bind(tid.clone())
            .bind(share_id.to_vec())
            .bind(response.clone())
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(Ok(response))
        })
    }

    /// IDs of the tasks this aggregator holds.
    pub async fn get_task_ids(&self) -> Result<Vec<TaskId>> {
        on_pool!(self, |pool| {
            let rows: Vec<Vec<u8>> =
                sqlx::query_scalar("SELECT task_id FROM tasks ORDER BY task_id")
                    .fetch_all(pool)
                    .await?;
            rows.iter()
                .map(|b| TaskId::try_from_slice(b).ok_or(DatastoreError::Corrupt("task id")))
                .collect()
        })
    }

    // ---- collection jobs (leader) ----

    /// Creates a collection job (state `start`) unless one with this ID exists. For a
    /// time-interval query (`interval` set), returns `Conflict` if the interval overlaps
    /// another live collection job of the task; a leader-selected job gets its batch later.
    pub async fn put_collection_job(
        &self,
        task_id: &TaskId,
        job_id: &CollectionJobId,
        request: &[u8],
        interval: Option<(u64, u64)>,
    ) -> Result<bool> {
        let tid = task_id.as_bytes().to_vec();
        on_pool!(self, |pool| {
            let mut tx = begin_write(pool).await?;
            let exists: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM collection_jobs WHERE task_id = $1 AND job_id = $2",
            )
            .bind(tid.clone())
            .bind(job_id.as_bytes().to_vec())
            .fetch_one(&mut *tx)
            .await?;
            if exists > 0 {
                return Ok(false);
            }
            let (start, duration) = interval.unwrap_or((0, 0));
            if interval.is_some() {
                let overlapping: i64 = sqlx::query_scalar(
                    "SELECT COUNT(*) FROM collection_jobs WHERE task_id = $1 \
                     AND state NOT IN ('failed', 'deleted') AND interval_duration > 0 \
                     AND interval_start < $3 AND $2 < interval_start + interval_duration",
                )
                .bind(tid.clone())
                .bind(int(start))
                .bind(int(start.saturating_add(duration)))
                .fetch_one(&mut *tx)
                .await?;
                if overlapping > 0 {
                    return Err(DatastoreError::Conflict("overlapping collection job"));
                }
            }
            sqlx::query(
                "INSERT INTO collection_jobs (task_id, job_id, request, interval_start, \
                 interval_duration, state, wait_reason, report_count, lease_expiry) \
                 VALUES ($1, $2, $3, $4, $5, 'start', 'aggregating', 0, 0)",
            )
            .bind(tid.clone())
            .bind(job_id.as_bytes().to_vec())
            .bind(request.to_vec())
            .bind(int(start))
            .bind(int(duration))
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(true)
        })
    }

    /// A collection job, if it exists.
    pub async fn get_collection_job(
        &self,
        task_id: &TaskId,
        job_id: &[u8; 16],
    ) -> Result<Option<CollectionJob>> {
        on_pool!(self, |pool| {
            let row = sqlx::query(
                "SELECT request, state, wait_reason, report_count, result, error, \
                 leader_aggregate_share, checksum, batch_id FROM collection_jobs \
                 WHERE task_id = $1 AND job_id = $2",
            )
            .bind(task_id.as_bytes().to_vec())
            .bind(job_id.to_vec())
            .fetch_optional(pool)
            .await?;
            let Some(r) = row else { return Ok(None) };
            Ok(Some(CollectionJob {
                request: r.try_get(0)?,
                state: r.try_get(1)?,
                wait_reason: r.try_get(2)?,
                report_count: uint(r.try_get(3)?),
                result: r.try_get(4)?,
                error: r.try_get(5)?,
                leader_aggregate_share: r.try_get(6)?,
                checksum: r
                    .try_get::<Option<Vec<u8>>, _>(7)?
                    .and_then(|c| BatchChecksum::try_from_slice(&c)),
                batch_id: r
                    .try_get::<Option<Vec<u8>>, _>(8)?
                    .and_then(|b| <[u8; 32]>::try_from(b.as_slice()).ok()),
            }))
        })
    }

    /// Marks a collection job deleted (the collector abandoned it).
    pub async fn delete_collection_job(&self, task_id: &TaskId, job_id: &[u8; 16]) -> Result<bool> {
        on_pool!(self, |pool| {
            let n = sqlx::query(
                "UPDATE collection_jobs SET state = 'deleted' WHERE task_id = $1 AND job_id = $2 \
                 AND state IN ('start', 'finished', 'failed')",
            )
            .bind(task_id.as_bytes().to_vec())
            .bind(job_id.to_vec())
            .execute(pool)
            .await?
            .rows_affected();
            Ok(n == 1)
        })
    }

    /// Leases due collection jobs (like [`Datastore::acquire_aggregation_jobs`]).
    pub async fn acquire_collection_jobs(
        &self,
        now: u64,
        lease_secs: u64,
        limit: u64,
        new_token: &mut (dyn FnMut() -> [u8; 16] + Send),
    ) -> Result<Vec<Lease>> {
        self.acquire_leases(JobKind::Collection, now, lease_secs, limit, new_token)
            .await
    }

    /// For a time-interval collection job in state `start`: if reports in the interval are
    /// still unaggregated, or the batch is below `min_batch_size`, records why and returns
    /// `Waiting`; otherwise marks the buckets collected, stores the leader's share on the job
    /// (state `collecting`) and returns it — one transaction, under the task lock.
    #[allow(clippy::too_many_arguments)] // one transaction's worth of inputs
    pub async fn try_collect_time_interval(
        &self,
        lease: &Lease,
        vdaf: &VdafInstance,
        agg_param: &[u8],
        start: u64,
        end: u64,
        min_batch_size: u64,
        retry_at: u64,
    ) -> Result<CollectionReadiness> {
        let tid = lease.task_id.as_bytes().to_vec();
        on_pool!(self, |pool| {
            let mut tx = begin_write(pool).await?;
            sqlx::query(lock_task_sql(pool))
                .bind(tid.clone())
                .execute(&mut *tx)
                .await?;
            let owned: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM collection_jobs WHERE task_id = $1 AND job_id = $2 \
                 AND lease_token = $3 AND state = 'start'",
            )
            .bind(tid.clone())
            .bind(lease.job_id.to_vec())
            .bind(lease.token.to_vec())
            .fetch_one(&mut *tx)
            .await?;
            if owned != 1 {
                return Err(DatastoreError::LeaseLost);
            }
            let unaggregated: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM client_reports WHERE task_id = $1 \
                 AND state IN ('start', 'aggregating') AND client_time >= $2 AND client_time < $3",
            )
            .bind(tid.clone())
            .bind(int(start))
            .bind(int(end))
            .fetch_one(&mut *tx)
            .await?;
            let scope = BatchScope::TimeInterval { start, end };
            let agg = BucketOps::sum_buckets(&mut tx, &tid, vdaf, agg_param, &scope).await?;
            if agg.any_collected {
                return Ok(CollectionReadiness::Overlap);
            }
            let wait = if unaggregated > 0 {
                Some("aggregating")
            } else if agg.report_count < min_batch_size {
                Some("insufficient-reports")
            } else {
                None
            };
            if let Some(reason) = wait {
                sqlx::query(
                    "UPDATE collection_jobs SET wait_reason = $3, report_count = $4, \
                     lease_token = NULL, lease_expiry = $5 WHERE task_id = $1 AND job_id = $2",
                )
                .bind(tid.clone())
                .bind(lease.job_id.to_vec())
                .bind(reason)
                .bind(int(agg.report_count))
                .bind(int(retry_at))
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                return Ok(CollectionReadiness::Waiting);
            }
            BucketOps::mark_buckets_collected(&mut tx, &tid, vdaf, agg_param, &scope).await?;
            sqlx::query(
                "UPDATE collection_jobs SET state = 'collecting', wait_reason = '', \
                 report_count = $3, leader_aggregate_share = $4, checksum = $5 \
                 WHERE task_id = $1 AND job_id = $2",
            )
            .bind(tid.clone())
            .bind(lease.job_id.to_vec())
            .bind(int(agg.report_count))
            .bind(agg.aggregate_share.clone())
            .bind(agg.checksum.as_bytes().to_vec())
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(CollectionReadiness::Ready {
                aggregate_share: agg.aggregate_share,
                report_count: agg.report_count,
                checksum: agg.checksum,
                time_range: agg.time_range.unwrap_or((start, start)),
                scope,
            })
        })
    }

    /// For a leader-selected collection job in state `start`: picks the oldest open batch
    /// whose reports are all aggregated and that holds at least `min_batch_size` of them,
    /// closes it (it gets no more reports), marks its bucket collected and stores the
    /// leader's share and the batch ID on the job (state `collecting`) — one transaction,
    /// under the task lock. Otherwise records why it waits and returns `Waiting`.
    #[allow(clippy::too_many_arguments)] // one transaction's worth of inputs
    pub async fn try_collect_leader_selected(
        &self,
        lease: &Lease,
        vdaf: &VdafInstance,
        agg_param: &[u8],
        min_batch_size: u64,
        retry_at: u64,
    ) -> Result<CollectionReadiness> {
        let tid = lease.task_id.as_bytes().to_vec();
        on_pool!(self, |pool| {
            let mut tx = begin_write(pool).await?;
            sqlx::query(lock_task_sql(pool))
                .bind(tid.clone())
                .execute(&mut *tx)
                .await?;
            let owned: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM collection_jobs WHERE task_id = $1 AND job_id = $2 \
                 AND lease_token = $3 AND state = 'start'",
            )
            .bind(tid.clone())
            .bind(lease.job_id.to_vec())
            .bind(lease.token.to_vec())
            .fetch_one(&mut *tx)
            .await?;
            if owned != 1 {
                return Err(DatastoreError::LeaseLost);
            }
            let rows = sqlx::query(
                "SELECT b.batch_id, (SELECT COUNT(*) FROM client_reports r WHERE r.task_id = b.task_id \
                 AND r.batch_id = b.batch_id AND r.state = 'aggregating') \
                 FROM leader_batches b WHERE b.task_id = $1 AND b.state = 'open' \
                 ORDER BY b.seq",
            )
            .bind(tid.clone())
            .fetch_all(&mut *tx)
            .await?;
            let mut best_count = 0;
            let mut in_flight = false;
            let mut chosen = None;
            for row in rows {
                let id: Vec<u8> = row.try_get(0)?;
                let pending = uint(row.try_get(1)?);
                let batch_id = <[u8; 32]>::try_from(id.as_slice())
                    .map_err(|_| DatastoreError::Corrupt("batch id"))?;
                let scope = BatchScope::LeaderSelected { batch_id };
                let agg = BucketOps::sum_buckets(&mut tx, &tid, vdaf, agg_param, &scope).await?;
                if agg.any_collected || agg.agg_param_mismatch {
                    continue;
                }
                best_count = best_count.max(agg.report_count);
                if pending > 0 {
                    in_flight |= agg.report_count.saturating_add(pending) >= min_batch_size;
                    continue;
                }
                if agg.report_count >= min_batch_size {
                    chosen = Some((scope, agg));
                    break;
                }
            }
            let Some((scope, agg)) = chosen else {
                let reason = if in_flight {
                    "aggregating"
                } else {
                    "insufficient-reports"
                };
                sqlx::query(
                    "UPDATE collection_jobs SET wait_reason = $3, report_count = $4, \
                     lease_token = NULL, lease_expiry = $5 WHERE task_id = $1 AND job_id = $2",
                )
                .bind(tid.clone())
                .bind(lease.job_id.to_vec())
                .bind(reason)
                .bind(int(best_count))
                .bind(int(retry_at))
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                return Ok(CollectionReadiness::Waiting);
            };
            let (batch_id, _, _) = scope.bounds();
            sqlx::query(
                "UPDATE leader_batches SET state = 'collected' WHERE task_id = $1 AND batch_id = $2",
            )
            .bind(tid.clone())
            .bind(batch_id.clone())
            .execute(&mut *tx)
            .await?;
            BucketOps::mark_buckets_collected(&mut tx, &tid, vdaf, agg_param, &scope).await?;
            sqlx::query(
                "UPDATE collection_jobs SET state = 'collecting', wait_reason = '', \
                 report_count = $3, leader_aggregate_share = $4, checksum = $5, batch_id = $6 \
                 WHERE task_id = $1 AND job_id = $2",
            )
            .bind(tid.clone())
            .bind(lease.job_id.to_vec())
            .bind(int(agg.report_count))
            .bind(agg.aggregate_share.clone())
            .bind(agg.checksum.as_bytes().to_vec())
            .bind(batch_id)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(CollectionReadiness::Ready {
                aggregate_share: agg.aggregate_share,
                report_count: agg.report_count,
                checksum: agg.checksum,
                time_range: agg.time_range.unwrap_or((0, 0)),
                scope,
            })
        })
    }

    /// Finishes (`result` set) or fails (`error` set) a collection job held under `lease`.
    pub async fn finish_collection_job(
        &self,
        lease: &Lease,
        result: std::result::Result<Vec<u8>, String>,
    ) -> Result<()> {
        let (state, result, error) = match result {
            Ok(r) => ("finished", Some(r), None),
            Err(e) => ("failed", None, Some(e)),
        };
        on_pool!(self, |pool| {
            let n = sqlx::query(
                "UPDATE collection_jobs SET state = $4, result = $5, error = $6, lease_token = NULL \
                 WHERE task_id = $1 AND job_id = $2 AND lease_token = $3",
            )
            .bind(lease.task_id.as_bytes().to_vec())
            .bind(lease.job_id.to_vec())
            .bind(lease.token.to_vec())
            .bind(state)
            .bind(result)
            .bind(error)
            .execute(pool)
            .await?
            .rows_affected();
            if n == 1 {
                Ok(())
            } else {
                Err(DatastoreError::LeaseLost)
            }
        })
    }

    /// Lets a leased collection job be retried at `retry_at`.
    pub async fn release_collection_job(&self, lease: &Lease, retry_at: u64) -> Result<()> {
        on_pool!(self, |pool| {
            sqlx::query(
                "UPDATE collection_jobs SET lease_token = NULL, lease_expiry = $4 \
                 WHERE task_id = $1 AND job_id = $2 AND lease_token = $3",
            )
            .bind(lease.task_id.as_bytes().to_vec())
            .bind(lease.job_id.to_vec())
            .bind(lease.token.to_vec())
            .bind(int(retry_at))
            .execute(pool)
            .await?;
            Ok(())
        })
    }

    // ---- aggregate shares (helper) ----

    /// The stored response of an aggregate-share resource, if it exists.
    pub async fn get_helper_aggregate_share(
        &self,
        task_id: &TaskId,
        share_id: &[u8; 16],
    ) -> Result<Option<Vec<u8>>> {
        on_pool!(self, |pool| {
            Ok(sqlx::query_scalar(
                "SELECT response FROM helper_aggregate_shares WHERE task_id = $1 AND share_id = $2",
            )
            .bind(task_id.as_bytes().to_vec())
            .bind(share_id.to_vec())
            .fetch_optional(pool)
            .await?)
        })
    }
}

/// Most rows per multi-row statement (well under SQLite's and PostgreSQL's bound-parameter
/// limits).
const MULTI_ROW_CHUNK: usize = 500;

/// `$first, $first+1, …` (`n` placeholders), for `IN (…)` lists.
fn placeholders(first: usize, n: usize) -> String {
    (first..first + n)
        .map(|k| format!("${k}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn lock_task_sql<DB: Dialect>(_: &Pool<DB>) -> &'static str {
    DB::LOCK_TASK
}

/// The jobs that drivers take by lease.
#[derive(Debug, Clone, Copy)]
enum JobKind {
    Aggregation,
    Collection,
    HelperAggregation,
}

impl JobKind {
    /// Takes the lease on one job (`$1` task, `$2` job, `$3` token, `$4` expiry).
    fn lease_sql(self) -> &'static str {
        match self {
            JobKind::Aggregation => {
                "UPDATE aggregation_jobs SET lease_token = $3, lease_expiry = $4, \
                 attempts = attempts + 1 WHERE task_id = $1 AND job_id = $2"
            }
            JobKind::Collection => {
                "UPDATE collection_jobs SET lease_token = $3, lease_expiry = $4 \
                 WHERE task_id = $1 AND job_id = $2"
            }
            JobKind::HelperAggregation => {
                "UPDATE helper_aggregation_jobs SET lease_token = $3, lease_expiry = $4 \
                 WHERE task_id = $1 AND job_id = $2"
            }
        }
    }
}

/// Picks the due jobs of `kind` (`$1` now, `$2` limit) in the pool's dialect.
fn due_jobs_sql<DB: Dialect>(_: &Pool<DB>, kind: JobKind) -> &'static str {
    match kind {
        JobKind::Aggregation => DB::DUE_AGGREGATION_JOBS,
        JobKind::Collection => DB::DUE_COLLECTION_JOBS,
        JobKind::HelperAggregation => DB::DUE_HELPER_AGGREGATION_JOBS,
    }
}

/// Batch-bucket operations inside a transaction, written once in [`bucket_ops!`] and
/// instantiated per backend (sqlx's generic executor bounds are not worth spelling out).
trait BucketOps: Dialect + Sized {
    /// Replay checks, collected-bucket checks and accumulation of a job's output shares: each
    /// bucket is locked once (in key order, so concurrent drivers cannot deadlock), the
    /// shares are added up in memory and the bucket is written once; report IDs are recorded
    /// against replay in multi-row inserts. The outer `Result` is a storage failure; the inner
    /// ones (one per outcome, in order) say whether each share was committed.
    async fn commit_output_shares(
        tx: &mut Transaction<'static, Self>,
        tid: &[u8],
        vdaf: &VdafInstance,
        agg_param: &[u8],
        outcomes: &[ReportOutcome],
    ) -> Result<Vec<std::result::Result<(), ReportError>>>;

    /// Sets the `state` of the given reports, in multi-row statements.
    async fn set_report_states(
        tx: &mut Transaction<'static, Self>,
        tid: &[u8],
        report_ids: &[&ReportId],
        state: &str,
    ) -> Result<()>;

    /// Sums the batch's buckets.
    async fn sum_buckets(
        tx: &mut Transaction<'static, Self>,
        tid: &[u8],
        vdaf: &VdafInstance,
        agg_param: &[u8],
        scope: &BatchScope,
    ) -> Result<BatchAggregate>;

    /// Marks every bucket of the batch collected, creating empty ones so that later reports
    /// for those buckets are refused too.
    async fn mark_buckets_collected(
        tx: &mut Transaction<'static, Self>,
        tid: &[u8],
        vdaf: &VdafInstance,
        agg_param: &[u8],
        scope: &BatchScope,
    ) -> Result<()>;
}

macro_rules! bucket_ops {
    ($db:ty) => {
        impl BucketOps for $db {
async fn commit_output_shares(
    tx: &mut Transaction<'static, Self>,
    tid: &[u8],
    vdaf: &VdafInstance,
    agg_param: &[u8],
    outcomes: &[ReportOutcome],
) -> Result<Vec<std::result::Result<(), ReportError>>>
{
    let mut results: Vec<std::result::Result<(), ReportError>> = outcomes
        .iter()
        .map(|o| o.result.as_ref().map(|_| ()).map_err(|e| *e))
        .collect();
    // Candidates grouped by bucket, in key order; a report ID twice in one job is a replay.
    let mut by_bucket: std::collections::BTreeMap<(Vec<u8>, u64), Vec<usize>> =
        std::collections::BTreeMap::new();
    let mut seen = std::collections::HashSet::new();
    for (i, o) in outcomes.iter().enumerate() {
        if o.result.is_err() {
            continue;
        }
        if !seen.insert(*o.report_id.as_bytes()) {
            results[i] = Err(ReportError::ReportReplayed);
            continue;
        }
        by_bucket
            .entry((o.bucket.batch_id.clone(), o.bucket.bucket_start))
            .or_default()
            .push(i);
    }
    if by_bucket.is_empty() {
        return Ok(results);
    }
    let empty = vdaf.empty_aggregate_share(agg_param)?;
    // Lock every bucket the job touches; refuse reports of collected buckets.
    let mut open = Vec::with_capacity(by_bucket.len());
    for ((batch_id, bucket_start), idx) in by_bucket {
        let start = int(bucket_start);
        let first_time = idx.iter().map(|&i| outcomes[i].time).min().unwrap_or(0);
        sqlx::query(
            "INSERT INTO batch_buckets (task_id, batch_id, bucket_start, agg_param, aggregate_share, \
             report_count, checksum, min_time, max_time, collected) \
             VALUES ($1, $2, $3, $4, $5, 0, $6, $7, $7, 0) ON CONFLICT DO NOTHING",
        )
        .bind(tid.to_vec())
        .bind(batch_id.clone())
        .bind(start)
        .bind(agg_param.to_vec())
        .bind(empty.clone())
        .bind(vec![0u8; 32])
        .bind(int(first_time))
        .execute(&mut **tx)
        .await?;
        let row = sqlx::query(<$db as Dialect>::LOCK_BUCKET)
            .bind(tid.to_vec())
            .bind(batch_id.clone())
            .bind(start)
            .fetch_one(&mut **tx)
            .await?;
        let collected: i64 = row.try_get(5)?;
        let bucket_param: Vec<u8> = row.try_get(6)?;
        let refusal = if collected == 1 {
            Some(ReportError::BatchCollected)
        } else if bucket_param != agg_param {
            Some(ReportError::InvalidMessage)
        } else {
            None
        };
        if let Some(e) = refusal {
            for &i in &idx {
                results[i] = Err(e);
            }
            continue;
        }
        let share: Vec<u8> = row.try_get(0)?;
        let count: i64 = row.try_get(1)?;
        let checksum: Vec<u8> = row.try_get(2)?;
        let min_time: i64 = row.try_get(3)?;
        let max_time: i64 = row.try_get(4)?;
        open.push((batch_id, start, idx, share, count, checksum, min_time, max_time));
    }
    // Record the report IDs against replay; only the fresh ones count.
    let candidates: Vec<usize> = open.iter().flat_map(|b| b.2.iter().copied()).collect();
    let mut fresh = std::collections::HashSet::with_capacity(candidates.len());
    for chunk in candidates.chunks(MULTI_ROW_CHUNK) {
        let mut sql = String::from("INSERT INTO aggregated_reports (task_id, report_id) VALUES ");
        for k in 0..chunk.len() {
            if k > 0 {
                sql.push_str(", ");
            }
            sql.push_str(&format!("($1, ${})", k + 2));
        }
        sql.push_str(" ON CONFLICT DO NOTHING RETURNING report_id");
        let mut q = sqlx::query_scalar::<_, Vec<u8>>(sqlx::AssertSqlSafe(sql)).bind(tid.to_vec());
        for &i in chunk {
            q = q.bind(outcomes[i].report_id.as_bytes().to_vec());
        }
        fresh.extend(q.fetch_all(&mut **tx).await?);
    }
    // Add up each bucket's fresh shares in memory and write the bucket once.
    for (batch_id, start, idx, share, count, checksum, min_time, max_time) in open {
        let mut shares: Vec<&[u8]> = Vec::with_capacity(idx.len());
        let mut sum =
            BatchChecksum::try_from_slice(&checksum).ok_or(DatastoreError::Corrupt("sum"))?;
        let (mut lo, mut hi, mut n) = (min_time, max_time, count);
        for i in idx {
            let o = &outcomes[i];
            if !fresh.contains(o.report_id.as_bytes().as_slice()) {
                results[i] = Err(ReportError::ReportReplayed);
                continue;
            }
            if let Ok(out) = &o.result {
                shares.push(out);
            }
            sum.combine(&report_checksum(&o.report_id));
            let t = int(o.time);
            (lo, hi) = if n == 0 { (t, t) } else { (lo.min(t), hi.max(t)) };
            n = n.saturating_add(1);
        }
        if n == count {
            continue;
        }
        let share = vdaf.accumulate(agg_param, &share, shares)?;
        sqlx::query(
            "UPDATE batch_buckets SET aggregate_share = $4, report_count = $5, checksum = $6, \
             min_time = $7, max_time = $8 WHERE task_id = $1 AND batch_id = $2 AND bucket_start = $3",
        )
        .bind(tid.to_vec())
        .bind(batch_id)
        .bind(start)
        .bind(share)
        .bind(n)
        .bind(sum.as_bytes().to_vec())
        .bind(lo)
        .bind(hi)
        .execute(&mut **tx)
        .await?;
    }
    Ok(results)
}

async fn set_report_states(
    tx: &mut Transaction<'static, Self>,
    tid: &[u8],
    report_ids: &[&ReportId],
    state: &str,
) -> Result<()>
{
    for chunk in report_ids.chunks(MULTI_ROW_CHUNK) {
        let mut sql =
            String::from("UPDATE client_reports SET state = $2 WHERE task_id = $1 AND report_id IN (");
        for k in 0..chunk.len() {
            if k > 0 {
                sql.push_str(", ");
            }
            sql.push_str(&format!("${}", k + 3));
        }
        sql.push(')');
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(tid.to_vec())
            .bind(state.to_owned());
        for id in chunk {
            q = q.bind(id.as_bytes().to_vec());
        }
        q.execute(&mut **tx).await?;
    }
    Ok(())
}

async fn sum_buckets(
    tx: &mut Transaction<'static, Self>,
    tid: &[u8],
    vdaf: &VdafInstance,
    agg_param: &[u8],
    scope: &BatchScope,
) -> Result<BatchAggregate>
{
    let (batch_id, start, end) = scope.bounds();
    let rows = sqlx::query(
        "SELECT aggregate_share, report_count, checksum, min_time, max_time, collected, agg_param \
         FROM batch_buckets WHERE task_id = $1 AND batch_id = $2 \
         AND bucket_start >= $3 AND bucket_start < $4",
    )
    .bind(tid.to_vec())
    .bind(batch_id)
    .bind(start)
    .bind(end)
    .fetch_all(&mut **tx)
    .await?;
    let mut shares = Vec::new();
    let mut out = BatchAggregate {
        aggregate_share: Vec::new(),
        report_count: 0,
        checksum: BatchChecksum::from_bytes([0; 32]),
        time_range: None,
        any_collected: false,
        agg_param_mismatch: false,
    };
    for row in rows {
        let count = uint(row.try_get(1)?);
        let collected: i64 = row.try_get(5)?;
        out.any_collected |= collected == 1;
        let param: Vec<u8> = row.try_get(6)?;
        out.agg_param_mismatch |= param != agg_param;
        if count == 0 {
            continue;
        }
        shares.push(row.try_get::<Vec<u8>, _>(0)?);
        out.report_count += count;
        let sum: Vec<u8> = row.try_get(2)?;
        out.checksum
            .combine(&BatchChecksum::try_from_slice(&sum).ok_or(DatastoreError::Corrupt("sum"))?);
        let (lo, hi) = (uint(row.try_get(3)?), uint(row.try_get(4)?));
        out.time_range = Some(match out.time_range {
            None => (lo, hi),
            Some((a, b)) => (a.min(lo), b.max(hi)),
        });
    }
    out.aggregate_share = vdaf.merge(agg_param, shares.iter().map(Vec::as_slice))?;
    Ok(out)
}

/// Marks every bucket of the batch collected, creating empty ones so that later reports
/// for those buckets are refused too.
async fn mark_buckets_collected(
    tx: &mut Transaction<'static, Self>,
    tid: &[u8],
    vdaf: &VdafInstance,
    agg_param: &[u8],
    scope: &BatchScope,
) -> Result<()>
{
    let (batch_id, start, end) = scope.bounds();
    sqlx::query(
        "UPDATE batch_buckets SET collected = 1 WHERE task_id = $1 AND batch_id = $2 \
         AND bucket_start >= $3 AND bucket_start < $4",
    )
    .bind(tid.to_vec())
    .bind(batch_id.clone())
    .bind(start)
    .bind(end)
    .execute(&mut **tx)
    .await?;
    // Buckets nobody reported into yet: create them collected (bounded, so a huge query
    // interval cannot make this loop unbounded; reports beyond the bound are still refused at
    // job creation by the overlap check of later collections).
    let empty = vdaf.empty_aggregate_share(agg_param)?;
    let span = end.saturating_sub(start).min(10_000);
    for t in start..start.saturating_add(span) {
        sqlx::query(
            "INSERT INTO batch_buckets (task_id, batch_id, bucket_start, agg_param, \
             aggregate_share, report_count, checksum, min_time, max_time, collected) \
             VALUES ($1, $2, $3, $4, $5, 0, $6, $3, $3, 1) ON CONFLICT DO NOTHING",
        )
        .bind(tid.to_vec())
        .bind(batch_id.clone())
        .bind(t)
        .bind(agg_param.to_vec())
        .bind(empty.clone())
        .bind(vec![0u8; 32])
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}
        }
    };
}

bucket_ops!(Sqlite);
bucket_ops!(Postgres);
