//! `kind = "s3"`: Amazon S3, Ceph RGW or any S3-compatible store.

use super::{KindOptions, VerifyMode, OBJECT};
use crate::config::kinds::{Cx, RawKind};
use crate::config::ConfigError;
use crate::secret::Secret;
use serde::Deserialize;
use std::path::PathBuf;

/// S3 or Ceph RGW.
#[derive(Debug, Deserialize)]
// Unknown keys are refused by `RawSink::resolve`, which sees every key (see
// `RawSink::keys`).
pub(in crate::config) struct RawS3 {
    /// The S3 endpoint URL (Ceph RGW, MinIO, ...); none: AWS for `region`.
    endpoint: Option<String>,
    bucket: Option<String>,
    region: Option<String>,
    access_key_id: Option<String>,
    secret_access_key: Option<Secret>,
    secret_access_key_file: Option<PathBuf>,
    path_style: Option<bool>,
    /// A PEM CA bundle that signs the endpoint's certificate (a private CA).
    ca_file: Option<PathBuf>,
    /// Let `endpoint` be plain http:// (a store on loopback). The archives
    /// stay encrypted, but credentials and names travel in the clear.
    allow_http: Option<bool>,
    object_lock: Option<ObjectLock>,
}

/// `object_lock = { mode = "compliance", days = 30 }` on an `s3` sink: every
/// archive and manifest is locked (S3 Object Lock) for `days` after upload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObjectLock {
    pub mode: LockMode,
    /// How many days each uploaded archive and manifest stays locked.
    pub days: u32,
}

/// S3 Object Lock modes: nobody can shorten or remove a `compliance` lock;
/// a `governance` lock yields to a key with `s3:BypassGovernanceRetention`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LockMode {
    Compliance,
    Governance,
}

#[derive(Debug, Clone)]
pub struct S3Sink {
    /// The S3 endpoint URL; none: AWS.
    pub endpoint: Option<String>,
    pub bucket: String,
    pub region: String,
    pub access_key_id: String,
    pub secret: Secret,
    /// Path-style requests (`https://host/bucket/key`), what RGW wants.
    pub path_style: bool,
    pub ca_file: Option<PathBuf>,
    pub allow_http: bool,
    pub object_lock: Option<ObjectLock>,
}

impl RawKind for RawS3 {
    type Settings = S3Sink;
    const SHARED: &'static [&'static str] = OBJECT;

    fn resolve(self, cx: &Cx) -> Result<S3Sink, ConfigError> {
        let bucket = cx.required("bucket", self.bucket)?;
        let access_key_id = cx.required("access_key_id", self.access_key_id)?;
        let secret = cx.v.inline_or_file(
            cx.key,
            "secret_access_key",
            &self.secret_access_key,
            &self.secret_access_key_file,
            cx.span.clone(),
        )?;
        let allow_http = self.allow_http.unwrap_or(false);
        cx.endpoint(self.endpoint.as_deref(), allow_http)?;
        if let Some(ca) = &self.ca_file {
            cx.v.readable(&format!("{}.ca_file", cx.key), ca, cx.span.clone())?;
        }
        if let Some(l) = &self.object_lock {
            // S3 caps a retention at 100 years; a lock of 0 days is no lock.
            if l.days == 0 || l.days > 36500 {
                return Err(cx.v.err(
                    format!("{}.object_lock.days", cx.key),
                    cx.v.field_span(cx.span.clone(), "object_lock"),
                    "must be between 1 and 36500",
                ));
            }
        }
        Ok(S3Sink {
            endpoint: self.endpoint,
            bucket,
            region: self.region.unwrap_or_else(|| "us-east-1".into()),
            access_key_id,
            secret,
            path_style: self.path_style.unwrap_or(true),
            ca_file: self.ca_file,
            allow_http,
            object_lock: self.object_lock,
        })
    }
}

impl KindOptions for S3Sink {
    /// Object stores check the bytes on the way in: S3 and RGW verify each
    /// part against the sha256 in its SigV4 signature. A full readback
    /// would double the traffic (and egress fees) for every archive;
    /// `vigil-snapshot scrub` reads copies back on its own schedule instead.
    fn default_verify(&self) -> VerifyMode {
        VerifyMode::Size
    }
}
