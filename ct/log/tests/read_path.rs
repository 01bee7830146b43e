//! The read path as a monitor sees it: `/health` turns 503 when a log stops checkpointing,
//! per-client rate limits on the monitoring paths (a User-Agent without contact information
//! shares the global budget), caching headers, and the optional RFC 6962 read endpoints
//! checked against the checkpoint and `cairn-tlog`'s own proofs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use cairn_ct::CtServer;
use cairn_ct::read_limits::ReadLimits;
use cairn_tlog::checkpoint::{key_id, verify_checkpoint};
use cairn_tlog::consistency::{self, tree_hash};
use cairn_tlog::inclusion;
use cairn_tlog::merkle::{Hash, leaf_hash, sha256};
use common::verifier::tile_url;
use common::{Pki, base_url, client, get_checkpoint, log_config, server_config};

async fn add(_: &reqwest::Client, base: &str, pki: &Pki, tag: &str) {
    common::add_many(base, pki, tag, 1).await;
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
    let live = c
        .get(format!("http://{addr}/health/live"))
        .send()
        .await
        .unwrap();
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
    assert_eq!(
        get("checkpoint", Some("crawler ops@example.net")).await.0,
        200
    );
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
    assert_eq!(
        cache(tile_url(&base, "data", 0, 1)).await,
        (200, immutable.clone())
    );
    assert_eq!(cache(tile_url(&base, "0", 0, 1)).await, (200, immutable));
    // A tile beyond the tree is a 404 that must not be cached as immutable.
    assert_eq!(cache(tile_url(&base, "data", 0, 2)).await, (404, None));
    assert_eq!(
        cache(format!("{base}/log.v3.json")).await,
        (200, Some("max-age=300".into()))
    );
    // The RFC 6962 read endpoints are off by default.
    assert_eq!(cache(format!("{base}/ct/v1/get-sth")).await.0, 404);
    server.shutdown().await;
}

async fn get_json(c: &reqwest::Client, url: String) -> (u16, serde_json::Value) {
    let r = c.get(url).send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(serde_json::Value::Null))
}

fn b64_hashes(v: &serde_json::Value) -> Vec<Hash> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|h| B64.decode(h.as_str().unwrap()).unwrap().try_into().unwrap())
        .collect()
}

fn u24(data: &[u8]) -> Vec<u8> {
    let mut out = (data.len() as u32).to_be_bytes()[1..].to_vec();
    out.extend_from_slice(data);
    out
}

