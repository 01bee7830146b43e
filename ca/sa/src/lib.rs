//! Storage authority: the only component of the CA that talks to the database.
//!
//! [`SqlStorage`] implements [`StorageAuthority`] (the contract, defined in `cairn-api` with its
//! rows and [`SaError`]) on SQLite (the embedded default) and PostgreSQL with one migration set
//! each. Every multi-row change runs in one transaction, so a crash never leaves a half-written
//! state (an order `valid` without its certificate, an authorization without its challenges).
//!
//! Times are stored as unix microseconds: an `OffsetDateTime` reads back in UTC, truncated to the
//! microsecond ([`SqlStorage::truncate_time`]). Methods that look a row up return
//! [`SaError::NotFound`] when it is missing; writes that would duplicate a unique value, or whose
//! compare-and-set precondition fails on an existing row, return [`SaError::Conflict`] and change
//! nothing. Database and migration failures are [`SaError::Database`] and [`SaError::Migrate`]
//! with the driver's error as their source.

mod eab_seal;
mod sql;
mod stats;

pub use eab_seal::{EAB_SEAL_KEY_LEN, EabSeal};
pub use sql::SqlStorage;

pub use cairn_api::sa::{
    AuthzState, BackendError, BlockedKey, CertificateSelector, ChallengeOutcome, CrlInfo, Lease,
    NewOrderContext, NewOrderQuery, RenewalSelector, RevokedCertificate, SaError, SaResult,
    StorageAuthority, StoredCrl,
};
pub use cairn_api::sa::{CtLogSize, IssuanceStats, SliCount, StatsStorage};
