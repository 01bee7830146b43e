//! The `cairn serve` configuration: one typed section per component, unknown fields refused,
//! safe defaults, command-line flags layered on top.

use anyhow::Context;
use cairn_ra::RaConfig;
use cairn_wfe::WfeConfig;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// Everything `cairn serve` needs.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Listeners and storage.
    pub server: ServerConfig,
    /// The CA hierarchy.
    pub ca: CaConfig,
    /// Validation.
    pub va: VaSection,
    /// Policy.
    pub ra: RaConfig,
    /// The ACME front end.
    pub wfe: WfeConfig,
    /// Rate limits (Let's Encrypt's by default); see docs/rate-limits.md.
    pub rate_limits: cairn_ratelimit::RateLimitConfig,
    /// The OCSP responder (off by default); see docs/ocsp.md.
    pub ocsp: cairn_status::ocsp::OcspConfig,
    /// Certificate Transparency for issuance (SCTs embedded in every certificate).
    pub ct: crate::ct_issuance::CtSection,
    /// CRL publishing; see docs/revocation.md.
    pub crl: cairn_status::crl::CrlConfig,
    /// The DAP leader and helper run next to the CA; see dap/README.md.
    pub dap: crate::dap_serve::DapSection,
    /// The nonce service of a split deployment (`cairn nonce serve`).
    pub nonce: crate::nonce_serve::NonceSection,
    /// This process's end of a split deployment's gRPC links (mutual TLS).
    pub rpc: crate::nonce_serve::RpcSection,
    /// The gRPC listeners of a split deployment's roles (`cairn sa|ca|ra serve`).
    pub services: crate::roles::ServicesSection,
    /// Where a split deployment's roles find the services they call.
    pub peers: crate::roles::PeersSection,
}

/// Listeners and storage.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address of the ACME API.
    pub listen: SocketAddr,
    /// Serve the ACME API over HTTPS with a certificate from a local, non-public TLS root
    /// (`<data_dir>/ca/tls-root.pem`, separate from the issuing hierarchy). Turn off behind a
    /// TLS-terminating proxy.
    pub tls: bool,
    /// An operator-supplied certificate chain for the HTTPS listener (PEM, server certificate
    /// first), served as it is instead of one from the local TLS root. Set with `tls_key`.
    pub tls_cert: Option<PathBuf>,
    /// The private key of `tls_cert` (PKCS#8 PEM).
    pub tls_key: Option<PathBuf>,
    /// Address of `/metrics` and `/health` (keep it private).
    pub metrics_listen: SocketAddr,
    /// Address of the public plain-HTTP listener for CRLs and CA certificates (the URLs that
    /// certificates name; Baseline Requirements: `http://`).
    pub public_listen: SocketAddr,
    /// The external base URL of the public listener (`http://crl.example.com`), as put into
    /// certificates. Default: `http://localhost:<port>` from `public_listen`.
    pub public_base_url: Option<String>,
    /// Folder for the SQLite database and the CA's keys and certificates.
    pub data_dir: PathBuf,
    /// `sqlite://…` or `postgres://…`; default: SQLite in `data_dir`. A password is better
    /// given in `CAIRN_DATABASE_URL` than in this file.
    pub database_url: Option<String>,
    /// `redis://…`: keep rate-limit state in Redis, shared by several CA instances (also
    /// `CAIRN_REDIS_URL`). Default: in this process's memory.
    pub redis_url: Option<String>,
    /// Prefix of every rate-limit key in Redis, so that several deployments (or test runs) can
    /// share one server without sharing buckets.
    pub redis_prefix: String,
    /// Without Redis: the rate-limit buckets kept in this process's memory at most (about 130
    /// to 170 bytes each, so 130 to 170 MiB at the default 1,048,576). When full, expired
    /// buckets go first, then those closest to expiry.
    pub rate_limit_memory_keys: usize,
    /// Bounds on every listener's connections (`[server.limits]`).
    pub limits: ListenLimits,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 14000)),
            tls: true,
            tls_cert: None,
            tls_key: None,
            metrics_listen: SocketAddr::from(([127, 0, 0, 1], 14001)),
            public_listen: SocketAddr::from(([127, 0, 0, 1], 14002)),
            public_base_url: None,
            data_dir: PathBuf::from("cairn-data"),
            database_url: None,
            redis_url: None,
            redis_prefix: "cairn:rl:".into(),
            rate_limit_memory_keys: RATE_LIMIT_MEMORY_KEYS,
            limits: ListenLimits::default(),
        }
    }
}

