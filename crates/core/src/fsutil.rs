//! File safety: private directories and files, atomic writes, and the run lock.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Suffix of files being written; they are never listed and are removed by cleanup.
pub const PARTIAL_SUFFIX: &str = ".partial";

/// An I/O error with the path and the action it concerns.
#[derive(Debug, thiserror::Error)]
#[error("{action} {path}: {source}")]
pub struct FsError {
    pub action: &'static str,
    pub path: PathBuf,
    #[source]
    pub source: io::Error,
}

impl FsError {
    pub fn new(action: &'static str, path: &Path, source: io::Error) -> Self {
        Self {
            action,
            path: path.to_path_buf(),
            source,
        }
    }

    /// True when the disk (or quota) is full.
    pub fn is_disk_full(&self) -> bool {
        self.source.raw_os_error() == Some(28) || self.source.raw_os_error() == Some(122)
    }
}

/// Creates `dir` (and parents) with mode 0700, and tightens an existing one.
pub fn ensure_private_dir(dir: &Path) -> Result<(), FsError> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| FsError::new("creating directory", dir, e))?;
    let meta = std::fs::metadata(dir).map_err(|e| FsError::new("inspecting directory", dir, e))?;
    if meta.permissions().mode() & 0o077 != 0 {
        tracing::warn!(dir = %dir.display(), mode = format!("{:o}", meta.permissions().mode() & 0o777), "tightening directory to 0700");
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| FsError::new("setting mode 0700 on", dir, e))?;
    }
    Ok(())
}

/// Gives `files` (those that exist) the owner of `dir` when they differ: a
/// root shell running `vigil-notify status` or `silence add` must not leave a
/// root-owned database that the `vigil` units can no longer write. Only root
/// can change an owner; for anyone else this is a no-op.
pub fn adopt_dir_owner(dir: &Path, files: &[PathBuf]) {
    use std::os::unix::fs::MetadataExt;
    let Ok(d) = std::fs::metadata(dir) else {
        return;
    };
    for f in files {
        let Ok(m) = std::fs::symlink_metadata(f) else {
            continue;
        };
        if (m.uid(), m.gid()) == (d.uid(), d.gid()) || !m.is_file() {
            continue;
        }
        if let Err(e) = std::os::unix::fs::chown(f, Some(d.uid()), Some(d.gid())) {
            // Not root: the file keeps its owner, as it would without us.
            if e.kind() != std::io::ErrorKind::PermissionDenied {
                tracing::warn!(file = %f.display(), "cannot give it the owner of {}: {e}", dir.display());
            }
        }
    }
}

/// Creates a new file with mode 0600, failing if it exists.
pub fn create_private(path: &Path) -> Result<File, FsError> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| FsError::new("creating", path, e))
}

/// The temporary name a file is written under before it is renamed into place.
pub fn partial_path(final_path: &Path) -> PathBuf {
    let name = final_path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    final_path.with_file_name(format!(".{name}{PARTIAL_SUFFIX}"))
}

/// fsyncs a directory so that a rename in it survives a crash.
pub fn fsync_dir(dir: &Path) -> Result<(), FsError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| FsError::new("syncing directory", dir, e))
}

/// Renames `from` over `to` and fsyncs the directory.
pub fn commit_rename(from: &Path, to: &Path) -> Result<(), FsError> {
    std::fs::rename(from, to).map_err(|e| FsError::new("renaming into place", to, e))?;
    if let Some(dir) = to.parent() {
        fsync_dir(dir)?;
    }
    Ok(())
}

/// Writes `bytes` to `path` atomically: 0600 temp file, fsync, rename, fsync dir.
/// On failure the temp file is removed and `path` is untouched.
pub fn atomic_write(path: &Path, bytes: &[u8]) -> Result<(), FsError> {
    let tmp = partial_path(path);
    let _ = std::fs::remove_file(&tmp);
    let result = (|| {
        let mut f = create_private(&tmp)?;
        f.write_all(bytes)
            .map_err(|e| FsError::new("writing", &tmp, e))?;
        f.sync_all().map_err(|e| FsError::new("syncing", &tmp, e))?;
        commit_rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// An exclusive, non-blocking lock held for the life of the value.
#[derive(Debug)]
pub struct RunLock {
    _file: File,
    pub path: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(
        "another run holds the lock {path} (pid {holder}); it is still running, so this run stops"
    )]
    Held { path: PathBuf, holder: String },
    #[error(transparent)]
    Io(#[from] FsError),
}

impl RunLock {
    /// Takes the lock or reports who holds it. The lock dies with the process,
    /// so a `kill -9` never leaves a stale lock behind.
    pub fn acquire(path: &Path) -> Result<RunLock, LockError> {
        let mut f = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(path)
            .map_err(|e| FsError::new("opening lock file", path, e))?;
        // A root shell (`prune --dry-run`) must not leave a lock the units cannot open.
        if let Some(dir) = path.parent() {
            adopt_dir_owner(dir, &[path.to_path_buf()]);
        }
        match f.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let holder = std::fs::read_to_string(path)
                    .unwrap_or_default()
                    .trim()
                    .to_string();
                return Err(LockError::Held {
                    path: path.to_path_buf(),
                    holder: if holder.is_empty() {
                        "unknown".into()
                    } else {
                        holder
                    },
                });
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(FsError::new("locking", path, e).into())
            }
        }
        f.set_len(0)
            .map_err(|e| FsError::new("writing lock file", path, e))?;
        f.write_all(std::process::id().to_string().as_bytes())
            .map_err(|e| FsError::new("writing lock file", path, e))?;
        Ok(RunLock {
            _file: f,
            path: path.to_path_buf(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_is_private_and_lock_is_exclusive() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("a/b");
        ensure_private_dir(&dir).unwrap();
        assert_eq!(
            std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777,
            0o700
        );
        let p = dir.join("x.json");
        atomic_write(&p, b"{}").unwrap();
        atomic_write(&p, b"{\"a\":1}").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"{\"a\":1}");
        assert_eq!(
            std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert!(!partial_path(&p).exists());

        let lock = dir.join("run.lock");
        let held = RunLock::acquire(&lock).unwrap();
        match RunLock::acquire(&lock) {
            Err(LockError::Held { holder, .. }) => {
                assert_eq!(holder, std::process::id().to_string())
            }
            other => panic!("expected Held, got {other:?}"),
        }
        drop(held);
        RunLock::acquire(&lock).unwrap();
    }
}
