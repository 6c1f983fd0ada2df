//! `[[sink]]`: where archives are shipped off the bastion.
//!
//! The keys every sink has are read here; each kind's own keys are read and
//! resolved by its own file (`s3.rs`, `dir.rs`, ...). A new kind is one new
//! file and its line in `kinds!` below (crates/core/build.rs reads that line
//! for vigil.toml(5)).

mod fields;
#[cfg(test)]
mod tests;

pub use s3::{LockMode, ObjectLock};
pub use tape::{RcPolicy, DEFAULT_DESCRIPTION};

use super::{ConfigError, Validator};
use crate::retention::KeepPolicy;
use crate::units::{ByteSize, HumanDuration};
use serde::Deserialize;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

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
pub(super) struct RawSink {
    name: String,
    #[serde(default = "default_keep_last")]
    keep_last: u32,
    #[serde(default)]
    keep_daily: u32,
    #[serde(default)]
    keep_weekly: u32,
    #[serde(default)]
    keep_monthly: u32,
    /// Kind s3, azure, gcs, fs. Keys start with `<prefix>/<cluster>/`.
    prefix: Option<String>,
    /// Kind s3, azure, gcs, fs, dir.
    verify: Option<VerifyMode>,
    /// Kind s3, azure, gcs, fs, tape-dsmc. Per request (dsmc: per command); default 10m.
    timeout: Option<HumanDuration>,
    /// Kind s3, azure, gcs, fs. Default 10s.
    connect_timeout: Option<HumanDuration>,
    /// Kind s3, azure, gcs, fs. Default 5.
    retries: Option<u32>,
    /// Kind s3, azure, gcs, fs. Default 5m.
    retry_timeout: Option<HumanDuration>,
    /// Kind s3, azure, gcs, fs. 5MiB to 5GiB; default 5MiB.
    part_size: Option<ByteSize>,
    /// Kind s3, azure, gcs, fs. Parts in flight; default 1.
    upload_concurrency: Option<u32>,
    /// The sink's kind.
    #[serde(flatten)]
    kind: RawKind,
    /// Every key again, to refuse those the kind does not know: serde
    /// honours `deny_unknown_fields` neither with `flatten` nor in the
    /// variants of an internally tagged enum.
    #[serde(flatten)]
    keys: toml::Table,
}

/// One kind's options as written; `COMMON` names the shared keys
/// (`prefix`, `timeout`, ...) that apply to it.
pub(super) trait RawOptions: for<'de> Deserialize<'de> {
    const COMMON: &'static [&'static str];
    type Resolved;
    fn resolve(self, cx: &Cx<'_, '_>) -> Result<Self::Resolved, ConfigError>;
}

/// What the rest of vigil asks of a kind's resolved options.
pub trait KindOptions {
    /// How a copy is checked after upload when `verify` is not set.
    fn default_verify(&self) -> VerifyMode;
    /// The local paths this sink writes, with the key naming each.
    fn writable_paths(&self, _sink: &str, _state_dir: &Path) -> Vec<(&'static str, PathBuf)> {
        Vec::new()
    }
}

/// The one list of kinds: `"name" => Variant(module::RawOptions -> Resolved)`.
/// It declares each kind's module, the enum serde reads (tagged by `kind`)
/// and the resolved enum, and dispatches between them.
macro_rules! kinds {
    ($($name:literal => $v:ident($m:ident :: $raw:ident -> $res:ident)),* $(,)?) => {
        $(mod $m; pub use $m::$res;)*

        /// The kind of sink: each has its own keys.
        #[derive(Debug, Deserialize)]
        #[serde(tag = "kind")]
        enum RawKind {
            $(#[serde(rename = $name)] $v($m::$raw),)*
        }

        /// A sink's kind with its resolved options.
        #[derive(Debug, Clone)]
        pub enum SinkKind {
            $($v($res),)*
        }

        impl RawKind {
            fn name(&self) -> &'static str {
                match self { $(RawKind::$v(_) => $name,)* }
            }
            fn common(&self) -> &'static [&'static str] {
                match self { $(RawKind::$v(_) => <$m::$raw>::COMMON,)* }
            }
            fn own(&self) -> &'static [&'static str] {
                match self { $(RawKind::$v(_) => fields::of::<$m::$raw>(),)* }
            }
            fn resolve(self, cx: &Cx<'_, '_>) -> Result<SinkKind, ConfigError> {
                Ok(match self { $(RawKind::$v(r) => SinkKind::$v(r.resolve(cx)?),)* })
            }
        }

        /// Every kind's name, shared keys and own keys.
        fn all_kinds() -> Vec<(&'static str, &'static [&'static str], &'static [&'static str])> {
            vec![$(($name, <$m::$raw>::COMMON, fields::of::<$m::$raw>())),*]
        }

        impl SinkKind {
            pub fn options(&self) -> &dyn KindOptions {
                match self { $(SinkKind::$v(o) => o,)* }
            }
            pub fn name(&self) -> &'static str {
                match self { $(SinkKind::$v(_) => $name,)* }
            }
        }
    };
}

