//! Fuzzes CT submission parsing: the add-chain JSON body, chain validation (each element as
//! leaf, issuer and root), and the precertificate TBS surgery. Must never panic.
#![no_main]

use cairn_tlog::chain::{NotAfterWindow, Roots, validate_chain};
use cairn_tlog::precert::tbs_without_poison;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let window = NotAfterWindow {
        start: 0,
        limit: u64::MAX,
    };
    let chains = match cairn_ct::http::parse_add_chain(data) {
        Ok(chain) => vec![chain],
        // Also treat the raw bytes as one DER certificate.
        Err(_) => vec![vec![data.to_vec()]],
    };
    for chain in chains {
        for cert in &chain {
            let _ = tbs_without_poison(cert);
        }
        if let Ok(roots) = Roots::from_der(&chain[chain.len().saturating_sub(1)..]) {
            for precert in [false, true] {
                let _ = validate_chain(&roots, &chain, precert, window);
            }
        }
    }
});
