//! `[restore]`: vigil-restore's tools, drill settings and RKE2 steps.

use super::{ConfigError, Validator};
use crate::units::HumanDuration;
use serde::Deserialize;
use std::ops::Range;
use std::path::PathBuf;

/// `[restore]`: what `vigil-restore` needs beyond the archives. Every key is optional.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RestoreConfig {
    /// A private age key kept on this host only for `vigil-restore drill`. Its
    /// public key must be one of `snapshot.age_recipients`. A secret file (0600).
    pub drill_identity_file: Option<PathBuf>,
    /// Where drills restore and start their scratch etcd. Default: `<state.dir>/drill`.
    pub scratch_dir: Option<PathBuf>,
    /// The `etcd` binary for scratch members (proofs, drills, point-in-time replays).
    #[serde(default = "default_etcd_bin")]
    pub etcd_bin: PathBuf,
    /// The `etcdctl` binary (snapshot status and restore with etcd 3.4).
    #[serde(default = "default_etcdctl_bin")]
    pub etcdctl_bin: PathBuf,
    /// Used instead of etcdctl when it exists (etcd 3.5 and later).
    #[serde(default = "default_etcdutl_bin")]
    pub etcdutl_bin: PathBuf,
    /// The floor of `vigil-restore etcd`'s revision bump (`--bump-revision N
    /// --mark-compacted`, etcdutl 3.5.10+): N = max(this, newest revision
    /// seen − snapshot revision + margin). 0: the evidence alone sizes it.
    /// Older tools get the bump replayed, sized by the evidence alone. Only
    /// `--no-bump` restores without a bump.
    #[serde(default = "default_bump_revision")]
    pub bump_revision: u64,
    /// Keys a drill reads back from the restored member.
    #[serde(default = "default_sample_keys")]
    pub drill_sample_keys: u32,
    /// Upper bound for one member's drill (fetch, restore, start, checks).
    #[serde(default = "default_drill_timeout")]
    pub drill_timeout: HumanDuration,
    /// The `rke2` binary, for `vigil-restore rke2`.
    #[serde(default = "default_rke2_bin")]
    pub rke2_bin: PathBuf,
    /// The `systemctl` binary, for `vigil-restore rke2 --execute`.
    #[serde(default = "default_systemctl_bin")]
    pub systemctl_bin: PathBuf,
    /// RKE2's data directory on the server nodes.
    #[serde(default = "default_rke2_data_dir")]
    pub rke2_data_dir: PathBuf,
    /// How `vigil-restore rke2 --execute` reaches the other servers, e.g.
    /// `["ssh", "-o", "BatchMode=yes", "root@{host}"]`; `{host}` is the member's
    /// endpoint host, `{name}` its name. The remote command is appended as one argument.
    #[serde(default)]
    pub ssh: Vec<String>,
}

impl Default for RestoreConfig {
    fn default() -> Self {
        Self {
            drill_identity_file: None,
            scratch_dir: None,
            etcd_bin: default_etcd_bin(),
            etcdctl_bin: default_etcdctl_bin(),
            etcdutl_bin: default_etcdutl_bin(),
            bump_revision: default_bump_revision(),
            drill_sample_keys: default_sample_keys(),
            drill_timeout: default_drill_timeout(),
            rke2_bin: default_rke2_bin(),
            systemctl_bin: default_systemctl_bin(),
            rke2_data_dir: default_rke2_data_dir(),
            ssh: Vec::new(),
        }
    }
}

fn default_etcd_bin() -> PathBuf {
    "etcd".into()
}
fn default_etcdctl_bin() -> PathBuf {
    "etcdctl".into()
}
fn default_etcdutl_bin() -> PathBuf {
    "etcdutl".into()
}
fn default_bump_revision() -> u64 {
    1_000_000_000
}
fn default_sample_keys() -> u32 {
    10
}
fn default_drill_timeout() -> HumanDuration {
    HumanDuration::from_secs(600)
}
fn default_rke2_bin() -> PathBuf {
    "rke2".into()
}
fn default_systemctl_bin() -> PathBuf {
    "systemctl".into()
}
fn default_rke2_data_dir() -> PathBuf {
    "/var/lib/rancher/rke2".into()
}

impl RestoreConfig {
    /// The keys as read are what vigil-restore uses: nothing to fill in,
    /// only checks (the drill key's file mode when `v` opens files).
    pub(super) fn resolve(
        self,
        v: &Validator<'_>,
        span: Range<usize>,
    ) -> Result<RestoreConfig, ConfigError> {
        if let Some(p) = &self.drill_identity_file {
            v.private("restore.drill_identity_file", p, span.clone())?;
        }
        for (key, p) in [
            ("etcd_bin", &self.etcd_bin),
            ("etcdctl_bin", &self.etcdctl_bin),
            ("etcdutl_bin", &self.etcdutl_bin),
            ("rke2_bin", &self.rke2_bin),
            ("systemctl_bin", &self.systemctl_bin),
            ("rke2_data_dir", &self.rke2_data_dir),
        ] {
            if p.as_os_str().is_empty() {
                return Err(v.err(
                    format!("restore.{key}"),
                    v.field_span(span.clone(), key),
                    "must not be empty",
                ));
            }
        }
        if matches!(&self.scratch_dir, Some(p) if p.as_os_str().is_empty()) {
            return Err(v.err(
                "restore.scratch_dir",
                v.field_span(span.clone(), "scratch_dir"),
                "must not be empty",
            ));
        }
        if self.drill_timeout.get() < std::time::Duration::from_secs(5) {
            return Err(v.err(
                "restore.drill_timeout",
                v.field_span(span.clone(), "drill_timeout"),
                "must be at least 5s",
            ));
        }
        if self.drill_sample_keys > 10_000 {
            return Err(v.err(
                "restore.drill_sample_keys",
                v.field_span(span.clone(), "drill_sample_keys"),
                "at most 10000",
            ));
        }
        if !self.ssh.is_empty() && !self.ssh.iter().any(|a| a.contains("{host}")) {
            return Err(v.err(
                "restore.ssh",
                v.field_span(span, "ssh"),
                "must contain {host}, e.g. [\"ssh\", \"-o\", \"BatchMode=yes\", \"root@{host}\"]",
            ));
        }
        Ok(self)
    }
}
