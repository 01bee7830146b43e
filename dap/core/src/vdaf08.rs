//! VDAF-08 (draft-irtf-cfrg-vdaf-08), the VDAF that DAP-09 tasks run, over `prio` 0.16.8
//! (renamed `prio_vdaf08`): the version `janus_client` 0.7 and `@divviup/dap` 0.9 shard with.
//! The operations mirror [`crate::vdaf`]'s, speaking encoded bytes, so the aggregator calls
//! them through [`crate::VdafEngine`] and never names a `prio` type.
//!
//! What differs from VDAF-18 for Cairn's VDAFs: there is no application context; `Prio3Sum`
//! and `Prio3SumVec` take a bit width instead of a largest measurement (so a DAP-09 task's
//! `max_measurement` must be `2^bits - 1`); `Prio3Sum` lives in `Field128`; the ping-pong
//! topology returns its state and message as a pair. Differential privacy is not offered.

use crate::vdaf::{
    AggregateResult, HelperFinished, LeaderContinued, Measurement, NONCE_LEN, Shards, VdafError,
    VdafInstance, VerifyKey,
};
use prio_vdaf08::codec::{Decode, Encode, ParameterizedDecode};
use prio_vdaf08::topology::ping_pong::{
    PingPongContinuedValue, PingPongMessage, PingPongState, PingPongTopology,
};
use prio_vdaf08::vdaf::prio3::{
    Prio3, Prio3Count, Prio3Histogram, Prio3MultihotCountVec, Prio3Sum, Prio3SumVec,
};
use prio_vdaf08::vdaf::{Aggregatable, Aggregator, Client, Collector, Vdaf};

/// VDAF-08's Prio3 verification key: 16 bytes (TurboSHAKE128's seed). A task stores 32 bytes, as
/// for VDAF-18; a `dap-09` task uses the first 16, the same at both aggregators.
pub const VERIFY_KEY_LEN: usize = 16;

fn short_key(key: &VerifyKey) -> &[u8; VERIFY_KEY_LEN] {
    let (head, _) = key
        .split_first_chunk::<VERIFY_KEY_LEN>()
        .unwrap_or((&[0; VERIFY_KEY_LEN], &[]));
    head
}

fn param_err(e: prio_vdaf08::vdaf::VdafError) -> VdafError {
    VdafError::Parameters(e.to_string())
}

fn usize_of(v: impl TryInto<usize>, what: &str) -> Result<usize, VdafError> {
    v.try_into()
        .map_err(|_| VdafError::Parameters(format!("{what} too large")))
}

/// The bit width whose largest value is `max_measurement` (`2^bits - 1`), as VDAF-08's
/// `Prio3Sum` and `Prio3SumVec` are parameterized.
pub fn bits_for(max_measurement: u64) -> Result<usize, VdafError> {
    let next = u128::from(max_measurement) + 1;
    if max_measurement == 0 || !next.is_power_of_two() {
        return Err(VdafError::Parameters(format!(
            "a dap-09 task's max_measurement must be 2^bits - 1 (VDAF-08 sums bits), not {max_measurement}"
        )));
    }
    usize_of(next.trailing_zeros(), "bits")
}

fn count() -> Result<Prio3Count, VdafError> {
    Prio3::new_count(2).map_err(param_err)
}

fn sum(max_measurement: u64) -> Result<Prio3Sum, VdafError> {
    Prio3::new_sum(2, bits_for(max_measurement)?).map_err(param_err)
}

fn sum_vec(length: u32, max_measurement: u64, chunk_length: u32) -> Result<Prio3SumVec, VdafError> {
    Prio3::new_sum_vec(
        2,
        bits_for(max_measurement)?,
        usize_of(length, "length")?,
        usize_of(chunk_length, "chunk_length")?,
    )
    .map_err(param_err)
}

fn histogram(length: u32, chunk_length: u32) -> Result<Prio3Histogram, VdafError> {
    Prio3::new_histogram(
        2,
        usize_of(length, "length")?,
        usize_of(chunk_length, "chunk_length")?,
    )
    .map_err(param_err)
}

fn multihot(
    length: u32,
    chunk_length: u32,
    max_weight: u64,
) -> Result<Prio3MultihotCountVec, VdafError> {
    Prio3::new_multihot_count_vec(
        2,
        usize_of(length, "length")?,
        usize_of(max_weight, "max_weight")?,
        usize_of(chunk_length, "chunk_length")?,
    )
    .map_err(param_err)
}

