//! The CA's stored objects and the RFC 8555 §7.1.6 status rules that tie them together.

use crate::{AccountId, AuthzId, ChallengeId, Identifier, OrderId, Problem, Serial};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// RFC 8555 §7.1.6 account states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AccountStatus {
    /// Usable.
    Valid,
    /// Deactivated by its holder; final.
    Deactivated,
    /// Revoked by the server; final.
    Revoked,
}

impl AccountStatus {
    /// The ACME wire name (`"valid"`, ...), for problem details and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            AccountStatus::Valid => "valid",
            AccountStatus::Deactivated => "deactivated",
            AccountStatus::Revoked => "revoked",
        }
    }
}

/// RFC 8555 §7.1.6 order states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OrderStatus {
    /// Waiting for authorizations.
    Pending,
    /// All authorizations valid; waiting for finalize.
    Ready,
    /// Finalize accepted; the certificate is being issued.
    Processing,
    /// The certificate is issued.
    Valid,
    /// Failed or expired; final.
    Invalid,
}

impl OrderStatus {
    /// The ACME wire name (`"pending"`, ...), for problem details and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            OrderStatus::Pending => "pending",
            OrderStatus::Ready => "ready",
            OrderStatus::Processing => "processing",
            OrderStatus::Valid => "valid",
            OrderStatus::Invalid => "invalid",
        }
    }
}

/// RFC 8555 §7.1.6 authorization states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthzStatus {
    /// Waiting for a challenge.
    Pending,
    /// A challenge succeeded.
    Valid,
    /// A challenge failed.
    Invalid,
    /// Deactivated by the client.
    Deactivated,
    /// Past its expiry.
    Expired,
    /// Revoked by the server.
    Revoked,
}

impl AuthzStatus {
    /// The ACME wire name (`"pending"`, ...), for problem details and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthzStatus::Pending => "pending",
            AuthzStatus::Valid => "valid",
            AuthzStatus::Invalid => "invalid",
            AuthzStatus::Deactivated => "deactivated",
            AuthzStatus::Expired => "expired",
            AuthzStatus::Revoked => "revoked",
        }
    }

    /// The status of an authorization stored with this status and `expires`, as a client
    /// should see it at `now` (a pending or valid authorization past its expiry is `expired`).
    pub fn at(self, expires: OffsetDateTime, now: OffsetDateTime) -> AuthzStatus {
        match self {
            AuthzStatus::Pending | AuthzStatus::Valid if now >= expires => AuthzStatus::Expired,
            s => s,
        }
    }
}

/// RFC 8555 §7.1.6 challenge states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChallengeStatus {
    /// Not yet attempted.
    Pending,
    /// The client asked for validation; it is under way.
    Processing,
    /// Validation succeeded.
    Valid,
    /// Validation failed.
    Invalid,
}

impl ChallengeStatus {
    /// The ACME wire name (`"pending"`, ...), for problem details and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            ChallengeStatus::Pending => "pending",
            ChallengeStatus::Processing => "processing",
            ChallengeStatus::Valid => "valid",
            ChallengeStatus::Invalid => "invalid",
        }
    }
}

/// The validation methods Cairn implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ChallengeType {
    /// RFC 8555 §8.3.
    #[serde(rename = "http-01")]
    Http01,
    /// RFC 8555 §8.4.
    #[serde(rename = "dns-01")]
    Dns01,
    /// RFC 8737.
    #[serde(rename = "tls-alpn-01")]
    TlsAlpn01,
    /// draft-ietf-acme-dns-account-label: dns-01 at a TXT name scoped to the account.
    #[serde(rename = "dns-account-01")]
    DnsAccount01,
    /// draft-ietf-acme-dns-persist: a standing `_validation-persist` TXT record naming the CA
    /// and the account (Baseline Requirements §3.2.2.4.22).
    #[serde(rename = "dns-persist-01")]
    DnsPersist01,
}

