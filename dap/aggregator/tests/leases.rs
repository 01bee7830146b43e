//! The lease routine every job kind shares — leader aggregation jobs, the helper's
//! asynchronous aggregation jobs and collection jobs — against the datastore itself, on SQLite
//! always and on PostgreSQL when `CAIRN_TEST_POSTGRES_URL` is set (a fresh schema per test;
//! under `CI` a missing URL fails). A job is due only when its lease has expired or was given
//! back; a lease taken over can neither finish nor give back the job; a finished or deleted job
//! is never due again and cannot be finished again.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a panic is a failure with a location

use cairn_dap_aggregator::datastore::{Lease, ReportOutcome, ResponseBuilder, StoredReport};
use cairn_dap_aggregator::{
    AggregatorRole, AggregatorTask, BearerToken, Datastore, DatastoreError, DatastoreKey,
    HelperJobState, TokenHash,
};
use cairn_dap_core::vdaf::VdafInstance;
use cairn_dap_core::{HpkeKeypair, Protocol, TaskParameters, VdafEngine};
use cairn_dap_messages::{
    AggregationJobId, BatchMode, CollectionJobId, HpkeConfigId, ReportError, ReportId, TaskId,
};
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU8, Ordering};
use tokio::task::JoinSet;

const LEASE: u64 = 10;

#[derive(Clone, Copy, Debug)]
enum Backend {
    Sqlite,
    Postgres,
}

/// Where a test's datastore lives, removed by [`Place::remove`].
struct Place {
    _dir: tempfile::TempDir,
    /// PostgreSQL: the server and the test's schema.
    schema: Option<(String, String)>,
}

