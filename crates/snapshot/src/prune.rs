//! `vigil-snapshot prune`: the locks it waits for, and the local half.

use crate::ship::CopyVerdict;
use vigil_archive::local;
use vigil_core::config::{Config, SnapshotConfig};
use vigil_core::fsutil::{describe_holders, Access, ArchivesLock, FsError, LockError, RunLock};

/// The locks of `vigil-snapshot prune`: the run lock, and (unless it only
/// looks) the exclusive archives lock. A human at a shell waits for them,
/// and hears for whom. While drills or scrubs read, the run lock is not held,
/// so a scheduled run is never refused for a prune that is only waiting.
pub fn locks(
    state: &std::path::Path,
    dry_run: bool,
) -> Result<(RunLock, Option<ArchivesLock>), FsError> {
    let run_path = state.join("snapshot.lock");
    let archives = ArchivesLock::path_in(state);
    let (mut told_run, mut told_readers) = (false, false);
    loop {
        let run = RunLock::wait(&run_path, |pid| {
            if !std::mem::replace(&mut told_run, true) {
                eprintln!(
                    "waiting for the vigil-snapshot run holding {} (pid {pid})",
                    run_path.display()
                );
            }
        })?;
        if dry_run {
            return Ok((run, None));
        }
        if let Some(l) = ArchivesLock::try_acquire(&archives, Access::Exclusive)? {
            return Ok((run, Some(l)));
        }
        drop(run);
        // Readers hold it shared; wait until they are done (new ones queue
        // behind this wait), then take the run lock only if it is free: a
        // run must never wait on us while we hold the archives lock.
        let l = ArchivesLock::wait(&archives, Access::Exclusive, None, |h| {
            if !std::mem::replace(&mut told_readers, true) {
                eprintln!(
                    "waiting for the drill/scrub holding {} ({})",
                    archives.display(),
                    describe_holders(h)
                );
            }
        })?
        .ok_or_else(|| FsError::new("locking", &archives, std::io::ErrorKind::TimedOut.into()))?;
        match RunLock::acquire(&run_path) {
            Ok(run) => return Ok((run, Some(l))),
            Err(LockError::Io(e)) => return Err(e),
            Err(LockError::Held { .. }) => drop(l),
        }
    }
}

/// Applies the local retention to every member: the verdict on every
/// local copy (the pruned ones, or with `dry_run` those that would be, are
/// the ones not kept).
pub fn local(
    cfg: &Config,
    sc: &SnapshotConfig,
    dry_run: bool,
) -> Result<Vec<CopyVerdict>, vigil_archive::ArchiveError> {
    let mut out = Vec::new();
    for m in cfg.members() {
        let dir = local::member_dir(&sc.dir, &m.name);
        let v = local::prune_member_explained(&dir, &sc.policy(), &cfg.state.dir, &[], dry_run)?;
        out.extend(v.into_iter().map(|(s, v)| {
            CopyVerdict::new(
                &m.name,
                &s.manifest.id,
                s.archive_path.display().to_string(),
                v,
            )
        }));
    }
    Ok(out)
}

/// The human lines of one store's verdicts: `  keep   (last 5: #2)  <id>  <where>`.
pub fn human_verdicts(verdicts: &[CopyVerdict], dry_run: bool) -> String {
    let mut s = String::new();
    for v in verdicts {
        let action = match (v.keep, dry_run) {
            (true, _) => "keep",
            (false, true) => "delete",
            (false, false) => "deleted",
        };
        let action = if v.held.is_some() { "kept" } else { action };
        let held = v
            .held
            .as_deref()
            .map(|h| format!(" [{h}]"))
            .unwrap_or_default();
        s.push_str(&format!(
            "  {action:<7} ({}){held}  {}  {}\n",
            v.reason, v.id, v.location
        ));
    }
    s
}
