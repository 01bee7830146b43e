//! The certificate steps: `[root]`, `[intermediate]` (and cross-signing), `[ocsp_signer]` and
//! `[crl_signer]`. Each loads its signing key from the HSM, prints what it will sign, signs,
//! checks and lints the result ([`crate::check`]) and writes it to a new PEM file.

use crate::check::{self, Expected, show_key, show_name, show_time};
use crate::config::{DelegatedStep, IntermediateStep, Issuer, RootStep, Subject, resolve};
use crate::files::{check_new, read_certificate, read_subject_key, write_new};
use crate::{CeremonyError, Console, open_hsm_key};
use cairn_lint::{Kind, Linter};
use cairn_pki::pem_encode;
use cairn_x509::{BuildError, CaCertificate, CaExtras, CertInfo, SigningKey};
use std::path::Path;
use time::OffsetDateTime;

/// `[root]`.
pub(crate) fn root(
    step: &RootStep,
    base: &Path,
    console: &mut Console<'_>,
) -> Result<(), CeremonyError> {
    step.key.validate()?;
    let output = resolve(base, &step.output);
    check_new(&output)?;
    check::validity_fits(step.not_before, step.not_after, None)?;
    let key = open_hsm_key(&step.key)?;
    if key.algorithm() != step.key_algorithm {
        return Err(CeremonyError::Mismatch(format!(
            "the key on the token is {}, the ceremony file says {}",
            key.algorithm(),
            step.key_algorithm
        )));
    }
    preview(
        console,
        "a self-signed ROOT",
        &step.subject,
        "(itself)",
        key.spki_der(),
        (step.not_before, step.not_after),
        "cA, keyUsage keyCertSign cRLSign (critical), SKI, no extKeyUsage",
    )?;
    let build = |key: &SigningKey| {
        cairn_x509::build_root_with(
            key,
            &step.subject.common_name,
            step.subject.organization.as_deref(),
            &CaExtras {
                country: step.subject.country.as_deref(),
                ..CaExtras::default()
            },
            step.not_before,
            step.not_after,
        )
    };
    let throwaway = SigningKey::generate(step.key_algorithm)?;
    check::prelint(&build(&throwaway)?, Kind::Root)?;
    let der = build(&key)?;
    let subject_der = CertInfo::from_der(&der)
        .map_err(|e| CeremonyError::Mismatch(format!("the output does not parse: {e}")))?
        .subject_der;
    let expected = Expected {
        kind: Kind::Root,
        subject: &step.subject,
        issuer_der: &subject_der,
        issuer_spki: key.spki_der(),
        spki: key.spki_der(),
        not_before: step.not_before,
        not_after: step.not_after,
    };
    finish(&der, &expected, &output, console)
}

/// `[intermediate]`.
pub(crate) fn intermediate(
    step: &IntermediateStep,
    base: &Path,
    console: &mut Console<'_>,
) -> Result<(), CeremonyError> {
    let output = resolve(base, &step.output);
    check_new(&output)?;
    let spki = read_subject_key(&step.subject_key, base)?;
    let issuer = load_issuer(&step.issuer, base)?;
    check::validity_fits(step.not_before, step.not_after, Some(issuer.info()))?;
    let mut profile = "cA pathLen 0, keyUsage digitalSignature keyCertSign cRLSign (critical), \
                       extKeyUsage serverAuth clientAuth, domain-validated policy, SKI, AKI"
        .to_string();
    if let Some(url) = &step.crl_url {
        profile.push_str(&format!(", CRL DP {url}"));
    }
    if let Some(url) = &step.issuer_url {
        profile.push_str(&format!(", caIssuers {url}"));
    }
    preview(
        console,
        "an INTERMEDIATE",
        &step.subject,
        &issuer_text(&issuer),
        &spki,
        (step.not_before, step.not_after),
        &profile,
    )?;
    let build = |issuer: &CaCertificate| {
        cairn_x509::build_intermediate_with(
            issuer,
            &spki,
            &step.subject.common_name,
            step.subject.organization.as_deref(),
            &CaExtras {
                country: step.subject.country.as_deref(),
                crl_url: step.crl_url.as_deref(),
                issuer_url: step.issuer_url.as_deref(),
            },
            step.not_before,
            step.not_after,
        )
    };
    check::prelint(&build(stand_in(&issuer)?.stand_in())?, Kind::Intermediate)?;
    let der = build(&issuer)?;
    let expected = Expected {
        kind: Kind::Intermediate,
        subject: &step.subject,
        issuer_der: &issuer.info().subject_der,
        issuer_spki: &issuer.info().spki_der,
        spki: &spki,
        not_before: step.not_before,
        not_after: step.not_after,
    };
    finish(&der, &expected, &output, console)
}