/// Runs `$body` with `$vdaf` bound to the VDAF-08 instance for `$inst`.
macro_rules! with_vdaf08 {
    ($inst:expr, |$vdaf:ident| $body:expr) => {{
        match $inst {
            VdafInstance::Prio3Count => {
                let $vdaf = count()?;
                $body
            }
            VdafInstance::Prio3Sum { max_measurement } => {
                let $vdaf = sum(*max_measurement)?;
                $body
            }
            VdafInstance::Prio3SumVec {
                length,
                max_measurement,
                chunk_length,
            } => {
                let $vdaf = sum_vec(*length, *max_measurement, *chunk_length)?;
                $body
            }
            VdafInstance::Prio3Histogram {
                length,
                chunk_length,
            } => {
                let $vdaf = histogram(*length, *chunk_length)?;
                $body
            }
            VdafInstance::Prio3MultihotCountVec {
                length,
                chunk_length,
                max_weight,
            } => {
                let $vdaf = multihot(*length, *chunk_length, *max_weight)?;
                $body
            }
        }
    }};
}
/// Checks that VDAF-08 can run `vdaf` by building it.
pub fn validate(vdaf: &VdafInstance) -> Result<(), VdafError> {
    with_vdaf08!(vdaf, |v| {
        let _ = v;
        Ok(())
    })
}

/// Shards `measurement` with `nonce` (the report ID).
pub fn shard(
    vdaf: &VdafInstance,
    measurement: &Measurement,
    nonce: &[u8; NONCE_LEN],
) -> Result<Shards, VdafError> {
    let wrong = || VdafError::Measurement(format!("{measurement:?} for {vdaf:?}"));
    match (vdaf, measurement) {
        (VdafInstance::Prio3Count, Measurement::Count(m)) => shard_with(&count()?, m, nonce),
        (VdafInstance::Prio3Sum { max_measurement }, Measurement::Integer(m)) => {
            shard_with(&sum(*max_measurement)?, &u128::from(*m), nonce)
        }
        (
            VdafInstance::Prio3Histogram {
                length,
                chunk_length,
            },
            Measurement::Integer(m),
        ) => {
            let m = usize::try_from(*m).map_err(|_| wrong())?;
            shard_with(&histogram(*length, *chunk_length)?, &m, nonce)
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
            shard_with(
                &sum_vec(*length, *max_measurement, *chunk_length)?,
                &v,
                nonce,
            )
        }
        (
            VdafInstance::Prio3MultihotCountVec {
                length,
                chunk_length,
                max_weight,
            },
            Measurement::Bits(v),
        ) => shard_with(&multihot(*length, *chunk_length, *max_weight)?, v, nonce),
        _ => Err(wrong()),
    }
}

/// The leader's initialization of one report (`ping_pong_leader_init`).
pub fn leader_initialized(
    vdaf: &VdafInstance,
    verify_key: &VerifyKey,
    agg_param: &[u8],
    nonce: &[u8; NONCE_LEN],
    public_share: &[u8],
    input_share: &[u8],
) -> Result<LeaderContinued, VdafError> {
    with_vdaf08!(vdaf, |v| leader_init_with(
        &v,
        short_key(verify_key),
        agg_param,
        nonce,
        public_share,
        input_share
    ))
}

/// The helper's initialization given the leader's message; Prio3 finishes here.
pub fn helper_initialized(
    vdaf: &VdafInstance,
    verify_key: &VerifyKey,
    agg_param: &[u8],
    nonce: &[u8; NONCE_LEN],
    public_share: &[u8],
    input_share: &[u8],
    inbound: &[u8],
) -> Result<HelperFinished, VdafError> {
    with_vdaf08!(vdaf, |v| helper_init_with(
        &v,
        short_key(verify_key),
        agg_param,
        nonce,
        public_share,
        input_share,
        inbound
    ))
}

/// The leader's step on the helper's message; Prio3 yields the output share.
pub fn leader_continued(
    vdaf: &VdafInstance,
    agg_param: &[u8],
    state: &[u8],
    inbound: &[u8],
) -> Result<Vec<u8>, VdafError> {
    with_vdaf08!(vdaf, |v| leader_continued_with(
        &v, agg_param, state, inbound
    ))
}

