//! The OCSP responder of `cairn serve` (RFC 6960, RFC 5019 profile), on the public plain-HTTP
//! listener: `GET /ocsp/{base64 request}` and `POST /ocsp`. Answers good / revoked / unknown
//! from storage, signs on demand through the issuer's `CertificateIssuer::sign_ocsp` ("live
//! signing"; the issuer chooses its key, see `[ocsp] signer`), caches the signed answer
//! (Redis, or this process's memory) until shortly before its nextUpdate, and replaces the cached
//! answer as soon as a revocation is recorded. Off unless `[ocsp] enabled = true`.

use crate::ocsp_cache::{CachedAnswer, ResponseCache};
use async_trait::async_trait;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use cairn_api::{CertificateIssuer, IssuerError, SaError, StorageAuthority};
use cairn_core::{Clock, Revocation, RevocationReason, Serial};
use cairn_issuer::OcspSignerKind;
use cairn_ocsp::asn1::{CertId, OcspResponseStatus};
use cairn_ocsp::{
    CertStatus, HashAlgorithm, IssuerHashes, MAX_REQUEST_SIZE, ResponseParams, error_response,
};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use time::{Duration, OffsetDateTime};
use x509_cert::ext::pkix::crl::CrlReason;

/// How long an `unknown` answer stays cached (a serial may be reserved and not yet stored).
const UNKNOWN_CACHE_TTL: Duration = Duration::seconds(60);
/// The Baseline Requirements' longest OCSP response validity.
const MAX_VALIDITY: Duration = Duration::days(10);

/// `[ocsp]`: the OCSP responder.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OcspConfig {
    /// Answer OCSP at `<server.public_base_url>/ocsp` and name that URL in the AIA extension of
    /// new certificates. Off by default (CRLs are the default revocation mechanism).
    pub enabled: bool,
    /// Which key signs responses: `"issuer"` (the intermediate itself, the default) or
    /// `"delegated"` (a responder certificate the intermediate issues, stored in `ca/`).
    pub signer: SignerChoice,
    /// nextUpdate − thisUpdate of every response, e.g. `"4d"` (at most 10 days).
    pub validity: String,
    /// A cached answer is signed afresh once less than this remains before its nextUpdate, so
    /// every served answer stays valid at least this long (and HTTP caches keep it no longer).
    pub cache_margin: String,
    /// Echo the request's nonce (RFC 8954). A request with a nonce then gets a freshly signed,
    /// uncached answer; off by default (RFC 5019 §4: nonces defeat caching).
    pub echo_nonce: bool,
    /// Key prefix in Redis (`server.redis_url`), so several CAs can share one server.
    pub redis_prefix: String,
    /// Without Redis: the most answers kept in this process's memory.
    pub memory_cache_entries: usize,
}

/// Which key signs OCSP responses.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SignerChoice {
    /// The issuing intermediate.
    #[default]
    Issuer,
    /// A delegated responder certificate.
    Delegated,
}

impl Default for OcspConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            signer: SignerChoice::Issuer,
            validity: "4d".into(),
            cache_margin: "1d".into(),
            echo_nonce: false,
            redis_prefix: "cairn:ocsp:".into(),
            memory_cache_entries: 100_000,
        }
    }
}

impl OcspConfig {
    /// The key the issuer is to sign responses with.
    pub fn signer_kind(&self) -> OcspSignerKind {
        match self.signer {
            SignerChoice::Issuer => OcspSignerKind::Issuer,
            SignerChoice::Delegated => OcspSignerKind::Delegated,
        }
    }

