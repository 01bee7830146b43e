//! The storage suite, written once and run against SQLite (always, in a temporary directory),
//! PostgreSQL (when `CAIRN_TEST_POSTGRES_URL` is set; each test in a fresh schema, dropped after),
//! SQLite behind gRPC (`cairn_rpc::sa`, always) and `cairn-api`'s in-memory fake (always): the fake other components' tests run against must
//! give the answers the real storage gives.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use cairn_api::fake::MemoryStorage;
use cairn_core::{
    Account, AccountId, AccountStatus, Authorization, AuthzId, AuthzStatus, Certificate, Challenge,
    ChallengeId, ChallengeStatus, ChallengeType, EabKey, Identifier, Order, OrderId, OrderStatus,
    Problem, ProblemType, Revocation, RevocationReason, Serial, ValidationRecord,
};
use cairn_sa::{
    AuthzState, BlockedKey, CertificateSelector, ChallengeOutcome, CrlInfo, Lease, NewOrderQuery,
    RenewalSelector, SaError, SqlStorage, StorageAuthority, StoredCrl,
};
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

// ---- harness ----

use cairn_test_services::POSTGRES_ENV as PG_ENV;

/// The storage under test, whichever it is.
type Sa = Arc<dyn StorageAuthority>;

/// Runs `test` on a fresh SQLite database in a temporary directory.
async fn with_sqlite<F, Fut>(test: F)
where
    F: FnOnce(Sa) -> Fut,
    Fut: Future<Output = ()>,
{
    let dir = tempfile::tempdir().unwrap();
    let sa = SqlStorage::open_sqlite_in(dir.path()).await.unwrap();
    assert_eq!(sa.backend_name(), "sqlite");
    test(Arc::new(sa.clone())).await;
    sa.close().await;
}

/// Runs `test` on a fresh SQLite database served over gRPC with mutual TLS (`cairn_rpc::sa`,
/// what `cairn sa serve` runs): the remote client must give every answer, and every error kind,
/// that the storage gives in process.
async fn with_remote<F, Fut>(test: F)
where
    F: FnOnce(Sa) -> Fut,
    Fut: Future<Output = ()>,
{
    use cairn_rpc::{AllowedClients, RpcClientConfig, dev_pki};
    let dir = tempfile::tempdir().unwrap();
    let sa = SqlStorage::open_sqlite_in(dir.path()).await.unwrap();
    let pki = dir.path().join("pki");
    dev_pki::generate(&pki, &["sa".to_owned(), "ra".to_owned()]).unwrap();
    let router = cairn_rpc::sa::router(Arc::new(sa.clone()))
        .into_router(AllowedClients(vec![dev_pki::identity("ra")]));
    let tls = cairn_rpc::tls::server_config(&dev_pki::files(&pki, "sa")).unwrap();
    let socket = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("https://{}", socket.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(cairn_rpc::server::serve(
        socket,
        "sa-rpc",
        tls,
        router,
        async move {
            let _ = stopped.await;
        },
    ));
    let remote = cairn_rpc::sa::RemoteSa::new(&RpcClientConfig {
        url,
        server_name: dev_pki::identity("sa"),
        tls: dev_pki::files(&pki, "ra"),
        timeout: Duration::seconds(30),
    })
    .unwrap();
    test(Arc::new(remote)).await;
    let _ = stop.send(());
    server.await.unwrap();
    sa.close().await;
}

/// Runs `test` on fresh in-memory storage.
async fn with_memory<F, Fut>(test: F)
where
    F: FnOnce(Sa) -> Fut,
    Fut: Future<Output = ()>,
{
    test(Arc::new(MemoryStorage::new())).await;
}

/// Runs `test` on PostgreSQL in a schema of its own, dropped afterwards (also when the test
/// panics), or skips when `CAIRN_TEST_POSTGRES_URL` is unset outside CI.
async fn with_postgres<F, Fut>(test: F)
where
    F: FnOnce(Sa) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    use sqlx::{AssertSqlSafe, Connection};

    let Some(base) = cairn_test_services::postgres_url() else {
        return;
    };
    let schema = unique_schema();
    let mut admin = sqlx::PgConnection::connect(&base)
        .await
        .unwrap_or_else(|e| panic!("connecting to {PG_ENV}: {e}"));
    sqlx::query(AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
        .execute(&mut admin)
        .await
        .unwrap();
    let sep = if base.contains('?') { '&' } else { '?' };
    let url = format!("{base}{sep}options=-csearch_path%3D{schema}");
    let outcome = match SqlStorage::connect(&url).await {
        Ok(sa) => {
            assert_eq!(sa.backend_name(), "postgres");
            let run = tokio::spawn(test(Arc::new(sa.clone()))).await;
            sa.close().await;
            run.map_err(|e| match e.try_into_panic() {
                Ok(panic) => panic,
                Err(e) => Box::new(format!("test task failed: {e}")),
            })
        }
        Err(e) => Err(Box::new(format!("connect/migrate failed: {e}")) as _),
    };
    sqlx::query(AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
        .execute(&mut admin)
        .await
        .unwrap();
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

fn unique_schema() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = OffsetDateTime::now_utc().unix_timestamp_nanos();
    format!(
        "t_{}_{:x}_{}",
        std::process::id(),
        nanos,
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// One `#[tokio::test]` per behaviour and backend: `sqlite::<name>`, `postgres::<name>`,
/// `remote::<name>` and `memory::<name>`.
macro_rules! storage_tests {
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
        mod remote {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::with_remote(|sa| async move { super::$name(&sa).await }).await;
                }
            )+
        }
        mod memory {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::with_memory(|sa| async move { super::$name(&sa).await }).await;
                }
            )+
        }
    };
}

storage_tests!(
    accounts,
    a_deactivated_account_stays_deactivated,
    account_key_change,
    accounts_by_ip,
    eab_binds_once,
    order_round_trip,
    order_creation_is_atomic,
    order_reuse,
    new_order_context_and_order_with_authzs,
    orders_newest_first_with_pagination,
    authz_reuse,
    authzs_in_requested_order,
    large_orders,
    order_with_authz_states,
    challenge_processing_and_finish,
    deactivation,
    order_processing_cas,
    finalize_is_transactional,
    fail_order,
    processing_orders,
    serial_reservation,
    revocation,
    domain_counting,
    time_round_trip,
    concurrent_compare_and_set,
    concurrent_failed_writes_leave_nothing,
    renewal_marks_and_replacement,
    revocation_status,
    crls_are_stored_with_increasing_numbers,
    blocked_keys,
    precertificates_are_issued_serials,
    challenge_leases_are_claimed_by_compare_and_swap,
    authz_with_stale_processing_challenge_is_not_reused,
    order_leases_are_claimed_by_compare_and_swap,
    concurrent_claims_of_an_ended_lease_have_one_winner,
    identifier_policies_of_accounts_and_eab_keys,
    pre_authorizations_are_stored_alone,
);

// ---- fixtures ----

const T0: OffsetDateTime = datetime!(2026-05-01 12:00:00 UTC);

/// When [`lease`]s end.
const LEASE_END: OffsetDateTime = datetime!(2026-05-01 12:05:00 UTC);

/// A lease held by `owner` until [`LEASE_END`].
fn lease(owner: &str) -> Lease {
    Lease {
        owner: owner.to_owned(),
        until: LEASE_END,
    }
}

fn lease_until(owner: &str, until: OffsetDateTime) -> Lease {
    Lease {
        owner: owner.to_owned(),
        until,
    }
}

fn account_at(created_at: OffsetDateTime, ip: Option<&str>) -> Account {
    let id = AccountId::random();
    Account {
        jwk: serde_json::json!({"kty": "EC", "crv": "P-256", "x": id.as_str(), "y": "y"}),
        key_thumbprint: format!("thumb-{id}"),
        id,
        contact: vec!["mailto:admin@example.com".into()],
        status: AccountStatus::Valid,
        created_at,
        eab_key_id: None,
        initial_ip: ip.map(str::to_owned),
    }
}

async fn new_account(sa: &Sa) -> Account {
    let a = account_at(T0, Some("192.0.2.1"));
    sa.new_account(&a).await.unwrap();
    a
}

fn challenge(typ: ChallengeType) -> Challenge {
    Challenge {
        id: ChallengeId::random(),
        typ,
        token: cairn_core::random_id(32),
        status: ChallengeStatus::Pending,
        validated: None,
        error: None,
        validation_record: vec![],
    }
}

fn authz(
    account: &AccountId,
    name: &str,
    wildcard: bool,
    status: AuthzStatus,
    created_at: OffsetDateTime,
) -> Authorization {
    let challenges = if wildcard {
        vec![challenge(ChallengeType::Dns01)]
    } else {
        vec![
            challenge(ChallengeType::Http01),
            challenge(ChallengeType::Dns01),
            challenge(ChallengeType::TlsAlpn01),
        ]
    };
    Authorization {
        id: AuthzId::random(),
        account_id: account.clone(),
        identifier: Identifier::dns(name),
        status,
        expires: created_at + Duration::days(7),
        wildcard,
        challenges,
        created_at,
    }
}

fn order(account: &AccountId, authzs: &[&Authorization], created_at: OffsetDateTime) -> Order {
    let mut identifiers: Vec<Identifier> = authzs
        .iter()
        .map(|a| {
            if a.wildcard {
                Identifier::dns(format!("*.{}", a.identifier.value))
            } else {
                a.identifier.clone()
            }
        })
        .collect();
    identifiers.sort();
    Order {
        id: OrderId::random(),
        account_id: account.clone(),
        status: OrderStatus::Pending,
        identifiers,
        authz_ids: authzs.iter().map(|a| a.id.clone()).collect(),
        expires: created_at + Duration::days(7),
        not_before: None,
        not_after: None,
        error: None,
        certificate_serial: None,
        profile: None,
        replaces: None,
        csr_der: None,
        created_at,
    }
}

/// A pending order with one new pending authorization per name.
async fn new_order(sa: &Sa, account: &AccountId, names: &[&str]) -> Order {
    let authzs: Vec<Authorization> = names
        .iter()
        .map(|n| authz(account, n, false, AuthzStatus::Pending, T0))
        .collect();
    let refs: Vec<&Authorization> = authzs.iter().collect();
    let o = order(account, &refs, T0);
    sa.new_order_and_authzs(&o, &authzs).await.unwrap();
    o
}

