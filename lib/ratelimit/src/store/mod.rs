//! Where bucket TATs and pauses live: one async trait, an in-process store and a Redis store.

mod memory;
mod redis;

pub use self::memory::MemoryStore;
pub use self::redis::RedisStore;

use crate::gcra::Tat;
use async_trait::async_trait;
use std::fmt::Debug;

/// A TAT to write if the stored one is still what the writer read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TatUpdate {
    /// The storage key ([`crate::BucketKey::storage_key`]).
    pub key: String,
    /// The TAT read before deciding; `None` if the key was absent (or expired).
    pub expected: Option<Tat>,
    /// The TAT to store.
    pub new: Tat,
    /// How long to keep the key: after `new` has passed the bucket is full, which is the same
    /// as no key at all.
    pub ttl: std::time::Duration,
}

/// Why a store failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// Redis refused or the connection failed.
    #[error("redis: {0}")]
    Redis(#[from] ::redis::RedisError),
    /// A stored TAT is not an integer (someone else wrote under our prefix).
    #[error("stored value for {key:?} is not a timestamp")]
    Corrupt {
        /// The key read.
        key: String,
    },
}

/// Storage of bucket TATs and of paused (account, identifier) pairs. Keys and identifiers are
/// opaque strings here; the limiter decides what they mean.
#[async_trait]
pub trait RateLimitStore: Send + Sync + Debug + 'static {
    /// The TATs of `keys`, in order; `None` for absent or expired keys.
    async fn get_tats(&self, keys: &[String]) -> Result<Vec<Option<Tat>>, StoreError>;

    /// Writes every update if, and only if, every key still holds its `expected` TAT; one atomic
    /// step. Returns whether it wrote. Keys appear at most once.
    async fn compare_and_set_tats(&self, updates: &[TatUpdate]) -> Result<bool, StoreError>;

    /// Forgets buckets (they become full).
    async fn delete_tats(&self, keys: &[String]) -> Result<(), StoreError>;

    /// Marks identifiers paused for an account. Pauses do not expire.
    async fn put_pauses(&self, account: &str, identifiers: &[String]) -> Result<(), StoreError>;

    /// Which of `identifiers` are paused for the account.
    async fn get_pauses(
        &self,
        account: &str,
        identifiers: &[String],
    ) -> Result<Vec<String>, StoreError>;

    /// Lifts pauses: the given identifiers, or all of the account's when `None`. Returns the
    /// identifiers that were paused.
    async fn delete_pauses(
        &self,
        account: &str,
        identifiers: Option<&[String]>,
    ) -> Result<Vec<String>, StoreError>;
}
