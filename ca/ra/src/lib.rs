//! Registration authority: ACME policy and orchestration. The RA decides what may happen
//! (identifier policy, authorization reuse, order state, who may revoke what) and drives the
//! storage authority, validation authority, issuer and CT submitter; it never touches HTTP, SQL
//! or keys. It knows its collaborators only by their traits in `cairn-api` (so it compiles no
//! database driver, resolver or HTTP client, and its tests run on that crate's fakes), and
//! serves the WFE through [`RegistrationAuthority`].

mod account;
mod account_policy;
pub mod admin_revocation;
mod contract;
mod finalize;
mod order;
mod policy;
mod pre_authorization;
mod rate_limits;
mod renewal_info;
mod revocation;
mod validation;
mod weak_keys;

pub use cairn_api::ra::{
    KeyChangeError, NewAccountRequest, NewOrderRequest, OrderView, RegistrationAuthority,
    RenewalInfo, RevocationListener, RevocationRequester,
};
pub use finalize::IssuanceResult;
pub use policy::{IdentifierPolicy, check_identifiers};
pub use renewal_info::{AriConfig, cert_id, parse_cert_id, renewal_window};
pub use revocation::Revoker;

use cairn_api::{
    CertUsage, CertificateIssuer, CtSubmitter, SaError, StorageAuthority, ValidationAuthority,
};
use cairn_core::{Clock, Problem};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration as StdDuration;
use time::Duration;

/// RA policy knobs. Defaults follow Let's Encrypt's 2026 policy.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RaConfig {
    /// Lifetime of a pending authorization.
    #[serde(with = "humane_duration")]
    pub pending_authz_lifetime: Duration,
    /// Lifetime of a valid authorization (profiles may reuse it for less; see
    /// [`Profile::authz_reuse`]).
    #[serde(with = "humane_duration")]
    pub valid_authz_lifetime: Duration,
    /// How far notBefore is backdated to tolerate client clock skew.
    #[serde(with = "humane_duration")]
    pub backdate: Duration,
    /// Require External Account Binding for new accounts.
    pub external_account_required: bool,
    /// Which identifiers may be requested (every profile applies these, then its own rules).
    pub identifiers: IdentifierPolicy,
    /// How long finalize waits for issuance before answering `processing` with `Retry-After`.
    #[serde(with = "humane_duration")]
    pub finalize_wait: Duration,
    /// Issuer domain names that identify this CA in CAA records (RFC 8659), also published as
    /// `meta.caaIdentities`.
    pub caa_identities: Vec<String>,
    /// The profile of orders that name none.
    pub default_profile: String,
    /// Certificate profiles by name (draft-ietf-acme-profiles), advertised in the directory.
    pub profiles: BTreeMap<String, Profile>,
    /// ACME Renewal Information (RFC 9773).
    pub ari: AriConfig,
    /// CAA is checked again at finalize for authorizations validated longer ago than this
    /// (Boulder: 8 hours).
    #[serde(with = "humane_duration")]
    pub caa_recheck_after: Duration,
    /// The CA's external base URLs (`https://acme.example.com`), to match RFC 8657
    /// `accounturi` CAA parameters (account URLs are `<base>/acme/acct/<id>`). Empty: any
    /// base is accepted, the random account ID being what identifies the account.
    pub account_uri_prefixes: Vec<String>,
    /// How long an instance that starts validating a challenge holds it (its lease). After
    /// that, if the challenge is still `processing` (the instance died, or its write failed),
    /// any instance's recovery validates it again. Must exceed the whole validation (every
    /// VA attempt and the CAA lookup).
    #[serde(with = "humane_duration")]
    pub challenge_lease: Duration,
    /// How long an instance that issues for an order holds it (its lease), renewed while it
    /// issues and before each signature (unless taken or renewed within the last third of it).
    /// After that, if the order is still `processing`, any
    /// instance's recovery resumes its issuance. Must exceed the longest issuance step
    /// (CT submission included).
    #[serde(with = "humane_duration")]
    pub order_lease: Duration,
    /// How often each instance looks for challenges and orders whose lease ended (besides
    /// once at start-up).
    #[serde(with = "humane_duration")]
    pub recovery_interval: Duration,
    /// Which of the newer validation methods are offered (`[ra.challenges]`).
    pub challenges: ChallengeOffer,
    /// Renewal windows (renewalInfo answers, [`AriConfig::cache_for`]) kept in memory at most;
    /// when full the cache starts over. About 160 bytes each, so 15 MiB at the default 100,000.
    pub renewal_window_cache_entries: usize,
}

