//! `cairn va serve`: one validation authority as a gRPC service over mutual TLS, the role a
//! remote network perspective plays (BR §3.2.2.9). The primary VA (in `cairn serve`, or the RA's
//! VA in a split deployment) lists it under `[[va.remote]]` and fans each validation and CAA
//! check out to it.

use crate::config::VaSection;
use anyhow::Context;
use cairn_rpc::{AllowedClients, RpcClientConfig, TlsFiles};
use cairn_va::perspectives::{MultiPerspectiveVa, RemotePerspective};
use cairn_va::{Va, VaConfig, ValidationAuthority};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

/// The configuration file of `cairn va serve`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VaServeConfig {
    /// The gRPC listener.
    pub listen: SocketAddr,
    /// This perspective's name, for logs.
    pub perspective: String,
    /// The client identities (DNS names in their certificates) allowed to call this VA: the
    /// primary VA's, usually `va.cairn.internal` or `ra.cairn.internal`.
    pub allowed_clients: AllowedClients,
    /// This service's certificate, key and the internal CA.
    pub tls: TlsFiles,
    /// Where `/metrics` and `/health` are served, as `[server] metrics_listen` in the other
    /// roles; none when absent.
    #[serde(default)]
    pub metrics_listen: Option<SocketAddr>,
    /// How this VA validates (resolver, ports, address policy), as in `cairn serve`'s `[va]`.
    /// `remote` must be empty: a remote perspective does not fan out further.
    #[serde(default)]
    pub va: VaSection,
}

/// A remote perspective, as `[[va.remote]]` in `cairn serve`'s configuration lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemotePerspectiveConfig {
    /// Its name (`eu-central`), shown in problem documents when it does not corroborate.
    pub name: String,
    /// Its Regional Internet Registry (`ARIN`, `RIPE`, `APNIC`, `LACNIC`, `AFRINIC`).
    pub rir: String,
    /// How to reach its `cairn va serve`.
    #[serde(flatten)]
    pub rpc: RpcClientConfig,
}

/// The in-process VA `section` describes.
pub fn local_va(section: &VaSection) -> anyhow::Result<Va> {
    let timeout =
        cairn_core::humane_duration::parse(&section.timeout).map_err(|e| anyhow::anyhow!(e))?;
    Ok(Va::new(VaConfig {
        dns_server: section
            .dns_server
            .unwrap_or_else(crate::config::system_dns_server),
        http01_port: section.http01_port,
        tlsalpn01_port: section.tlsalpn01_port,
        timeout: std::time::Duration::try_from(timeout)
            .unwrap_or(std::time::Duration::from_secs(10)),
        address_policy: cairn_core::AddressPolicy::allowing_private(
            section.allow_private_addresses,
        ),
        ..Default::default()
    })?)
}

/// `primary` alone when no remote perspective is configured (said at start-up), else `primary`
/// corroborated by the remote perspectives.
pub fn with_perspectives(
    primary: Arc<dyn ValidationAuthority>,
    remotes: &[RemotePerspectiveConfig],
) -> anyhow::Result<Arc<dyn ValidationAuthority>> {
    if remotes.is_empty() {
        tracing::warn!(
            "validation runs from the primary network perspective only: multi-perspective \
             corroboration (Baseline Requirements 3.2.2.9) is off; list remote perspectives \
             under [[va.remote]] for a publicly-trusted CA"
        );
        return Ok(primary);
    }
    let mut perspectives = Vec::new();
    for r in remotes {
        let va = cairn_rpc::va::RemoteVa::new(r.name.clone(), &r.rpc)
            .with_context(|| format!("remote perspective {:?}", r.name))?;
        perspectives.push(RemotePerspective {
            name: r.name.clone(),
            rir: r.rir.clone(),
            va: Arc::new(va),
        });
    }
    let names: Vec<&str> = remotes.iter().map(|r| r.name.as_str()).collect();
    let mpic = MultiPerspectiveVa::new(primary, perspectives)?;
    tracing::info!(remote_perspectives = ?names,
        allowed_failures = cairn_va::perspectives::allowed_failures(names.len()),
        "multi-perspective corroboration on");
    Ok(Arc::new(mpic))
}

/// Runs `cairn va serve --config <path>` until SIGTERM or Ctrl-C.
pub async fn run(path: &Path) -> anyhow::Result<()> {
    crate::bootstrap::init_logging();
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read config file {}", path.display()))?;
    let cfg: VaServeConfig =
        toml::from_str(&text).with_context(|| format!("invalid config file {}", path.display()))?;
    anyhow::ensure!(
        cfg.va.remote.is_empty(),
        "{}: a remote perspective's [va] must not list remote perspectives itself",
        path.display()
    );
    let va: Arc<dyn ValidationAuthority> = Arc::new(local_va(&cfg.va)?);
    if let Some(addr) = cfg.metrics_listen {
        let readiness = crate::bootstrap::Readiness::default();
        crate::bootstrap::serve_metrics(
            addr,
            crate::config::ListenLimits::default().limits(),
            readiness.clone(),
        )
        .await?;
        readiness.mark_started();
    }
    tracing::info!(perspective = %cfg.perspective, "remote VA starting");
    crate::roles::serve_rpc(
        "va-rpc",
        cfg.listen,
        &cfg.allowed_clients.0,
        &cfg.tls,
        cairn_rpc::va::router(va),
    )
    .await
}
