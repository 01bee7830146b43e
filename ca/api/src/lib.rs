//! The CA components' contracts, free of I/O: one trait per component with the requests,
//! outcomes and errors that cross it. A caller depends on this crate, never on the component's
//! implementation, so a component runs in-process (all-in-one) or behind gRPC (split) without its
//! callers knowing, and tests use the in-memory fakes of `fake` (feature `test-util`).
//!
//! ```text
//!  WFE ──RegistrationAuthority──► RA ──StorageAuthority────► SA (SQLite / PostgreSQL)
//!                                    ├─ValidationAuthority─► VA (DNS, HTTP, TLS)
//!                                    ├─CertificateIssuer───► issuer (keys) ◄── CRL updater, OCSP
//!                                    └─CtSubmitter─────────► publisher (CT logs)
//! ```

pub mod ct;
pub mod issuer;
pub mod nonce;
pub mod ra;
pub mod sa;
pub mod va;

#[cfg(any(test, feature = "test-util"))]
pub mod fake;

pub use ct::{CtError, CtSubmitter, SctList};
pub use issuer::{
    CertUsage, CertificateIssuer, CrlRequest, IssueRequest, IssuedCertificate, IssuerError,
    IssuerIdentity,
};
pub use nonce::{NonceError, NonceService};
pub use ra::{
    DirectoryInfo, KeyChangeError, NewAccountRequest, NewOrderRequest, OrderView,
    RegistrationAuthority, RenewalInfo, RevocationListener, RevocationRequester,
};
pub use sa::{
    AuthzState, BackendError, BlockedKey, CertificateSelector, ChallengeOutcome, CrlInfo, Lease,
    NewOrderContext, NewOrderQuery, RenewalSelector, RevokedCertificate, SaError, SaResult,
    StorageAuthority, StoredCrl,
};
pub use sa::{CtLogSize, IssuanceStats, SliCount, StatsStorage};
pub use va::{CaaAccount, CaaCheck, ValidationAuthority, ValidationOutcome, ValidationRequest};