/// The renewal windows an RA may be configured to cache at most.
pub const RENEWAL_WINDOW_CACHE_ENTRIES_RANGE: std::ops::RangeInclusive<usize> = 100..=10_000_000;

/// The newer DNS validation methods the RA offers besides http-01, dns-01 and tls-alpn-01.
/// Both are on by default, as at Pebble.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ChallengeOffer {
    /// dns-account-01 (draft-ietf-acme-dns-account-label), for DNS names and wildcards. Offered
    /// only when `account_uri_prefixes` is set: its record name derives from the account URL
    /// exactly as clients see it, the first prefix followed by `/acme/acct/<id>`.
    pub dns_account01: bool,
    /// dns-persist-01 (draft-ietf-acme-dns-persist), for DNS names and wildcards. The record
    /// must name one of `caa_identities`, which the challenge lists as `issuer-domain-names`.
    pub dns_persist01: bool,
}

impl Default for ChallengeOffer {
    fn default() -> Self {
        Self {
            dns_account01: true,
            dns_persist01: true,
        }
    }
}

/// A certificate profile: what an order that names it gets.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// Shown to clients in `meta.profiles`.
    pub description: String,
    /// Certificate lifetime (notAfter − notBefore, backdating included).
    #[serde(with = "humane_duration")]
    pub validity: Duration,
    /// Allow `ip` identifiers (Let's Encrypt allows them only in `shortlived`).
    #[serde(default)]
    pub allow_ip: bool,
    /// Put a DNS name in the subject CN.
    #[serde(default)]
    pub include_common_name: bool,
    /// Most identifiers in one order.
    #[serde(default = "default_max_identifiers")]
    pub max_identifiers: usize,
    /// How long after its validation an authorization may be reused for this profile.
    #[serde(with = "humane_duration")]
    pub authz_reuse: Duration,
    /// Lifetime of an order.
    #[serde(with = "humane_duration", default = "default_order_lifetime")]
    pub order_lifetime: Duration,
    /// keyUsage bits: `digitalSignature` (required) and optionally `keyEncipherment`, which is
    /// added for RSA subject keys only.
    #[serde(default = "default_key_usages")]
    pub key_usages: Vec<KeyUsage>,
    /// Extended key usages: `serverAuth` (required) and optionally `clientAuth`.
    #[serde(default = "default_extended_key_usages")]
    pub extended_key_usages: Vec<ExtendedKeyUsage>,
}

/// A keyUsage bit a profile may ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum KeyUsage {
    /// digitalSignature: every TLS server certificate.
    DigitalSignature,
    /// keyEncipherment: RSA key transport (TLS 1.2 RSA suites); set on RSA keys only.
    KeyEncipherment,
}

/// An extended key usage a profile may ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ExtendedKeyUsage {
    /// id-kp-serverAuth: every certificate Cairn issues.
    ServerAuth,
    /// id-kp-clientAuth (Let's Encrypt dropped it from its default profile in 2026).
    ClientAuth,
}

impl Profile {
    /// What the issuer puts in keyUsage and EKU for this profile.
    pub fn usage(&self) -> CertUsage {
        CertUsage {
            client_auth: self
                .extended_key_usages
                .contains(&ExtendedKeyUsage::ClientAuth),
            rsa_key_encipherment: self.key_usages.contains(&KeyUsage::KeyEncipherment),
        }
    }
}

fn default_key_usages() -> Vec<KeyUsage> {
    vec![KeyUsage::DigitalSignature]
}

fn default_extended_key_usages() -> Vec<ExtendedKeyUsage> {
    vec![ExtendedKeyUsage::ServerAuth]
}

fn default_max_identifiers() -> usize {
    100
}

fn default_order_lifetime() -> Duration {
    Duration::days(7)
}

