//! VDAF glue over `prio`'s Prio3 (VDAF-18 wire format): [`VdafInstance`] names a VDAF and its
//! parameters; its methods shard, verify (ping-pong topology, two aggregators), aggregate and
//! unshard, speaking encoded bytes so callers need no generic types.

use prio::codec::{Decode, Encode, ParameterizedDecode};
use prio::dp::distributions::PureDpDiscreteLaplace;
use prio::dp::{DifferentialPrivacyStrategy, PureDpBudget, Rational};
use prio::topology::ping_pong::{PingPongMessage, PingPongState, PingPongTopology};
use prio::vdaf::prio3::{
    Prio3, Prio3Count, Prio3Histogram, Prio3MultihotCountVec, Prio3Sum, Prio3SumVec,
};
use prio::vdaf::{Aggregatable, Aggregator, AggregatorWithNoise, Client, Collector, Vdaf};
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Length of a Prio3 verification key (`VERIFY_KEY_SIZE`).
pub const VERIFY_KEY_LEN: usize = 32;
/// A Prio3 verification key.
pub type VerifyKey = [u8; VERIFY_KEY_LEN];
/// DAP nonces are report IDs: 16 bytes.
pub const NONCE_LEN: usize = 16;

/// Why a VDAF operation failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum VdafError {
    /// The parameters do not describe a valid VDAF.
    #[error("invalid VDAF parameters: {0}")]
    Parameters(String),
    /// The measurement does not fit the VDAF.
    #[error("measurement does not fit the VDAF: {0}")]
    Measurement(String),
    /// A share, message or parameter failed to decode.
    #[error("cannot decode {0}")]
    Decode(&'static str),
    /// Encoding failed.
    #[error("cannot encode {0}")]
    Encode(&'static str),
    /// Verification rejected the report (invalid measurement or shares).
    #[error("verification failed")]
    Verify,
    /// The peer's message is not what this step expects, or the VDAF needs more rounds than
    /// this implementation runs (Prio3 always finishes in one).
    #[error("unexpected verification state")]
    UnexpectedState,
    /// Aggregation or unsharding failed.
    #[error("aggregation failed")]
    Aggregate,
}

/// A VDAF and its parameters, as configured on a task. Serialized as JSON with a `type` tag,
/// e.g. `{"type":"Prio3Sum","max_measurement":255}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", deny_unknown_fields)]
#[non_exhaustive]
pub enum VdafInstance {
    /// Counts true measurements.
    Prio3Count,
    /// Sums integers in `[0, max_measurement]`.
    Prio3Sum {
        /// Largest allowed measurement.
        max_measurement: u64,
    },
    /// Sums vectors of integers in `[0, max_measurement]`.
    Prio3SumVec {
        /// Vector length.
        length: u32,
        /// Largest allowed element.
        max_measurement: u64,
        /// Proof chunk length.
        chunk_length: u32,
    },
    /// Counts measurements per bucket; each measurement is a bucket index.
    Prio3Histogram {
        /// Number of buckets.
        length: u32,
        /// Proof chunk length.
        chunk_length: u32,
    },
    /// Sums bit vectors with at most `max_weight` bits set.
    Prio3MultihotCountVec {
        /// Vector length.
        length: u32,
        /// Proof chunk length.
        chunk_length: u32,
        /// Most bits a measurement may set.
        max_weight: u64,
    },
}

/// A client measurement, typed by VDAF.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
#[non_exhaustive]
pub enum Measurement {
    /// Prio3Count.
    Count(bool),
    /// Prio3Sum, or Prio3Histogram's bucket index.
    Integer(u64),
    /// Prio3SumVec.
    Vector(Vec<u64>),
    /// Prio3MultihotCountVec.
    Bits(Vec<bool>),
}

/// An aggregate result, typed by VDAF.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
#[non_exhaustive]
pub enum AggregateResult {
    /// Prio3Count and Prio3Sum.
    Integer(u64),
    /// Prio3SumVec, Prio3Histogram and Prio3MultihotCountVec.
    Vector(Vec<u128>),
}

/// How an aggregator makes its aggregate share differentially private (configured per task;
/// each aggregator adds its own noise, so the result stays private while one is honest).
/// JSON: `{"type":"PureDpDiscreteLaplace","epsilon_numerator":1,"epsilon_denominator":2}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", deny_unknown_fields)]
#[non_exhaustive]
pub enum DpStrategy {
    /// Pure ε-DP: discrete Laplace noise with scale sensitivity/ε added to every coordinate
    /// (`prio`'s `PureDpDiscreteLaplace`; L1 sensitivity 2 for Prio3Histogram,
    /// `max_measurement · length` for Prio3SumVec, substitution neighbours). Only
    /// Prio3Histogram and Prio3SumVec offer it.
    PureDpDiscreteLaplace {
        /// ε's numerator.
        epsilon_numerator: u64,
        /// ε's denominator.
        epsilon_denominator: u64,
    },
}

impl DpStrategy {
    fn prio(&self) -> Result<PureDpDiscreteLaplace, VdafError> {
        match self {
            DpStrategy::PureDpDiscreteLaplace {
                epsilon_numerator,
                epsilon_denominator,
            } => {
                if *epsilon_numerator == 0 {
                    return Err(VdafError::Parameters("epsilon must be positive".into()));
                }
                let epsilon = Rational::from_unsigned(*epsilon_numerator, *epsilon_denominator)
                    .map_err(|e| VdafError::Parameters(e.to_string()))?;
                let budget =
                    PureDpBudget::new(epsilon).map_err(|e| VdafError::Parameters(e.to_string()))?;
                Ok(PureDpDiscreteLaplace::from_budget(budget))
            }
        }
    }
}

impl AggregateResult {
    /// The coordinates read as signed numbers: with differential privacy the noise may push a
    /// coordinate below zero, which the field represents as `modulus - k`; values above half
    /// the modulus (`vdaf`'s [`VdafInstance::field_modulus`]) are read as negative.
    pub fn signed(&self, vdaf: &VdafInstance) -> Vec<i128> {
        let p = vdaf.field_modulus();
        let one = |v: u128| {
            if v > p / 2 {
                -i128::try_from(p - v.min(p)).unwrap_or(i128::MAX)
            } else {
                i128::try_from(v).unwrap_or(i128::MAX)
            }
        };
        match self {
            AggregateResult::Integer(v) => vec![one(u128::from(*v))],
            AggregateResult::Vector(v) => v.iter().map(|x| one(*x)).collect(),
        }
    }
}

/// A client's shards of one measurement.
#[derive(Debug, Clone)]
pub struct Shards {
    /// The encoded public share.
    pub public_share: Vec<u8>,
    /// The encoded leader input share.
    pub leader_input_share: Vec<u8>,
    /// The encoded helper input share.
    pub helper_input_share: Vec<u8>,
}

/// The helper's outcome after initialization (Prio3 finishes here).
#[derive(Debug, Clone)]
pub struct HelperFinished {
    /// The encoded output share to commit.
    pub output_share: Vec<u8>,
    /// The encoded ping-pong message for the leader.
    pub outbound: Vec<u8>,
}

/// The leader's state after initialization.
#[derive(Debug, Clone)]
pub struct LeaderContinued {
    /// The encoded verification state (keep it to finish with the helper's answer).
    pub state: Vec<u8>,
    /// The encoded ping-pong message for the helper.
    pub outbound: Vec<u8>,
}

fn usize_of(v: u32, what: &str) -> Result<usize, VdafError> {
    usize::try_from(v).map_err(|_| VdafError::Parameters(format!("{what} too large")))
}

fn param_err(e: prio::vdaf::VdafError) -> VdafError {
    VdafError::Parameters(e.to_string())
}

fn count_vdaf() -> Result<Prio3Count, VdafError> {
    Prio3::new_count(2).map_err(param_err)
}

fn sum_vdaf(max_measurement: u64) -> Result<Prio3Sum, VdafError> {
    Prio3::new_sum(2, max_measurement).map_err(param_err)
}

fn sum_vec_vdaf(
    length: u32,
    max_measurement: u64,
    chunk_length: u32,
) -> Result<Prio3SumVec, VdafError> {
    Prio3::new_sum_vec(
        2,
        u128::from(max_measurement),
        usize_of(length, "length")?,
        usize_of(chunk_length, "chunk_length")?,
    )
    .map_err(param_err)
}

fn histogram_vdaf(length: u32, chunk_length: u32) -> Result<Prio3Histogram, VdafError> {
    Prio3::new_histogram(
        2,
        usize_of(length, "length")?,
        usize_of(chunk_length, "chunk_length")?,
    )
    .map_err(param_err)
}

fn multihot_vdaf(
    length: u32,
    chunk_length: u32,
    max_weight: u64,
) -> Result<Prio3MultihotCountVec, VdafError> {
    let max_weight = usize::try_from(max_weight)
        .map_err(|_| VdafError::Parameters("max_weight too large".into()))?;
    Prio3::new_multihot_count_vec(
        2,
        usize_of(length, "length")?,
        max_weight,
        usize_of(chunk_length, "chunk_length")?,
    )
    .map_err(param_err)
}

/// Runs `$body` with `$vdaf` bound to the concrete prio VDAF for `$inst`.
macro_rules! with_vdaf {
    ($inst:expr, |$vdaf:ident| $body:expr) => {{
        match $inst {
            VdafInstance::Prio3Count => {
                let $vdaf = count_vdaf()?;
                $body
            }
            VdafInstance::Prio3Sum { max_measurement } => {
                let $vdaf = sum_vdaf(*max_measurement)?;
                $body
            }
            VdafInstance::Prio3SumVec {
                length,
                max_measurement,
                chunk_length,
            } => {
                let $vdaf = sum_vec_vdaf(*length, *max_measurement, *chunk_length)?;
                $body
            }
            VdafInstance::Prio3Histogram {
                length,
                chunk_length,
            } => {
                let $vdaf = histogram_vdaf(*length, *chunk_length)?;
                $body
            }
            VdafInstance::Prio3MultihotCountVec {
                length,
                chunk_length,
                max_weight,
            } => {
                let $vdaf = multihot_vdaf(*length, *chunk_length, *max_weight)?;
                $body
            }
        }
    }};
}

impl VdafInstance {
    /// Checks the parameters by building the VDAF.
    pub fn validate(&self) -> Result<(), VdafError> {
        with_vdaf!(self, |vdaf| {
            let _ = vdaf.algorithm_id();
            Ok(())
        })
    }

    /// The `VdafType` codepoint (VDAF-18 §10).
    pub fn vdaf_type(&self) -> u32 {
        match self {
            VdafInstance::Prio3Count => 0x0000_0001,
            VdafInstance::Prio3Sum { .. } => 0x0000_0002,
            VdafInstance::Prio3SumVec { .. } => 0x0000_0003,
            VdafInstance::Prio3Histogram { .. } => 0x0000_0004,
            VdafInstance::Prio3MultihotCountVec { .. } => 0x0000_0005,
        }
    }

    /// The encoded configuration (DAP-18 appendix B), bound into `TaskConfiguration`.
    pub fn vdaf_configuration(&self) -> Vec<u8> {
        let mut out = Vec::new();
        match self {
            VdafInstance::Prio3Count => {}
            VdafInstance::Prio3Sum { max_measurement } => {
                out.extend(max_measurement.to_be_bytes());
            }
            VdafInstance::Prio3SumVec {
                length,
                max_measurement,
                chunk_length,
            } => {
                out.extend(length.to_be_bytes());
                out.extend(max_measurement.to_be_bytes());
                out.extend(chunk_length.to_be_bytes());
            }
            VdafInstance::Prio3Histogram {
                length,
                chunk_length,
            } => {
                out.extend(length.to_be_bytes());
                out.extend(chunk_length.to_be_bytes());
            }
            VdafInstance::Prio3MultihotCountVec {
                length,
                chunk_length,
                max_weight,
            } => {
                out.extend(length.to_be_bytes());
                out.extend(chunk_length.to_be_bytes());
                out.extend(max_weight.to_be_bytes());
            }
        }
        out
    }

    /// The VDAF with codepoint `vdaf_type` and encoded configuration `config` (the inverse of
    /// [`Self::vdaf_type`] and [`Self::vdaf_configuration`]); `None` for an unknown codepoint, a
    /// configuration of the wrong length, or parameters the VDAF refuses.
    pub fn from_configuration(vdaf_type: u32, config: &[u8]) -> Option<VdafInstance> {
        let u32_at = |i: usize| -> Option<u32> {
            Some(u32::from_be_bytes(config.get(i..i + 4)?.try_into().ok()?))
        };
        let u64_at = |i: usize| -> Option<u64> {
            Some(u64::from_be_bytes(config.get(i..i + 8)?.try_into().ok()?))
        };
        let (vdaf, len) = match vdaf_type {
            0x0000_0001 => (VdafInstance::Prio3Count, 0),
            0x0000_0002 => (
                VdafInstance::Prio3Sum {
                    max_measurement: u64_at(0)?,
                },
                8,
            ),
            0x0000_0003 => (
                VdafInstance::Prio3SumVec {
                    length: u32_at(0)?,
                    max_measurement: u64_at(4)?,
                    chunk_length: u32_at(12)?,
                },
                16,
            ),
            0x0000_0004 => (
                VdafInstance::Prio3Histogram {
                    length: u32_at(0)?,
                    chunk_length: u32_at(4)?,
                },
                8,
            ),
            0x0000_0005 => (
                VdafInstance::Prio3MultihotCountVec {
                    length: u32_at(0)?,
                    chunk_length: u32_at(4)?,
                    max_weight: u64_at(8)?,
                },
                16,
            ),
            _ => return None,
        };
        (config.len() == len && vdaf.validate().is_ok()).then_some(vdaf)
    }

    /// Whether `agg_param` is valid (`is_valid(agg_param, [])`): Prio3's only parameter is empty.
    pub fn is_agg_param_valid(&self, agg_param: &[u8]) -> bool {
        agg_param.is_empty()
    }

    /// Parses a measurement written as text: `0`/`1`/`true`/`false` (Count), an integer (Sum,
    /// Histogram bucket), or comma-separated integers (SumVec) or bits (MultihotCountVec).
    pub fn parse_measurement(&self, text: &str) -> Result<Measurement, VdafError> {
        let bad = || VdafError::Measurement(format!("cannot parse {text:?}"));
        let int = |s: &str| s.trim().parse::<u64>().map_err(|_| bad());
        let list = |s: &str| s.split(',').map(int).collect::<Result<Vec<_>, _>>();
        match self {
            VdafInstance::Prio3Count => match text.trim() {
                "1" | "true" => Ok(Measurement::Count(true)),
                "0" | "false" => Ok(Measurement::Count(false)),
                _ => Err(bad()),
            },
            VdafInstance::Prio3Sum { .. } | VdafInstance::Prio3Histogram { .. } => {
                Ok(Measurement::Integer(int(text)?))
            }
            VdafInstance::Prio3SumVec { .. } => Ok(Measurement::Vector(list(text)?)),
            VdafInstance::Prio3MultihotCountVec { .. } => Ok(Measurement::Bits(
                list(text)?.into_iter().map(|b| b != 0).collect(),
            )),
        }
    }

    /// Shards `measurement` with `nonce` (the report ID) under `ctx` (`"dap-18" || task_id`).
    pub fn shard(
        &self,
        ctx: &[u8],
        measurement: &Measurement,
        nonce: &[u8; NONCE_LEN],
    ) -> Result<Shards, VdafError> {
        let wrong = || VdafError::Measurement(format!("{measurement:?} for {self:?}"));
        match (self, measurement) {
            (VdafInstance::Prio3Count, Measurement::Count(m)) => {
                shard_with(&count_vdaf()?, ctx, m, nonce)
            }
            (VdafInstance::Prio3Sum { max_measurement }, Measurement::Integer(m)) => {
                shard_with(&sum_vdaf(*max_measurement)?, ctx, m, nonce)
            }
            (
                VdafInstance::Prio3Histogram {
                    length,
                    chunk_length,
                },
                Measurement::Integer(m),
            ) => {
                let m = usize::try_from(*m).map_err(|_| wrong())?;
                shard_with(&histogram_vdaf(*length, *chunk_length)?, ctx, &m, nonce)
            }
            (
                VdafInstance::Prio3SumVec {
                    length,
                    max_measurement,
                    chunk_length,
                },
                Measurement::Vector(v),
            ) => {
                let v: Vec<u128> = v.iter().map(|x| u128::from(*x)).collect();
                let vdaf = sum_vec_vdaf(*length, *max_measurement, *chunk_length)?;
                shard_with(&vdaf, ctx, &v, nonce)
            }
            (
                VdafInstance::Prio3MultihotCountVec {
                    length,
                    chunk_length,
                    max_weight,
                },
                Measurement::Bits(v),
            ) => {
                let vdaf = multihot_vdaf(*length, *chunk_length, *max_weight)?;
                shard_with(&vdaf, ctx, v, nonce)
            }
            _ => Err(wrong()),
        }
    }

    /// The leader's initialization of one report (`ping_pong_leader_init`).
    pub fn leader_initialized(
        &self,
        verify_key: &VerifyKey,
        ctx: &[u8],
        agg_param: &[u8],
        nonce: &[u8; NONCE_LEN],
        public_share: &[u8],
        input_share: &[u8],
    ) -> Result<LeaderContinued, VdafError> {
        with_vdaf!(self, |vdaf| leader_init_with(
            &vdaf,
            verify_key,
            ctx,
            agg_param,
            nonce,
            public_share,
            input_share
        ))
    }

    /// The helper's initialization of one report given the leader's message
    /// (`ping_pong_helper_init`), which for Prio3 yields the output share.
    #[allow(clippy::too_many_arguments)] // mirrors the draft's ping_pong_helper_init
    pub fn helper_initialized(
        &self,
        verify_key: &VerifyKey,
        ctx: &[u8],
        agg_param: &[u8],
        nonce: &[u8; NONCE_LEN],
        public_share: &[u8],
        input_share: &[u8],
        inbound: &[u8],
    ) -> Result<HelperFinished, VdafError> {
        with_vdaf!(self, |vdaf| helper_init_with(
            &vdaf,
            verify_key,
            ctx,
            agg_param,
            nonce,
            public_share,
            input_share,
            inbound
        ))
    }

    /// The leader's step on the helper's message (`ping_pong_leader_continued`); for Prio3 this
    /// yields the output share.
    pub fn leader_continued(
        &self,
        ctx: &[u8],
        agg_param: &[u8],
        state: &[u8],
        inbound: &[u8],
    ) -> Result<Vec<u8>, VdafError> {
        with_vdaf!(self, |vdaf| leader_continued_with(
            &vdaf, ctx, agg_param, state, inbound
        ))
    }

    /// An empty aggregate share (`agg_init`).
    pub fn empty_aggregate_share(&self, agg_param: &[u8]) -> Result<Vec<u8>, VdafError> {
        with_vdaf!(self, |vdaf| {
            vdaf.aggregate_init(&decode_agg_param(&vdaf, agg_param)?)
                .get_encoded()
                .map_err(|_| VdafError::Encode("aggregate share"))
        })
    }

    /// Adds `output_shares` into `aggregate_share` (`agg_update`).
    pub fn accumulate<'a>(
        &self,
        agg_param: &[u8],
        aggregate_share: &[u8],
        output_shares: impl IntoIterator<Item = &'a [u8]>,
    ) -> Result<Vec<u8>, VdafError> {
        with_vdaf!(self, |vdaf| accumulate_with(
            &vdaf,
            agg_param,
            aggregate_share,
            output_shares
        ))
    }

    /// Merges aggregate shares (`merge`).
    pub fn merge<'a>(
        &self,
        agg_param: &[u8],
        aggregate_shares: impl IntoIterator<Item = &'a [u8]>,
    ) -> Result<Vec<u8>, VdafError> {
        with_vdaf!(self, |vdaf| merge_with(&vdaf, agg_param, aggregate_shares))
    }

    /// Checks that this VDAF can apply `dp` (Prio3Histogram and Prio3SumVec only) and that its
    /// budget is valid.
    pub fn validate_dp(&self, dp: &DpStrategy) -> Result<(), VdafError> {
        dp.prio()?;
        match self {
            VdafInstance::Prio3Histogram { .. } | VdafInstance::Prio3SumVec { .. } => Ok(()),
            _ => Err(VdafError::Parameters(
                "differential privacy is offered for Prio3Histogram and Prio3SumVec only".into(),
            )),
        }
    }

    /// `aggregate_share` with fresh noise from `dp` added to every coordinate. A negative noisy
    /// coordinate wraps around the field (see [`AggregateResult::signed`]).
    pub fn add_noise(
        &self,
        dp: &DpStrategy,
        agg_param: &[u8],
        aggregate_share: &[u8],
        report_count: u64,
    ) -> Result<Vec<u8>, VdafError> {
        self.validate_dp(dp)?;
        let strategy = dp.prio()?;
        let n = usize::try_from(report_count).map_err(|_| VdafError::Aggregate)?;
        match self {
            VdafInstance::Prio3Histogram {
                length,
                chunk_length,
            } => noise_with(
                &histogram_vdaf(*length, *chunk_length)?,
                &strategy,
                agg_param,
                aggregate_share,
                n,
            ),
            VdafInstance::Prio3SumVec {
                length,
                max_measurement,
                chunk_length,
            } => noise_with(
                &sum_vec_vdaf(*length, *max_measurement, *chunk_length)?,
                &strategy,
                agg_param,
                aggregate_share,
                n,
            ),
            _ => Err(VdafError::Parameters(
                "differential privacy is offered for Prio3Histogram and Prio3SumVec only".into(),
            )),
        }
    }

    /// The modulus of the field the aggregate lives in (results are reduced modulo it).
    pub fn field_modulus(&self) -> u128 {
        use prio::field::{Field64, Field128, FieldElementWithInteger};
        match self {
            VdafInstance::Prio3Count | VdafInstance::Prio3Sum { .. } => {
                u128::from(Field64::modulus())
            }
            _ => Field128::modulus(),
        }
    }

    /// The aggregate result from both aggregate shares (`unshard`).
    pub fn unshard(
        &self,
        agg_param: &[u8],
        leader_share: &[u8],
        helper_share: &[u8],
        report_count: u64,
    ) -> Result<AggregateResult, VdafError> {
        let n = usize::try_from(report_count).map_err(|_| VdafError::Aggregate)?;
        let (l, h) = (leader_share, helper_share);
        Ok(match self {
            VdafInstance::Prio3Count => {
                AggregateResult::Integer(unshard_with(&count_vdaf()?, agg_param, l, h, n)?)
            }
            VdafInstance::Prio3Sum { max_measurement } => AggregateResult::Integer(unshard_with(
                &sum_vdaf(*max_measurement)?,
                agg_param,
                l,
                h,
                n,
            )?),
            VdafInstance::Prio3SumVec {
                length,
                max_measurement,
                chunk_length,
            } => AggregateResult::Vector(unshard_with(
                &sum_vec_vdaf(*length, *max_measurement, *chunk_length)?,
                agg_param,
                l,
                h,
                n,
            )?),
            VdafInstance::Prio3Histogram {
                length,
                chunk_length,
            } => AggregateResult::Vector(unshard_with(
                &histogram_vdaf(*length, *chunk_length)?,
                agg_param,
                l,
                h,
                n,
            )?),
            VdafInstance::Prio3MultihotCountVec {
                length,
                chunk_length,
                max_weight,
            } => AggregateResult::Vector(unshard_with(
                &multihot_vdaf(*length, *chunk_length, *max_weight)?,
                agg_param,
                l,
                h,
                n,
            )?),
        })
    }
}

