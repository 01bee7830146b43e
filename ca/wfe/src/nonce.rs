//! Anti-replay nonces (RFC 8555 §6.5): single-use and expiring, minted without storage.
//!
//! A nonce is `base64url(counter ‖ issued ‖ tag)`: a per-process counter (8 octets, big
//! endian), the issue time in milliseconds since the service started (8 octets), and the first
//! 16 octets of HMAC-SHA256 over both under a key drawn at start-up. Minting stores nothing, so
//! no number of unauthenticated newNonce requests can push a client's nonce out (a store of
//! issued nonces could be flooded until it forgot real clients' ones). Only redemption keeps
//! state: the counters redeemed within the lifetime, so each nonce works once. That set is
//! bounded by `capacity`; past it, the oldest redeemed counter becomes a floor below which every
//! nonce is refused (as Boulder's nonce service does), which takes that many successful
//! redemptions, each a POST with a nonce of its own, within one lifetime.

use aws_lc_rs::hmac;
use aws_lc_rs::rand::SystemRandom;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Octets of the HMAC kept in a nonce.
const TAG_LEN: usize = 16;
/// Octets of a decoded nonce: counter, issue time, tag.
const NONCE_LEN: usize = 8 + 8 + TAG_LEN;

/// Issues and redeems nonces.
#[derive(Debug)]
pub struct NonceService {
    key: hmac::Key,
    counter: AtomicU64,
    started: Instant,
    state: Mutex<Redeemed>,
    lifetime: Duration,
    capacity: usize,
}

/// What redemption remembers.
#[derive(Debug, Default)]
struct Redeemed {
    /// Counters redeemed and not yet expired, with their issue time (ms since start).
    used: BTreeMap<u64, u64>,
    /// Counters at or below this are refused (the set above overflowed).
    floor: u64,
}

impl NonceService {
    /// A service whose nonces live for `lifetime`, remembering at most `capacity` redeemed
    /// nonces. Panics if the system random number generator fails: nonces from a guessable key
    /// would not prevent replay, and the service must not start without one.
    pub fn new(lifetime: Duration, capacity: usize) -> Self {
        let key = hmac::Key::generate(hmac::HMAC_SHA256, &SystemRandom::new())
            .unwrap_or_else(|_| panic!("the system random number generator failed"));
        Self {
            key,
            counter: AtomicU64::new(0),
            started: Instant::now(),
            state: Mutex::new(Redeemed::default()),
            lifetime,
            capacity: capacity.max(1),
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn tag(&self, body: &[u8]) -> hmac::Tag {
        hmac::sign(&self.key, body)
    }

    /// A fresh nonce. Stores nothing.
    pub fn issue(&self) -> String {
        let counter = self.counter.fetch_add(1, Ordering::Relaxed) + 1;
        let mut nonce = [0u8; NONCE_LEN];
        nonce[..8].copy_from_slice(&counter.to_be_bytes());
        nonce[8..16].copy_from_slice(&self.now_ms().to_be_bytes());
        let tag = self.tag(&nonce[..16]);
        nonce[16..].copy_from_slice(&tag.as_ref()[..TAG_LEN]);
        URL_SAFE_NO_PAD.encode(nonce)
    }

    /// Redeems a nonce: true exactly once for a nonce this service issued that has not expired.
    pub fn redeem(&self, nonce: &str) -> bool {
        let Ok(raw) = URL_SAFE_NO_PAD.decode(nonce) else {
            return false;
        };
        let Ok(raw) = <[u8; NONCE_LEN]>::try_from(raw.as_slice()) else {
            return false;
        };
        let expected = self.tag(&raw[..16]);
        if aws_lc_rs::constant_time::verify_slices_are_equal(
            &expected.as_ref()[..TAG_LEN],
            &raw[16..],
        )
        .is_err()
        {
            return false;
        }
        let mut word = [0u8; 8];
        word.copy_from_slice(&raw[..8]);
        let counter = u64::from_be_bytes(word);
        word.copy_from_slice(&raw[8..16]);
        let issued = u64::from_be_bytes(word);
        let now = self.now_ms();
        let lifetime = u64::try_from(self.lifetime.as_millis()).unwrap_or(u64::MAX);
        let expired = |issued: u64| now.saturating_sub(issued) > lifetime;
        if expired(issued) {
            return false;
        }
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if counter <= st.floor || st.used.contains_key(&counter) {
            return false;
        }
        st.used.insert(counter, issued);
        // Expired nonces are refused by their time: forget them. Counters grow with time, so
        // they sit at the front (near enough: a slow minting thread can only keep one longer).
        while let Some((&oldest, &at)) = st.used.first_key_value() {
            if !expired(at) && st.used.len() <= self.capacity {
                break;
            }
            st.used.remove(&oldest);
            if !expired(at) {
                st.floor = st.floor.max(oldest);
            }
        }
        true
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
        assert!(!s.redeem(""));
    }

    #[test]
    fn nonces_expire() {
        let s = NonceService::new(Duration::from_millis(1), 100);
        let n = s.issue();
        std::thread::sleep(Duration::from_millis(5));
        assert!(!s.redeem(&n));
    }

    #[test]
    fn forged_and_foreign_nonces_are_refused() {
        let s = NonceService::new(Duration::from_secs(60), 100);
        let other = NonceService::new(Duration::from_secs(60), 100);
        assert!(!s.redeem(&other.issue()), "another key's nonce");
        let mut raw = URL_SAFE_NO_PAD.decode(s.issue()).unwrap();
        raw[7] ^= 1; // another counter under the same tag
        assert!(!s.redeem(&URL_SAFE_NO_PAD.encode(&raw)));
    }

    /// Issue 14, finding 12: minting stores nothing, so a flood of issued nonces (what any
    /// unauthenticated newNonce request gets) cannot evict a client's outstanding nonce.
    #[test]
    fn a_flood_of_issued_nonces_does_not_evict_an_outstanding_one() {
        let s = NonceService::new(Duration::from_secs(60), 3);
        let mine = s.issue();
        for _ in 0..10_000 {
            s.issue();
        }
        assert!(s.redeem(&mine));
    }

    #[test]
    fn redeemed_nonces_are_remembered_up_to_capacity_then_a_floor_refuses_older_ones() {
        let s = NonceService::new(Duration::from_secs(60), 3);
        let old = s.issue();
        let all: Vec<_> = (0..5).map(|_| s.issue()).collect();
        for n in &all {
            assert!(s.redeem(n));
        }
        for n in &all {
            assert!(!s.redeem(n), "replayed");
        }
        // Five redemptions overflowed a set of three: the floor passed `old`.
        assert!(!s.redeem(&old));
        let st = s.state.lock().unwrap();
        assert!(st.used.len() <= 3);
    }
}
