//! `cairn bench dap`: sustained upload throughput at the leader (reports durably accepted per
//! second, over HTTP, many reports per request) and end-to-end aggregation throughput (reports
//! aggregated per second through leader and helper), on SQLite or PostgreSQL. Leader and
//! helper run in this process on loopback; reports are prepared before the clock starts.

use anyhow::{Context, bail};
use cairn_dap_aggregator::{
    Aggregator, AggregatorParameters, AggregatorRole, AggregatorTask, BearerToken, Datastore,
    DatastoreKey, TokenHash,
};
use cairn_dap_core::{
    AggregateResult, Clock, HpkeKeypair, Measurement, Protocol, RealClock, TaskParameters,
    VdafInstance,
};
use cairn_dap_messages::{
    BatchMode, Duration, Encode, HpkeConfigId, Interval, Query, TaskId, Time, UploadRequest, dap09,
    media_type,
};
use std::sync::Arc;
use std::time::Instant;

/// Flags of `cairn bench dap`.
#[derive(Debug, clap::Args)]
pub(crate) struct DapArgs {
    /// `sqlite` (a fresh file in a temporary directory) or `postgres` (fresh schemas in the
    /// database named by `CAIRN_BENCH_POSTGRES_URL`).
    #[arg(long, default_value = "sqlite")]
    database: String,
    /// Prio3Count reports to upload and aggregate.
    #[arg(long, default_value_t = 20_000)]
    reports: usize,
    /// Reports per upload request (DAP-18; a DAP-09 request carries one report).
    #[arg(long, default_value_t = 100)]
    batch: usize,
    /// The task's protocol: `dap-18`, or `dap-09` (one report per `PUT`, VDAF-08).
    #[arg(long, default_value = "dap-18")]
    protocol: Protocol,
    /// Concurrent upload requests.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// Reports per aggregation job.
    #[arg(long, default_value_t = 500)]
    job_size: usize,
    /// Concurrent aggregation job drivers.
    #[arg(long, default_value_t = 4)]
    drivers: usize,
    /// The most MiB of pages each datastore's SQLite writer keeps cached (0: SQLite's default,
    /// about 2 MB); the default is `cairn serve`'s.
    #[arg(long, default_value_t = cairn_dap_aggregator::DEFAULT_WRITER_CACHE_MIB)]
    writer_cache_mib: u64,
    /// Run the garbage collector (every second, one-day report expiry) and the HPKE key
    /// rotator (every second, keys rotated every 10 s) at both aggregators meanwhile.
    #[arg(long)]
    operations: bool,
}

struct Backend {
    urls: (String, String),
    /// PostgreSQL: the admin URL and the schemas to drop when done.
    schemas: Option<(String, Vec<String>)>,
    _dir: tempfile::TempDir,
}

impl Backend {
    /// Drops the benchmark's PostgreSQL schemas (SQLite's files go with the directory).
    async fn clean_up(self) -> anyhow::Result<()> {
        use sqlx::{AssertSqlSafe, Connection};
        if let Some((base, schemas)) = self.schemas {
            let mut admin = sqlx::PgConnection::connect(&base).await?;
            for s in schemas {
                sqlx::query(AssertSqlSafe(format!("DROP SCHEMA {s} CASCADE")))
                    .execute(&mut admin)
                    .await?;
            }
        }
        Ok(())
    }
}

async fn backend(kind: &str) -> anyhow::Result<Backend> {
    let dir = tempfile::tempdir()?;
    let mut schemas = None;
    let urls = match kind {
        "sqlite" => {
            let url = |n: &str| format!("sqlite://{}?mode=rwc", dir.path().join(n).display());
            (url("leader.db"), url("helper.db"))
        }
        "postgres" => {
            use sqlx::{AssertSqlSafe, Connection};
            let base = std::env::var("CAIRN_BENCH_POSTGRES_URL")
                .context("set CAIRN_BENCH_POSTGRES_URL for --database postgres")?;
            let mut admin = sqlx::PgConnection::connect(&base).await?;
            let stamp = RealClock.now();
            let mut urls = Vec::new();
            let mut names = Vec::new();
            for role in ["leader", "helper"] {
                let schema = format!("cairn_bench_{role}_{stamp}_{}", std::process::id());
                sqlx::query(AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
                    .execute(&mut admin)
                    .await?;
                let sep = if base.contains('?') { '&' } else { '?' };
                urls.push(format!("{base}{sep}options=-csearch_path%3D{schema}"));
                names.push(schema);
            }
            schemas = Some((base, names));
            (urls[0].clone(), urls[1].clone())
        }
        other => bail!("--database must be sqlite or postgres, not {other}"),
    };
    Ok(Backend {
        urls,
        schemas,
        _dir: dir,
    })
}

async fn serve(agg: Aggregator) -> anyhow::Result<String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let app = cairn_dap_aggregator::router(agg, None);
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(format!("http://{addr}/"))
}