/// Rate-limit buckets kept in memory by default (`[server] rate_limit_memory_keys`): about 42
/// MiB at most (docs/runbook.md, "Memory bounds"). Redis holds them for larger deployments.
pub const RATE_LIMIT_MEMORY_KEYS: usize = 1 << 18;

/// `[server.limits]`: what each listener of `cairn serve` (ACME, public, metrics, DAP) allows a
/// client before closing its connection. Durations as `"10s"`, `"2m"`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ListenLimits {
    /// Time allowed for a TLS handshake.
    #[serde(with = "cairn_core::humane_duration")]
    pub handshake_timeout: time::Duration,
    /// Time allowed for an HTTP/1 request head.
    #[serde(with = "cairn_core::humane_duration")]
    pub header_timeout: time::Duration,
    /// Time allowed for a whole request body, from its head.
    #[serde(with = "cairn_core::humane_duration")]
    pub body_timeout: time::Duration,
    /// A connection with no request in flight for this long is closed.
    #[serde(with = "cairn_core::humane_duration")]
    pub idle_timeout: time::Duration,
    /// Open connections per listener; more are closed as soon as they are accepted.
    pub max_connections: usize,
    /// Largest request body a listener reads, in bytes.
    pub max_body_bytes: usize,
    /// On shutdown, time given to requests in flight.
    #[serde(with = "cairn_core::humane_duration")]
    pub shutdown_grace: time::Duration,
}

impl Default for ListenLimits {
    fn default() -> Self {
        let d = cairn_listen::Limits::default();
        Self {
            handshake_timeout: time::Duration::seconds(10),
            header_timeout: time::Duration::seconds(10),
            body_timeout: time::Duration::seconds(30),
            idle_timeout: time::Duration::seconds(60),
            max_connections: d.max_connections,
            max_body_bytes: d.max_body_bytes,
            shutdown_grace: time::Duration::seconds(10),
        }
    }
}

impl ListenLimits {
    /// The bounds for the listeners.
    pub fn limits(&self) -> cairn_listen::Limits {
        // Negative durations cannot be written ("10s" digits only); a failed conversion gives
        // zero, which `Limits::check` refuses.
        let std = |d: time::Duration| std::time::Duration::try_from(d).unwrap_or_default();
        let mut l = cairn_listen::Limits::default();
        l.handshake_timeout = std(self.handshake_timeout);
        l.header_timeout = std(self.header_timeout);
        l.body_timeout = std(self.body_timeout);
        l.idle_timeout = std(self.idle_timeout);
        l.max_connections = self.max_connections;
        l.max_body_bytes = self.max_body_bytes;
        l.shutdown_grace = std(self.shutdown_grace);
        l
    }
}

/// The CA hierarchy created on first start.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CaConfig {
    /// Key algorithm of the root and intermediate: `ecdsa-p256`, `ecdsa-p384`, `rsa-2048`,
    /// `rsa-3072`, `rsa-4096`. Only used when the hierarchy is created.
    pub key_algorithm: String,
    /// Extra DNS names for the ACME listener's TLS certificate (localhost and loopback
    /// addresses are always included).
    pub tls_names: Vec<String>,
    /// countryName (two uppercase letters) of the root and intermediate created on first start.
    pub country: String,
    /// Pre-issuance lints to skip (Boulder's `ignoredLints`), by name; see `ca/lint`'s catalog.
    /// `e_ext_san_contains_reserved_ip` is skipped automatically while
    /// `va.allow_private_addresses` is true.
    pub ignored_lints: Vec<String>,
    /// Debian weak-key blocklists (CVE-2008-0166) in `openssl-vulnkey` format, e.g. the
    /// `blacklist.RSA-2048` files of Debian's `openssl-blacklist` package: RSA account keys
    /// (`badPublicKey`) and CSR keys (`badCSR`) they list are refused. Read at start; a missing
    /// or malformed file stops the start. Relative paths are relative to the working directory.
    pub weak_key_files: Vec<PathBuf>,
    /// Intermediate-only operation (see docs/key-management.md): the root certificate without
    /// its key, the ARL signed at the ceremony, and the intermediate with its key (PKCS#11 or
    /// file). Unset: a development hierarchy with file keys is created in `data_dir/ca`.
    pub offline_root: Option<cairn_issuer::OfflineRootConfig>,
    /// Retires the main issuer (the intermediate of `data_dir/ca` or `[ca.offline_root]`): it
    /// issues nothing new but keeps signing OCSP responses and CRLs for its certificates. An
    /// active `[[ca.issuers]]` entry must then take new issuance.
    pub retired: bool,
    /// More issuing intermediates beside the main one (`cairn serve` only), e.g. an RSA chain
    /// beside the ECDSA one, or the successor of a retired intermediate. A certificate key is
    /// signed by the first active issuer of its family (RSA or ECDSA), else by the first active
    /// one.
    pub issuers: Vec<ExtraIssuer>,
}

