//! A full audit of a static-ct-api log, without I/O: the caller fetches tiles in the order
//! this module asks for them and hands them over; the auditor decodes every data tile, checks
//! each level-0 hash against its entry and each entry's `leaf_index`, checks every hash tile of
//! the levels above against the hashes recomputed from below, and finally recomputes the root of
//! the whole tree — and, given an older checkpoint, the root at that older size (the full-audit
//! form of consistency).
//!
//! Memory stays at one tile per level: the hashes of level L+1 are recomputed from each full
//! tile of level L as it completes, and compared with the published tile when that fills.
//!
//! ```text
//!  for each data tile n:  add_data_tile(n, data, level-0 tile) ─► hash tiles now due
//!                         check_tile(due tile, bytes) for each
//!  finish() ─► right-edge hash tiles due ─► check_tile ─► root() == checkpoint root
//! ```

use crate::checkpoint::Checkpoint;
use crate::entry::parse_data_tile;
use crate::merkle::{Hash, complete_root, empty_root, leaf_hash, node_hash};
use crate::tile::{TILE_WIDTH, Tile, TileLevel};
use std::collections::HashMap;

/// Why the audit failed. Each names the tile or size where the published log and the
/// recomputed tree part ways.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuditError {
    /// A data tile does not decode, or holds the wrong number of entries.
    #[error("data tile {path} is malformed")]
    MalformedDataTile {
        /// The tile path.
        path: String,
    },
    /// An entry's `leaf_index` extension is missing or not its position.
    #[error("entry {index} in {path} does not carry leaf_index {index}")]
    LeafIndex {
        /// The tile path.
        path: String,
        /// The entry's position in the tree.
        index: u64,
    },
    /// The entries of a data tile do not hash to its level-0 tile.
    #[error("the entries of data tile {data} do not hash to level-0 tile {level0}")]
    LeafHashes {
        /// The data tile path.
        data: String,
        /// The level-0 tile path.
        level0: String,
    },
    /// A hash tile is not what the tiles below it hash to.
    #[error("hash tile {path} does not match the hashes recomputed from the tiles below it")]
    HashTile {
        /// The tile path.
        path: String,
    },
    /// A tile was handed over that the auditor did not ask for.
    #[error("tile {path} was not expected")]
    Unexpected {
        /// The tile path.
        path: String,
    },
    /// The recomputed root differs from the checkpoint's.
    #[error("the tiles hash to a different root than the checkpoint of size {size}")]
    RootMismatch {
        /// The checkpoint's size.
        size: u64,
    },
    /// The older checkpoint is not a prefix of this tree.
    #[error(
        "the older checkpoint of size {size} is not consistent with this tree: its root differs from the root of the first {size} entries"
    )]
    Inconsistent {
        /// The older checkpoint's size.
        size: u64,
    },
    /// The older checkpoint is larger than the current one, or from another log.
    #[error("the older checkpoint ({0}) cannot precede this one")]
    OldCheckpoint(&'static str),
}

/// Audits one checkpoint's tree; see the module documentation for the call order.
#[derive(Debug)]
pub struct Auditor {
    checkpoint: Checkpoint,
    old: Option<Checkpoint>,
    old_checked: bool,
    /// Complete subtrees of the leaves seen so far, left to right, sizes non-increasing.
    stack: Vec<(u64, Hash)>,
    leaves: u64,
    /// Per level ≥ 1, the hashes recomputed so far for its current tile.
    pending: Vec<Vec<Hash>>,
    /// Tiles asked for and not yet checked, with their expected content.
    due: HashMap<String, Vec<u8>>,
}

impl Auditor {
    /// An auditor for `checkpoint` (already signature-verified), checking consistency with
    /// `old` (also verified) if given.
    pub fn new(checkpoint: Checkpoint, old: Option<Checkpoint>) -> Result<Auditor, AuditError> {
        if let Some(old) = &old {
            if old.origin != checkpoint.origin {
                return Err(AuditError::OldCheckpoint("another origin"));
            }
            if old.size > checkpoint.size {
                return Err(AuditError::OldCheckpoint("it is larger"));
            }
        }
        Ok(Auditor {
            old_checked: old
                .as_ref()
                .is_none_or(|o| o.size == 0 && o.root == empty_root()),
            checkpoint,
            old,
            stack: Vec::new(),
            leaves: 0,
            pending: Vec::new(),
            due: HashMap::new(),
        })
    }