fn certificate(o: &Order, not_before: OffsetDateTime) -> Certificate {
    Certificate {
        serial: Serial::random(),
        account_id: o.account_id.clone(),
        order_id: o.id.clone(),
        der: vec![0x30, 0x82, 0x01, 0x00, 0xde, 0xad],
        issuer_id: "int-a".into(),
        identifiers: o.identifiers.clone(),
        not_before,
        not_after: not_before + Duration::days(90),
        spki_sha256: "ab".repeat(32),
        revocation: None,
        renew_by: None,
        replaced_by: None,
        crl_shard: 3,
    }
}

/// An order moved to `Processing` and finalized with a certificate issued at `not_before`.
async fn issue(sa: &Sa, account: &AccountId, names: &[&str], not_before: OffsetDateTime) {
    let o = new_order(sa, account, names).await;
    assert!(
        sa.set_order_processing(&o.id, b"csr", &Serial::random(), T0, &lease("a"))
            .await
            .unwrap()
    );
    sa.finalize_order(&certificate(&o, not_before))
        .await
        .unwrap();
}

fn assert_conflict<T: std::fmt::Debug>(r: Result<T, SaError>) {
    assert!(
        matches!(r, Err(SaError::Conflict(_))),
        "expected Conflict, got {r:?}"
    );
}

fn assert_not_found<T: std::fmt::Debug>(r: Result<T, SaError>) {
    assert!(
        matches!(r, Err(SaError::NotFound)),
        "expected NotFound, got {r:?}"
    );
}

// ---- behaviours ----

async fn accounts(sa: &Sa) {
    let a = new_account(sa).await;
    assert_eq!(sa.get_account(&a.id).await.unwrap(), a);
    assert_eq!(sa.get_account_by_key(&a.key_thumbprint).await.unwrap(), a);
    assert_not_found(sa.get_account(&AccountId::random()).await);
    assert_not_found(sa.get_account_by_key("no-such-thumbprint").await);

    // Same key, different ID.
    let mut dup = account_at(T0, None);
    dup.key_thumbprint = a.key_thumbprint.clone();
    assert_conflict(sa.new_account(&dup).await);
    assert_not_found(sa.get_account(&dup.id).await);

    let mut changed = a.clone();
    changed.contact = vec![];
    changed.status = AccountStatus::Deactivated;
    sa.update_account(&changed).await.unwrap();
    assert_eq!(sa.get_account(&a.id).await.unwrap(), changed);
    assert_not_found(sa.update_account(&account_at(T0, None)).await);
}

/// An update made from a copy read while the account was valid (a cache on another instance)
/// cannot bring a deactivated account back: storage refuses it with `Conflict`.
async fn a_deactivated_account_stays_deactivated(sa: &Sa) {
    let a = new_account(sa).await;
    let stale = a.clone();
    let mut deactivated = a.clone();
    deactivated.status = AccountStatus::Deactivated;
    sa.update_account(&deactivated).await.unwrap();

    let mut contact_change = stale;
    contact_change.contact = vec!["mailto:new@cairn-ca.net".into()];
    assert_conflict(sa.update_account(&contact_change).await);
    assert_eq!(sa.get_account(&a.id).await.unwrap(), deactivated);
}

async fn account_key_change(sa: &Sa) {
    let a = new_account(sa).await;
    let b = new_account(sa).await;
    let jwk = serde_json::json!({"kty": "OKP", "crv": "Ed25519", "x": "new"});
    sa.update_account_key(&a.id, &jwk, "thumb-new")
        .await
        .unwrap();
    let got = sa.get_account_by_key("thumb-new").await.unwrap();
    assert_eq!((got.id, got.jwk), (a.id.clone(), jwk.clone()));
    assert_not_found(sa.get_account_by_key(&a.key_thumbprint).await);

    // b's key is taken; nothing changes.
    assert_conflict(
        sa.update_account_key(&a.id, &b.jwk, &b.key_thumbprint)
            .await,
    );
    assert_eq!(
        sa.get_account(&a.id).await.unwrap().key_thumbprint,
        "thumb-new"
    );
    assert_not_found(
        sa.update_account_key(&AccountId::random(), &jwk, "thumb-x")
            .await,
    );
}

async fn accounts_by_ip(sa: &Sa) {
    for (offset, ip) in [
        (0, "192.0.2.7"),
        (2, "192.0.2.7"),
        (3, "192.0.2.7"),
        (3, "192.0.2.8"),
    ] {
        let a = account_at(T0 + Duration::hours(offset), Some(ip));
        sa.new_account(&a).await.unwrap();
    }
    sa.new_account(&account_at(T0, None)).await.unwrap();
    let since = T0 + Duration::hours(2);
    assert_eq!(
        sa.count_accounts_by_ip("192.0.2.7", since).await.unwrap(),
        2
    );
    assert_eq!(sa.count_accounts_by_ip("192.0.2.7", T0).await.unwrap(), 3);
    assert_eq!(sa.count_accounts_by_ip("192.0.2.9", T0).await.unwrap(), 0);
}

async fn identifier_policies_of_accounts_and_eab_keys(sa: &Sa) {
    use cairn_core::{AccountPolicy, PolicyEntry};
    let eab_policy = AccountPolicy {
        entries: vec![PolicyEntry::new("*.team-a.example", true).unwrap()],
    };
    let own = AccountPolicy {
        entries: vec![
            PolicyEntry::new("db.example", false).unwrap(),
            PolicyEntry::new("10.20.0.0/16", true).unwrap(),
        ],
    };
    let key = EabKey {
        key_id: "kid-p".into(),
        hmac_key: vec![7; 32],
        created_at: T0,
        bound_account: None,
    };
    sa.new_eab_key(&key).await.unwrap();
    sa.set_eab_identifier_policy("kid-p", Some(&eab_policy))
        .await
        .unwrap();
    assert_not_found(sa.set_eab_identifier_policy("kid-none", Some(&own)).await);

    let plain = new_account(sa).await;
    assert_eq!(sa.get_identifier_policy(&plain.id).await.unwrap(), None);
    let mut bound = account_at(T0, None);
    bound.eab_key_id = Some("kid-p".into());
    sa.new_account(&bound).await.unwrap();
    // The EAB key's policy applies, until the account has its own.
    assert_eq!(
        sa.get_identifier_policy(&bound.id).await.unwrap(),
        Some(eab_policy.clone())
    );
    sa.set_account_identifier_policy(&bound.id, Some(&own))
        .await
        .unwrap();
    assert_eq!(
        sa.get_identifier_policy(&bound.id).await.unwrap(),
        Some(own.clone())
    );
    sa.set_account_identifier_policy(&bound.id, None)
        .await
        .unwrap();
    assert_eq!(
        sa.get_identifier_policy(&bound.id).await.unwrap(),
        Some(eab_policy)
    );
    assert_not_found(sa.get_identifier_policy(&AccountId::random()).await);
    assert_not_found(
        sa.set_account_identifier_policy(&AccountId::random(), Some(&own))
            .await,
    );
}

async fn pre_authorizations_are_stored_alone(sa: &Sa) {
    let acct = new_account(sa).await;
    let pending = authz(&acct.id, "pre.example.com", false, AuthzStatus::Pending, T0);
    // A pre-validated authorization: valid, no challenges.
    let mut valid = authz(&acct.id, "auto.example.com", false, AuthzStatus::Valid, T0);
    valid.challenges.clear();
    sa.new_authzs(&[pending.clone(), valid.clone()])
        .await
        .unwrap();
    assert_eq!(sa.get_authorization(&pending.id).await.unwrap(), pending);
    assert_eq!(sa.get_authorization(&valid.id).await.unwrap(), valid);
    assert_conflict(sa.new_authzs(std::slice::from_ref(&pending)).await);
    // Another account's pre-authorization for a missing account: nothing stored.
    let orphan = authz(
        &AccountId::random(),
        "x.example.com",
        false,
        AuthzStatus::Pending,
        T0,
    );
    assert!(sa.new_authzs(std::slice::from_ref(&orphan)).await.is_err());
    assert_not_found(sa.get_authorization(&orphan.id).await);
}

async fn eab_binds_once(sa: &Sa) {
    let key = EabKey {
        key_id: "kid-1".into(),
        hmac_key: vec![7; 32],
        created_at: T0,
        bound_account: None,
    };
    sa.new_eab_key(&key).await.unwrap();
    assert_eq!(sa.get_eab_key("kid-1").await.unwrap(), key);
    assert_conflict(sa.new_eab_key(&key).await);
    assert_not_found(sa.get_eab_key("kid-2").await);

    let mut first = account_at(T0, None);
    first.eab_key_id = Some("kid-1".into());
    sa.new_account(&first).await.unwrap();
    assert_eq!(
        sa.get_eab_key("kid-1").await.unwrap().bound_account,
        Some(first.id.clone())
    );
    assert_eq!(sa.get_account(&first.id).await.unwrap(), first);

    // A second account with the same key is refused, and not created.
    let mut second = account_at(T0, None);
    second.eab_key_id = Some("kid-1".into());
    assert_conflict(sa.new_account(&second).await);
    assert_not_found(sa.get_account(&second.id).await);
    assert_eq!(
        sa.get_eab_key("kid-1").await.unwrap().bound_account,
        Some(first.id)
    );

    // An unknown key.
    let mut third = account_at(T0, None);
    third.eab_key_id = Some("kid-unknown".into());
    assert_not_found(sa.new_account(&third).await);
    assert_not_found(sa.get_account(&third.id).await);
}

