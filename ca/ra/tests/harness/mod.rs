//! An RA over `cairn-api`'s fakes, on a clock the test moves: in-memory storage, scripted
//! validation, an issuer that really signs. No sockets, no database, no key files.

// Each test file uses its own part of the harness.
#![allow(dead_code)]

use cairn_api::fake::{FakeCt, FakeIssuer, MemoryStorage, ScriptedValidation};
use cairn_api::{CertificateIssuer, CtSubmitter, StorageAuthority, ValidationAuthority};
use cairn_core::{
    Account, Authorization, AuthzStatus, Certificate, ChallengeType, FixedClock, Identifier,
    OrderStatus,
};
use cairn_ra::{NewAccountRequest, NewOrderRequest, OrderView, Ra, RaConfig};
use cairn_ratelimit::{MemoryStore, RateLimitConfig, RateLimiter};
use rcgen::{CertificateParams, KeyPair, PublicKeyData};
use std::sync::Arc;
use std::time::Duration as StdDuration;
use time::OffsetDateTime;
use time::macros::datetime;

/// When every test starts.
pub(crate) const T0: OffsetDateTime = datetime!(2026-03-02 09:00 UTC);

/// The RA and the fakes behind it.
pub(crate) struct Ca {
    pub(crate) ra: Ra,
    pub(crate) sa: MemoryStorage,
    pub(crate) va: Arc<ScriptedValidation>,
    pub(crate) issuer: Arc<FakeIssuer>,
    pub(crate) ct: Option<Arc<FakeCt>>,
    pub(crate) clock: Arc<FixedClock>,
}

impl Ca {
    /// An RA with the default policy.
    pub(crate) fn new() -> Ca {
        Ca::build(RaConfig::default(), None)
    }

    /// An RA with `config`.
    pub(crate) fn with_config(config: RaConfig) -> Ca {
        Ca::build(config, None)
    }

    /// An RA that embeds SCTs from a fake CT submitter.
    pub(crate) fn with_ct() -> Ca {
        Ca::build(RaConfig::default(), Some(Arc::new(FakeCt::new())))
    }

    /// An RA with `config` that embeds SCTs from a fake CT submitter.
    pub(crate) fn with_ct_config(config: RaConfig) -> Ca {
        Ca::build(config, Some(Arc::new(FakeCt::new())))
    }

    /// Another RA on the same storage, issuer and clock (a restart after a crash, or a second
    /// instance), submitting to `ct`.
    pub(crate) fn restarted(&self, ct: Option<Arc<FakeCt>>, config: RaConfig) -> Ra {
        let limiter =
            RateLimiter::new(&RateLimitConfig::default(), Arc::new(MemoryStore::new())).unwrap();
        Ra::new_with_ct(
            Arc::new(self.sa.clone()) as Arc<dyn StorageAuthority>,
            self.va.clone() as Arc<dyn ValidationAuthority>,
            self.issuer.clone() as Arc<dyn CertificateIssuer>,
            ct.map(|c| c as Arc<dyn CtSubmitter>),
            limiter,
            self.clock.clone(),
            config,
        )
    }

    /// An RA with the default policy and rate limits `limits`.
    pub(crate) fn with_limits(limits: RateLimitConfig) -> Ca {
        Ca::build_with_limits(RaConfig::default(), None, &limits)
    }

    fn build(config: RaConfig, ct: Option<Arc<FakeCt>>) -> Ca {
        Ca::build_with_limits(config, ct, &RateLimitConfig::default())
    }

    fn build_with_limits(
        config: RaConfig,
        ct: Option<Arc<FakeCt>>,
        limits: &RateLimitConfig,
    ) -> Ca {
        let clock = Arc::new(FixedClock::new(T0));
        let sa = MemoryStorage::new();
        let va = Arc::new(ScriptedValidation::new());
        let issuer = Arc::new(FakeIssuer::new(T0).unwrap());
        let limiter = RateLimiter::new(limits, Arc::new(MemoryStore::new())).unwrap();
        let ra = Ra::new_with_ct(
            Arc::new(sa.clone()) as Arc<dyn StorageAuthority>,
            va.clone() as Arc<dyn ValidationAuthority>,
            issuer.clone() as Arc<dyn CertificateIssuer>,
            ct.clone().map(|c| c as Arc<dyn CtSubmitter>),
            limiter,
            clock.clone(),
            config,
        );
        Ca {
            ra,
            sa,
            va,
            issuer,
            ct,
            clock,
        }
    }

