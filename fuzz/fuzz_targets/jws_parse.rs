//! Fuzzes ACME request parsing: `ParsedJws::parse`, verification against the embedded key and a
//! fixed key, payload decoding, key change and external account binding. Must never panic.
#![no_main]

use cairn_acme::messages::{Finalize, NewAccount, NewOrder, Revocation};
use cairn_acme::{Jwk, ParsedJws, verify_eab, verify_key_change};
use libfuzzer_sys::fuzz_target;
use std::sync::LazyLock;

/// RFC 7638 §3.1's example RSA key, standing in for an account key.
static ACCOUNT_KEY: LazyLock<Jwk> = LazyLock::new(|| {
    let jwk = serde_json::json!({
        "kty": "RSA",
        "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
        "e": "AQAB",
    });
    Jwk::from_value(&jwk).expect("RFC 7638 example key parses")
});

fuzz_target!(|body: &[u8]| {
    let Ok(jws) = ParsedJws::parse(body) else {
        return;
    };
    let _ = jws.verify_with(&ACCOUNT_KEY);
    if let Some(jwk) = jws.jwk() {
        let _ = jws.verify_with(jwk);
        let _ = jwk.thumbprint();
        if let Ok(new_account) = jws.payload_json::<NewAccount>() {
            if let Some(eab) = &new_account.external_account_binding {
                let _ = verify_eab(eab, jwk, &jws.header.url, |_| Some(b"fuzz".to_vec()));
            }
        }
    }
    let _ = verify_key_change(&jws, &ACCOUNT_KEY);
    let _ = jws.payload_json::<NewOrder>();
    if let Ok(f) = jws.payload_json::<Finalize>() {
        let _ = f.decode_csr();
    }
    if let Ok(r) = jws.payload_json::<Revocation>() {
        let _ = r.decode_certificate();
    }
});
