//! A development PKI for the links between components (`cairn admin pki dev`): one CA and one
//! certificate per service, each naming the service's identity as a DNS subjectAltName and
//! valid for both TLS server and client authentication (every service is both). Production
//! deployments bring certificates from their own internal CA; these files are for trying the
//! split deployment and for tests.

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use std::path::{Path, PathBuf};

use crate::tls::TlsFiles;

/// The DNS suffix of the development identities: service `ra` is `ra.cairn.internal`.
pub const DOMAIN: &str = "cairn.internal";

/// The services `cairn admin pki dev` makes certificates for when none are named.
pub const DEFAULT_SERVICES: &[&str] = &["wfe", "ra", "va", "ca", "sa", "nonce"];

/// A file that could not be written, or a certificate rcgen refused to make.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DevPkiError {
    /// Writing a file failed.
    #[error("{path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A service name that is not a DNS label.
    #[error("service name {0:?} is not a DNS label (letters, digits, '-')")]
    BadName(String),
    /// rcgen failed.
    #[error("making a certificate: {0}")]
    Rcgen(#[from] rcgen::Error),
}

/// The identity of service `name`.
pub fn identity(name: &str) -> String {
    format!("{name}.{DOMAIN}")
}

/// The files of service `name` in `dir`, as [`generate`] writes them.
pub fn files(dir: &Path, name: &str) -> TlsFiles {
    TlsFiles {
        cert: dir.join(format!("{name}.pem")),
        key: dir.join(format!("{name}.key.pem")),
        ca: dir.join("internal-ca.pem"),
    }
}

fn write(path: PathBuf, contents: &str, secret: bool) -> Result<(), DevPkiError> {
    let result = if secret {
        write_secret(&path, contents)
    } else {
        std::fs::write(&path, contents)
    };
    result.map_err(|source| DevPkiError::Write { path, source })
}

fn write_secret(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(contents.as_bytes())?;
    f.sync_all()
}

fn check_label(name: &str) -> Result<(), DevPkiError> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(DevPkiError::BadName(name.to_owned()))
    }
}

/// Writes `internal-ca.pem`, `internal-ca.key.pem` and, for each service, `<name>.pem` and
/// `<name>.key.pem` into `dir` (created if missing). Keys are written with mode 0600. Returns the files written.
pub fn generate(dir: &Path, services: &[String]) -> Result<Vec<PathBuf>, DevPkiError> {
    for s in services {
        check_label(s)?;
    }
    std::fs::create_dir_all(dir).map_err(|source| DevPkiError::Write {
        path: dir.to_owned(),
        source,
    })?;
    let ca_key = KeyPair::generate()?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "Cairn development internal CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_cert = ca_params.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca_params, &ca_key);
    let mut written = Vec::new();
    let ca_path = dir.join("internal-ca.pem");
    write(ca_path.clone(), &ca_cert.pem(), false)?;
    written.push(ca_path);
    let ca_key_path = dir.join("internal-ca.key.pem");
    write(ca_key_path.clone(), &ca_key.serialize_pem(), true)?;
    written.push(ca_key_path);
    for name in services {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(vec![identity(name)])?;
        params
            .distinguished_name
            .push(DnType::CommonName, identity(name));
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let cert = params.signed_by(&key, &issuer)?;
        let f = files(dir, name);
        write(f.cert.clone(), &cert.pem(), false)?;
        write(f.key.clone(), &key.serialize_pem(), true)?;
        written.push(f.cert);
        written.push(f.key);
    }
    Ok(written)
}
