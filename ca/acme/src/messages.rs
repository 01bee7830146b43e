//! ACME request and response bodies (RFC 8555 §7), key authorizations (§8.1) and the dns-01 TXT value (§8.4).
//!
//! Request types ignore members they do not know (clients send extras) but are strict about the
//! types of those they do. Response types leave out absent optional members. Timestamps are
//! RFC 3339 in UTC.

use crate::base64url;
use cairn_core::{
    AccountStatus, AuthzStatus, ChallengeStatus, ChallengeType, Identifier, OrderStatus, Problem,
    ValidationRecord,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use time::OffsetDateTime;

// ---------------------------------------------------------------- requests

/// newAccount payload (RFC 8555 §7.3).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NewAccount {
    /// Contact URLs (`mailto:`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact: Option<Vec<String>>,
    /// The client agrees to the terms of service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub terms_of_service_agreed: Option<bool>,
    /// Only look up an existing account for the key; never create one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub only_return_existing: Option<bool>,
    /// The external account binding JWS (see [`crate::eab::verify_eab`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_account_binding: Option<Value>,
}

/// Account update / deactivation payload (RFC 8555 §7.3.2, §7.3.6).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AccountUpdate {
    /// New contact URLs, replacing the old ones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact: Option<Vec<String>>,
    /// `deactivated` to deactivate the account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<AccountStatus>,
}

/// newOrder payload (RFC 8555 §7.4, draft-ietf-acme-profiles, RFC 9773).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NewOrder {
    /// The identifiers the certificate is for. An identifier `type` other than `dns`/`ip`
    /// fails deserialization (and so is reported as `malformed`).
    pub identifiers: Vec<Identifier>,
    /// Requested notBefore.
    #[serde(default, with = "utc::option", skip_serializing_if = "Option::is_none")]
    pub not_before: Option<OffsetDateTime>,
    /// Requested notAfter.
    #[serde(default, with = "utc::option", skip_serializing_if = "Option::is_none")]
    pub not_after: Option<OffsetDateTime>,
    /// The certificate profile name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    /// The ARI certificate ID of the certificate this order replaces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replaces: Option<String>,
}

/// Finalize payload (RFC 8555 §7.4).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finalize {
    /// The CSR, base64url DER.
    pub csr: String,
}

impl Finalize {
    /// The CSR's DER bytes. Trailing `=` padding is tolerated.
    ///
    /// # Errors
    /// `malformed` if `csr` is empty or not base64url.
    pub fn decode_csr(&self) -> Result<Vec<u8>, Problem> {
        decode_der(&self.csr, "csr")
    }
}

/// revokeCert payload (RFC 8555 §7.6).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revocation {
    /// The certificate, base64url DER.
    pub certificate: String,
    /// The RFC 5280 CRLReason code; absent means unspecified.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<u8>,
}

impl Revocation {
    /// The certificate's DER bytes. Trailing `=` padding is tolerated.
    ///
    /// # Errors
    /// `malformed` if `certificate` is empty or not base64url.
    pub fn decode_certificate(&self) -> Result<Vec<u8>, Problem> {
        decode_der(&self.certificate, "certificate")
    }
}

/// Authorization deactivation payload (RFC 8555 §7.5.2).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthzUpdate {
    /// `deactivated` to deactivate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<AuthzStatus>,
}

/// The payload of the inner JWS of a key change (RFC 8555 §7.3.5).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KeyChangeInner {
    /// The account URL.
    pub account: String,
    /// The account's current key, as a JWK.
    pub old_key: Value,
}

fn decode_der(text: &str, member: &str) -> Result<Vec<u8>, Problem> {
    match base64url::decode_lenient(text) {
        Some(der) if !der.is_empty() => Ok(der),
        _ => Err(Problem::malformed(format!(
            "{member:?} must be base64url-encoded DER"
        ))),
    }
}

// ---------------------------------------------------------------- responses

