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
        let previous: HashMap<(String, u32), u64> = self
            .sa
            .get_crl_infos()
            .await
            .map_err(UpdateError::LoadNumbers)?
            .into_iter()
            .map(|i| ((i.issuer_id, i.shard), i.number))
            .collect();
        // Every issuer, retired ones included: they keep publishing the CRLs of their
        // certificates. Issuers under one root name it once.
        let mut jobs: Vec<(String, u32, Vec<CrlEntry>)> = Vec::new();
        let mut roots: Vec<String> = Vec::new();
        for identity in self.issuer.identities() {
            let revoked = self
                .sa
                .get_revoked_certificates(&identity.issuer_id, now - self.settings.keep_expired)
                .await
                .map_err(UpdateError::LoadRevoked)?;
            let shards = group_by_shard(revoked, self.settings.shards);
            jobs.extend(shards.into_iter().enumerate().map(|(i, e)| {
                (
                    identity.issuer_id.clone(),
                    u32::try_from(i).unwrap_or(u32::MAX),
                    e,
                )
            }));
            if !roots.contains(&identity.root_id) {
                roots.push(identity.root_id);
            }
        }
        // The root's CRL lists revoked CA certificates; Cairn never revokes its intermediate.
        jobs.extend(roots.into_iter().map(|root| (root, 0, Vec::new())));

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
                // What the `CrlNearNextUpdate` alert watches: the validity of the CRL stored.
                Ok(()) => {
                    let (issuer, shard) = (crl.info.issuer_id.clone(), crl.info.shard.to_string());
                    metrics::gauge!("cairn_crl_this_update_timestamp_seconds",
                        "issuer" => issuer.clone(), "shard" => shard.clone())
                    .set(crl.info.this_update.unix_timestamp() as f64);
                    metrics::gauge!("cairn_crl_next_update_timestamp_seconds",
                        "issuer" => issuer, "shard" => shard)
                    .set(crl.info.next_update.unix_timestamp() as f64);
                }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crl::CrlConfig;
    use crate::fixture::{Parts, now};
    use cairn_core::RevocationReason;
    use der::Decode;
    use x509_cert::crl::CertificateList;

    fn revoked(days_ago: i64, reason: RevocationReason) -> Option<Revocation> {
        Some(Revocation {
            revoked_at: now() - time::Duration::days(days_ago),
            reason,
        })
    }

    fn settings(shards: u32) -> CrlSettings {
        CrlConfig {
            shards,
            ..CrlConfig::default()
        }
        .settings()
        .unwrap()
    }

    fn updater(parts: &Parts, settings: CrlSettings) -> CrlUpdater {
        CrlUpdater::new(
            parts.issuer.clone(),
            Arc::new(parts.sa.clone()),
            parts.clock.clone(),
            settings,
        )
    }

    /// The serials (hex) a CRL lists, in its order.
    fn listed(der: &[u8]) -> Vec<String> {
        let crl: CertificateList = CertificateList::from_der(der).unwrap();
        crl.tbs_cert_list
            .revoked_certificates
            .unwrap_or_default()
            .iter()
            .map(|r| hex(r.serial_number.as_bytes()))
            .collect()
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[tokio::test]
    async fn every_shard_and_the_roots_crl_are_signed_stored_and_numbered_upwards() {
        let parts = Parts::new().await;
        let a = parts
            .store("0a01", 0, revoked(2, RevocationReason::KeyCompromise))
            .await;
        let b = parts
            .store("0a02", 2, revoked(1, RevocationReason::Superseded))
            .await;
        parts.store("0a03", 2, None).await;
        let updater = updater(&parts, settings(3));

        let stats = updater.update_all().await.unwrap();
        assert_eq!(stats.crls, 4, "three shards and the root's CRL");
        assert_eq!(stats.entries, 2);
        assert_eq!(parts.issuer.signed(), 4, "every CRL signed by the issuer");
        let issuer_id = parts.issuer_id();
        let sa = &parts.sa;
        let shard = |n| sa.get_crl(&issuer_id, n);
        assert_eq!(listed(&shard(0).await.unwrap().der), vec![a.0.clone()]);
        assert!(listed(&shard(1).await.unwrap().der).is_empty());
        assert_eq!(listed(&shard(2).await.unwrap().der), vec![b.0.clone()]);
        let root = sa.get_crl("fake-root", 0).await.unwrap();
        assert!(listed(&root.der).is_empty());
        let info = shard(0).await.unwrap().info;
        assert_eq!((info.number, info.entries), (1, 1));
        assert_eq!(info.this_update, now());
        assert_eq!(info.next_update, now() + time::Duration::days(7));

        updater.update_all().await.unwrap();
        let numbers: Vec<u64> = sa
            .get_crl_infos()
            .await
            .unwrap()
            .iter()
            .map(|i| i.number)
            .collect();
        assert_eq!(numbers, vec![2; 4], "each CRL's number goes up by one");
    }

    #[tokio::test]
    async fn expired_certificates_leave_the_crl_after_keep_expired() {
        let parts = Parts::new().await;
        parts
            .store("0b01", 0, revoked(1, RevocationReason::Unspecified))
            .await;
        let updater = updater(&parts, settings(1));
        assert_eq!(updater.update_all().await.unwrap().entries, 1);
        // The certificate expires in 89 days; kept one day (the default) after that.
        parts
            .clock
            .advance(time::Duration::days(89) + time::Duration::hours(12));
        assert_eq!(updater.update_all().await.unwrap().entries, 1);
        parts.clock.advance(time::Duration::days(1));
        assert_eq!(updater.update_all().await.unwrap().entries, 0);
    }

    #[tokio::test]
    async fn a_refused_signature_stops_the_update_and_names_the_crl() {
        let parts = Parts::new().await;
        parts.issuer.refuse(Some("the key is offline"));
        let err = updater(&parts, settings(2)).update_all().await.unwrap_err();
        assert!(
            matches!(&err, UpdateError::Sign { shard: 0, .. }),
            "{err:?}"
        );
        assert!(err.to_string().contains("the key is offline"), "{err}");
        assert!(parts.sa.get_crl_infos().await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn crls_are_also_written_to_the_output_folder() {
        let parts = Parts::new().await;
        parts
            .store("0c01", 1, revoked(1, RevocationReason::Unspecified))
            .await;
        let dir = tempfile::tempdir().unwrap();
        let mut settings = settings(2);
        settings.output_dir = Some(dir.path().join("out"));
        updater(&parts, settings).update_all().await.unwrap();
        let issuer_id = parts.issuer_id();
        for shard in 0..2 {
            let file = dir
                .path()
                .join("out")
                .join(&issuer_id)
                .join(format!("{shard}.crl"));
            let stored = parts.sa.get_crl(&issuer_id, shard).await.unwrap();
            assert_eq!(
                std::fs::read(&file).unwrap(),
                stored.der,
                "{}",
                file.display()
            );
        }
        assert!(dir.path().join("out/fake-root/0.crl").is_file());
    }

    #[tokio::test]
    async fn a_revocation_in_this_process_wakes_the_updater_before_its_next_poll() {
        let parts = Parts::new().await;
        let serial = parts.store("0d01", 0, None).await;
        let mut settings = settings(1);
        settings.poll_interval = Duration::from_secs(3600);
        let updater = updater(&parts, settings);
        let listener = updater.revocation_listener();
        let task = tokio::spawn(updater.run());
        let issuer_id = parts.issuer_id();
        let number = || async {
            parts
                .sa
                .get_crl(&issuer_id, 0)
                .await
                .map(|c| c.info.number)
                .ok()
        };
        let wait_for = |n: u64| async move {
            for _ in 0..100 {
                if number().await == Some(n) {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            panic!("CRL number {n} never appeared");
        };
        wait_for(1).await;
        let revocation = revoked(0, RevocationReason::KeyCompromise).unwrap();
        parts
            .sa
            .revoke_certificate(&serial, &revocation)
            .await
            .unwrap();
        listener
            .certificate_revoked(&serial, &issuer_id, &revocation)
            .await;
        wait_for(2).await;
        let crl = parts.sa.get_crl(&issuer_id, 0).await.unwrap();
        assert_eq!(listed(&crl.der), vec![serial.0]);
        task.abort();
    }

    #[test]
    fn shards_group_in_the_order_given_and_old_shards_are_kept() {
        let cert = |serial: &str, shard: u32| RevokedCertificate {
            serial: Serial(serial.into()),
            crl_shard: shard,
            revocation: Revocation {
                revoked_at: now(),
                reason: RevocationReason::Superseded,
            },
        };
        let groups = group_by_shard(
            vec![cert("01", 1), cert("02", 0), cert("03", 1), cert("04", 5)],
            2,
        );
        assert_eq!(groups.len(), 6, "shard 5 from when there were more shards");
        let serials =
            |i: usize| -> Vec<Vec<u8>> { groups[i].iter().map(|e| e.serial.clone()).collect() };
        assert_eq!(serials(0), vec![vec![0x02]]);
        assert_eq!(serials(1), vec![vec![0x01], vec![0x03]]);
        assert!(groups[2..5].iter().all(Vec::is_empty));
        assert_eq!(serials(5), vec![vec![0x04]]);
        assert_eq!(groups[1][0].reason, RevocationReason::Superseded.code());
        assert_eq!(group_by_shard(Vec::new(), 3).len(), 3);
    }

    #[test]
    fn a_crl_is_fresh_until_its_next_update() {
        let info = |next_update| CrlInfo {
            issuer_id: "i".into(),
            shard: 0,
            number: 1,
            this_update: now() - time::Duration::days(1),
            next_update,
            entries: 0,
        };
        assert!(is_fresh(&info(now() + time::Duration::seconds(1)), now()));
        assert!(!is_fresh(&info(now()), now()));
    }
}
