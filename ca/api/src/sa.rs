//! The storage authority's contract: [`StorageAuthority`], the only way the CA reads and writes
//! its database, with the rows it deals in and [`SaError`].
//!
//! Every multi-row change is one transaction, so a crash never leaves a half-written state (an
//! order `valid` without its certificate, an authorization without its challenges). Times are
//! stored as unix microseconds: an `OffsetDateTime` reads back in UTC, truncated to the
//! microsecond. Methods that look a row up return [`SaError::NotFound`] when it is missing; writes
//! that would duplicate a unique value, or whose compare-and-set precondition fails on an existing
//! row, return [`SaError::Conflict`] and change nothing.
//!
//! `cairn-sa` implements it on SQLite and PostgreSQL; `fake::MemoryStorage` (feature
//! `test-util`) in memory, with the same answers.

use async_trait::async_trait;
use cairn_core::{
    Account, AccountId, AccountPolicy, Authorization, AuthzId, AuthzStatus, Certificate, Challenge,
    ChallengeId, EabKey, Identifier, Order, OrderId, Problem, Revocation, Serial,
};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// A database driver's error, kept as the source of [`SaError::Database`] and
/// [`SaError::Migrate`] without this crate naming the driver.
pub type BackendError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Storage failures. Callers map `NotFound`/`Conflict` to client errors; everything else is
/// internal and must be logged, never shown to a client.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SaError {
    /// The row does not exist.
    #[error("not found")]
    NotFound,
    /// A uniqueness rule or a compare-and-set precondition failed.
    #[error("conflict: {0}")]
    Conflict(&'static str),
    /// The database failed; the driver's error is the source.
    #[error("database error: {0}")]
    Database(#[source] BackendError),
    /// Migrations failed; the migrator's error is the source.
    #[error("migration error: {0}")]
    Migrate(#[source] BackendError),
    /// A write was not committed: the group commit it was part of failed, or the storage was
    /// closed. Nothing of the write is stored.
    #[error("not committed: {0}")]
    NotCommitted(String),
    /// A stored JSON column did not decode.
    #[error("corrupt row: {0}")]
    Corrupt(String),
}

/// Result alias.
pub type SaResult<T> = Result<T, SaError>;

/// The outcome of validating one challenge, applied atomically to the authorization and the
/// challenge.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ChallengeOutcome {
    /// The authorization.
    pub authz_id: AuthzId,
    /// The challenge that was attempted.
    pub challenge: Challenge,
    /// The authorization's new status (`Valid` or `Invalid`).
    pub authz_status: AuthzStatus,
    /// The authorization's new expiry (a valid authorization lives for the reuse window).
    pub expires: OffsetDateTime,
}

/// A lease on `processing` work (a challenge being validated, an order being issued): who holds
/// it and until when. While it lasts no other instance takes the work over; once it has ended,
/// another instance may claim the work by compare-and-swap and redo it. The holder picks a
/// lease longer than the work can take, or renews it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    /// The instance holding it (unique per running process).
    pub owner: String,
    /// When it ends.
    pub until: OffsetDateTime,
}

/// An authorization's stored status and expiry, without the rest of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthzState {
    /// The stored status.
    pub status: AuthzStatus,
    /// When it expires.
    pub expires: OffsetDateTime,
}

impl AuthzState {
    /// The status a client should see at `now` ([`AuthzStatus::at`]).
    pub fn status_at(&self, now: OffsetDateTime) -> AuthzStatus {
        self.status.at(self.expires, now)
    }
}

/// What newOrder looks up before it writes ([`StorageAuthority::get_new_order_context`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewOrderQuery {
    /// The account ordering.
    pub account: AccountId,
    /// The order's identifiers (sorted, in the order's form: a wildcard keeps its `*.`).
    pub identifiers: Vec<Identifier>,
    /// The profile's name.
    pub profile: Option<String>,
    /// Now, for the reusable order's expiry.
    pub now: OffsetDateTime,
    /// Whether an existing order may serve this one (not for an ARI replacement).
    pub reuse_order: bool,
    /// A reusable authorization must expire after this.
    pub authz_expires_after: OffsetDateTime,
}