/// `[ocsp_signer]` (`ocsp`) or `[crl_signer]`.
pub(crate) fn delegated(
    step: &DelegatedStep,
    ocsp: bool,
    base: &Path,
    console: &mut Console<'_>,
) -> Result<(), CeremonyError> {
    let output = resolve(base, &step.output);
    check_new(&output)?;
    let spki = read_subject_key(&step.subject_key, base)?;
    let issuer = load_issuer(&step.issuer, base)?;
    check::validity_fits(step.not_before, step.not_after, Some(issuer.info()))?;
    let subject = Subject {
        common_name: step.common_name.clone(),
        organization: None,
        country: None,
    };
    let (what, kind, profile) = if ocsp {
        (
            "a delegated OCSP RESPONDER",
            Kind::OcspResponder,
            "not a CA, keyUsage digitalSignature (critical), extKeyUsage OCSPSigning, \
             ocsp-nocheck, SKI, AKI",
        )
    } else {
        (
            "a delegated CRL SIGNER",
            Kind::CrlSigner,
            "not a CA, keyUsage cRLSign (critical), SKI, AKI",
        )
    };
    preview(
        console,
        what,
        &subject,
        &issuer_text(&issuer),
        &spki,
        (step.not_before, step.not_after),
        profile,
    )?;
    let build = if ocsp {
        cairn_x509::build_ocsp_responder
    } else {
        cairn_x509::build_crl_signer
    };
    let copy = build(
        stand_in(&issuer)?.stand_in(),
        &spki,
        &step.common_name,
        step.not_before,
        step.not_after,
    )?;
    check::prelint(&copy, kind)?;
    let der = build(
        &issuer,
        &spki,
        &step.common_name,
        step.not_before,
        step.not_after,
    )?;
    let expected = Expected {
        kind,
        subject: &subject,
        issuer_der: &issuer.info().subject_der,
        issuer_spki: &issuer.info().spki_der,
        spki: &spki,
        not_before: step.not_before,
        not_after: step.not_after,
    };
    finish(&der, &expected, &output, console)
}

/// The issuing CA: its certificate paired with its HSM key, refused unless the key is the
/// certificate's and the certificate is a CA.
pub(crate) fn load_issuer(issuer: &Issuer, base: &Path) -> Result<CaCertificate, CeremonyError> {
    let path = resolve(base, &issuer.certificate);
    let (der, _) = read_certificate(&path)?;
    let key = open_hsm_key(&issuer.key)?;
    CaCertificate::new(der, key).map_err(|e| match e {
        BuildError::KeyMismatch => CeremonyError::Mismatch(format!(
            "the HSM key is not the key of the issuer certificate {}",
            path.display()
        )),
        BuildError::IssuerNotCa => CeremonyError::Mismatch(format!(
            "the issuer certificate {} is not a CA",
            path.display()
        )),
        other => CeremonyError::Input {
            path: path.display().to_string(),
            error: other.to_string(),
        },
    })
}

/// The real issuer's name and key identifier with a throwaway key, to build the copy that is
/// linted before the HSM signs.
fn stand_in(issuer: &CaCertificate) -> Result<Linter, CeremonyError> {
    Linter::new(issuer)
        .map_err(|e| CeremonyError::Mismatch(format!("cannot lint before signing: {e}")))
}

/// `CN=… (pkcs11:…)`: the issuer as the console shows it.
pub(crate) fn issuer_text(issuer: &CaCertificate) -> String {
    format!(
        "{} ({})",
        show_name(&issuer.info().subject_der),
        issuer
            .key()
            .external_description()
            .unwrap_or_else(|| "in-memory key".into())
    )
}

/// Prints what is about to be signed.
fn preview(
    console: &mut Console<'_>,
    what: &str,
    subject: &Subject,
    issuer: &str,
    spki: &[u8],
    (not_before, not_after): (OffsetDateTime, OffsetDateTime),
    profile: &str,
) -> Result<(), CeremonyError> {
    let mut name = format!("CN={}", subject.common_name);
    if let Some(o) = &subject.organization {
        name.push_str(&format!(",O={o}"));
    }
    if let Some(c) = &subject.country {
        name.push_str(&format!(",C={c}"));
    }
    console.line(format_args!(
        "about to sign {what}:\n  subject:    {name}\n  issuer:     {issuer}\n  \
         public key: {}\n  validity:   {} to {}\n  profile:    {profile}",
        show_key(spki),
        show_time(not_before),
        show_time(not_after)
    ))
}

/// Checks, lints and writes a signed certificate.
fn finish(
    der: &[u8],
    expected: &Expected<'_>,
    output: &Path,
    console: &mut Console<'_>,
) -> Result<(), CeremonyError> {
    let info = check::certificate(der, expected, console)?;
    write_new(output, &pem_encode("CERTIFICATE", der))?;
    console.line(format_args!(
        "signed, checked against the ceremony file, linted and written to {}\n  serial: {}\n  \
         SHA-256 fingerprint: {}",
        output.display(),
        hex::encode(&info.serial),
        hex::encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, der))
    ))
}
