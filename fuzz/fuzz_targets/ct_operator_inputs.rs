//! Fuzzes what the CT log reads back at start-up from files and buckets it does not fully
//! control: the CCADB CSV the operator downloaded (CSV parser and root extraction) and the
//! staging bundles in object storage; and the
//! add-checkpoint requests a witness receives from anyone. Must never panic.
#![no_main]

use cairn_ct::roots::{ccadb_roots, parse_csv};
use cairn_ct::s3::{decode_bundle, encode_bundle};
use cairn_ct::witness::parse_request;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some(files) = decode_bundle(data) {
        // Whatever decodes re-encodes to the same bytes.
        assert_eq!(encode_bundle(&files).ok().as_deref(), Some(data));
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = parse_csv(text);
        let _ = ccadb_roots(text);
        let _ = parse_request(text);
    }
});
