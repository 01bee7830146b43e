//! The OCSP responder: answers good / revoked / unknown from storage, signs on demand through
//! the issuer's `CertificateIssuer::sign_ocsp` ("live signing"; the issuer chooses its key, see
//! `[ocsp] signer`), caches the signed answer (Redis, or this process's memory) until shortly
//! before its nextUpdate, and replaces the cached answer as soon as a revocation is recorded:
//! in this process through the RA's revocation hook (it is a [`RevocationListener`]), from
//! other processes through Redis or, for the memory cache, storage's revocation epoch.

use super::cache::{CachedAnswer, ResponseCache};
use super::config::OcspConfig;
use async_trait::async_trait;
use cairn_api::{CertificateIssuer, IssuerError, RevocationListener, SaError, StorageAuthority};
use cairn_core::{Clock, Revocation, RevocationReason, Serial};
use cairn_ocsp::asn1::{CertId, OcspResponseStatus};
use cairn_ocsp::{CertStatus, HashAlgorithm, IssuerHashes, ResponseParams, error_response};
use std::sync::{Arc, Weak};
use time::{Duration, OffsetDateTime};
use x509_cert::ext::pkix::crl::CrlReason;

/// Why a responder could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// `[ocsp]` does not hold.
    #[error(transparent)]
    Config(#[from] crate::ConfigError),
    /// The issuer's certificate (from its identity) does not decode.
    #[error("the issuer's certificate does not decode: {0}")]
    IssuerCertificate(#[source] der::Error),
    /// Redis did not answer.
    #[error("cannot connect to Redis for the OCSP cache: {0}")]
    Redis(#[source] redis::RedisError),
    /// Storage did not tell the revocation epoch (memory cache only).
    #[error("reading the revocation epoch: {0}")]
    RevocationEpoch(#[source] SaError),
}

/// How long an `unknown` answer stays cached (a serial may be reserved and not yet stored).
const UNKNOWN_CACHE_TTL: Duration = Duration::seconds(60);
/// The responder: status lookup, signing (by the issuer), caching.
pub struct OcspResponder {
    issuer: Arc<dyn CertificateIssuer>,
    /// The issuers whose certificates this answers for (retired ones included): each one's ID
    /// and the name and key hashes a request's CertID carries to ask about its certificates.
    issuers: Vec<(String, IssuerHashes)>,
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
            .field(
                "issuer_ids",
                &self.issuers.iter().map(|(id, _)| id).collect::<Vec<_>>(),
            )
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
    /// The responder of a server: [`new`](Self::new), and when it caches in memory (no
    /// `redis_url`), a task that polls storage's revocation epoch every `epoch_poll` while the
    /// responder lives, so that a revocation recorded by another process retires the cached
    /// answers (as the CRL updater notices it, within `crl.poll_interval`).
    pub async fn start(
        cfg: &OcspConfig,
        issuer: Arc<dyn CertificateIssuer>,
        sa: Arc<dyn StorageAuthority>,
        clock: Arc<dyn Clock>,
        redis_url: Option<&str>,
        epoch_poll: std::time::Duration,
    ) -> Result<Arc<OcspResponder>, StartError> {
        let responder = Arc::new(OcspResponder::new(cfg, issuer, sa, clock, redis_url).await?);
        if redis_url.is_none() {
            let epoch = responder
                .sa
                .get_revocation_epoch()
                .await
                .map_err(StartError::RevocationEpoch)?;
            responder.cache.observe_epoch(epoch);
            tokio::spawn(follow_revocation_epoch(
                Arc::downgrade(&responder),
                epoch_poll,
            ));
        }
        Ok(responder)
    }

    /// A responder for `issuer`'s certificates over `sa`, caching in Redis at `redis_url` when
    /// given, else in memory. Alone (without [`start`](Self::start)'s epoch polling) it suits a
    /// process that only writes revoked answers into the shared Redis cache, such as
    /// `cairn admin revoke`.
    pub async fn new(
        cfg: &OcspConfig,
        issuer: Arc<dyn CertificateIssuer>,
        sa: Arc<dyn StorageAuthority>,
        clock: Arc<dyn Clock>,
        redis_url: Option<&str>,
    ) -> Result<OcspResponder, StartError> {
        let (validity, margin) = cfg.durations()?;
        let issuers = issuer
            .identities()
            .into_iter()
            .map(|identity| {
                IssuerHashes::from_certificate(&identity.issuer_certificate_der)
                    .map(|hashes| (identity.issuer_id, hashes))
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(StartError::IssuerCertificate)?;
        let cache = match redis_url {
            Some(url) => ResponseCache::redis(url, &cfg.redis_prefix)
                .await
                .map_err(StartError::Redis)?,
            None => ResponseCache::memory(cfg.memory_cache_entries),
        };
        tracing::info!(
            issuer_ids = ?issuers.iter().map(|(id, _)| id).collect::<Vec<_>>(),
            cache = ?cache,
            validity = %cfg.validity,
            "OCSP responder on"
        );
        Ok(OcspResponder {
            issuer,
            issuers,
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
        let Some((issuer_id, _)) = self
            .issuers
            .iter()
            .find(|(_, hashes)| hashes.matches(&req.cert_id))
        else {
            return error_answer(OcspResponseStatus::Unauthorized, "unauthorized");
        };
        let nonce = if self.echo_nonce {
            match req.nonce() {
                Ok(n) => n,
                Err(_) => return error_answer(OcspResponseStatus::MalformedRequest, "malformed"),
            }
        } else {
            None
        };
        let key = cache_key(issuer_id, &req.serial_hex(), &req.cert_id);
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
        let status = match self.status(&req.serial_hex(), issuer_id).await {
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

    /// The status storage records for `serial`, a certificate of `issuer_id`.
    async fn status(&self, serial: &str, issuer_id: &str) -> Result<CertStatus, SaError> {
        // A precertificate-only serial is issued too (a CT log may have seen it).
        match self.sa.get_issued(&Serial(serial.to_owned())).await {
            Ok(cert) if cert.issuer_id == issuer_id => Ok(match cert.revocation {
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

/// Polls storage's revocation epoch every `every` while the responder lives, retiring the
/// memory cache's answers when it moves.
async fn follow_revocation_epoch(responder: Weak<OcspResponder>, every: std::time::Duration) {
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

#[async_trait]
impl RevocationListener for OcspResponder {
    /// Replaces the cached answers for every CertID form of `serial` with freshly signed
    /// "revoked" answers (deleting them if signing fails).
    async fn certificate_revoked(&self, serial: &Serial, issuer_id: &str, revocation: &Revocation) {
        let Some((_, hashes)) = self.issuers.iter().find(|(id, _)| id == issuer_id) else {
            return;
        };
        let now = self.now();
        let status = revoked(revocation);
        for cert_id in cert_id_forms(hashes, &serial.to_bytes()) {
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

pub(super) fn error_answer(status: OcspResponseStatus, label: &'static str) -> Answer {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixture::{Parts, now};
    use cairn_ocsp::asn1::{CertStatusAsn1, OcspRequest, Request, TbsRequest, Version};
    use cairn_ocsp::parse_response;
    use der::Encode;

    async fn responder(parts: &Parts) -> OcspResponder {
        OcspResponder::new(
            &OcspConfig::default(),
            parts.issuer.clone(),
            Arc::new(parts.sa.clone()),
            parts.clock.clone(),
            None,
        )
        .await
        .unwrap()
    }

    /// A request for `serial` naming the fake issuer, SHA-1 CertID with NULL parameters.
    fn request_for(parts: &Parts, serial: &Serial) -> Vec<u8> {
        let hashes = IssuerHashes::from_certificate(parts.issuer.intermediate_der()).unwrap();
        let cert_id = cert_id_forms(&hashes, &serial.to_bytes()).remove(0);
        request(cert_id)
    }

    fn request(req_cert: CertId) -> Vec<u8> {
        OcspRequest {
            tbs_request: TbsRequest {
                version: Version::V1,
                requestor_name: None,
                request_list: vec![Request {
                    req_cert,
                    single_request_extensions: None,
                }],
                request_extensions: None,
            },
            optional_signature: None,
        }
        .to_der()
        .unwrap()
    }

    /// The response status and, when successful, the one certificate status.
    fn read(answer: &Answer) -> (OcspResponseStatus, Option<CertStatusAsn1>) {
        let parsed = parse_response(&answer.der).unwrap();
        let single = parsed.single().map(|s| s.cert_status.clone());
        (parsed.status, single)
    }

    fn is_good(status: &Option<CertStatusAsn1>) -> bool {
        matches!(status, Some(CertStatusAsn1::Good(_)))
    }

    fn is_revoked(status: &Option<CertStatusAsn1>) -> bool {
        matches!(status, Some(CertStatusAsn1::Revoked(_)))
    }

    /// Issue 14, finding 3: a serial whose precertificate a CT log may have seen, with no final
    /// certificate stored, is good (not unknown), and revoked once revoked.
    #[tokio::test]
    async fn a_precertificate_only_serial_is_good_then_revoked() {
        let parts = Parts::new().await;
        let pre = parts.store_precertificate("1b01").await;
        let first = responder(&parts).await;
        let answer = first.respond(&request_for(&parts, &pre)).await;
        assert!(is_good(&read(&answer).1));
        parts
            .sa
            .revoke_certificate(
                &pre,
                &Revocation {
                    revoked_at: now() - Duration::hours(1),
                    reason: RevocationReason::Superseded,
                },
            )
            .await
            .unwrap();
        let fresh = responder(&parts).await;
        let answer = fresh.respond(&request_for(&parts, &pre)).await;
        assert!(is_revoked(&read(&answer).1));
    }

    #[tokio::test]
    async fn good_revoked_and_unknown_come_from_storage_and_are_cached() {
        let parts = Parts::new().await;
        let good = parts.store("1a01", 0, None).await;
        let revocation = Revocation {
            revoked_at: now() - Duration::hours(1),
            reason: RevocationReason::KeyCompromise,
        };
        let gone = parts.store("1a02", 0, Some(revocation)).await;
        let responder = responder(&parts).await;

        let answer = responder.respond(&request_for(&parts, &good)).await;
        assert_eq!(read(&answer).0, OcspResponseStatus::Successful);
        assert!(is_good(&read(&answer).1));
        let cached = answer.cached.unwrap();
        assert_eq!(cached.this_update, now().unix_timestamp());
        assert_eq!(
            cached.next_update,
            (now() + Duration::days(4)).unix_timestamp()
        );
        assert_eq!(
            cached.cache_until,
            (now() + Duration::days(3)).unix_timestamp(),
            "cached until the margin before nextUpdate"
        );
        assert_eq!(parts.issuer.signed(), 1);
        let again = responder.respond(&request_for(&parts, &good)).await;
        assert_eq!(again.der, cached.der);
        assert_eq!(
            parts.issuer.signed(),
            1,
            "the second answer came from the cache"
        );

        let answer = responder.respond(&request_for(&parts, &gone)).await;
        assert!(is_revoked(&read(&answer).1));
        let answer = responder
            .respond(&request_for(&parts, &Serial("1a03".into())))
            .await;
        assert!(matches!(read(&answer).1, Some(CertStatusAsn1::Unknown(_))));
        let unknown = answer.cached.unwrap();
        assert_eq!(
            unknown.cache_until,
            (now() + UNKNOWN_CACHE_TTL).unix_timestamp(),
            "an unknown serial may be stored soon: cached briefly"
        );
    }

    #[tokio::test]
    async fn requests_for_another_issuer_or_malformed_get_ocsp_errors() {
        let parts = Parts::new().await;
        let responder = responder(&parts).await;
        let other = other_issuer_hashes();
        let foreign = cert_id_forms(&other, &[0x1b, 0x01]).remove(0);
        let answer = responder.respond(&request(foreign)).await;
        assert_eq!(read(&answer), (OcspResponseStatus::Unauthorized, None));
        assert!(answer.cached.is_none());
        let answer = responder.respond(b"\x30\x03not ocsp").await;
        assert_eq!(read(&answer), (OcspResponseStatus::MalformedRequest, None));
        assert!(!answer.try_later);
        assert_eq!(parts.issuer.signed(), 0);
    }

    #[tokio::test]
    async fn a_signing_failure_is_an_internal_error_and_nothing_is_cached() {
        let parts = Parts::new().await;
        let serial = parts.store("1c01", 0, None).await;
        let responder = responder(&parts).await;
        parts.issuer.refuse(Some("the key is offline"));
        let answer = responder.respond(&request_for(&parts, &serial)).await;
        assert_eq!(read(&answer), (OcspResponseStatus::InternalError, None));
        parts.issuer.refuse(None);
        let answer = responder.respond(&request_for(&parts, &serial)).await;
        assert!(is_good(&read(&answer).1));
    }

    #[tokio::test]
    async fn a_revocation_in_this_process_replaces_every_cached_form_at_once() {
        let parts = Parts::new().await;
        let serial = parts.store("1d01", 0, None).await;
        let responder = responder(&parts).await;
        let hashes = IssuerHashes::from_certificate(parts.issuer.intermediate_der()).unwrap();
        let forms = cert_id_forms(&hashes, &serial.to_bytes());
        assert_eq!(
            forms.len(),
            4,
            "SHA-1 and SHA-256, with and without NULL parameters"
        );
        for form in &forms {
            let answer = responder.respond(&request(form.clone())).await;
            assert!(is_good(&read(&answer).1));
        }
        let revocation = Revocation {
            revoked_at: now(),
            reason: RevocationReason::Superseded,
        };
        parts
            .sa
            .revoke_certificate(&serial, &revocation)
            .await
            .unwrap();
        responder
            .certificate_revoked(&serial, &parts.issuer_id(), &revocation)
            .await;
        let signed = parts.issuer.signed();
        for form in &forms {
            let answer = responder.respond(&request(form.clone())).await;
            assert!(is_revoked(&read(&answer).1));
        }
        assert_eq!(
            parts.issuer.signed(),
            signed,
            "served from the replaced cache"
        );
        // Another issuer's revocation is not this responder's business.
        responder
            .certificate_revoked(&serial, "someone-else", &revocation)
            .await;
        assert_eq!(parts.issuer.signed(), signed);
    }

    #[tokio::test]
    async fn the_memory_cache_follows_revocations_by_other_processes() {
        let parts = Parts::new().await;
        let serial = parts.store("1e01", 0, None).await;
        let responder = OcspResponder::start(
            &OcspConfig::default(),
            parts.issuer.clone(),
            Arc::new(parts.sa.clone()),
            parts.clock.clone(),
            None,
            std::time::Duration::from_millis(20),
        )
        .await
        .unwrap();
        let answer = responder.respond(&request_for(&parts, &serial)).await;
        assert!(is_good(&read(&answer).1));
        // Revoked straight in storage (`cairn admin revoke`): no listener hears it here.
        let revocation = Revocation {
            revoked_at: now(),
            reason: RevocationReason::Unspecified,
        };
        parts
            .sa
            .revoke_certificate(&serial, &revocation)
            .await
            .unwrap();
        let mut status = None;
        for _ in 0..100 {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            status = read(&responder.respond(&request_for(&parts, &serial)).await).1;
            if is_revoked(&status) {
                break;
            }
        }
        assert!(is_revoked(&status), "{status:?}");
    }

    /// The hashes of an issuer that is not the fake's.
    fn other_issuer_hashes() -> IssuerHashes {
        let other = cairn_api::fake::FakeIssuer::new(now()).unwrap();
        IssuerHashes::from_certificate(other.intermediate_der()).unwrap()
    }
}
