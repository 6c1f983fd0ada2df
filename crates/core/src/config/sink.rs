//! `[[sink]]`: where archives are shipped off the bastion.

use super::{ConfigError, Validator};
use crate::retention::KeepPolicy;
use crate::secret::Secret;
use crate::units::{ByteSize, HumanDuration};
use serde::Deserialize;
use std::ops::Range;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum SinkKind {
    #[serde(rename = "s3")]
    S3,
    #[serde(rename = "azure")]
    Azure,
    #[serde(rename = "gcs")]
    Gcs,
    #[serde(rename = "fs")]
    Fs,
    #[serde(rename = "dir")]
    Dir,
    #[serde(rename = "tape-dsmc")]
    TapeDsmc,
}

impl std::fmt::Display for SinkKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SinkKind::S3 => "s3",
            SinkKind::Azure => "azure",
            SinkKind::Gcs => "gcs",
            SinkKind::Fs => "fs",
            SinkKind::Dir => "dir",
            SinkKind::TapeDsmc => "tape-dsmc",
        })
    }
}

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

/// `object_lock = { mode = "compliance", days = 30 }` on an `s3` sink: every
/// archive and manifest is locked (S3 Object Lock) for `days` after upload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObjectLock {
    pub mode: LockMode,
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

/// What a dsmc return code of 4 or 8 means for vigil.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum RcPolicy {
    #[default]
    Fail,
    Ok,
}

/// One sink. Fields apply per `kind`; validation says which are needed and
/// refuses the ones that do not apply.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SinkConfig {
    pub name: String,
    pub kind: SinkKind,
    #[serde(default = "default_keep_last")]
    pub keep_last: u32,
    #[serde(default)]
    pub keep_daily: u32,
    #[serde(default)]
    pub keep_weekly: u32,
    #[serde(default)]
    pub keep_monthly: u32,
    pub prefix: Option<String>,
    pub verify: Option<VerifyMode>,
    pub timeout: Option<HumanDuration>,
    pub connect_timeout: Option<HumanDuration>,
    pub retries: Option<u32>,
    pub retry_timeout: Option<HumanDuration>,
    pub part_size: Option<ByteSize>,
    pub upload_concurrency: Option<u32>,
    // s3
    pub endpoint: Option<String>,
    pub bucket: Option<String>,
    pub region: Option<String>,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<Secret>,
    pub secret_access_key_file: Option<PathBuf>,
    pub path_style: Option<bool>,
    pub ca_file: Option<PathBuf>,
    pub allow_http: Option<bool>,
    pub object_lock: Option<ObjectLock>,
    // azure
    pub account: Option<String>,
    pub container: Option<String>,
    pub access_key: Option<Secret>,
    pub access_key_file: Option<PathBuf>,
    // gcs
    pub service_account_file: Option<PathBuf>,
    // fs, dir
    pub path: Option<PathBuf>,
    // tape-dsmc
    pub dsmc: Option<PathBuf>,
    pub optfile: Option<PathBuf>,
    pub description: Option<String>,
    #[serde(default)]
    pub extra_args: Vec<String>,
    /// dsmc's error log (passed as `-errorlogname`); its directory is
    /// `DSM_LOG` and dsmc's working directory, so dsmsched.log, dsmwebcl.log
    /// and dsminstr.log land beside it. Default
    /// `<state.dir>/tape/<sink>/dsmerror.log`.
    pub error_log: Option<PathBuf>,
    /// The `PASSWORDDIR` of this node's stanza in dsm.sys (dsmc takes it only
    /// from dsm.sys). With `PASSWORDACCESS GENERATE` dsmc rewrites the
    /// password there, so it must be vigil's. Default `<state.dir>/tape/password`.
    pub password_dir: Option<PathBuf>,
    pub rc4: Option<RcPolicy>,
    pub rc8: Option<RcPolicy>,
    pub retrieve_verify: Option<bool>,
    /// The S3 secret key or the Azure access key, from inline or `*_file`.
    #[serde(skip)]
    pub secret: Option<Secret>,
}

fn default_keep_last() -> u32 {
    5
}

