//! gRPC between Cairn's CA components, over mutual TLS.
//!
//! `cairn serve` calls every component in process, through the traits of `cairn-api`. A split
//! deployment (`cairn wfe serve`, `cairn ra serve`, `cairn va serve`, ...) puts the same
//! components in separate processes; this crate carries the trait calls between them:
//!
//! - [`tls`]: server and client TLS from PEM files, every peer authenticated by a certificate
//!   from the deployment's internal CA (`cairn admin pki dev` makes one for development);
//! - [`identity`]: each service accepts only the client identities its configuration names (the
//!   DNS names in the client certificate, as Boulder checks its gRPC peers per service);
//! - [`server`] and [`client`]: unary gRPC (tonic) with a [`codec::JsonCodec`];
//! - one module per component: [`va`] (the validation authority, for remote perspectives),
//!   [`nonce`] (the WFEs' shared nonces), [`sa`] (the storage authority), [`issuer`] (the
//!   CA's keys), [`ra`] (the registration authority); [`wire`] is what they share.
//!
//! ## Encoding
//! Messages are the `cairn-api` request and response types, encoded as JSON inside ordinary
//! gRPC framing (HTTP/2, `application/grpc`, `grpc-status` trailers), with one gRPC method per
//! trait method (`/cairn.va.ValidationAuthority/Validate`). Boulder uses protobuf; Cairn talks
//! only to itself over these links, and keeping the trait types as the wire types means no second
//! set of message definitions to keep in step and no `protoc` in the build. The price is larger
//! messages than protobuf's; see docs/ARCHITECTURE.md.
//!
//! ## Errors
//! A component's own errors (a `Problem`, a storage conflict) travel inside the response body as
//! the typed result the trait returns, so callers see exactly what an in-process call would give
//! them. gRPC statuses are kept for the transport: `UNAVAILABLE` (peer down), `DEADLINE_EXCEEDED`,
//! `PERMISSION_DENIED` (identity not allowed), `INVALID_ARGUMENT` (a message that does not
//! decode). [`RpcError`] is what a client sees of those.

pub mod client;
pub mod codec;
pub mod dev_pki;
pub mod identity;
pub mod issuer;
pub mod nonce;
pub mod ra;
pub mod sa;
pub mod server;
pub mod tls;
pub mod va;
pub mod wire;

pub use client::{RpcClient, RpcClientConfig};
pub use identity::AllowedClients;
pub use server::RpcRouter;
pub use tls::TlsFiles;

/// A failed call, as its caller sees it: the transport's failure, never the component's answer
/// (those travel in the response).
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum RpcError {
    /// The peer could not be reached or the connection broke.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// The call did not finish within its deadline.
    #[error("deadline exceeded")]
    DeadlineExceeded,
    /// The peer refused this client's identity.
    #[error("permission denied: {0}")]
    PermissionDenied(String),
    /// The peer answered with a status this client does not expect (a version mismatch, a
    /// message that did not decode).
    #[error("rpc failed ({code:?}): {message}")]
    Status {
        /// The gRPC status code.
        code: tonic::Code,
        /// The status message.
        message: String,
    },
    /// The client's own TLS files or endpoint address are unusable.
    #[error("client configuration: {0}")]
    Config(String),
}

impl From<tonic::Status> for RpcError {
    fn from(status: tonic::Status) -> Self {
        match status.code() {
            tonic::Code::Unavailable => Self::Unavailable(status.message().to_owned()),
            tonic::Code::DeadlineExceeded => Self::DeadlineExceeded,
            tonic::Code::PermissionDenied => Self::PermissionDenied(status.message().to_owned()),
            code => Self::Status {
                code,
                message: status.message().to_owned(),
            },
        }
    }
}
