//! The certificate of the CA's own HTTPS (ACME) listener, for localhost, 127.0.0.1, ::1 and
//! configured extra names, stored next to the CA files and reissued when it nears expiry or the
//! names change.
//!
//! It is issued by a separate self-signed "Cairn local TLS root (not publicly trusted)"
//! (`tls-root.pem`), never by the subscriber root or intermediate: a certificate from the
//! subscriber hierarchy that skips CT, linting and the certificate records would be
//! misissuance. ACME clients talking to the HTTPS listener trust `tls-root.pem`; issued
//! certificates still chain to `root.pem`.

use crate::IssuerError;
use crate::hierarchy::{load_ca, read_text, write_atomic, write_key};
use cairn_core::Identifier;
use cairn_x509::{
    CaCertificate, CertInfo, KeyAlgorithm, SigningKey, build_root, build_tls_server_cert,
    is_signed_by, pem_certificates, pem_encode,
};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;
use time::{Duration, OffsetDateTime};

/// The listener's certificate file (the leaf, PEM).
pub const TLS_CERT_FILE: &str = "tls.pem";
/// The listener's private key file (PKCS#8 PEM, mode 0600).
pub const TLS_KEY_FILE: &str = "tls.key.pem";
/// The local TLS root that issues the listener's certificate (PEM): what ACME clients of the
/// HTTPS listener trust.
pub const TLS_ROOT_CERT_FILE: &str = "tls-root.pem";
/// The local TLS root's private key (PKCS#8 PEM, mode 0600).
pub const TLS_ROOT_KEY_FILE: &str = "tls-root.key.pem";
/// commonName of the local TLS root.
pub const TLS_ROOT_COMMON_NAME: &str = "Cairn local TLS root (not publicly trusted)";

/// Validity of the local TLS root: about 10 years.
const TLS_ROOT_VALIDITY: Duration = Duration::days(3653);
/// Validity of a listener certificate (capped at the TLS root's notAfter).
const TLS_VALIDITY: Duration = Duration::days(365);
/// Reissue when fewer than this many days remain.
const TLS_RENEW_BEFORE: Duration = Duration::days(30);

/// A TLS server identity: certificate chain and private key. Debug output omits the key.
pub struct TlsIdentity {
    cert_chain: Vec<Vec<u8>>,
    private_key: Vec<u8>,
}

impl fmt::Debug for TlsIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsIdentity")
            .field("certificates", &self.cert_chain.len())
            .finish_non_exhaustive()
    }
}

impl TlsIdentity {
    /// The chain, DER: the server certificate (the local TLS root is not sent).
    pub fn cert_chain_der(&self) -> &[Vec<u8>] {
        &self.cert_chain
    }

    /// The chain as PEM.
    pub fn cert_chain_pem(&self) -> String {
        self.cert_chain
            .iter()
            .map(|der| pem_encode("CERTIFICATE", der))
            .collect()
    }

    /// The private key, PKCS#8 DER (for `rustls::pki_types::PrivateKeyDer::Pkcs8`).
    pub fn private_key_pkcs8_der(&self) -> &[u8] {
        &self.private_key
    }
}

/// An operator-supplied identity, served as it is: `cert` holds the PEM chain (server
/// certificate first), `key` its PKCS#8 PEM private key. A file that cannot be read or parsed, or
/// a key that is not the certificate's, is refused.
pub fn operator_tls_identity(cert: &Path, key: &Path) -> Result<TlsIdentity, IssuerError> {
    let chain = pem_certificates(&read_text(cert)?)
        .map_err(|e| IssuerError::Inconsistent(format!("{}: {e}", cert.display())))?;
    let leaf = chain.first().ok_or_else(|| {
        IssuerError::Inconsistent(format!("{} holds no certificate", cert.display()))
    })?;
    let info = CertInfo::from_der(leaf)
        .map_err(|e| IssuerError::Inconsistent(format!("{}: {e}", cert.display())))?;
    let signing_key = SigningKey::from_pkcs8_pem(&read_text(key)?).map_err(|e| {
        IssuerError::Inconsistent(format!(
            "{}: not a PKCS#8 PEM private key: {e}",
            key.display()
        ))
    })?;
    if info.spki_der != signing_key.spki_der() {
        return Err(IssuerError::Inconsistent(format!(
            "{} is not the key of {}",
            key.display(),
            cert.display()
        )));
    }
    Ok(TlsIdentity {
        private_key: signing_key
            .to_pkcs8_der()
            .map_err(|e| IssuerError::Inconsistent(format!("{}: {e}", key.display())))?,
        cert_chain: chain,
    })
}

/// Loads the local TLS root from `dir`, or creates it (ECDSA P-256, self-signed) when neither
/// of its files exists. One file without the other, a key that does not match, or a certificate
/// that is not a self-signed CA is refused.
pub fn tls_root(dir: &Path, now: OffsetDateTime) -> Result<CaCertificate, IssuerError> {
    let (cert_path, key_path) = (dir.join(TLS_ROOT_CERT_FILE), dir.join(TLS_ROOT_KEY_FILE));
    match (cert_path.exists(), key_path.exists()) {
        (true, true) => {
            let root = load_ca(dir, TLS_ROOT_CERT_FILE, TLS_ROOT_KEY_FILE)?;
            if !is_signed_by(root.der(), root.key().spki_der()) {
                return Err(IssuerError::Inconsistent(format!(
                    "{TLS_ROOT_CERT_FILE} is not a self-signed root"
                )));
            }
            Ok(root)
        }
        (false, false) => {
            let key = SigningKey::generate(KeyAlgorithm::EcdsaP256)
                .map_err(|e| IssuerError::Signing(e.to_string()))?;
            let now = now.replace_nanosecond(0).unwrap_or(now);
            let der = build_root(
                &key,
                TLS_ROOT_COMMON_NAME,
                Some("Cairn"),
                now - Duration::hours(1),
                now + TLS_ROOT_VALIDITY,
            )
            .map_err(|e| IssuerError::Signing(e.to_string()))?;
            let root =
                CaCertificate::new(der, key).map_err(|e| IssuerError::Signing(e.to_string()))?;
            write_key(&key_path, root.key())?;
            write_atomic(&cert_path, root.to_pem().as_bytes(), 0o644)?;
            tracing::info!(path = %cert_path.display(), "created the local TLS root");
            Ok(root)
        }
        (true, false) | (false, true) => Err(IssuerError::Inconsistent(format!(
            "{} holds only one of {TLS_ROOT_CERT_FILE} and {TLS_ROOT_KEY_FILE}; remove the other \
             to create a new local TLS root",
            dir.display()
        ))),
    }
}

