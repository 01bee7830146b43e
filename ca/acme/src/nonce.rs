//! Anti-replay nonces (RFC 8555 §6.5): single-use, expiring, minted without storage, and routable
//! to the nonce service instance that minted them. No I/O: the caller supplies the key and the
//! time, so the same logic runs inside one WFE (`cairn serve`) or in a nonce service that many
//! WFEs share (`cairn nonce serve`).
//!
//! A nonce is `prefix ‖ base64url(counter ‖ issued ‖ tag)`. The [`NoncePrefix`] is eight
//! base64url characters naming the minting instance, as Boulder's nonce service prefixes do: a
//! WFE that holds a nonce from another WFE's response reads the prefix and redeems it at that
//! instance. The body is a per-instance counter (8 octets, big endian), the issue time in
//! milliseconds on the caller's clock (8 octets), and the first 16 octets of HMAC-SHA256 over the
//! prefix, counter and time under the instance's key. The prefix is covered by the tag, so a
//! nonce cannot be re-routed to another instance by editing it.
//!
//! Minting stores nothing, so no number of unauthenticated newNonce requests can push a client's
//! nonce out (a store of issued nonces could be flooded until it forgot real clients' ones). Only
//! redemption keeps state: the counters redeemed within the lifetime, so each nonce works once.
//! That set is bounded by `capacity`; past it, the oldest redeemed counter becomes a floor below
//! which every nonce is refused (as Boulder's nonce service does), which takes that many
//! successful redemptions, each a POST with a nonce of its own, within one lifetime.

use aws_lc_rs::hmac;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Characters of a [`NoncePrefix`].
pub const PREFIX_LEN: usize = 8;
/// Octets of the HMAC kept in a nonce.
const TAG_LEN: usize = 16;
/// Octets of a decoded nonce body: counter, issue time, tag.
const BODY_LEN: usize = 8 + 8 + TAG_LEN;
/// Characters of a whole nonce: the prefix and the base64url body.
pub const NONCE_CHARS: usize = PREFIX_LEN + (BODY_LEN * 4).div_ceil(3);

/// The routing prefix naming one nonce-minting instance: exactly eight characters of the
/// base64url alphabet (so a nonce stays a valid base64url string, RFC 8555 §6.5.1).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NoncePrefix(String);

/// A prefix that is not eight base64url characters.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a nonce prefix is exactly {PREFIX_LEN} characters of A-Z, a-z, 0-9, '-' and '_'")]
pub struct BadNoncePrefix;

impl NoncePrefix {
    /// Checks `s` is eight base64url characters.
    pub fn new(s: &str) -> Result<Self, BadNoncePrefix> {
        if s.len() == PREFIX_LEN
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            Ok(Self(s.to_owned()))
        } else {
            Err(BadNoncePrefix)
        }
    }

    /// A prefix made from six random octets (for an instance whose operator named none).
    pub fn from_random(octets: [u8; 6]) -> Self {
        Self(URL_SAFE_NO_PAD.encode(octets))
    }

    /// The prefix of `nonce`, if it is long enough to carry one. Says nothing about whether the
    /// nonce is genuine: only the minting instance can tell.
    pub fn of(nonce: &str) -> Option<&str> {
        nonce.get(..PREFIX_LEN)
    }

    /// The prefix as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for NoncePrefix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for NoncePrefix {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::new(&s).map_err(serde::de::Error::custom)
    }
}

impl serde::Serialize for NoncePrefix {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

/// Why a nonce was refused. All of them are `badNonce` to the client; the kinds are for logs and
/// metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NonceRefused {
    /// Not a nonce of this shape, or minted by another instance (its prefix differs).
    #[error("not a nonce of this instance")]
    Foreign,
    /// The tag does not match: forged, altered, or minted under a key this instance no longer
    /// holds (it restarted).
    #[error("nonce tag does not verify")]
    Forged,
    /// Older than the lifetime.
    #[error("nonce expired")]
    Expired,
    /// Already redeemed, or below the floor left by an overflowing redeemed set.
    #[error("nonce already used")]
    Replayed,
}

/// Mints and redeems the nonces of one instance.
#[derive(Debug)]
pub struct NonceMint {
    prefix: NoncePrefix,
    key: hmac::Key,
    counter: AtomicU64,
    state: Mutex<Redeemed>,
    lifetime_ms: u64,
    capacity: usize,
}

/// What redemption remembers.
#[derive(Debug, Default)]
struct Redeemed {
    /// Counters redeemed and not yet expired, with their issue time (ms).
    used: BTreeMap<u64, u64>,
    /// Counters at or below this are refused (the set above overflowed).
    floor: u64,
}