    /// The validity and the cache margin, checked: 1 hour ≤ validity ≤ 10 days, and
    /// 0 ≤ margin < validity.
    pub fn durations(&self) -> anyhow::Result<(Duration, Duration)> {
        let validity = cairn_ra::humane_duration::parse(&self.validity)
            .map_err(|e| anyhow::anyhow!("ocsp.validity: {e}"))?;
        let margin = cairn_ra::humane_duration::parse(&self.cache_margin)
            .map_err(|e| anyhow::anyhow!("ocsp.cache_margin: {e}"))?;
        anyhow::ensure!(
            validity >= Duration::hours(1) && validity <= MAX_VALIDITY,
            "ocsp.validity must be between 1h and 10d"
        );
        anyhow::ensure!(
            margin >= Duration::ZERO && margin < validity,
            "ocsp.cache_margin must be shorter than ocsp.validity"
        );
        anyhow::ensure!(
            self.memory_cache_entries > 0,
            "ocsp.memory_cache_entries must be positive"
        );
        Ok((validity, margin))
    }
}

/// The responder: status lookup, signing (by the issuer), caching.
pub struct OcspResponder {
    issuer: Arc<dyn CertificateIssuer>,
    /// The ID of the issuer whose certificates this answers for.
    issuer_id: String,
    /// The name and key hashes a request's CertID must carry.
    hashes: IssuerHashes,
    sa: Arc<dyn StorageAuthority>,
    cache: ResponseCache,
    clock: Arc<dyn Clock>,
    validity: Duration,
    margin: Duration,
    echo_nonce: bool,
}

impl std::fmt::Debug for OcspResponder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OcspResponder")
            .field("issuer_id", &self.issuer_id)
            .field("cache", &self.cache)
            .finish_non_exhaustive()
    }
}

/// What one request gets.
#[derive(Debug)]
pub struct Answer {
    /// The `OCSPResponse` DER.
    pub der: Vec<u8>,
    /// HTTP caching data, for successful answers.
    pub cached: Option<CachedAnswer>,
    /// Temporary failure (HTTP 503).
    pub try_later: bool,
}

impl OcspResponder {
    /// A responder for `issuer`'s certificates over `sa`, caching in Redis at `redis_url` when
    /// given, else in memory.
    pub async fn new(
        cfg: &OcspConfig,
        issuer: Arc<dyn CertificateIssuer>,
        sa: Arc<dyn StorageAuthority>,
        clock: Arc<dyn Clock>,
        redis_url: Option<&str>,
    ) -> anyhow::Result<OcspResponder> {
        let (validity, margin) = cfg.durations()?;
        let identity = issuer.identity();
        let hashes = IssuerHashes::from_certificate(&identity.issuer_certificate_der)
            .map_err(|e| anyhow::anyhow!("the issuer's certificate does not decode: {e}"))?;
        let cache = match redis_url {
            Some(url) => ResponseCache::redis(url, &cfg.redis_prefix)
                .await
                .map_err(|e| anyhow::anyhow!("cannot connect to Redis for the OCSP cache: {e}"))?,
            None => ResponseCache::memory(cfg.memory_cache_entries),
        };
        tracing::info!(
            issuer_id = %identity.issuer_id,
            cache = ?cache,
            validity = %cfg.validity,
            "OCSP responder on"
        );
        Ok(OcspResponder {
            issuer,
            issuer_id: identity.issuer_id,
            hashes,
            sa,
            cache,
            clock,
            validity,
            margin,
            echo_nonce: cfg.echo_nonce,
        })
    }