/// The directory (RFC 8555 §7.1.1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DirectoryResponse {
    /// newNonce URL.
    pub new_nonce: String,
    /// newAccount URL.
    pub new_account: String,
    /// newOrder URL.
    pub new_order: String,
    /// revokeCert URL.
    pub revoke_cert: String,
    /// keyChange URL.
    pub key_change: String,
    /// ACME Renewal Information base URL (RFC 9773).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub renewal_info: Option<String>,
    /// newAuthz URL (RFC 8555 §7.4.1), when the server offers pre-authorization.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_authz: Option<String>,
    /// Metadata.
    #[serde(default)]
    pub meta: DirectoryMeta,
}

/// The directory's `meta` object.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DirectoryMeta {
    /// URL of the current terms of service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub terms_of_service: Option<String>,
    /// The CA's website.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub website: Option<String>,
    /// CAA issuer domain names that authorize this CA.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caa_identities: Option<Vec<String>>,
    /// Whether newAccount requires an external account binding.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_account_required: Option<bool>,
    /// Certificate profiles by name, with a human-readable description (draft-ietf-acme-profiles).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profiles: Option<BTreeMap<String, String>>,
}

/// An account object (RFC 8555 §7.1.2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AccountResponse {
    /// Account status.
    pub status: AccountStatus,
    /// Contact URLs (left out when there are none).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub contact: Vec<String>,
    /// The account's orders-list URL.
    pub orders: String,
    /// Whether the terms of service were agreed to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub terms_of_service_agreed: Option<bool>,
}

/// An order object (RFC 8555 §7.1.3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderResponse {
    /// Order status as the client should see it.
    pub status: OrderStatus,
    /// When the order expires.
    #[serde(with = "utc")]
    pub expires: OffsetDateTime,
    /// The identifiers.
    pub identifiers: Vec<Identifier>,
    /// Requested notBefore.
    #[serde(default, with = "utc::option", skip_serializing_if = "Option::is_none")]
    pub not_before: Option<OffsetDateTime>,
    /// Requested notAfter.
    #[serde(default, with = "utc::option", skip_serializing_if = "Option::is_none")]
    pub not_after: Option<OffsetDateTime>,
    /// Why the order is invalid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<Problem>,
    /// Authorization URLs.
    pub authorizations: Vec<String>,
    /// Finalize URL.
    pub finalize: String,
    /// Certificate URL, once valid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate: Option<String>,
    /// Profile name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    /// ARI certificate ID this order replaces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replaces: Option<String>,
}

/// An authorization object (RFC 8555 §7.1.4).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthorizationResponse {
    /// The identifier (for a wildcard, the base name).
    pub identifier: Identifier,
    /// Status as the client should see it.
    pub status: AuthzStatus,
    /// When it expires.
    #[serde(with = "utc")]
    pub expires: OffsetDateTime,
    /// The challenges.
    pub challenges: Vec<ChallengeResponse>,
    /// Present (and true) only for authorizations created for a wildcard.
    #[serde(default, skip_serializing_if = "is_false")]
    pub wildcard: bool,
}

/// A challenge object (RFC 8555 §7.1.5, §8).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChallengeResponse {
    /// The validation method.
    #[serde(rename = "type")]
    pub typ: ChallengeType,
    /// The challenge URL.
    pub url: String,
    /// Status.
    pub status: ChallengeStatus,
    /// The token.
    pub token: String,
    /// When it was validated.
    #[serde(default, with = "utc::option", skip_serializing_if = "Option::is_none")]
    pub validated: Option<OffsetDateTime>,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<Problem>,
    /// What the validation did.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub validation_record: Vec<ValidationRecord>,
    /// dns-persist-01 only: the issuer domain names a `_validation-persist` record may name
    /// (draft-ietf-acme-dns-persist-01 §3.1: 1 to 10 lowercase A-labels, no trailing dot).
    #[serde(
        default,
        rename = "issuer-domain-names",
        skip_serializing_if = "Option::is_none"
    )]
    pub issuer_domain_names: Option<Vec<String>>,
}

