//! `kind = "dir"`: an LTFS mount or a BackupPC staging directory.

use super::{Cx, KindOptions, RawOptions, VerifyMode};
use crate::config::ConfigError;
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// An LTFS mount or a BackupPC staging directory.
#[derive(Debug, Deserialize)]
// Unknown keys are refused by `RawSink::resolve`, which sees every key (see
// `RawSink::keys`).
pub(in crate::config) struct RawDir {
    path: Option<PathBuf>,
}

#[derive(Debug, Clone)]
pub struct DirSink {
    pub path: PathBuf,
}

impl RawOptions for RawDir {
    const COMMON: &'static [&'static str] = &["verify"];
    type Resolved = DirSink;

    fn resolve(self, cx: &Cx<'_, '_>) -> Result<DirSink, ConfigError> {
        Ok(DirSink {
            path: cx.required("path", self.path)?,
        })
    }
}

impl KindOptions for DirSink {
    fn default_verify(&self) -> VerifyMode {
        VerifyMode::Readback
    }
    fn writable_paths(&self, _: &str, _: &Path) -> Vec<(&'static str, PathBuf)> {
        vec![("path", self.path.clone())]
    }
}
