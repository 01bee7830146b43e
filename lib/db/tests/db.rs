//! The layer's contract, on SQLite (always, in a temporary directory) and PostgreSQL (when
//! `CAIRN_TEST_POSTGRES_URL` is set, in a schema of its own; under `CI` it must be set):
//! statements written once run on both, a write keeps its changes only if it returns `Ok`, and
//! a write that reads then writes loses no concurrent update.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use cairn_db::{
    Conn, Db, DbError, Dialect, Migrations, Schema, SqliteOptions, on_conn, on_read, on_write,
};
use sqlx::{AssertSqlSafe, Connection};

static SCHEMA: Schema = Schema {
    name: "test",
    migrations: Migrations::Idempotent(&[
        "CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value BIGINT NOT NULL)",
    ]),
};

/// A write's own failure, or the layer's.
#[derive(Debug)]
enum TestError {
    Refused,
    Db(DbError),
}

impl From<DbError> for TestError {
    fn from(e: DbError) -> Self {
        TestError::Db(e)
    }
}

impl From<sqlx::Error> for TestError {
    fn from(e: sqlx::Error) -> Self {
        TestError::Db(e.into())
    }
}

/// An enclosing error type with no conversion from the layer's or sqlx's errors.
#[derive(Debug)]
struct Outer(TestError);

impl From<TestError> for Outer {
    fn from(e: TestError) -> Self {
        Outer(e)
    }
}

/// A database for one test, dropped (the PostgreSQL schema too) by [`Place::remove`].
struct Place {
    db: Db,
    _dir: tempfile::TempDir,
    schema: Option<(String, String)>,
}

