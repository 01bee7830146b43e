//! The CRL updater: regenerates every CRL shard of the intermediate (and the root's CRL of CA
//! certificates) on a schedule, right after a revocation in this process (through the RA's
//! [`RevocationListener`] hook), and when another process (`cairn admin revoke`) revoked
//! something, noticed by polling storage's revocation epoch. Each CRL is signed through the
//! issuer (which lints it before it is published), stored in the database (served by the public
//! listener) and optionally written to a folder for a CDN or object store. The updater knows the
//! issuer only through the `CertificateIssuer` trait.

use anyhow::Context;
use async_trait::async_trait;
use cairn_api::{
    CertificateIssuer, CrlInfo, CrlRequest, RevocationListener, RevokedCertificate, SaError,
    StorageAuthority, StoredCrl,
};
use cairn_core::{Clock, Revocation, Serial};
use cairn_x509::CrlEntry;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use time::OffsetDateTime;
use tokio::sync::Notify;

/// CRL publishing settings (`[crl]`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CrlConfig {
    /// How many shards new certificates are spread over (by serial). Changing it later is
    /// safe: certificates keep the shard they were issued with.
    pub shards: u32,
    /// nextUpdate − thisUpdate (Baseline Requirements: at most 10 days).
    pub validity: String,
    /// Every shard is regenerated at least this often (must be under half of `validity`).
    pub update_interval: String,
    /// How often storage is checked for revocations made by other processes (`cairn admin
    /// revoke`); a revocation through this server's ACME API triggers an update at once.
    pub poll_interval: String,
    /// Revoked certificates stay on the CRL this long after they expire (RFC 5280 §3.3: an
    /// entry stays until it has appeared on a CRL issued after the certificate expired).
    pub keep_expired: String,
    /// Also write each CRL as `<dir>/<issuer_id>/<shard>.crl` (for a CDN or object store).
    pub output_dir: Option<PathBuf>,
}

impl Default for CrlConfig {
    fn default() -> Self {
        Self {
            shards: cairn_issuer::DEFAULT_CRL_SHARDS,
            validity: "7d".into(),
            update_interval: "6h".into(),
            poll_interval: "10s".into(),
            keep_expired: "1d".into(),
            output_dir: None,
        }
    }
}

/// [`CrlConfig`] with its durations parsed.
#[derive(Debug, Clone)]
pub struct CrlSettings {
    /// Shards.
    pub shards: u32,
    /// nextUpdate − thisUpdate.
    pub validity: time::Duration,
    /// Scheduled regeneration.
    pub update_interval: Duration,
    /// Epoch polling.
    pub poll_interval: Duration,
    /// Grace after expiry.
    pub keep_expired: time::Duration,
    /// Output folder.
    pub output_dir: Option<PathBuf>,
}

impl CrlConfig {
    /// Parses and checks the durations.
    pub fn settings(&self) -> anyhow::Result<CrlSettings> {
        let parse = |name: &str, v: &str| {
            cairn_ra::humane_duration::parse(v).map_err(|e| anyhow::anyhow!("crl.{name}: {e}"))
        };
        let validity = parse("validity", &self.validity)?;
        let update = parse("update_interval", &self.update_interval)?;
        let poll = parse("poll_interval", &self.poll_interval)?;
        let keep = parse("keep_expired", &self.keep_expired)?;
        anyhow::ensure!(
            (1..=4096).contains(&self.shards),
            "crl.shards must be between 1 and 4096"
        );
        anyhow::ensure!(
            validity > time::Duration::ZERO && validity <= time::Duration::days(10),
            "crl.validity must be positive and at most 10 days (Baseline Requirements §4.9.7)"
        );
        anyhow::ensure!(
            update > time::Duration::ZERO && update * 2 <= validity,
            "crl.update_interval must be positive and at most half of crl.validity"
        );
        anyhow::ensure!(
            poll > time::Duration::ZERO,
            "crl.poll_interval must be positive"
        );
        anyhow::ensure!(
            keep >= update,
            "crl.keep_expired must be at least crl.update_interval, so that an expired \
             certificate appears on one CRL after it expired"
        );
        let std = |d: time::Duration| Duration::try_from(d).unwrap_or(Duration::from_secs(1));
        Ok(CrlSettings {
            shards: self.shards,
            validity,
            update_interval: std(update),
            poll_interval: std(poll),
            keep_expired: keep,
            output_dir: self.output_dir.clone(),
        })
    }
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
                        tracing::error!(error = format!("{e:#}"), "CRL update failed");
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
    pub async fn update_all(&self) -> anyhow::Result<UpdateStats> {
        let now = self.clock.now();
        let now = now.replace_nanosecond(0).unwrap_or(now);
        let identity = self.issuer.identity();
        let issuer_id = identity.issuer_id.clone();
        let revoked = self
            .sa
            .get_revoked_certificates(&issuer_id, now - self.settings.keep_expired)
            .await
            .context("loading revoked certificates")?;
        let previous: HashMap<(String, u32), u64> = self
            .sa
            .get_crl_infos()
            .await
            .context("loading CRL numbers")?
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

        let issuer = self.issuer.clone();
        let validity = self.settings.validity;
        // Signing and linting a CRL of many entries is CPU work for the in-process issuer: it
        // runs on a blocking thread, off the runtime's workers, awaiting each signature there.
        let runtime = tokio::runtime::Handle::current();
        let signed = tokio::task::spawn_blocking(move || {
            jobs.into_iter()
                .map(|(id, shard, entries)| {
                    let number = previous
                        .get(&(id.clone(), shard))
                        .map_or(1, |n| n.saturating_add(1));
                    let der = runtime
                        .block_on(issuer.sign_crl(&CrlRequest {
                            issuer_id: &id,
                            shard,
                            number,
                            this_update: now,
                            next_update: now + validity,
                            entries: &entries,
                        }))
                        .with_context(|| format!("signing CRL {id}/{shard}"))?;
                    Ok(StoredCrl {
                        info: CrlInfo {
                            issuer_id: id,
                            shard,
                            number,
                            this_update: now,
                            next_update: now + validity,
                            entries: entries.len() as u64,
                        },
                        der,
                    })
                })
                .collect::<anyhow::Result<Vec<StoredCrl>>>()
        })
        .await
        .context("CRL signing task")??;

        let mut stats = UpdateStats::default();
        for crl in &signed {
            match self.sa.put_crl(crl).await {
                Ok(()) => {}
                // Another updater sharing the database stored a newer one first.
                Err(SaError::Conflict(_)) => continue,
                Err(e) => {
                    return Err(e).with_context(|| {
                        format!("storing CRL {}/{}", crl.info.issuer_id, crl.info.shard)
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
fn write_crl_file(dir: &std::path::Path, crl: &StoredCrl) -> anyhow::Result<()> {
    let sub = dir.join(&crl.info.issuer_id);
    std::fs::create_dir_all(&sub).with_context(|| format!("creating {}", sub.display()))?;
    let path = sub.join(format!("{}.crl", crl.info.shard));
    let tmp = sub.join(format!(".{}.crl.tmp", crl.info.shard));
    std::fs::write(&tmp, &crl.der).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, &path).with_context(|| format!("renaming to {}", path.display()))?;
    Ok(())
}

/// Whether a stored CRL is still current at `now`.
pub fn is_fresh(info: &CrlInfo, now: OffsetDateTime) -> bool {
    info.next_update > now
}
