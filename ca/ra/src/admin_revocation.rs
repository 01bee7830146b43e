//! Operator revocation (`cairn admin revoke`): the certificates a selection names — by serial,
//! or every unexpired certificate of an account, a key or an identifier, optionally with every
//! other unexpired certificate on the same keys — and their revocation through the [`Revoker`],
//! exactly as an ACME revocation goes (key blocked first for keyCompromise, listeners told).
//!
//! It runs in the operator's process straight against storage; the server's CRL updater and
//! OCSP memory cache notice through storage's revocation epoch (docs/revocation.md). Each
//! certificate is one revocation in storage, so a run that stops half-way (an error, a kill)
//! leaves every certificate either revoked or not, and running it again finishes the rest:
//! those already revoked are counted, not revoked twice.

use crate::Revoker;
use cairn_api::{BlockedKey, CertificateSelector, SaError, SaResult, StorageAuthority};
use cairn_core::{Certificate, Revocation, RevocationReason, Serial};
use std::collections::{BTreeMap, BTreeSet};
use time::OffsetDateTime;

/// The most certificates one selector may name.
pub const MAX_SELECTED: u64 = 1_000_000;

/// Which certificates to revoke.
#[derive(Debug, Clone)]
pub enum Selection {
    /// These serials.
    Serials(Vec<Serial>),
    /// Every unexpired certificate the selector matches. Revoking for keyCompromise by
    /// [`CertificateSelector::SpkiSha256`] blocks that key even when no certificate is left.
    Matching(CertificateSelector),
}

/// What a selection names.
#[derive(Debug, Default)]
pub struct Selected {
    /// Every certificate found, by serial.
    pub certificates: BTreeMap<Serial, Certificate>,
    /// Serials storage does not know.
    pub missing: Vec<Serial>,
}

impl Selected {
    /// The certificates revoked already, and those to revoke.
    pub fn partition(&self) -> (Vec<&Certificate>, Vec<&Certificate>) {
        self.certificates
            .values()
            .partition(|c| c.revocation.is_some())
    }
}

/// The certificates `selection` names at `now`, with (`with_key_siblings`) every other
/// unexpired certificate that has the key of one of them.
pub async fn select(
    sa: &dyn StorageAuthority,
    selection: &Selection,
    with_key_siblings: bool,
    now: OffsetDateTime,
) -> SaResult<Selected> {
    let mut selected = Selected::default();
    match selection {
        Selection::Serials(serials) => {
            for serial in serials {
                match sa.get_issued(serial).await {
                    Ok(c) => {
                        selected.certificates.insert(c.serial.clone(), c);
                    }
                    Err(SaError::NotFound) => selected.missing.push(serial.clone()),
                    Err(e) => return Err(e),
                }
            }
        }
        Selection::Matching(selector) => {
            for c in sa
                .get_certificates(selector, now, false, MAX_SELECTED)
                .await?
            {
                selected.certificates.insert(c.serial.clone(), c);
            }
        }
    }
    if with_key_siblings {
        let keys: BTreeSet<String> = selected
            .certificates
            .values()
            .map(|c| c.spki_sha256.clone())
            .collect();
        for key in keys {
            let selector = CertificateSelector::SpkiSha256(key);
            for c in sa
                .get_certificates(&selector, now, false, MAX_SELECTED)
                .await?
            {
                selected.certificates.insert(c.serial.clone(), c);
            }
        }
    }
    Ok(selected)
}

/// How a run of revocations went.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Revoked {
    /// Revoked by this run.
    pub revoked: usize,
    /// Revoked meanwhile by someone else.
    pub raced: usize,
}

/// Why a run of revocations stopped; the certificates revoked before stay revoked.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RevokeError {
    /// The compromised key could not be blocked (nothing was revoked).
    #[error("blocking the key: {0}")]
    BlockKey(#[source] SaError),
    /// A certificate could not be revoked.
    #[error("revoking {serial} (after {revoked} revoked): {source}")]
    Revoke {
        /// The certificate that was not revoked.
        serial: Serial,
        /// How many this run revoked before it.
        revoked: usize,
        /// What storage said.
        #[source]
        source: SaError,
    },
}

impl Revoker {
    /// Revokes `certificates` for `reason`, each at the moment of its revocation, calling
    /// `progress` with the number handled so far after each. For keyCompromise by key
    /// ([`Selection::Matching`] by SPKI), that key is blocked first, with `comment`.
    pub async fn revoke_selected(
        &self,
        selection: &Selection,
        certificates: &[&Certificate],
        reason: RevocationReason,
        comment: &str,
        mut progress: impl FnMut(usize),
    ) -> Result<Revoked, RevokeError> {
        if reason == RevocationReason::KeyCompromise
            && let Selection::Matching(CertificateSelector::SpkiSha256(key)) = selection
        {
            let block = BlockedKey {
                spki_sha256: key.clone(),
                jwk_thumbprint: None,
                blocked_at: OffsetDateTime::now_utc(),
                comment: comment.to_owned(),
            };
            self.sa
                .block_key(&block)
                .await
                .map_err(RevokeError::BlockKey)?;
        }
        let mut outcome = Revoked::default();
        for (i, cert) in certificates.iter().enumerate() {
            let revocation = Revocation {
                revoked_at: OffsetDateTime::now_utc(),
                reason,
            };
            match self.revoke(cert, &revocation).await {
                Ok(()) => outcome.revoked += 1,
                Err(SaError::Conflict(_)) => outcome.raced += 1,
                Err(source) => {
                    return Err(RevokeError::Revoke {
                        serial: cert.serial.clone(),
                        revoked: outcome.revoked,
                        source,
                    });
                }
            }
            progress(i + 1);
        }
        Ok(outcome)
    }
}
