//! Time as the aggregators see it: a [`Clock`] trait, the system clock and a settable test clock.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// A source of the current POSIX time in seconds.
pub trait Clock: Send + Sync + std::fmt::Debug + 'static {
    /// Seconds since the UNIX epoch.
    fn now(&self) -> u64;
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct RealClock;

impl Clock for RealClock {
    fn now(&self) -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
    }
}

/// A clock tests set and advance by hand. Clones share the same time.
#[derive(Debug, Clone, Default)]
pub struct MockClock(Arc<AtomicU64>);

impl MockClock {
    /// A clock reading `seconds`.
    pub fn new(seconds: u64) -> MockClock {
        MockClock(Arc::new(AtomicU64::new(seconds)))
    }

    /// Sets the time.
    pub fn set(&self, seconds: u64) {
        self.0.store(seconds, Ordering::SeqCst);
    }

    /// Moves the time forward.
    pub fn advance(&self, seconds: u64) {
        self.0.fetch_add(seconds, Ordering::SeqCst);
    }
}

impl Clock for MockClock {
    fn now(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}
