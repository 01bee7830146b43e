//! The log's side of witnessing (C2SP tlog-witness, tlog-cosignature). After each new
//! checkpoint a background task sends it to every configured witness, with a consistency proof
//! from the size that witness last cosigned (computed from the stored hash tiles), checks the
//! `cosignature/v1` line that comes back against the witness's key, and republishes the
//! checkpoint with the cosignatures — if it is still the latest one.
//!
//! Sequencing and SCTs never wait for this task: a witness that is down, slow or refuses only
//! leaves its cosignature off. A refusal is logged, counted
//! (`cairn_ct_witness_requests_total{outcome="refused"}`) and kept in [`WitnessStatus`]: a 422
//! (the witness's consistency check failed) or a witness holding a larger tree than the log
//! means the witness has cosigned another tree under this origin — the log forked, e.g. its
//! lock store and storage were reset.

use crate::config::WitnessTarget;
use crate::log::{Inner, publish_cosigned};
use crate::storage::Storage;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use cairn_tlog::checkpoint::Checkpoint;
use cairn_tlog::consistency::prove_from_nodes;
use cairn_tlog::merkle::{Hash, complete_root};
use cairn_tlog::note::{Vkey, parse_note, parse_vkey, verify_cosignature_v1};
use cairn_tlog::tile::{TILE_WIDTH, Tile, TileLevel, leaves_per_hash};
use std::collections::BTreeMap;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// Largest witness response read.
const MAX_RESPONSE: usize = 16 * 1024;

/// What the log last heard from one witness.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct WitnessStatus {
    /// The witness's URL prefix.
    pub url: String,
    /// Its cosigner name (from its verifier key).
    pub name: String,
    /// Size of the latest checkpoint it cosigned for this log, since the log started.
    pub cosigned_size: Option<u64>,
    /// Why the latest attempt failed (`None` after a cosignature).
    pub error: Option<String>,
    /// The latest attempt was refused because the witness has cosigned another tree: a fork.
    pub fork: bool,
}

impl WitnessStatus {
    pub(crate) fn new(target: &WitnessTarget) -> WitnessStatus {
        WitnessStatus {
            url: target.url.clone(),
            name: parse_vkey(&target.vkey).map(|v| v.name).unwrap_or_default(),
            cosigned_size: None,
            error: None,
            fork: false,
        }
    }
}

/// Why one witness gave no cosignature.
#[derive(Debug)]
enum Failure {
    /// Not reachable, timed out, or an unexpected answer.
    Unavailable(String),
    /// The witness has cosigned a tree this checkpoint does not extend.
    Fork(String),
    /// The witness does not accept this log (403/404) or its answer does not verify.
    Rejected(String),
}

impl Failure {
    fn outcome(&self) -> &'static str {
        match self {
            Failure::Unavailable(_) => "unavailable",
            Failure::Fork(_) => "refused",
            Failure::Rejected(_) => "rejected",
        }
    }
    fn message(&self) -> &str {
        match self {
            Failure::Unavailable(m) | Failure::Fork(m) | Failure::Rejected(m) => m,
        }
    }
}

/// One witness as the log sees it.
struct Peer {
    url: String,
    vkey: Vkey,
    timeout: Duration,
    /// The size the witness last cosigned, as far as the log knows (0 at start; a 409 tells).
    known_size: u64,
}

/// The hash of the complete subtree of `2^height` leaves starting at leaf `index·2^height`, in
/// the tree of `size`, read from its hash tiles (`cache` keeps the tiles read).
pub(crate) fn subtree_hash_from_tiles(
    storage: &dyn Storage,
    size: u64,
    cache: &mut HashMap<String, Vec<u8>>,
    height: u8,
    index: u64,
) -> std::io::Result<Hash> {
    let bad = |m: &str| std::io::Error::other(format!("subtree {height}/{index}: {m}"));
    let level = height / 8;
    let count = 1u64 << (height % 8);
    let per = leaves_per_hash(level).ok_or_else(|| bad("level too high"))?;
    let first = index
        .checked_mul(count)
        .ok_or_else(|| bad("index too large"))?;
    let level_size = size / per;
    if first + count > level_size {
        return Err(bad("beyond the tree"));
    }
    let tile_index = first / TILE_WIDTH;
    let width = (level_size - tile_index * TILE_WIDTH).min(TILE_WIDTH);
    let tile = Tile {
        level: TileLevel::Hash(level),
        index: tile_index,
        width: width as u16,
    };
    let path = tile.path();
    if !cache.contains_key(&path) {
        let data = storage
            .get(&path)?
            .ok_or_else(|| bad(&format!("tile {path} is missing")))?;
        if data.len() as u64 != width * 32 {
            return Err(bad(&format!("tile {path} has the wrong size")));
        }
        cache.insert(path.clone(), data);
    }
    let data = cache.get(&path).ok_or_else(|| bad("tile cache"))?;
    let offset = (first % TILE_WIDTH) as usize * 32;
    let hashes: Vec<Hash> = data
        .get(offset..offset + count as usize * 32)
        .ok_or_else(|| bad("short tile"))?
        .chunks_exact(32)
        .map(|c| {
            let mut h = [0u8; 32];
            h.copy_from_slice(c);
            h
        })
        .collect();
    complete_root(&hashes).ok_or_else(|| bad("not a complete subtree"))
}

