//! Leases on `processing` work (issue 14, findings 4 and 6): a challenge or an order left
//! `processing` by a crashed instance is taken over once its lease ends, never while it lasts,
//! and an instance that lost its lease stops without signing.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod harness;

use async_trait::async_trait;
use cairn_api::fake::FakeCt;
use cairn_api::{
    CertificateIssuer, CtError, CtSubmitter, Lease, SctList, StorageAuthority, ValidationAuthority,
};
use cairn_core::{Account, AuthzStatus, ChallengeStatus, Identifier, OrderStatus};
use cairn_ra::{OrderView, Ra, RaConfig};
use cairn_ratelimit::{MemoryStore, RateLimitConfig, RateLimiter};
use harness::{Ca, csr, key};
use std::sync::Arc;
use std::time::Duration as StdDuration;
use time::Duration;

/// A lease a crashed instance took for five minutes from `ca`'s now.
fn crashed_lease(ca: &Ca) -> Lease {
    Lease {
        owner: "crashed-instance".into(),
        until: ca.now() + Duration::minutes(5),
    }
}

/// Marks the order's first authorization's http-01 challenge processing under a crashed
/// instance's lease: what a SIGKILL during validation leaves behind.
async fn crash_during_validation(ca: &Ca, account: &Account, order: &OrderView) -> Account {
    let authz = ca
        .ra
        .get_authorization(account, &order.order.authz_ids[0])
        .await
        .unwrap();
    assert!(
        ca.sa
            .set_challenge_processing(&authz.id, &authz.challenges[0].id, &crashed_lease(ca))
            .await
            .unwrap()
    );
    account.clone()
}

async fn challenge_status(ca: &Ca, account: &Account, order: &OrderView) -> ChallengeStatus {
    let authz = ca
        .ra
        .get_authorization(account, &order.order.authz_ids[0])
        .await
        .unwrap();
    authz.challenges[0].status
}

#[tokio::test]
async fn a_challenge_left_processing_by_a_crash_is_validated_again_and_the_name_is_issuable() {
    let ca = Ca::new();
    let account = ca.account().await;
    let name = "stuck.example.com";
    let order = ca.order(&account, &[name]).await;
    crash_during_validation(&ca, &account, &order).await;

    // Nothing happens while the crashed instance's lease lasts: it may be alive and validating.
    assert_eq!(ca.ra.recover_stale_challenges().await.unwrap(), 0);
    assert_eq!(
        challenge_status(&ca, &account, &order).await,
        ChallengeStatus::Processing
    );
    ca.clock.advance(Duration::minutes(5));
    assert_eq!(ca.ra.recover_stale_challenges().await.unwrap(), 1);
    let authz = ca.settled(&account, &order.order.authz_ids[0]).await;
    assert_eq!(authz.status, AuthzStatus::Valid);
    assert_eq!(authz.challenges[0].status, ChallengeStatus::Valid);
    // Validated once, by the recovery, for the right key authorization.
    let validations = ca.va.validations();
    assert_eq!(validations.len(), 1);
    assert_eq!(
        validations[0].key_authorization,
        format!("{}.{}", authz.challenges[0].token, account.key_thumbprint)
    );
    // Nothing left to recover, and the name is issuable.
    assert_eq!(ca.ra.recover_stale_challenges().await.unwrap(), 0);
    let done = ca
        .ra
        .finalize(&account, &order.order.id, &csr(&key(), &[name]))
        .await
        .unwrap();
    assert_eq!(done.status, OrderStatus::Valid);
}

#[tokio::test]
async fn a_stale_challenge_that_fails_again_leaves_the_authorization_invalid_not_stuck() {
    let ca = Ca::new();
    let account = ca.account().await;
    let name = "fails.example.com";
    ca.va.fail(Identifier::dns(name));
    let order = ca.order(&account, &[name]).await;
    crash_during_validation(&ca, &account, &order).await;
    ca.clock.advance(Duration::minutes(5));
    assert_eq!(ca.ra.recover_stale_work().await.unwrap(), (1, 0));
    let authz = ca.settled(&account, &order.order.authz_ids[0]).await;
    assert_eq!(authz.status, AuthzStatus::Invalid);
    assert_eq!(authz.challenges[0].status, ChallengeStatus::Invalid);
    assert!(authz.challenges[0].error.is_some());
}

