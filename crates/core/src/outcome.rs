//! Outcome records: one per member (and per check) per run, written to the
//! state dir, so that the alert engine can turn failures into alerts and
//! successes into resolutions.

use crate::fsutil::{self, FsError};
use crate::jobs::Source;
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Where a member's work stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    Connect,
    Status,
    Stream,
    Verify,
    Write,
    Readback,
    Manifest,
    Retention,
    Consistency,
    /// The restore proof of a verified snapshot (scratch etcd vs live member).
    Proof,
    Token,
    /// Shipping to a sink (upload, verify, catch-up, prune).
    Ship,
    /// Re-reading stored copies.
    Scrub,
    Done,
}

impl std::fmt::Display for Stage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = serde_json::to_value(self)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        f.write_str(&s)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Outcome {
    /// `snapshot`, `sink`, `drill`, ...
    pub job: Source,
    pub run_id: String,
    pub cluster: String,
    /// The member (or sink, or check) this record is about.
    pub subject: String,
    pub ok: bool,
    /// The last stage reached; on failure, the stage that failed.
    pub stage: Stage,
    pub error: Option<String>,
    pub archive: Option<String>,
    pub time: String,
    pub duration_ms: u64,
    /// A snapshot's restore proof, when one ran or was skipped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proof: Option<crate::manifest::RestoreProof>,
}

/// Writes the latest record per subject (atomically) and appends it to the history.
pub fn record(state_dir: &Path, o: &Outcome) -> Result<PathBuf, FsError> {
    let dir = state_dir.join("outcomes").join(o.job.as_str());
    fsutil::ensure_private_dir(&dir)?;
    let path = dir.join(format!("{}.json", o.subject));
    let mut json = serde_json::to_vec_pretty(o).unwrap_or_default();
    json.push(b'\n');
    fsutil::atomic_write(&path, &json)?;
    let hist = state_dir.join("outcomes.jsonl");
    let mut line = serde_json::to_vec(o).unwrap_or_default();
    line.push(b'\n');
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(&hist)
        .and_then(|mut f| f.write_all(&line))
        .map_err(|e| FsError::new("appending to", &hist, e))?;
    Ok(path)
}

/// Reads the latest record of every subject of `job`.
pub fn latest(state_dir: &Path, job: Source) -> Vec<Outcome> {
    let dir = state_dir.join("outcomes").join(job.as_str());
    let mut out: Vec<Outcome> = std::fs::read_dir(&dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".json"))
        .filter_map(|e| std::fs::read(e.path()).ok())
        .filter_map(|b| serde_json::from_slice(&b).ok())
        .collect();
    out.sort_by(|a, b| a.subject.cmp(&b.subject));
    out
}
