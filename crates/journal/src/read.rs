//! Reading a journal back: from the bastion's dir or from one sink, with
//! every segment checked against its manifest (size and sha256), and the
//! manifests against each other (the chain), before an event is used.

use crate::format::{self, Event, SegmentManifest};
use crate::local::LocalJournal;
use crate::JournalError;
use futures_util::StreamExt;
use std::io::Read;
use vigil_archive::sink::Sink;

/// Where a chain is read from.
#[derive(Debug)]
pub enum Source<'a> {
    Local(LocalJournal),
    Sink(&'a Sink),
}

impl Source<'_> {
    pub fn name(&self) -> String {
        match self {
            Source::Local(_) => "local".into(),
            Source::Sink(s) => s.name().to_string(),
        }
    }

    pub fn location(&self, file: &str) -> String {
        match self {
            Source::Local(l) => l.segment_path(file).display().to_string(),
            Source::Sink(s) => s.journal_location(file),
        }
    }

    /// Every manifest, sorted by first revision.
    pub async fn manifests(&self, cluster: &str) -> Result<Vec<SegmentManifest>, JournalError> {
        let mut out = match self {
            Source::Local(l) => l.manifests()?,
            Source::Sink(s) => {
                let mut v = Vec::new();
                for (name, _) in s.journal_files().await? {
                    if !format::is_manifest(&name) {
                        continue;
                    }
                    let bytes = match self.read(&name).await {
                        // Pruned by retention after it was listed.
                        Err(e) if e.is_not_found() => continue,
                        r => r?,
                    };
                    let m: SegmentManifest =
                        serde_json::from_slice(&bytes).map_err(|e| JournalError::Manifest {
                            path: self.location(&name).into(),
                            message: e.to_string(),
                        })?;
                    v.push(m);
                }
                v.sort_by_key(|m| m.first_revision);
                v
            }
        };
        out.retain(|m| m.cluster == cluster);
        Ok(out)
    }

    /// A file's bytes (segments are bounded by `journal.segment_size`).
    pub async fn read(&self, file: &str) -> Result<Vec<u8>, JournalError> {
        match self {
            Source::Local(l) => {
                let p = l.segment_path(file);
                std::fs::read(&p)
                    .map_err(|e| vigil_core::fsutil::FsError::new("reading", &p, e).into())
            }
            Source::Sink(s) => {
                let mut st = s.journal_open(file).await?;
                let mut out = Vec::new();
                while let Some(c) = st.next().await {
                    out.extend_from_slice(&c?);
                }
                Ok(out)
            }
        }
    }

    /// A segment's events, after its size and sha256 matched its manifest.
    pub async fn events(
        &self,
        m: &SegmentManifest,
        ids: &[&dyn age::Identity],
    ) -> Result<Vec<Event>, JournalError> {
        self.events_checked(m, ids, true).await
    }

    /// [`Source::events`]; `check` false trusts a segment its manifest does
    /// not vouch for (`--force-journal`): it must still decrypt and parse.
    pub async fn events_checked(
        &self,
        m: &SegmentManifest,
        ids: &[&dyn age::Identity],
        check: bool,
    ) -> Result<Vec<Event>, JournalError> {
        let bytes = self.read(&m.segment).await?;
        decode(m, &bytes, ids, check).map_err(|message| JournalError::Segment {
            segment: self.location(&m.segment),
            message,
        })
    }
}

/// Checks `bytes` against the manifest, decrypts and decompresses them and
/// parses the events.
pub fn decode(
    m: &SegmentManifest,
    bytes: &[u8],
    ids: &[&dyn age::Identity],
    check: bool,
) -> Result<Vec<Event>, String> {
    if let Some(why) = check.then(|| format::mismatch(m, bytes)).flatten() {
        return Err(why);
    }
    let mut plain = Vec::with_capacity(m.plaintext_size as usize);
    let zr: Box<dyn Read> = if m.encrypted {
        if ids.is_empty() {
            return Err("is encrypted; give the private key (--identity)".into());
        }
        let d = age::Decryptor::new_buffered(bytes).map_err(|e| format!("age: {e}"))?;
        Box::new(d.decrypt(ids.iter().copied()).map_err(|e| {
            format!(
                "age: {e} (is the key one of the segment's recipients {}?)",
                m.age_recipients.join(", ")
            )
        })?)
    } else {
        Box::new(bytes)
    };
    zstd::stream::read::Decoder::new(zr)
        .and_then(|mut z| z.read_to_end(&mut plain))
        .map_err(|e| format!("decoding: {e}"))?;
    format::parse_events(m, &plain)
}
