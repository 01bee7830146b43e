//! Where the OCSP responder keeps signed answers until shortly before their nextUpdate: Redis
//! (shared by every responder instance, survives restarts) or, without Redis, a bounded map in
//! this process.
//!
//! Two writes: `fill` stores an answer only if none is cached (what a cache miss does after
//! signing), `replace` overwrites (what a revocation does). A miss that read "good" from storage
//! just before a revocation therefore cannot overwrite the "revoked" answer the revocation
//! wrote.
//!
//! The memory cache also follows storage's revocation epoch (bumped by every revocation, in
//! any process): an answer is served only while the epoch is the one seen before its status
//! was read, so a revocation recorded by another process (`cairn admin revoke`), which cannot
//! reach this process's memory, retires every cached answer once the responder polls the
//! epoch.

use redis::aio::ConnectionManager;
use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, Ordering};
use time::OffsetDateTime;

/// A signed OCSP response with the times the HTTP layer needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedAnswer {
    /// The `OCSPResponse`, DER.
    pub der: Vec<u8>,
    /// thisUpdate (Unix seconds).
    pub this_update: i64,
    /// nextUpdate (Unix seconds).
    pub next_update: i64,
    /// Until when caches (ours and HTTP caches) may serve it (Unix seconds).
    pub cache_until: i64,
}

impl CachedAnswer {
    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(24 + self.der.len());
        out.extend_from_slice(&self.this_update.to_be_bytes());
        out.extend_from_slice(&self.next_update.to_be_bytes());
        out.extend_from_slice(&self.cache_until.to_be_bytes());
        out.extend_from_slice(&self.der);
        out
    }

    fn decode(bytes: &[u8]) -> Option<CachedAnswer> {
        let field = |i: usize| -> Option<i64> {
            Some(i64::from_be_bytes(
                bytes.get(i * 8..i * 8 + 8)?.try_into().ok()?,
            ))
        };
        let der = bytes.get(24..)?.to_vec();
        if der.is_empty() {
            return None;
        }
        Some(CachedAnswer {
            this_update: field(0)?,
            next_update: field(1)?,
            cache_until: field(2)?,
            der,
        })
    }

    /// Seconds from `now` until the answer leaves the cache (at least 1).
    pub fn ttl_seconds(&self, now: OffsetDateTime) -> u64 {
        u64::try_from(self.cache_until - now.unix_timestamp())
            .unwrap_or(1)
            .max(1)
    }
}

/// The answer cache.
pub enum ResponseCache {
    /// Redis: keys `<prefix><issuer>:<serial>:<certid form>` with a TTL.
    Redis {
        /// The connection (reconnects by itself).
        conn: ConnectionManager,
        /// Key prefix.
        prefix: String,
    },
    /// This process's memory, at most `capacity` answers, oldest dropped first.
    Memory(MemoryCache),
}

impl fmt::Debug for ResponseCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ResponseCache::Redis { prefix, .. } => {
                f.debug_struct("Redis").field("prefix", prefix).finish()
            }
            ResponseCache::Memory(m) => f
                .debug_struct("Memory")
                .field("capacity", &m.capacity)
                .finish(),
        }
    }
}

impl ResponseCache {
    /// A Redis cache at `url` under `prefix`.
    pub async fn redis(url: &str, prefix: &str) -> redis::RedisResult<ResponseCache> {
        let client = redis::Client::open(url)?;
        let conn = client.get_connection_manager().await?;
        Ok(ResponseCache::Redis {
            conn,
            prefix: prefix.to_owned(),
        })
    }

    /// An in-process cache of at most `capacity` answers.
    pub fn memory(capacity: usize) -> ResponseCache {
        ResponseCache::Memory(MemoryCache::new(capacity))
    }

    /// The answer cached under `key`, if still fresh. Errors are logged and read as a miss
    /// (the responder then signs live).
    pub async fn get(&self, key: &str, now: OffsetDateTime) -> Option<CachedAnswer> {
        match self {
            ResponseCache::Redis { conn, prefix } => {
                let mut conn = conn.clone();
                let got: redis::RedisResult<Option<Vec<u8>>> = redis::cmd("GET")
                    .arg(format!("{prefix}{key}"))
                    .query_async(&mut conn)
                    .await;
                match got {
                    Ok(bytes) => bytes
                        .as_deref()
                        .and_then(CachedAnswer::decode)
                        .filter(|a| a.cache_until > now.unix_timestamp()),
                    Err(e) => {
                        tracing::warn!(error = %e, "OCSP cache read failed; signing live");
                        None
                    }
                }
            }
            ResponseCache::Memory(m) => m.get(key, now),
        }
    }