/// One more issuing intermediate: either a development hierarchy with file keys, created in
/// `data_dir/ca-<name>` on first start and loaded afterwards (`key_algorithm`), or an
/// intermediate under an offline root whose key is in an HSM (`offline_root`, as
/// `[ca.offline_root]` for the main issuer).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExtraIssuer {
    /// A short name (letters, digits, `-`): the directory is `data_dir/ca-<name>`.
    pub name: String,
    /// Key algorithm of a development hierarchy's root and intermediate (as `[ca]
    /// key_algorithm`). Not with `offline_root`, where the key on the token decides.
    #[serde(default)]
    pub key_algorithm: Option<String>,
    /// Signs nothing new, only OCSP responses and CRLs for its certificates.
    #[serde(default)]
    pub retired: bool,
    /// The intermediate (certificate and PKCS#11 or file key) under an offline root, with the
    /// root's certificate and ARL.
    #[serde(default)]
    pub offline_root: Option<cairn_issuer::OfflineRootConfig>,
}

/// Where an [`ExtraIssuer`]'s hierarchy comes from.
#[derive(Debug)]
pub enum ExtraIssuerSource<'a> {
    /// A development hierarchy with file keys in `data_dir/ca-<name>`, of this algorithm.
    Development(cairn_x509::KeyAlgorithm),
    /// An intermediate under an offline root.
    OfflineRoot(&'a cairn_issuer::OfflineRootConfig),
}

impl ExtraIssuer {
    /// The directory of its hierarchy (or of its delegated OCSP responder) under `data_dir`,
    /// refusing a name that is not a plain short name.
    pub fn dir(&self, data_dir: &Path) -> anyhow::Result<PathBuf> {
        let ok = !self.name.is_empty()
            && self.name.len() <= 32
            && self
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-');
        anyhow::ensure!(
            ok,
            "ca.issuers name {:?} must be 1 to 32 letters, digits or '-'",
            self.name
        );
        Ok(data_dir.join(format!("ca-{}", self.name)))
    }

    /// Where its hierarchy comes from: exactly one of `key_algorithm` and `offline_root`.
    pub fn source(&self) -> anyhow::Result<ExtraIssuerSource<'_>> {
        match (&self.key_algorithm, &self.offline_root) {
            (Some(algorithm), None) => algorithm
                .parse()
                .map(ExtraIssuerSource::Development)
                .map_err(|_| {
                    anyhow::anyhow!(
                        "ca.issuers {:?}: key_algorithm {algorithm:?} is not one of ecdsa-p256, \
                         ecdsa-p384, rsa-2048, rsa-3072, rsa-4096",
                        self.name
                    )
                }),
            (None, Some(offline)) => Ok(ExtraIssuerSource::OfflineRoot(offline)),
            (Some(_), Some(_)) => anyhow::bail!(
                "ca.issuers {:?}: set key_algorithm (a development hierarchy) or offline_root \
                 (the key on the token decides its algorithm), not both",
                self.name
            ),
            (None, None) => anyhow::bail!(
                "ca.issuers {:?}: set key_algorithm (a development hierarchy with file keys) or \
                 offline_root (an intermediate under an offline root)",
                self.name
            ),
        }
    }
}

impl Default for CaConfig {
    fn default() -> Self {
        Self {
            key_algorithm: "ecdsa-p256".into(),
            country: "XX".into(),
            tls_names: Vec::new(),
            ignored_lints: Vec::new(),
            weak_key_files: Vec::new(),
            offline_root: None,
            retired: false,
            issuers: Vec::new(),
        }
    }
}

