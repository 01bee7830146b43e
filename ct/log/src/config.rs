//! Configuration: a TOML file with a listener and a `[[log]]` list (one entry per temporal
//! shard), relative paths resolved against the file's folder.

use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use time::OffsetDateTime;

/// Configuration errors.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The TOML does not match the schema.
    #[error("invalid configuration: {0}")]
    Parse(#[from] toml::de::Error),
    /// A value breaks a rule (message says which).
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

/// `cairn ct serve`'s configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CtConfig {
    /// Address of the HTTP listener serving every log (submission and monitoring paths).
    pub listen: SocketAddr,
    /// Address of the Prometheus `/metrics` and `/health` listener, if any.
    #[serde(default)]
    pub metrics_listen: Option<SocketAddr>,
    /// The logs.
    #[serde(rename = "log")]
    pub logs: Vec<LogConfig>,
    /// `/health` answers 503 when a log's latest checkpoint is older than this, in
    /// milliseconds (default 15000: an idle log checkpoints every 10 s).
    #[serde(default = "default_health_max_checkpoint_age_ms")]
    pub health_max_checkpoint_age_ms: u64,
    /// Per-client rate limits on the monitoring (read) paths; none if absent.
    #[serde(default)]
    pub read_limits: Option<crate::read_limits::ReadLimits>,
    /// Also serve the RFC 6962 read endpoints (`get-sth`, `get-sth-consistency`,
    /// `get-proof-by-hash`, `get-entries`), computed from the tiles. Default false.
    #[serde(default)]
    pub rfc6962_read_endpoints: bool,
    /// Open connections the listener accepts at once (default 4096, as every Cairn listener);
    /// more are closed as soon as they are accepted, counted in
    /// `cairn_listener_connections_refused_total{listener="ct"}`. Each submitter waiting for
    /// its SCT holds one for up to a sequencing period.
    #[serde(default)]
    pub max_connections: Option<usize>,
}

/// Memory for the gzip form of one log's full tiles unless its embedder says otherwise
/// ([`crate::CtLog::start_with_tile_cache`]): 64 MiB holds about 8,000 full hash tiles (8 KiB
/// each; hashes do not compress) or a few hundred data tiles (256 entries each, around 100 KiB
/// compressed for typical certificates). Each held tile also costs about 175 bytes of
/// bookkeeping.
pub const DEFAULT_GZIP_TILE_CACHE_BYTES: usize = 64 << 20;

/// The sizes an embedder may give a log's gzip tile cache: off (0) up to 4 GiB.
pub const GZIP_TILE_CACHE_BYTES_RANGE: std::ops::RangeInclusive<u64> = 0..=(4 << 30);

fn default_health_max_checkpoint_age_ms() -> u64 {
    15_000
}

