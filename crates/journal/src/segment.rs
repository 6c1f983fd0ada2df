//! The open segment: JSON lines through zstd and age into a 0600 temp file
//! (vigil-archive's writer, so the plaintext never touches the disk), then
//! renamed to `<first>-<last>` and committed by its manifest.

use crate::format::{self, Event, Gap, SegmentManifest};
use crate::local::LocalJournal;
use crate::JournalError;
use std::time::Instant;
use vigil_archive::{ArchiveOptions, ArchiveWriter};

/// What every segment's manifest says of the cluster and the keys.
#[derive(Debug, Clone)]
pub struct Meta {
    pub cluster: String,
    pub cluster_id: String,
    pub opts: ArchiveOptions,
}

impl Meta {
    fn encrypted(&self) -> bool {
        !self.opts.recipients.is_empty()
    }
}

/// The segment being written.
#[derive(Debug)]
pub struct OpenSegment {
    w: ArchiveWriter,
    pub first: i64,
    pub last: i64,
    pub events: u64,
    pub revisions: u64,
    pub plaintext: u64,
    first_at: String,
    last_at: String,
    pub opened: Instant,
    members: Vec<String>,
    gap: Option<Gap>,
}

impl OpenSegment {
    /// Opens a segment whose first revision is `first`; `gap` is the range
    /// known missing before it.
    pub fn open(
        local: &LocalJournal,
        meta: &Meta,
        first: i64,
        gap: Option<Gap>,
    ) -> Result<Self, JournalError> {
        let provisional = local.segment_path(&format!("open-{first:020}"));
        let w = ArchiveWriter::create(&provisional, &meta.opts)?;
        Ok(Self {
            w,
            first,
            last: first - 1,
            events: 0,
            revisions: 0,
            plaintext: 0,
            first_at: String::new(),
            last_at: String::new(),
            opened: Instant::now(),
            members: Vec::new(),
            gap,
        })
    }

    /// Appends one revision's events (all of them: a revision never spans
    /// two segments).
    pub fn append(&mut self, member: &str, events: &[Event]) -> Result<(), JournalError> {
        let Some(rev) = events.first().map(|e| e.revision) else {
            return Ok(());
        };
        let mut buf = Vec::with_capacity(256 * events.len());
        for e in events {
            serde_json::to_writer(&mut buf, e).map_err(|e| JournalError::Segment {
                segment: format!("open-{}", self.first),
                message: e.to_string(),
            })?;
            buf.push(b'\n');
        }
        self.w.write(&buf)?;
        if self.revisions == 0 {
            self.first_at = events[0].received_at.clone();
        }
        self.last_at = events[0].received_at.clone();
        self.last = rev;
        self.revisions += 1;
        self.events += events.len() as u64;
        self.plaintext += buf.len() as u64;
        if !self.members.iter().any(|m| m == member) {
            self.members.push(member.to_string());
        }
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        self.revisions == 0
    }

    /// The gap recorded before this segment, if any.
    pub fn gap(&self) -> Option<Gap> {
        self.gap
    }

    /// Finishes the file, renames it to its final name and writes its
    /// manifest, linked to `prev` (the chain's tail).
    pub fn close(
        self,
        local: &LocalJournal,
        meta: &Meta,
        prev: Option<&SegmentManifest>,
    ) -> Result<SegmentManifest, JournalError> {
        let (written, _) = self.w.finish()?;
        let name = format::segment_name(self.first, self.last, meta.encrypted());
        let path = local.segment_path(&name);
        if let Err(e) = vigil_core::fsutil::commit_rename(&written.tmp, &path) {
            let _ = std::fs::remove_file(&written.tmp);
            return Err(e.into());
        }
        let m = SegmentManifest {
            format: format::FORMAT.into(),
            cluster: meta.cluster.clone(),
            cluster_id: meta.cluster_id.clone(),
            segment: name,
            first_revision: self.first,
            last_revision: self.last,
            events: self.events,
            revisions: self.revisions,
            first_received_at: self.first_at,
            last_received_at: self.last_at,
            sha256: written.sha256,
            size: written.size,
            plaintext_size: self.plaintext,
            prev_segment: prev.map(|p| p.segment.clone()),
            prev_sha256: prev.map(|p| p.sha256.clone()),
            gap: self.gap,
            members: self.members,
            encrypted: meta.encrypted(),
            age_recipients: meta.opts.recipients.iter().map(|r| r.to_string()).collect(),
            created_at: vigil_core::rfc3339(vigil_core::now()),
            vigil_version: env!("CARGO_PKG_VERSION").into(),
        };
        if let Err(e) =
            vigil_core::fsutil::atomic_write(&local.segment_path(&m.manifest_name()), &m.to_json())
        {
            // Not committed: no segment without its manifest is left behind.
            let _ = std::fs::remove_file(&path);
            return Err(e.into());
        }
        Ok(m)
    }
}
