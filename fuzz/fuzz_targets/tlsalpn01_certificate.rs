//! Fuzzes the tls-alpn-01 challenge certificate check (`cairn_va::check_challenge_certificate`,
//! RFC 8737 / RFC 8738) with certificate bytes a validation peer controls, against a DNS and an
//! IP identifier. Must never panic; the detail of a refusal must not echo the certificate.
#![no_main]

use cairn_core::{Identifier, ProblemType};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|der: &[u8]| {
    for id in [
        Identifier::dns("example.com"),
        Identifier::ip("192.0.2.1".parse().expect("an IP address")),
    ] {
        if let Err(p) = cairn_va::check_challenge_certificate(der, &id, "token.thumbprint") {
            assert!(matches!(p.typ, ProblemType::Unauthorized), "{p:?}");
        }
    }
});
