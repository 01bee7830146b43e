//! [`MemoryStorage`]: the [`StorageAuthority`] in memory, answering as the SQL one does.
//!
//! Every rule of the contract holds here too: `NotFound` for missing rows (and for writes that
//! name a missing row, where the SQL schema has a foreign key), `Conflict` with the same reason
//! for a duplicate unique value or a failed compare-and-set, and nothing changed by a write that
//! fails. Times read back truncated to the microsecond in UTC, and JSON-stored values (problems,
//! validation records) read back through JSON, so a value that does not survive the database
//! does not survive here either. `cairn-sa`'s storage suite runs against this and the SQL
//! backends alike, which is what keeps the two from drifting apart.
//!
//! Each call takes one lock for its whole duration: a write checks everything it needs before it
//! changes anything, which makes it as atomic as a transaction.

use crate::sa::{
    AuthzState, BlockedKey, CertificateSelector, ChallengeOutcome, CrlInfo, Lease, RenewalSelector,
    RevokedCertificate, SaError, SaResult, StorageAuthority, StoredCrl,
};
use async_trait::async_trait;
use cairn_core::{
    Account, AccountId, AccountPolicy, AccountStatus, Authorization, AuthzId, AuthzStatus,
    Certificate, ChallengeId, ChallengeStatus, EabKey, Identifier, IdentifierType, Order, OrderId,
    OrderStatus, Problem, Revocation, Serial,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};
use time::OffsetDateTime;

/// The storage authority in memory. Cloning shares the data.
#[derive(Debug, Clone, Default)]
pub struct MemoryStorage {
    state: Arc<Mutex<State>>,
}

#[derive(Debug, Default)]
struct State {
    accounts: BTreeMap<AccountId, Account>,
    eab_keys: BTreeMap<String, EabKey>,
    /// Identifier policies of accounts and of EAB keys.
    account_policies: BTreeMap<AccountId, AccountPolicy>,
    eab_policies: BTreeMap<String, AccountPolicy>,
    orders: BTreeMap<OrderId, Order>,
    authzs: BTreeMap<AuthzId, Authorization>,
    /// Every challenge ID, with its authorization (challenge IDs are unique across
    /// authorizations).
    challenges: BTreeMap<ChallengeId, AuthzId>,
    /// Reserved serials: the account and order each was reserved for.
    serials: BTreeMap<Serial, (AccountId, OrderId)>,
    /// Certificates, and precertificates whose final certificate is not stored yet.
    certificates: BTreeMap<Serial, Certificate>,
    /// The serials in `certificates` that are precertificates.
    precertificates: BTreeSet<Serial>,
    revocation_epoch: i64,
    crls: BTreeMap<(String, u32), StoredCrl>,
    blocked_keys: BTreeMap<String, BlockedKey>,
    /// Leases of `processing` challenges (owner, end in microseconds).
    challenge_leases: BTreeMap<ChallengeId, (String, i64)>,
    /// Leases of `processing` orders (owner, end in microseconds).
    order_leases: BTreeMap<OrderId, (String, i64)>,
    /// How many of the next `finish_challenge` calls fail as a database outage would.
    failing_finish_challenge: u32,
    /// Calls of `renew_order_lease`.
    order_lease_renewals: u64,
}

/// A database outage injected by a test.
#[derive(Debug, thiserror::Error)]
#[error("injected database failure")]
struct InjectedFailure;

impl State {
    /// Whether `lease` (absent: none was ever taken) has ended at `now` (microseconds).
    fn lease_ended(lease: Option<&(String, i64)>, now: i64) -> bool {
        lease.is_none_or(|(_, until)| *until <= now)
    }

    /// Whether a pending authorization has a `processing` challenge whose lease ends at or
    /// before `at` (microseconds).
    fn has_stale_challenge(&self, a: &Authorization, at: i64) -> bool {
        a.challenges.iter().any(|c| {
            c.status == ChallengeStatus::Processing
                && Self::lease_ended(self.challenge_leases.get(&c.id), at)
        })
    }
}

impl MemoryStorage {
    /// Empty storage.
    pub fn new() -> MemoryStorage {
        MemoryStorage::default()
    }

    /// Makes the next `count` calls of
    /// [`finish_challenge`](StorageAuthority::finish_challenge) fail with
    /// [`SaError::Database`] and change nothing, as a database outage would.
    pub fn fail_finish_challenge(&self, count: u32) {
        self.lock().failing_finish_challenge = count;
    }