    /// Answers one DER `OCSPRequest`.
    pub async fn respond(&self, request_der: &[u8]) -> Answer {
        let now = self.now();
        let req = match cairn_ocsp::parse_request(request_der) {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!(error = %e, "malformed OCSP request");
                return error_answer(e.response_status(), "malformed");
            }
        };
        if !self.hashes.matches(&req.cert_id) {
            return error_answer(OcspResponseStatus::Unauthorized, "unauthorized");
        }
        let nonce = if self.echo_nonce {
            match req.nonce() {
                Ok(n) => n,
                Err(_) => return error_answer(OcspResponseStatus::MalformedRequest, "malformed"),
            }
        } else {
            None
        };
        let key = cache_key(&self.issuer_id, &req.serial_hex(), &req.cert_id);
        if nonce.is_none()
            && let Some(hit) = self.cache.get(&key, now).await
        {
            count("cache", None);
            return Answer {
                der: hit.der.clone(),
                cached: Some(hit),
                try_later: false,
            };
        }
        // Taken before the status is read: see `ResponseCache::fill`.
        let epoch = self.cache.epoch();
        let status = match self.status(&req.serial_hex()).await {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, "OCSP status lookup failed");
                return Answer {
                    try_later: true,
                    ..error_answer(OcspResponseStatus::TryLater, "try_later")
                };
            }
        };
        let answer = match self.sign(&req.cert_id, status, nonce, now).await {
            Ok(a) => a,
            Err(e) => {
                tracing::error!(error = %e, "OCSP signing failed");
                return error_answer(OcspResponseStatus::InternalError, "internal");
            }
        };
        if nonce.is_none() {
            self.cache.fill(&key, &answer, now, epoch).await;
        }
        count("signed", Some(status));
        Answer {
            der: answer.der.clone(),
            cached: Some(answer),
            try_later: false,
        }
    }

    /// The status storage records for `serial`.
    async fn status(&self, serial: &str) -> Result<CertStatus, SaError> {
        match self.sa.get_certificate(&Serial(serial.to_owned())).await {
            Ok(cert) if cert.issuer_id == self.issuer_id => Ok(match cert.revocation {
                None => CertStatus::Good,
                Some(r) => revoked(&r),
            }),
            Ok(_) | Err(SaError::NotFound) => Ok(CertStatus::Unknown),
            Err(e) => Err(e),
        }
    }

    async fn sign(
        &self,
        cert_id: &CertId,
        status: CertStatus,
        nonce: Option<&x509_cert::ext::Extension>,
        now: OffsetDateTime,
    ) -> Result<CachedAnswer, IssuerError> {
        let this_update = now;
        let next_update = now + self.validity;
        let der = self
            .issuer
            .sign_ocsp(&ResponseParams {
                cert_id,
                status,
                produced_at: now,
                this_update,
                next_update,
                nonce,
            })
            .await?;
        let cache_until = match status {
            CertStatus::Unknown => now + UNKNOWN_CACHE_TTL,
            _ => next_update - self.margin,
        };
        Ok(CachedAnswer {
            der,
            this_update: this_update.unix_timestamp(),
            next_update: next_update.unix_timestamp(),
            cache_until: cache_until.unix_timestamp(),
        })
    }

    fn now(&self) -> OffsetDateTime {
        let now = self.clock.now();
        now.replace_nanosecond(0).unwrap_or(now)
    }
}

/// The CertID forms a client may ask with: each hash algorithm, with NULL or absent parameters.
fn cert_id_forms(hashes: &IssuerHashes, serial: &[u8]) -> Vec<CertId> {
    let mut out = Vec::new();
    for alg in HashAlgorithm::ALL {
        let Some((name, key)) = hashes.get(alg) else {
            continue;
        };
        let (Ok(name), Ok(key), Ok(serial_number)) = (
            der::asn1::OctetString::new(name),
            der::asn1::OctetString::new(key),
            x509_cert::serial_number::SerialNumber::new(serial),
        ) else {
            continue;
        };
        let with_null = CertId {
            hash_algorithm: alg.algorithm_identifier(),
            issuer_name_hash: name,
            issuer_key_hash: key,
            serial_number,
        };
        let mut absent = with_null.clone();
        absent.hash_algorithm.parameters = None;
        out.push(with_null);
        out.push(absent);
    }
    out
}

#[async_trait]
impl cairn_api::RevocationListener for OcspResponder {
    /// Replaces the cached answers for every CertID form of `serial` with freshly signed
    /// "revoked" answers (deleting them if signing fails).
    async fn certificate_revoked(&self, serial: &Serial, issuer_id: &str, revocation: &Revocation) {
        if issuer_id != self.issuer_id {
            return;
        }
        let now = self.now();
        let status = revoked(revocation);
        for cert_id in cert_id_forms(&self.hashes, &serial.to_bytes()) {
            let key = cache_key(issuer_id, serial.as_str(), &cert_id);
            match self.sign(&cert_id, status, None, now).await {
                Ok(answer) => self.cache.replace(&key, &answer, now).await,
                Err(e) => {
                    tracing::error!(error = %e, %serial, "cannot sign the revoked OCSP answer; dropping the cached one");
                    self.cache.delete(&key).await;
                }
            }
        }
    }
}