#[tokio::test]
async fn a_stale_challenge_whose_authorization_expired_is_marked_invalid_without_validating() {
    let ca = Ca::new();
    let account = ca.account().await;
    let order = ca.order(&account, &["late.example.com"]).await;
    crash_during_validation(&ca, &account, &order).await;
    let authz = ca
        .ra
        .get_authorization(&account, &order.order.authz_ids[0])
        .await
        .unwrap();
    ca.clock.set(authz.expires);
    assert_eq!(ca.ra.recover_stale_challenges().await.unwrap(), 1);
    for _ in 0..500 {
        if challenge_status(&ca, &account, &order).await != ChallengeStatus::Processing {
            break;
        }
        tokio::time::sleep(StdDuration::from_millis(5)).await;
    }
    let stored = ca.sa.get_authorization(&authz.id).await.unwrap();
    assert_eq!(stored.status, AuthzStatus::Invalid);
    assert_eq!(stored.challenges[0].status, ChallengeStatus::Invalid);
    let problem = stored.challenges[0].error.clone().unwrap();
    assert!(problem.detail.contains("expired"), "{}", problem.detail);
    // An expired authorization is not validated (and so not extended) by the recovery.
    assert!(ca.va.validations().is_empty());
    // Never re-validated (and so never extended) by a later pass either.
    assert_eq!(ca.ra.recover_stale_challenges().await.unwrap(), 0);
}

#[tokio::test]
async fn an_authorization_whose_validation_is_stuck_is_not_reused_for_a_new_order() {
    let ca = Ca::new();
    let account = ca.account().await;
    let name = "reuse.example.com";
    let first = ca.order(&account, &[name]).await;
    crash_during_validation(&ca, &account, &first).await;
    ca.clock.advance(Duration::minutes(5));
    // A different order (another name too), so the pending order itself is not reused.
    let second = ca.order(&account, &[name, "other.example.com"]).await;
    let authzs = ca
        .sa
        .get_authorizations(&second.order.authz_ids)
        .await
        .unwrap();
    let for_name = authzs
        .iter()
        .find(|a| a.identifier == Identifier::dns(name))
        .unwrap();
    assert_ne!(for_name.id, first.order.authz_ids[0]);
    assert_eq!(for_name.status, AuthzStatus::Pending);
}

#[tokio::test]
async fn a_failed_outcome_write_is_retried() {
    let ca = Ca::new();
    let account = ca.account().await;
    let order = ca.order(&account, &["retry.example.com"]).await;
    // Two writes fail; the third (of five allowed) stores the outcome.
    ca.sa.fail_finish_challenge(2);
    let authz = ca.validate(&account, &order.order.authz_ids[0]).await;
    assert_eq!(authz.status, AuthzStatus::Valid);
    assert_eq!(ca.va.validations().len(), 1);
}

#[tokio::test]
async fn an_outcome_that_could_not_be_stored_is_validated_again_once_the_lease_ends() {
    let ca = Ca::new();
    let account = ca.account().await;
    let order = ca.order(&account, &["outage.example.com"]).await;
    // More failures than attempts: the validation's outcome is lost.
    ca.sa.fail_finish_challenge(100);
    let authz = ca
        .ra
        .get_authorization(&account, &order.order.authz_ids[0])
        .await
        .unwrap();
    ca.ra
        .respond_to_challenge(&account, &authz.id, &authz.challenges[0].id)
        .await
        .unwrap();
    // Five attempts with 0.1 + 0.2 + 0.4 + 0.8 s between them.
    for _ in 0..400 {
        if ca.va.validations().len() == 1 {
            break;
        }
        tokio::time::sleep(StdDuration::from_millis(5)).await;
    }
    tokio::time::sleep(StdDuration::from_millis(2000)).await;
    assert_eq!(
        challenge_status(&ca, &account, &order).await,
        ChallengeStatus::Processing
    );
    // The database is back; the lease ends; recovery validates again and stores it.
    ca.sa.fail_finish_challenge(0);
    assert_eq!(ca.ra.recover_stale_challenges().await.unwrap(), 0);
    ca.clock.advance(RaConfig::default().challenge_lease);
    assert_eq!(ca.ra.recover_stale_challenges().await.unwrap(), 1);
    let authz = ca.settled(&account, &order.order.authz_ids[0]).await;
    assert_eq!(authz.status, AuthzStatus::Valid);
    assert_eq!(ca.va.validations().len(), 2);
}