    /// The time on the RA's clock.
    pub(crate) fn now(&self) -> OffsetDateTime {
        cairn_core::Clock::now(self.clock.as_ref())
    }

    /// A new account whose key is `key`.
    pub(crate) async fn account_with_key(&self, key: &KeyPair) -> Account {
        let thumbprint = cairn_x509::spki_jwk_thumbprint(&key.subject_public_key_info()).unwrap();
        let (account, created) = self
            .ra
            .new_account(NewAccountRequest {
                jwk: serde_json::json!({"kty": "EC", "crv": "P-256", "thumbprint": thumbprint}),
                thumbprint,
                contact: vec!["mailto:admin@cairn-ca.net".into()],
                terms_of_service_agreed: true,
                eab_key_id: None,
                remote_ip: None,
            })
            .await
            .unwrap();
        assert!(created);
        account
    }

    /// A new account with a key of its own.
    pub(crate) async fn account(&self) -> Account {
        self.account_with_key(&key()).await
    }

    /// A new order (or the reused one) for DNS `names`, with the default profile.
    pub(crate) async fn order(&self, account: &Account, names: &[&str]) -> OrderView {
        self.order_with_profile(account, names, None).await
    }

    /// A new order (or the reused one) for DNS `names` with `profile`.
    pub(crate) async fn order_with_profile(
        &self,
        account: &Account,
        names: &[&str],
        profile: Option<&str>,
    ) -> OrderView {
        self.ra
            .new_order(
                account,
                NewOrderRequest {
                    identifiers: names.iter().map(|n| Identifier::dns(*n)).collect(),
                    not_before: None,
                    not_after: None,
                    profile: profile.map(str::to_owned),
                    replaces: None,
                },
            )
            .await
            .unwrap()
    }

    /// Responds to the authorization's first challenge (dns-01 for a wildcard, http-01 else)
    /// and waits for the validation running in the background to be recorded.
    pub(crate) async fn validate(
        &self,
        account: &Account,
        authz: &cairn_core::AuthzId,
    ) -> Authorization {
        let current = self.ra.get_authorization(account, authz).await.unwrap();
        let chall = current
            .challenges
            .iter()
            .find(|c| c.typ == ChallengeType::Http01 || current.wildcard)
            .unwrap()
            .id
            .clone();
        self.ra
            .respond_to_challenge(account, authz, &chall)
            .await
            .unwrap();
        self.settled(account, authz).await
    }

    /// The authorization once it is no longer pending (a validation finished).
    pub(crate) async fn settled(
        &self,
        account: &Account,
        authz: &cairn_core::AuthzId,
    ) -> Authorization {
        for _ in 0..500 {
            let a = self.ra.get_authorization(account, authz).await.unwrap();
            if a.status != AuthzStatus::Pending {
                return a;
            }
            tokio::time::sleep(StdDuration::from_millis(5)).await;
        }
        panic!("the validation of {authz} did not finish");
    }

    /// Validates every authorization of the order and returns it (ready, if all went well).
    pub(crate) async fn validate_order(&self, account: &Account, order: &OrderView) -> OrderView {
        for authz in &order.order.authz_ids {
            self.validate(account, authz).await;
        }
        self.ra.get_order(account, &order.order.id).await.unwrap()
    }

    /// Orders, validates and finalizes a certificate for `names` with a fresh key; returns the
    /// stored certificate and its key.
    pub(crate) async fn issue(&self, account: &Account, names: &[&str]) -> (Certificate, KeyPair) {
        let order = self.order(account, names).await;
        let order = self.validate_order(account, &order).await;
        assert_eq!(order.status, OrderStatus::Ready);
        let cert_key = key();
        let done = self
            .ra
            .finalize(account, &order.order.id, &csr(&cert_key, names))
            .await
            .unwrap();
        assert_eq!(done.status, OrderStatus::Valid);
        let serial = done.order.certificate_serial.unwrap();
        (self.ra.get_certificate(&serial).await.unwrap(), cert_key)
    }
}

/// A fresh ECDSA P-256 key.
pub(crate) fn key() -> KeyPair {
    KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap()
}

/// A CSR for DNS `names` signed by `key`, without a subject.
pub(crate) fn csr(key: &KeyPair, names: &[&str]) -> Vec<u8> {
    let mut params =
        CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.serialize_request(key).unwrap().der().to_vec()
}
