//! The directory (RFC 8555 §7.1.1) and newNonce (§7.2).

use crate::response::AcmeResponse;
use crate::{WfeState, paths};
use axum::http::{HeaderMap, StatusCode, Uri};
use cairn_acme::messages::{DirectoryMeta, DirectoryResponse};

pub(crate) async fn directory(state: WfeState, uri: Uri, headers: HeaderMap) -> AcmeResponse {
    let wfe = &state.0;
    let base = wfe.base_url(&uri, &headers);
    let cfg = &wfe.config;
    let ra = wfe.ra.directory_info();
    let dir = DirectoryResponse {
        new_nonce: format!("{base}{}", paths::NEW_NONCE),
        new_account: format!("{base}{}", paths::NEW_ACCOUNT),
        new_order: format!("{base}{}", paths::NEW_ORDER),
        revoke_cert: format!("{base}{}", paths::REVOKE),
        key_change: format!("{base}{}", paths::KEY_CHANGE),
        renewal_info: Some(format!("{base}{}", paths::RENEWAL_INFO)),
        new_authz: Some(format!("{base}{}", paths::NEW_AUTHZ)),
        meta: DirectoryMeta {
            terms_of_service: cfg.terms_of_service.clone(),
            website: cfg.website.clone(),
            caa_identities: Some(ra.caa_identities).filter(|ids| !ids.is_empty()),
            external_account_required: Some(ra.external_account_required),
            profiles: Some(ra.profiles),
        },
    };
    let dir = serde_json::to_value(&dir).unwrap_or_default();
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
