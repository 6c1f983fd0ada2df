//! `[health]`: what `vigil-health run` checks and its thresholds. Every key
//! is optional; without the section, the etcd members, the bastion's own
//! disk and the backup freshness are checked with the defaults below.

use super::{ConfigError, Validator};
use crate::units::{ByteSize, HumanDuration};
use serde::Deserialize;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthConfig {
    /// Default timeout of one check; each sub-table can override it.
    #[serde(default = "default_timeout")]
    pub timeout: HumanDuration,
    #[serde(default)]
    pub etcd: EtcdHealth,
    /// `[health.kubernetes]`: `/readyz` and `/livez` of the API servers.
    pub kubernetes: Option<KubeHealth>,
    #[serde(default)]
    pub certs: CertHealth,
    /// `[health.node]`: node_exporter targets.
    pub node: Option<NodeHealth>,
    #[serde(default)]
    pub freshness: FreshnessHealth,
    #[serde(default)]
    pub bastion: BastionHealth,
}

impl Default for HealthConfig {
    fn default() -> Self {
        Self {
            timeout: default_timeout(),
            etcd: EtcdHealth::default(),
            kubernetes: None,
            certs: CertHealth::default(),
            node: None,
            freshness: FreshnessHealth::default(),
            bastion: BastionHealth::default(),
        }
    }
}

/// `[health.etcd]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EtcdHealth {
    /// Timeout of each member's checks (default: `[health] timeout`).
    pub timeout: Option<HumanDuration>,
    /// Raft index entries a member may be behind the most advanced one.
    #[serde(default = "default_raft_lag")]
    pub max_raft_lag: u64,
    /// The backend quota when the server does not report it (etcd < 3.6);
    /// etcd's default is 2 GiB (`--quota-backend-bytes`).
    #[serde(default = "default_quota")]
    pub db_quota: ByteSize,
    /// Warn when a member's database is this percentage of `db_quota`.
    #[serde(default = "default_db_warn")]
    pub db_size_warn_percent: f64,
    /// Critical at this percentage of `db_quota` (etcd raises NOSPACE at 100).
    #[serde(default = "default_db_crit")]
    pub db_size_critical_percent: f64,
    /// Share of the file not in use (db size against size in use) that calls for a defrag.
    #[serde(default = "default_frag")]
    pub fragmentation_warn_percent: f64,
    /// Databases smaller than this are never reported as fragmented.
    #[serde(default = "default_frag_min")]
    pub fragmentation_min_size: ByteSize,
    /// Learners are expected (e.g. during a planned member replacement).
    #[serde(default)]
    pub allow_learners: bool,
}

impl Default for EtcdHealth {
    fn default() -> Self {
        Self {
            timeout: None,
            max_raft_lag: default_raft_lag(),
            db_quota: default_quota(),
            db_size_warn_percent: default_db_warn(),
            db_size_critical_percent: default_db_crit(),
            fragmentation_warn_percent: default_frag(),
            fragmentation_min_size: default_frag_min(),
            allow_learners: false,
        }
    }
}

/// `[health.kubernetes]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KubeHealth {
    /// The API through the load balancer, e.g. `https://10.0.0.10:6443`.
    pub lb: Option<String>,
    /// Each master's API server, e.g. `["https://10.0.0.11:6443", ...]`.
    #[serde(default)]
    pub masters: Vec<String>,
    /// CA bundle (PEM) to trust instead of the system roots, e.g. RKE2's `server-ca.crt`.
    pub ca: Option<PathBuf>,
    /// A bearer token, read from a private file (or a systemd credential).
    pub token_file: Option<PathBuf>,
    /// A client certificate and key (PEM), instead of a token.
    pub cert: Option<PathBuf>,
    /// The client certificate's private key for the API server (PEM, mode 0600).
    pub key: Option<PathBuf>,
    /// Which endpoints to ask; default both.
    #[serde(default = "default_probes")]
    pub probes: Vec<String>,
    /// Timeout of each API endpoint's checks (default: `[health] timeout`).
    pub timeout: Option<HumanDuration>,
}

