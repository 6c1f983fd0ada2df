//! `[[sink]]`: where archives are shipped off the bastion.
//!
//! The keys every sink has are read here; each kind's own keys are read and
//! resolved by its own file (`s3.rs`, `dir.rs`, ...), registered by its line
//! in `kinds!` below. A sink is read in two steps, as every table of kinds is
//! (`kinds.rs`).

#[cfg(test)]
mod tests;

pub use s3::{LockMode, ObjectLock};
pub use tape::{RcPolicy, DEFAULT_DESCRIPTION};

use super::kinds::{all_of, fields_of, kinds, own_keys, Cx, Family};
use super::{ConfigError, Validator};
use crate::retention::KeepPolicy;
use crate::units::{ByteSize, HumanDuration};
use serde::Deserialize;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;
use toml::de::DeTable;

/// How a stored copy is checked after the upload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VerifyMode {
    /// Read the object back and compare size and sha256 (default for `fs`
    /// and `dir`).
    Readback,
    /// Compare the size the store reports (default for s3, azure and gcs:
    /// the bytes were already checked in transit, see `verify_mode`).
    Size,
}

/// A place archives are shipped to, off the bastion. `kind` decides which
/// other keys apply; a key of another kind is refused.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSink {
    /// The sink's name: `--sink`, `--source`, alerts and outcome records use it.
    name: String,
    kind: SinkKind,
    /// Verified archives kept per member in this sink.
    #[serde(default = "default_keep_last")]
    keep_last: u32,
    /// Also keep the newest archive of each of this many days, per member.
    #[serde(default)]
    keep_daily: u32,
    /// Also keep the newest archive of each of this many weeks, per member.
    #[serde(default)]
    keep_weekly: u32,
    /// Also keep the newest archive of each of this many months, per member.
    #[serde(default)]
    keep_monthly: u32,
    /// Only for kinds `"s3"`, `"azure"`, `"gcs"`, `"fs"`. Keys start with
    /// `<prefix>/<cluster>/`.
    prefix: Option<String>,
    /// Only for kinds `"s3"`, `"azure"`, `"gcs"`, `"fs"`, `"dir"`.
    verify: Option<VerifyMode>,
    /// Only for kinds `"s3"`, `"azure"`, `"gcs"`, `"fs"`, `"tape-dsmc"`. Per
    /// request (dsmc: per command); default 10m.
    timeout: Option<HumanDuration>,
    /// Only for kinds `"s3"`, `"azure"`, `"gcs"`, `"fs"`. Default 10s.
    connect_timeout: Option<HumanDuration>,
    /// Only for kinds `"s3"`, `"azure"`, `"gcs"`, `"fs"`. Default 5.
    retries: Option<u32>,
    /// Only for kinds `"s3"`, `"azure"`, `"gcs"`, `"fs"`. Default 5m.
    retry_timeout: Option<HumanDuration>,
    /// Only for kinds `"s3"`, `"azure"`, `"gcs"`, `"fs"`. 5MiB to 5GiB;
    /// default 5MiB.
    part_size: Option<ByteSize>,
    /// Only for kinds `"s3"`, `"azure"`, `"gcs"`, `"fs"`. Parts in flight;
    /// default 1.
    upload_concurrency: Option<u32>,
}

kinds! {
    /// What `kind = "..."` names.
    enum SinkKind =>
    /// A sink's kind with its resolved options.
    SinkSettings: dyn KindOptions, each sink_backends => backends;
    /// S3 or Ceph RGW.
    "s3" => S3(s3::RawS3 => S3Sink),
    /// Azure Blob Storage.
    "azure" => Azure(azure::RawAzure => AzureSink),
    /// Google Cloud Storage.
    "gcs" => Gcs(gcs::RawGcs => GcsSink),
    /// A mounted filesystem (NFS, CephFS) through object_store.
    "fs" => Fs(fs::RawFs => FsSink),
    /// An LTFS mount or a BackupPC staging directory.
    "dir" => Dir(dir::RawDir => DirSink),
    /// IBM Spectrum Protect (TSM) through `dsmc archive`.
    "tape-dsmc" => TapeDsmc(tape::RawTape => TapeSink),
}

/// What the rest of vigil asks of a kind's resolved options.
pub trait KindOptions {
    /// How a copy is checked after upload when `verify` is not set.
    fn default_verify(&self) -> VerifyMode;
    /// Whether vigil-journal ships its segments here (not to tape).
    fn takes_journal(&self) -> bool {
        true
    }
    /// The local paths this sink writes, with the key naming each.
    fn writable_paths(&self, _sink: &str, _state_dir: &Path) -> Vec<(&'static str, PathBuf)> {
        Vec::new()
    }
}

impl std::fmt::Display for SinkKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `[[sink]]` as a table of kinds.
pub(super) struct Sinks;

impl Family for Sinks {
    type Common = RawSink;
    const PATH: &'static [&'static str] = &["sink"];
    const RESTRICTED: &'static [&'static str] = OBJECT;
    fn kind_fields() -> Vec<&'static str> {
        SinkKind::all_fields()
    }
    fn common() -> &'static [&'static str] {
        static F: OnceLock<&'static [&'static str]> = OnceLock::new();
        F.get_or_init(fields_of::<RawSink>)
    }
    fn all() -> &'static [&'static str] {
        static F: OnceLock<Vec<&'static str>> = OnceLock::new();
        F.get_or_init(|| all_of::<Self>(Self::common()))
    }
}