/// What [`StorageAuthority::get_new_order_context`] found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewOrderContext {
    /// The account's identifier policy.
    pub policy: Option<AccountPolicy>,
    /// A reusable order (when asked for) with its authorizations.
    pub order: Option<(Order, Vec<Authorization>)>,
    /// For each identifier of the query, in its order, a reusable valid or pending
    /// authorization.
    pub authzs: Vec<Option<Authorization>>,
}

/// An order whose authorization is missing is a corrupt database, not an order that is not
/// found.
fn missing_authz_is_corrupt(e: SaError, order: &OrderId) -> SaError {
    match e {
        SaError::NotFound => {
            SaError::Corrupt(format!("order {order}: an authorization is missing"))
        }
        other => other,
    }
}

/// The CA's storage interface.
#[async_trait]
pub trait StorageAuthority: Send + Sync + 'static {
    // ---- accounts ----

    /// Inserts a new account. `Conflict` if its key thumbprint is already registered.
    /// If `eab_key_id` is set, the EAB key is marked bound in the same transaction
    /// (`Conflict` if it was already bound, `NotFound` if it does not exist; either way no account
    /// is created).
    async fn new_account(&self, account: &Account) -> SaResult<()>;
    /// Gets an account by ID.
    async fn get_account(&self, id: &AccountId) -> SaResult<Account>;
    /// Gets an account by its key's RFC 7638 thumbprint.
    async fn get_account_by_key(&self, thumbprint: &str) -> SaResult<Account>;
    /// Replaces contact and status of a `valid` account. `NotFound` if the account does not
    /// exist, `Conflict` if it is no longer `valid` (deactivated, possibly by another instance
    /// while the caller held an older copy): a deactivation is final and never overwritten.
    async fn update_account(&self, account: &Account) -> SaResult<()>;
    /// Replaces the account key. `Conflict` if another account has the new key, `NotFound` if
    /// the account does not exist.
    async fn update_account_key(
        &self,
        id: &AccountId,
        jwk: &serde_json::Value,
        thumbprint: &str,
    ) -> SaResult<()>;
    /// Number of accounts created from `ip` since `since` (rate limiting).
    async fn count_accounts_by_ip(&self, ip: &str, since: OffsetDateTime) -> SaResult<u64>;

    // ---- external account binding ----

    /// Stores a new EAB key. `Conflict` if the key ID exists.
    async fn new_eab_key(&self, key: &EabKey) -> SaResult<()>;
    /// Gets an EAB key.
    async fn get_eab_key(&self, key_id: &str) -> SaResult<EabKey>;

    // ---- identifier policy (private PKI) ----

    /// The identifier policy that applies to `account`: its own, else that of the EAB key it
    /// was bound with, else `None` (unrestricted). `NotFound` if the account does not exist.
    async fn get_identifier_policy(&self, account: &AccountId) -> SaResult<Option<AccountPolicy>>;
    /// Sets (or with `None` removes) an account's own identifier policy. `NotFound` if the
    /// account does not exist.
    async fn set_account_identifier_policy(
        &self,
        account: &AccountId,
        policy: Option<&AccountPolicy>,
    ) -> SaResult<()>;
    /// Sets (or with `None` removes) an EAB key's identifier policy, which applies to the
    /// account bound with it. `NotFound` if the key does not exist.
    async fn set_eab_identifier_policy(
        &self,
        key_id: &str,
        policy: Option<&AccountPolicy>,
    ) -> SaResult<()>;

    // ---- orders and authorizations ----

    /// Inserts an order with the authorizations it newly created, in one transaction.
    /// `order.authz_ids` may also name existing (reused) authorizations. `Conflict` if an order,
    /// authorization or challenge ID already exists, `NotFound` if the account or a named
    /// authorization does not; on any error nothing is stored.
    async fn new_order_and_authzs(
        &self,
        order: &Order,
        new_authzs: &[Authorization],
    ) -> SaResult<()>;
    /// Inserts authorizations that belong to no order (RFC 8555 §7.4.1 pre-authorizations) with
    /// their challenges, in one transaction. `Conflict` if an authorization or challenge ID
    /// already exists, `NotFound` if the account does not; on any error nothing is stored.
    async fn new_authzs(&self, new_authzs: &[Authorization]) -> SaResult<()>;
    /// Gets an order.
    async fn get_order(&self, id: &OrderId) -> SaResult<Order>;
    /// Gets an order with the stored status and expiry of each of its authorizations, in the
    /// order of its `authz_ids`: what the order's status is computed from, in one read.
    async fn get_order_with_authz_states(&self, id: &OrderId)
    -> SaResult<(Order, Vec<AuthzState>)>;
    /// The account's order IDs, newest first, at most `limit` after skipping `offset`.
    async fn get_order_ids_for_account(
        &self,
        account: &AccountId,
        offset: u64,
        limit: u64,
    ) -> SaResult<Vec<OrderId>>;
    /// An order of `account` for exactly `identifiers` (sorted) and `profile` that is still
    /// pending or ready (stored status `Pending`) and not expired at `now` — for order reuse.
    /// The newest such order wins; `profile: None` matches only orders without a profile.
    async fn get_reusable_order(
        &self,
        account: &AccountId,
        identifiers: &[Identifier],
        profile: Option<&str>,
        now: OffsetDateTime,
    ) -> SaResult<Option<Order>>;
    /// Gets an authorization with its challenges.
    async fn get_authorization(&self, id: &AuthzId) -> SaResult<Authorization>;
    /// Gets several authorizations (in the order given; an ID may repeat). `NotFound` if any is
    /// missing.
    async fn get_authorizations(&self, ids: &[AuthzId]) -> SaResult<Vec<Authorization>>;
    /// The newest authorization of `account` for `identifier` (authz identifier form, with the
    /// wildcard flag) that is `Valid` (or, if `include_pending`, `Pending`) and expires after
    /// `expires_after` — for authorization reuse. A `Valid` one is preferred over a `Pending` one;
    /// among equals the most recently created wins. A `Pending` one with a `processing`
    /// challenge is reused only if that challenge's lease outlasts `expires_after` (callers pass
    /// a time at or after now), so one whose validation may be stuck never is.
    async fn get_reusable_authz(
        &self,
        account: &AccountId,
        identifier: &Identifier,
        wildcard: bool,
        include_pending: bool,
        expires_after: OffsetDateTime,
    ) -> SaResult<Option<Authorization>>;
    /// Everything newOrder reads before it writes, in one call (one round trip for a storage
    /// authority in another process): the account's identifier policy
    /// ([`Self::get_identifier_policy`]), a reusable order with its authorizations if
    /// `reuse_order` ([`Self::get_reusable_order`], [`Self::get_authorizations`]), and a
    /// reusable authorization for each identifier ([`Self::get_reusable_authz`], pending ones
    /// included).
    async fn get_new_order_context(&self, query: &NewOrderQuery) -> SaResult<NewOrderContext> {
        let policy = self.get_identifier_policy(&query.account).await?;
        let order = if query.reuse_order {
            match self
                .get_reusable_order(
                    &query.account,
                    &query.identifiers,
                    query.profile.as_deref(),
                    query.now,
                )
                .await?
            {
                Some(order) => {
                    let authzs = self
                        .get_authorizations(&order.authz_ids)
                        .await
                        .map_err(|e| missing_authz_is_corrupt(e, &order.id))?;
                    Some((order, authzs))
                }
                None => None,
            }
        } else {
            None
        };
        let mut authzs = Vec::with_capacity(query.identifiers.len());
        for id in &query.identifiers {
            authzs.push(
                self.get_reusable_authz(
                    &query.account,
                    &id.authz_identifier(),
                    id.is_wildcard(),
                    true,
                    query.authz_expires_after,
                )
                .await?,
            );
        }
        Ok(NewOrderContext {
            policy,
            order,
            authzs,
        })
    }
    /// An order and, while its stored status is `Pending`, its authorizations (none otherwise):
    /// what finalize checks, in one call.
    async fn get_order_with_authzs(&self, id: &OrderId) -> SaResult<(Order, Vec<Authorization>)> {
        let order = self.get_order(id).await?;
        let authzs = match order.status {
            cairn_core::OrderStatus::Pending => self
                .get_authorizations(&order.authz_ids)
                .await
                .map_err(|e| missing_authz_is_corrupt(e, id))?,
            _ => Vec::new(),
        };
        Ok((order, authzs))
    }
    /// Marks a challenge `processing` under `lease` if the authorization is pending and the
    /// challenge pending. Returns false (and changes nothing) otherwise.
    async fn set_challenge_processing(
        &self,
        authz: &AuthzId,
        chall: &ChallengeId,
        lease: &Lease,
    ) -> SaResult<bool>;
    /// Challenges `processing` (of a `Pending` authorization) whose lease has ended at `now`
    /// (or that have none), oldest lease first, at most `limit`: validations a crashed or stuck
    /// instance left behind.
    async fn get_stale_processing_challenges(
        &self,
        now: OffsetDateTime,
        limit: u64,
    ) -> SaResult<Vec<(AuthzId, ChallengeId)>>;
    /// Compare-and-swap: takes over a `processing` challenge (of a `Pending` authorization)
    /// under `lease` only if its lease has ended at `now` (or it has none). Returns false (and
    /// changes nothing) otherwise, e.g. when another instance claimed it first.
    async fn claim_processing_challenge(
        &self,
        authz: &AuthzId,
        chall: &ChallengeId,
        lease: &Lease,
        now: OffsetDateTime,
    ) -> SaResult<bool>;
    /// Records a validation outcome: the challenge and the authorization change together.
    /// `NotFound` if the challenge is not one of the authorization's; `Conflict` (nothing
    /// changes) if the challenge already finished or the authorization is no longer `Pending`.
    async fn finish_challenge(&self, outcome: &ChallengeOutcome) -> SaResult<()>;
    /// Sets an authorization's status to `Deactivated` if it is pending or valid.
    async fn deactivate_authorization(&self, id: &AuthzId) -> SaResult<bool>;
    /// Sets all of an account's pending or valid authorizations to `Deactivated`.
    async fn deactivate_account_authorizations(&self, account: &AccountId) -> SaResult<u64>;

    // ---- finalize and certificates ----

    /// Compare-and-set: moves the order from stored `Pending` to `Processing`, stores the CSR and
    /// reserves `serial` for the order (as [`reserve_serial`](Self::reserve_serial) would), all in
    /// one write. Returns false (and changes nothing, reserves nothing) if the order was not
    /// `Pending`; `Conflict` if the serial was reserved before.
    /// The order is held under `lease`: no other instance resumes it while the lease lasts.
    async fn set_order_processing(
        &self,
        id: &OrderId,
        csr_der: &[u8],
        serial: &Serial,
        at: OffsetDateTime,
        lease: &Lease,
    ) -> SaResult<bool>;
    /// Compare-and-swap: extends the lease on a `processing` order to `lease.until`, only if
    /// `lease.owner` still holds it (its lease may have ended, as long as no one claimed the
    /// order since). Returns false (and changes nothing) if the order is not `processing` or
    /// another owner holds it: the caller must then stop issuing for it.
    async fn renew_order_lease(&self, id: &OrderId, lease: &Lease) -> SaResult<bool>;
    /// Compare-and-swap: takes over a `processing` order under `lease` only if its lease has
    /// ended at `now` (or it has none). Returns false (and changes nothing) otherwise, e.g.
    /// when its issuing instance still holds it or another instance claimed it first.
    async fn claim_processing_order(
        &self,
        id: &OrderId,
        lease: &Lease,
        now: OffsetDateTime,
    ) -> SaResult<bool>;
    /// Records a reserved serial before signing (so every signed serial is traceable to an
    /// order even if the process dies before the certificate is stored). `Conflict` if the serial
    /// was reserved before, `NotFound` if the account or order does not exist.
    async fn reserve_serial(
        &self,
        serial: &Serial,
        account: &AccountId,
        order: &OrderId,
        at: OffsetDateTime,
    ) -> SaResult<()>;
    /// Records a signed precertificate (`cert.der` is the precertificate) before it is shown to
    /// anyone (a CT log): from then on its serial is issued for OCSP, CRLs and revocation,
    /// although [`get_certificate`](Self::get_certificate) does not return it. `Conflict` if the
    /// order is not `Processing` or the serial is already stored, `NotFound` if the order does
    /// not exist.
    async fn add_precertificate(&self, cert: &Certificate) -> SaResult<()>;
    /// The newest precertificate of an order whose final certificate is not stored (for resuming
    /// issuance with the same serial), if any.
    async fn get_order_precertificate(&self, order: &OrderId) -> SaResult<Option<Certificate>>;
    /// In one transaction: stores the certificate and moves its order from `Processing` to `Valid`
    /// with `certificate_serial` set. If the serial's precertificate is stored (for the same
    /// order), the final certificate replaces it and keeps its revocation, if any. `Conflict` if the order was not `Processing` or the serial is
    /// already stored, `NotFound` if the order does not exist; on any error nothing is stored.
    async fn finalize_order(&self, cert: &Certificate) -> SaResult<()>;
    /// Moves an order from `Processing` to `Invalid` with `error`. With `owner`, only while that
    /// instance holds the order's lease (an instance that lost it must not fail an order another
    /// is issuing). `Conflict` if the order was not `Processing` (or its lease is another's),
    /// `NotFound` if it does not exist.
    async fn fail_order(&self, id: &OrderId, owner: Option<&str>, error: &Problem) -> SaResult<()>;
    /// Orders in `Processing` whose lease has ended at `now` (or that have none), oldest first:
    /// issuance a crashed or stuck instance left behind, to be claimed with
    /// [`claim_processing_order`](Self::claim_processing_order) before resuming.
    async fn get_stale_processing_orders(&self, now: OffsetDateTime) -> SaResult<Vec<Order>>;
    /// Gets a certificate by serial (not a precertificate whose final certificate is missing).
    async fn get_certificate(&self, serial: &Serial) -> SaResult<Certificate>;
    /// Gets what was issued under a serial: the certificate, or else the precertificate stored
    /// by [`add_precertificate`](Self::add_precertificate) (`der` is then the precertificate's).
    /// For revocation status: every serial a CT log may have seen is known here.
    async fn get_issued(&self, serial: &Serial) -> SaResult<Certificate>;
    /// Marks a certificate revoked. `Conflict` if already revoked, `NotFound` if unknown.
    async fn revoke_certificate(&self, serial: &Serial, revocation: &Revocation) -> SaResult<()>;
    /// Number of certificates with a DNS name equal to `registered_domain` or ending in
    /// `.` + `registered_domain` (case-insensitive; wildcards count for their base), whose
    /// `notBefore` is at or after `since` (rate limiting).
    async fn count_certificates_for_domain(
        &self,
        registered_domain: &str,
        since: OffsetDateTime,
    ) -> SaResult<u64>;

    // ---- renewal information (RFC 9773) ----

    /// Marks certificates for early renewal as of `at` (their ARI window moves to the past).
    /// Returns how many were marked.
    async fn mark_for_renewal(
        &self,
        selector: &RenewalSelector,
        at: OffsetDateTime,
    ) -> SaResult<u64>;
    /// Records that `by`'s certificate replaced `serial`. `Conflict` if it was already replaced.
    async fn mark_replaced(&self, serial: &Serial, by: &OrderId) -> SaResult<()>;
    /// Reserves `serial` for the replacement order `by` (RFC 9773 `replaces`, at newOrder),
    /// by compare-and-swap: only if the certificate is marked replaced by `expected` now (`None`:
    /// by nobody). `Conflict` otherwise, `NotFound` if there is no such certificate.
    async fn reserve_replacement(
        &self,
        serial: &Serial,
        expected: Option<&OrderId>,
        by: &OrderId,
    ) -> SaResult<()>;

    // ---- revocation status ----

    /// Certificates an operator selects (for `cairn admin revoke`), unrevoked and unexpired at
    /// `now` unless `include_revoked`, oldest first, at most `limit`.
    async fn get_certificates(
        &self,
        selector: &CertificateSelector,
        now: OffsetDateTime,
        include_revoked: bool,
        limit: u64,
    ) -> SaResult<Vec<Certificate>>;
    /// Every revoked certificate of `issuer_id` whose notAfter is after `not_after_after`: the
    /// entries of the issuer's CRLs, in serial order.
    async fn get_revoked_certificates(
        &self,
        issuer_id: &str,
        not_after_after: OffsetDateTime,
    ) -> SaResult<Vec<RevokedCertificate>>;
    /// A number that every revocation increases (in the same transaction), so that a CRL
    /// updater can tell cheaply whether anything was revoked since it last looked.
    async fn get_revocation_epoch(&self) -> SaResult<i64>;
    /// Stores a signed CRL, replacing the previous one of its issuer and shard. `Conflict` (and
    /// nothing changes) unless its number is greater than the stored one's.
    async fn put_crl(&self, crl: &StoredCrl) -> SaResult<()>;
    /// Gets the stored CRL of an issuer's shard.
    async fn get_crl(&self, issuer_id: &str, shard: u32) -> SaResult<StoredCrl>;
    /// Every stored CRL's metadata (no DER), by issuer and shard.
    async fn get_crl_infos(&self) -> SaResult<Vec<CrlInfo>>;
    /// Blocks a key (keyCompromise): certificates and accounts with it are refused from now
    /// on. Blocking a blocked key again changes nothing and succeeds.
    async fn block_key(&self, key: &BlockedKey) -> SaResult<()>;
    /// Whether a key (SPKI SHA-256, lowercase hex) is blocked.
    async fn is_key_blocked(&self, spki_sha256: &str) -> SaResult<bool>;
    /// Whether a key, given by its RFC 7638 JWK thumbprint (an account key), is blocked.
    async fn is_jwk_blocked(&self, thumbprint: &str) -> SaResult<bool>;
}

