//! The OCSP responder (RFC 6960, RFC 5019 profile), off unless `[ocsp] enabled = true`: the
//! responder and its routes, and the cache of signed answers.

mod cache;
mod responder;

pub use cache::{CachedAnswer, MemoryCache, ResponseCache};
pub use responder::{Answer, OcspConfig, OcspResponder, SignerChoice, StartError, router};
