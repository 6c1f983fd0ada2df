//! `kind = "file"`: one JSON line per message, appended to a file.

use super::{ConfigError, Cx, RawKind};
use serde::Deserialize;
use std::path::PathBuf;

/// The keys of `kind = "file"`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFile {
    /// The file the JSON lines are appended to (created 0600).
    path: Option<PathBuf>,
}

#[derive(Debug, Clone)]
pub struct FileChannel {
    pub path: PathBuf,
}

impl RawKind for RawFile {
    type Settings = FileChannel;
    fn resolve(self, cx: &Cx) -> Result<FileChannel, ConfigError> {
        cx.need("path", self.path.is_some())?;
        Ok(FileChannel {
            path: self.path.unwrap_or_default(),
        })
    }
}
