//! Cairn's Certificate Transparency log: a C2SP static-ct-api v1.1.0 log.
//!
//! Writes are RFC 6962 `add-chain`/`add-pre-chain` (SCTs carry the `leaf_index` extension);
//! reads are static files (signed checkpoint, hash and data tiles, issuers). Submissions wait in
//! a bounded pool; every period the sequencer appends them, writes and fsyncs the tiles,
//! advances the checkpoint with a compare-and-swap in the lock store (which also holds the
//! dedup index), and only then returns SCTs.
//!
//! ```text
//!  add-chain ─► validate ─► dedup? ─► pool ──tick──► sequencer ─► tiles+issuers (fsync)
//!                                                          │
//!   SCT ◄──────────── answer ◄── checkpoint file ◄── lock store CAS (checkpoint + dedup)
//! ```
//!
//! This crate is the server: [`CtLog`] (one log, embeddable: mount [`CtLog::router`]),
//! [`CtServer`] (every configured log behind one listener), its [`config`], [`http`] edge,
//! [`storage`], [`lockstore`], the [`verify`] auditor behind `cairn ct verify`, the [`witness`]
//! behind `cairn ct witness` and the log's own witnessing task (it sends each checkpoint to its
//! witnesses and publishes their cosignatures), the read path's [`read_limits`] and optional
//! [`rfc6962_read`] endpoints, and the files it reads at start ([`key_file`], [`roots`]). The
//! I/O-free transparency-log code it runs on (Merkle hashing, tiles, checkpoints, SCTs, entry
//! codecs, chain validation) is `cairn-tlog`.

pub mod config;
pub mod http;
pub mod key_file;
pub mod lockstore;
mod log;
pub mod read_limits;
pub mod rfc6962_read;
pub mod roots;
pub mod s3;
mod server;
pub mod storage;
mod tile_cache;
pub mod verify;
pub mod witness;
mod witnessing;

pub use config::{CtConfig, LogConfig};
pub use log::{CtLog, RecoveryError, StartError, SubmitError};
pub use server::{CtServer, ServerError};
pub use witnessing::WitnessStatus;