async fn order_round_trip(sa: &Sa) {
    let acct = new_account(sa).await;
    let reused = authz(&acct.id, "b.example.com", false, AuthzStatus::Valid, T0);
    let seed = order(&acct.id, &[&reused], T0);
    sa.new_order_and_authzs(&seed, std::slice::from_ref(&reused))
        .await
        .unwrap();

    let fresh = authz(&acct.id, "example.com", true, AuthzStatus::Pending, T0);
    let mut o = order(&acct.id, &[&fresh, &reused], T0 + Duration::minutes(1));
    o.not_before = Some(T0);
    o.not_after = Some(T0 + Duration::days(30));
    o.profile = Some("shortlived".into());
    o.replaces = Some("aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE".into());
    sa.new_order_and_authzs(&o, std::slice::from_ref(&fresh))
        .await
        .unwrap();

    assert_eq!(sa.get_order(&o.id).await.unwrap(), o);
    assert_eq!(sa.get_authorization(&fresh.id).await.unwrap(), fresh);
    assert_eq!(sa.get_authorization(&reused.id).await.unwrap(), reused);
    assert_not_found(sa.get_order(&OrderId::random()).await);
    assert_not_found(sa.get_authorization(&AuthzId::random()).await);

    // An order naming an authorization that does not exist is refused.
    let ghost = authz(&acct.id, "c.example.com", false, AuthzStatus::Pending, T0);
    let bad = order(&acct.id, &[&ghost], T0);
    assert_not_found(sa.new_order_and_authzs(&bad, &[]).await);
    assert_not_found(sa.get_order(&bad.id).await);
}

async fn order_creation_is_atomic(sa: &Sa) {
    let acct = new_account(sa).await;
    let a1 = authz(&acct.id, "a.example.com", false, AuthzStatus::Pending, T0);
    let mut a2 = authz(&acct.id, "b.example.com", false, AuthzStatus::Pending, T0);
    a2.id = a1.id.clone(); // duplicate ID inside one call
    let o = order(&acct.id, &[&a1, &a2], T0);
    assert_conflict(sa.new_order_and_authzs(&o, &[a1.clone(), a2]).await);
    assert_not_found(sa.get_order(&o.id).await);
    assert_not_found(sa.get_authorization(&a1.id).await);
    assert!(
        sa.get_order_ids_for_account(&acct.id, 0, 10)
            .await
            .unwrap()
            .is_empty()
    );

    // A failure after the authorizations (the order ID is taken) also leaves them out.
    let existing = new_order(sa, &acct.id, &["c.example.com"]).await;
    let a3 = authz(&acct.id, "d.example.com", false, AuthzStatus::Pending, T0);
    let mut clash = order(&acct.id, &[&a3], T0);
    clash.id = existing.id.clone();
    assert_conflict(
        sa.new_order_and_authzs(&clash, std::slice::from_ref(&a3))
            .await,
    );
    assert_not_found(sa.get_authorization(&a3.id).await);
    assert_eq!(sa.get_order(&existing.id).await.unwrap(), existing);
}

async fn order_reuse(sa: &Sa) {
    let acct = new_account(sa).await;
    let other = new_account(sa).await;
    let names = ["a.example.com", "b.example.com"];
    let ids: Vec<Identifier> = names.iter().map(|n| Identifier::dns(*n)).collect();
    let now = T0 + Duration::hours(1);

    assert!(
        sa.get_reusable_order(&acct.id, &ids, None, now)
            .await
            .unwrap()
            .is_none()
    );
    let o = new_order(sa, &acct.id, &names).await;
    let got = sa
        .get_reusable_order(&acct.id, &ids, None, now)
        .await
        .unwrap();
    assert_eq!(got, Some(o.clone()));
    // Order of the identifiers given does not matter.
    let reversed: Vec<Identifier> = ids.iter().rev().cloned().collect();
    assert_eq!(
        sa.get_reusable_order(&acct.id, &reversed, None, now)
            .await
            .unwrap()
            .map(|o| o.id),
        Some(o.id.clone())
    );
    // Another account, another profile, a subset, or expired: no reuse.
    assert!(
        sa.get_reusable_order(&other.id, &ids, None, now)
            .await
            .unwrap()
            .is_none()
    );
    let p = sa.get_reusable_order(&acct.id, &ids, Some("tlsserver"), now);
    assert!(p.await.unwrap().is_none());
    assert!(
        sa.get_reusable_order(&acct.id, &ids[..1], None, now)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        sa.get_reusable_order(&acct.id, &ids, None, o.expires)
            .await
            .unwrap()
            .is_none()
    );
    // Once processing it is no longer reusable.
    assert!(
        sa.set_order_processing(&o.id, b"csr", &Serial::random(), T0, &lease("a"))
            .await
            .unwrap()
    );
    assert!(
        sa.get_reusable_order(&acct.id, &ids, None, now)
            .await
            .unwrap()
            .is_none()
    );

    // Profiles must match exactly.
    let a = authz(&acct.id, "p.example.com", false, AuthzStatus::Pending, T0);
    let mut with_profile = order(&acct.id, &[&a], T0);
    with_profile.profile = Some("tlsserver".into());
    sa.new_order_and_authzs(&with_profile, std::slice::from_ref(&a))
        .await
        .unwrap();
    let pid = [Identifier::dns("p.example.com")];
    let found = sa
        .get_reusable_order(&acct.id, &pid, Some("tlsserver"), now)
        .await;
    assert_eq!(found.unwrap().map(|o| o.id), Some(with_profile.id));
    assert!(
        sa.get_reusable_order(&acct.id, &pid, None, now)
            .await
            .unwrap()
            .is_none()
    );
}

/// The combined reads answer what the single ones answer: newOrder's (policy, reusable order
/// with its authorizations, a reusable authorization per identifier) and finalize's (the
/// order, with its authorizations while pending).
async fn new_order_context_and_order_with_authzs(sa: &Sa) {
    use cairn_core::{AccountPolicy, PolicyEntry};
    let acct = new_account(sa).await;
    let now = T0 + Duration::hours(1);
    let query = |identifiers: Vec<Identifier>, reuse_order: bool| NewOrderQuery {
        account: acct.id.clone(),
        identifiers,
        profile: None,
        now,
        reuse_order,
        authz_expires_after: now,
    };
    let ids = vec![
        Identifier::dns("*.w.example.com"),
        Identifier::dns("x.example.com"),
    ];

    // Nothing stored yet.
    let empty = sa
        .get_new_order_context(&query(ids.clone(), true))
        .await
        .unwrap();
    assert_eq!(empty.policy, None);
    assert_eq!(empty.order, None);
    assert_eq!(empty.authzs, vec![None, None]);

    let policy = AccountPolicy {
        entries: vec![PolicyEntry::new("x.example.com", false).unwrap()],
    };
    sa.set_account_identifier_policy(&acct.id, Some(&policy))
        .await
        .unwrap();
    let wild = authz(&acct.id, "w.example.com", true, AuthzStatus::Pending, T0);
    let plain = authz(&acct.id, "x.example.com", false, AuthzStatus::Valid, T0);
    let o = order(&acct.id, &[&wild, &plain], T0);
    assert_eq!(o.identifiers, ids);
    sa.new_order_and_authzs(&o, &[wild.clone(), plain.clone()])
        .await
        .unwrap();

    let found = sa
        .get_new_order_context(&query(ids.clone(), true))
        .await
        .unwrap();
    assert_eq!(found.policy, Some(policy));
    let (reused, reused_authzs) = found.order.expect("a reusable order");
    assert_eq!(reused, o);
    assert_eq!(
        reused_authzs.iter().map(|a| &a.id).collect::<Vec<_>>(),
        vec![&wild.id, &plain.id]
    );
    // The wildcard's authorization is found by its base name and flag, in the query's order.
    let per_id: Vec<Option<AuthzId>> = found
        .authzs
        .iter()
        .map(|a| a.as_ref().map(|a| a.id.clone()))
        .collect();
    assert_eq!(per_id, vec![Some(wild.id.clone()), Some(plain.id.clone())]);
    for (single, id) in found.authzs.iter().zip(&ids) {
        let alone = sa
            .get_reusable_authz(
                &acct.id,
                &id.authz_identifier(),
                id.is_wildcard(),
                true,
                now,
            )
            .await
            .unwrap();
        assert_eq!(single, &alone);
    }
    // An ARI replacement asks for no order; the authorizations are still found.
    let replacement = sa
        .get_new_order_context(&query(ids.clone(), false))
        .await
        .unwrap();
    assert_eq!(replacement.order, None);
    assert_eq!(replacement.authzs, found.authzs);
    // Another account sees none of it.
    let other = new_account(sa).await;
    let theirs = sa
        .get_new_order_context(&NewOrderQuery {
            account: other.id.clone(),
            ..query(ids.clone(), true)
        })
        .await
        .unwrap();
    assert_eq!((theirs.order, theirs.authzs), (None, vec![None, None]));

    // Finalize's read: the order and its authorizations while pending...
    let (got, authzs) = sa.get_order_with_authzs(&o.id).await.unwrap();
    assert_eq!(got, o);
    assert_eq!(authzs, sa.get_authorizations(&o.authz_ids).await.unwrap());
    // ...and none once it is processing; an unknown order is not found.
    assert!(
        sa.set_order_processing(&o.id, b"csr", &Serial::random(), T0, &lease("a"))
            .await
            .unwrap()
    );
    let (got, authzs) = sa.get_order_with_authzs(&o.id).await.unwrap();
    assert_eq!(got.status, OrderStatus::Processing);
    assert_eq!(got.csr_der.as_deref(), Some(&b"csr"[..]));
    assert!(authzs.is_empty());
    assert_not_found(sa.get_order_with_authzs(&OrderId::random()).await);
}

async fn orders_newest_first_with_pagination(sa: &Sa) {
    let acct = new_account(sa).await;
    let other = new_account(sa).await;
    let mut ids = Vec::new();
    for i in 0..5 {
        let a = authz(&acct.id, "example.com", false, AuthzStatus::Pending, T0);
        let o = order(&acct.id, &[&a], T0 + Duration::minutes(i));
        sa.new_order_and_authzs(&o, std::slice::from_ref(&a))
            .await
            .unwrap();
        ids.push(o.id);
    }
    // Two orders with the same creation time: the ID breaks the tie, descending.
    let mut tied = Vec::new();
    for _ in 0..2 {
        let a = authz(&acct.id, "example.com", false, AuthzStatus::Pending, T0);
        let o = order(&acct.id, &[&a], T0 + Duration::minutes(10));
        sa.new_order_and_authzs(&o, std::slice::from_ref(&a))
            .await
            .unwrap();
        tied.push(o.id);
    }
    new_order(sa, &other.id, &["example.org"]).await;
    tied.sort();
    let mut expected: Vec<OrderId> = tied.into_iter().rev().collect();
    expected.extend(ids.into_iter().rev());

    let all = sa
        .get_order_ids_for_account(&acct.id, 0, 100)
        .await
        .unwrap();
    assert_eq!(all, expected);
    let page = sa.get_order_ids_for_account(&acct.id, 2, 3).await.unwrap();
    assert_eq!(page, expected[2..5]);
    let tail = sa.get_order_ids_for_account(&acct.id, 6, 3).await.unwrap();
    assert_eq!(tail, expected[6..]);
    assert!(
        sa.get_order_ids_for_account(&acct.id, 7, 3)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        sa.get_order_ids_for_account(&acct.id, 0, u64::MAX)
            .await
            .unwrap()
            .len(),
        7
    );
}