// ---- two instances on one database (finding 6) ----

/// A CT submitter whose `get_scts` waits for [`GatedCt::open`] after recording the submission,
/// so a test can hold an instance in the middle of issuing.
struct GatedCt {
    inner: FakeCt,
    gate: tokio::sync::Semaphore,
}

impl GatedCt {
    fn new() -> Arc<GatedCt> {
        Arc::new(GatedCt {
            inner: FakeCt::new(),
            gate: tokio::sync::Semaphore::new(0),
        })
    }

    fn open(&self) {
        self.gate.add_permits(1000);
    }
}

#[async_trait]
impl CtSubmitter for GatedCt {
    async fn get_scts(&self, precert_chain: &[Vec<u8>]) -> Result<SctList, CtError> {
        let scts = self.inner.get_scts(precert_chain).await;
        self.gate.acquire().await.unwrap().forget();
        scts
    }

    async fn submit_final(&self, chain: Vec<Vec<u8>>) {
        self.inner.submit_final(chain).await;
    }
}

fn quick() -> RaConfig {
    RaConfig {
        finalize_wait: Duration::milliseconds(200),
        ..RaConfig::default()
    }
}

/// Another RA instance on `ca`'s storage, issuer, VA and clock, submitting to `ct`.
fn instance(ca: &Ca, ct: Arc<dyn CtSubmitter>) -> Ra {
    let limiter =
        RateLimiter::new(&RateLimitConfig::default(), Arc::new(MemoryStore::new())).unwrap();
    Ra::new_with_ct(
        Arc::new(ca.sa.clone()) as Arc<dyn StorageAuthority>,
        ca.va.clone() as Arc<dyn ValidationAuthority>,
        ca.issuer.clone() as Arc<dyn CertificateIssuer>,
        Some(ct),
        limiter,
        ca.clock.clone(),
        quick(),
    )
}

/// Instance one finalizes an order for `name` and is held while the logs answer (its
/// precertificate signed and stored); returns the account and the order.
async fn first_instance_issuing(ca: &Ca, one: &Ra, name: &str) -> (Account, OrderView) {
    let account = ca.account().await;
    let order = ca.order(&account, &[name]).await;
    let order = ca.validate_order(&account, &order).await;
    assert_eq!(order.status, OrderStatus::Ready);
    let view = one
        .finalize(&account, &order.order.id, &csr(&key(), &[name]))
        .await
        .unwrap();
    assert_eq!(view.status, OrderStatus::Processing);
    // The precertificate is signed.
    assert_eq!(ca.issuer.signed(), 1);
    (account, view)
}

/// The order of `view` as instance `ra` sees it once it is no longer `processing` (within
/// 2.5 s).
async fn settled_at(ra: &Ra, account: &Account, view: &OrderView) -> OrderView {
    for _ in 0..500 {
        let v = ra.get_order(account, &view.order.id).await.unwrap();
        if v.status != OrderStatus::Processing {
            return v;
        }
        tokio::time::sleep(StdDuration::from_millis(5)).await;
    }
    panic!("the order is still processing");
}

