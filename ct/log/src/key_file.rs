//! The log's key file: a PEM PKCS#8 ECDSA P-256 key, loaded at start or, on the first start,
//! generated and written with mode 0600 (temporary file, fsync, rename, directory fsync), so a
//! crash never leaves a half-written key behind.

use cairn_tlog::key::{KeyError, LogKey};
use std::io::Write;
use std::path::Path;

/// Why the key file could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyFileError {
    /// Reading or writing the key file failed.
    #[error("key file {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a PEM PKCS#8 P-256 private key.
    #[error("key file {0} does not hold a PKCS#8 ECDSA P-256 private key")]
    BadKey(String),
    /// Generating or encoding a new key failed.
    #[error(transparent)]
    Key(#[from] KeyError),
}

/// Loads the PEM PKCS#8 key at `path`, or generates one and writes it there (mode 0600,
/// written to a temporary file, synced, then renamed) if the file does not exist.
pub fn load_or_generate(path: &Path) -> Result<LogKey, KeyFileError> {
    let io = |source| KeyFileError::Io {
        path: path.display().to_string(),
        source,
    };
    match std::fs::read_to_string(path) {
        Ok(pem) => LogKey::from_pkcs8_pem(&pem)
            .map_err(|_| KeyFileError::BadKey(path.display().to_string())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = LogKey::generate()?;
            let pem = key.to_pkcs8_pem()?;
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(io)?;
            }
            let tmp = path.with_extension("tmp");
            let mut opts = std::fs::OpenOptions::new();
            opts.write(true).create(true).truncate(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt;
                opts.mode(0o600);
            }
            let mut f = opts.open(&tmp).map_err(io)?;
            f.write_all(pem.as_bytes()).map_err(io)?;
            f.sync_all().map_err(io)?;
            std::fs::rename(&tmp, path).map_err(io)?;
            crate::storage::sync_parent(path).map_err(io)?;
            tracing::info!(path = %path.display(), "generated a new CT log key");
            Ok(key)
        }
        Err(e) => Err(io(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_tlog::key::verify_p256;

    #[test]
    fn key_is_generated_once_with_private_mode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys/log.pem");
        let a = load_or_generate(&path).unwrap();
        let b = load_or_generate(&path).unwrap();
        assert_eq!(a.log_id(), b.log_id());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let sig = a.sign(b"hello").unwrap();
        assert!(verify_p256(b.spki_der(), b"hello", &sig));
        std::fs::write(&path, "garbage").unwrap();
        assert!(matches!(
            load_or_generate(&path),
            Err(KeyFileError::BadKey(p)) if p == path.display().to_string()
        ));
    }
}
