//! File safety: private directories and files, atomic writes, and the run lock.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Suffix of files being written; they are never listed and are removed by cleanup.
pub const PARTIAL_SUFFIX: &str = ".partial";

/// An I/O error with the path and the action it concerns.
#[derive(Debug, thiserror::Error)]
#[error("{action} {path}: {source}{}", self.hint())]
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

    /// What to do about a read-only path: under the package's units it is
    /// the sandbox (`ProtectSystem=strict`), not the filesystem.
    fn hint(&self) -> &'static str {
        if self.source.raw_os_error() == Some(30) {
            "; a unit may write only the paths its config names: after changing one, run `systemctl daemon-reload` (vigil-generator then allows it)"
        } else {
            ""
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

/// A small JSON state file (the cluster pin, the revision seen, the corrupt
/// ledger) that could not be read or did not parse.
#[derive(Debug)]
pub enum StateFileError {
    Fs(FsError),
    Parse { path: PathBuf, message: String },
}

/// Reads a JSON state file; a missing one is `None`.
pub fn read_state_json<T: serde::de::DeserializeOwned>(
    path: &Path,
) -> Result<Option<T>, StateFileError> {
    match std::fs::read(path) {
        Ok(b) => serde_json::from_slice(&b)
            .map(Some)
            .map_err(|e| StateFileError::Parse {
                path: path.to_path_buf(),
                message: e.to_string(),
            }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(StateFileError::Fs(FsError::new("reading", path, e))),
    }
}

/// Writes `value` as JSON with [`atomic_write`] and gives the file the state
/// dir's owner, so a root shell never leaves one the units cannot rewrite.
pub fn write_state_json<T: serde::Serialize>(
    state_dir: &Path,
    path: &Path,
    value: &T,
) -> Result<(), FsError> {
    let mut bytes = serde_json::to_vec_pretty(value).unwrap_or_default();
    bytes.push(b'\n');
    atomic_write(path, &bytes)?;
    adopt_dir_owner(state_dir, &[path.to_path_buf()]);
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

/// The lock file, in `state.dir`, between the jobs that read archives
/// (scrub, drill, fetch, etcd, rke2: shared) and the ones that delete them
/// (the prune phase of a run, `vigil-snapshot prune`: exclusive). Without it
/// a scrub or drill that listed an archive a prune then removed reports it
/// missing: a false alarm about a healthy store.
pub const ARCHIVES_LOCK: &str = "archives.lock";

/// How long a run waits for readers before it keeps this run's extra copies
/// and leaves pruning to the next run (nothing is lost by keeping one more).
pub const PRUNE_WAIT: Duration = Duration::from_secs(60);

const LOCK_POLL: Duration = Duration::from_millis(200);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Shared,
    Exclusive,
}

/// A process that holds a lock, named in the messages of whoever waits for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    pub pid: u32,
    /// Its command name (`vigil-restore`), when /proc tells.
    pub name: String,
}

/// `pid 4242 (vigil-restore), pid 4250 (vigil-snapshot)`, or `pid unknown`.
pub fn describe_holders(holders: &[Holder]) -> String {
    if holders.is_empty() {
        return "pid unknown".into();
    }
    holders
        .iter()
        .map(|h| {
            if h.name.is_empty() {
                format!("pid {}", h.pid)
            } else {
                format!("pid {} ({})", h.pid, h.name)
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The processes holding an flock on `path`, from /proc/locks. Shared
/// holders cannot all write their pid into one file, so the kernel's table
/// is the only complete answer. Empty when it cannot be read.
pub fn lock_holders(path: &Path) -> Vec<Holder> {
    use std::os::unix::fs::MetadataExt;
    let (Ok(meta), Ok(table)) = (
        std::fs::metadata(path),
        std::fs::read_to_string("/proc/locks"),
    ) else {
        return Vec::new();
    };
    // /proc/locks prints st_dev as MAJOR:MINOR in hex (glibc's encoding).
    let dev = meta.dev();
    let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff);
    let minor = (dev & 0xff) | ((dev >> 12) & !0xff);
    let mut pids: Vec<u32> = table
        .lines()
        .filter_map(|l| {
            // "3: FLOCK  ADVISORY  READ 4242 fd:01:1234 0 EOF"; waiters
            // ("3: -> FLOCK ...") do not hold it.
            let f: Vec<&str> = l.split_whitespace().collect();
            if f.get(1) != Some(&"FLOCK") {
                return None;
            }
            let pid: u32 = f.get(4)?.parse().ok()?;
            let mut id = f.get(5)?.split(':');
            let maj = u64::from_str_radix(id.next()?, 16).ok()?;
            let min = u64::from_str_radix(id.next()?, 16).ok()?;
            let ino: u64 = id.next()?.parse().ok()?;
            (maj == major && min == minor && ino == meta.ino()).then_some(pid)
        })
        .collect();
    pids.sort_unstable();
    pids.dedup();
    pids.into_iter()
        .map(|pid| Holder {
            pid,
            name: std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .map(|s| s.trim().to_string())
                .unwrap_or_default(),
        })
        .collect()
}

/// A shared or exclusive flock on [`ARCHIVES_LOCK`], held for the life of the
/// value. It dies with the process (a `kill -9` leaves no stale lock), and the
/// descriptor is close-on-exec, so a child such as the drill's scratch etcd
/// never keeps it alive.
#[derive(Debug)]
pub struct ArchivesLock {
    _file: File,
    pub path: PathBuf,
    pub access: Access,
}

impl ArchivesLock {
    pub fn path_in(state_dir: &Path) -> PathBuf {
        state_dir.join(ARCHIVES_LOCK)
    }

    /// Opens (or creates, 0600, with the state dir's owner) the lock file.
    /// Someone who may read the state dir but not write it still locks
    /// through a read-only descriptor: flock needs no write access.
    fn open(path: &Path) -> Result<File, FsError> {
        let rw = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(path);
        match rw {
            Ok(f) => {
                // A root shell must not leave a lock the units cannot open.
                if let Some(dir) = path.parent() {
                    adopt_dir_owner(dir, &[path.to_path_buf()]);
                }
                Ok(f)
            }
            Err(e) => File::open(path).map_err(|_| FsError::new("opening lock file", path, e)),
        }
    }

    /// Takes the lock if nobody holds it in a conflicting way.
    pub fn try_acquire(path: &Path, access: Access) -> Result<Option<ArchivesLock>, FsError> {
        let f = Self::open(path)?;
        let r = match access {
            Access::Shared => f.try_lock_shared(),
            Access::Exclusive => f.try_lock(),
        };
        match r {
            Ok(()) => Ok(Some(ArchivesLock {
                _file: f,
                path: path.to_path_buf(),
                access,
            })),
            Err(std::fs::TryLockError::WouldBlock) => Ok(None),
            Err(std::fs::TryLockError::Error(e)) => Err(FsError::new("locking", path, e)),
        }
    }

    /// Beside the lock: a deleter holds it exclusive while it waits, and
    /// readers pass it shared on their way in, so that new readers queue
    /// behind a waiting prune instead of keeping it out for ever (back-to-back
    /// drills and scrubs would otherwise starve it).
    pub fn gate_path(path: &Path) -> PathBuf {
        path.with_extension("gate")
    }

    /// Waits for the lock, at most `limit` (`None`: as long as it takes).
    /// `on_wait` hears once who holds it, if it is held. `Ok(None)`: still
    /// held when `limit` ran out.
    pub fn wait(
        path: &Path,
        access: Access,
        limit: Option<Duration>,
        on_wait: impl FnOnce(&[Holder]),
    ) -> Result<Option<ArchivesLock>, FsError> {
        let t0 = std::time::Instant::now();
        let expired = || limit.is_some_and(|l| t0.elapsed() >= l);
        let mut on_wait = Some(on_wait);
        let gate_path = Self::gate_path(path);
        let mut blocked = |on: &Path| {
            if let Some(f) = on_wait.take() {
                let mut h = lock_holders(on);
                // A prune queued behind another one waits for the readers too.
                if access == Access::Exclusive && on == gate_path {
                    h.extend(lock_holders(path));
                    h.sort_by_key(|x| x.pid);
                    h.dedup();
                }
                f(&h);
            }
        };
        // No gate (a read-only state dir): readers just do not queue.
        let gate = Self::open(&gate_path).ok();
        if let Some(g) = &gate {
            loop {
                let r = match access {
                    Access::Shared => g.try_lock_shared(),
                    Access::Exclusive => g.try_lock(),
                };
                match r {
                    Ok(()) => break,
                    Err(std::fs::TryLockError::WouldBlock) => {}
                    Err(std::fs::TryLockError::Error(e)) => {
                        return Err(FsError::new("locking", &gate_path, e))
                    }
                }
                blocked(&gate_path);
                if expired() {
                    return Ok(None);
                }
                // A reader queues behind a waiting prune for PRUNE_WAIT at
                // most, so that a prune waiting on a long scrub (a human's
                // `vigil-snapshot prune`) does not hold up a drill for hours.
                if access == Access::Shared && t0.elapsed() >= PRUNE_WAIT {
                    break;
                }
                std::thread::sleep(LOCK_POLL);
            }
        }
        loop {
            // The gate goes when this returns: once in, nobody needs to queue.
            if let Some(l) = Self::try_acquire(path, access)? {
                return Ok(Some(l));
            }
            blocked(path);
            if expired() {
                return Ok(None);
            }
            std::thread::sleep(LOCK_POLL);
        }
    }

    /// The shared lock of a job that reads archives, waiting for a prune in
    /// progress to finish (prunes are short). A lock that cannot be made (no
    /// state dir yet, a config whose state dir this user cannot write: a
    /// restore at 3 a.m. on a fresh host) is no reason to fail a read: it is
    /// only a warning, and the read goes on without it.
    pub fn for_reading(state_dir: &Path) -> Option<ArchivesLock> {
        let path = Self::path_in(state_dir);
        let r = Self::wait(&path, Access::Shared, None, |h| {
            tracing::info!(
                "waiting for the prune holding {} ({}) to finish",
                path.display(),
                describe_holders(h)
            )
        });
        match r {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!("{e}; going on without the archives lock, so a prune on this host could remove an archive while it is read");
                None
            }
        }
    }
}

impl RunLock {
    /// Waits as long as it takes for the run lock; `on_wait` hears once the
    /// holder's pid. For a human at a shell (`vigil-snapshot prune`), who
    /// would rather wait for a run to end than be refused.
    pub fn wait(path: &Path, on_wait: impl FnOnce(&str)) -> Result<RunLock, FsError> {
        let mut on_wait = Some(on_wait);
        loop {
            match Self::acquire(path) {
                Ok(l) => return Ok(l),
                Err(LockError::Io(e)) => return Err(e),
                Err(LockError::Held { holder, .. }) => {
                    if let Some(f) = on_wait.take() {
                        f(&holder);
                    }
                    std::thread::sleep(LOCK_POLL);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_read_only_path_says_what_to_do() {
        let p = Path::new("/srv/vigil/snapshots");
        let ro =
            FsError::new("creating directory", p, io::Error::from_raw_os_error(30)).to_string();
        assert!(
            ro.starts_with("creating directory /srv/vigil/snapshots: Read-only file system"),
            "{ro}"
        );
        assert!(ro.contains("systemctl daemon-reload"), "{ro}");
        let other =
            FsError::new("creating directory", p, io::Error::from_raw_os_error(13)).to_string();
        assert!(!other.contains("daemon-reload"), "{other}");
    }

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

    #[test]
    fn archives_lock_is_shared_between_readers_and_exclusive_for_prunes() {
        let d = tempfile::tempdir().unwrap();
        let path = ArchivesLock::path_in(d.path());
        let r1 = ArchivesLock::try_acquire(&path, Access::Shared)
            .unwrap()
            .unwrap();
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let r2 = ArchivesLock::try_acquire(&path, Access::Shared).unwrap();
        assert!(r2.is_some(), "two readers at once");
        assert!(ArchivesLock::try_acquire(&path, Access::Exclusive)
            .unwrap()
            .is_none());
        // A bounded wait gives up, and names the holder (this process).
        let mut named = Vec::new();
        let t0 = std::time::Instant::now();
        let w = ArchivesLock::wait(
            &path,
            Access::Exclusive,
            Some(Duration::from_millis(500)),
            |h| named = h.to_vec(),
        )
        .unwrap();
        assert!(w.is_none());
        assert!(t0.elapsed() >= Duration::from_millis(500));
        assert!(
            named.iter().any(|h| h.pid == std::process::id()),
            "{named:?}"
        );
        assert!(describe_holders(&named).contains(&format!("pid {}", std::process::id())));
        // A waiting prune holds the gate: a reader arriving now queues
        // behind it (writer preference), the readers already in finish.
        let writer = std::thread::spawn({
            let path = path.clone();
            move || {
                ArchivesLock::wait(
                    &path,
                    Access::Exclusive,
                    Some(Duration::from_secs(10)),
                    |_| {},
                )
                .unwrap()
                .is_some()
            }
        });
        std::thread::sleep(Duration::from_millis(500));
        let late = ArchivesLock::wait(
            &path,
            Access::Shared,
            Some(Duration::from_millis(300)),
            |_| {},
        )
        .unwrap();
        assert!(late.is_none(), "a new reader overtook the waiting prune");
        drop((r1, r2));
        assert!(writer.join().unwrap(), "the prune never got in");
        let ex = ArchivesLock::wait(&path, Access::Exclusive, Some(Duration::ZERO), |_| {})
            .unwrap()
            .unwrap();
        assert!(ArchivesLock::try_acquire(&path, Access::Shared)
            .unwrap()
            .is_none());
        drop(ex);
        assert!(lock_holders(&path).is_empty());
        // No state dir: readers go on without the lock.
        assert!(ArchivesLock::for_reading(&d.path().join("missing")).is_none());
    }
}