fn revoked(r: &Revocation) -> CertStatus {
    CertStatus::Revoked {
        revoked_at: r.revoked_at,
        reason: Some(crl_reason(r.reason)),
    }
}

fn crl_reason(reason: RevocationReason) -> CrlReason {
    match reason {
        RevocationReason::Unspecified => CrlReason::Unspecified,
        RevocationReason::KeyCompromise => CrlReason::KeyCompromise,
        RevocationReason::AffiliationChanged => CrlReason::AffiliationChanged,
        RevocationReason::Superseded => CrlReason::Superseded,
        RevocationReason::CessationOfOperation => CrlReason::CessationOfOperation,
        RevocationReason::PrivilegeWithdrawn => CrlReason::PrivilegeWithdrawn,
    }
}

/// `<issuer>:<serial hex>:<sha1|sha256>[-noparams]`: one cached answer per CertID form, so the
/// answer echoes the CertID exactly as asked.
fn cache_key(issuer_id: &str, serial_hex: &str, cert_id: &CertId) -> String {
    let alg = HashAlgorithm::from_oid(&cert_id.hash_algorithm.oid)
        .map(HashAlgorithm::as_str)
        .unwrap_or("other");
    let form = if cert_id.hash_algorithm.parameters.is_none() {
        "-noparams"
    } else {
        ""
    };
    format!("{issuer_id}:{serial_hex}:{alg}{form}")
}

fn error_answer(status: OcspResponseStatus, label: &'static str) -> Answer {
    metrics::counter!("cairn_ocsp_responses_total", "status" => label, "source" => "none")
        .increment(1);
    Answer {
        der: error_response(status),
        cached: None,
        try_later: false,
    }
}

fn count(source: &'static str, status: Option<CertStatus>) {
    let label = status.map(|s| s.as_str()).unwrap_or("cached");
    metrics::counter!("cairn_ocsp_responses_total", "status" => label, "source" => source)
        .increment(1);
}

/// Builds the responder of `cairn serve` from its parts: the issuer (which signs with the key
/// `[ocsp] signer` chose, see [`OcspConfig::signer_kind`]), storage, and the cache (Redis when
/// `server.redis_url` is set).
pub async fn start(
    cfg: &crate::config::Config,
    (sa, issuer, clock): (
        Arc<cairn_sa::SqlStorage>,
        Arc<dyn CertificateIssuer>,
        Arc<dyn Clock>,
    ),
) -> anyhow::Result<Arc<OcspResponder>> {
    let redis_url = cfg.redis_url();
    let responder =
        Arc::new(OcspResponder::new(&cfg.ocsp, issuer, sa, clock, redis_url.as_deref()).await?);
    if redis_url.is_none() {
        // Revocations by other processes cannot reach this memory: follow storage's revocation
        // epoch, as the CRL updater does.
        let epoch = responder
            .sa
            .get_revocation_epoch()
            .await
            .map_err(|e| anyhow::anyhow!("reading the revocation epoch: {e}"))?;
        responder.cache.observe_epoch(epoch);
        tokio::spawn(follow_revocation_epoch(
            Arc::downgrade(&responder),
            cfg.crl.settings()?.poll_interval,
        ));
    }
    Ok(responder)
}

/// Polls storage's revocation epoch every `every` while the responder lives, retiring the
/// memory cache's answers when it moves.
async fn follow_revocation_epoch(
    responder: std::sync::Weak<OcspResponder>,
    every: std::time::Duration,
) {
    loop {
        tokio::time::sleep(every).await;
        let Some(responder) = responder.upgrade() else {
            return;
        };
        match responder.sa.get_revocation_epoch().await {
            Ok(epoch) => {
                if responder.cache.observe_epoch(epoch) {
                    tracing::debug!(epoch, "revocation epoch moved; OCSP memory cache retired");
                }
            }
            Err(e) => tracing::warn!(error = %e, "reading the revocation epoch for the OCSP cache"),
        }
    }
}

