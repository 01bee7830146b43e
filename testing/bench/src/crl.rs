//! `cairn bench crl`: how long regenerating every CRL shard of one issuer takes with N revoked
//! certificates. Fills a fresh database (SQLite in a temporary directory, and PostgreSQL in a
//! fresh schema when a URL is given) through the storage authority with N revoked certificates
//! spread over the shards the way issuance spreads them (by serial), then times the CRL
//! updater's full regeneration (one query, build + sign + lint per shard, store) and, in a
//! second pass, each step per shard.

use anyhow::Context;
use cairn_api::{CertificateIssuer, CrlRequest};
use cairn_core::{
    Account, AccountId, AccountStatus, Certificate, Order, OrderId, OrderStatus, Revocation,
    RevocationReason, Serial,
};
use cairn_issuer::{CaHierarchy, HierarchyOptions, LocalIssuer, crl_shard_of};
use cairn_sa::{SqlStorage, StorageAuthority, StoredCrl};
use cairn_status::crl::{CrlConfig, CrlUpdater, group_by_shard};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use time::OffsetDateTime;

/// Concurrent writers filling the database: enough to keep the SQLite writer's group commits
/// full (it takes up to 256 writes a batch) and every PostgreSQL connection busy.
const FILL_WRITERS: usize = 512;

/// Flags of `cairn bench crl`.
#[derive(Debug, clap::Args)]
pub(crate) struct CrlBenchArgs {
    /// Revoked certificates of the issuer.
    #[arg(long, default_value_t = 1_000_000)]
    revoked: u64,
    /// CRL shards they are spread over.
    #[arg(long, default_value_t = 16)]
    shards: u32,
    /// Also run against PostgreSQL at this URL (a fresh schema is created and dropped).
    #[arg(long, env = "CAIRN_BENCH_POSTGRES_URL")]
    postgres_url: Option<String>,
    /// CA key algorithm (as `ca.key_algorithm`).
    #[arg(long, default_value = "ecdsa-p256")]
    key_algorithm: String,
}

pub(crate) async fn run(args: CrlBenchArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.revoked > 0, "--revoked must be positive");
    anyhow::ensure!(
        (1..=4096).contains(&args.shards),
        "--shards must be between 1 and 4096"
    );
    let dir = tempfile::tempdir().context("temporary directory")?;
    let issuer: Arc<dyn CertificateIssuer> = Arc::new(make_issuer(dir.path(), &args)?);

    let sqlite = SqlStorage::open_sqlite_in(&dir.path().join("db"))
        .await
        .context("opening SQLite")?;
    bench_one(&sqlite, &issuer, &args).await?;
    sqlite.close().await;

    if let Some(pg) = &args.postgres_url {
        let schema = crate::pg_schema::BenchSchema::create(pg, "cairn_bench_crl").await?;
        let result = async {
            let storage = SqlStorage::connect(&schema.url)
                .await
                .context("opening PostgreSQL")?;
            let r = bench_one(&storage, &issuer, &args).await;
            storage.close().await;
            r
        }
        .await;
        schema.drop().await?;
        result?;
    }
    Ok(())
}

fn make_issuer(dir: &std::path::Path, args: &CrlBenchArgs) -> anyhow::Result<LocalIssuer> {
    let base = "http://crl.bench.example";
    let hierarchy = CaHierarchy::load_or_create_with(
        &dir.join("ca"),
        args.key_algorithm
            .parse()
            .map_err(|e| anyhow::anyhow!("--key-algorithm: {e}"))?,
        OffsetDateTime::now_utc(),
        &HierarchyOptions {
            country: Some("XX".into()),
            public_base_url: Some(base.into()),
        },
    )
    .context("creating a CA")?;
    Ok(LocalIssuer::new(
        hierarchy,
        cairn_issuer::EndEntityProfile::default(),
        Vec::new(),
    )
    .context("issuer")?
    .with_public_base_url(base)
    .with_crl_shards(args.shards))
}

