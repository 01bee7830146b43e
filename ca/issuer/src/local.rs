//! The in-process issuer: signs end-entity certificates with the intermediate key.

use crate::ocsp::OcspKeys;
use crate::{
    CaHierarchy, CertificateIssuer, CrlRequest, IssueRequest, IssuedCertificate, IssuerError,
    IssuerIdentity,
};
use async_trait::async_trait;
use cairn_core::Serial;
use cairn_lint::{CrlContext, Kind, LintContext, Linter, Severity, tbs_matches};
use cairn_ocsp::ResponseParams;
use cairn_x509::{
    BuildError, CrlParams, CtExtension, EndEntityParams, EndEntityProfile, build_crl,
    build_end_entity_ct,
};

/// Default number of CRL shards per issuer.
pub const DEFAULT_CRL_SHARDS: u32 = 16;

/// The shard of a certificate among `shards`: its serial's last eight bytes, modulo. Serials are
/// random, so shards fill evenly.
pub fn crl_shard_of(serial: &Serial, shards: u32) -> u32 {
    let bytes = serial.to_bytes();
    let tail = &bytes[bytes.len().saturating_sub(8)..];
    let n = tail.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
    u32::try_from(n % u64::from(shards.max(1))).unwrap_or(0)
}

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
    crl_shards: u32,
    public_base_url: Option<String>,
    pub(crate) ocsp: OcspKeys,
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
        let alternate = match hierarchy.cross_signed() {
            // A real alternate: the same intermediate key, certified by another root.
            Some(cross) => cairn_x509::pem_encode("CERTIFICATE", cross),
            None => format!("{intermediate}{}", hierarchy.root_pem()),
        };
        let chains = vec![intermediate.clone(), alternate];
        let linter = Linter::new(hierarchy.intermediate())
            .map_err(|e| IssuerError::Signing(format!("creating the pre-issuance linter: {e}")))?;
        let ocsp = OcspKeys::new(&hierarchy)?;
        Ok(LocalIssuer {
            hierarchy,
            profile,
            chains,
            linter,
            ignored_lints,
            crl_shards: DEFAULT_CRL_SHARDS,
            public_base_url: None,
            ocsp,
        })
    }

    /// Publishes revocation information under `base_url` (`http://…`, no trailing slash):
    /// end-entity certificates then carry a CRL Distribution Point naming their shard's CRL
    /// ([`crate::crl_url`]) and AIA caIssuers naming the intermediate ([`crate::issuer_cert_url`]).
    pub fn with_public_base_url(mut self, base_url: &str) -> Self {
        self.profile.issuer_url = Some(crate::issuer_cert_url(base_url, self.issuer_id()));
        self.public_base_url = Some(base_url.to_owned());
        self
    }

    /// Spreads certificates over `shards` CRL shards (at least 1).
    pub fn with_crl_shards(mut self, shards: u32) -> Self {
        self.crl_shards = shards.max(1);
        self
    }

    /// The number of CRL shards new certificates are spread over.
    pub fn crl_shards(&self) -> u32 {
        self.crl_shards
    }

    /// The public base URL, if revocation information is published.
    pub fn public_base_url(&self) -> Option<&str> {
        self.public_base_url.as_deref()
    }

    /// Signs a CRL with the intermediate's key (`req.issuer_id` is the issuer ID: a shard of
    /// end-entity certificates) or the root's (the root ID: the CRL of CA certificates), then
    /// lints it (RFC 5280, Baseline Requirements): a CRL with an error finding is refused. A CRL
    /// carries an issuingDistributionPoint naming its URL when a public base URL is set.
    pub fn sign_crl(&self, req: &CrlRequest<'_>) -> Result<Vec<u8>, IssuerError> {
        let (ca, only_ca_certs) = if req.issuer_id == self.hierarchy.issuer_id() {
            (self.hierarchy.intermediate(), false)
        } else if req.issuer_id == self.hierarchy.root_id() && req.shard == 0 {
            match self.hierarchy.root().signer() {
                Some(root) => (root, true),
                // An offline root: the ARL signed at the ceremony, as it is.
                None => return self.hierarchy.offline_arl(),
            }
        } else {
            return Err(IssuerError::InvalidRequest(format!(
                "no CRL {} of issuer {}",
                req.shard, req.issuer_id
            )));
        };
        let url = self
            .public_base_url
            .as_deref()
            .map(|base| crate::crl_url(base, req.issuer_id, req.shard));
        let der = build_crl(
            ca,
            &CrlParams {
                number: req.number,
                this_update: req.this_update,
                next_update: req.next_update,
                distribution_point: url.as_deref(),
                only_ca_certs,
                entries: req.entries,
            },
        )
        .map_err(|e| match e {
            BuildError::Signing(_) | BuildError::Encoding(_) => IssuerError::Signing(e.to_string()),
            other => IssuerError::InvalidRequest(other.to_string()),
        })?;
        let report = cairn_lint::lint_crl(
            &der,
            &CrlContext {
                sharded: url.is_some() && !only_ca_certs,
                ignored_lints: self.ignored_lints.clone(),
                ..CrlContext::default()
            },
        );
        if report.has_errors() {
            let names = report
                .at_least(Severity::Error)
                .map(|f| f.lint)
                .collect::<Vec<_>>()
                .join(", ");
            return Err(IssuerError::Lint(names));
        }
        Ok(der)
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

    /// Lints and signs the certificate for `req` with the CT extension `ct`. For a final
    /// certificate (`CtExtension::SctList`), `precert` must be the precertificate of the same
    /// request: its TBSCertificate must be exactly the one this request builds with the poison.
    fn sign(
        &self,
        req: &IssueRequest,
        ct: CtExtension<'_>,
        precert: Option<&[u8]>,
    ) -> Result<Vec<u8>, IssuerError> {
        let intermediate = self.hierarchy.intermediate();
        if req.not_after > intermediate.info().not_after {
            return Err(IssuerError::InvalidRequest(format!(
                "notAfter {} is later than the intermediate's notAfter {}",
                req.not_after,
                intermediate.info().not_after
            )));
        }
        let serial = req.serial.to_bytes();
        let mut profile = EndEntityProfile {
            client_auth: req.usage.client_auth,
            rsa_key_encipherment: req.usage.rsa_key_encipherment,
            ..self.profile.clone()
        };
        if let Some(base) = &self.public_base_url {
            let shard = crl_shard_of(&req.serial, self.crl_shards);
            profile.crl_url = Some(crate::crl_url(base, self.issuer_id(), shard));
        }
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
        let max_validity = cairn_lint::BR_MAX_SUBSCRIBER_VALIDITY;
        let kind = if ct == CtExtension::Poison {
            Kind::Precertificate {
                profile_validity: validity,
                max_validity,
            }
        } else {
            Kind::TlsServerLeaf {
                profile_validity: validity,
                max_validity,
            }
        };
        let ctx = LintContext {
            kind,
            ignored_lints: self.ignored_lints.clone(),
        };
        if let Some(precert) = precert {
            // The stand-in issuer yields the same TBSCertificate as the real one.
            let expected = self
                .linter
                .build_end_entity_ct(&params, &profile, CtExtension::Poison)
                .map_err(build_err)?;
            if !tbs_matches(&expected, precert) {
                return Err(IssuerError::InvalidRequest(
                    "the precertificate does not belong to this issuance request".into(),
                ));
            }
        }
        let linted = self
            .linter
            .check_end_entity_ct(&params, &profile, ct, &ctx)
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
        let der = build_end_entity_ct(intermediate, &params, &profile, ct).map_err(build_err)?;
        if !tbs_matches(&linted.der, &der) {
            return Err(IssuerError::Signing(
                "the signed certificate differs from the linted one".into(),
            ));
        }
        Ok(der)
    }

    fn sign_logged(
        &self,
        req: &IssueRequest,
        ct: CtExtension<'_>,
        precert: Option<&[u8]>,
    ) -> Result<IssuedCertificate, IssuerError> {
        let what = match ct {
            CtExtension::None => "certificate",
            CtExtension::Poison => "precertificate",
            CtExtension::SctList(_) => "certificate with embedded SCTs",
        };
        match self.sign(req, ct, precert) {
            Ok(der) => {
                tracing::info!(
                    serial = %req.serial,
                    issuer_id = %self.issuer_id(),
                    names = req.identifiers.len(),
                    not_after = %req.not_after,
                    "signed {what}"
                );
                Ok(IssuedCertificate {
                    der,
                    issuer_id: self.issuer_id().to_string(),
                    crl_shard: crl_shard_of(&req.serial, self.crl_shards),
                })
            }
            Err(e) => {
                tracing::warn!(serial = %req.serial, error = %e, "signing {what} refused");
                Err(e)
            }
        }
    }
}

