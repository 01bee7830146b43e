//! OCSP response signing ("live signing"), the [`LocalIssuer`] side of
//! `CertificateIssuer::sign_ocsp`. The issuer signs only `ResponseData` it builds itself from a
//! status (never caller-supplied bytes), about its own certificates, with either the
//! intermediate's own key or a delegated responder certificate (id-kp-OCSPSigning +
//! id-pkix-ocsp-nocheck) that the intermediate issues and that is stored next to the CA files and
//! renewed before it expires.

use crate::hierarchy::{read_text, write_atomic, write_key};
use crate::{CaHierarchy, IssuerError, LocalIssuer};
use cairn_ocsp::{BuildError, IssuerHashes, ResponseParams, ResponseSigner, key_hash_sha1};
use cairn_x509::{
    CertInfo, KeyAlgorithm, SigningKey, build_ocsp_responder, is_signed_by, pem_certificates,
    pem_encode,
};
use spki::AlgorithmIdentifierOwned;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use time::{Duration, OffsetDateTime};

/// The delegated responder's certificate file (PEM).
pub const OCSP_RESPONDER_CERT_FILE: &str = "ocsp-responder.pem";
/// The delegated responder's private key file (PKCS#8 PEM, mode 0600).
pub const OCSP_RESPONDER_KEY_FILE: &str = "ocsp-responder.key.pem";

/// Validity of a delegated responder certificate. It carries id-pkix-ocsp-nocheck, so it cannot
/// be revoked in practice: keep it short (RFC 6960 §4.2.2.2.1).
const RESPONDER_VALIDITY: Duration = Duration::days(30);
/// Reissue the delegated responder certificate when fewer than this many days remain.
const RESPONDER_RENEW_BEFORE: Duration = Duration::days(10);

/// Which key signs OCSP responses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OcspSignerKind {
    /// The intermediate that issued the certificates (the default: the smallest responses, no
    /// extra certificate for clients to check, nothing else to protect).
    #[default]
    Issuer,
    /// A delegated responder certificate issued by the intermediate; responses carry it.
    Delegated,
}

/// How a [`LocalIssuer`] signs OCSP responses for its certificates: the hashes a request's CertID
/// must carry, and the delegated responder when one signs instead of the intermediate.
pub(crate) struct OcspKeys {
    hashes: IssuerHashes,
    issuer_key_hash: [u8; 20],
    delegate: Option<Delegate>,
}

impl fmt::Debug for OcspKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OcspKeys")
            .field("delegated", &self.delegate.is_some())
            .finish_non_exhaustive()
    }
}

/// The delegated responder and where it is stored.
struct Delegate {
    dir: PathBuf,
    current: RwLock<Arc<DelegatedResponder>>,
}

/// A delegated responder certificate with its key.
struct DelegatedResponder {
    key: SigningKey,
    certs: Vec<Vec<u8>>,
    key_hash: [u8; 20],
    not_after: OffsetDateTime,
}

impl OcspKeys {
    /// The intermediate of `hierarchy` signs.
    pub(crate) fn new(hierarchy: &CaHierarchy) -> Result<OcspKeys, IssuerError> {
        let intermediate = hierarchy.intermediate();
        let hashes = IssuerHashes::from_certificate(intermediate.der())
            .map_err(|e| IssuerError::Inconsistent(format!("intermediate certificate: {e}")))?;
        let issuer_key_hash = key_hash_sha1(intermediate.key().spki_der()).ok_or_else(|| {
            IssuerError::Inconsistent("intermediate public key does not decode".into())
        })?;
        Ok(OcspKeys {
            hashes,
            issuer_key_hash,
            delegate: None,
        })
    }
}

