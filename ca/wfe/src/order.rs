//! Order, authorization and challenge endpoints (RFC 8555 §7.4, §7.5).

use crate::auth::KeyMode;
use crate::response::{AcmeResponse, AcmeResult};
use crate::{WfeState, paths, render};
use axum::extract::{Path, Request};
use axum::http::StatusCode;
use cairn_acme::messages::{AuthzUpdate, Finalize, NewOrder};
use cairn_api::{NewOrderRequest, OrderView};
use cairn_core::{AuthzId, ChallengeId, OrderId, OrderStatus, Problem};

pub(crate) async fn new_order(state: WfeState, req: Request) -> AcmeResult {
    let wfe = &state.0;
    let auth = wfe
        .authenticate(req, paths::NEW_ORDER, KeyMode::Kid)
        .await?;
    let account = auth.account()?;
    let raw: serde_json::Value = auth.jws.payload_json()?;
    if let Some(ids) = raw.get("identifiers").and_then(|v| v.as_array()) {
        for id in ids {
            let typ = id.get("type").and_then(|t| t.as_str()).unwrap_or("");
            if !matches!(typ, "dns" | "ip") {
                return Err(Problem::new(
                    cairn_core::ProblemType::UnsupportedIdentifier,
                    format!(
                        "identifier type {:?} is not supported; use \"dns\" or \"ip\"",
                        typ.chars().take(40).collect::<String>()
                    ),
                )
                .into());
            }
        }
    }
    let body: NewOrder = auth.jws.payload_json()?;
    let view = wfe
        .ra
        .new_order(
            account,
            NewOrderRequest {
                identifiers: body.identifiers,
                not_before: body.not_before,
                not_after: body.not_after,
                profile: body.profile,
                replaces: body.replaces,
            },
        )
        .await?;
    crate::log_order(view.order.id.as_str());
    Ok(AcmeResponse::json(&render::order(&auth.base, &view))
        .status(StatusCode::CREATED)
        .location(render::order_url(&auth.base, view.order.id.as_str())))
}

pub(crate) async fn order(state: WfeState, Path(id): Path<String>, req: Request) -> AcmeResult {
    let wfe = &state.0;
    crate::log_order(&id);
    let auth = wfe
        .authenticate(req, &format!("{}{id}", paths::ORDER), KeyMode::Kid)
        .await?;
    if !auth.jws.is_post_as_get() {
        return Err(
            Problem::malformed("an order is fetched with POST-as-GET (empty payload)").into(),
        );
    }
    let view = wfe.ra.get_order(auth.account()?, &OrderId(id)).await?;
    Ok(order_response(
        &auth.base,
        &view,
        wfe.ra.retry_after().as_secs(),
    ))
}

fn order_response(base: &str, view: &OrderView, retry: u64) -> AcmeResponse {
    let resp = AcmeResponse::json(&render::order(base, view))
        .location(render::order_url(base, view.order.id.as_str()));
    if view.status == OrderStatus::Processing {
        resp.retry_after(retry)
    } else {
        resp
    }
}

pub(crate) async fn finalize(state: WfeState, Path(id): Path<String>, req: Request) -> AcmeResult {
    let wfe = &state.0;
    crate::log_order(&id);
    let auth = wfe
        .authenticate(req, &format!("{}{id}/finalize", paths::ORDER), KeyMode::Kid)
        .await?;
    let body: Finalize = auth.jws.payload_json()?;
    let csr = body.decode_csr()?;
    let view = wfe.ra.finalize(auth.account()?, &OrderId(id), &csr).await?;
    Ok(order_response(
        &auth.base,
        &view,
        wfe.ra.retry_after().as_secs(),
    ))
}

