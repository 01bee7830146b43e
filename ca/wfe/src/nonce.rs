//! Anti-replay nonces (RFC 8555 §6.5): random, single-use, expiring, bounded in number.

use cairn_core::random_id;
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Issues and redeems nonces. Memory is bounded: past `capacity` outstanding nonces the oldest
/// are forgotten (a client holding one gets `badNonce` and retries, as RFC 8555 intends).
#[derive(Debug)]
pub struct NonceService {
    state: Mutex<State>,
    lifetime: Duration,
    capacity: usize,
}

#[derive(Debug, Default)]
struct State {
    live: HashMap<String, Instant>,
    issued: VecDeque<(Instant, String)>,
}

impl NonceService {
    /// A service whose nonces live for `lifetime`, keeping at most `capacity` outstanding.
    pub fn new(lifetime: Duration, capacity: usize) -> Self {
        Self {
            state: Mutex::new(State::default()),
            lifetime,
            capacity: capacity.max(1),
        }
    }

    /// A fresh nonce.
    pub fn issue(&self) -> String {
        let nonce = random_id(16);
        let now = Instant::now();
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        while let Some((at, _)) = st.issued.front() {
            let expired = now.duration_since(*at) > self.lifetime;
            if !expired && st.issued.len() < self.capacity {
                break;
            }
            if let Some((_, old)) = st.issued.pop_front() {
                st.live.remove(&old);
            }
        }
        st.live.insert(nonce.clone(), now);
        st.issued.push_back((now, nonce.clone()));
        nonce
    }

    /// Redeems a nonce: true exactly once for a nonce this service issued that has not expired.
    pub fn redeem(&self, nonce: &str) -> bool {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        match st.live.remove(nonce) {
            Some(at) => at.elapsed() <= self.lifetime,
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nonces_redeem_once() {
        let s = NonceService::new(Duration::from_secs(60), 100);
        let n = s.issue();
        assert!(s.redeem(&n));
        assert!(!s.redeem(&n));
        assert!(!s.redeem("never-issued"));
    }

    #[test]
    fn nonces_expire() {
        let s = NonceService::new(Duration::from_millis(1), 100);
        let n = s.issue();
        std::thread::sleep(Duration::from_millis(5));
        assert!(!s.redeem(&n));
    }

    #[test]
    fn capacity_bounds_memory_and_forgets_oldest() {
        let s = NonceService::new(Duration::from_secs(60), 3);
        let first = s.issue();
        let rest: Vec<_> = (0..3).map(|_| s.issue()).collect();
        assert!(!s.redeem(&first));
        for n in rest {
            assert!(s.redeem(&n));
        }
    }
}
