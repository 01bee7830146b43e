//! The log on S3-compatible object storage: moto's standalone server on loopback (started by
//! the test from the `CAIRN_VENV` virtualenv), reached directly or through a fault-injecting
//! TCP proxy. Submissions land in a tree `cairn ct verify` accepts; a crash between the
//! checkpoint's compare-and-swap and the uploads is caught up from the staging bundle; PUTs
//! that fail or hang give no SCT, and the log recovers by itself.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use cairn_ct::s3::{S3Storage, decode_bundle};
use cairn_ct::verify::{VerifyOptions, verify_log};
use cairn_ct::{CtServer, LogConfig};
use common::backend::{moto, s3_log};
use common::{Pki, base_url, chain_body, client, server_config};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Direct access to the log's objects, as an operator's tool would have it.
fn objects(log: &LogConfig) -> S3Storage {
    S3Storage::new(log.s3.as_ref().unwrap()).unwrap()
}

async fn submit(base: &str, pki: &Pki, name: &str) -> reqwest::Response {
    let leaf = pki.leaf(name, (2030, 6, 1), false, false);
    client()
        .post(format!("{base}/ct/v1/add-chain"))
        .json(&chain_body(&pki.chain(&leaf, false)))
        .send()
        .await
        .unwrap()
}

async fn submit_many(base: &str, pki: &Arc<Pki>, tag: &str, n: usize) {
    let mut tasks = Vec::new();
    for w in 0..8 {
        let (base, pki, tag) = (base.to_owned(), pki.clone(), tag.to_owned());
        tasks.push(tokio::spawn(async move {
            for i in (w..n).step_by(8) {
                let r = submit(&base, &pki, &format!("{tag}-{i}.example")).await;
                assert_eq!(r.status(), 200, "{tag}-{i}");
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

async fn verify(base: &str, old: Option<String>) -> cairn_ct::verify::VerifyReport {
    verify_log(&VerifyOptions {
        url: format!("{base}/"),
        old_checkpoint: old,
        ..Default::default()
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn s3_log_serves_a_verifiable_tree_and_catches_up_after_a_crash_between_uploads() {
    let Some(moto) = moto().await else { return };
    moto.create_bucket("ctlog").await;
    let dir = tempfile::tempdir().unwrap();
    let pki = Arc::new(Pki::new());
    let log = s3_log(
        dir.path(),
        &pki,
        format!("http://127.0.0.1:{}", moto.port),
        "ctlog",
    );
    let bucket = objects(&log);
    let server = CtServer::start(&server_config(log.clone())).await.unwrap();
    let base = base_url(server.local_addr());
    submit_many(&base, &pki, "a", 150).await;
    let old = String::from_utf8(bucket.get_object("checkpoint").await.unwrap().unwrap()).unwrap();
    submit_many(&base, &pki, "b", 250).await;
    let report = verify(&base, Some(old.clone())).await;
    assert_eq!(report.size, 400);
    assert_eq!(report.consistent_with, Some(150));
    // Nothing was written to the data folder but the lock store.
    assert!(!dir.path().join("data/tile").exists());
    server.shutdown().await;

    // A crash after the last cycle's compare-and-swap, before its uploads: the bucket holds
    // the older checkpoint and none of the last cycle's files.
    let last = String::from_utf8(bucket.get_object("checkpoint").await.unwrap().unwrap()).unwrap();
    let mut lines = last.lines().skip(1);
    let size: u64 = lines.next().unwrap().parse().unwrap();
    let root = base64::Engine::decode(
        &base64::engine::general_purpose::STANDARD,
        lines.next().unwrap(),
    )
    .unwrap();
    assert_eq!(size, 400);
    let bundle = bucket
        .get_object(&format!("staging/{size}-{}", hex::encode(root)))
        .await
        .unwrap()
        .expect("the last cycle's staging bundle");
    let files = decode_bundle(&bundle).unwrap();
    assert!(files.iter().any(|(k, _)| k.starts_with("tile/data/")));
    for (k, _) in &files {
        bucket.delete_object(k).await.unwrap();
    }
    bucket
        .put_object("checkpoint", old.clone().into_bytes())
        .await
        .unwrap();
    let (gone, _) = &files[0];
    assert_eq!(bucket.get_object(gone).await.unwrap(), None);

    let server = CtServer::start(&server_config(log)).await.unwrap();
    let base = base_url(server.local_addr());
    let report = verify(&base, Some(old)).await;
    assert_eq!(report.size, 400, "storage caught up to the lock store");
    for (k, v) in &files {
        assert_eq!(bucket.get_object(k).await.unwrap().as_ref(), Some(v), "{k}");
    }
    // And it keeps sequencing.
    submit_many(&base, &pki, "c", 20).await;
    assert_eq!(verify(&base, None).await.size, 420);
    server.shutdown().await;
}

/// Copies `r` to `w` until either closes or `failing` is set.
async fn pipe(
    r: &mut tokio::net::tcp::OwnedReadHalf,
    w: &mut tokio::net::tcp::OwnedWriteHalf,
    failing: &AtomicBool,
) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match r.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if failing.load(Ordering::Acquire) || w.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

/// A TCP proxy to `upstream` that, while `failing` is set, holds new connections without
/// answering and cuts the ones carrying traffic: PUTs hang or fail.
async fn fault_proxy(upstream: u16, failing: Arc<AtomicBool>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((mut down, _)) = listener.accept().await else {
                return;
            };
            let failing = failing.clone();
            tokio::spawn(async move {
                while failing.load(Ordering::Acquire) {
                    // Hang: read (and discard) until the client gives up.
                    let mut buf = [0u8; 4096];
                    let read =
                        tokio::time::timeout(Duration::from_millis(50), down.read(&mut buf)).await;
                    if let Ok(Ok(0) | Err(_)) = read {
                        return;
                    }
                }
                let Ok(up) = TcpStream::connect(("127.0.0.1", upstream)).await else {
                    return;
                };
                let (mut dr, mut dw) = down.into_split();
                let (mut ur, mut uw) = up.into_split();
                tokio::select! {
                    _ = pipe(&mut dr, &mut uw, &failing) => {}
                    _ = pipe(&mut ur, &mut dw, &failing) => {}
                }
            });
        }
    });
    port
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn object_puts_that_fail_or_hang_give_no_sct_and_the_log_recovers() {
    let Some(moto) = moto().await else { return };
    moto.create_bucket("faulty").await;
    let failing = Arc::new(AtomicBool::new(false));
    let proxy = fault_proxy(moto.port, failing.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let pki = Arc::new(Pki::new());
    let log = s3_log(
        dir.path(),
        &pki,
        format!("http://127.0.0.1:{proxy}"),
        "faulty",
    );
    let mut direct = log.clone();
    if let Some(s3) = direct.s3.as_mut() {
        s3.endpoint = Some(format!("http://127.0.0.1:{}", moto.port));
    }
    let bucket = objects(&direct);
    let server = CtServer::start(&server_config(log)).await.unwrap();
    let base = base_url(server.local_addr());
    submit_many(&base, &pki, "ok", 40).await;
    let before = verify(&base, None).await;
    assert_eq!(before.size, 40);
    let before_note =
        String::from_utf8(bucket.get_object("checkpoint").await.unwrap().unwrap()).unwrap();

    // Storage hangs: submissions made now get no SCT.
    failing.store(true, Ordering::Release);
    let started = Instant::now();
    let mut refused = Vec::new();
    for i in 0..5 {
        let name = format!("during-{i}.example");
        let r = submit(&base, &pki, &name).await;
        assert_ne!(r.status(), 200, "{name} got an SCT while storage was down");
        refused.push(name);
    }
    assert!(started.elapsed() < Duration::from_secs(30));
    // What the bucket publishes has not moved past what was stored.
    let cp = String::from_utf8(bucket.get_object("checkpoint").await.unwrap().unwrap()).unwrap();
    assert!(cp.lines().nth(1).unwrap() == "40", "{cp}");

    // Storage comes back: the log recovers by itself and every refused entry can be
    // submitted again and lands in a tree that verifies and extends the earlier one.
    failing.store(false, Ordering::Release);
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut scts = Vec::new();
    for name in &refused {
        loop {
            let r = submit(&base, &pki, name).await;
            if r.status() == 200 {
                scts.push(r.json::<serde_json::Value>().await.unwrap());
                break;
            }
            assert!(Instant::now() < deadline, "the log did not recover");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    assert_eq!(scts.len(), 5);
    // Let a checkpoint be published (the SCTs are answered after the tiles, before it).
    tokio::time::sleep(Duration::from_millis(300)).await;
    let report = verify(&base, Some(before_note)).await;
    assert!(report.size >= 45, "{}", report.size);
    assert_eq!(report.consistent_with, Some(40));
    for sct in &scts {
        // The leaf_index extension (static-ct-api) points inside the verified tree.
        assert!(sct["extensions"].as_str().is_some());
    }
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn s3_lock_advances_only_by_conditional_writes() {
    use cairn_ct::lockstore::{DedupRecord, LockError, LockStore};
    use cairn_ct::s3::S3Lock;
    let Some(moto) = moto().await else { return };
    moto.create_bucket("locks").await;
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new();
    let cfg = s3_log(
        dir.path(),
        &pki,
        format!("http://127.0.0.1:{}", moto.port),
        "locks",
    )
    .s3
    .unwrap();
    let open = |name: &'static str| {
        let (cfg, path) = (cfg.clone(), dir.path().join(name));
        async move {
            LockStore::open_sqlite(&path)
                .await
                .unwrap()
                .with_s3_lock(S3Lock::new(&cfg).unwrap())
        }
    };
    let a = open("a.db").await;
    let b = open("b.db").await;
    assert_eq!(a.get_checkpoint("log").await.unwrap(), None);
    a.create_checkpoint("log", "c0").await.unwrap();
    assert!(matches!(
        b.create_checkpoint("log", "other").await,
        Err(LockError::Conflict)
    ));
    let rec = DedupRecord {
        key: [1; 32],
        index: 0,
        timestamp: 5,
    };
    a.commit("log", "c0", "c1", &[rec]).await.unwrap();
    assert_eq!(a.get_dedup("log", &[1; 32]).await.unwrap(), Some(rec));
    // A sequencer still extending c0 loses, and writes no dedup row.
    let stale = DedupRecord {
        key: [2; 32],
        ..rec
    };
    assert!(matches!(
        b.commit("log", "c0", "fork", &[stale]).await,
        Err(LockError::Conflict)
    ));
    assert_eq!(b.get_dedup("log", &[2; 32]).await.unwrap(), None);
    assert_eq!(
        b.get_checkpoint("log").await.unwrap().as_deref(),
        Some("c1")
    );
    // Racing swaps of the same checkpoint: exactly one wins.
    let mut racers = Vec::new();
    for i in 0..8 {
        let s = if i % 2 == 0 { a.clone() } else { b.clone() };
        racers.push(tokio::spawn(async move {
            s.commit("log", "c1", &format!("c2-{i}"), &[]).await
        }));
    }
    let mut won = Vec::new();
    for (i, r) in racers.into_iter().enumerate() {
        match r.await.unwrap() {
            Ok(()) => won.push(i),
            Err(LockError::Conflict) => {}
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(won.len(), 1, "{won:?}");
    assert_eq!(
        a.get_checkpoint("log").await.unwrap(),
        Some(format!("c2-{}", won[0]))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_log_with_an_s3_lock_survives_losing_its_dedup_db_and_refuses_a_lost_lock() {
    use cairn_ct::{CtLog, RecoveryError, StartError};
    let Some(moto) = moto().await else { return };
    moto.create_bucket("locked").await;
    let dir = tempfile::tempdir().unwrap();
    let pki = Arc::new(Pki::new());
    let mut log = s3_log(
        dir.path(),
        &pki,
        format!("http://127.0.0.1:{}", moto.port),
        "locked",
    );
    log.lock_s3 = log.s3.clone();
    let bucket = objects(&log);
    let server = CtServer::start(&server_config(log.clone())).await.unwrap();
    let base = base_url(server.local_addr());
    submit_many(&base, &pki, "a", 30).await;
    assert_eq!(verify(&base, None).await.size, 30);
    server.shutdown().await;
    let lock_note = bucket.get_object("lock/test2030").await.unwrap().unwrap();
    assert!(String::from_utf8(lock_note).unwrap().contains("\n30\n"));

    // The local dedup database is only a cache: without it the log starts at the same size.
    std::fs::remove_file(log.data_dir.join("lock.db")).unwrap();
    let started = CtLog::start(log.clone()).await.unwrap();
    assert_eq!(started.tree_size(), 30);
    started.shutdown().await;
    drop(started);

    // Without the lock object the log would start a new tree over the published one: refused.
    bucket.delete_object("lock/test2030").await.unwrap();
    match CtLog::start(log).await {
        Err(StartError::Recovery(RecoveryError::LockStoreEmpty { found, .. })) => {
            assert!(found.contains("30 entries"), "{found}");
        }
        other => panic!("a lost S3 lock must refuse the start: {other:?}"),
    }
}