    /// The revocation epoch this cache last saw: take it BEFORE reading a status from
    /// storage and hand it to [`fill`](Self::fill). Always 0 for Redis (the revocation
    /// listener of every process writes there directly).
    pub fn epoch(&self) -> i64 {
        match self {
            ResponseCache::Redis { .. } => 0,
            ResponseCache::Memory(m) => m.epoch.load(Ordering::Acquire),
        }
    }

    /// Records storage's revocation epoch; when it moved, every answer cached before is
    /// retired (memory cache). True if it moved.
    pub fn observe_epoch(&self, epoch: i64) -> bool {
        match self {
            ResponseCache::Redis { .. } => false,
            ResponseCache::Memory(m) => m.observe_epoch(epoch),
        }
    }

    /// Stores `answer` unless an answer is cached under `key` already. `epoch` is
    /// [`epoch`](Self::epoch) as taken before the status was read.
    pub async fn fill(&self, key: &str, answer: &CachedAnswer, now: OffsetDateTime, epoch: i64) {
        self.set(key, answer, now, true, epoch).await;
    }

    /// Stores `answer` under `key`, replacing what is there.
    pub async fn replace(&self, key: &str, answer: &CachedAnswer, now: OffsetDateTime) {
        let epoch = self.epoch();
        self.set(key, answer, now, false, epoch).await;
    }

    async fn set(
        &self,
        key: &str,
        answer: &CachedAnswer,
        now: OffsetDateTime,
        only_new: bool,
        epoch: i64,
    ) {
        match self {
            ResponseCache::Redis { conn, prefix } => {
                let mut conn = conn.clone();
                let mut cmd = redis::cmd("SET");
                cmd.arg(format!("{prefix}{key}"))
                    .arg(answer.encode())
                    .arg("EX")
                    .arg(answer.ttl_seconds(now));
                if only_new {
                    cmd.arg("NX");
                }
                let res: redis::RedisResult<redis::Value> = cmd.query_async(&mut conn).await;
                if let Err(e) = res {
                    tracing::warn!(error = %e, "OCSP cache write failed");
                }
            }
            ResponseCache::Memory(m) => m.set(key, answer, now, only_new, epoch),
        }
    }

    /// Forgets `key` (used where no replacement can be signed).
    pub async fn delete(&self, key: &str) {
        match self {
            ResponseCache::Redis { conn, prefix } => {
                let mut conn = conn.clone();
                let res: redis::RedisResult<i64> = redis::cmd("DEL")
                    .arg(format!("{prefix}{key}"))
                    .query_async(&mut conn)
                    .await;
                if let Err(e) = res {
                    tracing::warn!(error = %e, "OCSP cache delete failed");
                }
            }
            ResponseCache::Memory(m) => m.delete(key),
        }
    }
}

/// A bounded map of answers; when full, the oldest insertion goes first (an answer replaced
/// since may go with it: this is a cache).
pub struct MemoryCache {
    capacity: usize,
    /// The newest revocation epoch seen; answers stored under an older one are not served.
    epoch: AtomicI64,
    inner: Mutex<MemoryInner>,
}

#[derive(Default)]
struct MemoryInner {
    /// Answers with the epoch they were read under.
    map: HashMap<String, (CachedAnswer, i64)>,
    order: VecDeque<String>,
}