/// The RFC 9162 consistency proof from `old` to `new` entries, from the stored hash tiles of
/// the tree of `tiles_at` entries (`>= new`; any committed size will do, since a complete
/// subtree's hash is the same in every tree that contains it).
pub(crate) fn proof_from_tiles(
    storage: &dyn Storage,
    old: u64,
    new: u64,
    tiles_at: u64,
) -> std::io::Result<Vec<Hash>> {
    let mut cache = HashMap::new();
    prove_from_nodes(old, new, &mut |height, index| {
        subtree_hash_from_tiles(storage, tiles_at, &mut cache, height, index)
    })?
    .ok_or_else(|| std::io::Error::other("old size larger than the tree"))
}

/// Reads at most [`MAX_RESPONSE`] bytes of a response body.
async fn bounded_text(mut resp: reqwest::Response) -> Result<String, Failure> {
    let mut body = Vec::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| Failure::Unavailable(format!("reading the answer: {e}")))?
    {
        body.extend_from_slice(&chunk);
        if body.len() > MAX_RESPONSE {
            return Err(Failure::Unavailable("answer too large".into()));
        }
    }
    String::from_utf8(body).map_err(|_| Failure::Unavailable("answer is not UTF-8".into()))
}

impl Peer {
    /// Sends `note` (of checkpoint `cp`) to the witness; returns its verified cosignature line.
    async fn cosign(
        &mut self,
        client: &reqwest::Client,
        storage: &Arc<dyn Storage>,
        note: &str,
        cp: &Checkpoint,
    ) -> Result<String, Failure> {
        // At most one retry: after a 409 the witness has told its size.
        for _ in 0..2 {
            let old = self.known_size;
            if old > cp.size {
                return Err(Failure::Fork(format!(
                    "the witness has cosigned {old} entries, more than this checkpoint's {}: \
                     the log forked or went back",
                    cp.size
                )));
            }
            let (st, new) = (storage.clone(), cp.size);
            let proof = tokio::task::spawn_blocking(move || proof_from_tiles(&*st, old, new, new))
                .await
                .map_err(|_| Failure::Unavailable("proof task failed".into()))?
                .map_err(|e| Failure::Unavailable(format!("consistency proof: {e}")))?;
            let mut body = format!("old {old}\n");
            for h in &proof {
                body.push_str(&B64.encode(h));
                body.push('\n');
            }
            body.push('\n');
            body.push_str(note);
            let resp = client
                .post(format!("{}/add-checkpoint", self.url.trim_end_matches('/')))
                .timeout(self.timeout)
                .body(body)
                .send()
                .await
                .map_err(|e| Failure::Unavailable(e.to_string()))?;
            let status = resp.status().as_u16();
            let text = bounded_text(resp).await?;
            match status {
                200 => {
                    let prefix = format!("\u{2014} {} ", self.vkey.name);
                    let lines: String = text
                        .split_inclusive('\n')
                        .filter(|l| l.starts_with(&prefix) && l.ends_with('\n'))
                        .collect();
                    verify_cosignature_v1(
                        &format!("{note}{lines}"),
                        &self.vkey.name,
                        &self.vkey.public_key,
                    )
                    .map_err(|e| Failure::Rejected(format!("cosignature: {e}")))?;
                    self.known_size = cp.size;
                    return Ok(lines);
                }
                409 => {
                    let size: u64 = text.trim().parse().map_err(|_| {
                        Failure::Unavailable("409 without the witness's size".into())
                    })?;
                    if size == old {
                        return Err(Failure::Unavailable(format!(
                            "409 naming the size sent ({old})"
                        )));
                    }
                    self.known_size = size;
                }
                422 => {
                    return Err(Failure::Fork(format!(
                        "the witness refused the consistency proof from {old} to {} entries: \
                         it has cosigned another tree under this origin (a fork)",
                        cp.size
                    )));
                }
                403 | 404 => {
                    return Err(Failure::Rejected(format!(
                        "HTTP {status}: the witness does not accept this log's key or origin"
                    )));
                }
                _ => return Err(Failure::Unavailable(format!("HTTP {status}"))),
            }
        }
        Err(Failure::Unavailable(
            "the witness's size kept changing".into(),
        ))
    }
}

/// The file in `data_dir` holding, per witness URL, the size that witness last cosigned (or
/// told in a 409), so that a restarted log sends consistency proofs from there rather than from
/// zero, and notices at once a checkpoint smaller than one a witness already cosigned.
const SIZES_FILE: &str = "witness-sizes.json";

