//! `cairn admin revoke` and `cairn admin crl`: operator revocation straight against the
//! database (from a separate process; the server's CRL updater notices the revocations through
//! storage's revocation epoch within its `crl.poll_interval`; the OCSP responder's Redis cache
//! is written directly, its memory cache follows the same epoch), and CRL freshness.

use crate::ServeArgs;
use crate::config::Config;
use crate::serve::{effective_config, ocsp_signer_kind, open_storage};
use anyhow::Context;
use cairn_core::{AccountId, Clock, Identifier, RevocationReason, Serial, SystemClock};
use cairn_ra::Revoker;
use cairn_ra::admin_revocation::{self, Selection};
use cairn_sa::{CertificateSelector, StorageAuthority};
use cairn_status::ocsp::OcspResponder;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

/// Flags of `cairn admin revoke`.
#[derive(Debug, clap::Args)]
pub struct RevokeArgs {
    #[command(flatten)]
    select: RevokeSelection,
    /// Revocation reason: unspecified, keyCompromise, affiliationChanged, superseded,
    /// cessationOfOperation, privilegeWithdrawn, or its RFC 5280 code.
    #[arg(long, default_value = "unspecified")]
    reason: String,
    /// Also revoke every other unexpired certificate with the same key as a selected one.
    #[arg(long)]
    with_key_siblings: bool,
    /// Show what would be revoked and change nothing.
    #[arg(long)]
    dry_run: bool,
    #[command(flatten)]
    target: ServeArgs,
}

/// Which certificates to revoke (exactly one).
#[derive(Debug, clap::Args)]
#[group(required = true, multiple = false)]
struct RevokeSelection {
    /// Certificates by serial (hex); may repeat.
    #[arg(long)]
    serial: Vec<String>,
    /// A file of serials (hex), one per line; blank lines and `#` comments are skipped.
    #[arg(long)]
    serials_file: Option<PathBuf>,
    /// Every unexpired certificate of an account.
    #[arg(long)]
    account: Option<String>,
    /// Every unexpired certificate for a key: its SPKI SHA-256 (64 hex digits), or a PEM file
    /// holding the public key or a certificate for it.
    #[arg(long)]
    key: Option<String>,
    /// Every unexpired certificate naming this DNS name or IP address.
    #[arg(long)]
    identifier: Option<String>,
}

/// Flags of `cairn admin crl`.
#[derive(Debug, clap::Args)]
pub struct CrlArgs {
    #[command(flatten)]
    target: ServeArgs,
}

/// Parses a reason name or code (the reasons the Baseline Requirements allow).
fn parse_reason(s: &str) -> anyhow::Result<RevocationReason> {
    RevocationReason::from_name_or_code(s).ok_or_else(|| {
        anyhow::anyhow!(
            "--reason {s:?}: use unspecified, keyCompromise, affiliationChanged, superseded, \
             cessationOfOperation, privilegeWithdrawn (or 0, 1, 3, 4, 5, 9)"
        )
    })
}

fn parse_serial(s: &str) -> anyhow::Result<Serial> {
    Serial::parse_hex(s)
        .ok_or_else(|| anyhow::anyhow!("{:?} is not a hexadecimal serial", s.trim()))
}

/// The SPKI SHA-256 named by `--key`.
fn key_hash(arg: &str) -> anyhow::Result<String> {
    if arg.len() == 64 && arg.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Ok(arg.to_ascii_lowercase());
    }
    let text = std::fs::read_to_string(arg).with_context(|| {
        format!("--key {arg:?} is neither a 64-digit SPKI SHA-256 nor a readable PEM file")
    })?;
    let blocks = cairn_x509::pem_decode_all(&text).with_context(|| format!("{arg}: bad PEM"))?;
    for (label, der) in blocks {
        let spki = match label.as_str() {
            "PUBLIC KEY" => der,
            "CERTIFICATE" => {
                cairn_x509::CertInfo::from_der(&der)
                    .with_context(|| format!("{arg}: the certificate does not parse"))?
                    .spki_der
            }
            _ => continue,
        };
        let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &spki);
        return Ok(d.as_ref().iter().map(|b| format!("{b:02x}")).collect());
    }
    anyhow::bail!("{arg}: no PUBLIC KEY or CERTIFICATE block")
}

fn parse_identifier(s: &str) -> Identifier {
    match s.parse::<std::net::IpAddr>() {
        Ok(ip) => Identifier::ip(ip),
        Err(_) => Identifier::dns(s.trim_end_matches('.').to_ascii_lowercase()),
    }
}