async fn authz_reuse(sa: &Sa) {
    let acct = new_account(sa).await;
    let other = new_account(sa).await;
    let name = Identifier::dns("example.com");
    let now = T0 + Duration::days(1);
    let store = |a: Authorization| async move {
        let o = order(&a.account_id, &[&a], a.created_at);
        sa.new_order_and_authzs(&o, std::slice::from_ref(&a))
            .await
            .unwrap();
        a
    };

    // Candidates of which only `newest_valid` qualifies for a non-wildcard, valid-only lookup.
    let older_valid = store(authz(
        &acct.id,
        "example.com",
        false,
        AuthzStatus::Valid,
        T0,
    ))
    .await;
    let newest_valid = store(authz(
        &acct.id,
        "example.com",
        false,
        AuthzStatus::Valid,
        T0 + Duration::hours(2),
    ))
    .await;
    let mut expired = authz(
        &acct.id,
        "example.com",
        false,
        AuthzStatus::Valid,
        T0 + Duration::hours(3),
    );
    expired.expires = now;
    store(expired).await;
    store(authz(
        &acct.id,
        "example.com",
        false,
        AuthzStatus::Invalid,
        T0 + Duration::hours(4),
    ))
    .await;
    let pending = store(authz(
        &acct.id,
        "example.com",
        false,
        AuthzStatus::Pending,
        T0 + Duration::hours(5),
    ))
    .await;
    let wildcard = store(authz(
        &acct.id,
        "example.com",
        true,
        AuthzStatus::Valid,
        T0 + Duration::hours(6),
    ))
    .await;
    store(authz(
        &other.id,
        "example.com",
        false,
        AuthzStatus::Valid,
        T0 + Duration::hours(7),
    ))
    .await;
    store(authz(
        &acct.id,
        "www.example.com",
        false,
        AuthzStatus::Valid,
        T0 + Duration::hours(8),
    ))
    .await;

    let got = sa
        .get_reusable_authz(&acct.id, &name, false, false, now)
        .await
        .unwrap();
    assert_eq!(got, Some(newest_valid.clone()));
    // Valid is preferred over a newer pending one.
    let got = sa
        .get_reusable_authz(&acct.id, &name, false, true, now)
        .await;
    assert_eq!(got.unwrap().map(|a| a.id), Some(newest_valid.id.clone()));
    // The wildcard flag selects the wildcard authorization.
    let got = sa
        .get_reusable_authz(&acct.id, &name, true, false, now)
        .await;
    assert_eq!(got.unwrap(), Some(wildcard.clone()));
    // Another account's authorization is never reused.
    let got = sa
        .get_reusable_authz(&other.id, &name, true, true, now)
        .await;
    assert!(got.unwrap().is_none());
    // `expires_after` is exclusive and filters: after the newest valid one expires, the older
    // valid one (created earlier, expiring earlier) does not come back.
    let got = sa
        .get_reusable_authz(&acct.id, &name, false, false, older_valid.expires)
        .await
        .unwrap();
    assert_eq!(got.map(|a| a.id), Some(newest_valid.id.clone()));
    let got = sa
        .get_reusable_authz(&acct.id, &name, false, false, newest_valid.expires)
        .await
        .unwrap();
    assert!(got.is_none());
    // Only pending remains once the valid ones are deactivated.
    assert!(sa.deactivate_authorization(&newest_valid.id).await.unwrap());
    assert!(sa.deactivate_authorization(&older_valid.id).await.unwrap());
    let got = sa
        .get_reusable_authz(&acct.id, &name, false, true, now)
        .await;
    assert_eq!(got.unwrap(), Some(pending));
    let got = sa
        .get_reusable_authz(&acct.id, &name, false, false, now)
        .await;
    assert!(got.unwrap().is_none());
}

/// Orders with more rows than one multi-row INSERT carries (300 authorizations, 900 challenges)
/// round-trip whole, and one failing in a later part leaves nothing behind.
async fn large_orders(sa: &Sa) {
    let acct = new_account(sa).await;
    let names: Vec<String> = (0..300).map(|i| format!("n{i:03}.example.com")).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let o = new_order(sa, &acct.id, &names).await;
    assert_eq!(sa.get_order(&o.id).await.unwrap(), o);
    let got = sa.get_authorizations(&o.authz_ids).await.unwrap();
    let got_ids: Vec<AuthzId> = got.iter().map(|a| a.id.clone()).collect();
    assert_eq!(got_ids, o.authz_ids);
    assert!(got.iter().all(|a| a.challenges.len() == 3));

    // The last authorization's challenge repeats the first's ID: the challenges' second part
    // fails, after the authorizations and the first part were written.
    let mut authzs: Vec<Authorization> = names
        .iter()
        .map(|n| authz(&acct.id, n, false, AuthzStatus::Pending, T0))
        .collect();
    let first = authzs[0].challenges[0].id.clone();
    authzs[299].challenges[2].id = first;
    let refs: Vec<&Authorization> = authzs.iter().collect();
    let bad = order(&acct.id, &refs, T0);
    assert_conflict(sa.new_order_and_authzs(&bad, &authzs).await);
    assert_not_found(sa.get_order(&bad.id).await);
    assert_not_found(sa.get_authorization(&authzs[0].id).await);
    assert_not_found(sa.get_authorization(&authzs[299].id).await);
}

/// The order and its authorizations' states in one read: the states follow the order's
/// `authz_ids` and what was stored since.
async fn order_with_authz_states(sa: &Sa) {
    let acct = new_account(sa).await;
    let valid = authz(&acct.id, "b.example.com", false, AuthzStatus::Valid, T0);
    let seed = order(&acct.id, &[&valid], T0);
    sa.new_order_and_authzs(&seed, std::slice::from_ref(&valid))
        .await
        .unwrap();
    let pending = authz(&acct.id, "a.example.com", false, AuthzStatus::Pending, T0);
    let o = order(&acct.id, &[&pending, &valid], T0);
    sa.new_order_and_authzs(&o, std::slice::from_ref(&pending))
        .await
        .unwrap();

    let (got, states) = sa.get_order_with_authz_states(&o.id).await.unwrap();
    assert_eq!(got, o);
    let state = |a: &Authorization| AuthzState {
        status: a.status,
        expires: a.expires,
    };
    assert_eq!(states, vec![state(&pending), state(&valid)]);

    // The pending one fails validation: its state reads back changed.
    let mut failed = pending.challenges[0].clone();
    failed.status = ChallengeStatus::Invalid;
    failed.validated = Some(T0 + Duration::minutes(1));
    sa.finish_challenge(&ChallengeOutcome {
        authz_id: pending.id.clone(),
        challenge: failed,
        authz_status: AuthzStatus::Invalid,
        expires: pending.expires,
    })
    .await
    .unwrap();
    let (_, states) = sa.get_order_with_authz_states(&o.id).await.unwrap();
    assert_eq!(states[0].status, AuthzStatus::Invalid);
    assert_eq!(states[1], state(&valid));
    // Past its expiry, a valid authorization shows as expired.
    assert_eq!(states[1].status_at(valid.expires), AuthzStatus::Expired);
    assert_eq!(states[1].status_at(T0), AuthzStatus::Valid);

    assert_not_found(sa.get_order_with_authz_states(&OrderId::random()).await);
}

async fn authzs_in_requested_order(sa: &Sa) {
    let acct = new_account(sa).await;
    let o = new_order(
        sa,
        &acct.id,
        &["c.example.com", "a.example.com", "b.example.com"],
    )
    .await;
    let mut ids = o.authz_ids.clone();
    ids.reverse();
    ids.push(ids[0].clone());
    let got = sa.get_authorizations(&ids).await.unwrap();
    let got_ids: Vec<AuthzId> = got.iter().map(|a| a.id.clone()).collect();
    assert_eq!(got_ids, ids);
    assert_eq!(got[0], got[3]);
    assert!(got.iter().all(|a| a.challenges.len() == 3));
    // Challenges come back in the order they were offered.
    let types: Vec<ChallengeType> = got[0].challenges.iter().map(|c| c.typ).collect();
    assert_eq!(
        types,
        [
            ChallengeType::Http01,
            ChallengeType::Dns01,
            ChallengeType::TlsAlpn01
        ]
    );
    assert!(sa.get_authorizations(&[]).await.unwrap().is_empty());
    let mut missing = ids.clone();
    missing.push(AuthzId::random());
    assert_not_found(sa.get_authorizations(&missing).await);
}

