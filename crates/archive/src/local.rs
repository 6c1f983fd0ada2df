//! The local archive store: `<snapshot.dir>/<member>/<id>.db.zst.age` with
//! `<id>.db.zst.age.json` beside it. The manifest is written last, so an
//! archive without a manifest is the leftover of a crash and is removed.

use crate::ArchiveError;
use std::path::{Path, PathBuf};
use vigil_core::corrupt::{self, Ledger, LedgerError};
use vigil_core::fsutil::{self, FsError, PARTIAL_SUFFIX};
use vigil_core::manifest::{self, Manifest};
use vigil_core::pin;
use vigil_core::protect;
use vigil_core::retention::{self, Candidate, KeepPolicy, Verdict};

pub const EXT_AGE: &str = ".db.zst.age";
pub const EXT_PLAIN: &str = ".db.zst";

/// File name of an archive with the given id.
pub fn archive_name(id: &str, encrypted: bool) -> String {
    format!("{id}{}", if encrypted { EXT_AGE } else { EXT_PLAIN })
}

pub fn member_dir(root: &Path, member: &str) -> PathBuf {
    root.join(member)
}

/// An archive file and its manifest in the local snapshot dir.
#[derive(Debug, Clone)]
pub struct LocalArchive {
    pub member_dir_name: String,
    pub archive_path: PathBuf,
    pub manifest_path: PathBuf,
    pub manifest: Manifest,
}

impl LocalArchive {
    /// Verified, and the file is still there with the recorded size.
    pub fn is_verified(&self) -> bool {
        self.manifest.verified_at.is_some()
            && std::fs::metadata(&self.archive_path)
                .is_ok_and(|m| m.len() == self.manifest.archive_size)
    }
}

fn is_archive_name(name: &str) -> bool {
    !name.starts_with('.') && (name.ends_with(EXT_AGE) || name.ends_with(EXT_PLAIN))
}

/// Lists one member directory, newest first (by etcd revision, not by a
/// clock that may have been wrong). Unreadable manifests are
/// reported as warnings and skipped, never deleted.
pub fn list_member(dir: &Path) -> Vec<LocalArchive> {
    let member = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(archive) = name.strip_suffix(manifest::SUFFIX) else {
            continue;
        };
        if !is_archive_name(archive) {
            continue;
        }
        let manifest_path = e.path();
        match Manifest::read(&manifest_path) {
            Ok(m) => out.push(LocalArchive {
                member_dir_name: member.clone(),
                archive_path: dir.join(archive),
                manifest_path,
                manifest: m,
            }),
            Err(err) => tracing::warn!("{err}; skipping it"),
        }
    }
    out.sort_by(|a, b| retention::newest_first_manifest(&a.manifest, &b.manifest));
    out
}

/// Lists every member directory under the snapshot root.
pub fn list_all(root: &Path) -> Vec<LocalArchive> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(root)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.path())
        .collect();
    dirs.sort();
    dirs.iter().flat_map(|d| list_member(d)).collect()
}

/// Removes what crashed runs left: temp files, and archives whose manifest
/// was never written. Call only while holding the run lock.
pub fn cleanup_member(dir: &Path) -> Result<Vec<PathBuf>, FsError> {
    let mut removed = Vec::new();
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Ok(removed);
    };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let path = e.path();
        let orphan = is_archive_name(&name) && !Manifest::path_for(&path).exists();
        if name.ends_with(PARTIAL_SUFFIX) || orphan {
            std::fs::remove_file(&path)
                .map_err(|err| FsError::new("removing leftover", &path, err))?;
            removed.push(path);
        }
    }
    if !removed.is_empty() {
        fsutil::fsync_dir(dir)?;
    }
    Ok(removed)
}

/// Applies the retention policy to one member directory. The manifest goes first, so
/// a crash in between leaves an orphan that cleanup removes, never a
/// manifest that points at nothing.
///
/// `made` are the archives the current run wrote: never pruned, whatever
/// the clocks say. Copies in the corrupt-copy ledger of `state_dir` are not
/// counted and not pruned; the pinned cluster ID there orders archives of a
/// replaced cluster before the current one's; archives pinned in its
/// `protected.json` stay. An unreadable ledger, pin or protections file
/// prunes nothing.
pub fn prune_member(
    dir: &Path,
    policy: &KeepPolicy,
    state_dir: &Path,
    made: &[PathBuf],
    dry_run: bool,
) -> Result<Vec<LocalArchive>, ArchiveError> {
    Ok(
        prune_member_explained(dir, policy, state_dir, made, dry_run)?
            .into_iter()
            .filter(|(_, v)| !v.keep)
            .map(|(s, _)| s)
            .collect(),
    )
}

/// [`prune_member`], with the verdict on every archive of the member
/// (newest first): the pruned ones are those not kept.
pub fn prune_member_explained(
    dir: &Path,
    policy: &KeepPolicy,
    state_dir: &Path,
    made: &[PathBuf],
    dry_run: bool,
) -> Result<Vec<(LocalArchive, Verdict)>, ArchiveError> {
    let setup = |message: String| ArchiveError::Setup {
        what: "retention",
        message,
    };
    let ledger = Ledger::load(state_dir).map_err(|e| match e {
        LedgerError::Fs(f) => ArchiveError::Fs(f),
        e @ LedgerError::Parse { .. } => setup(e.to_string()),
    })?;
    // Which cluster generation each archive is of (fail closed, like the ledger).
    let pin = pin::load(state_dir).map_err(|e| setup(e.to_string()))?;
    let kept = protect::load(state_dir).map_err(|e| setup(e.to_string()))?;
    let all = list_member(dir)
        .into_iter()
        .map(|s| {
            let bad = ledger.is_bad(corrupt::LOCAL, &s.manifest.archive);
            if bad {
                tracing::warn!(
                    "{}: scrub found it corrupt; it does not count as a copy and stays as evidence",
                    s.archive_path.display()
                );
            }
            let (verified, pinned) = (s.is_verified() && !bad, made.contains(&s.archive_path));
            let label = kept.pinned(&s.manifest.id);
            Candidate::of(&s.manifest.clone(), pin.as_ref(), verified, pinned, s).protected(label)
        })
        .collect();
    let verdicts = retention::explain(all, policy);
    let mut out = Vec::with_capacity(verdicts.len());
    let mut removed = false;
    for (c, v) in verdicts {
        let s = c.item;
        if !v.keep && !dry_run {
            remove(&s)?;
            removed = true;
        }
        out.push((s, v));
    }
    if removed {
        fsutil::fsync_dir(dir)?;
    }
    Ok(out)
}

/// Removes one local archive, its manifest first (see [`prune_member`]);
/// the caller syncs the directory.
pub fn remove(s: &LocalArchive) -> Result<(), FsError> {
    std::fs::remove_file(&s.manifest_path)
        .map_err(|e| FsError::new("removing", &s.manifest_path, e))?;
    std::fs::remove_file(&s.archive_path).map_err(|e| FsError::new("removing", &s.archive_path, e))
}