    /// How many times [`renew_order_lease`](StorageAuthority::renew_order_lease) was called.
    pub fn order_lease_renewals(&self) -> u64 {
        self.lock().order_lease_renewals
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A write naming a row that does not exist where the SQL schema has a foreign key the driver
/// reports as such, not as `NotFound` (e.g. `replaced_by` naming an unknown order).
#[derive(Debug, thiserror::Error)]
#[error("foreign key violation: {0}")]
struct ForeignKeyViolation(&'static str);

// ---- values as they read back ----

/// Unix microseconds, as the SQL storage compares and keeps times.
fn us(t: OffsetDateTime) -> i64 {
    let us = t.unix_timestamp_nanos().div_euclid(1000);
    i64::try_from(us).unwrap_or(if us < 0 { i64::MIN } else { i64::MAX })
}

/// `t` as it reads back: UTC, truncated to the microsecond.
fn stored(t: OffsetDateTime) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(us(t)) * 1000).unwrap_or(t)
}

fn stored_opt(t: Option<OffsetDateTime>) -> Option<OffsetDateTime> {
    t.map(stored)
}

/// A value as it reads back from a JSON column.
fn through_json<T: Serialize + DeserializeOwned>(v: &T) -> SaResult<T> {
    let text =
        serde_json::to_string(v).map_err(|e| SaError::Corrupt(format!("encoding JSON: {e}")))?;
    serde_json::from_str(&text).map_err(|e| SaError::Corrupt(format!("decoding JSON: {e}")))
}

fn stored_problem(p: &Option<Problem>) -> SaResult<Option<Problem>> {
    p.as_ref().map(through_json).transpose()
}

fn stored_account(a: &Account) -> SaResult<Account> {
    Ok(Account {
        jwk: through_json(&a.jwk)?,
        created_at: stored(a.created_at),
        ..a.clone()
    })
}

fn stored_authz(a: &Authorization) -> SaResult<Authorization> {
    let mut a = a.clone();
    a.expires = stored(a.expires);
    a.created_at = stored(a.created_at);
    for c in &mut a.challenges {
        c.validated = stored_opt(c.validated);
        c.error = stored_problem(&c.error)?;
        c.validation_record = through_json(&c.validation_record)?;
    }
    Ok(a)
}

fn stored_order(o: &Order) -> SaResult<Order> {
    Ok(Order {
        identifiers: through_json(&o.identifiers)?,
        expires: stored(o.expires),
        not_before: stored_opt(o.not_before),
        not_after: stored_opt(o.not_after),
        error: stored_problem(&o.error)?,
        created_at: stored(o.created_at),
        ..o.clone()
    })
}

fn stored_revocation(r: &Revocation) -> Revocation {
    Revocation {
        revoked_at: stored(r.revoked_at),
        reason: r.reason,
    }
}

fn stored_certificate(c: &Certificate) -> SaResult<Certificate> {
    Ok(Certificate {
        identifiers: through_json(&c.identifiers)?,
        not_before: stored(c.not_before),
        not_after: stored(c.not_after),
        revocation: c.revocation.as_ref().map(stored_revocation),
        renew_by: stored_opt(c.renew_by),
        ..c.clone()
    })
}

fn stored_crl_info(i: &CrlInfo) -> CrlInfo {
    CrlInfo {
        this_update: stored(i.this_update),
        next_update: stored(i.next_update),
        ..i.clone()
    }
}

/// The order-reuse key: the identifiers, sorted and deduplicated.
fn identifiers_key(identifiers: &[Identifier]) -> Vec<Identifier> {
    let set: BTreeSet<Identifier> = identifiers.iter().cloned().collect();
    set.into_iter().collect()
}

/// A DNS name with its labels reversed and lowercased: `www.Example.com` → `com.example.www`.
fn reversed_name(name: &str) -> String {
    let lower = name.trim_end_matches('.').to_ascii_lowercase();
    lower.split('.').rev().collect::<Vec<_>>().join(".")
}

/// The reversed DNS names a certificate is indexed under.
fn certificate_names(c: &Certificate) -> BTreeSet<String> {
    c.identifiers
        .iter()
        .filter(|i| i.typ == IdentifierType::Dns)
        .map(|i| reversed_name(&i.value))
        .collect()
}

/// `Conflict(what)` if the row exists (the precondition failed), else `NotFound`.
fn precondition_failed(exists: bool, what: &'static str) -> SaError {
    if exists {
        SaError::Conflict(what)
    } else {
        SaError::NotFound
    }
}

fn window<T>(items: Vec<T>, offset: u64, limit: u64) -> Vec<T> {
    let offset = usize::try_from(offset).unwrap_or(usize::MAX);
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    items.into_iter().skip(offset).take(limit).collect()
}

impl State {
    fn account_by_key(&self, thumbprint: &str) -> Option<&Account> {
        self.accounts
            .values()
            .find(|a| a.key_thumbprint == thumbprint)
    }

    fn authzs_in_order(&self, ids: &[AuthzId]) -> SaResult<Vec<Authorization>> {
        ids.iter()
            .map(|id| self.authzs.get(id).cloned().ok_or(SaError::NotFound))
            .collect()
    }
}

#[async_trait]
impl StorageAuthority for MemoryStorage {
    // ---- accounts ----

