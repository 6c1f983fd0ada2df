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
    /// Another endpoint than `https://storage.googleapis.com` (Private Service Connect, a proxy).
    endpoint: Option<String>,
    /// A PEM CA bundle that signs the endpoint's certificate (a private CA).
    ca_file: Option<PathBuf>,
    /// Let `endpoint` be plain http:// (a store on loopback). The archives
    /// stay encrypted, but credentials and names travel in the clear.
    allow_http: Option<bool>,
}

#[derive(Debug, Clone)]
pub struct GcsSink {
    pub bucket: String,
    pub service_account_file: PathBuf,
    /// None: `https://storage.googleapis.com`.
    pub endpoint: Option<String>,
    pub ca_file: Option<PathBuf>,
    pub allow_http: bool,
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
        let allow_http = self.allow_http.unwrap_or(false);
        cx.endpoint(self.endpoint.as_deref(), allow_http)?;
        if let Some(ca) = &self.ca_file {
            cx.v.readable(&format!("{}.ca_file", cx.key), ca, cx.span.clone())?;
        }
        Ok(GcsSink {
            bucket,
            service_account_file: sa,
            endpoint: self.endpoint,
            ca_file: self.ca_file,
            allow_http,
        })
    }
}

impl KindOptions for GcsSink {
    /// TLS protects the bytes in transit; scrub reads copies back.
    fn default_verify(&self) -> VerifyMode {
        VerifyMode::Size
    }
}