/// Loads `tls.pem` / `tls.key.pem` from `dir`, or (re)issues them from the local TLS root
/// ([`tls_root`], created when missing) when they are missing, unreadable, not issued by that
/// root, expiring within 30 days, or for other names than localhost, 127.0.0.1, ::1 and
/// `extra_names` (entries that parse as IP addresses are added as such).
pub fn tls_server_identity(
    dir: &Path,
    extra_names: &[String],
    now: OffsetDateTime,
) -> Result<TlsIdentity, IssuerError> {
    let root = tls_root(dir, now)?;
    let (dns_names, ip_addrs) = wanted_names(extra_names);
    let mut wanted: Vec<Identifier> = dns_names
        .iter()
        .map(|n| Identifier::dns(n.clone()))
        .chain(ip_addrs.iter().map(|ip| Identifier::ip(*ip)))
        .collect();
    wanted.sort();

    match load_tls(&root, dir, &wanted, now) {
        Ok(identity) => return Ok(identity),
        Err(reason) => {
            tracing::info!(%reason, "issuing a new TLS certificate for the ACME listener")
        }
    }

    let key = SigningKey::generate(KeyAlgorithm::EcdsaP256)
        .map_err(|e| IssuerError::Signing(e.to_string()))?;
    let now = now.replace_nanosecond(0).unwrap_or(now);
    let not_after = (now + TLS_VALIDITY).min(root.info().not_after);
    let leaf = build_tls_server_cert(
        &root,
        key.spki_der(),
        &dns_names,
        &ip_addrs,
        now - Duration::hours(1),
        not_after,
    )
    .map_err(|e| IssuerError::Signing(e.to_string()))?;
    let identity = TlsIdentity {
        cert_chain: vec![leaf],
        private_key: key
            .to_pkcs8_der()
            .map_err(|e| IssuerError::Signing(e.to_string()))?,
    };
    write_key(&dir.join(TLS_KEY_FILE), &key)?;
    write_atomic(
        &dir.join(TLS_CERT_FILE),
        identity.cert_chain_pem().as_bytes(),
        0o644,
    )?;
    Ok(identity)
}

/// The stored identity if it is still right, or why not.
fn load_tls(
    root: &CaCertificate,
    dir: &Path,
    wanted: &[Identifier],
    now: OffsetDateTime,
) -> Result<TlsIdentity, String> {
    let (cert_path, key_path) = (dir.join(TLS_CERT_FILE), dir.join(TLS_KEY_FILE));
    if !cert_path.exists() || !key_path.exists() {
        return Err("no stored certificate".into());
    }
    let chain = pem_certificates(&read_text(&cert_path).map_err(|e| e.to_string())?)
        .map_err(|e| format!("{TLS_CERT_FILE}: {e}"))?;
    let key = SigningKey::from_pkcs8_pem(&read_text(&key_path).map_err(|e| e.to_string())?)
        .map_err(|e| format!("{TLS_KEY_FILE}: {e}"))?;
    let leaf = chain
        .first()
        .ok_or_else(|| format!("{TLS_CERT_FILE} holds no certificate"))?;
    let info = CertInfo::from_der(leaf).map_err(|e| format!("{TLS_CERT_FILE}: {e}"))?;
    if info.spki_der != key.spki_der() {
        return Err(format!("{TLS_KEY_FILE} does not match {TLS_CERT_FILE}"));
    }
    if info.issuer_der != root.info().subject_der || !is_signed_by(leaf, root.key().spki_der()) {
        return Err(format!(
            "stored certificate is not from the current {TLS_ROOT_CERT_FILE}"
        ));
    }
    if info.not_before > now || info.not_after - now < TLS_RENEW_BEFORE {
        return Err(format!("stored certificate expires {}", info.not_after));
    }
    let mut have = info.identifiers.clone();
    have.sort();
    if have != wanted {
        return Err("the configured names changed".into());
    }
    Ok(TlsIdentity {
        cert_chain: vec![leaf.clone()],
        private_key: key.to_pkcs8_der().map_err(|e| e.to_string())?,
    })
}

/// localhost plus the extra DNS names (lowercased, deduplicated), and the loopback addresses plus
/// the extra IP addresses.
fn wanted_names(extra_names: &[String]) -> (Vec<String>, Vec<IpAddr>) {
    let mut dns = vec!["localhost".to_string()];
    let mut ips = vec![
        IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(Ipv6Addr::LOCALHOST),
    ];
    for name in extra_names {
        let name = name.trim().trim_end_matches('.').to_ascii_lowercase();
        if name.is_empty() {
            continue;
        }
        match name.parse::<IpAddr>() {
            Ok(ip) => ips.push(ip),
            Err(_) => dns.push(name),
        }
    }
    dns.sort();
    dns.dedup();
    ips.sort();
    ips.dedup();
    (dns, ips)
}
