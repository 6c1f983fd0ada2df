//! `[quota]`: what `vigil-quota` checks on CephFS, how it reads it, and the
//! thresholds (with per volume, group or subvolume overrides by glob).

use super::{Config, ConfigError, Validator};
use crate::units::HumanDuration;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::ops::Range;
use std::path::PathBuf;
use toml::Spanned;

/// How `vigil-quota` reads usage and quotas.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum QuotaBackend {
    /// `ceph fs volume ls`, `subvolumegroup ls/info`, `subvolume ls/info` (`--format json`).
    #[default]
    Ceph,
    /// `ceph.quota.max_bytes` and `ceph.dir.rbytes` on a mounted CephFS: the fast path.
    Xattr,
}

impl std::fmt::Display for QuotaBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            QuotaBackend::Ceph => "ceph",
            QuotaBackend::Xattr => "xattr",
        })
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuotaConfig {
    #[serde(default)]
    pub backend: QuotaBackend,
    /// CephFS volumes to check; empty means every volume (`ceph fs volume ls`,
    /// or every key of `xattr.mounts`).
    #[serde(default)]
    pub volumes: Vec<String>,
    /// Warn when a subvolume or group uses this percentage of its quota.
    #[serde(default = "default_warn")]
    pub warn_percent: f64,
    /// Critical at this percentage of its quota.
    #[serde(default = "default_critical")]
    pub critical_percent: f64,
    /// Raise `quota_unlimited` for subvolumes without a quota.
    #[serde(default = "default_true")]
    pub flag_unlimited: bool,
    /// Check subvolume group quotas too.
    #[serde(default = "default_true")]
    pub check_groups: bool,
    /// Upper bound for one `ceph` call, or for the whole xattr walk.
    #[serde(default = "default_timeout")]
    pub timeout: HumanDuration,
    /// `ceph` calls running at once.
    #[serde(default = "default_concurrency")]
    pub concurrency: u32,
    /// Linear regression over the usage samples of this window (like `predict_linear`).
    #[serde(default = "default_forecast_window")]
    pub forecast_window: HumanDuration,
    /// Raise `quota_forecast` when a subvolume is forecast to be full within
    /// this many days; 0 turns the forecast alert off.
    #[serde(default = "default_forecast_days")]
    pub forecast_days: f64,
    /// Samples in the window before a forecast is made.
    #[serde(default = "default_min_samples")]
    pub forecast_min_samples: u32,
    /// The samples must span at least this long before a forecast is made:
    /// a burst of writes over a few minutes says little about the next days.
    #[serde(default = "default_min_span")]
    pub forecast_min_span: HumanDuration,
    /// Usage samples older than this are deleted from `<state.dir>/quota.db`.
    #[serde(default = "default_history_keep")]
    pub history_keep: HumanDuration,
    #[serde(default)]
    pub ceph: CephCliConfig,
    #[serde(default)]
    pub xattr: XattrConfig,
    /// Overrides, applied in order; a later match overrides an earlier one.
    #[serde(default)]
    pub rule: Vec<Spanned<QuotaRule>>,
}

/// `[quota.ceph]`: how the `ceph` CLI is called (also for the xattr backend's probe).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CephCliConfig {
    /// The `ceph` command (a path, or a name looked up in `PATH`).
    #[serde(default = "default_ceph_bin")]
    pub bin: PathBuf,
    /// `--conf`; Ceph's default (`/etc/ceph/ceph.conf`) when unset.
    pub conf: Option<PathBuf>,
    /// `--keyring`; a secret file (0600).
    pub keyring: Option<PathBuf>,
    /// `--id`, without `client.` (e.g. `vigil` for `client.vigil`).
    pub client_id: Option<String>,
    /// `--connect-timeout`: how long to try to reach the monitors.
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout: HumanDuration,
}

impl Default for CephCliConfig {
    fn default() -> Self {
        Self {
            bin: default_ceph_bin(),
            conf: None,
            keyring: None,
            client_id: None,
            connect_timeout: default_connect_timeout(),
        }
    }
}

/// `[quota.xattr]`: where each volume's CephFS root is mounted.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct XattrConfig {
    /// Volume name to mount point of that volume's root, e.g. `{ vol1 = "/mnt/cephfs" }`.
    #[serde(default)]
    pub mounts: BTreeMap<String, PathBuf>,
    /// Check with one `ceph fs dump` that the volumes' MDS are active before
    /// touching the mount (a mount of a dead cluster hangs readers).
    #[serde(default = "default_true")]
    pub probe: bool,
}

impl Default for XattrConfig {
    fn default() -> Self {
        Self {
            mounts: BTreeMap::new(),
            probe: true,
        }
    }
}