/// `[health.certs]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertHealth {
    /// Warn when a certificate expires within this long.
    #[serde(default = "default_cert_warn")]
    pub warn: HumanDuration,
    /// Critical when a certificate expires within this long.
    #[serde(default = "default_cert_crit")]
    pub critical: HumanDuration,
    /// More TLS endpoints (`host:port` or `https://host:port`): ingress, load balancer, ...
    /// https etcd members and the Kubernetes API endpoints are always checked.
    #[serde(default)]
    pub endpoints: Vec<String>,
    /// Local PEM files, or directories whose `*.crt` and `*.pem` files are checked,
    /// e.g. `/var/lib/rancher/rke2/server/tls`.
    #[serde(default)]
    pub files: Vec<PathBuf>,
    /// Timeout of each TLS handshake (default: `[health] timeout`).
    pub timeout: Option<HumanDuration>,
}

impl Default for CertHealth {
    fn default() -> Self {
        Self {
            warn: default_cert_warn(),
            critical: default_cert_crit(),
            endpoints: Vec::new(),
            files: Vec::new(),
            timeout: None,
        }
    }
}

/// One node_exporter.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeTarget {
    /// The node's name in results and alerts.
    pub name: String,
    /// `http://host:9100` (`/metrics` is added when there is no path).
    pub url: String,
}

/// `[health.node]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeHealth {
    #[serde(default)]
    pub targets: Vec<NodeTarget>,
    /// Without `targets`: scrape `http://<member host>:<port>/metrics` for every member.
    pub port: Option<u16>,
    /// Warn when a filesystem has less than this percentage free.
    #[serde(default = "default_fs_warn")]
    pub fs_free_warn_percent: f64,
    /// Critical below this percentage free.
    #[serde(default = "default_fs_crit")]
    pub fs_free_critical_percent: f64,
    /// Warn when available memory is below this percentage of the total.
    #[serde(default = "default_mem_warn")]
    pub mem_available_warn_percent: f64,
    /// Critical below this percentage of the total.
    #[serde(default = "default_mem_crit")]
    pub mem_available_critical_percent: f64,
    /// 5-minute load average per CPU.
    #[serde(default = "default_load_warn")]
    pub load_per_core_warn: f64,
    /// Critical above this 5-minute load average per CPU.
    #[serde(default = "default_load_crit")]
    pub load_per_core_critical: f64,
    /// Filesystem types that are not checked.
    #[serde(default = "default_ignore_fstypes")]
    pub ignore_fstypes: Vec<String>,
    /// Mount points (and everything below them) that are not checked.
    #[serde(default = "default_ignore_mounts")]
    pub ignore_mountpoints: Vec<String>,
    /// Timeout of each node_exporter scrape (default: `[health] timeout`).
    pub timeout: Option<HumanDuration>,
}

/// `[health.freshness]`: the dead-man check for backups.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FreshnessHealth {
    /// The newest verified archive of each member, locally and in each sink,
    /// must be younger than this.
    #[serde(default = "default_max_age")]
    pub max_age: HumanDuration,
    /// Check the sinks too (listing object stores costs a request or two each).
    #[serde(default = "default_true")]
    pub sinks: bool,
    /// The newest passing `vigil-restore drill` must be younger than this.
    /// Default: 8d when `restore.drill_identity_file` is set, else not checked.
    pub drill_max_age: Option<HumanDuration>,
    /// Timeout of listing each sink (default: `[health] timeout`).
    pub timeout: Option<HumanDuration>,
}

impl Default for FreshnessHealth {
    fn default() -> Self {
        Self {
            max_age: default_max_age(),
            sinks: true,
            drill_max_age: None,
            timeout: None,
        }
    }
}

/// `[health.bastion]`: free space in `snapshot.dir` and `state.dir`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BastionHealth {
    /// Warn when `snapshot.dir` or `state.dir` has less than this percentage free.
    #[serde(default = "default_bastion_warn")]
    pub free_warn_percent: f64,
    /// Critical below this percentage free.
    #[serde(default = "default_bastion_crit")]
    pub free_critical_percent: f64,
    /// Also fail (critical) below this many free bytes, whatever the percentage.
    #[serde(default)]
    pub min_free: Option<ByteSize>,
}

