//! The lock store: the authoritative latest checkpoint of each log, advanced only by
//! compare-and-swap (so two sequencers can never fork a log), plus the deduplication index,
//! committed in the same transaction. SQLite by default, PostgreSQL when configured; both
//! through `cairn-db`.

use cairn_db::{Db, DbError, Migrations, Schema, on_read, on_write, query_builder};
use std::path::Path;

/// Lock store failures.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LockError {
    /// The stored checkpoint is not the one the caller extended: another sequencer advanced
    /// the log (or the caller's state is stale). Nothing was written.
    #[error("checkpoint compare-and-swap failed: the log was advanced elsewhere")]
    Conflict,
    /// The database failed, or its URL is not `sqlite:` or `postgres:`.
    #[error("lock store: {0}")]
    Database(#[from] DbError),
    /// The S3 lock object could not be read or written.
    #[error("S3 lock: {0}")]
    S3(#[source] std::io::Error),
}

impl From<sqlx::Error> for LockError {
    fn from(e: sqlx::Error) -> Self {
        LockError::Database(e.into())
    }
}

fn s3_err(e: std::io::Error) -> LockError {
    LockError::S3(e)
}

/// A deduplication record: where an entry was sequenced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DedupRecord {
    /// The entry's dedup key.
    pub key: [u8; 32],
    /// Its leaf index.
    pub index: u64,
    /// Its SCT timestamp.
    pub timestamp: u64,
}

/// The lock store. Cloning shares the connections.
#[derive(Clone)]
pub struct LockStore {
    db: Db,
    /// With an S3 lock, the checkpoint lives there and `db` holds only the dedup index.
    s3: Option<std::sync::Arc<crate::s3::S3Lock>>,
}

impl std::fmt::Debug for LockStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LockStore")
            .field("backend", &self.db.dialect().name())
            .finish()
    }
}

