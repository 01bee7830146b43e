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
use crate::server::RpcRouter;
use async_trait::async_trait;
use cairn_api::sa::{
    AuthzState, BlockedKey, CertificateSelector, ChallengeOutcome, CrlInfo, Lease,
    RenewalSelector, RevokedCertificate, SaError, SaResult, StorageAuthority, StoredCrl,
};
use cairn_core::{
    Account, AccountId, AccountPolicy, Authorization, AuthzId, Certificate, ChallengeId, EabKey,
    Identifier, Order, OrderId, Problem, Revocation, Serial,
};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
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

impl From<WireSaError> for SaError {
    fn from(e: WireSaError) -> Self {
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
    let mut seen = SEEN.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
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

/// Lends a decoded (owned) argument to the trait method in the form its signature takes
/// (`&T`, `&str`, `&[T]`, `Option<&T>`, or the value itself for `Copy` arguments); the
/// expected type picks the impl.
trait Lend<'a, T> {
    fn lend(&'a self) -> T;
}

impl<'a, T> Lend<'a, &'a T> for T {
    fn lend(&'a self) -> &'a T {
        self
    }
}

impl<'a> Lend<'a, &'a str> for String {
    fn lend(&'a self) -> &'a str {
        self
    }
}

impl<'a, T> Lend<'a, &'a [T]> for Vec<T> {
    fn lend(&'a self) -> &'a [T] {
        self
    }
}

impl<'a, T> Lend<'a, Option<&'a T>> for Option<T> {
    fn lend(&'a self) -> Option<&'a T> {
        self.as_ref()
    }
}

impl<'a> Lend<'a, Option<&'a str>> for Option<String> {
    fn lend(&'a self) -> Option<&'a str> {
        self.as_deref()
    }
}

macro_rules! copy_lend {
    ($($t:ty),*) => {$(
        impl<'a> Lend<'a, $t> for $t {
            fn lend(&'a self) -> $t {
                *self
            }
        }
    )*};
}
copy_lend!(u32, u64, bool, OffsetDateTime);

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

    async fn call<Resp>(&self, method: &'static str, args: serde_json::Value) -> SaResult<Resp>
    where
        Resp: serde::de::DeserializeOwned + Send + Sync + 'static,
    {
        match self
            .client
            .call::<_, Result<Resp, WireSaError>>(method, args)
            .await
        {
            Ok(result) => result.map_err(SaError::from),
            Err(e) => {
                tracing::warn!(method, error = %e, "storage authority call failed");
                Err(SaError::Database(Box::new(e)))
            }
        }
    }
}

/// One line per trait method: `name(arg: borrowed type => wire type, ...) -> result;`. Makes the
/// server's routes ([`router`]) and the client's trait implementation ([`RemoteSa`]) from the
/// same list, so the two cannot disagree on a method's name or arguments.
macro_rules! storage_rpc {
    ($( $method:ident ( $( $arg:ident : $borrowed:ty => $owned:ty ),* ) -> $ret:ty ; )*) => {
        /// The methods of `sa`.
        pub fn router(sa: Arc<dyn StorageAuthority>) -> RpcRouter {
            let router = RpcRouter::new(SERVICE);
            $(
                let router = {
                    let sa = sa.clone();
                    router.unary(
                        stringify!($method),
                        move |( $( $arg, )* ): ( $( $owned, )* )| {
                            let sa = sa.clone();
                            async move {
                                sa.$method($( $arg.lend() ),*)
                                    .await
                                    .map_err(WireSaError::from)
                            }
                        },
                    )
                };
            )*
            router
        }

        #[async_trait]
        impl StorageAuthority for RemoteSa {
            $(
                async fn $method(&self, $( $arg: $borrowed ),*) -> SaResult<$ret> {
                    let args = serde_json::to_value(( $( &$arg, )* ))
                        .map_err(|e| SaError::Database(Box::new(e)))?;
                    self.call(stringify!($method), args).await
                }
            )*
        }
    };
}

storage_rpc! {
    new_account(account: &Account => Account) -> ();
    get_account(id: &AccountId => AccountId) -> Account;
    get_account_by_key(thumbprint: &str => String) -> Account;
    update_account(account: &Account => Account) -> ();
    update_account_key(
        id: &AccountId => AccountId,
        jwk: &serde_json::Value => serde_json::Value,
        thumbprint: &str => String
    ) -> ();
    count_accounts_by_ip(ip: &str => String, since: OffsetDateTime => OffsetDateTime) -> u64;
    new_eab_key(key: &EabKey => EabKey) -> ();
    get_eab_key(key_id: &str => String) -> EabKey;
    get_identifier_policy(account: &AccountId => AccountId) -> Option<AccountPolicy>;
    set_account_identifier_policy(
        account: &AccountId => AccountId,
        policy: Option<&AccountPolicy> => Option<AccountPolicy>
    ) -> ();
    set_eab_identifier_policy(
        key_id: &str => String,
        policy: Option<&AccountPolicy> => Option<AccountPolicy>
    ) -> ();
    new_order_and_authzs(
        order: &Order => Order,
        new_authzs: &[Authorization] => Vec<Authorization>
    ) -> ();
    new_authzs(new_authzs: &[Authorization] => Vec<Authorization>) -> ();
    get_order(id: &OrderId => OrderId) -> Order;
    get_order_with_authz_states(id: &OrderId => OrderId) -> (Order, Vec<AuthzState>);
    get_order_ids_for_account(
        account: &AccountId => AccountId,
        offset: u64 => u64,
        limit: u64 => u64
    ) -> Vec<OrderId>;
    get_reusable_order(
        account: &AccountId => AccountId,
        identifiers: &[Identifier] => Vec<Identifier>,
        profile: Option<&str> => Option<String>,
        now: OffsetDateTime => OffsetDateTime
    ) -> Option<Order>;
    get_authorization(id: &AuthzId => AuthzId) -> Authorization;
    get_authorizations(ids: &[AuthzId] => Vec<AuthzId>) -> Vec<Authorization>;
    get_reusable_authz(
        account: &AccountId => AccountId,
        identifier: &Identifier => Identifier,
        wildcard: bool => bool,
        include_pending: bool => bool,
        expires_after: OffsetDateTime => OffsetDateTime
    ) -> Option<Authorization>;
    set_challenge_processing(
        authz: &AuthzId => AuthzId,
        chall: &ChallengeId => ChallengeId,
        lease: &Lease => Lease
    ) -> bool;
    get_stale_processing_challenges(
        now: OffsetDateTime => OffsetDateTime,
        limit: u64 => u64
    ) -> Vec<(AuthzId, ChallengeId)>;
    claim_processing_challenge(
        authz: &AuthzId => AuthzId,
        chall: &ChallengeId => ChallengeId,
        lease: &Lease => Lease,
        now: OffsetDateTime => OffsetDateTime
    ) -> bool;
    finish_challenge(outcome: &ChallengeOutcome => ChallengeOutcome) -> ();
    deactivate_authorization(id: &AuthzId => AuthzId) -> bool;
    deactivate_account_authorizations(account: &AccountId => AccountId) -> u64;
    set_order_processing(
        id: &OrderId => OrderId,
        csr_der: &[u8] => Vec<u8>,
        serial: &Serial => Serial,
        at: OffsetDateTime => OffsetDateTime,
        lease: &Lease => Lease
    ) -> bool;
    renew_order_lease(id: &OrderId => OrderId, lease: &Lease => Lease) -> bool;
    claim_processing_order(
        id: &OrderId => OrderId,
        lease: &Lease => Lease,
        now: OffsetDateTime => OffsetDateTime
    ) -> bool;
    reserve_serial(
        serial: &Serial => Serial,
        account: &AccountId => AccountId,
        order: &OrderId => OrderId,
        at: OffsetDateTime => OffsetDateTime
    ) -> ();
    add_precertificate(cert: &Certificate => Certificate) -> ();
    get_order_precertificate(order: &OrderId => OrderId) -> Option<Certificate>;
    finalize_order(cert: &Certificate => Certificate) -> ();
    fail_order(
        id: &OrderId => OrderId,
        owner: Option<&str> => Option<String>,
        error: &Problem => Problem
    ) -> ();
    get_stale_processing_orders(now: OffsetDateTime => OffsetDateTime) -> Vec<Order>;
    get_certificate(serial: &Serial => Serial) -> Certificate;
    get_issued(serial: &Serial => Serial) -> Certificate;
    revoke_certificate(serial: &Serial => Serial, revocation: &Revocation => Revocation) -> ();
    count_certificates_for_domain(
        registered_domain: &str => String,
        since: OffsetDateTime => OffsetDateTime
    ) -> u64;
    mark_for_renewal(
        selector: &RenewalSelector => RenewalSelector,
        at: OffsetDateTime => OffsetDateTime
    ) -> u64;
    mark_replaced(serial: &Serial => Serial, by: &OrderId => OrderId) -> ();
    reserve_replacement(
        serial: &Serial => Serial,
        expected: Option<&OrderId> => Option<OrderId>,
        by: &OrderId => OrderId
    ) -> ();
    get_certificates(
        selector: &CertificateSelector => CertificateSelector,
        now: OffsetDateTime => OffsetDateTime,
        include_revoked: bool => bool,
        limit: u64 => u64
    ) -> Vec<Certificate>;
    get_revoked_certificates(
        issuer_id: &str => String,
        not_after_after: OffsetDateTime => OffsetDateTime
    ) -> Vec<RevokedCertificate>;
    get_revocation_epoch() -> i64;
    put_crl(crl: &StoredCrl => StoredCrl) -> ();
    get_crl(issuer_id: &str => String, shard: u32 => u32) -> StoredCrl;
    get_crl_infos() -> Vec<CrlInfo>;
    block_key(key: &BlockedKey => BlockedKey) -> ();
    is_key_blocked(spki_sha256: &str => String) -> bool;
    is_jwk_blocked(thumbprint: &str => String) -> bool;
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn errors_keep_their_kind_across_the_wire() {
        let round = |e: SaError| -> SaError {
            let json = serde_json::to_string(&WireSaError::from(e)).unwrap();
            serde_json::from_str::<WireSaError>(&json).unwrap().into()
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