async fn challenge_processing_and_finish(sa: &Sa) {
    let acct = new_account(sa).await;
    let o = new_order(sa, &acct.id, &["example.com"]).await;
    let authz = sa.get_authorization(&o.authz_ids[0]).await.unwrap();
    let http = authz.challenges[0].clone();

    assert!(
        sa.set_challenge_processing(&authz.id, &http.id, &lease("a"))
            .await
            .unwrap()
    );
    assert!(
        !sa.set_challenge_processing(&authz.id, &http.id, &lease("a"))
            .await
            .unwrap()
    );
    // A challenge of another authorization is not touched through this one.
    let other = new_order(sa, &acct.id, &["example.org"]).await;
    let other_authz = sa.get_authorization(&other.authz_ids[0]).await.unwrap();
    let foreign = &other_authz.challenges[0].id;
    assert!(
        !sa.set_challenge_processing(&authz.id, foreign, &lease("a"))
            .await
            .unwrap()
    );
    let stored = sa.get_authorization(&authz.id).await.unwrap();
    assert_eq!(stored.challenges[0].status, ChallengeStatus::Processing);
    assert_eq!(stored.status, AuthzStatus::Pending);

    let validated = T0 + Duration::minutes(5);
    let mut done = http.clone();
    done.status = ChallengeStatus::Valid;
    done.validated = Some(validated);
    done.validation_record = vec![ValidationRecord {
        url: Some("http://example.com/.well-known/acme-challenge/x".into()),
        hostname: Some("example.com".into()),
        port: Some("80".into()),
        addresses_resolved: vec!["192.0.2.1".into()],
        address_used: Some("192.0.2.1".into()),
        resolver_addrs: None,
        persist_until: Some(1_900_000_000),
    }];
    let outcome = ChallengeOutcome {
        authz_id: authz.id.clone(),
        challenge: done.clone(),
        authz_status: AuthzStatus::Valid,
        expires: validated + Duration::days(30),
    };
    sa.finish_challenge(&outcome).await.unwrap();
    let stored = sa.get_authorization(&authz.id).await.unwrap();
    assert_eq!(stored.status, AuthzStatus::Valid);
    assert_eq!(stored.expires, outcome.expires);
    assert_eq!(stored.challenges[0], done);
    assert_eq!(stored.challenges[1], authz.challenges[1]);
    assert_eq!(stored.validated_at(), Some(validated));

    // Once finished: no new processing, no second outcome.
    assert!(
        !sa.set_challenge_processing(&authz.id, &authz.challenges[1].id, &lease("a"))
            .await
            .unwrap()
    );
    assert_conflict(sa.finish_challenge(&outcome).await);
    let mut other_chall = outcome.clone();
    other_chall.challenge = authz.challenges[1].clone();
    other_chall.challenge.status = ChallengeStatus::Invalid;
    assert_conflict(sa.finish_challenge(&other_chall).await);
    // That failed attempt rolled back the challenge change too.
    let stored = sa.get_authorization(&authz.id).await.unwrap();
    assert_eq!(stored.challenges[1], authz.challenges[1]);

    // A failure recorded with its problem.
    let failing = sa.get_authorization(&other.authz_ids[0]).await.unwrap();
    let mut bad = failing.challenges[1].clone();
    assert!(
        sa.set_challenge_processing(&failing.id, &bad.id, &lease("a"))
            .await
            .unwrap()
    );
    bad.status = ChallengeStatus::Invalid;
    bad.error = Some(Problem::new(ProblemType::Dns, "NXDOMAIN looking up TXT"));
    let outcome = ChallengeOutcome {
        authz_id: failing.id.clone(),
        challenge: bad.clone(),
        authz_status: AuthzStatus::Invalid,
        expires: failing.expires,
    };
    sa.finish_challenge(&outcome).await.unwrap();
    let stored = sa.get_authorization(&failing.id).await.unwrap();
    assert_eq!(stored.status, AuthzStatus::Invalid);
    assert_eq!(stored.challenges[1], bad);

    // Unknown challenge.
    let mut ghost = outcome.clone();
    ghost.challenge.id = ChallengeId::random();
    assert_not_found(sa.finish_challenge(&ghost).await);
}

async fn deactivation(sa: &Sa) {
    let acct = new_account(sa).await;
    let o = new_order(
        sa,
        &acct.id,
        &["a.example.com", "b.example.com", "c.example.com"],
    )
    .await;
    assert!(sa.deactivate_authorization(&o.authz_ids[0]).await.unwrap());
    assert!(!sa.deactivate_authorization(&o.authz_ids[0]).await.unwrap());
    assert!(
        !sa.deactivate_authorization(&AuthzId::random())
            .await
            .unwrap()
    );
    let other = new_account(sa).await;
    let theirs = new_order(sa, &other.id, &["example.org"]).await;
    assert_eq!(
        sa.deactivate_account_authorizations(&acct.id)
            .await
            .unwrap(),
        2
    );
    assert_eq!(
        sa.deactivate_account_authorizations(&acct.id)
            .await
            .unwrap(),
        0
    );
    for id in &o.authz_ids {
        let a = sa.get_authorization(id).await.unwrap();
        assert_eq!(a.status, AuthzStatus::Deactivated);
    }
    let a = sa.get_authorization(&theirs.authz_ids[0]).await.unwrap();
    assert_eq!(a.status, AuthzStatus::Pending);
}

async fn order_processing_cas(sa: &Sa) {
    let acct = new_account(sa).await;
    let o = new_order(sa, &acct.id, &["example.com"]).await;
    let (first, second) = (Serial::random(), Serial::random());
    assert!(
        sa.set_order_processing(&o.id, b"first csr", &first, T0, &lease("a"))
            .await
            .unwrap()
    );
    assert!(
        !sa.set_order_processing(&o.id, b"second csr", &second, T0, &lease("a"))
            .await
            .unwrap()
    );
    let stored = sa.get_order(&o.id).await.unwrap();
    assert_eq!(stored.status, OrderStatus::Processing);
    assert_eq!(stored.csr_der.as_deref(), Some(&b"first csr"[..]));
    // The move reserved its serial; the refused one reserved nothing.
    assert_conflict(sa.reserve_serial(&first, &acct.id, &o.id, T0).await);
    sa.reserve_serial(&second, &acct.id, &o.id, T0)
        .await
        .unwrap();
    // A serial reserved before makes the move fail as a whole: the order stays pending.
    let o2 = new_order(sa, &acct.id, &["example.net"]).await;
    assert_conflict(
        sa.set_order_processing(&o2.id, b"csr", &first, T0, &lease("a"))
            .await,
    );
    assert_eq!(
        sa.get_order(&o2.id).await.unwrap().status,
        OrderStatus::Pending
    );
    assert_eq!(sa.get_order(&o2.id).await.unwrap().csr_der, None);
    assert!(
        !sa.set_order_processing(
            &OrderId::random(),
            b"csr",
            &Serial::random(),
            T0,
            &lease("a")
        )
        .await
        .unwrap()
    );
}

/// Issue 14, finding 3: a stored precertificate is an issued serial (revocation status, the
/// CRL, an operator's selection) but not a certificate; the final certificate replaces it and
/// keeps its revocation.
async fn precertificates_are_issued_serials(sa: &Sa) {
    let acct = new_account(sa).await;
    let o = new_order(sa, &acct.id, &["pre.example.com"]).await;
    let mut pre = certificate(&o, T0);
    pre.der = b"precertificate".to_vec();
    // Only while the order is processing.
    assert_conflict(sa.add_precertificate(&pre).await);
    assert!(
        sa.set_order_processing(&o.id, b"csr", &pre.serial, T0, &lease("a"))
            .await
            .unwrap()
    );
    sa.add_precertificate(&pre).await.unwrap();
    assert_conflict(sa.add_precertificate(&pre).await);
    assert_eq!(sa.get_issued(&pre.serial).await.unwrap(), pre);
    assert_not_found(sa.get_certificate(&pre.serial).await);
    assert_eq!(
        sa.get_order_precertificate(&o.id).await.unwrap(),
        Some(pre.clone())
    );
    // Revocable, and on the CRL.
    let revocation = Revocation {
        revoked_at: T0,
        reason: RevocationReason::Superseded,
    };
    sa.revoke_certificate(&pre.serial, &revocation)
        .await
        .unwrap();
    let entries = sa
        .get_revoked_certificates(&pre.issuer_id, T0)
        .await
        .unwrap();
    assert!(entries.iter().any(|e| e.serial == pre.serial));
    // The final certificate takes its place, still revoked.
    let mut fin = pre.clone();
    fin.der = b"final certificate".to_vec();
    sa.finalize_order(&fin).await.unwrap();
    let stored = sa.get_certificate(&pre.serial).await.unwrap();
    assert_eq!(stored.der, fin.der);
    assert_eq!(stored.revocation, Some(revocation));
    assert_eq!(sa.get_order_precertificate(&o.id).await.unwrap(), None);
    assert_eq!(
        sa.get_order(&o.id).await.unwrap().certificate_serial,
        Some(pre.serial.clone())
    );
}

async fn finalize_is_transactional(sa: &Sa) {
    let acct = new_account(sa).await;
    let o = new_order(sa, &acct.id, &["a.example.com", "b.example.com"]).await;
    let cert = certificate(&o, T0);

    // Still pending: refused, and no certificate is left behind.
    assert_conflict(sa.finalize_order(&cert).await);
    assert_not_found(sa.get_certificate(&cert.serial).await);
    assert_eq!(
        sa.count_certificates_for_domain("example.com", T0)
            .await
            .unwrap(),
        0
    );
    assert_eq!(sa.get_order(&o.id).await.unwrap(), o);

    assert!(
        sa.set_order_processing(&o.id, b"csr", &Serial::random(), T0, &lease("a"))
            .await
            .unwrap()
    );
    sa.reserve_serial(&cert.serial, &acct.id, &o.id, T0)
        .await
        .unwrap();
    sa.finalize_order(&cert).await.unwrap();
    assert_eq!(sa.get_certificate(&cert.serial).await.unwrap(), cert);
    let stored = sa.get_order(&o.id).await.unwrap();
    assert_eq!(stored.status, OrderStatus::Valid);
    assert_eq!(stored.certificate_serial, Some(cert.serial.clone()));

    // Finalizing again (another serial) conflicts and stores nothing.
    let again = certificate(&o, T0);
    assert_conflict(sa.finalize_order(&again).await);
    assert_not_found(sa.get_certificate(&again.serial).await);
    assert_eq!(
        sa.count_certificates_for_domain("example.com", T0)
            .await
            .unwrap(),
        1
    );

    // Unknown order.
    let mut orphan = certificate(&o, T0);
    orphan.order_id = OrderId::random();
    assert_not_found(sa.finalize_order(&orphan).await);
    assert_not_found(sa.get_certificate(&orphan.serial).await);

    // A serial already stored for another certificate: the order change rolls back.
    let o2 = new_order(sa, &acct.id, &["c.example.com"]).await;
    assert!(
        sa.set_order_processing(&o2.id, b"csr", &Serial::random(), T0, &lease("a"))
            .await
            .unwrap()
    );
    let mut dup = certificate(&o2, T0);
    dup.serial = cert.serial.clone();
    assert_conflict(sa.finalize_order(&dup).await);
    assert_eq!(
        sa.get_order(&o2.id).await.unwrap().status,
        OrderStatus::Processing
    );
}