/// newAuthz (RFC 8555 §7.4.1): a pre-authorization for one identifier. 201 with its URL when
/// created, 200 when the account already holds a pending or valid one for it.
pub(crate) async fn new_authz(state: WfeState, req: Request) -> AcmeResult {
    let wfe = &state.0;
    let auth = wfe
        .authenticate(req, paths::NEW_AUTHZ, KeyMode::Kid)
        .await?;
    let account = auth.account()?;
    let raw: serde_json::Value = auth.jws.payload_json()?;
    let typ = raw
        .get("identifier")
        .and_then(|i| i.get("type"))
        .and_then(|t| t.as_str());
    if let Some(typ) = typ
        && !matches!(typ, "dns" | "ip")
    {
        return Err(Problem::new(
            cairn_core::ProblemType::UnsupportedIdentifier,
            format!(
                "identifier type {:?} is not supported; use \"dns\" or \"ip\"",
                typ.chars().take(40).collect::<String>()
            ),
        )
        .into());
    }
    let body: cairn_acme::messages::NewAuthz = auth.jws.payload_json()?;
    let (authz, created) = wfe.ra.new_authorization(account, &body.identifier).await?;
    let url = format!("{}{}{}", auth.base, paths::AUTHZ, authz.id);
    let issuers = render::issuer_domain_names(&wfe.ra.directory_info().caa_identities);
    let resp =
        AcmeResponse::json(&render::authorization(&auth.base, &authz, &issuers)).location(url);
    Ok(if created {
        resp.status(StatusCode::CREATED)
    } else {
        resp
    })
}

pub(crate) async fn authorization(
    state: WfeState,
    Path(id): Path<String>,
    req: Request,
) -> AcmeResult {
    let wfe = &state.0;
    let auth = wfe
        .authenticate(req, &format!("{}{id}", paths::AUTHZ), KeyMode::Kid)
        .await?;
    let account = auth.account()?;
    let id = AuthzId(id);
    let authz = if auth.jws.is_post_as_get() {
        wfe.ra.get_authorization(account, &id).await?
    } else {
        let update: AuthzUpdate = auth.jws.payload_json()?;
        if update.status != Some(cairn_core::AuthzStatus::Deactivated) {
            return Err(Problem::malformed(
                "an authorization can only be updated to status \"deactivated\"",
            )
            .into());
        }
        wfe.ra.deactivate_authorization(account, &id).await?
    };
    let url = format!("{}{}{}", auth.base, paths::AUTHZ, authz.id);
    let issuers = render::issuer_domain_names(&wfe.ra.directory_info().caa_identities);
    Ok(AcmeResponse::json(&render::authorization(&auth.base, &authz, &issuers)).location(url))
}

pub(crate) async fn challenge(
    state: WfeState,
    Path((authz_id, chall_id)): Path<(String, String)>,
    req: Request,
) -> AcmeResult {
    let wfe = &state.0;
    let path = format!("{}{authz_id}/{chall_id}", paths::CHALLENGE);
    let auth = wfe.authenticate(req, &path, KeyMode::Kid).await?;
    let account = auth.account()?;
    let authz_id = AuthzId(authz_id);
    let chall_id = ChallengeId(chall_id);
    let authz = if auth.jws.is_post_as_get() {
        wfe.ra.get_authorization(account, &authz_id).await?
    } else {
        // RFC 8555 §7.5.1: the client responds with an empty JSON object.
        let _: serde_json::Map<String, serde_json::Value> = auth.jws.payload_json()?;
        wfe.ra
            .respond_to_challenge(account, &authz_id, &chall_id)
            .await?
    };
    let Some(chall) = authz.challenges.iter().find(|c| c.id == chall_id) else {
        return Err(Problem::not_found("challenge not found").into());
    };
    let up = format!("{}{}{}", auth.base, paths::AUTHZ, authz.id);
    let issuers = render::issuer_domain_names(&wfe.ra.directory_info().caa_identities);
    let mut resp = AcmeResponse::json(&render::challenge(&auth.base, &authz, chall, &issuers))
        .link(&up, "up")
        .location(render::challenge_url(&auth.base, &authz, chall));
    if chall.status == cairn_core::ChallengeStatus::Processing {
        resp = resp.retry_after(wfe.ra.retry_after().as_secs());
    }
    Ok(resp)
}