/// Runs the benchmark and prints its figures.
pub(crate) async fn run(args: DapArgs) -> anyhow::Result<()> {
    let b = backend(&args.database).await?;
    let key = DatastoreKey::from_base64url(&DatastoreKey::generate_base64url()?)?;
    let params = AggregatorParameters {
        max_aggregation_job_size: args.job_size,
        gc_interval_secs: 1,
        key_rotator: cairn_dap_aggregator::KeyRotatorConfig {
            enabled: args.operations,
            interval_secs: 1,
            propagation_delay_secs: 10,
            active_secs: 10,
            expired_grace_secs: 600,
        },
        ..Default::default()
    };
    let mut aggs = Vec::new();
    for (url, role) in [
        (&b.urls.0, AggregatorRole::Leader),
        (&b.urls.1, AggregatorRole::Helper),
    ] {
        let ds = Datastore::connect_with_cache(url, key.clone(), args.writer_cache_mib).await?;
        aggs.push(Aggregator::new(ds, Arc::new(RealClock), role, params.clone()).await?);
    }
    let (leader, helper) = (aggs[0].clone(), aggs[1].clone());
    let task_params = TaskParameters {
        task_id: TaskId::from_bytes(*b"cairn-bench-dap-prio3count-task!"),
        leader_endpoint: serve(leader.clone()).await?,
        helper_endpoint: serve(helper.clone()).await?,
        time_precision: 3600,
        min_batch_size: 1,
        batch_mode: BatchMode::TimeInterval,
        vdaf: VdafInstance::Prio3Count,
        task_info: "bench".into(),
        task_interval: None,
        max_batch_size: None,
        differential_privacy: None,
        protocol: args.protocol,
    };
    let collector_keys = HpkeKeypair::generate(HpkeConfigId(1));
    let token = "bench-aggregator-token";
    for (agg, role) in [
        (&leader, AggregatorRole::Leader),
        (&helper, AggregatorRole::Helper),
    ] {
        agg.add_task(&AggregatorTask {
            parameters: task_params.clone(),
            role,
            vdaf_verify_key: [9; 32],
            collector_hpke_config: collector_keys.config().clone(),
            aggregator_auth_token: (role == AggregatorRole::Leader)
                .then(|| BearerToken::new(token)),
            aggregator_auth_token_hash: (role == AggregatorRole::Helper)
                .then(|| TokenHash::of(token)),
            collector_auth_token_hash: (role == AggregatorRole::Leader)
                .then(|| TokenHash::of("bench-collector-token")),
            report_expiry_age: args.operations.then_some(86_400),
        })
        .await?;
    }
    let background: Vec<_> = if args.operations {
        [&leader, &helper]
            .iter()
            .flat_map(|a| [a.spawn_garbage_collector(), a.spawn_key_rotator()])
            .collect()
    } else {
        Vec::new()
    };
    let http = reqwest::Client::new();
    let client = cairn_dap_client::Client::new(task_params.clone(), http.clone()).await?;

    // Prepare every report before timing (sharding and HPKE are the clients' cost).
    let now = RealClock.now();
    let n = args.reports;
    let client = Arc::new(client);
    let protocol = args.protocol;
    let bodies = {
        let client = client.clone();
        let batch = args.batch.max(1);
        let params = task_params.clone();
        tokio::task::spawn_blocking(move || -> anyhow::Result<Vec<Vec<u8>>> {
            let reports = (0..n)
                .map(|i| client.prepare_report(&Measurement::Count(i % 3 == 0), now))
                .collect::<Result<Vec<_>, _>>()?;
            if protocol == Protocol::Dap09 {
                // DAP-09: one report per request, its time in seconds.
                return reports
                    .into_iter()
                    .map(|r| {
                        Ok(dap09::Report {
                            metadata: dap09::ReportMetadata {
                                id: r.metadata.id,
                                time_seconds: params.seconds(r.metadata.time),
                            },
                            public_share: r.public_share,
                            leader_encrypted_input_share: r.leader_encrypted_input_share,
                            helper_encrypted_input_share: r.helper_encrypted_input_share,
                        }
                        .get_encoded()?)
                    })
                    .collect();
            }
            reports
                .chunks(batch)
                .map(|c| {
                    Ok(UploadRequest {
                        reports: c.to_vec(),
                    }
                    .get_encoded()?)
                })
                .collect()
        })
        .await??
    };
    let expected = u64::try_from((0..n).filter(|i| i % 3 == 0).count())?;

    // Upload phase.
    let url = TaskParameters::url(
        &task_params.leader_endpoint,
        &format!("tasks/{}/reports", task_params.task_id),
    );
    let queue = Arc::new(std::sync::Mutex::new(bodies));
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..args.concurrency.max(1) {
        let (queue, http, url) = (queue.clone(), http.clone(), url.clone());
        workers.push(tokio::spawn(async move {
            loop {
                let body = match queue.lock() {
                    Ok(mut q) => q.pop(),
                    Err(_) => None,
                };
                let Some(body) = body else { break };
                let req = match protocol {
                    Protocol::Dap09 => http
                        .put(&url)
                        .header("content-type", dap09::media_type::REPORT),
                    Protocol::Dap18 => http
                        .post(&url)
                        .header("content-type", media_type::UPLOAD_REQ),
                };
                let resp = req.body(body).send().await?;
                if !resp.status().is_success() {
                    bail!("upload refused: {}", resp.status());
                }
                let errors = resp.bytes().await?;
                // An empty UploadErrors encodes as an empty list: 4 zero length bytes at most.
                if errors.len() > 4 {
                    bail!("some reports were refused");
                }
            }
            Ok::<_, anyhow::Error>(())
        }));
    }
    for w in workers {
        w.await??;
    }
    let upload_secs = started.elapsed().as_secs_f64();
    let stored = leader
        .datastore()
        .count_client_reports(&task_params.task_id)
        .await?;
    if stored != u64::try_from(n)? {
        bail!("leader stored {stored} of {n} reports");
    }

    // Aggregation phase: create jobs, then drive them with concurrent drivers until none is
    // pending.
    let started = Instant::now();
    let cpu_before = process_cpu_secs();
    leader.create_aggregation_jobs().await?;
    let mut drivers = Vec::new();
    for _ in 0..args.drivers.max(1) {
        let leader = leader.clone();
        let task_id = task_params.task_id;
        drivers.push(tokio::spawn(async move {
            loop {
                if leader
                    .datastore()
                    .count_pending_aggregation_jobs(&task_id)
                    .await?
                    == 0
                {
                    break;
                }
                leader.run_aggregation_jobs_once().await?;
            }
            Ok::<_, anyhow::Error>(())
        }));
    }
    for d in drivers {
        d.await??;
    }
    let aggregate_secs = started.elapsed().as_secs_f64();
    let aggregate_cpu = process_cpu_secs()
        .zip(cpu_before)
        .map(|(after, b)| after - b);

    // Check the result through a collection.
    let drivers = leader.spawn_drivers(std::time::Duration::from_millis(100));
    let collector = cairn_dap_collector::Collector::new(
        task_params.clone(),
        collector_keys,
        "bench-collector-token".into(),
        http,
    );
    let p = task_params.time_precision;
    let query = Query::TimeInterval {
        batch_interval: Interval::new(Time(now / p), Duration(1))
            .context("batch interval overflows")?,
    };
    let c = collector
        .collect(query, 120, std::time::Duration::from_millis(250))
        .await?;
    drivers.abort();
    for task in background {
        task.abort();
    }
    if c.aggregate_result != AggregateResult::Integer(expected)
        || c.report_count != u64::try_from(n)?
    {
        bail!(
            "collected {:?} over {} reports, expected {expected} over {n}",
            c.aggregate_result,
            c.report_count
        );
    }
    #[allow(clippy::cast_precision_loss)] // report counts are far below 2^52
    let per_sec = |secs: f64| n as f64 / secs;
    println!(
        "backend={} protocol={} reports={n} batch={} concurrency={} job_size={} drivers={} \
         operations={}",
        args.database,
        args.protocol,
        if args.protocol == Protocol::Dap09 {
            1
        } else {
            args.batch
        },
        args.concurrency,
        args.job_size,
        args.drivers,
        args.operations
    );
    println!(
        "upload: {:.0} reports/s durably accepted ({upload_secs:.2} s)",
        per_sec(upload_secs)
    );
    println!(
        "aggregation: {:.0} reports/s through leader + helper ({aggregate_secs:.2} s)",
        per_sec(aggregate_secs)
    );
    println!(
        "collected: {} reports, aggregate {:?} (expected {expected})",
        c.report_count, c.aggregate_result
    );
    // The floor, measured in this run: what every report's aggregation must cost whatever the
    // service around it does (two HPKE opens, the VDAF's preparation at both aggregators).
    let floor = tokio::task::spawn_blocking(move || floor_per_report(n.clamp(1, 5_000))).await??;
    #[allow(clippy::cast_precision_loss)] // report counts are far below 2^52
    let us = |secs: f64| secs * 1e6 / n as f64;
    if let Some(cpu) = aggregate_cpu {
        println!(
            "aggregation CPU (leader + helper + drivers, this process): {:.1} µs per report",
            us(cpu)
        );
    }
    println!(
        "floor on one core: HPKE open of both input shares {:.1} µs, VDAF preparation \
         (leader init, helper init, leader continue) {:.1} µs: {:.1} µs per report, \
         {:.0} reports/s per core",
        floor.hpke * 1e6,
        floor.vdaf * 1e6,
        (floor.hpke + floor.vdaf) * 1e6,
        1.0 / (floor.hpke + floor.vdaf)
    );
    leader.datastore().close().await;
    helper.datastore().close().await;
    b.clean_up().await
}

