//! The HTTP edge: RFC 6962 submission endpoints, the static read path (checkpoint, tiles,
//! issuers; tiles gzip-compressed for clients that accept it), the log-list description
//! (`log.v3.json`) and the signed-note verifier keys (`vkeys`); errors become short JSON bodies without internals.

use crate::log::{CtLog, SubmitError};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use cairn_tlog::entry::parse_data_tile;
use cairn_tlog::tile::{Tile, TileLevel, leaves_per_hash};
use serde::{Deserialize, Serialize};
use std::sync::atomic::Ordering;

/// Largest accepted submission body.
pub const MAX_BODY: usize = 512 * 1024;

#[derive(Deserialize)]
struct AddChainRequest {
    chain: Vec<String>,
}

/// The log's entry for CT log lists (v3 schema field names).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct LogDescription {
    /// Free text.
    pub description: String,
    /// The LogID, base64.
    pub log_id: String,
    /// The public key, base64 DER SubjectPublicKeyInfo.
    pub key: String,
    /// Maximum merge delay, seconds.
    pub mmd: u32,
    /// The accepted NotAfter interval.
    pub temporal_interval: TemporalInterval,
    /// The submission prefix.
    pub submission_url: String,
    /// The monitoring prefix.
    pub monitoring_url: String,
}

/// A log's temporal interval (RFC 3339).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct TemporalInterval {
    /// Inclusive start.
    pub start_inclusive: String,
    /// Exclusive end.
    pub end_exclusive: String,
}

impl CtLog {
    /// The log's description for log lists.
    pub fn description(&self) -> LogDescription {
        let cfg = self.config();
        let rfc3339 = |t: time::OffsetDateTime| {
            t.format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default()
        };
        LogDescription {
            description: cfg
                .description
                .clone()
                .unwrap_or_else(|| format!("Cairn CT log {}", cfg.name)),
            log_id: B64.encode(self.log_id()),
            key: B64.encode(self.public_key_der()),
            mmd: 60,
            temporal_interval: TemporalInterval {
                start_inclusive: rfc3339(cfg.not_after_start),
                end_exclusive: rfc3339(cfg.not_after_limit),
            },
            submission_url: cfg.submission_url.clone(),
            monitoring_url: cfg.monitoring_url(),
        }
    }

    /// The log's routes, relative to its submission/monitoring prefix.
    pub fn router(&self) -> Router {
        self.submission_router().merge(self.monitoring_router())
    }

    /// The submission routes (`add-chain`, `add-pre-chain`, `get-roots`).
    pub fn submission_router(&self) -> Router {
        Router::new()
            .route("/ct/v1/add-chain", post(add_chain))
            .route("/ct/v1/add-pre-chain", post(add_pre_chain))
            .route("/ct/v1/get-roots", get(get_roots))
            .layer(DefaultBodyLimit::max(MAX_BODY))
            .with_state(self.clone())
    }

    /// The monitoring (read) routes: checkpoint, tiles, issuers, log description, verifier keys.
    pub fn monitoring_router(&self) -> Router {
        Router::new()
            .route("/checkpoint", get(checkpoint))
            .route("/tile/{*rest}", get(tile))
            .route("/issuer/{fingerprint}", get(issuer))
            .route("/log.json", get(description))
            .route("/log.v3.json", get(description))
            .route("/vkeys", get(vkeys))
            .with_state(self.clone())
    }
}

fn error(status: StatusCode, message: &str) -> Response {
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        serde_json::json!({ "error": message }).to_string(),
    )
        .into_response()
}

async fn add_chain(State(log): State<CtLog>, body: Bytes) -> Response {
    submit(log, body, false).await
}

async fn add_pre_chain(State(log): State<CtLog>, body: Bytes) -> Response {
    submit(log, body, true).await
}

/// Decodes an `add-chain` body into DER certificates.
pub fn parse_add_chain(body: &[u8]) -> Result<Vec<Vec<u8>>, &'static str> {
    let req: AddChainRequest =
        serde_json::from_slice(body).map_err(|_| "request body is not {\"chain\": [...]}")?;
    if req.chain.len() > cairn_tlog::chain::MAX_CHAIN_LEN {
        return Err("chain too long");
    }
    req.chain
        .iter()
        .map(|c| B64.decode(c).map_err(|_| "chain element is not base64"))
        .collect()
}

