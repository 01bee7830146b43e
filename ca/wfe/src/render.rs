//! JSON views of ACME resources (RFC 8555 §7.1.2–7.1.5), built from the domain model.

use crate::paths;
use cairn_core::{
    Account, AccountStatus, Authorization, AuthzStatus, Challenge, ChallengeStatus, OrderStatus,
};
use cairn_ra::OrderView;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

pub(crate) fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_default()
}

fn lower<T: serde::Serialize>(v: T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

pub(crate) fn account_url(base: &str, account: &Account) -> String {
    format!("{base}{}{}", paths::ACCOUNT, account.id)
}

pub(crate) fn account(base: &str, account: &Account) -> Value {
    json!({
        "status": lower(account.status),
        "contact": account.contact,
        "orders": format!("{}/orders", account_url(base, account)),
        "termsOfServiceAgreed": account.status == AccountStatus::Valid,
        "key": account.jwk,
        "createdAt": rfc3339(account.created_at),
    })
}

pub(crate) fn order_url(base: &str, id: &str) -> String {
    format!("{base}{}{id}", paths::ORDER)
}

pub(crate) fn order(base: &str, view: &OrderView) -> Value {
    let o = &view.order;
    let mut v = json!({
        "status": lower(view.status),
        "expires": rfc3339(o.expires),
        "identifiers": o.identifiers,
        "authorizations": o.authz_ids.iter().map(|a| format!("{base}{}{a}", paths::AUTHZ)).collect::<Vec<_>>(),
        "finalize": format!("{}/finalize", order_url(base, o.id.as_str())),
    });
    if let Some(nb) = o.not_before {
        v["notBefore"] = json!(rfc3339(nb));
    }
    if let Some(na) = o.not_after {
        v["notAfter"] = json!(rfc3339(na));
    }
    if let Some(p) = &o.profile {
        v["profile"] = json!(p);
    }
    if let Some(r) = &o.replaces {
        v["replaces"] = json!(r);
    }
    if view.status == OrderStatus::Invalid
        && let Some(e) = &o.error
    {
        v["error"] = lower(e);
    }
    if view.status == OrderStatus::Valid
        && let Some(serial) = &o.certificate_serial
    {
        v["certificate"] = json!(format!("{base}{}{serial}", paths::CERT));
    }
    v
}

pub(crate) fn challenge_url(base: &str, authz: &Authorization, c: &Challenge) -> String {
    format!("{base}{}{}/{}", paths::CHALLENGE, authz.id, c.id)
}

pub(crate) fn challenge(base: &str, authz: &Authorization, c: &Challenge) -> Value {
    let mut v = json!({
        "type": c.typ.as_str(),
        "url": challenge_url(base, authz, c),
        "status": lower(c.status),
        "token": c.token,
    });
    if let Some(t) = c.validated {
        v["validated"] = json!(rfc3339(t));
    }
    if let Some(e) = &c.error {
        v["error"] = lower(e);
    }
    if !c.validation_record.is_empty() {
        v["validationRecord"] = lower(&c.validation_record);
    }
    v
}

pub(crate) fn authorization(base: &str, authz: &Authorization) -> Value {
    // RFC 8555 §7.1.4: a valid authorization lists only the challenge that validated it.
    let challenges: Vec<Value> = authz
        .challenges
        .iter()
        .filter(|c| authz.status != AuthzStatus::Valid || c.status == ChallengeStatus::Valid)
        .map(|c| challenge(base, authz, c))
        .collect();
    let mut v = json!({
        "identifier": authz.identifier,
        "status": lower(authz.status),
        "expires": rfc3339(authz.expires),
        "challenges": challenges,
    });
    if authz.wildcard {
        v["wildcard"] = json!(true);
    }
    v
}
