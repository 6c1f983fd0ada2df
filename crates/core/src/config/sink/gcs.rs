//! `kind = "gcs"`: Google Cloud Storage.

use super::{KindOptions, VerifyMode, OBJECT};
use crate::config::kinds::{Cx, RawKind};
use crate::config::ConfigError;
use serde::Deserialize;
use std::path::PathBuf;

/// Google Cloud Storage.
#[derive(Debug, Deserialize)]
// Unknown keys are refused by `RawSink::resolve`, which sees every key (see
// `RawSink::keys`).
pub(in crate::config) struct RawGcs {
    bucket: Option<String>,
    service_account_file: Option<PathBuf>,
}

#[derive(Debug, Clone)]
pub struct GcsSink {
    pub bucket: String,
    pub service_account_file: PathBuf,
}

impl RawKind for RawGcs {
    type Settings = GcsSink;
    const SHARED: &'static [&'static str] = OBJECT;

    fn resolve(self, cx: &Cx) -> Result<GcsSink, ConfigError> {
        let bucket = cx.required("bucket", self.bucket)?;
        let sa = cx.required("service_account_file", self.service_account_file)?;
        cx.v.private(
            &format!("{}.service_account_file", cx.key),
            &sa,
            cx.span.clone(),
        )?;
        Ok(GcsSink {
            bucket,
            service_account_file: sa,
        })
    }
}

impl KindOptions for GcsSink {
    /// TLS protects the bytes in transit; scrub reads copies back.
    fn default_verify(&self) -> VerifyMode {
        VerifyMode::Size
    }
}