impl Default for RaConfig {
    fn default() -> Self {
        let mut profiles = BTreeMap::new();
        profiles.insert(
            "classic".to_owned(),
            Profile {
                description: "90-day certificates with a subject common name, DNS names only"
                    .into(),
                validity: Duration::days(90),
                allow_ip: false,
                include_common_name: true,
                max_identifiers: 100,
                authz_reuse: Duration::days(30),
                order_lifetime: Duration::days(7),
                key_usages: vec![KeyUsage::DigitalSignature, KeyUsage::KeyEncipherment],
                extended_key_usages: default_extended_key_usages(),
            },
        );
        profiles.insert(
            "tlsserver".to_owned(),
            Profile {
                description: "45-day certificates without a common name, DNS names only".into(),
                validity: Duration::days(45),
                allow_ip: false,
                include_common_name: false,
                max_identifiers: 100,
                authz_reuse: Duration::days(30),
                order_lifetime: Duration::days(7),
                key_usages: default_key_usages(),
                extended_key_usages: default_extended_key_usages(),
            },
        );
        profiles.insert(
            "shortlived".to_owned(),
            Profile {
                description: "160-hour certificates without a common name; DNS names and IP addresses".into(),
                validity: Duration::hours(160),
                allow_ip: true,
                include_common_name: false,
                max_identifiers: 100,
                authz_reuse: Duration::hours(7),
                order_lifetime: Duration::days(7),
                key_usages: default_key_usages(),
                extended_key_usages: default_extended_key_usages(),
            },
        );
        Self {
            pending_authz_lifetime: Duration::days(7),
            valid_authz_lifetime: Duration::days(30),
            backdate: Duration::hours(1),
            external_account_required: false,
            identifiers: IdentifierPolicy::default(),
            finalize_wait: Duration::seconds(5),
            caa_identities: vec!["cairn.invalid".into()],
            default_profile: "classic".into(),
            profiles,
            ari: AriConfig::default(),
            caa_recheck_after: Duration::hours(8),
            account_uri_prefixes: Vec::new(),
            challenge_lease: Duration::minutes(2),
            order_lease: Duration::minutes(1),
            recovery_interval: Duration::seconds(30),
            challenges: ChallengeOffer::default(),
            renewal_window_cache_entries: renewal_info::WINDOW_CACHE_ENTRIES,
        }
    }
}

impl RaConfig {
    /// Checks what serde cannot: the default profile exists, lifetimes are positive, the
    /// renewal-window cache has a size within [`RENEWAL_WINDOW_CACHE_ENTRIES_RANGE`].
    pub fn validate(&self) -> Result<(), String> {
        let entries = &RENEWAL_WINDOW_CACHE_ENTRIES_RANGE;
        if !entries.contains(&self.renewal_window_cache_entries) {
            return Err(format!(
                "ra.renewal_window_cache_entries must be within {}..={}",
                entries.start(),
                entries.end()
            ));
        }
        if !self.profiles.contains_key(&self.default_profile) {
            return Err(format!(
                "ra.default_profile {:?} is not one of ra.profiles",
                self.default_profile
            ));
        }
        if self.challenge_lease <= Duration::ZERO
            || self.order_lease <= Duration::ZERO
            || self.recovery_interval <= Duration::ZERO
        {
            return Err(
                "ra.challenge_lease, ra.order_lease and ra.recovery_interval must be positive"
                    .into(),
            );
        }
        for (name, p) in &self.profiles {
            if p.validity <= Duration::ZERO || p.validity <= self.backdate {
                return Err(format!(
                    "ra.profiles.{name}.validity must exceed ra.backdate"
                ));
            }
            if p.authz_reuse > self.valid_authz_lifetime {
                return Err(format!(
                    "ra.profiles.{name}.authz_reuse cannot exceed ra.valid_authz_lifetime"
                ));
            }
            if !p.key_usages.contains(&KeyUsage::DigitalSignature) {
                return Err(format!(
                    "ra.profiles.{name}.key_usages must include digitalSignature"
                ));
            }
            if !p
                .extended_key_usages
                .contains(&ExtendedKeyUsage::ServerAuth)
            {
                return Err(format!(
                    "ra.profiles.{name}.extended_key_usages must include serverAuth"
                ));
            }
            if p.max_identifiers == 0 || p.order_lifetime <= Duration::ZERO {
                return Err(format!(
                    "ra.profiles.{name}: max_identifiers and order_lifetime must be positive"
                ));
            }
        }
        Ok(())
    }

