//! The management HTTP API, path- and body-compatible with pebble-challtestsrv.
//!
//! Bodies are JSON objects; as with Go's `encoding/json`, field names match case-insensitively
//! (`host`, `Host` and `HOST` are the same field).

use crate::state::{CaaPolicy, ChallTestSrv, HistoryKind};
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

fn lowercase_keys(v: Value) -> Value {
    match v {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), lowercase_keys(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(lowercase_keys).collect()),
        other => other,
    }
}

/// A 400 answer with a plain-text reason.
struct BadRequest(String);

impl IntoResponse for BadRequest {
    fn into_response(self) -> Response {
        (StatusCode::BAD_REQUEST, self.0).into_response()
    }
}

fn bad(msg: impl Into<String>) -> BadRequest {
    BadRequest(msg.into())
}

fn parse<T: DeserializeOwned>(body: &Bytes) -> Result<T, BadRequest> {
    let v: Value = serde_json::from_slice(body).map_err(|e| bad(format!("invalid JSON: {e}")))?;
    serde_json::from_value(lowercase_keys(v)).map_err(|e| bad(format!("invalid request: {e}")))
}

fn need(s: &str, what: &str) -> Result<(), BadRequest> {
    if s.is_empty() {
        Err(bad(format!("{what} must not be empty")))
    } else {
        Ok(())
    }
}

#[derive(Deserialize)]
struct IpReq {
    #[serde(default)]
    ip: String,
}

#[derive(Deserialize)]
struct HostReq {
    #[serde(default)]
    host: String,
}

#[derive(Deserialize)]
struct AddrsReq {
    #[serde(default)]
    host: String,
    #[serde(default)]
    addresses: Vec<String>,
}

#[derive(Deserialize)]
struct CaaReq {
    #[serde(default)]
    host: String,
    #[serde(default)]
    policies: Vec<CaaPolicy>,
}

#[derive(Deserialize)]
struct CnameReq {
    #[serde(default)]
    host: String,
    #[serde(default)]
    target: String,
}

#[derive(Deserialize)]
struct HostValueReq {
    #[serde(default)]
    host: String,
    #[serde(default)]
    value: String,
}

#[derive(Deserialize)]
struct DnsAccountReq {
    #[serde(default)]
    host: String,
    #[serde(default, rename = "accounturl")]
    account_url: String,
    #[serde(default)]
    value: String,
}

#[derive(Deserialize)]
struct PersistReq {
    #[serde(default)]
    host: String,
    #[serde(default, rename = "issuerdomainname")]
    issuer: String,
    #[serde(default, rename = "accounturi")]
    account_uri: String,
    #[serde(default)]
    policy: Option<String>,
    #[serde(default, rename = "persistuntil")]
    persist_until: Option<i64>,
}

#[derive(Deserialize)]
struct TokenReq {
    #[serde(default)]
    token: String,
    #[serde(default)]
    content: String,
}

#[derive(Deserialize)]
struct RedirectReq {
    #[serde(default)]
    path: String,
    #[serde(default, rename = "targeturl")]
    target_url: String,
}

#[derive(Deserialize)]
struct HostContentReq {
    #[serde(default)]
    host: String,
    #[serde(default)]
    content: String,
}

#[derive(Deserialize)]
struct ClearHistoryReq {
    #[serde(default)]
    host: String,
    #[serde(default, rename = "type")]
    typ: String,
}

type Srv = State<ChallTestSrv>;
type Res = Result<StatusCode, BadRequest>;

async fn set_default_ipv4(State(s): Srv, body: Bytes) -> Res {
    let r: IpReq = parse(&body)?;
    let ip = if r.ip.is_empty() {
        None
    } else {
        Some(
            r.ip.parse::<Ipv4Addr>()
                .map_err(|_| bad("invalid IPv4 address"))?,
        )
    };
    s.set_default_ipv4(ip);
    Ok(StatusCode::OK)
}

async fn set_default_ipv6(State(s): Srv, body: Bytes) -> Res {
    let r: IpReq = parse(&body)?;
    let ip = if r.ip.is_empty() {
        None
    } else {
        Some(
            r.ip.parse::<Ipv6Addr>()
                .map_err(|_| bad("invalid IPv6 address"))?,
        )
    };
    s.set_default_ipv6(ip);
    Ok(StatusCode::OK)
}

fn parse_addrs(r: &AddrsReq) -> Result<Vec<IpAddr>, BadRequest> {
    need(&r.host, "host")?;
    if r.addresses.is_empty() {
        return Err(bad("addresses must not be empty"));
    }
    r.addresses
        .iter()
        .map(|a| {
            a.parse::<IpAddr>()
                .map_err(|_| bad(format!("invalid address {a:?}")))
        })
        .collect()
}

