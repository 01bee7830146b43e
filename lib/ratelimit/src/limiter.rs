//! The rate limiter: resolves each transaction's limit, decides with GCRA, and spends through the
//! store with compare-and-set so concurrent CA instances never overspend.

use crate::config::{ConfigError, Policy, RateLimitConfig};
use crate::duration::format_duration;
use crate::gcra::{self, Limit, Tat};
use crate::key::{BucketKey, validation_id};
use crate::limits::LimitName;
use crate::store::{RateLimitStore, StoreError, TatUpdate};
use crate::transaction::Transaction;
use cairn_core::{AccountId, Identifier, IdentifierType};
use std::collections::BTreeMap;
use std::sync::Arc;
use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime};

/// How often a spend re-reads and retries when another writer got in between. Each failed
/// attempt means another request was admitted, so this bounds waiting, not correctness.
const MAX_ATTEMPTS: usize = 128;

/// A refusal, with everything an RFC 8555 `rateLimited` problem needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denied {
    /// The limit that refused.
    pub limit: LimitName,
    /// The bucket that ran dry.
    pub key: BucketKey,
    /// When a retry could succeed.
    pub retry_after: Duration,
    /// A sentence for the client naming the limit and when to retry.
    pub detail: String,
    /// The limit's documentation.
    pub doc_url: String,
}

impl Denied {
    /// `retry_after` in whole seconds, rounded up (at least 1), for a `Retry-After` header.
    pub fn retry_after_secs(&self) -> u64 {
        let nanos = self.retry_after.whole_nanoseconds().max(1);
        u64::try_from((nanos + 999_999_999) / 1_000_000_000).unwrap_or(u64::MAX)
    }
}

/// Why a rate-limited operation did not go through.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RateLimitError {
    /// A limit refused the request; answer `rateLimited`.
    #[error("{}", .0.detail)]
    Denied(Box<Denied>),
    /// The account has paused identifiers; answer `rateLimited` with a way to unpause.
    #[error("account {account} is paused for {}", display_identifiers(.identifiers))]
    Paused {
        /// The account.
        account: AccountId,
        /// The paused identifiers among those requested.
        identifiers: Vec<Identifier>,
    },
    /// The store failed; the caller decides whether to fail open.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Other writers kept changing the same buckets for too long.
    #[error("rate limit buckets changed under {MAX_ATTEMPTS} attempts in a row")]
    Contention,
}

