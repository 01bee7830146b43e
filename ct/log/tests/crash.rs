//! Crash safety: a log in a separate process is SIGKILLed under load and restarted; every SCT
//! returned before the kill is in the tree at its index, the new tree is consistent with every
//! checkpoint published before the crash, and resubmissions return the original SCTs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::backend::{Backend, Store};
use common::verifier::{self, verify_sct, x509_signed_entry};
use common::{Pki, chain_body, client, server_config};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A submitted certificate and its SCT.
type Submitted = (Vec<u8>, serde_json::Value);

const CHILD_ENV: &str = "CAIRN_CT_CRASH_CHILD_CONFIG";

/// Not a test on its own: the body of the child process (runs only with the env var set).
#[test]
fn child_log_server() {
    let Ok(config) = std::env::var(CHILD_ENV) else {
        return;
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async move {
        let cfg = cairn_ct::CtConfig::load(Path::new(&config)).unwrap();
        let server = cairn_ct::CtServer::start(&cfg).await.unwrap();
        let addr_file = PathBuf::from(format!("{config}.addr"));
        std::fs::write(
            addr_file.with_extension("tmp"),
            server.local_addr().to_string(),
        )
        .unwrap();
        std::fs::rename(addr_file.with_extension("tmp"), &addr_file).unwrap();
        // Serve until killed (bounded, in case the parent dies).
        tokio::time::sleep(Duration::from_secs(120)).await;
    });
}

#[allow(
    clippy::zombie_processes,
    reason = "callers kill and wait for the child"
)]
fn spawn_child(config: &Path) -> (Child, String) {
    let addr_file = PathBuf::from(format!("{}.addr", config.display()));
    let _ = std::fs::remove_file(&addr_file);
    let child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_log_server",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, config)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(addr) = std::fs::read_to_string(&addr_file) {
            return (child, format!("http://{addr}/2030"));
        }
        assert!(Instant::now() < deadline, "child log did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
}

