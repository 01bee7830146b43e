//! Account endpoints: newAccount (§7.3, with EAB §7.3.4), the account resource (update and
//! deactivate §7.3.2, §7.3.6), the account's orders list (§7.1.2.1) and key rollover (§7.3.5).

use crate::auth::KeyMode;
use crate::response::{AcmeResponse, AcmeResult, ProblemResponse};
use crate::{WfeState, paths, render};
use axum::extract::{Path, Request};
use axum::http::StatusCode;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use cairn_acme::jwk::Jwk;
use cairn_acme::messages::{AccountUpdate, NewAccount, OrdersList};
use cairn_api::{KeyChangeError, NewAccountRequest};
use cairn_core::{AccountStatus, Problem, ProblemType};

pub(crate) async fn new_account(state: WfeState, req: Request) -> AcmeResult {
    let wfe = &state.0;
    let remote_ip = req
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip().to_string());
    let auth = wfe
        .authenticate(req, paths::NEW_ACCOUNT, KeyMode::Jwk)
        .await?;
    let jwk = auth
        .jwk
        .clone()
        .ok_or_else(|| Problem::malformed("newAccount must be signed with a jwk"))?;
    let body: NewAccount = auth.jws.payload_json()?;
    let thumbprint = jwk.thumbprint();
    if body.only_return_existing == Some(true) {
        let account = wfe.ra.get_account_by_key(&thumbprint).await?;
        crate::log_account(account.id.as_str());
        refuse_unusable(&account)?;
        return Ok(AcmeResponse::json(&render::account(&auth.base, &account))
            .location(render::account_url(&auth.base, &account)));
    }
    let eab_key_id = match &body.external_account_binding {
        None => None,
        Some(eab) => {
            let kid = eab_kid(eab)?;
            let Some(hmac) = wfe.ra.eab_hmac_key(&kid).await? else {
                return Err(
                    Problem::unauthorized("unknown external account binding key ID").into(),
                );
            };
            let url = format!("{}{}", auth.base, paths::NEW_ACCOUNT);
            let verified = cairn_acme::verify_eab(eab, &jwk, &url, |_| Some(hmac))?;
            Some(verified)
        }
    };
    let (account, created) = wfe
        .ra
        .new_account(NewAccountRequest {
            jwk: jwk.to_value(),
            thumbprint,
            contact: body.contact.unwrap_or_default(),
            terms_of_service_agreed: body.terms_of_service_agreed.unwrap_or(false),
            eab_key_id,
            remote_ip,
        })
        .await?;
    crate::log_account(account.id.as_str());
    refuse_unusable(&account)?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok(AcmeResponse::json(&render::account(&auth.base, &account))
        .status(status)
        .location(render::account_url(&auth.base, &account)))
}

/// newAccount for the key of a deactivated or revoked account is `unauthorized` (403), as
/// Boulder and Pebble answer: the account can't be used, and a 200 would tell the client it can.
fn refuse_unusable(account: &cairn_core::Account) -> Result<(), ProblemResponse> {
    if account.status == AccountStatus::Valid {
        return Ok(());
    }
    Err(Problem::unauthorized(format!(
        "the account for this key is {}",
        account.status.as_str()
    ))
    .into())
}

/// The `kid` of an EAB JWS, read from its protected header before the MAC can be checked.
fn eab_kid(eab: &serde_json::Value) -> Result<String, ProblemResponse> {
    let malformed = || Problem::malformed("externalAccountBinding is not a valid JWS");
    let protected = eab
        .get("protected")
        .and_then(|p| p.as_str())
        .ok_or_else(malformed)?;
    let bytes = URL_SAFE_NO_PAD.decode(protected).map_err(|_| malformed())?;
    let header: serde_json::Value = serde_json::from_slice(&bytes).map_err(|_| malformed())?;
    header
        .get("kid")
        .and_then(|k| k.as_str())
        .map(str::to_owned)
        .ok_or_else(|| malformed().into())
}