impl LocalIssuer {
    /// Chooses which key signs OCSP responses (the intermediate by default). With
    /// [`OcspSignerKind::Delegated`], loads the responder certificate from `ca_dir`, or issues a
    /// new one (ECDSA P-256, 30 days) when it is missing, not from the current intermediate, or
    /// within 10 days of expiry.
    pub fn with_ocsp_signer(
        mut self,
        kind: OcspSignerKind,
        ca_dir: &Path,
        now: OffsetDateTime,
    ) -> Result<LocalIssuer, IssuerError> {
        self.ocsp.delegate = match kind {
            OcspSignerKind::Issuer => None,
            OcspSignerKind::Delegated => {
                let responder = load_or_issue(&self, ca_dir, now)?;
                Some(Delegate {
                    dir: ca_dir.to_path_buf(),
                    current: RwLock::new(Arc::new(responder)),
                })
            }
        };
        tracing::info!(signer = ?kind, "OCSP signing key chosen");
        Ok(self)
    }

    /// The name and key hashes a request's CertID must carry to ask about this issuer's
    /// certificates.
    pub fn issuer_hashes(&self) -> &IssuerHashes {
        &self.ocsp.hashes
    }

    /// Which key signs OCSP responses.
    pub fn ocsp_signer_kind(&self) -> OcspSignerKind {
        if self.ocsp.delegate.is_some() {
            OcspSignerKind::Delegated
        } else {
            OcspSignerKind::Issuer
        }
    }

    /// The delegated responder's certificate (PEM), if one signs.
    pub fn ocsp_responder_certificate_pem(&self) -> Option<String> {
        let delegate = self.ocsp.delegate.as_ref()?;
        let current = delegate.current.read().ok()?.clone();
        current
            .certs
            .first()
            .map(|der| pem_encode("CERTIFICATE", der))
    }

    /// Builds and signs one OCSP response about a certificate of this issuer (a CertID naming
    /// another issuer is refused). A delegated responder certificate near expiry at `now` is
    /// replaced first (a failure to replace it is logged and the current one still signs while
    /// it is valid).
    pub(crate) fn sign_ocsp_response(
        &self,
        params: &ResponseParams<'_>,
        now: OffsetDateTime,
    ) -> Result<Vec<u8>, IssuerError> {
        if !self.ocsp.hashes.matches(params.cert_id) {
            return Err(IssuerError::InvalidRequest(
                "the OCSP CertID does not name this issuer".into(),
            ));
        }
        let err = |e: BuildError| IssuerError::Signing(format!("OCSP response: {e}"));
        match &self.ocsp.delegate {
            None => {
                let signer = KeySigner {
                    key: self.hierarchy().intermediate().key(),
                    key_hash: self.ocsp.issuer_key_hash,
                    certs: &[],
                };
                cairn_ocsp::sign_response(params, &signer).map_err(err)
            }
            Some(delegate) => {
                let responder = self.current_delegate(delegate, now)?;
                if responder.not_after <= now {
                    return Err(IssuerError::Signing(
                        "the delegated OCSP responder certificate has expired".into(),
                    ));
                }
                let signer = KeySigner {
                    key: &responder.key,
                    key_hash: responder.key_hash,
                    certs: &responder.certs,
                };
                cairn_ocsp::sign_response(params, &signer).map_err(err)
            }
        }
    }

    fn current_delegate(
        &self,
        delegate: &Delegate,
        now: OffsetDateTime,
    ) -> Result<Arc<DelegatedResponder>, IssuerError> {
        let poisoned = || IssuerError::Signing("OCSP responder lock poisoned".into());
        let current = delegate.current.read().map_err(|_| poisoned())?.clone();
        if current.not_after - now >= RESPONDER_RENEW_BEFORE {
            return Ok(current);
        }
        let mut slot = delegate.current.write().map_err(|_| poisoned())?;
        if slot.not_after - now >= RESPONDER_RENEW_BEFORE {
            return Ok(slot.clone());
        }
        match issue(self, &delegate.dir, now) {
            Ok(fresh) => {
                *slot = Arc::new(fresh);
                Ok(slot.clone())
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot renew the delegated OCSP responder certificate");
                Ok(slot.clone())
            }
        }
    }
}

