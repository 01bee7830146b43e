//! Fuzzes the DAP-18 message decoders and the DAP-09 upload, aggregation and collection decoders: the first byte picks a message type, the rest is decoded;
//! a decoded message must re-encode and decode to itself.
#![no_main]

use cairn_dap_messages::{
    AggregateShare, AggregateShareReq, AggregationJobContinueReq, AggregationJobInitReq,
    AggregationJobResp, CollectionJobReq, CollectionJobResp, Decode, Encode, HpkeConfigList,
    InputShareAad, PlaintextInputShare, TaskConfiguration, UploadErrors, UploadRequest, dap09,
};
use libfuzzer_sys::fuzz_target;

fn round_trip<T: Decode + Encode + PartialEq + std::fmt::Debug>(bytes: &[u8]) {
    if let Ok(v) = T::get_decoded(bytes) {
        let again = v.get_encoded().expect("a decoded message encodes");
        assert_eq!(T::get_decoded(&again).expect("re-decodes"), v);
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    match which % 24 {
        0 => round_trip::<UploadRequest>(rest),
        1 => round_trip::<UploadErrors>(rest),
        2 => round_trip::<HpkeConfigList>(rest),
        3 => round_trip::<AggregationJobInitReq>(rest),
        4 => round_trip::<AggregationJobResp>(rest),
        5 => round_trip::<AggregationJobContinueReq>(rest),
        6 => round_trip::<CollectionJobReq>(rest),
        7 => round_trip::<CollectionJobResp>(rest),
        8 => round_trip::<AggregateShareReq>(rest),
        9 => round_trip::<AggregateShare>(rest),
        10 => round_trip::<TaskConfiguration>(rest),
        11 => round_trip::<PlaintextInputShare>(rest),
        12 => round_trip::<InputShareAad>(rest),
        13 => round_trip::<cairn_dap_messages::Report>(rest),
        14 => round_trip::<dap09::Report>(rest),
        15 => round_trip::<dap09::PlaintextInputShare>(rest),
        16 => round_trip::<dap09::InputShareAad>(rest),
        17 => round_trip::<dap09::Query>(rest),
        18 => round_trip::<dap09::CollectionReq>(rest),
        19 => round_trip::<dap09::BatchSelector>(rest),
        20 => round_trip::<dap09::Collection>(rest),
        21 => round_trip::<dap09::AggregationJobInitReq>(rest),
        22 => round_trip::<dap09::AggregationJobResp>(rest),
        _ => round_trip::<dap09::AggregateShareReq>(rest),
    }
});
