//! The log's key files — a PEM PKCS#8 ECDSA P-256 key (RFC 6962), and the signed-note keys
//! (Ed25519 and ML-DSA-44) — loaded at start or, on the first start,
//! generated and written with mode 0600 (temporary file, fsync, rename, directory fsync), so a
//! crash never leaves a half-written key behind.

use cairn_tlog::checkpoint::NoteKeys;
use cairn_tlog::key::{KeyError, LogKey};
use cairn_tlog::note::{Ed25519NoteKey, MlDsa44Key, NoteError};
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
    /// Generating or encoding a new note key failed.
    #[error(transparent)]
    Note(#[from] NoteError),
}

/// Loads the PEM PKCS#8 key at `path`, or generates one and writes it there (mode 0600,
/// written to a temporary file, synced, then renamed) if the file does not exist.
pub fn load_or_generate(path: &Path) -> Result<LogKey, KeyFileError> {
    match read_pem(path)? {
        Some(pem) => LogKey::from_pkcs8_pem(&pem)
            .map_err(|_| KeyFileError::BadKey(path.display().to_string())),
        None => {
            let key = LogKey::generate()?;
            write_private(path, &key.to_pkcs8_pem()?)?;
            tracing::info!(path = %path.display(), "generated a new CT log key");
            Ok(key)
        }
    }
}

/// Loads the log's signed-note keys from `path` — two PEM `PRIVATE KEY` (PKCS#8) blocks, Ed25519
/// then ML-DSA-44 — or generates both and writes them there like [`load_or_generate`].
pub fn load_or_generate_note_keys(path: &Path) -> Result<NoteKeys, KeyFileError> {
    let bad = || KeyFileError::BadKey(path.display().to_string());
    match read_pem(path)? {
        Some(pem) => {
            let blocks: Vec<Vec<u8>> = cairn_pki::pem_decode_all(&pem)
                .map_err(|_| bad())?
                .into_iter()
                .filter(|(label, _)| label == "PRIVATE KEY")
                .map(|(_, der)| der)
                .collect();
            let [ed, ml] = blocks.as_slice() else {
                return Err(bad());
            };
            Ok(NoteKeys {
                ed25519: Ed25519NoteKey::from_pkcs8_der(ed).map_err(|_| bad())?,
                ml_dsa_44: MlDsa44Key::from_pkcs8_der(ml).map_err(|_| bad())?,
            })
        }
        None => {
            let keys = NoteKeys {
                ed25519: Ed25519NoteKey::generate()?,
                ml_dsa_44: MlDsa44Key::generate()?,
            };
            let pem = format!(
                "{}{}",
                cairn_pki::pem_encode("PRIVATE KEY", &keys.ed25519.to_pkcs8_der()?),
                cairn_pki::pem_encode("PRIVATE KEY", &keys.ml_dsa_44.to_pkcs8_der()?)
            );
            write_private(path, &pem)?;
            tracing::info!(path = %path.display(), "generated new CT log note keys (Ed25519, ML-DSA-44)");
            Ok(keys)
        }
    }
}

fn io_error(path: &Path) -> impl Fn(std::io::Error) -> KeyFileError + '_ {
    move |source| KeyFileError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// The file's text, or `None` if it does not exist.
fn read_pem(path: &Path) -> Result<Option<String>, KeyFileError> {
    match std::fs::read_to_string(path) {
        Ok(pem) => Ok(Some(pem)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_error(path)(e)),
    }
}

/// Writes a secret: mode 0600, temporary file, fsync, rename, directory fsync.
fn write_private(path: &Path, pem: &str) -> Result<(), KeyFileError> {
    let io = io_error(path);
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(&io)?;
    }
    let tmp = path.with_extension("tmp");
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(&tmp).map_err(&io)?;
    f.write_all(pem.as_bytes()).map_err(&io)?;
    f.sync_all().map_err(&io)?;
    std::fs::rename(&tmp, path).map_err(&io)?;
    crate::storage::sync_parent(path).map_err(&io)?;
    Ok(())
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

    #[test]
    fn note_keys_are_generated_once_and_a_wrong_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log.note.pem");
        let a = load_or_generate_note_keys(&path).unwrap();
        let b = load_or_generate_note_keys(&path).unwrap();
        assert_eq!(a.ed25519.public_key(), b.ed25519.public_key());
        assert_eq!(a.ml_dsa_44.public_key(), b.ml_dsa_44.public_key());
        // A P-256 key file is not a note key file.
        let p256 = dir.path().join("p256.pem");
        load_or_generate(&p256).unwrap();
        assert!(matches!(
            load_or_generate_note_keys(&p256),
            Err(KeyFileError::BadKey(_))
        ));
    }
}