/// One log (shard).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// Short unique name (the lock store row and metrics label).
    pub name: String,
    /// Human description for log lists.
    #[serde(default)]
    pub description: Option<String>,
    /// The submission prefix, e.g. `https://ct.example.org/2026h1/`. Its host and path without
    /// scheme and trailing slash are the checkpoint origin; its path is where the log is served.
    pub submission_url: String,
    /// The monitoring prefix (defaults to the submission prefix).
    #[serde(default)]
    pub monitoring_url: Option<String>,
    /// PEM PKCS#8 P-256 key; generated (0600) on first start if missing. Not read when
    /// `key_pkcs11` is set (it then only names the default `note_key_file`).
    pub key_file: PathBuf,
    /// The RFC 6962 key (SCTs and the checkpoint's RFC 6962 signature) in an HSM instead of
    /// `key_file`: an ECDSA P-256 key, opened and test-signed at start. The signed-note keys
    /// (Ed25519, ML-DSA-44) stay in `note_key_file`.
    #[serde(default)]
    pub key_pkcs11: Option<cairn_hsm::Pkcs11KeyConfig>,
    /// The signed-note keys (PEM PKCS#8 Ed25519 then ML-DSA-44); generated (0600) on first start
    /// if missing. Default: `key_file` with the extension `note.pem`.
    #[serde(default)]
    pub note_key_file: Option<PathBuf>,
    /// Folder of PEM root certificates (extra roots, added to the CCADB ones).
    pub roots_dir: PathBuf,
    /// A CCADB "All Certificate Records" CSV the operator downloaded; its included server
    /// authentication roots are accepted. Re-read at each start; roots are only ever added.
    #[serde(default)]
    pub ccadb_csv: Option<PathBuf>,
    /// Accept Google's Merge Delay Monitor Root, as Chrome's CT policy asks (default true).
    #[serde(default = "default_true")]
    pub merge_delay_monitor_root: bool,
    /// Folder for tiles, issuers and the checkpoint.
    pub data_dir: PathBuf,
    /// Keep tiles, issuers and the checkpoint in S3-compatible object storage instead of
    /// `data_dir` (which then holds only the default SQLite lock store).
    #[serde(default)]
    pub s3: Option<crate::s3::S3Config>,
    /// Keep the checkpoint lock in an S3 object advanced by conditional writes (If-None-Match /
    /// If-Match) instead of in `lock_db`, which then holds only the dedup index. May name the
    /// same bucket as `s3`: the lock object is `<prefix>/lock/<name>`.
    #[serde(default)]
    pub lock_s3: Option<crate::s3::S3Config>,
    /// Lock store URL (`sqlite:…` or `postgres://…`); default `lock.db` SQLite in `data_dir`.
    #[serde(default)]
    pub lock_db: Option<String>,
    /// Inclusive start of the accepted NotAfter interval (RFC 3339).
    #[serde(with = "time::serde::rfc3339")]
    pub not_after_start: OffsetDateTime,
    /// Exclusive end of the accepted NotAfter interval (RFC 3339).
    #[serde(with = "time::serde::rfc3339")]
    pub not_after_limit: OffsetDateTime,
    /// Sequencing period in milliseconds (default 1000).
    #[serde(default = "default_period_ms")]
    pub period_ms: u64,
    /// Maximum submissions waiting for the next sequencing (default 4096).
    #[serde(default = "default_pool_size")]
    pub pool_size: usize,
    /// Witnesses (C2SP tlog-witness) each new checkpoint is sent to, with a consistency proof;
    /// their cosignatures are added to the published checkpoint. None by default.
    #[serde(default, rename = "witness")]
    pub witnesses: Vec<WitnessTarget>,
    /// The shard's inception (RFC 3339): submissions before it are refused. Default: none.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub inception: Option<OffsetDateTime>,
    /// The shard becomes read-only this many seconds after `not_after_limit`: submissions are
    /// refused, the read path and checkpoints go on. Default: never.
    #[serde(default)]
    pub read_only_after_s: Option<u64>,
}

/// Whether a shard takes submissions at some instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum WriteState {
    /// Submissions are accepted.
    Open,
    /// Before the shard's inception.
    NotYetOpen,
    /// The NotAfter window closed more than `read_only_after_s` ago.
    ReadOnly,
}

/// A witness the log sends its checkpoints to.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WitnessTarget {
    /// The witness's URL prefix; requests go to `<url>/add-checkpoint`.
    pub url: String,
    /// The witness's `cosignature/v1` verifier key (`<name>+<id>+<key>`, as `cairn ct witness`
    /// prints it); cosignatures that do not verify with it are dropped.
    pub vkey: String,
    /// Per-request timeout in milliseconds (default 5000). A slow or dead witness delays
    /// only its own cosignature, never sequencing.
    #[serde(default = "default_witness_timeout_ms")]
    pub timeout_ms: u64,
}

fn default_witness_timeout_ms() -> u64 {
    5000
}

fn default_true() -> bool {
    true
}

fn default_period_ms() -> u64 {
    1000
}

fn default_pool_size() -> usize {
    4096
}

