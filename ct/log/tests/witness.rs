//! Two C2SP tlog-witnesses over HTTP: they cosign checkpoints that extend the last one they
//! cosigned (checked with RFC 9162 consistency proofs), keep that state across restarts, and
//! refuse a forked log, an unknown log, a bad signature and a stale old size. And the log's
//! side: it sends each checkpoint with a proof computed from its tiles, serves the cosigned
//! checkpoint, keeps sequencing while a witness is down, and reports a fork the witnesses refuse.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use cairn_ct::witness::{Witness, WitnessConfig};
use cairn_tlog::checkpoint::Checkpoint;
use cairn_tlog::consistency::{prove, tree_hash};
use cairn_tlog::merkle::{Hash, leaf_hash};
use cairn_tlog::note::{Ed25519NoteKey, parse_vkey, verify_cosignature_v1};
use std::path::Path;
use std::sync::Arc;

const ORIGIN: &str = "ct.example.test/witnessed";

struct Log {
    key: Ed25519NoteKey,
    leaves: Vec<Hash>,
}

impl Log {
    fn new(tag: &str, n: usize) -> Log {
        Log {
            key: Ed25519NoteKey::generate().unwrap(),
            leaves: (0..n)
                .map(|i| leaf_hash(format!("{tag}{i}").as_bytes()))
                .collect(),
        }
    }
    fn note(&self, size: usize) -> String {
        let body = Checkpoint {
            origin: ORIGIN.into(),
            size: size as u64,
            root: tree_hash(&self.leaves[..size]),
        }
        .body();
        format!("{body}\n{}", self.key.sign_note(ORIGIN, &body))
    }
    /// An add-checkpoint request from `old` to `new`.
    fn request(&self, old: usize, new: usize) -> String {
        let mut out = format!("old {old}\n");
        for h in prove(old, &self.leaves[..new]).unwrap() {
            out.push_str(&B64.encode(h));
            out.push('\n');
        }
        out.push('\n');
        out.push_str(&self.note(new));
        out
    }
}

async fn serve(name: &str, log: &Log, dir: &Path) -> (String, Arc<Witness>) {
    let vkey = parse_vkey(&log.key.vkey(ORIGIN)).unwrap();
    let w = Arc::new(
        Witness::new(
            name,
            Ed25519NoteKey::generate().unwrap(),
            vec![vkey],
            dir.into(),
        )
        .unwrap(),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let router = w.clone().router();
    tokio::spawn(async move { axum::serve(listener, router).await });
    (url, w)
}

async fn post(url: &str, body: String) -> (u16, String, String) {
    let r = reqwest::Client::new()
        .post(format!("{url}/add-checkpoint"))
        .body(body)
        .send()
        .await
        .unwrap();
    let ct = r
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (r.status().as_u16(), ct, r.text().await.unwrap())
}

#[tokio::test]
async fn two_witnesses_cosign_a_growing_log_and_refuse_a_fork() {
    let log = Log::new("entry", 600);
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let mut witnesses = Vec::new();
    for (i, d) in dirs.iter().enumerate() {
        witnesses.push(serve(&format!("witness{i}.example"), &log, d.path()).await);
    }
    for (url, w) in &witnesses {
        let vkey = parse_vkey(&w.vkey()).unwrap();
        let mut old = 0;
        for size in [1, 5, 256, 257, 600] {
            let (status, _, lines) = post(url, log.request(old, size)).await;
            assert_eq!(status, 200, "{old} -> {size}: {lines}");
            let cosigned = format!("{}{lines}", log.note(size));
            verify_cosignature_v1(&cosigned, &vkey.name, &vkey.public_key).unwrap();
            old = size;
        }
        // A stale old size: 409 with the latest size.
        let (status, ct, body) = post(url, log.request(257, 600)).await;
        assert_eq!(
            (status, ct.as_str(), body.as_str()),
            (409, "text/x.tlog.size", "600\n")
        );
    }

    // The log is forked (its lock store reset, other entries sequenced): same origin and key,
    // other leaves. Neither at the same size nor larger does a witness cosign it.
    let mut fork = Log::new("forked", 700);
    fork.key = log.key;
    for (url, _) in &witnesses {
        let (status, _, _) = post(url, fork.request(600, 600)).await;
        assert_eq!(status, 422);
        let (status, _, _) = post(url, fork.request(600, 700)).await;
        assert_eq!(status, 422);
        // The fork restarted from zero: its old size is stale.
        let (status, _, body) = post(url, fork.request(0, 10)).await;
        assert_eq!((status, body.as_str()), (409, "600\n"));
    }

    // The state survives a restart: the witness started from a configuration file as
    // `cairn ct witness` does it (key generated on first start), on the same folder, still
    // refuses.
    let cfg_dir = tempfile::tempdir().unwrap();
    let cfg_path = cfg_dir.path().join("witness.toml");
    std::fs::write(
        &cfg_path,
        format!(
            "listen = \"127.0.0.1:0\"\nname = \"witness0.example\"\nkey_file = \"w.pem\"\n\
             state_dir = {:?}\nlogs = [{:?}]\n",
            dirs[0].path().display().to_string(),
            fork.key.vkey(ORIGIN)
        ),
    )
    .unwrap();
    let cfg = WitnessConfig::load(&cfg_path).unwrap();
    let (addr, w, _task) = cairn_ct::witness::serve(&cfg, std::future::pending())
        .await
        .unwrap();
    assert!(cfg_dir.path().join("w.pem").exists());
    let again = (format!("http://{addr}"), w);
    let (status, _, _) = post(&again.0, fork.request(600, 700)).await;
    assert_eq!(status, 422);

    // An unknown log, a bad signature, garbage.
    let stranger = Log::new("s", 3);
    let other_origin = stranger.request(0, 3).replace(ORIGIN, "other.example/log");
    assert_eq!(post(&again.0, other_origin).await.0, 404);
    let imposter = Log {
        key: Ed25519NoteKey::generate().unwrap(),
        leaves: stranger.leaves.clone(),
    };
    assert_eq!(post(&again.0, imposter.request(0, 3)).await.0, 403);
    assert_eq!(post(&again.0, "old x\n\nnope".into()).await.0, 400);
}

/// Starts a `cairn ct witness` (in-process, from its configuration) for the log `log_vkey`.
async fn start_witness(name: &str, dir: &Path, log_vkey: &str) -> (String, String) {
    let cfg = WitnessConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        name: name.into(),
        key_file: dir.join("key.pem"),
        state_dir: dir.join("state"),
        logs: vec![log_vkey.into()],
    };
    let (addr, w, _task) = cairn_ct::witness::serve(&cfg, std::future::pending())
        .await
        .unwrap();
    (format!("http://{addr}"), w.vkey())
}

