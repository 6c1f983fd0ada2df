//! `kind = "dir"`: an LTFS mount or a BackupPC staging directory.

use super::{KindOptions, VerifyMode};
use crate::config::kinds::{Cx, RawKind};
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

impl RawKind for RawDir {
    type Settings = DirSink;
    const SHARED: &'static [&'static str] = &["verify"];

    fn resolve(self, cx: &Cx) -> Result<DirSink, ConfigError> {
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
