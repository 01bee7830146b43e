//! The CRL updater: regenerates every CRL shard of the intermediate (and the root's CRL of CA
//! certificates) on a schedule, right after a revocation in this process (through the RA's
//! [`RevocationListener`] hook), and when another process (`cairn admin revoke`) revoked
//! something, noticed by polling storage's revocation epoch. Each CRL is signed through the
//! issuer (which lints it before it is published), stored in the database (served by the public
//! listener) and optionally written to a folder for a CDN or object store. The updater knows the
//! issuer only through the `CertificateIssuer` trait and awaits each signature: where the CPU
//! work of a large CRL runs is the issuer's business.
//!
//! Several updaters may share one database (several `cairn serve` behind a balancer): storage
//! keeps a CRL only if its number is higher than the stored one's, and an updater that loses
//! that race skips the shard.

use super::CrlSettings;
use async_trait::async_trait;
use cairn_api::{
    CertificateIssuer, CrlInfo, CrlRequest, IssuerError, RevocationListener, RevokedCertificate,
    SaError, StorageAuthority, StoredCrl,
};
use cairn_core::{Clock, Revocation, Serial};
use cairn_x509::CrlEntry;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use time::OffsetDateTime;
use tokio::sync::Notify;

/// Why an update stopped (the CRLs stored before it stay stored; the next update redoes all).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UpdateError {
    /// Storage did not list the revoked certificates.
    #[error("loading revoked certificates: {0}")]
    LoadRevoked(#[source] SaError),
    /// Storage did not list the stored CRLs' numbers.
    #[error("loading CRL numbers: {0}")]
    LoadNumbers(#[source] SaError),
    /// The issuer refused or failed to sign a CRL (its lint included).
    #[error("signing CRL {issuer_id}/{shard}: {source}")]
    Sign {
        /// The CRL's issuer.
        issuer_id: String,
        /// The shard.
        shard: u32,
        /// What the issuer said.
        #[source]
        source: IssuerError,
    },
    /// Storage did not store a signed CRL.
    #[error("storing CRL {issuer_id}/{shard}: {source}")]
    Store {
        /// The CRL's issuer.
        issuer_id: String,
        /// The shard.
        shard: u32,
        /// What storage said.
        #[source]
        source: SaError,
    },
    /// A CRL could not be written to `output_dir`.
    #[error("{action} {}: {source}", path.display())]
    Output {
        /// What failed: creating (the folder), writing or renaming to (the file).
        action: &'static str,
        /// The file or folder.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

/// What one update did.
#[derive(Debug, Clone, Default)]
pub struct UpdateStats {
    /// CRLs signed and stored.
    pub crls: usize,
    /// Entries over all CRLs.
    pub entries: usize,
    /// Bytes over all CRLs.
    pub bytes: usize,
}

/// Regenerates and publishes CRLs.
pub struct CrlUpdater {
    issuer: Arc<dyn CertificateIssuer>,
    sa: Arc<dyn StorageAuthority>,
    clock: Arc<dyn Clock>,
    settings: CrlSettings,
    wake: Arc<Notify>,
}

impl std::fmt::Debug for CrlUpdater {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CrlUpdater")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// Wakes the updater when this process revokes a certificate.
struct WakeOnRevocation(Arc<Notify>);

#[async_trait]
impl RevocationListener for WakeOnRevocation {
    async fn certificate_revoked(&self, _: &Serial, _: &str, _: &Revocation) {
        self.0.notify_one();
    }
}

impl CrlUpdater {
    /// An updater for `issuer`'s CRLs over `sa`.
    pub fn new(
        issuer: Arc<dyn CertificateIssuer>,
        sa: Arc<dyn StorageAuthority>,
        clock: Arc<dyn Clock>,
        settings: CrlSettings,
    ) -> Self {
        Self {
            issuer,
            sa,
            clock,
            settings,
            wake: Arc::new(Notify::new()),
        }
    }

    /// The listener to register with the RA: it triggers an update after each revocation.
    pub fn revocation_listener(&self) -> Arc<dyn RevocationListener> {
        Arc::new(WakeOnRevocation(self.wake.clone()))
    }

    /// Runs until the task is aborted: an update at once, then whenever woken, when storage's
    /// revocation epoch moved, and every `update_interval`. A failed update is logged and
    /// retried at the next poll.
    pub async fn run(self) {
        let mut seen_epoch: Option<i64> = None;
        let mut next_scheduled = Instant::now();
        loop {
            let epoch = match self.sa.get_revocation_epoch().await {
                Ok(e) => Some(e),
                Err(e) => {
                    tracing::warn!(error = %e, "reading the revocation epoch");
                    None
                }
            };
            let due = Instant::now() >= next_scheduled || epoch.is_none() || epoch != seen_epoch;
            if due {
                let started = Instant::now();
                match self.update_all().await {
                    Ok(stats) => {
                        seen_epoch = epoch;
                        next_scheduled = Instant::now() + self.settings.update_interval;
                        metrics::counter!("cairn_crl_updates_total", "outcome" => "ok")
                            .increment(1);
                        metrics::histogram!("cairn_crl_update_seconds")
                            .record(started.elapsed().as_secs_f64());
                        tracing::info!(
                            crls = stats.crls,
                            entries = stats.entries,
                            bytes = stats.bytes,
                            ms = started.elapsed().as_millis() as u64,
                            "CRLs updated"
                        );
                    }
                    Err(e) => {
                        metrics::counter!("cairn_crl_updates_total", "outcome" => "error")
                            .increment(1);
                        tracing::error!(error = %e, "CRL update failed");
                    }
                }
            }
            tokio::select! {
                () = self.wake.notified() => {
                    // Let a burst of revocations (several certificates at once) settle.
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    seen_epoch = None;
                }
                () = tokio::time::sleep(self.settings.poll_interval) => {}
            }
        }
    }

    /// Regenerates, signs, stores (and writes out) every CRL now.
    pub async fn update_all(&self) -> Result<UpdateStats, UpdateError> {
        let now = self.clock.now();
        let now = now.replace_nanosecond(0).unwrap_or(now);
        let identity = self.issuer.identity();
        let issuer_id = identity.issuer_id.clone();
        let revoked = self
            .sa
            .get_revoked_certificates(&issuer_id, now - self.settings.keep_expired)
            .await
            .map_err(UpdateError::LoadRevoked)?;
        let previous: HashMap<(String, u32), u64> = self
            .sa
            .get_crl_infos()
            .await
            .map_err(UpdateError::LoadNumbers)?
            .into_iter()
            .map(|i| ((i.issuer_id, i.shard), i.number))
            .collect();
        let shards = group_by_shard(revoked, self.settings.shards);
        let mut jobs: Vec<(String, u32, Vec<CrlEntry>)> = shards
            .into_iter()
            .enumerate()
            .map(|(i, e)| (issuer_id.clone(), u32::try_from(i).unwrap_or(u32::MAX), e))
            .collect();
        // The root's CRL lists revoked CA certificates; Cairn never revokes its intermediate.
        jobs.push((identity.root_id, 0, Vec::new()));

        let validity = self.settings.validity;
        let mut signed = Vec::with_capacity(jobs.len());
        for (id, shard, entries) in jobs {
            let number = previous
                .get(&(id.clone(), shard))
                .map_or(1, |n| n.saturating_add(1));
            let der = match self
                .issuer
                .sign_crl(&CrlRequest {
                    issuer_id: &id,
                    shard,
                    number,
                    this_update: now,
                    next_update: now + validity,
                    entries: &entries,
                })
                .await
            {
                Ok(der) => der,
                Err(source) => {
                    return Err(UpdateError::Sign {
                        issuer_id: id,
                        shard,
                        source,
                    });
                }
            };
            signed.push(StoredCrl {
                info: CrlInfo {
                    issuer_id: id,
                    shard,
                    number,
                    this_update: now,
                    next_update: now + validity,
                    entries: entries.len() as u64,
                },
                der,
            });
        }

        let mut stats = UpdateStats::default();
        for crl in &signed {
            match self.sa.put_crl(crl).await {
                Ok(()) => {}
                // Another updater sharing the database stored a newer one first.
                Err(SaError::Conflict(_)) => continue,
                Err(source) => {
                    return Err(UpdateError::Store {
                        issuer_id: crl.info.issuer_id.clone(),
                        shard: crl.info.shard,
                        source,
                    });
                }
            }
            if let Some(dir) = &self.settings.output_dir {
                write_crl_file(dir, crl)?;
            }
            stats.crls += 1;
            stats.entries += crl.info.entries as usize;
            stats.bytes += crl.der.len();
        }
        Ok(stats)
    }
}

/// Sorts revoked certificates into `shards` lists of CRL entries (more if older certificates
/// were issued with more shards), each in serial order.
pub fn group_by_shard(revoked: Vec<RevokedCertificate>, shards: u32) -> Vec<Vec<CrlEntry>> {
    let count = revoked
        .iter()
        .map(|r| r.crl_shard.saturating_add(1))
        .max()
        .unwrap_or(0)
        .max(shards) as usize;
    let mut out: Vec<Vec<CrlEntry>> = vec![Vec::new(); count];
    for r in revoked {
        out[r.crl_shard as usize].push(CrlEntry {
            serial: r.serial.to_bytes(),
            revoked_at: r.revocation.revoked_at,
            reason: r.revocation.reason.code(),
        });
    }
    out
}

/// Writes `<dir>/<issuer>/<shard>.crl` atomically (temporary file and rename).
fn write_crl_file(dir: &Path, crl: &StoredCrl) -> Result<(), UpdateError> {
    let failed = |action: &'static str, path: &Path| {
        let path = path.to_owned();
        move |source| UpdateError::Output {
            action,
            path,
            source,
        }
    };
    let sub = dir.join(&crl.info.issuer_id);
    std::fs::create_dir_all(&sub).map_err(failed("creating", &sub))?;
    let path = sub.join(format!("{}.crl", crl.info.shard));
    let tmp = sub.join(format!(".{}.crl.tmp", crl.info.shard));
    std::fs::write(&tmp, &crl.der).map_err(failed("writing", &tmp))?;
    std::fs::rename(&tmp, &path).map_err(failed("renaming to", &path))?;
    Ok(())
}

/// Whether a stored CRL is still current at `now`.
pub fn is_fresh(info: &CrlInfo, now: OffsetDateTime) -> bool {
    info.next_update > now
}
