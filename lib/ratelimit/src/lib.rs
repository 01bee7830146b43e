//! Let's Encrypt's rate limits for the Cairn RA: GCRA token buckets keyed by IP, account,
//! registered domain and identifier set, with overrides, pausing, and in-memory or Redis storage.
//!
//! Each limit is a bucket of `burst` tokens refilling `count` per `period`; a bucket's whole
//! state is one timestamp (its theoretical arrival time), decided on by the pure
//! [`gcra::decide`]. The [`RateLimiter`] checks several buckets at once and spends only if all
//! allow, through a [`RateLimitStore`] compare-and-set, so several CA instances sharing a
//! [`RedisStore`] never overspend. Every call takes `now`: the RA passes its clock's time.
//!
//! # How the RA uses it
//!
//! ```no_run
//! # async fn example(now: time::OffsetDateTime, ip: std::net::IpAddr,
//! #     account: cairn_core::AccountId, identifiers: Vec<cairn_core::Identifier>,
//! #     replaced: Option<Vec<cairn_core::Identifier>>) -> Result<(), cairn_ratelimit::RateLimitError> {
//! use cairn_ratelimit::{MemoryStore, RateLimitConfig, RateLimiter, Transaction, Unpause};
//! use std::sync::Arc;
//!
//! let limiter = RateLimiter::new(&RateLimitConfig::default(), Arc::new(MemoryStore::new()))
//!     .expect("default configuration is valid");
//!
//! // newAccount: per IP address (and per IPv6 /48).
//! limiter.check_and_spend(now, &Transaction::new_account(ip)).await?;
//!
//! // newOrder: refuse paused identifiers, then one new order, one certificate per registered
//! // domain, one for the identifier set; an ARI renewal (`replaces`) passes the replaced
//! // certificate's identifiers and is exempt from the certificate counts of those only.
//! limiter.check_paused(&account, &identifiers).await?;
//! let txns = Transaction::new_order(&account, &identifiers, replaced.as_deref());
//! limiter.check_and_spend(now, &txns).await?;
//! // … if creating the order then fails on the server's side:
//! limiter.refund(now, &txns).await?;
//!
//! // After validation: failures count (and may pause the pair), a success resets the count.
//! let outcome = limiter.record_failed_validation(now, &account, &identifiers[0]).await?;
//! if outcome.paused { /* tell the subscriber how to unpause */ }
//! limiter.record_successful_validation(&account, &identifiers[0]).await?;
//!
//! // Admin: lift pauses.
//! limiter.unpause(&account, Unpause::All).await?;
//! # Ok(()) }
//! ```
//!
//! A [`RateLimitError::Denied`] carries the limit, the bucket, `retry_after` (use
//! [`Denied::retry_after_secs`] for `Retry-After`), a sentence for the problem's `detail`, and the
//! limit's documentation URL (`docs/rate-limits.md#<limit>` unless configured otherwise).
//! [`RateLimitError::Store`] means the store failed: the RA chooses to fail open or closed.

pub mod config;
pub mod duration;
pub mod gcra;
pub mod ip_prefix;
pub mod key;
pub mod limiter;
pub mod limits;
pub mod store;
pub mod transaction;

pub use config::{ConfigError, DEFAULT_DOC_BASE_URL, LimitConfig, OverrideConfig, RateLimitConfig};
pub use duration::{DurationError, format_duration, parse_duration};
pub use gcra::{Decision, Limit, Tat, decide, refund};
pub use ip_prefix::{IpPrefix, IpPrefixError};
pub use key::{BucketKey, fqdn_set_hash, registered_domain};
pub use limiter::{Denied, FailedValidation, RateLimitError, RateLimiter, Unpause};
pub use limits::LimitName;
pub use store::{MemoryStore, RateLimitStore, RedisStore, StoreError, TatUpdate};
pub use transaction::Transaction;
