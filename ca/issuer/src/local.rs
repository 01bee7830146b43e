//! The in-process issuer: signs end-entity certificates with the intermediate key.

use crate::{CaHierarchy, CertificateIssuer, IssueRequest, IssuedCertificate, IssuerError};
use async_trait::async_trait;
use cairn_x509::{BuildError, EndEntityParams, EndEntityProfile, build_end_entity};

/// Signs certificates in-process with the hierarchy's intermediate. Signing is synchronous (tens
/// of microseconds for ECDSA, about a millisecond for RSA-2048) and runs inside the async call.
#[derive(Debug)]
pub struct LocalIssuer {
    hierarchy: CaHierarchy,
    profile: EndEntityProfile,
    chains: Vec<String>,
}

impl LocalIssuer {
    /// An issuer for `hierarchy` producing certificates shaped by `profile`.
    pub fn new(hierarchy: CaHierarchy, profile: EndEntityProfile) -> LocalIssuer {
        let intermediate = hierarchy.intermediate_pem();
        let chains = vec![
            intermediate.clone(),
            format!("{intermediate}{}", hierarchy.root_pem()),
        ];
        LocalIssuer {
            hierarchy,
            profile,
            chains,
        }
    }

    /// The ID of the only issuer this signs with (see [`CaHierarchy::issuer_id`]).
    pub fn issuer_id(&self) -> &str {
        self.hierarchy.issuer_id()
    }

    /// The hierarchy.
    pub fn hierarchy(&self) -> &CaHierarchy {
        &self.hierarchy
    }

    /// The end-entity profile.
    pub fn profile(&self) -> &EndEntityProfile {
        &self.profile
    }

    fn sign(&self, req: &IssueRequest) -> Result<Vec<u8>, IssuerError> {
        let intermediate = self.hierarchy.intermediate();
        if req.not_after > intermediate.info().not_after {
            return Err(IssuerError::InvalidRequest(format!(
                "notAfter {} is later than the intermediate's notAfter {}",
                req.not_after,
                intermediate.info().not_after
            )));
        }
        let serial = req.serial.to_bytes();
        build_end_entity(
            intermediate,
            &EndEntityParams {
                serial: &serial,
                spki_der: &req.spki_der,
                identifiers: &req.identifiers,
                common_name: req.common_name.as_deref(),
                not_before: req.not_before,
                not_after: req.not_after,
            },
            &self.profile,
        )
        .map_err(|e| match e {
            BuildError::Signing(_) | BuildError::Encoding(_) => IssuerError::Signing(e.to_string()),
            other => IssuerError::InvalidRequest(other.to_string()),
        })
    }
}

#[async_trait]
impl CertificateIssuer for LocalIssuer {
    async fn issue(&self, req: IssueRequest) -> Result<IssuedCertificate, IssuerError> {
        match self.sign(&req) {
            Ok(der) => {
                tracing::info!(
                    serial = %req.serial,
                    issuer_id = %self.issuer_id(),
                    names = req.identifiers.len(),
                    not_after = %req.not_after,
                    "signed certificate"
                );
                Ok(IssuedCertificate {
                    der,
                    issuer_id: self.issuer_id().to_string(),
                })
            }
            Err(e) => {
                tracing::warn!(serial = %req.serial, error = %e, "signing refused");
                Err(e)
            }
        }
    }

    /// `[intermediate]` (default) and `[intermediate, root]` (alternate) for this issuer's ID;
    /// nothing for an unknown ID.
    fn chains(&self, issuer_id: &str) -> Vec<String> {
        if issuer_id == self.issuer_id() {
            self.chains.clone()
        } else {
            Vec::new()
        }
    }
}