    /// The profile an order gets: the named one, or the default.
    pub fn profile(&self, name: Option<&str>) -> Result<(&str, &Profile), Problem> {
        let name = name.unwrap_or(&self.default_profile);
        self.profiles
            .get_key_value(name)
            .map(|(k, v)| (k.as_str(), v))
            .ok_or_else(|| {
                Problem::new(
                    cairn_core::ProblemType::InvalidProfile,
                    format!(
                        "unknown profile {:?}; this CA offers {}",
                        name.chars().take(64).collect::<String>(),
                        self.profiles.keys().cloned().collect::<Vec<_>>().join(", ")
                    ),
                )
            })
    }
}

/// Durations in config files (`"90d"`); the parser lives in `cairn-core`, shared with the
/// status services' configuration.
pub use cairn_core::humane_duration;

/// The registration authority.
#[derive(Clone)]
pub struct Ra {
    inner: Arc<Inner>,
}

struct Inner {
    limiter: cairn_ratelimit::RateLimiter,
    sa: Arc<dyn StorageAuthority>,
    va: Arc<dyn ValidationAuthority>,
    issuer: Arc<dyn CertificateIssuer>,
    /// Certificate Transparency: when set, issuance embeds SCTs (precertificate first).
    ct: Option<Arc<dyn CtSubmitter>>,
    clock: Arc<dyn Clock>,
    config: RaConfig,
    revoker: Arc<Revoker>,
    /// Recent renewal windows (renewalInfo), cleared by every revocation through `revoker`.
    ari_cache: Arc<renewal_info::WindowCache>,
    /// This instance's name as the owner of leases on `processing` work (random per process,
    /// so two instances on one database never take each other for themselves).
    instance: String,
    /// The operator's Debian weak-key blocklists, if any (see `weak_keys`).
    debian_weak_keys: std::sync::OnceLock<cairn_pki::DebianWeakKeys>,
}

impl std::fmt::Debug for Ra {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ra")
            .field("config", &self.inner.config)
            .finish()
    }
}

impl Ra {
    /// Builds an RA over its collaborators.
    pub fn new(
        sa: Arc<dyn StorageAuthority>,
        va: Arc<dyn ValidationAuthority>,
        issuer: Arc<dyn CertificateIssuer>,
        limiter: cairn_ratelimit::RateLimiter,
        clock: Arc<dyn Clock>,
        config: RaConfig,
    ) -> Self {
        Self::new_with_ct(sa, va, issuer, None, limiter, clock, config)
    }

    /// [`Ra::new`] with a Certificate Transparency submitter: every certificate is issued as
    /// a precertificate first and carries the SCTs of the submitter's logs (see `finalize`).
    pub fn new_with_ct(
        sa: Arc<dyn StorageAuthority>,
        va: Arc<dyn ValidationAuthority>,
        issuer: Arc<dyn CertificateIssuer>,
        ct: Option<Arc<dyn CtSubmitter>>,
        limiter: cairn_ratelimit::RateLimiter,
        clock: Arc<dyn Clock>,
        config: RaConfig,
    ) -> Self {
        let revoker = Arc::new(Revoker::new(sa.clone()));
        let ari_cache = Arc::new(renewal_info::WindowCache::new(
            config.ari.cache_for,
            config.renewal_window_cache_entries,
        ));
        revoker.add_listener(ari_cache.clone());
        Self {
            inner: Arc::new(Inner {
                revoker,
                ari_cache,
                limiter,
                sa,
                va,
                issuer,
                ct,
                clock,
                config,
                instance: format!("ra-{}-{}", std::process::id(), cairn_core::random_id(12)),
                debian_weak_keys: std::sync::OnceLock::new(),
            }),
        }
    }

