//! The CA hierarchy on disk: a root and an intermediate, each a certificate plus its PKCS#8 key,
//! created on first start and loaded and cross-checked on every later start.

use crate::IssuerError;
use cairn_x509::{
    CaCertificate, CaExtras, KeyAlgorithm, SigningKey, build_intermediate_with, build_root_with,
    is_signed_by, pem_certificates, pem_encode,
};
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use time::{Duration, OffsetDateTime};

/// The root certificate file (PEM).
pub const ROOT_CERT_FILE: &str = "root.pem";
/// The root private key file (PKCS#8 PEM, mode 0600).
pub const ROOT_KEY_FILE: &str = "root.key.pem";
/// The intermediate certificate file (PEM).
pub const INTERMEDIATE_CERT_FILE: &str = "intermediate.pem";
/// The intermediate private key file (PKCS#8 PEM, mode 0600).
pub const INTERMEDIATE_KEY_FILE: &str = "intermediate.key.pem";
/// Present only while a new hierarchy is being written: if it survives a crash, the files next to
/// it are leftovers of an unfinished creation that was never used, and are replaced.
const CREATING_MARKER: &str = ".creating";

/// Root validity: about 10 years.
const ROOT_VALIDITY: Duration = Duration::days(3653);
/// Intermediate validity: about 5 years.
const INTERMEDIATE_VALIDITY: Duration = Duration::days(1826);
/// notBefore backdating of CA certificates, for clients with slow clocks.
const CA_BACKDATE: Duration = Duration::hours(1);

/// The root and intermediate of this CA, with the intermediate's key and, unless the root is
/// offline, the root's. Debug output never shows key bytes.
#[derive(Debug)]
pub struct CaHierarchy {
    root: RootCa,
    intermediate: CaCertificate,
    issuer_id: String,
    root_id: String,
    /// A cross-signed certificate of the intermediate (same subject and key, another issuer):
    /// the alternate chain.
    pub(crate) cross_signed: Option<Vec<u8>>,
    /// The root's CRL (ARL) signed at a ceremony, served as it is (offline root only).
    pub(crate) arl_path: Option<PathBuf>,
}

/// The root certificate, and its key when the root is online (a development hierarchy).
#[derive(Debug)]
pub struct RootCa {
    der: Vec<u8>,
    info: cairn_x509::CertInfo,
    signer: Option<CaCertificate>,
}

impl RootCa {
    fn online(cert: CaCertificate) -> RootCa {
        RootCa {
            der: cert.der().to_vec(),
            info: cert.info().clone(),
            signer: Some(cert),
        }
    }

    /// A root whose key is elsewhere (offline): only its certificate.
    pub fn offline(der: Vec<u8>) -> Result<RootCa, IssuerError> {
        let info = cairn_x509::CertInfo::from_der(&der)
            .map_err(|e| IssuerError::Inconsistent(format!("root certificate: {e}")))?;
        if !info.is_ca {
            return Err(IssuerError::Inconsistent(
                "the root certificate is not a CA certificate".into(),
            ));
        }
        Ok(RootCa {
            der,
            info,
            signer: None,
        })
    }

    /// The certificate, DER.
    pub fn der(&self) -> &[u8] {
        &self.der
    }

    /// The parsed certificate.
    pub fn info(&self) -> &cairn_x509::CertInfo {
        &self.info
    }

    /// The certificate, PEM.
    pub fn to_pem(&self) -> String {
        pem_encode("CERTIFICATE", &self.der)
    }

    /// The root with its key, when the root is online; `None` for an offline root.
    pub fn signer(&self) -> Option<&CaCertificate> {
        self.signer.as_ref()
    }
}

/// How a new hierarchy looks beyond its key algorithm (an existing one is loaded as it is).
#[derive(Debug, Clone, Default)]
pub struct HierarchyOptions {
    /// countryName of both CA subjects (two uppercase letters).
    pub country: Option<String>,
    /// The public plain-HTTP base URL (`http://crl.example.com`): the intermediate then names the
    /// root's CRL ([`crate::crl_url`]) and certificate ([`crate::issuer_cert_url`]).
    pub public_base_url: Option<String>,
}

impl CaHierarchy {
    /// [`CaHierarchy::load_or_create_with`] with default options (no country, no URLs).
    pub fn load_or_create(
        dir: &Path,
        algorithm: KeyAlgorithm,
        now: OffsetDateTime,
    ) -> Result<CaHierarchy, IssuerError> {
        Self::load_or_create_with(dir, algorithm, now, &HierarchyOptions::default())
    }

