//! Conversions between the domain model and stored columns: times, JSON, enums and row structs.

use crate::{AuthzState, SaError, SaResult};
use cairn_core::{
    Account, AccountId, AccountStatus, Authorization, AuthzId, AuthzStatus, Certificate, Challenge,
    ChallengeId, ChallengeStatus, ChallengeType, Identifier, IdentifierType, Order, OrderId,
    OrderStatus, Revocation, RevocationReason, Serial,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use time::OffsetDateTime;

// ---- times ----

/// A time as stored: unix microseconds (sub-microsecond digits are dropped, rounding towards the
/// past; times outside the `i64` microsecond range, about ±292,000 years, saturate).
pub(crate) fn micros(t: OffsetDateTime) -> i64 {
    let us = t.unix_timestamp_nanos().div_euclid(1000);
    i64::try_from(us).unwrap_or(if us < 0 { i64::MIN } else { i64::MAX })
}

/// A stored time back as UTC.
pub(crate) fn from_micros(us: i64) -> SaResult<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(us) * 1000)
        .map_err(|_| SaError::Corrupt(format!("timestamp {us}us out of range")))
}

fn opt_from_micros(us: Option<i64>) -> SaResult<Option<OffsetDateTime>> {
    us.map(from_micros).transpose()
}

// ---- JSON ----

pub(crate) fn to_json<T: Serialize + ?Sized>(v: &T) -> SaResult<String> {
    serde_json::to_string(v).map_err(|e| SaError::Corrupt(format!("encoding JSON: {e}")))
}

fn from_json<T: DeserializeOwned>(column: &str, s: &str) -> SaResult<T> {
    serde_json::from_str(s).map_err(|e| SaError::Corrupt(format!("{column}: {e}")))
}

fn opt_from_json<T: DeserializeOwned>(column: &str, s: Option<&str>) -> SaResult<Option<T>> {
    s.map(|s| from_json(column, s)).transpose()
}

// ---- enums ----

/// An enum stored as a fixed lowercase word.
pub(crate) trait Stored: Sized + Copy {
    /// The stored word.
    fn db(self) -> &'static str;
    /// Parses the stored word.
    fn parse_db(s: &str) -> Option<Self>;
}

macro_rules! stored_enum {
    ($ty:ty { $($variant:ident => $word:literal),+ $(,)? }) => {
        impl Stored for $ty {
            fn db(self) -> &'static str {
                match self { $(<$ty>::$variant => $word),+ }
            }
            fn parse_db(s: &str) -> Option<Self> {
                match s { $($word => Some(<$ty>::$variant),)+ _ => None }
            }
        }
    };
}

stored_enum!(AccountStatus { Valid => "valid", Deactivated => "deactivated", Revoked => "revoked" });
stored_enum!(OrderStatus {
    Pending => "pending",
    Ready => "ready",
    Processing => "processing",
    Valid => "valid",
    Invalid => "invalid",
});
stored_enum!(AuthzStatus {
    Pending => "pending",
    Valid => "valid",
    Invalid => "invalid",
    Deactivated => "deactivated",
    Expired => "expired",
    Revoked => "revoked",
});
stored_enum!(ChallengeStatus {
    Pending => "pending",
    Processing => "processing",
    Valid => "valid",
    Invalid => "invalid",
});
stored_enum!(ChallengeType {
    Http01 => "http-01",
    Dns01 => "dns-01",
    TlsAlpn01 => "tls-alpn-01",
    DnsAccount01 => "dns-account-01",
    DnsPersist01 => "dns-persist-01",
});
stored_enum!(IdentifierType { Dns => "dns", Ip => "ip" });

fn parse<T: Stored>(column: &str, s: &str) -> SaResult<T> {
    T::parse_db(s).ok_or_else(|| SaError::Corrupt(format!("{column}: unknown value {s:?}")))
}

// ---- derived keys ----

/// The order-reuse key: the identifiers, sorted, as `type:value` joined by commas.
pub(crate) fn identifiers_key(identifiers: &[Identifier]) -> String {
    let mut ids: Vec<&Identifier> = identifiers.iter().collect();
    ids.sort();
    ids.dedup();
    let parts: Vec<String> = ids.iter().map(|i| i.to_string()).collect();
    parts.join(",")
}

/// A DNS name with its labels reversed and lowercased: `www.Example.com` → `com.example.www`.
pub(crate) fn reversed_name(name: &str) -> String {
    let lower = name.trim_end_matches('.').to_ascii_lowercase();
    let labels: Vec<&str> = lower.split('.').rev().collect();
    labels.join(".")
}

