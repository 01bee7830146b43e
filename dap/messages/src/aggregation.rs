//! The aggregation interaction: `AggregationJobInitReq` (`VerifyInit`s), `AggregationJobResp`
//! (`VerifyResp`s) and `AggregationJobContinueReq`. DAP-18 renamed "prepare" to "verify".

use crate::codec::{CodecError, Decode, Encode, LengthPrefix, Reader, put_items, put_opaque};
use crate::hpke::HpkeCiphertext;
use crate::id::ReportId;
use crate::task::Extension;
use crate::upload::{ReportError, ReportMetadata};

/// `struct { ReportMetadata; opaque public_share<0..2^32-1>; HpkeCiphertext encrypted_input_share; }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportShare {
    /// The report's metadata.
    pub metadata: ReportMetadata,
    /// The report's public share.
    pub public_share: Vec<u8>,
    /// The helper's encrypted input share.
    pub encrypted_input_share: HpkeCiphertext,
}

impl Encode for ReportShare {
    fn encode(&self, out: &mut Vec<u8>) -> Result<(), CodecError> {
        self.metadata.encode(out)?;
        put_opaque(
            out,
            LengthPrefix::U32,
            0,
            &self.public_share,
            "public_share",
        )?;
        self.encrypted_input_share.encode(out)
    }
}

impl Decode for ReportShare {
    fn decode(r: &mut Reader<'_>) -> Result<Self, CodecError> {
        Ok(ReportShare {
            metadata: ReportMetadata::decode(r)?,
            public_share: r.opaque(LengthPrefix::U32, 0, "public_share")?,
            encrypted_input_share: HpkeCiphertext::decode(r)?,
        })
    }
}

/// `struct { ReportShare report_share; opaque payload<1..2^32-1>; } VerifyInit`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyInit {
    /// The helper's share of the report.
    pub report_share: ReportShare,
    /// The leader's first ping-pong message.
    pub payload: Vec<u8>,
}

impl Encode for VerifyInit {
    fn encode(&self, out: &mut Vec<u8>) -> Result<(), CodecError> {
        self.report_share.encode(out)?;
        put_opaque(out, LengthPrefix::U32, 1, &self.payload, "payload")
    }
}

impl Decode for VerifyInit {
    fn decode(r: &mut Reader<'_>) -> Result<Self, CodecError> {
        Ok(VerifyInit {
            report_share: ReportShare::decode(r)?,
            payload: r.opaque(LengthPrefix::U32, 1, "payload")?,
        })
    }
}

/// `AggregationJobInitReq`: the leader's request creating an aggregation job at the helper.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AggregationJobInitReq {
    /// Which prearranged VDAF verification key to use.
    pub verification_key_id: u8,
    /// The VDAF aggregation parameter.
    pub agg_param: Vec<u8>,
    /// Aggregation job extensions, strictly increasing by type.
    pub extensions: Vec<Extension>,
    /// One entry per report, to the end of the message.
    pub verify_inits: Vec<VerifyInit>,
}

impl Encode for AggregationJobInitReq {
    fn encode(&self, out: &mut Vec<u8>) -> Result<(), CodecError> {
        self.verification_key_id.encode(out)?;
        put_opaque(out, LengthPrefix::U32, 0, &self.agg_param, "agg_param")?;
        put_items(out, LengthPrefix::U16, &self.extensions, "extensions")?;
        for v in &self.verify_inits {
            v.encode(out)?;
        }
        Ok(())
    }
}

impl Decode for AggregationJobInitReq {
    fn decode(r: &mut Reader<'_>) -> Result<Self, CodecError> {
        Ok(AggregationJobInitReq {
            verification_key_id: r.u8()?,
            agg_param: r.opaque(LengthPrefix::U32, 0, "agg_param")?,
            extensions: r.items(LengthPrefix::U16)?,
            verify_inits: r.rest()?,
        })
    }
}