/// `cairn admin revoke`.
pub async fn run_revoke(args: RevokeArgs) -> anyhow::Result<()> {
    let reason = parse_reason(&args.reason)?;
    let cfg = effective_config(&args.target)?;
    let storage: Arc<dyn StorageAuthority> = Arc::new(open_storage(&cfg).await?);
    let now = time::OffsetDateTime::now_utc();
    let sel = &args.select;

    let selection = if !sel.serial.is_empty() || sel.serials_file.is_some() {
        let mut serials = Vec::new();
        for s in &sel.serial {
            serials.push(parse_serial(s)?);
        }
        if let Some(file) = &sel.serials_file {
            let text = std::fs::read_to_string(file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            for (n, line) in text.lines().enumerate() {
                let line = line.split('#').next().unwrap_or("").trim();
                if line.is_empty() {
                    continue;
                }
                serials.push(
                    parse_serial(line).with_context(|| format!("{}:{}", file.display(), n + 1))?,
                );
            }
        }
        Selection::Serials(serials)
    } else if let Some(a) = &sel.account {
        Selection::Matching(CertificateSelector::Account(AccountId(a.clone())))
    } else if let Some(k) = &sel.key {
        Selection::Matching(CertificateSelector::SpkiSha256(key_hash(k)?))
    } else if let Some(i) = &sel.identifier {
        Selection::Matching(CertificateSelector::Identifier(parse_identifier(i)))
    } else {
        anyhow::bail!(
            "select certificates with --serial, --serials-file, --account, --key or --identifier"
        );
    };
    let selected = admin_revocation::select(&*storage, &selection, args.with_key_siblings, now)
        .await
        .context("selecting certificates")?;
    for m in &selected.missing {
        eprintln!("not found: serial {m}");
    }
    let (already, todo) = selected.partition();
    println!(
        "{} certificate(s) selected: {} to revoke ({:?}), {} already revoked, {} not found",
        selected.certificates.len(),
        todo.len(),
        reason,
        already.len(),
        selected.missing.len()
    );
    if args.dry_run {
        for c in todo.iter().take(20) {
            println!(
                "  would revoke {} (account {}, notAfter {})",
                c.serial, c.account_id, c.not_after
            );
        }
        if todo.len() > 20 {
            println!("  … and {} more", todo.len() - 20);
        }
        println!("dry run: nothing changed");
        return Ok(());
    }

    let revoker = Revoker::new(storage.clone());
    let ocsp_listener = ocsp_revocation_listener(&cfg, storage.clone()).await?;
    if let Some(l) = &ocsp_listener {
        revoker.add_listener(l.clone());
    }
    let total = todo.len();
    let progress = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let outcome = revoker
        .revoke_selected(
            &selection,
            &todo,
            reason,
            "cairn admin revoke --key",
            |done| {
                if done == total || done % 100 == 0 {
                    if progress {
                        eprint!("\rrevoking: {done}/{total}");
                        let _ = std::io::stderr().flush();
                    } else if done % 10_000 == 0 {
                        eprintln!("revoking: {done}/{total}");
                    }
                }
            },
        )
        .await?;
    if progress && total > 0 {
        eprintln!();
    }
    println!(
        "revoked {} certificate(s){}; the server's CRL updater publishes them within crl.poll_interval{}",
        outcome.revoked,
        if outcome.raced > 0 {
            format!(
                " ({} were revoked meanwhile by someone else)",
                outcome.raced
            )
        } else {
            String::new()
        },
        match (&ocsp_listener, cfg.ocsp.enabled) {
            (Some(_), _) => "; OCSP answers in Redis were replaced",
            (None, true) => "; the OCSP responder's memory cache follows within crl.poll_interval",
            (None, false) => "",
        }
    );
    Ok(())
}

/// When the responder is on and caches in Redis, a listener that writes `revoked` answers for
/// each revocation into the server's Redis cache, signed with the CA's keys in
/// `server.data_dir` (as the server's own listener does). `None` when OCSP is off or caches in
/// memory (the server then retires its answers when it sees the revocation epoch move, within
/// `crl.poll_interval`).
async fn ocsp_revocation_listener(
    cfg: &Config,
    sa: Arc<dyn StorageAuthority>,
) -> anyhow::Result<Option<Arc<OcspResponder>>> {
    let Some(redis_url) = cfg.redis_url().filter(|_| cfg.ocsp.enabled) else {
        return Ok(None);
    };
    let ca_dir = cfg.server.data_dir.join("ca");
    let hierarchy = cairn_issuer::CaHierarchy::load(&ca_dir).map_err(|e| {
        anyhow::anyhow!(
            "cannot load the CA in {} to sign OCSP answers: {e}",
            ca_dir.display()
        )
    })?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let issuer = cairn_issuer::LocalIssuer::new(
        hierarchy,
        cairn_issuer::EndEntityProfile::default(),
        cfg.ca.ignored_lints.clone(),
    )
    .map_err(|e| anyhow::anyhow!("cannot set up the issuer: {e}"))?
    .with_ocsp_signer(ocsp_signer_kind(cfg.ocsp.signer), &ca_dir, clock.now())
    .map_err(|e| anyhow::anyhow!("cannot set up OCSP signing: {e}"))?;
    let responder =
        OcspResponder::new(&cfg.ocsp, Arc::new(issuer), sa, clock, Some(&redis_url)).await?;
    Ok(Some(Arc::new(responder)))
}

/// `cairn admin crl`: one line per stored CRL.
pub async fn run_crl(args: CrlArgs) -> anyhow::Result<()> {
    let cfg = effective_config(&args.target)?;
    let storage = open_storage(&cfg).await?;
    let infos = storage.get_crl_infos().await.context("loading CRLs")?;
    if infos.is_empty() {
        println!("no CRLs stored yet (the server publishes them when it runs)");
        return Ok(());
    }
    let now = time::OffsetDateTime::now_utc();
    let fmt = |t: time::OffsetDateTime| {
        t.format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_else(|_| t.to_string())
    };
    println!(
        "{:<16} {:>5} {:>8} {:<20} {:<20} {:>8}  status",
        "issuer", "shard", "number", "thisUpdate", "nextUpdate", "entries"
    );
    let mut stale = 0;
    for i in &infos {
        let fresh = cairn_status::crl::is_fresh(i, now);
        if !fresh {
            stale += 1;
        }
        println!(
            "{:<16} {:>5} {:>8} {:<20} {:<20} {:>8}  {}",
            i.issuer_id,
            i.shard,
            i.number,
            fmt(i.this_update),
            fmt(i.next_update),
            i.entries,
            if fresh {
                "fresh"
            } else {
                "STALE (past nextUpdate)"
            }
        );
    }
    println!(
        "{} CRL(s), {} entries, {stale} stale",
        infos.len(),
        infos.iter().map(|i| i.entries).sum::<u64>()
    );
    Ok(())
}