impl Place {
    async fn remove(self, ds: Datastore) {
        ds.close().await;
        if let Some((base, schema)) = self.schema {
            use sqlx::{AssertSqlSafe, Connection};
            let mut admin = sqlx::PgConnection::connect(&base).await.unwrap();
            sqlx::query(AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
                .execute(&mut admin)
                .await
                .unwrap();
        }
    }
}

/// A datastore holding one task, or `None` for PostgreSQL without a URL (outside CI).
async fn datastore(backend: Backend) -> Option<(Datastore, TaskId, Place)> {
    let dir = tempfile::tempdir().unwrap();
    let mut place_schema = None;
    let url = match backend {
        Backend::Sqlite => format!("sqlite://{}?mode=rwc", dir.path().join("d.db").display()),
        Backend::Postgres => {
            let base = cairn_test_services::postgres_url()?;
            use sqlx::{AssertSqlSafe, Connection};
            let schema = format!(
                "dap_leases_{}_{:x}",
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
            place_schema = Some((base, schema));
            url
        }
    };
    let ds = Datastore::connect(&url, DatastoreKey::from_bytes(&[5; 32]).unwrap())
        .await
        .unwrap();
    let task_id = TaskId::from_bytes([8; 32]);
    ds.put_task(&AggregatorTask {
        parameters: TaskParameters {
            task_id,
            leader_endpoint: "https://leader.example/".into(),
            helper_endpoint: "https://helper.example/".into(),
            time_precision: 3600,
            min_batch_size: 1,
            batch_mode: BatchMode::TimeInterval,
            vdaf: VdafInstance::Prio3Count,
            task_info: "leases".into(),
            task_interval: None,
            max_batch_size: None,
            differential_privacy: None,
            protocol: Default::default(),
        },
        role: AggregatorRole::Leader,
        vdaf_verify_key: [7; 32],
        collector_hpke_config: HpkeKeypair::generate(HpkeConfigId(9)).config().clone(),
        aggregator_auth_token: Some(BearerToken::new("a")),
        aggregator_auth_token_hash: Some(TokenHash::of("a")),
        collector_auth_token_hash: Some(TokenHash::of("c")),
        report_expiry_age: None,
    })
    .await
    .unwrap();
    let place = Place {
        _dir: dir,
        schema: place_schema,
    };
    Some((ds, task_id, place))
}

/// Distinct lease tokens and job IDs.
fn next_id() -> [u8; 16] {
    static NEXT: AtomicU8 = AtomicU8::new(1);
    [NEXT.fetch_add(1, Ordering::Relaxed); 16]
}

fn lease_lost<T: std::fmt::Debug>(r: Result<T, DatastoreError>) -> bool {
    matches!(r, Err(DatastoreError::LeaseLost))
}

async fn collection_job_leases_expire_and_are_taken_over(b: Backend) {
    let Some((ds, task_id, place)) = datastore(b).await else {
        return;
    };
    let job = CollectionJobId::from_bytes([1; 16]);
    assert!(
        ds.put_collection_job(&task_id, &job, b"req", Some((0, 1)))
            .await
            .unwrap()
    );
    let take = |now| {
        let ds = ds.clone();
        async move {
            ds.acquire_collection_jobs(now, LEASE, 10, next_id)
                .await
                .unwrap()
        }
    };
    let [a] = take(100).await.try_into().unwrap();
    assert!(take(109).await.is_empty(), "held until the lease expires");
    let [b] = take(110).await.try_into().unwrap();
    assert_ne!(a.token, b.token);
    // The driver whose lease expired can neither finish nor give the job back.
    assert!(lease_lost(ds.finish_collection_job(&a, Ok(vec![9])).await));
    ds.release_collection_job(&a, 0).await.unwrap();
    assert!(take(111).await.is_empty(), "b still holds it");
    let stored = ds
        .get_collection_job(&task_id, job.as_bytes())
        .await
        .unwrap();
    assert_eq!(stored.unwrap().state, "start");
    // Given back, it is due again at the retry time and not before.
    ds.release_collection_job(&b, 130).await.unwrap();
    assert!(take(129).await.is_empty());
    let [c] = take(130).await.try_into().unwrap();
    ds.finish_collection_job(&c, Ok(vec![1, 2])).await.unwrap();
    let stored = ds
        .get_collection_job(&task_id, job.as_bytes())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (stored.state.as_str(), stored.result),
        ("finished", Some(vec![1, 2]))
    );
    assert!(take(10_000).await.is_empty(), "a finished job is never due");
    assert!(lease_lost(
        ds.finish_collection_job(&c, Err("x".into())).await
    ));
    place.remove(ds).await;
}

async fn a_collection_job_deleted_while_leased_stays_deleted(b: Backend) {
    let Some((ds, task_id, place)) = datastore(b).await else {
        return;
    };
    let job = CollectionJobId::from_bytes([2; 16]);
    ds.put_collection_job(&task_id, &job, b"req", Some((0, 1)))
        .await
        .unwrap();
    let [lease] = ds
        .acquire_collection_jobs(100, LEASE, 10, next_id)
        .await
        .unwrap()
        .try_into()
        .unwrap();
    assert!(
        ds.delete_collection_job(&task_id, job.as_bytes())
            .await
            .unwrap()
    );
    let overlap = Err("batchOverlap".to_string());
    assert!(lease_lost(ds.finish_collection_job(&lease, overlap).await));
    let stored = ds
        .get_collection_job(&task_id, job.as_bytes())
        .await
        .unwrap();
    assert_eq!(stored.unwrap().state, "deleted");
    place.remove(ds).await;
}

async fn aggregation_job_leases_poll_and_commit_once(b: Backend) {
    let Some((ds, task_id, place)) = datastore(b).await else {
        return;
    };
    let reports: Vec<StoredReport> = (1..=3u8)
        .map(|i| StoredReport {
            report_id: ReportId::from_bytes([i; 16]),
            time: 5,
            public_extensions: vec![0, 0],
            public_share: Vec::new(),
            leader_input_share: vec![i],
            helper_encrypted_input_share: vec![i],
        })
        .collect();
    ds.put_client_reports(&task_id, &reports, &[])
        .await
        .unwrap();
    let jobs = ds
        .create_aggregation_jobs(&task_id, 10, next_id)
        .await
        .unwrap();
    assert_eq!(jobs.len(), 1);
    let take = |now| {
        let ds = ds.clone();
        async move {
            ds.acquire_aggregation_jobs(now, LEASE, 10, next_id)
                .await
                .unwrap()
        }
    };
    let [a]: [Lease; 1] = take(100).await.try_into().unwrap();
    // The helper deferred: the job waits for its poll time with the lease given back.
    let helper_job = AggregationJobId::from_bytes([7; 16]);
    ds.set_aggregation_job_polling(&a, Some(&helper_job), 200)
        .await
        .unwrap();
    assert_eq!(
        ds.get_aggregation_job_helper_id(&task_id, &a.job_id)
            .await
            .unwrap(),
        Some(helper_job)
    );
    assert!(lease_lost(
        ds.set_aggregation_job_polling(&a, None, 300).await
    ));
    assert!(take(199).await.is_empty());
    let [b]: [Lease; 1] = take(200).await.try_into().unwrap();
    let outcomes: Vec<ReportOutcome> = reports
        .iter()
        .map(|r| ReportOutcome {
            report_id: r.report_id,
            time: r.time,
            bucket: cairn_dap_aggregator::datastore::BucketKey::for_report(None, r.time),
            result: Err(ReportError::VdafVerifyError),
        })
        .collect();
    let vdaf = count_engine();
    assert!(lease_lost(
        ds.commit_leader_aggregation_job(&a, &vdaf, &[], &outcomes)
            .await
    ));
    assert_eq!(
        ds.count_pending_aggregation_jobs(&task_id).await.unwrap(),
        1
    );
    ds.commit_leader_aggregation_job(&b, &vdaf, &[], &outcomes)
        .await
        .unwrap();
    assert_eq!(
        ds.count_pending_aggregation_jobs(&task_id).await.unwrap(),
        0
    );
    assert!(take(10_000).await.is_empty(), "a finished job is never due");
    assert!(lease_lost(
        ds.commit_leader_aggregation_job(&b, &vdaf, &[], &outcomes)
            .await
    ));
    place.remove(ds).await;
}

async fn helper_job_leases_release_finish_and_stop_at_deletion(b: Backend) {
    let Some((ds, task_id, place)) = datastore(b).await else {
        return;
    };
    let vdaf = count_engine();
    let respond = || -> ResponseBuilder {
        Box::new(|results: &[Result<(), ReportError>]| vec![u8::try_from(results.len()).unwrap()])
    };
    let take = |now| {
        let ds = ds.clone();
        async move {
            ds.acquire_helper_aggregation_jobs(now, LEASE, 10, next_id)
                .await
                .unwrap()
        }
    };
    let deleted = AggregationJobId::from_bytes([3; 16]);
    assert!(
        ds.put_helper_aggregation_job_request(&task_id, &deleted, b"init")
            .await
            .unwrap()
    );
    let [a]: [Lease; 1] = take(100).await.try_into().unwrap();
    assert!(
        ds.delete_helper_aggregation_job(&task_id, &deleted)
            .await
            .unwrap()
    );
    assert!(lease_lost(
        ds.finish_helper_aggregation_job(&a, &vdaf, &[], &[], respond())
            .await
    ));
    let job = ds
        .get_helper_aggregation_job(&task_id, &deleted)
        .await
        .unwrap();
    assert_eq!(job.unwrap().state, HelperJobState::Deleted);
    assert!(take(10_000).await.is_empty(), "a deleted job is never due");

    let kept = AggregationJobId::from_bytes([4; 16]);
    ds.put_helper_aggregation_job_request(&task_id, &kept, b"init")
        .await
        .unwrap();
    let [b]: [Lease; 1] = take(20_000).await.try_into().unwrap();
    ds.release_helper_aggregation_job(&b, 20_300).await.unwrap();
    assert!(take(20_299).await.is_empty());
    let [c]: [Lease; 1] = take(20_300).await.try_into().unwrap();
    assert!(lease_lost(
        ds.finish_helper_aggregation_job(&b, &vdaf, &[], &[], respond())
            .await
    ));
    ds.finish_helper_aggregation_job(&c, &vdaf, &[], &[], respond())
        .await
        .unwrap();
    let job = ds
        .get_helper_aggregation_job(&task_id, &kept)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (job.state, job.response),
        (HelperJobState::Finished, vec![0])
    );
    assert_eq!(
        ds.get_helper_aggregation_job_request(&task_id, kept.as_bytes())
            .await
            .unwrap(),
        None,
        "the request is dropped once the job is finished"
    );
    place.remove(ds).await;
}

