//! Where the WFE gets its nonces (RFC 8555 §6.5): [`LocalNonces`] mints them in this process
//! (`cairn serve`, one WFE), [`RoutedNonces`] spreads minting over several nonce services and
//! redeems each nonce at the service its prefix names (a split deployment, many WFEs). The
//! minting itself, and why it stores nothing, is `cairn_acme::nonce`.

use async_trait::async_trait;
use cairn_acme::nonce::{NonceMint, NoncePrefix};
use cairn_api::{NonceError, NonceService};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// How long a nonce stays redeemable by default.
pub const DEFAULT_LIFETIME: Duration = Duration::from_secs(3600);
/// Redeemed nonces remembered by default (see `cairn_acme::nonce` for what overflowing does):
/// about 34 bytes each, so 34 MiB when full.
pub const DEFAULT_CAPACITY: usize = 1 << 20;
/// The redeemed nonces a mint may be configured to remember (`[wfe] nonce_capacity`, `[nonce]
/// capacity`): fewer would let a busy server's floor overtake nonces still in clients' hands.
pub const CAPACITY_RANGE: std::ops::RangeInclusive<usize> = 1_000..=100_000_000;

/// Nonces minted and redeemed in this process, under a key drawn at start-up.
#[derive(Debug)]
pub struct LocalNonces {
    mint: NonceMint,
    started: Instant,
}

impl LocalNonces {
    /// A mint named `prefix` (random if `None`) whose nonces live for `lifetime`, remembering at
    /// most `capacity` redeemed ones. Panics if the system random number generator fails: nonces
    /// from a guessable key would not prevent replay, and the service must not start without one.
    pub fn new(prefix: Option<NoncePrefix>, lifetime: Duration, capacity: usize) -> Self {
        let mut key = [0u8; 32];
        let mut label = [0u8; 6];
        if aws_lc_rs::rand::fill(&mut key).is_err() || aws_lc_rs::rand::fill(&mut label).is_err() {
            panic!("the system random number generator failed");
        }
        let prefix = prefix.unwrap_or_else(|| NoncePrefix::from_random(label));
        Self {
            mint: NonceMint::new(prefix, key, lifetime, capacity),
            started: Instant::now(),
        }
    }

    /// The prefix of this mint's nonces.
    pub fn prefix(&self) -> &NoncePrefix {
        self.mint.prefix()
    }

    /// Redeemed nonces remembered now (at most the capacity).
    pub fn remembered(&self) -> usize {
        self.mint.remembered()
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// A fresh nonce (synchronous: nothing to wait for).
    pub fn mint(&self) -> String {
        self.mint.issue(self.now_ms())
    }

    /// Redeems a nonce: true exactly once for a fresh nonce of this mint.
    pub fn redeem_now(&self, nonce: &str) -> bool {
        match self.mint.redeem(nonce, self.now_ms()) {
            Ok(()) => true,
            Err(why) => {
                metrics::counter!("cairn_nonce_refused_total", "reason" => reason(why))
                    .increment(1);
                false
            }
        }
    }
}

fn reason(why: cairn_acme::nonce::NonceRefused) -> &'static str {
    use cairn_acme::nonce::NonceRefused::*;
    match why {
        Foreign => "foreign",
        Forged => "forged",
        Expired => "expired",
        Replayed => "replayed",
        _ => "other",
    }
}

#[async_trait]
impl NonceService for LocalNonces {
    async fn issue(&self) -> Result<String, NonceError> {
        Ok(self.mint())
    }

    async fn redeem(&self, nonce: &str) -> Result<bool, NonceError> {
        Ok(self.redeem_now(nonce))
    }
}

/// Several nonce services, each named by the prefix of the nonces it mints. Minting goes round
/// the services, skipping any that fail; a nonce is redeemed only at the service its prefix
/// names, because only that one holds its key and its redeemed set. A nonce whose service is
/// unknown or unreachable is refused (`badNonce`): the client retries with a fresh nonce, which
/// comes from a service that answers.
#[derive(Debug)]
pub struct RoutedNonces {
    services: BTreeMap<NoncePrefix, Arc<dyn NonceService>>,
    order: Vec<Arc<dyn NonceService>>,
    next: AtomicUsize,
}

impl RoutedNonces {
    /// Routes over `services`. Panics on none: configuration validation refuses an empty list.
    pub fn new(services: impl IntoIterator<Item = (NoncePrefix, Arc<dyn NonceService>)>) -> Self {
        let services: BTreeMap<_, _> = services.into_iter().collect();
        let order: Vec<_> = services.values().cloned().collect();
        assert!(!order.is_empty(), "at least one nonce service");
        Self {
            services,
            order,
            next: AtomicUsize::new(0),
        }
    }
}