    /// Loads the hierarchy from `dir`, or creates one (a fresh root `Cairn Root CA <random>` valid
    /// ~10 years and an intermediate valid ~5 years, keys of type `algorithm`) when `dir` holds
    /// none. Keys are written with mode 0600 through a temporary file, fsync and rename. An
    /// existing hierarchy is loaded whatever `algorithm` says; one whose files are incomplete or
    /// do not belong together is refused and left untouched.
    pub fn load_or_create_with(
        dir: &Path,
        algorithm: KeyAlgorithm,
        now: OffsetDateTime,
        options: &HierarchyOptions,
    ) -> Result<CaHierarchy, IssuerError> {
        let files = [
            ROOT_CERT_FILE,
            ROOT_KEY_FILE,
            INTERMEDIATE_CERT_FILE,
            INTERMEDIATE_KEY_FILE,
        ];
        if dir.join(CREATING_MARKER).exists() {
            tracing::warn!(
                dir = %dir.display(),
                "a previous CA creation was interrupted; creating a new hierarchy"
            );
            return Self::create(dir, algorithm, now, options);
        }
        let present: Vec<&str> = files
            .iter()
            .copied()
            .filter(|f| dir.join(f).exists())
            .collect();
        if present.is_empty() {
            return Self::create(dir, algorithm, now, options);
        }
        if present.len() != files.len() {
            let missing: Vec<&str> = files
                .iter()
                .copied()
                .filter(|f| !present.contains(f))
                .collect();
            return Err(IssuerError::Inconsistent(format!(
                "{} has {} but not {}; restore the missing files or move the directory aside to \
                 create a new CA",
                dir.display(),
                present.join(", "),
                missing.join(", ")
            )));
        }
        let hierarchy = Self::load(dir)?;
        let loaded = hierarchy.intermediate.key().algorithm();
        if loaded != algorithm {
            tracing::warn!(
                configured = %algorithm,
                existing = %loaded,
                "keeping the existing CA hierarchy; the configured key algorithm only applies when \
                 a new hierarchy is created"
            );
        }
        let not_after = hierarchy.intermediate.info().not_after;
        if not_after <= now {
            tracing::error!(%not_after, "the intermediate certificate has expired; issuance will fail");
        } else if not_after - now < Duration::days(90) {
            tracing::warn!(%not_after, "the intermediate certificate expires soon");
        }
        Ok(hierarchy)
    }

    /// Loads and cross-checks an existing hierarchy: each key must match its certificate, both
    /// certificates must be CAs, the root must be self-signed and the intermediate signed by it.
    pub fn load(dir: &Path) -> Result<CaHierarchy, IssuerError> {
        let root = load_ca(dir, ROOT_CERT_FILE, ROOT_KEY_FILE)?;
        let intermediate = load_ca(dir, INTERMEDIATE_CERT_FILE, INTERMEDIATE_KEY_FILE)?;
        if !is_signed_by(root.der(), root.key().spki_der()) {
            return Err(IssuerError::Inconsistent(format!(
                "{ROOT_CERT_FILE} is not a self-signed root"
            )));
        }
        if intermediate.info().issuer_der != root.info().subject_der
            || !is_signed_by(intermediate.der(), root.key().spki_der())
        {
            return Err(IssuerError::Inconsistent(format!(
                "{INTERMEDIATE_CERT_FILE} was not issued by {ROOT_CERT_FILE}"
            )));
        }
        for key_file in [ROOT_KEY_FILE, INTERMEDIATE_KEY_FILE] {
            warn_if_readable_by_others(&dir.join(key_file));
        }
        warn_file_keys(dir);
        Ok(Self::from_parts(RootCa::online(root), intermediate))
    }

    pub(crate) fn from_parts(root: RootCa, intermediate: CaCertificate) -> CaHierarchy {
        let issuer_id = short_key_id(intermediate.key().spki_der());
        let root_id = short_key_id(&root.info.spki_der);
        CaHierarchy {
            root,
            intermediate,
            issuer_id,
            root_id,
            cross_signed: None,
            arl_path: None,
        }
    }