    /// Registers a listener that hears about every revocation this RA records (see
    /// [`RevocationListener`]).
    pub fn add_revocation_listener(&self, listener: Arc<dyn RevocationListener>) {
        self.inner.revoker.add_listener(listener);
    }

    /// The revoker every revocation through this RA goes through.
    pub fn revoker(&self) -> &Arc<Revoker> {
        &self.inner.revoker
    }

    /// The policy in force.
    pub fn config(&self) -> &RaConfig {
        &self.inner.config
    }

    /// The issuer's PEM chains for `issuer_id` (default first).
    pub fn chains(&self, issuer_id: &str) -> Vec<String> {
        self.inner.issuer.chains(issuer_id)
    }

    /// How long a client should wait before polling something in progress.
    pub fn retry_after(&self) -> StdDuration {
        StdDuration::from_secs(1)
    }

    fn now(&self) -> time::OffsetDateTime {
        self.inner.clock.now()
    }

    /// A lease held by this instance for `length` from now.
    fn lease(&self, length: Duration) -> cairn_api::Lease {
        cairn_api::Lease {
            owner: self.inner.instance.clone(),
            until: self.now() + length,
        }
    }

    /// Recovers work that another instance (or this one, before a restart) left `processing`
    /// past its lease: validates stale challenges again and resumes stale issuance. Run at
    /// start-up and every [`RaConfig::recovery_interval`]; several instances may run it at
    /// once (each piece of work is claimed by compare-and-swap). Returns how many challenges
    /// and orders it took over.
    pub async fn recover_stale_work(&self) -> Result<(usize, usize), Problem> {
        let challenges = self.recover_stale_challenges().await?;
        let orders = self.resume_interrupted_issuance().await?;
        Ok((challenges, orders))
    }
}

/// Maps a storage error to a client problem: `NotFound` becomes `not_found(what)`; anything else
/// is logged with detail and hidden behind `serverInternal`.
pub(crate) fn sa_problem(err: SaError, what: &str) -> Problem {
    match err {
        SaError::NotFound => Problem::not_found(format!("{what} not found")),
        other => internal(&other, what),
    }
}

/// Logs an internal error with its detail and returns the generic problem.
pub(crate) fn internal(err: &dyn std::fmt::Display, context: &str) -> Problem {
    tracing::error!(error = %err, context, "internal error");
    Problem::internal()
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_api::fake::{FakeIssuer, MemoryStorage, ScriptedValidation};

    #[test]
    fn the_configured_renewal_window_cache_size_reaches_the_cache() {
        let now = time::OffsetDateTime::now_utc();
        let limiter = cairn_ratelimit::RateLimiter::new(
            &cairn_ratelimit::RateLimitConfig::default(),
            Arc::new(cairn_ratelimit::MemoryStore::new()),
        )
        .unwrap();
        let ra = Ra::new(
            Arc::new(MemoryStorage::new()),
            Arc::new(ScriptedValidation::new()),
            Arc::new(FakeIssuer::new(now).unwrap()),
            limiter,
            Arc::new(cairn_core::FixedClock::new(now)),
            RaConfig {
                renewal_window_cache_entries: 100,
                ..RaConfig::default()
            },
        );
        let cache = &ra.inner.ari_cache;
        let ids: Vec<String> = (0..101).map(|i| format!("a.{i}")).collect();
        for id in &ids {
            cache.put(id.clone(), (now, now, false));
        }
        let held = ids
            .iter()
            .filter(|id| cache.get(id.as_str()).is_some())
            .count();
        assert!(held <= 100, "{held} windows held");
    }

    #[test]
    fn the_renewal_window_cache_size_defaults_to_the_former_constant_and_is_checked() {
        let cfg = RaConfig::default();
        assert_eq!(cfg.renewal_window_cache_entries, 100_000);
        assert_eq!(cfg.validate(), Ok(()));
        for entries in [0, 99, 10_000_001] {
            let cfg = RaConfig {
                renewal_window_cache_entries: entries,
                ..RaConfig::default()
            };
            assert_eq!(
                cfg.validate(),
                Err("ra.renewal_window_cache_entries must be within 100..=10000000".into()),
                "{entries}"
            );
        }
    }
}