// ---- rows ----

/// Column list matching [`AccountRow`].
macro_rules! account_columns {
    () => {
        "id, jwk, key_thumbprint, contact, status, created_at, eab_key_id, initial_ip"
    };
}
pub(crate) use account_columns;

/// An `accounts` row.
#[derive(sqlx::FromRow)]
pub(crate) struct AccountRow {
    id: String,
    jwk: String,
    key_thumbprint: String,
    contact: String,
    status: String,
    created_at: i64,
    eab_key_id: Option<String>,
    initial_ip: Option<String>,
}

impl AccountRow {
    pub(crate) fn into_account(self) -> SaResult<Account> {
        Ok(Account {
            id: AccountId(self.id),
            jwk: from_json("accounts.jwk", &self.jwk)?,
            key_thumbprint: self.key_thumbprint,
            contact: from_json("accounts.contact", &self.contact)?,
            status: parse("accounts.status", &self.status)?,
            created_at: from_micros(self.created_at)?,
            eab_key_id: self.eab_key_id,
            initial_ip: self.initial_ip,
        })
    }
}

/// An `eab_keys` row.
#[derive(sqlx::FromRow)]
pub(crate) struct EabRow {
    key_id: String,
    hmac_key: Vec<u8>,
    created_at: i64,
    bound_account: Option<String>,
}

impl EabRow {
    pub(crate) fn into_key(self) -> SaResult<cairn_core::EabKey> {
        Ok(cairn_core::EabKey {
            key_id: self.key_id,
            hmac_key: self.hmac_key,
            created_at: from_micros(self.created_at)?,
            bound_account: self.bound_account.map(AccountId),
        })
    }
}

/// Selects orders joined with their authorization IDs, one row per (order, authz); finish with
/// `WHERE …` and an `ORDER BY` that keeps an order's rows together and ends in `oa.position`.
macro_rules! order_select {
    () => {
        concat!(
            order_columns!(),
            " FROM orders o LEFT JOIN order_authzs oa ON oa.order_id = o.id"
        )
    };
}
pub(crate) use order_select;

/// The columns of [`OrderRow`].
macro_rules! order_columns {
    () => {
        "SELECT o.id, o.account_id, o.status, o.identifiers, o.profile, o.expires, o.not_before, \
         o.not_after, o.error, o.certificate_serial, o.replaces, o.csr, o.created_at, \
         oa.authz_id"
    };
}
pub(crate) use order_columns;

/// Like [`order_select!`], with each row's authorization's status and expiry
/// ([`OrderStateRow`]); finish with `WHERE …` and `ORDER BY oa.position`.
macro_rules! order_state_select {
    () => {
        concat!(
            order_columns!(),
            ", a.status AS authz_status, a.expires AS authz_expires \
             FROM orders o LEFT JOIN order_authzs oa ON oa.order_id = o.id \
             LEFT JOIN authzs a ON a.id = oa.authz_id"
        )
    };
}
pub(crate) use order_state_select;

/// One row of [`order_select!`].
#[derive(sqlx::FromRow)]
pub(crate) struct OrderRow {
    id: String,
    account_id: String,
    status: String,
    identifiers: String,
    profile: Option<String>,
    expires: i64,
    not_before: Option<i64>,
    not_after: Option<i64>,
    error: Option<String>,
    certificate_serial: Option<String>,
    replaces: Option<String>,
    csr: Option<Vec<u8>>,
    created_at: i64,
    authz_id: Option<String>,
}

impl OrderRow {
    fn into_order(self) -> SaResult<Order> {
        Ok(Order {
            id: OrderId(self.id),
            account_id: AccountId(self.account_id),
            status: parse("orders.status", &self.status)?,
            identifiers: from_json("orders.identifiers", &self.identifiers)?,
            authz_ids: self.authz_id.map(AuthzId).into_iter().collect(),
            expires: from_micros(self.expires)?,
            not_before: opt_from_micros(self.not_before)?,
            not_after: opt_from_micros(self.not_after)?,
            error: opt_from_json("orders.error", self.error.as_deref())?,
            certificate_serial: self.certificate_serial.map(Serial),
            profile: self.profile,
            replaces: self.replaces,
            csr_der: self.csr,
            created_at: from_micros(self.created_at)?,
        })
    }
}

