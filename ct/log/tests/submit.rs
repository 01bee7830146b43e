//! Submission behaviour over HTTP: SCTs, precerts (direct and via a precertificate signing
//! certificate), dedup, refusals (400, never 500), back-pressure (503), read path and
//! verification of the published tree.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use cairn_ct::CtServer;
use common::backend::{Backend, Store};
use common::verifier::{self, precert_signed_entry, verify_sct, x509_signed_entry};
use common::{Pki, base_url, chain_body, client, log_config, server_config};
use std::time::Duration;

async fn post(c: &reqwest::Client, url: &str, body: &serde_json::Value) -> reqwest::Response {
    c.post(url).json(body).send().await.unwrap()
}

on_every_backend!(#[tokio::test] fn submissions_get_verifiable_scts_and_land_in_the_tree);
async fn submissions_get_verifiable_scts_and_land_in_the_tree(backend: Backend) {
    let Some(store) = Store::start(backend).await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new();
    let server = CtServer::start(&server_config(store.log_config(dir.path(), &pki).await))
        .await
        .unwrap();
    let base = base_url(server.local_addr());
    let spki = server.logs()[0].public_key_der().to_vec();
    let c = client();

    // get-roots
    let roots: serde_json::Value = c
        .get(format!("{base}/ct/v1/get-roots"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    // The test root and Google's Merge Delay Monitor Root.
    assert_eq!(roots["certificates"].as_array().unwrap().len(), 2);

    // A certificate.
    let leaf = pki.leaf("a.example", (2030, 6, 1), false, false);
    let r = post(
        &c,
        &format!("{base}/ct/v1/add-chain"),
        &chain_body(&pki.chain(&leaf, false)),
    )
    .await;
    assert_eq!(r.status(), 200);
    let sct: serde_json::Value = r.json().await.unwrap();
    let (ts, idx) = verify_sct(&sct, &spki, 0, &x509_signed_entry(&leaf.der));

    // Resubmission (also with the root appended) returns the original timestamp and index.
    let mut with_root = pki.chain(&leaf, false);
    with_root.push(pki.root.der().to_vec());
    let again: serde_json::Value = post(
        &c,
        &format!("{base}/ct/v1/add-chain"),
        &chain_body(&with_root),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(
        verify_sct(&again, &spki, 0, &x509_signed_entry(&leaf.der)),
        (ts, idx)
    );

    // A precertificate issued directly, and one via a precertificate signing certificate: the
    // logged TBS equals the final certificate's TBS and the issuer key hash is the CA's.
    let pre = pki.leaf("b.example", (2030, 6, 1), true, false);
    let r = post(
        &c,
        &format!("{base}/ct/v1/add-pre-chain"),
        &chain_body(&pki.chain(&pre, false)),
    )
    .await;
    assert_eq!(r.status(), 200);
    let sct_pre: serde_json::Value = r.json().await.unwrap();
    let (_, idx_pre) = verify_sct(
        &sct_pre,
        &spki,
        1,
        &precert_signed_entry(&pki.inter_spki(), &pre.final_tbs),
    );

    let psc = pki.leaf("c.example", (2030, 6, 1), true, true);
    let r = post(
        &c,
        &format!("{base}/ct/v1/add-pre-chain"),
        &chain_body(&pki.chain(&psc, true)),
    )
    .await;
    assert_eq!(r.status(), 200);
    let sct_psc: serde_json::Value = r.json().await.unwrap();
    let (_, idx_psc) = verify_sct(
        &sct_psc,
        &spki,
        1,
        &precert_signed_entry(&pki.inter_spki(), &psc.final_tbs),
    );

    // The published tree holds each entry at its SCT's index.
    let snap = verifier::snapshot(&c, &base, common::ORIGIN, &spki).await;
    assert_eq!(snap.checkpoint.size, 3);
    assert_eq!(snap.entries[idx as usize].signed, leaf.der);
    assert_eq!(snap.entries[idx_pre as usize].signed, pre.final_tbs);
    assert_eq!(
        snap.entries[idx_pre as usize].pre_certificate.as_deref(),
        Some(&pre.der[..])
    );
    assert_eq!(snap.entries[idx_psc as usize].signed, psc.final_tbs);
    assert_eq!(
        snap.entries[idx_psc as usize].chain.len(),
        3,
        "psc, intermediate, root"
    );

    // Log description.
    let desc: serde_json::Value = c
        .get(format!("{base}/log.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(desc["mmd"], 60);
    assert_eq!(desc["log_id"], sct["id"]);
    assert_eq!(
        desc["temporal_interval"]["start_inclusive"],
        "2030-01-01T00:00:00Z"
    );

    // Tiles beyond the checkpoint and odd paths are 404, never 500.
    for p in [
        "tile/0/000.p/4",
        "tile/0/001",
        "tile/data/000.p/200",
        "tile/../../etc/passwd",
        "issuer/zz",
        "tile/0/000.p/0",
    ] {
        let r = c.get(format!("{base}/{p}")).send().await.unwrap();
        assert_eq!(r.status(), 404, "{p}");
    }
    server.shutdown().await;
}

on_every_backend!(#[tokio::test] fn bad_submissions_are_400);
async fn bad_submissions_are_400(backend: Backend) {
    let Some(store) = Store::start(backend).await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new();
    let server = CtServer::start(&server_config(store.log_config(dir.path(), &pki).await))
        .await
        .unwrap();
    let base = base_url(server.local_addr());
    let c = client();
    let add = format!("{base}/ct/v1/add-chain");
    let add_pre = format!("{base}/ct/v1/add-pre-chain");

    let cert = pki.leaf("ok.example", (2030, 6, 1), false, false);
    let pre = pki.leaf("pre.example", (2030, 6, 1), true, false);
    let late = pki.leaf("late.example", (2031, 6, 1), false, false);
    let early = pki.leaf("early.example", (2029, 12, 31), false, false);
    let other = rcgen::CertificateParams::new(vec!["x.example".to_string()]).unwrap();
    let foreign = other
        .signed_by(&rcgen::KeyPair::generate().unwrap(), &pki.other_root)
        .unwrap();

    let cases: Vec<(&str, serde_json::Value)> = vec![
        (&add, chain_body(&pki.chain(&late, false))),
        (&add, chain_body(&pki.chain(&early, false))),
        (&add, chain_body(&pki.chain(&pre, false))),
        (&add_pre, chain_body(&pki.chain(&cert, false))),
        (&add, chain_body(std::slice::from_ref(&cert.der))),
        (
            &add,
            chain_body(&[cert.der.clone(), pki.root.der().to_vec()]),
        ),
        (
            &add,
            chain_body(&[foreign.der().to_vec(), pki.other_root.der().to_vec()]),
        ),
        (&add, chain_body(&[cert.der.clone(), cert.der.clone()])),
        (&add, chain_body(&[])),
        (&add, chain_body(&[b"garbage".to_vec()])),
        (&add, chain_body(&vec![cert.der.clone(); 11])),
        (&add, serde_json::json!({"chain": ["!!!"]})),
        (&add, serde_json::json!({"chain": "x"})),
        (&add, serde_json::json!([1, 2])),
    ];
    for (i, (url, body)) in cases.iter().enumerate() {
        let r = post(&c, url, body).await;
        assert_eq!(r.status(), 400, "case {i}");
        let j: serde_json::Value = r.json().await.unwrap();
        assert!(j["error"].is_string());
    }
    let r = c.post(&add).body("not json").send().await.unwrap();
    assert_eq!(r.status(), 400);
    let r = c
        .post(&add)
        .body(vec![b'x'; 600 * 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    // The log still works.
    let r = post(&c, &add, &chain_body(&pki.chain(&cert, false))).await;
    assert_eq!(r.status(), 200);
    server.shutdown().await;
}

on_every_backend!(#[tokio::test] fn full_pool_is_503_with_retry_after);
async fn full_pool_is_503_with_retry_after(backend: Backend) {
    let Some(store) = Store::start(backend).await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new();
    let mut cfg = store.log_config(dir.path(), &pki).await;
    cfg.pool_size = 1;
    cfg.period_ms = 5000;
    // Every chain is ready before the log starts, so all submissions arrive well inside one
    // 5 s period whatever this machine's speed.
    let bodies: Vec<_> = (0..20)
        .map(|i| {
            let leaf = pki.leaf(&format!("b{i}.example"), (2030, 6, 1), false, false);
            chain_body(&pki.chain(&leaf, false))
        })
        .collect();
    let server = CtServer::start(&server_config(cfg)).await.unwrap();
    let base = base_url(server.local_addr());
    let c = client();
    let url = format!("{base}/ct/v1/add-chain");
    // All at once: whichever arrives first fills the one-entry pool and is answered with its SCT
    // at the next tick; the others are refused at once. No reliance on arrival order.
    let mut tasks = tokio::task::JoinSet::new();
    for body in bodies {
        let c = c.clone();
        let url = url.clone();
        tasks.spawn(async move {
            let r = c.post(&url).json(&body).send().await.unwrap();
            let retry_after = r
                .headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap().to_owned());
            (r.status().as_u16(), retry_after)
        });
    }
    let answers = tasks.join_all().await;
    let accepted = answers.iter().filter(|(status, _)| *status == 200).count();
    let refused: Vec<_> = answers
        .iter()
        .filter(|(status, _)| *status == 503)
        .collect();
    assert_eq!(accepted + refused.len(), answers.len(), "{answers:?}");
    // One per sequencing period; a second only if a tick fell between two arrivals.
    assert!((1..=2).contains(&accepted), "{answers:?}");
    assert!(!refused.is_empty(), "{answers:?}");
    for (_, retry_after) in refused {
        assert_eq!(retry_after.as_deref(), Some("1"));
    }
    server.shutdown().await;
}

/// Sunlight-style priorities: with an 8-entry pool, stale resubmissions (issued in 2020) are
/// shed with 429 once it is half full, final certificates get 503 once it is three quarters
/// full, precertificates fill it to the end; everything admitted gets its SCT at the next tick.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_pressure_precertificates_go_first_and_stale_resubmissions_are_shed() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new();
    let mut cfg = log_config(dir.path(), &pki);
    cfg.pool_size = 8;
    // The sequencer ticks at start, then not for 10 s: the pool only fills meanwhile.
    cfg.period_ms = 10_000;
    let body = |leaf: &common::Leaf| chain_body(&pki.chain(leaf, false));
    let certs: Vec<_> = (0..7)
        .map(|i| body(&pki.leaf(&format!("c{i}.example"), (2030, 6, 1), false, false)))
        .collect();
    let pres: Vec<_> = (0..3)
        .map(|i| body(&pki.leaf(&format!("p{i}.example"), (2030, 6, 1), true, false)))
        .collect();
    let stale = [
        body(&pki.stale_leaf("s0.example")),
        body(&pki.stale_leaf("s1.example")),
    ];
    let server = CtServer::start(&server_config(cfg)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await; // past the first (empty) tick
    let log = server.logs()[0].clone();
    let base = base_url(server.local_addr());
    let c = client();
    let mut admitted = tokio::task::JoinSet::new();
    // Submits `body` to `path`; if it joins the pool, leaves it waiting for its SCT (None),
    // else gives the status and Retry-After.
    let mut send = async |path: &str, body: &serde_json::Value| -> Option<(u16, String)> {
        let before = log.pending();
        let (c, url, body) = (c.clone(), format!("{base}/ct/v1/{path}"), body.clone());
        let task = tokio::spawn(async move {
            let r = c.post(&url).json(&body).send().await.unwrap();
            let retry = r
                .headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap().to_owned());
            (r.status().as_u16(), retry.unwrap_or_default())
        });
        for _ in 0..500 {
            if log.pending() > before {
                admitted.spawn(async move { task.await.unwrap() });
                return None;
            }
            if task.is_finished() {
                return Some(task.await.unwrap());
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("submission neither pooled nor answered");
    };
    // A stale resubmission joins an empty pool.
    assert_eq!(send("add-chain", &stale[0]).await, None);
    for b in &certs[..3] {
        assert_eq!(send("add-chain", b).await, None);
    }
    // Half full: stale is shed, fresh certificates still join up to 6.
    assert_eq!(send("add-chain", &stale[1]).await, Some((429, "60".into())));
    for b in &certs[3..5] {
        assert_eq!(send("add-chain", b).await, None);
    }
    assert_eq!(log.pending(), 6);
    // Three quarters full: certificates are refused, precertificates fill the rest.
    assert_eq!(send("add-chain", &certs[5]).await, Some((503, "1".into())));
    assert_eq!(send("add-pre-chain", &pres[0]).await, None);
    assert_eq!(send("add-pre-chain", &pres[1]).await, None);
    assert_eq!(
        send("add-pre-chain", &pres[2]).await,
        Some((503, "1".into()))
    );
    assert_eq!(send("add-chain", &certs[6]).await, Some((503, "1".into())));
    assert_eq!(log.pending(), 8);
    assert_eq!(log.tree_size(), 0, "no tick during the test");
    // The next tick sequences all eight.
    let answers = admitted.join_all().await;
    assert_eq!(answers.len(), 8);
    assert!(answers.iter().all(|(s, _)| *s == 200), "{answers:?}");
    assert_eq!(log.tree_size(), 8);
    server.shutdown().await;
}

on_every_backend!(#[tokio::test] fn many_submissions_cross_tile_boundaries_and_checkpoints_stay_consistent);
async fn many_submissions_cross_tile_boundaries_and_checkpoints_stay_consistent(backend: Backend) {
    let Some(store) = Store::start(backend).await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new();
    let mut cfg = store.log_config(dir.path(), &pki).await;
    cfg.period_ms = 50;
    let server = CtServer::start(&server_config(cfg)).await.unwrap();
    let base = base_url(server.local_addr());
    let spki = server.logs()[0].public_key_der().to_vec();
    let c = client();
    let url = format!("{base}/ct/v1/add-chain");
    let mut checkpoints = Vec::new();
    let mut submitted = Vec::new();
    for round in 0..3 {
        let leaves: Vec<_> = (0..230)
            .map(|i| pki.leaf(&format!("r{round}-{i}.example"), (2030, 6, 1), false, false))
            .collect();
        let mut tasks = Vec::new();
        for leaf in leaves {
            let (c, url, body) = (c.clone(), url.clone(), chain_body(&pki.chain(&leaf, false)));
            tasks.push(tokio::spawn(async move {
                let sct: serde_json::Value = c
                    .post(&url)
                    .json(&body)
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                (leaf.der, sct)
            }));
        }
        for t in tasks {
            submitted.push(t.await.unwrap());
        }
        let snap = verifier::snapshot(&c, &base, common::ORIGIN, &spki).await;
        for old in &checkpoints {
            verifier::assert_consistent(old, &snap);
        }
        checkpoints.push(snap.checkpoint.clone());
    }
    let snap = verifier::snapshot(&c, &base, common::ORIGIN, &spki).await;
    assert_eq!(snap.checkpoint.size, 690);
    for (der, sct) in &submitted {
        let (ts, idx) = verify_sct(sct, &spki, 0, &x509_signed_entry(der));
        let e = &snap.entries[idx as usize];
        assert_eq!(&e.signed, der);
        assert_eq!(e.timestamp, ts);
        assert!(ts <= snap.checkpoint.timestamp);
    }
    server.shutdown().await;
}

on_every_backend!(#[tokio::test] fn concurrent_duplicates_all_get_the_original_entry);
/// The same chain submitted continuously from many tasks, so that submissions land while the
/// first one's batch is being written and committed: every submission gets the original SCT
/// position and the log holds exactly one entry.
async fn concurrent_duplicates_all_get_the_original_entry(backend: Backend) {
    let Some(store) = Store::start(backend).await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new();
    let mut cfg = store.log_config(dir.path(), &pki).await;
    cfg.period_ms = 20;
    let log = cairn_ct::CtLog::start(cfg).await.unwrap();
    let leaf = pki.leaf("dup.example", (2030, 6, 1), false, false);
    let chain = pki.chain(&leaf, false);
    let mut tasks = Vec::new();
    for i in 0..200u64 {
        let log = log.clone();
        let chain = chain.clone();
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep(Duration::from_micros(i * 500)).await;
            let sct = log.submit(&chain, false).await.unwrap();
            (sct.timestamp, sct.extensions)
        }));
    }
    let mut answers = Vec::new();
    for t in tasks {
        answers.push(t.await.unwrap());
    }
    assert!(
        answers.iter().all(|a| *a == answers[0]),
        "one original SCT position"
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(log.tree_size(), 1, "one entry");
    log.shutdown().await;
}

#[tokio::test]
async fn health_is_ready_while_every_log_runs_and_live_throughout() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new();
    let server = CtServer::start(&server_config(log_config(dir.path(), &pki)))
        .await
        .unwrap();
    // Health is on the listener, outside the logs' prefixes.
    let base = format!("http://{}", server.local_addr());
    let c = client();
    let get = |path: &'static str| {
        let c = c.clone();
        let base = base.clone();
        async move {
            let r = c.get(format!("{base}{path}")).send().await.unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }
    };
    assert_eq!(get("/health").await, (200, "ready\n".into()));
    assert_eq!(get("/health/ready").await.0, 200);
    assert_eq!(get("/health/live").await.0, 200);

    // The log stops (its sequencer ends, its lock store closes) while the listener serves.
    server.logs()[0].shutdown().await;
    let (status, body) = get("/health").await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains(server.logs()[0].name()), "{body}");
    assert_eq!(get("/health/ready").await.0, 503);
    assert_eq!(get("/health/live").await.0, 200);
    server.shutdown().await;
}
