//! Fuzzes CAA record decoding (RFC 8659 §4.1 wire format, as the resolver decodes RDATA) and
//! the issuance decision over the RRset (`cairn_va::check_caa_records`): the input is split into
//! records by a length byte each. Must never panic, and a set that authorizes issuance must
//! still authorize it when a non-critical record with an unknown tag is added.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&flags, mut rest)) = data.split_first() else {
        return;
    };
    let mut records: Vec<&[u8]> = Vec::new();
    while let Some((&len, tail)) = rest.split_first() {
        let len = usize::from(len).min(tail.len());
        records.push(&tail[..len]);
        rest = &tail[len..];
    }
    let ids = ["ca.example".to_string(), "Other-CA.example.".to_string()];
    let wildcard = flags & 1 == 1;
    let verdict = cairn_va::check_caa_records(&records, wildcard, &ids);
    if verdict.is_ok() {
        let mut more = records.clone();
        more.push(b"\x00\x07unknownvalue");
        assert!(cairn_va::check_caa_records(&more, wildcard, &ids).is_ok());
    }
});
