//! Revocation (RFC 8555 §7.6) by the certificate's account, by an account holding valid
//! authorizations for every identifier, or by the certificate's own key (only the last, and the
//! operator, block the key on `keyCompromise`); and the [`Revoker`]
//! that every revocation path (ACME and operator) goes through, which tells the registered
//! [`RevocationListener`]s (CRL updater, OCSP cache) once storage has recorded a revocation.

use crate::{Ra, internal};
use cairn_api::ra::{RevocationListener, RevocationRequester};
use cairn_api::{BlockedKey, SaError, SaResult, StorageAuthority};
use cairn_core::{
    Account, Certificate, Problem, ProblemType, Revocation, RevocationReason, Serial,
};
use std::sync::{Arc, RwLock};

/// Records revocations in storage and tells the listeners. The RA uses one for ACME
/// revocations; `cairn admin revoke` builds its own over the same storage (the listeners
/// registered then are that process's: the server's CRL updater notices operator revocations
/// through storage, see docs/revocation.md).
pub struct Revoker {
    pub(crate) sa: Arc<dyn StorageAuthority>,
    listeners: RwLock<Vec<Arc<dyn RevocationListener>>>,
}

impl std::fmt::Debug for Revoker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Revoker")
            .field("listeners", &self.listeners().len())
            .finish()
    }
}

impl Revoker {
    /// A revoker over `sa` with no listeners.
    pub fn new(sa: Arc<dyn StorageAuthority>) -> Self {
        Self {
            sa,
            listeners: RwLock::new(Vec::new()),
        }
    }

    /// Registers a listener; it hears about every later revocation.
    pub fn add_listener(&self, listener: Arc<dyn RevocationListener>) {
        self.listeners
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(listener);
    }

    fn listeners(&self) -> Vec<Arc<dyn RevocationListener>> {
        self.listeners
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Marks `cert` revoked in storage, then tells every listener. For `keyCompromise` the
    /// certificate's key is blocked first (later CSRs and account keys with it are refused):
    /// this is the operator's path (`cairn admin revoke`) and that of a request signed with the
    /// certificate's key, the two that prove the key is compromised. `Conflict` if it was
    /// already revoked, `NotFound` if storage does not know it (listeners are not called then).
    pub async fn revoke(&self, cert: &Certificate, revocation: &Revocation) -> SaResult<()> {
        self.record(cert, revocation, KeyBlocking::OnKeyCompromise)
            .await
    }

    /// As [`Revoker::revoke`], blocking the key only if `blocking` says so.
    async fn record(
        &self,
        cert: &Certificate,
        revocation: &Revocation,
        blocking: KeyBlocking,
    ) -> SaResult<()> {
        if blocking == KeyBlocking::OnKeyCompromise
            && revocation.reason == RevocationReason::KeyCompromise
        {
            self.block_key_of(cert, revocation.revoked_at).await?;
        }
        self.sa.revoke_certificate(&cert.serial, revocation).await?;
        metrics::counter!(
            "cairn_certificates_revoked_total",
            "reason" => format!("{:?}", revocation.reason)
        )
        .increment(1);
        for listener in self.listeners() {
            listener
                .certificate_revoked(&cert.serial, &cert.issuer_id, revocation)
                .await;
        }
        Ok(())
    }

    /// Blocks `cert`'s key (idempotent).
    pub async fn block_key_of(&self, cert: &Certificate, at: time::OffsetDateTime) -> SaResult<()> {
        let jwk_thumbprint = cairn_x509::CertInfo::from_der(&cert.der)
            .ok()
            .and_then(|info| cairn_x509::spki_jwk_thumbprint(&info.spki_der));
        self.sa
            .block_key(&BlockedKey {
                spki_sha256: cert.spki_sha256.clone(),
                jwk_thumbprint,
                blocked_at: at,
                comment: format!("keyCompromise revocation of serial {}", cert.serial),
            })
            .await
    }
}

/// Whether a `keyCompromise` revocation also blocks the certificate's key CA-wide.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeyBlocking {
    /// Block it: the requester proved possession of the key, or is the operator.
    OnKeyCompromise,
    /// Revoke only: an account (even the one that ordered the certificate) proves nothing about
    /// the key, and must not be able to deny the key's holder service CA-wide (Let's Encrypt
    /// also revokes without blocking then).
    Never,
}

impl Ra {
    /// Revokes a certificate given in DER. A `keyCompromise` revocation blocks the key only
    /// when the request was signed by the certificate's key ([`RevocationRequester::CertificateKey`]).
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
        let blocking = match &requester {
            RevocationRequester::CertificateKey(_) => KeyBlocking::OnKeyCompromise,
            RevocationRequester::Account(_) => KeyBlocking::Never,
        };
        match self
            .inner
            .revoker
            .record(&stored, &revocation, blocking)
            .await
        {
            Ok(()) => {}
            Err(SaError::Conflict(_)) => {
                return Err(Problem::new(
                    ProblemType::AlreadyRevoked,
                    "the certificate is already revoked",
                ));
            }
            Err(e) => return Err(internal(&e, "revoking certificate")),
        }
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