/// A signing key seen through [`ResponseSigner`].
struct KeySigner<'a> {
    key: &'a SigningKey,
    key_hash: [u8; 20],
    certs: &'a [Vec<u8>],
}

impl ResponseSigner for KeySigner<'_> {
    fn responder_key_hash(&self) -> [u8; 20] {
        self.key_hash
    }

    fn signature_algorithm(&self) -> AlgorithmIdentifierOwned {
        self.key.signature_algorithm()
    }

    fn sign(&self, tbs_response_data: &[u8]) -> Result<Vec<u8>, BuildError> {
        self.key
            .sign(tbs_response_data)
            .map_err(|_| BuildError::Signing)
    }

    fn certificates(&self) -> &[Vec<u8>] {
        self.certs
    }
}

fn load_or_issue(
    issuer: &LocalIssuer,
    dir: &Path,
    now: OffsetDateTime,
) -> Result<DelegatedResponder, IssuerError> {
    match load(issuer, dir, now) {
        Ok(responder) => Ok(responder),
        Err(reason) => {
            tracing::info!(%reason, "issuing a new delegated OCSP responder certificate");
            issue(issuer, dir, now)
        }
    }
}

/// The stored responder if it is still right, or why not.
fn load(
    issuer: &LocalIssuer,
    dir: &Path,
    now: OffsetDateTime,
) -> Result<DelegatedResponder, String> {
    let (cert_path, key_path) = (
        dir.join(OCSP_RESPONDER_CERT_FILE),
        dir.join(OCSP_RESPONDER_KEY_FILE),
    );
    if !cert_path.exists() || !key_path.exists() {
        return Err("no stored responder certificate".into());
    }
    let cert = pem_certificates(&read_text(&cert_path).map_err(|e| e.to_string())?)
        .map_err(|e| format!("{OCSP_RESPONDER_CERT_FILE}: {e}"))?
        .into_iter()
        .next()
        .ok_or_else(|| format!("{OCSP_RESPONDER_CERT_FILE} holds no certificate"))?;
    let key = SigningKey::from_pkcs8_pem(&read_text(&key_path).map_err(|e| e.to_string())?)
        .map_err(|e| format!("{OCSP_RESPONDER_KEY_FILE}: {e}"))?;
    let info = CertInfo::from_der(&cert).map_err(|e| format!("{OCSP_RESPONDER_CERT_FILE}: {e}"))?;
    if info.spki_der != key.spki_der() {
        return Err(format!(
            "{OCSP_RESPONDER_KEY_FILE} does not match {OCSP_RESPONDER_CERT_FILE}"
        ));
    }
    if !is_signed_by(&cert, issuer.hierarchy().intermediate().key().spki_der()) {
        return Err("stored responder certificate is not from the current intermediate".into());
    }
    if info.not_before > now || info.not_after - now < RESPONDER_RENEW_BEFORE {
        return Err(format!(
            "stored responder certificate expires {}",
            info.not_after
        ));
    }
    responder(key, cert, info.not_after)
}

fn issue(
    issuer: &LocalIssuer,
    dir: &Path,
    now: OffsetDateTime,
) -> Result<DelegatedResponder, IssuerError> {
    let intermediate = issuer.hierarchy().intermediate();
    let key = SigningKey::generate(KeyAlgorithm::EcdsaP256)
        .map_err(|e| IssuerError::Signing(e.to_string()))?;
    let now = now.replace_nanosecond(0).unwrap_or(now);
    let not_after = (now + RESPONDER_VALIDITY).min(intermediate.info().not_after);
    let name = intermediate
        .info()
        .common_name
        .as_deref()
        .map(|cn| format!("{cn} OCSP Responder"))
        .filter(|n| n.chars().count() <= 64)
        .unwrap_or_else(|| "Cairn OCSP Responder".into());
    let cert = build_ocsp_responder(
        intermediate,
        key.spki_der(),
        &name,
        now - Duration::hours(1),
        not_after,
    )
    .map_err(|e| IssuerError::Signing(e.to_string()))?;
    write_key(&dir.join(OCSP_RESPONDER_KEY_FILE), &key)?;
    write_atomic(
        &dir.join(OCSP_RESPONDER_CERT_FILE),
        pem_encode("CERTIFICATE", &cert).as_bytes(),
        0o644,
    )?;
    tracing::info!(%not_after, "issued a delegated OCSP responder certificate");
    responder(key, cert, not_after).map_err(IssuerError::Signing)
}