async fn fail_order(sa: &Sa) {
    let acct = new_account(sa).await;
    let o = new_order(sa, &acct.id, &["example.com"]).await;
    let problem = Problem::new(ProblemType::ServerInternal, "issuance failed");
    assert_conflict(sa.fail_order(&o.id, None, &problem).await);
    assert!(
        sa.set_order_processing(&o.id, b"csr", &Serial::random(), T0, &lease("a"))
            .await
            .unwrap()
    );
    // An instance that lost the lease can't fail the order another instance is issuing.
    assert_conflict(sa.fail_order(&o.id, Some("b"), &problem).await);
    assert_eq!(
        sa.get_order(&o.id).await.unwrap().status,
        OrderStatus::Processing
    );
    sa.fail_order(&o.id, Some("a"), &problem).await.unwrap();
    let stored = sa.get_order(&o.id).await.unwrap();
    assert_eq!(stored.status, OrderStatus::Invalid);
    assert_eq!(stored.error, Some(problem.clone()));
    assert_conflict(sa.fail_order(&o.id, None, &problem).await);
    assert_not_found(sa.fail_order(&OrderId::random(), None, &problem).await);
}

async fn processing_orders(sa: &Sa) {
    let acct = new_account(sa).await;
    assert!(sa.get_stale_processing_orders(T0).await.unwrap().is_empty());
    let a = new_order(sa, &acct.id, &["a.example.com", "b.example.com"]).await;
    let b = new_order(sa, &acct.id, &["c.example.com"]).await;
    let c = new_order(sa, &acct.id, &["d.example.com"]).await;
    let _pending = new_order(sa, &acct.id, &["e.example.com"]).await;
    for o in [&a, &b, &c] {
        assert!(
            sa.set_order_processing(&o.id, b"csr", &Serial::random(), T0, &lease("a"))
                .await
                .unwrap()
        );
    }
    sa.finalize_order(&certificate(&c, T0)).await.unwrap();

    // Held under their lease until it ends.
    assert!(sa.get_stale_processing_orders(T0).await.unwrap().is_empty());
    let mut got = sa.get_stale_processing_orders(LEASE_END).await.unwrap();
    got.sort_by(|x, y| x.id.cmp(&y.id));
    let mut want: Vec<Order> = [a, b]
        .into_iter()
        .map(|mut o| {
            o.status = OrderStatus::Processing;
            o.csr_der = Some(b"csr".to_vec());
            o
        })
        .collect();
    want.sort_by(|x, y| x.id.cmp(&y.id));
    assert_eq!(got, want);
}

async fn serial_reservation(sa: &Sa) {
    let acct = new_account(sa).await;
    let o = new_order(sa, &acct.id, &["example.com"]).await;
    let serial = Serial::random();
    sa.reserve_serial(&serial, &acct.id, &o.id, T0)
        .await
        .unwrap();
    assert_conflict(sa.reserve_serial(&serial, &acct.id, &o.id, T0).await);
    assert_not_found(
        sa.reserve_serial(&Serial::random(), &acct.id, &OrderId::random(), T0)
            .await,
    );
}

async fn revocation(sa: &Sa) {
    let acct = new_account(sa).await;
    let o = new_order(sa, &acct.id, &["example.com"]).await;
    assert!(
        sa.set_order_processing(&o.id, b"csr", &Serial::random(), T0, &lease("a"))
            .await
            .unwrap()
    );
    let cert = certificate(&o, T0);
    sa.finalize_order(&cert).await.unwrap();

    let rev = Revocation {
        revoked_at: T0 + Duration::days(1),
        reason: RevocationReason::KeyCompromise,
    };
    sa.revoke_certificate(&cert.serial, &rev).await.unwrap();
    assert_eq!(
        sa.get_certificate(&cert.serial).await.unwrap().revocation,
        Some(rev.clone())
    );
    let later = Revocation {
        revoked_at: T0 + Duration::days(2),
        reason: RevocationReason::Superseded,
    };
    assert_conflict(sa.revoke_certificate(&cert.serial, &later).await);
    assert_eq!(
        sa.get_certificate(&cert.serial).await.unwrap().revocation,
        Some(rev)
    );
    assert_not_found(sa.revoke_certificate(&Serial::random(), &later).await);
}

async fn renewal_marks_and_replacement(sa: &Sa) {
    let a = new_account(sa).await;
    let b = new_account(sa).await;
    let mut certs = Vec::new();
    for (acct, nb) in [
        (&a, T0),
        (&a, T0 + Duration::days(2)),
        (&b, T0 + Duration::days(4)),
    ] {
        let o = new_order(sa, &acct.id, &["renew.example.com"]).await;
        assert!(
            sa.set_order_processing(&o.id, b"csr", &Serial::random(), T0, &lease("a"))
                .await
                .unwrap()
        );
        let c = certificate(&o, nb);
        sa.finalize_order(&c).await.unwrap();
        certs.push(c);
    }
    let at = T0 + Duration::days(10);
    let get = |i: usize| sa.get_certificate(&certs[i].serial);
    assert_eq!(
        sa.mark_for_renewal(&RenewalSelector::Serial(certs[0].serial.clone()), at)
            .await
            .unwrap(),
        1
    );
    assert_eq!(get(0).await.unwrap().renew_by, Some(at));
    assert_eq!(get(1).await.unwrap().renew_by, None);
    assert_eq!(
        sa.mark_for_renewal(&RenewalSelector::Account(b.id.clone()), at)
            .await
            .unwrap(),
        1
    );
    assert_eq!(get(2).await.unwrap().renew_by, Some(at));
    let range = RenewalSelector::IssuedBetween(T0 + Duration::days(1), T0 + Duration::days(3));
    assert_eq!(sa.mark_for_renewal(&range, at).await.unwrap(), 1);
    assert_eq!(get(1).await.unwrap().renew_by, Some(at));
    assert_eq!(
        sa.mark_for_renewal(&RenewalSelector::Issuer("int-a".into()), at)
            .await
            .unwrap(),
        3
    );

    // A certificate is replaced once.
    sa.mark_replaced(&certs[0].serial, &certs[1].order_id)
        .await
        .unwrap();
    assert_eq!(
        get(0).await.unwrap().replaced_by,
        Some(certs[1].order_id.clone())
    );
    assert_conflict(sa.mark_replaced(&certs[0].serial, &certs[2].order_id).await);

    // A replacement is reserved at newOrder by compare-and-swap on the current holder.
    let (first, second) = (&certs[1].order_id, &certs[2].order_id);
    sa.reserve_replacement(&certs[1].serial, None, first)
        .await
        .unwrap();
    assert_conflict(sa.reserve_replacement(&certs[1].serial, None, second).await);
    assert_conflict(
        sa.reserve_replacement(&certs[1].serial, Some(second), second)
            .await,
    );
    sa.reserve_replacement(&certs[1].serial, Some(first), second)
        .await
        .unwrap();
    assert_eq!(get(1).await.unwrap().replaced_by, Some(second.clone()));
    assert!(matches!(
        sa.reserve_replacement(&Serial::random(), None, first).await,
        Err(SaError::NotFound)
    ));
}

async fn domain_counting(sa: &Sa) {
    let acct = new_account(sa).await;
    let day = Duration::days(1);
    issue(sa, &acct.id, &["example.com"], T0).await;
    issue(
        sa,
        &acct.id,
        &["sub.example.com", "www.sub.example.com"],
        T0 + day,
    )
    .await;
    issue(sa, &acct.id, &["Deep.A.Example.com"], T0 + day).await;
    issue(
        sa,
        &acct.id,
        &["notexample.com", "example.com.evil.net"],
        T0 + day,
    )
    .await;
    issue(sa, &acct.id, &["example.co", "example.org"], T0 + day).await;
    // A wildcard certificate counts for its base domain.
    let a = authz(&acct.id, "example.com", true, AuthzStatus::Valid, T0);
    let o = order(&acct.id, &[&a], T0);
    sa.new_order_and_authzs(&o, std::slice::from_ref(&a))
        .await
        .unwrap();
    assert!(
        sa.set_order_processing(&o.id, b"csr", &Serial::random(), T0, &lease("a"))
            .await
            .unwrap()
    );
    sa.finalize_order(&certificate(&o, T0 + day)).await.unwrap();

    assert_eq!(
        sa.count_certificates_for_domain("example.com", T0)
            .await
            .unwrap(),
        4
    );
    assert_eq!(
        sa.count_certificates_for_domain("example.com", T0 + day)
            .await
            .unwrap(),
        3
    );
    assert_eq!(
        sa.count_certificates_for_domain("example.com", T0 + day + Duration::seconds(1))
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        sa.count_certificates_for_domain("sub.example.com", T0)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        sa.count_certificates_for_domain("notexample.com", T0)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        sa.count_certificates_for_domain("evil.net", T0)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        sa.count_certificates_for_domain("example.co", T0)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        sa.count_certificates_for_domain("ample.com", T0)
            .await
            .unwrap(),
        0
    );
}

async fn time_round_trip(sa: &Sa) {
    let precise = datetime!(2026-02-03 04:05:06.123456789 UTC);
    let truncated = datetime!(2026-02-03 04:05:06.123456 UTC);
    assert_eq!(SqlStorage::truncate_time(precise), truncated);

    let a = account_at(precise, None);
    sa.new_account(&a).await.unwrap();
    let got = sa.get_account(&a.id).await.unwrap();
    assert_eq!(got.created_at, truncated);
    assert_eq!(got.created_at.nanosecond(), 123_456_000);

    // A non-UTC offset reads back as the same instant in UTC.
    let offset = datetime!(2026-02-03 06:05:06.5 +02:00);
    let b = account_at(offset, None);
    sa.new_account(&b).await.unwrap();
    let got = sa.get_account(&b.id).await.unwrap().created_at;
    assert_eq!(got, offset);
    assert!(got.offset().is_utc());

    // Before the epoch, truncation goes towards the past.
    let old = datetime!(1969-12-31 23:59:59.9999999 UTC);
    let c = account_at(old, None);
    sa.new_account(&c).await.unwrap();
    assert_eq!(
        sa.get_account(&c.id).await.unwrap().created_at,
        datetime!(1969-12-31 23:59:59.999999 UTC)
    );
}

