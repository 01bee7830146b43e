//! A running log: start-up and crash recovery from the lock store's checkpoint, the bounded
//! submission pool, and the sequencer that writes tiles, fsyncs, advances the checkpoint by
//! compare-and-swap and only then answers the waiting submissions.

use crate::config::{LogConfig, WriteState};
use crate::key_file::{self, KeyFileError};
use crate::lockstore::{DedupRecord, LockError, LockStore};
use crate::roots::{self, RootsError};
use crate::s3::{S3Lock, S3Storage, decode_bundle, encode_bundle};
use crate::storage::{FsStorage, Storage};
use crate::witnessing::WitnessStatus;
use cairn_tlog::chain::{Accepted, ChainError, NotAfterWindow, Roots, validate_chain};
use cairn_tlog::checkpoint::{
    Checkpoint, CheckpointError, NoteKeys, sign_checkpoint_with_notes, verify_checkpoint,
};
use cairn_tlog::entry::{LogEntry, MAX_LEAF_INDEX, parse_data_tile};
use cairn_tlog::key::{KeyError, LogKey};
use cairn_tlog::merkle::{Hash, complete_root, empty_root, leaf_hash, root_from_subtrees};
use cairn_tlog::sct::{SctResponse, sign_sct};
use cairn_tlog::tile::{TILE_WIDTH, Tile, TileLevel, leaves_per_hash, partial_width};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::{oneshot, watch};

/// How often an idle log still signs a fresh checkpoint.
const IDLE_CHECKPOINT_INTERVAL: Duration = Duration::from_secs(10);