    /// The data tiles to fetch, in order: `(data tile, level-0 tile)` pairs.
    pub fn data_tiles(&self) -> Vec<(Tile, Tile)> {
        let size = self.checkpoint.size;
        (0..size.div_ceil(TILE_WIDTH))
            .map(|n| {
                let width = u16::try_from((size - n * TILE_WIDTH).min(TILE_WIDTH)).unwrap_or(256);
                (
                    Tile {
                        level: TileLevel::Data,
                        index: n,
                        width,
                    },
                    Tile {
                        level: TileLevel::Hash(0),
                        index: n,
                        width,
                    },
                )
            })
            .collect()
    }

    fn push_leaf(&mut self, hash: Hash) -> Result<(), AuditError> {
        self.stack.push((1, hash));
        while self.stack.len() >= 2 {
            let n = self.stack.len();
            let (rs, rh) = self.stack[n - 1];
            let (ls, lh) = self.stack[n - 2];
            if ls != rs {
                break;
            }
            self.stack.truncate(n - 2);
            self.stack.push((ls * 2, node_hash(&lh, &rh)));
        }
        self.leaves += 1;
        if let Some(old) = &self.old
            && self.leaves == old.size
        {
            if fold(&self.stack) != old.root {
                return Err(AuditError::Inconsistent { size: old.size });
            }
            self.old_checked = true;
        }
        Ok(())
    }

    /// Takes data tile `tile` with its level-0 hash tile; returns the hash tiles of higher
    /// levels that are now due (fetch each and pass it to [`Auditor::check_tile`]).
    pub fn add_data_tile(
        &mut self,
        tile: Tile,
        data: &[u8],
        level0: &[u8],
    ) -> Result<Vec<Tile>, AuditError> {
        let path = tile.path();
        let first = tile.index * TILE_WIDTH;
        if first != self.leaves {
            return Err(AuditError::Unexpected { path });
        }
        let leaves = parse_data_tile(data)
            .map_err(|_| AuditError::MalformedDataTile { path: path.clone() })?;
        if leaves.len() != usize::from(tile.width) {
            return Err(AuditError::MalformedDataTile { path });
        }
        let mut hashes = Vec::with_capacity(leaves.len());
        for (i, leaf) in leaves.iter().enumerate() {
            let index = first + i as u64;
            if leaf.leaf_index != Some(index) {
                return Err(AuditError::LeafIndex { path, index });
            }
            hashes.push(leaf_hash(&leaf.merkle_tree_leaf));
        }
        let level0_path = Tile {
            level: TileLevel::Hash(0),
            ..tile
        }
        .path();
        if level0 != hashes.concat() {
            return Err(AuditError::LeafHashes {
                data: path,
                level0: level0_path,
            });
        }
        for h in &hashes {
            self.push_leaf(*h)?;
        }
        let mut due = Vec::new();
        if u64::from(tile.width) == TILE_WIDTH {
            let root = complete_root(&hashes).ok_or(AuditError::HashTile { path: level0_path })?;
            self.climb(1, root, &mut due);
        }
        Ok(due)
    }

    /// Adds `hash` to `level`'s current tile; a tile that fills becomes due and its root climbs.
    fn climb(&mut self, level: u8, hash: Hash, due: &mut Vec<Tile>) {
        let l = usize::from(level);
        if self.pending.len() < l {
            self.pending.resize(l, Vec::new());
        }
        let current = &mut self.pending[l - 1];
        current.push(hash);
        if current.len() as u64 == TILE_WIDTH {
            let full = std::mem::take(current);
            let index = self.leaves / leaves_per(level + 1) - 1;
            let tile = Tile {
                level: TileLevel::Hash(level),
                index,
                width: 256,
            };
            self.due.insert(tile.path(), full.concat());
            due.push(tile);
            if let Some(root) = complete_root(&full) {
                self.climb(level + 1, root, due);
            }
        }
    }

