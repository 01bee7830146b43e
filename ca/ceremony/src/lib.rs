//! Key ceremonies (`cairn ceremony <step.toml>`): the offline operations on CA keys, each driven
//! by one reviewed TOML file (see [`config`]) and run with the HSM at hand:
//!
//! - `generate_key`: a key pair generated in the HSM; the public key is written, and its
//!   SHA-256 SPKI hash printed for the ceremony record;
//! - `root`: a self-signed root;
//! - `intermediate`: a subordinate CA (or a cross-signed certificate) from a CSR or public key;
//! - `ocsp_signer` / `crl_signer`: delegated signers;
//! - `arl`: the root's CRL, revoking CA certificates.
//!
//! Every signing step prints what it is about to sign, refuses before signing when the inputs
//! disagree with the file (the key on the token is not the configured type, the issuer key is not
//! the issuer certificate's, the validity leaves the issuer's), and lints a copy of the
//! certificate built with a throwaway key ([`cairn_lint::Linter`]'s stand-in issuer, or a
//! throwaway root key) so the HSM never signs what the linter refuses. After signing it checks
//! that the output says exactly what the file says, verifies its signature and lints it again
//! ([`cairn_lint`]). Only an output that passes is written, and an existing file is never
//! overwritten: a refused step leaves nothing behind. (The ARL is linted after signing only:
//! it is built from the root's own name and key identifier, with nothing a stand-in would change.)

pub mod config;

mod arl;
mod certificate;
mod check;
mod files;
mod keygen;

use cairn_hsm::{HsmError, Pkcs11KeyConfig, Pkcs11Signer};
use cairn_lint::LintReport;
use cairn_x509::{BuildError, KeyError, SigningKey};
use config::Step;
use std::fmt;
use std::io::Write;
use std::path::Path;

/// Why a ceremony step stopped. Nothing was written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CeremonyError {
    /// The ceremony file cannot be read or is not a valid step.
    #[error("ceremony file {path}: {error}")]
    File {
        /// The file.
        path: String,
        /// What is wrong with it.
        error: String,
    },
    /// The step's settings are incomplete or contradict each other.
    #[error("ceremony step: {0}")]
    Config(String),
    /// An input file (certificate, public key, CSR) cannot be read or decoded.
    #[error("{path}: {error}")]
    Input {
        /// The file.
        path: String,
        /// What is wrong with it.
        error: String,
    },
    /// An output file exists already or cannot be written.
    #[error("cannot write {path}: {error}")]
    Output {
        /// The file.
        path: String,
        /// Why.
        error: String,
    },
    /// The HSM refused: wrong PIN, no such token or key, module failure.
    #[error(transparent)]
    Hsm(#[from] HsmError),
    /// The HSM key cannot be used to sign X.509 objects.
    #[error("signing key: {0}")]
    Key(#[from] KeyError),
    /// What would be (or was) signed does not match the ceremony file.
    #[error("refusing to sign: {0}")]
    Mismatch(String),
    /// Building or signing failed.
    #[error("signing: {0}")]
    Build(#[from] BuildError),
    /// The output has lint errors; it is not written.
    #[error("refusing to write {what}: lint errors: {report}")]
    Lint {
        /// The output.
        what: String,
        /// The findings.
        report: LintReport,
    },
    /// The console cannot be written to.
    #[error("writing to the console: {0}")]
    Console(String),
}

/// Where a step says what it does (stdout for the `cairn ceremony` command).
pub struct Console<'a>(&'a mut dyn Write);

impl<'a> Console<'a> {
    /// A console writing to `out`.
    pub fn new(out: &'a mut dyn Write) -> Console<'a> {
        Console(out)
    }

    fn line(&mut self, text: impl fmt::Display) -> Result<(), CeremonyError> {
        writeln!(self.0, "{text}").map_err(|e| CeremonyError::Console(e.to_string()))
    }
}

/// Reads the ceremony file at `path` and runs its step, reporting on `console`.
pub fn run_file(path: &Path, console: &mut Console<'_>) -> Result<(), CeremonyError> {
    let file_err = |error: String| CeremonyError::File {
        path: path.display().to_string(),
        error,
    };
    let text = std::fs::read_to_string(path).map_err(|e| file_err(e.to_string()))?;
    let step: Step = toml::from_str(&text).map_err(|e| file_err(one_line(&e.to_string())))?;
    let base = path.parent().unwrap_or(Path::new("."));
    console.line(format_args!(
        "ceremony step {} from {}",
        step.name(),
        path.display()
    ))?;
    run_step(&step, base, console)
}

/// Runs one step; relative paths in it are relative to `base`.
pub fn run_step(step: &Step, base: &Path, console: &mut Console<'_>) -> Result<(), CeremonyError> {
    match step {
        Step::GenerateKey(s) => keygen::run(s, base, console),
        Step::Root(s) => certificate::root(s, base, console),
        Step::Intermediate(s) => certificate::intermediate(s, base, console),
        Step::OcspSigner(s) => certificate::delegated(s, true, base, console),
        Step::CrlSigner(s) => certificate::delegated(s, false, base, console),
        Step::Arl(s) => arl::run(s, base, console),
    }
}

/// Opens an HSM key for the ceremony: one session is enough, and the key's test signature at
/// open time proves the PIN and the key before anything is built.
fn open_hsm_key(cfg: &Pkcs11KeyConfig) -> Result<SigningKey, CeremonyError> {
    let cfg = Pkcs11KeyConfig {
        sessions: 1,
        ..cfg.clone()
    };
    let signer = Pkcs11Signer::open_arc(&cfg)?;
    Ok(SigningKey::from_external(signer)?)
}

/// TOML errors span several lines (the offending line, a caret); the CLI prints one.
fn one_line(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('|') && !l.chars().all(|c| c == '^'))
        .collect::<Vec<_>>()
        .join(" ")
}
