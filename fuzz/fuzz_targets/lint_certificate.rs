//! Fuzzes the pre-issuance linter (`cairn_lint::lint_certificate` for every certificate kind,
//! and `lint_crl`) on arbitrary bytes. Must never panic; undecodable input is one fatal finding.
#![no_main]

use cairn_lint::{CrlContext, Kind, LintContext, Severity, lint_certificate, lint_crl};
use libfuzzer_sys::fuzz_target;
use std::time::Duration;

fuzz_target!(|der: &[u8]| {
    let validity = Duration::from_secs(90 * 86_400);
    for kind in [
        Kind::TlsServerLeaf {
            profile_validity: validity,
            max_validity: validity,
        },
        Kind::Precertificate {
            profile_validity: validity,
            max_validity: validity,
        },
        Kind::Intermediate,
        Kind::Root,
        Kind::OcspResponder,
        Kind::CrlSigner,
    ] {
        let report = lint_certificate(der, &LintContext::new(kind));
        if report
            .findings
            .iter()
            .any(|f| f.severity == Severity::Fatal)
        {
            assert_eq!(report.findings.len(), 1);
        }
        let _ = report.to_string();
    }
    let crl = lint_crl(
        der,
        &CrlContext {
            sharded: true,
            ..CrlContext::default()
        },
    );
    let _ = crl.has_errors();
});