/// Start-up failures.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// The data folder could not be used.
    #[error("data folder: {0}")]
    Storage(#[source] std::io::Error),
    /// Another process holds this log's data folder.
    #[error("data folder {0} is locked by another process")]
    Locked(String),
    /// The key could not be loaded or generated.
    #[error(transparent)]
    Key(#[from] KeyFileError),
    /// The HSM key could not be opened (wrong PIN, no such token or key).
    #[error(transparent)]
    Hsm(#[from] cairn_hsm::HsmError),
    /// The roots could not be loaded.
    #[error(transparent)]
    Roots(#[from] RootsError),
    /// There are no roots.
    #[error("no root certificates in the roots folder")]
    NoRoots,
    /// The lock store failed.
    #[error(transparent)]
    Lock(#[from] LockError),
    /// The stored state is not consistent with the lock store's checkpoint.
    #[error(transparent)]
    Recovery(#[from] RecoveryError),
}

/// The stored log does not match its committed checkpoint.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RecoveryError {
    /// The committed checkpoint does not verify with this log's key and origin.
    #[error("committed checkpoint does not verify: {0}")]
    Checkpoint(#[from] CheckpointError),
    /// A tile the checkpoint needs is missing or has the wrong size.
    #[error("tile {0} is missing or malformed")]
    Tile(String),
    /// The tiles do not hash to the checkpoint's root.
    #[error("tiles do not match the committed root hash")]
    RootMismatch,
    /// Reading storage failed.
    #[error("storage: {0}")]
    Storage(#[from] std::io::Error),
    /// The lock store failed.
    #[error(transparent)]
    Lock(#[from] LockError),
    /// Signing the initial checkpoint failed.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// The lock store has no checkpoint for this log, yet its storage already holds a tree.
    /// Starting a new tree there would fork the log (and overwrite tiles that monitors and
    /// SCT holders rely on), so the log refuses to start.
    #[error(
        "the lock store has no checkpoint for log {name}, but its storage already holds {found}; \
         refusing to start a new tree over it: restore the lock database (lock_db, or lock.db \
         in the data folder) or point the log at an empty data folder"
    )]
    LockStoreEmpty {
        /// The log's name.
        name: String,
        /// What the storage holds (a checkpoint of some size, or tiles).
        found: String,
    },
    /// The storage's published checkpoint is ahead of, or differs from, the lock store's:
    /// the lock store was reset or restored from an older copy. Sequencing from the lock's
    /// checkpoint would fork the log that monitors have seen, so the log refuses to start.
    #[error(
        "log {name}: storage holds {storage}, but the lock store's checkpoint is {lock};          refusing to sequence from an older checkpoint (that would fork the published log):          restore the lock store's latest checkpoint"
    )]
    StorageAhead {
        /// The log's name.
        name: String,
        /// What storage published.
        storage: String,
        /// What the lock store holds.
        lock: String,
    },
    /// Object storage lags the lock store and the staging bundle that would catch it up is
    /// missing or unreadable.
    #[error(
        "log {name}: storage lags the lock store (storage size {storage_size}, lock size          {lock_size}) and the staging bundle {bundle} is missing or malformed"
    )]
    StagingMissing {
        /// The log's name.
        name: String,
        /// Size of the published checkpoint (0 if none).
        storage_size: u64,
        /// Size of the lock store's checkpoint.
        lock_size: u64,
        /// The bundle's key.
        bundle: String,
    },
}

/// Why a submission did not get an SCT.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SubmitError {
    /// The chain was refused (client error).
    #[error(transparent)]
    Chain(#[from] ChainError),
    /// The pool is full: retry later.
    #[error("too many pending submissions")]
    PoolFull,
    /// A stale resubmission (the leaf was issued more than a day ago) shed because the pool is
    /// at least half full: retry much later.
    #[error("the log is busy and sheds certificates issued more than a day ago; retry later")]
    Shed,
    /// The shard does not take submissions now (before its inception, or read-only).
    #[error("{0}")]
    Closed(&'static str),
    /// The log cannot sequence right now (stopping, lost its lock, or a sequencing cycle
    /// failed): retry later.
    #[error("log temporarily unavailable")]
    Unavailable,
    /// An internal failure (logged; not for clients).
    #[error("internal error: {0}")]
    Internal(String),
}

/// Where a submission landed.
#[derive(Debug, Clone, Copy)]
struct Sequenced {
    index: u64,
    timestamp: u64,
}

type Waiter = oneshot::Sender<Result<Sequenced, SubmitError>>;

struct Pending {
    accepted: Accepted,
    key: Hash,
    waiters: Vec<Waiter>,
}

#[derive(Default)]
struct Pool {
    items: Vec<Pending>,
    by_key: HashMap<Hash, usize>,
    /// Entries of the batch being sequenced (no longer in `items`, not yet in the lock store's
    /// dedup index), with resubmissions waiting for their outcome.
    inflight: HashMap<Hash, Vec<Waiter>>,
    /// Bumped whenever in-flight entries are settled (committed or failed): a submitter that
    /// looked the dedup index up in an older epoch must look again.
    epoch: u64,
}

/// A leaf whose NotBefore is further in the past than this is a stale resubmission (already
/// issued, most likely logged elsewhere, sent again by a crawler or a bulk uploader).
const STALE_AFTER_S: u64 = 24 * 3600;

/// Admission under pressure: how many pending entries a submission may find in the pool and
/// still join it. Precertificates block issuance, so they may fill the whole pool; final
/// certificates are refused from three quarters full; stale resubmissions from half full.
fn pool_limit(pool_size: usize, precert: bool, stale: bool) -> usize {
    let limit = if stale {
        pool_size / 2
    } else if precert {
        pool_size
    } else {
        pool_size * 3 / 4
    };
    limit.max(1)
}

impl Pool {
    /// Joins `tx` to a pending or in-flight submission of `key`; gives it back if there is none.
    fn join(&mut self, key: &Hash, tx: Waiter) -> Option<Waiter> {
        if let Some(&i) = self.by_key.get(key) {
            self.items[i].waiters.push(tx);
            None
        } else if let Some(w) = self.inflight.get_mut(key) {
            w.push(tx);
            None
        } else {
            Some(tx)
        }
    }
}

pub(crate) struct Inner {
    pub(crate) config: LogConfig,
    pub(crate) origin: String,
    pub(crate) key: LogKey,
    pub(crate) note_keys: NoteKeys,
    pub(crate) roots: Roots,
    pub(crate) storage: Arc<dyn Storage>,
    window: NotAfterWindow,
    lock: LockStore,
    pool: Mutex<Pool>,
    /// Size of the latest committed checkpoint (what readers may see).
    pub(crate) committed_size: AtomicU64,
    stopped: AtomicBool,
    /// A cycle failed and the sequencer is reloading (and catching storage up): submissions
    /// are refused with `Unavailable` rather than queued behind an outage.
    recovering: AtomicBool,
    shutdown: watch::Sender<bool>,
    /// The checkpoint note last published by the sequencer (without cosignatures); held while
    /// the `checkpoint` object is written, so a cosigned copy never replaces a newer one.
    published: tokio::sync::Mutex<String>,
    /// Every newly published checkpoint note, for the witnessing task.
    checkpoints: watch::Sender<String>,
    /// When the sequencer last published a checkpoint (ms since the epoch).
    last_checkpoint_ms: AtomicU64,
    /// What each configured witness last answered.
    pub(crate) witness_status: Mutex<Vec<WitnessStatus>>,
    /// The gzip form of full tiles the read path served (immutable, so compressed once).
    pub(crate) gzip_tiles: crate::tile_cache::TileCache,
    _dir_lock: std::fs::File,
}

/// A running CT log. Cloning shares it.
#[derive(Clone)]
pub struct CtLog {
    pub(crate) inner: Arc<Inner>,
    task: Arc<Mutex<Option<tokio::task::JoinHandle<()>>>>,
    witness_task: Arc<Mutex<Option<tokio::task::JoinHandle<()>>>>,
}

impl std::fmt::Debug for CtLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CtLog")
            .field("name", &self.inner.config.name)
            .field("origin", &self.inner.origin)
            .finish()
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

impl CtLog {
    /// Opens (or creates) the log described by `config`, recovers its state from the lock
    /// store's checkpoint, and starts its sequencer. Its gzip tile cache holds
    /// [`DEFAULT_GZIP_TILE_CACHE_BYTES`](crate::config::DEFAULT_GZIP_TILE_CACHE_BYTES).
    pub async fn start(config: LogConfig) -> Result<CtLog, StartError> {
        Self::start_with_tile_cache(config, crate::config::DEFAULT_GZIP_TILE_CACHE_BYTES).await
    }

    /// [`CtLog::start`] with a gzip tile cache of `gzip_tile_cache_bytes` (0: off), the
    /// compressed full tiles the read path keeps in memory.
    pub async fn start_with_tile_cache(
        config: LogConfig,
        gzip_tile_cache_bytes: usize,
    ) -> Result<CtLog, StartError> {
        std::fs::create_dir_all(&config.data_dir).map_err(StartError::Storage)?;
        let storage: Arc<dyn Storage> = match &config.s3 {
            Some(s3) => Arc::new(S3Storage::new(s3).map_err(StartError::Storage)?),
            None => Arc::new(FsStorage::new(&config.data_dir).map_err(StartError::Storage)?),
        };
        let lock_file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(config.data_dir.join(".lock"))
            .map_err(StartError::Storage)?;
        if lock_file.try_lock().is_err() {
            return Err(StartError::Locked(config.data_dir.display().to_string()));
        }
        let key = match &config.key_pkcs11 {
            Some(hsm) => {
                let signer = cairn_hsm::Pkcs11Signer::open_arc(hsm)?;
                LogKey::from_external(signer).map_err(KeyFileError::Key)?
            }
            None => key_file::load_or_generate(&config.key_file)?,
        };
        let note_keys = key_file::load_or_generate_note_keys(&config.note_key_path())?;
        let roots = roots::load(&roots::RootSources {
            dir: Some(&config.roots_dir),
            ccadb_csv: config.ccadb_csv.as_deref(),
            merge_delay_monitor_root: config.merge_delay_monitor_root,
            data_dir: Some(&config.data_dir),
        })?;
        if roots.is_empty() {
            return Err(StartError::NoRoots);
        }
        let lock = match config.lock_db_url() {
            Some(url) => LockStore::connect(&url).await?,
            None => LockStore::open_sqlite(&config.data_dir.join("lock.db")).await?,
        };
        let lock = match &config.lock_s3 {
            Some(s3) => lock.with_s3_lock(S3Lock::new(s3).map_err(StartError::Storage)?),
            None => lock,
        };
        let window = NotAfterWindow {
            start: u64::try_from(config.not_after_start.unix_timestamp()).unwrap_or(0),
            limit: u64::try_from(config.not_after_limit.unix_timestamp()).unwrap_or(0),
        };
        let (shutdown, shutdown_rx) = watch::channel(false);
        let witness_status = config.witnesses.iter().map(WitnessStatus::new).collect();
        let inner = Arc::new(Inner {
            origin: config.origin(),
            config,
            key,
            note_keys,
            roots,
            storage,
            window,
            lock,
            pool: Mutex::new(Pool::default()),
            committed_size: AtomicU64::new(0),
            stopped: AtomicBool::new(false),
            recovering: AtomicBool::new(false),
            shutdown,
            published: tokio::sync::Mutex::new(String::new()),
            checkpoints: watch::channel(String::new()).0,
            witness_status: Mutex::new(witness_status),
            gzip_tiles: crate::tile_cache::TileCache::new(gzip_tile_cache_bytes),
            last_checkpoint_ms: AtomicU64::new(0),
            _dir_lock: lock_file,
        });
        let state = recover(&inner).await?;
        tracing::info!(
            log = %inner.config.name,
            size = state.size,
            "CT log recovered from its committed checkpoint"
        );
        let witness_task = (!inner.config.witnesses.is_empty()).then(|| {
            tokio::spawn(crate::witnessing::run(
                inner.clone(),
                inner.checkpoints.subscribe(),
                shutdown_rx.clone(),
            ))
        });
        let task = tokio::spawn(sequencer(inner.clone(), state, shutdown_rx));
        Ok(CtLog {
            inner,
            task: Arc::new(Mutex::new(Some(task))),
            witness_task: Arc::new(Mutex::new(witness_task)),
        })
    }

    /// The log's name.
    pub fn name(&self) -> &str {
        &self.inner.config.name
    }

    /// The checkpoint origin.
    pub fn origin(&self) -> &str {
        &self.inner.origin
    }

    /// The configuration.
    pub fn config(&self) -> &LogConfig {
        &self.inner.config
    }

    /// The log's public key, SubjectPublicKeyInfo DER.
    pub fn public_key_der(&self) -> &[u8] {
        self.inner.key.spki_der()
    }

    /// The signed-note verifier keys: Ed25519 (type 0x01) and ML-DSA-44 cosigner (type 0x06),
    /// both named by the origin.
    pub fn vkeys(&self) -> [String; 2] {
        [
            self.inner.note_keys.ed25519.vkey(&self.inner.origin),
            self.inner.note_keys.ml_dsa_44.vkey(&self.inner.origin),
        ]
    }

    /// The RFC 6962 LogID.
    pub fn log_id(&self) -> Hash {
        self.inner.key.log_id()
    }

    /// What each configured witness last answered (in configuration order).
    pub fn witness_status(&self) -> Vec<WitnessStatus> {
        self.inner
            .witness_status
            .lock()
            .map(|s| s.clone())
            .unwrap_or_default()
    }

    /// How long ago the sequencer last published a checkpoint (an idle log publishes one
    /// every 10 s, a busy one every period).
    pub fn checkpoint_age(&self) -> Duration {
        let last = self.inner.last_checkpoint_ms.load(Ordering::Acquire);
        Duration::from_millis(now_ms().saturating_sub(last))
    }

    /// The latest checkpoint note the sequencer published (without witness cosignatures).
    pub async fn published_note(&self) -> String {
        self.inner.published.lock().await.clone()
    }

    /// How many distinct entries wait in the pool for the next sequencing cycle.
    pub fn pending(&self) -> usize {
        self.inner.pool.lock().map(|p| p.items.len()).unwrap_or(0)
    }

    /// The size of the latest committed checkpoint.
    pub fn tree_size(&self) -> u64 {
        self.inner.committed_size.load(Ordering::Acquire)
    }

    /// Validates `chain` (leaf first, DER) and waits until its entry is durably sequenced;
    /// returns its SCT. A resubmission returns the original timestamp and index.
    pub async fn submit(
        &self,
        chain: &[Vec<u8>],
        precert: bool,
    ) -> Result<SctResponse, SubmitError> {
        let inner = &self.inner;
        if inner.stopped.load(Ordering::Acquire) || inner.recovering.load(Ordering::Acquire) {
            return Err(SubmitError::Unavailable);
        }
        match inner.config.write_state(time::OffsetDateTime::now_utc()) {
            WriteState::Open => {}
            WriteState::NotYetOpen => {
                return Err(SubmitError::Closed(
                    "this log shard does not accept submissions before its inception",
                ));
            }
            _ => {
                return Err(SubmitError::Closed(
                    "this log shard is read-only: its NotAfter window has closed",
                ));
            }
        }
        let accepted = validate_chain(&inner.roots, chain, precert, inner.window)?;
        let key = accepted.entry.dedup_key();
        let entry = accepted.entry.clone();
        let now_s = u64::try_from(time::OffsetDateTime::now_utc().unix_timestamp()).unwrap_or(0);
        let stale = now_s.saturating_sub(accepted.not_before) > STALE_AFTER_S;
        let limit = pool_limit(inner.config.pool_size, precert, stale);
        let (tx, rx) = oneshot::channel();
        let lock_pool = || {
            inner
                .pool
                .lock()
                .map_err(|_| SubmitError::Internal("pool lock poisoned".into()))
        };
        // A submission of the same entry may be pending, being sequenced, or committed. The
        // dedup index is read outside the pool lock; the epoch tells whether an in-flight batch
        // was settled meanwhile (then its records may have been missed: read again).
        let mut tx = Some(tx);
        let mut accepted = Some(accepted);
        for _ in 0..8 {
            let epoch = {
                let mut pool = lock_pool()?;
                let Some(t) = tx.take() else { break };
                match pool.join(&key, t) {
                    None => break,
                    Some(t) => tx = Some(t),
                }
                pool.epoch
            };
            if let Some(rec) = inner
                .lock
                .get_dedup(&inner.config.name, &key)
                .await
                .map_err(|e| SubmitError::Internal(e.to_string()))?
            {
                if rec.index >= inner.committed_size.load(Ordering::Acquire) {
                    // Committed in the lock store but its files are not all stored yet (an
                    // upload failed after the compare-and-swap; recovery is catching up).
                    return Err(SubmitError::Unavailable);
                }
                metrics::counter!("cairn_ct_duplicates_total", "log" => inner.config.name.clone())
                    .increment(1);
                return sign_sct(&inner.key, &entry, rec.timestamp, rec.index)
                    .map_err(|e| SubmitError::Internal(e.to_string()));
            }
            let mut pool = lock_pool()?;
            let Some(t) = tx.take() else { break };
            let Some(t) = pool.join(&key, t) else { break };
            if pool.epoch != epoch {
                tx = Some(t);
                continue;
            }
            if pool.items.len() >= limit {
                let shed = if stale {
                    "stale"
                } else if precert {
                    "precert"
                } else {
                    "cert"
                };
                metrics::counter!("cairn_ct_pool_refused_total", "log" => inner.config.name.clone(), "kind" => shed)
                    .increment(1);
                return Err(if stale {
                    SubmitError::Shed
                } else {
                    SubmitError::PoolFull
                });
            }
            let Some(accepted) = accepted.take() else {
                break;
            };
            let i = pool.items.len();
            pool.items.push(Pending {
                accepted,
                key,
                waiters: vec![t],
            });
            pool.by_key.insert(key, i);
            metrics::gauge!("cairn_ct_pool_size", "log" => inner.config.name.clone())
                .set(pool.items.len() as f64);
            break;
        }
        if tx.is_some() {
            // The log kept settling batches while this submission looked: try again later.
            return Err(SubmitError::Unavailable);
        }
        let seq = rx.await.map_err(|_| SubmitError::Unavailable)??;
        sign_sct(&inner.key, &entry, seq.timestamp, seq.index)
            .map_err(|e| SubmitError::Internal(e.to_string()))
    }

    /// Stops the sequencer after its current cycle; pending submissions get `Unavailable`.
    /// Readiness: the log runs, its lock store answers with its checkpoint, and its storage
    /// holds the published checkpoint; `Err` says which is not so.
    pub async fn check_ready(&self) -> Result<(), String> {
        let running = self
            .task
            .lock()
            .map(|t| t.as_ref().is_some_and(|t| !t.is_finished()))
            .unwrap_or(false);
        if !running {
            return Err("the sequencer is not running".into());
        }
        match self
            .inner
            .lock
            .get_checkpoint(&self.inner.config.name)
            .await
        {
            Ok(Some(_)) => {}
            Ok(None) => return Err("the lock store has no checkpoint".into()),
            Err(_) => return Err("the lock store does not answer".into()),
        }
        let storage = self.inner.storage.clone();
        match tokio::task::spawn_blocking(move || storage.exists("checkpoint")).await {
            Ok(Ok(true)) => Ok(()),
            Ok(Ok(false)) => Err("storage has no checkpoint".into()),
            _ => Err("storage does not answer".into()),
        }
    }

    /// Stops the sequencer and closes the lock store.
    pub async fn shutdown(&self) {
        let _ = self.inner.shutdown.send(true);
        for handle in [&self.task, &self.witness_task] {
            let task = handle.lock().ok().and_then(|mut t| t.take());
            if let Some(task) = task {
                let _ = task.await;
            }
        }
        self.inner.lock.close().await;
    }
}

/// The sequencer's view of the tree's right edge.
struct TreeState {
    size: u64,
    /// For each level, the hashes of its rightmost, incomplete tile.
    levels: Vec<Vec<Hash>>,
    /// The TileLeafs of the incomplete data tile.
    data: Vec<u8>,
    /// The committed checkpoint note (the CAS's expected value).
    note: String,
    /// Its timestamp.
    timestamp: u64,
    /// The paths of the partial tiles the last cycle wrote: the tree only grows, so a path
    /// not among the current partial tiles is never written again and is forgotten (one entry
    /// per level, however long the log runs).
    written_partials: HashSet<String>,
    /// Issuers known to be stored.
    issuers: HashSet<Hash>,
}

impl TreeState {
    fn append(&mut self, leaf_hash: Hash, tile_leaf: &[u8], files: &mut Vec<(String, Vec<u8>)>) {
        self.data.extend_from_slice(tile_leaf);
        if self.levels.is_empty() {
            self.levels.push(Vec::new());
        }
        self.levels[0].push(leaf_hash);
        self.size += 1;
        if self.size.is_multiple_of(TILE_WIDTH) {
            let tile = Tile {
                level: TileLevel::Data,
                index: self.size / TILE_WIDTH - 1,
                width: 256,
            };
            files.push((tile.path(), std::mem::take(&mut self.data)));
        }
        let mut level = 0usize;
        while self.levels[level].len() as u64 == TILE_WIDTH {
            let full = std::mem::take(&mut self.levels[level]);
            let per_tile = leaves_per_hash(level as u8 + 1).unwrap_or(u64::MAX);
            let tile = Tile {
                level: TileLevel::Hash(level as u8),
                index: self.size / per_tile - 1,
                width: 256,
            };
            files.push((tile.path(), full.concat()));
            let Some(root) = complete_root(&full) else {
                break;
            };
            if self.levels.len() == level + 1 {
                self.levels.push(Vec::new());
            }
            self.levels[level + 1].push(root);
            level += 1;
        }
    }

    fn partial_tiles(&mut self, files: &mut Vec<(String, Vec<u8>)>) {
        let mut current = HashSet::with_capacity(self.levels.len() + 1);
        for (level, hashes) in self.levels.iter().enumerate() {
            if hashes.is_empty() {
                continue;
            }
            let per_tile = leaves_per_hash(level as u8 + 1).unwrap_or(u64::MAX);
            let tile = Tile {
                level: TileLevel::Hash(level as u8),
                index: self.size / per_tile,
                width: hashes.len() as u16,
            };
            let path = tile.path();
            if !self.written_partials.contains(&path) {
                files.push((path.clone(), hashes.concat()));
            }
            current.insert(path);
        }
        if !self.data.is_empty() {
            let tile = Tile {
                level: TileLevel::Data,
                index: self.size / TILE_WIDTH,
                width: (self.size % TILE_WIDTH) as u16,
            };
            let path = tile.path();
            if !self.written_partials.contains(&path) {
                files.push((path.clone(), self.data.clone()));
            }
            current.insert(path);
        }
        self.written_partials = current;
    }

    fn root(&self) -> Option<Hash> {
        let mut subtrees = Vec::new();
        for (level, hashes) in self.levels.iter().enumerate().rev() {
            let per = leaves_per_hash(level as u8)?;
            subtrees.extend(hashes.iter().map(|h| (per, *h)));
        }
        root_from_subtrees(&subtrees)
    }
}

async fn blocking_put(
    storage: &Arc<dyn Storage>,
    files: Vec<(String, Vec<u8>)>,
) -> std::io::Result<()> {
    let storage = storage.clone();
    tokio::task::spawn_blocking(move || storage.put_all(&files))
        .await
        .map_err(|_| std::io::Error::other("storage task failed"))?
}

/// Writes the `checkpoint` object (the sequencer's note, no cosignatures yet) and hands the
/// note to the witnessing task.
async fn publish_checkpoint(inner: &Inner, note: String) -> std::io::Result<()> {
    let mut published = inner.published.lock().await;
    blocking_put(
        &inner.storage,
        vec![("checkpoint".into(), note.clone().into_bytes())],
    )
    .await?;
    *published = note.clone();
    inner.last_checkpoint_ms.store(now_ms(), Ordering::Release);
    inner.checkpoints.send_replace(note);
    Ok(())
}

/// Rewrites the `checkpoint` object as `note` followed by witness cosignature `lines`, unless
/// the sequencer has published a newer checkpoint meanwhile.
pub(crate) async fn publish_cosigned(
    inner: &Inner,
    note: &str,
    lines: &str,
) -> std::io::Result<()> {
    let published = inner.published.lock().await;
    if *published != note {
        return Ok(());
    }
    blocking_put(
        &inner.storage,
        vec![("checkpoint".into(), format!("{note}{lines}").into_bytes())],
    )
    .await
}

/// With no checkpoint in the lock store, the log may start a new tree only if its storage holds
/// none: no published checkpoint beyond size 0 and no tiles. A lost or wrongly configured lock
/// database must stop the log rather than restart it at size 0.
async fn refuse_if_storage_holds_a_tree(inner: &Inner) -> Result<(), RecoveryError> {
    let storage = inner.storage.clone();
    let (checkpoint, tiles) = tokio::task::spawn_blocking(move || {
        Ok::<_, std::io::Error>((storage.get("checkpoint")?, storage.any_under("tile")?))
    })
    .await
    .map_err(|_| std::io::Error::other("storage task failed"))??;
    let found = match checkpoint {
        Some(note) => {
            let note = String::from_utf8_lossy(&note);
            match verify_checkpoint(&note, &inner.origin, inner.key.spki_der()) {
                Ok(signed) if signed.checkpoint.size == 0 => None,
                Ok(signed) => Some(format!(
                    "a checkpoint of {} entries",
                    signed.checkpoint.size
                )),
                Err(_) => Some("a checkpoint that does not verify with this log's key".into()),
            }
        }
        None => None,
    };
    let found = found.or_else(|| tiles.then(|| "tiles".to_owned()));
    match found {
        Some(found) => Err(RecoveryError::LockStoreEmpty {
            name: inner.config.name.clone(),
            found,
        }),
        None => Ok(()),
    }
}

/// Rebuilds the right edge of the tree from the lock store's checkpoint and the stored tiles,
/// and republishes that checkpoint. Anything stored beyond it is ignored (and will be
/// overwritten as new entries are sequenced).
async fn recover(inner: &Inner) -> Result<TreeState, RecoveryError> {
    let name = &inner.config.name;
    let note = match inner.lock.get_checkpoint(name).await? {
        Some(note) => note,
        None => {
            refuse_if_storage_holds_a_tree(inner).await?;
            let cp = Checkpoint {
                origin: inner.origin.clone(),
                size: 0,
                root: empty_root(),
            };
            let note = sign_checkpoint_with_notes(&inner.key, &inner.note_keys, &cp, now_ms())?;
            match inner.lock.create_checkpoint(name, &note).await {
                Ok(()) => note,
                Err(LockError::Conflict) => inner
                    .lock
                    .get_checkpoint(name)
                    .await?
                    .ok_or(RecoveryError::Lock(LockError::Conflict))?,
                Err(e) => return Err(e.into()),
            }
        }
    };
    let signed = verify_checkpoint(&note, &inner.origin, inner.key.spki_der())?;
    let size = signed.checkpoint.size;
    reconcile_storage(inner, &note, &signed.checkpoint).await?;
    let read = |tile: Tile| {
        let path = tile.path();
        let storage = inner.storage.clone();
        async move {
            let p = path.clone();
            let data = tokio::task::spawn_blocking(move || storage.get(&p))
                .await
                .map_err(|_| RecoveryError::Tile(path.clone()))??;
            data.ok_or(RecoveryError::Tile(path))
        }
    };
    let mut levels = Vec::new();
    let mut level = 0u8;
    while let Some(per) = leaves_per_hash(level) {
        if per > size {
            break;
        }
        let width = partial_width(size, level);
        let mut hashes = Vec::new();
        if width > 0 {
            let tile = Tile {
                level: TileLevel::Hash(level),
                index: size / per / TILE_WIDTH,
                width,
            };
            let bytes = read(tile).await?;
            if bytes.len() != usize::from(width) * 32 {
                return Err(RecoveryError::Tile(tile.path()));
            }
            hashes = bytes
                .chunks_exact(32)
                .map(|c| {
                    let mut h = [0u8; 32];
                    h.copy_from_slice(c);
                    h
                })
                .collect();
        }
        levels.push(hashes);
        level += 1;
    }
    let mut data = Vec::new();
    let width = partial_width(size, 0);
    if width > 0 {
        let tile = Tile {
            level: TileLevel::Data,
            index: size / TILE_WIDTH,
            width,
        };
        data = read(tile).await?;
        let leaves = parse_data_tile(&data).map_err(|_| RecoveryError::Tile(tile.path()))?;
        let hashes: Vec<Hash> = leaves
            .iter()
            .map(|l| leaf_hash(&l.merkle_tree_leaf))
            .collect();
        if levels.first() != Some(&hashes) {
            return Err(RecoveryError::Tile(tile.path()));
        }
    }
    let state = TreeState {
        size,
        levels,
        data,
        note: note.clone(),
        timestamp: signed.timestamp,
        written_partials: HashSet::new(),
        issuers: HashSet::new(),
    };
    if state.root() != Some(signed.checkpoint.root) {
        return Err(RecoveryError::RootMismatch);
    }
    publish_checkpoint(inner, note).await?;
    inner.committed_size.store(size, Ordering::Release);
    metrics::gauge!("cairn_ct_tree_size", "log" => name.clone()).set(size as f64);
    Ok(state)
}

/// The staging bundle's key for the cycle that produced `cp`.
fn staging_key(cp: &Checkpoint) -> String {
    format!("staging/{}-{}", cp.size, hex::encode(cp.root))
}

async fn storage_get(inner: &Inner, key: &str) -> std::io::Result<Option<Vec<u8>>> {
    let storage = inner.storage.clone();
    let key = key.to_owned();
    tokio::task::spawn_blocking(move || storage.get(&key))
        .await
        .map_err(|_| std::io::Error::other("storage task failed"))?
}

/// Compares the checkpoint published in storage with the lock store's `lock` (note `note`).
/// Storage ahead of the lock, or at the same size with another root, means the lock store
/// went back in time: refuse. Storage behind the lock on object storage (a crash or failed
/// upload after the compare-and-swap) is caught up from the lock checkpoint's staging bundle.
async fn reconcile_storage(
    inner: &Inner,
    note: &str,
    lock: &Checkpoint,
) -> Result<(), RecoveryError> {
    let name = &inner.config.name;
    let stored = storage_get(inner, "checkpoint").await?;
    let stored = match stored {
        Some(bytes) if bytes == note.as_bytes() => return Ok(()),
        Some(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            match verify_checkpoint(&text, &inner.origin, inner.key.spki_der()) {
                Ok(s) => Some(s.checkpoint),
                Err(_) => {
                    return Err(RecoveryError::StorageAhead {
                        name: name.clone(),
                        storage: "a checkpoint that does not verify with this log's key".into(),
                        lock: format!("size {}", lock.size),
                    });
                }
            }
        }
        None => None,
    };
    if let Some(st) = &stored
        && (st.size > lock.size || (st.size == lock.size && st.root != lock.root))
    {
        return Err(RecoveryError::StorageAhead {
            name: name.clone(),
            storage: format!(
                "a checkpoint of size {} root {}",
                st.size,
                hex::encode(st.root)
            ),
            lock: format!("size {} root {}", lock.size, hex::encode(lock.root)),
        });
    }
    let storage_size = stored.as_ref().map_or(0, |s| s.size);
    if !inner.storage.staged() || storage_size == lock.size {
        return Ok(());
    }
    let key = staging_key(lock);
    let missing = || RecoveryError::StagingMissing {
        name: name.clone(),
        storage_size,
        lock_size: lock.size,
        bundle: key.clone(),
    };
    let bundle = storage_get(inner, &key).await?.ok_or_else(missing)?;
    let files = decode_bundle(&bundle).ok_or_else(missing)?;
    tracing::warn!(
        log = %name,
        storage_size,
        lock_size = lock.size,
        files = files.len(),
        "storage lags the lock store: uploading the staging bundle again"
    );
    blocking_put(&inner.storage, files).await?;
    Ok(())
}

/// Why one sequencing cycle failed.
#[derive(Debug, thiserror::Error)]
enum CycleError {
    #[error("storage: {0}")]
    Storage(#[from] std::io::Error),
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error("the log is full")]
    Full,
    #[error("root computation failed")]
    Root,
}

async fn sequencer(inner: Arc<Inner>, mut state: TreeState, mut shutdown: watch::Receiver<bool>) {
    let name = inner.config.name.clone();
    let mut ticker = tokio::time::interval(Duration::from_millis(inner.config.period_ms));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = shutdown.changed() => break,
        }
        let batch = match inner.pool.lock() {
            Ok(mut pool) => {
                pool.by_key.clear();
                let batch = std::mem::take(&mut pool.items);
                for p in &batch {
                    pool.inflight.insert(p.key, Vec::new());
                }
                batch
            }
            Err(_) => break,
        };
        let keys: Vec<Hash> = batch.iter().map(|p| p.key).collect();
        metrics::gauge!("cairn_ct_pool_size", "log" => name.clone()).set(0.0);
        let idle_for = now_ms().saturating_sub(state.timestamp);
        if batch.is_empty() && u128::from(idle_for) < IDLE_CHECKPOINT_INTERVAL.as_millis() {
            continue;
        }
        let started = Instant::now();
        let count = batch.len();
        let outcome = sequence(&inner, &mut state, batch).await;
        settle(&inner, &keys, outcome.as_ref().ok());
        match outcome.map(|_| ()) {
            Ok(()) => {
                metrics::histogram!("cairn_ct_sequencing_duration_seconds", "log" => name.clone())
                    .record(started.elapsed().as_secs_f64());
                metrics::counter!("cairn_ct_sequenced_entries_total", "log" => name.clone())
                    .increment(count as u64);
                metrics::gauge!("cairn_ct_tree_size", "log" => name.clone()).set(state.size as f64);
                // What the `CtCheckpointStale` alert watches: the last checkpoint's time.
                metrics::gauge!("cairn_ct_checkpoint_timestamp_seconds", "log" => name.clone())
                    .set(state.timestamp as f64 / 1000.0);
            }
            Err(CycleError::Lock(LockError::Conflict)) => {
                tracing::error!(log = %name, "checkpoint compare-and-swap lost: another sequencer owns this log; stopping");
                inner.stopped.store(true, Ordering::Release);
                break;
            }
            Err(e) => {
                tracing::error!(log = %name, error = %e, "sequencing failed; reloading from the committed checkpoint");
                inner.recovering.store(true, Ordering::Release);
                drain_pool(&inner);
                loop {
                    match recover(&inner).await {
                        Ok(s) => {
                            state = s;
                            inner.recovering.store(false, Ordering::Release);
                            break;
                        }
                        Err(e) => {
                            tracing::error!(log = %name, error = %e, "recovery failed; retrying");
                            drain_pool(&inner);
                            tokio::select! {
                                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                                _ = shutdown.changed() => return fail_pool(&inner),
                            }
                        }
                    }
                }
            }
        }
    }
    fail_pool(&inner);
}

