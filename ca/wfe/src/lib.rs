//! Web front end: the ACME HTTP API (RFC 8555). It authenticates requests (JWS, nonces, URLs),
//! turns them into RA calls and renders resources and problem documents. It holds no keys and
//! no database handle, and knows the RA only as `cairn-api`'s [`RegistrationAuthority`]: the
//! RA may run in this process or elsewhere.

mod account;
mod auth;
mod certificate;
mod client_ip;
mod directory;
mod nonce;
mod order;
mod render;
mod renewal_info;
mod response;
pub mod tls;

pub use nonce::{CAPACITY_RANGE, DEFAULT_CAPACITY, DEFAULT_LIFETIME, LocalNonces, RoutedNonces};

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderValue, Uri, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use cairn_api::{NonceService, RegistrationAuthority};
use cairn_core::{Account, AccountId};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Instant;
use tracing::Instrument;

/// Most bytes accepted in a request body.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Front-end settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WfeConfig {
    /// The externally visible base URL (`https://acme.example.com`). If unset, URLs are built
    /// from the request's `Host` header and `scheme`.
    pub base_url: Option<String>,
    /// `https` or `http`, for URLs built from `Host`.
    pub scheme: String,
    /// `meta.termsOfService`.
    pub terms_of_service: Option<String>,
    /// `meta.website`.
    pub website: Option<String>,
    /// Orders per page of the account's orders list.
    pub orders_per_page: u64,
    /// Addresses of TLS-terminating proxies whose `X-Forwarded-For` is believed for the
    /// client's address (per-IP rate limits). Empty: the TCP peer is the client.
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// Shared nonce services (`[[wfe.nonce_services]]`, a split deployment's `cairn nonce
    /// serve` instances): each nonce is redeemed at the service its prefix names, so any WFE
    /// accepts any other WFE's nonces. Empty: this process mints its own nonces.
    pub nonce_services: Vec<NonceServiceAddr>,
    /// How long an account loaded to authenticate a request is reused without asking the RA
    /// (and storage) again. This WFE's own account changes (contact, deactivation, key change)
    /// apply at once; another WFE's, or `cairn admin`'s, are seen within this time. `0s` turns
    /// the cache off.
    #[serde(with = "cairn_core::humane_duration")]
    pub account_cache_for: time::Duration,
    /// Accounts the cache holds at most; when full it starts over. About 1.2 KiB each (P-256
    /// account keys; 1.4 KiB for RSA-2048), so 112 to 136 MiB at the default 100,000.
    pub account_cache_entries: usize,
    /// Redeemed nonces remembered when this WFE mints its own (no `nonce_services`); past it,
    /// the oldest become a floor below which nonces are refused (`cairn_acme::nonce`). About
    /// 34 bytes each, so 34 MiB at the default 1,048,576. `[nonce] capacity` is the same for
    /// `cairn nonce serve`.
    pub nonce_capacity: usize,
}

/// The accounts a WFE may be configured to cache at most: a cache that cannot hold the
/// accounts active within `account_cache_for` only adds work.
pub const ACCOUNT_CACHE_ENTRIES_RANGE: std::ops::RangeInclusive<usize> = 100..=10_000_000;

/// One nonce service as a WFE reaches it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct NonceServiceAddr {
    /// The prefix of the nonces it mints (its `[nonce] prefix`).
    pub prefix: cairn_acme::nonce::NoncePrefix,
    /// Its gRPC address (`https://host:port`).
    pub address: String,
    /// The DNS name its certificate carries; default `nonce.cairn.internal`.
    #[serde(default)]
    pub server_name: Option<String>,
}

impl WfeConfig {
    /// Checks the nonce services (at most one per prefix: a prefix routes to one service) and
    /// the bounds of the in-memory caches.
    pub fn validate(&self) -> Result<(), String> {
        let range = |r: &std::ops::RangeInclusive<usize>| format!("{}..={}", r.start(), r.end());
        if !CAPACITY_RANGE.contains(&self.nonce_capacity) {
            return Err(format!(
                "wfe.nonce_capacity must be within {}",
                range(&CAPACITY_RANGE)
            ));
        }
        if !ACCOUNT_CACHE_ENTRIES_RANGE.contains(&self.account_cache_entries) {
            return Err(format!(
                "wfe.account_cache_entries must be within {}",
                range(&ACCOUNT_CACHE_ENTRIES_RANGE)
            ));
        }
        let mut seen = std::collections::BTreeSet::new();
        for s in &self.nonce_services {
            if !seen.insert(&s.prefix) {
                return Err(format!(
                    "wfe.nonce_services: prefix {} is listed twice",
                    s.prefix
                ));
            }
        }
        Ok(())
    }
}

