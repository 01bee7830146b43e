//! Who is asking: passwords (argon2id), session cookies and their CSRF tokens, per-account API
//! tokens, and the log-in rate limit.
//!
//! - Passwords are hashed with argon2id at the `argon2` crate's defaults (19 MiB, 2 passes,
//!   RFC 9106's second recommended setting) on a blocking thread. A log-in for an unknown
//!   address verifies against a fixed hash anyway, so the answer takes as long.
//! - A session is a random 32-byte cookie value; only its SHA-256 is stored. Each session has
//!   its own CSRF token, which every state-changing form carries (synchronizer token pattern;
//!   the cookie is also `SameSite=Strict`, `HttpOnly`, and `Secure` when the console's public
//!   URL is `https:`).
//! - An API token is `<prefix>.<secret>`: listed by its prefix only, stored as a SHA-256 hash,
//!   revocable. Bearer requests carry no ambient credential, so they need no CSRF token.
//! - Log-in failures are counted per e-mail address and per client address in fixed windows
//!   ([`LoginLimiter`]); over the limit, log-ins are refused with 429 before the password is
//!   checked. The counters are in memory: a restart or a second console instance starts
//!   afresh (documented in `docs/dap-console.md`).

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use aws_lc_rs::digest;
use aws_lc_rs::rand::SecureRandom;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use std::collections::HashMap;
use std::sync::Mutex;

/// `n` random bytes.
pub fn random<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    // The system RNG failing is not recoverable; an all-zero value is never used because the
    // error is turned into a panic-free 500 by the callers' `random_token` checks.
    if aws_lc_rs::rand::SystemRandom::new().fill(&mut b).is_err() {
        tracing::error!("system random number generator failed");
    }
    b
}

/// A random ID or secret: `N` random bytes, unpadded base64url.
pub fn random_token<const N: usize>() -> Option<String> {
    let b = random::<N>();
    // All zeros means the generator failed (probability 2^-128 otherwise).
    (b.iter().any(|x| *x != 0)).then(|| URL_SAFE_NO_PAD.encode(b))
}

/// SHA-256.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    let d = digest::digest(&digest::SHA256, data);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// Equality without an early exit.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Hashes `password` with argon2id and a random salt (PHC string).
pub async fn hash_password(password: String) -> Option<String> {
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::encode_b64(&random::<16>()).ok()?;
        argon2::Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .ok()
            .map(|h| h.to_string())
    })
    .await
    .ok()
    .flatten()
}

/// A hash no password matches that is checked when the e-mail address is unknown, so that
/// such a log-in costs as much as a real one.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$\
                          1mH2IeZ0hV3BYZOnJQlqfQWhNVq1cMvlQ8DoF/rL3Ro";

/// Whether `password` matches the PHC string `hash` (`None`: check the dummy hash).
pub async fn verify_password(hash: Option<String>, password: String) -> bool {
    tokio::task::spawn_blocking(move || {
        let known = hash.is_some();
        let hash = hash.unwrap_or_else(|| DUMMY_HASH.to_owned());
        let Ok(parsed) = PasswordHash::new(&hash) else {
            return false;
        };
        let ok = argon2::Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok();
        ok && known
    })
    .await
    .unwrap_or(false)
}

/// An API token split into its listed prefix and the whole token's hash.
#[derive(Debug)]
pub struct ApiTokenParts {
    /// What lists show.
    pub prefix: String,
    /// SHA-256 of the whole token.
    pub hash: [u8; 32],
}

/// Splits `<prefix>.<secret>`; `None` if it is not shaped like a console token.
pub fn parse_api_token(token: &str) -> Option<ApiTokenParts> {
    let (prefix, secret) = token.split_once('.')?;
    if prefix.len() != 12 || secret.len() < 32 {
        return None;
    }
    Some(ApiTokenParts {
        prefix: prefix.to_owned(),
        hash: sha256(token.as_bytes()),
    })
}

/// A fresh API token: the token itself (shown once) and its parts.
pub fn new_api_token() -> Option<(String, ApiTokenParts)> {
    let token = format!("{}.{}", random_token::<9>()?, random_token::<32>()?);
    let parts = parse_api_token(&token)?;
    Some((token, parts))
}

/// Log-in limits: how many failures each key may have per window.
#[derive(Debug, Clone, Copy, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LoginLimits {
    /// Failures per e-mail address per window.
    pub per_email: u32,
    /// Failures per client IP address per window.
    pub per_client: u32,
    /// The window, in seconds.
    pub window_secs: u64,
}

