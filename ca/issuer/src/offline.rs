//! Intermediate-only operation: the root's key is offline (used only at key ceremonies), the
//! CA runs with the root certificate, the intermediate's certificate and key (in an HSM, or a
//! file for development), and serves the root's CRL (the ARL) signed at the last ceremony.

use crate::IssuerError;
use crate::hierarchy::{CaHierarchy, RootCa, read_text};
use cairn_hsm::{Pkcs11KeyConfig, Pkcs11Signer};
use cairn_x509::{CaCertificate, CertInfo, SigningKey, is_signed_by, pem_certificates};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use time::OffsetDateTime;

/// Where a CA key is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub enum KeySource {
    /// A PKCS#8 PEM file: development only, said loudly at start-up.
    File(PathBuf),
    /// A key in an HSM, through PKCS#11.
    Pkcs11(Pkcs11KeyConfig),
}

impl KeySource {
    /// Opens the key. A PKCS#11 key is found, logged in to and test-signed with now, so a wrong
    /// PIN or a missing key stops the start.
    pub fn open(&self) -> Result<SigningKey, IssuerError> {
        match self {
            KeySource::File(path) => {
                let pem = read_text(path)?;
                let key = SigningKey::from_pkcs8_pem(&pem)
                    .map_err(|e| IssuerError::Inconsistent(format!("{}: {e}", path.display())))?;
                tracing::warn!(
                    file = %path.display(),
                    "A CA PRIVATE KEY IS A FILE ON DISK: fine for development, not for a CA \
                     anyone trusts; use a PKCS#11 key (docs/key-management.md)"
                );
                Ok(key)
            }
            KeySource::Pkcs11(cfg) => {
                let signer =
                    Pkcs11Signer::open_arc(cfg).map_err(|e| IssuerError::Storage(e.to_string()))?;
                SigningKey::from_external(signer)
                    .map_err(|e| IssuerError::Inconsistent(e.to_string()))
            }
        }
    }
}

/// `[ca.offline_root]`: run as an intermediate under a root whose key is not here.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OfflineRootConfig {
    /// The root certificate (PEM), without its key.
    pub root_certificate: PathBuf,
    /// The root's CRL (the ARL, DER or PEM) signed at the last ceremony; served as it is.
    pub arl: PathBuf,
    /// The issuing intermediate's certificate (PEM), issued by the root.
    pub intermediate_certificate: PathBuf,
    /// The intermediate's key.
    pub intermediate_key: KeySource,
    /// A cross-signed certificate of the intermediate (same subject and key, issued by another
    /// root): served as the alternate chain.
    #[serde(default)]
    pub cross_signed_certificate: Option<PathBuf>,
}

fn first_cert(path: &Path) -> Result<Vec<u8>, IssuerError> {
    pem_certificates(&read_text(path)?)
        .map_err(|e| IssuerError::Inconsistent(format!("{}: {e}", path.display())))?
        .into_iter()
        .next()
        .ok_or_else(|| {
            IssuerError::Inconsistent(format!("{} holds no certificate", path.display()))
        })
}

/// Reads a CRL file, DER or PEM (`X509 CRL`).
fn read_crl(path: &Path) -> Result<Vec<u8>, IssuerError> {
    let bytes = std::fs::read(path)
        .map_err(|e| IssuerError::Storage(format!("cannot read {}: {e}", path.display())))?;
    if bytes.starts_with(b"-----BEGIN") {
        let text = String::from_utf8_lossy(&bytes);
        let blocks = cairn_pki::pem_decode_all(&text)
            .map_err(|e| IssuerError::Inconsistent(format!("{}: {e}", path.display())))?;
        return blocks
            .into_iter()
            .find(|(label, _)| label == "X509 CRL")
            .map(|(_, der)| der)
            .ok_or_else(|| {
                IssuerError::Inconsistent(format!("{} holds no X509 CRL block", path.display()))
            });
    }
    Ok(bytes)
}

