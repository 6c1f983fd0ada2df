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

    pub fn read(path: &Path) -> Result<Manifest, String> {
        let bytes =
            std::fs::read(path).map_err(|e| format!("reading manifest {}: {e}", path.display()))?;
        serde_json::from_slice(&bytes)
            .map_err(|e| format!("parsing manifest {}: {e}", path.display()))
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