/// A newAuthz request (RFC 8555 §7.4.1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewAuthz {
    /// The identifier to pre-authorize.
    pub identifier: Identifier,
}

/// An orders list (RFC 8555 §7.1.2.1).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrdersList {
    /// Order URLs.
    pub orders: Vec<String>,
}

fn is_false(b: &bool) -> bool {
    !*b
}

// ---------------------------------------------------------------- challenges

/// The key authorization for a challenge token (RFC 8555 §8.1): `token || '.' || thumbprint`,
/// where `thumbprint` is the account key's RFC 7638 thumbprint ([`crate::Jwk::thumbprint`]).
pub fn key_authorization(token: &str, thumbprint: &str) -> String {
    format!("{token}.{thumbprint}")
}

/// The dns-01 TXT record value (RFC 8555 §8.4): base64url of the SHA-256 of the key
/// authorization.
pub fn dns01_txt_value(key_authorization: &str) -> String {
    base64url::encode(aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA256,
        key_authorization.as_bytes(),
    ))
}

/// RFC 3339 timestamps, always written in UTC; parsed ones are converted to UTC.
mod utc {
    use serde::{Deserializer, Serializer};
    use time::{OffsetDateTime, UtcOffset};

    pub(super) fn serialize<S: Serializer>(t: &OffsetDateTime, s: S) -> Result<S::Ok, S::Error> {
        time::serde::rfc3339::serialize(&t.to_offset(UtcOffset::UTC), s)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<OffsetDateTime, D::Error> {
        time::serde::rfc3339::deserialize(d).map(|t| t.to_offset(UtcOffset::UTC))
    }

    pub(super) mod option {
        use serde::{Deserializer, Serializer};
        use time::{OffsetDateTime, UtcOffset};

        pub(in super::super) fn serialize<S: Serializer>(
            t: &Option<OffsetDateTime>,
            s: S,
        ) -> Result<S::Ok, S::Error> {
            time::serde::rfc3339::option::serialize(&t.map(|t| t.to_offset(UtcOffset::UTC)), s)
        }

        pub(in super::super) fn deserialize<'de, D: Deserializer<'de>>(
            d: D,
        ) -> Result<Option<OffsetDateTime>, D::Error> {
            time::serde::rfc3339::option::deserialize(d)
                .map(|t| t.map(|t| t.to_offset(UtcOffset::UTC)))
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use cairn_core::{IdentifierType, ProblemType};
    use serde_json::json;
    use time::macros::datetime;

    fn parse<T: serde::de::DeserializeOwned>(v: Value) -> Result<T, serde_json::Error> {
        serde_json::from_value(v)
    }

    #[test]
    fn new_account_ignores_extras_but_checks_types() {
        let a: NewAccount = parse(json!({
            "contact": ["mailto:admin@example.com"],
            "termsOfServiceAgreed": true,
            "someFutureField": {"x": 1},
        }))
        .unwrap();
        assert_eq!(
            a.contact.as_deref(),
            Some(&["mailto:admin@example.com".to_owned()][..])
        );
        assert_eq!(a.terms_of_service_agreed, Some(true));
        assert_eq!(a.only_return_existing, None);
        let empty: NewAccount = parse(json!({})).unwrap();
        assert_eq!(empty, NewAccount::default());

        assert!(parse::<NewAccount>(json!({"contact": "mailto:a@example.com"})).is_err());
        assert!(parse::<NewAccount>(json!({"termsOfServiceAgreed": "yes"})).is_err());
        assert!(parse::<NewAccount>(json!({"onlyReturnExisting": 1})).is_err());
    }

    #[test]
    fn account_and_authz_updates() {
        let u: AccountUpdate = parse(json!({"status": "deactivated"})).unwrap();
        assert_eq!(u.status, Some(AccountStatus::Deactivated));
        assert!(parse::<AccountUpdate>(json!({"status": "gone"})).is_err());
        let z: AuthzUpdate = parse(json!({"status": "deactivated", "extra": true})).unwrap();
        assert_eq!(z.status, Some(AuthzStatus::Deactivated));
        assert!(parse::<AuthzUpdate>(json!({"status": 1})).is_err());
    }

    #[test]
    fn new_order_parses_times_to_utc() {
        let o: NewOrder = parse(json!({
            "identifiers": [{"type": "dns", "value": "example.com"}, {"type": "ip", "value": "192.0.2.1"}],
            "notBefore": "2026-01-01T02:00:00+02:00",
            "profile": "tlsserver",
            "extra": null,
        }))
        .unwrap();
        assert_eq!(o.identifiers.len(), 2);
        assert_eq!(o.identifiers[1].typ, IdentifierType::Ip);
        assert_eq!(o.not_before, Some(datetime!(2026-01-01 00:00 UTC)));
        assert_eq!(o.not_before.map(|t| t.offset().is_utc()), Some(true));
        assert_eq!(o.not_after, None);
        assert_eq!(o.profile.as_deref(), Some("tlsserver"));

        assert!(
            parse::<NewOrder>(json!({})).is_err(),
            "identifiers is required"
        );
        assert!(
            parse::<NewOrder>(json!({"identifiers": [{"type": "email", "value": "a@b"}]})).is_err()
        );
        assert!(parse::<NewOrder>(json!({"identifiers": [], "notAfter": "tomorrow"})).is_err());
        assert!(parse::<NewOrder>(json!({"identifiers": [], "notAfter": 1767225600})).is_err());
    }

    #[test]
    fn finalize_and_revocation_decode_der() {
        let f: Finalize = parse(json!({"csr": "MIIBAA"})).unwrap();
        assert_eq!(f.decode_csr().unwrap(), vec![0x30, 0x82, 0x01, 0x00]);
        let padded = Finalize {
            csr: "MIIBAA==".into(),
        };
        assert_eq!(padded.decode_csr().unwrap(), vec![0x30, 0x82, 0x01, 0x00]);
        for bad in ["", "MIIB+A", "not base64!"] {
            let p = Finalize { csr: bad.into() }.decode_csr().unwrap_err();
            assert_eq!(p.typ, ProblemType::Malformed);
        }
        assert!(parse::<Finalize>(json!({"csr": ["MIIBAA"]})).is_err());

        let r: Revocation = parse(json!({"certificate": "MIIBAA", "reason": 4})).unwrap();
        assert_eq!(r.reason, Some(4));
        assert_eq!(r.decode_certificate().unwrap().len(), 4);
        assert!(parse::<Revocation>(json!({"certificate": "MIIBAA", "reason": 400})).is_err());
        assert!(parse::<Revocation>(json!({"certificate": "MIIBAA", "reason": "1"})).is_err());
        assert!(parse::<Revocation>(json!({"reason": 1})).is_err());
    }

    #[test]
    fn key_change_inner_uses_camel_case() {
        let k: KeyChangeInner =
            parse(json!({"account": "https://ca.example/acct/1", "oldKey": {"kty": "EC"}}))
                .unwrap();
        assert_eq!(k.old_key, json!({"kty": "EC"}));
        assert!(parse::<KeyChangeInner>(json!({"account": "a", "old_key": {}})).is_err());
    }

    #[test]
    fn directory_leaves_out_absent_members() {
        let d = DirectoryResponse {
            new_nonce: "n".into(),
            new_account: "a".into(),
            new_order: "o".into(),
            revoke_cert: "r".into(),
            key_change: "k".into(),
            renewal_info: None,
            new_authz: None,
            meta: DirectoryMeta {
                terms_of_service: Some("https://ca.example/tos".into()),
                external_account_required: Some(false),
                profiles: Some(BTreeMap::from([(
                    "classic".to_owned(),
                    "90 days".to_owned(),
                )])),
                ..DirectoryMeta::default()
            },
        };
        let v = serde_json::to_value(&d).unwrap();
        assert_eq!(
            v,
            json!({
                "newNonce": "n", "newAccount": "a", "newOrder": "o", "revokeCert": "r", "keyChange": "k",
                "meta": {
                    "termsOfService": "https://ca.example/tos",
                    "externalAccountRequired": false,
                    "profiles": {"classic": "90 days"},
                }
            })
        );
    }

    #[test]
    fn order_and_authorization_wire_form() {
        let offset = datetime!(2026-03-01 12:00:00.5 +01:00);
        let o = OrderResponse {
            status: OrderStatus::Invalid,
            expires: offset,
            identifiers: vec![Identifier::dns("example.com")],
            not_before: None,
            not_after: None,
            error: Some(Problem::new(ProblemType::Unauthorized, "no")),
            authorizations: vec!["https://ca.example/authz/1".into()],
            finalize: "https://ca.example/finalize/1".into(),
            certificate: None,
            profile: None,
            replaces: None,
        };
        let v = serde_json::to_value(&o).unwrap();
        assert_eq!(v["expires"], "2026-03-01T11:00:00.5Z");
        assert_eq!(
            v["error"]["type"],
            "urn:ietf:params:acme:error:unauthorized"
        );
        assert!(v.get("certificate").is_none() && v.get("notBefore").is_none());
        assert_eq!(serde_json::from_value::<OrderResponse>(v).unwrap(), o);

        let ch = ChallengeResponse {
            typ: ChallengeType::Dns01,
            url: "https://ca.example/chall/1".into(),
            status: ChallengeStatus::Pending,
            token: "tok".into(),
            validated: None,
            error: None,
            validation_record: vec![],
            issuer_domain_names: None,
        };
        let mut a = AuthorizationResponse {
            identifier: Identifier::dns("example.com"),
            status: AuthzStatus::Pending,
            expires: datetime!(2026-03-08 00:00 UTC),
            challenges: vec![ch],
            wildcard: false,
        };
        let v = serde_json::to_value(&a).unwrap();
        assert!(v.get("wildcard").is_none());
        assert_eq!(v["expires"], "2026-03-08T00:00:00Z");
        assert_eq!(
            v["challenges"][0],
            json!({"type": "dns-01", "url": "https://ca.example/chall/1", "status": "pending", "token": "tok"})
        );
        a.wildcard = true;
        assert_eq!(serde_json::to_value(&a).unwrap()["wildcard"], true);
    }

    #[test]
    fn account_response_and_orders_list() {
        let a = AccountResponse {
            status: AccountStatus::Valid,
            contact: vec![],
            orders: "https://ca.example/acct/1/orders".into(),
            terms_of_service_agreed: Some(true),
        };
        assert_eq!(
            serde_json::to_value(&a).unwrap(),
            json!({"status": "valid", "orders": "https://ca.example/acct/1/orders", "termsOfServiceAgreed": true})
        );
        let l = OrdersList {
            orders: vec!["u".into()],
        };
        assert_eq!(serde_json::to_value(&l).unwrap(), json!({"orders": ["u"]}));
    }

    #[test]
    fn key_authorization_and_dns01_value() {
        // RFC 8555 §8.1/§8.4 arithmetic, checked against an independent SHA-256 computation:
        // SHA-256("abc") = ba7816bf...f20015ad.
        assert_eq!(
            dns01_txt_value("abc"),
            "ungWv48Bz-pBQUDeXa4iI7ADYaOWF3qctBD_YfIAFa0"
        );
        assert_eq!(key_authorization("tok", "thumb"), "tok.thumb");
        let thumb = "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs";
        let ka = key_authorization("evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92wr-oA", thumb);
        assert_eq!(ka.len(), 43 + 1 + 43);
        assert_eq!(dns01_txt_value(&ka).len(), 43);
    }
}