    async fn new_account(&self, account: &Account) -> SaResult<()> {
        let account = stored_account(account)?;
        let mut st = self.lock();
        let duplicate = st.accounts.contains_key(&account.id)
            || st.account_by_key(&account.key_thumbprint).is_some()
            || account.eab_key_id.as_ref().is_some_and(|k| {
                st.accounts
                    .values()
                    .any(|a| a.eab_key_id.as_ref() == Some(k))
            });
        if duplicate {
            return Err(SaError::Conflict("account key already registered"));
        }
        if let Some(key_id) = &account.eab_key_id {
            let key = st.eab_keys.get_mut(key_id).ok_or(SaError::NotFound)?;
            if key.bound_account.is_some() {
                return Err(SaError::Conflict("EAB key already bound"));
            }
            key.bound_account = Some(account.id.clone());
        }
        st.accounts.insert(account.id.clone(), account);
        Ok(())
    }

    async fn get_account(&self, id: &AccountId) -> SaResult<Account> {
        self.lock()
            .accounts
            .get(id)
            .cloned()
            .ok_or(SaError::NotFound)
    }

    async fn get_account_by_key(&self, thumbprint: &str) -> SaResult<Account> {
        self.lock()
            .account_by_key(thumbprint)
            .cloned()
            .ok_or(SaError::NotFound)
    }

    async fn update_account(&self, account: &Account) -> SaResult<()> {
        let mut st = self.lock();
        let a = st.accounts.get_mut(&account.id).ok_or(SaError::NotFound)?;
        if a.status != AccountStatus::Valid {
            return Err(SaError::Conflict("account is not valid"));
        }
        a.contact = account.contact.clone();
        a.status = account.status;
        Ok(())
    }

    async fn update_account_key(
        &self,
        id: &AccountId,
        jwk: &serde_json::Value,
        thumbprint: &str,
    ) -> SaResult<()> {
        let jwk = through_json(jwk)?;
        let mut st = self.lock();
        if !st.accounts.contains_key(id) {
            return Err(SaError::NotFound);
        }
        if st
            .account_by_key(thumbprint)
            .is_some_and(|other| &other.id != id)
        {
            return Err(SaError::Conflict(
                "key already registered to another account",
            ));
        }
        if let Some(a) = st.accounts.get_mut(id) {
            a.jwk = jwk;
            a.key_thumbprint = thumbprint.to_owned();
        }
        Ok(())
    }

    async fn count_accounts_by_ip(&self, ip: &str, since: OffsetDateTime) -> SaResult<u64> {
        let since = us(since);
        let n = self
            .lock()
            .accounts
            .values()
            .filter(|a| a.initial_ip.as_deref() == Some(ip) && us(a.created_at) >= since)
            .count();
        Ok(n as u64)
    }

    // ---- external account binding ----

    async fn new_eab_key(&self, key: &EabKey) -> SaResult<()> {
        let key = EabKey {
            created_at: stored(key.created_at),
            ..key.clone()
        };
        let mut st = self.lock();
        let bound_twice = key.bound_account.as_ref().is_some_and(|b| {
            st.eab_keys
                .values()
                .any(|k| k.bound_account.as_ref() == Some(b))
        });
        if st.eab_keys.contains_key(&key.key_id) || bound_twice {
            return Err(SaError::Conflict("EAB key ID already exists"));
        }
        if let Some(account) = &key.bound_account
            && !st.accounts.contains_key(account)
        {
            return Err(SaError::NotFound);
        }
        st.eab_keys.insert(key.key_id.clone(), key);
        Ok(())
    }

    async fn get_eab_key(&self, key_id: &str) -> SaResult<EabKey> {
        self.lock()
            .eab_keys
            .get(key_id)
            .cloned()
            .ok_or(SaError::NotFound)
    }

    // ---- orders and authorizations ----

    async fn new_order_and_authzs(
        &self,
        order: &Order,
        new_authzs: &[Authorization],
    ) -> SaResult<()> {
        let order = stored_order(order)?;
        let new_authzs = new_authzs
            .iter()
            .map(stored_authz)
            .collect::<SaResult<Vec<_>>>()?;
        let mut st = self.lock();
        // The checks in the order the SQL storage writes: authorizations, challenges, the
        // order, its authorization list.
        let mut authz_ids = BTreeSet::new();
        for a in &new_authzs {
            if st.authzs.contains_key(&a.id) || !authz_ids.insert(a.id.clone()) {
                return Err(SaError::Conflict("authorization ID already exists"));
            }
            if !st.accounts.contains_key(&a.account_id) {
                return Err(SaError::NotFound);
            }
        }
        let mut challenge_ids = BTreeSet::new();
        for c in new_authzs.iter().flat_map(|a| &a.challenges) {
            if st.challenges.contains_key(&c.id) || !challenge_ids.insert(c.id.clone()) {
                return Err(SaError::Conflict("challenge ID already exists"));
            }
        }
        let serial_taken = order.certificate_serial.as_ref().is_some_and(|s| {
            st.orders
                .values()
                .any(|o| o.certificate_serial.as_ref() == Some(s))
        });
        if st.orders.contains_key(&order.id) || serial_taken {
            return Err(SaError::Conflict("order ID already exists"));
        }
        if !st.accounts.contains_key(&order.account_id) {
            return Err(SaError::NotFound);
        }
        if order
            .authz_ids
            .iter()
            .any(|id| !authz_ids.contains(id) && !st.authzs.contains_key(id))
        {
            return Err(SaError::NotFound);
        }
        for a in new_authzs {
            for c in &a.challenges {
                st.challenges.insert(c.id.clone(), a.id.clone());
            }
            st.authzs.insert(a.id.clone(), a);
        }
        st.orders.insert(order.id.clone(), order);
        Ok(())
    }

