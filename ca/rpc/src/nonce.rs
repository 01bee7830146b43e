//! The nonce service over gRPC: [`router`] serves a [`NonceService`] (`cairn nonce serve`), and
//! [`RemoteNonces`] is the WFE's client of one instance. The WFE routes each redemption to the
//! instance whose prefix the nonce carries (`cairn_wfe::RoutedNonces`), so a client may send
//! each request to a different WFE.

use crate::RpcError;
use crate::client::{RpcClient, RpcClientConfig};
use crate::server::RpcRouter;
use async_trait::async_trait;
use cairn_api::{NonceError, NonceService};
use std::sync::Arc;

/// The gRPC service name.
pub const SERVICE: &str = "cairn.nonce.NonceService";

/// The methods of `nonces`. Errors cross the wire as their text (there is one kind).
pub fn router(nonces: Arc<dyn NonceService>) -> RpcRouter {
    let redeem = nonces.clone();
    RpcRouter::new(SERVICE)
        .unary("Nonce", move |(): ()| {
            let nonces = nonces.clone();
            async move { nonces.issue().await.map_err(|e| e.to_string()) }
        })
        .unary("Redeem", move |nonce: String| {
            let nonces = redeem.clone();
            async move { nonces.redeem(&nonce).await.map_err(|e| e.to_string()) }
        })
}

/// One nonce service instance in another process.
#[derive(Debug, Clone)]
pub struct RemoteNonces {
    client: RpcClient,
}

impl RemoteNonces {
    /// A client of the nonce service at `config.url`.
    pub fn new(config: &RpcClientConfig) -> Result<Self, RpcError> {
        Ok(Self {
            client: RpcClient::new(SERVICE, config)?,
        })
    }
}

fn unavailable(e: impl std::fmt::Display) -> NonceError {
    NonceError::Unavailable(e.to_string())
}

#[async_trait]
impl NonceService for RemoteNonces {
    async fn issue(&self) -> Result<String, NonceError> {
        self.client
            .call::<_, Result<String, String>>("Nonce", ())
            .await
            .map_err(unavailable)?
            .map_err(unavailable)
    }

    async fn redeem(&self, nonce: &str) -> Result<bool, NonceError> {
        self.client
            .call::<_, Result<bool, String>>("Redeem", nonce.to_owned())
            .await
            .map_err(unavailable)?
            .map_err(unavailable)
    }
}
