//! The run's side of the restore proof (issue 19): where the plaintext goes
//! (a private dir on a tmpfs, never a disk), the janitor that removes it and
//! kills the scratch etcd should vigil-snapshot die, and one proof per member.
//! The proof itself is [`vigil_restore::proof`].

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use vigil_core::config::{MemberConfig, SnapshotConfig};
use vigil_core::manifest::{ProofResult, RestoreProof};
use vigil_core::Config;
use vigil_etcd::{MemberClient, TlsMaterial};
use vigil_restore::guard::Janitor;
use vigil_restore::proof::Prover;

/// `statfs` f_type of tmpfs and ramfs (linux/magic.h).
const TMPFS_MAGIC: i64 = 0x0102_1994;
const RAMFS_MAGIC: i64 = 0x8584_58f6;
/// Run dirs are `<root>/vigil-proof-<pid>`.
const PREFIX: &str = "vigil-proof-";
/// The member's plaintext stream in its proof dir.
const SNAPSHOT: &str = "snapshot.db";

/// This run's proofs: ready, or why none can run.
#[derive(Debug)]
pub enum Proofs {
    Off,
    Ready(Box<Ready>),
    /// Proofs are on but cannot run (no tools, not a tmpfs): every member's
    /// proof fails with this check and message, so the alert says why.
    Broken {
        check: &'static str,
        error: String,
    },
}

#[derive(Debug)]
pub struct Ready {
    prover: Prover,
    dir: PathBuf,
    max_db_size: u64,
    members: Vec<MemberConfig>,
    janitor: std::sync::Mutex<Option<Janitor>>,
    /// Proofs in flight, `max_concurrent_members` at most: a member's
    /// plaintext goes to the tmpfs only once a slot is free, so with the
    /// default of one the tmpfs holds one database (about 2.3x its size at
    /// the peak, BENCHMARKS.md), not the three that overlapping proofs held.
    slot: Arc<tokio::sync::Semaphore>,
}