/// The body of a `VerifyResp`, by `VerifyRespType`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VerifyStepResult {
    /// `continue(0)` with the next ping-pong message.
    Continue(Vec<u8>),
    /// `finish(1)`.
    Finish,
    /// `reject(2)` with the reason.
    Reject(ReportError),
}

/// `VerifyResp`: the helper's answer for one report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyResp {
    /// The report.
    pub report_id: ReportId,
    /// The outcome.
    pub result: VerifyStepResult,
}

impl Encode for VerifyResp {
    fn encode(&self, out: &mut Vec<u8>) -> Result<(), CodecError> {
        self.report_id.encode(out)?;
        match &self.result {
            VerifyStepResult::Continue(payload) => {
                out.push(0);
                put_opaque(out, LengthPrefix::U32, 1, payload, "payload")
            }
            VerifyStepResult::Finish => {
                out.push(1);
                Ok(())
            }
            VerifyStepResult::Reject(e) => {
                out.push(2);
                e.encode(out)
            }
        }
    }
}

impl Decode for VerifyResp {
    fn decode(r: &mut Reader<'_>) -> Result<Self, CodecError> {
        let report_id = ReportId::decode(r)?;
        let result = match r.u8()? {
            0 => VerifyStepResult::Continue(r.opaque(LengthPrefix::U32, 1, "payload")?),
            1 => VerifyStepResult::Finish,
            2 => VerifyStepResult::Reject(ReportError::decode(r)?),
            v => {
                return Err(CodecError::UnknownValue {
                    field: "VerifyRespType",
                    value: u64::from(v),
                });
            }
        };
        Ok(VerifyResp { report_id, result })
    }
}

/// `struct { VerifyResp verify_resps[message_length]; } AggregationJobResp`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AggregationJobResp {
    /// One per report, in the order of the request.
    pub verify_resps: Vec<VerifyResp>,
}

impl Encode for AggregationJobResp {
    fn encode(&self, out: &mut Vec<u8>) -> Result<(), CodecError> {
        for v in &self.verify_resps {
            v.encode(out)?;
        }
        Ok(())
    }
}

impl Decode for AggregationJobResp {
    fn decode(r: &mut Reader<'_>) -> Result<Self, CodecError> {
        Ok(AggregationJobResp {
            verify_resps: r.rest()?,
        })
    }
}

/// `struct { ReportID report_id; opaque payload<1..2^32-1>; } VerifyContinue`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyContinue {
    /// The report.
    pub report_id: ReportId,
    /// The leader's next ping-pong message.
    pub payload: Vec<u8>,
}

impl Encode for VerifyContinue {
    fn encode(&self, out: &mut Vec<u8>) -> Result<(), CodecError> {
        self.report_id.encode(out)?;
        put_opaque(out, LengthPrefix::U32, 1, &self.payload, "payload")
    }
}

impl Decode for VerifyContinue {
    fn decode(r: &mut Reader<'_>) -> Result<Self, CodecError> {
        Ok(VerifyContinue {
            report_id: ReportId::decode(r)?,
            payload: r.opaque(LengthPrefix::U32, 1, "payload")?,
        })
    }
}

/// `struct { uint16 step; VerifyContinue verify_continues[...]; } AggregationJobContinueReq`
/// (only multi-round VDAFs need it; Prio3 finishes at initialization).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AggregationJobContinueReq {
    /// The step the leader has reached.
    pub step: u16,
    /// One per report still being verified.
    pub verify_continues: Vec<VerifyContinue>,
}

impl Encode for AggregationJobContinueReq {
    fn encode(&self, out: &mut Vec<u8>) -> Result<(), CodecError> {
        self.step.encode(out)?;
        for v in &self.verify_continues {
            v.encode(out)?;
        }
        Ok(())
    }
}

impl Decode for AggregationJobContinueReq {
    fn decode(r: &mut Reader<'_>) -> Result<Self, CodecError> {
        Ok(AggregationJobContinueReq {
            step: r.u16()?,
            verify_continues: r.rest()?,
        })
    }
}