/// An empty aggregate share.
pub fn empty_aggregate_share(vdaf: &VdafInstance, agg_param: &[u8]) -> Result<Vec<u8>, VdafError> {
    with_vdaf08!(vdaf, |v| merge_with(&v, agg_param, []))
}

/// Adds `output_shares` into `aggregate_share`.
pub fn accumulate<'a>(
    vdaf: &VdafInstance,
    agg_param: &[u8],
    aggregate_share: &[u8],
    output_shares: impl IntoIterator<Item = &'a [u8]>,
) -> Result<Vec<u8>, VdafError> {
    with_vdaf08!(vdaf, |v| accumulate_with(
        &v,
        agg_param,
        aggregate_share,
        output_shares
    ))
}

/// Merges aggregate shares (none: an empty aggregate share).
pub fn merge<'a>(
    vdaf: &VdafInstance,
    agg_param: &[u8],
    aggregate_shares: impl IntoIterator<Item = &'a [u8]>,
) -> Result<Vec<u8>, VdafError> {
    with_vdaf08!(vdaf, |v| merge_with(&v, agg_param, aggregate_shares))
}

fn accumulate_with<'a, V: Aggregator<VERIFY_KEY_LEN, NONCE_LEN>>(
    vdaf: &V,
    agg_param: &[u8],
    aggregate_share: &[u8],
    output_shares: impl IntoIterator<Item = &'a [u8]>,
) -> Result<Vec<u8>, VdafError> {
    let param = decode_agg_param(vdaf, agg_param)?;
    let mut agg = decode_aggregate_share(vdaf, &param, aggregate_share)?;
    for out in output_shares {
        let out = V::OutputShare::get_decoded_with_param(&(vdaf, &param), out)
            .map_err(|_| VdafError::Decode("output share"))?;
        agg.accumulate(&out).map_err(|_| VdafError::Aggregate)?;
    }
    agg.get_encoded()
        .map_err(|_| VdafError::Encode("aggregate share"))
}

fn merge_with<'a, V: Aggregator<VERIFY_KEY_LEN, NONCE_LEN>>(
    vdaf: &V,
    agg_param: &[u8],
    aggregate_shares: impl IntoIterator<Item = &'a [u8]>,
) -> Result<Vec<u8>, VdafError> {
    let param = decode_agg_param(vdaf, agg_param)?;
    let mut agg = vdaf
        .aggregate(&param, std::iter::empty())
        .map_err(|_| VdafError::Aggregate)?;
    for share in aggregate_shares {
        let share = decode_aggregate_share(vdaf, &param, share)?;
        agg.merge(&share).map_err(|_| VdafError::Aggregate)?;
    }
    agg.get_encoded()
        .map_err(|_| VdafError::Encode("aggregate share"))
}

/// The aggregate result from both aggregate shares.
pub fn unshard(
    vdaf: &VdafInstance,
    agg_param: &[u8],
    leader_share: &[u8],
    helper_share: &[u8],
    report_count: u64,
) -> Result<AggregateResult, VdafError> {
    let n = usize::try_from(report_count).map_err(|_| VdafError::Aggregate)?;
    let (l, h) = (leader_share, helper_share);
    Ok(match vdaf {
        VdafInstance::Prio3Count => {
            AggregateResult::Integer(unshard_with(&count()?, agg_param, l, h, n)?)
        }
        VdafInstance::Prio3Sum { max_measurement } => {
            let total = unshard_with(&sum(*max_measurement)?, agg_param, l, h, n)?;
            AggregateResult::Integer(u64::try_from(total).map_err(|_| VdafError::Aggregate)?)
        }
        VdafInstance::Prio3SumVec {
            length,
            max_measurement,
            chunk_length,
        } => AggregateResult::Vector(unshard_with(
            &sum_vec(*length, *max_measurement, *chunk_length)?,
            agg_param,
            l,
            h,
            n,
        )?),
        VdafInstance::Prio3Histogram {
            length,
            chunk_length,
        } => AggregateResult::Vector(unshard_with(
            &histogram(*length, *chunk_length)?,
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
            &multihot(*length, *chunk_length, *max_weight)?,
            agg_param,
            l,
            h,
            n,
        )?),
    })
}

fn decode_agg_param<V: Vdaf>(_vdaf: &V, bytes: &[u8]) -> Result<V::AggregationParam, VdafError> {
    V::AggregationParam::get_decoded(bytes).map_err(|_| VdafError::Decode("aggregation parameter"))
}

