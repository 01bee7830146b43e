//! The read path as a monitor sees it: `/health` turns 503 when a log stops checkpointing,
//! per-client rate limits on the monitoring paths (a User-Agent without contact information
//! shares the global budget), and caching headers.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use cairn_ct::CtServer;
use cairn_ct::read_limits::ReadLimits;
use common::verifier::tile_url;
use common::{Pki, base_url, chain_body, client, log_config, server_config};

async fn add(c: &reqwest::Client, base: &str, pki: &Pki, name: &str) {
    let leaf = pki.leaf(name, (2030, 6, 1), false, false);
    let r = c
        .post(format!("{base}/ct/v1/add-chain"))
        .json(&chain_body(&pki.chain(&leaf, false)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn health_is_503_once_a_log_has_not_checkpointed_recently() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new();
    let mut cfg = server_config(log_config(dir.path(), &pki));
    // An idle log checkpoints every 10 s; allow 1 s here.
    cfg.health_max_checkpoint_age_ms = 1000;
    let server = CtServer::start(&cfg).await.unwrap();
    let addr = server.local_addr();
    let c = client();
    let health = async || {
        let r = c.get(format!("http://{addr}/health")).send().await.unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    };
    assert_eq!(health().await.0, 200, "just started: checkpointed at start");
    tokio::time::sleep(std::time::Duration::from_millis(1300)).await;
    let (status, body) = health().await;
    assert_eq!(status, 503);
    assert!(body.contains("test2030: last checkpoint"), "{body}");
    // Liveness is not about checkpoints.
    let live = c.get(format!("http://{addr}/health/live")).send().await.unwrap();
    assert_eq!(live.status(), 200);
    // A submission makes the log checkpoint again.
    add(&c, &base_url(addr), &pki, "a.example").await;
    assert_eq!(health().await.0, 200);
    server.shutdown().await;
}

#[tokio::test]
async fn monitoring_paths_are_rate_limited_per_client_and_anonymous_clients_share_a_budget() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new();
    let mut cfg = server_config(log_config(dir.path(), &pki));
    // Slow refill so that the test's own pace cannot refill a bucket.
    cfg.read_limits = Some(ReadLimits {
        per_client_per_second: 1,
        per_client_burst: 3,
        anonymous_per_second: 1,
        anonymous_burst: 2,
    });
    let server = CtServer::start(&cfg).await.unwrap();
    let base = base_url(server.local_addr());
    let c = client();
    let get = async |path: &str, ua: Option<&str>| {
        let mut r = c.get(format!("{base}/{path}"));
        if let Some(ua) = ua {
            r = r.header("user-agent", ua);
        }
        let r = r.send().await.unwrap();
        let retry = r.headers().get("retry-after").is_some();
        (r.status().as_u16(), retry)
    };
    // Two anonymous clients (no User-Agent, and one without contact information) share 2.
    assert_eq!(get("checkpoint", None).await, (200, false));
    assert_eq!(get("log.v3.json", Some("curl/8.5.0")).await, (200, false));
    assert_eq!(get("checkpoint", None).await, (429, true));
    assert_eq!(get("vkeys", Some("Go-http-client/1.1")).await, (429, true));
    // A monitor that says who it is has its own budget of 3, and another one too.
    let ua = "monitor/1.0 (+https://monitor.example.org)";
    for _ in 0..3 {
        assert_eq!(get("checkpoint", Some(ua)).await.0, 200);
    }
    assert_eq!(get("checkpoint", Some(ua)).await, (429, true));
    assert_eq!(get("checkpoint", Some("crawler ops@example.net")).await.0, 200);
    // Submissions are not read paths: never limited here.
    add(&c, &base, &pki, "b.example").await;
    server.shutdown().await;
}

#[tokio::test]
async fn static_files_carry_caching_headers() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new();
    let server = CtServer::start(&server_config(log_config(dir.path(), &pki)))
        .await
        .unwrap();
    let base = base_url(server.local_addr());
    let c = client();
    add(&c, &base, &pki, "c.example").await;
    let cache = async |url: String| {
        let r = c.get(url).send().await.unwrap();
        let cc = r
            .headers()
            .get("cache-control")
            .map(|v| v.to_str().unwrap().to_owned());
        (r.status().as_u16(), cc)
    };
    let immutable = Some("public, max-age=604800, immutable".to_owned());
    // The checkpoint changes every period: revalidate every time.
    assert_eq!(
        cache(format!("{base}/checkpoint")).await,
        (200, Some("no-cache, max-age=0".into()))
    );
    // A tile (partial ones too) never changes once served.
    assert_eq!(cache(tile_url(&base, "data", 0, 1)).await, (200, immutable.clone()));
    assert_eq!(cache(tile_url(&base, "0", 0, 1)).await, (200, immutable));
    // A tile beyond the tree is a 404 that must not be cached as immutable.
    assert_eq!(cache(tile_url(&base, "data", 0, 2)).await, (404, None));
    assert_eq!(
        cache(format!("{base}/log.v3.json")).await,
        (200, Some("max-age=300".into()))
    );
    server.shutdown().await;
}