fn decode_agg_param<V: Vdaf>(_vdaf: &V, bytes: &[u8]) -> Result<V::AggregationParam, VdafError> {
    V::AggregationParam::get_decoded(bytes).map_err(|_| VdafError::Decode("aggregation parameter"))
}

fn shard_with<V: Client<NONCE_LEN>>(
    vdaf: &V,
    ctx: &[u8],
    measurement: &V::Measurement,
    nonce: &[u8; NONCE_LEN],
) -> Result<Shards, VdafError> {
    let (public_share, input_shares) = vdaf
        .shard(ctx, measurement, nonce)
        .map_err(|e| VdafError::Measurement(e.to_string()))?;
    let enc = |r: Result<Vec<u8>, _>| r.map_err(|_| VdafError::Encode("share"));
    let [leader, helper] = <[V::InputShare; 2]>::try_from(input_shares)
        .map_err(|_| VdafError::Parameters("expected two input shares".into()))?;
    Ok(Shards {
        public_share: enc(public_share.get_encoded())?,
        leader_input_share: enc(leader.get_encoded())?,
        helper_input_share: enc(helper.get_encoded())?,
    })
}

fn decode_shares<V: Aggregator<VERIFY_KEY_LEN, NONCE_LEN>>(
    vdaf: &V,
    agg_id: usize,
    public_share: &[u8],
    input_share: &[u8],
) -> Result<(V::PublicShare, V::InputShare), VdafError> {
    let public = V::PublicShare::get_decoded_with_param(vdaf, public_share)
        .map_err(|_| VdafError::Decode("public share"))?;
    let input = V::InputShare::get_decoded_with_param(&(vdaf, agg_id), input_share)
        .map_err(|_| VdafError::Decode("input share"))?;
    Ok((public, input))
}