#[async_trait]
impl CertificateIssuer for LocalIssuer {
    async fn issue(&self, req: IssueRequest) -> Result<IssuedCertificate, IssuerError> {
        self.sign_logged(&req, CtExtension::None, None)
    }

    async fn issue_precertificate(
        &self,
        req: IssueRequest,
    ) -> Result<IssuedCertificate, IssuerError> {
        self.sign_logged(&req, CtExtension::Poison, None)
    }

    async fn issue_final(
        &self,
        req: IssueRequest,
        precert_der: &[u8],
        sct_list: &[u8],
    ) -> Result<IssuedCertificate, IssuerError> {
        self.sign_logged(&req, CtExtension::SctList(sct_list), Some(precert_der))
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

    fn identity(&self) -> IssuerIdentity {
        IssuerIdentity {
            issuer_id: self.issuer_id().to_owned(),
            issuer_certificate_der: self.hierarchy.intermediate().der().to_vec(),
            root_id: self.hierarchy.root_id().to_owned(),
        }
    }

    /// [`LocalIssuer::sign_crl`]. A shard of many entries is CPU work (about 100 ms for 60,000
    /// entries, lint included), so on a multi-threaded runtime it runs in `block_in_place`: this
    /// worker's other tasks move to another thread meanwhile. On a current-thread runtime (tests,
    /// tools) it runs inline, where there is no other worker to hand them to.
    async fn sign_crl(&self, req: &CrlRequest<'_>) -> Result<Vec<u8>, IssuerError> {
        let multi_threaded = tokio::runtime::Handle::try_current()
            .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
        if multi_threaded {
            tokio::task::block_in_place(|| LocalIssuer::sign_crl(self, req))
        } else {
            LocalIssuer::sign_crl(self, req)
        }
    }

    /// Signs with the key chosen by [`LocalIssuer::with_ocsp_signer`]; `producedAt` is the time
    /// a delegated responder certificate's renewal is judged by.
    async fn sign_ocsp(&self, params: &ResponseParams<'_>) -> Result<Vec<u8>, IssuerError> {
        self.sign_ocsp_response(params, params.produced_at)
    }
}
