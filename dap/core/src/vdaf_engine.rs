//! [`VdafEngine`]: a task's VDAF as its protocol runs it. A `dap-18` task runs VDAF-18
//! ([`crate::vdaf`], under the task's application context); a `dap-09` task runs VDAF-08
//! ([`crate::vdaf08`]). The aggregator, client and collector call this and nothing else, so
//! the protocol version is data handed down, not a fork of their code.

use crate::task::Protocol;
use crate::vdaf::{
    AggregateResult, DpStrategy, HelperFinished, LeaderContinued, Measurement, NONCE_LEN, Shards,
    VdafError, VdafInstance, VerifyKey,
};
use crate::vdaf08;

/// A task's VDAF, its protocol and (for VDAF-18) its application context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VdafEngine {
    vdaf: VdafInstance,
    protocol: Protocol,
    ctx: Vec<u8>,
}

impl VdafEngine {
    /// The engine for `vdaf` in `protocol`; `ctx` is VDAF-18's application context (unused by
    /// VDAF-08).
    pub fn new(vdaf: VdafInstance, protocol: Protocol, ctx: Vec<u8>) -> Self {
        VdafEngine {
            vdaf,
            protocol,
            ctx,
        }
    }

    /// The VDAF's parameters.
    pub fn instance(&self) -> &VdafInstance {
        &self.vdaf
    }

    /// The protocol.
    pub fn protocol(&self) -> Protocol {
        self.protocol
    }

    /// Whether `agg_param` is one the VDAF accepts (Prio3: empty, in both versions).
    pub fn is_agg_param_valid(&self, agg_param: &[u8]) -> bool {
        self.vdaf.is_agg_param_valid(agg_param)
    }

    /// Shards `measurement` with `nonce` (the report ID).
    pub fn shard(
        &self,
        measurement: &Measurement,
        nonce: &[u8; NONCE_LEN],
    ) -> Result<Shards, VdafError> {
        match self.protocol {
            Protocol::Dap18 => self.vdaf.shard(&self.ctx, measurement, nonce),
            Protocol::Dap09 => vdaf08::shard(&self.vdaf, measurement, nonce),
        }
    }

    /// The leader's initialization of one report.
    pub fn leader_initialized(
        &self,
        verify_key: &VerifyKey,
        agg_param: &[u8],
        nonce: &[u8; NONCE_LEN],
        public_share: &[u8],
        input_share: &[u8],
    ) -> Result<LeaderContinued, VdafError> {
        match self.protocol {
            Protocol::Dap18 => self.vdaf.leader_initialized(
                verify_key,
                &self.ctx,
                agg_param,
                nonce,
                public_share,
                input_share,
            ),
            Protocol::Dap09 => vdaf08::leader_initialized(
                &self.vdaf,
                verify_key,
                agg_param,
                nonce,
                public_share,
                input_share,
            ),
        }
    }

    /// The helper's initialization of one report given the leader's message.
    pub fn helper_initialized(
        &self,
        verify_key: &VerifyKey,
        agg_param: &[u8],
        nonce: &[u8; NONCE_LEN],
        public_share: &[u8],
        input_share: &[u8],
        inbound: &[u8],
    ) -> Result<HelperFinished, VdafError> {
        match self.protocol {
            Protocol::Dap18 => self.vdaf.helper_initialized(
                verify_key,
                &self.ctx,
                agg_param,
                nonce,
                public_share,
                input_share,
                inbound,
            ),
            Protocol::Dap09 => vdaf08::helper_initialized(
                &self.vdaf,
                verify_key,
                agg_param,
                nonce,
                public_share,
                input_share,
                inbound,
            ),
        }
    }

    /// The leader's step on the helper's message: the output share.
    pub fn leader_continued(
        &self,
        agg_param: &[u8],
        state: &[u8],
        inbound: &[u8],
    ) -> Result<Vec<u8>, VdafError> {
        match self.protocol {
            Protocol::Dap18 => self
                .vdaf
                .leader_continued(&self.ctx, agg_param, state, inbound),
            Protocol::Dap09 => vdaf08::leader_continued(&self.vdaf, agg_param, state, inbound),
        }
    }

    /// An empty aggregate share.
    pub fn empty_aggregate_share(&self, agg_param: &[u8]) -> Result<Vec<u8>, VdafError> {
        match self.protocol {
            Protocol::Dap18 => self.vdaf.empty_aggregate_share(agg_param),
            Protocol::Dap09 => vdaf08::empty_aggregate_share(&self.vdaf, agg_param),
        }
    }

    /// Adds `output_shares` into `aggregate_share`.
    pub fn accumulate<'s>(
        &self,
        agg_param: &[u8],
        aggregate_share: &[u8],
        output_shares: impl IntoIterator<Item = &'s [u8]>,
    ) -> Result<Vec<u8>, VdafError> {
        match self.protocol {
            Protocol::Dap18 => self
                .vdaf
                .accumulate(agg_param, aggregate_share, output_shares),
            Protocol::Dap09 => {
                vdaf08::accumulate(&self.vdaf, agg_param, aggregate_share, output_shares)
            }
        }
    }

    /// Merges aggregate shares.
    pub fn merge<'s>(
        &self,
        agg_param: &[u8],
        aggregate_shares: impl IntoIterator<Item = &'s [u8]>,
    ) -> Result<Vec<u8>, VdafError> {
        match self.protocol {
            Protocol::Dap18 => self.vdaf.merge(agg_param, aggregate_shares),
            Protocol::Dap09 => vdaf08::merge(&self.vdaf, agg_param, aggregate_shares),
        }
    }

    /// `aggregate_share` with noise from `dp` (VDAF-18 only: a `dap-09` task cannot be
    /// configured with noise).
    pub fn add_noise(
        &self,
        dp: &DpStrategy,
        agg_param: &[u8],
        aggregate_share: &[u8],
        report_count: u64,
    ) -> Result<Vec<u8>, VdafError> {
        match self.protocol {
            Protocol::Dap18 => self
                .vdaf
                .add_noise(dp, agg_param, aggregate_share, report_count),
            Protocol::Dap09 => Err(VdafError::Parameters(
                "differential privacy is not offered for dap-09 tasks".into(),
            )),
        }
    }

    /// The aggregate result from both aggregate shares.
    pub fn unshard(
        &self,
        agg_param: &[u8],
        leader_share: &[u8],
        helper_share: &[u8],
        report_count: u64,
    ) -> Result<AggregateResult, VdafError> {
        match self.protocol {
            Protocol::Dap18 => {
                self.vdaf
                    .unshard(agg_param, leader_share, helper_share, report_count)
            }
            Protocol::Dap09 => vdaf08::unshard(
                &self.vdaf,
                agg_param,
                leader_share,
                helper_share,
                report_count,
            ),
        }
    }
}
