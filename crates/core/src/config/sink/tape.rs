//! `kind = "tape-dsmc"`: IBM Spectrum Protect (TSM) through `dsmc archive`.

use super::{KindOptions, VerifyMode};
use crate::config::kinds::{Cx, RawKind};
use crate::config::ConfigError;
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// IBM Spectrum Protect (TSM) through `dsmc archive`.
#[derive(Debug, Deserialize)]
// Unknown keys are refused by `RawSink::resolve`, which sees every key (see
// `RawSink::keys`).
pub(in crate::config) struct RawTape {
    dsmc: Option<PathBuf>,
    optfile: Option<PathBuf>,
    description: Option<String>,
    #[serde(default)]
    extra_args: Vec<String>,
    /// dsmc's error log (passed as `-errorlogname`); its directory is
    /// `DSM_LOG` and dsmc's working directory, so dsmsched.log, dsmwebcl.log
    /// and dsminstr.log land beside it. Default
    /// `<state.dir>/tape/<sink>/dsmerror.log`.
    error_log: Option<PathBuf>,
    /// The `PASSWORDDIR` of this node's stanza in dsm.sys (dsmc takes it only
    /// from dsm.sys). With `PASSWORDACCESS GENERATE` dsmc rewrites the
    /// password there, so it must be vigil's. Default `<state.dir>/tape/password`.
    password_dir: Option<PathBuf>,
    rc4: Option<RcPolicy>,
    rc8: Option<RcPolicy>,
    retrieve_verify: Option<bool>,
}

/// What a dsmc return code of 4 or 8 means for vigil.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum RcPolicy {
    #[default]
    Fail,
    Ok,
}

pub const DEFAULT_DESCRIPTION: &str = "vigil {cluster} {member} revision {revision} {id}";

/// dsmc's own default name for its error log.
pub const DEFAULT_ERROR_LOG: &str = "dsmerror.log";

#[derive(Debug, Clone)]
pub struct TapeSink {
    pub dsmc: PathBuf,
    pub optfile: Option<PathBuf>,
    pub description: String,
    pub extra_args: Vec<String>,
    error_log: Option<PathBuf>,
    password_dir: Option<PathBuf>,
    pub rc4: RcPolicy,
    pub rc8: RcPolicy,
    pub retrieve_verify: bool,
}

impl TapeSink {
    /// Where dsmc writes its error log for sink `sink`.
    pub fn error_log(&self, sink: &str, state_dir: &Path) -> PathBuf {
        self.error_log
            .clone()
            .unwrap_or_else(|| state_dir.join("tape").join(sink).join(DEFAULT_ERROR_LOG))
    }
    /// dsmc's log directory: `DSM_LOG` and its working directory.
    pub fn log_dir(&self, sink: &str, state_dir: &Path) -> PathBuf {
        let log = self.error_log(sink, state_dir);
        log.parent().map(Path::to_path_buf).unwrap_or(log)
    }
    /// The password directory dsm.sys names for this node.
    pub fn password_dir(&self, state_dir: &Path) -> PathBuf {
        self.password_dir
            .clone()
            .unwrap_or_else(|| state_dir.join("tape").join("password"))
    }
}

impl RawKind for RawTape {
    type Settings = TapeSink;
    const SHARED: &'static [&'static str] = &["timeout"];

    fn resolve(self, cx: &Cx) -> Result<TapeSink, ConfigError> {
        self.check_paths(cx)?;
        Ok(TapeSink {
            dsmc: self.dsmc.unwrap_or_else(|| PathBuf::from("dsmc")),
            optfile: self.optfile,
            description: self
                .description
                .unwrap_or_else(|| DEFAULT_DESCRIPTION.to_string()),
            extra_args: self.extra_args,
            error_log: self.error_log,
            password_dir: self.password_dir,
            rc4: self.rc4.unwrap_or_default(),
            rc8: self.rc8.unwrap_or_default(),
            retrieve_verify: self.retrieve_verify.unwrap_or(false),
        })
    }
}

impl RawTape {
    /// dsmc's paths are vigil's to name: absolute, and not smuggled past
    /// `error_log` through `extra_args`.
    fn check_paths(&self, cx: &Cx) -> Result<(), ConfigError> {
        if let Some(log) = &self.error_log {
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
                return Err(cx.err(
                    "error_log",
                    cx.field_span("error_log"),
                    format!("{}: {m}", log.display()),
                ));
            }
        }
        if let Some(d) = &self.password_dir {
            if !d.is_absolute() {
                return Err(cx.err(
                    "password_dir",
                    cx.field_span("password_dir"),
                    format!(
                        "{}: must be an absolute path (the PASSWORDDIR of dsm.sys)",
                        d.display()
                    ),
                ));
            }
        }
        // IBM's minimum abbreviation of ERRORLOGName is "errorlogn".
        if let Some(a) = self.extra_args.iter().find(|a| {
            let l = a.trim_start_matches('-').to_ascii_lowercase();
            a.starts_with('-') && l.starts_with("errorlogn")
        }) {
            return Err(cx.err(
"extra_args", cx.field_span("extra_args"),
                format!("{a:?}: set error_log instead, so that vigil reads the log dsmc writes and the unit may write it"),
            ));
        }
        Ok(())
    }
}

impl KindOptions for TapeSink {
    fn default_verify(&self) -> VerifyMode {
        VerifyMode::Readback
    }
    fn takes_journal(&self) -> bool {
        false
    }
    fn writable_paths(&self, sink: &str, state_dir: &Path) -> Vec<(&'static str, PathBuf)> {
        let mut v = vec![
            ("error_log", self.log_dir(sink, state_dir)),
            ("password_dir", self.password_dir(state_dir)),
        ];
        v.dedup_by(|a, b| a.1 == b.1);
        v
    }
}
