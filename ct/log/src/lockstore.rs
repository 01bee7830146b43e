//! The lock store: the authoritative latest checkpoint of each log, advanced only by
//! compare-and-swap (so two sequencers can never fork a log), plus the deduplication index,
//! committed in the same transaction. SQLite by default, PostgreSQL when configured.

use sqlx::Pool;
use std::path::Path;
use std::str::FromStr;

/// Lock store failures.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LockError {
    /// The stored checkpoint is not the one the caller extended: another sequencer advanced
    /// the log (or the caller's state is stale). Nothing was written.
    #[error("checkpoint compare-and-swap failed: the log was advanced elsewhere")]
    Conflict,
    /// The database failed.
    #[error("lock store database error: {0}")]
    Database(#[from] sqlx::Error),
    /// The URL scheme is neither `sqlite:` nor `postgres:`.
    #[error("unsupported lock store URL scheme (expected sqlite: or postgres:)")]
    UnsupportedUrl,
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

/// The lock store. Cloning shares the pool.
#[derive(Clone)]
pub struct LockStore {
    backend: Backend,
}

#[derive(Clone)]
enum Backend {
    Sqlite(sqlx::SqlitePool),
    Postgres(sqlx::PgPool),
}

impl std::fmt::Debug for LockStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = match self.backend {
            Backend::Sqlite(_) => "sqlite",
            Backend::Postgres(_) => "postgres",
        };
        f.debug_struct("LockStore").field("backend", &name).finish()
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

const SCHEMA: [&str; 2] = [
    "CREATE TABLE IF NOT EXISTS ct_checkpoints (log_name TEXT PRIMARY KEY, checkpoint TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS ct_dedup (log_name TEXT NOT NULL, entry_key TEXT NOT NULL, \
     leaf_index BIGINT NOT NULL, sct_timestamp BIGINT NOT NULL, PRIMARY KEY (log_name, entry_key))",
];

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
        let backend = if url.starts_with("sqlite:") {
            let opts = sqlx::sqlite::SqliteConnectOptions::from_str(url)?;
            Backend::Sqlite(Self::sqlite(opts).await?)
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            let opts = sqlx::postgres::PgConnectOptions::from_str(url)?;
            let pool = sqlx::postgres::PgPoolOptions::new()
                .max_connections(8)
                .connect_with(opts)
                .await?;
            Backend::Postgres(pool)
        } else {
            return Err(LockError::UnsupportedUrl);
        };
        let store = LockStore { backend };
        store.migrate().await?;
        Ok(store)
    }

    /// Opens (creating) the SQLite database file at `path`.
    pub async fn open_sqlite(path: &Path) -> Result<LockStore, LockError> {
        let opts = sqlx::sqlite::SqliteConnectOptions::new().filename(path);
        let store = LockStore {
            backend: Backend::Sqlite(Self::sqlite(opts).await?),
        };
        store.migrate().await?;
        Ok(store)
    }

    async fn sqlite(
        opts: sqlx::sqlite::SqliteConnectOptions,
    ) -> Result<sqlx::SqlitePool, LockError> {
        let opts = opts
            .create_if_missing(true)
            .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
            .synchronous(sqlx::sqlite::SqliteSynchronous::Full)
            .busy_timeout(std::time::Duration::from_secs(10));
        Ok(sqlx::sqlite::SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(opts)
            .await?)
    }

    async fn migrate(&self) -> Result<(), LockError> {
        for stmt in SCHEMA {
            on_pool!(self, |pool| {
                sqlx::query(stmt).execute(pool).await?;
            });
        }
        Ok(())
    }

    /// The latest committed checkpoint (signed note) of `log`.
    pub async fn get_checkpoint(&self, log: &str) -> Result<Option<String>, LockError> {
        let row: Option<(String,)> = on_pool!(self, |pool| {
            sqlx::query_as("SELECT checkpoint FROM ct_checkpoints WHERE log_name = $1")
                .bind(log)
                .fetch_optional(pool)
                .await?
        });
        Ok(row.map(|(c,)| c))
    }

    /// Stores the first checkpoint of `log`; `Conflict` if it already has one.
    pub async fn create_checkpoint(&self, log: &str, checkpoint: &str) -> Result<(), LockError> {
        let res = on_pool!(self, |pool| {
            sqlx::query(
                "INSERT INTO ct_checkpoints (log_name, checkpoint) VALUES ($1, $2) \
                 ON CONFLICT (log_name) DO NOTHING",
            )
            .bind(log)
            .bind(checkpoint)
            .execute(pool)
            .await?
            .rows_affected()
        });
        if res == 1 {
            Ok(())
        } else {
            Err(LockError::Conflict)
        }
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
        // SQLite takes the write lock up front so the busy timeout applies.
        let begin = match self.backend {
            Backend::Sqlite(_) => "BEGIN IMMEDIATE",
            Backend::Postgres(_) => "BEGIN",
        };
        on_pool!(self, |pool| {
            let mut tx = pool.begin_with(begin).await?;
            let updated = sqlx::query(
                "UPDATE ct_checkpoints SET checkpoint = $1 WHERE log_name = $2 AND checkpoint = $3",
            )
            .bind(new)
            .bind(log)
            .bind(old)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if updated != 1 {
                tx.rollback().await?;
                return Err(LockError::Conflict);
            }
            for part in dedup.chunks(500) {
                let mut qb = query_builder(
                    pool,
                    "INSERT INTO ct_dedup (log_name, entry_key, leaf_index, sct_timestamp) ",
                );
                qb.push_values(part, |mut b, rec| {
                    b.push_bind(log.to_string())
                        .push_bind(hex::encode(rec.key))
                        .push_bind(to_i64(rec.index))
                        .push_bind(to_i64(rec.timestamp));
                });
                qb.push(" ON CONFLICT (log_name, entry_key) DO NOTHING");
                qb.build().execute(&mut *tx).await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }

    /// Where the entry with dedup key `key` was sequenced in `log`, if it was.
    pub async fn get_dedup(
        &self,
        log: &str,
        key: &[u8; 32],
    ) -> Result<Option<DedupRecord>, LockError> {
        let row: Option<(i64, i64)> = on_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT leaf_index, sct_timestamp FROM ct_dedup WHERE log_name = $1 AND entry_key = $2",
            )
            .bind(log)
            .bind(hex::encode(key))
            .fetch_optional(pool)
            .await?
        });
        Ok(row.map(|(i, t)| DedupRecord {
            key: *key,
            index: to_u64(i),
            timestamp: to_u64(t),
        }))
    }

    /// Closes the pool.
    pub async fn close(&self) {
        on_pool!(self, |pool| pool.close().await)
    }
}

/// A query builder for the pool's database (pins the type parameter).
fn query_builder<DB: sqlx::Database>(
    _pool: &Pool<DB>,
    init: &'static str,
) -> sqlx::QueryBuilder<DB> {
    sqlx::QueryBuilder::new(init)
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
        if let Ok(url) = std::env::var("CAIRN_TEST_POSTGRES_URL") {
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