    fn create(
        dir: &Path,
        algorithm: KeyAlgorithm,
        now: OffsetDateTime,
        options: &HierarchyOptions,
    ) -> Result<CaHierarchy, IssuerError> {
        create_private_dir(dir)?;
        write_atomic(&dir.join(CREATING_MARKER), b"", 0o600)?;

        let signing = |e: cairn_x509::BuildError| IssuerError::Signing(e.to_string());
        let keygen = |e: cairn_x509::KeyError| IssuerError::Signing(e.to_string());
        let now = now.replace_nanosecond(0).unwrap_or(now);
        let suffix = cairn_core::random_id(4);

        let root_key = SigningKey::generate(algorithm).map_err(keygen)?;
        let root_id = short_key_id(root_key.spki_der());
        let (root_crl_url, root_cert_url) = match &options.public_base_url {
            Some(base) => (
                Some(crate::crl_url(base, &root_id, 0)),
                Some(crate::issuer_cert_url(base, &root_id)),
            ),
            None => (None, None),
        };
        let extras = CaExtras {
            country: options.country.as_deref(),
            crl_url: root_crl_url.as_deref(),
            issuer_url: root_cert_url.as_deref(),
        };
        let root_der = build_root_with(
            &root_key,
            &format!("Cairn Root CA {suffix}"),
            Some("Cairn"),
            &extras,
            now - CA_BACKDATE,
            now + ROOT_VALIDITY,
        )
        .map_err(signing)?;
        let int_key = SigningKey::generate(algorithm).map_err(keygen)?;
        write_key(&dir.join(ROOT_KEY_FILE), &root_key)?;
        write_key(&dir.join(INTERMEDIATE_KEY_FILE), &int_key)?;
        let root = CaCertificate::new(root_der, root_key).map_err(signing)?;
        let int_der = build_intermediate_with(
            &root,
            int_key.spki_der(),
            &format!("Cairn Intermediate CA {suffix}"),
            Some("Cairn"),
            &extras,
            now - CA_BACKDATE,
            now + INTERMEDIATE_VALIDITY,
        )
        .map_err(signing)?;
        let intermediate = CaCertificate::new(int_der, int_key).map_err(signing)?;
        write_atomic(
            &dir.join(INTERMEDIATE_CERT_FILE),
            intermediate.to_pem().as_bytes(),
            0o644,
        )?;
        write_atomic(&dir.join(ROOT_CERT_FILE), root.to_pem().as_bytes(), 0o644)?;
        remove_file_synced(&dir.join(CREATING_MARKER))?;

        let hierarchy = Self::from_parts(RootCa::online(root), intermediate);
        warn_file_keys(dir);
        tracing::info!(
            dir = %dir.display(),
            algorithm = %algorithm,
            root = ?hierarchy.root.info().common_name,
            issuer_id = %hierarchy.issuer_id,
            "created a new CA hierarchy"
        );
        Ok(hierarchy)
    }

    /// The root (with its key only when it is online).
    pub fn root(&self) -> &RootCa {
        &self.root
    }

    /// The cross-signed certificate of the intermediate, when one is configured.
    pub fn cross_signed(&self) -> Option<&[u8]> {
        self.cross_signed.as_deref()
    }

    /// The intermediate that signs end-entity certificates.
    pub fn intermediate(&self) -> &CaCertificate {
        &self.intermediate
    }

    /// A short stable ID of the intermediate: hex of the first 8 bytes of the SHA-256 of its
    /// SubjectPublicKeyInfo.
    pub fn issuer_id(&self) -> &str {
        &self.issuer_id
    }

    /// A short stable ID of the root, formed like [`CaHierarchy::issuer_id`] (it names the
    /// root's certificate and CRL on the public listener).
    pub fn root_id(&self) -> &str {
        &self.root_id
    }

    /// The root certificate, PEM.
    pub fn root_pem(&self) -> String {
        self.root.to_pem()
    }

    /// The intermediate certificate, PEM.
    pub fn intermediate_pem(&self) -> String {
        self.intermediate.to_pem()
    }
}

/// The loud start-up warning of a hierarchy whose keys are files.
fn warn_file_keys(dir: &Path) {
    tracing::warn!(
        dir = %dir.display(),
        "CA PRIVATE KEYS ARE FILES ON DISK and the root is online: fine for development and \
         tests, not for a CA anyone trusts. Hold the intermediate in an HSM and keep the root \
         offline ([ca.offline_root], docs/key-management.md)"
    );
}

/// Hex of the first 8 bytes of the SHA-256 of a SubjectPublicKeyInfo.
pub(crate) fn short_key_id(spki_der: &[u8]) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, spki_der);
    digest.as_ref()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