/// Which certificates an operator selects for revocation. Not `non_exhaustive`: every storage
/// must answer every selector, so a new one should fail to compile in each until it does.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum CertificateSelector {
    /// Every certificate of an account.
    Account(AccountId),
    /// Every certificate for a key (SPKI SHA-256, lowercase hex).
    SpkiSha256(String),
    /// Every certificate naming this identifier (exactly; a wildcard `*.example.com` only as
    /// itself).
    Identifier(Identifier),
}

/// A revoked certificate, as a CRL entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevokedCertificate {
    /// Serial.
    pub serial: Serial,
    /// Its CRL shard.
    pub crl_shard: u32,
    /// When and why.
    pub revocation: Revocation,
}

/// What is known about a stored CRL without its bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CrlInfo {
    /// The issuer ID.
    pub issuer_id: String,
    /// The shard.
    pub shard: u32,
    /// The cRLNumber.
    pub number: u64,
    /// thisUpdate.
    pub this_update: OffsetDateTime,
    /// nextUpdate.
    pub next_update: OffsetDateTime,
    /// Number of entries.
    pub entries: u64,
}

/// A signed CRL as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredCrl {
    /// Metadata.
    pub info: CrlInfo,
    /// The CRL, DER.
    #[serde(with = "cairn_core::base64_bytes")]
    pub der: Vec<u8>,
}

