//! Request authentication (RFC 8555 §6.2–6.5): content type, body size, JWS parsing and
//! signature, the `url` header, the nonce, and the account behind a `kid`.

use crate::response::ProblemResponse;
use crate::{KeyedAccount, Wfe};
use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderMap, header};
use cairn_acme::jwk::Jwk;
use cairn_acme::jws::{KeyRef, ParsedJws};
use cairn_core::{Account, AccountId, AccountStatus, Problem, ProblemType};
use std::sync::Arc;

/// Which key a request must be signed with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeyMode {
    /// An existing account's key, named by `kid`.
    Kid,
    /// A key carried in the request (`jwk`): newAccount, key-change's outer JWS uses kid.
    Jwk,
    /// Either (revokeCert).
    Either,
}

/// An authenticated request.
#[derive(Debug)]
pub(crate) struct Authenticated {
    /// The parsed JWS.
    pub(crate) jws: ParsedJws,
    /// The account for `kid` requests.
    pub(crate) account: Option<Account>,
    /// The embedded key for `jwk` requests.
    pub(crate) jwk: Option<Jwk>,
    /// The base URL the request was made against.
    pub(crate) base: String,
}

impl Authenticated {
    /// The account (present for `KeyMode::Kid`).
    pub(crate) fn account(&self) -> Result<&Account, ProblemResponse> {
        self.account
            .as_ref()
            .ok_or_else(|| Problem::malformed("this request must be signed with kid").into())
    }
}

impl Wfe {
    /// Authenticates a POST to `path` (relative to the base URL).
    pub(crate) async fn authenticate(
        &self,
        req: Request,
        path: &str,
        mode: KeyMode,
    ) -> Result<Authenticated, ProblemResponse> {
        let (parts, body) = req.into_parts();
        let base = self.base_url(&parts.uri, &parts.headers);
        check_content_type(&parts.headers)?;
        let body = read_body(body).await?;
        let jws = ParsedJws::parse(&body)?;
        let expected_url = format!("{base}{path}");
        if jws.header.url != expected_url {
            return Err(Problem::unauthorized(format!(
                "the JWS url header {:?} does not match the request URL {expected_url:?}",
                truncate(&jws.header.url)
            ))
            .into());
        }
        let (account, jwk) = match (&jws.header.key, mode) {
            (KeyRef::Kid(kid), KeyMode::Kid | KeyMode::Either) => {
                let KeyedAccount { account, key } = self.account_for_kid(&base, kid).await?;
                crate::log_account(account.id.as_str());
                jws.verify_with(&key)?;
                (Some(account), None)
            }
            (KeyRef::Jwk(jwk), KeyMode::Jwk | KeyMode::Either) => {
                jws.verify_with(jwk)?;
                (None, Some(jwk.clone()))
            }
            (KeyRef::Kid(_), KeyMode::Jwk) => {
                return Err(Problem::malformed("this request must carry a jwk, not a kid").into());
            }
            (KeyRef::Jwk(_), KeyMode::Kid) => {
                return Err(Problem::malformed("this request must carry a kid, not a jwk").into());
            }
        };
        if !self.nonces.redeem(&jws.header.nonce).await.unwrap_or(false) {
            return Err(Problem::new(
                ProblemType::BadNonce,
                "the nonce is unknown, expired or already used; retry with a fresh one",
            )
            .into());
        }
        if let Some(acct) = &account
            && acct.status != AccountStatus::Valid
        {
            return Err(Problem::unauthorized(format!(
                "the account is {}",
                match acct.status {
                    AccountStatus::Deactivated => "deactivated",
                    _ => "revoked",
                }
            ))
            .into());
        }
        Ok(Authenticated {
            jws,
            account,
            jwk,
            base,
        })
    }

    /// The account `kid` names with its parsed key, from the cache or else from the RA.
    async fn account_for_kid(
        &self,
        base: &str,
        kid: &str,
    ) -> Result<KeyedAccount, ProblemResponse> {
        let prefix = format!("{base}{}", crate::paths::ACCOUNT);
        let Some(id) = kid
            .strip_prefix(&prefix)
            .filter(|id| !id.is_empty() && !id.contains('/'))
        else {
            return Err(Problem::new(
                ProblemType::AccountDoesNotExist,
                "the kid is not an account URL of this server",
            )
            .into());
        };
        let id = AccountId(id.to_owned());
        if let Some(account) = self.accounts.get(&id) {
            return Ok(account);
        }
        // A change of this account through this WFE while the RA answers must not be undone
        // by caching the answer.
        let epoch = self.accounts.epoch();
        let account = self.ra.get_account(&id).await?;
        let key = Jwk::from_value(&account.jwk).map_err(|e| {
            tracing::error!(account = %account.id, error = %e, "stored account key does not parse");
            Problem::internal()
        })?;
        let keyed = KeyedAccount {
            account,
            key: Arc::new(key),
        };
        self.accounts.put_unless_removed(epoch, id, keyed.clone());
        Ok(keyed)
    }
}

fn check_content_type(headers: &HeaderMap) -> Result<(), ProblemResponse> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let mime = ct.split(';').next().unwrap_or("").trim();
    if mime.eq_ignore_ascii_case("application/jose+json") {
        Ok(())
    } else {
        Err(
            Problem::malformed("the Content-Type must be application/jose+json")
                .with_status(415)
                .into(),
        )
    }
}

async fn read_body(body: Body) -> Result<Vec<u8>, ProblemResponse> {
    axum::body::to_bytes(body, crate::MAX_BODY_BYTES)
        .await
        .map(|b| b.to_vec())
        .map_err(|_| {
            Problem::malformed(format!(
                "the request body is larger than {} bytes",
                crate::MAX_BODY_BYTES
            ))
            .with_status(413)
            .into()
        })
}

fn truncate(s: &str) -> String {
    s.chars().take(200).collect()
}
