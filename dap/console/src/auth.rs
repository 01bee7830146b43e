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
//!   checked. The counters are in the datastore, shared by every console instance on it and
//!   kept across restarts.

use crate::store::{Store, StoreError};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use aws_lc_rs::digest;
use aws_lc_rs::rand::SecureRandom;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

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

/// Fixed-window counters of failed log-ins, kept in the datastore (`console_login_failures`),
/// so every console instance on one database and a restarted one count the same failures.
#[derive(Debug, Clone)]
pub struct LoginLimiter {
    limits: LoginLimits,
    store: Store,
}

impl LoginLimiter {
    /// Counters with `limits` in `store`.
    pub fn new(limits: LoginLimits, store: Store) -> LoginLimiter {
        LoginLimiter { limits, store }
    }

    fn email_key(email: &str) -> String {
        format!("e:{}", email.to_lowercase())
    }

    fn keys(email: &str, client: Option<std::net::IpAddr>) -> Vec<String> {
        let mut keys = vec![Self::email_key(email)];
        if let Some(ip) = client {
            keys.push(format!("c:{ip}"));
        }
        keys
    }

    /// Seconds until a log-in for `email` from `client` may be tried again, if either is
    /// over its limit now.
    pub async fn blocked(
        &self,
        email: &str,
        client: Option<std::net::IpAddr>,
        now: u64,
    ) -> Result<Option<u64>, StoreError> {
        let w = self.limits.window_secs;
        let counts = self
            .store
            .get_login_failures(&Self::keys(email, client), now, w)
            .await?;
        Ok(counts.into_iter().find_map(|(k, start, n)| {
            let limit = if k.starts_with("e:") {
                self.limits.per_email
            } else {
                self.limits.per_client
            };
            (n >= limit).then(|| (start + w).saturating_sub(now).max(1))
        }))
    }

    /// Counts a failed log-in.
    pub async fn failed(
        &self,
        email: &str,
        client: Option<std::net::IpAddr>,
        now: u64,
    ) -> Result<(), StoreError> {
        self.store
            .count_login_failure(&Self::keys(email, client), now, self.limits.window_secs)
            .await
    }

    /// Forgets the address's failures after a successful log-in.
    pub async fn succeeded(&self, email: &str) -> Result<(), StoreError> {
        self.store
            .clear_login_failures(&Self::email_key(email))
            .await
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

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