fn decode_aggregate_share<V: Aggregator<VERIFY_KEY_LEN, NONCE_LEN>>(
    vdaf: &V,
    param: &V::AggregationParam,
    bytes: &[u8],
) -> Result<V::AggregateShare, VdafError> {
    V::AggregateShare::get_decoded_with_param(&(vdaf, param), bytes)
        .map_err(|_| VdafError::Decode("aggregate share"))
}

fn shard_with<V: Client<NONCE_LEN>>(
    vdaf: &V,
    measurement: &V::Measurement,
    nonce: &[u8; NONCE_LEN],
) -> Result<Shards, VdafError> {
    let (public_share, input_shares) = vdaf
        .shard(measurement, nonce)
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
    verify_key: &[u8; VERIFY_KEY_LEN],
    agg_param: &[u8],
    nonce: &[u8; NONCE_LEN],
    public_share: &[u8],
    input_share: &[u8],
) -> Result<LeaderContinued, VdafError>
where
    V: Aggregator<VERIFY_KEY_LEN, NONCE_LEN>,
    V::PrepareState: Encode,
{
    let param = decode_agg_param(vdaf, agg_param)?;
    let (public, input) = decode_shares(vdaf, 0, public_share, input_share)?;
    let (state, message) = vdaf
        .leader_initialized(verify_key, &param, nonce, &public, &input)
        .map_err(|_| VdafError::Verify)?;
    let PingPongState::Continued(state) = state else {
        return Err(VdafError::UnexpectedState);
    };
    Ok(LeaderContinued {
        state: state
            .get_encoded()
            .map_err(|_| VdafError::Encode("verify state"))?,
        outbound: message
            .get_encoded()
            .map_err(|_| VdafError::Encode("message"))?,
    })
}