impl Default for WfeConfig {
    fn default() -> Self {
        Self {
            base_url: None,
            scheme: "https".into(),
            terms_of_service: Some("https://cairn.invalid/terms".into()),
            website: None,
            orders_per_page: 100,
            trusted_proxies: Vec::new(),
            nonce_services: Vec::new(),
            account_cache_for: time::Duration::seconds(10),
            account_cache_entries: ACCOUNT_CACHE_ENTRIES,
            nonce_capacity: DEFAULT_CAPACITY,
        }
    }
}

/// Shared state of the handlers.
pub(crate) struct Wfe {
    pub(crate) ra: Arc<dyn RegistrationAuthority>,
    pub(crate) nonces: Arc<dyn NonceService>,
    pub(crate) config: WfeConfig,
    /// Accounts recently loaded by ID: every authenticated request names its account (six or
    /// so per certificate), and in a split deployment each lookup is an RPC to the RA and a
    /// read of storage. Entries live for [`WfeConfig::account_cache_for`]; at most
    /// [`WfeConfig::account_cache_entries`] are kept.
    pub(crate) accounts: cairn_core::TtlCache<AccountId, KeyedAccount>,
}

/// An account as requests authenticate with it: its record and its key, parsed once when the
/// account is loaded rather than on every request (for an RSA key the parse includes the
/// weak-key checks, about 160 µs; `cargo bench -p cairn-acme --bench jws`).
#[derive(Clone)]
pub(crate) struct KeyedAccount {
    pub(crate) account: Account,
    pub(crate) key: Arc<cairn_acme::jwk::Jwk>,
}

/// Accounts kept at most by one WFE unless `[wfe] account_cache_entries` says otherwise: 25–34
/// MiB at most (docs/runbook.md, "Memory bounds"). Entries live seconds, so this is thousands of
/// authenticated requests a second before a lookup goes back to storage.
const ACCOUNT_CACHE_ENTRIES: usize = 20_000;

impl std::fmt::Debug for Wfe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wfe")
            .field("nonces", &self.nonces)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

pub(crate) type WfeState = State<Arc<Wfe>>;

/// URL paths of the API.
pub(crate) mod paths {
    pub(crate) const DIRECTORY: &str = "/directory";
    pub(crate) const NEW_NONCE: &str = "/acme/new-nonce";
    pub(crate) const NEW_ACCOUNT: &str = "/acme/new-acct";
    pub(crate) const ACCOUNT: &str = "/acme/acct/";
    pub(crate) const NEW_ORDER: &str = "/acme/new-order";
    pub(crate) const NEW_AUTHZ: &str = "/acme/new-authz";
    pub(crate) const ORDER: &str = "/acme/order/";
    pub(crate) const AUTHZ: &str = "/acme/authz/";
    pub(crate) const CHALLENGE: &str = "/acme/chall/";
    pub(crate) const CERT: &str = "/acme/cert/";
    pub(crate) const REVOKE: &str = "/acme/revoke-cert";
    pub(crate) const KEY_CHANGE: &str = "/acme/key-change";
    pub(crate) const RENEWAL_INFO: &str = "/acme/renewal-info";
}

/// Builds the ACME router over `ra`, minting nonces in this process (remembering at most
/// [`WfeConfig::nonce_capacity`] redeemed ones).
pub fn router(ra: Arc<dyn RegistrationAuthority>, config: WfeConfig) -> Router {
    let nonces = local_nonces(&config);
    router_with_nonces(ra, config, Arc::new(nonces))
}

/// The mint of a WFE that makes its own nonces.
fn local_nonces(config: &WfeConfig) -> LocalNonces {
    LocalNonces::new(None, DEFAULT_LIFETIME, config.nonce_capacity)
}

/// The cache of the accounts requests authenticate with.
fn account_cache(config: &WfeConfig) -> cairn_core::TtlCache<AccountId, KeyedAccount> {
    cairn_core::TtlCache::new(config.account_cache_for, config.account_cache_entries)
}