impl Default for BastionHealth {
    fn default() -> Self {
        Self {
            free_warn_percent: default_bastion_warn(),
            free_critical_percent: default_bastion_crit(),
            min_free: None,
        }
    }
}

impl HealthConfig {
    fn or_default(&self, t: Option<HumanDuration>) -> Duration {
        t.unwrap_or(self.timeout).get()
    }
    pub fn etcd_timeout(&self) -> Duration {
        self.or_default(self.etcd.timeout)
    }
    pub fn kube_timeout(&self) -> Duration {
        self.or_default(self.kubernetes.as_ref().and_then(|k| k.timeout))
    }
    pub fn cert_timeout(&self) -> Duration {
        self.or_default(self.certs.timeout)
    }
    pub fn node_timeout(&self) -> Duration {
        self.or_default(self.node.as_ref().and_then(|n| n.timeout))
    }
    /// Listing sinks can take longer than a probe: at least 30s unless set.
    pub fn freshness_timeout(&self) -> Duration {
        self.freshness
            .timeout
            .map(|t| t.get())
            .unwrap_or_else(|| self.timeout.get().max(Duration::from_secs(30)))
    }
}

fn default_timeout() -> HumanDuration {
    HumanDuration::from_secs(5)
}
fn default_raft_lag() -> u64 {
    1000
}
fn default_quota() -> ByteSize {
    ByteSize(2 << 30)
}
fn default_db_warn() -> f64 {
    80.0
}
fn default_db_crit() -> f64 {
    90.0
}
fn default_frag() -> f64 {
    50.0
}
fn default_frag_min() -> ByteSize {
    ByteSize(100 << 20)
}
fn default_probes() -> Vec<String> {
    vec!["readyz".into(), "livez".into()]
}
fn default_cert_warn() -> HumanDuration {
    HumanDuration::from_secs(30 * 86400)
}
fn default_cert_crit() -> HumanDuration {
    HumanDuration::from_secs(7 * 86400)
}
fn default_fs_warn() -> f64 {
    15.0
}
fn default_fs_crit() -> f64 {
    5.0
}
fn default_mem_warn() -> f64 {
    10.0
}
fn default_mem_crit() -> f64 {
    5.0
}
fn default_load_warn() -> f64 {
    2.0
}
fn default_load_crit() -> f64 {
    4.0
}
fn default_ignore_fstypes() -> Vec<String> {
    [
        "tmpfs",
        "devtmpfs",
        "overlay",
        "squashfs",
        "nsfs",
        "ramfs",
        "fuse.lxcfs",
    ]
    .map(String::from)
    .to_vec()
}
fn default_ignore_mounts() -> Vec<String> {
    [
        "/run",
        "/var/lib/kubelet/pods",
        "/var/lib/rancher/rke2/agent/containerd",
        "/snap",
    ]
    .map(String::from)
    .to_vec()
}
fn default_max_age() -> HumanDuration {
    HumanDuration::from_secs(26 * 3600)
}
fn default_true() -> bool {
    true
}
fn default_bastion_warn() -> f64 {
    20.0
}
fn default_bastion_crit() -> f64 {
    10.0
}

