//! The rate-limit behaviours, written once and run against `MemoryStore` (always) and
//! `RedisStore` (when `CAIRN_TEST_REDIS_URL` is set; each test under a random key prefix, removed
//! afterwards). Time is injected: no test sleeps.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use cairn_core::{AccountId, Identifier};
use cairn_ratelimit::{
    LimitName, MemoryStore, RateLimitConfig, RateLimitError, RateLimitStore, RateLimiter,
    RedisStore, Transaction, Unpause,
};
use std::future::Future;
use std::net::IpAddr;
use std::sync::Arc;
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

// ---- harness ----

use cairn_test_services::REDIS_ENV;
const T0: OffsetDateTime = datetime!(2026-01-15 00:00 UTC);

async fn with_memory<F, Fut>(test: F)
where
    F: FnOnce(Arc<dyn RateLimitStore>) -> Fut,
    Fut: Future<Output = ()>,
{
    test(Arc::new(MemoryStore::new())).await;
}

/// Runs `test` on Redis under a fresh key prefix and deletes the prefix's keys afterwards (also
/// when the test panics), or skips when `CAIRN_TEST_REDIS_URL` is unset outside CI.
async fn with_redis<F, Fut>(test: F)
where
    F: FnOnce(Arc<dyn RateLimitStore>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let Some(url) = cairn_test_services::redis_url() else {
        return;
    };
    let prefix = format!("cairn-test:{}:", cairn_core::random_id(9));
    let store = RedisStore::connect(&url, prefix.clone())
        .await
        .unwrap_or_else(|e| panic!("connecting to {REDIS_ENV}: {e}"));
    let outcome = tokio::spawn(test(Arc::new(store))).await;
    let client = redis::Client::open(url.as_str()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query_async(&mut conn)
        .await
        .unwrap();
    if !keys.is_empty() {
        let _: i64 = redis::cmd("DEL")
            .arg(&keys)
            .query_async(&mut conn)
            .await
            .unwrap();
    }
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

/// Declares `<behaviour>::memory` and `<behaviour>::redis` for an `async fn(store)`.
macro_rules! on_both_stores {
    ($($behaviour:ident),* $(,)?) => {$(
        mod $behaviour {
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn memory() {
                super::with_memory(super::$behaviour).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn redis() {
                super::with_redis(super::$behaviour).await;
            }
        }
    )*};
}

on_both_stores!(
    burst_then_deny_with_retry_after,
    refill_after_time_passes,
    multi_bucket_spend_is_all_or_nothing,
    overrides_make_buckets_bigger_or_smaller,
    disabled_limits_never_refuse,
    refunds_give_tokens_back,
    failures_pause_and_unpause_lifts,
    failed_validations_block_new_orders,
    concurrent_spends_never_exceed_capacity,
    concurrent_multi_bucket_spends_never_exceed_capacity,
);

fn limiter(store: Arc<dyn RateLimitStore>, toml_config: &str) -> RateLimiter {
    let config: RateLimitConfig = toml::from_str(toml_config).unwrap();
    RateLimiter::new(&config, store).unwrap()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn account(s: &str) -> AccountId {
    AccountId(s.to_string())
}

fn denied(result: Result<(), RateLimitError>) -> cairn_ratelimit::Denied {
    match result {
        Err(RateLimitError::Denied(d)) => *d,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

async fn count_allowed(limiter: &RateLimiter, now: OffsetDateTime, txns: &[Transaction]) -> usize {
    let mut n = 0;
    while limiter.check_and_spend(now, txns).await.is_ok() {
        n += 1;
        assert!(n < 10_000, "never refused");
    }
    n
}

// ---- behaviours ----

async fn burst_then_deny_with_retry_after(store: Arc<dyn RateLimitStore>) {
    let limiter = limiter(store, "");
    let txns = Transaction::new_account(ip("192.0.2.1"));
    assert_eq!(count_allowed(&limiter, T0, &txns).await, 10);
    let d = denied(limiter.check_and_spend(T0, &txns).await);
    assert_eq!(d.limit, LimitName::NewAccountsPerIp);
    assert_eq!(d.key.id(), "192.0.2.1");
    assert_eq!(d.retry_after, Duration::minutes(18));
    assert_eq!(d.retry_after_secs(), 1080);
    assert!(
        d.detail.contains("new accounts from this IP address"),
        "{}",
        d.detail
    );
    assert!(d.detail.contains("10 per 3h"), "{}", d.detail);
    assert!(d.detail.contains("2026-01-15T00:18:00Z"), "{}", d.detail);
    assert!(
        d.doc_url
            .ends_with("docs/rate-limits.md#new-accounts-per-ip")
    );
    // Another address has its own bucket.
    assert!(
        limiter
            .check_and_spend(T0, &Transaction::new_account(ip("192.0.2.2")))
            .await
            .is_ok()
    );
}

async fn refill_after_time_passes(store: Arc<dyn RateLimitStore>) {
    let limiter = limiter(store, "");
    let txns = [Transaction::new_orders_per_account(&account("acct"))];
    assert_eq!(count_allowed(&limiter, T0, &txns).await, 300);
    let almost = T0 + Duration::seconds(35);
    assert_eq!(
        denied(limiter.check_and_spend(almost, &txns).await).retry_after_secs(),
        1
    );
    assert_eq!(
        count_allowed(&limiter, T0 + Duration::seconds(36 * 5), &txns).await,
        5
    );
    assert_eq!(
        count_allowed(&limiter, T0 + Duration::days(1), &txns).await,
        300,
        "a bucket refills to its capacity and no further"
    );
}

async fn multi_bucket_spend_is_all_or_nothing(store: Arc<dyn RateLimitStore>) {
    let limiter = limiter(
        store.clone(),
        r#"
        [limits.certificates_per_domain]
        burst = 2
        period = "7d"
        "#,
    );
    let acct = account("acct");
    for name in ["a.example.com", "b.example.com"] {
        let order = Transaction::new_order(&acct, &[Identifier::dns(name)], None);
        limiter.check_and_spend(T0, &order).await.unwrap();
    }
    let ids = [
        Identifier::dns("example.net"),
        Identifier::dns("c.example.com"),
    ];
    let order = Transaction::new_order(&acct, &ids, None);
    let d = denied(limiter.check_and_spend(T0, &order).await);
    assert_eq!(d.limit, LimitName::CertificatesPerDomain);
    assert_eq!(d.key.id(), "example.com");
    // Nothing else was spent: example.net and the identifier set still have no TAT, and the
    // account's new-orders bucket holds just the two orders that went through.
    let untouched: Vec<String> = order
        .iter()
        .filter(|t| {
            matches!(
                t.key().limit(),
                LimitName::CertificatesPerFqdnSet | LimitName::CertificatesPerDomain
            ) && t.key().id() != "example.com"
        })
        .map(|t| t.key().storage_key())
        .collect();
    assert_eq!(untouched.len(), 2);
    assert_eq!(store.get_tats(&untouched).await.unwrap(), vec![None, None]);
    let orders = [Transaction::new_orders_per_account(&acct)];
    assert_eq!(count_allowed(&limiter, T0, &orders).await, 298);
}

async fn overrides_make_buckets_bigger_or_smaller(store: Arc<dyn RateLimitStore>) {
    let limiter = limiter(
        store,
        r#"
        [limits.new_orders_per_account]
        burst = 3

        [[overrides]]
        limit = "new_orders_per_account"
        account = "enterprise"
        burst = 20
        comment = "bigger bucket for a big customer"

        [[overrides]]
        limit = "new_orders_per_account"
        account = "noisy"
        burst = 1
        period = "1d"

        [[overrides]]
        limit = "certificates_per_domain"
        domain = "example.com"
        burst = 100

        [[overrides]]
        limit = "new_accounts_per_ip"
        ip = "198.51.100.0/24"
        burst = 50

        [[overrides]]
        limit = "new_accounts_per_ip"
        ip = "198.51.100.128/25"
        burst = 0
        "#,
    );
    let orders = |a: &str| [Transaction::new_orders_per_account(&account(a))];
    assert_eq!(count_allowed(&limiter, T0, &orders("someone")).await, 3);
    assert_eq!(count_allowed(&limiter, T0, &orders("enterprise")).await, 20);
    assert_eq!(count_allowed(&limiter, T0, &orders("noisy")).await, 1);
    let d = denied(limiter.check_and_spend(T0, &orders("noisy")).await);
    assert_eq!(d.retry_after, Duration::days(1));
    assert!(d.detail.contains("1 per 1d"), "{}", d.detail);

    let acct = account("acct");
    let per_domain = |name: &str| {
        [Transaction::certificates_per_domain(
            &acct,
            &Identifier::dns(name),
        )]
    };
    assert_eq!(
        count_allowed(&limiter, T0, &per_domain("www.example.com")).await,
        100
    );
    assert_eq!(
        count_allowed(&limiter, T0, &per_domain("www.example.org")).await,
        50
    );

    let accounts_from = |s: &str| Transaction::new_account(ip(s));
    assert_eq!(
        count_allowed(&limiter, T0, &accounts_from("198.51.100.7")).await,
        50
    );
    assert_eq!(
        count_allowed(&limiter, T0, &accounts_from("198.51.100.200")).await,
        0,
        "the longest prefix wins"
    );
    assert_eq!(
        count_allowed(&limiter, T0, &accounts_from("203.0.113.9")).await,
        10
    );
}

async fn disabled_limits_never_refuse(store: Arc<dyn RateLimitStore>) {
    let limiter = limiter(
        store.clone(),
        r#"
        [limits.new_orders_per_account]
        enabled = false
        [limits.certificates_per_domain]
        enabled = false
        [limits.certificates_per_fqdn_set]
        enabled = false
        "#,
    );
    let acct = account("acct");
    let order = Transaction::new_order(&acct, &[Identifier::dns("example.com")], None);
    for _ in 0..1000 {
        limiter.check_and_spend(T0, &order).await.unwrap();
    }
    let keys: Vec<String> = order.iter().map(|t| t.key().storage_key()).collect();
    assert!(
        store
            .get_tats(&keys)
            .await
            .unwrap()
            .iter()
            .all(Option::is_none)
    );
    // Limits left on still apply.
    let accounts = Transaction::new_account(ip("192.0.2.1"));
    assert_eq!(count_allowed(&limiter, T0, &accounts).await, 10);
}

async fn refunds_give_tokens_back(store: Arc<dyn RateLimitStore>) {
    let limiter = limiter(store, "");
    let acct = account("acct");
    let order = Transaction::new_order(&acct, &[Identifier::dns("example.com")], None);
    assert_eq!(
        count_allowed(&limiter, T0, &order).await,
        5,
        "duplicate-certificate limit"
    );
    limiter.refund(T0, &order).await.unwrap();
    limiter.check_and_spend(T0, &order).await.unwrap();
    assert!(limiter.check_and_spend(T0, &order).await.is_err());
    // Refunding a full bucket does nothing: it never goes above capacity.
    let fresh = [Transaction::new_orders_per_account(&account("other"))];
    limiter.refund(T0, &fresh).await.unwrap();
    assert_eq!(count_allowed(&limiter, T0, &fresh).await, 300);
}

async fn failures_pause_and_unpause_lifts(store: Arc<dyn RateLimitStore>) {
    let limiter = limiter(
        store,
        r#"
        [limits.failed_authorizations_for_pausing_per_domain_per_account]
        burst = 3
        count = 1
        period = "1d"
        "#,
    );
    let acct = account("acct");
    let name = Identifier::dns("*.example.com");
    let other = Identifier::dns("example.org");
    let mut now = T0;
    for expect_paused in [false, false, true] {
        let outcome = limiter
            .record_failed_validation(now, &acct, &name)
            .await
            .unwrap();
        assert_eq!(outcome.paused, expect_paused);
        now += Duration::hours(2);
    }
    assert!(
        limiter
            .is_paused(&acct, &Identifier::dns("example.com"))
            .await
            .unwrap()
    );
    assert!(!limiter.is_paused(&acct, &other).await.unwrap());
    assert!(!limiter.is_paused(&account("else"), &name).await.unwrap());
    match limiter
        .check_paused(&acct, &[other.clone(), name.clone()])
        .await
    {
        Err(RateLimitError::Paused { identifiers, .. }) => {
            assert_eq!(identifiers, [Identifier::dns("example.com")]);
        }
        other => panic!("expected paused, got {other:?}"),
    }
    let lifted = limiter
        .unpause(&acct, Unpause::Identifiers(std::slice::from_ref(&name)))
        .await
        .unwrap();
    assert_eq!(lifted, [Identifier::dns("example.com")]);
    limiter
        .check_paused(&acct, std::slice::from_ref(&name))
        .await
        .unwrap();
    // Unpausing gave a fresh bucket: the next failure does not pause again.
    assert!(
        !limiter
            .record_failed_validation(now, &acct, &name)
            .await
            .unwrap()
            .paused
    );

    // A success starts the count over.
    limiter
        .record_failed_validation(now, &acct, &other)
        .await
        .unwrap();
    limiter
        .record_failed_validation(now, &acct, &other)
        .await
        .unwrap();
    limiter
        .record_successful_validation(&acct, &other)
        .await
        .unwrap();
    assert!(
        !limiter
            .record_failed_validation(now, &acct, &other)
            .await
            .unwrap()
            .paused
    );

    // Pause by hand and lift everything.
    let ip_id = Identifier::ip(ip("2001:db8::1"));
    limiter
        .pause(&acct, &[other.clone(), ip_id.clone()])
        .await
        .unwrap();
    assert!(limiter.is_paused(&acct, &ip_id).await.unwrap());
    let mut lifted = limiter.unpause(&acct, Unpause::All).await.unwrap();
    lifted.sort();
    assert_eq!(lifted, [other.clone(), ip_id.clone()]);
    assert!(!limiter.is_paused(&acct, &other).await.unwrap());
    assert!(
        limiter
            .unpause(&acct, Unpause::All)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn failed_validations_block_new_orders(store: Arc<dyn RateLimitStore>) {
    let limiter = limiter(store, "");
    let acct = account("acct");
    let name = Identifier::dns("www.example.com");
    for _ in 0..5 {
        limiter
            .record_failed_validation(T0, &acct, &name)
            .await
            .unwrap();
    }
    // A sixth failure still counts (and is not an error).
    limiter
        .record_failed_validation(T0, &acct, &name)
        .await
        .unwrap();
    let order = Transaction::new_order(&acct, std::slice::from_ref(&name), None);
    let d = denied(limiter.check_and_spend(T0, &order).await);
    assert_eq!(d.limit, LimitName::FailedAuthorizationsPerDomainPerAccount);
    assert_eq!(d.key.id(), "acct:www.example.com");
    // Another account is not affected, and the refusal spent nothing.
    let other = Transaction::new_order(&account("other"), std::slice::from_ref(&name), None);
    limiter.check_and_spend(T0, &other).await.unwrap();
    let after_refill = T0 + Duration::hours(1) + Duration::minutes(12);
    limiter.check_and_spend(after_refill, &order).await.unwrap();
}

async fn concurrent_spends_never_exceed_capacity(store: Arc<dyn RateLimitStore>) {
    let limiter = limiter(store, "");
    let mut tasks = Vec::new();
    for _ in 0..64 {
        let limiter = limiter.clone();
        tasks.push(tokio::spawn(async move {
            let txns = Transaction::new_account(ip("192.0.2.1"));
            limiter.check_and_spend(T0, &txns).await
        }));
    }
    let mut allowed = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(()) => allowed += 1,
            Err(RateLimitError::Denied(_)) => {}
            Err(e) => panic!("unexpected error: {e}"),
        }
    }
    assert_eq!(allowed, 10);
}

async fn concurrent_multi_bucket_spends_never_exceed_capacity(store: Arc<dyn RateLimitStore>) {
    // Orders from many accounts for names under one registered domain: the per-domain bucket (8)
    // is shared, the new-orders buckets are not.
    let limiter = limiter(
        store,
        r#"
        [limits.certificates_per_domain]
        burst = 8
        "#,
    );
    let mut tasks = Vec::new();
    for i in 0..48 {
        let limiter = limiter.clone();
        tasks.push(tokio::spawn(async move {
            let acct = account(&format!("acct{}", i % 6));
            let ids = [Identifier::dns(format!("host{i}.example.com"))];
            limiter
                .check_and_spend(T0, &Transaction::new_order(&acct, &ids, None))
                .await
        }));
    }
    let mut allowed = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(()) => allowed += 1,
            Err(RateLimitError::Denied(d)) => assert_eq!(d.limit, LimitName::CertificatesPerDomain),
            Err(e) => panic!("unexpected error: {e}"),
        }
    }
    assert_eq!(allowed, 8);
}