impl ChallengeType {
    /// The ACME wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            ChallengeType::Http01 => "http-01",
            ChallengeType::Dns01 => "dns-01",
            ChallengeType::TlsAlpn01 => "tls-alpn-01",
            ChallengeType::DnsAccount01 => "dns-account-01",
            ChallengeType::DnsPersist01 => "dns-persist-01",
        }
    }

    /// Parses the wire name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "http-01" => Some(ChallengeType::Http01),
            "dns-01" => Some(ChallengeType::Dns01),
            "tls-alpn-01" => Some(ChallengeType::TlsAlpn01),
            "dns-account-01" => Some(ChallengeType::DnsAccount01),
            "dns-persist-01" => Some(ChallengeType::DnsPersist01),
            _ => None,
        }
    }
}

/// An ACME account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    /// The account's ID (the last segment of its URL).
    pub id: AccountId,
    /// The account key as a JWK JSON object (public part only).
    pub jwk: serde_json::Value,
    /// RFC 7638 thumbprint of `jwk`, base64url. Unique among accounts.
    pub key_thumbprint: String,
    /// `mailto:` contact URLs.
    pub contact: Vec<String>,
    /// Account status.
    pub status: AccountStatus,
    /// When the account was created.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// The EAB key ID the account was bound with, if any.
    pub eab_key_id: Option<String>,
    /// The client's IP address at creation (for rate limiting; never shown to clients).
    pub initial_ip: Option<String>,
}

/// A record of one validation attempt's network interaction (RFC 8555 §8, Boulder's
/// `validationRecord`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ValidationRecord {
    /// The URL fetched (http-01), one record per redirect hop.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// The host name looked up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// The port connected to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<String>,
    /// Addresses the name resolved to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addresses_resolved: Vec<String>,
    /// The address actually used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address_used: Option<String>,
    /// Where the CA resolved from (for multi-perspective validation later).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolver_addrs: Option<Vec<String>>,
    /// dns-persist-01: the `persistUntil` of the record that validated (UNIX seconds). The
    /// authorization must not outlive it (draft-ietf-acme-dns-persist §4.1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub persist_until: Option<i64>,
}

/// A challenge inside an authorization.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Challenge {
    /// The challenge's ID (URL segment).
    pub id: ChallengeId,
    /// The method.
    pub typ: ChallengeType,
    /// The random token (base64url, 128+ bits).
    pub token: String,
    /// Status.
    pub status: ChallengeStatus,
    /// When it was validated.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub validated: Option<OffsetDateTime>,
    /// Why it failed.
    pub error: Option<Problem>,
    /// What the validation did.
    #[serde(default)]
    pub validation_record: Vec<ValidationRecord>,
}

/// An authorization for one identifier, held by one account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Authorization {
    /// The authorization's ID.
    pub id: AuthzId,
    /// The owning account.
    pub account_id: AccountId,
    /// The identifier (for a wildcard order, the base name; `wildcard` is set).
    pub identifier: Identifier,
    /// Stored status. `Pending`/`Valid` are further subject to expiry; see [`Authorization::status_at`].
    pub status: AuthzStatus,
    /// When it expires.
    #[serde(with = "time::serde::rfc3339")]
    pub expires: OffsetDateTime,
    /// True if created for a wildcard identifier (only dns-01 offered).
    pub wildcard: bool,
    /// The offered challenges.
    pub challenges: Vec<Challenge>,
    /// When it was created.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

impl Authorization {
    /// The status as a client should see it at `now` (a pending or valid authorization past its
    /// expiry is `expired`).
    pub fn status_at(&self, now: OffsetDateTime) -> AuthzStatus {
        self.status.at(self.expires, now)
    }

    /// The time the authorization became valid (its successful challenge's `validated`).
    pub fn validated_at(&self) -> Option<OffsetDateTime> {
        self.challenges
            .iter()
            .filter(|c| c.status == ChallengeStatus::Valid)
            .filter_map(|c| c.validated)
            .max()
    }
}