impl Proofs {
    pub fn prepare(cfg: &Config, sc: &SnapshotConfig) -> Proofs {
        let pr = &sc.prove_restore;
        if !pr.enabled {
            return Proofs::Off;
        }
        let root = pr.root();
        if let Err(e) = check_tmpfs(&root) {
            return Proofs::Broken {
                check: "dir",
                error: e.to_string(),
            };
        }
        let prover = match Prover::new(&cfg.restore(), pr) {
            Ok(p) => p,
            Err(e) => {
                return Proofs::Broken {
                    check: "tools",
                    error: e.to_string(),
                }
            }
        };
        for line in reap_stale(&root) {
            tracing::warn!("restore proof: {line}");
        }
        let dir = root.join(format!("{PREFIX}{}", std::process::id()));
        let made = std::fs::DirBuilder::new().mode(0o700).create(&dir);
        if let Err(e) = made {
            return Proofs::Broken {
                check: "dir",
                error: format!(
                    "creating {} (snapshot.prove_restore.dir): {e}",
                    dir.display()
                ),
            };
        }
        // Should this process die (SIGKILL, OOM), the janitor kills the
        // scratch etcd and removes every plaintext byte.
        let janitor = Janitor::spawn(None).and_then(|mut j| j.guard(&dir).map(|()| j));
        let janitor = match janitor {
            Ok(j) => j,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&dir);
                return Proofs::Broken {
                    check: "dir",
                    error: format!("starting the proof's janitor: {e}"),
                };
            }
        };
        tracing::info!(
            "restore proofs in {} with {}",
            dir.display(),
            prover.tools()
        );
        Proofs::Ready(Box::new(Ready {
            prover,
            dir,
            max_db_size: pr.max_db_size.0,
            members: cfg.members().cloned().collect(),
            janitor: std::sync::Mutex::new(Some(janitor)),
            slot: Arc::new(tokio::sync::Semaphore::new(
                sc.max_concurrent_members.max(1) as usize,
            )),
        }))
    }

    /// Where the member's plaintext goes while it streams, or the
    /// manifest's record of why it is not proven. Waits for a proof slot.
    pub async fn start(&self, member: &str, db_size: i64) -> Start {
        let r = match self {
            Proofs::Off => return Start::Off,
            Proofs::Broken { check, error } => {
                return Start::Record(Box::new(failed(check, error.clone())));
            }
            Proofs::Ready(r) => r,
        };
        if db_size > 0 && db_size as u64 > r.max_db_size {
            return Start::Record(Box::new(skipped(member, db_size as u64, r.max_db_size)));
        }
        if let Some(why) = too_small(&r.dir, member, db_size.max(0) as u64) {
            tracing::warn!(member, "restore proof {why}");
            return Start::Record(Box::new(RestoreProof {
                result: ProofResult::Skipped,
                error: Some(why),
                ..Default::default()
            }));
        }
        let slot = match r.slot.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                tracing::info!(
                    member,
                    "waiting for a restore proof to end (snapshot.max_concurrent_members proofs at a time)"
                );
                match r.slot.clone().acquire_owned().await {
                    Ok(p) => p,
                    Err(e) => {
                        return Start::Record(Box::new(failed("dir", format!("internal: {e}"))))
                    }
                }
            }
        };
        let dir = r.dir.join(member);
        let _ = std::fs::remove_dir_all(&dir);
        let opened = std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&dir)
            .and_then(|()| {
                std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(dir.join(SNAPSHOT))
            });
        match opened {
            Ok(file) => Start::Tee(Tee {
                dir,
                member: member.to_string(),
                file: Some(file),
                error: None,
                written: 0,
                limit: r.max_db_size,
                _slot: slot,
            }),
            Err(e) => Start::Record(Box::new(failed(
                "dir",
                format!("creating {}: {e}", dir.display()),
            ))),
        }
    }

    /// Runs the proof of a member whose stream went into `tee`, and removes
    /// the plaintext whatever happens.
    pub async fn prove(
        &self,
        mut tee: Tee,
        live: &MemberClient,
        tls: Option<&TlsMaterial>,
        connect_timeout: std::time::Duration,
        before: Option<vigil_restore::proof::Before>,
        snapshot_version: String,
    ) -> RestoreProof {
        let Proofs::Ready(r) = self else {
            return failed("dir", "internal: no proof dir".into());
        };
        if tee.written > tee.limit {
            return skipped(&tee.member, tee.written, tee.limit);
        }
        if let Some(e) = &tee.error {
            return failed(
                "dir",
                format!(
                    "writing the plaintext to {}: {e} (the tmpfs is too small? see snapshot.prove_restore.max_db_size)",
                    tee.dir.display()
                ),
            );
        }
        let mut peers = Vec::new();
        for m in r.members.iter().filter(|m| m.name != live.name) {
            match vigil_etcd::connect(m, tls, connect_timeout).await {
                Ok(c) => peers.push(c),
                Err(e) => {
                    tracing::info!(member = %live.name, "restore proof: {e}; not compared with {}", m.name)
                }
            }
        }
        tee.file = None;
        let prover = r.prover.clone();
        let live = live.clone();
        let dir = tee.dir.clone();
        let proof = tokio::task::spawn_blocking(move || {
            let mut p = prover.prove(&dir.join(SNAPSHOT), &dir, &live, &peers, before);
            if let Some(n) = prover.version_note(&snapshot_version) {
                p.notes.push(n);
            }
            // The scratch etcd has been killed (Drop); now the plaintext goes.
            for line in vigil_restore::guard::reap(std::slice::from_ref(&dir)) {
                tracing::debug!("restore proof: {line}");
            }
            p
        })
        .await;
        match proof {
            Ok(p) => p,
            Err(e) => failed("start", format!("the proof crashed: {e}")),
        }
    }

    /// Removes this run's proof dir and releases the janitor.
    pub fn finish(&self) {
        if let Proofs::Ready(r) = self {
            let _ = std::fs::remove_dir_all(&r.dir);
            if let Some(j) = r.janitor.lock().ok().and_then(|mut j| j.take()) {
                j.done();
            }
        }
    }
}

/// What a member's proof starts with.
#[derive(Debug)]
pub enum Start {
    /// Proofs are off: the manifest records nothing.
    Off,
    /// Not proven, and why (failed or skipped), for the manifest.
    Record(Box<RestoreProof>),
    /// Copy the stream here, then prove it.
    Tee(Tee),
}

/// The plaintext copy of one member's stream, written as it streams. A
/// failed write (a full tmpfs) fails only the proof, never the archive.
#[derive(Debug)]
pub struct Tee {
    dir: PathBuf,
    member: String,
    file: Option<std::fs::File>,
    error: Option<std::io::Error>,
    written: u64,
    /// `max_db_size`: the status's db size can lag behind the stream.
    limit: u64,
    /// The proof slot, held until the proof is over (the tee drops).
    _slot: tokio::sync::OwnedSemaphorePermit,
}