fn helper_init_with<V>(
    vdaf: &V,
    verify_key: &[u8; VERIFY_KEY_LEN],
    agg_param: &[u8],
    nonce: &[u8; NONCE_LEN],
    public_share: &[u8],
    input_share: &[u8],
    inbound: &[u8],
) -> Result<HelperFinished, VdafError>
where
    V: Aggregator<VERIFY_KEY_LEN, NONCE_LEN>,
{
    let param = decode_agg_param(vdaf, agg_param)?;
    let (public, input) = decode_shares(vdaf, 1, public_share, input_share)?;
    let inbound =
        PingPongMessage::get_decoded(inbound).map_err(|_| VdafError::Decode("message"))?;
    let transition = vdaf
        .helper_initialized(verify_key, &param, nonce, &public, &input, &inbound)
        .map_err(|_| VdafError::Verify)?;
    match transition.evaluate(vdaf).map_err(|_| VdafError::Verify)? {
        (PingPongState::Finished(output_share), message) => Ok(HelperFinished {
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
    agg_param: &[u8],
    state: &[u8],
    inbound: &[u8],
) -> Result<Vec<u8>, VdafError>
where
    V: Aggregator<VERIFY_KEY_LEN, NONCE_LEN>,
    V::PrepareState: for<'a> ParameterizedDecode<(&'a V, usize)>,
{
    let param = decode_agg_param(vdaf, agg_param)?;
    let state = V::PrepareState::get_decoded_with_param(&(vdaf, 0), state)
        .map_err(|_| VdafError::Decode("verify state"))?;
    let inbound =
        PingPongMessage::get_decoded(inbound).map_err(|_| VdafError::Decode("message"))?;
    match vdaf
        .leader_continued(PingPongState::Continued(state), &param, &inbound)
        .map_err(|_| VdafError::Verify)?
    {
        PingPongContinuedValue::FinishedNoMessage { output_share } => output_share
            .get_encoded()
            .map_err(|_| VdafError::Encode("output share")),
        PingPongContinuedValue::WithMessage { .. } => Err(VdafError::UnexpectedState),
    }
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
{
    let param = decode_agg_param(vdaf, agg_param)?;
    vdaf.unshard(
        &param,
        [
            decode_aggregate_share(vdaf, &param, leader_share)?,
            decode_aggregate_share(vdaf, &param, helper_share)?,
        ],
        report_count,
    )
    .map_err(|_| VdafError::Aggregate)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(vdaf: &VdafInstance, measurements: &[Measurement]) -> AggregateResult {
        let key = [7u8; crate::vdaf::VERIFY_KEY_LEN];
        let mut leader = empty_aggregate_share(vdaf, &[]).unwrap();
        let mut helper = empty_aggregate_share(vdaf, &[]).unwrap();
        for (i, m) in measurements.iter().enumerate() {
            let nonce = [u8::try_from(i).unwrap(); NONCE_LEN];
            let s = shard(vdaf, m, &nonce).unwrap();
            let l = leader_initialized(
                vdaf,
                &key,
                &[],
                &nonce,
                &s.public_share,
                &s.leader_input_share,
            )
            .unwrap();
            let h = helper_initialized(
                vdaf,
                &key,
                &[],
                &nonce,
                &s.public_share,
                &s.helper_input_share,
                &l.outbound,
            )
            .unwrap();
            let out = leader_continued(vdaf, &[], &l.state, &h.outbound).unwrap();
            leader = accumulate(vdaf, &[], &leader, [out.as_slice()]).unwrap();
            helper = accumulate(vdaf, &[], &helper, [h.output_share.as_slice()]).unwrap();
        }
        let helper = merge(vdaf, &[], [helper.as_slice()]).unwrap();
        let n = u64::try_from(measurements.len()).unwrap();
        unshard(vdaf, &[], &leader, &helper, n).unwrap()
    }

    #[test]
    fn every_vdaf_runs_to_the_plain_sum() {
        assert_eq!(
            run(
                &VdafInstance::Prio3Count,
                &[Measurement::Count(true), Measurement::Count(false)]
            ),
            AggregateResult::Integer(1)
        );
        assert_eq!(
            run(
                &VdafInstance::Prio3Sum {
                    max_measurement: 255
                },
                &[Measurement::Integer(200), Measurement::Integer(55)]
            ),
            AggregateResult::Integer(255)
        );
        assert_eq!(
            run(
                &VdafInstance::Prio3SumVec {
                    length: 3,
                    max_measurement: 15,
                    chunk_length: 2
                },
                &[
                    Measurement::Vector(vec![1, 2, 15]),
                    Measurement::Vector(vec![3, 0, 1])
                ]
            ),
            AggregateResult::Vector(vec![4, 2, 16])
        );
        assert_eq!(
            run(
                &VdafInstance::Prio3Histogram {
                    length: 4,
                    chunk_length: 2
                },
                &[
                    Measurement::Integer(1),
                    Measurement::Integer(3),
                    Measurement::Integer(1)
                ]
            ),
            AggregateResult::Vector(vec![0, 2, 0, 1])
        );
        assert_eq!(
            run(
                &VdafInstance::Prio3MultihotCountVec {
                    length: 3,
                    chunk_length: 2,
                    max_weight: 2
                },
                &[
                    Measurement::Bits(vec![true, false, true]),
                    Measurement::Bits(vec![true, true, false])
                ]
            ),
            AggregateResult::Vector(vec![2, 1, 1])
        );
    }

    #[test]
    fn sums_need_a_power_of_two_bound() {
        assert_eq!(bits_for(1).unwrap(), 1);
        assert_eq!(bits_for(255).unwrap(), 8);
        assert_eq!(bits_for(u64::MAX).unwrap(), 64);
        assert!(bits_for(0).is_err());
        assert!(bits_for(100).is_err());
        assert!(
            validate(&VdafInstance::Prio3Sum {
                max_measurement: 100
            })
            .is_err()
        );
        assert!(
            validate(&VdafInstance::Prio3Sum {
                max_measurement: 127
            })
            .is_ok()
        );
    }

    #[test]
    fn a_tampered_share_fails_verification() {
        let vdaf = VdafInstance::Prio3Count;
        let key = [1u8; crate::vdaf::VERIFY_KEY_LEN];
        let nonce = [3u8; NONCE_LEN];
        let s = shard(&vdaf, &Measurement::Count(true), &nonce).unwrap();
        let l = leader_initialized(
            &vdaf,
            &key,
            &[],
            &nonce,
            &s.public_share,
            &s.leader_input_share,
        )
        .unwrap();
        // The helper under another verification key disagrees with the leader.
        let h = helper_initialized(
            &vdaf,
            &[2u8; crate::vdaf::VERIFY_KEY_LEN],
            &[],
            &nonce,
            &s.public_share,
            &s.helper_input_share,
            &l.outbound,
        );
        assert!(matches!(h, Err(VdafError::Verify)));
    }
}
