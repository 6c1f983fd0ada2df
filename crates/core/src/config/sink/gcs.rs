//! `kind = "gcs"`: Google Cloud Storage.

use super::{Cx, KindOptions, RawOptions, VerifyMode, OBJECT};
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

impl RawOptions for RawGcs {
    const COMMON: &'static [&'static str] = OBJECT;
    type Resolved = GcsSink;

    fn resolve(self, cx: &Cx<'_, '_>) -> Result<GcsSink, ConfigError> {
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
