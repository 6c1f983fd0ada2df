//! How far `vigil-restore etcd` bumps the restored revision, and from what
//! evidence (issue #15 point 3).
//!
//! Restoring rolls etcd back to the snapshot's revision S while every
//! Kubernetes client (each kube-apiserver's watch cache, controllers,
//! kubelets) last saw some revision R > S. Without a bump, new writes reuse
//! revisions S+1..R with other contents, and watchers resuming from R miss
//! them or trust stale objects. `etcdutl snapshot restore --bump-revision N
//! --mark-compacted` (etcdutl 3.5.10 and later) starts the restored keyspace
//! at S+N and compacts below it, so a watch from any revision the clients
//! held fails with "required revision has been compacted" and they re-list.
//!
//! N must exceed R − S. R is read from `<state.dir>/revision-seen.json`,
//! which vigil-health (every minute) and every snapshot run raise
//! ([`vigil_core::seen`]). The bump is
//!
//! ```text
//! N = max(restore.bump_revision, (R − S) + margin),  margin = max(⌈(R − S) / 10⌉, 1000)
//! ```
//!
//! The margin covers writes the bastion never saw: between the last
//! observation (at most a health interval, one minute, before the cluster
//! died) and the end. R − S spans the time since the snapshot (a snapshot
//! interval, typically an hour or more), so a tenth of it is several minutes
//! of writes at the same rate; 1000 covers a near-idle cluster or a
//! snapshot taken moments before. Too big costs nothing (revisions are
//! 64-bit; a bump only skips numbers), too small is the failure. The config's
//! `restore.bump_revision` (default 1000000000) is the floor: it wins while
//! it is larger, and 0 leaves the evidence alone to size the bump.

use crate::etcd::Tool;
use serde::Serialize;
use std::path::{Path, PathBuf};
use vigil_core::seen::RevisionSeen;

/// The first etcdutl with `snapshot restore --bump-revision --mark-compacted`.
pub const MIN_ETCDUTL: (u32, u32, u32) = (3, 5, 10);
/// The smallest margin over the evidence.
pub const MIN_MARGIN: u64 = 1000;
/// `restore.bump_revision`'s default: safe without evidence for any cluster
/// that wrote fewer revisions since its snapshot.
pub const SAFE_FLOOR: u64 = 1_000_000_000;

/// `3.5.12` (also `v3.5.12`, `3.5.12-rc.0`) as numbers.
pub fn version_triple(v: &str) -> Option<(u32, u32, u32)> {
    let v = v.trim().trim_start_matches('v');
    let mut it = v.split('.');
    let major = it.next()?.parse().ok()?;
    let minor = it.next()?.parse().ok()?;
    let patch: String = it
        .next()
        .unwrap_or("0")
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    Some((major, minor, patch.parse().unwrap_or(0)))
}

/// True for etcdutl 3.5.10 and later: the only restore tool with the flags.
pub fn can_bump(kind: &str, version: &str) -> bool {
    kind == "etcdutl" && version_triple(version).is_some_and(|v| v >= MIN_ETCDUTL)
}

/// Where the newest revision seen came from.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Evidence {
    pub file: PathBuf,
    pub revision: i64,
    pub seen_at: String,
    pub member: String,
    pub endpoint: String,
    pub cluster_id: String,
    /// The job that saw it.
    pub by: String,
}

/// The bump, how it was sized, and whether it is applied.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct BumpPlan {
    pub snapshot_revision: i64,
    /// The newest revision seen on the cluster, if recorded.
    pub evidence: Option<Evidence>,
    /// Newest seen − snapshot revision (0 without evidence or when not ahead).
    pub behind: u64,
    pub margin: u64,
    /// `restore.bump_revision`.
    pub floor: u64,
    /// max(floor, behind + margin): what `--bump-revision` gets.
    pub size: u64,
    /// "evidence" or "restore.bump_revision" (the floor was larger).
    pub sized_by: &'static str,
    /// False with `--no-bump`: the data dirs start at the snapshot's revision.
    pub applied: bool,
    pub notes: Vec<String>,
}