/// The process's CPU time so far (user + system, all threads), from `/proc/self/stat`; `None`
/// where that file is not there.
fn process_cpu_secs() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name (field 2) may hold spaces; the fields after it are numbers.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line: indexes 11 and 12 after the name.
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // USER_HZ: 100 on every Linux architecture the kernel reports in.
    #[allow(clippy::cast_precision_loss)] // tick counts are far below 2^52
    Some(ticks as f64 / 100.0)
}

/// Seconds per report of the two costs no aggregator can avoid.
struct Floor {
    hpke: f64,
    vdaf: f64,
}

/// Times, on this thread, the HPKE opening of both input shares and the Prio3Count preparation
/// of both aggregators (the ping-pong steps `cairn_dap_core` runs for the aggregator) for `n`
/// reports sharded and sealed beforehand.
fn floor_per_report(n: usize) -> anyhow::Result<Floor> {
    use cairn_dap_core::HpkeApplicationInfo;
    use cairn_dap_core::hpke::{Label, seal};
    use cairn_dap_messages::Role;
    let vdaf = VdafInstance::Prio3Count;
    let ctx = b"dap-18 cairn-bench-dap-prio3count-task!".to_vec();
    let verify_key = [7u8; 32];
    let (leader_key, helper_key) = (
        HpkeKeypair::generate(HpkeConfigId(1)),
        HpkeKeypair::generate(HpkeConfigId(2)),
    );
    let info_to = |role| HpkeApplicationInfo::new(Label::InputShare, Role::Client, role);
    let (to_leader, to_helper) = (info_to(Role::Leader), info_to(Role::Helper));
    let mut reports = Vec::with_capacity(n);
    for i in 0..n {
        let mut nonce = [0u8; 16];
        nonce[..8].copy_from_slice(&(i as u64).to_be_bytes());
        let shards = vdaf.shard(&ctx, &Measurement::Count(i % 3 == 0), &nonce)?;
        let leader = seal(
            leader_key.config(),
            &to_leader,
            &shards.leader_input_share,
            &nonce,
        )?;
        let helper = seal(
            helper_key.config(),
            &to_helper,
            &shards.helper_input_share,
            &nonce,
        )?;
        reports.push((nonce, shards.public_share, leader, helper));
    }
    let started = Instant::now();
    let mut opened = Vec::with_capacity(n);
    for (nonce, _, leader, helper) in &reports {
        opened.push((
            leader_key.open(&to_leader, leader, nonce)?,
            helper_key.open(&to_helper, helper, nonce)?,
        ));
    }
    let hpke = started.elapsed().as_secs_f64();
    let started = Instant::now();
    for ((nonce, public, _, _), (leader_share, helper_share)) in reports.iter().zip(&opened) {
        let l = vdaf.leader_initialized(&verify_key, &ctx, &[], nonce, public, leader_share)?;
        let h = vdaf.helper_initialized(
            &verify_key,
            &ctx,
            &[],
            nonce,
            public,
            helper_share,
            &l.outbound,
        )?;
        vdaf.leader_continued(&ctx, &[], &l.state, &h.outbound)?;
    }
    let vdaf_secs = started.elapsed().as_secs_f64();
    #[allow(clippy::cast_precision_loss)] // report counts are far below 2^52
    let per = |secs: f64| secs / n as f64;
    Ok(Floor {
        hpke: per(hpke),
        vdaf: per(vdaf_secs),
    })
}