/// Folds [`OrderRow`]s (an order's rows adjacent, in position order) into orders.
pub(crate) fn orders_from_rows(rows: Vec<OrderRow>) -> SaResult<Vec<Order>> {
    let mut orders: Vec<Order> = Vec::new();
    for row in rows {
        match orders.last_mut() {
            Some(last) if last.id.0 == row.id => {
                if let Some(a) = row.authz_id {
                    last.authz_ids.push(AuthzId(a));
                }
            }
            _ => orders.push(row.into_order()?),
        }
    }
    Ok(orders)
}

/// One row of [`order_state_select!`].
#[derive(sqlx::FromRow)]
pub(crate) struct OrderStateRow {
    #[sqlx(flatten)]
    order: OrderRow,
    authz_status: Option<String>,
    authz_expires: Option<i64>,
}

/// Folds one order's [`OrderStateRow`]s (in position order) into the order and its
/// authorizations' states. `None` if there are no rows.
pub(crate) fn order_with_states(
    rows: Vec<OrderStateRow>,
) -> SaResult<Option<(Order, Vec<AuthzState>)>> {
    let mut states = Vec::with_capacity(rows.len());
    let mut order_rows = Vec::with_capacity(rows.len());
    for row in rows {
        // An order without authorizations has one row, with no authorization in it.
        if row.order.authz_id.is_some() {
            let (Some(status), Some(expires)) = (row.authz_status, row.authz_expires) else {
                return Err(SaError::Corrupt(
                    "order_authzs names a missing authorization".into(),
                ));
            };
            states.push(AuthzState {
                status: parse("authzs.status", &status)?,
                expires: from_micros(expires)?,
            });
        }
        order_rows.push(row.order);
    }
    Ok(orders_from_rows(order_rows)?
        .into_iter()
        .next()
        .map(|order| (order, states)))
}

/// Selects authorizations joined with their challenges, one row per (authz, challenge); finish
/// with `WHERE …` and an `ORDER BY` that keeps an authorization's rows together and ends in
/// `c.position`.
macro_rules! authz_select {
    () => {
        "SELECT a.id, a.account_id, a.identifier_type, a.identifier_value, a.wildcard, a.status, \
         a.expires, a.created_at, c.id AS c_id, c.type AS c_type, c.token AS c_token, \
         c.status AS c_status, c.validated AS c_validated, c.error AS c_error, \
         c.validation_record AS c_validation_record \
         FROM authzs a LEFT JOIN challenges c ON c.authz_id = a.id"
    };
}
pub(crate) use authz_select;

/// One row of [`authz_select!`].
#[derive(sqlx::FromRow)]
pub(crate) struct AuthzRow {
    id: String,
    account_id: String,
    identifier_type: String,
    identifier_value: String,
    wildcard: bool,
    status: String,
    expires: i64,
    created_at: i64,
    c_id: Option<String>,
    c_type: Option<String>,
    c_token: Option<String>,
    c_status: Option<String>,
    c_validated: Option<i64>,
    c_error: Option<String>,
    c_validation_record: Option<String>,
}

impl AuthzRow {
    fn challenge(&mut self) -> SaResult<Option<Challenge>> {
        let (Some(id), Some(typ), Some(token), Some(status)) = (
            self.c_id.take(),
            self.c_type.take(),
            self.c_token.take(),
            self.c_status.take(),
        ) else {
            return Ok(None);
        };
        Ok(Some(Challenge {
            id: ChallengeId(id),
            typ: parse("challenges.type", &typ)?,
            token,
            status: parse("challenges.status", &status)?,
            validated: opt_from_micros(self.c_validated)?,
            error: opt_from_json("challenges.error", self.c_error.as_deref())?,
            validation_record: opt_from_json(
                "challenges.validation_record",
                self.c_validation_record.as_deref(),
            )?
            .unwrap_or_default(),
        }))
    }

    fn into_authz(mut self) -> SaResult<Authorization> {
        let challenge = self.challenge()?;
        Ok(Authorization {
            id: AuthzId(self.id),
            account_id: AccountId(self.account_id),
            identifier: Identifier {
                typ: parse("authzs.identifier_type", &self.identifier_type)?,
                value: self.identifier_value,
            },
            status: parse("authzs.status", &self.status)?,
            expires: from_micros(self.expires)?,
            wildcard: self.wildcard,
            challenges: challenge.into_iter().collect(),
            created_at: from_micros(self.created_at)?,
        })
    }
}

