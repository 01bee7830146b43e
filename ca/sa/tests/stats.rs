//! The public statistics counters (`StatsStorage`) on SQLite (always) and PostgreSQL (when
//! `CAIRN_TEST_POSTGRES_URL` is set; each test in a fresh schema, dropped after): issuance and
//! revocation keep them up to date, the recompute job rebuilds the same numbers from the
//! certificates, and pruning drops only what can no longer count. The page's own per-day
//! tables (SLI events, CT log sizes) add up, keep each day's largest size, and survive the
//! recompute job.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use cairn_core::{
    Account, AccountId, AccountStatus, Authorization, AuthzId, AuthzStatus, Certificate, Challenge,
    ChallengeId, ChallengeStatus, ChallengeType, Identifier, Order, OrderId, OrderStatus,
    Revocation, RevocationReason, Serial,
};
use cairn_sa::{
    CtLogSize, IssuanceStats, Lease, SliCount, SqlStorage, StatsStorage, StorageAuthority,
};
use std::sync::atomic::{AtomicU64, Ordering};
use time::macros::{date, datetime};
use time::{Duration, OffsetDateTime};

// ---- harness ----

async fn with_sqlite<F, Fut>(test: F)
where
    F: FnOnce(SqlStorage) -> Fut,
    Fut: Future<Output = ()>,
{
    let dir = tempfile::tempdir().unwrap();
    let sa = SqlStorage::open_sqlite_in(dir.path()).await.unwrap();
    test(sa.clone()).await;
    sa.close().await;
}

async fn with_postgres<F, Fut>(test: F)
where
    F: FnOnce(SqlStorage) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    use sqlx::{AssertSqlSafe, Connection};
    static NEXT: AtomicU64 = AtomicU64::new(0);

    let Some(base) = cairn_test_services::postgres_url() else {
        return;
    };
    let schema = format!(
        "stats_{}_{:x}_{}",
        std::process::id(),
        OffsetDateTime::now_utc().unix_timestamp_nanos(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    let mut admin = sqlx::PgConnection::connect(&base).await.unwrap();
    sqlx::query(AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
        .execute(&mut admin)
        .await
        .unwrap();
    let sep = if base.contains('?') { '&' } else { '?' };
    let url = format!("{base}{sep}options=-csearch_path%3D{schema}");
    let sa = SqlStorage::connect(&url).await.unwrap();
    let run = tokio::spawn(test(sa.clone())).await;
    sa.close().await;
    sqlx::query(AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
        .execute(&mut admin)
        .await
        .unwrap();
    if let Err(e) = run {
        std::panic::resume_unwind(e.into_panic());
    }
}

macro_rules! stats_tests {
    ($($name:ident),+ $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::with_sqlite(|sa| async move { super::$name(&sa).await }).await;
                }
            )+
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::with_postgres(|sa| async move { super::$name(&sa).await }).await;
                }
            )+
        }
    };
}

stats_tests!(
    issuance_and_revocation_keep_the_counters,
    a_domain_counts_once_until_its_latest_certificate_expires,
    recompute_rebuilds_the_same_numbers,
    pruning_keeps_the_numbers,
    concurrent_issuance_counts_every_certificate,
    sli_events_add_up_per_endpoint_over_the_days_asked,
    ct_log_sizes_keep_each_days_largest,
);

// ---- fixtures ----

const T0: OffsetDateTime = datetime!(2026-05-01 12:00:00 UTC);

async fn new_account(sa: &SqlStorage) -> AccountId {
    let id = AccountId::random();
    let a = Account {
        jwk: serde_json::json!({"kty": "EC", "crv": "P-256", "x": id.as_str(), "y": "y"}),
        key_thumbprint: format!("thumb-{id}"),
        id: id.clone(),
        contact: vec![],
        status: AccountStatus::Valid,
        created_at: T0,
        eab_key_id: None,
        initial_ip: None,
    };
    sa.new_account(&a).await.unwrap();
    id
}