impl Tee {
    pub fn write(&mut self, chunk: &[u8]) {
        self.written += chunk.len() as u64;
        if self.written > self.limit && self.file.is_some() {
            self.file = None;
            let _ = std::fs::remove_file(self.dir.join(SNAPSHOT));
        }
        if let Some(f) = &mut self.file {
            if let Err(e) = f.write_all(chunk) {
                self.error = Some(e);
                self.file = None;
            }
        }
    }
}

impl Drop for Tee {
    /// Whatever ended the member's pipeline, its plaintext goes with it.
    fn drop(&mut self) {
        self.file = None;
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn skipped(member: &str, size: u64, limit: u64) -> RestoreProof {
    let why = format!(
        "skipped: the database of member {member} is {}, more than snapshot.prove_restore.max_db_size = {} (a proof holds about 2.3 times the database in memory)",
        vigil_core::units::human_bytes(size),
        vigil_core::units::human_bytes(limit)
    );
    tracing::warn!(member, "restore proof {why}");
    RestoreProof {
        result: ProofResult::Skipped,
        error: Some(why),
        ..Default::default()
    }
}

fn failed(check: &str, error: String) -> RestoreProof {
    RestoreProof {
        result: ProofResult::Failed,
        check: Some(check.to_string()),
        error: Some(error),
        ..Default::default()
    }
}

/// A proof holds the plaintext and then the restored copy: twice the
/// database, plus the two 64 MB WAL files etcd preallocates, plus a margin.
/// A tmpfs without room for that skips the proof with the figures, rather
/// than failing it.
fn too_small(dir: &Path, member: &str, db_size: u64) -> Option<String> {
    let st = rustix::fs::statvfs(dir).ok()?;
    let free = st.f_bavail.saturating_mul(st.f_frsize);
    let need = db_size.saturating_mul(2) + (128 << 20) + (64 << 20);
    (free < need).then(|| {
        format!(
            "skipped: {} has {} free, and the proof of member {member}'s {} database needs about {}; set snapshot.prove_restore.dir to a larger tmpfs (e.g. /dev/shm) or lower the database size (compact and defragment)",
            dir.display(),
            vigil_core::units::human_bytes(free),
            vigil_core::units::human_bytes(db_size),
            vigil_core::units::human_bytes(need)
        )
    })
}

/// Why the proof dir may not hold the plaintext.
#[derive(Debug, thiserror::Error)]
enum TmpfsError {
    #[error("snapshot.prove_restore.dir {}: {source}; set it to a tmpfs directory (the vigil-snapshot unit provides /run/vigil-proof, a tmpfs of its own)", dir.display())]
    Statfs {
        dir: PathBuf,
        source: rustix::io::Errno,
    },
    #[error("snapshot.prove_restore.dir {} is not on a tmpfs (filesystem type {fs_type:#x}): the proof's plaintext must never reach a disk; set it to a tmpfs directory, e.g. /dev/shm, or leave it unset under the package's units", dir.display())]
    NotTmpfs { dir: PathBuf, fs_type: i64 },
}

/// The plaintext must not reach a persistent disk: refuse anything but tmpfs.
fn check_tmpfs(root: &Path) -> Result<(), TmpfsError> {
    let st = rustix::fs::statfs(root).map_err(|source| TmpfsError::Statfs {
        dir: root.to_path_buf(),
        source,
    })?;
    let t = st.f_type as i64;
    if t != TMPFS_MAGIC && t != RAMFS_MAGIC {
        return Err(TmpfsError::NotTmpfs {
            dir: root.to_path_buf(),
            fs_type: t,
        });
    }
    Ok(())
}

/// Proof dirs of runs that died with their janitor (a power cut, the whole
/// cgroup killed): removed, with whatever still runs on them.
fn reap_stale(root: &Path) -> Vec<String> {
    let mut stale = Vec::new();
    for e in std::fs::read_dir(root).into_iter().flatten().flatten() {
        let name = e.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix(PREFIX))
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
            stale.push(e.path());
        }
    }
    if stale.is_empty() {
        return Vec::new();
    }
    vigil_restore::guard::reap(&stale)
}