/// A blocked key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockedKey {
    /// SPKI SHA-256, lowercase hex.
    pub spki_sha256: String,
    /// The RFC 7638 thumbprint of the same key as a JWK (refuses it as an account key), when
    /// the key type has one.
    pub jwk_thumbprint: Option<String>,
    /// When it was blocked.
    pub blocked_at: OffsetDateTime,
    /// Why (e.g. "keyCompromise revocation of serial …"); never shown to clients.
    pub comment: String,
}

/// Which certificates an operator marks for early renewal (exhaustive, as
/// [`CertificateSelector`]).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum RenewalSelector {
    /// One certificate.
    Serial(Serial),
    /// Every certificate of an account.
    Account(AccountId),
    /// Every certificate signed by an issuer (its issuer ID).
    Issuer(String),
    /// Every certificate whose notBefore is in `[from, to)`.
    IssuedBetween(OffsetDateTime, OffsetDateTime),
}

// ---- public statistics ----

/// What the public statistics page shows from storage, read from counters the storage keeps up
/// to date at issuance and revocation (never a scan of the certificates).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct IssuanceStats {
    /// Certificates not yet expired and not revoked, to the hour: a certificate counts until the
    /// end of the hour in which it expires.
    pub active_certificates: u64,
    /// Registered domains (public suffix + one label) named by a certificate not yet expired, to
    /// the hour as `active_certificates`. Revocation does not remove a domain.
    pub active_domains: u64,
    /// Certificates issued per UTC day (of their notBefore) from the `since` day asked for,
    /// oldest first; days without issuance are left out.
    pub daily_issuance: Vec<(time::Date, u64)>,
}