#[async_trait]
impl NonceService for RoutedNonces {
    async fn issue(&self) -> Result<String, NonceError> {
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let mut last = None;
        for i in 0..self.order.len() {
            let service = &self.order[(start + i) % self.order.len()];
            match service.issue().await {
                Ok(n) => return Ok(n),
                Err(e) => {
                    tracing::warn!(error = %e, "nonce service failed to mint; trying the next");
                    last = Some(e);
                }
            }
        }
        Err(last.unwrap_or_else(|| NonceError::Unavailable("no nonce services".into())))
    }

    async fn redeem(&self, nonce: &str) -> Result<bool, NonceError> {
        let Some(service) = NoncePrefix::of(nonce)
            .and_then(|p| NoncePrefix::new(p).ok())
            .and_then(|p| self.services.get(&p))
        else {
            metrics::counter!("cairn_nonce_refused_total", "reason" => "unknown_prefix")
                .increment(1);
            return Ok(false);
        };
        match service.redeem(nonce).await {
            Ok(ok) => Ok(ok),
            Err(e) => {
                // The minting instance is gone or unreachable: its nonces cannot be checked, so
                // they are refused, and the client's retry gets a nonce from a live service.
                tracing::warn!(error = %e, "nonce service failed to redeem; refusing the nonce");
                metrics::counter!("cairn_nonce_refused_total", "reason" => "unavailable")
                    .increment(1);
                Ok(false)
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Down;

    #[async_trait]
    impl NonceService for Down {
        async fn issue(&self) -> Result<String, NonceError> {
            Err(NonceError::Unavailable("down".into()))
        }
        async fn redeem(&self, _: &str) -> Result<bool, NonceError> {
            Err(NonceError::Unavailable("down".into()))
        }
    }

    fn local(prefix: &str) -> Arc<LocalNonces> {
        Arc::new(LocalNonces::new(
            Some(NoncePrefix::new(prefix).unwrap()),
            DEFAULT_LIFETIME,
            100,
        ))
    }

    #[tokio::test]
    async fn nonces_are_redeemed_at_the_service_that_minted_them() {
        let a = local("AAAAAAAA");
        let b = local("BBBBBBBB");
        let routed = |x: &Arc<LocalNonces>, y: &Arc<LocalNonces>| {
            RoutedNonces::new([
                (x.prefix().clone(), x.clone() as Arc<dyn NonceService>),
                (y.prefix().clone(), y.clone() as Arc<dyn NonceService>),
            ])
        };
        // Two WFEs, each routing over the same two services.
        let wfe1 = routed(&a, &b);
        let wfe2 = routed(&b, &a);
        let mut prefixes = std::collections::BTreeSet::new();
        for i in 0..8 {
            let (mint, redeem) = if i % 2 == 0 {
                (&wfe1, &wfe2)
            } else {
                (&wfe2, &wfe1)
            };
            let n = mint.issue().await.unwrap();
            prefixes.insert(n[..8].to_owned());
            assert!(
                redeem.redeem(&n).await.unwrap(),
                "fresh nonce from the other WFE"
            );
            assert!(
                !mint.redeem(&n).await.unwrap(),
                "replayed through the first WFE"
            );
        }
        assert_eq!(prefixes.len(), 2, "minting goes round both services");
    }

    #[tokio::test]
    async fn unknown_prefixes_and_unreachable_services_refuse_and_minting_skips_them() {
        let a = local("AAAAAAAA");
        let routed = RoutedNonces::new([
            (a.prefix().clone(), a.clone() as Arc<dyn NonceService>),
            (NoncePrefix::new("DDDDDDDD").unwrap(), Arc::new(Down) as _),
        ]);
        for _ in 0..4 {
            let n = routed.issue().await.unwrap();
            assert!(n.starts_with("AAAAAAAA"));
            assert!(routed.redeem(&n).await.unwrap());
        }
        let other = local("CCCCCCCC");
        assert!(!routed.redeem(&other.mint()).await.unwrap());
        assert!(!routed.redeem("DDDDDDDDxxxx").await.unwrap());
        assert!(!routed.redeem("").await.unwrap());
        let all_down =
            RoutedNonces::new([(NoncePrefix::new("DDDDDDDD").unwrap(), Arc::new(Down) as _)]);
        assert!(all_down.issue().await.is_err());
    }
}
