//! [`FakeIssuer`]: an issuer that really signs, with a throwaway hierarchy made at test time.

use crate::issuer::{
    CertificateIssuer, CrlRequest, IssueRequest, IssuedCertificate, IssuerError, IssuerIdentity,
};
use async_trait::async_trait;
use cairn_ocsp::{BuildError as OcspBuildError, IssuerHashes, ResponseParams, ResponseSigner};
use cairn_x509::{
    CaCertificate, CertInfo, CrlParams, CtExtension, EndEntityParams, EndEntityProfile,
    KeyAlgorithm, SigningKey, build_crl, build_end_entity_ct, build_intermediate, build_root,
};
use spki::AlgorithmIdentifierOwned;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use time::{Duration, OffsetDateTime};

/// The ID the fake's intermediate signs as.
const ISSUER_ID: &str = "fake-intermediate";
/// The ID of the fake's root.
const ROOT_ID: &str = "fake-root";

/// Signs end-entity certificates, CRLs and OCSP responses with an ECDSA P-256 root and
/// intermediate generated when it is made (valid ten years from then). No lint, no files: what it
/// signs parses and verifies, which is all a test of its callers needs. It can be told to refuse,
/// and counts what it signed.
pub struct FakeIssuer {
    root: CaCertificate,
    intermediate: CaCertificate,
    hashes: IssuerHashes,
    refusal: Mutex<Option<String>>,
    signed: AtomicUsize,
    hang_final: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for FakeIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeIssuer")
            .field("signed", &self.signed.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl FakeIssuer {
    /// A hierarchy valid from an hour before `now` for ten years.
    pub fn new(now: OffsetDateTime) -> Result<FakeIssuer, IssuerError> {
        let signing = |e: &dyn std::fmt::Display| IssuerError::Signing(e.to_string());
        let (not_before, not_after) = (now - Duration::hours(1), now + Duration::days(3650));
        let root_key = SigningKey::generate(KeyAlgorithm::EcdsaP256).map_err(|e| signing(&e))?;
        let root_der = build_root(
            &root_key,
            "Fake Root",
            Some("Cairn tests"),
            not_before,
            not_after,
        )
        .map_err(|e| signing(&e))?;
        let root = CaCertificate::new(root_der, root_key).map_err(|e| signing(&e))?;
        let key = SigningKey::generate(KeyAlgorithm::EcdsaP256).map_err(|e| signing(&e))?;
        let der = build_intermediate(
            &root,
            key.spki_der(),
            "Fake Intermediate",
            Some("Cairn tests"),
            not_before,
            not_after,
        )
        .map_err(|e| signing(&e))?;
        let intermediate = CaCertificate::new(der, key).map_err(|e| signing(&e))?;
        let hashes = IssuerHashes::from_certificate(intermediate.der()).map_err(|e| signing(&e))?;
        Ok(FakeIssuer {
            root,
            intermediate,
            hashes,
            refusal: Mutex::new(None),
            signed: AtomicUsize::new(0),
            hang_final: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// From now on every signing fails with `IssuerError::Signing(reason)`; `None` signs again.
    pub fn refuse(&self, reason: Option<&str>) {
        *self.refusal.lock().unwrap_or_else(|e| e.into_inner()) = reason.map(str::to_owned);
    }

    /// From now on `issue_final` never answers, as a process killed while signing the final
    /// certificate (or after signing it, before storing it) would (or answers again).
    pub fn hang_final(&self, hanging: bool) {
        self.hang_final.store(hanging, Ordering::Relaxed);
    }

    /// How many certificates, precertificates, CRLs and OCSP responses it signed.
    pub fn signed(&self) -> usize {
        self.signed.load(Ordering::Relaxed)
    }

    /// The root certificate, DER.
    pub fn root_der(&self) -> &[u8] {
        self.root.der()
    }

    /// The intermediate certificate, DER (the issuer of everything it signs but the root's CRL).
    pub fn intermediate_der(&self) -> &[u8] {
        self.intermediate.der()
    }

    fn check_refusal(&self) -> Result<(), IssuerError> {
        match &*self.refusal.lock().unwrap_or_else(|e| e.into_inner()) {
            Some(reason) => Err(IssuerError::Signing(reason.clone())),
            None => Ok(()),
        }
    }

    fn sign_leaf(
        &self,
        req: &IssueRequest,
        ct: CtExtension<'_>,
    ) -> Result<IssuedCertificate, IssuerError> {
        self.check_refusal()?;
        let serial = req.serial.to_bytes();
        let profile = EndEntityProfile {
            include_common_name: req.common_name.is_some(),
            client_auth: req.usage.client_auth,
            rsa_key_encipherment: req.usage.rsa_key_encipherment,
            ..EndEntityProfile::default()
        };
        let params = EndEntityParams {
            serial: &serial,
            spki_der: &req.spki_der,
            identifiers: &req.identifiers,
            common_name: req.common_name.as_deref(),
            not_before: req.not_before,
            not_after: req.not_after,
        };
        let der = build_end_entity_ct(&self.intermediate, &params, &profile, ct)
            .map_err(|e| IssuerError::InvalidRequest(e.to_string()))?;
        self.signed.fetch_add(1, Ordering::Relaxed);
        Ok(IssuedCertificate {
            der,
            issuer_id: ISSUER_ID.into(),
            crl_shard: 0,
        })
    }
}

/// The intermediate's key seen through [`ResponseSigner`].
struct KeySigner<'a> {
    key: &'a SigningKey,
    key_hash: [u8; 20],
}

impl ResponseSigner for KeySigner<'_> {
    fn responder_key_hash(&self) -> [u8; 20] {
        self.key_hash
    }

    fn signature_algorithm(&self) -> AlgorithmIdentifierOwned {
        self.key.signature_algorithm()
    }

    fn sign(&self, tbs_response_data: &[u8]) -> Result<Vec<u8>, OcspBuildError> {
        self.key
            .sign(tbs_response_data)
            .map_err(|_| OcspBuildError::Signing)
    }

    fn certificates(&self) -> &[Vec<u8>] {
        &[]
    }
}

#[async_trait]
impl CertificateIssuer for FakeIssuer {
    async fn issue(&self, req: IssueRequest) -> Result<IssuedCertificate, IssuerError> {
        self.sign_leaf(&req, CtExtension::None)
    }

    async fn issue_precertificate(
        &self,
        req: IssueRequest,
    ) -> Result<IssuedCertificate, IssuerError> {
        self.sign_leaf(&req, CtExtension::Poison)
    }

    /// Checks only that the precertificate is this issuer's, with the request's serial.
    async fn issue_final(
        &self,
        req: IssueRequest,
        precert_der: &[u8],
        sct_list: &[u8],
    ) -> Result<IssuedCertificate, IssuerError> {
        if self.hang_final.load(Ordering::Relaxed) {
            return std::future::pending().await;
        }
        let precert = CertInfo::from_der(precert_der)
            .map_err(|e| IssuerError::InvalidRequest(format!("precertificate: {e}")))?;
        let ours = cairn_x509::is_signed_by(precert_der, self.intermediate.key().spki_der());
        if !ours || precert.serial != req.serial.to_bytes() {
            return Err(IssuerError::InvalidRequest(
                "the precertificate does not belong to this issuance request".into(),
            ));
        }
        self.sign_leaf(&req, CtExtension::SctList(sct_list))
    }

    fn chains(&self, issuer_id: &str) -> Vec<String> {
        if issuer_id != ISSUER_ID {
            return Vec::new();
        }
        let intermediate = self.intermediate.to_pem();
        vec![
            intermediate.clone(),
            format!("{intermediate}{}", self.root.to_pem()),
        ]
    }

    fn identity(&self) -> IssuerIdentity {
        IssuerIdentity {
            issuer_id: ISSUER_ID.into(),
            issuer_certificate_der: self.intermediate.der().to_vec(),
            root_id: ROOT_ID.into(),
        }
    }

    async fn sign_crl(&self, req: &CrlRequest<'_>) -> Result<Vec<u8>, IssuerError> {
        self.check_refusal()?;
        let (ca, only_ca_certs) = match (req.issuer_id, req.shard) {
            (ISSUER_ID, _) => (&self.intermediate, false),
            (ROOT_ID, 0) => (&self.root, true),
            _ => {
                return Err(IssuerError::InvalidRequest(format!(
                    "no CRL {} of issuer {}",
                    req.shard, req.issuer_id
                )));
            }
        };
        let der = build_crl(
            ca,
            &CrlParams {
                number: req.number,
                this_update: req.this_update,
                next_update: req.next_update,
                distribution_point: None,
                only_ca_certs,
                entries: req.entries,
            },
        )
        .map_err(|e| IssuerError::InvalidRequest(e.to_string()))?;
        self.signed.fetch_add(1, Ordering::Relaxed);
        Ok(der)
    }

    async fn sign_ocsp(&self, params: &ResponseParams<'_>) -> Result<Vec<u8>, IssuerError> {
        self.check_refusal()?;
        if !self.hashes.matches(params.cert_id) {
            return Err(IssuerError::InvalidRequest(
                "the CertID does not name this issuer".into(),
            ));
        }
        let key = self.intermediate.key();
        let key_hash = cairn_ocsp::key_hash_sha1(key.spki_der())
            .ok_or_else(|| IssuerError::Signing("intermediate key does not decode".into()))?;
        let der = cairn_ocsp::sign_response(params, &KeySigner { key, key_hash })
            .map_err(|e| IssuerError::Signing(format!("OCSP response: {e}")))?;
        self.signed.fetch_add(1, Ordering::Relaxed);
        Ok(der)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::issuer::CertUsage;
    use cairn_core::{Identifier, Serial};
    use cairn_ocsp::asn1::CertId;
    use cairn_ocsp::{CertStatus, HashAlgorithm};
    use x509_cert::der::asn1::OctetString;
    use x509_cert::serial_number::SerialNumber;

    fn now() -> OffsetDateTime {
        OffsetDateTime::now_utc().replace_nanosecond(0).unwrap()
    }

    fn request(serial: Serial) -> IssueRequest {
        let key = SigningKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
        IssueRequest {
            serial,
            spki_der: key.spki_der().to_vec(),
            identifiers: vec![Identifier::dns("fake.example.com")],
            common_name: None,
            not_before: now(),
            not_after: now() + Duration::days(7),
            profile_validity: Duration::days(7),
            usage: CertUsage::default(),
        }
    }

    #[tokio::test]
    async fn what_it_signs_chains_to_its_root_and_says_what_was_asked() {
        let issuer = FakeIssuer::new(now()).unwrap();
        let req = request(Serial::random());
        let cert = issuer.issue(req.clone()).await.unwrap();
        let info = CertInfo::from_der(&cert.der).unwrap();
        assert_eq!(info.identifiers, req.identifiers);
        assert_eq!(info.spki_der, req.spki_der);
        assert_eq!(Serial::from_bytes(&info.serial), req.serial);
        let intermediate = CertInfo::from_der(issuer.intermediate_der()).unwrap();
        let root = CertInfo::from_der(issuer.root_der()).unwrap();
        assert!(cairn_x509::is_signed_by(&cert.der, &intermediate.spki_der));
        assert!(cairn_x509::is_signed_by(
            issuer.intermediate_der(),
            &root.spki_der
        ));
        assert_eq!(issuer.chains(&cert.issuer_id).len(), 2);
        assert!(issuer.chains("someone-else").is_empty());
        assert_eq!(issuer.signed(), 1);
    }

    #[tokio::test]
    async fn a_final_certificate_needs_its_own_precertificate() {
        let issuer = FakeIssuer::new(now()).unwrap();
        let req = request(Serial::random());
        let precert = issuer.issue_precertificate(req.clone()).await.unwrap();
        issuer
            .issue_final(req.clone(), &precert.der, &[0, 0])
            .await
            .unwrap();
        let other = request(Serial::random());
        let refused = issuer.issue_final(other, &precert.der, &[0, 0]).await;
        assert!(matches!(refused, Err(IssuerError::InvalidRequest(_))));
    }

    #[tokio::test]
    async fn a_refusing_issuer_signs_nothing_until_told_otherwise() {
        let issuer = FakeIssuer::new(now()).unwrap();
        issuer.refuse(Some("down"));
        assert!(matches!(
            issuer.issue(request(Serial::random())).await,
            Err(IssuerError::Signing(reason)) if reason == "down"
        ));
        issuer.refuse(None);
        issuer.issue(request(Serial::random())).await.unwrap();
        assert_eq!(issuer.signed(), 1);
    }

    #[tokio::test]
    async fn ocsp_is_signed_for_its_own_cert_ids_only() {
        let (ours, theirs) = (
            FakeIssuer::new(now()).unwrap(),
            FakeIssuer::new(now()).unwrap(),
        );
        let cert_id = |issuer: &FakeIssuer| {
            let hashes = IssuerHashes::from_certificate(issuer.intermediate_der()).unwrap();
            let (name, key) = hashes.get(HashAlgorithm::Sha1).unwrap();
            CertId {
                hash_algorithm: HashAlgorithm::Sha1.algorithm_identifier(),
                issuer_name_hash: OctetString::new(name.to_vec()).unwrap(),
                issuer_key_hash: OctetString::new(key.to_vec()).unwrap(),
                serial_number: SerialNumber::new(&[0x01]).unwrap(),
            }
        };
        let params = |id| ResponseParams {
            cert_id: id,
            status: CertStatus::Good,
            produced_at: now(),
            this_update: now(),
            next_update: now() + Duration::days(1),
            nonce: None,
        };
        let own = cert_id(&ours);
        let der = ours.sign_ocsp(&params(&own)).await.unwrap();
        assert!(cairn_ocsp::parse_response(&der).unwrap().single().is_some());
        let foreign = cert_id(&theirs);
        assert!(matches!(
            ours.sign_ocsp(&params(&foreign)).await,
            Err(IssuerError::InvalidRequest(_))
        ));
    }
}
