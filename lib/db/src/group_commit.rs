//! Group commit for SQLite: one writer connection runs many logical write transactions inside
//! one `BEGIN IMMEDIATE … COMMIT`, so that one WAL fsync makes a whole batch durable.
//!
//! SQLite has a single writer, and with `synchronous=FULL` every commit waits for an fsync of the
//! WAL (about 2 ms on the disks Cairn was measured on). Committed one by one, the CA's writes
//! (about six per certificate) were limited to a few hundred per second whatever the CPU. Here
//! every write to a SQLite database (the CA's storage authority, the DAP datastore, the CT lock
//! store) is a *job* sent to the database's one writer task. The writer takes
//! every job that is waiting (at least one, at most [`MAX_BATCH`]), begins one transaction and
//! runs each job inside its own `SAVEPOINT`: a job that fails (a compare-and-set that does not
//! hold, a unique violation) is rolled back to its savepoint alone and the others go on. Then
//! one `COMMIT`, one fsync, and only after it returns does any job's caller get its answer. So
//! durability is exactly that of one transaction per write: a caller that was told "done" has
//! its write on disk; a crash before the `COMMIT` loses the whole batch, and none of its callers
//! had been answered. If the `COMMIT` (or the transaction around the jobs) fails, every job of
//! the batch gets [`DbError::NotCommitted`] and nothing of the batch is stored.
//!
//! Batches form by themselves: while one batch waits for its fsync, the writes that arrive queue
//! up and become the next batch. No write waits for a timer.

use crate::DbError;
use futures::FutureExt;
use sqlx::{Connection, SqliteConnection};
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::{mpsc, oneshot};

/// The most jobs committed together (bounds the time one transaction holds the write lock).
const MAX_BATCH: usize = 256;

/// How many jobs may wait for the writer before callers wait to enqueue.
const QUEUE: usize = 4096;

/// A boxed future borrowing the writer's connection.
pub type WriteFuture<'c, T> = Pin<Box<dyn Future<Output = T> + Send + 'c>>;

/// What a job leaves to do once the batch's fate is known: send the caller its result, or the
/// reason the batch was not committed.
type Deliver = Box<dyn FnOnce(Option<String>) + Send>;

/// A job that ran: whether to keep its changes, and how to answer its caller.
struct Ran {
    keep: bool,
    deliver: Deliver,
}

type Job = Box<dyn for<'c> FnOnce(&'c mut SqliteConnection) -> WriteFuture<'c, Ran> + Send>;

enum Message {
    Write(Job),
    /// Close the connection after the jobs before this one, then acknowledge.
    Close(oneshot::Sender<()>),
}

/// The handle callers send their writes to. Cloning shares the writer.
#[derive(Clone, Debug)]
pub(crate) struct GroupCommit {
    queue: mpsc::Sender<Message>,
    /// Batches committed (or attempted), for tests.
    #[cfg(test)]
    commits: Arc<AtomicU64>,
}

impl GroupCommit {
    /// Starts the writer task on `conn` (a connection of its own, not one of the readers' pool);
    /// `database` names it in metrics.
    pub(crate) fn start(conn: SqliteConnection, database: &'static str) -> GroupCommit {
        let (queue, rx) = mpsc::channel(QUEUE);
        let commits = Arc::new(AtomicU64::new(0));
        tokio::spawn(run(conn, rx, commits.clone(), database));
        GroupCommit {
            queue,
            #[cfg(test)]
            commits,
        }
    }