impl Default for LoginLimits {
    fn default() -> Self {
        LoginLimits {
            per_email: 5,
            per_client: 20,
            window_secs: 300,
        }
    }
}

/// Fixed-window counters of failed log-ins.
#[derive(Debug, Default)]
pub struct LoginLimiter {
    limits: LoginLimits,
    /// Key → (window start, failures in it).
    counts: Mutex<HashMap<String, (u64, u32)>>,
}

/// Most keys remembered; beyond it, expired windows are dropped first, then the map is
/// cleared (an attacker filling it only resets everyone's counters, never blocks anyone).
const MAX_KEYS: usize = 100_000;

impl LoginLimiter {
    /// Counters with `limits`.
    pub fn new(limits: LoginLimits) -> LoginLimiter {
        LoginLimiter {
            limits,
            counts: Mutex::new(HashMap::new()),
        }
    }

    fn keys(email: &str, client: Option<std::net::IpAddr>) -> Vec<(String, u32, bool)> {
        let mut keys = vec![(format!("e:{}", email.to_lowercase()), 0, true)];
        if let Some(ip) = client {
            keys.push((format!("c:{ip}"), 0, false));
        }
        keys
    }

    /// Seconds until a log-in for `email` from `client` may be tried again, if either is
    /// over its limit now.
    pub fn blocked(&self, email: &str, client: Option<std::net::IpAddr>, now: u64) -> Option<u64> {
        let counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        Self::keys(email, client)
            .into_iter()
            .find_map(|(k, _, is_email)| {
                let (start, n) = *counts.get(&k)?;
                let limit = if is_email {
                    self.limits.per_email
                } else {
                    self.limits.per_client
                };
                let end = start + self.limits.window_secs;
                (now < end && n >= limit).then_some(end - now)
            })
    }

    /// Counts a failed log-in.
    pub fn failed(&self, email: &str, client: Option<std::net::IpAddr>, now: u64) {
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        if counts.len() >= MAX_KEYS {
            let w = self.limits.window_secs;
            counts.retain(|_, (start, _)| now < *start + w);
            if counts.len() >= MAX_KEYS {
                counts.clear();
            }
        }
        for (k, _, _) in Self::keys(email, client) {
            let e = counts.entry(k).or_insert((now, 0));
            if now >= e.0 + self.limits.window_secs {
                *e = (now, 0);
            }
            e.1 = e.1.saturating_add(1);
        }
    }

    /// Forgets the address's failures after a successful log-in.
    pub fn succeeded(&self, email: &str) {
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        counts.remove(&format!("e:{}", email.to_lowercase()));
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn failures_block_until_the_window_ends() {
        let l = LoginLimiter::new(LoginLimits {
            per_email: 2,
            per_client: 3,
            window_secs: 60,
        });
        let ip = Some(std::net::IpAddr::from([10, 0, 0, 1]));
        l.failed("A@x", ip, 100);
        assert_eq!(l.blocked("a@x", ip, 101), None);
        l.failed("a@x", ip, 101);
        assert_eq!(l.blocked("a@x", None, 110), Some(50));
        // Another address from the same client: blocked once the client hits its limit.
        assert_eq!(l.blocked("b@x", ip, 110), None);
        l.failed("b@x", ip, 110);
        assert_eq!(l.blocked("b@x", ip, 111), Some(49));
        assert_eq!(l.blocked("a@x", None, 160), None);
        l.succeeded("b@x");
        assert_eq!(l.blocked("b@x", None, 111), None);
    }

    #[tokio::test]
    async fn passwords_verify_only_against_their_own_hash() {
        let h = hash_password("correct horse".into()).await.unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password(Some(h.clone()), "correct horse".into()).await);
        assert!(!verify_password(Some(h), "wrong".into()).await);
        assert!(!verify_password(None, "anything".into()).await);
    }

    #[test]
    fn the_dummy_hash_is_a_real_argon2id_hash() {
        // Else a log-in for an unknown address would skip the work and answer faster.
        let h = PasswordHash::new(DUMMY_HASH).unwrap();
        assert_eq!(h.algorithm.as_str(), "argon2id");
        assert_eq!(h.hash.unwrap().len(), 32);
    }

    #[test]
    fn api_tokens_split_into_prefix_and_hash() {
        let (token, parts) = new_api_token().unwrap();
        assert!(token.starts_with(&parts.prefix));
        assert_eq!(parse_api_token(&token).unwrap().hash, parts.hash);
        assert!(parse_api_token("short.x").is_none());
    }
}