async fn add_a(State(s): Srv, body: Bytes) -> Res {
    let r: AddrsReq = parse(&body)?;
    let addrs = parse_addrs(&r)?
        .into_iter()
        .map(|a| match a {
            IpAddr::V4(v4) => Ok(v4),
            IpAddr::V6(_) => Err(bad("A records need IPv4 addresses")),
        })
        .collect::<Result<Vec<_>, _>>()?;
    s.add_a(&r.host, &addrs);
    Ok(StatusCode::OK)
}

async fn add_aaaa(State(s): Srv, body: Bytes) -> Res {
    let r: AddrsReq = parse(&body)?;
    let addrs = parse_addrs(&r)?
        .into_iter()
        .map(|a| match a {
            IpAddr::V6(v6) => Ok(v6),
            IpAddr::V4(_) => Err(bad("AAAA records need IPv6 addresses")),
        })
        .collect::<Result<Vec<_>, _>>()?;
    s.add_aaaa(&r.host, &addrs);
    Ok(StatusCode::OK)
}

fn host_only(body: &Bytes) -> Result<String, BadRequest> {
    let r: HostReq = parse(body)?;
    need(&r.host, "host")?;
    Ok(r.host)
}

async fn clear_a(State(s): Srv, body: Bytes) -> Res {
    s.clear_a(&host_only(&body)?);
    Ok(StatusCode::OK)
}

async fn clear_aaaa(State(s): Srv, body: Bytes) -> Res {
    s.clear_aaaa(&host_only(&body)?);
    Ok(StatusCode::OK)
}

async fn add_caa(State(s): Srv, body: Bytes) -> Res {
    let r: CaaReq = parse(&body)?;
    need(&r.host, "host")?;
    if r.policies.is_empty() {
        return Err(bad("policies must not be empty"));
    }
    s.add_caa(&r.host, &r.policies);
    Ok(StatusCode::OK)
}

async fn clear_caa(State(s): Srv, body: Bytes) -> Res {
    s.clear_caa(&host_only(&body)?);
    Ok(StatusCode::OK)
}

async fn set_cname(State(s): Srv, body: Bytes) -> Res {
    let r: CnameReq = parse(&body)?;
    need(&r.host, "host")?;
    need(&r.target, "target")?;
    s.set_cname(&r.host, &r.target);
    Ok(StatusCode::OK)
}

async fn clear_cname(State(s): Srv, body: Bytes) -> Res {
    s.clear_cname(&host_only(&body)?);
    Ok(StatusCode::OK)
}

async fn set_servfail(State(s): Srv, body: Bytes) -> Res {
    s.set_servfail(&host_only(&body)?);
    Ok(StatusCode::OK)
}

async fn clear_servfail(State(s): Srv, body: Bytes) -> Res {
    s.clear_servfail(&host_only(&body)?);
    Ok(StatusCode::OK)
}

async fn set_txt(State(s): Srv, body: Bytes) -> Res {
    let r: HostValueReq = parse(&body)?;
    need(&r.host, "host")?;
    need(&r.value, "value")?;
    s.set_txt(&r.host, &r.value);
    Ok(StatusCode::OK)
}

async fn clear_txt(State(s): Srv, body: Bytes) -> Res {
    s.clear_txt(&host_only(&body)?);
    Ok(StatusCode::OK)
}

/// Cairn extension: a dns-account-01 record for `host` and the account at `accountURL`.
async fn set_dns_account01(State(s): Srv, body: Bytes) -> Res {
    let r: DnsAccountReq = parse(&body)?;
    need(&r.host, "host")?;
    need(&r.account_url, "accountURL")?;
    need(&r.value, "value")?;
    s.set_dns_account01(&r.host, &r.account_url, &r.value);
    Ok(StatusCode::OK)
}

/// Cairn extension: removes `host`'s dns-account-01 records for the account at `accountURL`.
async fn clear_dns_account01(State(s): Srv, body: Bytes) -> Res {
    let r: DnsAccountReq = parse(&body)?;
    need(&r.host, "host")?;
    need(&r.account_url, "accountURL")?;
    s.clear_dns_account01(&r.host, &r.account_url);
    Ok(StatusCode::OK)
}

/// Cairn extension: a standing dns-persist-01 record at `_validation-persist.<host>`.
async fn add_persist_txt(State(s): Srv, body: Bytes) -> Res {
    let r: PersistReq = parse(&body)?;
    need(&r.host, "host")?;
    need(&r.issuer, "issuerDomainName")?;
    need(&r.account_uri, "accountURI")?;
    s.add_persist_txt(
        &r.host,
        &r.issuer,
        &r.account_uri,
        r.policy.as_deref(),
        r.persist_until,
    );
    Ok(StatusCode::OK)
}

