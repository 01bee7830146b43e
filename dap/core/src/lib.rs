//! DAP core shared by client, aggregators and collector: HPKE with the DAP-18 info strings and
//! AADs, VDAF glue over `prio`'s Prio3, task parameters and the clock. No network or storage.

pub mod clock;
pub mod hpke;
pub mod task;
pub mod taskprov;
pub mod vdaf;
pub mod vdaf08;
pub mod vdaf_engine;

pub use clock::{Clock, MockClock, RealClock};
pub use hpke::{HpkeApplicationInfo, HpkeError, HpkeKeypair, Label};
pub use task::{Protocol, TaskError, TaskParameters};
pub use vdaf::{AggregateResult, DpStrategy, Measurement, VdafError, VdafInstance, VerifyKey};
pub use vdaf_engine::VdafEngine;
