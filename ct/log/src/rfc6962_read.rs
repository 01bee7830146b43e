//! Optional RFC 6962 read endpoints (`get-sth`, `get-sth-consistency`, `get-proof-by-hash`,
//! `get-entries`) computed from the tiles, for monitors that have not moved to the tiled read
//! path. Off by default (`rfc6962_read_endpoints = true` turns them on). Everything is answered
//! at the latest published checkpoint: its tiles are all stored.
//!
//! Limits, on purpose: `get-entries` returns at most one data tile's worth (≤ 256 entries,
//! never crossing a tile boundary; RFC 6962 lets a log return fewer than asked), and
//! `get-proof-by-hash` finds the leaf by scanning the level-0 hash tiles newest first, at most
//! [`MAX_HASH_SCAN`] entries back — the log keeps no leaf-hash index.

use crate::log::CtLog;
use crate::storage::Storage;
use crate::witnessing::{proof_from_tiles, subtree_hash_from_tiles};
use axum::Router;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use cairn_tlog::checkpoint::{Checkpoint, key_id};
use cairn_tlog::entry::{EntryKind, parse_data_tile};
use cairn_tlog::inclusion;
use cairn_tlog::merkle::{Hash, sha256};
use cairn_tlog::note::parse_note;
use cairn_tlog::tile::{TILE_WIDTH, Tile, TileLevel};
use std::collections::HashMap;

/// How many of the newest entries `get-proof-by-hash` searches.
pub const MAX_HASH_SCAN: u64 = 1 << 20;

type Params = Query<HashMap<String, String>>;