/// Cairn extension: removes every dns-persist-01 record of `host`.
async fn clear_persist_txt(State(s): Srv, body: Bytes) -> Res {
    s.clear_persist_txt(&host_only(&body)?);
    Ok(StatusCode::OK)
}

async fn add_http01(State(s): Srv, body: Bytes) -> Res {
    let r: TokenReq = parse(&body)?;
    need(&r.token, "token")?;
    need(&r.content, "content")?;
    s.add_http01(&r.token, &r.content);
    Ok(StatusCode::OK)
}

async fn del_http01(State(s): Srv, body: Bytes) -> Res {
    let r: TokenReq = parse(&body)?;
    need(&r.token, "token")?;
    s.del_http01(&r.token);
    Ok(StatusCode::OK)
}

async fn add_redirect(State(s): Srv, body: Bytes) -> Res {
    let r: RedirectReq = parse(&body)?;
    need(&r.path, "path")?;
    need(&r.target_url, "targetURL")?;
    s.add_redirect(&r.path, &r.target_url);
    Ok(StatusCode::OK)
}

async fn del_redirect(State(s): Srv, body: Bytes) -> Res {
    let r: RedirectReq = parse(&body)?;
    need(&r.path, "path")?;
    s.del_redirect(&r.path);
    Ok(StatusCode::OK)
}

async fn add_tlsalpn01(State(s): Srv, body: Bytes) -> Res {
    let r: HostContentReq = parse(&body)?;
    need(&r.host, "host")?;
    need(&r.content, "content")?;
    s.add_tlsalpn01(&r.host, &r.content);
    Ok(StatusCode::OK)
}

async fn del_tlsalpn01(State(s): Srv, body: Bytes) -> Res {
    s.del_tlsalpn01(&host_only(&body)?);
    Ok(StatusCode::OK)
}

fn json<T: serde::Serialize>(v: &T) -> Response {
    match serde_json::to_string_pretty(v) {
        Ok(s) => (
            StatusCode::OK,
            [("content-type", "application/json; charset=utf-8")],
            s,
        )
            .into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

async fn http_history(State(s): Srv, body: Bytes) -> Response {
    match host_only(&body) {
        Ok(h) => json(&s.http_request_history(&h)),
        Err(r) => r.into_response(),
    }
}

async fn dns_history(State(s): Srv, body: Bytes) -> Response {
    match host_only(&body) {
        Ok(h) => json(&s.dns_request_history(&h)),
        Err(r) => r.into_response(),
    }
}

async fn tlsalpn_history(State(s): Srv, body: Bytes) -> Response {
    match host_only(&body) {
        Ok(h) => json(&s.tlsalpn01_request_history(&h)),
        Err(r) => r.into_response(),
    }
}

async fn clear_history(State(s): Srv, body: Bytes) -> Res {
    let r: ClearHistoryReq = parse(&body)?;
    need(&r.host, "host")?;
    let kind =
        HistoryKind::parse(&r.typ).ok_or_else(|| bad(format!("{:?} event type unknown", r.typ)))?;
    s.clear_request_history(&r.host, kind);
    Ok(StatusCode::OK)
}

/// The management API's routes.
pub(crate) fn router(srv: ChallTestSrv) -> Router {
    Router::new()
        .route("/set-default-ipv4", post(set_default_ipv4))
        .route("/set-default-ipv6", post(set_default_ipv6))
        .route("/add-a", post(add_a))
        .route("/clear-a", post(clear_a))
        .route("/add-aaaa", post(add_aaaa))
        .route("/clear-aaaa", post(clear_aaaa))
        .route("/add-caa", post(add_caa))
        .route("/clear-caa", post(clear_caa))
        .route("/set-cname", post(set_cname))
        .route("/clear-cname", post(clear_cname))
        .route("/set-servfail", post(set_servfail))
        .route("/clear-servfail", post(clear_servfail))
        .route("/set-txt", post(set_txt))
        .route("/clear-txt", post(clear_txt))
        .route("/set-dns-account01", post(set_dns_account01))
        .route("/clear-dns-account01", post(clear_dns_account01))
        .route("/add-persist-txt", post(add_persist_txt))
        .route("/clear-persist-txt", post(clear_persist_txt))
        .route("/add-http01", post(add_http01))
        .route("/del-http01", post(del_http01))
        .route("/add-redirect", post(add_redirect))
        .route("/del-redirect", post(del_redirect))
        .route("/add-tlsalpn01", post(add_tlsalpn01))
        .route("/del-tlsalpn01", post(del_tlsalpn01))
        .route("/http-request-history", post(http_history))
        .route("/dns-request-history", post(dns_history))
        .route("/tlsalpn01-request-history", post(tlsalpn_history))
        .route("/clear-request-history", post(clear_history))
        .with_state(srv)
}
