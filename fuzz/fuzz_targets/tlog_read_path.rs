//! Fuzzes what `cairn ct verify` (and a witness) reads from a log it doesn't trust: signed
//! notes and their signature lines, checkpoint bodies, verifier keys, tile paths and data
//! tiles. Must never panic.
#![no_main]

use cairn_tlog::checkpoint::Checkpoint;
use cairn_tlog::entry::parse_data_tile;
use cairn_tlog::note::{parse_note, parse_vkey};
use cairn_tlog::tile::Tile;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = parse_data_tile(data);
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok((body, _signatures)) = parse_note(text) {
            let _ = Checkpoint::parse_body(body);
        }
        let _ = Checkpoint::parse_body(text);
        let _ = parse_vkey(text);
        let _ = Tile::parse(text);
    }
});
