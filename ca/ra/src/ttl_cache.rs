//! A bounded in-memory map whose entries are served for a fixed time after they were put: the
//! RA's caches of accounts and of renewal windows.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

pub(crate) struct TtlCache<K, V> {
    ttl: std::time::Duration,
    /// Entries kept at most; when full the cache starts over (bounded memory whatever keys
    /// clients send).
    max_entries: usize,
    entries: Mutex<HashMap<K, (Instant, V)>>,
}

impl<K: Eq + Hash, V: Clone> TtlCache<K, V> {
    /// Entries are served for `ttl`; a zero (or negative) `ttl` turns the cache off.
    pub(crate) fn new(ttl: time::Duration, max_entries: usize) -> Self {
        TtlCache {
            ttl: std::time::Duration::try_from(ttl).unwrap_or_default(),
            max_entries,
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<K, (Instant, V)>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn get<Q>(&self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Eq + Hash + ?Sized,
    {
        self.lock()
            .get(key)
            .filter(|(at, _)| at.elapsed() < self.ttl)
            .map(|(_, v)| v.clone())
    }

    pub(crate) fn put(&self, key: K, value: V) {
        if self.ttl.is_zero() {
            return;
        }
        let mut entries = self.lock();
        if entries.len() >= self.max_entries {
            entries.clear();
        }
        entries.insert(key, (Instant::now(), value));
    }

    pub(crate) fn remove<Q>(&self, key: &Q)
    where
        K: Borrow<Q>,
        Q: Eq + Hash + ?Sized,
    {
        self.lock().remove(key);
    }

    pub(crate) fn clear(&self) {
        self.lock().clear();
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