/// Issues a certificate for `names` valid from `not_before` for `days` days; returns its serial.
async fn issue(
    sa: &SqlStorage,
    account: &AccountId,
    names: &[&str],
    not_before: OffsetDateTime,
    days: i64,
) -> Serial {
    let authzs: Vec<Authorization> = names
        .iter()
        .map(|n| Authorization {
            id: AuthzId::random(),
            account_id: account.clone(),
            identifier: Identifier::dns(*n),
            status: AuthzStatus::Pending,
            expires: T0 + Duration::days(7),
            wildcard: false,
            challenges: vec![Challenge {
                id: ChallengeId::random(),
                typ: ChallengeType::Http01,
                token: cairn_core::random_id(32),
                status: ChallengeStatus::Pending,
                validated: None,
                error: None,
                validation_record: vec![],
            }],
            created_at: T0,
        })
        .collect();
    let mut identifiers: Vec<Identifier> = authzs.iter().map(|a| a.identifier.clone()).collect();
    identifiers.sort();
    let order = Order {
        id: OrderId::random(),
        account_id: account.clone(),
        status: OrderStatus::Pending,
        identifiers: identifiers.clone(),
        authz_ids: authzs.iter().map(|a| a.id.clone()).collect(),
        expires: T0 + Duration::days(7),
        not_before: None,
        not_after: None,
        error: None,
        certificate_serial: None,
        profile: None,
        replaces: None,
        csr_der: None,
        created_at: T0,
    };
    sa.new_order_and_authzs(&order, &authzs).await.unwrap();
    let serial = Serial::random();
    let lease = Lease {
        owner: "a".into(),
        until: T0 + Duration::minutes(5),
    };
    assert!(
        sa.set_order_processing(&order.id, b"csr", &serial, T0, &lease)
            .await
            .unwrap()
    );
    sa.finalize_order(&Certificate {
        serial: serial.clone(),
        account_id: account.clone(),
        order_id: order.id.clone(),
        der: vec![0x30, 0x00],
        issuer_id: "int-a".into(),
        identifiers,
        not_before,
        not_after: not_before + Duration::days(days),
        spki_sha256: "ab".repeat(32),
        revocation: None,
        renew_by: None,
        replaced_by: None,
        crl_shard: 0,
    })
    .await
    .unwrap();
    serial
}

async fn revoke(sa: &SqlStorage, serial: &Serial) {
    sa.revoke_certificate(
        serial,
        &Revocation {
            revoked_at: T0 + Duration::hours(1),
            reason: RevocationReason::KeyCompromise,
        },
    )
    .await
    .unwrap();
}

async fn stats_at(sa: &SqlStorage, now: OffsetDateTime) -> IssuanceStats {
    sa.get_issuance_stats(now, date!(2026 - 01 - 01))
        .await
        .unwrap()
}

// ---- behaviours ----

async fn issuance_and_revocation_keep_the_counters(sa: &SqlStorage) {
    let acct = new_account(sa).await;
    assert_eq!(stats_at(sa, T0).await, IssuanceStats::default());
    let a = issue(sa, &acct, &["www.example.com", "example.com"], T0, 90).await;
    issue(
        sa,
        &acct,
        &["shop.example.co.uk"],
        T0 + Duration::days(1),
        90,
    )
    .await;
    issue(sa, &acct, &["alice.github.io"], T0 + Duration::days(1), 6).await;
    // Issued before the counted days: counts as active, not in the daily series.
    issue(
        sa,
        &acct,
        &["old.example.net"],
        datetime!(2025-12-30 00:00 UTC),
        150,
    )
    .await;

    let now = T0 + Duration::days(2);
    let s = stats_at(sa, now).await;
    assert_eq!(s.active_certificates, 4);
    assert_eq!(s.active_domains, 4);
    assert_eq!(
        s.daily_issuance,
        vec![(date!(2026 - 05 - 01), 1), (date!(2026 - 05 - 02), 2)]
    );

    revoke(sa, &a).await;
    let s = stats_at(sa, now).await;
    assert_eq!(
        s.active_certificates, 3,
        "a revoked certificate is not active"
    );
    assert_eq!(s.active_domains, 4, "revocation leaves its domains active");
    assert_eq!(
        s.daily_issuance.len(),
        2,
        "revocation leaves issuance alone"
    );

    // The 6-day certificate expires on May 8th at 12:00: it counts until that hour ends.
    let s = stats_at(sa, datetime!(2026-05-08 12:59 UTC)).await;
    assert_eq!((s.active_certificates, s.active_domains), (3, 4));
    let s = stats_at(sa, datetime!(2026-05-08 13:00 UTC)).await;
    assert_eq!((s.active_certificates, s.active_domains), (2, 3));
    // After every certificate has expired.
    let s = stats_at(sa, T0 + Duration::days(400)).await;
    assert_eq!((s.active_certificates, s.active_domains), (0, 0));
}

