//! The nonce service over gRPC: [`router`] serves a [`NonceService`] (`cairn nonce serve`), and
//! [`RemoteNonces`] is the WFE's client of one instance. The WFE routes each redemption to the
//! instance whose prefix the nonce carries (`cairn_wfe::RoutedNonces`), so a client may send
//! each request to a different WFE.
//!
//! Every ACME response carries a fresh nonce, so minting one per call cost the split deployment
//! about six round trips per certificate. The client takes them in batches instead
//! (`NonceBatch`) and hands them out one by one; each nonce still goes to one response only and
//! is redeemed at the service, once. Batches are small and short-lived so that a service that
//! dies leaves few of its nonces in WFEs' hands: what is left of a batch is dropped after
//! [`BATCH_MAX_AGE`], and at once when a redemption at that service fails.

use crate::RpcError;
use crate::client::{RpcClient, RpcClientConfig};
use crate::server::RpcRouter;
use async_trait::async_trait;
use cairn_api::{NonceError, NonceService};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Nonces a client asks for at once.
pub const BATCH: u32 = 16;
/// The most nonces one `NonceBatch` call returns.
pub const MAX_BATCH: u32 = 256;
/// How long a client keeps a batch before dropping what is left of it (nonces live an hour).
pub const BATCH_MAX_AGE: Duration = Duration::from_secs(30);

/// The gRPC service name.
pub const SERVICE: &str = "cairn.nonce.NonceService";

/// The methods of `nonces`. Errors cross the wire as their text (there is one kind).
pub fn router(nonces: Arc<dyn NonceService>) -> RpcRouter {
    let redeem = nonces.clone();
    let batch = nonces.clone();
    RpcRouter::new(SERVICE)
        .unary("Nonce", move |(): ()| {
            let nonces = nonces.clone();
            async move { nonces.issue().await.map_err(|e| e.to_string()) }
        })
        .unary("NonceBatch", move |count: u32| {
            let nonces = batch.clone();
            async move {
                let count = count.clamp(1, MAX_BATCH);
                let mut out = Vec::with_capacity(count as usize);
                for _ in 0..count {
                    out.push(nonces.issue().await.map_err(|e| e.to_string())?);
                }
                Ok::<_, String>(out)
            }
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
    /// Nonces fetched and not handed out yet, with when they were fetched.
    pool: Arc<Mutex<(Instant, Vec<String>)>>,
}

impl RemoteNonces {
    /// A client of the nonce service at `config.url`.
    pub fn new(config: &RpcClientConfig) -> Result<Self, RpcError> {
        Ok(Self {
            client: RpcClient::new(SERVICE, config)?,
            pool: Arc::new(Mutex::new((Instant::now(), Vec::new()))),
        })
    }

    /// A nonce from the pool, if it holds a fresh one.
    fn pooled(&self) -> Option<String> {
        let mut pool = self.pool.lock().unwrap_or_else(|e| e.into_inner());
        if pool.0.elapsed() > BATCH_MAX_AGE {
            pool.1.clear();
        }
        pool.1.pop()
    }
}

fn unavailable(e: impl std::fmt::Display) -> NonceError {
    NonceError::Unavailable(e.to_string())
}

#[async_trait]
impl NonceService for RemoteNonces {
    async fn issue(&self) -> Result<String, NonceError> {
        if let Some(nonce) = self.pooled() {
            return Ok(nonce);
        }
        let mut batch = self
            .client
            .call::<_, Result<Vec<String>, String>>("NonceBatch", BATCH)
            .await
            .map_err(unavailable)?
            .map_err(unavailable)?;
        let nonce = batch
            .pop()
            .ok_or_else(|| unavailable("the nonce service sent an empty batch"))?;
        let mut pool = self.pool.lock().unwrap_or_else(|e| e.into_inner());
        if pool.1.is_empty() {
            pool.0 = Instant::now();
        }
        pool.1.extend(batch);
        Ok(nonce)
    }

    async fn redeem(&self, nonce: &str) -> Result<bool, NonceError> {
        let answer = self
            .client
            .call::<_, Result<bool, String>>("Redeem", nonce.to_owned())
            .await
            .map_err(unavailable)
            .and_then(|r| r.map_err(unavailable));
        if answer.is_err() {
            // The service is unreachable: its pooled nonces would only earn clients badNonce.
            self.pool
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .1
                .clear();
        }
        answer
    }
}