/// The lowercase hex of the `i`-th serial: 16 octets, positive, distinct, spread evenly over
/// the shards by [`crl_shard_of`] (its low 64 bits are a mixed counter).
fn serial_hex(i: u64) -> String {
    // splitmix64: a bijection, so serials stay distinct.
    let mut z = i.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    format!("7e{:014x}{z:016x}", i)
}

/// Stores `args.revoked` revoked certificates of `issuer_id` through the storage authority, as
/// the CA would: each one's order (already `processing`), then the certificate, which finalizes
/// the order and here carries its revocation. [`FILL_WRITERS`] tasks write concurrently, so the
/// SQLite writer commits them in full batches and every PostgreSQL connection stays busy.
async fn fill(storage: &SqlStorage, issuer_id: &str, args: &CrlBenchArgs) -> anyhow::Result<()> {
    let now = OffsetDateTime::now_utc();
    let not_before = now - time::Duration::days(10);
    let not_after = now + time::Duration::days(80);
    let account = Account {
        id: AccountId("bench".into()),
        jwk: serde_json::json!({}),
        key_thumbprint: "bench".into(),
        contact: Vec::new(),
        status: AccountStatus::Valid,
        created_at: not_before,
        eab_key_id: None,
        initial_ip: None,
    };
    storage
        .new_account(&account)
        .await
        .context("storing the account")?;
    let reasons = [
        RevocationReason::Unspecified,
        RevocationReason::KeyCompromise,
        RevocationReason::AffiliationChanged,
        RevocationReason::Superseded,
        RevocationReason::CessationOfOperation,
        RevocationReason::PrivilegeWithdrawn,
    ];
    let next = Arc::new(AtomicU64::new(0));
    let mut writers = tokio::task::JoinSet::new();
    for _ in 0..FILL_WRITERS {
        let (sa, next, account_id) = (storage.clone(), next.clone(), account.id.clone());
        let (issuer_id, total, shards) = (issuer_id.to_owned(), args.revoked, args.shards);
        writers.spawn(async move {
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= total {
                    return anyhow::Ok(());
                }
                let order = Order {
                    id: OrderId(format!("bench-{n}")),
                    account_id: account_id.clone(),
                    status: OrderStatus::Processing,
                    identifiers: Vec::new(),
                    authz_ids: Vec::new(),
                    expires: not_after,
                    not_before: None,
                    not_after: None,
                    error: None,
                    certificate_serial: None,
                    profile: None,
                    replaces: None,
                    csr_der: None,
                    created_at: not_before,
                };
                sa.new_order_and_authzs(&order, &[])
                    .await
                    .with_context(|| format!("storing order {}", order.id))?;
                let serial = Serial(serial_hex(n));
                let crl_shard = crl_shard_of(&serial, shards);
                let cert = Certificate {
                    serial,
                    account_id: account_id.clone(),
                    order_id: order.id,
                    der: vec![0],
                    issuer_id: issuer_id.clone(),
                    identifiers: Vec::new(),
                    not_before,
                    not_after,
                    spki_sha256: "bench".into(),
                    revocation: Some(Revocation {
                        revoked_at: not_before + time::Duration::seconds((n % 86_400) as i64),
                        reason: reasons[(n % reasons.len() as u64) as usize],
                    }),
                    renew_by: None,
                    replaced_by: None,
                    crl_shard,
                };
                sa.finalize_order(&cert)
                    .await
                    .with_context(|| format!("storing certificate {}", cert.serial.0))?;
            }
        });
    }
    while let Some(done) = writers.join_next().await {
        done.context("fill task")??;
    }
    Ok(())
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1_000.0)
}

