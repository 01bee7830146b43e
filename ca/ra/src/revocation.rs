//! Revocation (RFC 8555 §7.6) by the certificate's account, by an account holding valid
//! authorizations for every identifier, or by the certificate's own key.

use crate::{Ra, internal};
use cairn_core::{
    Account, Certificate, Problem, ProblemType, Revocation, RevocationReason, Serial,
};
use cairn_sa::SaError;

/// Who asks for the revocation; the WFE has verified the JWS signature for each.
#[derive(Debug, Clone)]
pub enum RevocationRequester {
    /// An account (kid-signed request).
    Account(Account),
    /// The holder of the certificate's private key (jwk-signed request); the field is the JWK's
    /// RFC 7638 thumbprint, which must match the certificate's public key.
    CertificateKey(String),
}

impl Ra {
    /// Revokes a certificate given in DER.
    pub async fn revoke(
        &self,
        requester: RevocationRequester,
        cert_der: &[u8],
        reason: Option<u8>,
    ) -> Result<Certificate, Problem> {
        let reason = match reason {
            None => RevocationReason::Unspecified,
            Some(code) => RevocationReason::from_code(code).ok_or_else(|| {
                Problem::new(
                    ProblemType::BadRevocationReason,
                    format!("revocation reason {code} is not allowed; use 0, 1, 3, 4, 5 or 9"),
                )
            })?,
        };
        let info = cairn_x509::CertInfo::from_der(cert_der)
            .map_err(|_| Problem::malformed("the certificate to revoke does not parse"))?;
        let serial = Serial::from_bytes(&info.serial);
        let stored = match self.inner.sa.get_certificate(&serial).await {
            Ok(c) if c.der == cert_der => c,
            Ok(_) | Err(SaError::NotFound) => {
                return Err(Problem::not_found(
                    "the certificate was not issued by this CA",
                ));
            }
            Err(e) => return Err(internal(&e, "loading certificate to revoke")),
        };
        match &requester {
            RevocationRequester::CertificateKey(thumbprint) => {
                let cert_thumb = cairn_x509::spki_jwk_thumbprint(&info.spki_der);
                if cert_thumb.as_deref() != Some(thumbprint.as_str()) {
                    return Err(Problem::unauthorized(
                        "the request is not signed by the certificate's key",
                    ));
                }
            }
            RevocationRequester::Account(account) => {
                if stored.account_id != account.id {
                    self.check_authorized_for_all(account, &stored).await?;
                }
            }
        }
        if stored.revocation.is_some() {
            return Err(Problem::new(
                ProblemType::AlreadyRevoked,
                "the certificate is already revoked",
            ));
        }
        let revocation = Revocation {
            revoked_at: self.now(),
            reason,
        };
        match self.inner.sa.revoke_certificate(&serial, &revocation).await {
            Ok(()) => {}
            Err(SaError::Conflict(_)) => {
                return Err(Problem::new(
                    ProblemType::AlreadyRevoked,
                    "the certificate is already revoked",
                ));
            }
            Err(e) => return Err(internal(&e, "revoking certificate")),
        }
        metrics::counter!("cairn_certificates_revoked_total", "reason" => format!("{reason:?}"))
            .increment(1);
        Ok(Certificate {
            revocation: Some(revocation),
            ..stored
        })
    }

    /// An account that did not order the certificate may revoke it if it holds a valid
    /// authorization for every identifier in it (RFC 8555 §7.6).
    async fn check_authorized_for_all(
        &self,
        account: &Account,
        cert: &Certificate,
    ) -> Result<(), Problem> {
        let now = self.now();
        for id in &cert.identifiers {
            let base = id.authz_identifier();
            let mut found = false;
            for wildcard in [id.is_wildcard(), !id.is_wildcard()] {
                let authz = self
                    .inner
                    .sa
                    .get_reusable_authz(&account.id, &base, wildcard, false, now)
                    .await
                    .map_err(|e| internal(&e, "checking revocation authorizations"))?;
                if authz.is_some() {
                    found = true;
                    break;
                }
            }
            if !found {
                return Err(Problem::unauthorized(format!(
                    "the account neither owns the certificate nor holds a valid authorization for {}",
                    id.value
                )));
            }
        }
        Ok(())
    }
}