/// Validation settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VaSection {
    /// The resolver's upstream DNS server; default: the first `nameserver` of
    /// `/etc/resolv.conf`.
    pub dns_server: Option<SocketAddr>,
    /// Port http-01 validation connects to.
    pub http01_port: u16,
    /// Port tls-alpn-01 validation connects to.
    pub tlsalpn01_port: u16,
    /// Time limit of one whole validation, CAA check included, e.g. `"10s"`.
    pub timeout: String,
    /// A private PKI: validation may connect to loopback, private (RFC 1918), link-local and
    /// other special-purpose addresses, and the CA issues for such IP addresses and for names
    /// in reserved domains (`.internal`, `.local`, `.test`, ...). Off by default: a public CA
    /// connects only to globally reachable addresses. Test set-ups whose challenge server
    /// listens on 127.0.0.1 turn it on.
    pub allow_private_addresses: bool,
    /// Validate DNSSEC in-process on every validation and CAA lookup (bogus answers become
    /// `dns` problems; unsigned zones work as before). Off by default; the alternative is a
    /// validating `dns_server` such as Unbound (docs/dnssec.md).
    pub dnssec: bool,
    /// DNSKEY records (zone-file syntax) to trust instead of the root zone's KSKs.
    pub dnssec_trust_anchor: Option<PathBuf>,
    /// Remote network perspectives (`cairn va serve`) that must corroborate every validation
    /// and CAA check (Baseline Requirements 3.2.2.9): at least 2, spanning at least 2 RIRs.
    /// None by default: the primary perspective alone, said at start-up.
    pub remote: Vec<crate::va_serve::RemotePerspectiveConfig>,
}

impl VaSection {
    /// The VA's DNSSEC mode.
    pub fn dnssec(&self) -> cairn_va::Dnssec {
        if self.dnssec || self.dnssec_trust_anchor.is_some() {
            cairn_va::Dnssec::Validate {
                trust_anchor: self.dnssec_trust_anchor.clone(),
            }
        } else {
            cairn_va::Dnssec::Off
        }
    }
}

impl Default for VaSection {
    fn default() -> Self {
        Self {
            dns_server: None,
            http01_port: 80,
            tlsalpn01_port: 443,
            timeout: "10s".into(),
            allow_private_addresses: false,
            dnssec: false,
            dnssec_trust_anchor: None,
            remote: Vec::new(),
        }
    }
}