/// The saved sizes; empty (with a warning) if the file is missing or unreadable: the witnesses
/// then tell their sizes again in a 409.
async fn load_sizes(path: &std::path::Path) -> BTreeMap<String, u64> {
    match tokio::fs::read(path).await {
        Ok(b) => serde_json::from_slice(&b).unwrap_or_else(|e| {
            tracing::warn!(file = %path.display(), error = %e, "ignoring unreadable witness sizes");
            BTreeMap::new()
        }),
        Err(_) => BTreeMap::new(),
    }
}

/// Replaces the sizes file whole (temporary file, then rename).
async fn save_sizes(path: &std::path::Path, sizes: &BTreeMap<String, u64>) -> std::io::Result<()> {
    let tmp = path.with_extension("json.tmp");
    tokio::fs::write(
        &tmp,
        serde_json::to_vec(sizes).map_err(std::io::Error::other)?,
    )
    .await?;
    tokio::fs::rename(&tmp, path).await
}

/// The witnessing task of one log: for each new checkpoint note on `notes`, asks every witness
/// in parallel, records the outcomes and republishes the checkpoint with the cosignatures.
pub(crate) async fn run(
    inner: Arc<Inner>,
    mut notes: watch::Receiver<String>,
    mut shutdown: watch::Receiver<bool>,
) {
    let name = inner.config.name.clone();
    let client = match reqwest::Client::builder().build() {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(log = %name, error = %e, "witnessing disabled: no HTTP client");
            return;
        }
    };
    let sizes_path = inner.config.data_dir.join(SIZES_FILE);
    let mut saved = load_sizes(&sizes_path).await;
    let mut peers: Vec<Peer> = inner
        .config
        .witnesses
        .iter()
        .filter_map(|t| {
            Some(Peer {
                url: t.url.clone(),
                vkey: parse_vkey(&t.vkey).ok()?,
                timeout: Duration::from_millis(t.timeout_ms),
                known_size: saved.get(&t.url).copied().unwrap_or(0),
            })
        })
        .collect();

    notes.mark_changed();
    loop {
        tokio::select! {
            r = notes.changed() => if r.is_err() { break },
            _ = shutdown.changed() => break,
        }
        let note = notes.borrow_and_update().clone();
        let Some(cp) = parse_note(&note)
            .ok()
            .and_then(|(text, _)| Checkpoint::parse_body(text).ok())
        else {
            continue;
        };
        let storage = inner.storage.clone();
        let (c, st, n, cpr) = (&client, &storage, &note, &cp);
        let asks = futures::future::join_all(
            peers
                .iter_mut()
                .map(|p| async move { p.cosign(c, st, n, cpr).await }),
        );
        let results = tokio::select! {
            r = asks => r,
            _ = shutdown.changed() => break,
        };
        let mut lines = String::new();
        let mut statuses = Vec::with_capacity(results.len());
        for (peer, result) in peers.iter().zip(results) {
            let outcome = match &result {
                Ok(_) => "cosigned",
                Err(f) => f.outcome(),
            };
            metrics::counter!("cairn_ct_witness_requests_total",
                "log" => name.clone(), "witness" => peer.vkey.name.clone(), "outcome" => outcome)
            .increment(1);
            match result {
                Ok(l) => {
                    lines.push_str(&l);
                    metrics::gauge!("cairn_ct_witness_cosigned_size",
                        "log" => name.clone(), "witness" => peer.vkey.name.clone())
                    .set(cp.size as f64);
                    statuses.push((cp.size, None, false));
                }
                Err(f) => {
                    let fork = matches!(f, Failure::Fork(_));
                    if fork {
                        tracing::error!(log = %name, witness = %peer.url, error = f.message(),
                            "a witness refused this log's checkpoint: the log forked");
                    } else {
                        tracing::warn!(log = %name, witness = %peer.url, error = f.message(),
                            "no cosignature from a witness");
                    }
                    statuses.push((0, Some(f.message().to_owned()), fork));
                }
            }
        }
        if let Ok(mut all) = inner.witness_status.lock() {
            for (s, (size, error, fork)) in all.iter_mut().zip(statuses) {
                if error.is_none() {
                    s.cosigned_size = Some(size);
                }
                s.error = error;
                s.fork = fork;
            }
        }
        let known: BTreeMap<String, u64> = peers
            .iter()
            .map(|p| (p.url.clone(), p.known_size))
            .collect();
        if known != saved {
            if let Err(e) = save_sizes(&sizes_path, &known).await {
                tracing::warn!(log = %name, error = %e, "saving the witnesses' sizes failed");
            }
            saved = known;
        }
        if !lines.is_empty()
            && let Err(e) = publish_cosigned(&inner, &note, &lines).await
        {
            tracing::warn!(log = %name, error = %e, "publishing the cosigned checkpoint failed");
        }
    }
}
