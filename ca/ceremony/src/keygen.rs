//! `[generate_key]`: a key pair made inside the HSM (private half sensitive and not
//! extractable); only the public key comes out, written as PEM with its SHA-256 SPKI hash
//! printed for the ceremony record.

use crate::config::{GenerateKeyStep, resolve};
use crate::files::{check_new, write_new};
use crate::{CeremonyError, Console};
use cairn_pki::pem_encode;

/// Runs the step.
pub(crate) fn run(
    step: &GenerateKeyStep,
    base: &std::path::Path,
    console: &mut Console<'_>,
) -> Result<(), CeremonyError> {
    step.key.validate()?;
    let (Some(label), Some(id)) = (&step.key.key_label, &step.key.key_id) else {
        return Err(CeremonyError::Config(
            "generate_key needs both key.key_label and key.key_id".into(),
        ));
    };
    let id = hex::decode(id).map_err(|e| CeremonyError::Config(format!("key_id: {e}")))?;
    let output = resolve(base, &step.public_key_output);
    check_new(&output)?;
    console.line(format_args!(
        "generating a {} key labelled {label:?} (id {}) on token {:?}",
        step.algorithm,
        hex::encode(&id),
        step.key.token_label
    ))?;
    let pin = step.key.read_pin()?;
    let session = cairn_hsm::open_session(&step.key.module, &step.key.token_label, &pin)?;
    let spki = cairn_hsm::generate_key_pair(&session, step.algorithm, label, &id)?;
    write_new(&output, &pem_encode("PUBLIC KEY", &spki))?;
    console.line(format_args!(
        "public key written to {}\n  SPKI SHA-256: {}",
        output.display(),
        spki_sha256(&spki)
    ))
}

/// Lowercase hex SHA-256 of a SubjectPublicKeyInfo.
pub(crate) fn spki_sha256(spki: &[u8]) -> String {
    hex::encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, spki))
}
