//! The newest etcd revision this bastion saw on the cluster.
//!
//! A restore rolls the cluster back to the snapshot's revision, while every
//! Kubernetes client still holds watch caches at the revision it last saw.
//! The restore bumps the revision past that (contract 6: from evidence, not
//! a guess), so it needs to know how far the cluster had got. `vigil-health`
//! (every minute) and every `vigil-snapshot run` record here the highest
//! revision any member reported, with when, which member and which cluster
//! ID, in `<state.dir>/revision-seen.json`.
//!
//! The record only ever grows for one cluster ID. A different cluster ID
//! starts it over, but only when it is the pinned one (after `vigil-snapshot
//! repin`, see [`crate::pin`]): a stray endpoint answering for another
//! cluster never moves it.

use crate::fsutil::{self, FsError, RunLock, StateFileError};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

pub const FILE: &str = "revision-seen.json";
const LOCK: &str = "revision-seen.lock";

/// The newest revision seen, and where.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevisionSeen {
    /// etcd's cluster ID, hex as in manifests and the pin.
    pub cluster_id: String,
    pub revision: i64,
    /// RFC 3339 UTC.
    pub seen_at: String,
    pub member: String,
    pub endpoint: String,
    /// The job that saw it: `vigil-health` or `vigil-snapshot`.
    pub by: String,
}

/// One member's answer, as a job read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observation {
    pub cluster_id: String,
    pub revision: i64,
    pub member: String,
    pub endpoint: String,
}

/// What [`record`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recorded {
    /// The record now holds this (higher, or a new cluster's first).
    Raised(RevisionSeen),
    /// The record already held this revision or a higher one.
    Kept(RevisionSeen),
    /// Nothing usable: no answer, or only answers for a cluster ID that is
    /// not the pinned one (named).
    Nothing(Option<String>),
}