    /// Runs `job` as one atomic write: its changes are kept if it returns `Ok` and rolled back if
    /// it returns `Err`. The answer comes only after the batch it ran in was committed (the
    /// job's own `Err` is passed on as it is; a job that succeeded but whose batch was not
    /// committed gets [`DbError::NotCommitted`], converted into the job's error type `E`).
    ///
    /// The job runs to completion even if the caller stops waiting, like a spawned task.
    pub(crate) async fn write<T, E, F>(&self, job: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<DbError> + Send + 'static,
        F: for<'c> FnOnce(&'c mut SqliteConnection) -> WriteFuture<'c, Result<T, E>>
            + Send
            + 'static,
    {
        let (tx, rx) = oneshot::channel::<Result<T, E>>();
        let job: Job = Box::new(move |conn| {
            Box::pin(async move {
                let result = job(conn).await;
                let keep = result.is_ok();
                let deliver: Deliver = Box::new(move |failed| {
                    let answer = match (failed, result) {
                        (Some(why), Ok(_)) => Err(DbError::NotCommitted(why).into()),
                        (_, result) => result,
                    };
                    // The caller may have stopped waiting; its write stands either way.
                    let _ = tx.send(answer);
                });
                Ran { keep, deliver }
            })
        });
        self.queue
            .send(Message::Write(job))
            .await
            .map_err(|_| stopped())?;
        rx.await.map_err(|_| {
            DbError::NotCommitted(
                "the write did not run: its batch failed or the writer stopped".into(),
            )
        })?
    }

    /// Lets the jobs already queued finish, then closes the writer's connection. Writes after
    /// this fail with [`DbError::NotCommitted`].
    pub(crate) async fn close(&self) {
        let (tx, rx) = oneshot::channel();
        if self.queue.send(Message::Close(tx)).await.is_ok() {
            let _ = rx.await;
        }
    }
}

fn stopped() -> DbError {
    DbError::NotCommitted("the database's writer is closed".into())
}

async fn run(
    conn: SqliteConnection,
    mut rx: mpsc::Receiver<Message>,
    commits: Arc<AtomicU64>,
    database: &'static str,
) {
    let mut conn = Some(conn);
    let mut messages = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut messages, MAX_BATCH).await > 0 {
        let mut jobs = Vec::with_capacity(messages.len());
        for message in messages.drain(..) {
            match message {
                Message::Write(job) => jobs.push(job),
                Message::Close(ack) => {
                    if let Some(c) = conn.as_mut() {
                        commit_batch(c, std::mem::take(&mut jobs), &commits, database).await;
                    }
                    if let Some(c) = conn.take()
                        && let Err(e) = c.close().await
                    {
                        tracing::warn!(error = %e, "closing the SQLite writer connection");
                    }
                    let _ = ack.send(());
                }
            }
        }
        match conn.as_mut() {
            Some(c) => commit_batch(c, jobs, &commits, database).await,
            // Closed: dropping the jobs tells their callers that nothing was written.
            None => drop(jobs),
        }
    }
}

/// Runs `jobs` in one transaction, one savepoint each, commits, then answers every caller.
async fn commit_batch(
    conn: &mut SqliteConnection,
    jobs: Vec<Job>,
    commits: &AtomicU64,
    database: &'static str,
) {
    if jobs.is_empty() {
        return;
    }
    commits.fetch_add(1, Ordering::Relaxed);
    let size = jobs.len();
    let mut delivers = Vec::with_capacity(size);
    let outcome = run_batch(conn, jobs, &mut delivers).await;
    metrics::histogram!("cairn_db_group_commit_writes", "database" => database).record(size as f64);
    let failed = match outcome {
        Ok(()) => None,
        Err(e) => {
            tracing::error!(error = %e, database, writes = size, "group commit failed; nothing of the batch is stored");
            Some(format!("group commit of {size} writes failed: {e}"))
        }
    };
    for deliver in delivers {
        deliver(failed.clone());
    }
}

async fn run_batch(
    conn: &mut SqliteConnection,
    jobs: Vec<Job>,
    delivers: &mut Vec<Deliver>,
) -> Result<(), sqlx::Error> {
    let outcome = run_jobs(conn, jobs, delivers).await;
    if outcome.is_err() {
        // A failed COMMIT (a deferred constraint, a busy database) leaves the transaction open;
        // undo it whole so the next batch starts clean. When SQLite already rolled it back by
        // itself (an I/O error, a full disk) this ROLLBACK fails, harmlessly.
        if let Err(e) = sqlx::raw_sql("ROLLBACK").execute(&mut *conn).await {
            tracing::debug!(error = %e, "rolling back a failed batch");
        }
    }
    outcome
}

