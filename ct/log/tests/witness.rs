//! Two C2SP tlog-witnesses over HTTP: they cosign checkpoints that extend the last one they
//! cosigned (checked with RFC 9162 consistency proofs), keep that state across restarts, and
//! refuse a forked log, an unknown log, a bad signature and a stale old size.
#![allow(clippy::unwrap_used, clippy::expect_used)]

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