    /// Checks a hash tile the auditor asked for.
    pub fn check_tile(&mut self, tile: Tile, bytes: &[u8]) -> Result<(), AuditError> {
        let path = tile.path();
        let want = self
            .due
            .remove(&path)
            .ok_or(AuditError::Unexpected { path: path.clone() })?;
        if want != bytes {
            return Err(AuditError::HashTile { path });
        }
        Ok(())
    }

    /// After every data tile: the partial hash tiles of levels ≥ 1 that are now due.
    pub fn finish(&mut self) -> Vec<Tile> {
        let mut out = Vec::new();
        for (i, hashes) in self.pending.iter().enumerate() {
            if hashes.is_empty() {
                continue;
            }
            let level = u8::try_from(i + 1).unwrap_or(u8::MAX);
            let tile = Tile {
                level: TileLevel::Hash(level),
                index: self.leaves / leaves_per(level + 1),
                width: u16::try_from(hashes.len()).unwrap_or(256),
            };
            self.due.insert(tile.path(), hashes.concat());
            out.push(tile);
        }
        out
    }

    /// The final verdict: every entry was seen, every tile asked for was checked, the root
    /// matches the checkpoint and the older checkpoint (if any) is a prefix.
    pub fn verify(&self) -> Result<(), AuditError> {
        if let Some(path) = self.due.keys().next() {
            return Err(AuditError::Unexpected { path: path.clone() });
        }
        if self.leaves != self.checkpoint.size || fold(&self.stack) != self.checkpoint.root {
            return Err(AuditError::RootMismatch {
                size: self.checkpoint.size,
            });
        }
        if !self.old_checked {
            let size = self.old.as_ref().map_or(0, |o| o.size);
            return Err(AuditError::Inconsistent { size });
        }
        Ok(())
    }
}

/// `256^level` (saturating).
fn leaves_per(level: u8) -> u64 {
    crate::tile::leaves_per_hash(level).unwrap_or(u64::MAX)
}