/// Answers the resubmissions that joined in-flight entries (with the committed positions, or
/// `Unavailable` by dropping them if the cycle failed) and opens a new epoch.
fn settle(inner: &Inner, keys: &[Hash], committed: Option<&Vec<(Hash, Sequenced)>>) {
    let Ok(mut pool) = inner.pool.lock() else {
        return;
    };
    let mut waiters: Vec<(Vec<Waiter>, Option<Sequenced>)> = Vec::new();
    match committed {
        Some(done) => {
            for (key, seq) in done {
                if let Some(w) = pool.inflight.remove(key) {
                    waiters.push((w, Some(*seq)));
                }
            }
        }
        None => {
            for key in keys {
                pool.inflight.remove(key);
            }
        }
    }
    pool.inflight.clear();
    pool.epoch += 1;
    drop(pool);
    for (ws, seq) in waiters {
        if let Some(seq) = seq {
            for w in ws {
                let _ = w.send(Ok(seq));
            }
        }
    }
}

fn fail_pool(inner: &Inner) {
    inner.stopped.store(true, Ordering::Release);
    drain_pool(inner);
}

/// Answers every pending submission with `Unavailable`.
fn drain_pool(inner: &Inner) {
    if let Ok(mut pool) = inner.pool.lock() {
        pool.by_key.clear();
        pool.inflight.clear();
        pool.epoch += 1;
        for p in pool.items.drain(..) {
            for w in p.waiters {
                let _ = w.send(Err(SubmitError::Unavailable));
            }
        }
    }
}