/// For `cairn admin revoke`: when the responder is on and caches in Redis, a listener that
/// writes `revoked` answers for each revocation into the server's Redis cache, signed with the
/// CA's keys in `server.data_dir` (as the server's own listener does). `None` when OCSP is off
/// or caches in memory (the server then retires its answers when it sees the revocation
/// epoch move, within `crl.poll_interval`).
pub async fn admin_revocation_listener(
    cfg: &crate::config::Config,
    sa: Arc<dyn StorageAuthority>,
) -> anyhow::Result<Option<Arc<OcspResponder>>> {
    let Some(redis_url) = cfg.redis_url().filter(|_| cfg.ocsp.enabled) else {
        return Ok(None);
    };
    let ca_dir = cfg.server.data_dir.join("ca");
    let hierarchy = cairn_issuer::CaHierarchy::load(&ca_dir).map_err(|e| {
        anyhow::anyhow!(
            "cannot load the CA in {} to sign OCSP answers: {e}",
            ca_dir.display()
        )
    })?;
    let clock: Arc<dyn Clock> = Arc::new(cairn_core::SystemClock);
    let issuer = cairn_issuer::LocalIssuer::new(
        hierarchy,
        cairn_issuer::EndEntityProfile::default(),
        cfg.ca.ignored_lints.clone(),
    )
    .map_err(|e| anyhow::anyhow!("cannot set up the issuer: {e}"))?
    .with_ocsp_signer(cfg.ocsp.signer_kind(), &ca_dir, clock.now())
    .map_err(|e| anyhow::anyhow!("cannot set up OCSP signing: {e}"))?;
    let responder =
        OcspResponder::new(&cfg.ocsp, Arc::new(issuer), sa, clock, Some(&redis_url)).await?;
    Ok(Some(Arc::new(responder)))
}

/// The responder's routes, to merge into the public listener's router.
pub fn router(responder: Arc<OcspResponder>) -> Router {
    Router::new()
        .route("/ocsp", post(post_request).get(get_empty))
        .route("/ocsp/", post(post_request).get(get_empty))
        .route("/ocsp/{*request}", get(get_request))
        .layer(DefaultBodyLimit::max(MAX_REQUEST_SIZE))
        .with_state(responder)
}

/// `GET /ocsp/{base64(DER OCSPRequest)}` (RFC 6960 Appendix A.1, RFC 5019 §5).
async fn get_request(
    State(responder): State<Arc<OcspResponder>>,
    Path(encoded): Path<String>,
    headers: HeaderMap,
) -> Response {
    let Some(der) = decode_get_path(&encoded) else {
        return ocsp_response(
            StatusCode::OK,
            &error_answer(OcspResponseStatus::MalformedRequest, "malformed"),
            None,
        );
    };
    let answer = responder.respond(&der).await;
    ocsp_response(StatusCode::OK, &answer, Some(&headers))
}

/// `GET /ocsp` without a request.
async fn get_empty() -> Response {
    ocsp_response(
        StatusCode::OK,
        &error_answer(OcspResponseStatus::MalformedRequest, "malformed"),
        None,
    )
}

/// `POST /ocsp` with `Content-Type: application/ocsp-request`.
async fn post_request(
    State(responder): State<Arc<OcspResponder>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase());
    if content_type.as_deref() != Some("application/ocsp-request") {
        return ocsp_response(
            StatusCode::BAD_REQUEST,
            &error_answer(OcspResponseStatus::MalformedRequest, "malformed"),
            None,
        );
    }
    let answer = responder.respond(&body).await;
    ocsp_response(StatusCode::OK, &answer, None)
}

