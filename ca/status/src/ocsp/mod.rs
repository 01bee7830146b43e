//! The OCSP responder (RFC 6960, RFC 5019 profile), off unless `[ocsp] enabled = true`:
//! [`OcspResponder`] answers from storage and signs through the issuer, [`ResponseCache`] keeps
//! the signed answers, [`router`] puts it on HTTP (`GET /ocsp/{base64}`, `POST /ocsp`), to be
//! merged into the [public listener](crate::public).

mod cache;
mod config;
mod http;
mod responder;

pub use cache::{CachedAnswer, MemoryCache, ResponseCache};
pub use config::{OcspConfig, SignerChoice};
pub use http::router;
pub use responder::{Answer, OcspResponder, StartError};
