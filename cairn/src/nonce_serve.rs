//! `[nonce]`: the nonce service of a split deployment (`cairn nonce serve`), which mints and
//! redeems the anti-replay nonces of every WFE so that a client may send each request to a
//! different WFE. Each instance has its own prefix, named in the WFEs' `[[wfe.nonce_services]]`;
//! its key lives only in its memory, so a restart refuses the nonces it minted before (clients
//! retry `badNonce` with a fresh one, RFC 8555 §6.5).

use cairn_acme::nonce::NoncePrefix;
use cairn_wfe::LocalNonces;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;

/// `[nonce]`: one nonce service instance.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NonceSection {
    /// Address of the service's gRPC listener.
    pub listen: SocketAddr,
    /// The prefix of this instance's nonces (eight base64url characters), as the WFEs'
    /// `[[wfe.nonce_services]]` name it. Every instance needs its own.
    pub prefix: Option<NoncePrefix>,
    /// How long a nonce stays redeemable (`"1h"`).
    pub lifetime: String,
    /// Redeemed nonces remembered; past it, older unredeemed nonces are refused (see
    /// `cairn_acme::nonce`). About 40 bytes each.
    pub capacity: usize,
    /// The client identities (DNS names in their certificates) allowed to call this service:
    /// the WFEs'.
    pub allowed_clients: Vec<String>,
}

impl Default for NonceSection {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 14020)),
            prefix: None,
            lifetime: "1h".into(),
            capacity: cairn_wfe::DEFAULT_CAPACITY,
            allowed_clients: vec!["wfe.cairn.internal".into()],
        }
    }
}

impl NonceSection {
    /// The nonce lifetime.
    pub fn lifetime(&self) -> anyhow::Result<std::time::Duration> {
        let d = cairn_core::humane_duration::parse(&self.lifetime)
            .map_err(|e| anyhow::anyhow!("nonce.lifetime: {e}"))?;
        anyhow::ensure!(
            d >= time::Duration::seconds(10) && d <= time::Duration::days(1),
            "nonce.lifetime must be between 10s and 1d"
        );
        std::time::Duration::try_from(d).map_err(|e| anyhow::anyhow!("nonce.lifetime: {e}"))
    }

    /// Checks the values (the prefix is checked when parsed). `serving`: this process is a
    /// nonce service, which must have a prefix of its own.
    pub fn validate(&self, serving: bool) -> anyhow::Result<()> {
        self.lifetime()?;
        let range = cairn_wfe::CAPACITY_RANGE;
        anyhow::ensure!(
            range.contains(&self.capacity),
            "nonce.capacity must be within {}..={}",
            range.start(),
            range.end()
        );
        anyhow::ensure!(
            !serving || self.prefix.is_some(),
            "nonce.prefix must be set: the WFEs route each nonce to its service by it"
        );
        Ok(())
    }

    /// The mint this section describes.
    pub fn mint(&self) -> anyhow::Result<LocalNonces> {
        Ok(LocalNonces::new(
            self.prefix.clone(),
            self.lifetime()?,
            self.capacity,
        ))
    }
}

/// `[rpc]`: this process's end of the gRPC links of a split deployment.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RpcSection {
    /// This process's certificate and key (client and server use) and the internal CA
    /// (`cairn admin pki dev` makes them for development).
    pub tls: Option<cairn_rpc::TlsFiles>,
}

/// The WFE's nonces when `[[wfe.nonce_services]]` lists shared services: each one reached
/// over gRPC with `[rpc] tls`, each nonce redeemed at the service its prefix names.
pub fn routed_nonces(
    cfg: &crate::config::Config,
) -> anyhow::Result<Option<std::sync::Arc<dyn cairn_api::NonceService>>> {
    use anyhow::Context;
    if cfg.wfe.nonce_services.is_empty() {
        return Ok(None);
    }
    let tls = cfg
        .rpc
        .tls
        .clone()
        .context("wfe.nonce_services needs [rpc] tls: this WFE's client certificate")?;
    let mut services = Vec::new();
    for s in &cfg.wfe.nonce_services {
        let client = cairn_rpc::nonce::RemoteNonces::new(&cairn_rpc::RpcClientConfig {
            url: s.address.clone(),
            server_name: s
                .server_name
                .clone()
                .unwrap_or_else(|| cairn_rpc::dev_pki::identity("nonce")),
            tls: tls.clone(),
            timeout: time::Duration::seconds(5),
        })
        .with_context(|| format!("nonce service {}", s.address))?;
        let client: std::sync::Arc<dyn cairn_api::NonceService> = std::sync::Arc::new(client);
        services.push((s.prefix.clone(), client));
    }
    Ok(Some(std::sync::Arc::new(cairn_wfe::RoutedNonces::new(
        services,
    ))))
}

/// Runs `cairn nonce serve --config <path>` until SIGTERM or Ctrl-C. `/metrics` and `/health`
/// on `[server] metrics_listen`.
pub async fn run(path: &std::path::Path) -> anyhow::Result<()> {
    crate::bootstrap::init_logging();
    let cfg = crate::config::Config::load(path)?;
    cfg.nonce.validate(true)?;
    let files = crate::roles::rpc_tls(&cfg, "nonce")?;
    let readiness = crate::roles::start_metrics(&cfg).await?;
    readiness.mark_started();
    let mint: std::sync::Arc<dyn cairn_api::NonceService> = std::sync::Arc::new(cfg.nonce.mint()?);
    tracing::info!(prefix = ?cfg.nonce.prefix, "nonce service starting");
    crate::roles::serve_rpc(
        "nonce-rpc",
        cfg.nonce.listen,
        &cfg.nonce.allowed_clients,
        &files,
        cairn_rpc::nonce::router(mint),
    )
    .await
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {

    use crate::config::Config;

    #[test]
    fn the_nonce_section_and_the_wfes_service_list_parse_and_are_checked() {
        let cfg = Config::parse(
            r#"
            [nonce]
            listen = "127.0.0.1:9101"
            prefix = "nonce-01"
            lifetime = "30m"
            [[wfe.nonce_services]]
            prefix = "nonce-01"
            address = "https://127.0.0.1:9101"
            [[wfe.nonce_services]]
            prefix = "nonce-02"
            address = "https://127.0.0.1:9102"
            "#,
        )
        .unwrap();
        cfg.nonce.validate(true).unwrap();
        assert_eq!(cfg.nonce.lifetime().unwrap().as_secs(), 1800);
        assert_eq!(cfg.wfe.nonce_services.len(), 2);
        assert!(cfg.nonce.mint().unwrap().mint().starts_with("nonce-01"));

        for (text, why) in [
            ("[nonce]\nprefix = \"short\"", "nonce prefix"),
            ("[nonce]\nlifetime = \"5s\"", "nonce.lifetime"),
            ("[nonce]\nsecret = \"x\"", "unknown field"),
            (
                "[[wfe.nonce_services]]\nprefix = \"nonce-01\"\naddress = \"https://a:1\"\n\
                 [[wfe.nonce_services]]\nprefix = \"nonce-01\"\naddress = \"https://b:1\"",
                "listed twice",
            ),
        ] {
            let err = format!("{:#}", Config::parse(text).unwrap_err());
            assert!(err.contains(why), "{text}: {err}");
        }
        // A serving instance needs a prefix of its own; the default section (not serving) not.
        assert!(Config::default().nonce.validate(true).is_err());
        Config::default().nonce.validate(false).unwrap();
    }
}
