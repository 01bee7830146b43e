//! [`FakeCt`]: a CT submitter that grants a fixed SCT list, or refuses, and records what it got.

use crate::ct::{CtError, CtSubmitter, SctList};
use async_trait::async_trait;
use std::sync::{Mutex, MutexGuard};

/// Grants every precertificate the same SCT list (one made-up SCT, well-formed as a TLS list)
/// unless told to refuse; records the precertificate and final chains it was given.
#[derive(Debug)]
pub struct FakeCt {
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    refusing: bool,
    hanging: bool,
    precert_chains: Vec<Vec<Vec<u8>>>,
    final_chains: Vec<Vec<Vec<u8>>>,
}

impl Default for FakeCt {
    fn default() -> Self {
        FakeCt::new()
    }
}

impl FakeCt {
    /// A submitter that grants SCTs.
    pub fn new() -> FakeCt {
        FakeCt {
            state: Mutex::new(State {
                refusing: false,
                hanging: false,
                precert_chains: Vec::new(),
                final_chains: Vec::new(),
            }),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The list every granted precertificate gets: one SCT of three bytes.
    pub fn sct_list() -> SctList {
        SctList {
            encoded: vec![0x00, 0x05, 0x00, 0x03, 0x01, 0x02, 0x03],
            count: 1,
        }
    }

    /// From now on, `get_scts` fails as if too few logs answered (or succeeds again).
    pub fn refuse(&self, refusing: bool) {
        self.state().refusing = refusing;
    }

    /// From now on, `get_scts` records the chain (a log saw it) and then never answers, as a
    /// process killed while waiting for the logs would (or answers again).
    pub fn hang(&self, hanging: bool) {
        self.state().hanging = hanging;
    }

    /// The precertificate chains submitted so far.
    pub fn precert_chains(&self) -> Vec<Vec<Vec<u8>>> {
        self.state().precert_chains.clone()
    }

    /// The final certificate chains submitted so far.
    pub fn final_chains(&self) -> Vec<Vec<Vec<u8>>> {
        self.state().final_chains.clone()
    }
}

#[async_trait]
impl CtSubmitter for FakeCt {
    async fn get_scts(&self, precert_chain: &[Vec<u8>]) -> Result<SctList, CtError> {
        let (hanging, refusing) = {
            let mut state = self.state();
            if precert_chain.len() < 2 {
                return Err(CtError::NoIssuer);
            }
            state.precert_chains.push(precert_chain.to_vec());
            (state.hanging, state.refusing)
        };
        if hanging {
            return std::future::pending().await;
        }
        if refusing {
            return Err(CtError::NotEnoughScts {
                got: 0,
                required: 1,
            });
        }
        Ok(FakeCt::sct_list())
    }

    async fn submit_final(&self, chain: Vec<Vec<u8>>) {
        self.state().final_chains.push(chain);
    }
}