/// A client error or an internal one (logged, answered without detail).
enum ReadError {
    BadRequest(&'static str),
    NotFound(&'static str),
    Internal(String),
}

impl From<std::io::Error> for ReadError {
    fn from(e: std::io::Error) -> Self {
        ReadError::Internal(e.to_string())
    }
}

fn answer(log: &CtLog, r: Result<serde_json::Value, ReadError>) -> Response {
    let (status, body) = match r {
        Ok(v) => return axum::Json(v).into_response(),
        Err(ReadError::BadRequest(m)) => (StatusCode::BAD_REQUEST, m),
        Err(ReadError::NotFound(m)) => (StatusCode::NOT_FOUND, m),
        Err(ReadError::Internal(e)) => {
            tracing::error!(log = log.name(), error = %e, "RFC 6962 read endpoint failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "internal error")
        }
    };
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        serde_json::json!({ "error": body }).to_string(),
    )
        .into_response()
}

/// The latest published checkpoint and its RFC 6962 signature (timestamp, DigitallySigned).
async fn sth(log: &CtLog) -> Result<(Checkpoint, u64, Vec<u8>), ReadError> {
    let note = log.published_note().await;
    let bad = || ReadError::Internal("the published checkpoint does not parse".into());
    let (text, sigs) = parse_note(&note).map_err(|_| bad())?;
    let cp = Checkpoint::parse_body(text).map_err(|_| bad())?;
    let want = key_id(log.origin(), &sha256(log.public_key_der()));
    let sig = sigs
        .iter()
        .find(|s| s.name == log.origin() && s.key_id == want)
        .ok_or_else(bad)?;
    let (ts, ds) = sig.signature.split_at_checked(8).ok_or_else(bad)?;
    let mut ts_be = [0u8; 8];
    ts_be.copy_from_slice(ts);
    Ok((cp, u64::from_be_bytes(ts_be), ds.to_vec()))
}

fn number(params: &HashMap<String, String>, name: &'static str) -> Result<u64, ReadError> {
    params
        .get(name)
        .and_then(|v| v.parse().ok())
        .ok_or(ReadError::BadRequest(
            "missing or malformed numeric parameter",
        ))
}

/// Runs `f` on the blocking pool with the log's storage.
async fn blocking<T: Send + 'static>(
    log: &CtLog,
    f: impl FnOnce(&dyn Storage) -> Result<T, ReadError> + Send + 'static,
) -> Result<T, ReadError> {
    let storage = log.inner.storage.clone();
    tokio::task::spawn_blocking(move || f(&*storage))
        .await
        .map_err(|_| ReadError::Internal("read task failed".into()))?
}

async fn get_sth(State(log): State<CtLog>) -> Response {
    let r = sth(&log).await.map(|(cp, timestamp, sig)| {
        serde_json::json!({
            "tree_size": cp.size,
            "timestamp": timestamp,
            "sha256_root_hash": B64.encode(cp.root),
            "tree_head_signature": B64.encode(sig),
        })
    });
    answer(&log, r)
}

async fn get_sth_consistency(State(log): State<CtLog>, Query(p): Params) -> Response {
    let r = async {
        let (first, second) = (number(&p, "first")?, number(&p, "second")?);
        let (cp, _, _) = sth(&log).await?;
        if first > second || second > cp.size {
            return Err(ReadError::BadRequest(
                "need first <= second <= the current tree size",
            ));
        }
        let proof = blocking(&log, move |st| {
            Ok(proof_from_tiles(st, first, second, cp.size)?)
        })
        .await?;
        Ok(serde_json::json!({ "consistency": encode_all(&proof) }))
    }
    .await;
    answer(&log, r)
}

fn encode_all(hashes: &[Hash]) -> Vec<String> {
    hashes.iter().map(|h| B64.encode(h)).collect()
}

async fn get_proof_by_hash(State(log): State<CtLog>, Query(p): Params) -> Response {
    let r = async {
        let size = number(&p, "tree_size")?;
        let hash: Hash = p
            .get("hash")
            .and_then(|h| B64.decode(h).ok())
            .and_then(|h| h.try_into().ok())
            .ok_or(ReadError::BadRequest("hash is not a base64 SHA-256 hash"))?;
        let (cp, _, _) = sth(&log).await?;
        if size == 0 || size > cp.size {
            return Err(ReadError::BadRequest(
                "tree_size must be within 1..=the current tree size",
            ));
        }
        let (index, proof) = blocking(&log, move |st| {
            let index = find_leaf(st, &hash, size, cp.size)?.ok_or(ReadError::NotFound(
                "hash not found among the newest entries of that tree",
            ))?;
            let mut cache = HashMap::new();
            let proof = inclusion::prove_from_nodes(index, size, &mut |h, i| {
                subtree_hash_from_tiles(st, cp.size, &mut cache, h, i)
            })?
            .ok_or(ReadError::Internal("index beyond the tree".into()))?;
            Ok((index, proof))
        })
        .await?;
        Ok(serde_json::json!({ "leaf_index": index, "audit_path": encode_all(&proof) }))
    }
    .await;
    answer(&log, r)
}

/// The index of leaf hash `hash` among the first `size` leaves, searching the newest
/// [`MAX_HASH_SCAN`] of them in the level-0 hash tiles of the tree of `tiles_at`.
fn find_leaf(
    st: &dyn Storage,
    hash: &Hash,
    size: u64,
    tiles_at: u64,
) -> Result<Option<u64>, ReadError> {
    let lowest = size.saturating_sub(MAX_HASH_SCAN);
    let mut tile_index = (size - 1) / TILE_WIDTH;
    loop {
        let width = (tiles_at - tile_index * TILE_WIDTH).min(TILE_WIDTH);
        let path = Tile {
            level: TileLevel::Hash(0),
            index: tile_index,
            width: width as u16,
        }
        .path();
        let data = st
            .get(&path)?
            .ok_or_else(|| ReadError::Internal(format!("tile {path} is missing")))?;
        for (i, h) in data.chunks_exact(32).enumerate().rev() {
            let index = tile_index * TILE_WIDTH + i as u64;
            if index < size && index >= lowest && h == hash {
                return Ok(Some(index));
            }
        }
        if tile_index == 0 || tile_index * TILE_WIDTH <= lowest {
            return Ok(None);
        }
        tile_index -= 1;
    }
}

fn put_u24(out: &mut Vec<u8>, data: &[u8]) {
    let n = data.len() as u32;
    out.extend_from_slice(&n.to_be_bytes()[1..]);
    out.extend_from_slice(data);
}

async fn get_entries(State(log): State<CtLog>, Query(p): Params) -> Response {
    let r = async {
        let (start, end) = (number(&p, "start")?, number(&p, "end")?);
        let (cp, _, _) = sth(&log).await?;
        if start > end || start >= cp.size {
            return Err(ReadError::BadRequest(
                "need start <= end and start below the current tree size",
            ));
        }
        let tile_index = start / TILE_WIDTH;
        let last = end
            .min(cp.size - 1)
            .min(tile_index * TILE_WIDTH + TILE_WIDTH - 1);
        let entries = blocking(&log, move |st| {
            let width = (cp.size - tile_index * TILE_WIDTH).min(TILE_WIDTH);
            let path = Tile {
                level: TileLevel::Data,
                index: tile_index,
                width: width as u16,
            }
            .path();
            let data = st
                .get(&path)?
                .ok_or_else(|| ReadError::Internal(format!("tile {path} is missing")))?;
            let leaves = parse_data_tile(&data)
                .map_err(|_| ReadError::Internal(format!("tile {path} does not parse")))?;
            let mut issuers: HashMap<Hash, Vec<u8>> = HashMap::new();
            let first = (start - tile_index * TILE_WIDTH) as usize;
            let count = (last - start + 1) as usize;
            let mut out = Vec::with_capacity(count);
            for leaf in leaves.iter().skip(first).take(count) {
                let mut chain = Vec::new();
                for fp in &leaf.entry.chain_fingerprints {
                    if !issuers.contains_key(fp) {
                        let der =
                            st.get(&format!("issuer/{}", hex::encode(fp)))?
                                .ok_or_else(|| {
                                    ReadError::Internal(
                                        "an issuer named by an entry is missing".into(),
                                    )
                                })?;
                        issuers.insert(*fp, der);
                    }
                    if let Some(der) = issuers.get(fp) {
                        put_u24(&mut chain, der);
                    }
                }
                let mut extra = Vec::new();
                if let EntryKind::Precert {
                    pre_certificate, ..
                } = &leaf.entry.kind
                {
                    put_u24(&mut extra, pre_certificate);
                }
                put_u24(&mut extra, &chain);
                out.push(serde_json::json!({
                    "leaf_input": B64.encode(&leaf.merkle_tree_leaf),
                    "extra_data": B64.encode(&extra),
                }));
            }
            Ok(out)
        })
        .await?;
        Ok(serde_json::json!({ "entries": entries }))
    }
    .await;
    answer(&log, r)
}

impl CtLog {
    /// The RFC 6962 read routes (`/ct/v1/get-sth`, `get-sth-consistency`, `get-proof-by-hash`,
    /// `get-entries`), computed from the tiles.
    pub fn rfc6962_read_router(&self) -> Router {
        Router::new()
            .route("/ct/v1/get-sth", get(get_sth))
            .route("/ct/v1/get-sth-consistency", get(get_sth_consistency))
            .route("/ct/v1/get-proof-by-hash", get(get_proof_by_hash))
            .route("/ct/v1/get-entries", get(get_entries))
            .with_state(self.clone())
    }
}
