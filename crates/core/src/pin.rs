//! The pinned etcd cluster ID: which cluster this bastion backs up.
//!
//! An endpoint that points at another etcd (a typo, a reused address, a
//! test cluster behind the same load balancer) answers just like a member.
//! Only the cluster ID tells them apart, so the first good run records it in
//! `<state.dir>/cluster-id.json`; later runs refuse a member that reports a
//! different one, before anything is archived or pruned for it. A cluster
//! rebuilt on purpose gets a new ID; `vigil-snapshot repin` accepts it and
//! keeps the old one in the history, so restore still trusts its archives.

use crate::fsutil::{self, FsError, StateFileError};
use crate::manifest::Manifest;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub const FILE: &str = "cluster-id.json";

/// An earlier cluster ID of the same deployment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Past {
    pub cluster_id: String,
    pub pinned_at: String,
    pub replaced_at: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterPin {
    /// `[cluster] name` at the time of pinning.
    pub cluster: String,
    /// etcd's cluster ID, hex as in manifests.
    pub cluster_id: String,
    pub pinned_at: String,
    /// How it was learnt: "run", "existing archives" or "repin".
    pub source: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<Past>,
}

impl ClusterPin {
    pub fn new(cluster: &str, cluster_id: &str, source: &str) -> Self {
        Self {
            cluster: cluster.to_string(),
            cluster_id: cluster_id.to_string(),
            pinned_at: crate::rfc3339(crate::now()),
            source: source.to_string(),
            history: Vec::new(),
        }
    }

    /// True for the current ID and every ID this deployment had before.
    pub fn trusts(&self, cluster_id: &str) -> bool {
        self.cluster_id == cluster_id || self.history.iter().any(|p| p.cluster_id == cluster_id)
    }

    /// Accepts a new current ID and keeps the old one as trusted history.
    pub fn replace(&mut self, cluster_id: &str) {
        if self.cluster_id == cluster_id {
            return;
        }
        let now = crate::rfc3339(crate::now());
        self.history.push(Past {
            cluster_id: std::mem::replace(&mut self.cluster_id, cluster_id.to_string()),
            pinned_at: std::mem::replace(&mut self.pinned_at, now.clone()),
            replaced_at: now,
        });
        self.history.retain(|p| p.cluster_id != cluster_id);
        self.source = "repin".into();
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PinError {
    #[error(transparent)]
    Fs(#[from] FsError),
    #[error("{path}: {message}; it records which etcd cluster this bastion backs up: fix or remove it, then run `vigil-snapshot repin`")]
    Corrupt { path: PathBuf, message: String },
}

pub fn path(state_dir: &Path) -> PathBuf {
    state_dir.join(FILE)
}

/// The pin, if one was recorded. A missing state dir is "no pin".
pub fn load(state_dir: &Path) -> Result<Option<ClusterPin>, PinError> {
    fsutil::read_state_json(&path(state_dir)).map_err(|e| match e {
        StateFileError::Fs(f) => PinError::Fs(f),
        StateFileError::Parse { path, message } => PinError::Corrupt { path, message },
    })
}

pub fn save(state_dir: &Path, pin: &ClusterPin) -> Result<(), PinError> {
    Ok(fsutil::write_state_json(state_dir, &path(state_dir), pin)?)
}

/// The cluster ID most verified manifests agree on, if a strict majority
/// of them does; ties and empty input give `None`.
pub fn majority<'a>(manifests: impl IntoIterator<Item = &'a Manifest>) -> Option<String> {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    let mut n = 0usize;
    for m in manifests {
        if m.verified_at.is_some() {
            *counts.entry(m.cluster_id.as_str()).or_default() += 1;
            n += 1;
        }
    }
    let (id, c) = counts.into_iter().max_by_key(|(_, c)| *c)?;
    (c * 2 > n).then(|| id.to_string())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn m(cid: &str, verified: bool) -> Manifest {
        serde_json::from_value(serde_json::json!({
            "format": 1, "id": "x", "cluster": "prod", "cluster_id": cid, "member": "cp-1",
            "member_id": "2", "endpoint": "http://x:1", "revision": 1, "raft_index": 1,
            "raft_term": 1, "etcd_version": "3.4.23", "db_size": 1, "db_size_in_use": 1,
            "leader": "1", "is_leader": true, "key_count": 1, "snapshot_size": 544,
            "snapshot_sha256": "x", "db_sha256": "x", "archive": "x.db.zst.age",
            "archive_size": 10, "archive_sha256": "y", "compression": "zstd", "zstd_level": 3,
            "encryption": "age", "age_recipients": [], "created_at": "2026-01-01T00:00:00.000Z",
            "duration_ms": 1, "verified_at": if verified { Some("2026-01-01T00:00:00.000Z") } else { None },
            "vigil_version": "0.1.0"
        }))
        .unwrap()
    }

    #[test]
    fn majority_needs_more_than_half_of_the_verified() {
        let v = [m("a", true), m("a", true), m("b", true), m("b", false)];
        assert_eq!(majority(&v).as_deref(), Some("a"));
        let tie = [m("a", true), m("b", true)];
        assert_eq!(majority(&tie), None);
        assert_eq!(majority(&[m("a", false)]), None);
        assert_eq!(majority(&[]), None);
    }

    #[test]
    fn repin_keeps_the_old_id_trusted_and_survives_a_round_trip() {
        let d = tempfile::tempdir().unwrap();
        assert!(load(d.path()).unwrap().is_none());
        let mut p = ClusterPin::new("prod", "aa", "run");
        p.replace("bb");
        assert!(p.trusts("aa") && p.trusts("bb") && !p.trusts("cc"));
        assert_eq!(p.cluster_id, "bb");
        p.replace("aa");
        assert_eq!(p.history.len(), 1, "{p:?}");
        save(d.path(), &p).unwrap();
        assert_eq!(load(d.path()).unwrap().unwrap(), p);
        std::fs::write(path(d.path()), b"{").unwrap();
        let e = load(d.path()).unwrap_err().to_string();
        assert!(e.contains("cluster-id.json") && e.contains("repin"), "{e}");
    }
}
