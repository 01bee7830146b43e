//! The DAP management console (what divviup-api and its front end are to Janus): people sign
//! up and share accounts, describe a metric in plain words, and the console creates the DAP
//! task at the leader and a paired helper through their control planes. It keeps its tables in
//! the leader's datastore (migration 0006) and reads the leader's counters from there.
//!
//! - [`metric`]: the wizard's answers → task parameters (no I/O).
//! - [`auth`]: passwords, sessions, CSRF, API tokens, the log-in limit.
//! - [`store`]: the console's tables.
//! - `pages`: server-rendered HTML (minijinja templates compiled into the binary, one
//!   script and one stylesheet served from the console itself — nothing from a CDN).
//! - `api`: the JSON API for API tokens (`/console/api/…`).
//!
//! `cairn serve` mounts [`router`] at [`MOUNT`] on the leader's listener; `cairn dap console`
//! serves it on a listener of its own.

pub mod auth;
pub mod egress;
pub mod metric;
pub mod store;

mod api;
mod chart;
mod error;
mod pages;
mod provision;

pub use error::ConsoleError;

use cairn_dap_aggregator::Datastore;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Where the console lives on its listener.
pub const MOUNT: &str = "/console";

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "cairn_console_session";

/// `[dap.console]` / the `cairn dap console` configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConsoleConfig {
    /// Serve the console.
    pub enabled: bool,
    /// Let anyone create a login (else only members added to an account by someone in it —
    /// and the first sign-up, so an operator can bootstrap).
    pub open_signup: bool,
    /// The console's public URL (e.g. `https://metrics.example/console/`): cookies are
    /// `Secure` when it is `https:`. Unset: taken as plain HTTP (development).
    pub public_url: Option<String>,
    /// The leader's DAP URL as clients reach it (task parameters); unset: the URL the console
    /// uses itself.
    pub leader_public_url: Option<String>,
    /// The smallest minimum batch size an account may choose.
    pub min_batch_size_floor: u64,
    /// How long a log-in lasts, in seconds.
    pub session_secs: u64,
    /// Log-in attempt limits.
    pub login_limits: auth::LoginLimits,
    /// Let accounts pair helpers on private, loopback or link-local addresses (a console on
    /// a private network). Off: the console refuses to send requests there (see [`egress`]).
    pub allow_private_helpers: bool,
}

impl Default for ConsoleConfig {
    fn default() -> Self {
        ConsoleConfig {
            enabled: false,
            open_signup: true,
            public_url: None,
            leader_public_url: None,
            min_batch_size_floor: 100,
            session_secs: 12 * 3600,
            login_limits: auth::LoginLimits::default(),
            allow_private_helpers: false,
        }
    }
}

impl ConsoleConfig {
    /// Checks the values.
    pub fn validate(&self) -> Result<(), String> {
        if self.min_batch_size_floor == 0 {
            return Err("min_batch_size_floor must be at least 1".into());
        }
        if !(60..=30 * 86400).contains(&self.session_secs) {
            return Err("session_secs must be within 60..=2592000".into());
        }
        for url in [&self.public_url, &self.leader_public_url]
            .into_iter()
            .flatten()
        {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(format!("{url} is not an http(s) URL"));
            }
        }
        if self.login_limits.per_email == 0
            || self.login_limits.per_client == 0
            || self.login_limits.window_secs == 0
        {
            return Err("login_limits must be positive".into());
        }
        Ok(())
    }

    /// The addresses an account's helper may have.
    fn helper_policy(&self) -> cairn_core::address_policy::AddressPolicy {
        cairn_core::address_policy::AddressPolicy::allowing_private(self.allow_private_helpers)
    }

    fn secure_cookies(&self) -> bool {
        self.public_url
            .as_deref()
            .is_some_and(|u| u.starts_with("https://"))
    }
}

