//! Cairn's DAP-09 messages against `janus_messages` 0.7.145, byte for byte: every message a
//! DAP-09 peer exchanges with Cairn — the client's report, the collector's request and the
//! leader's collection, and between aggregators the aggregation job, its response and the
//! aggregate-share request — is encoded by Janus, decoded by Cairn and re-encoded to the same
//! bytes, in both batch modes. (The end-to-end tests show the client and collector messages
//! working; this covers the aggregator-to-aggregator ones, which no Janus binary runs here.)

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure with a location

use cairn_dap_messages::{Decode, Encode, dap09};
use janus_messages::codec::Encode as _;
use janus_messages::query_type::{FixedSize, TimeInterval};
use janus_messages::{
    BatchId, BatchSelector, Duration, HpkeCiphertext, HpkeConfigId, Interval, PartialBatchSelector,
    PrepareError, PrepareInit, PrepareResp, PrepareStepResult, ReportId, ReportIdChecksum,
    ReportMetadata, ReportShare, Time,
};
use prio_vdaf08::topology::ping_pong::PingPongMessage;

/// Decodes `bytes` as Cairn's `T` and checks it re-encodes to the same bytes.
fn same_bytes<T: Decode + Encode + std::fmt::Debug>(bytes: Vec<u8>) -> T {
    let value = T::get_decoded(&bytes).unwrap();
    assert_eq!(value.get_encoded().unwrap(), bytes, "{value:?}");
    value
}

fn ciphertext(id: u8) -> HpkeCiphertext {
    HpkeCiphertext::new(HpkeConfigId::from(id), vec![id; 32], vec![id ^ 0xff; 48])
}

fn report_share(n: u8) -> ReportShare {
    ReportShare::new(
        ReportMetadata::new(
            ReportId::from([n; 16]),
            Time::from_seconds_since_epoch(1_700_000_100 + u64::from(n)),
        ),
        vec![n; 5],
        ciphertext(n),
    )
}

fn interval() -> Interval {
    Interval::new(
        Time::from_seconds_since_epoch(1_700_000_000),
        Duration::from_seconds(3_600),
    )
    .unwrap()
}

#[test]
fn aggregation_jobs_and_their_responses_match_janus() {
    let inits = vec![
        PrepareInit::new(
            report_share(1),
            PingPongMessage::Initialize {
                prep_share: vec![1, 2, 3],
            },
        ),
        PrepareInit::new(
            report_share(2),
            PingPongMessage::Initialize {
                prep_share: vec![4; 40],
            },
        ),
    ];
    let ti = janus_messages::AggregationJobInitializeReq::<TimeInterval>::new(
        Vec::new(),
        PartialBatchSelector::new_time_interval(),
        inits.clone(),
    );
    let req: dap09::AggregationJobInitReq = same_bytes(ti.get_encoded().unwrap());
    assert_eq!(req.batch_id, None);
    assert_eq!(req.prepare_inits.len(), 2);
    assert_eq!(
        req.prepare_inits[1].report_share.metadata.time_seconds,
        1_700_000_102
    );
    let fixed = janus_messages::AggregationJobInitializeReq::<FixedSize>::new(
        vec![7],
        PartialBatchSelector::new_fixed_size(BatchId::from([9; 32])),
        inits,
    );
    let req: dap09::AggregationJobInitReq = same_bytes(fixed.get_encoded().unwrap());
    assert_eq!(req.batch_id.unwrap().as_bytes(), &[9; 32]);
    assert_eq!(req.agg_param, [7]);

    let resp = janus_messages::AggregationJobResp::new(vec![
        PrepareResp::new(
            ReportId::from([1; 16]),
            PrepareStepResult::Continue {
                message: PingPongMessage::Finish {
                    prep_msg: vec![5; 16],
                },
            },
        ),
        PrepareResp::new(ReportId::from([2; 16]), PrepareStepResult::Finished),
        PrepareResp::new(
            ReportId::from([3; 16]),
            PrepareStepResult::Reject(PrepareError::VdafPrepError),
        ),
        PrepareResp::new(
            ReportId::from([4; 16]),
            PrepareStepResult::Reject(PrepareError::ReportTooEarly),
        ),
    ]);
    let resp: dap09::AggregationJobResp = same_bytes(resp.get_encoded().unwrap());
    assert_eq!(
        resp.prepare_resps[2].result,
        dap09::PrepareStepResult::Reject(dap09::prepare_error::VDAF_PREP_ERROR)
    );
    assert_eq!(
        resp.prepare_resps[3].result,
        dap09::PrepareStepResult::Reject(dap09::prepare_error::REPORT_TOO_EARLY)
    );
}

#[test]
fn aggregate_share_requests_match_janus() {
    let ti = janus_messages::AggregateShareReq::<TimeInterval>::new(
        BatchSelector::new_time_interval(interval()),
        Vec::new(),
        12,
        ReportIdChecksum::from([3; 32]),
    );
    let req: dap09::AggregateShareReq = same_bytes(ti.get_encoded().unwrap());
    assert_eq!(req.report_count, 12);
    assert!(matches!(
        req.batch_selector,
        dap09::BatchSelector::TimeInterval { batch_interval } if batch_interval.duration.0 == 3_600
    ));
    let fixed = janus_messages::AggregateShareReq::<FixedSize>::new(
        BatchSelector::new_fixed_size(BatchId::from([8; 32])),
        Vec::new(),
        3,
        ReportIdChecksum::from([1; 32]),
    );
    let req: dap09::AggregateShareReq = same_bytes(fixed.get_encoded().unwrap());
    assert_eq!(
        req.batch_selector,
        dap09::BatchSelector::FixedSize {
            batch_id: cairn_dap_messages::BatchId::from_bytes([8; 32])
        }
    );
    let share = janus_messages::AggregateShare::new(ciphertext(4));
    same_bytes::<cairn_dap_messages::AggregateShare>(share.get_encoded().unwrap());
}

#[test]
fn collection_messages_match_janus() {
    let ti = janus_messages::CollectionReq::<TimeInterval>::new(
        janus_messages::Query::new_time_interval(interval()),
        Vec::new(),
    );
    same_bytes::<dap09::CollectionReq>(ti.get_encoded().unwrap());
    let current = janus_messages::CollectionReq::<FixedSize>::new(
        janus_messages::Query::new_fixed_size(janus_messages::FixedSizeQuery::CurrentBatch),
        Vec::new(),
    );
    let req: dap09::CollectionReq = same_bytes(current.get_encoded().unwrap());
    assert_eq!(req.query, dap09::Query::CurrentBatch);
    let collection = janus_messages::Collection::<FixedSize>::new(
        PartialBatchSelector::new_fixed_size(BatchId::from([6; 32])),
        10,
        interval(),
        ciphertext(1),
        ciphertext(2),
    );
    let c: dap09::Collection = same_bytes(collection.get_encoded().unwrap());
    assert_eq!(c.report_count, 10);
    let report = janus_messages::Report::new(
        ReportMetadata::new(
            ReportId::from([2; 16]),
            Time::from_seconds_since_epoch(1_700_000_000),
        ),
        vec![1, 2],
        ciphertext(1),
        ciphertext(2),
    );
    same_bytes::<dap09::Report>(report.get_encoded().unwrap());
}
