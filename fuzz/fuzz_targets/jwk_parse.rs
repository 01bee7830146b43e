//! Fuzzes JWK parsing; an accepted key must survive a round trip through its canonical form
//! with the same thumbprint, and signature checks on it must not panic.
#![no_main]

use cairn_acme::{Jwk, JwsAlg};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(jwk) = Jwk::from_json(data) else {
        return;
    };
    let again = Jwk::from_value(&jwk.to_value()).expect("canonical form parses");
    assert_eq!(again, jwk);
    assert_eq!(again.thumbprint(), jwk.thumbprint());
    for alg in JwsAlg::ALL {
        let _ = jwk.verify(alg, data, data);
    }
});