pub(crate) fn load_ca(
    dir: &Path,
    cert_file: &str,
    key_file: &str,
) -> Result<CaCertificate, IssuerError> {
    let cert_pem = read_text(&dir.join(cert_file))?;
    let key_pem = read_text(&dir.join(key_file))?;
    let cert_der = pem_certificates(&cert_pem)
        .map_err(|e| IssuerError::Inconsistent(format!("{cert_file}: {e}")))?
        .into_iter()
        .next()
        .ok_or_else(|| IssuerError::Inconsistent(format!("{cert_file} holds no certificate")))?;
    let key = SigningKey::from_pkcs8_pem(&key_pem)
        .map_err(|e| IssuerError::Inconsistent(format!("{key_file}: {e}")))?;
    CaCertificate::new(cert_der, key).map_err(|e| match e {
        cairn_x509::BuildError::KeyMismatch => {
            IssuerError::Inconsistent(format!("{key_file} is not the key of {cert_file}"))
        }
        other => IssuerError::Inconsistent(format!("{cert_file}: {other}")),
    })
}

pub(crate) fn read_text(path: &Path) -> Result<String, IssuerError> {
    fs::read_to_string(path)
        .map_err(|e| IssuerError::Storage(format!("cannot read {}: {e}", path.display())))
}

pub(crate) fn write_key(path: &Path, key: &SigningKey) -> Result<(), IssuerError> {
    let pem = key
        .to_pkcs8_pem()
        .map_err(|e| IssuerError::Storage(format!("cannot encode {}: {e}", path.display())))?;
    write_atomic(path, pem.as_bytes(), 0o600)
}

/// Creates `dir` (and parents) if needed; a directory created here gets mode 0700.
fn create_private_dir(dir: &Path) -> Result<(), IssuerError> {
    if dir.is_dir() {
        return Ok(());
    }
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder
        .create(dir)
        .map_err(|e| IssuerError::Storage(format!("cannot create {}: {e}", dir.display())))
}

/// Writes `contents` to `path` so that a crash leaves either the old file or the complete new
/// one: a fresh temporary file in the same directory with `mode`, fsync, rename, directory fsync.
pub(crate) fn write_atomic(path: &Path, contents: &[u8], mode: u32) -> Result<(), IssuerError> {
    let storage = |what: &str, p: &Path, e: std::io::Error| {
        IssuerError::Storage(format!("cannot {what} {}: {e}", p.display()))
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp: PathBuf = dir.join(format!(".{name}.tmp-{}", cairn_core::random_id(6)));
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, mode);
    #[cfg(not(unix))]
    let _ = mode;
    let result = (|| {
        let mut file = options.open(&tmp).map_err(|e| storage("create", &tmp, e))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            // The umask may have narrowed the mode; never widened it. Make it exact.
            file.set_permissions(fs::Permissions::from_mode(mode))
                .map_err(|e| storage("set permissions on", &tmp, e))?;
        }
        file.write_all(contents)
            .map_err(|e| storage("write", &tmp, e))?;
        file.sync_all().map_err(|e| storage("fsync", &tmp, e))?;
        drop(file);
        fs::rename(&tmp, path).map_err(|e| storage("rename into", path, e))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result?;
    sync_dir(dir)
}

fn remove_file_synced(path: &Path) -> Result<(), IssuerError> {
    fs::remove_file(path)
        .map_err(|e| IssuerError::Storage(format!("cannot remove {}: {e}", path.display())))?;
    sync_dir(path.parent().unwrap_or(Path::new(".")))
}

/// Makes renames in `dir` durable (a no-op where directories cannot be opened).
fn sync_dir(dir: &Path) -> Result<(), IssuerError> {
    #[cfg(unix)]
    {
        let handle = fs::File::open(dir)
            .map_err(|e| IssuerError::Storage(format!("cannot open {}: {e}", dir.display())))?;
        handle
            .sync_all()
            .map_err(|e| IssuerError::Storage(format!("cannot fsync {}: {e}", dir.display())))?;
    }
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

fn warn_if_readable_by_others(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = fs::metadata(path)
            && meta.permissions().mode() & 0o077 != 0
        {
            tracing::warn!(
                file = %path.display(),
                mode = format!("{:o}", meta.permissions().mode() & 0o777),
                "CA private key file is accessible to other users; chmod 600 it"
            );
        }
    }
    #[cfg(not(unix))]
    let _ = path;
}