/// The shared keys of object stores (s3, azure, gcs, fs).
pub(super) const OBJECT: &[&str] = &[
    "prefix",
    "verify",
    "timeout",
    "connect_timeout",
    "retries",
    "retry_timeout",
    "part_size",
    "upload_concurrency",
];

/// One sink, resolved: the shared settings with their defaults, and the
/// kind's options.
#[derive(Debug, Clone)]
pub struct SinkConfig {
    pub name: String,
    pub keep: KeepPolicy,
    prefix: String,
    verify: VerifyMode,
    timeout: Duration,
    connect_timeout: Duration,
    retries: u32,
    retry_timeout: Duration,
    part_size: usize,
    upload_concurrency: usize,
    pub kind: SinkKind,
    pub settings: SinkSettings,
}

fn default_keep_last() -> u32 {
    5
}

/// The S3 minimum: per member and sink the upload buffers hold part_size ×
/// (upload_concurrency + 1), so this keeps three members under 64 MiB RSS.
pub const DEFAULT_PART_SIZE: u64 = 5 << 20;

impl SinkConfig {
    pub fn policy(&self) -> KeepPolicy {
        self.keep
    }
    pub fn timeout(&self) -> Duration {
        self.timeout
    }
    pub fn connect_timeout(&self) -> Duration {
        self.connect_timeout
    }
    pub fn retries(&self) -> u32 {
        self.retries
    }
    pub fn retry_timeout(&self) -> Duration {
        self.retry_timeout
    }
    pub fn part_size(&self) -> usize {
        self.part_size
    }
    pub fn upload_concurrency(&self) -> usize {
        self.upload_concurrency
    }
    pub fn verify_mode(&self) -> VerifyMode {
        self.verify
    }
    pub fn prefix(&self) -> &str {
        &self.prefix
    }
    /// Whether vigil-journal ships its segments here (object stores, `dir`).
    pub fn takes_journal(&self) -> bool {
        self.settings.options().takes_journal()
    }
    /// Every local path this sink writes, for `ReadWritePaths=` and
    /// check-config: the directory of a `dir` or `fs` sink; for tape-dsmc,
    /// dsmc's log directory and password directory. Object stores write none.
    /// Paths under `state_dir` are included too (they are writable anyway).
    pub fn writable_paths(&self, state_dir: &Path) -> Vec<PathBuf> {
        self.writable_paths_by_key(state_dir)
            .into_iter()
            .map(|(_, p)| p)
            .collect()
    }
    /// [`Self::writable_paths`] with the key of this sink that names each
    /// (`path`, `error_log` for the log's directory, `password_dir`), for
    /// messages such as `sink[0].password_dir: ... is not writable`.
    pub fn writable_paths_by_key(&self, state_dir: &Path) -> Vec<(&'static str, PathBuf)> {
        self.settings
            .options()
            .writable_paths(&self.name, state_dir)
    }
}

impl RawSink {
    pub(super) fn name(&self) -> &str {
        &self.name
    }

    /// Checks the keys against the kind and resolves the sink; `table` is
    /// this sink's table in the parsed document.
    pub(super) fn resolve(
        self,
        v: &Validator<'_>,
        key: &str,
        span: Range<usize>,
        table: Option<&DeTable<'_>>,
    ) -> Result<SinkConfig, ConfigError> {
        v.name(&format!("{key}.name"), &self.name, span.clone())?;
        let cx = Cx {
            v,
            key,
            span,
            kind: format!("{:?}", self.kind.as_str()),
        };
        let own = own_keys::<Sinks>(
            &cx,
            table,
            self.kind.fields(),
            self.kind.shared(),
            SinkKind::owners,
        )?;
        let settings = self.kind.resolve(&cx, own)?;
        if let Some(p) = self.part_size {
            if p.0 < 5 << 20 || p.0 > 5 << 30 {
                return Err(cx.err(
                    "part_size",
                    cx.field_span("part_size"),
                    "must be between 5MiB and 5GiB (S3 multipart limits)",
                ));
            }
        }
        if self.keep_last == 0 {
            return Err(cx.err(
                "keep_last",
                cx.field_span("keep_last"),
                "must be at least 1: the newest verified copy is never deleted",
            ));
        }
        let secs = |d: Option<HumanDuration>, dflt: u64| {
            d.map(|d| d.get()).unwrap_or(Duration::from_secs(dflt))
        };
        Ok(SinkConfig {
            name: self.name,
            keep: KeepPolicy {
                last: self.keep_last,
                daily: self.keep_daily,
                weekly: self.keep_weekly,
                monthly: self.keep_monthly,
            },
            prefix: self
                .prefix
                .as_deref()
                .unwrap_or("")
                .trim_matches('/')
                .to_string(),
            verify: self
                .verify
                .unwrap_or_else(|| settings.options().default_verify()),
            timeout: secs(self.timeout, 600),
            connect_timeout: secs(self.connect_timeout, 10),
            retries: self.retries.unwrap_or(5),
            retry_timeout: secs(self.retry_timeout, 300),
            part_size: self.part_size.map(|b| b.0).unwrap_or(DEFAULT_PART_SIZE) as usize,
            // One part in flight while the next fills: the compressed stream
            // is a third of etcd's rate, and the 1 GB benchmark showed no
            // gain from 2.
            upload_concurrency: self.upload_concurrency.unwrap_or(1).max(1) as usize,
            kind: self.kind,
            settings,
        })
    }
}