    async fn get_identifier_policy(&self, account: &AccountId) -> SaResult<Option<AccountPolicy>> {
        let st = self.lock();
        let acct = st.accounts.get(account).ok_or(SaError::NotFound)?;
        Ok(st.account_policies.get(account).cloned().or_else(|| {
            acct.eab_key_id
                .as_ref()
                .and_then(|k| st.eab_policies.get(k).cloned())
        }))
    }

    async fn set_account_identifier_policy(
        &self,
        account: &AccountId,
        policy: Option<&AccountPolicy>,
    ) -> SaResult<()> {
        let mut st = self.lock();
        if !st.accounts.contains_key(account) {
            return Err(SaError::NotFound);
        }
        match policy {
            Some(p) => st.account_policies.insert(account.clone(), p.clone()),
            None => st.account_policies.remove(account),
        };
        Ok(())
    }

    async fn set_eab_identifier_policy(
        &self,
        key_id: &str,
        policy: Option<&AccountPolicy>,
    ) -> SaResult<()> {
        let mut st = self.lock();
        if !st.eab_keys.contains_key(key_id) {
            return Err(SaError::NotFound);
        }
        match policy {
            Some(p) => st.eab_policies.insert(key_id.to_owned(), p.clone()),
            None => st.eab_policies.remove(key_id),
        };
        Ok(())
    }

    async fn new_authzs(&self, new_authzs: &[Authorization]) -> SaResult<()> {
        let new_authzs = new_authzs
            .iter()
            .map(stored_authz)
            .collect::<SaResult<Vec<_>>>()?;
        let mut st = self.lock();
        let mut authz_ids = BTreeSet::new();
        let mut challenge_ids = BTreeSet::new();
        for a in &new_authzs {
            if st.authzs.contains_key(&a.id) || !authz_ids.insert(a.id.clone()) {
                return Err(SaError::Conflict("authorization ID already exists"));
            }
            if !st.accounts.contains_key(&a.account_id) {
                return Err(SaError::NotFound);
            }
            for c in &a.challenges {
                if st.challenges.contains_key(&c.id) || !challenge_ids.insert(c.id.clone()) {
                    return Err(SaError::Conflict("challenge ID already exists"));
                }
            }
        }
        for a in new_authzs {
            for c in &a.challenges {
                st.challenges.insert(c.id.clone(), a.id.clone());
            }
            st.authzs.insert(a.id.clone(), a);
        }
        Ok(())
    }

    async fn get_order(&self, id: &OrderId) -> SaResult<Order> {
        self.lock().orders.get(id).cloned().ok_or(SaError::NotFound)
    }

    async fn get_order_with_authz_states(
        &self,
        id: &OrderId,
    ) -> SaResult<(Order, Vec<AuthzState>)> {
        let st = self.lock();
        let order = st.orders.get(id).cloned().ok_or(SaError::NotFound)?;
        let states = order
            .authz_ids
            .iter()
            .map(|a| {
                st.authzs
                    .get(a)
                    .map(|a| AuthzState {
                        status: a.status,
                        expires: a.expires,
                    })
                    .ok_or_else(|| {
                        SaError::Corrupt("order_authzs names a missing authorization".into())
                    })
            })
            .collect::<SaResult<Vec<_>>>()?;
        Ok((order, states))
    }

    async fn get_order_ids_for_account(
        &self,
        account: &AccountId,
        offset: u64,
        limit: u64,
    ) -> SaResult<Vec<OrderId>> {
        let st = self.lock();
        let mut orders: Vec<&Order> = st
            .orders
            .values()
            .filter(|o| &o.account_id == account)
            .collect();
        orders.sort_by(|a, b| (b.created_at, &b.id).cmp(&(a.created_at, &a.id)));
        let ids = orders.into_iter().map(|o| o.id.clone()).collect();
        Ok(window(ids, offset, limit))
    }

    async fn get_reusable_order(
        &self,
        account: &AccountId,
        identifiers: &[Identifier],
        profile: Option<&str>,
        now: OffsetDateTime,
    ) -> SaResult<Option<Order>> {
        let key = identifiers_key(identifiers);
        let now = us(now);
        let st = self.lock();
        let found = st
            .orders
            .values()
            .filter(|o| {
                &o.account_id == account
                    && identifiers_key(&o.identifiers) == key
                    && o.status == OrderStatus::Pending
                    && us(o.expires) > now
                    && o.profile.as_deref().unwrap_or("") == profile.unwrap_or("")
            })
            .max_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        Ok(found.cloned())
    }

