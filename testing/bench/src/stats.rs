//! `cairn bench stats`: what the public statistics page costs with N certificates (default
//! 1,000,000). Fills a fresh database (SQLite in a temporary directory, and PostgreSQL in a fresh
//! schema when a URL is given) through the storage authority — each certificate's order, then
//! `finalize_order`, which also keeps the statistics counters — with issuance spread over the
//! last year, 90-day certificates, four names per registered domain and 1 % issued revoked.
//! Also stores a full table of SLI events (90 days of every listener's endpoints) and a year of
//! CT log sizes for two logs, as a long-running CA has them. Then times the page's reads (the
//! ones `/stats` makes once a minute: `get_issuance_stats`, `get_sli_counts`,
//! `get_ct_log_sizes`) and the rebuild of the counters from the certificates
//! (`recompute_stats`).

use anyhow::Context;
use cairn_core::{
    Account, AccountId, AccountStatus, Certificate, Identifier, Order, OrderId, OrderStatus,
    Revocation, RevocationReason, Serial,
};
use cairn_sa::{SliCount, SqlStorage, StatsStorage, StorageAuthority};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use time::OffsetDateTime;

/// Concurrent writers filling the database (as `cairn bench crl`).
const FILL_WRITERS: usize = 512;

/// Timed runs of the stats query.
const QUERY_RUNS: usize = 50;

/// Flags of `cairn bench stats`.
#[derive(Debug, clap::Args)]
pub(crate) struct StatsBenchArgs {
    /// Certificates to store.
    #[arg(long, default_value_t = 1_000_000)]
    certificates: u64,
    /// Also run against PostgreSQL at this URL (a fresh schema is created and dropped).
    #[arg(long, env = "CAIRN_BENCH_POSTGRES_URL")]
    postgres_url: Option<String>,
    /// Skip SQLite (PostgreSQL only).
    #[arg(long)]
    no_sqlite: bool,
}

pub(crate) async fn run(args: StatsBenchArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.certificates > 0, "--certificates must be positive");
    if !args.no_sqlite {
        let dir = tempfile::tempdir().context("temporary directory")?;
        let sqlite = SqlStorage::open_sqlite_in(dir.path())
            .await
            .context("opening SQLite")?;
        bench_one("sqlite", &sqlite, &args).await?;
        sqlite.close().await;
    }
    if let Some(pg) = &args.postgres_url {
        let schema = crate::pg_schema::BenchSchema::create(pg, "cairn_bench_stats").await?;
        let result = async {
            // The fill does not wait for each commit's WAL flush (`synchronous_commit = off`
            // for this run's connections only): a crash could lose the last fill transactions,
            // which a benchmark does not care about, and what is timed are reads. Filling a
            // million certificates otherwise takes over half an hour on a 2-core VM.
            let url = format!("{}%20-csynchronous_commit%3Doff", schema.url);
            let storage = SqlStorage::connect(&url)
                .await
                .context("opening PostgreSQL")?;
            let r = bench_one("postgres", &storage, &args).await;
            storage.close().await;
            r
        }
        .await;
        schema.drop().await?;
        result?;
    }
    Ok(())
}

async fn bench_one(
    backend: &str,
    storage: &SqlStorage,
    args: &StatsBenchArgs,
) -> anyhow::Result<()> {
    let started = Instant::now();
    fill(storage, args.certificates).await?;
    let fill = started.elapsed();
    println!(
        "{backend}: stored {} certificates through the SA in {:.1} s ({:.0} /s, counters kept)",
        args.certificates,
        fill.as_secs_f64(),
        args.certificates as f64 / fill.as_secs_f64()
    );
    let now = OffsetDateTime::now_utc();
    fill_sli_and_ct(storage, now.date()).await?;
    let since = now.date() - time::Duration::days(730);
    let (p50, max, stats) = time_query(storage, now, since).await?;
    println!(
        "{backend}: stats page reads: median {} / max {} over {QUERY_RUNS} runs; {} active \
         certificates, {} active domains, {} days of issuance",
        ms(p50),
        ms(max),
        stats.active_certificates,
        stats.active_domains,
        stats.daily_issuance.len()
    );
    let started = Instant::now();
    storage
        .recompute_stats(now)
        .await
        .context("recomputing the counters")?;
    println!(
        "{backend}: rebuilding the counters from the certificates: {}",
        ms(started.elapsed())
    );
    let (p50, max, again) = time_query(storage, now, since).await?;
    anyhow::ensure!(
        (again.active_certificates, again.active_domains)
            == (stats.active_certificates, stats.active_domains),
        "the rebuilt counters differ: {again:?}"
    );
    println!(
        "{backend}: stats query after the rebuild: median {} / max {}",
        ms(p50),
        ms(max)
    );
    Ok(())
}

