//! Durable add-chain throughput and latency on loopback (ignored by default; run with
//! `cargo test -p cairn-ct --release --test bench -- --ignored --nocapture`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Pki, base_url, chain_body, client, log_config, server_config};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread")]
#[ignore = "benchmark"]
async fn bench_add_chain() {
    const TOTAL: usize = 20_000;
    const CONCURRENCY: usize = 2048;
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new();
    let mut cfg = log_config(dir.path(), &pki);
    cfg.period_ms = 1000;
    cfg.pool_size = 100_000;
    let server = cairn_ct::CtServer::start(&server_config(cfg))
        .await
        .unwrap();
    let base = base_url(server.local_addr());
    // Pre-generate certificates so the client side does not dominate.
    let bodies: Vec<serde_json::Value> = (0..TOTAL)
        .map(|i| {
            let leaf = pki.leaf(&format!("b{i}.example"), (2030, 6, 1), false, false);
            chain_body(&pki.chain(&leaf, false))
        })
        .collect();
    let bodies = Arc::new(bodies);
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let c = client();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..CONCURRENCY {
        let (c, base, bodies, next) = (c.clone(), base.clone(), bodies.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= bodies.len() {
                    return lat;
                }
                let t = Instant::now();
                let r = c
                    .post(format!("{base}/ct/v1/add-chain"))
                    .json(&bodies[i])
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 200);
                lat.push(t.elapsed());
            }
        }));
    }
    let mut lat: Vec<Duration> = Vec::new();
    for t in tasks {
        lat.extend(t.await.unwrap());
    }
    let elapsed = started.elapsed();
    lat.sort();
    let p = |q: f64| lat[((lat.len() as f64 * q) as usize).min(lat.len() - 1)];
    println!(
        "cairn-ct bench: {TOTAL} durable add-chain in {:.2}s = {:.0}/s; latency P50 {:?} P99 {:?} (period 1 s, {CONCURRENCY} clients)",
        elapsed.as_secs_f64(),
        TOTAL as f64 / elapsed.as_secs_f64(),
        p(0.50),
        p(0.99)
    );
    assert_eq!(server.logs()[0].tree_size(), TOTAL as u64);
    server.shutdown().await;
}