async fn a_domain_counts_once_until_its_latest_certificate_expires(sa: &SqlStorage) {
    let acct = new_account(sa).await;
    issue(sa, &acct, &["a.example.com"], T0, 90).await;
    issue(sa, &acct, &["b.example.com", "c.example.com"], T0, 30).await;
    issue(sa, &acct, &["example.com"], T0, 10).await;
    let s = stats_at(sa, T0).await;
    assert_eq!((s.active_certificates, s.active_domains), (3, 1));
    // Past the 30-day one, before the 90-day one: the domain still counts.
    let s = stats_at(sa, T0 + Duration::days(60)).await;
    assert_eq!((s.active_certificates, s.active_domains), (1, 1));
    let s = stats_at(sa, T0 + Duration::days(91)).await;
    assert_eq!((s.active_certificates, s.active_domains), (0, 0));
}

async fn recompute_rebuilds_the_same_numbers(sa: &SqlStorage) {
    assert!(
        sa.stats_recomputed().await.unwrap(),
        "a new database needs no rebuild"
    );
    let acct = new_account(sa).await;
    let mut serials = vec![];
    for i in 0..30_i64 {
        let name = format!("host{i}.site{}.example", i % 7);
        let s = issue(sa, &acct, &[&name], T0 + Duration::hours(i * 5), 10 + i).await;
        serials.push(s);
    }
    revoke(sa, &serials[3]).await;
    revoke(sa, &serials[17]).await;
    let s = stats_at(sa, T0).await;
    assert_eq!((s.active_certificates, s.active_domains), (28, 7));
    // Each rebuild counts what is active from its `now` on; later times only, from here.
    for now in [T0, T0 + Duration::days(3), T0 + Duration::days(20)] {
        let before = stats_at(sa, now).await;
        sa.recompute_stats(now).await.unwrap();
        let after = stats_at(sa, now).await;
        assert_eq!(before, after, "at {now}");
    }
    let s = stats_at(sa, T0 + Duration::days(20)).await;
    assert!(
        s.active_certificates > 0 && s.active_certificates < 28,
        "{s:?}"
    );
    assert_eq!(s.daily_issuance.iter().map(|(_, n)| n).sum::<u64>(), 30);
    assert!(sa.stats_recomputed().await.unwrap());
}

async fn pruning_keeps_the_numbers(sa: &SqlStorage) {
    let acct = new_account(sa).await;
    issue(sa, &acct, &["short.example"], T0, 1).await;
    issue(sa, &acct, &["long.example"], T0, 90).await;
    let now = T0 + Duration::days(5);
    let before = stats_at(sa, now).await;
    let pruned = sa.prune_stats(now).await.unwrap();
    assert_eq!(pruned, 2, "the past expiry hour and the expired domain");
    assert_eq!(stats_at(sa, now).await, before);
    assert_eq!(sa.prune_stats(now).await.unwrap(), 0);
    // The pruned domain comes back with a new certificate.
    issue(sa, &acct, &["www.short.example"], now, 90).await;
    let s = stats_at(sa, now).await;
    assert_eq!((s.active_certificates, s.active_domains), (2, 2));
}

