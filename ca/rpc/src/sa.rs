//! The storage authority over gRPC: [`router`] serves any [`StorageAuthority`] (`cairn sa
//! serve`), and [`RemoteSa`] is the client that implements the trait, so the RA and the WFE use
//! a storage authority in another process without knowing it is remote.
//!
//! One gRPC method per trait method, named after it (`/cairn.sa.StorageAuthority/get_order`).
//! A request is the JSON array of the method's arguments; a response is the method's result with
//! its [`SaError`] as a [`WireSaError`], so `NotFound` and `Conflict` reach the caller as what
//! they are. A call the transport could not complete (the SA is down, the deadline passed) is
//! [`SaError::Database`] with the [`RpcError`] as its source: an internal error the caller logs,
//! never a client's mistake. A write whose answer was lost may still have been committed; the
//! storage's compare-and-set writes make retrying it safe.

use crate::RpcError;
use crate::client::{RpcClient, RpcClientConfig};
use crate::wire::{WireError, rpc_service};
use cairn_api::sa::{
    AuthzState, BlockedKey, CertificateSelector, ChallengeOutcome, CrlInfo, Lease, NewOrderContext,
    NewOrderQuery, RenewalSelector, RevokedCertificate, SaError, StorageAuthority, StoredCrl,
};
use cairn_core::{
    Account, AccountId, AccountPolicy, Authorization, AuthzId, Certificate, ChallengeId, EabKey,
    Identifier, Order, OrderId, Problem, Revocation, Serial,
};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::sync::Mutex;
use time::OffsetDateTime;

/// The gRPC service name.
pub const SERVICE: &str = "cairn.sa.StorageAuthority";

/// [`SaError`] as it crosses the wire: the kind, and the text of what the server saw.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum WireSaError {
    /// [`SaError::NotFound`].
    NotFound,
    /// [`SaError::Conflict`].
    Conflict(String),
    /// [`SaError::Database`].
    Database(String),
    /// [`SaError::Migrate`].
    Migrate(String),
    /// [`SaError::NotCommitted`].
    NotCommitted(String),
    /// [`SaError::Corrupt`].
    Corrupt(String),
}

impl From<SaError> for WireSaError {
    fn from(e: SaError) -> Self {
        match e {
            SaError::NotFound => Self::NotFound,
            SaError::Conflict(what) => Self::Conflict(what.to_owned()),
            SaError::Database(source) => Self::Database(source.to_string()),
            SaError::Migrate(source) => Self::Migrate(source.to_string()),
            SaError::NotCommitted(what) => Self::NotCommitted(what),
            SaError::Corrupt(what) => Self::Corrupt(what),
            // A kind this version does not know yet: its text, as an internal error.
            other => Self::Database(other.to_string()),
        }
    }
}

/// The text of an error the SA process reported, as the source of [`SaError::Database`] or
/// [`SaError::Migrate`].
#[derive(Debug, thiserror::Error)]
#[error("storage authority: {0}")]
pub struct RemoteSaError(pub String);

impl WireError for SaError {
    type Wire = WireSaError;

    fn to_wire(self) -> WireSaError {
        WireSaError::from(self)
    }

    fn transport(method: &'static str, error: RpcError) -> Self {
        tracing::warn!(method, %error, "storage authority call failed");
        SaError::Database(Box::new(error))
    }

    fn from_wire(e: WireSaError) -> Self {
        match e {
            WireSaError::NotFound => Self::NotFound,
            WireSaError::Conflict(what) => Self::Conflict(intern(what)),
            WireSaError::Database(what) => Self::Database(Box::new(RemoteSaError(what))),
            WireSaError::Migrate(what) => Self::Migrate(Box::new(RemoteSaError(what))),
            WireSaError::NotCommitted(what) => Self::NotCommitted(what),
            WireSaError::Corrupt(what) => Self::Corrupt(what),
        }
    }
}

/// How many distinct conflict texts [`intern`] keeps.
const MAX_INTERNED: usize = 512;

/// [`SaError::Conflict`] carries a `&'static str`: the storage names each conflict with a
/// literal, so the texts a server sends are a small fixed set. Each distinct one is leaked once
/// and reused; past [`MAX_INTERNED`] (a server that is not Cairn's) the text is replaced by a
/// generic one, so memory stays bounded.
fn intern(what: String) -> &'static str {
    static SEEN: Mutex<BTreeSet<&'static str>> = Mutex::new(BTreeSet::new());
    let mut seen = SEEN
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(known) = seen.get(what.as_str()) {
        return known;
    }
    if seen.len() >= MAX_INTERNED {
        return "conflict reported by the storage authority";
    }
    let leaked: &'static str = Box::leak(what.into_boxed_str());
    seen.insert(leaked);
    leaked
}

