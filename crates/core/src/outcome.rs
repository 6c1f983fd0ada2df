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

/// How much of the end of `outcomes.jsonl` [`history_tail`] reads: it only
/// grows, and what a status or a dead-man check needs is recent.
pub const HISTORY_TAIL: u64 = 4 << 20;

/// The records of `job` in the last [`HISTORY_TAIL`] bytes of the history,
/// oldest first (a line cut by the window, or unreadable, is left out).
pub fn history_tail(state_dir: &Path, job: Source) -> Vec<Outcome> {
    use std::io::{Read, Seek, SeekFrom};
    let Ok(mut f) = std::fs::File::open(state_dir.join("outcomes.jsonl")) else {
        return Vec::new();
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = f.seek(SeekFrom::Start(len.saturating_sub(HISTORY_TAIL)));
    let mut raw = Vec::new();
    let _ = f.take(HISTORY_TAIL).read_to_end(&mut raw);
    String::from_utf8_lossy(&raw)
        .lines()
        .filter_map(|l| serde_json::from_str::<Outcome>(l).ok())
        .filter(|o| o.job == job)
        .collect()
}

/// The time of the newest successful record of `job` about `subject` (any
/// subject when `None`): the latest records first, then the history's tail.
pub fn last_ok(state_dir: &Path, job: Source, subject: Option<&str>) -> Option<String> {
    let about = |o: &Outcome| o.ok && subject.is_none_or(|s| o.subject == s);
    latest(state_dir, job)
        .into_iter()
        .chain(history_tail(state_dir, job))
        .filter(about)
        .map(|o| o.time)
        .max()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod history_tests {
    use super::*;

    fn rec(job: Source, subject: &str, ok: bool, time: &str) -> Outcome {
        Outcome {
            job,
            run_id: time.into(),
            cluster: "c".into(),
            subject: subject.into(),
            ok,
            stage: Stage::Done,
            error: None,
            archive: None,
            time: time.into(),
            duration_ms: 0,
            proof: None,
        }
    }

    #[test]
    fn last_ok_reads_the_history_when_the_latest_failed() {
        let d = tempfile::tempdir().unwrap();
        record(
            d.path(),
            &rec(Source::Sink, "s3", true, "2026-12-01T00:00:00Z"),
        )
        .unwrap();
        record(
            d.path(),
            &rec(Source::Sink, "dir", true, "2026-12-01T01:00:00Z"),
        )
        .unwrap();
        record(
            d.path(),
            &rec(Source::Sink, "s3", false, "2026-12-01T02:00:00Z"),
        )
        .unwrap();
        record(
            d.path(),
            &rec(Source::Drill, "cp-1", true, "2026-12-01T03:00:00Z"),
        )
        .unwrap();
        assert_eq!(
            last_ok(d.path(), Source::Sink, Some("s3")).as_deref(),
            Some("2026-12-01T00:00:00Z")
        );
        assert_eq!(
            last_ok(d.path(), Source::Sink, None).as_deref(),
            Some("2026-12-01T01:00:00Z")
        );
        assert_eq!(last_ok(d.path(), Source::Sink, Some("gcs")), None);
        assert_eq!(history_tail(d.path(), Source::Drill).len(), 1);
    }
}