/// The S3 minimum: per member and sink the upload buffers hold part_size ×
/// (upload_concurrency + 1), so this keeps three members under 64 MiB RSS.
pub const DEFAULT_PART_SIZE: u64 = 5 << 20;
pub const DEFAULT_DESCRIPTION: &str = "vigil {cluster} {member} revision {revision} {id}";

impl SinkConfig {
    pub fn policy(&self) -> KeepPolicy {
        KeepPolicy {
            last: self.keep_last,
            daily: self.keep_daily,
            weekly: self.keep_weekly,
            monthly: self.keep_monthly,
        }
    }
    pub fn timeout(&self) -> std::time::Duration {
        self.timeout
            .map(|d| d.get())
            .unwrap_or(std::time::Duration::from_secs(600))
    }
    pub fn connect_timeout(&self) -> std::time::Duration {
        self.connect_timeout
            .map(|d| d.get())
            .unwrap_or(std::time::Duration::from_secs(10))
    }
    pub fn retries(&self) -> u32 {
        self.retries.unwrap_or(5)
    }
    pub fn retry_timeout(&self) -> std::time::Duration {
        self.retry_timeout
            .map(|d| d.get())
            .unwrap_or(std::time::Duration::from_secs(300))
    }
    pub fn part_size(&self) -> usize {
        self.part_size.map(|b| b.0).unwrap_or(DEFAULT_PART_SIZE) as usize
    }
    /// One part in flight while the next fills: the compressed stream is a
    /// third of etcd's rate, and the 1 GB benchmark showed no gain from 2.
    pub fn upload_concurrency(&self) -> usize {
        self.upload_concurrency.unwrap_or(1).max(1) as usize
    }
    /// Object stores check the bytes on the way in: S3 and RGW verify each
    /// part against the sha256 in its SigV4 signature, and TLS protects
    /// azure and gcs. A full readback would double the traffic (and egress
    /// fees) for every archive; `vigil-snapshot scrub` reads copies back on
    /// its own schedule instead.
    pub fn verify_mode(&self) -> VerifyMode {
        self.verify.unwrap_or(match self.kind {
            SinkKind::S3 | SinkKind::Azure | SinkKind::Gcs => VerifyMode::Size,
            SinkKind::Fs | SinkKind::Dir | SinkKind::TapeDsmc => VerifyMode::Readback,
        })
    }
    pub fn prefix(&self) -> &str {
        self.prefix.as_deref().unwrap_or("").trim_matches('/')
    }
    /// Where dsmc writes its error log for this sink (tape-dsmc).
    pub fn dsmc_error_log(&self, state_dir: &Path) -> PathBuf {
        self.error_log.clone().unwrap_or_else(|| {
            state_dir
                .join("tape")
                .join(&self.name)
                .join(DEFAULT_ERROR_LOG)
        })
    }
    /// dsmc's log directory: `DSM_LOG` and its working directory (tape-dsmc).
    pub fn dsmc_log_dir(&self, state_dir: &Path) -> PathBuf {
        let log = self.dsmc_error_log(state_dir);
        log.parent().map(Path::to_path_buf).unwrap_or(log)
    }
    /// The password directory dsm.sys names for this node (tape-dsmc).
    pub fn dsmc_password_dir(&self, state_dir: &Path) -> PathBuf {
        self.password_dir
            .clone()
            .unwrap_or_else(|| state_dir.join("tape").join("password"))
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
        match self.kind {
            SinkKind::Fs | SinkKind::Dir => self.path.iter().map(|p| ("path", p.clone())).collect(),
            SinkKind::TapeDsmc => {
                let mut v = vec![
                    ("error_log", self.dsmc_log_dir(state_dir)),
                    ("password_dir", self.dsmc_password_dir(state_dir)),
                ];
                v.dedup_by(|a, b| a.1 == b.1);
                v
            }
            SinkKind::S3 | SinkKind::Azure | SinkKind::Gcs => Vec::new(),
        }
    }
}

/// dsmc's own default name for its error log.
pub const DEFAULT_ERROR_LOG: &str = "dsmerror.log";