impl CtConfig {
    /// Reads and checks `path`; relative paths in it are resolved against its folder.
    pub fn load(path: &Path) -> Result<CtConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        let mut cfg: CtConfig = toml::from_str(&text)?;
        let base = path.parent().unwrap_or(Path::new("."));
        for log in &mut cfg.logs {
            log.resolve_paths(base);
        }
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks every log and that names and mount paths are unique.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.health_max_checkpoint_age_ms < 100 {
            return Err(ConfigError::Invalid(
                "health_max_checkpoint_age_ms must be at least 100".into(),
            ));
        }
        if let Some(l) = &self.read_limits {
            l.validate().map_err(ConfigError::Invalid)?;
        }
        if self.max_connections == Some(0) {
            return Err(ConfigError::Invalid(
                "max_connections must be at least 1".into(),
            ));
        }
        let mut names = std::collections::HashSet::new();
        let mut paths = std::collections::HashSet::new();
        for log in &self.logs {
            log.validate()?;
            if !names.insert(log.name.clone()) {
                return Err(ConfigError::Invalid(format!(
                    "duplicate log name {:?}",
                    log.name
                )));
            }
            if !paths.insert(log.mount_path()) {
                return Err(ConfigError::Invalid(format!(
                    "two logs share the submission path of {:?}",
                    log.name
                )));
            }
        }
        Ok(())
    }
}

