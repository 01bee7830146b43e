//! The `helper_aggregate_shares` table: the helper's answers to aggregate-share requests
//! (DAP-18 §4.6.4). An answer is computed once — its batch frozen and any differential-privacy
//! noise drawn — and stored, so a retried request gets the same answer.

use super::batch_buckets::{BatchAggregate, BatchScope, Buckets};
use super::{Datastore, Result, int, lock_task_sql};
use cairn_dap_core::VdafEngine;
use cairn_dap_messages::{DapProblemType, TaskId};
use cairn_db::{on_read, on_write};

/// Builds the helper's aggregate-share response from a batch, or refuses it with a problem.
/// It runs inside the write that stores the response (on SQLite, on the writer's task), so it
/// owns what it uses.
pub type ShareBuilder =
    Box<dyn FnOnce(&BatchAggregate) -> std::result::Result<Vec<u8>, DapProblemType> + Send>;

impl Datastore {
    /// The helper's side of collecting a batch, in one transaction: returns the stored
    /// response if `share_id` exists; otherwise sums the batch's buckets, lets `build` check
    /// them and produce the response (or refuse with a problem type), then marks the buckets
    /// collected and stores the response.
    pub async fn helper_collect_batch(
        &self,
        task_id: &TaskId,
        share_id: &[u8; 16],
        vdaf: &VdafEngine,
        agg_param: &[u8],
        scope: &BatchScope,
        build: ShareBuilder,
    ) -> Result<std::result::Result<Vec<u8>, DapProblemType>> {
        let tid = task_id.as_bytes().to_vec();
        let (share_id, vdaf, agg_param, scope) = (
            share_id.to_vec(),
            vdaf.clone(),
            agg_param.to_vec(),
            scope.clone(),
        );
        let lock_task = lock_task_sql(self.dialect());
        on_write!(self.db, |conn| {
            sqlx::query(lock_task)
                .bind(tid.clone())
                .execute(&mut *conn)
                .await?;
            let existing: Option<Vec<u8>> = sqlx::query_scalar(
                "SELECT response FROM helper_aggregate_shares WHERE task_id = $1 AND share_id = $2",
            )
            .bind(tid.clone())
            .bind(share_id.clone())
            .fetch_optional(&mut *conn)
            .await?;
            if let Some(r) = existing {
                return Ok(Ok(r));
            }
            let mut buckets = Buckets::of(&mut *conn, &tid);
            let agg = buckets.sum(&vdaf, &agg_param, &scope).await?;
            let response = match build(&agg) {
                Ok(r) => r,
                Err(p) => return Ok(Err(p)),
            };
            buckets.mark_collected(&vdaf, &agg_param, &scope).await?;
            let interval_end = match &scope {
                BatchScope::TimeInterval { end, .. } => Some(int(*end)),
                BatchScope::LeaderSelected { .. } => None,
            };
            sqlx::query(
                "INSERT INTO helper_aggregate_shares (task_id, share_id, response, interval_end) \
                 VALUES ($1, $2, $3, $4)",
            )
            .bind(tid.clone())
            .bind(share_id)
            .bind(response.clone())
            .bind(interval_end)
            .execute(&mut *conn)
            .await?;
            Ok(Ok(response))
        })
    }

    /// The stored response of an aggregate-share resource, if it exists.
    pub async fn get_helper_aggregate_share(
        &self,
        task_id: &TaskId,
        share_id: &[u8; 16],
    ) -> Result<Option<Vec<u8>>> {
        on_read!(self.db, |conn| {
            Ok(sqlx::query_scalar(
                "SELECT response FROM helper_aggregate_shares WHERE task_id = $1 AND share_id = $2",
            )
            .bind(task_id.as_bytes().to_vec())
            .bind(share_id.to_vec())
            .fetch_optional(&mut *conn)
            .await?)
        })
    }
}
