//! Fuzzes Prio3 share decoding in DAP preparation: the leader's and the helper's initialization
//! of one report (`VdafEngine::leader_initialized` / `helper_initialized`) with a public share,
//! an input share and the leader's message taken from the input, for each Prio3 variant, under
//! VDAF-18 (`dap-18` tasks) and VDAF-08 (`dap-09` tasks).
//! Shares come from clients and the peer aggregator; malformed ones must be refused, never
//! panic.
#![no_main]

use cairn_dap_core::vdaf::VdafInstance;
use cairn_dap_core::{Protocol, VdafEngine};
use libfuzzer_sys::fuzz_target;

/// Splits off a length-prefixed (one byte) field.
fn field(data: &mut &[u8]) -> Vec<u8> {
    let Some((&len, rest)) = data.split_first() else {
        return Vec::new();
    };
    let len = usize::from(len).min(rest.len());
    let (head, tail) = rest.split_at(len);
    *data = tail;
    head.to_vec()
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, mut rest)) = data.split_first() else {
        return;
    };
    let vdaf = match which % 5 {
        0 => VdafInstance::Prio3Count,
        1 => VdafInstance::Prio3Sum {
            max_measurement: 255,
        },
        2 => VdafInstance::Prio3SumVec {
            length: 4,
            max_measurement: 3,
            chunk_length: 2,
        },
        3 => VdafInstance::Prio3Histogram {
            length: 4,
            chunk_length: 2,
        },
        _ => VdafInstance::Prio3MultihotCountVec {
            length: 4,
            chunk_length: 2,
            max_weight: 2,
        },
    };
    let protocol = if which / 5 % 2 == 0 {
        Protocol::Dap18
    } else {
        Protocol::Dap09
    };
    let vdaf = VdafEngine::new(vdaf, protocol, b"ctx".to_vec());
    let public_share = field(&mut rest);
    let input_share = field(&mut rest);
    let inbound = rest.to_vec();
    let verify_key = [7u8; cairn_dap_core::vdaf::VERIFY_KEY_LEN];
    let nonce = [1u8; 16];
    let _ = vdaf.leader_initialized(
        &verify_key,
        b"",
        &nonce,
        &public_share,
        &input_share,
    );
    let _ = vdaf.helper_initialized(
        &verify_key,
        b"",
        &nonce,
        &public_share,
        &input_share,
        &inbound,
    );
});
