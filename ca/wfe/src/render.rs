//! Views of ACME resources (RFC 8555 §7.1.2–7.1.5): domain objects into the wire types of
//! `cairn_acme::messages`, with this server's URLs.

use crate::paths;
use cairn_acme::messages::{
    AccountResponse, AuthorizationResponse, ChallengeResponse, OrderResponse,
};
use cairn_api::OrderView;
use cairn_core::{
    Account, Authorization, AuthzStatus, Challenge, ChallengeStatus, ChallengeType, OrderStatus,
};
use serde_json::Value;

pub(crate) fn rfc3339(t: time::OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

fn to_json<T: serde::Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

pub(crate) fn account_url(base: &str, account: &Account) -> String {
    format!("{base}{}{}", paths::ACCOUNT, account.id)
}

pub(crate) fn account(base: &str, account: &Account) -> Value {
    to_json(&AccountResponse {
        status: account.status,
        contact: account.contact.clone(),
        orders: format!("{}/orders", account_url(base, account)),
        // Accounts are only created with agreement (see the RA).
        terms_of_service_agreed: Some(true),
    })
}

pub(crate) fn order_url(base: &str, id: &str) -> String {
    format!("{base}{}{id}", paths::ORDER)
}

pub(crate) fn order(base: &str, view: &OrderView) -> Value {
    let o = &view.order;
    to_json(&OrderResponse {
        status: view.status,
        expires: o.expires,
        identifiers: o.identifiers.clone(),
        not_before: o.not_before,
        not_after: o.not_after,
        error: (view.status == OrderStatus::Invalid)
            .then(|| o.error.clone())
            .flatten(),
        authorizations: o
            .authz_ids
            .iter()
            .map(|a| format!("{base}{}{a}", paths::AUTHZ))
            .collect(),
        finalize: format!("{}/finalize", order_url(base, o.id.as_str())),
        certificate: (view.status == OrderStatus::Valid)
            .then(|| {
                o.certificate_serial
                    .as_ref()
                    .map(|s| format!("{base}{}{s}", paths::CERT))
            })
            .flatten(),
        profile: o.profile.clone(),
        replaces: o.replaces.clone(),
    })
}

pub(crate) fn challenge_url(base: &str, authz: &Authorization, c: &Challenge) -> String {
    format!("{base}{}{}/{}", paths::CHALLENGE, authz.id, c.id)
}

/// The issuer domain names a dns-persist-01 challenge lists: the CA's CAA identities as
/// lowercase names without a trailing dot, at most 10 (draft-ietf-acme-dns-persist-01 §3.1).
pub(crate) fn issuer_domain_names(caa_identities: &[String]) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for n in caa_identities {
        let n = n.trim_end_matches('.').to_ascii_lowercase();
        if !n.is_empty() && n.len() <= 253 && !names.contains(&n) {
            names.push(n);
        }
    }
    names.truncate(10);
    names
}

fn challenge_response(
    base: &str,
    authz: &Authorization,
    c: &Challenge,
    issuers: &[String],
) -> ChallengeResponse {
    ChallengeResponse {
        issuer_domain_names: (c.typ == ChallengeType::DnsPersist01).then(|| issuers.to_vec()),
        typ: c.typ,
        url: challenge_url(base, authz, c),
        status: c.status,
        token: c.token.clone(),
        validated: c.validated,
        error: c.error.clone(),
        validation_record: c.validation_record.clone(),
    }
}

pub(crate) fn challenge(
    base: &str,
    authz: &Authorization,
    c: &Challenge,
    issuers: &[String],
) -> Value {
    to_json(&challenge_response(base, authz, c, issuers))
}

pub(crate) fn authorization(base: &str, authz: &Authorization, issuers: &[String]) -> Value {
    // RFC 8555 §7.1.4: a valid authorization lists only the challenge that validated it.
    let challenges = authz
        .challenges
        .iter()
        .filter(|c| authz.status != AuthzStatus::Valid || c.status == ChallengeStatus::Valid)
        .map(|c| challenge_response(base, authz, c, issuers))
        .collect();
    to_json(&AuthorizationResponse {
        identifier: authz.identifier.clone(),
        status: authz.status,
        expires: authz.expires,
        challenges,
        wildcard: authz.wildcard,
    })
}
