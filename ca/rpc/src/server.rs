//! The server side: an axum router of unary gRPC methods behind the identity check, served by
//! Cairn's shared accept loop (`cairn-listen`: handshake, idle and body timeouts, connection cap)
//! with mutual TLS.

use crate::codec::JsonCodec;
use crate::identity::{self, AllowedClients};
use axum::Router;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// The methods of one gRPC service, `/<service>/<Method>`.
#[derive(Debug)]
pub struct RpcRouter {
    service: &'static str,
    router: Router,
}

impl RpcRouter {
    /// An empty service named `service` (`cairn.va.ValidationAuthority`).
    pub fn new(service: &'static str) -> Self {
        Self {
            service,
            router: Router::new(),
        }
    }

    /// The service's gRPC name.
    pub fn service(&self) -> &'static str {
        self.service
    }

    /// Adds the unary method `method`, answered by `handler`.
    #[must_use]
    pub fn unary<Req, Resp, F, Fut>(mut self, method: &'static str, handler: F) -> Self
    where
        Req: DeserializeOwned + Send + 'static,
        Resp: Serialize + Send + 'static,
        F: Fn(Req) -> Fut + Clone + Send + Sync + 'static,
        Fut: Future<Output = Resp> + Send + 'static,
    {
        let path = format!("/{}/{method}", self.service);
        let route = axum::routing::post(move |req: axum::extract::Request| {
            let handler = handler.clone();
            async move {
                let call = tower::service_fn(move |r: tonic::Request<Req>| {
                    let handler = handler.clone();
                    async move {
                        Ok::<_, tonic::Status>(tonic::Response::new(handler(r.into_inner()).await))
                    }
                });
                let mut grpc = tonic::server::Grpc::new(JsonCodec::<Resp, Req>::default());
                grpc.unary(call, req).await.map(axum::body::Body::new)
            }
        });
        self.router = self.router.route(&path, route);
        self
    }

    /// The router, answering only clients in `allowed`; unknown methods get `UNIMPLEMENTED`.
    pub fn into_router(self, allowed: AllowedClients) -> Router {
        let service = self.service;
        self.router
            .fallback(move || async move {
                tonic::Status::unimplemented(format!("{service}: no such method"))
                    .into_http::<tonic::body::Body>()
                    .map(axum::body::Body::new)
            })
            .layer(axum::middleware::from_fn_with_state(
                Arc::new((service, allowed)),
                identity::check,
            ))
    }
}

/// The accept-loop bounds for an internal gRPC listener: the public defaults, except that an idle
/// connection stays open for 10 minutes (clients keep one HTTP/2 connection per peer and send
/// keep-alive pings every 30 s).
pub fn internal_limits() -> cairn_listen::Limits {
    let mut limits = cairn_listen::Limits::default();
    limits.idle_timeout = Duration::from_secs(600);
    limits
}

/// Serves `router` on `socket` with mutual TLS until `shutdown` completes.
pub async fn serve(
    socket: TcpListener,
    name: &'static str,
    tls: Arc<rustls::ServerConfig>,
    router: Router,
    shutdown: impl Future<Output = ()>,
) {
    cairn_listen::Listener::new(socket, name, internal_limits())
        .with_tls(tls)
        .serve(router, shutdown)
        .await;
}
