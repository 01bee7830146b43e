//! Fuzzes OCSP request parsing (`cairn_ocsp::parse_request`), the nonce check, and matching the
//! CertID against an issuer; also the response decoder on the same bytes. Must never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|der: &[u8]| {
    if let Ok(req) = cairn_ocsp::parse_request(der) {
        assert!(!req.serial.is_empty());
        assert_eq!(req.serial_hex().len(), 2 * req.serial.len());
        let _ = req.nonce();
        if let Ok(issuer) = cairn_ocsp::IssuerHashes::from_certificate(der) {
            let _ = issuer.matches(&req.cert_id);
        }
    }
    let _ = cairn_ocsp::parse_response(der);
});
