//! What a log publishes about itself and how it serves tiles: the checkpoint's Ed25519 note
//! signature and ML-DSA-44 cosignature (keys read from the key file, not from the server),
//! `log.v3.json` in Chrome's log-list v3 fields, the landing page, and gzip tiles.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use cairn_ct::CtServer;
use cairn_ct::key_file::{load_or_generate, load_or_generate_note_keys};
use cairn_tlog::note::{parse_vkey, verify_ed25519, verify_ml_dsa_44_cosignature};
use common::verifier::{self, parse_data, tile_url};
use common::{
    ORIGIN, Pki, base_url, chain_body, client, get_checkpoint, log_config, server_config,
};
use serde::Deserialize;
use std::io::Read;

/// The per-log fields of Chrome's log list v3 schema (`tiled_logs` entries); unknown fields
/// are refused so the log cannot publish anything the schema does not name.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct V3Log {
    description: String,
    log_id: String,
    key: String,
    mmd: u64,
    temporal_interval: V3Interval,
    submission_url: String,
    monitoring_url: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct V3Interval {
    start_inclusive: String,
    end_exclusive: String,
}

async fn add(c: &reqwest::Client, base: &str, pki: &Pki, n: usize) {
    for i in 0..n {
        let leaf = pki.leaf(&format!("m{i}.example"), (2030, 6, 1), false, false);
        let r = c
            .post(format!("{base}/ct/v1/add-chain"))
            .json(&chain_body(&pki.chain(&leaf, false)))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
}

#[tokio::test]
async fn checkpoint_carries_ed25519_and_ml_dsa_signatures_from_the_key_file() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new();
    let cfg = log_config(dir.path(), &pki);
    let server = CtServer::start(&server_config(cfg.clone())).await.unwrap();
    let base = base_url(server.local_addr());
    let c = client();
    add(&c, &base, &pki, 3).await;

    // The keys as the operator holds them on disk (generated at first start).
    let notes = load_or_generate_note_keys(&cfg.note_key_path()).unwrap();
    let spki = load_or_generate(&cfg.key_file).unwrap().spki_der().to_vec();
    let note = get_checkpoint(&c, &base).await;
    let cp = verifier::verify_checkpoint(&note, ORIGIN, &spki);
    assert_eq!(cp.size, 3);
    let text = verify_ed25519(&note, ORIGIN, notes.ed25519.public_key()).unwrap();
    assert!(text.starts_with(&format!("{ORIGIN}\n3\n")));
    let ts = verify_ml_dsa_44_cosignature(&note, ORIGIN, notes.ml_dsa_44.public_key()).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(ts <= now && ts + 60 > now, "cosignature time is in seconds");

    // The published verifier keys name the same keys.
    let vkeys = c
        .get(format!("{base}/vkeys"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let parsed: Vec<_> = vkeys.lines().map(|l| parse_vkey(l).unwrap()).collect();
    assert_eq!(parsed.len(), 2);
    assert_eq!((parsed[0].signature_type, &*parsed[0].name), (1, ORIGIN));
    assert_eq!(parsed[0].public_key, notes.ed25519.public_key());
    assert_eq!(parsed[1].signature_type, 6);
    assert_eq!(parsed[1].public_key, notes.ml_dsa_44.public_key());

    // After a restart the same keys sign.
    server.shutdown().await;
    let server = CtServer::start(&server_config(cfg)).await.unwrap();
    let base = base_url(server.local_addr());
    add(&c, &base, &pki, 1).await;
    let note = get_checkpoint(&c, &base).await;
    verify_ed25519(&note, ORIGIN, notes.ed25519.public_key()).unwrap();
    server.shutdown().await;
}

#[tokio::test]
async fn log_v3_json_has_the_log_list_fields_and_the_landing_page_lists_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new();
    let cfg = log_config(dir.path(), &pki);
    let server = CtServer::start(&server_config(cfg.clone())).await.unwrap();
    let base = base_url(server.local_addr());
    let c = client();

    let r = c.get(format!("{base}/log.v3.json")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let v3: V3Log = r.json().await.unwrap();
    let spki = load_or_generate(&cfg.key_file).unwrap().spki_der().to_vec();
    assert_eq!(B64.decode(&v3.key).unwrap(), spki, "key is the log's SPKI");
    assert_eq!(
        B64.decode(&v3.log_id).unwrap(),
        verifier::sha(&[&spki]),
        "log_id is SHA-256 of the SPKI"
    );
    assert!(
        v3.mmd >= 1 && v3.mmd <= 60,
        "static logs declare an MMD of at most a minute"
    );
    assert_eq!(v3.temporal_interval.start_inclusive, "2030-01-01T00:00:00Z");
    assert_eq!(v3.temporal_interval.end_exclusive, "2031-01-01T00:00:00Z");
    assert_eq!(v3.submission_url, format!("https://{ORIGIN}/"));
    assert_eq!(v3.monitoring_url, format!("https://{ORIGIN}/"));

    let r = c
        .get(format!("http://{}/", server.local_addr()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()[reqwest::header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let page = r.text().await.unwrap();
    assert!(page.contains("<h2>test2030</h2>"));
    assert!(page.contains(&v3.log_id));
    assert!(page.contains("href=\"/2030/log.v3.json\""));
    server.shutdown().await;
}

#[tokio::test]
async fn tiles_are_gzip_when_accepted_and_identity_otherwise() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new();
    let server = CtServer::start(&server_config(log_config(dir.path(), &pki)))
        .await
        .unwrap();
    let base = base_url(server.local_addr());
    let c = client();
    add(&c, &base, &pki, 5).await;

    for level in ["data", "0"] {
        let url = tile_url(&base, level, 0, 5);
        let plain = c.get(&url).send().await.unwrap();
        assert_eq!(plain.status(), 200);
        assert!(plain.headers().get("content-encoding").is_none());
        assert_eq!(plain.headers()["vary"], "Accept-Encoding");
        let plain = plain.bytes().await.unwrap().to_vec();

        let refused = c
            .get(&url)
            .header("accept-encoding", "gzip;q=0, identity")
            .send()
            .await
            .unwrap();
        assert!(refused.headers().get("content-encoding").is_none());
        assert_eq!(refused.bytes().await.unwrap().to_vec(), plain);

        let z = c
            .get(&url)
            .header("accept-encoding", "br, gzip")
            .send()
            .await
            .unwrap();
        assert_eq!(z.status(), 200);
        assert_eq!(z.headers()["content-encoding"], "gzip");
        let z = z.bytes().await.unwrap().to_vec();
        assert_ne!(z, plain);
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&z[..])
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, plain, "gzip body decodes to the identity tile");
        if level == "data" {
            assert_eq!(parse_data(&out).len(), 5);
        }
    }
    server.shutdown().await;
}

#[tokio::test]
async fn a_full_tile_is_compressed_once_and_served_the_same_every_time() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new();
    let server = CtServer::start(&server_config(log_config(dir.path(), &pki)))
        .await
        .unwrap();
    let base = base_url(server.local_addr());
    let c = client();
    // 256 entries at once: one full data tile and one full level-0 hash tile.
    let mut adds = tokio::task::JoinSet::new();
    for i in 0..256 {
        let (c, base) = (c.clone(), base.clone());
        let chain = chain_body(&pki.chain(
            &pki.leaf(&format!("full{i}.example"), (2030, 6, 1), false, false),
            false,
        ));
        adds.spawn(async move {
            let r = c
                .post(format!("{base}/ct/v1/add-chain"))
                .json(&chain)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
        });
    }
    while let Some(r) = adds.join_next().await {
        r.unwrap();
    }

    for level in ["data", "0"] {
        let url = tile_url(&base, level, 0, 256);
        let plain = c.get(&url).send().await.unwrap();
        assert_eq!(plain.status(), 200, "{url}");
        let plain = plain.bytes().await.unwrap().to_vec();
        let mut bodies = Vec::new();
        for _ in 0..3 {
            let z = c
                .get(&url)
                .header("accept-encoding", "gzip")
                .send()
                .await
                .unwrap();
            assert_eq!(z.status(), 200);
            assert_eq!(z.headers()["content-encoding"], "gzip");
            assert_eq!(z.headers()["vary"], "Accept-Encoding");
            assert_eq!(z.headers()["content-type"], "application/octet-stream");
            assert!(
                z.headers()["cache-control"]
                    .to_str()
                    .unwrap()
                    .contains("immutable")
            );
            bodies.push(z.bytes().await.unwrap().to_vec());
        }
        assert!(bodies.windows(2).all(|w| w[0] == w[1]));
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&bodies[0][..])
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(
            out, plain,
            "the kept gzip body decodes to the identity tile"
        );
        if level == "data" {
            assert_eq!(parse_data(&out).len(), 256);
        }
        // A client that does not take gzip still gets the identity tile after it was kept.
        let again = c.get(&url).send().await.unwrap();
        assert!(again.headers().get("content-encoding").is_none());
        assert_eq!(again.bytes().await.unwrap().to_vec(), plain);
    }
    server.shutdown().await;
}
