//! The gzip form of full tiles, kept in memory. A full tile (256 entries or hashes) never
//! changes once the checkpoint covers it, so compressing it again for every monitor that reads
//! it is waste: the read path serves it from here. Bounded by bytes; the oldest insertion goes
//! first (monitors read forward, so a tile read long ago is the least likely to be read again).

use bytes::Bytes;
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

/// Compressed full tiles by path, up to a byte budget.
#[derive(Debug)]
pub(crate) struct TileCache {
    budget: usize,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    tiles: HashMap<String, Bytes>,
    order: VecDeque<String>,
    bytes: usize,
}

impl TileCache {
    /// A cache holding up to `budget` bytes of compressed tiles (0: off).
    pub(crate) fn new(budget: usize) -> TileCache {
        TileCache {
            budget,
            state: Mutex::new(State::default()),
        }
    }

    pub(crate) fn get(&self, path: &str) -> Option<Bytes> {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.tiles.get(path).cloned()
    }

    /// Keeps `gz` for `path`, evicting the oldest entries to stay within the budget. A tile
    /// larger than the whole budget is not kept.
    pub(crate) fn insert(&self, path: String, gz: Bytes) {
        if gz.len() > self.budget {
            return;
        }
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if state.tiles.contains_key(&path) {
            return;
        }
        while state.bytes + gz.len() > self.budget {
            let Some(old) = state.order.pop_front() else {
                break;
            };
            if let Some(b) = state.tiles.remove(&old) {
                state.bytes -= b.len();
            }
        }
        state.bytes += gz.len();
        state.order.push_back(path.clone());
        state.tiles.insert(path, gz);
    }

    /// The byte budget.
    #[cfg(test)]
    pub(crate) fn budget(&self) -> usize {
        self.budget
    }

    #[cfg(test)]
    fn held(&self) -> (usize, usize) {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        (state.tiles.len(), state.bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_tiles_within_the_budget_and_evicts_the_oldest() {
        let cache = TileCache::new(250);
        cache.insert("tile/data/000".into(), Bytes::from(vec![1; 100]));
        cache.insert("tile/data/001".into(), Bytes::from(vec![2; 100]));
        assert_eq!(cache.held(), (2, 200));
        cache.insert("tile/data/002".into(), Bytes::from(vec![3; 100]));
        assert_eq!(cache.held(), (2, 200));
        assert!(cache.get("tile/data/000").is_none());
        assert_eq!(cache.get("tile/data/001").unwrap()[0], 2);
        assert_eq!(cache.get("tile/data/002").unwrap()[0], 3);
        // Too big to keep at all: nothing is evicted for it.
        cache.insert("tile/0/000".into(), Bytes::from(vec![4; 251]));
        assert_eq!(cache.held(), (2, 200));
        // A second insert of a held path changes nothing.
        cache.insert("tile/data/002".into(), Bytes::from(vec![9; 10]));
        assert_eq!(cache.get("tile/data/002").unwrap()[0], 3);
        assert_eq!(cache.held(), (2, 200));
    }

    #[test]
    fn a_zero_budget_keeps_nothing() {
        let cache = TileCache::new(0);
        cache.insert("tile/data/000".into(), Bytes::from_static(b"x"));
        assert!(cache.get("tile/data/000").is_none());
    }
}