/// `[[quota.rule]]`: overrides for the volumes, groups and subvolumes whose
/// names match every glob given (`*` and `?`). A rule without `subvolume`
/// also matches the group itself.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuotaRule {
    /// Glob of the CephFS volume names the rule applies to (none: every volume).
    pub volume: Option<String>,
    /// Glob of the subvolume group names (none: every group).
    pub group: Option<String>,
    /// Glob of the subvolume names (none: every subvolume, and the group itself).
    pub subvolume: Option<String>,
    /// `[quota] warn_percent` for what matches.
    pub warn_percent: Option<f64>,
    /// `[quota] critical_percent` for what matches.
    pub critical_percent: Option<f64>,
    /// `[quota] flag_unlimited` for what matches.
    pub flag_unlimited: Option<bool>,
    /// `[quota] forecast_days` for what matches.
    pub forecast_days: Option<f64>,
    /// Skip matching entries entirely: no row, no alert.
    #[serde(default)]
    pub ignore: bool,
}

impl QuotaRule {
    /// Whether this rule applies to `volume/group[/subvolume]`.
    pub fn matches(&self, volume: &str, group: &str, subvolume: Option<&str>) -> bool {
        let m = |pat: &Option<String>, v: &str| pat.as_deref().is_none_or(|p| glob_match(p, v));
        m(&self.volume, volume)
            && m(&self.group, group)
            && match (subvolume, &self.subvolume) {
                (None, Some(_)) => false,
                (None, None) => true,
                (Some(s), p) => m(p, s),
            }
    }
}

impl Default for QuotaConfig {
    fn default() -> Self {
        Self {
            backend: QuotaBackend::Ceph,
            volumes: Vec::new(),
            warn_percent: default_warn(),
            critical_percent: default_critical(),
            flag_unlimited: true,
            check_groups: true,
            timeout: default_timeout(),
            concurrency: default_concurrency(),
            forecast_window: default_forecast_window(),
            forecast_days: default_forecast_days(),
            forecast_min_samples: default_min_samples(),
            forecast_min_span: default_min_span(),
            history_keep: default_history_keep(),
            ceph: CephCliConfig::default(),
            xattr: XattrConfig::default(),
            rule: Vec::new(),
        }
    }
}

fn default_warn() -> f64 {
    80.0
}
fn default_critical() -> f64 {
    90.0
}
fn default_true() -> bool {
    true
}
fn default_timeout() -> HumanDuration {
    HumanDuration::from_secs(30)
}
fn default_concurrency() -> u32 {
    4
}
fn default_forecast_window() -> HumanDuration {
    HumanDuration::from_secs(7 * 86400)
}
fn default_forecast_days() -> f64 {
    7.0
}
fn default_min_samples() -> u32 {
    3
}
fn default_min_span() -> HumanDuration {
    HumanDuration::from_secs(3600)
}
fn default_history_keep() -> HumanDuration {
    HumanDuration::from_secs(30 * 86400)
}
fn default_ceph_bin() -> PathBuf {
    "ceph".into()
}
fn default_connect_timeout() -> HumanDuration {
    HumanDuration::from_secs(10)
}

/// Shell-style glob with `*` (any run, also empty) and `?` (one character).
pub fn glob_match(pattern: &str, s: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = s.chars().collect();
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    pi == p.len()
}

impl Config {
    /// The `[quota]` section, or its defaults when absent.
    pub fn quota(&self) -> std::borrow::Cow<'_, QuotaConfig> {
        match &self.quota {
            Some(q) => std::borrow::Cow::Borrowed(q.get_ref()),
            None => std::borrow::Cow::Owned(QuotaConfig::default()),
        }
    }
}