async fn concurrent_compare_and_set(sa: &Sa) {
    let acct = new_account(sa).await;
    let o = new_order(sa, &acct.id, &["example.com"]).await;
    let authz = sa.get_authorization(&o.authz_ids[0]).await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..16 {
        let sa = sa.clone();
        let (order_id, authz_id) = (o.id.clone(), authz.id.clone());
        let chall = authz.challenges[i % authz.challenges.len()].id.clone();
        tasks.push(tokio::spawn(async move {
            let order = sa
                .set_order_processing(&order_id, b"csr", &Serial::random(), T0, &lease("a"))
                .await
                .unwrap();
            let challenge = sa
                .set_challenge_processing(&authz_id, &chall, &lease("a"))
                .await
                .unwrap();
            // Writers also contend with fresh inserts.
            sa.new_account(&account_at(T0, None)).await.unwrap();
            (order, challenge)
        }));
    }
    let mut orders_won = 0;
    let mut challenges_won = 0;
    for t in tasks {
        let (order, challenge) = t.await.unwrap();
        orders_won += usize::from(order);
        challenges_won += usize::from(challenge);
    }
    assert_eq!(orders_won, 1);
    // Each challenge moves to processing exactly once.
    assert_eq!(challenges_won, authz.challenges.len());
}

/// Writes that fail after changing a row (an account whose EAB key is already bound: the account
/// row is inserted, then the key cannot be bound) run concurrently with writes that succeed. On
/// SQLite they share group commits; each failed one must leave nothing and each successful one
/// must be stored.
async fn concurrent_failed_writes_leave_nothing(sa: &Sa) {
    sa.new_eab_key(&EabKey {
        key_id: "kid-shared".into(),
        hmac_key: vec![1; 32],
        created_at: T0,
        bound_account: None,
    })
    .await
    .unwrap();
    let mut owner = account_at(T0, None);
    owner.eab_key_id = Some("kid-shared".into());
    sa.new_account(&owner).await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..64 {
        let sa = sa.clone();
        tasks.push(tokio::spawn(async move {
            let mut a = account_at(T0, None);
            let fails = i % 2 == 1;
            if fails {
                a.eab_key_id = Some("kid-shared".into());
            }
            let result = sa.new_account(&a).await;
            (a, fails, result)
        }));
    }
    for t in tasks {
        let (a, fails, result) = t.await.unwrap();
        if fails {
            assert_conflict(result);
            assert_not_found(sa.get_account(&a.id).await);
        } else {
            result.unwrap();
            assert_eq!(sa.get_account(&a.id).await.unwrap(), a);
        }
    }
    assert_eq!(
        sa.get_eab_key("kid-shared").await.unwrap().bound_account,
        Some(owner.id)
    );
}

// ---- SQLite-specific ----

#[tokio::test]
async fn sqlite_url_connect_persists_and_uses_wal() {
    use sqlx::Connection;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested").join("x.db");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let url = format!("sqlite://{}", path.display());
    let sa = SqlStorage::connect(&url).await.unwrap();
    let a = new_account(&(Arc::new(sa.clone()) as Sa)).await;
    sa.close().await;

    // Reopening (and re-running migrations) keeps the data.
    let sa = SqlStorage::connect(&url).await.unwrap();
    assert_eq!(sa.get_account(&a.id).await.unwrap(), a);
    sa.close().await;

    let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(mode, "wal");
}

#[tokio::test]
async fn unsupported_url_is_refused_without_echoing_it() {
    let err = SqlStorage::connect("mysql://root:hunter2@db.internal/cairn")
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        !msg.contains("hunter2") && !msg.contains("db.internal"),
        "{msg}"
    );
}

async fn revocation_status(sa: &Sa) {
    let acct = new_account(sa).await;
    let mut certs = Vec::new();
    for (i, name) in ["a.example.com", "b.example.com", "c.example.com"]
        .iter()
        .enumerate()
    {
        let o = new_order(sa, &acct.id, &[name]).await;
        assert!(
            sa.set_order_processing(&o.id, b"csr", &Serial::random(), T0, &lease("a"))
                .await
                .unwrap()
        );
        let mut cert = certificate(&o, T0 + Duration::days(i as i64));
        cert.crl_shard = i as u32;
        cert.spki_sha256 = if i == 2 {
            "cd".repeat(32)
        } else {
            "ab".repeat(32)
        };
        sa.finalize_order(&cert).await.unwrap();
        certs.push(cert);
    }
    assert_eq!(
        sa.get_certificate(&certs[2].serial)
            .await
            .unwrap()
            .crl_shard,
        2
    );

    let epoch = sa.get_revocation_epoch().await.unwrap();
    let rev = |days, reason| Revocation {
        revoked_at: T0 + Duration::days(days),
        reason,
    };
    sa.revoke_certificate(&certs[0].serial, &rev(5, RevocationReason::Superseded))
        .await
        .unwrap();
    sa.revoke_certificate(&certs[2].serial, &rev(6, RevocationReason::KeyCompromise))
        .await
        .unwrap();
    assert_eq!(sa.get_revocation_epoch().await.unwrap(), epoch + 2);
    // A refused revocation does not move the epoch.
    assert_conflict(
        sa.revoke_certificate(&certs[0].serial, &rev(7, RevocationReason::Unspecified))
            .await,
    );
    assert_eq!(sa.get_revocation_epoch().await.unwrap(), epoch + 2);

    let revoked = sa.get_revoked_certificates("int-a", T0).await.unwrap();
    let mut want = vec![
        (
            certs[0].serial.clone(),
            0,
            rev(5, RevocationReason::Superseded),
        ),
        (
            certs[2].serial.clone(),
            2,
            rev(6, RevocationReason::KeyCompromise),
        ),
    ];
    want.sort_by(|a, b| a.0.0.cmp(&b.0.0));
    let got: Vec<_> = revoked
        .into_iter()
        .map(|r| (r.serial, r.crl_shard, r.revocation))
        .collect();
    assert_eq!(got, want);
    // Certificates expired before the cut-off leave; other issuers see nothing.
    let after_first = certs[0].not_after;
    let revoked = sa
        .get_revoked_certificates("int-a", after_first)
        .await
        .unwrap();
    assert_eq!(revoked.len(), 1);
    assert_eq!(revoked[0].serial, certs[2].serial);
    assert!(
        sa.get_revoked_certificates("int-b", T0)
            .await
            .unwrap()
            .is_empty()
    );

    // Selection for operator revocation: unexpired, unrevoked unless asked.
    let by_account = sa
        .get_certificates(
            &CertificateSelector::Account(acct.id.clone()),
            T0,
            false,
            100,
        )
        .await
        .unwrap();
    assert_eq!(by_account.len(), 1);
    assert_eq!(by_account[0].serial, certs[1].serial);
    let all = sa
        .get_certificates(
            &CertificateSelector::Account(acct.id.clone()),
            T0,
            true,
            100,
        )
        .await
        .unwrap();
    assert_eq!(all.len(), 3);
    let limited = sa
        .get_certificates(&CertificateSelector::Account(acct.id.clone()), T0, true, 2)
        .await
        .unwrap();
    assert_eq!(limited.len(), 2);
    let by_key = sa
        .get_certificates(
            &CertificateSelector::SpkiSha256("CD".repeat(32)),
            T0,
            true,
            100,
        )
        .await
        .unwrap();
    assert_eq!(by_key.len(), 1);
    assert_eq!(by_key[0].serial, certs[2].serial);
    let by_name = sa
        .get_certificates(
            &CertificateSelector::Identifier(Identifier::dns("b.example.com")),
            T0,
            false,
            100,
        )
        .await
        .unwrap();
    assert_eq!(by_name.len(), 1);
    assert_eq!(by_name[0].serial, certs[1].serial);
    let expired = sa
        .get_certificates(
            &CertificateSelector::Account(acct.id.clone()),
            T0 + Duration::days(200),
            true,
            100,
        )
        .await
        .unwrap();
    assert!(expired.is_empty());
}

async fn crls_are_stored_with_increasing_numbers(sa: &Sa) {
    let crl = |number: u64, der: &[u8]| StoredCrl {
        info: CrlInfo {
            issuer_id: "int-a".into(),
            shard: 3,
            number,
            this_update: T0,
            next_update: T0 + Duration::days(7),
            entries: number * 10,
        },
        der: der.to_vec(),
    };
    assert_not_found(sa.get_crl("int-a", 3).await);
    sa.put_crl(&crl(1, b"one")).await.unwrap();
    sa.put_crl(&crl(2, b"two")).await.unwrap();
    assert_conflict(sa.put_crl(&crl(2, b"again")).await);
    assert_conflict(sa.put_crl(&crl(1, b"older")).await);
    let stored = sa.get_crl("int-a", 3).await.unwrap();
    assert_eq!(stored, crl(2, b"two"));
    let mut other = crl(7, b"other shard");
    other.info.shard = 0;
    sa.put_crl(&other).await.unwrap();
    let infos = sa.get_crl_infos().await.unwrap();
    assert_eq!(infos, vec![other.info.clone(), crl(2, b"").info]);
    assert_not_found(sa.get_crl("int-b", 3).await);
}

async fn blocked_keys(sa: &Sa) {
    let key = BlockedKey {
        spki_sha256: "EF".repeat(32),
        jwk_thumbprint: Some("thumb".into()),
        blocked_at: T0,
        comment: "keyCompromise".into(),
    };
    assert!(!sa.is_key_blocked(&"ef".repeat(32)).await.unwrap());
    sa.block_key(&key).await.unwrap();
    sa.block_key(&key).await.unwrap();
    assert!(sa.is_key_blocked(&"ef".repeat(32)).await.unwrap());
    assert!(sa.is_jwk_blocked("thumb").await.unwrap());
    assert!(!sa.is_jwk_blocked("other").await.unwrap());
    assert!(!sa.is_key_blocked(&"ab".repeat(32)).await.unwrap());
}

// ---- leases on processing work (issue 14, findings 4 and 6) ----