#[tokio::test]
async fn a_second_instance_does_not_resume_an_order_the_first_is_issuing() {
    let ca = Ca::new();
    let ct_one = GatedCt::new();
    let one = instance(&ca, ct_one.clone());
    let two = instance(&ca, Arc::new(FakeCt::new()));
    let (account, view) = first_instance_issuing(&ca, &one, "busy.example.com").await;

    // Instance two starts up (or its timer fires) while one holds a live lease.
    assert_eq!(two.recover_stale_work().await.unwrap(), (0, 0));
    ca.clock.advance(quick().order_lease - Duration::seconds(1));
    assert_eq!(two.resume_interrupted_issuance().await.unwrap(), 0);
    assert_eq!(ca.issuer.signed(), 1);

    ct_one.open();
    let done = settled_at(&one, &account, &view).await;
    assert_eq!(done.status, OrderStatus::Valid);
    // One precertificate and one certificate, both by instance one.
    assert_eq!(ca.issuer.signed(), 2);
    assert_eq!(two.resume_interrupted_issuance().await.unwrap(), 0);
}

#[tokio::test]
async fn after_the_first_instance_dies_the_second_finishes_its_order_once() {
    let ca = Ca::new();
    let ct_one = GatedCt::new();
    let one = instance(&ca, ct_one.clone());
    let ct_two = Arc::new(FakeCt::new());
    let two = instance(&ca, ct_two.clone());
    let (account, view) = first_instance_issuing(&ca, &one, "dies.example.com").await;

    // Instance one stops renewing (it is stuck, or dead): once its lease ended, two claims the
    // order and finishes it with the stored precertificate's serial.
    ca.clock.advance(quick().order_lease);
    assert_eq!(two.resume_interrupted_issuance().await.unwrap(), 1);
    let done = two.get_order(&account, &view.order.id).await.unwrap();
    assert_eq!(done.status, OrderStatus::Valid);
    assert_eq!(ca.issuer.signed(), 2);
    assert_eq!(
        ct_two.precert_chains()[0][0],
        ct_one.inner.precert_chains()[0][0]
    );

    // Instance one wakes up: it finds its lease taken over and signs nothing more.
    ct_one.open();
    tokio::time::sleep(StdDuration::from_millis(300)).await;
    assert_eq!(ca.issuer.signed(), 2);
    let after = two.get_order(&account, &view.order.id).await.unwrap();
    assert_eq!(after.status, OrderStatus::Valid);
    assert_eq!(
        after.order.certificate_serial,
        done.order.certificate_serial
    );
    assert_eq!(one.resume_interrupted_issuance().await.unwrap(), 0);
}

#[tokio::test]
async fn a_lease_just_taken_is_not_renewed_before_signing() {
    let ca = Ca::new();
    let account = ca.account().await;
    let order = ca.order(&account, &["fresh.example.com"]).await;
    let order = ca.validate_order(&account, &order).await;
    let view = ca
        .ra
        .finalize(
            &account,
            &order.order.id,
            &csr(&key(), &["fresh.example.com"]),
        )
        .await
        .unwrap();
    assert_eq!(view.status, OrderStatus::Valid);
    assert_eq!(ca.issuer.signed(), 1);
    // The move to processing took the lease a moment ago: signing needed no renewal write.
    assert_eq!(ca.sa.order_lease_renewals(), 0);
}

#[tokio::test]
async fn a_lease_a_third_through_is_renewed_before_the_next_signature() {
    let ca = Ca::new();
    let ct_one = GatedCt::new();
    let one = instance(&ca, ct_one.clone());
    let (account, view) = first_instance_issuing(&ca, &one, "slow-logs.example.com").await;
    // The precertificate was signed under the lease the finalize took.
    assert_eq!(ca.sa.order_lease_renewals(), 0);

    // The logs take a third of the lease to answer: the lease is renewed (and found still
    // this instance's) before the final certificate is signed.
    ca.clock
        .advance(quick().order_lease / 3 + Duration::seconds(1));
    ct_one.open();
    assert_eq!(
        settled_at(&one, &account, &view).await.status,
        OrderStatus::Valid
    );
    assert_eq!(ca.issuer.signed(), 2);
    assert_eq!(ca.sa.order_lease_renewals(), 1);
}
