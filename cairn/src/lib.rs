//! Cairn's service assembly: configuration, bootstrap and the `serve` stack, shared by the
//! `cairn` binary and the integration tests.

pub mod admin;
pub mod bootstrap;
pub mod config;
pub mod ct_issuance;
pub mod dap_serve;
pub mod data_dir;
pub mod nonce_serve;
pub mod probe;
pub mod revoke;
pub mod roles;
pub mod serve;
pub mod va_serve;

pub use serve::{ServeArgs, Server};