/// An order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Order {
    /// The order's ID.
    pub id: OrderId,
    /// The owning account.
    pub account_id: AccountId,
    /// Stored status. `Pending` is refined by the authorizations; see [`order_status`].
    pub status: OrderStatus,
    /// The requested identifiers, normalized and sorted.
    pub identifiers: Vec<Identifier>,
    /// One authorization per identifier, in the same order as `identifiers`.
    pub authz_ids: Vec<AuthzId>,
    /// When the order expires.
    #[serde(with = "time::serde::rfc3339")]
    pub expires: OffsetDateTime,
    /// Requested notBefore (Cairn does not honour custom validity; kept for echoing).
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub not_before: Option<OffsetDateTime>,
    /// Requested notAfter.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub not_after: Option<OffsetDateTime>,
    /// Why the order failed.
    pub error: Option<Problem>,
    /// The issued certificate's serial once `valid`.
    pub certificate_serial: Option<Serial>,
    /// The certificate profile name.
    pub profile: Option<String>,
    /// RFC 9773 `replaces` (ARI certificate ID).
    pub replaces: Option<String>,
    /// The CSR (DER) given at finalize; kept so interrupted issuance can be resumed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[serde(with = "crate::base64_bytes::option")]
    pub csr_der: Option<Vec<u8>>,
    /// When the order was created.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// The order's status as a client should see it (RFC 8555 §7.1.6), from its stored status and
/// its authorizations' statuses at `now`.
pub fn order_status(order: &Order, authzs: &[Authorization], now: OffsetDateTime) -> OrderStatus {
    order_status_of(order, authzs.iter().map(|a| a.status_at(now)), now)
}

/// [`order_status`] from the statuses its authorizations have at `now` (see
/// [`AuthzStatus::at`]), when only those were read.
pub fn order_status_of(
    order: &Order,
    authz_statuses: impl IntoIterator<Item = AuthzStatus>,
    now: OffsetDateTime,
) -> OrderStatus {
    match order.status {
        OrderStatus::Valid | OrderStatus::Invalid => order.status,
        OrderStatus::Processing => OrderStatus::Processing,
        OrderStatus::Pending | OrderStatus::Ready => {
            if now >= order.expires {
                return OrderStatus::Invalid;
            }
            let mut any = false;
            let mut all_valid = true;
            for status in authz_statuses {
                any = true;
                match status {
                    AuthzStatus::Valid => {}
                    AuthzStatus::Pending => all_valid = false,
                    AuthzStatus::Invalid
                    | AuthzStatus::Deactivated
                    | AuthzStatus::Expired
                    | AuthzStatus::Revoked => return OrderStatus::Invalid,
                }
            }
            if any && all_valid {
                OrderStatus::Ready
            } else {
                OrderStatus::Pending
            }
        }
    }
}

/// RFC 5280 §5.3.1 revocation reasons that ACME clients may request (RFC 8555 §7.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[repr(u8)]
pub enum RevocationReason {
    /// 0
    Unspecified = 0,
    /// 1
    KeyCompromise = 1,
    /// 3
    AffiliationChanged = 3,
    /// 4
    Superseded = 4,
    /// 5
    CessationOfOperation = 5,
    /// 9
    PrivilegeWithdrawn = 9,
}

impl RevocationReason {
    /// The reason for a code, if the code is one a subscriber may use.
    pub fn from_code(code: u8) -> Option<Self> {
        Some(match code {
            0 => Self::Unspecified,
            1 => Self::KeyCompromise,
            3 => Self::AffiliationChanged,
            4 => Self::Superseded,
            5 => Self::CessationOfOperation,
            9 => Self::PrivilegeWithdrawn,
            _ => return None,
        })
    }

    /// The CRLReason code.
    pub fn code(self) -> u8 {
        self as u8
    }

    /// The reason an operator names: its RFC 5280 name in any case (`keyCompromise`) or its
    /// code (`1`), if it is one a subscriber may use.
    pub fn from_name_or_code(s: &str) -> Option<Self> {
        let by_name = match s.to_ascii_lowercase().as_str() {
            "unspecified" => Some(Self::Unspecified),
            "keycompromise" => Some(Self::KeyCompromise),
            "affiliationchanged" => Some(Self::AffiliationChanged),
            "superseded" => Some(Self::Superseded),
            "cessationofoperation" => Some(Self::CessationOfOperation),
            "privilegewithdrawn" => Some(Self::PrivilegeWithdrawn),
            _ => None,
        };
        by_name.or_else(|| s.parse::<u8>().ok().and_then(Self::from_code))
    }
}

