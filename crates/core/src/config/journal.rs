//! `[journal]`: vigil-journal, the watch journal between snapshots (issue
//! 17). Every change etcd makes is written to encrypted, hash-chained
//! segments, so a restore can go to any revision or minute they cover.

use super::{ConfigError, Validator};
use crate::units::{ByteSize, HumanDuration};
use serde::Deserialize;
use std::ops::Range;
use std::path::PathBuf;

/// `[journal]`. Every key is optional; the section turns the journal on.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JournalConfig {
    /// The bastion's copy of the segments. Default: `<snapshot.dir>/../journal`
    /// (`/var/lib/vigil/journal` with the packaged config).
    #[serde(default)]
    pub dir: Option<PathBuf>,
    /// A segment closes (and ships) this long after its first event at the
    /// latest: the journal's own share of the recovery point.
    #[serde(default = "default_flush")]
    pub flush: HumanDuration,
    /// A segment also closes once this much plaintext (JSON lines) is in it.
    #[serde(default = "default_segment_size")]
    pub segment_size: ByteSize,
    /// The bastion keeps at most this much of the journal; the oldest
    /// segments that every journal sink holds go first.
    #[serde(default = "default_max_local")]
    pub max_local: ByteSize,
    /// Sinks that get the segments (object stores and `dir` sinks).
    /// Default: every such sink.
    #[serde(default)]
    pub sinks: Option<Vec<String>>,
    /// `journal_lagging` fires when the newest journaled revision is older
    /// than this while the cluster wrote after it.
    #[serde(default = "default_max_lag")]
    pub max_lag: HumanDuration,
    /// Start `vigil-snapshot run` after a gap (compacted revisions the
    /// journal could not read), so that a full snapshot re-anchors it.
    #[serde(default = "default_true")]
    pub snapshot_on_gap: bool,
    /// The program that takes that snapshot. Default: `vigil-snapshot`
    /// beside `vigil-journal`.
    #[serde(default)]
    pub snapshot_bin: Option<PathBuf>,
}

impl Default for JournalConfig {
    fn default() -> Self {
        Self {
            dir: None,
            flush: default_flush(),
            segment_size: default_segment_size(),
            max_local: default_max_local(),
            sinks: None,
            max_lag: default_max_lag(),
            snapshot_on_gap: true,
            snapshot_bin: None,
        }
    }
}

impl JournalConfig {
    pub(super) fn check(
        &self,
        v: &Validator<'_>,
        span: Range<usize>,
        sink_names: &[&str],
    ) -> Result<(), ConfigError> {
        let at = |f: &str| v.field_span(span.clone(), f).or(Some(span.clone()));
        if self.flush.get() < std::time::Duration::from_millis(100) {
            return Err(v.err(
                "journal.flush",
                at("flush"),
                "must be at least 100ms (a segment per event would flood the sinks)",
            ));
        }
        if self.segment_size.0 < 4096 {
            return Err(v.err(
                "journal.segment_size",
                at("segment_size"),
                "must be at least 4KiB",
            ));
        }
        if self.max_local.0 < self.segment_size.0 {
            return Err(v.err(
                "journal.max_local",
                at("max_local"),
                format!("must hold at least one segment ({})", self.segment_size),
            ));
        }
        if self.max_lag.get().is_zero() {
            return Err(v.err("journal.max_lag", at("max_lag"), "must be more than 0s"));
        }
        if self.dir.as_ref().is_some_and(|d| !d.is_absolute()) {
            return Err(v.err("journal.dir", at("dir"), "must be an absolute path"));
        }
        for s in self.sinks.iter().flatten() {
            if !sink_names.contains(&s.as_str()) {
                return Err(v.err(
                    "journal.sinks",
                    at("sinks"),
                    format!(
                        "no object-store or dir [[sink]] is named {s:?} (the journal does not go to tape; such sinks: {})",
                        if sink_names.is_empty() { "none".to_string() } else { sink_names.join(", ") }
                    ),
                ));
            }
        }
        Ok(())
    }
}

fn default_flush() -> HumanDuration {
    HumanDuration::from_secs(10)
}

fn default_segment_size() -> ByteSize {
    ByteSize(16 << 20)
}

fn default_max_local() -> ByteSize {
    ByteSize(4 << 30)
}

fn default_max_lag() -> HumanDuration {
    HumanDuration::from_secs(120)
}

fn default_true() -> bool {
    true
}
