//! In-memory fakes of the components (feature `test-util`), for tests of the RA, the WFE and
//! the status services that need no database, DNS, network or key files:
//!
//! - [`MemoryStorage`]: the storage authority, with the SQL storage's answers (`cairn-sa`'s suite
//!   runs against both).
//! - [`ScriptedValidation`]: a validation authority that answers valid or invalid per identifier.
//! - [`FakeIssuer`]: an issuer that really signs, with a root and intermediate generated when it
//!   is made.
//! - [`FakeCt`]: a CT submitter that grants (or refuses) an SCT list and records what it got.

mod ct;
mod issuer;
mod storage;
mod validation;

pub use ct::FakeCt;
pub use issuer::FakeIssuer;
pub use storage::MemoryStorage;
pub use validation::ScriptedValidation;
