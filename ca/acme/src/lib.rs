//! ACME (RFC 8555) wire format: JWS verification, JWK thumbprints, request and response bodies, problem documents. No I/O.
//!
//! A request goes through [`ParsedJws::parse`], then [`ParsedJws::verify_with`] with the
//! embedded [`Jwk`] or the account key its `kid` names, then [`ParsedJws::payload_json`] into
//! one of the [`messages`] types. Every failure is a [`cairn_core::Problem`] (or a [`JwsError`]
//! that converts into one) with the RFC 8555 §6.7 type a client expects.

pub mod base64url;
pub mod eab;
pub mod error;
pub mod jwk;
pub mod jws;
mod member_names;
pub mod messages;
pub mod nonce;

#[cfg(test)]
#[allow(clippy::expect_used)]
mod testkeys;

pub use eab::verify_eab;
pub use error::JwsError;
pub use jwk::{EcCurve, Jwk, KeyType};
pub use jws::{JwsAlg, KeyChange, KeyRef, ParsedJws, ProtectedHeader, verify_key_change};
pub use messages::{dns01_txt_value, key_authorization};
