//! One complete issuance: newOrder → authorizations → challenge → poll → finalize → poll →
//! download, optionally naming the certificate it replaces, optionally revoking the result.

use crate::client::{Account, FlowError, b64url};
use crate::responder::Http01Responder;
use crate::stats::Endpoint;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::{Duration, Instant};
use url::Url;

/// How challenges are answered.
#[derive(Debug, Clone)]
pub enum ChallengeMode {
    /// http-01 from the built-in responder (the server must connect to its port).
    Http01(Arc<Http01Responder>),
    /// dns-01 TXT records set through a challenge test server's management API
    /// (pebble-challtestsrv compatible) at this base URL.
    Dns01(Url),
    /// dns-account-01 TXT records (at the account's label) set through a challenge test
    /// server's management API (Cairn's `/set-dns-account01` extension) at this base URL.
    DnsAccount01(Url),
    /// dns-persist-01: a standing `_validation-persist` record per name and account, added
    /// once through a challenge test server's management API (Cairn's `/add-persist-txt`
    /// extension) and never withdrawn, so renewals make no DNS change.
    DnsPersist01(Url),
}

impl ChallengeMode {
    fn type_name(&self) -> &'static str {
        match self {
            ChallengeMode::Http01(_) => "http-01",
            ChallengeMode::Dns01(_) => "dns-01",
            ChallengeMode::DnsAccount01(_) => "dns-account-01",
            ChallengeMode::DnsPersist01(_) => "dns-persist-01",
        }
    }
}

/// A certificate a flow obtained.
#[derive(Debug, Clone)]
pub(crate) struct Issued {
    /// The DNS names it was ordered for.
    pub(crate) names: Vec<String>,
    /// Its RFC 9773 identifier (for `replaces`), if it has an authority key identifier.
    pub(crate) cert_id: Option<String>,
    /// The leaf, DER.
    pub(crate) leaf_der: Vec<u8>,
}

/// Polling of orders: the load generator polls quickly (starting at `first`, doubling up to
/// `max`) instead of honouring Retry-After, to measure the server rather than the client's
/// patience; the same for every server it drives.
#[derive(Debug, Clone, Copy)]
pub struct PollPolicy {
    /// First wait.
    pub first: Duration,
    /// Longest wait between polls.
    pub max: Duration,
    /// Give up after this long.
    pub timeout: Duration,
}

impl Default for PollPolicy {
    fn default() -> Self {
        Self {
            first: Duration::from_millis(10),
            max: Duration::from_millis(250),
            timeout: Duration::from_secs(60),
        }
    }
}

/// Everything a flow needs besides the account.
#[derive(Debug)]
pub(crate) struct FlowContext {
    pub(crate) challenge: ChallengeMode,
    pub(crate) poll: PollPolicy,
    /// Deactivate the order's authorizations after the download ([`crate::LoadConfig`]).
    pub(crate) deactivate_authzs: bool,
    /// Only for the challenge test server's management API.
    pub(crate) mgmt_http: reqwest::Client,
}

fn unexpected(endpoint: Endpoint, message: impl Into<String>) -> FlowError {
    FlowError::Unexpected {
        endpoint,
        message: message.into(),
    }
}

fn str_field<'a>(v: &'a Value, name: &str, endpoint: Endpoint) -> Result<&'a str, FlowError> {
    v[name]
        .as_str()
        .ok_or_else(|| unexpected(endpoint, format!("no {name}")))
}

/// A published challenge response, to withdraw once the authorization is done.
enum Published {
    Http(String),
    Txt(String),
    /// dns-account-01: (host, account URL).
    AccountTxt(String, String),
}

