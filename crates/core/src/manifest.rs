//! The JSON manifest beside every archive (contract 2 of DESIGN.md).

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

pub const FORMAT: u32 = 1;
/// Manifest file name = archive file name + this suffix.
pub const SUFFIX: &str = ".json";

/// What vigil knows about one archive. An archive without a manifest is not
/// an archive: the manifest is written last, after verification.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub format: u32,
    /// Stable identity: `<cluster>-<member>-<UTC time>`.
    pub id: String,
    pub cluster: String,
    pub cluster_id: String,
    pub member: String,
    pub member_id: String,
    pub endpoint: String,
    /// Revision the snapshot contains at least (status taken as the stream opened).
    pub revision: i64,
    pub raft_index: u64,
    pub raft_term: u64,
    pub etcd_version: String,
    pub db_size: i64,
    pub db_size_in_use: i64,
    pub leader: String,
    pub is_leader: bool,
    /// Keys at `revision`, counted on this member (count_only range).
    pub key_count: i64,
    /// Bytes etcd streamed, including the 32-byte sha256 trailer.
    pub snapshot_size: u64,
    /// sha256 of exactly the bytes etcd streamed (what `age -d | zstd -d` gives back).
    pub snapshot_sha256: String,
    /// etcd's own trailer: sha256 of the database without the trailer.
    pub db_sha256: String,
    pub archive: String,
    pub archive_size: u64,
    pub archive_sha256: String,
    pub compression: String,
    pub zstd_level: i32,
    /// `age` or `none`.
    pub encryption: String,
    pub age_recipients: Vec<String>,
    pub created_at: String,
    pub duration_ms: u64,
    /// Set once the stored file was read back and matched `archive_sha256`.
    pub verified_at: Option<String>,
    pub vigil_version: String,
    /// Why this archive is quarantined (a diverged member): never verified,
    /// never counted by retention, never chosen by a default restore.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quarantined: Option<String>,
    /// The cluster as etcd listed it at snapshot time (contract 6). `None`
    /// in archives made before vigil recorded it, or when the member list
    /// failed; a restore then falls back to the config.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub membership: Option<Membership>,
    /// When the run restored this snapshot into a scratch etcd and found it
    /// equal to the live member at the snapshot's revision (issue 19).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore_proven_at: Option<String>,
    /// The restore proof: what was compared, or why it failed or was skipped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore_proof: Option<RestoreProof>,
}

impl Manifest {
    /// A proof ran and found the snapshot wrong or unrestorable: such an
    /// archive never counts as a good copy for retention.
    pub fn proof_failed(&self) -> bool {
        self.restore_proof
            .as_ref()
            .is_some_and(|p| p.result == ProofResult::Failed)
    }
}

/// The result of a restore proof.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProofResult {
    /// Restored, and equal to the live member at the snapshot's revision.
    Proven,
    /// A check failed: `check` names it, `error` says what was seen.
    Failed,
    /// Not run (`error` says why): over `max_db_size`, not on a tmpfs.
    #[default]
    Skipped,
}

/// What a restore proof compared. The scratch figures come from the etcd
/// restored from this snapshot; the live ones from the member it came from,
/// both at `revision`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RestoreProof {
    pub result: ProofResult,
    /// The failed check: `tools`, `dir`, `restore`, `start`, `revision`,
    /// `key_count`, `sample_keys` or `hash_kv`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check: Option<String>,
    /// Why it failed or was skipped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The revision the snapshot holds (read from the scratch etcd).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<i64>,
    /// Where key counts and hashes were compared: `revision`, or the
    /// revision read just before the stream when the member had compacted
    /// past `revision` by the time of the proof (`notes` says so).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash_revision: Option<i64>,
    /// The compaction revision both hashes were taken over.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compact_revision: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_count: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub live_key_count: Option<i64>,
    /// etcd's `hash_kv` of the scratch etcd and of the live member.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash_kv: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub live_hash_kv: Option<u32>,
    /// The other members whose `hash_kv` at `revision` matched too.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub peers_agree: Vec<String>,
    /// Keys compared value for value, with their mod revisions.
    #[serde(default)]
    pub sample_keys: u32,
    /// What the proof could not compare, and why.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// What restored and served it, e.g. `etcdctl 3.4.23`, `etcd 3.4.23`.
    #[serde(default)]
    pub tool: String,
    #[serde(default)]
    pub duration_ms: u64,
}