/// One cycle: sequence `batch`, write its tiles and issuers durably, commit the checkpoint
/// (CAS) with the dedup records, publish the checkpoint file, then answer. On error every
/// waiter gets `Unavailable` (dropping the senders) and `state` must be reloaded.
async fn sequence(
    inner: &Inner,
    state: &mut TreeState,
    batch: Vec<Pending>,
) -> Result<Vec<(Hash, Sequenced)>, CycleError> {
    let timestamp = now_ms().max(state.timestamp);
    let mut files = Vec::new();
    let mut dedup = Vec::with_capacity(batch.len());
    let mut new_issuers = Vec::new();
    let mut answers = Vec::with_capacity(batch.len());
    for p in batch {
        let index = state.size;
        if index > MAX_LEAF_INDEX {
            return Err(CycleError::Full);
        }
        let entry: &LogEntry = &p.accepted.entry;
        state.append(
            entry.leaf_hash(timestamp, index),
            &entry.tile_leaf(timestamp, index),
            &mut files,
        );
        for (fp, der) in entry.chain_fingerprints.iter().zip(&p.accepted.issuers) {
            if !state.issuers.contains(fp) && !new_issuers.contains(fp) {
                new_issuers.push(*fp);
                files.push((format!("issuer/{}", hex::encode(fp)), der.clone()));
            }
        }
        dedup.push(DedupRecord {
            key: p.key,
            index,
            timestamp,
        });
        answers.push((p.key, p.waiters, Sequenced { index, timestamp }));
    }
    state.partial_tiles(&mut files);
    let root = state.root().ok_or(CycleError::Root)?;
    let checkpoint = Checkpoint {
        origin: inner.origin.clone(),
        size: state.size,
        root,
    };
    let note = sign_checkpoint_with_notes(&inner.key, &inner.note_keys, &checkpoint, timestamp)?;

    let staged = inner.storage.staged();
    if staged {
        // 1. Object storage: one staging bundle with every file of the cycle, from which
        //    recovery re-uploads them if this cycle dies after the compare-and-swap.
        if !files.is_empty() {
            let bundle = encode_bundle(&files)?;
            blocking_put(&inner.storage, vec![(staging_key(&checkpoint), bundle)]).await?;
        }
    } else {
        // 1. Filesystem: tiles and issuers, fsynced with their directories.
        blocking_put(&inner.storage, std::mem::take(&mut files)).await?;
    }
    // 2. The commit point: compare-and-swap the checkpoint, with the dedup index.
    inner
        .lock
        .commit(&inner.config.name, &state.note, &note, &dedup)
        .await?;
    state.note = note.clone();
    state.timestamp = timestamp;
    state.issuers.extend(new_issuers);
    if staged {
        // 2b. Object storage: the cycle's files, in parallel, each retried with backoff. If
        //     this fails no SCT is returned; recovery uploads the staging bundle again.
        blocking_put(&inner.storage, files).await?;
    }
    inner.committed_size.store(state.size, Ordering::Release);
    // 3. Publish the checkpoint. The entries are already durable; if this write fails the
    //    next cycle (or recovery) republishes a newer one.
    if let Err(e) = publish_checkpoint(inner, note).await {
        tracing::error!(log = %inner.config.name, error = %e, "publishing the checkpoint file failed");
    }
    // 4. Answer.
    let mut done = Vec::with_capacity(answers.len());
    for (key, waiters, seq) in answers {
        for w in waiters {
            let _ = w.send(Ok(seq));
        }
        done.push((key, seq));
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn empty_tree() -> TreeState {
        TreeState {
            size: 0,
            levels: Vec::new(),
            data: Vec::new(),
            note: String::new(),
            timestamp: 0,
            written_partials: HashSet::new(),
            issuers: HashSet::new(),
        }
    }

    /// Issue 22: the partial tile paths the sequencer remembers do not grow with the log.
    #[test]
    fn partial_tiles_are_remembered_per_level_not_per_cycle() {
        let mut tree = empty_tree();
        for i in 0u32..3_000 {
            let mut files = Vec::new();
            let mut leaf = [0u8; 32];
            leaf[..4].copy_from_slice(&i.to_be_bytes());
            tree.append(leaf, b"leaf", &mut files);
            tree.partial_tiles(&mut files);
            assert!(!files.is_empty(), "cycle {i} wrote its tiles");
            assert!(
                tree.written_partials.len() <= tree.levels.len() + 1,
                "cycle {i}: {} partial paths remembered",
                tree.written_partials.len()
            );
            // A cycle that adds nothing writes no partial tile again.
            let mut again = Vec::new();
            tree.partial_tiles(&mut again);
            assert!(again.is_empty(), "cycle {i} rewrote {again:?}");
        }
    }

    #[tokio::test]
    async fn the_gzip_tile_cache_gets_the_configured_budget() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("roots")).unwrap();
        let config = LogConfig {
            name: "memory".into(),
            description: None,
            submission_url: "https://ct.example/memory/".into(),
            monitoring_url: None,
            key_file: dir.path().join("key.pem"),
            key_pkcs11: None,
            note_key_file: None,
            roots_dir: dir.path().join("roots"),
            data_dir: dir.path().join("data"),
            lock_db: None,
            s3: None,
            lock_s3: None,
            ccadb_csv: None,
            merge_delay_monitor_root: true,
            not_after_start: time::macros::datetime!(2030-01-01 0:00 UTC),
            not_after_limit: time::macros::datetime!(2031-01-01 0:00 UTC),
            period_ms: 100,
            pool_size: 16,
            witnesses: Vec::new(),
            inception: None,
            read_only_after_s: None,
        };
        let log = CtLog::start_with_tile_cache(config.clone(), 12_345)
            .await
            .unwrap();
        assert_eq!(log.inner.gzip_tiles.budget(), 12_345);
        log.shutdown().await;
        drop(log); // releases the data folder's lock
        let log = CtLog::start(config).await.unwrap();
        assert_eq!(
            log.inner.gzip_tiles.budget(),
            crate::config::DEFAULT_GZIP_TILE_CACHE_BYTES
        );
        log.shutdown().await;
    }
}