impl Validator<'_> {
    pub(super) fn sink(
        &self,
        key: &str,
        s: &mut SinkConfig,
        span: Range<usize>,
    ) -> Result<(), ConfigError> {
        self.name(&format!("{key}.name"), &s.name, span.clone())?;
        let set: [(&str, bool); 32] = [
            ("prefix", s.prefix.is_some()),
            ("verify", s.verify.is_some()),
            ("timeout", s.timeout.is_some()),
            ("connect_timeout", s.connect_timeout.is_some()),
            ("retries", s.retries.is_some()),
            ("retry_timeout", s.retry_timeout.is_some()),
            ("part_size", s.part_size.is_some()),
            ("upload_concurrency", s.upload_concurrency.is_some()),
            ("endpoint", s.endpoint.is_some()),
            ("bucket", s.bucket.is_some()),
            ("region", s.region.is_some()),
            ("access_key_id", s.access_key_id.is_some()),
            ("secret_access_key", s.secret_access_key.is_some()),
            ("secret_access_key_file", s.secret_access_key_file.is_some()),
            ("path_style", s.path_style.is_some()),
            ("ca_file", s.ca_file.is_some()),
            ("allow_http", s.allow_http.is_some()),
            ("object_lock", s.object_lock.is_some()),
            ("account", s.account.is_some()),
            ("container", s.container.is_some()),
            ("access_key", s.access_key.is_some()),
            ("access_key_file", s.access_key_file.is_some()),
            ("service_account_file", s.service_account_file.is_some()),
            ("path", s.path.is_some()),
            ("dsmc", s.dsmc.is_some()),
            ("optfile", s.optfile.is_some()),
            ("description", s.description.is_some()),
            ("extra_args", !s.extra_args.is_empty()),
            ("error_log", s.error_log.is_some()),
            ("password_dir", s.password_dir.is_some()),
            ("rc4", s.rc4.is_some() || s.rc8.is_some()),
            ("retrieve_verify", s.retrieve_verify.is_some()),
        ];
        const OBJECT: &[&str] = &[
            "prefix",
            "verify",
            "timeout",
            "connect_timeout",
            "retries",
            "retry_timeout",
            "part_size",
            "upload_concurrency",
        ];
        let (allowed, required): (Vec<&str>, &[&str]) = match s.kind {
            SinkKind::S3 => (
                [
                    OBJECT,
                    &[
                        "endpoint",
                        "bucket",
                        "region",
                        "access_key_id",
                        "secret_access_key",
                        "secret_access_key_file",
                        "path_style",
                        "ca_file",
                        "allow_http",
                        "object_lock",
                    ],
                ]
                .concat(),
                &["bucket", "access_key_id"],
            ),
            SinkKind::Azure => (
                [
                    OBJECT,
                    &[
                        "account",
                        "container",
                        "access_key",
                        "access_key_file",
                        "endpoint",
                        "allow_http",
                    ],
                ]
                .concat(),
                &["account", "container"],
            ),
            SinkKind::Gcs => (
                [OBJECT, &["bucket", "service_account_file"]].concat(),
                &["bucket", "service_account_file"],
            ),
            SinkKind::Fs => ([OBJECT, &["path"]].concat(), &["path"]),
            SinkKind::Dir => (vec!["path", "verify"], &["path"]),
            SinkKind::TapeDsmc => (
                vec![
                    "dsmc",
                    "optfile",
                    "description",
                    "extra_args",
                    "error_log",
                    "password_dir",
                    "rc4",
                    "retrieve_verify",
                    "timeout",
                ],
                &[],
            ),
        };
        for (field, present) in set {
            if present && !allowed.contains(&field) {
                let f = if field == "rc4" && s.rc4.is_none() {
                    "rc8"
                } else {
                    field
                };
                return Err(self.err(
                    format!("{key}.{f}"),
                    self.field_span(span.clone(), f),
                    format!("does not apply to kind \"{}\"", s.kind),
                ));
            }
        }
        for field in required {
            if !set.iter().any(|(f, p)| f == field && *p) {
                return Err(self.err(
                    format!("{key}.{field}"),
                    Some(span.clone()),
                    format!("required for kind \"{}\"", s.kind),
                ));
            }
        }
        if s.kind == SinkKind::S3 {
            s.secret = Some(self.inline_or_file(
                key,
                "secret_access_key",
                &s.secret_access_key,
                &s.secret_access_key_file,
                span.clone(),
            )?);
            if let Some(ep) = &s.endpoint {
                let http = ep.starts_with("http://");
                if !(http || ep.starts_with("https://")) {
                    return Err(self.err(
                        format!("{key}.endpoint"),
                        self.field_span(span.clone(), "endpoint"),
                        format!(
                            "{ep:?} must start with https:// (or http:// with allow_http = true)"
                        ),
                    ));
                }
                if http && s.allow_http != Some(true) {
                    return Err(self.err(
                        format!("{key}.endpoint"),
                        self.field_span(span.clone(), "endpoint"),
                        "plain http:// sends archives and credentials unprotected; use https:// or set allow_http = true",
                    ));
                }
            }
            if let Some(ca) = &s.ca_file {
                self.readable(&format!("{key}.ca_file"), ca, span.clone())?;
            }
            if let Some(l) = &s.object_lock {
                // S3 caps a retention at 100 years; a lock of 0 days is no lock.
                if l.days == 0 || l.days > 36500 {
                    return Err(self.err(
                        format!("{key}.object_lock.days"),
                        self.field_span(span.clone(), "object_lock"),
                        "must be between 1 and 36500",
                    ));
                }
            }
        }
        if s.kind == SinkKind::Azure && (s.access_key.is_some() || s.access_key_file.is_some()) {
            s.secret = Some(self.inline_or_file(
                key,
                "access_key",
                &s.access_key,
                &s.access_key_file,
                span.clone(),
            )?);
        }
        if s.kind == SinkKind::Gcs {
            if let Some(p) = &s.service_account_file {
                self.private(&format!("{key}.service_account_file"), p, span.clone())?;
            }
        }
        if s.kind == SinkKind::TapeDsmc {
            self.dsmc_paths(key, s, span.clone())?;
        }
        if let Some(p) = s.part_size {
            if p.0 < 5 << 20 || p.0 > 5 << 30 {
                return Err(self.err(
                    format!("{key}.part_size"),
                    self.field_span(span.clone(), "part_size"),
                    "must be between 5MiB and 5GiB (S3 multipart limits)",
                ));
            }
        }
        if s.keep_last == 0 {
            return Err(self.err(
                format!("{key}.keep_last"),
                self.field_span(span, "keep_last"),
                "must be at least 1: the newest verified copy is never deleted",
            ));
        }
        Ok(())
    }

    /// dsmc's paths are vigil's to name: absolute, and not smuggled past
    /// `error_log` through `extra_args`.
    fn dsmc_paths(&self, key: &str, s: &SinkConfig, span: Range<usize>) -> Result<(), ConfigError> {
        if let Some(log) = &s.error_log {
            let bad = if !log.is_absolute() {
                Some("must be an absolute path")
            } else if log.as_os_str().to_string_lossy().ends_with('/') || log.file_name().is_none()
            {
                Some("must name a file (dsmc's error log), not a directory")
            } else if log.parent() == Some(Path::new("/")) {
                Some("must not be directly under / (IBM: DSM_LOG cannot be the root directory)")
            } else {
                None
            };
            if let Some(m) = bad {
                return Err(self.err(
                    format!("{key}.error_log"),
                    self.field_span(span, "error_log"),
                    format!("{}: {m}", log.display()),
                ));
            }
        }
        if let Some(d) = &s.password_dir {
            if !d.is_absolute() {
                return Err(self.err(
                    format!("{key}.password_dir"),
                    self.field_span(span, "password_dir"),
                    format!(
                        "{}: must be an absolute path (the PASSWORDDIR of dsm.sys)",
                        d.display()
                    ),
                ));
            }
        }
        // IBM's minimum abbreviation of ERRORLOGName is "errorlogn".
        if let Some(a) = s.extra_args.iter().find(|a| {
            let l = a.trim_start_matches('-').to_ascii_lowercase();
            a.starts_with('-') && l.starts_with("errorlogn")
        }) {
            return Err(self.err(
                format!("{key}.extra_args"),
                self.field_span(span, "extra_args"),
                format!("{a:?}: set error_log instead, so that vigil reads the log dsmc writes and the unit may write it"),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::Config;
    use std::path::{Path, PathBuf};

    fn sinks(extra: &str) -> Result<Config, crate::config::ConfigError> {
        let text = format!(
            "[cluster]\nname = \"prod\"\nmembers = [{{ name = \"cp-1\", endpoint = \"http://127.0.0.1:2379\" }}]\n[state]\ndir = \"/var/lib/vigil\"\n{extra}"
        );
        Config::parse(&text, Path::new("/etc/vigil/vigil.toml"))
    }

    #[test]
    fn writable_paths_name_what_each_sink_writes() {
        let c = sinks(
            "[[sink]]\nname = \"ltfs\"\nkind = \"dir\"\npath = \"/srv/ltfs/vigil\"\n\
             [[sink]]\nname = \"nfs\"\nkind = \"fs\"\npath = \"/mnt/nfs/vigil\"\n\
             [[sink]]\nname = \"tsm\"\nkind = \"tape-dsmc\"\n\
             [[sink]]\nname = \"tsm2\"\nkind = \"tape-dsmc\"\nerror_log = \"/var/log/vigil-tsm/dsmerror.log\"\npassword_dir = \"/etc/vigil/tsm\"\n\
             [[sink]]\nname = \"rgw\"\nkind = \"s3\"\nbucket = \"b\"\naccess_key_id = \"a\"\nsecret_access_key = \"s\"\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let state = Path::new("/var/lib/vigil");
        let got: Vec<Vec<PathBuf>> = c.sinks().map(|s| s.writable_paths(state)).collect();
        let p = |s: &str| PathBuf::from(s);
        assert_eq!(
            got,
            vec![
                vec![p("/srv/ltfs/vigil")],
                vec![p("/mnt/nfs/vigil")],
                vec![
                    p("/var/lib/vigil/tape/tsm"),
                    p("/var/lib/vigil/tape/password")
                ],
                vec![p("/var/log/vigil-tsm"), p("/etc/vigil/tsm")],
                vec![],
            ]
        );
        let keys: Vec<&str> = c
            .sinks()
            .flat_map(|s| s.writable_paths_by_key(state))
            .map(|(k, _)| k)
            .collect();
        assert_eq!(
            keys,
            [
                "path",
                "path",
                "error_log",
                "password_dir",
                "error_log",
                "password_dir"
            ]
        );
        let tsm = c.sinks().nth(2).unwrap();
        assert_eq!(
            tsm.dsmc_error_log(state),
            p("/var/lib/vigil/tape/tsm/dsmerror.log")
        );
    }

    #[test]
    fn dsmc_paths_are_checked_by_key() {
        for (extra, key, msg) in [
            (
                "error_log = \"dsmerror.log\"",
                "sink[0].error_log",
                "absolute",
            ),
            (
                "error_log = \"/var/log/tsm/\"",
                "sink[0].error_log",
                "not a directory",
            ),
            (
                "error_log = \"/dsmerror.log\"",
                "sink[0].error_log",
                "root directory",
            ),
            ("password_dir = \"tsm\"", "sink[0].password_dir", "absolute"),
            (
                "extra_args = [\"-ERRORLOGNAME=/tmp/x\"]",
                "sink[0].extra_args",
                "error_log",
            ),
            (
                "password_dir = \"/x\"\nbucket = \"b\"",
                "sink[0].bucket",
                "does not apply",
            ),
            ("passworddir = \"/x\"", "passworddir", "unknown field"),
        ] {
            let e = sinks(&format!(
                "[[sink]]\nname = \"tsm\"\nkind = \"tape-dsmc\"\n{extra}\n"
            ))
            .err()
            .unwrap_or_else(|| panic!("{extra}: accepted"))
            .to_string();
            assert!(e.contains(key) && e.contains(msg), "{extra}: {e}");
        }
        let e =
            sinks("[[sink]]\nname = \"d\"\nkind = \"dir\"\npath = \"/x\"\npassword_dir = \"/y\"\n")
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
        assert!(
            e.contains("sink[0].password_dir") && e.contains("does not apply"),
            "{e}"
        );
    }
}
