//! CRL publishing (`[crl]`): the updater that regenerates, signs (through the issuer), stores and
//! optionally writes out every CRL shard, and its configuration section. The stored CRLs are
//! served by the [public listener](crate::public).

mod config;
mod updater;

pub use config::{CrlConfig, CrlSettings, DEFAULT_SHARDS};
pub use updater::{CrlUpdater, UpdateError, UpdateStats, group_by_shard, is_fresh};