/// The request of a GET path: base64 (standard or URL-safe alphabet, padding optional), after
/// the percent-decoding the router already did.
fn decode_get_path(encoded: &str) -> Option<Vec<u8>> {
    use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
    let lenient =
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);
    let standard = GeneralPurpose::new(&base64::alphabet::STANDARD, lenient);
    let url_safe = GeneralPurpose::new(&base64::alphabet::URL_SAFE, lenient);
    let trimmed = encoded.trim();
    if trimmed.is_empty() || trimmed.len() > MAX_REQUEST_SIZE * 2 {
        return None;
    }
    standard
        .decode(trimmed)
        .or_else(|_| url_safe.decode(trimmed))
        .ok()
}

/// An `application/ocsp-response` with RFC 5019 §6 caching headers for successful answers
/// (Last-Modified = thisUpdate, Expires = nextUpdate, max-age until the answer leaves the cache,
/// ETag), and `304 Not Modified` for a GET whose `If-None-Match` names the current answer.
fn ocsp_response(status: StatusCode, answer: &Answer, request: Option<&HeaderMap>) -> Response {
    let status = if answer.try_later {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        status
    };
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/ocsp-response"),
    );
    let Some(meta) = &answer.cached else {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        return (status, headers, answer.der.clone()).into_response();
    };
    let now = OffsetDateTime::now_utc();
    let etag = format!("\"{}\"", etag(&answer.der));
    let values = [
        (header::ETAG, Some(etag.clone())),
        (
            header::CACHE_CONTROL,
            Some(format!(
                "public, max-age={}, no-transform, must-revalidate",
                meta.ttl_seconds(now)
            )),
        ),
        (header::LAST_MODIFIED, http_date(meta.this_update)),
        (header::EXPIRES, http_date(meta.next_update)),
    ];
    for (name, value) in values {
        if let Some(v) = value.and_then(|v| HeaderValue::from_str(&v).ok()) {
            headers.insert(name, v);
        }
    }
    let not_modified = request
        .and_then(|h| h.get(header::IF_NONE_MATCH))
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    if not_modified {
        return (StatusCode::NOT_MODIFIED, headers).into_response();
    }
    (status, headers, answer.der.clone()).into_response()
}

fn etag(der: &[u8]) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, der);
    digest.as_ref()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// An IMF-fixdate (RFC 9110 §5.6.7).
fn http_date(unix: i64) -> Option<String> {
    let format = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    OffsetDateTime::from_unix_timestamp(unix)
        .ok()?
        .format(format)
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_defaults_are_off_and_valid() {
        let cfg = OcspConfig::default();
        assert!(!cfg.enabled);
        assert_eq!(cfg.signer, SignerChoice::Issuer);
        let (validity, margin) = cfg.durations().unwrap();
        assert_eq!(validity, Duration::days(4));
        assert_eq!(margin, Duration::days(1));
    }

    #[test]
    fn bad_durations_are_refused() {
        for (validity, margin) in [("11d", "1d"), ("30m", "1m"), ("4d", "4d"), ("soon", "1d")] {
            let cfg = OcspConfig {
                validity: validity.into(),
                cache_margin: margin.into(),
                ..OcspConfig::default()
            };
            assert!(cfg.durations().is_err(), "{validity} {margin}");
        }
    }

    #[test]
    fn http_dates_are_imf_fixdates() {
        assert_eq!(
            http_date(784_111_777).as_deref(),
            Some("Sun, 06 Nov 1994 08:49:37 GMT")
        );
    }

    #[test]
    fn get_paths_decode_in_either_alphabet_with_or_without_padding() {
        let der = vec![0xfb, 0xff, 0x30, 0x01];
        for form in ["+/8wAQ==", "+/8wAQ", "-_8wAQ==", "-_8wAQ"] {
            assert_eq!(decode_get_path(form), Some(der.clone()), "{form}");
        }
        assert_eq!(decode_get_path(""), None);
        assert_eq!(decode_get_path("not base64!"), None);
    }
}