impl Config {
    /// Reads and checks a TOML file.
    pub fn load(path: &Path) -> anyhow::Result<Config> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config file {}", path.display()))?;
        Self::parse(&text).with_context(|| format!("invalid config file {}", path.display()))
    }

    /// Parses and checks TOML text.
    pub fn parse(text: &str) -> anyhow::Result<Config> {
        refuse_removed_settings(text)?;
        let cfg: Config = toml::from_str(text)?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Cross-field checks that serde cannot express.
    pub fn validate(&self) -> anyhow::Result<()> {
        if let Err(field) = self.server.limits.limits().check() {
            anyhow::bail!("server.limits.{field} must not be zero");
        }
        self.key_algorithm()?;
        for (i, extra) in self.ca.issuers.iter().enumerate() {
            extra.dir(Path::new(""))?;
            extra.source()?;
            anyhow::ensure!(
                !self.ca.issuers[..i].iter().any(|e| e.name == extra.name),
                "ca.issuers name {:?} is used twice",
                extra.name
            );
        }
        anyhow::ensure!(
            self.server.tls_cert.is_some() == self.server.tls_key.is_some(),
            "server.tls_cert and server.tls_key must be set together"
        );
        self.crl.settings()?;
        anyhow::ensure!(
            self.ca.country.len() == 2 && self.ca.country.bytes().all(|b| b.is_ascii_uppercase()),
            "ca.country must be two uppercase letters (ISO 3166-1 alpha-2, or XX)"
        );
        for name in &self.ca.ignored_lints {
            anyhow::ensure!(
                cairn_lint::catalog::by_name(name).is_some(),
                "ca.ignored_lints: {name:?} is not a lint name"
            );
        }
        self.debian_weak_keys()?;
        cairn_core::humane_duration::parse(&self.va.timeout)
            .map_err(|e| anyhow::anyhow!("va.timeout: {e}"))?;
        if let Some(url) = &self.server.database_url
            && !(url.starts_with("sqlite:")
                || url.starts_with("postgres:")
                || url.starts_with("postgresql:"))
        {
            anyhow::bail!("server.database_url must start with sqlite: or postgres:");
        }
        if let Some(url) = &self.server.public_base_url {
            cairn_status::public::check_base_url(url)?;
        }
        if !matches!(self.wfe.scheme.as_str(), "http" | "https") {
            anyhow::bail!("wfe.scheme must be \"http\" or \"https\"");
        }
        self.ra.validate().map_err(|e| anyhow::anyhow!(e))?;
        self.ocsp.durations()?;
        self.rate_limits
            .validate()
            .map_err(|e| anyhow::anyhow!("rate_limits: {e}"))?;
        if let Some(url) = self.redis_url()
            && !(url.starts_with("redis://") || url.starts_with("rediss://"))
        {
            anyhow::bail!("server.redis_url must start with redis://");
        }
        anyhow::ensure!(
            (1_000..=100_000_000).contains(&self.server.rate_limit_memory_keys),
            "server.rate_limit_memory_keys must be within 1000..=100000000"
        );
        self.ct.validate()?;
        self.dap.validate()?;
        self.wfe.validate().map_err(|e| anyhow::anyhow!(e))?;
        self.nonce.validate(false)?;
        Ok(())
    }

    /// The Debian weak keys of `ca.weak_key_files`, or `None` when no file is configured.
    pub fn debian_weak_keys(&self) -> anyhow::Result<Option<cairn_pki::DebianWeakKeys>> {
        if self.ca.weak_key_files.is_empty() {
            return Ok(None);
        }
        let mut keys = cairn_pki::DebianWeakKeys::new();
        for path in &self.ca.weak_key_files {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("ca.weak_key_files: cannot read {}", path.display()))?;
            keys.add_list(&text)
                .with_context(|| format!("ca.weak_key_files: {}", path.display()))?;
        }
        Ok(Some(keys))
    }

    /// The configured key algorithm.
    pub fn key_algorithm(&self) -> anyhow::Result<cairn_x509::KeyAlgorithm> {
        self.ca
            .key_algorithm
            .parse()
            .map_err(|_| anyhow::anyhow!(
                "ca.key_algorithm {:?} is not one of ecdsa-p256, ecdsa-p384, rsa-2048, rsa-3072, rsa-4096",
                self.ca.key_algorithm
            ))
    }

    /// The Redis URL in force: `CAIRN_REDIS_URL`, else the config.
    pub fn redis_url(&self) -> Option<String> {
        std::env::var("CAIRN_REDIS_URL")
            .ok()
            .filter(|u| !u.is_empty())
            .or_else(|| self.server.redis_url.clone())
    }

    /// The database URL in force: `CAIRN_DATABASE_URL`, the config, or SQLite in the data dir.
    pub fn database_url(&self) -> String {
        if let Ok(url) = std::env::var("CAIRN_DATABASE_URL")
            && !url.is_empty()
        {
            return url;
        }
        self.server.database_url.clone().unwrap_or_else(|| {
            format!(
                "sqlite://{}",
                self.server.data_dir.join("cairn.db").display()
            )
        })
    }
}

/// Settings that were removed, each with what replaces it: an old file gets an error that
/// says what to write instead, not just "unknown field".
const REMOVED_SETTINGS: &[(&[&str], &str)] = &[
    (
        &["ra", "identifiers", "allow_non_public_ips"],
        "was replaced by [va] allow_private_addresses (one CA-wide setting for validation and issuance)",
    ),
    (
        &["ra", "account_cache_for"],
        "was replaced by [wfe] account_cache_for (the WFE keeps the accounts it authenticates)",
    ),
];

fn refuse_removed_settings(text: &str) -> anyhow::Result<()> {
    // A file that does not parse as TOML gets its error from the typed parse that follows.
    let Ok(table) = text.parse::<toml::Table>() else {
        return Ok(());
    };
    for (path, replacement) in REMOVED_SETTINGS {
        let mut value = None;
        let mut current = Some(&table);
        for key in *path {
            value = current.and_then(|t| t.get(*key));
            current = value.and_then(toml::Value::as_table);
        }
        if value.is_some() {
            anyhow::bail!("{} {replacement}", path.join("."));
        }
    }
    Ok(())
}