fn display_identifiers(ids: &[Identifier]) -> String {
    ids.iter()
        .map(|i| i.value.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// What a failed validation led to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailedValidation {
    /// The (account, identifier) pair ran out of consecutive failures and is now paused.
    pub paused: bool,
}

/// Which pauses to lift.
#[derive(Debug, Clone, Copy)]
pub enum Unpause<'a> {
    /// These identifiers only.
    Identifiers(&'a [Identifier]),
    /// Every identifier paused for the account.
    All,
}

/// Let's Encrypt's rate limits over a [`RateLimitStore`].
#[derive(Debug, Clone)]
pub struct RateLimiter {
    policy: Arc<Policy>,
    store: Arc<dyn RateLimitStore>,
}

/// The transactions on one bucket, merged.
struct Entry {
    key: BucketKey,
    storage_key: String,
    limit: Limit,
    spend: u64,
    check: u64,
}

impl RateLimiter {
    /// A limiter with a checked configuration.
    pub fn new(
        config: &RateLimitConfig,
        store: Arc<dyn RateLimitStore>,
    ) -> Result<Self, ConfigError> {
        Ok(Self {
            policy: Arc::new(config.resolve()?),
            store,
        })
    }

    /// The store underneath.
    pub fn store(&self) -> &Arc<dyn RateLimitStore> {
        &self.store
    }

    /// The limit that applies to a transaction after overrides; `None` if the limit is off.
    pub fn limit_for(&self, txn: &Transaction) -> Option<Limit> {
        self.policy.limit_for(txn.key.limit(), &txn.subject)
    }

    /// Checks every transaction and spends the tokens of all the non-check-only ones if, and only
    /// if, every one allows; otherwise spends nothing and reports the refusal with the longest
    /// wait. Disabled limits are skipped.
    pub async fn check_and_spend(
        &self,
        now: OffsetDateTime,
        txns: &[Transaction],
    ) -> Result<(), RateLimitError> {
        self.spend(now, txns).await.map(|_| ())
    }

    /// Gives back the tokens `txns` spent, for a request that failed for the server's own
    /// reasons. Check-only transactions and disabled limits are skipped.
    pub async fn refund(
        &self,
        now: OffsetDateTime,
        txns: &[Transaction],
    ) -> Result<(), RateLimitError> {
        let entries: Vec<Entry> = self
            .merge(txns)
            .into_iter()
            .filter(|e| e.spend > 0)
            .collect();
        if entries.is_empty() {
            return Ok(());
        }
        let keys: Vec<String> = entries.iter().map(|e| e.storage_key.clone()).collect();
        for _ in 0..MAX_ATTEMPTS {
            let tats = self.store.get_tats(&keys).await?;
            let updates: Vec<TatUpdate> = entries
                .iter()
                .zip(tats)
                .filter_map(|(e, tat)| {
                    let new = gcra::refund(now, tat, &e.limit, e.spend)?;
                    Some(update(now, &e.storage_key, tat, new))
                })
                .collect();
            if updates.is_empty() || self.store.compare_and_set_tats(&updates).await? {
                return Ok(());
            }
        }
        Err(RateLimitError::Contention)
    }

    /// Counts a failed validation of `identifier` by `account`: spends the failed-validations
    /// bucket and the pausing bucket (each on its own: a failure counts even when a bucket is
    /// already dry). When the pausing bucket runs dry the pair is paused.
    pub async fn record_failed_validation(
        &self,
        now: OffsetDateTime,
        account: &AccountId,
        identifier: &Identifier,
    ) -> Result<FailedValidation, RateLimitError> {
        match self
            .spend(
                now,
                &[Transaction::failed_authorizations(account, identifier)],
            )
            .await
        {
            Ok(_) | Err(RateLimitError::Denied(_)) => {}
            Err(e) => return Err(e),
        }
        let pausing = Transaction::failed_authorizations_for_pausing(account, identifier);
        let exhausted = match self.spend(now, std::slice::from_ref(&pausing)).await {
            Ok(remaining) => remaining.first().is_some_and(|r| *r == 0),
            Err(RateLimitError::Denied(_)) => true,
            Err(e) => return Err(e),
        };
        if exhausted {
            self.pause(account, std::slice::from_ref(identifier))
                .await?;
        }
        Ok(FailedValidation { paused: exhausted })
    }

    /// Counts a successful validation: the consecutive-failure count for the pair starts over.
    pub async fn record_successful_validation(
        &self,
        account: &AccountId,
        identifier: &Identifier,
    ) -> Result<(), RateLimitError> {
        let key = Transaction::failed_authorizations_for_pausing(account, identifier)
            .key
            .storage_key();
        Ok(self.store.delete_tats(&[key]).await?)
    }

    /// Fails with [`RateLimitError::Paused`] if any of `identifiers` is paused for the account
    /// (call at newOrder).
    pub async fn check_paused(
        &self,
        account: &AccountId,
        identifiers: &[Identifier],
    ) -> Result<(), RateLimitError> {
        let paused = self.paused_identifiers(account, identifiers).await?;
        if paused.is_empty() {
            return Ok(());
        }
        Err(RateLimitError::Paused {
            account: account.clone(),
            identifiers: paused,
        })
    }

    /// Whether `identifier` is paused for the account.
    pub async fn is_paused(
        &self,
        account: &AccountId,
        identifier: &Identifier,
    ) -> Result<bool, RateLimitError> {
        Ok(!self
            .paused_identifiers(account, std::slice::from_ref(identifier))
            .await?
            .is_empty())
    }

    /// The paused identifiers among `identifiers`, canonical (wildcards as their base name).
    pub async fn paused_identifiers(
        &self,
        account: &AccountId,
        identifiers: &[Identifier],
    ) -> Result<Vec<Identifier>, RateLimitError> {
        let members: Vec<String> = identifiers.iter().map(pause_member).collect();
        let paused = self.store.get_pauses(account.as_str(), &members).await?;
        Ok(paused.iter().filter_map(|m| from_pause_member(m)).collect())
    }

    /// Pauses identifiers for the account (also done by [`Self::record_failed_validation`]).
    pub async fn pause(
        &self,
        account: &AccountId,
        identifiers: &[Identifier],
    ) -> Result<(), RateLimitError> {
        let members: Vec<String> = identifiers.iter().map(pause_member).collect();
        Ok(self.store.put_pauses(account.as_str(), &members).await?)
    }

    /// Lifts pauses and gives the unpaused pairs a fresh pausing bucket. Returns what was paused.
    pub async fn unpause(
        &self,
        account: &AccountId,
        which: Unpause<'_>,
    ) -> Result<Vec<Identifier>, RateLimitError> {
        let removed = match which {
            Unpause::All => self.store.delete_pauses(account.as_str(), None).await?,
            Unpause::Identifiers(ids) => {
                let members: Vec<String> = ids.iter().map(pause_member).collect();
                self.store
                    .delete_pauses(account.as_str(), Some(&members))
                    .await?
            }
        };
        let identifiers: Vec<Identifier> = removed
            .iter()
            .filter_map(|m| from_pause_member(m))
            .collect();
        let keys: Vec<String> = identifiers
            .iter()
            .map(|i| {
                Transaction::failed_authorizations_for_pausing(account, i)
                    .key
                    .storage_key()
            })
            .collect();
        self.store.delete_tats(&keys).await?;
        Ok(identifiers)
    }

    /// Merges transactions on the same bucket and drops disabled limits.
    fn merge(&self, txns: &[Transaction]) -> Vec<Entry> {
        let mut merged: BTreeMap<String, Entry> = BTreeMap::new();
        for txn in txns {
            let Some(limit) = self.limit_for(txn) else {
                continue;
            };
            let storage_key = txn.key.storage_key();
            let entry = merged.entry(storage_key.clone()).or_insert_with(|| Entry {
                key: txn.key.clone(),
                storage_key,
                limit,
                spend: 0,
                check: 0,
            });
            if txn.check_only {
                entry.check = entry.check.max(txn.cost);
            } else {
                entry.spend = entry.spend.saturating_add(txn.cost);
            }
        }
        merged.into_values().collect()
    }

    /// The spend behind [`Self::check_and_spend`]; returns the tokens left per merged bucket.
    async fn spend(
        &self,
        now: OffsetDateTime,
        txns: &[Transaction],
    ) -> Result<Vec<u64>, RateLimitError> {
        let entries = self.merge(txns);
        if entries.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<String> = entries.iter().map(|e| e.storage_key.clone()).collect();
        for _ in 0..MAX_ATTEMPTS {
            let tats = self.store.get_tats(&keys).await?;
            let mut worst: Option<(&Entry, Duration)> = None;
            let mut updates = Vec::new();
            let mut remaining = Vec::new();
            for (entry, tat) in entries.iter().zip(tats) {
                let needed = entry.spend.max(entry.check);
                let decision = gcra::decide(now, tat, &entry.limit, needed);
                if !decision.allowed {
                    if worst.is_none_or(|(_, wait)| decision.retry_after > wait) {
                        worst = Some((entry, decision.retry_after));
                    }
                    continue;
                }
                if entry.spend == 0 {
                    remaining.push(decision.remaining);
                    continue;
                }
                let spent = gcra::decide(now, tat, &entry.limit, entry.spend);
                remaining.push(spent.remaining);
                updates.push(update(now, &entry.storage_key, tat, spent.new_tat));
            }
            if let Some((entry, wait)) = worst {
                return Err(RateLimitError::Denied(Box::new(
                    self.denied(now, entry, wait),
                )));
            }
            if updates.is_empty() || self.store.compare_and_set_tats(&updates).await? {
                return Ok(remaining);
            }
        }
        Err(RateLimitError::Contention)
    }

    fn denied(&self, now: OffsetDateTime, entry: &Entry, wait: Duration) -> Denied {
        let name = entry.key.limit();
        let limit = entry.limit;
        let doc_url = self.policy.doc_url(name);
        let rate = if limit.burst == limit.count {
            format!("{} per {}", limit.burst, format_duration(limit.period))
        } else {
            format!(
                "{}, refilling {} per {}",
                limit.burst,
                limit.count,
                format_duration(limit.period)
            )
        };
        let denied = Denied {
            limit: name,
            key: entry.key.clone(),
            retry_after: wait,
            detail: String::new(),
            doc_url,
        };
        let secs = denied.retry_after_secs();
        let at = (now + Duration::seconds(i64::try_from(secs).unwrap_or(i64::MAX)))
            .format(&Rfc3339)
            .unwrap_or_default();
        let detail = if entry.spend.max(entry.check) > limit.burst {
            format!(
                "too many {} ({rate}): this request alone exceeds the limit; see {}",
                name.describe(),
                denied.doc_url
            )
        } else {
            format!(
                "too many {} ({rate}): retry after {at} (in {}); see {}",
                name.describe(),
                format_duration(Duration::seconds(i64::try_from(secs).unwrap_or(i64::MAX))),
                denied.doc_url
            )
        };
        Denied { detail, ..denied }
    }
}

fn update(now: OffsetDateTime, key: &str, expected: Option<Tat>, new: Tat) -> TatUpdate {
    let ttl = new.to_datetime() - now;
    TatUpdate {
        key: key.to_string(),
        expected,
        new,
        ttl: ttl
            .try_into()
            .unwrap_or(std::time::Duration::ZERO)
            .max(std::time::Duration::from_millis(1)),
    }
}

/// How a paused identifier is stored: `dns:example.com` or `ip:192.0.2.1`.
fn pause_member(identifier: &Identifier) -> String {
    format!("{}:{}", identifier.typ.as_str(), validation_id(identifier))
}

fn from_pause_member(member: &str) -> Option<Identifier> {
    let (typ, value) = member.split_once(':')?;
    let typ = match typ {
        "dns" => IdentifierType::Dns,
        "ip" => IdentifierType::Ip,
        _ => return None,
    };
    Some(Identifier {
        typ,
        value: value.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        let d = |retry_after| Denied {
            limit: LimitName::NewOrdersPerAccount,
            key: BucketKey::new(LimitName::NewOrdersPerAccount, "a"),
            retry_after,
            detail: String::new(),
            doc_url: String::new(),
        };
        assert_eq!(d(Duration::milliseconds(1)).retry_after_secs(), 1);
        assert_eq!(d(Duration::seconds(36)).retry_after_secs(), 36);
        assert_eq!(d(Duration::milliseconds(36_001)).retry_after_secs(), 37);
        assert_eq!(d(Duration::ZERO).retry_after_secs(), 1);
    }

    #[test]
    fn pause_members_round_trip() {
        let ip = Identifier::ip("2001:db8::1".parse().unwrap());
        assert_eq!(pause_member(&ip), "ip:2001:db8::1");
        assert_eq!(from_pause_member(&pause_member(&ip)), Some(ip));
        let wild = Identifier::dns("*.Example.com");
        assert_eq!(
            from_pause_member(&pause_member(&wild)),
            Some(Identifier::dns("example.com"))
        );
    }
}
