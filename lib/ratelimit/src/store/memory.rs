//! An in-process store: sharded maps with a size bound and expiry, for one CA instance and tests.

use super::{RateLimitStore, StoreError, TatUpdate};
use crate::gcra::Tat;
use async_trait::async_trait;
use std::collections::{BTreeSet, HashMap};
use std::hash::{BuildHasher, RandomState};
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

const SHARDS: usize = 16;
const DEFAULT_MAX_KEYS: usize = 1 << 20;

#[derive(Debug, Clone, Copy)]
struct Entry {
    tat: Tat,
    expires: Instant,
}

type Shard = HashMap<String, Entry>;

/// Buckets in memory: 16 shards, each a `Mutex<HashMap>`, holding at most a bounded number of
/// keys. Expired keys are dropped when a shard fills up; if it is still full, the keys closest to
/// expiry (the fullest buckets, so the least information) go first. Limits are per process.
#[derive(Debug)]
pub struct MemoryStore {
    shards: Vec<Mutex<Shard>>,
    max_per_shard: usize,
    hasher: RandomState,
    pauses: Mutex<HashMap<String, BTreeSet<String>>>,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryStore {
    /// A store holding up to about a million buckets.
    pub fn new() -> Self {
        Self::with_max_keys(DEFAULT_MAX_KEYS)
    }

    /// A store holding up to about `max_keys` buckets (at least one per shard).
    pub fn with_max_keys(max_keys: usize) -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            max_per_shard: max_keys.div_ceil(SHARDS).max(1),
            hasher: RandomState::new(),
            pauses: Mutex::new(HashMap::new()),
        }
    }

    /// How many bucket keys are held (expired ones included until swept).
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| lock(s).len()).sum()
    }

    /// True when no bucket is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn shard_of(&self, key: &str) -> usize {
        (self.hasher.hash_one(key) % SHARDS as u64) as usize
    }

    /// Locks the shards holding `keys` in ascending order (so two multi-key writers cannot
    /// deadlock) and returns the guards by shard index.
    fn lock_shards<'a>(
        &'a self,
        keys: impl Iterator<Item = &'a str>,
    ) -> HashMap<usize, MutexGuard<'a, Shard>> {
        let indices: BTreeSet<usize> = keys.map(|k| self.shard_of(k)).collect();
        indices
            .into_iter()
            .map(|i| (i, lock(&self.shards[i])))
            .collect()
    }

    fn make_room(&self, shard: &mut Shard, now: Instant) {
        if shard.len() < self.max_per_shard {
            return;
        }
        shard.retain(|_, e| e.expires > now);
        if shard.len() < self.max_per_shard {
            return;
        }
        // Still full of live buckets: drop the eighth closest to expiry.
        let mut expiries: Vec<Instant> = shard.values().map(|e| e.expires).collect();
        let nth = (expiries.len() / 8).min(expiries.len().saturating_sub(1));
        let (_, threshold, _) = expiries.select_nth_unstable(nth);
        let threshold = *threshold;
        shard.retain(|_, e| e.expires > threshold);
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn live(entry: Option<&Entry>, now: Instant) -> Option<Tat> {
    entry.filter(|e| e.expires > now).map(|e| e.tat)
}

#[async_trait]
impl RateLimitStore for MemoryStore {
    async fn get_tats(&self, keys: &[String]) -> Result<Vec<Option<Tat>>, StoreError> {
        let now = Instant::now();
        let guards = self.lock_shards(keys.iter().map(String::as_str));
        Ok(keys
            .iter()
            .map(|k| {
                guards
                    .get(&self.shard_of(k))
                    .and_then(|shard| live(shard.get(k), now))
            })
            .collect())
    }

    async fn compare_and_set_tats(&self, updates: &[TatUpdate]) -> Result<bool, StoreError> {
        let now = Instant::now();
        let mut guards = self.lock_shards(updates.iter().map(|u| u.key.as_str()));
        for u in updates {
            let current = guards
                .get(&self.shard_of(&u.key))
                .and_then(|shard| live(shard.get(&u.key), now));
            if current != u.expected {
                return Ok(false);
            }
        }
        for u in updates {
            if let Some(shard) = guards.get_mut(&self.shard_of(&u.key)) {
                if !shard.contains_key(&u.key) {
                    self.make_room(shard, now);
                }
                shard.insert(
                    u.key.clone(),
                    Entry {
                        tat: u.new,
                        expires: now + u.ttl,
                    },
                );
            }
        }
        Ok(true)
    }

    async fn delete_tats(&self, keys: &[String]) -> Result<(), StoreError> {
        let mut guards = self.lock_shards(keys.iter().map(String::as_str));
        for k in keys {
            if let Some(shard) = guards.get_mut(&self.shard_of(k)) {
                shard.remove(k);
            }
        }
        Ok(())
    }

    async fn put_pauses(&self, account: &str, identifiers: &[String]) -> Result<(), StoreError> {
        lock(&self.pauses)
            .entry(account.to_string())
            .or_default()
            .extend(identifiers.iter().cloned());
        Ok(())
    }

    async fn get_pauses(
        &self,
        account: &str,
        identifiers: &[String],
    ) -> Result<Vec<String>, StoreError> {
        let pauses = lock(&self.pauses);
        let Some(set) = pauses.get(account) else {
            return Ok(Vec::new());
        };
        Ok(identifiers
            .iter()
            .filter(|i| set.contains(*i))
            .cloned()
            .collect())
    }

    async fn delete_pauses(
        &self,
        account: &str,
        identifiers: Option<&[String]>,
    ) -> Result<Vec<String>, StoreError> {
        let mut pauses = lock(&self.pauses);
        let removed = match identifiers {
            None => pauses
                .remove(account)
                .map(|s| s.into_iter().collect())
                .unwrap_or_default(),
            Some(ids) => {
                let Some(set) = pauses.get_mut(account) else {
                    return Ok(Vec::new());
                };
                let removed: Vec<String> = ids.iter().filter(|i| set.remove(*i)).cloned().collect();
                if set.is_empty() {
                    pauses.remove(account);
                }
                removed
            }
        };
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn update(key: &str, expected: Option<i64>, new: i64, ttl: Duration) -> TatUpdate {
        TatUpdate {
            key: key.to_string(),
            expected: expected.map(Tat),
            new: Tat(new),
            ttl,
        }
    }

    #[tokio::test]
    async fn compare_and_set_is_all_or_nothing() {
        let store = MemoryStore::new();
        let hour = Duration::from_secs(3600);
        assert!(
            store
                .compare_and_set_tats(&[update("a", None, 1, hour), update("b", None, 2, hour)])
                .await
                .unwrap()
        );
        // "b" is not absent any more, so nothing is written, "a" included.
        assert!(
            !store
                .compare_and_set_tats(&[update("a", Some(1), 5, hour), update("b", None, 5, hour)])
                .await
                .unwrap()
        );
        let keys = ["a".to_string(), "b".to_string(), "c".to_string()];
        assert_eq!(
            store.get_tats(&keys).await.unwrap(),
            vec![Some(Tat(1)), Some(Tat(2)), None]
        );
    }

    #[tokio::test]
    async fn expired_keys_read_as_absent_and_make_room() {
        let store = MemoryStore::with_max_keys(SHARDS);
        assert!(
            store
                .compare_and_set_tats(&[update("gone", None, 1, Duration::ZERO)])
                .await
                .unwrap()
        );
        assert_eq!(store.get_tats(&["gone".into()]).await.unwrap(), vec![None]);
        // An expired key is "absent" for compare-and-set too.
        assert!(
            store
                .compare_and_set_tats(&[update("gone", None, 2, Duration::from_secs(60))])
                .await
                .unwrap()
        );
    }

    #[tokio::test]
    async fn the_size_stays_bounded() {
        let store = MemoryStore::with_max_keys(64);
        for i in 0..10_000 {
            let key = format!("k{i}");
            let ttl = Duration::from_secs(3600 + i);
            assert!(
                store
                    .compare_and_set_tats(&[update(&key, None, 1, ttl)])
                    .await
                    .unwrap()
            );
        }
        assert!(store.len() <= 64, "{} keys held", store.len());
        // The newest key survived.
        assert_eq!(
            store.get_tats(&["k9999".into()]).await.unwrap(),
            vec![Some(Tat(1))]
        );
    }
}