/// The first `nameserver` in resolv.conf, else 127.0.0.1:53.
pub fn system_dns_server() -> SocketAddr {
    std::fs::read_to_string("/etc/resolv.conf")
        .ok()
        .and_then(|text| {
            text.lines().find_map(|l| {
                let mut parts = l.split_whitespace();
                (parts.next() == Some("nameserver"))
                    .then(|| parts.next())
                    .flatten()
                    .and_then(|ip| ip.parse::<std::net::IpAddr>().ok())
                    .map(|ip| SocketAddr::new(ip, 53))
            })
        })
        .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 53)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listener_limits_are_read_and_zero_is_refused() {
        let cfg = Config::parse("[server.limits]\nheader_timeout = \"2s\"\nmax_connections = 10\n")
            .unwrap();
        let limits = cfg.server.limits.limits();
        assert_eq!(limits.header_timeout, std::time::Duration::from_secs(2));
        assert_eq!(limits.max_connections, 10);
        assert_eq!(limits.idle_timeout, std::time::Duration::from_secs(60));
        let err = Config::parse("[server.limits]\nidle_timeout = \"0s\"\n").unwrap_err();
        assert!(format!("{err:#}").contains("idle_timeout"), "{err:#}");
    }

    #[test]
    fn sample_config_in_docs_parses() {
        let text = include_str!("../../docs/cairn.sample.toml");
        let cfg = Config::parse(text).expect("docs/cairn.sample.toml must parse");
        assert_eq!(cfg.va.http01_port, 80);
        assert!(cfg.server.tls);
        assert!(
            !cfg.ocsp.enabled,
            "the sample keeps OCSP off, as the default"
        );
        assert!(cfg.ct.enabled);
        assert_eq!(cfg.ct.min_operators, 2);
        assert_eq!(cfg.ct.logs.len(), 2);
        assert_eq!(cfg.ct.logs[1].operator, "Example Operator B");
        assert!(cfg.dap.enabled);
        assert_eq!(cfg.dap.leader_listen.port(), 14010);
        assert_eq!(cfg.dap.sqlite_writer_cache_mib, 16);
    }

    #[test]
    fn the_dap_writer_cache_is_bounded() {
        assert_eq!(
            Config::parse("").unwrap().dap.sqlite_writer_cache_mib,
            cairn_dap_aggregator::DEFAULT_WRITER_CACHE_MIB
        );
        assert_eq!(
            Config::parse("[dap]\nsqlite_writer_cache_mib = 0\n")
                .unwrap()
                .dap
                .sqlite_writer_cache_mib,
            0
        );
        let err = Config::parse("[dap]\nsqlite_writer_cache_mib = 5000\n").unwrap_err();
        assert!(
            format!("{err:#}").contains("dap.sqlite_writer_cache_mib must be at most 4096"),
            "{err:#}"
        );
    }

    #[test]
    fn an_extra_issuer_is_a_development_hierarchy_or_an_offline_root_intermediate() {
        let offline = "[ca.issuers.offline_root]\nroot_certificate = \"root.pem\"\narl = \"root.crl\"\n\
                       intermediate_certificate = \"int-e2.pem\"\n\
                       intermediate_key = { pkcs11 = { module = \"/usr/lib/softhsm/libsofthsm2.so\", \
                       token_label = \"issuing\", pin_env = \"PIN\", key_label = \"int-e2\" } }\n";
        let cfg = Config::parse(&format!("[[ca.issuers]]\nname = \"e2\"\n{offline}")).unwrap();
        assert!(matches!(
            cfg.ca.issuers[0].source().unwrap(),
            ExtraIssuerSource::OfflineRoot(o) if o.intermediate_certificate == Path::new("int-e2.pem")
        ));
        let cfg = Config::parse("[[ca.issuers]]\nname = \"rsa\"\nkey_algorithm = \"rsa-2048\"\n")
            .unwrap();
        assert!(matches!(
            cfg.ca.issuers[0].source().unwrap(),
            ExtraIssuerSource::Development(cairn_x509::KeyAlgorithm::Rsa2048)
        ));
        let refused = |text: &str| format!("{:#}", Config::parse(text).unwrap_err());
        let both = refused(&format!(
            "[[ca.issuers]]\nname = \"e2\"\nkey_algorithm = \"ecdsa-p256\"\n{offline}"
        ));
        assert!(both.contains("not both"), "{both}");
        let neither = refused("[[ca.issuers]]\nname = \"e2\"\n");
        assert!(neither.contains("set key_algorithm"), "{neither}");
        let twice = refused(
            "[[ca.issuers]]\nname = \"a\"\nkey_algorithm = \"rsa-2048\"\n\
             [[ca.issuers]]\nname = \"a\"\nkey_algorithm = \"ecdsa-p256\"\n",
        );
        assert!(twice.contains("used twice"), "{twice}");
        let bad_name = refused("[[ca.issuers]]\nname = \"../x\"\nkey_algorithm = \"rsa-2048\"\n");
        assert!(bad_name.contains("letters, digits"), "{bad_name}");
    }

    #[test]
    fn the_crl_shards_default_is_the_issuers() {
        assert_eq!(
            cairn_status::crl::DEFAULT_SHARDS,
            cairn_issuer::DEFAULT_CRL_SHARDS
        );
        assert_eq!(
            Config::default().crl.shards,
            cairn_issuer::DEFAULT_CRL_SHARDS
        );
    }

    #[test]
    fn weak_key_files_are_loaded_and_a_malformed_one_is_refused_with_its_line() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("blacklist.RSA-2048");
        std::fs::write(
            &good,
            "# RSA-2048\n0123456789abcdef0123\nfedcba9876543210fedc\n",
        )
        .unwrap();
        let bad = dir.path().join("broken.RSA-2048");
        std::fs::write(&bad, "0123456789abcdef0123\nnot a fingerprint\n").unwrap();
        let with = |files: &[&Path]| {
            let list: Vec<String> = files
                .iter()
                .map(|p| format!("{:?}", p.display().to_string()))
                .collect();
            format!("[ca]\nweak_key_files = [{}]\n", list.join(", "))
        };

        let cfg = Config::parse(&with(&[&good])).unwrap();
        assert_eq!(cfg.debian_weak_keys().unwrap().unwrap().len(), 2);
        assert!(Config::default().debian_weak_keys().unwrap().is_none());

        let err = format!("{:#}", Config::parse(&with(&[&good, &bad])).unwrap_err());
        assert!(err.contains("ca.weak_key_files"), "{err}");
        assert!(err.contains("broken.RSA-2048"), "{err}");
        assert!(err.contains("line 2"), "{err}");
        assert_eq!(err.lines().count(), 1, "{err}");

        let missing = dir.path().join("absent");
        let err = format!("{:#}", Config::parse(&with(&[&missing])).unwrap_err());
        assert!(
            err.contains("cannot read") && err.contains("absent"),
            "{err}"
        );
    }

    #[test]
    fn a_removed_setting_names_its_replacement() {
        for text in [
            "[ra.identifiers]\nallow_non_public_ips = true\n",
            "[ra]\nidentifiers = { allow_non_public_ips = false }\n",
        ] {
            let err = format!("{:#}", Config::parse(text).unwrap_err());
            assert!(err.contains("ra.identifiers.allow_non_public_ips"), "{err}");
            assert!(err.contains("[va] allow_private_addresses"), "{err}");
            assert_eq!(err.lines().count(), 1, "{err}");
        }
        assert!(Config::parse("[ra.identifiers]\nallow_ip = false\n").is_ok());
        let err = format!(
            "{:#}",
            Config::parse("[ra]\naccount_cache_for = \"5s\"\n").unwrap_err()
        );
        assert!(err.contains("[wfe] account_cache_for"), "{err}");
        let moved = Config::parse("[wfe]\naccount_cache_for = \"5s\"\n").unwrap();
        assert_eq!(moved.wfe.account_cache_for, time::Duration::seconds(5));
    }

    /// Issue 22: the in-memory structures that grow with traffic are sized here.
    #[test]
    fn memory_bounds_have_defaults_within_256_mib_and_are_read() {
        let cfg = Config::default();
        assert_eq!(cfg.wfe.nonce_capacity, cairn_wfe::DEFAULT_CAPACITY);
        assert_eq!(cfg.wfe.account_cache_entries, 20_000);
        assert_eq!(cfg.ra.renewal_window_cache_entries, 100_000);
        assert_eq!(cfg.ct.local_tile_cache_bytes, 16 << 20);
        assert_eq!(cfg.ct.local_pool_size, 1024);
        assert_eq!(cfg.server.rate_limit_memory_keys, 1 << 18);
        assert_eq!(cfg.ocsp.memory_cache_entries, 100_000);

        let cfg = Config::parse(
            "[server]\nrate_limit_memory_keys = 5000\n\
             [wfe]\nnonce_capacity = 2000\naccount_cache_entries = 300\n\
             [ra]\nrenewal_window_cache_entries = 400\n\
             [ct]\nlocal_tile_cache_bytes = 0\nlocal_pool_size = 64\n",
        )
        .unwrap();
        assert_eq!(cfg.server.rate_limit_memory_keys, 5000);
        assert_eq!(cfg.wfe.nonce_capacity, 2000);
        assert_eq!(cfg.wfe.account_cache_entries, 300);
        assert_eq!(cfg.ra.renewal_window_cache_entries, 400);
        assert_eq!(cfg.ct.local_tile_cache_bytes, 0);
        assert_eq!(cfg.ct.local_pool_size, 64);
    }

    #[test]
    fn memory_bounds_out_of_range_are_refused_in_one_line() {
        for (text, expected) in [
            (
                "[wfe]\nnonce_capacity = 10\n",
                "wfe.nonce_capacity must be within 1000..=100000000",
            ),
            (
                "[wfe]\naccount_cache_entries = 0\n",
                "wfe.account_cache_entries must be within 100..=10000000",
            ),
            (
                "[ra]\nrenewal_window_cache_entries = 20000000\n",
                "ra.renewal_window_cache_entries must be within 100..=10000000",
            ),
            (
                "[ct]\nlocal_tile_cache_bytes = 8589934592\n",
                "ct.local_tile_cache_bytes must be within 0..=4294967296",
            ),
            (
                "[ct]\nlocal_pool_size = 0\n",
                "ct.local_pool_size must be within 1..=1000000",
            ),
            (
                "[server]\nrate_limit_memory_keys = 1\n",
                "server.rate_limit_memory_keys must be within 1000..=100000000",
            ),
        ] {
            let err = format!("{:#}", Config::parse(text).unwrap_err());
            assert_eq!(err, expected, "{text}");
        }
        let err = format!(
            "{:#}",
            Config::parse("[wfe]\nnonce_capacity = -1\n").unwrap_err()
        );
        assert!(err.contains("nonce_capacity"), "{err}");
    }

    #[test]
    fn unknown_fields_are_refused() {
        let err = Config::parse("[server]\nlisten = \"127.0.0.1:1\"\nbogus = 1\n").unwrap_err();
        assert!(format!("{err:#}").contains("bogus"), "{err:#}");
    }

    #[test]
    fn bad_values_are_refused() {
        assert!(Config::parse("[ca]\nkey_algorithm = \"dsa\"\n").is_err());
        assert!(Config::parse("[va]\ntimeout = \"soon\"\n").is_err());
        assert!(Config::parse("[server]\ndatabase_url = \"mysql://x\"\n").is_err());
        assert!(Config::parse("").is_ok());
        assert!(Config::parse("[server]\npublic_base_url = \"https://crl.example\"\n").is_err());
        assert!(Config::parse("[server]\npublic_base_url = \"http://crl.example/\"\n").is_err());
        assert!(Config::parse("[server]\npublic_base_url = \"http://crl.example\"\n").is_ok());
        assert!(Config::parse("[ra]\ndefault_profile = \"nope\"\n").is_err());
        let profile = |extra: &str| {
            format!(
                "[ra]\ndefault_profile = \"p\"\n[ra.profiles.p]\ndescription = \"p\"\n\
                 validity = \"10d\"\nauthz_reuse = \"1d\"\n{extra}"
            )
        };
        assert!(Config::parse(&profile("")).is_ok());
        assert!(Config::parse(&profile("extended_key_usages = [\"clientAuth\"]\n")).is_err());
        assert!(Config::parse(&profile("key_usages = [\"keyEncipherment\"]\n")).is_err());
        assert!(Config::parse(&profile("key_usages = [\"keyAgreement\"]\n")).is_err());
        assert!(Config::parse("[ocsp]\nvalidity = \"30d\"\n").is_err());
        assert!(Config::parse("[ocsp]\nsigner = \"root\"\n").is_err());
        assert!(Config::parse("[ocsp]\nenabled = true\nsigner = \"delegated\"\n").is_ok());
    }
}