fn leader_init_with<V>(
    vdaf: &V,
    verify_key: &VerifyKey,
    ctx: &[u8],
    agg_param: &[u8],
    nonce: &[u8; NONCE_LEN],
    public_share: &[u8],
    input_share: &[u8],
) -> Result<LeaderContinued, VdafError>
where
    V: Aggregator<VERIFY_KEY_LEN, NONCE_LEN>,
    V::VerifyState: Encode,
{
    let param = decode_agg_param(vdaf, agg_param)?;
    let (public, input) = decode_shares(vdaf, 0, public_share, input_share)?;
    let continued = vdaf
        .leader_initialized(verify_key, ctx, &param, nonce, &public, &input)
        .map_err(|_| VdafError::Verify)?;
    Ok(LeaderContinued {
        state: continued
            .verifier_state
            .get_encoded()
            .map_err(|_| VdafError::Encode("verify state"))?,
        outbound: continued
            .message
            .get_encoded()
            .map_err(|_| VdafError::Encode("message"))?,
    })
}

#[allow(clippy::too_many_arguments)] // mirrors the draft's ping_pong_helper_init
fn helper_init_with<V>(
    vdaf: &V,
    verify_key: &VerifyKey,
    ctx: &[u8],
    agg_param: &[u8],
    nonce: &[u8; NONCE_LEN],
    public_share: &[u8],
    input_share: &[u8],
    inbound: &[u8],
) -> Result<HelperFinished, VdafError>
where
    V: Aggregator<VERIFY_KEY_LEN, NONCE_LEN>,
    V::OutputShare: Encode,
{
    let param = decode_agg_param(vdaf, agg_param)?;
    let (public, input) = decode_shares(vdaf, 1, public_share, input_share)?;
    let inbound =
        PingPongMessage::get_decoded(inbound).map_err(|_| VdafError::Decode("message"))?;
    let continuation = vdaf
        .helper_initialized(verify_key, ctx, &param, nonce, &public, &input, &inbound)
        .map_err(|_| VdafError::Verify)?;
    match continuation
        .evaluate(ctx, vdaf)
        .map_err(|_| VdafError::Verify)?
    {
        PingPongState::FinishedWithOutbound {
            output_share,
            message,
        } => Ok(HelperFinished {
            output_share: output_share
                .get_encoded()
                .map_err(|_| VdafError::Encode("output share"))?,
            outbound: message
                .get_encoded()
                .map_err(|_| VdafError::Encode("message"))?,
        }),
        _ => Err(VdafError::UnexpectedState),
    }
}