impl Validator<'_> {
    pub(super) fn health(&self, h: &HealthConfig) -> Result<(), ConfigError> {
        let at = |section: &str, field: &str| {
            self.section_span(section)
                .and_then(|s| self.field_span(s, field))
        };
        let timeouts = [
            ("health", Some(h.timeout)),
            ("health.etcd", h.etcd.timeout),
            (
                "health.kubernetes",
                h.kubernetes.as_ref().and_then(|k| k.timeout),
            ),
            ("health.certs", h.certs.timeout),
            ("health.node", h.node.as_ref().and_then(|n| n.timeout)),
            ("health.freshness", h.freshness.timeout),
        ];
        for (section, t) in timeouts {
            if t.is_some_and(|t| t.get() < Duration::from_millis(100)) {
                return Err(self.err(
                    format!("{section}.timeout"),
                    at(section, "timeout"),
                    "must be at least 100ms",
                ));
            }
        }
        let pct = |section: &str, field: &str, v: f64| {
            if (0.0..=100.0).contains(&v) {
                Ok(())
            } else {
                Err(self.err(
                    format!("{section}.{field}"),
                    at(section, field),
                    format!("{v} is not a percentage between 0 and 100"),
                ))
            }
        };
        let ordered = |section: &str, lo: (&str, f64), hi: (&str, f64)| {
            if lo.1 <= hi.1 {
                Ok(())
            } else {
                Err(self.err(
                    format!("{section}.{}", lo.0),
                    at(section, lo.0),
                    format!("must not be above {} ({})", hi.0, hi.1),
                ))
            }
        };
        let e = &h.etcd;
        for (f, v) in [
            ("db_size_warn_percent", e.db_size_warn_percent),
            ("db_size_critical_percent", e.db_size_critical_percent),
            ("fragmentation_warn_percent", e.fragmentation_warn_percent),
        ] {
            pct("health.etcd", f, v)?;
        }
        ordered(
            "health.etcd",
            ("db_size_warn_percent", e.db_size_warn_percent),
            ("db_size_critical_percent", e.db_size_critical_percent),
        )?;
        if e.db_quota.0 == 0 {
            return Err(self.err(
                "health.etcd.db_quota",
                at("health.etcd", "db_quota"),
                "must be above 0 (etcd's default is \"2GiB\")",
            ));
        }
        if let Some(k) = &h.kubernetes {
            let s = "health.kubernetes";
            if k.lb.is_none() && k.masters.is_empty() {
                return Err(self.err(
                    s,
                    self.section_span(s),
                    "give lb and/or masters (https://host:6443)",
                ));
            }
            for (i, u) in k.lb.iter().chain(&k.masters).enumerate() {
                if !crate::endpoint::is_http_url(u) {
                    let field = if i == 0 && k.lb.is_some() {
                        "lb"
                    } else {
                        "masters"
                    };
                    return Err(self.err(
                        format!("{s}.{field}"),
                        at(s, field),
                        format!("{u:?} must be an https:// URL such as \"https://10.0.0.11:6443\""),
                    ));
                }
            }
            for p in &k.probes {
                if !matches!(p.as_str(), "readyz" | "livez") {
                    return Err(self.err(
                        format!("{s}.probes"),
                        at(s, "probes"),
                        format!("unknown probe {p:?}: use \"readyz\" and/or \"livez\""),
                    ));
                }
            }
            if k.token_file.is_some() && (k.cert.is_some() || k.key.is_some()) {
                return Err(self.err(
                    format!("{s}.token_file"),
                    at(s, "token_file"),
                    "give token_file or cert and key, not both",
                ));
            }
            match (&k.cert, &k.key) {
                (Some(c), Some(key)) => {
                    let span = self.section_span(s).unwrap_or(0..0);
                    self.readable(&format!("{s}.cert"), c, span.clone())?;
                    self.private(&format!("{s}.key"), key, span)?;
                }
                (None, None) => {}
                _ => {
                    return Err(self.err(
                        format!("{s}.cert"),
                        self.section_span(s),
                        "cert and key go together: give both or neither",
                    ))
                }
            }
            let span = self.section_span(s).unwrap_or(0..0);
            if let Some(t) = &k.token_file {
                self.private(&format!("{s}.token_file"), t, span.clone())?;
            }
            if let Some(ca) = &k.ca {
                self.readable(&format!("{s}.ca"), ca, span)?;
            }
        }
        let c = &h.certs;
        if c.critical > c.warn {
            return Err(self.err(
                "health.certs.critical",
                at("health.certs", "critical"),
                format!("must not be longer than warn ({})", c.warn),
            ));
        }
        for (i, ep) in c.endpoints.iter().enumerate() {
            let scheme = crate::endpoint::split(ep).scheme;
            let ok = matches!(scheme, "" | "https")
                && !crate::endpoint::has_path(ep)
                && crate::endpoint::host_port(ep).is_some_and(|(h, _)| !h.is_empty());
            if !ok {
                return Err(self.err(
                    format!("health.certs.endpoints[{i}]"),
                    at("health.certs", "endpoints"),
                    format!("{ep:?} must be host:port or https://host:port"),
                ));
            }
        }
        for (i, f) in c.files.iter().enumerate() {
            if !f.is_absolute() {
                return Err(self.err(
                    format!("health.certs.files[{i}]"),
                    at("health.certs", "files"),
                    format!("{} must be an absolute path", f.display()),
                ));
            }
        }
        if let Some(n) = &h.node {
            let s = "health.node";
            if n.targets.is_empty() && n.port.is_none() {
                return Err(self.err(
                    s,
                    self.section_span(s),
                    "give targets = [{ name = \"cp-1\", url = \"http://10.0.0.11:9100\" }, ...] or port = 9100 (one exporter per member host)",
                ));
            }
            let mut names = std::collections::HashSet::new();
            for (i, t) in n.targets.iter().enumerate() {
                let span = self.section_span(s).unwrap_or(0..0);
                self.name(&format!("{s}.targets[{i}].name"), &t.name, span)?;
                if !names.insert(&t.name) {
                    return Err(self.err(
                        format!("{s}.targets[{i}].name"),
                        at(s, "targets"),
                        format!("duplicate target name {:?}", t.name),
                    ));
                }
                if !crate::endpoint::is_http_url(&t.url) {
                    return Err(self.err(
                        format!("{s}.targets[{i}].url"),
                        at(s, "targets"),
                        format!("{:?} must be http(s)://host:port[/metrics]", t.url),
                    ));
                }
            }
            for (f, v) in [
                ("fs_free_warn_percent", n.fs_free_warn_percent),
                ("fs_free_critical_percent", n.fs_free_critical_percent),
                ("mem_available_warn_percent", n.mem_available_warn_percent),
                (
                    "mem_available_critical_percent",
                    n.mem_available_critical_percent,
                ),
            ] {
                pct(s, f, v)?;
            }
            ordered(
                s,
                ("fs_free_critical_percent", n.fs_free_critical_percent),
                ("fs_free_warn_percent", n.fs_free_warn_percent),
            )?;
            ordered(
                s,
                (
                    "mem_available_critical_percent",
                    n.mem_available_critical_percent,
                ),
                ("mem_available_warn_percent", n.mem_available_warn_percent),
            )?;
            if n.load_per_core_warn.is_nan() || n.load_per_core_warn <= 0.0 {
                return Err(self.err(
                    format!("{s}.load_per_core_warn"),
                    at(s, "load_per_core_warn"),
                    "must be above 0",
                ));
            }
            ordered(
                s,
                ("load_per_core_warn", n.load_per_core_warn),
                ("load_per_core_critical", n.load_per_core_critical),
            )?;
        }
        let f = &h.freshness;
        if f.max_age.get() < Duration::from_secs(60) {
            return Err(self.err(
                "health.freshness.max_age",
                at("health.freshness", "max_age"),
                "must be at least 1m (a few snapshot intervals is sensible, e.g. \"26h\")",
            ));
        }
        if f.drill_max_age
            .is_some_and(|d| d.get() < Duration::from_secs(60))
        {
            return Err(self.err(
                "health.freshness.drill_max_age",
                at("health.freshness", "drill_max_age"),
                "must be at least 1m",
            ));
        }
        let b = &h.bastion;
        for (f, v) in [
            ("free_warn_percent", b.free_warn_percent),
            ("free_critical_percent", b.free_critical_percent),
        ] {
            pct("health.bastion", f, v)?;
        }
        ordered(
            "health.bastion",
            ("free_critical_percent", b.free_critical_percent),
            ("free_warn_percent", b.free_warn_percent),
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests;