impl CaHierarchy {
    /// Loads an intermediate-only hierarchy: the root certificate (no key), the intermediate
    /// with its key, the ARL and optionally a cross-signed intermediate. Everything is
    /// cross-checked: the root is self-signed, the intermediate issued by it and matching its
    /// key, the ARL signed by the root, the cross-signed certificate the same subject and key.
    pub fn load_offline_root(
        cfg: &OfflineRootConfig,
        now: OffsetDateTime,
    ) -> Result<CaHierarchy, IssuerError> {
        let root = RootCa::offline(first_cert(&cfg.root_certificate)?)?;
        if !is_signed_by(root.der(), &root.info().spki_der) {
            return Err(IssuerError::Inconsistent(format!(
                "{} is not a self-signed root",
                cfg.root_certificate.display()
            )));
        }
        let int_der = first_cert(&cfg.intermediate_certificate)?;
        let int_info = CertInfo::from_der(&int_der).map_err(|e| {
            IssuerError::Inconsistent(format!("{}: {e}", cfg.intermediate_certificate.display()))
        })?;
        if int_info.issuer_der != root.info().subject_der
            || !is_signed_by(&int_der, &root.info().spki_der)
        {
            return Err(IssuerError::Inconsistent(format!(
                "{} was not issued by {}",
                cfg.intermediate_certificate.display(),
                cfg.root_certificate.display()
            )));
        }
        let key = cfg.intermediate_key.open()?;
        let intermediate = CaCertificate::new(int_der, key).map_err(|e| match e {
            cairn_x509::BuildError::KeyMismatch => IssuerError::Inconsistent(format!(
                "the intermediate key is not the key of {}",
                cfg.intermediate_certificate.display()
            )),
            other => IssuerError::Inconsistent(format!(
                "{}: {other}",
                cfg.intermediate_certificate.display()
            )),
        })?;
        let mut hierarchy = CaHierarchy::from_parts(root, intermediate);
        hierarchy.arl_path = Some(cfg.arl.clone());
        hierarchy.offline_arl()?;
        if let Some(path) = &cfg.cross_signed_certificate {
            let cross = first_cert(path)?;
            let info = CertInfo::from_der(&cross)
                .map_err(|e| IssuerError::Inconsistent(format!("{}: {e}", path.display())))?;
            let ours = hierarchy.intermediate().info();
            if info.subject_der != ours.subject_der || info.spki_der != ours.spki_der {
                return Err(IssuerError::Inconsistent(format!(
                    "{} is not a cross-signed certificate of the intermediate (subject or key \
                     differ)",
                    path.display()
                )));
            }
            if info.issuer_der == hierarchy.root().info().subject_der {
                return Err(IssuerError::Inconsistent(format!(
                    "{} is issued by the same root as the intermediate: not an alternate chain",
                    path.display()
                )));
            }
            hierarchy.cross_signed = Some(cross);
        }
        let not_after = hierarchy.intermediate().info().not_after;
        if not_after <= now {
            tracing::error!(%not_after, "the intermediate certificate has expired; issuance will fail");
        }
        tracing::info!(
            root = ?hierarchy.root().info().common_name,
            issuer_id = %hierarchy.issuer_id(),
            key = %hierarchy.intermediate().key().external_description().unwrap_or_else(|| "file".into()),
            "intermediate-only operation: the root key is offline"
        );
        Ok(hierarchy)
    }

    /// The ARL file, checked to be a CRL signed by the root. Read on every call, so a new ARL
    /// from a ceremony is served without a restart.
    pub(crate) fn offline_arl(&self) -> Result<Vec<u8>, IssuerError> {
        let Some(path) = &self.arl_path else {
            return Err(IssuerError::InvalidRequest(
                "the root is offline and no ARL file is configured".into(),
            ));
        };
        let der = read_crl(path)?;
        if !is_signed_by(&der, &self.root().info().spki_der) {
            return Err(IssuerError::Inconsistent(format!(
                "{} is not a CRL signed by the root",
                path.display()
            )));
        }
        Ok(der)
    }
}