async fn concurrent_issuance_counts_every_certificate(sa: &SqlStorage) {
    let acct = new_account(sa).await;
    let mut tasks = vec![];
    for i in 0..24 {
        let (sa, acct) = (sa.clone(), acct.clone());
        tasks.push(tokio::spawn(async move {
            // Shared registered domains, in different orders: the lock order must hold.
            let names = if i % 2 == 0 {
                vec![format!("a{i}.one.example"), format!("b{i}.two.example")]
            } else {
                vec![format!("b{i}.two.example"), format!("a{i}.one.example")]
            };
            let refs: Vec<&str> = names.iter().map(String::as_str).collect();
            issue(&sa, &acct, &refs, T0 + Duration::minutes(i), 90).await;
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let s = stats_at(sa, T0 + Duration::days(1)).await;
    assert_eq!((s.active_certificates, s.active_domains), (24, 2));
    assert_eq!(s.daily_issuance, vec![(date!(2026 - 05 - 01), 24)]);
}

fn sli(endpoint: &str, valid: u64, errors: u64) -> SliCount {
    SliCount {
        listener: "acme".into(),
        endpoint: endpoint.into(),
        valid,
        errors,
    }
}

async fn sli_events_add_up_per_endpoint_over_the_days_asked(sa: &SqlStorage) {
    assert_eq!(
        sa.get_sli_counts(date!(2026 - 01 - 01)).await.unwrap(),
        (vec![], None)
    );
    sa.add_sli_counts(date!(2026 - 04 - 30), &[sli("/acme/new-order", 1000, 1000)])
        .await
        .unwrap();
    // Two processes' minutes on one day, then the next day.
    let minute = [sli("/directory", 10, 0), sli("/acme/new-order", 5, 1)];
    sa.add_sli_counts(date!(2026 - 05 - 01), &minute)
        .await
        .unwrap();
    sa.add_sli_counts(date!(2026 - 05 - 01), &minute)
        .await
        .unwrap();
    sa.add_sli_counts(date!(2026 - 05 - 02), &[sli("/acme/new-order", 3, 0)])
        .await
        .unwrap();
    sa.add_sli_counts(date!(2026 - 05 - 02), &[]).await.unwrap();
    let (counts, first) = sa.get_sli_counts(date!(2026 - 05 - 01)).await.unwrap();
    assert_eq!(first, Some(date!(2026 - 05 - 01)));
    assert_eq!(
        counts,
        [sli("/acme/new-order", 13, 2), sli("/directory", 20, 0)],
        "the day before is left out"
    );
    // The recompute job rebuilds the issuance counters only.
    sa.recompute_stats(T0).await.unwrap();
    let (again, _) = sa.get_sli_counts(date!(2026 - 04 - 01)).await.unwrap();
    assert_eq!(again[0], sli("/acme/new-order", 1013, 1002));
}

async fn ct_log_sizes_keep_each_days_largest(sa: &SqlStorage) {
    for (day, log, size) in [
        (date!(2026 - 05 - 01), "oak", 10),
        (date!(2026 - 05 - 01), "oak", 30),
        (date!(2026 - 05 - 01), "oak", 20),
        (date!(2026 - 05 - 02), "oak", 45),
        (date!(2026 - 05 - 02), "birch", 7),
        (date!(2026 - 04 - 01), "oak", 1),
    ] {
        sa.put_ct_log_size(day, log, size).await.unwrap();
    }
    let size = |day, log: &str, tree_size| CtLogSize {
        day,
        log: log.into(),
        tree_size,
    };
    assert_eq!(
        sa.get_ct_log_sizes(date!(2026 - 05 - 01)).await.unwrap(),
        [
            size(date!(2026 - 05 - 02), "birch", 7),
            size(date!(2026 - 05 - 01), "oak", 30),
            size(date!(2026 - 05 - 02), "oak", 45),
        ]
    );
}