/// A storage authority in another process.
#[derive(Debug, Clone)]
pub struct RemoteSa {
    client: RpcClient,
}

impl RemoteSa {
    /// A client of the SA at `config.url`.
    pub fn new(config: &RpcClientConfig) -> Result<Self, RpcError> {
        Ok(Self {
            client: RpcClient::new(SERVICE, config)?,
        })
    }
}

rpc_service! {
    /// The methods of `sa`.
    router: SERVICE, StorageAuthority => RemoteSa {}

    fn new_account(account: &Account => Account) -> Result<(), SaError>;
    fn get_account(id: &AccountId => AccountId) -> Result<Account, SaError>;
    fn get_account_by_key(thumbprint: &str => String) -> Result<Account, SaError>;
    fn update_account(account: &Account => Account) -> Result<(), SaError>;
    fn update_account_key(
        id: &AccountId => AccountId,
        jwk: &serde_json::Value => serde_json::Value,
        thumbprint: &str => String
    ) -> Result<(), SaError>;
    fn count_accounts_by_ip(ip: &str => String, since: OffsetDateTime => OffsetDateTime) -> Result<u64, SaError>;
    fn new_eab_key(key: &EabKey => EabKey) -> Result<(), SaError>;
    fn get_eab_key(key_id: &str => String) -> Result<EabKey, SaError>;
    fn get_identifier_policy(account: &AccountId => AccountId) -> Result<Option<AccountPolicy>, SaError>;
    fn set_account_identifier_policy(
        account: &AccountId => AccountId,
        policy: Option<&AccountPolicy> => Option<AccountPolicy>
    ) -> Result<(), SaError>;
    fn set_eab_identifier_policy(
        key_id: &str => String,
        policy: Option<&AccountPolicy> => Option<AccountPolicy>
    ) -> Result<(), SaError>;
    fn new_order_and_authzs(
        order: &Order => Order,
        new_authzs: &[Authorization] => Vec<Authorization>
    ) -> Result<(), SaError>;
    fn new_authzs(new_authzs: &[Authorization] => Vec<Authorization>) -> Result<(), SaError>;
    fn get_order(id: &OrderId => OrderId) -> Result<Order, SaError>;
    fn get_order_with_authz_states(id: &OrderId => OrderId) -> Result<(Order, Vec<AuthzState>), SaError>;
    fn get_order_ids_for_account(
        account: &AccountId => AccountId,
        offset: u64 => u64,
        limit: u64 => u64
    ) -> Result<Vec<OrderId>, SaError>;
    fn get_reusable_order(
        account: &AccountId => AccountId,
        identifiers: &[Identifier] => Vec<Identifier>,
        profile: Option<&str> => Option<String>,
        now: OffsetDateTime => OffsetDateTime
    ) -> Result<Option<Order>, SaError>;
    fn get_new_order_context(query: &NewOrderQuery => NewOrderQuery) -> Result<NewOrderContext, SaError>;
    fn get_order_with_authzs(id: &OrderId => OrderId) -> Result<(Order, Vec<Authorization>), SaError>;
    fn get_authorization(id: &AuthzId => AuthzId) -> Result<Authorization, SaError>;
    fn get_authorizations(ids: &[AuthzId] => Vec<AuthzId>) -> Result<Vec<Authorization>, SaError>;
    fn get_reusable_authz(
        account: &AccountId => AccountId,
        identifier: &Identifier => Identifier,
        wildcard: bool => bool,
        include_pending: bool => bool,
        expires_after: OffsetDateTime => OffsetDateTime
    ) -> Result<Option<Authorization>, SaError>;
    fn set_challenge_processing(
        authz: &AuthzId => AuthzId,
        chall: &ChallengeId => ChallengeId,
        lease: &Lease => Lease
    ) -> Result<bool, SaError>;
    fn get_stale_processing_challenges(
        now: OffsetDateTime => OffsetDateTime,
        limit: u64 => u64
    ) -> Result<Vec<(AuthzId, ChallengeId)>, SaError>;
    fn claim_processing_challenge(
        authz: &AuthzId => AuthzId,
        chall: &ChallengeId => ChallengeId,
        lease: &Lease => Lease,
        now: OffsetDateTime => OffsetDateTime
    ) -> Result<bool, SaError>;
    fn finish_challenge(outcome: &ChallengeOutcome => ChallengeOutcome) -> Result<(), SaError>;
    fn deactivate_authorization(id: &AuthzId => AuthzId) -> Result<bool, SaError>;
    fn deactivate_account_authorizations(account: &AccountId => AccountId) -> Result<u64, SaError>;
    fn set_order_processing(
        id: &OrderId => OrderId,
        csr_der: &[u8] => Vec<u8>,
        serial: &Serial => Serial,
        at: OffsetDateTime => OffsetDateTime,
        lease: &Lease => Lease
    ) -> Result<bool, SaError>;
    fn renew_order_lease(id: &OrderId => OrderId, lease: &Lease => Lease) -> Result<bool, SaError>;
    fn claim_processing_order(
        id: &OrderId => OrderId,
        lease: &Lease => Lease,
        now: OffsetDateTime => OffsetDateTime
    ) -> Result<bool, SaError>;
    fn reserve_serial(
        serial: &Serial => Serial,
        account: &AccountId => AccountId,
        order: &OrderId => OrderId,
        at: OffsetDateTime => OffsetDateTime
    ) -> Result<(), SaError>;
    fn add_precertificate(cert: &Certificate => Certificate) -> Result<(), SaError>;
    fn get_order_precertificate(order: &OrderId => OrderId) -> Result<Option<Certificate>, SaError>;
    fn finalize_order(cert: &Certificate => Certificate) -> Result<(), SaError>;
    fn fail_order(
        id: &OrderId => OrderId,
        owner: Option<&str> => Option<String>,
        error: &Problem => Problem
    ) -> Result<(), SaError>;
    fn get_stale_processing_orders(now: OffsetDateTime => OffsetDateTime) -> Result<Vec<Order>, SaError>;
    fn get_certificate(serial: &Serial => Serial) -> Result<Certificate, SaError>;
    fn get_issued(serial: &Serial => Serial) -> Result<Certificate, SaError>;
    fn revoke_certificate(serial: &Serial => Serial, revocation: &Revocation => Revocation) -> Result<(), SaError>;
    fn count_certificates_for_domain(
        registered_domain: &str => String,
        since: OffsetDateTime => OffsetDateTime
    ) -> Result<u64, SaError>;
    fn mark_for_renewal(
        selector: &RenewalSelector => RenewalSelector,
        at: OffsetDateTime => OffsetDateTime
    ) -> Result<u64, SaError>;
    fn mark_replaced(serial: &Serial => Serial, by: &OrderId => OrderId) -> Result<(), SaError>;
    fn reserve_replacement(
        serial: &Serial => Serial,
        expected: Option<&OrderId> => Option<OrderId>,
        by: &OrderId => OrderId
    ) -> Result<(), SaError>;
    fn get_certificates(
        selector: &CertificateSelector => CertificateSelector,
        now: OffsetDateTime => OffsetDateTime,
        include_revoked: bool => bool,
        limit: u64 => u64
    ) -> Result<Vec<Certificate>, SaError>;
    fn get_revoked_certificates(
        issuer_id: &str => String,
        not_after_after: OffsetDateTime => OffsetDateTime
    ) -> Result<Vec<RevokedCertificate>, SaError>;
    fn get_revocation_epoch() -> Result<i64, SaError>;
    fn put_crl(crl: &StoredCrl => StoredCrl) -> Result<(), SaError>;
    fn get_crl(issuer_id: &str => String, shard: u32 => u32) -> Result<StoredCrl, SaError>;
    fn get_crl_infos() -> Result<Vec<CrlInfo>, SaError>;
    fn block_key(key: &BlockedKey => BlockedKey) -> Result<(), SaError>;
    fn is_key_blocked(spki_sha256: &str => String) -> Result<bool, SaError>;
    fn is_jwk_blocked(thumbprint: &str => String) -> Result<bool, SaError>;
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn errors_keep_their_kind_across_the_wire() {
        let round = |e: SaError| -> SaError {
            let json = serde_json::to_string(&WireSaError::from(e)).unwrap();
            SaError::from_wire(serde_json::from_str::<WireSaError>(&json).unwrap())
        };
        assert!(matches!(round(SaError::NotFound), SaError::NotFound));
        assert!(matches!(
            round(SaError::Conflict("order is not pending")),
            SaError::Conflict("order is not pending")
        ));
        assert!(matches!(
            round(SaError::NotCommitted("closed".into())),
            SaError::NotCommitted(w) if w == "closed"
        ));
        let db = round(SaError::Database("disk full".into()));
        assert!(matches!(&db, SaError::Database(_)));
        assert!(db.to_string().contains("disk full"), "{db}");
    }

    #[test]
    fn conflict_texts_are_interned_once() {
        let a = intern("interned twice".to_owned());
        let b = intern("interned twice".to_owned());
        assert!(std::ptr::eq(a, b));
    }
}