/// Polls until `done` holds (10 s at most).
async fn wait_for<T>(what: &str, mut done: impl AsyncFnMut() -> Option<T>) -> T {
    for _ in 0..200 {
        if let Some(v) = done().await {
            return v;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test]
async fn the_log_serves_checkpoints_cosigned_by_two_witnesses_and_reports_a_fork() {
    let dir = tempfile::tempdir().unwrap();
    let pki = common::Pki::new();
    let mut cfg = common::log_config(dir.path(), &pki);
    let note_keys = cairn_ct::key_file::load_or_generate_note_keys(&cfg.note_key_path()).unwrap();
    let log_vkey = note_keys.ed25519.vkey(common::ORIGIN);
    let mut witnesses = Vec::new();
    for i in 0..2 {
        let wdir = dir.path().join(format!("w{i}"));
        witnesses.push(start_witness(&format!("w{i}.example"), &wdir, &log_vkey).await);
    }
    // A third witness that is down: it must delay nothing.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let dead_key = Ed25519NoteKey::generate().unwrap();
    let dead_vkey = cairn_tlog::note::vkey(
        "dead.example",
        cairn_tlog::note::SIGNATURE_TYPE_COSIGNATURE_V1,
        dead_key.public_key(),
    );
    cfg.witnesses = witnesses
        .iter()
        .map(|(url, vkey)| (url.clone(), vkey.clone()))
        .chain([(dead.clone(), dead_vkey)])
        .map(|(url, vkey)| cairn_ct::config::WitnessTarget {
            url,
            vkey,
            timeout_ms: 2000,
        })
        .collect();
    let vkeys: Vec<_> = witnesses
        .iter()
        .map(|(_, v)| parse_vkey(v).unwrap())
        .collect();

    let start = |cfg: cairn_ct::LogConfig| async move {
        cairn_ct::CtServer::start(&common::server_config(cfg))
            .await
            .unwrap()
    };
    let server = start(cfg.clone()).await;
    let base = common::base_url(server.local_addr());
    let spki = server.logs()[0].public_key_der().to_vec();
    let c = common::client();
    let checkpoint = async || common::get_checkpoint(&c, &base).await;
    // Cosigned by both witnesses at `size`: the log's signatures and both cosignatures verify.
    let cosigned_at = async |size: u64| {
        let note = checkpoint().await;
        let cp = cairn_tlog::checkpoint::verify_checkpoint(&note, common::ORIGIN, &spki).unwrap();
        (cp.checkpoint.size == size
            && vkeys
                .iter()
                .all(|v| verify_cosignature_v1(&note, &v.name, &v.public_key).is_ok()))
        .then_some(note)
    };

    // Grown in two steps, across a tile boundary: the second proof (3 -> 303) comes from tiles.
    common::add_many(&base, &pki, "a", 3).await;
    wait_for("cosignatures at 3", async || cosigned_at(3).await).await;
    common::add_many(&base, &pki, "b", 300).await;
    let note = wait_for("cosignatures at 303", async || cosigned_at(303).await).await;
    cairn_tlog::note::verify_ed25519(&note, common::ORIGIN, note_keys.ed25519.public_key())
        .unwrap();
    let status = server.logs()[0].witness_status();
    assert_eq!(status.len(), 3);
    for s in &status[..2] {
        assert_eq!(
            (s.cosigned_size, s.error.as_deref(), s.fork),
            (Some(303), None, false)
        );
    }
    assert_eq!(status[2].name, "dead.example");
    assert_eq!(status[2].cosigned_size, None);
    assert!(status[2].error.is_some() && !status[2].fork);
    server.shutdown().await;

    // The fork: the lock store is reset (with its storage, or the log would refuse to start)
    // and the same keys sequence other entries. The log still issues SCTs, but the witnesses
    // refuse the new tree (422 on the consistency proof from 303) and the log reports it.
    std::fs::remove_dir_all(&cfg.data_dir).unwrap();
    let server = start(cfg.clone()).await;
    let base = common::base_url(server.local_addr());
    common::add_many(&base, &pki, "fork", 310).await;
    let log = server.logs()[0].clone();
    let status = wait_for("the fork to be reported", async || {
        let s = log.witness_status();
        s[..2]
            .iter()
            .all(|s| {
                s.error
                    .as_deref()
                    .is_some_and(|e| e.contains("refused the consistency proof"))
            })
            .then_some(s)
    })
    .await;
    for s in &status[..2] {
        assert!(s.fork, "{s:?}");
    }
    let note = common::get_checkpoint(&c, &base).await;
    for v in &vkeys {
        assert!(verify_cosignature_v1(&note, &v.name, &v.public_key).is_err());
    }
    server.shutdown().await;
}

/// The sizes the witnesses cosigned survive a restart of the log: the restarted log's first
/// request to a witness already starts from the cosigned size (never `old 0` answered by a 409).
#[tokio::test]
async fn a_restarted_log_resumes_each_witness_from_the_size_it_cosigned() {
    let dir = tempfile::tempdir().unwrap();
    let pki = common::Pki::new();
    let mut cfg = common::log_config(dir.path(), &pki);
    let note_keys = cairn_ct::key_file::load_or_generate_note_keys(&cfg.note_key_path()).unwrap();
    let log_vkey = parse_vkey(&note_keys.ed25519.vkey(common::ORIGIN)).unwrap();
    let wkey = Ed25519NoteKey::generate().unwrap();
    let witness =
        Arc::new(Witness::new("w.example", wkey, vec![log_vkey], dir.path().join("w")).unwrap());
    let wvkey = witness.vkey();
    // The witness behind a layer that records each request's `old N` line.
    let olds: Arc<std::sync::Mutex<Vec<u64>>> = Arc::default();
    let rec = olds.clone();
    let app = witness.router().layer(axum::middleware::from_fn(
        move |req: axum::extract::Request, next: axum::middleware::Next| {
            let rec = rec.clone();
            async move {
                let (parts, body) = req.into_parts();
                let bytes = axum::body::to_bytes(body, 1 << 20).await.unwrap();
                let old: Option<u64> = std::str::from_utf8(&bytes)
                    .ok()
                    .and_then(|t| t.lines().next())
                    .and_then(|l| l.strip_prefix("old "))
                    .and_then(|n| n.parse().ok());
                rec.lock().unwrap().extend(old);
                next.run(axum::extract::Request::from_parts(parts, bytes.into()))
                    .await
            }
        },
    ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    cfg.witnesses = vec![cairn_ct::config::WitnessTarget {
        url,
        vkey: wvkey,
        timeout_ms: 2000,
    }];
    let server = cairn_ct::CtServer::start(&common::server_config(cfg.clone()))
        .await
        .unwrap();
    let base = common::base_url(server.local_addr());
    common::add_many(&base, &pki, "a", 5).await;
    let log = server.logs()[0].clone();
    wait_for("a cosignature at 5", async || {
        (log.witness_status()[0].cosigned_size == Some(5)).then_some(())
    })
    .await;
    server.shutdown().await;
    drop(log); // releases the data folder's lock
    olds.lock().unwrap().clear();

    let server = cairn_ct::CtServer::start(&common::server_config(cfg))
        .await
        .unwrap();
    let base = common::base_url(server.local_addr());
    common::add_many(&base, &pki, "b", 2).await;
    let log = server.logs()[0].clone();
    wait_for("a cosignature at 7", async || {
        (log.witness_status()[0].cosigned_size == Some(7)).then_some(())
    })
    .await;
    let sent = olds.lock().unwrap().clone();
    assert!(!sent.is_empty());
    assert!(sent.iter().all(|&old| old >= 5), "requests from {sent:?}");
    server.shutdown().await;
}