#[derive(Debug, thiserror::Error)]
pub enum SeenError {
    #[error(transparent)]
    Fs(#[from] FsError),
    #[error("{path}: {message}; it records the newest etcd revision seen, for sizing a restore's revision bump: remove it, the next vigil-health or vigil-snapshot run writes it again")]
    Corrupt { path: PathBuf, message: String },
    #[error(transparent)]
    Pin(#[from] crate::pin::PinError),
    #[error("{path} is held by pid {holder} for more than 10s; the revision seen was not recorded this time")]
    Locked { path: PathBuf, holder: String },
}

pub fn path(state_dir: &Path) -> PathBuf {
    state_dir.join(FILE)
}

/// The record, if there is one. A missing state dir is "no record".
pub fn load(state_dir: &Path) -> Result<Option<RevisionSeen>, SeenError> {
    fsutil::read_state_json(&path(state_dir)).map_err(|e| match e {
        StateFileError::Fs(f) => SeenError::Fs(f),
        StateFileError::Parse { path, message } => SeenError::Corrupt { path, message },
    })
}

/// Raises the record to the highest of `seen` (answers of the pinned
/// cluster only, or, before any pin exists, of the cluster most answers
/// name). Health and snapshot runs may write at the same moment, so the
/// read-compare-write holds a lock: the record never goes down.
pub fn record(state_dir: &Path, by: &str, seen: &[Observation]) -> Result<Recorded, SeenError> {
    let pinned = crate::pin::load(state_dir)?.map(|p| p.cluster_id);
    let cluster = match &pinned {
        Some(id) => id.clone(),
        None => match majority(seen) {
            Some(id) => id,
            None => return Ok(Recorded::Nothing(None)),
        },
    };
    let Some(best) = seen
        .iter()
        .filter(|o| o.cluster_id == cluster)
        .max_by_key(|o| o.revision)
    else {
        return Ok(Recorded::Nothing(
            seen.first().map(|o| o.cluster_id.clone()),
        ));
    };
    fsutil::ensure_private_dir(state_dir)?;
    let lock_path = state_dir.join(LOCK);
    let _lock = lock(&lock_path)?;
    fsutil::adopt_dir_owner(state_dir, std::slice::from_ref(&lock_path));
    let old = match load(state_dir) {
        Ok(o) => o,
        // A torn or hand-edited file is replaced by what was just seen.
        Err(SeenError::Corrupt { path, message }) => {
            tracing::warn!("{}: {message}; writing it again", path.display());
            None
        }
        Err(e) => return Err(e),
    };
    if let Some(old) = old.filter(|o| o.cluster_id == cluster && o.revision >= best.revision) {
        return Ok(Recorded::Kept(old));
    }
    let new = RevisionSeen {
        cluster_id: cluster,
        revision: best.revision,
        seen_at: crate::rfc3339(crate::now()),
        member: best.member.clone(),
        endpoint: best.endpoint.clone(),
        by: by.to_string(),
    };
    fsutil::write_state_json(state_dir, &path(state_dir), &new)?;
    Ok(Recorded::Raised(new))
}

/// Held only for a read and a small write: a holder for longer than this is
/// stuck, and a health round must not hang behind it.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

fn lock(path: &Path) -> Result<RunLock, SeenError> {
    let started = std::time::Instant::now();
    loop {
        match RunLock::acquire(path) {
            Ok(l) => return Ok(l),
            Err(fsutil::LockError::Io(e)) => return Err(e.into()),
            Err(fsutil::LockError::Held { holder, .. }) if started.elapsed() >= LOCK_WAIT => {
                return Err(SeenError::Locked {
                    path: path.to_path_buf(),
                    holder,
                })
            }
            Err(fsutil::LockError::Held { .. }) => {
                std::thread::sleep(std::time::Duration::from_millis(50))
            }
        }
    }
}

/// The cluster ID more than half of the answers name.
fn majority(seen: &[Observation]) -> Option<String> {
    let first = seen.first()?;
    let same = seen
        .iter()
        .filter(|o| o.cluster_id == first.cluster_id)
        .count();
    if same * 2 > seen.len() {
        return Some(first.cluster_id.clone());
    }
    let other = seen.iter().find(|o| o.cluster_id != first.cluster_id)?;
    let n = seen
        .iter()
        .filter(|o| o.cluster_id == other.cluster_id)
        .count();
    (n * 2 > seen.len()).then(|| other.cluster_id.clone())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::pin::{self, ClusterPin};
    use std::os::unix::fs::PermissionsExt;

    fn obs(cid: &str, rev: i64, member: &str) -> Observation {
        Observation {
            cluster_id: cid.into(),
            revision: rev,
            member: member.into(),
            endpoint: format!("http://{member}:2379"),
        }
    }

    fn rev(r: Recorded) -> (String, i64, String) {
        match r {
            Recorded::Raised(s) | Recorded::Kept(s) => (s.cluster_id, s.revision, s.member),
            Recorded::Nothing(c) => (format!("nothing {c:?}"), 0, String::new()),
        }
    }

    #[test]
    fn only_grows_for_the_pinned_cluster_and_starts_over_after_a_repin() {
        let d = tempfile::tempdir().unwrap();
        let s = d.path();
        assert_eq!(load(s).unwrap(), None);
        // No pin yet: the cluster most members name.
        let r = record(
            s,
            "vigil-health",
            &[obs("a", 10, "m1"), obs("a", 12, "m2"), obs("x", 99, "m3")],
        )
        .unwrap();
        assert!(matches!(r, Recorded::Raised(_)), "{r:?}");
        assert_eq!(rev(r), ("a".into(), 12, "m2".into()));
        assert_eq!(
            std::fs::metadata(path(s)).unwrap().permissions().mode() & 0o777,
            0o600
        );
        pin::save(s, &ClusterPin::new("prod", "a", "run")).unwrap();
        // Lower: kept.
        let r = record(s, "vigil-snapshot", &[obs("a", 11, "m1")]).unwrap();
        assert!(matches!(r, Recorded::Kept(_)), "{r:?}");
        assert_eq!(load(s).unwrap().unwrap().revision, 12);
        // Another cluster answering (a stray endpoint): ignored, even higher.
        let r = record(
            s,
            "vigil-health",
            &[obs("x", 500, "m3"), obs("x", 501, "m3")],
        )
        .unwrap();
        assert_eq!(r, Recorded::Nothing(Some("x".into())));
        let r = record(
            s,
            "vigil-health",
            &[obs("a", 40, "m1"), obs("x", 500, "m3")],
        )
        .unwrap();
        assert_eq!(rev(r), ("a".into(), 40, "m1".into()));
        let got = load(s).unwrap().unwrap();
        assert_eq!((got.revision, got.by.as_str()), (40, "vigil-health"));
        // Repinned to a rebuilt cluster: starts over, lower.
        let mut p = pin::load(s).unwrap().unwrap();
        p.replace("b");
        pin::save(s, &p).unwrap();
        let r = record(s, "vigil-snapshot", &[obs("b", 3, "m1")]).unwrap();
        assert_eq!(rev(r), ("b".into(), 3, "m1".into()));
        assert_eq!(record(s, "x", &[]).unwrap(), Recorded::Nothing(None));
        // A torn file is reported by load and rewritten by record.
        std::fs::write(path(s), b"{").unwrap();
        let e = load(s).unwrap_err().to_string();
        assert!(e.contains(FILE) && e.contains("remove it"), "{e}");
        record(s, "vigil-health", &[obs("b", 4, "m2")]).unwrap();
        assert_eq!(load(s).unwrap().unwrap().revision, 4);
    }

    #[test]
    fn a_stuck_holder_of_the_lock_delays_a_record_only_so_long() {
        let d = tempfile::tempdir().unwrap();
        let held = RunLock::acquire(&d.path().join(LOCK)).unwrap();
        let t0 = std::time::Instant::now();
        let e = record(d.path(), "vigil-health", &[obs("a", 1, "m1")]).unwrap_err();
        assert!(t0.elapsed() < LOCK_WAIT * 2, "{:?}", t0.elapsed());
        let e = e.to_string();
        assert!(e.contains(LOCK) && e.contains("not recorded"), "{e}");
        drop(held);
        assert!(matches!(
            record(d.path(), "vigil-health", &[obs("a", 1, "m1")]).unwrap(),
            Recorded::Raised(_)
        ));
    }
}
