//! A bounded in-memory map whose entries are served for a fixed time after they were put: the
//! WFE's cache of accounts and the RA's of renewal windows.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

pub struct TtlCache<K, V> {
    ttl: std::time::Duration,
    /// Entries kept at most; when full the cache starts over (bounded memory whatever keys
    /// clients send).
    max_entries: usize,
    entries: Mutex<Entries<K, V>>,
}

struct Entries<K, V> {
    map: HashMap<K, (Instant, V)>,
    /// Bumped by every removal: a value read before a removal is not put back after it.
    epoch: u64,
}

impl<K: Eq + Hash, V: Clone> TtlCache<K, V> {
    /// Entries are served for `ttl`; a zero (or negative) `ttl` turns the cache off.
    pub fn new(ttl: time::Duration, max_entries: usize) -> Self {
        TtlCache {
            ttl: std::time::Duration::try_from(ttl).unwrap_or_default(),
            max_entries,
            entries: Mutex::new(Entries {
                map: HashMap::new(),
                epoch: 0,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Entries<K, V>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn get<Q>(&self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Eq + Hash + ?Sized,
    {
        self.lock()
            .map
            .get(key)
            .filter(|(at, _)| at.elapsed() < self.ttl)
            .map(|(_, v)| v.clone())
    }

    pub fn put(&self, key: K, value: V) {
        self.insert(&mut self.lock(), key, value);
    }

    fn insert(&self, entries: &mut Entries<K, V>, key: K, value: V) {
        if self.ttl.is_zero() {
            return;
        }
        if entries.map.len() >= self.max_entries {
            entries.map.clear();
        }
        entries.map.insert(key, (Instant::now(), value));
    }

    /// The current epoch, to take before reading a value that [`TtlCache::put_unless_removed`]
    /// will store.
    pub fn epoch(&self) -> u64 {
        self.lock().epoch
    }

    /// Puts `value` unless an entry was removed (or the cache cleared) since `epoch` was taken:
    /// the value may have been read before that change, and must not outlive it.
    pub fn put_unless_removed(&self, epoch: u64, key: K, value: V) {
        let mut entries = self.lock();
        if entries.epoch == epoch {
            self.insert(&mut entries, key, value);
        }
    }

    pub fn remove<Q>(&self, key: &Q)
    where
        K: Borrow<Q>,
        Q: Eq + Hash + ?Sized,
    {
        let mut entries = self.lock();
        entries.map.remove(key);
        entries.epoch += 1;
    }

    pub fn clear(&self) {
        let mut entries = self.lock();
        entries.map.clear();
        entries.epoch += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_kept_until_they_expire_or_are_removed() {
        let cache = TtlCache::<String, u32>::new(time::Duration::milliseconds(200), 10);
        assert_eq!(cache.get("a"), None);
        cache.put("a".into(), 1);
        assert_eq!(cache.get("a"), Some(1));
        assert_eq!(cache.get("b"), None);
        cache.remove("a");
        assert_eq!(cache.get("a"), None);
        cache.put("a".into(), 1);
        std::thread::sleep(std::time::Duration::from_millis(250));
        assert_eq!(cache.get("a"), None);
    }

    #[test]
    fn a_value_read_before_a_removal_is_not_put_back_after_it() {
        let cache = TtlCache::<String, u32>::new(time::Duration::minutes(1), 10);
        let before = cache.epoch();
        cache.remove("a");
        cache.put_unless_removed(before, "a".into(), 1);
        assert_eq!(cache.get("a"), None);
        let now = cache.epoch();
        cache.put_unless_removed(now, "a".into(), 2);
        assert_eq!(cache.get("a"), Some(2));
    }

    #[test]
    fn a_zero_lifetime_turns_the_cache_off() {
        let cache = TtlCache::<String, u32>::new(time::Duration::ZERO, 10);
        cache.put("a".into(), 1);
        assert_eq!(cache.get("a"), None);
    }

    #[test]
    fn a_full_cache_starts_over() {
        let cache = TtlCache::<u32, u32>::new(time::Duration::minutes(1), 2);
        cache.put(1, 1);
        cache.put(2, 2);
        cache.put(3, 3);
        assert_eq!(cache.get(&1), None);
        assert_eq!(cache.get(&2), None);
        assert_eq!(cache.get(&3), Some(3));
    }
}
