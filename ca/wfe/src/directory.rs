//! The directory (RFC 8555 §7.1.1) and newNonce (§7.2).

use crate::response::AcmeResponse;
use crate::{WfeState, paths};
use axum::http::{HeaderMap, StatusCode};
use serde_json::json;

pub(crate) async fn directory(state: WfeState, headers: HeaderMap) -> AcmeResponse {
    let wfe = &state.0;
    let base = wfe.base_url(&headers);
    let cfg = &wfe.config;
    let mut meta = json!({
        "externalAccountRequired": wfe.ra.config().external_account_required,
    });
    if let Some(tos) = &cfg.terms_of_service {
        meta["termsOfService"] = json!(tos);
    }
    if let Some(site) = &cfg.website {
        meta["website"] = json!(site);
    }
    if !cfg.caa_identities.is_empty() {
        meta["caaIdentities"] = json!(cfg.caa_identities);
    }
    let dir = json!({
        "newNonce": format!("{base}{}", paths::NEW_NONCE),
        "newAccount": format!("{base}{}", paths::NEW_ACCOUNT),
        "newOrder": format!("{base}{}", paths::NEW_ORDER),
        "revokeCert": format!("{base}{}", paths::REVOKE),
        "keyChange": format!("{base}{}", paths::KEY_CHANGE),
        "meta": meta,
    });
    AcmeResponse::json(&dir)
}

/// HEAD newNonce: 200 with the nonce header (added by the middleware).
pub(crate) async fn new_nonce_head() -> AcmeResponse {
    AcmeResponse::empty()
}

/// GET newNonce: 204 (RFC 8555 §7.2).
pub(crate) async fn new_nonce_get() -> AcmeResponse {
    AcmeResponse::empty().status(StatusCode::NO_CONTENT)
}
