//! Cairn's transparency-log library: everything a Certificate Transparency log and its clients
//! compute, with no I/O (no files, sockets, clocks or async runtime), so the log server
//! (`cairn-ct`) and the CA's publisher share one implementation and each piece is tested alone.
//!
//! ```text
//!  chain ──validate──► entry ──► merkle (leaf hash) ──► tile (where hashes live)
//!    │                   │                                 │
//!    └─ precert (TBS     └─► sct (signed timestamp)        └─► checkpoint (signed note
//!       without poison)          ▲ key (P-256, LogID)            over size + root)
//! ```
//!
//! - [`merkle`]: RFC 6962 leaf and node hashes, roots from aligned subtrees.
//! - [`tile`]: C2SP tlog-tiles coordinates and paths.
//! - [`checkpoint`]: C2SP signed-note checkpoints with RFC 6962 tree head signatures.
//! - [`note`]: Ed25519 note signatures and ML-DSA-44 cosignatures (C2SP signed-note,
//!   tlog-cosignature).
//! - [`entry`]: RFC 6962 `TimestampedEntry`/`MerkleTreeLeaf`, static-ct-api `TileLeaf`.
//! - [`sct`]: signed certificate timestamps and the `digitally-signed` encoding.
//! - [`precert`]: the TBSCertificate a precertificate is logged (and its SCT signed) as.
//! - [`chain`]: submission chain validation against the accepted roots.
//! - [`audit`]: a full audit of a tiled log (every tile rechecked, root and consistency
//!   recomputed), fed tiles by the caller.
//! - [`key`]: the log's ECDSA P-256 key.

pub mod audit;
pub mod chain;
pub mod checkpoint;
pub mod consistency;
pub mod entry;
pub mod inclusion;
pub mod key;
pub mod merkle;
pub mod note;
pub mod precert;
pub mod sct;
pub mod tile;
