//! The ceremony's inputs and outputs: certificates, public keys and CSRs read as PEM or DER, and
//! outputs written to new files only (a ceremony never overwrites what an earlier one made).

use crate::CeremonyError;
use crate::config::{SubjectKey, resolve};
use cairn_pki::{KeyAlgorithm, pem_decode_all, verify_x509_signature};
use cairn_x509::CertInfo;
use der::{Decode, Encode};
use std::io::Write;
use std::path::Path;
use x509_cert::request::CertReq;

fn input_err(path: &Path, error: impl ToString) -> CeremonyError {
    CeremonyError::Input {
        path: path.display().to_string(),
        error: error.to_string(),
    }
}

/// The DER in `path`: the first PEM block labelled one of `labels`, or the bytes as they are
/// when the file is not PEM.
fn read_der(path: &Path, labels: &[&str]) -> Result<Vec<u8>, CeremonyError> {
    let bytes = std::fs::read(path).map_err(|e| input_err(path, e))?;
    if !bytes.starts_with(b"-----BEGIN") {
        return Ok(bytes);
    }
    let text = String::from_utf8(bytes).map_err(|e| input_err(path, e))?;
    pem_decode_all(&text)
        .map_err(|e| input_err(path, e))?
        .into_iter()
        .find(|(label, _)| labels.contains(&label.as_str()))
        .map(|(_, der)| der)
        .ok_or_else(|| {
            input_err(
                path,
                format!("no PEM block labelled {}", labels.join(" or ")),
            )
        })
}

/// A certificate file (PEM or DER), decoded.
pub(crate) fn read_certificate(path: &Path) -> Result<(Vec<u8>, CertInfo), CeremonyError> {
    let der = read_der(path, &["CERTIFICATE"])?;
    let info = CertInfo::from_der(&der).map_err(|e| input_err(path, e))?;
    Ok((der, info))
}

/// The SubjectPublicKeyInfo a certificate is to be issued for, from a public key file or a CSR
/// whose self-signature verifies, refused unless it is of the configured type.
pub(crate) fn read_subject_key(key: &SubjectKey, base: &Path) -> Result<Vec<u8>, CeremonyError> {
    let (path, spki) = match (&key.public_key, &key.csr) {
        (Some(path), None) => {
            let path = resolve(base, path);
            let spki = read_der(&path, &["PUBLIC KEY"])?;
            (path, spki)
        }
        (None, Some(path)) => {
            let path = resolve(base, path);
            let spki = csr_public_key(&read_der(
                &path,
                &["CERTIFICATE REQUEST", "NEW CERTIFICATE REQUEST"],
            )?)
            .map_err(|e| input_err(&path, e))?;
            (path, spki)
        }
        _ => {
            return Err(CeremonyError::Config(
                "subject_key needs exactly one of public_key and csr".into(),
            ));
        }
    };
    let found = KeyAlgorithm::from_spki_der(&spki).map_err(|e| input_err(&path, e))?;
    if found != key.algorithm {
        return Err(CeremonyError::Mismatch(format!(
            "{} holds a {found} key, the ceremony file says {}",
            path.display(),
            key.algorithm
        )));
    }
    Ok(spki)
}

/// The public key of a PKCS#10 CSR, once its self-signature verifies.
fn csr_public_key(der: &[u8]) -> Result<Vec<u8>, String> {
    let csr = CertReq::from_der(der).map_err(|e| format!("not a CSR: {e}"))?;
    let info = csr.info.to_der().map_err(|e| e.to_string())?;
    let spki = csr.info.public_key.to_der().map_err(|e| e.to_string())?;
    let alg = spki::AlgorithmIdentifierRef {
        oid: csr.algorithm.oid,
        parameters: csr.algorithm.parameters.as_ref().map(Into::into),
    };
    let signature = csr
        .signature
        .as_bytes()
        .ok_or("the CSR signature has unused bits")?;
    if !verify_x509_signature(&spki, &alg, &info, signature) {
        return Err("the CSR's signature does not verify with its public key".into());
    }
    Ok(spki)
}

/// Writes `contents` to `path`, which must not exist yet.
pub(crate) fn write_new(path: &Path, contents: &str) -> Result<(), CeremonyError> {
    let err = |e: std::io::Error| CeremonyError::Output {
        path: path.display().to_string(),
        error: e.to_string(),
    };
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(err)?;
    file.write_all(contents.as_bytes()).map_err(err)?;
    file.sync_all().map_err(err)
}

/// Refuses an output path that exists, before anything is signed.
pub(crate) fn check_new(path: &Path) -> Result<(), CeremonyError> {
    if path.exists() {
        return Err(CeremonyError::Output {
            path: path.display().to_string(),
            error: "the file exists; a ceremony never overwrites an earlier output".into(),
        });
    }
    Ok(())
}
