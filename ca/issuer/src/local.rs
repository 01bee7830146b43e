//! The in-process issuer: signs end-entity certificates with the intermediate key.

use crate::{CaHierarchy, CertificateIssuer, IssueRequest, IssuedCertificate, IssuerError};
use async_trait::async_trait;
use cairn_lint::{Kind, LintContext, Linter, Severity, tbs_matches};
use cairn_x509::{BuildError, EndEntityParams, EndEntityProfile, build_end_entity};

/// Signs certificates in-process with the hierarchy's intermediate. Signing is synchronous (tens
/// of microseconds for ECDSA, about a millisecond for RSA-2048) and runs inside the async call.
///
/// Before the CA key signs anything, the same certificate is built and signed with a throwaway
/// key and linted (RFC 5280, CA/B Forum BRs); any error finding refuses issuance (Boulder's
/// order). After signing, the real certificate's TBS must equal the linted one.
#[derive(Debug)]
pub struct LocalIssuer {
    hierarchy: CaHierarchy,
    profile: EndEntityProfile,
    chains: Vec<String>,
    linter: Linter,
    ignored_lints: Vec<String>,
}

impl LocalIssuer {
    /// An issuer for `hierarchy` producing certificates shaped by `profile`, skipping the
    /// lints named in `ignored_lints` (e.g. `e_ext_san_contains_reserved_ip` for a private PKI).
    pub fn new(
        hierarchy: CaHierarchy,
        profile: EndEntityProfile,
        ignored_lints: Vec<String>,
    ) -> Result<LocalIssuer, IssuerError> {
        let intermediate = hierarchy.intermediate_pem();
        let chains = vec![
            intermediate.clone(),
            format!("{intermediate}{}", hierarchy.root_pem()),
        ];
        let linter = Linter::new(hierarchy.intermediate())
            .map_err(|e| IssuerError::Signing(format!("creating the pre-issuance linter: {e}")))?;
        Ok(LocalIssuer {
            hierarchy,
            profile,
            chains,
            linter,
            ignored_lints,
        })
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
        let params = EndEntityParams {
            serial: &serial,
            spki_der: &req.spki_der,
            identifiers: &req.identifiers,
            common_name: req.common_name.as_deref(),
            not_before: req.not_before,
            not_after: req.not_after,
        };
        let build_err = |e: BuildError| match e {
            BuildError::Signing(_) | BuildError::Encoding(_) => IssuerError::Signing(e.to_string()),
            other => IssuerError::InvalidRequest(other.to_string()),
        };
        let validity = std::time::Duration::try_from(req.profile_validity).unwrap_or_default();
        let ctx = LintContext {
            kind: Kind::TlsServerLeaf {
                profile_validity: validity,
                max_validity: cairn_lint::BR_MAX_SUBSCRIBER_VALIDITY,
            },
            ignored_lints: self.ignored_lints.clone(),
        };
        let linted = self
            .linter
            .check_end_entity(&params, &self.profile, &ctx)
            .map_err(|e| match e {
                cairn_lint::LinterError::Build(b) => build_err(b),
                other => IssuerError::Signing(format!("pre-issuance lint: {other}")),
            })?;
        for f in linted.report.at_least(Severity::Warning) {
            tracing::warn!(serial = %req.serial, lint = f.lint, detail = %f.detail, severity = ?f.severity, "pre-issuance lint finding");
        }
        if linted.report.has_errors() {
            let names = linted
                .report
                .at_least(Severity::Error)
                .map(|f| f.lint)
                .collect::<Vec<_>>()
                .join(", ");
            return Err(IssuerError::Lint(names));
        }
        let der = build_end_entity(intermediate, &params, &self.profile).map_err(build_err)?;
        if !tbs_matches(&linted.der, &der) {
            return Err(IssuerError::Signing(
                "the signed certificate differs from the linted one".into(),
            ));
        }
        Ok(der)
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