/// A revocation record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revocation {
    /// When.
    #[serde(with = "time::serde::rfc3339")]
    pub revoked_at: OffsetDateTime,
    /// Why.
    pub reason: RevocationReason,
}

/// An issued certificate as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Certificate {
    /// Serial (primary key).
    pub serial: Serial,
    /// Owning account.
    pub account_id: AccountId,
    /// The order it finalized.
    pub order_id: OrderId,
    /// The end-entity certificate, DER.
    #[serde(with = "crate::base64_bytes")]
    pub der: Vec<u8>,
    /// The issuing intermediate's name/ID in the issuer set (selects the chain to serve).
    pub issuer_id: String,
    /// Identifiers in the certificate, sorted.
    pub identifiers: Vec<Identifier>,
    /// notBefore.
    #[serde(with = "time::serde::rfc3339")]
    pub not_before: OffsetDateTime,
    /// notAfter.
    #[serde(with = "time::serde::rfc3339")]
    pub not_after: OffsetDateTime,
    /// SHA-256 of the subject public key info, hex (key blocking, revocation by key).
    pub spki_sha256: String,
    /// Revocation, if revoked.
    pub revocation: Option<Revocation>,
    /// Set when an operator asked for early renewal (RFC 9773 ARI): from then on the suggested
    /// renewal window lies in the past.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub renew_by: Option<OffsetDateTime>,
    /// The order whose certificate replaced this one (RFC 9773 `replaces`).
    #[serde(default)]
    pub replaced_by: Option<OrderId>,
    /// The CRL shard the certificate is listed on once revoked (assigned at issuance from the
    /// serial; certificates stored before shards existed are on shard 0).
    #[serde(default)]
    pub crl_shard: u32,
}