/// Sizes the bump for a snapshot at `snapshot_revision` of cluster
/// `cluster_id`, from the record in `state_dir` (see the module doc).
pub fn plan(state_dir: &Path, snapshot_revision: i64, cluster_id: &str, floor: u64) -> BumpPlan {
    let file = vigil_core::seen::path(state_dir);
    let mut notes = Vec::new();
    let seen = match vigil_core::seen::load(state_dir) {
        Ok(Some(s)) => Some(s),
        Ok(None) => {
            notes.push(format!(
                "no record of the newest revision seen ({} is missing: vigil-health and vigil-snapshot write it); the bump cannot be sized from evidence",
                file.display()
            ));
            None
        }
        Err(e) => {
            notes.push(format!("{e}; the bump cannot be sized from evidence"));
            None
        }
    };
    size(
        snapshot_revision,
        cluster_id,
        floor,
        seen.map(|s| (file, s)),
        notes,
    )
}

/// The arithmetic of [`plan`], without the file.
pub fn size(
    snapshot_revision: i64,
    cluster_id: &str,
    floor: u64,
    seen: Option<(PathBuf, RevisionSeen)>,
    mut notes: Vec<String>,
) -> BumpPlan {
    let evidence = seen.map(|(file, s)| Evidence {
        file,
        revision: s.revision,
        seen_at: s.seen_at,
        member: s.member,
        endpoint: s.endpoint,
        cluster_id: s.cluster_id,
        by: s.by,
    });
    if let Some(e) = &evidence {
        if e.cluster_id != cluster_id {
            // After a repin the clients watch the new cluster: its revision
            // is the one to pass, whatever generation the archive is from.
            notes.push(format!(
                "the newest revision seen ({}) is of cluster ID {}, the archive of cluster ID {cluster_id}: sized from it, since the clients last watched that cluster",
                e.revision, e.cluster_id
            ));
        }
        if e.revision < snapshot_revision {
            notes.push(format!(
                "the newest revision seen ({}, {}) is below the snapshot's ({snapshot_revision}): the record is older than the snapshot",
                e.revision, e.seen_at
            ));
        }
    }
    let behind = evidence
        .as_ref()
        .map(|e| e.revision.saturating_sub(snapshot_revision).max(0) as u64)
        .unwrap_or(0);
    let margin = behind.div_ceil(10).max(MIN_MARGIN);
    let sized = behind.saturating_add(margin);
    let (size, sized_by) = if floor >= sized {
        (floor, "restore.bump_revision")
    } else {
        (sized, "evidence")
    };
    if evidence.is_none() && floor < SAFE_FLOOR {
        notes.push(format!(
            "with no evidence and restore.bump_revision = {floor}, the bump ({size}) may be too small: set restore.bump_revision to a safe over-estimate (the default is 1000000000)"
        ));
    }
    BumpPlan {
        snapshot_revision,
        evidence,
        behind,
        margin,
        floor,
        size,
        sized_by,
        applied: true,
        notes,
    }
}

impl BumpPlan {
    /// One line: how big, from what.
    pub fn describe(&self) -> String {
        let from = match &self.evidence {
            Some(e) => format!(
                "newest revision seen {} on member {} ({}) at {} by {}, in {}",
                e.revision,
                e.member,
                e.endpoint,
                e.seen_at,
                e.by,
                e.file.display()
            ),
            None => "no revision seen on record".to_string(),
        };
        format!(
            "{} = max(restore.bump_revision {}, behind {} + margin {}), sized by {}; snapshot revision {}, {from}",
            self.size, self.floor, self.behind, self.margin, self.sized_by, self.snapshot_revision
        )
    }

