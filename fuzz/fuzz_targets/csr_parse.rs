//! Fuzzes PKCS#10 CSR parsing and checking (`cairn_x509::parse_csr`) and the identifier list
//! derived from an accepted CSR. Must never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|der: &[u8]| {
    if let Ok(csr) = cairn_x509::parse_csr(der) {
        let ids = csr.identifiers();
        assert!(!ids.is_empty());
        let _ = cairn_x509::KeyAlgorithm::from_spki_der(&csr.spki_der);
        let _ = cairn_x509::spki_jwk_thumbprint(&csr.spki_der);
    }
});