    async fn get_authorization(&self, id: &AuthzId) -> SaResult<Authorization> {
        self.lock().authzs.get(id).cloned().ok_or(SaError::NotFound)
    }

    async fn get_authorizations(&self, ids: &[AuthzId]) -> SaResult<Vec<Authorization>> {
        self.lock().authzs_in_order(ids)
    }

    async fn get_reusable_authz(
        &self,
        account: &AccountId,
        identifier: &Identifier,
        wildcard: bool,
        include_pending: bool,
        expires_after: OffsetDateTime,
    ) -> SaResult<Option<Authorization>> {
        let identifier = identifier.authz_identifier();
        let after = us(expires_after);
        let st = self.lock();
        let found = st
            .authzs
            .values()
            .filter(|a| {
                &a.account_id == account
                    && a.identifier == identifier
                    && a.wildcard == wildcard
                    && (a.status == AuthzStatus::Valid
                        || (include_pending
                            && a.status == AuthzStatus::Pending
                            && !st.has_stale_challenge(a, after)))
                    && us(a.expires) > after
            })
            // Valid before pending, then the newest (and the greatest ID among equals).
            .max_by(|a, b| {
                let rank = |x: &Authorization| (x.status == AuthzStatus::Valid, x.created_at);
                (rank(a), &a.id).cmp(&(rank(b), &b.id))
            });
        Ok(found.cloned())
    }