/// Folds [`AuthzRow`]s (an authorization's rows adjacent, in position order) into
/// authorizations.
pub(crate) fn authzs_from_rows(rows: Vec<AuthzRow>) -> SaResult<Vec<Authorization>> {
    let mut authzs: Vec<Authorization> = Vec::new();
    for mut row in rows {
        match authzs.last_mut() {
            Some(last) if last.id.0 == row.id => {
                if let Some(c) = row.challenge()? {
                    last.challenges.push(c);
                }
            }
            _ => authzs.push(row.into_authz()?),
        }
    }
    Ok(authzs)
}

/// Column list matching [`CertificateRow`].
macro_rules! certificate_columns {
    () => {
        "serial, account_id, order_id, der, issuer_id, identifiers, not_before, not_after, \
         spki_sha256, revoked_at, revocation_reason, renew_by, replaced_by, crl_shard"
    };
}
pub(crate) use certificate_columns;

/// A `certificates` row.
#[derive(sqlx::FromRow)]
pub(crate) struct CertificateRow {
    serial: String,
    account_id: String,
    order_id: String,
    der: Vec<u8>,
    issuer_id: String,
    identifiers: String,
    not_before: i64,
    not_after: i64,
    spki_sha256: String,
    revoked_at: Option<i64>,
    revocation_reason: Option<i64>,
    renew_by: Option<i64>,
    replaced_by: Option<String>,
    crl_shard: i64,
}

/// A revocation from its stored columns.
pub(crate) fn revocation_from(at: i64, code: i64) -> SaResult<Revocation> {
    Ok(Revocation {
        revoked_at: from_micros(at)?,
        reason: u8::try_from(code)
            .ok()
            .and_then(RevocationReason::from_code)
            .ok_or_else(|| SaError::Corrupt(format!("certificates.revocation_reason: {code}")))?,
    })
}

impl CertificateRow {
    pub(crate) fn into_certificate(self) -> SaResult<Certificate> {
        let revocation = match (self.revoked_at, self.revocation_reason) {
            (Some(at), Some(code)) => Some(revocation_from(at, code)?),
            (None, None) => None,
            _ => {
                return Err(SaError::Corrupt(
                    "certificates: revoked_at and revocation_reason disagree".into(),
                ));
            }
        };
        Ok(Certificate {
            serial: Serial(self.serial),
            account_id: AccountId(self.account_id),
            order_id: OrderId(self.order_id),
            der: self.der,
            issuer_id: self.issuer_id,
            identifiers: from_json("certificates.identifiers", &self.identifiers)?,
            not_before: from_micros(self.not_before)?,
            not_after: from_micros(self.not_after)?,
            spki_sha256: self.spki_sha256,
            revocation,
            renew_by: self.renew_by.map(from_micros).transpose()?,
            replaced_by: self.replaced_by.map(OrderId),
            crl_shard: u32::try_from(self.crl_shard).map_err(|_| {
                SaError::Corrupt(format!("certificates.crl_shard: {}", self.crl_shard))
            })?,
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn micros_truncate_towards_the_past() {
        let t = datetime!(2026-03-01 12:00:00.123456789 UTC);
        let back = from_micros(micros(t)).unwrap();
        assert_eq!(back, datetime!(2026-03-01 12:00:00.123456 UTC));
        let before_epoch = datetime!(1969-12-31 23:59:59.9999995 UTC);
        assert_eq!(micros(before_epoch), -1);
    }

    #[test]
    fn names_reverse_by_label() {
        assert_eq!(reversed_name("www.Example.com."), "com.example.www");
        assert_eq!(reversed_name("*.example.com"), "com.example.*");
    }

    #[test]
    fn identifiers_key_is_order_independent() {
        let a = [Identifier::dns("b.example"), Identifier::dns("a.example")];
        let b = [Identifier::dns("a.example"), Identifier::dns("b.example")];
        assert_eq!(identifiers_key(&a), identifiers_key(&b));
        assert_eq!(identifiers_key(&a), "dns:a.example,dns:b.example");
    }

    #[test]
    fn stored_words_round_trip() {
        for s in [
            AuthzStatus::Pending,
            AuthzStatus::Valid,
            AuthzStatus::Invalid,
            AuthzStatus::Deactivated,
            AuthzStatus::Expired,
            AuthzStatus::Revoked,
        ] {
            assert_eq!(AuthzStatus::parse_db(s.db()), Some(s));
        }
        assert_eq!(
            ChallengeType::parse_db("dns-01"),
            Some(ChallengeType::Dns01)
        );
        assert!(OrderStatus::parse_db("bogus").is_none());
    }
}