fn responder(
    key: SigningKey,
    cert: Vec<u8>,
    not_after: OffsetDateTime,
) -> Result<DelegatedResponder, String> {
    let key_hash = key_hash_sha1(key.spki_der()).ok_or("responder public key does not decode")?;
    Ok(DelegatedResponder {
        key,
        certs: vec![cert],
        key_hash,
        not_after,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::CaHierarchy;
    use cairn_ocsp::asn1::{CertId, CertStatusAsn1};
    use cairn_ocsp::{CertStatus, HashAlgorithm};
    use der::asn1::OctetString;
    use x509_cert::serial_number::SerialNumber;

    fn issuer(dir: &Path) -> LocalIssuer {
        let now = OffsetDateTime::now_utc();
        let h = CaHierarchy::load_or_create(dir, KeyAlgorithm::EcdsaP256, now).unwrap();
        LocalIssuer::new(h, Default::default(), Vec::new()).unwrap()
    }

    /// An issuer of `dir`'s hierarchy signing OCSP with `kind`, as a restart would build it.
    fn signer(dir: &Path, kind: OcspSignerKind, now: OffsetDateTime) -> LocalIssuer {
        issuer(dir).with_ocsp_signer(kind, dir, now).unwrap()
    }

    fn answer(signer: &LocalIssuer, now: OffsetDateTime) -> cairn_ocsp::ParsedResponse {
        let (name, key) = signer.issuer_hashes().get(HashAlgorithm::Sha1).unwrap();
        let id = CertId {
            hash_algorithm: HashAlgorithm::Sha1.algorithm_identifier(),
            issuer_name_hash: OctetString::new(name.to_vec()).unwrap(),
            issuer_key_hash: OctetString::new(key.to_vec()).unwrap(),
            serial_number: SerialNumber::new(&[0x11, 0x22]).unwrap(),
        };
        assert!(signer.issuer_hashes().matches(&id));
        let der = signer
            .sign_ocsp_response(
                &ResponseParams {
                    cert_id: &id,
                    status: CertStatus::Good,
                    produced_at: now,
                    this_update: now,
                    next_update: now + Duration::days(4),
                    nonce: None,
                },
                now,
            )
            .unwrap();
        let parsed = cairn_ocsp::parse_response(&der).unwrap();
        assert!(matches!(
            parsed.single().unwrap().cert_status,
            CertStatusAsn1::Good(_)
        ));
        parsed
    }

    fn signature_ok(parsed: &cairn_ocsp::ParsedResponse, cert_der: &[u8]) -> bool {
        // Re-wrap the signed data as a certificate-shaped check through cairn-x509 is not
        // possible; verify with aws-lc directly (P-256 keys throughout).
        let info = CertInfo::from_der(cert_der).unwrap();
        let spki = spki::SubjectPublicKeyInfoRef::try_from(info.spki_der.as_slice()).unwrap();
        let basic = parsed.basic.as_ref().unwrap();
        aws_lc_rs::signature::UnparsedPublicKey::new(
            &aws_lc_rs::signature::ECDSA_P256_SHA256_ASN1,
            spki.subject_public_key.raw_bytes(),
        )
        .verify(
            &parsed.tbs_response_data_der().unwrap(),
            basic.signature.raw_bytes(),
        )
        .is_ok()
    }

    #[test]
    fn the_intermediate_signs_by_default() {
        let dir = tempfile::tempdir().unwrap();
        let now = OffsetDateTime::now_utc();
        let signer = signer(dir.path(), OcspSignerKind::default(), now);
        assert_eq!(signer.ocsp_signer_kind(), OcspSignerKind::Issuer);
        let parsed = answer(&signer, now);
        assert!(signature_ok(
            &parsed,
            signer.hierarchy().intermediate().der()
        ));
        assert!(parsed.basic.unwrap().certs.is_none());
        assert!(!dir.path().join(OCSP_RESPONDER_CERT_FILE).exists());
    }

    #[test]
    fn a_delegated_responder_is_issued_stored_reused_and_renewed() {
        let dir = tempfile::tempdir().unwrap();
        let now = OffsetDateTime::now_utc();
        let signer = signer(dir.path(), OcspSignerKind::Delegated, now);
        let pem = signer.ocsp_responder_certificate_pem().unwrap();
        let cert = pem_certificates(&pem).unwrap().remove(0);
        assert!(is_signed_by(
            &cert,
            signer.hierarchy().intermediate().key().spki_der()
        ));
        let parsed = answer(&signer, now);
        assert!(signature_ok(&parsed, &cert));
        let certs = parsed.basic.unwrap().certs.unwrap();
        assert_eq!(der::Encode::to_der(&certs[0]).unwrap(), cert);
        // The certificate says what it is for: OCSPSigning only, nocheck, not a CA.
        let x509 = <x509_cert::Certificate as der::Decode>::from_der(&cert).unwrap();
        let exts = x509.tbs_certificate().extensions().unwrap();
        let oids: Vec<String> = exts.iter().map(|e| e.extn_id.to_string()).collect();
        assert!(
            oids.contains(&cairn_ocsp::OID_OCSP_NOCHECK.to_string()),
            "{oids:?}"
        );
        let eku = exts
            .iter()
            .find(|e| e.extn_id.to_string() == "2.5.29.37")
            .unwrap();
        let eku = <x509_cert::ext::pkix::ExtendedKeyUsage as der::Decode>::from_der(
            eku.extn_value.as_bytes(),
        )
        .unwrap();
        assert_eq!(eku.0, vec![cairn_ocsp::OID_KP_OCSP_SIGNING]);
        assert!(!CertInfo::from_der(&cert).unwrap().is_ca);

        // A restart reuses the stored responder.
        let again = self::signer(dir.path(), OcspSignerKind::Delegated, now);
        assert_eq!(again.ocsp_responder_certificate_pem().unwrap(), pem);
        // Near its expiry it is replaced, on start and while signing.
        let later = now + RESPONDER_VALIDITY - Duration::days(5);
        let renewed = self::signer(dir.path(), OcspSignerKind::Delegated, later);
        assert_ne!(renewed.ocsp_responder_certificate_pem().unwrap(), pem);
        answer(&again, later);
        assert_ne!(again.ocsp_responder_certificate_pem().unwrap(), pem);
    }

    #[test]
    fn a_cert_id_of_another_issuer_is_refused() {
        let (ours, theirs) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let now = OffsetDateTime::now_utc();
        let signer = signer(ours.path(), OcspSignerKind::default(), now);
        let other = issuer(theirs.path());
        let (name, key) = other.issuer_hashes().get(HashAlgorithm::Sha1).unwrap();
        let id = CertId {
            hash_algorithm: HashAlgorithm::Sha1.algorithm_identifier(),
            issuer_name_hash: OctetString::new(name.to_vec()).unwrap(),
            issuer_key_hash: OctetString::new(key.to_vec()).unwrap(),
            serial_number: SerialNumber::new(&[0x11, 0x22]).unwrap(),
        };
        let refused = signer.sign_ocsp_response(
            &ResponseParams {
                cert_id: &id,
                status: CertStatus::Good,
                produced_at: now,
                this_update: now,
                next_update: now + Duration::days(4),
                nonce: None,
            },
            now,
        );
        assert!(
            matches!(refused, Err(IssuerError::InvalidRequest(_))),
            "{refused:?}"
        );
    }
}
