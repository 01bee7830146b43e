//! The data directory (`server.data_dir`): the SQLite database, the CA's keys, the DAP and CT
//! state, the EAB sealing key. Nobody but the service's user may read it: it is created `0700`,
//! and at every start the folder and everything under it lose any group or other permission a
//! copy, a restore or an older Cairn left on them. A file the service can't tighten (owned by
//! someone else) stops the start with the path named.
//!
//! The EAB sealing key ([`cairn_sa::EabSeal`]) comes from `CAIRN_EAB_SEAL_KEY` (base64url, 32
//! bytes; for several instances on one PostgreSQL database) or else from
//! `<data_dir>/eab-seal.key`, generated `0600` on first start.

use anyhow::Context;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use cairn_sa::{EAB_SEAL_KEY_LEN, EabSeal};
use std::path::Path;

/// Environment variable with the EAB sealing key (base64url of 32 bytes).
pub const EAB_SEAL_KEY_ENV: &str = "CAIRN_EAB_SEAL_KEY";

/// The sealing key's file name inside the data directory.
pub const EAB_SEAL_KEY_FILE: &str = "eab-seal.key";

/// Creates `dir` (`0700`) if missing and removes group and other permissions from it and from
/// everything under it (symbolic links are not followed).
///
/// # Errors
/// When the folder can't be created, or a path in it can't be read or tightened.
pub fn prepare(dir: &Path) -> anyhow::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder
        .create(dir)
        .with_context(|| format!("cannot create data folder {}", dir.display()))?;
    let tightened = tighten(dir)?;
    if tightened > 0 {
        tracing::warn!(
            folder = %dir.display(),
            paths = tightened,
            "the data folder was readable by other users; removed their permissions"
        );
    }
    Ok(())
}

/// Removes group/other permission bits below and at `path`; returns how many paths changed.
#[cfg(unix)]
fn tighten(path: &Path) -> anyhow::Result<u64> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::symlink_metadata(path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    if meta.file_type().is_symlink() {
        return Ok(0);
    }
    let mut changed = 0;
    let mode = meta.permissions().mode();
    if mode & 0o077 != 0 {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode & 0o7700))
            .with_context(|| {
                format!(
                    "{} is readable by other users and can't be restricted to its owner (chmod go= it, or run as its owner)",
                    path.display()
                )
            })?;
        changed += 1;
    }
    if meta.is_dir() {
        for entry in
            std::fs::read_dir(path).with_context(|| format!("cannot list {}", path.display()))?
        {
            let entry = entry.with_context(|| format!("cannot list {}", path.display()))?;
            changed += tighten(&entry.path())?;
        }
    }
    Ok(changed)
}

#[cfg(not(unix))]
fn tighten(_path: &Path) -> anyhow::Result<u64> {
    Ok(0)
}

/// The EAB sealing key: from [`EAB_SEAL_KEY_ENV`], else from `<dir>/eab-seal.key`, which is
/// generated (`0600`) when missing.
///
/// # Errors
/// A key of the wrong length or encoding, or a file that can't be read or written.
pub fn eab_seal(dir: &Path) -> anyhow::Result<EabSeal> {
    let decode = |text: &str, from: &str| -> anyhow::Result<EabSeal> {
        let bytes = URL_SAFE_NO_PAD
            .decode(text.trim())
            .ok()
            .filter(|b| b.len() == EAB_SEAL_KEY_LEN)
            .with_context(|| {
                format!("{from}: the EAB sealing key must be {EAB_SEAL_KEY_LEN} bytes, base64url")
            })?;
        EabSeal::new(&bytes).with_context(|| from.to_owned())
    };
    if let Ok(text) = std::env::var(EAB_SEAL_KEY_ENV) {
        return decode(&text, EAB_SEAL_KEY_ENV);
    }
    let file = dir.join(EAB_SEAL_KEY_FILE);
    let shown = file.display().to_string();
    match std::fs::read_to_string(&file) {
        Ok(text) => return decode(&text, &shown),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("cannot read {shown}")),
    }
    let key = EabSeal::generate_key()?;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    match opts.open(&file) {
        Ok(mut f) => {
            std::io::Write::write_all(
                &mut f,
                format!("{}\n", URL_SAFE_NO_PAD.encode(key)).as_bytes(),
            )
            .and_then(|()| f.sync_all())
            .with_context(|| format!("cannot write {shown}"))?;
            EabSeal::new(&key).context("the EAB sealing key")
        }
        // Another process (a concurrent `cairn admin`) created it first: use theirs.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let text =
                std::fs::read_to_string(&file).with_context(|| format!("cannot read {shown}"))?;
            decode(&text, &shown)
        }
        Err(e) => Err(e).with_context(|| format!("cannot create {shown}")),
    }
}

#[cfg(all(test, unix))]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn the_data_folder_is_created_owner_only() {
        let parent = tempfile::tempdir().unwrap();
        let dir = parent.path().join("data");
        prepare(&dir).unwrap();
        assert_eq!(mode(&dir), 0o700);
    }

    #[test]
    fn an_existing_world_readable_data_folder_is_tightened_at_start() {
        let parent = tempfile::tempdir().unwrap();
        let dir = parent.path().join("data");
        let sub = dir.join("ca");
        std::fs::create_dir_all(&sub).unwrap();
        let db = dir.join("cairn.db");
        let key = sub.join("intermediate.key");
        std::fs::write(&db, b"").unwrap();
        std::fs::write(&key, b"").unwrap();
        for (p, m) in [(&dir, 0o755), (&sub, 0o775), (&db, 0o644), (&key, 0o666)] {
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap();
        }
        prepare(&dir).unwrap();
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&sub), 0o700);
        assert_eq!(mode(&db), 0o600);
        assert_eq!(mode(&key), 0o600);
    }

    #[test]
    fn the_eab_sealing_key_is_generated_owner_only_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let _first = eab_seal(dir.path()).unwrap();
        let file = dir.path().join(EAB_SEAL_KEY_FILE);
        assert_eq!(mode(&file), 0o600);
        let text = std::fs::read_to_string(&file).unwrap();
        let _second = eab_seal(dir.path()).unwrap();
        assert_eq!(std::fs::read_to_string(&file).unwrap(), text);
        std::fs::write(&file, "short\n").unwrap();
        let err = eab_seal(dir.path()).unwrap_err();
        assert!(format!("{err:#}").contains("32 bytes"), "{err:#}");
    }
}