pub(crate) async fn account(state: WfeState, Path(id): Path<String>, req: Request) -> AcmeResult {
    let wfe = &state.0;
    let path = format!("{}{id}", paths::ACCOUNT);
    let auth = wfe.authenticate(req, &path, KeyMode::Kid).await?;
    let account = auth.account()?.clone();
    if account.id.as_str() != id {
        return Err(Problem::unauthorized("the request is signed by a different account").into());
    }
    let url = render::account_url(&auth.base, &account);
    if auth.jws.is_post_as_get() {
        return Ok(AcmeResponse::json(&render::account(&auth.base, &account)).location(url));
    }
    let update: AccountUpdate = auth.jws.payload_json()?;
    let deactivate = match update.status {
        None | Some(AccountStatus::Valid) => false,
        Some(AccountStatus::Deactivated) => true,
        Some(AccountStatus::Revoked) => {
            return Err(Problem::malformed(
                "an account's status can only be changed to \"deactivated\"",
            )
            .into());
        }
    };
    // Whatever the outcome, this WFE's next request for the account asks the RA again: a
    // refusal may mean the cached copy was stale.
    let id = account.id.clone();
    let updated = wfe
        .ra
        .update_account(account, update.contact, deactivate)
        .await;
    wfe.accounts.remove(&id);
    let account = updated?;
    Ok(AcmeResponse::json(&render::account(&auth.base, &account)).location(url))
}

/// The largest order-list offset a cursor may reach (a database OFFSET is a signed 64-bit
/// integer; no account has this many orders).
const MAX_ORDERS_OFFSET: u64 = 1 << 40;

pub(crate) async fn orders(state: WfeState, Path(id): Path<String>, req: Request) -> AcmeResult {
    let wfe = &state.0;
    let page: u64 = req
        .uri()
        .query()
        .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("cursor=")))
        .map(|c| c.parse().map_err(|_| Problem::malformed("invalid cursor")))
        .transpose()?
        .unwrap_or(0);
    let path = match req.uri().query() {
        Some(q) => format!("{}{id}/orders?{q}", paths::ACCOUNT),
        None => format!("{}{id}/orders", paths::ACCOUNT),
    };
    let auth = wfe.authenticate(req, &path, KeyMode::Kid).await?;
    let account = auth.account()?;
    if account.id.as_str() != id {
        return Err(Problem::unauthorized("the request is signed by a different account").into());
    }
    let per_page = wfe.config.orders_per_page.max(1);
    // The cursor is the client's: a page past any the database can offset to is malformed.
    if page
        .checked_mul(per_page)
        .is_none_or(|offset| offset > MAX_ORDERS_OFFSET)
    {
        return Err(Problem::malformed("cursor is out of range").into());
    }
    let (ids, more) = wfe.ra.list_orders(account, page, per_page).await?;
    let urls: Vec<String> = ids
        .iter()
        .map(|o| render::order_url(&auth.base, o.as_str()))
        .collect();
    let list = serde_json::to_value(OrdersList { orders: urls }).unwrap_or_default();
    let mut resp = AcmeResponse::json(&list);
    if more {
        let next = format!(
            "{}/orders?cursor={}",
            render::account_url(&auth.base, account),
            page + 1
        );
        resp = resp.link(&next, "next");
    }
    Ok(resp)
}

pub(crate) async fn key_change(state: WfeState, req: Request) -> AcmeResult {
    let wfe = &state.0;
    let auth = wfe
        .authenticate(req, paths::KEY_CHANGE, KeyMode::Kid)
        .await?;
    let account = auth.account()?.clone();
    let account_url = render::account_url(&auth.base, &account);
    let current = Jwk::from_value(&account.jwk).map_err(|e| {
        tracing::error!(account = %account.id, error = %e, "stored account key does not parse");
        Problem::internal()
    })?;
    // Checks the inner signature, `account` = our kid, `oldKey` = the current key.
    let new_key = cairn_acme::verify_key_change(&auth.jws, &current)?.new_key;
    let new_thumbprint = new_key.thumbprint();
    let changed = wfe
        .ra
        .change_key(&account, new_key.to_value(), &new_thumbprint)
        .await;
    wfe.accounts.remove(&account.id);
    match changed {
        Ok(updated) => {
            Ok(AcmeResponse::json(&render::account(&auth.base, &updated)).location(account_url))
        }
        Err(KeyChangeError::KeyInUse(other)) => {
            let url = format!("{}{}{}", auth.base, paths::ACCOUNT, other);
            Err(ProblemResponse::from(
                Problem::new(
                    ProblemType::Malformed,
                    "the new key is already in use by an account",
                )
                .with_status(409),
            )
            .with_location(url))
        }
        Err(KeyChangeError::Problem(p)) => Err(p.into()),
    }
}
