//! Where the log's static files live: a [`Storage`] trait (durable batch writes, reads) and its
//! local filesystem implementation (temp file, fsync, rename, then fsync of the directories).

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};

/// The log's file store. Keys are relative slash-separated paths produced by the log itself
/// (`checkpoint`, `tile/...`, `issuer/<hex>`), never by clients.
///
/// Contract: when [`Storage::put_all`] returns `Ok`, every file in the batch is durable with its
/// full content, and a reader sees either the previous content or the new one, never a mix.
pub trait Storage: Send + Sync + 'static {
    /// Writes every `(key, content)` durably.
    fn put_all(&self, files: &[(String, Vec<u8>)]) -> std::io::Result<()>;
    /// Reads a file; `Ok(None)` if it does not exist.
    fn get(&self, key: &str) -> std::io::Result<Option<Vec<u8>>>;
    /// True if the file exists.
    fn exists(&self, key: &str) -> std::io::Result<bool>;
    /// True if any file's key starts with `prefix/` (e.g. `tile`: the log has written tiles).
    fn any_under(&self, prefix: &str) -> std::io::Result<bool>;
    /// True if a batch of files is not atomic-enough on this storage for the log to write tiles
    /// before the checkpoint's compare-and-swap (object storage): the log then writes one
    /// staging bundle before the compare-and-swap and the files after it (see `s3.rs`).
    fn staged(&self) -> bool {
        false
    }
}

/// Files under a root directory.
#[derive(Debug, Clone)]
pub struct FsStorage {
    root: PathBuf,
}

impl FsStorage {
    /// Storage rooted at `root` (created if missing).
    pub fn new(root: &Path) -> std::io::Result<FsStorage> {
        std::fs::create_dir_all(root)?;
        Ok(FsStorage {
            root: root.to_path_buf(),
        })
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn path(&self, key: &str) -> std::io::Result<PathBuf> {
        let ok = !key.is_empty()
            && key
                .split('/')
                .all(|seg| !seg.is_empty() && seg != "." && seg != "..")
            && !key.contains('\\');
        if !ok {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "invalid storage key",
            ));
        }
        Ok(self.root.join(key))
    }

    fn write_one(&self, key: &str, data: &[u8]) -> std::io::Result<PathBuf> {
        let path = self.path(key)?;
        let dir = path
            .parent()
            .ok_or_else(|| std::io::Error::other("storage key without a parent"))?;
        std::fs::create_dir_all(dir)?;
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| std::io::Error::other("storage key without a file name"))?;
        let tmp = dir.join(format!(".{name}.tmp"));
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, &path)?;
        Ok(dir.to_path_buf())
    }
}

/// Syncs the directory holding `path`, making a rename or creation in it durable.
pub fn sync_parent(path: &Path) -> std::io::Result<()> {
    match path.parent().filter(|d| !d.as_os_str().is_empty()) {
        Some(dir) => sync_dir(dir),
        None => sync_dir(Path::new(".")),
    }
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

impl Storage for FsStorage {
    fn put_all(&self, files: &[(String, Vec<u8>)]) -> std::io::Result<()> {
        if files.is_empty() {
            return Ok(());
        }
        // fsync is latency-bound: spread the files over a few threads.
        let threads = files.len().clamp(1, 8);
        let chunk = files.len().div_ceil(threads);
        let dirs: std::io::Result<BTreeSet<PathBuf>> = std::thread::scope(|s| {
            let handles: Vec<_> = files
                .chunks(chunk)
                .map(|part| {
                    s.spawn(move || {
                        part.iter()
                            .map(|(k, v)| self.write_one(k, v))
                            .collect::<std::io::Result<Vec<PathBuf>>>()
                    })
                })
                .collect();
            let mut dirs = BTreeSet::new();
            for h in handles {
                let written = h
                    .join()
                    .map_err(|_| std::io::Error::other("storage writer thread panicked"))??;
                dirs.extend(written);
            }
            Ok(dirs)
        });
        let dirs = dirs?;
        // Sync every directory that got a new entry, and the directories above them up to the
        // root (they may have been created by this batch).
        let mut all = BTreeSet::new();
        for d in dirs {
            let mut cur = Some(d.as_path());
            while let Some(p) = cur {
                if !p.starts_with(&self.root) {
                    break;
                }
                all.insert(p.to_path_buf());
                if p == self.root {
                    break;
                }
                cur = p.parent();
            }
        }
        for d in &all {
            sync_dir(d)?;
        }
        Ok(())
    }

    fn get(&self, key: &str) -> std::io::Result<Option<Vec<u8>>> {
        match std::fs::read(self.path(key)?) {
            Ok(v) => Ok(Some(v)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn exists(&self, key: &str) -> std::io::Result<bool> {
        self.path(key)?.try_exists()
    }

    fn any_under(&self, prefix: &str) -> std::io::Result<bool> {
        fn any_file(dir: &Path) -> std::io::Result<bool> {
            let entries = match std::fs::read_dir(dir) {
                Ok(entries) => entries,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
                Err(e) => return Err(e),
            };
            for entry in entries {
                let entry = entry?;
                let kind = entry.file_type()?;
                if kind.is_file() || (kind.is_dir() && any_file(&entry.path())?) {
                    return Ok(true);
                }
            }
            Ok(false)
        }
        any_file(&self.path(prefix)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_read_back_and_keys_are_confined() {
        let dir = tempfile::tempdir().unwrap();
        let s = FsStorage::new(dir.path()).unwrap();
        let files: Vec<(String, Vec<u8>)> = (0..20)
            .map(|i| (format!("tile/0/x001/{i:03}"), vec![i as u8; 10]))
            .collect();
        s.put_all(&files).unwrap();
        for (k, v) in &files {
            assert_eq!(s.get(k).unwrap().as_deref(), Some(v.as_slice()));
        }
        s.put_all(&[("checkpoint".into(), b"a".to_vec())]).unwrap();
        s.put_all(&[("checkpoint".into(), b"b".to_vec())]).unwrap();
        assert_eq!(s.get("checkpoint").unwrap().unwrap(), b"b");
        assert_eq!(s.get("missing").unwrap(), None);
        for bad in ["../x", "a//b", "", "/etc/passwd", "a/./b"] {
            assert!(s.get(bad).is_err(), "{bad}");
        }
        assert!(s.any_under("tile").unwrap());
        assert!(s.any_under("tile/0").unwrap());
        assert!(!s.any_under("issuer").unwrap());
        std::fs::create_dir_all(dir.path().join("empty/sub")).unwrap();
        assert!(!s.any_under("empty").unwrap());
    }
}