/// Runs one issuance for `names`.
pub(crate) async fn issue(
    acct: &mut Account,
    ctx: &FlowContext,
    names: &[String],
    replaces: Option<&str>,
) -> Result<Issued, FlowError> {
    let started = Instant::now();
    let ids: Vec<Value> = names
        .iter()
        .map(|n| json!({"type": "dns", "value": n}))
        .collect();
    let mut payload = json!({ "identifiers": ids });
    if let Some(r) = replaces {
        payload["replaces"] = json!(r);
    }
    let new_order = acct.server().dir.new_order.to_string();
    let reply = acct
        .post(Endpoint::NewOrder, &new_order, Some(&payload))
        .await?;
    if reply.status != 201 {
        return Err(unexpected(
            Endpoint::NewOrder,
            format!("status {}", reply.status),
        ));
    }
    let order_url = reply
        .location
        .as_deref()
        .ok_or_else(|| unexpected(Endpoint::NewOrder, "no Location"))?;
    let order_url = acct
        .server()
        .checked_url(Endpoint::NewOrder, order_url)?
        .to_string();
    let order = reply.json(Endpoint::NewOrder)?;
    let finalize_url = acct
        .server()
        .checked_url(
            Endpoint::NewOrder,
            str_field(&order, "finalize", Endpoint::NewOrder)?,
        )?
        .to_string();
    let authz_urls: Vec<String> = order["authorizations"]
        .as_array()
        .ok_or_else(|| unexpected(Endpoint::NewOrder, "no authorizations"))?
        .iter()
        .filter_map(|a| a.as_str().map(str::to_owned))
        .collect();

    let mut published = Vec::new();
    let result = authorize(acct, ctx, &order, &order_url, &authz_urls, &mut published).await;
    withdraw(ctx, published).await;
    result?;

    let (csr, _key) = csr_for(names)?;
    let reply = acct
        .post(
            Endpoint::Finalize,
            &finalize_url,
            Some(&json!({ "csr": b64url(&csr) })),
        )
        .await?;
    let mut order = reply.json(Endpoint::Finalize)?;
    if order["status"] != "valid" {
        order = poll_order(acct, ctx, &order_url, "valid").await?;
    }
    let cert_url = acct
        .server()
        .checked_url(
            Endpoint::Order,
            str_field(&order, "certificate", Endpoint::Order)?,
        )?
        .to_string();
    let reply = acct.post(Endpoint::Certificate, &cert_url, None).await?;
    let pem = std::str::from_utf8(&reply.body)
        .map_err(|_| unexpected(Endpoint::Certificate, "the chain is not text"))?;
    let chain = cairn_x509::pem_certificates(pem)
        .map_err(|e| unexpected(Endpoint::Certificate, format!("bad PEM chain: {e}")))?;
    let leaf_der = chain
        .into_iter()
        .next()
        .ok_or_else(|| unexpected(Endpoint::Certificate, "empty chain"))?;
    let info = cairn_x509::CertInfo::from_der(&leaf_der)
        .map_err(|e| unexpected(Endpoint::Certificate, format!("bad leaf: {e}")))?;
    for name in names {
        if !info.identifiers.iter().any(|i| i.value == *name) {
            return Err(unexpected(
                Endpoint::Certificate,
                format!("the certificate does not name {name}"),
            ));
        }
    }
    acct.server()
        .stats()
        .record(Endpoint::Issuance, started.elapsed());
    if ctx.deactivate_authzs {
        let deactivate = json!({"status": "deactivated"});
        for url in &authz_urls {
            let url = acct.server().checked_url(Endpoint::Authz, url)?.to_string();
            acct.post(Endpoint::Authz, &url, Some(&deactivate)).await?;
        }
    }
    let cert_id = info.authority_key_id.map(|aki| {
        use base64::Engine;
        let b = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        format!("{}.{}", b.encode(aki), b.encode(&info.serial))
    });
    Ok(Issued {
        names: names.to_vec(),
        cert_id,
        leaf_der,
    })
}

