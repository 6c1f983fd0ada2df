//! `kind = "fs"`: a mounted filesystem (NFS, CephFS), through object_store.

use super::{KindOptions, VerifyMode, OBJECT};
use crate::config::kinds::{Cx, RawKind};
use crate::config::ConfigError;
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// A mounted filesystem (NFS, CephFS) through object_store.
#[derive(Debug, Deserialize)]
// Unknown keys are refused by `RawSink::resolve`, which sees every key (see
// `RawSink::keys`).
pub(in crate::config) struct RawFs {
    path: Option<PathBuf>,
}

#[derive(Debug, Clone)]
pub struct FsSink {
    pub path: PathBuf,
}

impl RawKind for RawFs {
    type Settings = FsSink;
    const SHARED: &'static [&'static str] = OBJECT;

    fn resolve(self, cx: &Cx) -> Result<FsSink, ConfigError> {
        Ok(FsSink {
            path: cx.required("path", self.path)?,
        })
    }
}

impl KindOptions for FsSink {
    fn default_verify(&self) -> VerifyMode {
        VerifyMode::Readback
    }
    fn writable_paths(&self, _: &str, _: &Path) -> Vec<(&'static str, PathBuf)> {
        vec![("path", self.path.clone())]
    }
}