/// Runs the jobs of one batch, each in a savepoint, inside `BEGIN IMMEDIATE … COMMIT`.
///
/// The transaction control is plain SQL, not sqlx's `begin`/`commit`: those wait for the
/// connection's thread to acknowledge each step (a rendezvous, twice the thread switches of a
/// statement), and a batch needed two of them per job. Here a job costs one round trip besides
/// its own statements: the `SAVEPOINT` it runs in, sent together with the previous job's
/// `ROLLBACK TO` when that one failed. A kept job's savepoint is left open: `COMMIT` commits
/// every nested savepoint with the transaction, and `ROLLBACK TO job` names the newest one, the
/// job that just ran.
async fn run_jobs(
    conn: &mut SqliteConnection,
    jobs: Vec<Job>,
    delivers: &mut Vec<Deliver>,
) -> Result<(), sqlx::Error> {
    let mut first = true;
    let mut undo_last = false;
    for job in jobs {
        let before = match (first, undo_last) {
            (true, _) => "BEGIN IMMEDIATE; SAVEPOINT job",
            (false, false) => "SAVEPOINT job",
            (false, true) => "ROLLBACK TO job; SAVEPOINT job",
        };
        first = false;
        // If a statement error made SQLite roll back the whole transaction (it does so for
        // I/O errors, a full disk, out of memory), this fails and so does the batch: every job
        // is told nothing was stored, which is true.
        sqlx::raw_sql(before).execute(&mut *conn).await?;
        // A job that panics must not take the writer (and every later write) down with it: its
        // savepoint is rolled back and its caller, whose answer channel went with the job, is
        // told that nothing was written.
        undo_last = match AssertUnwindSafe(job(&mut *conn)).catch_unwind().await {
            Ok(ran) => {
                delivers.push(ran.deliver);
                !ran.keep
            }
            Err(_) => {
                tracing::error!("a storage write panicked; it is rolled back alone");
                true
            }
        };
    }
    let finish = if undo_last {
        "ROLLBACK TO job; COMMIT"
    } else {
        "COMMIT"
    };
    sqlx::raw_sql(finish).execute(&mut *conn).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlx::sqlite::SqliteConnectOptions;
    use sqlx::{ConnectOptions, Row};

    /// A job's own failure, or the writer's.
    #[derive(Debug)]
    enum TestError {
        /// The job was asked to fail.
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
            TestError::Db(DbError::Database(e))
        }
    }

    type TestResult<T> = Result<T, TestError>;

    async fn writer(dir: &tempfile::TempDir) -> (GroupCommit, SqliteConnection) {
        let options = SqliteConnectOptions::new()
            .filename(dir.path().join("t.db"))
            .create_if_missing(true)
            .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
            .foreign_keys(true);
        let mut reader = options.connect().await.unwrap();
        sqlx::raw_sql(
            "CREATE TABLE parent (id INTEGER PRIMARY KEY); \
             CREATE TABLE child (id INTEGER PRIMARY KEY, \
               parent INTEGER REFERENCES parent(id) DEFERRABLE INITIALLY DEFERRED); \
             INSERT INTO parent (id) VALUES (1);",
        )
        .execute(&mut reader)
        .await
        .unwrap();
        (
            GroupCommit::start(options.connect().await.unwrap(), "test"),
            reader,
        )
    }

    async fn children(reader: &mut SqliteConnection) -> Vec<i64> {
        sqlx::query("SELECT id FROM child ORDER BY id")
            .fetch_all(reader)
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect()
    }

    /// Inserts child `id` of `parent`, then fails if `fail`.
    async fn child(w: &GroupCommit, id: i64, parent: i64, fail: bool) -> TestResult<i64> {
        w.write(move |conn| {
            Box::pin(async move {
                sqlx::query("INSERT INTO child (id, parent) VALUES ($1, $2)")
                    .bind(id)
                    .bind(parent)
                    .execute(&mut *conn)
                    .await?;
                if fail {
                    return Err(TestError::Refused);
                }
                Ok(id)
            })
        })
        .await
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_failing_write_rolls_back_alone_within_its_batch() {
        let dir = tempfile::tempdir().unwrap();
        let (w, mut reader) = writer(&dir).await;
        // On a current-thread runtime the three are queued before the writer runs: one batch.
        let (a, b, c) = tokio::join!(
            child(&w, 1, 1, false),
            child(&w, 2, 1, true),
            child(&w, 3, 1, false)
        );
        assert_eq!(a.unwrap(), 1);
        assert!(matches!(b, Err(TestError::Refused)), "{b:?}");
        assert_eq!(c.unwrap(), 3);
        assert_eq!(children(&mut reader).await, vec![1, 3]);
        // The last write of a batch failing, and a batch of one failing write.
        let (d, e) = tokio::join!(child(&w, 4, 1, false), child(&w, 5, 1, true));
        assert_eq!(d.unwrap(), 4);
        assert!(matches!(e, Err(TestError::Refused)), "{e:?}");
        let f = child(&w, 6, 1, true).await;
        assert!(matches!(f, Err(TestError::Refused)), "{f:?}");
        assert_eq!(children(&mut reader).await, vec![1, 3, 4]);
        assert_eq!(child(&w, 7, 1, false).await.unwrap(), 7);
        assert_eq!(children(&mut reader).await, vec![1, 3, 4, 7]);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_failed_commit_is_reported_to_every_write_of_the_batch() {
        let dir = tempfile::tempdir().unwrap();
        let (w, mut reader) = writer(&dir).await;
        // Child 2 names a missing parent: the deferred foreign key fails the batch's COMMIT,
        // after every job had succeeded in its savepoint.
        let (a, b) = tokio::join!(child(&w, 1, 1, false), child(&w, 2, 99, false));
        assert!(
            matches!(a, Err(TestError::Db(DbError::NotCommitted(_)))),
            "{a:?}"
        );
        assert!(
            matches!(b, Err(TestError::Db(DbError::NotCommitted(_)))),
            "{b:?}"
        );
        assert!(children(&mut reader).await.is_empty());
        // The writer goes on with the next batch.
        assert_eq!(child(&w, 4, 1, false).await.unwrap(), 4);
        assert_eq!(children(&mut reader).await, vec![4]);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_panicking_write_is_rolled_back_alone_and_the_writer_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        let (w, mut reader) = writer(&dir).await;
        let panicking = w.write(|conn| {
            Box::pin(async move {
                sqlx::query("INSERT INTO child (id, parent) VALUES (2, 1)")
                    .execute(&mut *conn)
                    .await?;
                panic!("a bug in a write");
            })
        });
        // One batch: the writes around the panicking one are committed.
        let (a, b, c) = tokio::join!(child(&w, 1, 1, false), panicking, child(&w, 3, 1, false));
        assert_eq!(a.unwrap(), 1);
        let b: TestResult<()> = b;
        assert!(
            matches!(b, Err(TestError::Db(DbError::NotCommitted(_)))),
            "{b:?}"
        );
        assert_eq!(c.unwrap(), 3);
        assert_eq!(children(&mut reader).await, vec![1, 3]);
        // Later writes still work.
        assert_eq!(child(&w, 4, 1, false).await.unwrap(), 4);
        assert_eq!(children(&mut reader).await, vec![1, 3, 4]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_writes_share_commits() {
        let dir = tempfile::tempdir().unwrap();
        let (w, mut reader) = writer(&dir).await;
        let mut tasks = tokio::task::JoinSet::new();
        for id in 1..=200 {
            let w = w.clone();
            tasks.spawn(async move { child(&w, id, 1, false).await });
        }
        while let Some(r) = tasks.join_next().await {
            r.unwrap().unwrap();
        }
        assert_eq!(children(&mut reader).await, (1..=200).collect::<Vec<_>>());
        let commits = w.commits.load(Ordering::Relaxed);
        assert!(commits < 200, "{commits} commits for 200 writes");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn writes_after_close_fail_without_effect() {
        let dir = tempfile::tempdir().unwrap();
        let (w, mut reader) = writer(&dir).await;
        assert_eq!(child(&w, 1, 1, false).await.unwrap(), 1);
        w.close().await;
        let late = child(&w, 2, 1, false).await;
        assert!(
            matches!(late, Err(TestError::Db(DbError::NotCommitted(_)))),
            "{late:?}"
        );
        assert_eq!(children(&mut reader).await, vec![1]);
    }
}