/// Answers the pending authorizations of a new order and waits for the order to be ready.
async fn authorize(
    acct: &mut Account,
    ctx: &FlowContext,
    order: &Value,
    order_url: &str,
    authz_urls: &[String],
    published: &mut Vec<Published>,
) -> Result<(), FlowError> {
    if order["status"] == "ready" {
        return Ok(());
    }
    let typ = ctx.challenge.type_name();
    for url in authz_urls {
        let url = acct
            .server()
            .checked_url(Endpoint::NewOrder, url)?
            .to_string();
        let authz = acct
            .post(Endpoint::Authz, &url, None)
            .await?
            .json(Endpoint::Authz)?;
        match authz["status"].as_str() {
            Some("valid") => continue,
            Some("pending") => {}
            other => {
                return Err(unexpected(
                    Endpoint::Authz,
                    format!("authorization status {other:?}"),
                ));
            }
        }
        let name = authz["identifier"]["value"]
            .as_str()
            .ok_or_else(|| unexpected(Endpoint::Authz, "no identifier"))?;
        let chall = authz["challenges"]
            .as_array()
            .and_then(|cs| cs.iter().find(|c| c["type"] == typ))
            .ok_or_else(|| unexpected(Endpoint::Authz, format!("no {typ} challenge offered")))?;
        let token = str_field(chall, "token", Endpoint::Authz)?;
        let chall_url = acct
            .server()
            .checked_url(Endpoint::Authz, str_field(chall, "url", Endpoint::Authz)?)?
            .to_string();
        let key_auth = acct.key_authorization(token);
        match &ctx.challenge {
            ChallengeMode::Http01(responder) => {
                responder.add(token, key_auth);
                published.push(Published::Http(token.to_owned()));
            }
            ChallengeMode::Dns01(mgmt) => {
                let host = format!("_acme-challenge.{name}.");
                let digest =
                    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, key_auth.as_bytes());
                let value = b64url(digest.as_ref());
                published.push(Published::Txt(host.clone()));
                manage(ctx, mgmt, "set-txt", &json!({"host": host, "value": value})).await?;
            }
            ChallengeMode::DnsAccount01(mgmt) => {
                let account_url = acct.url().ok_or_else(|| {
                    unexpected(Endpoint::Authz, "dns-account-01 needs a registered account")
                })?;
                let digest =
                    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, key_auth.as_bytes());
                let value = b64url(digest.as_ref());
                published.push(Published::AccountTxt(name.to_owned(), account_url.clone()));
                manage(
                    ctx,
                    mgmt,
                    "set-dns-account01",
                    &json!({"host": name, "accountURL": account_url, "value": value}),
                )
                .await?;
            }
            ChallengeMode::DnsPersist01(mgmt) => {
                let account_url = acct.url().ok_or_else(|| {
                    unexpected(Endpoint::Authz, "dns-persist-01 needs a registered account")
                })?;
                let issuer = chall["issuer-domain-names"]
                    .get(0)
                    .and_then(Value::as_str)
                    .ok_or_else(|| unexpected(Endpoint::Authz, "no issuer-domain-names"))?;
                let mut record = json!({
                    "host": name,
                    "issuerDomainName": issuer,
                    "accountURI": account_url,
                });
                let wildcard = authz["wildcard"] == true;
                if wildcard {
                    record["policy"] = json!("wildcard");
                }
                // The record stands once published: a renewal (or any later order of this
                // account for the name) changes no DNS, which is the method's point.
                let key = if wildcard {
                    format!("*.{name}")
                } else {
                    name.to_owned()
                };
                if acct.note_persist_record(&key) {
                    manage(ctx, mgmt, "add-persist-txt", &record).await?;
                }
            }
        }
        acct.post(Endpoint::Challenge, &chall_url, Some(&json!({})))
            .await?;
    }
    poll_order(acct, ctx, order_url, "ready").await?;
    Ok(())
}

async fn withdraw(ctx: &FlowContext, published: Vec<Published>) {
    for p in published {
        match (p, &ctx.challenge) {
            (Published::Http(token), ChallengeMode::Http01(responder)) => responder.remove(&token),
            (Published::Txt(host), ChallengeMode::Dns01(mgmt)) => {
                // Best effort: a stale TXT record under a random name harms nothing.
                let _ = manage(ctx, mgmt, "clear-txt", &json!({ "host": host })).await;
            }
            (Published::AccountTxt(host, account), ChallengeMode::DnsAccount01(mgmt)) => {
                let body = json!({ "host": host, "accountURL": account });
                let _ = manage(ctx, mgmt, "clear-dns-account01", &body).await;
            }
            _ => {}
        }
    }
}