#[tokio::test]
async fn rfc6962_read_endpoints_agree_with_the_checkpoint_and_the_tlog_proofs() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new();
    let mut cfg = server_config(log_config(dir.path(), &pki));
    cfg.rfc6962_read_endpoints = true;
    let server = CtServer::start(&cfg).await.unwrap();
    let base = base_url(server.local_addr());
    let spki = server.logs()[0].public_key_der().to_vec();
    let c = client();
    // Across a tile boundary.
    common::add_many(&base, &pki, "e", 300).await;

    // get-sth is the checkpoint: same size, root, timestamp and RFC 6962 signature bytes.
    let (status, sth) = get_json(&c, format!("{base}/ct/v1/get-sth")).await;
    assert_eq!(status, 200);
    let note = get_checkpoint(&c, &base).await;
    let signed = verify_checkpoint(&note, common::ORIGIN, &spki).unwrap();
    assert_eq!(sth["tree_size"], 300);
    assert_eq!(sth["timestamp"], signed.timestamp);
    assert_eq!(sth["sha256_root_hash"], B64.encode(signed.checkpoint.root));
    let mut blob = key_id(common::ORIGIN, &sha256(&spki)).to_vec();
    blob.extend_from_slice(&signed.timestamp.to_be_bytes());
    blob.extend_from_slice(
        &B64.decode(sth["tree_head_signature"].as_str().unwrap())
            .unwrap(),
    );
    assert!(
        note.contains(&B64.encode(&blob)),
        "signature differs from the checkpoint's"
    );

    // get-entries: one data tile at most per answer; the leaves hash to the root.
    let (_, first) = get_json(&c, format!("{base}/ct/v1/get-entries?start=0&end=299")).await;
    let (_, second) = get_json(&c, format!("{base}/ct/v1/get-entries?start=256&end=400")).await;
    let entries: Vec<_> = first["entries"]
        .as_array()
        .unwrap()
        .iter()
        .chain(second["entries"].as_array().unwrap())
        .cloned()
        .collect();
    assert_eq!(first["entries"].as_array().unwrap().len(), 256);
    assert_eq!(entries.len(), 300);
    let leaves: Vec<Hash> = entries
        .iter()
        .map(|e| leaf_hash(&B64.decode(e["leaf_input"].as_str().unwrap()).unwrap()))
        .collect();
    assert_eq!(tree_hash(&leaves), signed.checkpoint.root);
    // An x509_entry's extra_data is its chain: the intermediate, then the root.
    let chain = [u24(pki.inter.der()), u24(pki.root.der())].concat();
    assert_eq!(entries[0]["extra_data"], B64.encode(u24(&chain)));

    // get-sth-consistency is the library's proof, and verifies.
    for (m, n) in [(3u64, 300u64), (256, 300), (1, 2), (0, 300), (300, 300)] {
        let (status, p) = get_json(
            &c,
            format!("{base}/ct/v1/get-sth-consistency?first={m}&second={n}"),
        )
        .await;
        assert_eq!(status, 200);
        let proof = b64_hashes(&p["consistency"]);
        assert_eq!(
            proof,
            consistency::prove(m as usize, &leaves[..n as usize]).unwrap()
        );
        let (old, new) = (
            tree_hash(&leaves[..m as usize]),
            tree_hash(&leaves[..n as usize]),
        );
        assert!(consistency::verify(m, &old, n, &new, &proof));
    }

    // get-proof-by-hash is the library's audit path, in the tree size asked for.
    for (index, size) in [(5usize, 300u64), (0, 1), (299, 300), (100, 257)] {
        let hash = B64.encode(leaves[index]);
        let url = reqwest::Url::parse_with_params(
            &format!("{base}/ct/v1/get-proof-by-hash"),
            &[("hash", hash.as_str()), ("tree_size", &size.to_string())],
        )
        .unwrap();
        let (status, p) = get_json(&c, url.to_string()).await;
        assert_eq!(status, 200, "{index} in {size}: {p}");
        assert_eq!(p["leaf_index"], index);
        let path = b64_hashes(&p["audit_path"]);
        assert_eq!(
            path,
            inclusion::prove(index, &leaves[..size as usize]).unwrap()
        );
        let root = tree_hash(&leaves[..size as usize]);
        assert!(inclusion::verify(
            index as u64,
            size,
            &leaves[index],
            &path,
            &root
        ));
    }

    // Client mistakes are 400 (404 for an unknown hash), never 500.
    let unknown = reqwest::Url::parse_with_params(
        &format!("{base}/ct/v1/get-proof-by-hash"),
        &[
            ("hash", B64.encode([7u8; 32]).as_str()),
            ("tree_size", "300"),
        ],
    )
    .unwrap();
    assert_eq!(get_json(&c, unknown.to_string()).await.0, 404);
    for q in [
        "get-sth-consistency?first=5&second=3",
        "get-sth-consistency?first=1&second=301",
        "get-sth-consistency?first=x&second=3",
        "get-entries?start=300&end=301",
        "get-entries?start=5&end=4",
        "get-entries",
        "get-proof-by-hash?hash=AAAA&tree_size=3",
        "get-proof-by-hash?hash=&tree_size=0",
    ] {
        assert_eq!(
            get_json(&c, format!("{base}/ct/v1/{q}")).await.0,
            400,
            "{q}"
        );
    }
    server.shutdown().await;
}
