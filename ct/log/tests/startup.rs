//! Start-up against existing storage: a log whose lock store has lost its checkpoint while its
//! storage holds a tree refuses to start (a new tree there would fork the log); a fresh data
//! folder, or one holding only an empty tree, starts.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use cairn_ct::{CtLog, LogConfig, RecoveryError, StartError};
use common::{Pki, log_config};
use std::path::Path;

/// Removes the log's SQLite lock store (and its journal files): the lock database is lost.
fn lose_lock_store(cfg: &LogConfig) {
    for name in ["lock.db", "lock.db-wal", "lock.db-shm", "lock.db-journal"] {
        let path = cfg.data_dir.join(name);
        if path.exists() {
            std::fs::remove_file(path).unwrap();
        }
    }
}

async fn start_and_stop(cfg: &LogConfig) {
    let log = CtLog::start(cfg.clone()).await.unwrap();
    log.shutdown().await;
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap()
}

#[tokio::test]
async fn a_log_with_tiles_and_an_empty_lock_store_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new();
    let mut cfg = log_config(dir.path(), &pki);
    cfg.period_ms = 20;
    let log = CtLog::start(cfg.clone()).await.unwrap();
    for name in ["a.example", "b.example"] {
        let leaf = pki.leaf(name, (2030, 6, 1), false, false);
        log.submit(&pki.chain(&leaf, false), false).await.unwrap();
    }
    assert_eq!(log.tree_size(), 2);
    log.shutdown().await;
    drop(log);
    let checkpoint = read(&cfg.data_dir.join("checkpoint"));

    lose_lock_store(&cfg);
    let err = CtLog::start(cfg.clone())
        .await
        .expect_err("a log whose lock store lost its checkpoint must not start a new tree");
    match &err {
        StartError::Recovery(RecoveryError::LockStoreEmpty { name, found }) => {
            assert_eq!(name, &cfg.name);
            assert!(found.contains("2 entries"), "{found}");
        }
        other => panic!("wrong error: {other:?}"),
    }
    assert!(
        err.to_string().contains("refusing to start a new tree"),
        "{err}"
    );
    // Nothing was overwritten: the published checkpoint is the old tree's.
    assert_eq!(read(&cfg.data_dir.join("checkpoint")), checkpoint);

    // Tiles without a published checkpoint (lost too) are refused as well.
    std::fs::remove_file(cfg.data_dir.join("checkpoint")).unwrap();
    lose_lock_store(&cfg);
    match CtLog::start(cfg.clone()).await {
        Err(StartError::Recovery(RecoveryError::LockStoreEmpty { found, .. })) => {
            assert_eq!(found, "tiles");
        }
        other => panic!("tiles alone must refuse the start: {other:?}"),
    }
}

#[tokio::test]
async fn a_checkpoint_from_another_key_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new();
    let cfg = log_config(dir.path(), &pki);
    start_and_stop(&cfg).await;
    // Another log's key: the stored (empty) checkpoint no longer verifies.
    std::fs::remove_file(&cfg.key_file).unwrap();
    lose_lock_store(&cfg);
    match CtLog::start(cfg.clone()).await {
        Err(StartError::Recovery(RecoveryError::LockStoreEmpty { found, .. })) => {
            assert!(found.contains("does not verify"), "{found}");
        }
        other => panic!("an unverifiable checkpoint must refuse the start: {other:?}"),
    }
}

#[tokio::test]
async fn a_fresh_or_empty_log_starts_without_its_lock_store() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new();
    let cfg = log_config(dir.path(), &pki);
    // Fresh data folder.
    start_and_stop(&cfg).await;
    assert!(cfg.data_dir.join("checkpoint").exists());
    // Only an empty tree was published: nothing to fork, a new tree at size 0 is the same.
    lose_lock_store(&cfg);
    let log = CtLog::start(cfg.clone()).await.unwrap();
    assert_eq!(log.tree_size(), 0);
    log.shutdown().await;
    drop(log);
    // And with the lock store kept, a restart is the ordinary recovery.
    start_and_stop(&cfg).await;
}

/// Copies (`back == false`) or restores the SQLite lock store files to/from `backup`.
fn copy_lock_store(cfg: &LogConfig, backup: &Path, back: bool) {
    std::fs::create_dir_all(backup).unwrap();
    for name in ["lock.db", "lock.db-wal", "lock.db-shm"] {
        let (live, saved) = (cfg.data_dir.join(name), backup.join(name));
        let (from, to) = if back { (saved, live) } else { (live, saved) };
        let _ = std::fs::remove_file(&to);
        if from.exists() {
            std::fs::copy(&from, &to).unwrap();
        }
    }
}

async fn submit_n(log: &CtLog, pki: &Pki, tag: &str, n: usize) {
    for i in 0..n {
        let leaf = pki.leaf(&format!("{tag}-{i}.example"), (2030, 6, 1), false, false);
        log.submit(&pki.chain(&leaf, false), false).await.unwrap();
    }
}

#[tokio::test]
async fn a_lock_store_restored_from_an_older_copy_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new();
    let mut cfg = log_config(dir.path(), &pki);
    cfg.period_ms = 20;
    let log = CtLog::start(cfg.clone()).await.unwrap();
    submit_n(&log, &pki, "a", 3).await;
    log.shutdown().await;
    drop(log);
    copy_lock_store(&cfg, &dir.path().join("backup"), false);
    // The same copy, restored before anything else was sequenced, is not a fork: it starts.
    copy_lock_store(&cfg, &dir.path().join("backup"), true);
    let log = CtLog::start(cfg.clone()).await.unwrap();
    submit_n(&log, &pki, "b", 2).await;
    assert_eq!(log.tree_size(), 5);
    log.shutdown().await;
    drop(log);
    // Now the backup is two entries behind the published checkpoint: restoring it would make
    // the log sequence other entries at indexes 3 and 4.
    copy_lock_store(&cfg, &dir.path().join("backup"), true);
    match CtLog::start(cfg.clone()).await {
        Err(StartError::Recovery(RecoveryError::StorageAhead { storage, lock, .. })) => {
            assert!(storage.contains("size 5"), "{storage}");
            assert!(lock.contains("size 3"), "{lock}");
        }
        other => panic!("a lock store behind storage must refuse the start: {other:?}"),
    }
}
