//! Cairn CA domain model: identifiers, accounts, orders, authorizations, challenges, certificates,
//! problems and the clock. Every component of the CA speaks these types; none of them does I/O.

pub mod account_policy;
pub mod address_policy;
pub mod base64_bytes;
pub mod clock;
pub mod humane_duration;
pub mod identifier;
pub mod ids;
pub mod model;
pub mod problem;
pub mod random;
pub mod ttl_cache;

pub use account_policy::{AccountPolicy, PolicyEntry};
pub use address_policy::AddressPolicy;
pub use clock::{Clock, FixedClock, SystemClock};
pub use identifier::{Identifier, IdentifierError, IdentifierType};
pub use ids::{AccountId, AuthzId, ChallengeId, OrderId, Serial, random_id};
pub use model::*;
pub use problem::{Problem, ProblemType, Subproblem};
pub use ttl_cache::TtlCache;