async fn manage(ctx: &FlowContext, base: &Url, path: &str, body: &Value) -> Result<(), FlowError> {
    let endpoint = Endpoint::Challenge;
    let url = base
        .join(path)
        .map_err(|e| unexpected(endpoint, e.to_string()))?;
    let resp = ctx
        .mgmt_http
        .post(url)
        .json(body)
        .send()
        .await
        .map_err(|e| FlowError::Transport {
            endpoint,
            message: e.to_string(),
        })?;
    if !resp.status().is_success() {
        return Err(unexpected(endpoint, format!("status {}", resp.status())));
    }
    let _ = resp.bytes().await;
    Ok(())
}

/// Polls an order until it reaches `want`; `invalid` is an error carrying the order's problem.
async fn poll_order(
    acct: &mut Account,
    ctx: &FlowContext,
    order_url: &str,
    want: &str,
) -> Result<Value, FlowError> {
    let deadline = Instant::now() + ctx.poll.timeout;
    let mut wait = ctx.poll.first;
    loop {
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(ctx.poll.max);
        let order = acct
            .post(Endpoint::Order, order_url, None)
            .await?
            .json(Endpoint::Order)?;
        let status = order["status"].as_str().unwrap_or_default();
        if status == want {
            return Ok(order);
        }
        match status {
            "pending" | "processing" | "ready" => {}
            "invalid" => return Err(why_invalid(acct, &order).await),
            other => {
                return Err(unexpected(
                    Endpoint::Order,
                    format!("order status {other:?}"),
                ));
            }
        }
        if Instant::now() > deadline {
            return Err(FlowError::Timeout(Endpoint::Order));
        }
    }
}

/// The problem that made an order invalid: the order's `error`, else the first failed
/// challenge's.
async fn why_invalid(acct: &mut Account, order: &Value) -> FlowError {
    let mut error = order["error"].clone();
    if error.is_null() {
        let urls: Vec<String> = order["authorizations"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|u| u.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        for url in urls {
            let Ok(url) = acct.server().checked_url(Endpoint::Order, &url) else {
                continue;
            };
            let Ok(reply) = acct.post(Endpoint::Authz, url.as_str(), None).await else {
                continue;
            };
            let Ok(authz) = reply.json(Endpoint::Authz) else {
                continue;
            };
            if let Some(e) = authz["challenges"]
                .as_array()
                .and_then(|cs| cs.iter().find_map(|c| c.get("error")))
            {
                error = e.clone();
                break;
            }
        }
    }
    let typ = error["type"]
        .as_str()
        .map(|t| {
            t.strip_prefix("urn:ietf:params:acme:error:")
                .unwrap_or(t)
                .to_owned()
        })
        .unwrap_or_else(|| "orderInvalid".into());
    FlowError::Problem {
        endpoint: Endpoint::Order,
        status: 200,
        typ,
        detail: error["detail"]
            .as_str()
            .unwrap_or("the order became invalid")
            .to_owned(),
    }
}

/// Revokes a certificate with the account that ordered it (reason unspecified).
pub(crate) async fn revoke(acct: &mut Account, leaf_der: &[u8]) -> Result<(), FlowError> {
    let url = acct.server().dir.revoke_cert.to_string();
    acct.post(
        Endpoint::RevokeCert,
        &url,
        Some(&json!({ "certificate": b64url(leaf_der) })),
    )
    .await?;
    Ok(())
}

/// A CSR for the names with a fresh P-256 key and an empty subject.
fn csr_for(names: &[String]) -> Result<(Vec<u8>, rcgen::KeyPair), FlowError> {
    let err = |e: rcgen::Error| unexpected(Endpoint::Finalize, format!("cannot build a CSR: {e}"));
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(err)?;
    let mut params = rcgen::CertificateParams::new(names.to_vec()).map_err(err)?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    let csr = params.serialize_request(&key).map_err(err)?;
    Ok((csr.der().to_vec(), key))
}
