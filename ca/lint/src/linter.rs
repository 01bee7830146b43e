//! The throwaway-key step (Boulder's `linter` package): build the certificate exactly as the
//! real issuer would, sign it with a throwaway key, and lint that copy before the real key signs.

use crate::asn1::{CertificateModel, tbs_der};
use crate::{LintContext, LintReport, lint_certificate};
use cairn_x509::{
    BuildError, CaCertificate, CtExtension, EndEntityParams, EndEntityProfile, KeyError,
    SigningKey, build_end_entity_ct,
};
use const_oid::db::rfc5280::ID_CE_SUBJECT_KEY_IDENTIFIER;
use der::asn1::{BitStringRef, OctetString};
use der::{Decode, Encode};
use spki::{AlgorithmIdentifierRef, SubjectPublicKeyInfoRef};
use std::fmt;
use x509_cert::ext::Extension;
use x509_cert::ext::pkix::SubjectKeyIdentifier;

/// Why a [`Linter`] could not be set up or could not build its copy.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LinterError {
    /// The real issuer certificate does not decode or re-encode.
    #[error("issuer certificate: {0}")]
    Issuer(#[source] der::Error),
    /// The throwaway key could not be generated or could not sign.
    #[error("throwaway key: {0}")]
    Key(#[source] KeyError),
    /// cairn-x509 refused to build the stand-in issuer or the certificate.
    #[error("building: {0}")]
    Build(#[source] BuildError),
}

impl From<der::Error> for LinterError {
    fn from(e: der::Error) -> Self {
        LinterError::Issuer(e)
    }
}

/// A certificate signed by the throwaway key, and what the linter found in it.
#[derive(Debug, Clone)]
pub struct LintedCertificate {
    /// The certificate as the lint saw it (DER, signed by the throwaway key; never publish it).
    pub der: Vec<u8>,
    /// The findings.
    pub report: LintReport,
}

/// Lints certificates before the real issuer signs them. It holds a throwaway key of the real
/// issuer key's algorithm and a stand-in issuer certificate carrying the real issuer's subject
/// name and key identifier, so [`cairn_x509::build_end_entity`] with the stand-in produces the
/// same TBSCertificate as with the real issuer: only the signature differs. Create it once per
/// issuer (RSA key generation is slow) and share it.
pub struct Linter {
    stand_in: CaCertificate,
}

impl fmt::Debug for Linter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Linter")
            .field("issuer", &self.stand_in.info().common_name)
            .finish_non_exhaustive()
    }
}

impl Linter {
    /// A linter for certificates issued by `issuer`, with a fresh throwaway key.
    pub fn new(issuer: &CaCertificate) -> Result<Linter, LinterError> {
        let key = SigningKey::generate(issuer.key().algorithm()).map_err(LinterError::Key)?;
        let stand_in_der = stand_in_issuer(issuer, &key)?;
        let stand_in = CaCertificate::new(stand_in_der, key).map_err(LinterError::Build)?;
        Ok(Linter { stand_in })
    }

    /// The stand-in issuer (the real issuer's name and key identifier, the throwaway key): pass
    /// it to any cairn-x509 builder in place of the real issuer to get the copy to lint, e.g. for
    /// an intermediate or a delegated signer at a key ceremony.
    pub fn stand_in(&self) -> &CaCertificate {
        &self.stand_in
    }

    /// Builds the certificate [`cairn_x509::build_end_entity`] would build with the real issuer, signed by
    /// the throwaway key.
    pub fn build_end_entity(
        &self,
        params: &EndEntityParams<'_>,
        profile: &EndEntityProfile,
    ) -> Result<Vec<u8>, BuildError> {
        build_end_entity_ct(&self.stand_in, params, profile, CtExtension::None)
    }

    /// As [`Linter::build_end_entity`], with a Certificate Transparency extension (what
    /// [`cairn_x509::build_end_entity_ct`] would build with the real issuer).
    pub fn build_end_entity_ct(
        &self,
        params: &EndEntityParams<'_>,
        profile: &EndEntityProfile,
        ct: CtExtension<'_>,
    ) -> Result<Vec<u8>, BuildError> {
        build_end_entity_ct(&self.stand_in, params, profile, ct)
    }

    /// Builds the throwaway-signed copy and lints it. Sign for real only if
    /// `!report.has_errors()`, then check [`tbs_matches`] between this copy and the real one.
    pub fn check_end_entity(
        &self,
        params: &EndEntityParams<'_>,
        profile: &EndEntityProfile,
        ctx: &LintContext,
    ) -> Result<LintedCertificate, LinterError> {
        self.check_end_entity_ct(params, profile, CtExtension::None, ctx)
    }

    /// [`Linter::check_end_entity`] for a precertificate ([`CtExtension::Poison`], lint it with
    /// [`crate::Kind::Precertificate`]) or a final certificate carrying SCTs.
    pub fn check_end_entity_ct(
        &self,
        params: &EndEntityParams<'_>,
        profile: &EndEntityProfile,
        ct: CtExtension<'_>,
        ctx: &LintContext,
    ) -> Result<LintedCertificate, LinterError> {
        let der = self
            .build_end_entity_ct(params, profile, ct)
            .map_err(LinterError::Build)?;
        let report = lint_certificate(&der, ctx);
        Ok(LintedCertificate { der, report })
    }
}

/// True if both certificates decode and have byte-identical TBSCertificates: the certificate
/// the real key signed is the one that was linted.
pub fn tbs_matches(linted_der: &[u8], issued_der: &[u8]) -> bool {
    match (tbs_der(linted_der), tbs_der(issued_der)) {
        (Some(a), Some(b)) => a == b,
        _ => false,
    }
}

/// The real issuer certificate with its public key replaced by `key`'s, its subjectKeyIdentifier
/// pinned to the real key's identifier, self-signed by `key`.
fn stand_in_issuer(issuer: &CaCertificate, key: &SigningKey) -> Result<Vec<u8>, LinterError> {
    let real = CertificateModel::from_der(issuer.der())?;
    let mut tbs = real.tbs_certificate;
    let key_id = match &issuer.info().subject_key_id {
        Some(ski) => ski.clone(),
        // What cairn-x509 computes when the issuer has no SKI (RFC 7093 §2 method 1).
        None => {
            let bits = tbs.subject_public_key_info.subject_public_key.raw_bytes();
            aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bits).as_ref()[..20].to_vec()
        }
    };
    let ski = Extension {
        extn_id: ID_CE_SUBJECT_KEY_IDENTIFIER,
        critical: false,
        extn_value: OctetString::new(SubjectKeyIdentifier(OctetString::new(key_id)?).to_der()?)?,
    };
    let mut extensions = tbs.extensions.take().unwrap_or_default();
    extensions.retain(|e| e.extn_id != ID_CE_SUBJECT_KEY_IDENTIFIER);
    extensions.push(ski);
    tbs.extensions = Some(extensions);
    tbs.subject_public_key_info = SubjectPublicKeyInfoRef::from_der(key.spki_der())?;
    let alg_der = key.signature_algorithm().to_der()?;
    let alg = AlgorithmIdentifierRef::from_der(&alg_der)?;
    tbs.signature = alg;
    let tbs_bytes = tbs.to_der()?;
    let signature = key.sign(&tbs_bytes).map_err(LinterError::Key)?;
    let cert = CertificateModel {
        tbs_certificate: tbs,
        signature_algorithm: alg,
        signature: BitStringRef::from_bytes(&signature)?,
    };
    Ok(cert.to_der()?)
}
