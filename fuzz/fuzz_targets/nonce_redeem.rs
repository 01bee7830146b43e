//! Fuzzes nonce redemption (`cairn_acme::nonce`), which reads the `nonce` a client puts in
//! every JWS header: any string must be refused without a panic, a genuine nonce must redeem
//! exactly once, and no input may redeem unless the mint issued it.
#![no_main]

use cairn_acme::nonce::{NonceMint, NoncePrefix};
use libfuzzer_sys::fuzz_target;
use std::time::Duration;

fuzz_target!(|data: &[u8]| {
    let Ok(prefix) = NoncePrefix::new("fuzzfuzz") else {
        return;
    };
    let mint = NonceMint::new(prefix, [7; 32], Duration::from_secs(60), 4);
    let input = String::from_utf8_lossy(data);
    let _ = NoncePrefix::of(&input);
    assert!(mint.redeem(&input, 0).is_err(), "a nonce nobody issued");
    let genuine = mint.issue(0);
    assert!(mint.redeem(&genuine, 1).is_ok());
    assert!(mint.redeem(&genuine, 1).is_err());
    // Whatever the input is (even the genuine nonce, now spent), it does not redeem.
    assert!(mint.redeem(&input, 1).is_err());
});