/// Several drivers at once (on SQLite, writes of the group-commit writer sharing batches; on
/// PostgreSQL, concurrent transactions): each due job is leased to exactly one of them, and of
/// two commits under the same lease exactly one succeeds.
async fn concurrent_drivers_take_each_job_once_and_finish_it_once(b: Backend) {
    let Some((ds, task_id, place)) = datastore(b).await else {
        return;
    };
    let mut jobs = BTreeSet::new();
    for i in 0..12u8 {
        let id = AggregationJobId::from_bytes([0x40 + i; 16]);
        assert!(
            ds.put_helper_aggregation_job_request(&task_id, &id, b"init")
                .await
                .unwrap()
        );
        jobs.insert(*id.as_bytes());
    }
    let mut drivers = JoinSet::new();
    for _ in 0..8 {
        let ds = ds.clone();
        drivers.spawn(async move {
            ds.acquire_helper_aggregation_jobs(100, LEASE, 3, next_id)
                .await
                .unwrap()
        });
    }
    let mut leased = Vec::new();
    while let Some(taken) = drivers.join_next().await {
        leased.extend(taken.unwrap());
    }
    let mut ids: Vec<[u8; 16]> = leased.iter().map(|l| l.job_id).collect();
    ids.sort_unstable();
    assert_eq!(
        ids,
        jobs.into_iter().collect::<Vec<_>>(),
        "each job leased once"
    );

    let mut commits = JoinSet::new();
    for lease in &leased {
        for _ in 0..2 {
            let (ds, lease) = (ds.clone(), lease.clone());
            commits.spawn(async move {
                let respond: ResponseBuilder = Box::new(|_| vec![1]);
                ds.finish_helper_aggregation_job(&lease, &count_engine(), &[], &[], respond)
                    .await
            });
        }
    }
    let (mut committed, mut lost) = (0, 0);
    while let Some(r) = commits.join_next().await {
        match r.unwrap() {
            Ok(()) => committed += 1,
            Err(DatastoreError::LeaseLost) => lost += 1,
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!((committed, lost), (12, 12));
    place.remove(ds).await;
}

/// Job creation moves reports into jobs many at a time: every report lands in exactly one job,
/// each job's reports are those it was given (sorted by ID, within the size limit), a job whose
/// reports take more than one statement is whole, and a second pass finds nothing to assign.
async fn aggregation_jobs_cover_every_report_once(b: Backend) {
    let Some((ds, task_id, place)) = datastore(b).await else {
        return;
    };
    // 1,203 reports: one job of 1,000 (more than one multi-row statement) and one of 203.
    let reports: Vec<StoredReport> = (0..1_203u16)
        .map(|i| {
            let mut id = [0u8; 16];
            id[..2].copy_from_slice(&i.to_be_bytes());
            id[15] = 0xaa;
            StoredReport {
                report_id: ReportId::from_bytes(id),
                time: 5,
                public_extensions: vec![0, 0],
                public_share: Vec::new(),
                leader_input_share: i.to_be_bytes().to_vec(),
                helper_encrypted_input_share: vec![1],
            }
        })
        .collect();
    ds.put_client_reports(&task_id, &reports, &[])
        .await
        .unwrap();
    let mut ids = [[0x40u8; 16], [0x41u8; 16]].into_iter();
    let jobs = ds
        .create_aggregation_jobs(&task_id, 1_000, move || ids.next().unwrap())
        .await
        .unwrap();
    assert_eq!(jobs.len(), 2);
    let mut seen = Vec::new();
    for (job, expected) in jobs.iter().zip([1_000, 203]) {
        let got = ds
            .get_aggregation_job_reports(&task_id, job.as_bytes())
            .await
            .unwrap();
        assert_eq!(got.len(), expected);
        assert!(got.windows(2).all(|w| w[0].report_id < w[1].report_id));
        for r in &got {
            // The stored report is the one uploaded under that ID.
            let i = u16::from_be_bytes(r.report_id.as_bytes()[..2].try_into().unwrap());
            assert_eq!(r.leader_input_share, i.to_be_bytes().to_vec());
        }
        seen.extend(got.into_iter().map(|r| r.report_id));
    }
    seen.sort();
    let mut all: Vec<ReportId> = reports.iter().map(|r| r.report_id).collect();
    all.sort();
    assert_eq!(seen, all, "each report in exactly one job");
    assert!(
        ds.create_aggregation_jobs(&task_id, 1_000, next_id)
            .await
            .unwrap()
            .is_empty(),
        "reports already in a job were assigned again"
    );
    place.remove(ds).await;
}

macro_rules! on_backends {
    ($($name:ident),+ $(,)?) => {
        mod sqlite {
            $( #[tokio::test]
               async fn $name() { super::$name(super::Backend::Sqlite).await } )+
        }
        mod postgres {
            $( #[tokio::test]
               async fn $name() { super::$name(super::Backend::Postgres).await } )+
        }
    };
}

on_backends!(
    collection_job_leases_expire_and_are_taken_over,
    a_collection_job_deleted_while_leased_stays_deleted,
    aggregation_job_leases_poll_and_commit_once,
    helper_job_leases_release_finish_and_stop_at_deletion,
    concurrent_drivers_take_each_job_once_and_finish_it_once,
    aggregation_jobs_cover_every_report_once,
);

/// Prio3Count as a DAP-18 task runs it.
fn count_engine() -> VdafEngine {
    VdafEngine::new(VdafInstance::Prio3Count, Protocol::Dap18, Vec::new())
}