/// RFC 6962 MTH from a stack of complete subtrees (left to right).
fn fold(stack: &[(u64, Hash)]) -> Hash {
    let mut iter = stack.iter().rev();
    let Some(&(_, mut acc)) = iter.next() else {
        return empty_root();
    };
    for &(_, left) in iter {
        acc = node_hash(&left, &acc);
    }
    acc
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entry::{EntryKind, LogEntry};

    /// A published log built the simple way: every level's hashes in full, tiles cut from them.
    struct Published {
        data: Vec<Vec<u8>>,
        levels: Vec<Vec<Hash>>,
    }

    impl Published {
        fn new(size: u64) -> Published {
            let mut data = vec![Vec::new(); size.div_ceil(256) as usize];
            let mut level0 = Vec::new();
            for i in 0..size {
                let entry = LogEntry {
                    kind: EntryKind::X509 {
                        certificate: i.to_be_bytes().to_vec(),
                    },
                    chain_fingerprints: vec![],
                };
                data[(i / 256) as usize].extend(entry.tile_leaf(1000 + i, i));
                level0.push(entry.leaf_hash(1000 + i, i));
            }
            let mut levels = vec![level0];
            loop {
                let next: Vec<Hash> = levels
                    .last()
                    .unwrap()
                    .chunks_exact(256)
                    .map(|c| complete_root(c).unwrap())
                    .collect();
                if next.is_empty() {
                    break;
                }
                levels.push(next);
            }
            Published { data, levels }
        }

        fn tile(&self, t: Tile) -> Vec<u8> {
            match t.level {
                TileLevel::Data => self.data[t.index as usize].clone(),
                TileLevel::Hash(l) => {
                    let hs = &self.levels[usize::from(l)];
                    let start = t.index as usize * 256;
                    hs[start..start + usize::from(t.width)].concat()
                }
            }
        }

        fn root(&self, size: usize) -> Hash {
            fn mth(l: &[Hash]) -> Hash {
                match l.len() {
                    0 => empty_root(),
                    1 => l[0],
                    n => {
                        let k = n.next_power_of_two() / 2;
                        node_hash(&mth(&l[..k]), &mth(&l[k..]))
                    }
                }
            }
            mth(&self.levels[0][..size])
        }
    }

    fn audit(
        p: &Published,
        cp: Checkpoint,
        old: Option<Checkpoint>,
        tamper: impl Fn(Tile, &mut Vec<u8>),
    ) -> Result<(), AuditError> {
        let mut a = Auditor::new(cp, old)?;
        for (data, level0) in a.data_tiles() {
            let (mut d, mut h) = (p.tile(data), p.tile(level0));
            tamper(data, &mut d);
            tamper(level0, &mut h);
            for t in a.add_data_tile(data, &d, &h)? {
                let mut b = p.tile(t);
                tamper(t, &mut b);
                a.check_tile(t, &b)?;
            }
        }
        for t in a.finish() {
            let mut b = p.tile(t);
            tamper(t, &mut b);
            a.check_tile(t, &b)?;
        }
        a.verify()
    }

    #[test]
    fn audit_recomputes_every_level_and_catches_tampering_and_forks() {
        // Full tiles at levels 0 and 1, partial tiles at levels 0, 1 and 2.
        let size = 65_536 + 300;
        let p = Published::new(size);
        let cp = |size: u64, root| Checkpoint {
            origin: "o".into(),
            size,
            root,
        };
        let top = cp(size, p.root(size as usize));
        let old = cp(1000, p.root(1000));
        let none = |_: Tile, _: &mut Vec<u8>| {};
        audit(&p, top.clone(), Some(old.clone()), none).unwrap();
        audit(&p, top.clone(), Some(cp(size, top.root)), none).unwrap();

        let mut asked = Vec::new();
        let mut a = Auditor::new(top.clone(), None).unwrap();
        for (d, h) in a.data_tiles() {
            asked.extend(a.add_data_tile(d, &p.tile(d), &p.tile(h)).unwrap());
        }
        asked.extend(a.finish());
        let paths: Vec<String> = asked.iter().map(Tile::path).collect();
        assert_eq!(paths, ["tile/1/000", "tile/1/001.p/1", "tile/2/000.p/1"]);

        // A changed entry, level-0 hash, level-1 hash, partial level-2 tile, wrong root, fork.
        let flip = |target: &'static str| {
            move |t: Tile, b: &mut Vec<u8>| {
                if t.path() == target {
                    let n = b.len() - 1;
                    b[n] ^= 1;
                }
            }
        };
        let err = audit(&p, top.clone(), None, flip("tile/data/003")).unwrap_err();
        assert!(
            matches!(&err, AuditError::LeafHashes { data, .. } if data == "tile/data/003")
                || matches!(&err, AuditError::MalformedDataTile { path } if path == "tile/data/003"),
            "{err}"
        );
        assert_eq!(
            audit(&p, top.clone(), None, flip("tile/0/003")),
            Err(AuditError::LeafHashes {
                data: "tile/data/003".into(),
                level0: "tile/0/003".into()
            })
        );
        assert_eq!(
            audit(&p, top.clone(), None, flip("tile/1/000")),
            Err(AuditError::HashTile {
                path: "tile/1/000".into()
            })
        );
        assert_eq!(
            audit(&p, top.clone(), None, flip("tile/2/000.p/1")),
            Err(AuditError::HashTile {
                path: "tile/2/000.p/1".into()
            })
        );
        assert_eq!(
            audit(&p, cp(size, [9; 32]), None, none),
            Err(AuditError::RootMismatch { size })
        );
        assert_eq!(
            audit(&p, top.clone(), Some(cp(1000, p.root(999))), none),
            Err(AuditError::Inconsistent { size: 1000 })
        );
        assert!(matches!(
            Auditor::new(cp(10, [0; 32]), Some(top)),
            Err(AuditError::OldCheckpoint(_))
        ));
    }
}
