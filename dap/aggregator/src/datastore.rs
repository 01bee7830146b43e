//! [`Datastore`]: every table of the aggregator on SQLite (default) or PostgreSQL, each statement
//! written once (`$N` placeholders, `ON CONFLICT`, `RETURNING` work in both). The only dialect
//! differences are how a write transaction starts and how a row is locked ([`Dialect`]).
//!
//! Exactly-once accounting: aggregate-share accumulation, the replay record and the report
//! state change of an aggregation job commit in one transaction, and only while the caller
//! still holds the job's lease token.

mod postgres;
mod sqlite;

use crate::task::{AggregatorRole, AggregatorTask, BearerToken, TokenHash};
use aws_lc_rs::digest;
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
    /// Connects to `sqlite:…` (created if missing) or `postgres:…` and migrates. Errors never
    /// include the URL.
    pub async fn connect(url: &str) -> Result<Datastore> {
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite(sqlite::connect_url(url).await?)
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Backend::Postgres(postgres::connect_url(url).await?)
        } else {
            return Err(DatastoreError::UnsupportedUrl);
        };
        Ok(Datastore { backend })
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

    /// The aggregator's HPKE keypairs, generating and storing one (config ID 1) on first use.
    pub async fn get_or_create_hpke_keypairs(&self) -> Result<Vec<HpkeKeypair>> {
        let fresh = HpkeKeypair::generate(HpkeConfigId(1));
        let config = fresh
            .config()
            .get_encoded()
            .map_err(|_| DatastoreError::Corrupt("hpke config"))?;
        on_pool!(self, |pool| {
            sqlx::query(
                "INSERT INTO hpke_keys (config_id, config, private_key) VALUES ($1, $2, $3) \
                 ON CONFLICT DO NOTHING",
            )
            .bind(1i64)
            .bind(config)
            .bind(fresh.private_key().to_vec())
            .execute(pool)
            .await?;
            let rows = sqlx::query("SELECT config, private_key FROM hpke_keys ORDER BY config_id")
                .fetch_all(pool)
                .await?;
            rows.into_iter()
                .map(|row| {
                    let config = HpkeConfig::get_decoded(&row.try_get::<Vec<u8>, _>(0)?)
                        .map_err(|_| DatastoreError::Corrupt("hpke config"))?;
                    HpkeKeypair::new(config, row.try_get(1)?)
                        .map_err(|_| DatastoreError::Corrupt("hpke key"))
                })
                .collect()
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
        on_pool!(self, |pool| {
            sqlx::query(
                "INSERT INTO tasks (task_id, role, parameters, vdaf_verify_key, \
                 collector_hpke_config, aggregator_auth_token, aggregator_auth_token_hash, \
                 collector_auth_token_hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(task.parameters.task_id.as_bytes().to_vec())
            .bind(task.role.as_str())
            .bind(params)
            .bind(task.vdaf_verify_key.to_vec())
            .bind(collector)
            .bind(
                task.aggregator_auth_token
                    .as_ref()
                    .map(|t| t.expose().to_string()),
            )
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
            let key: Vec<u8> = row.try_get(2)?;
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
                aggregator_auth_token: row.try_get::<Option<String>, _>(4)?.map(BearerToken::new),
                aggregator_auth_token_hash: hash(row.try_get(5)?)?,
                collector_auth_token_hash: hash(row.try_get(6)?)?,
            }))
        })
    }

    // ---- uploads (leader) ----

    /// Stores the accepted reports of one upload request in one transaction (durable before
    /// the client hears 2xx). A report whose ID exists, or whose batch bucket was collected,
    /// is refused.
    pub async fn put_client_reports(
        &self,
        task_id: &TaskId,
        reports: &[StoredReport],
    ) -> Result<Vec<UploadOutcome>> {
        let tid = task_id.as_bytes().to_vec();
        on_pool!(self, |pool| {
            let mut tx = begin_write(pool).await?;
            let mut out = Vec::with_capacity(reports.len());
            for r in reports {
                let collected: Option<i64> = sqlx::query_scalar(
                    "SELECT collected FROM batch_buckets WHERE task_id = $1 AND batch_id = $2 \
                     AND bucket_start = $3",
                )
                .bind(tid.clone())
                .bind(Vec::<u8>::new())
                .bind(int(r.time))
                .fetch_optional(&mut *tx)
                .await?;
                if collected == Some(1) {
                    out.push(UploadOutcome::Refused(ReportError::ReportReplayed));
                    continue;
                }
                let inserted = sqlx::query(
                    "INSERT INTO client_reports (task_id, report_id, client_time, \
                     public_extensions, public_share, leader_input_share, \
                     helper_encrypted_input_share, state) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, 'start') ON CONFLICT DO NOTHING",
                )
                .bind(tid.clone())
                .bind(r.report_id.as_bytes().to_vec())
                .bind(int(r.time))
                .bind(r.public_extensions.clone())
                .bind(r.public_share.clone())
                .bind(r.leader_input_share.clone())
                .bind(r.helper_encrypted_input_share.clone())
                .execute(&mut *tx)
                .await?
                .rows_affected();
                out.push(if inserted == 1 {
                    UploadOutcome::Stored
                } else {
                    UploadOutcome::Refused(ReportError::ReportReplayed)
                });
            }
            tx.commit().await?;
            Ok(out)
        })
    }

    /// Adds `n` to the task's counter for `reason` (`"accepted"` or a report-error name).
    pub async fn increment_upload_counter(
        &self,
        task_id: &TaskId,
        reason: &str,
        n: u64,
    ) -> Result<()> {
        on_pool!(self, |pool| {
            sqlx::query(
                "INSERT INTO upload_counters (task_id, reason, count) VALUES ($1, $2, $3) \
                 ON CONFLICT (task_id, reason) DO UPDATE SET count = upload_counters.count + $3",
            )
            .bind(task_id.as_bytes().to_vec())
            .bind(reason.to_string())
            .bind(int(n))
            .execute(pool)
            .await?;
            Ok(())
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

    /// Leases up to `limit` pending aggregation jobs whose lease is free or expired, until
    /// `now + lease_secs`. Each gets a fresh token; an expired holder's commit will fail.
    pub async fn acquire_aggregation_jobs(
        &self,
        now: u64,
        lease_secs: u64,
        limit: u64,
        new_token: &mut (dyn FnMut() -> [u8; 16] + Send),
    ) -> Result<Vec<Lease>> {
        on_pool!(self, |pool| {
            let mut tx = begin_write(pool).await?;
            let rows = sqlx::query(due_aggregation_jobs_sql(pool))
                .bind(int(now))
                .bind(int(limit))
                .fetch_all(&mut *tx)
                .await?;
            let mut leases = Vec::new();
            for row in rows {
                let task: Vec<u8> = row.try_get(0)?;
                let job: Vec<u8> = row.try_get(1)?;
                let token = new_token();
                sqlx::query(
                    "UPDATE aggregation_jobs SET lease_token = $3, lease_expiry = $4, \
                     attempts = attempts + 1 WHERE task_id = $1 AND job_id = $2",
                )
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
            for o in outcomes {
                let committed = match &o.result {
                    Ok(out) => {
                        BucketOps::commit_output_share(&mut tx, &tid, vdaf, agg_param, o, out)
                            .await?
                    }
                    Err(e) => Err(*e),
                };
                let state = if committed.is_ok() {
                    "aggregated"
                } else {
                    "failed"
                };
                sqlx::query(
                    "UPDATE client_reports SET state = $3 WHERE task_id = $1 AND report_id = $2",
                )
                .bind(tid.clone())
                .bind(o.report_id.as_bytes().to_vec())
                .bind(state)
                .execute(&mut *tx)
                .await?;
            }
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

    /// The stored response of a helper aggregation job, if the job exists.
    pub async fn get_helper_aggregation_job(
        &self,
        task_id: &TaskId,
        job_id: &AggregationJobId,
    ) -> Result<Option<Vec<u8>>> {
        on_pool!(self, |pool| {
            Ok(sqlx::query_scalar(
                "SELECT response FROM helper_aggregation_jobs WHERE task_id = $1 AND job_id = $2",
            )
            .bind(task_id.as_bytes().to_vec())
            .bind(job_id.as_bytes().to_vec())
            .fetch_optional(pool)
            .await?)
        })
    }

    /// Commits a helper aggregation job: for each report with an output share, the replay and
    /// collected-bucket checks and accumulation; then stores the job and the response built by
    /// `respond` from the final per-report outcomes. If the job already exists (a retried
    /// request), nothing changes and its stored response is returned.
    pub async fn commit_helper_aggregation_job(
        &self,
        task_id: &TaskId,
        job_id: &AggregationJobId,
        vdaf: &VdafInstance,
        agg_param: &[u8],
        outcomes: &[ReportOutcome],
        respond: &ResponseBuilder<'_>,
    ) -> Result<Vec<u8>> {
        let tid = task_id.as_bytes().to_vec();
        on_pool!(self, |pool| {
            let mut tx = begin_write(pool).await?;
            let claimed = sqlx::query(
                "INSERT INTO helper_aggregation_jobs (task_id, job_id, response) \
                 VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
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
            let mut results = Vec::with_capacity(outcomes.len());
            for o in outcomes {
                results.push(match &o.result {
                    Ok(out) => {
                        BucketOps::commit_output_share(&mut tx, &tid, vdaf, agg_param, o, out)
                            .await?
                    }
                    Err(e) => Err(*e),
                });
            }
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
            Ok(response)
        })
    }

    // ---- batches ----

    /// Sums the time-interval buckets in `[start, end)`; if `mark_collected`, marks them
    /// collected in the same transaction (after checking none was).
    pub async fn aggregate_time_interval(
        &self,
        task_id: &TaskId,
        vdaf: &VdafInstance,
        agg_param: &[u8],
        start: u64,
        end: u64,
        mark_collected: bool,
    ) -> Result<BatchAggregate> {
        let tid = task_id.as_bytes().to_vec();
        on_pool!(self, |pool| {
            let mut tx = begin_write(pool).await?;
            sqlx::query(lock_task_sql(pool))
                .bind(tid.clone())
                .execute(&mut *tx)
                .await?;
            let agg = BucketOps::sum_buckets(&mut tx, &tid, vdaf, agg_param, start, end).await?;
            if mark_collected && !agg.any_collected && !agg.agg_param_mismatch {
                BucketOps::mark_buckets_collected(&mut tx, &tid, vdaf, agg_param, start, end)
                    .await?;
            }
            tx.commit().await?;
            Ok(agg)
        })
    }

    /// The helper's side of collecting a time-interval batch, in one transaction: returns the
    /// stored response if `share_id` exists; otherwise sums the buckets of `[start, end)`,
    /// lets `build` check them and produce the response (or refuse with a problem type), then
    /// marks the buckets collected and stores the response.
    #[allow(clippy::too_many_arguments)] // one transaction's worth of inputs
    pub async fn helper_collect_time_interval(
        &self,
        task_id: &TaskId,
        share_id: &[u8; 16],
        vdaf: &VdafInstance,
        agg_param: &[u8],
        start: u64,
        end: u64,
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
            let agg = BucketOps::sum_buckets(&mut tx, &tid, vdaf, agg_param, start, end).await?;
            let response = match build(&agg) {
                Ok(r) => r,
                Err(p) => return Ok(Err(p)),
            };
            BucketOps::mark_buckets_collected(&mut tx, &tid, vdaf, agg_param, start, end).await?;
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

    /// Creates a collection job (state `start`) unless one with this ID exists. Returns
    /// `Conflict` if the interval overlaps another live collection job of the task.
    pub async fn put_collection_job(
        &self,
        task_id: &TaskId,
        job_id: &CollectionJobId,
        request: &[u8],
        interval: (u64, u64),
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
            let (start, duration) = interval;
            let overlapping: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM collection_jobs WHERE task_id = $1 \
                 AND state NOT IN ('failed', 'deleted') \
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
                 leader_aggregate_share, checksum FROM collection_jobs \
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
        on_pool!(self, |pool| {
            let mut tx = begin_write(pool).await?;
            let rows = sqlx::query(due_collection_jobs_sql(pool))
                .bind(int(now))
                .bind(int(limit))
                .fetch_all(&mut *tx)
                .await?;
            let mut leases = Vec::new();
            for row in rows {
                let task: Vec<u8> = row.try_get(0)?;
                let job: Vec<u8> = row.try_get(1)?;
                let token = new_token();
                sqlx::query(
                    "UPDATE collection_jobs SET lease_token = $3, lease_expiry = $4 \
                     WHERE task_id = $1 AND job_id = $2",
                )
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
            let agg = BucketOps::sum_buckets(&mut tx, &tid, vdaf, agg_param, start, end).await?;
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
            BucketOps::mark_buckets_collected(&mut tx, &tid, vdaf, agg_param, start, end).await?;
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

fn lock_task_sql<DB: Dialect>(_: &Pool<DB>) -> &'static str {
    DB::LOCK_TASK
}

fn due_aggregation_jobs_sql<DB: Dialect>(_: &Pool<DB>) -> &'static str {
    DB::DUE_AGGREGATION_JOBS
}

fn due_collection_jobs_sql<DB: Dialect>(_: &Pool<DB>) -> &'static str {
    DB::DUE_COLLECTION_JOBS
}

/// Batch-bucket operations inside a transaction, written once in [`bucket_ops!`] and
/// instantiated per backend (sqlx's generic executor bounds are not worth spelling out).
trait BucketOps: Dialect + Sized {
    /// Replay check, collected-bucket check and accumulation of one output share. The outer
    /// `Result` is a storage failure; the inner one says whether the share was committed.
    async fn commit_output_share(
        tx: &mut Transaction<'static, Self>,
        tid: &[u8],
        vdaf: &VdafInstance,
        agg_param: &[u8],
        o: &ReportOutcome,
        out_share: &[u8],
    ) -> Result<std::result::Result<(), ReportError>>;

    /// Sums the time-interval buckets in `[start, end)`.
    async fn sum_buckets(
        tx: &mut Transaction<'static, Self>,
        tid: &[u8],
        vdaf: &VdafInstance,
        agg_param: &[u8],
        start: u64,
        end: u64,
    ) -> Result<BatchAggregate>;

    /// Marks every bucket of `[start, end)` collected, creating empty ones so that later
    /// reports for those buckets are refused too.
    async fn mark_buckets_collected(
        tx: &mut Transaction<'static, Self>,
        tid: &[u8],
        vdaf: &VdafInstance,
        agg_param: &[u8],
        start: u64,
        end: u64,
    ) -> Result<()>;
}

macro_rules! bucket_ops {
    ($db:ty) => {
        impl BucketOps for $db {
/// Replay check, collected-bucket check and accumulation of one output share. The outer
/// `Result` is a storage failure; the inner one says whether the share was committed.
async fn commit_output_share(
    tx: &mut Transaction<'static, Self>,
    tid: &[u8],
    vdaf: &VdafInstance,
    agg_param: &[u8],
    o: &ReportOutcome,
    out_share: &[u8],
) -> Result<std::result::Result<(), ReportError>>
{
    let key = (tid.to_vec(), o.bucket.batch_id.clone(), int(o.bucket.bucket_start));
    let empty = vdaf.empty_aggregate_share(agg_param)?;
    sqlx::query(
        "INSERT INTO batch_buckets (task_id, batch_id, bucket_start, agg_param, aggregate_share, \
         report_count, checksum, min_time, max_time, collected) \
         VALUES ($1, $2, $3, $4, $5, 0, $6, $7, $7, 0) ON CONFLICT DO NOTHING",
    )
    .bind(key.0.clone())
    .bind(key.1.clone())
    .bind(key.2)
    .bind(agg_param.to_vec())
    .bind(empty)
    .bind(vec![0u8; 32])
    .bind(int(o.time))
    .execute(&mut **tx)
    .await?;
    let row = sqlx::query(<$db as Dialect>::LOCK_BUCKET)
        .bind(key.0.clone())
        .bind(key.1.clone())
        .bind(key.2)
        .fetch_one(&mut **tx)
        .await?;
    let share: Vec<u8> = row.try_get(0)?;
    let count: i64 = row.try_get(1)?;
    let checksum: Vec<u8> = row.try_get(2)?;
    let min_time: i64 = row.try_get(3)?;
    let max_time: i64 = row.try_get(4)?;
    let collected: i64 = row.try_get(5)?;
    let bucket_param: Vec<u8> = row.try_get(6)?;
    if collected == 1 {
        return Ok(Err(ReportError::BatchCollected));
    }
    if bucket_param != agg_param {
        return Ok(Err(ReportError::InvalidMessage));
    }
    let fresh = sqlx::query(
        "INSERT INTO aggregated_reports (task_id, report_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
    )
    .bind(tid.to_vec())
    .bind(o.report_id.as_bytes().to_vec())
    .execute(&mut **tx)
    .await?
    .rows_affected();
    if fresh != 1 {
        return Ok(Err(ReportError::ReportReplayed));
    }
    let share = vdaf.accumulate(agg_param, &share, [out_share])?;
    let mut sum = BatchChecksum::try_from_slice(&checksum).ok_or(DatastoreError::Corrupt("sum"))?;
    sum.combine(&report_checksum(&o.report_id));
    let t = int(o.time);
    sqlx::query(
        "UPDATE batch_buckets SET aggregate_share = $4, report_count = $5, checksum = $6, \
         min_time = $7, max_time = $8 WHERE task_id = $1 AND batch_id = $2 AND bucket_start = $3",
    )
    .bind(key.0)
    .bind(key.1)
    .bind(key.2)
    .bind(share)
    .bind(count.saturating_add(1))
    .bind(sum.as_bytes().to_vec())
    .bind(if count == 0 { t } else { min_time.min(t) })
    .bind(if count == 0 { t } else { max_time.max(t) })
    .execute(&mut **tx)
    .await?;
    Ok(Ok(()))
}

async fn sum_buckets(
    tx: &mut Transaction<'static, Self>,
    tid: &[u8],
    vdaf: &VdafInstance,
    agg_param: &[u8],
    start: u64,
    end: u64,
) -> Result<BatchAggregate>
{
    let rows = sqlx::query(
        "SELECT aggregate_share, report_count, checksum, min_time, max_time, collected, agg_param \
         FROM batch_buckets WHERE task_id = $1 AND batch_id = $2 \
         AND bucket_start >= $3 AND bucket_start < $4",
    )
    .bind(tid.to_vec())
    .bind(Vec::<u8>::new())
    .bind(int(start))
    .bind(int(end))
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

/// Marks every bucket of `[start, end)` collected, creating empty ones so that later reports
/// for those buckets are refused too.
async fn mark_buckets_collected(
    tx: &mut Transaction<'static, Self>,
    tid: &[u8],
    vdaf: &VdafInstance,
    agg_param: &[u8],
    start: u64,
    end: u64,
) -> Result<()>
{
    sqlx::query(
        "UPDATE batch_buckets SET collected = 1 WHERE task_id = $1 AND batch_id = $2 \
         AND bucket_start >= $3 AND bucket_start < $4",
    )
    .bind(tid.to_vec())
    .bind(Vec::<u8>::new())
    .bind(int(start))
    .bind(int(end))
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
        .bind(Vec::<u8>::new())
        .bind(int(t))
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