/// The lock store's tables, created at every start if missing (plain statements rather than
/// migrations: the lock store may share a PostgreSQL schema with the CA's migrations).
static SCHEMA: Schema = Schema {
    name: "ct_lock",
    migrations: Migrations::Idempotent(&[
        "CREATE TABLE IF NOT EXISTS ct_checkpoints (log_name TEXT PRIMARY KEY, checkpoint TEXT NOT NULL)",
        "CREATE TABLE IF NOT EXISTS ct_dedup (log_name TEXT NOT NULL, entry_key TEXT NOT NULL, \
         leaf_index BIGINT NOT NULL, sct_timestamp BIGINT NOT NULL, PRIMARY KEY (log_name, entry_key))",
    ]),
};

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn to_u64(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

impl LockStore {
    /// Connects to `sqlite:…` or `postgres://…` and creates the tables if missing. SQLite runs
    /// in WAL mode with `synchronous=FULL`: a committed checkpoint survives SIGKILL and power
    /// loss. The URL never appears in errors.
    pub async fn connect(url: &str) -> Result<LockStore, LockError> {
        Ok(LockStore {
            db: Db::connect(url, &SCHEMA).await?,
            s3: None,
        })
    }

    /// Opens (creating) the SQLite database file at `path`.
    pub async fn open_sqlite(path: &Path) -> Result<LockStore, LockError> {
        Ok(LockStore {
            db: Db::open_sqlite(path, &SCHEMA).await?,
            s3: None,
        })
    }

    /// Keeps the checkpoint in an S3 object advanced by conditional writes instead of in the
    /// database, which then holds only the dedup index. The dedup rows are written after the
    /// conditional write succeeds (never for a lost swap); a crash between the two loses
    /// those rows, so a resubmission of such an entry is logged again (a duplicate entry,
    /// never a wrong SCT) — as with Sunlight's separate deduplication cache.
    pub fn with_s3_lock(mut self, lock: crate::s3::S3Lock) -> LockStore {
        self.s3 = Some(std::sync::Arc::new(lock));
        self
    }

    /// The latest committed checkpoint (signed note) of `log`.
    pub async fn get_checkpoint(&self, log: &str) -> Result<Option<String>, LockError> {
        if let Some(s3) = &self.s3 {
            return Ok(s3.get(log).await.map_err(s3_err)?.map(|o| o.checkpoint));
        }
        let row: Option<(String,)> = on_read!(self.db, |conn| {
            sqlx::query_as("SELECT checkpoint FROM ct_checkpoints WHERE log_name = $1")
                .bind(log)
                .fetch_optional(conn)
                .await?
        });
        Ok(row.map(|(c,)| c))
    }

    /// Stores the first checkpoint of `log`; `Conflict` if it already has one.
    pub async fn create_checkpoint(&self, log: &str, checkpoint: &str) -> Result<(), LockError> {
        if let Some(s3) = &self.s3 {
            return match s3.create(log, checkpoint).await.map_err(s3_err)? {
                true => Ok(()),
                false => Err(LockError::Conflict),
            };
        }
        let (log, checkpoint) = (log.to_owned(), checkpoint.to_owned());
        on_write!(self.db, |conn| {
            let created = sqlx::query(
                "INSERT INTO ct_checkpoints (log_name, checkpoint) VALUES ($1, $2) \
                 ON CONFLICT (log_name) DO NOTHING",
            )
            .bind(&log)
            .bind(&checkpoint)
            .execute(&mut *conn)
            .await?
            .rows_affected();
            if created == 1 {
                Ok(())
            } else {
                Err(LockError::Conflict)
            }
        })
    }

    /// Replaces `old` by `new` as `log`'s checkpoint and records `dedup`, atomically; `Conflict`
    /// (and no change) if the stored checkpoint is not `old`.
    pub async fn commit(
        &self,
        log: &str,
        old: &str,
        new: &str,
        dedup: &[DedupRecord],
    ) -> Result<(), LockError> {
        let (log, old, new, dedup) = (
            log.to_owned(),
            old.to_owned(),
            new.to_owned(),
            dedup.to_vec(),
        );
        if let Some(s3) = &self.s3 {
            let current = s3.get(&log).await.map_err(s3_err)?;
            let swapped = match current {
                Some(cur) if cur.checkpoint == old => {
                    s3.swap(&log, cur, &new).await.map_err(s3_err)?
                }
                _ => false,
            };
            if !swapped {
                return Err(LockError::Conflict);
            }
            return self.insert_dedup(&log, &dedup).await;
        }
        on_write!(self.db, |conn| {
            let updated = sqlx::query(
                "UPDATE ct_checkpoints SET checkpoint = $1 WHERE log_name = $2 AND checkpoint = $3",
            )
            .bind(&new)
            .bind(&log)
            .bind(&old)
            .execute(&mut *conn)
            .await?
            .rows_affected();
            if updated != 1 {
                return Err(LockError::Conflict);
            }
            for part in dedup.chunks(500) {
                let mut qb = query_builder(
                    &*conn,
                    "INSERT INTO ct_dedup (log_name, entry_key, leaf_index, sct_timestamp) ",
                );
                qb.push_values(part, |mut b, rec| {
                    b.push_bind(log.clone())
                        .push_bind(hex::encode(rec.key))
                        .push_bind(to_i64(rec.index))
                        .push_bind(to_i64(rec.timestamp));
                });
                qb.push(" ON CONFLICT (log_name, entry_key) DO NOTHING");
                qb.build().execute(&mut *conn).await?;
            }
            Ok(())
        })
    }

    async fn insert_dedup(&self, log: &str, dedup: &[DedupRecord]) -> Result<(), LockError> {
        let (log, dedup) = (log.to_owned(), dedup.to_vec());
        on_write!(self.db, |conn| {
            for part in dedup.chunks(500) {
                let mut qb = query_builder(
                    &*conn,
                    "INSERT INTO ct_dedup (log_name, entry_key, leaf_index, sct_timestamp) ",
                );
                qb.push_values(part, |mut b, rec| {
                    b.push_bind(log.clone())
                        .push_bind(hex::encode(rec.key))
                        .push_bind(to_i64(rec.index))
                        .push_bind(to_i64(rec.timestamp));
                });
                qb.push(" ON CONFLICT (log_name, entry_key) DO NOTHING");
                qb.build().execute(&mut *conn).await?;
            }
            Ok(())
        })
    }

    /// Where the entry with dedup key `key` was sequenced in `log`, if it was.
    pub async fn get_dedup(
        &self,
        log: &str,
        key: &[u8; 32],
    ) -> Result<Option<DedupRecord>, LockError> {
        let row: Option<(i64, i64)> = on_read!(self.db, |conn| {
            sqlx::query_as(
                "SELECT leaf_index, sct_timestamp FROM ct_dedup WHERE log_name = $1 AND entry_key = $2",
            )
            .bind(log)
            .bind(hex::encode(key))
            .fetch_optional(conn)
            .await?
        });
        Ok(row.map(|(i, t)| DedupRecord {
            key: *key,
            index: to_u64(i),
            timestamp: to_u64(t),
        }))
    }

    /// Closes the connections (on SQLite, after the queued writes are committed).
    pub async fn close(&self) {
        self.db.close().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn checkpoint_advances_only_by_compare_and_swap() {
        let dir = tempfile::tempdir().unwrap();
        let store = LockStore::open_sqlite(&dir.path().join("lock.db"))
            .await
            .unwrap();
        assert_eq!(store.get_checkpoint("log").await.unwrap(), None);
        store.create_checkpoint("log", "c0").await.unwrap();
        assert!(matches!(
            store.create_checkpoint("log", "x").await,
            Err(LockError::Conflict)
        ));
        let rec = DedupRecord {
            key: [1; 32],
            index: 7,
            timestamp: 99,
        };
        store.commit("log", "c0", "c1", &[rec]).await.unwrap();
        // A stale sequencer (still extending c0) loses, and its dedup rows are not written.
        let stale = DedupRecord {
            key: [2; 32],
            index: 7,
            timestamp: 100,
        };
        assert!(matches!(
            store.commit("log", "c0", "fork", &[stale]).await,
            Err(LockError::Conflict)
        ));
        assert_eq!(
            store.get_checkpoint("log").await.unwrap().as_deref(),
            Some("c1")
        );
        assert_eq!(store.get_dedup("log", &[1; 32]).await.unwrap(), Some(rec));
        assert_eq!(store.get_dedup("log", &[2; 32]).await.unwrap(), None);
        assert_eq!(store.get_dedup("other", &[1; 32]).await.unwrap(), None);
        // Reopening keeps everything.
        store.close().await;
        let store = LockStore::open_sqlite(&dir.path().join("lock.db"))
            .await
            .unwrap();
        assert_eq!(
            store.get_checkpoint("log").await.unwrap().as_deref(),
            Some("c1")
        );
        if let Some(url) = cairn_test_services::postgres_url() {
            let pg = LockStore::connect(&url).await.unwrap();
            let name = format!("test-{}", std::process::id());
            pg.create_checkpoint(&name, "c0").await.unwrap();
            pg.commit(&name, "c0", "c1", &[rec]).await.unwrap();
            assert!(matches!(
                pg.commit(&name, "c0", "x", &[]).await,
                Err(LockError::Conflict)
            ));
            assert_eq!(pg.get_dedup(&name, &[1; 32]).await.unwrap(), Some(rec));
        }
    }
}
