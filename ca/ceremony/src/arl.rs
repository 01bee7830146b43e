//! `[arl]`: the root's CRL, signed offline and served by `cairn serve` as a file. It covers the
//! CA certificates the root issued (with a distribution point: a critical issuingDistributionPoint
//! saying onlyContainsCACerts). Every revoked certificate must have been issued by this root and
//! be a CA certificate; the signed CRL is decoded and compared with the file before it is
//! linted and written.

use crate::certificate::{issuer_text, load_issuer};
use crate::check::show_time;
use crate::config::{ArlStep, resolve};
use crate::files::{check_new, read_certificate, write_new};
use crate::{CeremonyError, Console};
use cairn_lint::{CrlContext, Severity};
use cairn_pki::{is_signed_by, pem_encode};
use cairn_x509::{CrlEntry, CrlParams};
use der::Decode;
use std::path::Path;
use std::time::Duration;
use x509_cert::crl::CertificateList;

/// BR §4.9.7: a CRL for subordinate CA certificates is valid at most twelve months.
const MAX_ARL_VALIDITY: Duration = Duration::from_secs(365 * 86_400);

fn mismatch(what: impl Into<String>) -> CeremonyError {
    CeremonyError::Mismatch(what.into())
}

/// Runs the step.
pub(crate) fn run(
    step: &ArlStep,
    base: &Path,
    console: &mut Console<'_>,
) -> Result<(), CeremonyError> {
    let output = resolve(base, &step.output);
    check_new(&output)?;
    if step.this_update >= step.next_update
        || step.next_update - step.this_update > MAX_ARL_VALIDITY
    {
        return Err(mismatch(
            "next_update must be after this_update and at most 365 days later (BR §4.9.7)",
        ));
    }
    let root = load_issuer(&step.issuer, base)?;
    let root_info = root.info();
    if root_info.issuer_der != root_info.subject_der {
        return Err(mismatch(
            "the arl step signs a root's CRL; the issuer is not a root",
        ));
    }
    let mut entries: Vec<CrlEntry> = Vec::with_capacity(step.revoked.len());
    let mut lines = Vec::new();
    for revoked in &step.revoked {
        let path = resolve(base, &revoked.certificate);
        let (der, info) = read_certificate(&path)?;
        if info.issuer_der != root_info.subject_der || !is_signed_by(&der, &root_info.spki_der) {
            return Err(mismatch(format!(
                "{} was not issued by this root",
                path.display()
            )));
        }
        if !info.is_ca {
            return Err(mismatch(format!(
                "{} is not a CA certificate; an ARL lists CA certificates only",
                path.display()
            )));
        }
        if revoked.revoked_at > step.this_update {
            return Err(mismatch(format!(
                "{} is revoked after this_update",
                path.display()
            )));
        }
        if entries.iter().any(|e| e.serial == info.serial) {
            return Err(mismatch(format!("{} is listed twice", path.display())));
        }
        lines.push(format!(
            "  revoke:     {} serial {} at {} ({:?})",
            info.common_name.as_deref().unwrap_or("(no CN)"),
            hex::encode(&info.serial),
            show_time(revoked.revoked_at),
            revoked.reason
        ));
        entries.push(CrlEntry {
            serial: info.serial,
            revoked_at: revoked.revoked_at,
            reason: revoked.reason.code(),
        });
    }
    console.line(format_args!(
        "about to sign the ROOT's CRL (ARL):\n  issuer:     {}\n  number:     {}\n  \
         validity:   {} to {}\n  IDP:        {}",
        issuer_text(&root),
        step.number,
        show_time(step.this_update),
        show_time(step.next_update),
        step.distribution_point
            .as_deref()
            .map_or("none".into(), |u| format!(
                "{u} (onlyContainsCACerts, critical)"
            ))
    ))?;
    if lines.is_empty() {
        console.line("  revoke:     nothing")?;
    }
    for line in &lines {
        console.line(line)?;
    }
    let der = cairn_x509::build_crl(
        &root,
        &CrlParams {
            number: step.number,
            this_update: step.this_update,
            next_update: step.next_update,
            distribution_point: step.distribution_point.as_deref(),
            only_ca_certs: true,
            entries: &entries,
        },
    )?;
    check_crl(&der, step, root_info, &entries)?;
    let report = cairn_lint::lint_crl(
        &der,
        &CrlContext {
            max_validity: MAX_ARL_VALIDITY,
            ..CrlContext::default()
        },
    );
    for finding in report.at_least(Severity::Notice) {
        console.line(format_args!("  lint: {finding}"))?;
    }
    if report.has_errors() {
        return Err(CeremonyError::Lint {
            what: "the ARL".into(),
            report,
        });
    }
    write_new(&output, &pem_encode("X509 CRL", &der))?;
    console.line(format_args!(
        "signed, checked against the ceremony file, linted and written to {} ({} revoked)",
        output.display(),
        entries.len()
    ))
}

/// The signed CRL names the root, has the configured dates and exactly the configured serials,
/// and its signature verifies with the root's key.
fn check_crl(
    der: &[u8],
    step: &ArlStep,
    root: &cairn_x509::CertInfo,
    entries: &[CrlEntry],
) -> Result<(), CeremonyError> {
    let crl = CertificateList::<x509_cert::certificate::Rfc5280>::from_der(der)
        .map_err(|e| mismatch(format!("the output does not decode: {e}")))?;
    let tbs = &crl.tbs_cert_list;
    let issuer = der::Encode::to_der(&tbs.issuer).map_err(|e| mismatch(e.to_string()))?;
    if issuer != root.subject_der {
        return Err(mismatch("the output's issuer is not the root"));
    }
    let secs = |t: &x509_cert::time::Time| t.to_unix_duration().as_secs();
    let want = |t: time::OffsetDateTime| u64::try_from(t.unix_timestamp()).unwrap_or(0);
    if secs(&tbs.this_update) != want(step.this_update)
        || tbs.next_update.as_ref().map(secs) != Some(want(step.next_update))
    {
        return Err(mismatch("the output's dates are not the configured ones"));
    }
    let trim = |b: &[u8]| -> Vec<u8> {
        let start = b.iter().position(|x| *x != 0).unwrap_or(b.len());
        b[start..].to_vec()
    };
    let mut found: Vec<Vec<u8>> = tbs
        .revoked_certificates
        .iter()
        .flatten()
        .map(|r| trim(r.serial_number.as_bytes()))
        .collect();
    let mut wanted: Vec<Vec<u8>> = entries.iter().map(|e| trim(&e.serial)).collect();
    found.sort();
    wanted.sort();
    if found != wanted {
        return Err(mismatch(
            "the output does not revoke exactly the configured certificates",
        ));
    }
    if !is_signed_by(der, &root.spki_der) {
        return Err(mismatch(
            "the output's signature does not verify with the root's key",
        ));
    }
    Ok(())
}