fn leader_continued_with<V>(
    vdaf: &V,
    ctx: &[u8],
    agg_param: &[u8],
    state: &[u8],
    inbound: &[u8],
) -> Result<Vec<u8>, VdafError>
where
    V: Aggregator<VERIFY_KEY_LEN, NONCE_LEN>,
    V::OutputShare: Encode,
    V::VerifyState: for<'a> ParameterizedDecode<(&'a V, usize)>,
{
    let param = decode_agg_param(vdaf, agg_param)?;
    let state = V::VerifyState::get_decoded_with_param(&(vdaf, 0), state)
        .map_err(|_| VdafError::Decode("verify state"))?;
    let inbound =
        PingPongMessage::get_decoded(inbound).map_err(|_| VdafError::Decode("message"))?;
    let continuation = vdaf
        .leader_continued(ctx, &param, state, &inbound)
        .map_err(|_| VdafError::Verify)?;
    match continuation
        .evaluate(ctx, vdaf)
        .map_err(|_| VdafError::Verify)?
    {
        PingPongState::Finished { output_share } => output_share
            .get_encoded()
            .map_err(|_| VdafError::Encode("output share")),
        _ => Err(VdafError::UnexpectedState),
    }
}

fn accumulate_with<'a, V>(
    vdaf: &V,
    agg_param: &[u8],
    aggregate_share: &[u8],
    output_shares: impl IntoIterator<Item = &'a [u8]>,
) -> Result<Vec<u8>, VdafError>
where
    V: Aggregator<VERIFY_KEY_LEN, NONCE_LEN>,
    V::AggregateShare: Encode + for<'b> ParameterizedDecode<(&'b V, &'b V::AggregationParam)>,
    V::OutputShare: for<'b> ParameterizedDecode<(&'b V, &'b V::AggregationParam)>,
{
    let param = decode_agg_param(vdaf, agg_param)?;
    let mut agg = V::AggregateShare::get_decoded_with_param(&(vdaf, &param), aggregate_share)
        .map_err(|_| VdafError::Decode("aggregate share"))?;
    for out in output_shares {
        let out = V::OutputShare::get_decoded_with_param(&(vdaf, &param), out)
            .map_err(|_| VdafError::Decode("output share"))?;
        agg.accumulate(&out).map_err(|_| VdafError::Aggregate)?;
    }
    agg.get_encoded()
        .map_err(|_| VdafError::Encode("aggregate share"))
}