impl MemoryCache {
    fn new(capacity: usize) -> MemoryCache {
        MemoryCache {
            capacity: capacity.max(1),
            epoch: AtomicI64::new(i64::MIN),
            inner: Mutex::new(MemoryInner::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, MemoryInner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn observe_epoch(&self, epoch: i64) -> bool {
        let before = self.epoch.fetch_max(epoch, Ordering::AcqRel);
        if epoch > before {
            // Everything cached is retired; free it (later fills tagged with an older epoch
            // are refused by `get` anyway).
            let mut inner = self.lock();
            inner.map.clear();
            inner.order.clear();
            true
        } else {
            false
        }
    }

    fn live(&self, entry: &(CachedAnswer, i64), now: OffsetDateTime) -> bool {
        entry.0.cache_until > now.unix_timestamp() && entry.1 >= self.epoch.load(Ordering::Acquire)
    }

    fn get(&self, key: &str, now: OffsetDateTime) -> Option<CachedAnswer> {
        let inner = self.lock();
        inner
            .map
            .get(key)
            .filter(|e| self.live(e, now))
            .map(|e| e.0.clone())
    }

    fn set(
        &self,
        key: &str,
        answer: &CachedAnswer,
        now: OffsetDateTime,
        only_new: bool,
        epoch: i64,
    ) {
        if epoch < self.epoch.load(Ordering::Acquire) {
            // Read before a revocation this cache has heard of since: may be stale.
            return;
        }
        let mut inner = self.lock();
        if only_new && inner.map.get(key).is_some_and(|e| self.live(e, now)) {
            return;
        }
        if inner
            .map
            .insert(key.to_owned(), (answer.clone(), epoch))
            .is_none()
        {
            inner.order.push_back(key.to_owned());
        }
        while inner.map.len() > self.capacity {
            let Some(oldest) = inner.order.pop_front() else {
                break;
            };
            inner.map.remove(&oldest);
        }
        // Keys deleted from the map may linger in `order`; keep it from growing without bound.
        if inner.order.len() > 2 * self.capacity {
            let MemoryInner { map, order } = &mut *inner;
            order.retain(|k| map.contains_key(k));
        }
    }

    fn delete(&self, key: &str) {
        self.lock().map.remove(key);
    }

    /// Number of cached answers (tests).
    pub fn len(&self) -> usize {
        self.lock().map.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(tag: u8, cache_until: i64) -> CachedAnswer {
        CachedAnswer {
            der: vec![0x30, tag],
            this_update: 1,
            next_update: 2,
            cache_until,
        }
    }

    #[test]
    fn answers_round_trip_through_their_encoding() {
        let a = answer(7, 1_800_000_000);
        assert_eq!(CachedAnswer::decode(&a.encode()), Some(a));
        assert_eq!(CachedAnswer::decode(&[0; 24]), None);
        assert_eq!(CachedAnswer::decode(b"short"), None);
    }

    #[tokio::test]
    async fn memory_cache_fills_only_when_empty_replaces_and_expires() {
        let now = OffsetDateTime::from_unix_timestamp(1_000).unwrap();
        let cache = ResponseCache::memory(10);
        cache.fill("k", &answer(1, 2_000), now, 0).await;
        cache.fill("k", &answer(2, 2_000), now, 0).await;
        assert_eq!(cache.get("k", now).await.unwrap().der[1], 1);
        cache.replace("k", &answer(3, 2_000), now).await;
        assert_eq!(cache.get("k", now).await.unwrap().der[1], 3);
        let later = OffsetDateTime::from_unix_timestamp(2_000).unwrap();
        assert!(cache.get("k", later).await.is_none());
        // An expired entry may be filled again.
        cache.fill("k", &answer(4, 3_000), later, 0).await;
        assert_eq!(cache.get("k", later).await.unwrap().der[1], 4);
        cache.delete("k").await;
        assert!(cache.get("k", later).await.is_none());
    }

    #[tokio::test]
    async fn memory_cache_is_bounded() {
        let now = OffsetDateTime::from_unix_timestamp(1_000).unwrap();
        let cache = MemoryCache::new(3);
        for i in 0..10u8 {
            cache.set(&format!("k{i}"), &answer(i, 2_000), now, true, 0);
            cache.delete("k0");
        }
        assert_eq!(cache.len(), 3);
        assert!(cache.get("k9", now).is_some());
        assert!(cache.get("k1", now).is_none());
        assert!(cache.lock().order.len() <= 6);
    }

    #[tokio::test]
    async fn a_new_revocation_epoch_retires_memory_answers_even_ones_read_before_it() {
        let now = OffsetDateTime::from_unix_timestamp(1_000).unwrap();
        let cache = ResponseCache::memory(10);
        assert!(cache.observe_epoch(5));
        assert!(!cache.observe_epoch(5));
        assert!(!cache.observe_epoch(4), "the epoch never goes back");
        let read_at = cache.epoch();
        assert_eq!(read_at, 5);
        cache.fill("a", &answer(1, 2_000), now, read_at).await;
        assert!(cache.get("a", now).await.is_some());
        // Another process revokes: the epoch moves, the cached answer goes.
        assert!(cache.observe_epoch(6));
        assert!(cache.get("a", now).await.is_none());
        // A miss that read its status before the move cannot put a stale answer back.
        cache.fill("a", &answer(2, 2_000), now, read_at).await;
        assert!(cache.get("a", now).await.is_none());
        // One read after it can.
        cache.fill("a", &answer(3, 2_000), now, cache.epoch()).await;
        assert_eq!(cache.get("a", now).await.unwrap().der[1], 3);
        // Redis keeps no epoch (every process's listener writes to it).
        assert_eq!(ResponseCache::memory(1).epoch(), i64::MIN);
    }
}
