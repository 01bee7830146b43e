//! A Redis store shared by several CA instances: MGET to read, a Lua script to compare-and-set
//! many TATs in one atomic step, keys that expire when their bucket is full again.

use super::{RateLimitStore, StoreError, TatUpdate};
use crate::gcra::Tat;
use async_trait::async_trait;
use redis::Script;
use redis::aio::ConnectionManager;
use std::fmt;

/// Sets every key to its new TAT only if every key still holds the TAT the caller read
/// (`""` = absent). ARGV holds (expected, new, ttl_ms) per key. Returns 1 if it wrote.
const COMPARE_AND_SET: &str = r"
for i, key in ipairs(KEYS) do
  local current = redis.call('GET', key)
  local expected = ARGV[3 * i - 2]
  if expected == '' then
    if current then return 0 end
  elseif current ~= expected then
    return 0
  end
end
for i, key in ipairs(KEYS) do
  redis.call('SET', key, ARGV[3 * i - 1], 'PX', ARGV[3 * i])
end
return 1
";

/// Removes the given members (ARGV) from the set, or the whole set when ARGV is empty; returns
/// the members that were there.
const DELETE_PAUSES: &str = r"
if #ARGV == 0 then
  local members = redis.call('SMEMBERS', KEYS[1])
  redis.call('DEL', KEYS[1])
  return members
end
local removed = {}
for _, id in ipairs(ARGV) do
  if redis.call('SREM', KEYS[1], id) == 1 then table.insert(removed, id) end
end
return removed
";

/// Buckets in Redis, shared by every CA instance that uses the same server and prefix. TAT keys
/// are `<prefix><tag>:<id>` with a TTL; pauses are sets `<prefix>pause:<account>` without one.
/// The multi-key script needs all keys on one node: a single server (or a primary with replicas),
/// not Redis Cluster.
#[derive(Clone)]
pub struct RedisStore {
    conn: ConnectionManager,
    prefix: String,
    compare_and_set: Script,
    delete_pauses: Script,
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl RedisStore {
    /// Connects to `url` (`redis://host:port/db`, no TLS) and keeps every key under `prefix`
    /// (e.g. `"cairn:rl:"`). The connection manager reconnects by itself.
    pub async fn connect(url: &str, prefix: impl Into<String>) -> Result<Self, StoreError> {
        let client = redis::Client::open(url)?;
        let conn = client.get_connection_manager().await?;
        Ok(Self::from_connection(conn, prefix))
    }

    /// Uses an existing connection manager.
    pub fn from_connection(conn: ConnectionManager, prefix: impl Into<String>) -> Self {
        Self {
            conn,
            prefix: prefix.into(),
            compare_and_set: Script::new(COMPARE_AND_SET),
            delete_pauses: Script::new(DELETE_PAUSES),
        }
    }

    /// The key prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    fn key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    fn pause_key(&self, account: &str) -> String {
        format!("{}pause:{account}", self.prefix)
    }
}

#[async_trait]
impl RateLimitStore for RedisStore {
    async fn get_tats(&self, keys: &[String]) -> Result<Vec<Option<Tat>>, StoreError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let full: Vec<String> = keys.iter().map(|k| self.key(k)).collect();
        let mut conn = self.conn.clone();
        let values: Vec<Option<String>> =
            redis::cmd("MGET").arg(&full).query_async(&mut conn).await?;
        keys.iter()
            .zip(values)
            .map(|(key, value)| match value {
                None => Ok(None),
                Some(v) => v
                    .parse::<i64>()
                    .map(|n| Some(Tat(n)))
                    .map_err(|_| StoreError::Corrupt { key: key.clone() }),
            })
            .collect()
    }

    async fn compare_and_set_tats(&self, updates: &[TatUpdate]) -> Result<bool, StoreError> {
        if updates.is_empty() {
            return Ok(true);
        }
        let mut invocation = self.compare_and_set.prepare_invoke();
        for u in updates {
            let ttl_ms = u64::try_from(u.ttl.as_millis())
                .unwrap_or(u64::MAX)
                .saturating_add(1);
            invocation
                .key(self.key(&u.key))
                .arg(u.expected.map(|t| t.0.to_string()).unwrap_or_default())
                .arg(u.new.0.to_string())
                .arg(ttl_ms);
        }
        let mut conn = self.conn.clone();
        let wrote: i64 = invocation.invoke_async(&mut conn).await?;
        Ok(wrote == 1)
    }

    async fn delete_tats(&self, keys: &[String]) -> Result<(), StoreError> {
        if keys.is_empty() {
            return Ok(());
        }
        let full: Vec<String> = keys.iter().map(|k| self.key(k)).collect();
        let mut conn = self.conn.clone();
        let _: i64 = redis::cmd("DEL").arg(&full).query_async(&mut conn).await?;
        Ok(())
    }

    async fn put_pauses(&self, account: &str, identifiers: &[String]) -> Result<(), StoreError> {
        if identifiers.is_empty() {
            return Ok(());
        }
        let mut conn = self.conn.clone();
        let _: i64 = redis::cmd("SADD")
            .arg(self.pause_key(account))
            .arg(identifiers)
            .query_async(&mut conn)
            .await?;
        Ok(())
    }

    async fn get_pauses(
        &self,
        account: &str,
        identifiers: &[String],
    ) -> Result<Vec<String>, StoreError> {
        if identifiers.is_empty() {
            return Ok(Vec::new());
        }
        let key = self.pause_key(account);
        let mut pipe = redis::pipe();
        for id in identifiers {
            pipe.cmd("SISMEMBER").arg(&key).arg(id);
        }
        let mut conn = self.conn.clone();
        let found: Vec<bool> = pipe.query_async(&mut conn).await?;
        Ok(identifiers
            .iter()
            .zip(found)
            .filter(|(_, paused)| *paused)
            .map(|(id, _)| id.clone())
            .collect())
    }

    async fn delete_pauses(
        &self,
        account: &str,
        identifiers: Option<&[String]>,
    ) -> Result<Vec<String>, StoreError> {
        if identifiers.is_some_and(<[String]>::is_empty) {
            return Ok(Vec::new());
        }
        let mut invocation = self.delete_pauses.key(self.pause_key(account));
        for id in identifiers.unwrap_or_default() {
            invocation.arg(id);
        }
        let mut conn = self.conn.clone();
        Ok(invocation.invoke_async(&mut conn).await?)
    }
}