async fn time_query(
    storage: &SqlStorage,
    now: OffsetDateTime,
    since: time::Date,
) -> anyhow::Result<(Duration, Duration, cairn_sa::IssuanceStats)> {
    let mut times = Vec::with_capacity(QUERY_RUNS);
    let mut last = None;
    for i in 0..QUERY_RUNS + 5 {
        let started = Instant::now();
        let stats = storage
            .get_issuance_stats(now, since)
            .await
            .context("stats query")?;
        let (slis, _) = storage
            .get_sli_counts(now.date() - time::Duration::days(SLI_DAYS - 1))
            .await
            .context("SLI query")?;
        let sizes = storage
            .get_ct_log_sizes(now.date() - time::Duration::days(364))
            .await
            .context("CT log sizes query")?;
        anyhow::ensure!(
            slis.len() == SLI_ENDPOINTS && sizes.len() == 2 * 365,
            "{} SLI rows, {} CT sizes",
            slis.len(),
            sizes.len()
        );
        if i >= 5 {
            times.push(started.elapsed());
        }
        last = Some(stats);
    }
    times.sort();
    let stats = last.context("no run")?;
    Ok((times[times.len() / 2], times[times.len() - 1], stats))
}

/// Days of SLI events the page reads.
const SLI_DAYS: i64 = 90;

/// Endpoints with SLI events (about what `cairn serve`'s listeners route).
const SLI_ENDPOINTS: usize = 30;

/// Stores 90 days of SLI events for [`SLI_ENDPOINTS`] endpoints and a year of two CT logs'
/// sizes, through the storage authority.
async fn fill_sli_and_ct(storage: &SqlStorage, today: time::Date) -> anyhow::Result<()> {
    let counts: Vec<SliCount> = (0..SLI_ENDPOINTS)
        .map(|i| SliCount {
            listener: "acme".into(),
            endpoint: format!("/bench/endpoint-{i}"),
            valid: 100_000,
            errors: (i % 3) as u64,
        })
        .collect();
    for ago in 0..SLI_DAYS {
        storage
            .add_sli_counts(today - time::Duration::days(ago), &counts)
            .await
            .context("storing SLI events")?;
    }
    for ago in 0..365_i64 {
        for log in ["bench-a", "bench-b"] {
            let size = u64::try_from((365 - ago) * 50_000).unwrap_or(0);
            storage
                .put_ct_log_size(today - time::Duration::days(ago), log, size)
                .await
                .context("storing a CT log size")?;
        }
    }
    Ok(())
}

/// Stores `total` certificates through the storage authority, as the CA would: each one's order
/// (already `processing`), then `finalize_order`.
async fn fill(storage: &SqlStorage, total: u64) -> anyhow::Result<()> {
    let now = OffsetDateTime::now_utc();
    let account = Account {
        id: AccountId("bench".into()),
        jwk: serde_json::json!({}),
        key_thumbprint: "bench".into(),
        contact: Vec::new(),
        status: AccountStatus::Valid,
        created_at: now - time::Duration::days(400),
        eab_key_id: None,
        initial_ip: None,
    };
    storage
        .new_account(&account)
        .await
        .context("storing the account")?;
    let next = Arc::new(AtomicU64::new(0));
    let domains = (total / 4).max(1);
    let mut writers = tokio::task::JoinSet::new();
    for _ in 0..FILL_WRITERS {
        let (sa, next, account_id) = (storage.clone(), next.clone(), account.id.clone());
        writers.spawn(async move {
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= total {
                    return anyhow::Ok(());
                }
                // Spread over the last 365 days and over the hours of each day (7,919 is prime
                // to 86,400), so every day and expiry hour has its counter rows.
                let not_before = now
                    - time::Duration::days((n % 365) as i64)
                    - time::Duration::seconds(((n / 365) * 7_919 % 86_400) as i64);
                let not_after = not_before + time::Duration::days(90);
                let domain = n % domains;
                let identifiers = vec![
                    Identifier::dns(format!("d{domain}.example")),
                    Identifier::dns(format!("www{n}.d{domain}.example")),
                ];
                let order = Order {
                    id: OrderId(format!("bench-{n}")),
                    account_id: account_id.clone(),
                    status: OrderStatus::Processing,
                    identifiers: identifiers.clone(),
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
                let cert = Certificate {
                    serial: Serial(format!("7e{n:030x}")),
                    account_id: account_id.clone(),
                    order_id: order.id,
                    der: vec![0],
                    issuer_id: "bench".into(),
                    identifiers,
                    not_before,
                    not_after,
                    spki_sha256: "bench".into(),
                    revocation: (n % 100 == 7).then_some(Revocation {
                        revoked_at: not_before,
                        reason: RevocationReason::Superseded,
                    }),
                    renew_by: None,
                    replaced_by: None,
                    crl_shard: 0,
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
    format!("{:.2} ms", d.as_secs_f64() * 1_000.0)
}