/// One endpoint's service-level-indicator events over some days, as the public statistics page
/// keeps them: the requests that were not the client's mistake (`valid`: any answer but a 4xx)
/// and, of those, the ones the service got wrong (`errors`: a 5xx).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SliCount {
    /// The listener's name, as in the `listener` label of `cairn_http_requests_total`.
    pub listener: String,
    /// The route template (`/acme/order/{id}`), as in the `endpoint` label.
    pub endpoint: String,
    /// Requests answered with anything but a 4xx.
    pub valid: u64,
    /// Requests answered with a 5xx.
    pub errors: u64,
}

/// A CT log's tree size as recorded on one UTC day (the largest seen that day).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CtLogSize {
    /// The UTC day.
    pub day: time::Date,
    /// The log's name.
    pub log: String,
    /// Its tree size.
    pub tree_size: u64,
}

/// The storage behind the public statistics page (`/stats`): counters kept at issuance and
/// revocation time, read cheaply, and rebuilt from the certificates when they can't be trusted.
/// Separate from [`StorageAuthority`] so the components that never show statistics don't carry it.
#[async_trait]
pub trait StatsStorage: Send + Sync + 'static {
    /// The counters at `now`, with daily issuance from day `since` on.
    async fn get_issuance_stats(
        &self,
        now: OffsetDateTime,
        since: time::Date,
    ) -> SaResult<IssuanceStats>;
    /// Rebuilds every counter from the certificates table (one transaction; it reads every
    /// certificate, so it runs on start-up when the counters were never built, or by an
    /// operator), and records that it ran.
    async fn recompute_stats(&self, now: OffsetDateTime) -> SaResult<()>;
    /// Whether the counters were ever built ([`StatsStorage::recompute_stats`]).
    async fn stats_recomputed(&self) -> SaResult<bool>;
    /// Drops the counters that can no longer count (expiry hours and domains in the past);
    /// returns how many rows it dropped.
    async fn prune_stats(&self, now: OffsetDateTime) -> SaResult<u64>;
    /// Adds `counts` (events since the last call, from one process) to day `day`'s totals.
    async fn add_sli_counts(&self, day: time::Date, counts: &[SliCount]) -> SaResult<()>;
    /// The SLI events per listener and endpoint summed over the days from `since` on, and the
    /// first of those days that has any (none when there are none).
    async fn get_sli_counts(
        &self,
        since: time::Date,
    ) -> SaResult<(Vec<SliCount>, Option<time::Date>)>;
    /// Records that log `log` had `tree_size` entries on day `day` (a day keeps its largest).
    async fn put_ct_log_size(&self, day: time::Date, log: &str, tree_size: u64) -> SaResult<()>;
    /// The recorded sizes from day `since` on, by log then day.
    async fn get_ct_log_sizes(&self, since: time::Date) -> SaResult<Vec<CtLogSize>>;
}
