//! Nonce issue + redeem (RFC 8555 §6.5) next to the raw operation it wraps: 16 random bytes
//! from aws-lc-rs, base64url-encoded. `cargo bench -p cairn-wfe`.
#![allow(clippy::unwrap_used)] // benchmark set-up

use base64::Engine;
use cairn_wfe::LocalNonces;

fn main() {
    divan::main();
}

/// Cairn: issue a nonce into a store already holding `outstanding` nonces, then redeem it.
#[divan::bench(args = [0, 100_000])]
fn cairn_issue_and_redeem(bencher: divan::Bencher, outstanding: usize) {
    let nonces = LocalNonces::new(
        None,
        cairn_wfe::DEFAULT_LIFETIME,
        cairn_wfe::DEFAULT_CAPACITY,
    );
    for _ in 0..outstanding {
        nonces.mint();
    }
    bencher.bench(|| {
        let n = nonces.mint();
        assert!(nonces.redeem_now(divan::black_box(&n)));
    });
}

/// Raw aws-lc-rs: 16 random bytes, base64url-encoded.
#[divan::bench]
fn raw_random_16_bytes(bencher: divan::Bencher) {
    bencher.bench(|| {
        let mut b = [0u8; 16];
        aws_lc_rs::rand::fill(&mut b).unwrap();
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
    });
}
