//! TLS for the links between components: every server and every client holds a certificate from
//! the deployment's internal CA and checks its peer's against that CA alone.

use rustls::RootCertStore;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The PEM files one end of a link uses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFiles {
    /// This end's certificate chain (leaf first).
    pub cert: PathBuf,
    /// This end's private key (PKCS#8 PEM).
    pub key: PathBuf,
    /// The internal CA that signed every peer's certificate.
    pub ca: PathBuf,
}

/// A TLS file that is missing or unusable.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A file could not be read or holds no PEM object of the expected kind.
    #[error("{path}: {reason}")]
    File {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// rustls refused the combination (a key that does not match the certificate, say).
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
    /// The CA file holds no certificate rustls accepts as a trust anchor.
    #[error("client verifier: {0}")]
    Verifier(String),
}

fn file_error(path: &Path, reason: impl std::fmt::Display) -> TlsError {
    TlsError::File {
        path: path.to_owned(),
        reason: reason.to_string(),
    }
}

/// Reads every certificate in a PEM file (at least one).
pub fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| file_error(path, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_error(path, e))?;
    if certs.is_empty() {
        return Err(file_error(path, "no CERTIFICATE in the file"));
    }
    Ok(certs)
}

/// Reads a private key from a PEM file.
pub fn read_private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| file_error(path, e))
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

fn roots(path: &Path) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in read_certificates(path)? {
        roots.add(cert).map_err(|e| file_error(path, e))?;
    }
    Ok(roots)
}

/// The server side: presents `files.cert`, requires a client certificate issued by `files.ca`,
/// speaks HTTP/2 only.
pub fn server_config(files: &TlsFiles) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let verifier =
        WebPkiClientVerifier::builder_with_provider(Arc::new(roots(&files.ca)?), provider())
            .build()
            .map_err(|e| TlsError::Verifier(e.to_string()))?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(verifier)
        .with_single_cert(
            read_certificates(&files.cert)?,
            read_private_key(&files.key)?,
        )?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(config))
}

/// The PEM text a tonic client needs: its chain and key, and the CA it trusts.
#[derive(Debug, Clone)]
pub(crate) struct ClientPem {
    pub(crate) cert: Vec<u8>,
    pub(crate) key: Vec<u8>,
    pub(crate) ca: Vec<u8>,
}

impl ClientPem {
    pub(crate) fn read(files: &TlsFiles) -> Result<Self, TlsError> {
        // Parse first, so a bad file fails here with its name rather than at the first call.
        read_certificates(&files.cert)?;
        read_private_key(&files.key)?;
        roots(&files.ca)?;
        let read = |p: &Path| std::fs::read(p).map_err(|e| file_error(p, e));
        Ok(Self {
            cert: read(&files.cert)?,
            key: read(&files.key)?,
            ca: read(&files.ca)?,
        })
    }
}