impl LogConfig {
    /// Makes relative paths relative to `base`.
    pub fn resolve_paths(&mut self, base: &Path) {
        let s3_files = self
            .s3
            .iter_mut()
            .chain(self.lock_s3.iter_mut())
            .flat_map(|s| {
                [
                    s.access_key_id_file.as_mut(),
                    s.secret_access_key_file.as_mut(),
                ]
            });
        for p in [&mut self.key_file, &mut self.roots_dir, &mut self.data_dir]
            .into_iter()
            .chain(self.note_key_file.as_mut())
            .chain(self.ccadb_csv.as_mut())
            .chain(s3_files.flatten())
        {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
    }

    /// The signed-note key file.
    pub fn note_key_path(&self) -> PathBuf {
        self.note_key_file
            .clone()
            .unwrap_or_else(|| self.key_file.with_extension("note.pem"))
    }

    /// Checks the values.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |m: &str| Err(ConfigError::Invalid(format!("log {:?}: {m}", self.name)));
        if self.name.is_empty()
            || !self
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            return bad("name must be non-empty ASCII letters, digits, '-', '_' or '.'");
        }
        if self.not_after_start >= self.not_after_limit {
            return bad("not_after_start must be before not_after_limit");
        }
        for s3 in self.s3.iter().chain(self.lock_s3.iter()) {
            if let Err(m) = s3.validate() {
                return bad(&m);
            }
        }
        if self.not_after_start.unix_timestamp() < 0 {
            return bad("not_after_start before 1970");
        }
        if !(10..=60_000).contains(&self.period_ms) {
            return bad("period_ms must be within 10..=60000");
        }
        if !(1..=1_000_000).contains(&self.pool_size) {
            return bad("pool_size must be within 1..=1000000");
        }
        for w in &self.witnesses {
            let vkey = cairn_tlog::note::parse_vkey(&w.vkey).ok();
            if vkey.map(|v| v.signature_type)
                != Some(cairn_tlog::note::SIGNATURE_TYPE_COSIGNATURE_V1)
            {
                return bad(&format!(
                    "witness {}: vkey is not a cosignature/v1 verifier key",
                    w.url
                ));
            }
            if !(w.url.starts_with("https://") || w.url.starts_with("http://")) {
                return bad("witness url must start with https:// or http://");
            }
            if !(100..=60_000).contains(&w.timeout_ms) {
                return bad("witness timeout_ms must be within 100..=60000");
            }
        }
        let origin = self.origin();
        if origin.is_empty() || origin.contains(char::is_whitespace) || origin.contains('+') {
            return bad("submission_url must be http(s)://host[/path] without spaces or '+'");
        }
        if !(self.submission_url.starts_with("https://")
            || self.submission_url.starts_with("http://"))
        {
            return bad("submission_url must start with https:// or http://");
        }
        Ok(())
    }

    /// The checkpoint origin: the submission prefix without scheme and trailing slashes.
    pub fn origin(&self) -> String {
        let s = self
            .submission_url
            .trim_start_matches("https://")
            .trim_start_matches("http://");
        s.trim_end_matches('/').to_string()
    }

    /// The path part of the submission prefix (`""` for a log at the root, else `/a/b`).
    pub fn mount_path(&self) -> String {
        let origin = self.origin();
        match origin.find('/') {
            Some(i) => origin[i..].to_string(),
            None => String::new(),
        }
    }

    /// The monitoring prefix.
    pub fn monitoring_url(&self) -> String {
        self.monitoring_url
            .clone()
            .unwrap_or_else(|| self.submission_url.clone())
    }

    /// Whether the shard takes submissions at `now`.
    pub fn write_state(&self, now: OffsetDateTime) -> WriteState {
        if self.inception.is_some_and(|i| now < i) {
            return WriteState::NotYetOpen;
        }
        let closes = self.read_only_after_s.map(|s| {
            self.not_after_limit.saturating_add(time::Duration::seconds(
                i64::try_from(s).unwrap_or(i64::MAX),
            ))
        });
        if closes.is_some_and(|c| now >= c) {
            return WriteState::ReadOnly;
        }
        WriteState::Open
    }

    /// The lock store URL.
    pub fn lock_db_url(&self) -> Option<String> {
        self.lock_db.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_config_parses_and_resolves() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ct.toml");
        std::fs::write(
            &path,
            r#"
listen = "127.0.0.1:0"
[[log]]
name = "2026h1"
submission_url = "https://ct.example.org/2026h1/"
key_file = "keys/2026h1.pem"
roots_dir = "roots"
data_dir = "data/2026h1"
not_after_start = "2026-01-01T00:00:00Z"
not_after_limit = "2026-07-01T00:00:00Z"
[[log]]
name = "2026h2"
submission_url = "https://ct.example.org/2026h2"
key_file = "keys/2026h2.pem"
roots_dir = "roots"
data_dir = "data/2026h2"
not_after_start = "2026-07-01T00:00:00Z"
not_after_limit = "2027-01-01T00:00:00Z"
period_ms = 250
"#,
        )
        .unwrap();
        let cfg = CtConfig::load(&path).unwrap();
        assert_eq!(cfg.logs.len(), 2);
        assert_eq!(cfg.logs[0].origin(), "ct.example.org/2026h1");
        assert_eq!(cfg.logs[0].mount_path(), "/2026h1");
        assert_eq!(cfg.logs[0].period_ms, 1000);
        assert_eq!(cfg.logs[1].period_ms, 250);
        assert!(cfg.logs[0].key_file.starts_with(dir.path()));
        assert_eq!(
            cfg.logs[0].note_key_path(),
            dir.path().join("keys/2026h1.note.pem")
        );
        let mut dup = cfg.clone();
        dup.logs[1].name = "2026h1".into();
        assert!(dup.validate().is_err());
        let mut bad = cfg.clone();
        bad.logs[0].not_after_limit = bad.logs[0].not_after_start;
        assert!(bad.validate().is_err());
        assert_eq!(cfg.max_connections, None);
        let mut capped = cfg.clone();
        capped.max_connections = Some(0);
        assert!(capped.validate().is_err());
        capped.max_connections = Some(16_384);
        assert!(capped.validate().is_ok());
        assert!(
            toml::from_str::<CtConfig>("listen = \"127.0.0.1:0\"\nlog = []\nextra = 1").is_err()
        );
    }

    #[test]
    fn a_shard_is_open_from_inception_until_read_only_after_its_window() {
        use time::macros::datetime;
        let mut log: LogConfig = toml::from_str(
            r#"
name = "2026h1"
submission_url = "https://ct.example.org/2026h1/"
key_file = "k.pem"
roots_dir = "roots"
data_dir = "data"
not_after_start = "2026-01-01T00:00:00Z"
not_after_limit = "2026-07-01T00:00:00Z"
inception = "2025-06-01T00:00:00Z"
read_only_after_s = 86400
"#,
        )
        .unwrap();
        let at = |t| log.write_state(t);
        assert_eq!(
            at(datetime!(2025-05-31 23:59:59 UTC)),
            WriteState::NotYetOpen
        );
        assert_eq!(at(datetime!(2025-06-01 0:00 UTC)), WriteState::Open);
        assert_eq!(at(datetime!(2026-07-01 23:59:59 UTC)), WriteState::Open);
        assert_eq!(at(datetime!(2026-07-02 0:00 UTC)), WriteState::ReadOnly);
        log.inception = None;
        log.read_only_after_s = None;
        assert_eq!(
            log.write_state(datetime!(2000-01-01 0:00 UTC)),
            WriteState::Open
        );
        assert_eq!(
            log.write_state(datetime!(2100-01-01 0:00 UTC)),
            WriteState::Open
        );
    }
}