fn merge_with<'a, V>(
    vdaf: &V,
    agg_param: &[u8],
    aggregate_shares: impl IntoIterator<Item = &'a [u8]>,
) -> Result<Vec<u8>, VdafError>
where
    V: Aggregator<VERIFY_KEY_LEN, NONCE_LEN>,
    V::AggregateShare: Encode + for<'b> ParameterizedDecode<(&'b V, &'b V::AggregationParam)>,
{
    let param = decode_agg_param(vdaf, agg_param)?;
    let mut agg = vdaf.aggregate_init(&param);
    for share in aggregate_shares {
        let share = V::AggregateShare::get_decoded_with_param(&(vdaf, &param), share)
            .map_err(|_| VdafError::Decode("aggregate share"))?;
        agg.merge(&share).map_err(|_| VdafError::Aggregate)?;
    }
    agg.get_encoded()
        .map_err(|_| VdafError::Encode("aggregate share"))
}

fn noise_with<V>(
    vdaf: &V,
    strategy: &PureDpDiscreteLaplace,
    agg_param: &[u8],
    aggregate_share: &[u8],
    report_count: usize,
) -> Result<Vec<u8>, VdafError>
where
    V: AggregatorWithNoise<VERIFY_KEY_LEN, NONCE_LEN, PureDpDiscreteLaplace>,
    V::AggregateShare: Encode + for<'b> ParameterizedDecode<(&'b V, &'b V::AggregationParam)>,
{
    let param = decode_agg_param(vdaf, agg_param)?;
    let mut share = V::AggregateShare::get_decoded_with_param(&(vdaf, &param), aggregate_share)
        .map_err(|_| VdafError::Decode("aggregate share"))?;
    vdaf.add_noise_to_agg_share(strategy, &param, &mut share, report_count)
        .map_err(|_| VdafError::Aggregate)?;
    share
        .get_encoded()
        .map_err(|_| VdafError::Encode("aggregate share"))
}