    async fn set_challenge_processing(
        &self,
        authz: &AuthzId,
        chall: &ChallengeId,
        lease: &Lease,
    ) -> SaResult<bool> {
        let mut st = self.lock();
        let Some(a) = st.authzs.get_mut(authz) else {
            return Ok(false);
        };
        if a.status != AuthzStatus::Pending {
            return Ok(false);
        }
        match a.challenges.iter_mut().find(|c| &c.id == chall) {
            Some(c) if c.status == ChallengeStatus::Pending => {
                c.status = ChallengeStatus::Processing;
                st.challenge_leases
                    .insert(chall.clone(), (lease.owner.clone(), us(lease.until)));
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn get_stale_processing_challenges(
        &self,
        now: OffsetDateTime,
        limit: u64,
    ) -> SaResult<Vec<(AuthzId, ChallengeId)>> {
        let now = us(now);
        let st = self.lock();
        let mut stale: Vec<(i64, AuthzId, ChallengeId)> = Vec::new();
        for a in st.authzs.values() {
            if a.status != AuthzStatus::Pending {
                continue;
            }
            for c in &a.challenges {
                let lease = st.challenge_leases.get(&c.id);
                if c.status == ChallengeStatus::Processing && State::lease_ended(lease, now) {
                    let until = lease.map_or(i64::MIN, |(_, u)| *u);
                    stale.push((until, a.id.clone(), c.id.clone()));
                }
            }
        }
        stale.sort();
        Ok(stale
            .into_iter()
            .take(usize::try_from(limit).unwrap_or(usize::MAX))
            .map(|(_, a, c)| (a, c))
            .collect())
    }

    async fn claim_processing_challenge(
        &self,
        authz: &AuthzId,
        chall: &ChallengeId,
        lease: &Lease,
        now: OffsetDateTime,
    ) -> SaResult<bool> {
        let mut st = self.lock();
        let Some(a) = st.authzs.get(authz) else {
            return Ok(false);
        };
        let processing = a
            .challenges
            .iter()
            .any(|c| &c.id == chall && c.status == ChallengeStatus::Processing);
        if a.status != AuthzStatus::Pending
            || !processing
            || !State::lease_ended(st.challenge_leases.get(chall), us(now))
        {
            return Ok(false);
        }
        st.challenge_leases
            .insert(chall.clone(), (lease.owner.clone(), us(lease.until)));
        Ok(true)
    }

    async fn finish_challenge(&self, outcome: &ChallengeOutcome) -> SaResult<()> {
        let c = &outcome.challenge;
        let error = stored_problem(&c.error)?;
        let record = through_json(&c.validation_record)?;
        let mut st = self.lock();
        if st.failing_finish_challenge > 0 {
            st.failing_finish_challenge -= 1;
            return Err(SaError::Database(Box::new(InjectedFailure)));
        }
        let a = st
            .authzs
            .get_mut(&outcome.authz_id)
            .ok_or(SaError::NotFound)?;
        let Some(i) = a.challenges.iter().position(|s| s.id == c.id) else {
            return Err(SaError::NotFound);
        };
        if !matches!(
            a.challenges[i].status,
            ChallengeStatus::Pending | ChallengeStatus::Processing
        ) {
            return Err(SaError::Conflict("challenge already finished"));
        }
        if a.status != AuthzStatus::Pending {
            return Err(SaError::Conflict("authorization is no longer pending"));
        }
        let chall = &mut a.challenges[i];
        chall.status = c.status;
        chall.validated = stored_opt(c.validated);
        chall.error = error;
        chall.validation_record = record;
        a.status = outcome.authz_status;
        a.expires = stored(outcome.expires);
        Ok(())
    }

    async fn deactivate_authorization(&self, id: &AuthzId) -> SaResult<bool> {
        let mut st = self.lock();
        match st.authzs.get_mut(id) {
            Some(a) if matches!(a.status, AuthzStatus::Pending | AuthzStatus::Valid) => {
                a.status = AuthzStatus::Deactivated;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn deactivate_account_authorizations(&self, account: &AccountId) -> SaResult<u64> {
        let mut st = self.lock();
        let mut n = 0;
        for a in st.authzs.values_mut() {
            if &a.account_id == account
                && matches!(a.status, AuthzStatus::Pending | AuthzStatus::Valid)
            {
                a.status = AuthzStatus::Deactivated;
                n += 1;
            }
        }
        Ok(n)
    }

    // ---- finalize and certificates ----

    async fn set_order_processing(
        &self,
        id: &OrderId,
        csr_der: &[u8],
        serial: &Serial,
        _at: OffsetDateTime,
        lease: &Lease,
    ) -> SaResult<bool> {
        let mut st = self.lock();
        let Some(order) = st.orders.get(id) else {
            return Ok(false);
        };
        if order.status != OrderStatus::Pending {
            return Ok(false);
        }
        if st.serials.contains_key(serial) {
            return Err(SaError::Conflict("serial already reserved"));
        }
        let account = order.account_id.clone();
        st.serials.insert(serial.clone(), (account, id.clone()));
        if let Some(order) = st.orders.get_mut(id) {
            order.status = OrderStatus::Processing;
            order.csr_der = Some(csr_der.to_vec());
        }
        st.order_leases
            .insert(id.clone(), (lease.owner.clone(), us(lease.until)));
        Ok(true)
    }

    async fn renew_order_lease(&self, id: &OrderId, lease: &Lease) -> SaResult<bool> {
        let mut st = self.lock();
        st.order_lease_renewals += 1;
        let processing = st
            .orders
            .get(id)
            .is_some_and(|o| o.status == OrderStatus::Processing);
        match st.order_leases.get_mut(id) {
            Some((owner, until)) if processing && *owner == lease.owner => {
                *until = us(lease.until);
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn claim_processing_order(
        &self,
        id: &OrderId,
        lease: &Lease,
        now: OffsetDateTime,
    ) -> SaResult<bool> {
        let mut st = self.lock();
        let processing = st
            .orders
            .get(id)
            .is_some_and(|o| o.status == OrderStatus::Processing);
        if !processing || !State::lease_ended(st.order_leases.get(id), us(now)) {
            return Ok(false);
        }
        st.order_leases
            .insert(id.clone(), (lease.owner.clone(), us(lease.until)));
        Ok(true)
    }

    async fn reserve_serial(
        &self,
        serial: &Serial,
        account: &AccountId,
        order: &OrderId,
        _at: OffsetDateTime,
    ) -> SaResult<()> {
        let mut st = self.lock();
        if st.serials.contains_key(serial) {
            return Err(SaError::Conflict("serial already reserved"));
        }
        if !st.accounts.contains_key(account) || !st.orders.contains_key(order) {
            return Err(SaError::NotFound);
        }
        st.serials
            .insert(serial.clone(), (account.clone(), order.clone()));
        Ok(())
    }

    async fn finalize_order(&self, cert: &Certificate) -> SaResult<()> {
        let cert = stored_certificate(cert)?;
        let mut st = self.lock();
        let Some(order) = st.orders.get(&cert.order_id) else {
            return Err(SaError::NotFound);
        };
        if order.status != OrderStatus::Processing {
            return Err(SaError::Conflict("order is not processing"));
        }
        if st
            .orders
            .values()
            .any(|o| o.certificate_serial.as_ref() == Some(&cert.serial))
        {
            return Err(SaError::Conflict("serial already used by another order"));
        }
        let upgrade = st.precertificates.contains(&cert.serial)
            && st
                .certificates
                .get(&cert.serial)
                .is_some_and(|p| p.order_id == cert.order_id);
        if st.certificates.contains_key(&cert.serial) && !upgrade {
            return Err(SaError::Conflict("certificate serial already stored"));
        }
        let replaced_by_known = cert
            .replaced_by
            .as_ref()
            .is_none_or(|o| st.orders.contains_key(o));
        if !st.accounts.contains_key(&cert.account_id) || !replaced_by_known {
            return Err(SaError::NotFound);
        }
        if let Some(order) = st.orders.get_mut(&cert.order_id) {
            order.status = OrderStatus::Valid;
            order.certificate_serial = Some(cert.serial.clone());
        }
        let mut cert = cert;
        if upgrade {
            st.precertificates.remove(&cert.serial);
            if let Some(pre) = st.certificates.get(&cert.serial) {
                cert.revocation = pre.revocation.clone();
            }
        }
        st.certificates.insert(cert.serial.clone(), cert);
        Ok(())
    }

    async fn add_precertificate(&self, cert: &Certificate) -> SaResult<()> {
        let cert = stored_certificate(cert)?;
        let mut st = self.lock();
        let Some(order) = st.orders.get(&cert.order_id) else {
            return Err(SaError::NotFound);
        };
        if order.status != OrderStatus::Processing {
            return Err(SaError::Conflict("order is not processing"));
        }
        if st.certificates.contains_key(&cert.serial) {
            return Err(SaError::Conflict("certificate serial already stored"));
        }
        st.precertificates.insert(cert.serial.clone());
        st.certificates.insert(cert.serial.clone(), cert);
        Ok(())
    }

    async fn get_order_precertificate(&self, order: &OrderId) -> SaResult<Option<Certificate>> {
        let st = self.lock();
        Ok(st
            .precertificates
            .iter()
            .filter_map(|s| st.certificates.get(s))
            .filter(|c| &c.order_id == order)
            .max_by(|a, b| (a.not_before, &a.serial).cmp(&(b.not_before, &b.serial)))
            .cloned())
    }

    async fn fail_order(&self, id: &OrderId, owner: Option<&str>, error: &Problem) -> SaResult<()> {
        let error = through_json(error)?;
        let mut st = self.lock();
        let held = owner.is_none_or(|owner| {
            st.order_leases
                .get(id)
                .is_some_and(|(holder, _)| holder == owner)
        });
        match st.orders.get_mut(id) {
            Some(o) if o.status == OrderStatus::Processing && held => {
                o.status = OrderStatus::Invalid;
                o.error = Some(error);
                Ok(())
            }
            found => Err(precondition_failed(
                found.is_some(),
                "order is not processing",
            )),
        }
    }

    async fn get_stale_processing_orders(&self, now: OffsetDateTime) -> SaResult<Vec<Order>> {
        let now = us(now);
        let st = self.lock();
        let mut orders: Vec<Order> = st
            .orders
            .values()
            .filter(|o| {
                o.status == OrderStatus::Processing
                    && State::lease_ended(st.order_leases.get(&o.id), now)
            })
            .cloned()
            .collect();
        orders.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        Ok(orders)
    }

    async fn get_certificate(&self, serial: &Serial) -> SaResult<Certificate> {
        let st = self.lock();
        if st.precertificates.contains(serial) {
            return Err(SaError::NotFound);
        }
        st.certificates
            .get(serial)
            .cloned()
            .ok_or(SaError::NotFound)
    }

    async fn get_issued(&self, serial: &Serial) -> SaResult<Certificate> {
        self.lock()
            .certificates
            .get(serial)
            .cloned()
            .ok_or(SaError::NotFound)
    }

    async fn revoke_certificate(&self, serial: &Serial, revocation: &Revocation) -> SaResult<()> {
        let mut st = self.lock();
        match st.certificates.get_mut(serial) {
            Some(c) if c.revocation.is_none() => {
                c.revocation = Some(stored_revocation(revocation));
                st.revocation_epoch += 1;
                Ok(())
            }
            found => Err(precondition_failed(
                found.is_some(),
                "certificate already revoked",
            )),
        }
    }

    async fn count_certificates_for_domain(
        &self,
        registered_domain: &str,
        since: OffsetDateTime,
    ) -> SaResult<u64> {
        let exact = reversed_name(registered_domain);
        let (from, to) = (format!("{exact}."), format!("{exact}/"));
        let since = us(since);
        let n = self
            .lock()
            .certificates
            .values()
            .filter(|c| us(c.not_before) >= since)
            .filter(|c| {
                certificate_names(c)
                    .iter()
                    .any(|n| *n == exact || (*n >= from && *n < to))
            })
            .count();
        Ok(n as u64)
    }

    // ---- renewal information (RFC 9773) ----

    async fn mark_for_renewal(
        &self,
        selector: &RenewalSelector,
        at: OffsetDateTime,
    ) -> SaResult<u64> {
        let at = stored(at);
        let mut st = self.lock();
        let mut n = 0;
        for c in st.certificates.values_mut() {
            let selected = match selector {
                RenewalSelector::Serial(s) => &c.serial == s,
                RenewalSelector::Account(a) => &c.account_id == a,
                RenewalSelector::Issuer(i) => &c.issuer_id == i,
                RenewalSelector::IssuedBetween(from, to) => {
                    us(c.not_before) >= us(*from) && us(c.not_before) < us(*to)
                }
            };
            if selected {
                c.renew_by = Some(at);
                n += 1;
            }
        }
        Ok(n)
    }

    async fn mark_replaced(&self, serial: &Serial, by: &OrderId) -> SaResult<()> {
        let mut st = self.lock();
        let by_known = st.orders.contains_key(by);
        match st.certificates.get_mut(serial) {
            Some(c) if c.replaced_by.is_none() => {
                if !by_known {
                    return Err(SaError::Database(Box::new(ForeignKeyViolation(
                        "certificates.replaced_by",
                    ))));
                }
                c.replaced_by = Some(by.clone());
                Ok(())
            }
            _ => Err(SaError::Conflict("certificate already replaced")),
        }
    }

    async fn reserve_replacement(
        &self,
        serial: &Serial,
        expected: Option<&OrderId>,
        by: &OrderId,
    ) -> SaResult<()> {
        let mut st = self.lock();
        if !st.orders.contains_key(by) {
            return Err(SaError::Database(Box::new(ForeignKeyViolation(
                "certificates.replaced_by",
            ))));
        }
        match st.certificates.get_mut(serial) {
            None => Err(SaError::NotFound),
            Some(c) if c.replaced_by.as_ref() == expected => {
                c.replaced_by = Some(by.clone());
                Ok(())
            }
            Some(_) => Err(SaError::Conflict("certificate already has a replacement")),
        }
    }

    // ---- revocation status ----

    async fn get_certificates(
        &self,
        selector: &CertificateSelector,
        now: OffsetDateTime,
        include_revoked: bool,
        limit: u64,
    ) -> SaResult<Vec<Certificate>> {
        let now = us(now);
        let st = self.lock();
        let mut certs: Vec<&Certificate> = st
            .certificates
            .values()
            .filter(|c| us(c.not_after) > now && (include_revoked || c.revocation.is_none()))
            .filter(|c| match selector {
                CertificateSelector::Account(a) => &c.account_id == a,
                CertificateSelector::SpkiSha256(h) => c.spki_sha256 == h.to_ascii_lowercase(),
                CertificateSelector::Identifier(id) if id.typ == IdentifierType::Dns => {
                    certificate_names(c).contains(&reversed_name(&id.value))
                }
                // As the SQL storage pre-selects IP addresses: the value, quoted, anywhere in
                // the stored JSON (LIKE is ASCII case-insensitive in SQLite).
                CertificateSelector::Identifier(id) => {
                    let json = serde_json::to_string(&c.identifiers)
                        .unwrap_or_default()
                        .to_ascii_lowercase();
                    json.contains(&format!("\"{}\"", id.value.to_ascii_lowercase()))
                }
            })
            .collect();
        certs.sort_by(|a, b| (a.not_before, &a.serial).cmp(&(b.not_before, &b.serial)));
        let mut certs: Vec<Certificate> = window(certs, 0, limit).into_iter().cloned().collect();
        if let CertificateSelector::Identifier(id) = selector {
            certs.retain(|c| c.identifiers.contains(id));
        }
        Ok(certs)
    }

    async fn get_revoked_certificates(
        &self,
        issuer_id: &str,
        not_after_after: OffsetDateTime,
    ) -> SaResult<Vec<RevokedCertificate>> {
        let after = us(not_after_after);
        let st = self.lock();
        // Certificates are kept by serial: the list comes out in serial order.
        Ok(st
            .certificates
            .values()
            .filter(|c| c.issuer_id == issuer_id && us(c.not_after) > after)
            .filter_map(|c| {
                c.revocation.as_ref().map(|r| RevokedCertificate {
                    serial: c.serial.clone(),
                    crl_shard: c.crl_shard,
                    revocation: r.clone(),
                })
            })
            .collect())
    }

    async fn get_revocation_epoch(&self) -> SaResult<i64> {
        Ok(self.lock().revocation_epoch)
    }

    async fn put_crl(&self, crl: &StoredCrl) -> SaResult<()> {
        if i64::try_from(crl.info.number).is_err() {
            return Err(SaError::Conflict("CRL number too large"));
        }
        let crl = StoredCrl {
            info: stored_crl_info(&crl.info),
            der: crl.der.clone(),
        };
        let mut st = self.lock();
        let key = (crl.info.issuer_id.clone(), crl.info.shard);
        if st
            .crls
            .get(&key)
            .is_some_and(|old| old.info.number >= crl.info.number)
        {
            return Err(SaError::Conflict("CRL number not increasing"));
        }
        st.crls.insert(key, crl);
        Ok(())
    }

    async fn get_crl(&self, issuer_id: &str, shard: u32) -> SaResult<StoredCrl> {
        self.lock()
            .crls
            .get(&(issuer_id.to_owned(), shard))
            .cloned()
            .ok_or(SaError::NotFound)
    }

    async fn get_crl_infos(&self) -> SaResult<Vec<CrlInfo>> {
        Ok(self.lock().crls.values().map(|c| c.info.clone()).collect())
    }

    async fn block_key(&self, key: &BlockedKey) -> SaResult<()> {
        let key = BlockedKey {
            spki_sha256: key.spki_sha256.to_ascii_lowercase(),
            blocked_at: stored(key.blocked_at),
            ..key.clone()
        };
        self.lock()
            .blocked_keys
            .entry(key.spki_sha256.clone())
            .or_insert(key);
        Ok(())
    }

    async fn is_key_blocked(&self, spki_sha256: &str) -> SaResult<bool> {
        Ok(self
            .lock()
            .blocked_keys
            .contains_key(&spki_sha256.to_ascii_lowercase()))
    }

    async fn is_jwk_blocked(&self, thumbprint: &str) -> SaResult<bool> {
        Ok(self
            .lock()
            .blocked_keys
            .values()
            .any(|k| k.jwk_thumbprint.as_deref() == Some(thumbprint)))
    }
}