async fn submit(log: CtLog, body: Bytes, precert: bool) -> Response {
    let endpoint = if precert {
        "add-pre-chain"
    } else {
        "add-chain"
    };
    let count = |outcome: &'static str| {
        metrics::counter!("cairn_ct_submissions_total",
            "log" => log.name().to_string(), "endpoint" => endpoint, "outcome" => outcome)
        .increment(1);
    };
    let chain = match parse_add_chain(&body) {
        Ok(c) => c,
        Err(msg) => {
            count("bad_request");
            return error(StatusCode::BAD_REQUEST, msg);
        }
    };
    match log.submit(&chain, precert).await {
        Ok(sct) => {
            count("ok");
            axum::Json(sct).into_response()
        }
        Err(SubmitError::Chain(e)) => {
            count("rejected");
            error(StatusCode::BAD_REQUEST, &e.to_string())
        }
        Err(SubmitError::Closed(msg)) => {
            count("closed");
            error(StatusCode::FORBIDDEN, msg)
        }
        Err(SubmitError::PoolFull) => {
            count("pool_full");
            let mut r = error(StatusCode::SERVICE_UNAVAILABLE, "log is busy, retry later");
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            r
        }
        Err(SubmitError::Shed) => {
            count("shed");
            let mut r = error(
                StatusCode::TOO_MANY_REQUESTS,
                "log is busy: certificates issued more than a day ago are shed, retry later",
            );
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("60"));
            r
        }
        Err(SubmitError::Unavailable) => {
            count("unavailable");
            let mut r = error(
                StatusCode::SERVICE_UNAVAILABLE,
                "log unavailable, retry later",
            );
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
            r
        }
        Err(e) => {
            count("error");
            tracing::error!(log = log.name(), error = %e, "submission failed");
            error(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
        }
    }
}

async fn get_roots(State(log): State<CtLog>) -> Response {
    let certificates: Vec<String> = log.inner.roots.ders().map(|d| B64.encode(d)).collect();
    axum::Json(serde_json::json!({ "certificates": certificates })).into_response()
}

async fn description(State(log): State<CtLog>) -> Response {
    let mut r = axum::Json(log.description()).into_response();
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("max-age=300"),
    );
    r
}

async fn read(log: &CtLog, key: String) -> Result<Option<Vec<u8>>, Response> {
    let storage = log.inner.storage.clone();
    let res = tokio::task::spawn_blocking(move || storage.get(&key)).await;
    match res {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => {
            tracing::error!(log = log.name(), error = %e, "reading a static file failed");
            Err(error(StatusCode::INTERNAL_SERVER_ERROR, "internal error"))
        }
        Err(_) => Err(error(StatusCode::INTERNAL_SERVER_ERROR, "internal error")),
    }
}

fn file(data: Vec<u8>, content_type: &'static str, cache: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (header::CACHE_CONTROL, HeaderValue::from_static(cache)),
        ],
        data,
    )
        .into_response()
}

const IMMUTABLE: &str = "public, max-age=604800, immutable";

async fn checkpoint(State(log): State<CtLog>) -> Response {
    match read(&log, "checkpoint".into()).await {
        Ok(Some(d)) => file(d, "text/plain; charset=utf-8", "no-cache, max-age=0"),
        Ok(None) => error(StatusCode::NOT_FOUND, "not found"),
        Err(r) => r,
    }
}

/// True if the `Accept-Encoding` header values accept gzip (a `gzip` or `*` coding whose
/// q-value is not zero; an explicit `gzip;q=0` wins over `*`).
pub fn accepts_gzip(headers: &HeaderMap) -> bool {
    let mut star = false;
    for value in headers.get_all(header::ACCEPT_ENCODING) {
        let Ok(value) = value.to_str() else { continue };
        for item in value.split(',') {
            let mut parts = item.split(';');
            let coding = parts.next().unwrap_or("").trim().to_ascii_lowercase();
            let zero = parts.any(|p| {
                let p = p.trim().to_ascii_lowercase();
                p.strip_prefix("q=")
                    .and_then(|q| q.trim().parse::<f32>().ok())
                    .is_some_and(|q| q <= 0.0)
            });
            match coding.as_str() {
                "gzip" | "x-gzip" => return !zero,
                "*" => star = !zero,
                _ => {}
            }
        }
    }
    star
}