/// Builds the ACME router over `ra` with nonces from `nonces` (a split deployment's shared
/// nonce services, so that any WFE redeems any other WFE's nonces).
pub fn router_with_nonces(
    ra: Arc<dyn RegistrationAuthority>,
    config: WfeConfig,
    nonces: Arc<dyn NonceService>,
) -> Router {
    let trusted_proxies: Arc<[std::net::IpAddr]> = config
        .trusted_proxies
        .iter()
        .map(|ip| ip.to_canonical())
        .collect();
    let accounts = account_cache(&config);
    let state = Arc::new(Wfe {
        ra,
        nonces,
        config,
        accounts,
    });
    Router::new()
        .route(paths::DIRECTORY, get(directory::directory))
        .route(
            paths::NEW_NONCE,
            get(directory::new_nonce_get).head(directory::new_nonce_head),
        )
        .route(paths::NEW_ACCOUNT, post(account::new_account))
        .route("/acme/acct/{id}", post(account::account))
        .route("/acme/acct/{id}/orders", post(account::orders))
        .route(paths::KEY_CHANGE, post(account::key_change))
        .route(paths::NEW_ORDER, post(order::new_order))
        .route(paths::NEW_AUTHZ, post(order::new_authz))
        .route("/acme/order/{id}", post(order::order))
        .route("/acme/order/{id}/finalize", post(order::finalize))
        .route("/acme/authz/{id}", post(order::authorization))
        .route("/acme/chall/{authz}/{chall}", post(order::challenge))
        .route("/acme/cert/{serial}", post(certificate::certificate))
        .route(
            "/acme/cert/{serial}/{alt}",
            post(certificate::certificate_alternate),
        )
        .route(paths::REVOKE, post(certificate::revoke))
        .route("/acme/renewal-info/{id}", get(renewal_info::renewal_info))
        .fallback(response::not_found)
        .method_not_allowed_fallback(response::method_not_allowed)
        .layer(middleware::from_fn_with_state(state.clone(), acme_headers))
        .layer(middleware::from_fn(move |req, next| {
            client_ip::resolve(trusted_proxies.clone(), req, next)
        }))
        .with_state(state)
}

/// Adds what ACME responses carry (RFC 8555 §6.5, §7.1): a fresh `Replay-Nonce` (POST and
/// other non-GET responses, and newNonce), the directory `Link`, no caching unless the handler chose otherwise.
/// Requests are counted by endpoint and status where the listener serves them
/// (`cairn_listen`), which sees the matched route as this layer does.
///
/// Each request runs in an `acme_request` span (a fresh `request_id`, the `endpoint` template;
/// handlers record `account_id` and `order_id` once they know them) and ends with one log line
/// carrying its `status`, `outcome` (`ok`, `client_error`, `server_error`) and `problem` type:
/// with `--log-format json`, one JSON object per request with all of them.
async fn acme_headers(State(wfe): WfeState, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let endpoint = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".into());
    let span = tracing::info_span!(
        "acme_request",
        request_id = %request_id(),
        endpoint = %endpoint,
        method = %req.method(),
        account_id = tracing::field::Empty,
        order_id = tracing::field::Empty,
    );
    // RFC 8555 §6.5 needs a fresh nonce on every POST response and from newNonce: only those
    // (and other non-GET requests, as Boulder) get one; the directory, renewal information and
    // other GETs do not. Minting stores nothing (see `nonce`), so a flood cannot evict anyway.
    let wants_nonce = req.method() != http::Method::GET || endpoint == paths::NEW_NONCE;
    let base = wfe.base_url(req.uri(), req.headers());
    let mut resp = next.run(req).instrument(span.clone()).await;
    let status = resp.status();
    let outcome = if status.is_server_error() {
        "server_error"
    } else if status.is_client_error() {
        "client_error"
    } else {
        "ok"
    };
    let problem = resp
        .extensions()
        .get::<response::SentProblem>()
        .map(|p| p.0.as_str());
    tracing::info!(
        parent: &span,
        status = status.as_u16(),
        outcome,
        problem,
        duration_ms = started.elapsed().as_secs_f64() * 1000.0,
        "ACME request"
    );
    let headers = resp.headers_mut();
    if wants_nonce {
        match wfe.nonces.issue().await {
            Ok(n) => {
                if let Ok(v) = HeaderValue::from_str(&n) {
                    headers.insert("replay-nonce", v);
                }
            }
            Err(e) => {
                tracing::error!(parent: &span, error = %e, "no nonce service could mint a nonce");
                // newNonce exists to hand out a nonce: without one it has failed. Other
                // responses keep their outcome; the client's next request fetches a nonce.
                if endpoint == paths::NEW_NONCE {
                    return response::ProblemResponse::from(cairn_core::Problem::internal())
                        .into_response();
                }
            }
        }
    }
    if let Ok(v) = HeaderValue::from_str(&format!("<{base}{}>;rel=\"index\"", paths::DIRECTORY)) {
        headers.append(header::LINK, v);
    }
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    resp
}