/// What the snapshotted member reported about its cluster (`member list`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Membership {
    /// Hex, as in [`Manifest::cluster_id`].
    pub cluster_id: String,
    pub members: Vec<RecordedMember>,
}

/// One member of the list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordedMember {
    /// Hex, as in [`Manifest::member_id`].
    pub id: String,
    /// Empty for a member that was added but never started.
    pub name: String,
    pub peer_urls: Vec<String>,
    pub client_urls: Vec<String>,
    pub is_learner: bool,
    /// The member's etcd version, where the run had its status (always for
    /// the member snapshotted; for the others when their status came first).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etcd_version: Option<String>,
}

impl Membership {
    /// The recorded member of this name.
    pub fn member(&self, name: &str) -> Option<&RecordedMember> {
        self.members.iter().find(|m| m.name == name)
    }
}

/// A manifest file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("reading manifest {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("parsing manifest {}: {source}", path.display())]
    Parse {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

impl Manifest {
    /// Path of the manifest for an archive at `archive_path`.
    pub fn path_for(archive_path: &Path) -> PathBuf {
        let mut s = archive_path.as_os_str().to_owned();
        s.push(SUFFIX);
        PathBuf::from(s)
    }

    pub fn to_json(&self) -> Vec<u8> {
        let mut v = serde_json::to_vec_pretty(self).unwrap_or_default();
        v.push(b'\n');
        v
    }

    pub fn read(path: &Path) -> Result<Manifest, ManifestError> {
        let bytes = std::fs::read(path).map_err(|source| ManifestError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        serde_json::from_slice(&bytes).map_err(|source| ManifestError::Parse {
            path: path.to_path_buf(),
            source,
        })
    }

    /// Compression ratio: plaintext size over archive size.
    pub fn ratio(&self) -> f64 {
        if self.archive_size == 0 {
            0.0
        } else {
            self.snapshot_size as f64 / self.archive_size as f64
        }
    }

    pub fn created(&self) -> Option<time::OffsetDateTime> {
        time::OffsetDateTime::parse(
            &self.created_at,
            &time::format_description::well_known::Rfc3339,
        )
        .ok()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn sample() -> Manifest {
        Manifest {
            restore_proven_at: None,
            restore_proof: None,
            format: FORMAT,
            id: "prod-cp-1-20261123T003000.000Z".into(),
            cluster: "prod".into(),
            cluster_id: "d91bc222d298ea53".into(),
            member: "cp-1".into(),
            member_id: "8e9e05c52164694d".into(),
            endpoint: "http://10.0.0.11:2379".into(),
            revision: 9,
            raft_index: 12,
            raft_term: 2,
            etcd_version: "3.4.23".into(),
            db_size: 1,
            db_size_in_use: 1,
            leader: "8e9e05c52164694d".into(),
            is_leader: true,
            key_count: 3,
            snapshot_size: 1,
            snapshot_sha256: String::new(),
            db_sha256: String::new(),
            archive: "a.db.zst.age".into(),
            archive_size: 1,
            archive_sha256: String::new(),
            compression: "zstd".into(),
            zstd_level: 3,
            encryption: "age".into(),
            age_recipients: vec![],
            created_at: "2026-11-23T00:30:00Z".into(),
            duration_ms: 1,
            verified_at: None,
            vigil_version: "0".into(),
            quarantined: None,
            membership: None,
        }
    }

    #[test]
    fn membership_is_optional_and_round_trips() {
        // A manifest written before membership was recorded still parses.
        let old = sample();
        let json = String::from_utf8(old.to_json()).unwrap();
        assert!(!json.contains("membership"), "{json}");
        let back: Manifest = serde_json::from_str(&json).unwrap();
        assert_eq!(back.membership, None);

        let mut m = sample();
        m.membership = Some(Membership {
            cluster_id: m.cluster_id.clone(),
            members: vec![RecordedMember {
                id: m.member_id.clone(),
                name: "cp-1".into(),
                peer_urls: vec!["http://10.0.0.11:2380".into()],
                client_urls: vec!["http://10.0.0.11:2379".into()],
                is_learner: false,
                etcd_version: Some("3.4.23".into()),
            }],
        });
        let back: Manifest = serde_json::from_slice(&m.to_json()).unwrap();
        assert_eq!(back, m);
        assert_eq!(
            back.membership.unwrap().member("cp-1").unwrap().peer_urls,
            ["http://10.0.0.11:2380"]
        );
    }
}