kinds! {
    "s3" => S3(s3::RawS3 -> S3Sink),
    "azure" => Azure(azure::RawAzure -> AzureSink),
    "gcs" => Gcs(gcs::RawGcs -> GcsSink),
    "fs" => Fs(fs::RawFs -> FsSink),
    "dir" => Dir(dir::RawDir -> DirSink),
    "tape-dsmc" => TapeDsmc(tape::RawTape -> TapeSink),
}

impl std::fmt::Display for SinkKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
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
        self.kind.options().writable_paths(&self.name, state_dir)
    }
}

/// What a kind's `resolve` needs: the validator, and where the sink is.
pub(super) struct Cx<'v, 't> {
    pub v: &'v Validator<'t>,
    /// The kind's name, for messages.
    pub kind: &'static str,
    pub key: &'v str,
    pub span: Range<usize>,
}

impl Cx<'_, '_> {
    pub fn err(&self, field: &str, msg: impl Into<String>) -> ConfigError {
        self.v.err(
            format!("{}.{field}", self.key),
            self.v.field_span(self.span.clone(), field),
            msg,
        )
    }
    /// A key the kind cannot do without.
    pub fn required<T>(&self, field: &str, v: Option<T>) -> Result<T, ConfigError> {
        v.ok_or_else(|| {
            self.v.err(
                format!("{}.{field}", self.key),
                Some(self.span.clone()),
                format!("required for kind \"{}\"", self.kind),
            )
        })
    }
}

impl RawSink {
    pub(super) fn name(&self) -> &str {
        &self.name
    }

    /// Checks the keys against the kind and resolves the sink.
    pub(super) fn resolve(
        self,
        v: &Validator<'_>,
        key: &str,
        span: Range<usize>,
    ) -> Result<SinkConfig, ConfigError> {
        v.name(&format!("{key}.name"), &self.name, span.clone())?;
        let kind = self.kind.name();
        let cx = Cx { v, kind, key, span };
        let (common, own) = (self.kind.common(), self.kind.own());
        let set: [(&str, bool); 8] = [
            ("prefix", self.prefix.is_some()),
            ("verify", self.verify.is_some()),
            ("timeout", self.timeout.is_some()),
            ("connect_timeout", self.connect_timeout.is_some()),
            ("retries", self.retries.is_some()),
            ("retry_timeout", self.retry_timeout.is_some()),
            ("part_size", self.part_size.is_some()),
            ("upload_concurrency", self.upload_concurrency.is_some()),
        ];
        let shared = set.iter().filter(|(_, p)| *p).map(|(f, _)| *f);
        let others = self.keys.keys().map(String::as_str).filter(|k| {
            !matches!(
                *k,
                "name" | "kind" | "keep_last" | "keep_daily" | "keep_weekly" | "keep_monthly"
            ) && !set.iter().any(|(f, _)| f == k)
        });
        for field in shared.chain(others) {
            if common.contains(&field) || own.contains(&field) {
                continue;
            }
            let elsewhere = all_kinds()
                .iter()
                .any(|(_, c, o)| c.contains(&field) || o.contains(&field));
            let msg = if elsewhere {
                format!("does not apply to kind \"{kind}\"")
            } else {
                let mut known: Vec<&str> = common.iter().chain(own).copied().collect();
                known.extend([
                    "name",
                    "kind",
                    "keep_last",
                    "keep_daily",
                    "keep_weekly",
                    "keep_monthly",
                ]);
                let list: Vec<String> = known.iter().map(|k| format!("`{k}`")).collect();
                format!(
                    "unknown field `{field}`, expected one of {}",
                    list.join(", ")
                )
            };
            return Err(cx.err(field, msg));
        }
        let resolved = self.kind.resolve(&cx)?;
        if let Some(p) = self.part_size {
            if p.0 < 5 << 20 || p.0 > 5 << 30 {
                return Err(cx.err(
                    "part_size",
                    "must be between 5MiB and 5GiB (S3 multipart limits)",
                ));
            }
        }
        if self.keep_last == 0 {
            return Err(cx.err(
                "keep_last",
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
                .unwrap_or_else(|| resolved.options().default_verify()),
            timeout: secs(self.timeout, 600),
            connect_timeout: secs(self.connect_timeout, 10),
            retries: self.retries.unwrap_or(5),
            retry_timeout: secs(self.retry_timeout, 300),
            part_size: self.part_size.map(|b| b.0).unwrap_or(DEFAULT_PART_SIZE) as usize,
            // One part in flight while the next fills: the compressed stream
            // is a third of etcd's rate, and the 1 GB benchmark showed no
            // gain from 2.
            upload_concurrency: self.upload_concurrency.unwrap_or(1).max(1) as usize,
            kind: resolved,
        })
    }
}