on_every_backend!(#[tokio::test(flavor = "multi_thread", worker_threads = 4)] fn sigkill_under_load_loses_no_sct_and_never_forks);
async fn sigkill_under_load_loses_no_sct_and_never_forks(backend: Backend) {
    if std::env::var(CHILD_ENV).is_ok() {
        return;
    }
    let Some(store) = Store::start(backend).await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let pki = Arc::new(Pki::new());
    let mut log = store.log_config(dir.path(), &pki).await;
    log.period_ms = 30;
    let config_path = dir.path().join("ct.toml");
    std::fs::write(&config_path, toml::to_string(&server_config(log)).unwrap()).unwrap();
    let key_spki = || {
        let pem = std::fs::read_to_string(dir.path().join("log-key.pem")).unwrap();
        let der = cairn_pki::pem_decode_all(&pem).unwrap().remove(0).1;
        let kp = aws_lc_rs::signature::EcdsaKeyPair::from_pkcs8(
            &aws_lc_rs::signature::ECDSA_P256_SHA256_ASN1_SIGNING,
            &der,
        )
        .unwrap();
        use aws_lc_rs::encoding::AsDer;
        use aws_lc_rs::signature::KeyPair;
        kp.public_key().as_der().unwrap().as_ref().to_vec()
    };

    let (mut child, base) = spawn_child(&config_path);
    let spki = key_spki();
    let c = client();

    // Load: 16 workers submitting fresh certificates; a watcher records checkpoints.
    let scts: Arc<Mutex<Vec<Submitted>>> = Arc::default();
    let checkpoints: Arc<Mutex<Vec<String>>> = Arc::default();
    let mut workers = Vec::new();
    for w in 0..16 {
        let (c, base, pki, scts) = (c.clone(), base.clone(), pki.clone(), scts.clone());
        workers.push(tokio::spawn(async move {
            for i in 0..200 {
                let leaf = pki.leaf(&format!("w{w}-{i}.example"), (2030, 6, 1), false, false);
                let body = chain_body(&pki.chain(&leaf, false));
                let Ok(r) = c
                    .post(format!("{base}/ct/v1/add-chain"))
                    .json(&body)
                    .send()
                    .await
                else {
                    return;
                };
                if r.status() != 200 {
                    return;
                }
                let Ok(sct) = r.json::<serde_json::Value>().await else {
                    return;
                };
                scts.lock().unwrap().push((leaf.der, sct));
            }
        }));
    }
    let watcher = {
        let (c, base, cps) = (c.clone(), base.clone(), checkpoints.clone());
        tokio::spawn(async move {
            for _ in 0..1000 {
                if let Ok(r) = c.get(format!("{base}/checkpoint")).send().await
                    && r.status() == 200
                    && let Ok(t) = r.text().await
                {
                    cps.lock().unwrap().push(t);
                }
                tokio::time::sleep(Duration::from_millis(15)).await;
            }
        })
    };
    // Kill once a good number of SCTs are out (bounded wait).
    let deadline = Instant::now() + Duration::from_secs(60);
    while scts.lock().unwrap().len() < 400 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let before: Vec<_> = scts.lock().unwrap().clone();
    let cps_before: Vec<String> = checkpoints.lock().unwrap().clone();
    for w in workers {
        let _ = w.await;
    }
    watcher.abort();
    assert!(
        before.len() >= 400,
        "only {} SCTs before the kill",
        before.len()
    );

    // Restart on the same data and lock store.
    let (mut child, base) = spawn_child(&config_path);
    let snap = verifier::snapshot(&c, &base, common::ORIGIN, &spki).await;
    for (der, sct) in &before {
        let (ts, idx) = verify_sct(sct, &spki, 0, &x509_signed_entry(der));
        let e = &snap.entries[idx as usize];
        assert_eq!(
            &e.signed, der,
            "SCT'd entry missing at its index after the crash"
        );
        assert_eq!(e.timestamp, ts);
    }
    // Every checkpoint fetched before the crash (written atomically, so always whole) verifies
    // and is a prefix of the recovered tree.
    let mut checked = 0;
    for text in &cps_before {
        let old = verifier::verify_checkpoint(text, common::ORIGIN, &spki);
        verifier::assert_consistent(&old, &snap);
        checked += 1;
    }
    assert!(checked > 0);

    // Resubmissions return the original SCT; new submissions extend the same tree.
    for (der, sct) in before.iter().take(20) {
        let body = chain_body(&[der.clone(), pki.inter.der().to_vec()]);
        let again: serde_json::Value = c
            .post(format!("{base}/ct/v1/add-chain"))
            .json(&body)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(
            verify_sct(&again, &spki, 0, &x509_signed_entry(der)),
            verify_sct(sct, &spki, 0, &x509_signed_entry(der))
        );
    }
    let leaf = pki.leaf("after.example", (2030, 6, 1), false, false);
    let r = c
        .post(format!("{base}/ct/v1/add-chain"))
        .json(&chain_body(&pki.chain(&leaf, false)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let snap2 = verifier::snapshot(&c, &base, common::ORIGIN, &spki).await;
    verifier::assert_consistent(&snap.checkpoint, &snap2);
    child.kill().unwrap();
    child.wait().unwrap();
    eprintln!(
        "crash test: {} SCTs before SIGKILL, tree size {} after restart, {} pre-crash checkpoints checked",
        before.len(),
        snap.checkpoint.size,
        checked
    );
}

on_every_backend!(#[tokio::test] fn second_sequencer_on_the_same_lock_store_cannot_fork);
async fn second_sequencer_on_the_same_lock_store_cannot_fork(backend: Backend) {
    if std::env::var(CHILD_ENV).is_ok() {
        return;
    }
    let Some(store) = Store::start(backend).await else {
        return;
    };
    // A second process on the same data folder is refused by the folder lock; a log on another
    // folder sharing the lock store finds a committed checkpoint its tiles do not support and
    // refuses to start rather than fork. (The CAS itself is tested in `lockstore`.)
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new();
    let mut a = store.log_config(dir.path(), &pki).await;
    a.lock_db = Some(format!("sqlite://{}/shared-lock.db", dir.path().display()));
    let server = cairn_ct::CtServer::start(&server_config(a.clone()))
        .await
        .unwrap();
    let c = client();
    let base = common::base_url(server.local_addr());
    let leaf = pki.leaf("a.example", (2030, 6, 1), false, false);
    let r = c
        .post(format!("{base}/ct/v1/add-chain"))
        .json(&chain_body(&pki.chain(&leaf, false)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // Same data folder: refused by the folder lock.
    assert!(cairn_ct::CtLog::start(a.clone()).await.is_err());
    // Another data folder (on S3: another prefix) with the same key and lock store: the
    // committed tiles are not there.
    let mut b = a.clone();
    store.empty_storage(&mut b, dir.path());
    let err = cairn_ct::CtLog::start(b).await.unwrap_err();
    assert!(matches!(err, cairn_ct::StartError::Recovery(_)), "{err}");
    server.shutdown().await;
}