fn unshard_with<V>(
    vdaf: &V,
    agg_param: &[u8],
    leader_share: &[u8],
    helper_share: &[u8],
    report_count: usize,
) -> Result<V::AggregateResult, VdafError>
where
    V: Collector + Aggregator<VERIFY_KEY_LEN, NONCE_LEN>,
    V::AggregateShare: for<'b> ParameterizedDecode<(&'b V, &'b V::AggregationParam)>,
{
    let param = decode_agg_param(vdaf, agg_param)?;
    let dec = |b: &[u8]| {
        V::AggregateShare::get_decoded_with_param(&(vdaf, &param), b)
            .map_err(|_| VdafError::Decode("aggregate share"))
    };
    vdaf.unshard(
        &param,
        [dec(leader_share)?, dec(helper_share)?],
        report_count,
    )
    .map_err(|_| VdafError::Aggregate)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn every_vdaf_configuration_decodes_to_the_same_vdaf() {
        for v in [
            VdafInstance::Prio3Count,
            VdafInstance::Prio3Sum {
                max_measurement: 1000,
            },
            VdafInstance::Prio3SumVec {
                length: 5,
                max_measurement: 3,
                chunk_length: 2,
            },
            VdafInstance::Prio3Histogram {
                length: 7,
                chunk_length: 3,
            },
            VdafInstance::Prio3MultihotCountVec {
                length: 6,
                chunk_length: 2,
                max_weight: 3,
            },
        ] {
            let config = v.vdaf_configuration();
            assert_eq!(
                VdafInstance::from_configuration(v.vdaf_type(), &config),
                Some(v.clone())
            );
            let mut longer = config.clone();
            longer.push(0);
            assert_eq!(
                VdafInstance::from_configuration(v.vdaf_type(), &longer),
                None
            );
        }
        assert_eq!(VdafInstance::from_configuration(9, &[]), None);
        // Parameters the VDAF refuses: a histogram of no buckets.
        let zero = VdafInstance::Prio3Histogram {
            length: 0,
            chunk_length: 1,
        };
        assert_eq!(
            VdafInstance::from_configuration(4, &zero.vdaf_configuration()),
            None
        );
    }

    const DP: DpStrategy = DpStrategy::PureDpDiscreteLaplace {
        epsilon_numerator: 1,
        epsilon_denominator: 1,
    };

    #[test]
    fn noise_changes_a_histogram_share_and_is_fresh_each_time() {
        let vdaf = VdafInstance::Prio3Histogram {
            length: 16,
            chunk_length: 4,
        };
        let empty = vdaf.empty_aggregate_share(&[]).unwrap();
        let a = vdaf.add_noise(&DP, &[], &empty, 10).unwrap();
        let b = vdaf.add_noise(&DP, &[], &empty, 10).unwrap();
        assert_eq!(a.len(), empty.len());
        // 16 coordinates of scale-2 noise are all zero with probability ~0.25^16.
        assert_ne!(a, empty);
        assert_ne!(a, b);
        // The noisy share still unshards, and reads back as small signed numbers.
        let r = vdaf.unshard(&[], &a, &empty, 10).unwrap();
        assert!(r.signed(&vdaf).iter().all(|x| x.abs() < 60), "{r:?}");
    }

    #[test]
    fn noise_is_refused_for_vdafs_without_a_mechanism() {
        for vdaf in [
            VdafInstance::Prio3Count,
            VdafInstance::Prio3Sum { max_measurement: 9 },
        ] {
            let empty = vdaf.empty_aggregate_share(&[]).unwrap();
            assert!(vdaf.validate_dp(&DP).is_err());
            assert!(vdaf.add_noise(&DP, &[], &empty, 1).is_err());
        }
    }

    #[test]
    fn signed_reads_the_top_half_of_the_field_as_negative() {
        let vdaf = VdafInstance::Prio3Histogram {
            length: 2,
            chunk_length: 1,
        };
        let p = vdaf.field_modulus();
        let r = AggregateResult::Vector(vec![3, p - 2]);
        assert_eq!(r.signed(&vdaf), vec![3, -2]);
    }
}