impl NonceMint {
    /// A mint named `prefix` keyed with `key` (32 secret random octets drawn at start-up), whose
    /// nonces live for `lifetime`, remembering at most `capacity` redeemed nonces.
    pub fn new(prefix: NoncePrefix, key: [u8; 32], lifetime: Duration, capacity: usize) -> Self {
        Self {
            prefix,
            key: hmac::Key::new(hmac::HMAC_SHA256, &key),
            counter: AtomicU64::new(0),
            state: Mutex::new(Redeemed::default()),
            lifetime_ms: u64::try_from(lifetime.as_millis()).unwrap_or(u64::MAX),
            capacity: capacity.max(1),
        }
    }

    /// This instance's prefix.
    pub fn prefix(&self) -> &NoncePrefix {
        &self.prefix
    }

    fn tag(&self, body: &[u8]) -> hmac::Tag {
        let mut ctx = hmac::Context::with_key(&self.key);
        ctx.update(self.prefix.as_str().as_bytes());
        ctx.update(body);
        ctx.sign()
    }

    /// A fresh nonce issued at `now_ms` (milliseconds on the caller's monotonic clock). Stores
    /// nothing.
    pub fn issue(&self, now_ms: u64) -> String {
        let counter = self.counter.fetch_add(1, Ordering::Relaxed) + 1;
        let mut body = [0u8; BODY_LEN];
        body[..8].copy_from_slice(&counter.to_be_bytes());
        body[8..16].copy_from_slice(&now_ms.to_be_bytes());
        let tag = self.tag(&body[..16]);
        body[16..].copy_from_slice(&tag.as_ref()[..TAG_LEN]);
        let mut nonce = String::with_capacity(NONCE_CHARS);
        nonce.push_str(self.prefix.as_str());
        URL_SAFE_NO_PAD.encode_string(body, &mut nonce);
        nonce
    }