impl Place {
    async fn remove(self) {
        self.db.close().await;
        if let Some((base, schema)) = self.schema {
            let mut admin = sqlx::PgConnection::connect(&base).await.unwrap();
            sqlx::query(AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
                .execute(&mut admin)
                .await
                .unwrap();
        }
    }
}

async fn sqlite() -> Place {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open_sqlite(&dir.path().join("t.db"), &SCHEMA)
        .await
        .unwrap();
    Place {
        db,
        _dir: dir,
        schema: None,
    }
}

/// `None` when PostgreSQL is not configured (outside CI).
async fn postgres() -> Option<Place> {
    let base = cairn_test_services::postgres_url()?;
    let schema = format!(
        "cairn_db_{}_{:x}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    );
    let mut admin = sqlx::PgConnection::connect(&base).await.unwrap();
    sqlx::query(AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
        .execute(&mut admin)
        .await
        .unwrap();
    let sep = if base.contains('?') { '&' } else { '?' };
    let url = format!("{base}{sep}options=-csearch_path%3D{schema}");
    let db = Db::connect(&url, &SCHEMA).await.unwrap();
    Some(Place {
        db,
        _dir: tempfile::tempdir().unwrap(),
        schema: Some((base, schema)),
    })
}

async fn get(db: &Db, name: &str) -> Result<Option<i64>, TestError> {
    Ok(on_read!(db, |conn| {
        sqlx::query_scalar("SELECT value FROM counters WHERE name = $1")
            .bind(name)
            .fetch_optional(conn)
            .await?
    }))
}

/// Adds `by` to counter `name` by reading it, then writing the sum: a compare-and-swap only if
/// the write is isolated as the layer promises. Refuses (changing nothing) past `limit`.
async fn add(db: &Db, name: &str, by: i64, limit: i64) -> Result<i64, TestError> {
    let name = name.to_owned();
    let lock = db.dialect().for_update();
    on_write!(db, |conn| -> Result<i64, TestError> {
        sqlx::query("INSERT INTO counters (name, value) VALUES ($1, 0) ON CONFLICT DO NOTHING")
            .bind(&name)
            .execute(&mut *conn)
            .await?;
        let sql = format!("SELECT value FROM counters WHERE name = $1{lock}");
        let value: i64 = sqlx::query_scalar(AssertSqlSafe(sql))
            .bind(&name)
            .fetch_one(&mut *conn)
            .await?;
        sqlx::query("UPDATE counters SET value = $2 WHERE name = $1")
            .bind(&name)
            .bind(value + by)
            .execute(&mut *conn)
            .await?;
        if value + by > limit {
            return Err(TestError::Refused);
        }
        Ok(value + by)
    })
}

/// Shared code takes a [`Conn`]: the number of counters, on whichever backend.
async fn count(conn: Conn<'_>) -> Result<i64, TestError> {
    Ok(on_conn!(conn, |c| {
        sqlx::query_scalar("SELECT COUNT(*) FROM counters")
            .fetch_one(c)
            .await?
    }))
}

async fn writes_keep_their_changes_only_when_they_succeed(p: &Place) {
    let db = &p.db;
    assert_eq!(add(db, "a", 2, 10).await.unwrap(), 2);
    assert_eq!(get(db, "a").await.unwrap(), Some(2));
    // The refused write had inserted and updated before it failed: none of it stays.
    assert!(matches!(add(db, "a", 9, 10).await, Err(TestError::Refused)));
    assert!(matches!(
        add(db, "b", 11, 10).await,
        Err(TestError::Refused)
    ));
    assert_eq!(get(db, "a").await.unwrap(), Some(2));
    assert_eq!(get(db, "b").await.unwrap(), None);
    let mut read = db.read().await.unwrap();
    assert_eq!(count(read.conn()).await.unwrap(), 1);
    drop(read);
    // Errors can go through another type on their way out.
    let n: Result<i64, Outer> = async {
        Ok(on_read!(db, TestError, |conn| {
            count(conn.into()).await?
        }))
    }
    .await;
    assert_eq!(n.unwrap(), 1);
    let refused: Result<i64, Outer> = async {
        on_write!(db, TestError, |conn| {
            sqlx::query("DELETE FROM counters")
                .execute(&mut *conn)
                .await?;
            Err(TestError::Refused)
        })
    }
    .await;
    assert!(
        matches!(refused, Err(Outer(TestError::Refused))),
        "{refused:?}"
    );
    assert_eq!(get(db, "a").await.unwrap(), Some(2));
}

async fn concurrent_read_then_write_loses_no_update(p: &Place) {
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..50 {
        let db = p.db.clone();
        tasks.spawn(async move { add(&db, "c", 1, i64::MAX).await.unwrap() });
    }
    let mut seen = Vec::new();
    while let Some(v) = tasks.join_next().await {
        seen.push(v.unwrap());
    }
    seen.sort_unstable();
    assert_eq!(
        seen,
        (1..=50).collect::<Vec<_>>(),
        "each write saw the one before"
    );
    assert_eq!(get(&p.db, "c").await.unwrap(), Some(50));
}

async fn writes_after_close_fail_without_effect(p: &Place) {
    p.db.close().await;
    let late = add(&p.db, "z", 1, 10).await;
    match p.db.dialect() {
        Dialect::Sqlite => assert!(
            matches!(late, Err(TestError::Db(DbError::NotCommitted(_)))),
            "{late:?}"
        ),
        _ => assert!(
            matches!(
                late,
                Err(TestError::Db(DbError::Database(sqlx::Error::PoolClosed)))
            ),
            "{late:?}"
        ),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_contract() {
    let p = sqlite().await;
    assert_eq!(p.db.dialect(), Dialect::Sqlite);
    writes_keep_their_changes_only_when_they_succeed(&p).await;
    concurrent_read_then_write_loses_no_update(&p).await;
    writes_after_close_fail_without_effect(&p).await;
    p.remove().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_contract() {
    let Some(p) = postgres().await else { return };
    assert_eq!(p.db.dialect(), Dialect::Postgres);
    writes_keep_their_changes_only_when_they_succeed(&p).await;
    concurrent_read_then_write_loses_no_update(&p).await;
    writes_after_close_fail_without_effect(&p).await;
    p.remove().await;
}

#[tokio::test]
async fn a_new_sqlite_database_is_owner_only_and_durable() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("new.db");
    let db = Db::connect(&format!("sqlite://{}", path.display()), &SCHEMA)
        .await
        .unwrap();
    add(&db, "a", 1, 10).await.unwrap();
    db.close().await;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{mode:o}");
    }
    let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    let journal: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(journal, "wal");
    let value: i64 = sqlx::query_scalar("SELECT value FROM counters WHERE name = 'a'")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(value, 1);
}

/// SQLite's `cache_size` as a connection of `db` reports it: the writer's (inside a write) or a
/// reader's.
async fn cache_size(db: &Db, writer: bool) -> i64 {
    let pragma = "PRAGMA cache_size";
    if writer {
        on_write!(db, |conn| -> Result<i64, TestError> {
            Ok(sqlx::query_scalar(pragma).fetch_one(&mut *conn).await?)
        })
        .unwrap()
    } else {
        let size: Result<i64, TestError> = async {
            Ok(on_read!(db, |conn| sqlx::query_scalar(pragma)
                .fetch_one(&mut *conn)
                .await?))
        }
        .await;
        size.unwrap()
    }
}

#[tokio::test]
async fn the_writer_alone_gets_the_page_cache_asked_for() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("c.db").display());
    let tuned = SqliteOptions {
        writer_cache_bytes: Some(16 * 1024 * 1024),
    };
    let db = Db::connect_with(&url, &SCHEMA, tuned).await.unwrap();
    // Negative: KiB, SQLite's way of giving the cache as a size rather than a page count.
    assert_eq!(cache_size(&db, true).await, -16 * 1024);
    // Readers keep SQLite's default (-2000: about 2 MB).
    assert_eq!(cache_size(&db, false).await, -2000);
    db.close().await;
    // Without options, the writer has the default too.
    let db = Db::connect(&url, &SCHEMA).await.unwrap();
    assert_eq!(cache_size(&db, true).await, -2000);
    db.close().await;
}

#[tokio::test]
async fn an_existing_file_keeps_its_permissions() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.db");
    std::fs::write(&path, b"").unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
    }
    let db = Db::open_sqlite(&path, &SCHEMA).await.unwrap();
    db.close().await;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o640, "{mode:o}");
    }
}

#[tokio::test]
async fn unsupported_url_is_refused_without_echoing_it() {
    let err = Db::connect("mysql://root:hunter2@db.internal/cairn", &SCHEMA)
        .await
        .unwrap_err();
    assert!(matches!(err, DbError::UnsupportedUrl), "{err:?}");
    let msg = err.to_string();
    assert!(
        !msg.contains("hunter2") && !msg.contains("db.internal"),
        "{msg}"
    );
}