    /// Why a tool that cannot bump is refused, and what to do instead.
    pub fn refusal(&self, tool: &Tool) -> String {
        format!(
            "{} {} ({}) cannot bump the restored revision: `snapshot restore --bump-revision N --mark-compacted` needs etcdutl {}.{}.{} or newer. \
             This restore needs --bump-revision {}. Without a bump, every kube-apiserver's watch cache and every client \
             keeps objects newer than the restored data, and new writes reuse revisions they already saw. Nothing was run or written. \
             Either get etcdutl >= 3.5.10 (from the etcd release matching the cluster, https://github.com/etcd-io/etcd/releases, \
             or the etcdutl binary inside RKE2's etcd image) and point restore.etcdutl_bin at it; \
             or accept the risk with --no-bump and restart every kube-apiserver and kubelet once the members are healthy (README: Restore during a disaster)",
            tool.kind,
            tool.version,
            tool.bin.display(),
            MIN_ETCDUTL.0,
            MIN_ETCDUTL.1,
            MIN_ETCDUTL.2,
            self.describe()
        )
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn seen(rev: i64, cid: &str) -> Option<(PathBuf, RevisionSeen)> {
        Some((
            PathBuf::from("/var/lib/vigil/revision-seen.json"),
            RevisionSeen {
                cluster_id: cid.into(),
                revision: rev,
                seen_at: "2026-12-01T03:00:00.000Z".into(),
                member: "cp-2".into(),
                endpoint: "https://10.0.0.2:2379".into(),
                by: "vigil-health".into(),
            },
        ))
    }

    #[test]
    fn the_bump_is_the_evidence_plus_a_margin_or_the_floor() {
        // Small gap: the fixed margin.
        let p = size(100, "c1", 0, seen(600, "c1"), vec![]);
        assert_eq!(
            (p.behind, p.margin, p.size, p.sized_by),
            (500, 1000, 1500, "evidence")
        );
        assert!(p.notes.is_empty(), "{:?}", p.notes);
        // Large gap: a tenth of it, rounded up.
        let p = size(1_000, "c1", 0, seen(2_000_001, "c1"), vec![]);
        assert_eq!(
            (p.behind, p.margin, p.size),
            (1_999_001, 199_901, 2_198_902)
        );
        // The floor wins while larger, and the evidence once it is not.
        let p = size(100, "c1", 1_000_000_000, seen(600, "c1"), vec![]);
        assert_eq!(
            (p.size, p.sized_by),
            (1_000_000_000, "restore.bump_revision")
        );
        let p = size(0, "c1", 1_000_000_000, seen(5_000_000_000, "c1"), vec![]);
        assert_eq!((p.size, p.sized_by), (5_500_000_000, "evidence"));
        // No evidence: the floor, and a warning when it is small.
        let p = size(100, "c1", 0, None, vec![]);
        assert_eq!((p.behind, p.size), (0, 1000));
        assert!(
            p.notes.iter().any(|n| n.contains("may be too small")),
            "{:?}",
            p.notes
        );
        assert!(size(100, "c1", SAFE_FLOOR, None, vec![]).notes.is_empty());
        // A record behind the snapshot, of another cluster: noted, never negative.
        let p = size(900, "c1", 0, seen(500, "c2"), vec![]);
        assert_eq!((p.behind, p.size), (0, 1000));
        assert_eq!(p.notes.len(), 2, "{:?}", p.notes);
        let d = size(100, "c1", 0, seen(600, "c1"), vec![]).describe();
        assert!(
            d.contains("1500 = max(restore.bump_revision 0, behind 500 + margin 1000)")
                && d.contains("member cp-2")
                && d.contains("2026-12-01T03:00:00.000Z")
                && d.contains("/var/lib/vigil/revision-seen.json"),
            "{d}"
        );
    }

    #[test]
    fn only_etcdutl_3_5_10_and_later_can_bump() {
        assert!(can_bump("etcdutl", "3.5.10"));
        assert!(can_bump("etcdutl", "3.5.12"));
        assert!(can_bump("etcdutl", "v3.6.0-rc.1"));
        assert!(!can_bump("etcdutl", "3.5.9"));
        assert!(!can_bump("etcdutl", "3.4.30"));
        assert!(!can_bump("etcdctl", "3.5.12"));
        assert!(!can_bump("etcdutl", "garbage"));
        assert_eq!(version_triple("3.5.12-rc.0"), Some((3, 5, 12)));
    }
}