    /// Redeems a nonce at `now_ms`: succeeds exactly once for a nonce this instance issued that
    /// has not expired.
    pub fn redeem(&self, nonce: &str, now_ms: u64) -> Result<(), NonceRefused> {
        let body = nonce
            .strip_prefix(self.prefix.as_str())
            .ok_or(NonceRefused::Foreign)?;
        let mut raw = [0u8; BODY_LEN];
        match URL_SAFE_NO_PAD.decode_slice(body, &mut raw) {
            Ok(BODY_LEN) => {}
            _ => return Err(NonceRefused::Foreign),
        }
        let expected = self.tag(&raw[..16]);
        aws_lc_rs::constant_time::verify_slices_are_equal(
            &expected.as_ref()[..TAG_LEN],
            &raw[16..],
        )
        .map_err(|_| NonceRefused::Forged)?;
        let mut word = [0u8; 8];
        word.copy_from_slice(&raw[..8]);
        let counter = u64::from_be_bytes(word);
        word.copy_from_slice(&raw[8..16]);
        let issued = u64::from_be_bytes(word);
        let expired = |issued: u64| now_ms.saturating_sub(issued) > self.lifetime_ms;
        if expired(issued) {
            return Err(NonceRefused::Expired);
        }
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if counter <= st.floor || st.used.contains_key(&counter) {
            return Err(NonceRefused::Replayed);
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
        Ok(())
    }

    /// Redeemed nonces currently remembered (at most `capacity`).
    pub fn remembered(&self) -> usize {
        self.state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .used
            .len()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn mint(prefix: &str, key: u8, lifetime_ms: u64, capacity: usize) -> NonceMint {
        NonceMint::new(
            NoncePrefix::new(prefix).unwrap(),
            [key; 32],
            Duration::from_millis(lifetime_ms),
            capacity,
        )
    }

    #[test]
    fn nonces_redeem_once_and_carry_the_prefix() {
        let s = mint("abcd-_12", 1, 60_000, 100);
        let n = s.issue(5);
        assert_eq!(n.len(), NONCE_CHARS);
        assert_eq!(NoncePrefix::of(&n), Some("abcd-_12"));
        assert!(
            n.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        );
        assert_eq!(s.redeem(&n, 6), Ok(()));
        assert_eq!(s.redeem(&n, 7), Err(NonceRefused::Replayed));
        assert_eq!(s.redeem("never-issued", 7), Err(NonceRefused::Foreign));
        assert_eq!(s.redeem("", 7), Err(NonceRefused::Foreign));
        assert_eq!(s.redeem("abcd-_12", 7), Err(NonceRefused::Foreign));
        assert_eq!(s.redeem(&format!("{n}A"), 7), Err(NonceRefused::Foreign));
    }

    #[test]
    fn nonces_expire_after_the_lifetime() {
        let s = mint("AAAAAAAA", 1, 1_000, 100);
        let a = s.issue(0);
        let b = s.issue(0);
        assert_eq!(s.redeem(&a, 1_000), Ok(()), "exactly at the lifetime");
        assert_eq!(s.redeem(&b, 1_001), Err(NonceRefused::Expired));
    }

    #[test]
    fn another_instance_and_forged_nonces_are_refused() {
        let s = mint("AAAAAAAA", 1, 60_000, 100);
        let same_prefix_other_key = mint("AAAAAAAA", 2, 60_000, 100);
        let other_prefix = mint("BBBBBBBB", 1, 60_000, 100);
        assert_eq!(
            s.redeem(&same_prefix_other_key.issue(0), 1),
            Err(NonceRefused::Forged)
        );
        assert_eq!(
            s.redeem(&other_prefix.issue(0), 1),
            Err(NonceRefused::Foreign)
        );
        // Same key, other prefix: re-labelling a nonce to route it elsewhere breaks the tag.
        let relabelled = format!("AAAAAAAA{}", &other_prefix.issue(0)[PREFIX_LEN..]);
        assert_eq!(s.redeem(&relabelled, 1), Err(NonceRefused::Forged));
        let n = s.issue(0);
        let mut raw = URL_SAFE_NO_PAD.decode(&n[PREFIX_LEN..]).unwrap();
        raw[7] ^= 1; // another counter under the same tag
        let altered = format!("AAAAAAAA{}", URL_SAFE_NO_PAD.encode(&raw));
        assert_eq!(s.redeem(&altered, 1), Err(NonceRefused::Forged));
        assert_eq!(s.redeem(&n, 1), Ok(()));
    }

    /// Issue 14, finding 12: minting stores nothing, so a flood of issued nonces (what any
    /// unauthenticated newNonce request gets) cannot evict a client's outstanding nonce.
    #[test]
    fn a_flood_of_issued_nonces_does_not_evict_an_outstanding_one() {
        let s = mint("AAAAAAAA", 1, 60_000, 3);
        let mine = s.issue(0);
        for _ in 0..10_000 {
            s.issue(0);
        }
        assert_eq!(s.redeem(&mine, 1), Ok(()));
        assert_eq!(s.remembered(), 1);
    }

    #[test]
    fn redeemed_nonces_are_remembered_up_to_capacity_then_a_floor_refuses_older_ones() {
        let s = mint("AAAAAAAA", 1, 60_000, 3);
        let old = s.issue(0);
        let all: Vec<_> = (0..5).map(|_| s.issue(0)).collect();
        for n in &all {
            assert_eq!(s.redeem(n, 1), Ok(()));
        }
        for n in &all {
            assert_eq!(s.redeem(n, 1), Err(NonceRefused::Replayed));
        }
        // Five redemptions overflowed a set of three: the floor passed `old`.
        assert_eq!(s.redeem(&old, 1), Err(NonceRefused::Replayed));
        assert!(s.remembered() <= 3);
    }

    #[test]
    fn expired_redemptions_are_forgotten_without_raising_the_floor() {
        let s = mint("AAAAAAAA", 1, 1_000, 2);
        let early = s.issue(0);
        assert_eq!(s.redeem(&early, 1), Ok(()));
        let late: Vec<_> = (0..2).map(|_| s.issue(5_000)).collect();
        let waiting = s.issue(5_000);
        for n in &late {
            assert_eq!(s.redeem(n, 5_001), Ok(()));
        }
        // The expired one was dropped by time, so the set did not overflow into a floor.
        assert_eq!(s.remembered(), 2);
        assert_eq!(s.redeem(&waiting, 5_002), Ok(()));
    }

    #[test]
    fn prefixes_are_eight_base64url_characters() {
        assert!(NoncePrefix::new("abcdEFG0").is_ok());
        for bad in [
            "",
            "abc",
            "abcdefghi",
            "abcd efg",
            "abcd+efg",
            "abcd/efg",
            "abcdéfg",
        ] {
            assert_eq!(NoncePrefix::new(bad), Err(BadNoncePrefix), "{bad:?}");
        }
        let p = NoncePrefix::from_random([0xff; 6]);
        assert_eq!(p.as_str().len(), PREFIX_LEN);
        assert!(NoncePrefix::new(p.as_str()).is_ok());
        assert_eq!(NoncePrefix::of("abc"), None);
        assert_eq!(NoncePrefix::of("é"), None);
    }
}