/// An External Account Binding key (RFC 8555 §7.3.4), created by an operator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EabKey {
    /// The key identifier given to the client.
    pub key_id: String,
    /// The HMAC key.
    #[serde(with = "crate::base64_bytes")]
    pub hmac_key: Vec<u8>,
    /// When it was created.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// The account it was bound to (each key binds once).
    pub bound_account: Option<AccountId>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ChallengeStatus;
    use time::Duration;
    use time::macros::datetime;

    #[test]
    fn status_names_are_the_acme_wire_names() {
        fn wire<T: Serialize>(t: T) -> String {
            serde_json::to_value(t)
                .unwrap()
                .as_str()
                .unwrap()
                .to_owned()
        }
        for s in [
            AuthzStatus::Pending,
            AuthzStatus::Valid,
            AuthzStatus::Invalid,
            AuthzStatus::Deactivated,
            AuthzStatus::Expired,
            AuthzStatus::Revoked,
        ] {
            assert_eq!(s.as_str(), wire(s));
        }
        for s in [
            OrderStatus::Pending,
            OrderStatus::Ready,
            OrderStatus::Processing,
            OrderStatus::Valid,
            OrderStatus::Invalid,
        ] {
            assert_eq!(s.as_str(), wire(s));
        }
        for s in [
            ChallengeStatus::Pending,
            ChallengeStatus::Processing,
            ChallengeStatus::Valid,
            ChallengeStatus::Invalid,
        ] {
            assert_eq!(s.as_str(), wire(s));
        }
        for s in [
            AccountStatus::Valid,
            AccountStatus::Deactivated,
            AccountStatus::Revoked,
        ] {
            assert_eq!(s.as_str(), wire(s));
        }
    }

    #[test]
    fn revocation_reasons_by_name_or_code() {
        assert_eq!(
            RevocationReason::from_name_or_code("keyCompromise"),
            Some(RevocationReason::KeyCompromise)
        );
        assert_eq!(
            RevocationReason::from_name_or_code("PRIVILEGEWITHDRAWN"),
            Some(RevocationReason::PrivilegeWithdrawn)
        );
        assert_eq!(
            RevocationReason::from_name_or_code("4"),
            Some(RevocationReason::Superseded)
        );
        // cACompromise and certificateHold are not for leaves.
        assert_eq!(RevocationReason::from_name_or_code("2"), None);
        assert_eq!(RevocationReason::from_name_or_code("certificateHold"), None);
    }

    fn authz(status: AuthzStatus, expires: OffsetDateTime) -> Authorization {
        Authorization {
            id: AuthzId::random(),
            account_id: AccountId("a".into()),
            identifier: Identifier::dns("example.com"),
            status,
            expires,
            wildcard: false,
            challenges: vec![Challenge {
                id: ChallengeId::random(),
                typ: ChallengeType::Http01,
                token: "t".into(),
                status: ChallengeStatus::Pending,
                validated: None,
                error: None,
                validation_record: vec![],
            }],
            created_at: expires - Duration::days(7),
        }
    }

    fn order(status: OrderStatus, expires: OffsetDateTime) -> Order {
        Order {
            id: OrderId::random(),
            account_id: AccountId("a".into()),
            status,
            identifiers: vec![Identifier::dns("example.com")],
            authz_ids: vec![],
            expires,
            not_before: None,
            not_after: None,
            error: None,
            certificate_serial: None,
            profile: None,
            replaces: None,
            csr_der: None,
            created_at: expires - Duration::days(7),
        }
    }

    #[test]
    fn order_status_follows_authorizations() {
        let now = datetime!(2026-06-01 00:00 UTC);
        let later = now + Duration::days(1);
        let o = order(OrderStatus::Pending, later);
        let pending = authz(AuthzStatus::Pending, later);
        let valid = authz(AuthzStatus::Valid, later);
        let invalid = authz(AuthzStatus::Invalid, later);
        assert_eq!(
            order_status(&o, &[pending.clone(), valid.clone()], now),
            OrderStatus::Pending
        );
        assert_eq!(
            order_status(&o, &[valid.clone(), valid.clone()], now),
            OrderStatus::Ready
        );
        assert_eq!(
            order_status(&o, &[valid.clone(), invalid], now),
            OrderStatus::Invalid
        );
        // An expired authorization invalidates the order.
        let expired = authz(AuthzStatus::Valid, now - Duration::seconds(1));
        assert_eq!(
            order_status(&o, &[valid, expired], now),
            OrderStatus::Invalid
        );
        // An order without authorizations never becomes ready.
        assert_eq!(order_status(&o, &[], now), OrderStatus::Pending);
        assert_eq!(order_status_of(&o, [], now), OrderStatus::Pending);
        // From statuses alone, the same answers.
        assert_eq!(
            order_status_of(&o, [AuthzStatus::Valid, AuthzStatus::Valid], now),
            OrderStatus::Ready
        );
        assert_eq!(
            order_status_of(&o, [AuthzStatus::Valid, AuthzStatus::Pending], now),
            OrderStatus::Pending
        );
        assert_eq!(
            AuthzStatus::Valid.at(now - Duration::seconds(1), now),
            AuthzStatus::Expired
        );
        assert_eq!(AuthzStatus::Invalid.at(now, now), AuthzStatus::Invalid);
        // An expired order is invalid whatever its authorizations say.
        let old = order(OrderStatus::Pending, now);
        assert_eq!(order_status(&old, &[pending], now), OrderStatus::Invalid);
        // Final states stick.
        let done = order(OrderStatus::Valid, now - Duration::days(1));
        assert_eq!(order_status(&done, &[], now), OrderStatus::Valid);
    }

    #[test]
    fn revocation_reasons_exclude_ca_only_codes() {
        assert_eq!(
            RevocationReason::from_code(1),
            Some(RevocationReason::KeyCompromise)
        );
        for code in [2, 6, 7, 8, 10, 11] {
            assert!(RevocationReason::from_code(code).is_none());
        }
    }
}