fn gzip(data: &[u8]) -> std::io::Result<Vec<u8>> {
    use std::io::Write;
    let mut enc = flate2::write::GzEncoder::new(
        Vec::with_capacity(data.len() / 2 + 64),
        flate2::Compression::fast(),
    );
    enc.write_all(data)?;
    enc.finish()
}

/// A tile response: gzip-compressed when the client accepts it (static-ct-api asks logs to
/// serve data tiles compressed), identity otherwise; `Vary: Accept-Encoding` either way so
/// caches keep the two apart.
fn tile_file(data: Vec<u8>, headers: &HeaderMap) -> Response {
    if accepts_gzip(headers)
        && let Ok(z) = gzip(&data)
    {
        return gzip_tile(Bytes::from(z));
    }
    let mut response = file(data, "application/octet-stream", IMMUTABLE);
    response
        .headers_mut()
        .insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    response
}

/// A compressed tile (what [`tile_file`] answers to a client that accepts gzip).
fn gzip_tile(z: Bytes) -> Response {
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/octet-stream"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static(IMMUTABLE)),
            (header::CONTENT_ENCODING, HeaderValue::from_static("gzip")),
            (header::VARY, HeaderValue::from_static("Accept-Encoding")),
        ],
        z,
    )
        .into_response()
}

async fn vkeys(State(log): State<CtLog>) -> Response {
    let [ed25519, ml_dsa] = log.vkeys();
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; charset=utf-8"),
            ),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("max-age=3600"),
            ),
        ],
        format!("{ed25519}\n{ml_dsa}\n"),
    )
        .into_response()
}

async fn tile(State(log): State<CtLog>, Path(rest): Path<String>, headers: HeaderMap) -> Response {
    let path = format!("tile/{rest}");
    let Some(tile) = Tile::parse(&path) else {
        return error(StatusCode::NOT_FOUND, "not found");
    };
    // Serve only what the committed checkpoint covers: anything beyond it may still be
    // rewritten after a crash, and tiles are cached as immutable.
    let level = match tile.level {
        TileLevel::Hash(l) => l,
        TileLevel::Data => 0,
    };
    let committed = log.inner.committed_size.load(Ordering::Acquire);
    let needed = leaves_per_hash(level).and_then(|per| {
        tile.index
            .checked_mul(256)?
            .checked_add(u64::from(tile.width))?
            .checked_mul(per)
    });
    if needed.is_none_or(|n| n > committed) {
        return error(StatusCode::NOT_FOUND, "not found");
    }
    // A full tile never changes: its gzip form is made once and kept.
    let full = tile.width == 256;
    let gzip_ok = accepts_gzip(&headers);
    if full
        && gzip_ok
        && let Some(z) = log.inner.gzip_tiles.get(&path)
    {
        return gzip_tile(z);
    }
    match read(&log, path.clone()).await {
        Ok(Some(d)) => {
            if tile.level == TileLevel::Data {
                debug_assert!(parse_data_tile(&d).is_ok());
            }
            if full
                && gzip_ok
                && let Ok(z) = gzip(&d)
            {
                let z = Bytes::from(z);
                log.inner.gzip_tiles.insert(path, z.clone());
                return gzip_tile(z);
            }
            tile_file(d, &headers)
        }
        Ok(None) => error(StatusCode::NOT_FOUND, "not found"),
        Err(r) => r,
    }
}

async fn issuer(State(log): State<CtLog>, Path(fingerprint): Path<String>) -> Response {
    let ok = fingerprint.len() == 64
        && fingerprint
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if !ok {
        return error(StatusCode::NOT_FOUND, "not found");
    }
    match read(&log, format!("issuer/{fingerprint}")).await {
        Ok(Some(d)) => file(d, "application/pkix-cert", IMMUTABLE),
        Ok(None) => error(StatusCode::NOT_FOUND, "not found"),
        Err(r) => r,
    }
}
