//! A drill run's private scratch dir, locked for the run's life and
//! watched by a janitor, and the reaping of what dead runs left.

use crate::RestoreError;
use std::path::{Path, PathBuf};
use std::time::Instant;
use vigil_core::outcome::{Outcome, Stage};
use vigil_core::Config;

/// Name of the record a run leaves for its janitor (and the next drill): the
/// failed outcome of the member in progress, should the run die now.
const KILLED: &str = "killed.json";

/// One drill run's private scratch dir `<root>/<run id>-<pid>/`, locked for
/// the run's life and watched by a janitor. A lock on `<root>` orders the
/// start of concurrent drills, so that a starting drill reaps only dead runs.
pub(super) struct RunDir<'a> {
    cfg: &'a Config,
    run_id: String,
    dir: PathBuf,
    _lock: std::fs::File,
    janitor: Option<crate::guard::Janitor>,
    /// The member in progress and when it started.
    current: std::cell::RefCell<Option<(String, Instant)>>,
}

fn fs_err<'p>(what: &'static str, p: &'p Path) -> impl FnOnce(std::io::Error) -> RestoreError + 'p {
    move |e| vigil_core::fsutil::FsError::new(what, p, e).into()
}

impl<'a> RunDir<'a> {
    pub(super) fn create(
        cfg: &'a Config,
        root: &Path,
        run_id: &str,
    ) -> Result<RunDir<'a>, RestoreError> {
        use std::os::unix::fs::DirBuilderExt;
        vigil_core::fsutil::ensure_private_dir(root)?;
        // The root dir itself is the lock: nothing is left in it after a run.
        let root_lock = std::fs::File::open(root).map_err(fs_err("opening", root))?;
        root_lock.lock().map_err(fs_err("locking", root))?;
        reap_stale(cfg, root);
        let dir = root.join(format!("{run_id}-{}", std::process::id()));
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&dir)
            .map_err(fs_err("creating scratch dir", &dir))?;
        let lock = std::fs::File::open(&dir).map_err(fs_err("opening", &dir))?;
        lock.try_lock()
            .map_err(|e| RestoreError::Failed(format!("locking {}: {e}", dir.display())))?;
        let mut janitor = crate::guard::Janitor::spawn(Some(&cfg.path))
            .map_err(|e| RestoreError::Failed(format!("starting the drill's janitor: {e}")))?;
        janitor
            .guard(&dir)
            .and_then(|()| janitor.outcome(&dir.join(KILLED)))
            .map_err(|e| RestoreError::Failed(format!("briefing the drill's janitor: {e}")))?;
        drop(root_lock);
        Ok(RunDir {
            cfg,
            run_id: run_id.to_string(),
            dir,
            _lock: lock,
            janitor: Some(janitor),
            current: Default::default(),
        })
    }

    /// A fresh private dir for `member`'s scratch data.
    pub(super) fn member(&self, member: &str) -> Result<PathBuf, RestoreError> {
        let d = self.dir.join(member);
        vigil_core::fsutil::ensure_private_dir(&d)?;
        *self.current.borrow_mut() = Some((member.to_string(), Instant::now()));
        self.at(Stage::Stream);
        Ok(d)
    }

    /// The member in progress reached `stage`: that is what the record left
    /// for the janitor says, should the drill die now.
    pub(super) fn at(&self, stage: Stage) {
        let cur = self.current.borrow();
        let Some((member, started)) = cur.as_ref() else {
            return;
        };
        let o = Outcome {
            proof: None,
            job: vigil_core::jobs::Source::Drill,
            run_id: self.run_id.clone(),
            cluster: self.cfg.cluster_name().to_string(),
            subject: member.clone(),
            ok: false,
            stage,
            error: Some(format!(
                "the drill (run {}, pid {}) ended before it finished with {member}, at stage {stage}: \
                 it was killed or stopped. Its scratch data was removed",
                self.run_id,
                std::process::id()
            )),
            archive: None,
            time: vigil_core::rfc3339(vigil_core::now()),
            duration_ms: started.elapsed().as_millis() as u64,
        };
        let json = serde_json::to_vec(&o).unwrap_or_default();
        if let Err(e) = vigil_core::fsutil::atomic_write(&self.dir.join(KILLED), &json) {
            tracing::warn!("{e}");
        }
    }

    /// The member's drill ended (its own outcome follows): remove its data.
    pub(super) fn member_done(&self, scratch: &Path) {
        let _ = std::fs::remove_file(self.dir.join(KILLED));
        *self.current.borrow_mut() = None;
        if let Err(e) = std::fs::remove_dir_all(scratch) {
            tracing::error!("removing the scratch dir {}: {e}", scratch.display());
        }
    }

    pub(super) fn finish(mut self) {
        self.remove();
        if let Some(j) = self.janitor.take() {
            j.done();
        }
    }

    fn remove(&self) {
        let _ = std::fs::remove_file(self.dir.join(KILLED));
        if let Err(e) = std::fs::remove_dir_all(&self.dir) {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::error!("removing the scratch dir {}: {e}", self.dir.display());
            }
        }
    }
}

impl Drop for RunDir<'_> {
    fn drop(&mut self) {
        // An early return: the error is reported by the caller; remove what is
        // here, and the janitor (dropped next) finds nothing left to do.
        if self.janitor.is_some() {
            self.remove();
        }
    }
}

/// Reaps what dead drills left in `root`: a run dir whose lock is free
/// belongs to a run that is gone (locks die with their process). Kills a
/// leftover scratch etcd (or restore) still running on it, removes it, and
/// records and raises the outcome the dead run left, if its janitor died too.
/// Anything else in the root (an older version's scratch dirs) goes the same way.
fn reap_stale(cfg: &Config, root: &Path) {
    let Ok(entries) = std::fs::read_dir(root) else {
        return;
    };
    for e in entries.flatten() {
        let path = e.path();
        // Held while reaping, so that the dead run's janitor, if it is still
        // at work, and this drill do not both report it.
        let mut _lock = None;
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            match std::fs::File::open(&path).map(|f| (f.try_lock(), f)) {
                Ok((Err(std::fs::TryLockError::WouldBlock), _)) => continue,
                Ok((_, f)) => _lock = Some(f),
                Err(_) => {}
            }
        }
        let killed: Option<Outcome> = std::fs::read(path.join(KILLED))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok());
        let done = crate::guard::reap(std::slice::from_ref(&path));
        tracing::warn!(
            "an earlier drill did not clean up {}: {}",
            path.display(),
            done.join("; ")
        );
        if let Some(mut o) = killed {
            if let Some(e) = &mut o.error {
                e.push_str(" by the next drill");
            }
            crate::guard::raise_killed(cfg, &o);
        }
    }
}