/// A request's ID in the logs: 64 random bits in hex, enough to tell apart the requests of a
/// log's retention.
fn request_id() -> String {
    let mut bytes = [0u8; 8];
    // A failing system RNG leaves the ID zero; the request itself does not need it.
    let _ = aws_lc_rs::rand::fill(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Records what the request is about in its `acme_request` span, for the request log line.
pub(crate) fn log_account(id: &str) {
    tracing::Span::current().record("account_id", id);
}

/// See [`log_account`]. The ID may come from the request path before it is checked, so at
/// most 64 characters of it are logged.
pub(crate) fn log_order(id: &str) {
    let id: String = id.chars().take(64).collect();
    tracing::Span::current().record("order_id", id.as_str());
}

impl Wfe {
    /// The base URL for building resource URLs.
    /// Without a configured base URL it follows the request: the URI's authority (HTTP/2's
    /// `:authority`), else the `Host` header.
    pub(crate) fn base_url(&self, uri: &Uri, headers: &HeaderMap) -> String {
        if let Some(b) = &self.config.base_url {
            return b.trim_end_matches('/').to_owned();
        }
        let host = uri
            .authority()
            .map(|a| a.as_str())
            .or_else(|| headers.get(header::HOST).and_then(|h| h.to_str().ok()))
            .filter(|h| {
                !h.is_empty()
                    && h.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b))
            })
            .unwrap_or("localhost");
        format!("{}://{host}", self.config.scheme)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account(id: &str) -> Account {
        Account {
            id: AccountId(id.into()),
            jwk: serde_json::json!({"kty": "EC"}),
            key_thumbprint: id.into(),
            contact: Vec::new(),
            status: cairn_core::AccountStatus::Valid,
            created_at: time::OffsetDateTime::UNIX_EPOCH,
            eab_key_id: None,
            initial_ip: None,
        }
    }

    #[test]
    fn memory_bounds_have_defaults_and_are_checked() {
        let cfg = WfeConfig::default();
        assert_eq!(cfg.nonce_capacity, 1 << 20);
        assert_eq!(cfg.account_cache_entries, 20_000);
        assert_eq!(cfg.validate(), Ok(()));
        for (nonce_capacity, account_cache_entries, field) in [
            (
                999,
                100_000,
                "wfe.nonce_capacity must be within 1000..=100000000",
            ),
            (100_000_001, 100_000, "wfe.nonce_capacity"),
            (
                1 << 20,
                0,
                "wfe.account_cache_entries must be within 100..=10000000",
            ),
            (1 << 20, 10_000_001, "wfe.account_cache_entries"),
        ] {
            let cfg = WfeConfig {
                nonce_capacity,
                account_cache_entries,
                ..WfeConfig::default()
            };
            let err = cfg.validate().unwrap_err();
            assert!(err.starts_with(field), "{err}");
        }
    }

    #[test]
    fn the_account_cache_holds_at_most_the_configured_entries() {
        let cfg = WfeConfig {
            account_cache_entries: 2,
            ..WfeConfig::default()
        };
        let cache = account_cache(&cfg);
        let ids = ["a", "b", "c"];
        // RFC 8037's example Ed25519 public key.
        let key = cairn_acme::jwk::Jwk::from_value(&serde_json::json!({
            "kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"
        }))
        .unwrap();
        for id in ids {
            let keyed = KeyedAccount {
                account: account(id),
                key: Arc::new(key.clone()),
            };
            cache.put(AccountId(id.into()), keyed);
        }
        let held = ids
            .iter()
            .filter(|id| cache.get(&AccountId((**id).into())).is_some())
            .count();
        assert!(held <= 2, "{held} accounts held");
        assert!(
            cache.get(&AccountId("c".into())).is_some(),
            "the newest is kept"
        );
    }

    #[test]
    fn a_wfe_minting_its_own_nonces_remembers_at_most_the_configured_capacity() {
        let cfg = WfeConfig {
            nonce_capacity: 1_000,
            ..WfeConfig::default()
        };
        let nonces = local_nonces(&cfg);
        let minted: Vec<String> = (0..1_500).map(|_| nonces.mint()).collect();
        for n in &minted {
            assert!(nonces.redeem_now(n));
        }
        assert_eq!(nonces.remembered(), 1_000);
        assert!(!nonces.redeem_now(&minted[0]), "below the floor");
    }
}