/// `cairn dap console --config FILE`: the console on a listener of its own, beside a leader
/// run by `cairn dap serve --role leader` (it shares that leader's datastore: its tables, its
/// counters and its datastore key).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StandaloneConfig {
    /// Where the console listens (it is served under [`MOUNT`]).
    pub listen: std::net::SocketAddr,
    /// The leader's datastore URL (`sqlite://…` or `postgres://…`), or the environment
    /// variable named by `database_url_env` holding it.
    #[serde(default)]
    pub database_url: Option<String>,
    /// Environment variable holding the datastore URL (for URLs with passwords).
    #[serde(default)]
    pub database_url_env: Option<String>,
    /// Environment variable holding the leader's datastore key.
    #[serde(default = "default_datastore_key_env")]
    pub datastore_key_env: String,
    /// The leader's DAP base URL, as the console reaches it.
    pub leader_url: String,
    /// Environment variable holding the leader's control-plane token.
    #[serde(default = "default_control_token_env")]
    pub leader_control_token_env: String,
    /// A helper offered to every account (its DAP base URL), if any.
    #[serde(default)]
    pub shared_helper_url: Option<String>,
    /// Environment variable holding the shared helper's control-plane token.
    #[serde(default = "default_control_token_env")]
    pub shared_helper_control_token_env: String,
    /// The console itself (`enabled` is implied).
    #[serde(default)]
    pub console: ConsoleConfig,
}

fn default_datastore_key_env() -> String {
    "CAIRN_DAP_DATASTORE_KEY".into()
}

fn default_control_token_env() -> String {
    "CAIRN_DAP_CONTROL_TOKEN".into()
}

impl StandaloneConfig {
    /// The datastore URL from the file or the environment.
    pub fn database_url(&self) -> Option<String> {
        self.database_url.clone().or_else(|| {
            self.database_url_env
                .as_deref()
                .and_then(|v| std::env::var(v).ok())
        })
    }
}

/// An aggregator the console creates tasks at: its DAP base URL and control-plane token.
#[derive(Clone)]
pub struct AggregatorEndpoint {
    /// DAP base URL (ends with `/`); the control plane is under `control/`.
    pub url: String,
    /// Control-plane bearer token.
    pub control_token: String,
}

impl std::fmt::Debug for AggregatorEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AggregatorEndpoint")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

/// What the console runs with.
#[derive(Debug)]
pub struct Console {
    config: ConsoleConfig,
    datastore: Datastore,
    store: store::Store,
    leader: AggregatorEndpoint,
    shared_helper: Option<AggregatorEndpoint>,
    limiter: auth::LoginLimiter,
    http: reqwest::Client,
    clock: Arc<dyn cairn_dap_core::Clock>,
    templates: minijinja::Environment<'static>,
}

impl Console {
    /// A console on the leader's `datastore`, creating tasks at `leader` and offering
    /// `shared_helper` (if any) to every account.
    pub fn new(
        config: ConsoleConfig,
        datastore: Datastore,
        leader: AggregatorEndpoint,
        shared_helper: Option<AggregatorEndpoint>,
        clock: Arc<dyn cairn_dap_core::Clock>,
    ) -> Result<Arc<Console>, ConsoleError> {
        config.validate().map_err(ConsoleError::Config)?;
        // The leader and the shared helper are the operator's: their hosts resolve unfiltered.
        let trusted = std::iter::once(leader.url.as_str())
            .chain(shared_helper.as_ref().map(|h| h.url.as_str()));
        let http = egress::client(egress::GuardedResolver::new(
            config.helper_policy(),
            trusted,
        ))
        .map_err(|e| ConsoleError::Config(e.to_string()))?;
        let store = store::Store::new(datastore.db().clone());
        Ok(Arc::new(Console {
            limiter: auth::LoginLimiter::new(config.login_limits, store.clone()),
            store,
            config,
            datastore,
            leader,
            shared_helper,
            http,
            clock,
            templates: pages::templates()?,
        }))
    }

    fn now(&self) -> u64 {
        self.clock.now()
    }

    /// The leader URL clients are given.
    fn leader_public_url(&self) -> String {
        self.config
            .leader_public_url
            .clone()
            .unwrap_or_else(|| self.leader.url.clone())
    }
}

/// The console's routes, to be nested at [`MOUNT`].
pub fn router(console: Arc<Console>) -> axum::Router {
    pages::routes().merge(api::routes()).with_state(console)
}
