//! The `tasks` table: each task this aggregator holds, its role, and its secrets (the VDAF
//! verification key and the leader's outgoing bearer token, sealed with the datastore key; the
//! tokens it checks are stored as hashes).

use super::secrets;
use super::{Datastore, DatastoreError, Result, int, is_unique_violation, uint};
use crate::task::{AggregatorRole, AggregatorTask, BearerToken, TokenHash};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use cairn_dap_core::TaskParameters;
use cairn_dap_messages::{Decode, Encode, HpkeConfig, TaskId};
use cairn_db::{on_read, on_write};
use sqlx::Row;

impl Datastore {
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
        let tid = task.parameters.task_id.as_bytes().to_vec();
        let role = task.role.as_str();
        let aggregator_hash = task
            .aggregator_auth_token_hash
            .as_ref()
            .map(|h| h.0.to_vec());
        let collector_hash = task
            .collector_auth_token_hash
            .as_ref()
            .map(|h| h.0.to_vec());
        let expiry = task.report_expiry_age.map(int);
        on_write!(self.db, |conn| {
            sqlx::query(
                "INSERT INTO tasks (task_id, role, parameters, vdaf_verify_key, \
                 collector_hpke_config, aggregator_auth_token, aggregator_auth_token_hash, \
                 collector_auth_token_hash, report_expiry_age) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            )
            .bind(tid)
            .bind(role)
            .bind(params)
            .bind(verify_key)
            .bind(collector)
            .bind(token)
            .bind(aggregator_hash)
            .bind(collector_hash)
            .bind(expiry)
            .execute(&mut *conn)
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
        on_read!(self.db, |conn| {
            let row = sqlx::query(
                "SELECT role, parameters, vdaf_verify_key, collector_hpke_config, \
                 aggregator_auth_token, aggregator_auth_token_hash, collector_auth_token_hash, \
                 report_expiry_age FROM tasks WHERE task_id = $1",
            )
            .bind(task_id.as_bytes().to_vec())
            .fetch_optional(&mut *conn)
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
                report_expiry_age: row.try_get::<Option<i64>, _>(7)?.map(uint),
            }))
        })
    }

    /// Deletes the task and every row it owns (reports, replay records, jobs, buckets,
    /// collection artifacts, counters) in one write; false if there is no such task. Meant for
    /// an operator or the console retiring a task, not for bulk clean-up (that is the garbage
    /// collector's job, in bounded batches).
    pub async fn delete_task(&self, task_id: &TaskId) -> Result<bool> {
        let tid = task_id.as_bytes().to_vec();
        on_write!(self.db, |conn| -> Result<bool> {
            // Children first: every table below references `tasks`.
            for table in [
                "client_reports",
                "aggregated_reports",
                "aggregation_jobs",
                "helper_aggregation_jobs",
                "batch_buckets",
                "collection_jobs",
                "helper_aggregate_shares",
                "collected_intervals",
                "leader_batches",
                "upload_counters",
            ] {
                let sql = format!("DELETE FROM {table} WHERE task_id = $1");
                sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(tid.clone())
                    .execute(&mut *conn)
                    .await?;
            }
            let n = sqlx::query("DELETE FROM tasks WHERE task_id = $1")
                .bind(tid.clone())
                .execute(&mut *conn)
                .await?
                .rows_affected();
            Ok(n > 0)
        })
    }

    /// IDs of the tasks this aggregator holds.
    pub async fn get_task_ids(&self) -> Result<Vec<TaskId>> {
        on_read!(self.db, |conn| {
            let rows: Vec<Vec<u8>> =
                sqlx::query_scalar("SELECT task_id FROM tasks ORDER BY task_id")
                    .fetch_all(&mut *conn)
                    .await?;
            rows.iter()
                .map(|b| TaskId::try_from_slice(b).ok_or(DatastoreError::Corrupt("task id")))
                .collect()
        })
    }
}
