//! The client side: one lazily connected HTTP/2 channel per peer, mutual TLS, a deadline on every
//! call and keep-alive pings.

use crate::RpcError;
use crate::codec::{EncodedJson, PreEncodedCodec};
use crate::tls::{ClientPem, TlsFiles};
use http::uri::PathAndQuery;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

fn default_timeout() -> time::Duration {
    time::Duration::seconds(30)
}

/// How to reach one peer service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RpcClientConfig {
    /// The peer's address, `https://host:port`.
    pub url: String,
    /// The DNS name the peer's certificate must carry (`va.cairn.internal`).
    pub server_name: String,
    /// This client's certificate, key and the internal CA.
    pub tls: TlsFiles,
    /// Deadline of one call (`"30s"`).
    #[serde(default = "default_timeout", with = "cairn_core::humane_duration")]
    pub timeout: time::Duration,
}

/// A client of one gRPC service, at one or several instances.
#[derive(Debug, Clone)]
pub struct RpcClient {
    service: &'static str,
    instances: Arc<[tonic::client::Grpc<Channel>]>,
    next: Arc<AtomicUsize>,
}

impl RpcClient {
    /// A client of `service` at `config.url`; the connection is made at the first call (and
    /// made again after it breaks), so a peer that is down is an error of the call, not of
    /// start-up.
    pub fn new(service: &'static str, config: &RpcClientConfig) -> Result<Self, RpcError> {
        Self::new_many(service, std::slice::from_ref(config))
    }

    /// A client of several instances of `service` (several RAs behind the WFEs): calls go
    /// round them, and a call an instance is [`RpcError::Unavailable`] for goes on to the next,
    /// so a dead instance costs no call while another answers. A call whose connection broke
    /// after it was sent may then run twice; the components' writes are compare-and-set, so
    /// the second finds the first's result. At least one configuration is needed.
    pub fn new_many(service: &'static str, configs: &[RpcClientConfig]) -> Result<Self, RpcError> {
        if configs.is_empty() {
            return Err(RpcError::Config(format!("{service}: no instance to call")));
        }
        let instances = configs
            .iter()
            .map(Self::channel)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            service,
            instances: instances.into(),
            next: Arc::new(AtomicUsize::new(0)),
        })
    }

    fn channel(config: &RpcClientConfig) -> Result<tonic::client::Grpc<Channel>, RpcError> {
        let pem = ClientPem::read(&config.tls).map_err(|e| RpcError::Config(e.to_string()))?;
        let tls = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(pem.ca))
            .identity(Identity::from_pem(pem.cert, pem.key))
            .domain_name(config.server_name.clone());
        let channel = Endpoint::from_shared(config.url.clone())
            .map_err(|e| RpcError::Config(format!("{}: {e}", config.url)))?
            .tls_config(tls)
            .map_err(|e| RpcError::Config(e.to_string()))?
            .connect_timeout(Duration::from_secs(5))
            .timeout(
                Duration::try_from(config.timeout)
                    .map_err(|_| RpcError::Config("timeout must be positive".into()))?,
            )
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(30))
            .keep_alive_timeout(Duration::from_secs(10))
            .keep_alive_while_idle(true)
            .connect_lazy();
        Ok(tonic::client::Grpc::new(channel))
    }

    /// Calls `/<service>/<method>` with `req`. The request is encoded once, before the call,
    /// and the same bytes go to each instance tried.
    pub fn call<Req, Resp>(
        &self,
        method: &'static str,
        req: Req,
    ) -> impl Future<Output = Result<Resp, RpcError>> + Send + '_
    where
        Req: Serialize,
        Resp: DeserializeOwned + Send + Sync + 'static,
    {
        let body = serde_json::to_vec(&req)
            .map(|json| EncodedJson(json.into()))
            .map_err(|e| RpcError::Config(format!("encoding a {method} request: {e}")));
        self.call_encoded(method, body)
    }

    async fn call_encoded<Resp>(
        &self,
        method: &'static str,
        body: Result<EncodedJson, RpcError>,
    ) -> Result<Resp, RpcError>
    where
        Resp: DeserializeOwned + Send + Sync + 'static,
    {
        let body = body?;
        let path = PathAndQuery::try_from(format!("/{}/{method}", self.service))
            .map_err(|e| RpcError::Config(e.to_string()))?;
        let count = self.instances.len();
        let first = self.next.fetch_add(1, Ordering::Relaxed);
        let mut last = RpcError::Unavailable(format!("{}: no instance", self.service));
        for i in 0..count {
            let mut grpc = self.instances[(first + i) % count].clone();
            let attempt = async {
                grpc.ready()
                    .await
                    .map_err(|e| RpcError::Unavailable(e.to_string()))?;
                let resp = grpc
                    .unary(
                        tonic::Request::new(body.clone()),
                        path.clone(),
                        PreEncodedCodec::<Resp>::default(),
                    )
                    .await?;
                Ok::<_, RpcError>(resp.into_inner())
            };
            match attempt.await {
                Err(RpcError::Unavailable(e)) => {
                    tracing::debug!(service = self.service, error = %e, "instance unavailable");
                    last = RpcError::Unavailable(e);
                }
                other => return other,
            }
        }
        Err(last)
    }
}
