//! Which tool restores a snapshot here: etcdutl when it is there, else
//! etcdctl (3.4), and its version.

use crate::RestoreError;
use serde::Serialize;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use vigil_core::cmd::{argv, Cmd};
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
        can_bump(self.kind, &self.version)
    }

    pub(crate) fn env(&self) -> &'static [(&'static str, &'static str)] {
        if self.kind == "etcdctl" {
            &[("ETCDCTL_API", "3")]
        } else {
            &[]
        }
    }
}

pub(crate) fn parse_version(out: &str, prefix: &str) -> Option<(String, (u32, u32))> {
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

/// The first etcdutl with `snapshot restore --bump-revision --mark-compacted`.
pub const MIN_ETCDUTL: (u32, u32, u32) = (3, 5, 10);

/// `3.5.12` (also `v3.5.12`, `3.5.12-rc.0`) as numbers.
pub fn version_triple(v: &str) -> Option<(u32, u32, u32)> {
    let v = v.trim().trim_start_matches('v');
    let mut it = v.split('.');
    let major = it.next()?.parse().ok()?;
    let minor = it.next()?.parse().ok()?;
    let patch: String = it
        .next()
        .unwrap_or("0")
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    Some((major, minor, patch.parse().unwrap_or(0)))
}

/// True for etcdutl 3.5.10 and later: the only restore tool with the flags.
pub fn can_bump(kind: &str, version: &str) -> bool {
    kind == "etcdutl" && version_triple(version).is_some_and(|v| v >= MIN_ETCDUTL)
}

/// One member's `snapshot restore`.
#[derive(Debug, Clone, Copy)]
pub struct MemberRestore<'a> {
    pub tool: &'a Tool,
    pub snapshot: &'a Path,
    /// Fetch checked this file's sha256 against its manifest (which implies
    /// etcd's trailer), so the tool's own hash check would only hash the
    /// same bytes again.
    pub verified: bool,
    pub name: &'a str,
    pub data_dir: &'a Path,
    pub initial_cluster: &'a str,
    pub token: &'a str,
    pub peer_url: &'a str,
    /// `--bump-revision` (with `--mark-compacted`) when above 0 and the tool can.
    pub bump_revision: u64,
}

/// The argv of one member's restore.
pub fn restore_argv(r: &MemberRestore<'_>) -> Vec<OsString> {
    let mut a = argv(&r.tool.bin, ["snapshot", "restore"]);
    a.push(r.snapshot.into());
    for (k, v) in [
        ("--name", r.name),
        ("--initial-cluster", r.initial_cluster),
        ("--initial-cluster-token", r.token),
        ("--initial-advertise-peer-urls", r.peer_url),
    ] {
        a.push(k.into());
        a.push(v.into());
    }
    a.push("--data-dir".into());
    a.push(r.data_dir.into());
    if r.tool.can_bump() && r.bump_revision > 0 {
        a.push("--bump-revision".into());
        a.push(r.bump_revision.to_string().into());
        a.push("--mark-compacted".into());
    }
    if r.verified {
        // The trailer is still cut off; only the second sha256 pass goes.
        a.push("--skip-hash-check".into());
    }
    a
}

/// Restores into a temporary directory beside `data_dir` and renames it into place.
pub fn restore_member(r: &MemberRestore<'_>) -> Result<(), RestoreError> {
    let (tool, data_dir) = (r.tool, r.data_dir);
    let tmp = vigil_core::fsutil::partial_path(data_dir);
    let _ = std::fs::remove_dir_all(&tmp);
    let a = restore_argv(&MemberRestore {
        data_dir: &tmp,
        ..*r
    });
    if let Err(e) = crate::guard::tie(Cmd::argv(&a).envs(tool.env())).run_blocking() {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e.into());
    }
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o700))
        .map_err(|e| vigil_core::fsutil::FsError::new("setting mode 0700 on", &tmp, e))?;
    vigil_core::fsutil::commit_rename(&tmp, data_dir)?;
    Ok(())
}