async fn challenge_leases_are_claimed_by_compare_and_swap(sa: &Sa) {
    let acct = new_account(sa).await;
    let o = new_order(sa, &acct.id, &["example.com"]).await;
    let authz = sa.get_authorization(&o.authz_ids[0]).await.unwrap();
    let (http, dns) = (
        authz.challenges[0].id.clone(),
        authz.challenges[1].id.clone(),
    );
    let before_end = LEASE_END - Duration::seconds(1);

    // Nothing processing: nothing stale, nothing to claim.
    assert!(
        sa.get_stale_processing_challenges(LEASE_END, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        !sa.claim_processing_challenge(&authz.id, &http, &lease("b"), LEASE_END)
            .await
            .unwrap()
    );
    assert!(
        sa.set_challenge_processing(&authz.id, &http, &lease("a"))
            .await
            .unwrap()
    );
    // While "a"'s lease lasts, no one else takes the challenge.
    assert!(
        sa.get_stale_processing_challenges(before_end, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        !sa.claim_processing_challenge(&authz.id, &http, &lease("b"), before_end)
            .await
            .unwrap()
    );
    // Once it ended, it is listed, and claimed once.
    assert_eq!(
        sa.get_stale_processing_challenges(LEASE_END, 10)
            .await
            .unwrap(),
        vec![(authz.id.clone(), http.clone())]
    );
    let b_until = LEASE_END + Duration::minutes(5);
    assert!(
        sa.claim_processing_challenge(&authz.id, &http, &lease_until("b", b_until), LEASE_END)
            .await
            .unwrap()
    );
    assert!(
        !sa.claim_processing_challenge(&authz.id, &http, &lease("c"), LEASE_END)
            .await
            .unwrap()
    );
    assert!(
        sa.get_stale_processing_challenges(LEASE_END, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        sa.get_stale_processing_challenges(b_until, 10)
            .await
            .unwrap(),
        vec![(authz.id.clone(), http.clone())]
    );
    // The claim changed the lease only: the challenge is still processing.
    let stored = sa.get_authorization(&authz.id).await.unwrap();
    assert_eq!(stored.challenges[0].status, ChallengeStatus::Processing);
    // A pending challenge is not claimed; a challenge of another authorization is not either.
    assert!(
        !sa.claim_processing_challenge(&authz.id, &dns, &lease("c"), b_until)
            .await
            .unwrap()
    );
    assert!(
        !sa.claim_processing_challenge(&AuthzId::random(), &http, &lease("c"), b_until)
            .await
            .unwrap()
    );

    // Finished: no longer stale, no longer claimable.
    let mut done = stored.challenges[0].clone();
    done.status = ChallengeStatus::Invalid;
    done.validated = Some(b_until);
    done.error = Some(Problem::new(ProblemType::Connection, "refused"));
    sa.finish_challenge(&ChallengeOutcome {
        authz_id: authz.id.clone(),
        challenge: done,
        authz_status: AuthzStatus::Invalid,
        expires: authz.expires,
    })
    .await
    .unwrap();
    let far = T0 + Duration::days(1);
    assert!(
        sa.get_stale_processing_challenges(far, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        !sa.claim_processing_challenge(&authz.id, &http, &lease("c"), far)
            .await
            .unwrap()
    );

    // A processing challenge of an authorization no longer pending is left alone.
    let other = new_order(sa, &acct.id, &["example.net"]).await;
    let other_authz = sa.get_authorization(&other.authz_ids[0]).await.unwrap();
    let other_chall = other_authz.challenges[0].id.clone();
    assert!(
        sa.set_challenge_processing(&other_authz.id, &other_chall, &lease("a"))
            .await
            .unwrap()
    );
    assert!(sa.deactivate_authorization(&other_authz.id).await.unwrap());
    assert!(
        sa.get_stale_processing_challenges(far, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        !sa.claim_processing_challenge(&other_authz.id, &other_chall, &lease("c"), far)
            .await
            .unwrap()
    );

    // Oldest lease first, at most `limit`.
    let mut stale = Vec::new();
    for (i, name) in ["one.example", "two.example", "three.example"]
        .iter()
        .enumerate()
    {
        let o = new_order(sa, &acct.id, &[name]).await;
        let a = sa.get_authorization(&o.authz_ids[0]).await.unwrap();
        let until = LEASE_END - Duration::minutes(i64::try_from(i).unwrap());
        assert!(
            sa.set_challenge_processing(&a.id, &a.challenges[0].id, &lease_until("a", until))
                .await
                .unwrap()
        );
        stale.push((a.id.clone(), a.challenges[0].id.clone()));
    }
    stale.reverse();
    assert_eq!(
        sa.get_stale_processing_challenges(far, 2).await.unwrap(),
        stale[..2].to_vec()
    );
}

async fn authz_with_stale_processing_challenge_is_not_reused(sa: &Sa) {
    let acct = new_account(sa).await;
    let name = Identifier::dns("example.com");
    let o = new_order(sa, &acct.id, &["example.com"]).await;
    let authz = sa.get_authorization(&o.authz_ids[0]).await.unwrap();
    let reusable = |after: OffsetDateTime| {
        let (sa, account, name) = (sa.clone(), acct.id.clone(), name.clone());
        async move {
            sa.get_reusable_authz(&account, &name, false, true, after)
                .await
                .unwrap()
                .map(|a| a.id)
        }
    };
    assert_eq!(reusable(T0).await, Some(authz.id.clone()));
    assert!(
        sa.set_challenge_processing(&authz.id, &authz.challenges[0].id, &lease("a"))
            .await
            .unwrap()
    );
    // Being validated under a live lease: reusable (the validation will settle it).
    assert_eq!(
        reusable(LEASE_END - Duration::seconds(1)).await,
        Some(authz.id.clone())
    );
    // Its lease ended (the validating instance died): never reused.
    assert_eq!(reusable(LEASE_END).await, None);
    // Claimed again by recovery under a new lease: reusable while that lasts.
    let until = LEASE_END + Duration::minutes(5);
    assert!(
        sa.claim_processing_challenge(
            &authz.id,
            &authz.challenges[0].id,
            &lease_until("b", until),
            LEASE_END
        )
        .await
        .unwrap()
    );
    assert_eq!(reusable(LEASE_END).await, Some(authz.id.clone()));
    assert_eq!(reusable(until).await, None);
}

async fn order_leases_are_claimed_by_compare_and_swap(sa: &Sa) {
    let acct = new_account(sa).await;
    let o = new_order(sa, &acct.id, &["example.com"]).await;
    let before_end = LEASE_END - Duration::seconds(1);

    // Not processing: nothing to claim or renew.
    assert!(
        !sa.claim_processing_order(&o.id, &lease("b"), LEASE_END)
            .await
            .unwrap()
    );
    assert!(!sa.renew_order_lease(&o.id, &lease("a")).await.unwrap());
    assert!(
        sa.set_order_processing(&o.id, b"csr", &Serial::random(), T0, &lease("a"))
            .await
            .unwrap()
    );
    // "a" is issuing: no one else resumes it.
    assert!(
        sa.get_stale_processing_orders(before_end)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        !sa.claim_processing_order(&o.id, &lease("b"), before_end)
            .await
            .unwrap()
    );
    // Only the holder renews; a renewed lease is not stale at the old end.
    assert!(
        !sa.renew_order_lease(&o.id, &lease_until("b", T0 + Duration::hours(1)))
            .await
            .unwrap()
    );
    let renewed = LEASE_END + Duration::minutes(5);
    assert!(
        sa.renew_order_lease(&o.id, &lease_until("a", renewed))
            .await
            .unwrap()
    );
    assert!(
        sa.get_stale_processing_orders(LEASE_END)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        !sa.claim_processing_order(&o.id, &lease("b"), LEASE_END)
            .await
            .unwrap()
    );
    // "a" stopped renewing: once its lease ended, "b" claims it, once.
    let stale = sa.get_stale_processing_orders(renewed).await.unwrap();
    assert_eq!(
        stale.iter().map(|o| o.id.clone()).collect::<Vec<_>>(),
        vec![o.id.clone()]
    );
    let b_until = renewed + Duration::minutes(5);
    assert!(
        sa.claim_processing_order(&o.id, &lease_until("b", b_until), renewed)
            .await
            .unwrap()
    );
    assert!(
        !sa.claim_processing_order(&o.id, &lease("c"), renewed)
            .await
            .unwrap()
    );
    // "a" finds out it lost the order; "b" holds it.
    assert!(
        !sa.renew_order_lease(&o.id, &lease_until("a", b_until))
            .await
            .unwrap()
    );
    assert!(
        sa.renew_order_lease(&o.id, &lease_until("b", b_until))
            .await
            .unwrap()
    );
    assert_eq!(
        sa.get_order(&o.id).await.unwrap().status,
        OrderStatus::Processing
    );

    // Finished: no longer stale, claimable or renewable.
    sa.finalize_order(&certificate(&o, T0)).await.unwrap();
    let far = T0 + Duration::days(1);
    assert!(
        sa.get_stale_processing_orders(far)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        !sa.claim_processing_order(&o.id, &lease("c"), far)
            .await
            .unwrap()
    );
    assert!(
        !sa.renew_order_lease(&o.id, &lease_until("b", far))
            .await
            .unwrap()
    );
    assert!(
        !sa.claim_processing_order(&OrderId::random(), &lease("c"), far)
            .await
            .unwrap()
    );
}

/// Many instances recovering at once: each ended lease is claimed by exactly one.
async fn concurrent_claims_of_an_ended_lease_have_one_winner(sa: &Sa) {
    let acct = new_account(sa).await;
    let o = new_order(sa, &acct.id, &["example.com"]).await;
    let authz = sa.get_authorization(&o.authz_ids[0]).await.unwrap();
    let chall = authz.challenges[0].id.clone();
    assert!(
        sa.set_order_processing(&o.id, b"csr", &Serial::random(), T0, &lease("dead"))
            .await
            .unwrap()
    );
    assert!(
        sa.set_challenge_processing(&authz.id, &chall, &lease("dead"))
            .await
            .unwrap()
    );
    let mut tasks = Vec::new();
    for i in 0..16 {
        let sa = sa.clone();
        let (order_id, authz_id, chall) = (o.id.clone(), authz.id.clone(), chall.clone());
        tasks.push(tokio::spawn(async move {
            let mine = lease_until(&format!("instance-{i}"), LEASE_END + Duration::minutes(5));
            let order = sa
                .claim_processing_order(&order_id, &mine, LEASE_END)
                .await
                .unwrap();
            let challenge = sa
                .claim_processing_challenge(&authz_id, &chall, &mine, LEASE_END)
                .await
                .unwrap();
            (order, challenge)
        }));
    }
    let (mut orders_won, mut challenges_won) = (0, 0);
    for t in tasks {
        let (order, challenge) = t.await.unwrap();
        orders_won += usize::from(order);
        challenges_won += usize::from(challenge);
    }
    assert_eq!(orders_won, 1);
    assert_eq!(challenges_won, 1);
}
