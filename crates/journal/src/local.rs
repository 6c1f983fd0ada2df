//! The bastion's copy of the journal: `<journal dir>/<segment>` with
//! `<segment>.json` beside it. The manifest is the commit point: a segment
//! without one (a kill -9 between the two renames) is not part of the
//! journal and is removed at the next start, as are `.partial` files.

use crate::format::{self, SegmentManifest};
use crate::JournalError;
use std::path::{Path, PathBuf};
use vigil_core::fsutil::{self, FsError};

#[derive(Debug, Clone)]
pub struct LocalJournal {
    pub dir: PathBuf,
}

impl LocalJournal {
    pub fn new(dir: &Path) -> Self {
        Self {
            dir: dir.to_path_buf(),
        }
    }

    pub fn segment_path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    pub fn ensure(&self) -> Result<(), JournalError> {
        Ok(fsutil::ensure_private_dir(&self.dir)?)
    }

    /// Every manifest, sorted by first revision; a manifest that does not
    /// parse is an error naming it (it breaks the chain).
    pub fn manifests(&self) -> Result<Vec<SegmentManifest>, JournalError> {
        let rd = match std::fs::read_dir(&self.dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(FsError::new("listing", &self.dir, e).into()),
        };
        let mut out = Vec::new();
        for ent in rd.flatten() {
            let name = ent.file_name().to_string_lossy().into_owned();
            if !format::is_manifest(&name) {
                continue;
            }
            let segment = name.strip_suffix(format::MANIFEST_SUFFIX).unwrap_or(&name);
            if let Some((m, _)) = self.read_manifest(segment)? {
                out.push(m);
            }
        }
        out.sort_by_key(|m| m.first_revision);
        Ok(out)
    }

    /// Removes what a killed writer left: temp files and segments whose
    /// manifest never landed. Returns what it removed.
    pub fn cleanup(&self) -> Vec<PathBuf> {
        let mut removed = Vec::new();
        let names: Vec<String> = std::fs::read_dir(&self.dir)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        for n in &names {
            let orphan = (n.ends_with(format::EXT_AGE) || n.ends_with(format::EXT_PLAIN))
                && !names.contains(&format!("{n}{}", format::MANIFEST_SUFFIX));
            if n.ends_with(fsutil::PARTIAL_SUFFIX) || orphan {
                let p = self.dir.join(n);
                if std::fs::remove_file(&p).is_ok() {
                    removed.push(p);
                }
            }
        }
        removed
    }

    /// A segment's manifest, parsed and as stored; `None` when it is gone.
    pub fn read_manifest(
        &self,
        segment: &str,
    ) -> Result<Option<(SegmentManifest, Vec<u8>)>, JournalError> {
        let path = self
            .dir
            .join(format!("{segment}{}", format::MANIFEST_SUFFIX));
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(FsError::new("reading", &path, e).into()),
        };
        let m = serde_json::from_slice(&bytes).map_err(|e| JournalError::Manifest {
            path: path.clone(),
            message: e.to_string(),
        })?;
        Ok(Some((m, bytes)))
    }

    /// Removes a segment: the manifest first, so nothing points at a missing file.
    pub fn delete_segment(&self, segment: &str) -> Result<(), JournalError> {
        let manifest = format!("{segment}{}", format::MANIFEST_SUFFIX);
        for p in [self.dir.join(manifest), self.dir.join(segment)] {
            match std::fs::remove_file(&p) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(FsError::new("removing", &p, e).into()),
            }
        }
        Ok(())
    }
}