async fn bench_one(
    storage: &SqlStorage,
    issuer: &Arc<dyn CertificateIssuer>,
    args: &CrlBenchArgs,
) -> anyhow::Result<()> {
    let backend = storage.backend_name();
    let issuer_id = issuer.identity().issuer_id;
    let started = Instant::now();
    fill(storage, &issuer_id, args)
        .await
        .context("filling the database")?;
    println!(
        "{backend}: {} revoked certificates over {} shards stored through the SA in {}",
        args.revoked,
        args.shards,
        ms(started.elapsed())
    );

    let sa: Arc<dyn StorageAuthority> = Arc::new(storage.clone());
    let settings = CrlConfig {
        shards: args.shards,
        ..Default::default()
    }
    .settings()?;
    let updater = CrlUpdater::new(
        issuer.clone(),
        sa.clone(),
        Arc::new(cairn_core::SystemClock),
        settings.clone(),
    );
    let started = Instant::now();
    let stats = updater.update_all().await?;
    let total = started.elapsed();
    anyhow::ensure!(
        stats.entries as u64 == args.revoked,
        "the CRLs hold {} entries, expected {}",
        stats.entries,
        args.revoked
    );
    println!(
        "{backend}: full regeneration (CRL updater: query + build + sign + lint + store) of {} CRLs \
         ({} shards + the root's), {} entries, {} bytes: {}",
        stats.crls,
        args.shards,
        stats.entries,
        stats.bytes,
        ms(total)
    );

    // The same work again, step by step.
    let now = OffsetDateTime::now_utc().replace_nanosecond(0)?;
    let started = Instant::now();
    let revoked = sa
        .get_revoked_certificates(&issuer_id, now - settings.keep_expired)
        .await?;
    let query = started.elapsed();
    let started = Instant::now();
    let shards = group_by_shard(revoked, args.shards);
    let group = started.elapsed();
    println!(
        "{backend}: query {} ({} rows), grouping {}",
        ms(query),
        shards.iter().map(Vec::len).sum::<usize>(),
        ms(group)
    );
    println!("{backend}: shard  entries     bytes  build+sign+lint      lint    store");
    let (mut sum_sign, mut sum_lint, mut sum_store) =
        (Duration::ZERO, Duration::ZERO, Duration::ZERO);
    for (shard, entries) in shards.iter().enumerate() {
        let shard = u32::try_from(shard)?;
        let started = Instant::now();
        let der = issuer
            .sign_crl(&CrlRequest {
                issuer_id: &issuer_id,
                shard,
                number: 1_000_000,
                this_update: now,
                next_update: now + settings.validity,
                entries,
            })
            .await?;
        let sign = started.elapsed();
        // The lint alone (sign_crl ran it already; this measures its share).
        let started = Instant::now();
        let report = cairn_lint::lint_crl(
            &der,
            &cairn_lint::CrlContext {
                sharded: true,
                ..Default::default()
            },
        );
        let lint = started.elapsed();
        anyhow::ensure!(!report.has_errors(), "shard {shard} does not lint");
        let started = Instant::now();
        sa.put_crl(&StoredCrl {
            info: cairn_sa::CrlInfo {
                issuer_id: issuer_id.clone(),
                shard,
                number: 1_000_000,
                this_update: now,
                next_update: now + settings.validity,
                entries: entries.len() as u64,
            },
            der: der.clone(),
        })
        .await?;
        let store = started.elapsed();
        sum_sign += sign;
        sum_lint += lint;
        sum_store += store;
        println!(
            "{backend}: {shard:>5} {:>8} {:>9} {:>16} {:>9} {:>8}",
            entries.len(),
            der.len(),
            ms(sign),
            ms(lint),
            ms(store)
        );
    }
    println!(
        "{backend}: sums: build+sign+lint {}, of which lint {}, store {}; per shard on average {}",
        ms(sum_sign),
        ms(sum_lint),
        ms(sum_store),
        ms((query + group + sum_sign + sum_store) / args.shards)
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serials_are_distinct_positive_and_spread_over_the_shards() {
        let mut seen = std::collections::HashSet::new();
        let mut per_shard = [0u32; 16];
        for i in 0..16_000 {
            let s = serial_hex(i);
            assert_eq!(s.len(), 32);
            assert!(s.starts_with("7e"));
            assert!(seen.insert(s.clone()));
            per_shard[crl_shard_of(&Serial(s), 16) as usize] += 1;
        }
        assert!(
            per_shard.iter().all(|&n| (800..1_200).contains(&n)),
            "{per_shard:?}"
        );
    }
}
