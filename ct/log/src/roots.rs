//! The accepted roots on disk: every `CERTIFICATE` in the `*.pem` and `*.crt` files of the
//! log's roots folder, read once at start.

use cairn_tlog::chain::Roots;
use std::path::Path;

/// Errors loading the root set.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RootsError {
    /// The folder or a file could not be read.
    #[error("reading roots: {0}")]
    Io(#[from] std::io::Error),
    /// A file is not PEM certificates.
    #[error("root file {0} is not PEM certificates")]
    BadPem(String),
    /// A certificate does not parse.
    #[error("root certificate in {0} does not parse")]
    BadCertificate(String),
}

/// Every `CERTIFICATE` in the `*.pem` and `*.crt` files of `dir`, files in name order.
pub fn load_dir(dir: &Path) -> Result<Roots, RootsError> {
    let mut files: Vec<_> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "pem" || e == "crt"))
        .collect();
    files.sort();
    let mut ders = Vec::new();
    let mut origin = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f)?;
        let certs = cairn_pki::pem_certificates(&text)
            .map_err(|_| RootsError::BadPem(f.display().to_string()))?;
        for c in certs {
            ders.push(c);
            origin.push(f.display().to_string());
        }
    }
    Roots::from_der(&ders)
        .map_err(|i| RootsError::BadCertificate(origin.get(i).cloned().unwrap_or_default()))
}
