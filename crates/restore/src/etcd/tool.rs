//! Which tool restores a snapshot here: etcdutl when it is there, else
//! etcdctl (3.4), and its version.

use crate::RestoreError;
use serde::Serialize;
use std::path::PathBuf;
use vigil_core::cmd::Cmd;
use vigil_core::config::RestoreConfig;

/// The tool that turns a snapshot into a data directory.
#[derive(Debug, Clone, Serialize)]
pub struct Tool {
    /// `etcdutl` (3.5 and later) or `etcdctl` (3.4).
    pub kind: &'static str,
    pub bin: PathBuf,
    pub version: String,
    /// (major, minor) of the tool.
    pub major_minor: (u32, u32),
}

impl Tool {
    /// `snapshot restore --bump-revision --mark-compacted`: etcdutl 3.5.10 and later.
    pub fn can_bump(&self) -> bool {
        crate::bump::can_bump(self.kind, &self.version)
    }

    pub(super) fn env(&self) -> &'static [(&'static str, &'static str)] {
        if self.kind == "etcdctl" {
            &[("ETCDCTL_API", "3")]
        } else {
            &[]
        }
    }
}

pub(super) fn parse_version(out: &str, prefix: &str) -> Option<(String, (u32, u32))> {
    let line = out
        .lines()
        .find_map(|l| l.trim().strip_prefix(prefix))?
        .trim()
        .to_string();
    let mut it = line.split('.');
    let major = it.next()?.parse().ok()?;
    let minor = it.next()?.parse().ok()?;
    Some((line, (major, minor)))
}

/// Uses etcdutl when it is there, else etcdctl (3.4 restores with etcdctl).
pub fn detect_tool(rc: &RestoreConfig) -> Result<Tool, RestoreError> {
    for (kind, bin) in [("etcdutl", &rc.etcdutl_bin), ("etcdctl", &rc.etcdctl_bin)] {
        let env: &[(&str, &str)] = if kind == "etcdctl" {
            &[("ETCDCTL_API", "3")]
        } else {
            &[]
        };
        match Cmd::new(bin).args(["version"]).envs(env).run_blocking() {
            Ok(out) => {
                let text = &out.stdout;
                let Some((version, mm)) = parse_version(text, &format!("{kind} version:")) else {
                    tracing::warn!("could not read the version of {}: {text:?}", bin.display());
                    continue;
                };
                // etcdctl 3.5+ still restores, but etcdutl is the tool for it.
                return Ok(Tool {
                    kind,
                    bin: bin.clone(),
                    version,
                    major_minor: mm,
                });
            }
            Err(e) => tracing::debug!("{kind} not usable: {e}"),
        }
    }
    Err(RestoreError::Usage(format!(
        "neither {} nor {} can be run; install etcd's tools (Debian: apt install etcd-client) or set restore.etcdutl_bin / restore.etcdctl_bin",
        rc.etcdutl_bin.display(),
        rc.etcdctl_bin.display()
    )))
}