impl Validator<'_> {
    pub(super) fn quota(&self, q: &QuotaConfig, span: Range<usize>) -> Result<(), ConfigError> {
        let f = |field: &str| self.field_span(span.clone(), field);
        let pct = |key: &str, v: f64| -> Result<(), ConfigError> {
            if !(v > 0.0 && v <= 100.0) {
                return Err(self.err(
                    key.to_string(),
                    f(key.rsplit('.').next().unwrap_or(key)),
                    format!("{v} is not a percentage in (0, 100]"),
                ));
            }
            Ok(())
        };
        pct("quota.warn_percent", q.warn_percent)?;
        pct("quota.critical_percent", q.critical_percent)?;
        if q.warn_percent > q.critical_percent {
            return Err(self.err(
                "quota.warn_percent",
                f("warn_percent"),
                "must be at most critical_percent",
            ));
        }
        if q.timeout.get() < std::time::Duration::from_secs(1) {
            return Err(self.err("quota.timeout", f("timeout"), "must be at least 1s"));
        }
        if !(1..=64).contains(&q.concurrency) {
            return Err(self.err("quota.concurrency", f("concurrency"), "must be 1 to 64"));
        }
        if q.forecast_window.get() < std::time::Duration::from_secs(60) {
            return Err(self.err(
                "quota.forecast_window",
                f("forecast_window"),
                "must be at least 1m",
            ));
        }
        if !(q.forecast_days >= 0.0 && q.forecast_days.is_finite()) {
            return Err(self.err(
                "quota.forecast_days",
                f("forecast_days"),
                "must be 0 (off) or a positive number of days",
            ));
        }
        if q.forecast_min_span.get() > q.forecast_window.get() {
            return Err(self.err(
                "quota.forecast_min_span",
                f("forecast_min_span"),
                format!(
                    "{} is longer than forecast_window ({}): no forecast could ever be made",
                    q.forecast_min_span, q.forecast_window
                ),
            ));
        }
        if q.forecast_min_samples < 2 {
            return Err(self.err(
                "quota.forecast_min_samples",
                f("forecast_min_samples"),
                "a line needs at least 2 samples",
            ));
        }
        if q.history_keep < q.forecast_window {
            return Err(self.err(
                "quota.history_keep",
                f("history_keep"),
                "must be at least forecast_window",
            ));
        }
        for (i, v) in q.volumes.iter().enumerate() {
            if v.trim().is_empty() || v.contains('/') {
                return Err(self.err(
                    format!("quota.volumes[{i}]"),
                    f("volumes"),
                    format!("{v:?} is not a CephFS volume name"),
                ));
            }
        }
        let c = &q.ceph;
        if c.bin.as_os_str().is_empty() {
            return Err(self.err("quota.ceph.bin", f("bin"), "must not be empty"));
        }
        if let Some(id) = &c.client_id {
            if id.is_empty() || id.starts_with("client.") || id.contains(char::is_whitespace) {
                return Err(self.err(
                    "quota.ceph.client_id",
                    f("client_id"),
                    "the id without `client.`, e.g. \"vigil\" for client.vigil",
                ));
            }
        }
        if c.connect_timeout.get() < std::time::Duration::from_secs(1) {
            return Err(self.err(
                "quota.ceph.connect_timeout",
                f("connect_timeout"),
                "must be at least 1s",
            ));
        }
        if let Some(p) = &c.conf {
            self.readable("quota.ceph.conf", p, span.clone())?;
        }
        if let Some(p) = &c.keyring {
            self.private("quota.ceph.keyring", p, span.clone())?;
        }
        if q.backend == QuotaBackend::Xattr && q.xattr.mounts.is_empty() {
            return Err(self.err(
                "quota.xattr.mounts",
                f("mounts"),
                "backend \"xattr\" needs the mount point of each volume, e.g. mounts = { vol1 = \"/mnt/cephfs\" }",
            ));
        }
        for (vol, p) in &q.xattr.mounts {
            if !p.is_absolute() {
                return Err(self.err(
                    format!("quota.xattr.mounts.{vol}"),
                    f("mounts"),
                    "must be an absolute path",
                ));
            }
        }
        if q.backend == QuotaBackend::Xattr {
            for v in &q.volumes {
                if !q.xattr.mounts.contains_key(v) {
                    return Err(self.err(
                        "quota.volumes",
                        f("volumes"),
                        format!("volume {v:?} has no mount point in quota.xattr.mounts"),
                    ));
                }
            }
        }
        for (i, r) in q.rule.iter().enumerate() {
            let rs = r.span();
            let r = r.get_ref();
            let key = format!("quota.rule[{i}]");
            let rf = |field: &str| self.field_span(rs.clone(), field);
            for (field, v) in [
                ("warn_percent", r.warn_percent),
                ("critical_percent", r.critical_percent),
            ] {
                if let Some(v) = v {
                    if !(v > 0.0 && v <= 100.0) {
                        return Err(self.err(
                            format!("{key}.{field}"),
                            rf(field),
                            format!("{v} is not a percentage in (0, 100]"),
                        ));
                    }
                }
            }
            let w = r.warn_percent.unwrap_or(q.warn_percent);
            let c = r.critical_percent.unwrap_or(q.critical_percent);
            if w > c {
                return Err(self.err(
                    format!("{key}.warn_percent"),
                    rf("warn_percent"),
                    "must be at most critical_percent",
                ));
            }
            if r.forecast_days
                .is_some_and(|d| !(d >= 0.0 && d.is_finite()))
            {
                return Err(self.err(
                    format!("{key}.forecast_days"),
                    rf("forecast_days"),
                    "must be 0 (off) or a positive number of days",
                ));
            }
            if r.volume.is_none() && r.group.is_none() && r.subvolume.is_none() {
                return Err(self.err(
                    key,
                    Some(rs),
                    "give at least one of volume, group, subvolume (globs); for every entry change the [quota] defaults",
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob_match("*", ""));
        assert!(glob_match("pvc-*", "pvc-123"));
        assert!(!glob_match("pvc-*", "pv-123"));
        assert!(glob_match("a?c", "abc"));
        assert!(glob_match("*-db-*", "team-db-1"));
        assert!(!glob_match("tenants", "tenants2"));
        assert!(glob_match("t*s*", "tenants"));
    }

    #[test]
    fn rule_matching() {
        let r = QuotaRule {
            volume: None,
            group: Some("ten*".into()),
            subvolume: None,
            warn_percent: None,
            critical_percent: None,
            flag_unlimited: None,
            forecast_days: None,
            ignore: false,
        };
        assert!(r.matches("vol1", "tenants", None));
        assert!(r.matches("vol1", "tenants", Some("x")));
        assert!(!r.matches("vol1", "_nogroup", Some("x")));
        let r = QuotaRule {
            subvolume: Some("pvc-*".into()),
            ..r
        };
        assert!(!r.matches("vol1", "tenants", None));
        assert!(r.matches("vol1", "tenants", Some("pvc-1")));
    }
}
