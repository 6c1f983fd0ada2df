//! The one TOML file every binary reads (contract 1 of DESIGN.md).
//!
//! Parsing is strict: unknown keys are errors, values are validated when the
//! file loads, and every error names the file, the key and the line.

use crate::secret::{self, Secret};
use crate::units::{ByteSize, HumanDuration};
use serde::Deserialize;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use toml::Spanned;

mod alert;
pub mod channel;
mod daemon;
mod health;
mod keypath;
mod metrics;
mod prove;
mod quota;
mod sink;
mod uses;
pub use alert::{
    AlertConfig, AlertRule, MaintenanceWindow, Severity, UnknownSeverity, ALERT_SOURCES,
};
pub use channel::email::SmtpTls;
pub use channel::{ChannelConfig, ChannelKind, ChannelSettings};
pub use daemon::{to_six_field, CronError, DaemonConfig, DAEMON_JOBS};
pub use health::{
    BastionHealth, CertHealth, EtcdHealth, FreshnessHealth, HealthConfig, KubeHealth, NodeHealth,
    NodeTarget,
};
pub use metrics::{MetricsConfig, DEFAULT_LISTEN, DEFAULT_TEXTFILE_DIR};
pub use prove::ProveRestore;
pub use quota::{glob_match, CephCliConfig, QuotaBackend, QuotaConfig, QuotaRule, XattrConfig};
pub use sink::{
    LockMode, ObjectLock, RcPolicy, SinkConfig, SinkKind, VerifyMode, DEFAULT_DESCRIPTION,
};
pub use uses::Uses;

/// Where the config lives unless `--config` says otherwise.
pub const DEFAULT_PATH: &str = "/etc/vigil/vigil.toml";
/// Where the units look for configs: `vigil.toml`, and `<name>.toml` for `@<name>` units.
pub const CONFIG_DIR: &str = "/etc/vigil";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}; please check --config")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}:{line}: {message}")]
    Parse {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error("{path}:{line}: key `{key}`: {message}", line = line.map(|l| l.to_string()).unwrap_or_else(|| "?".into()))]
    Invalid {
        path: PathBuf,
        line: Option<usize>,
        key: String,
        message: String,
    },
    #[error("{path}: section [{section}] is required by {program} but missing")]
    MissingSection {
        path: PathBuf,
        section: &'static str,
        program: &'static str,
    },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub cluster: ClusterConfig,
    pub snapshot: Option<Spanned<SnapshotConfig>>,
    pub state: StateConfig,
    /// `[alert]` as read; [`Config::alert`] is what validation makes of it.
    #[serde(default, rename = "alert")]
    raw_alert: alert::RawAlertConfig,
    /// `[alert]`: the engine's defaults, heartbeat, rules, maintenance windows and channels.
    #[serde(skip)]
    pub alert: AlertConfig,
    /// Where archives are shipped off the bastion.
    #[serde(default)]
    pub sink: Vec<Spanned<SinkConfig>>,
    /// `[restore]`: vigil-restore's tools, drill settings and RKE2 steps.
    pub restore: Option<Spanned<RestoreConfig>>,
    /// `[metrics]`: textfile-collector files and vigil-notify's `/metrics`.
    #[serde(default)]
    pub metrics: MetricsConfig,
    /// `[daemon]`: schedules for `vigild` (no systemd).
    pub daemon: Option<Spanned<DaemonConfig>>,
    /// `[health]`: vigil-health's checks and thresholds (defaults when absent).
    #[serde(default)]
    pub health: HealthConfig,
    /// `[quota]`: vigil-quota's CephFS backends, thresholds and forecast.
    pub quota: Option<Spanned<QuotaConfig>>,
    /// The file this config came from, for messages.
    #[serde(skip)]
    pub path: PathBuf,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    pub name: Spanned<String>,
    pub members: Vec<Spanned<MemberConfig>>,
    pub tls: Option<Spanned<TlsConfig>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemberConfig {
    pub name: String,
    pub endpoint: String,
    /// The member's peer URL (`--initial-advertise-peer-urls`) for
    /// `vigil-restore`. Default: the peer URLs recorded in the archive's
    /// manifest; for older archives the endpoint's host with port 2380.
    #[serde(default)]
    pub peer_url: Option<String>,
}

impl MemberConfig {
    /// The peer URL: `peer_url` if set, else the endpoint's scheme and host with port 2380.
    pub fn peer_url(&self) -> String {
        if let Some(p) = &self.peer_url {
            return p.trim().trim_end_matches('/').to_string();
        }
        let ep = self.endpoint.trim().trim_end_matches('/');
        let (scheme, rest) = ep.split_once("://").unwrap_or(("http", ep));
        let host = rest.rsplit_once(':').map(|(h, _)| h).unwrap_or(rest);
        format!("{scheme}://{host}:2380")
    }
}

/// mTLS material for the etcd client. The key is a secret file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    pub ca: PathBuf,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Encryption {
    #[default]
    Age,
    None,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnapshotConfig {
    pub dir: PathBuf,
    #[serde(default = "default_keep_last")]
    pub keep_last: u32,
    #[serde(default)]
    pub keep_daily: u32,
    #[serde(default)]
    pub keep_weekly: u32,
    #[serde(default)]
    pub keep_monthly: u32,
    #[serde(default)]
    pub age_recipients: Vec<Spanned<String>>,
    #[serde(default)]
    pub encryption: Encryption,
    #[serde(default = "default_zstd_level")]
    pub zstd_level: i32,
    /// zstd worker threads per member; 0 compresses on the member's own thread.
    #[serde(default)]
    pub zstd_threads: u32,
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout: HumanDuration,
    /// A member that sends nothing for this long is given up on.
    #[serde(default = "default_stall_timeout")]
    pub stall_timeout: HumanDuration,
    /// Upper bound for one member's whole snapshot.
    #[serde(default = "default_member_timeout")]
    pub timeout: HumanDuration,
    /// Compare the members' hash_kv at a common revision after snapshotting.
    #[serde(default = "default_true")]
    pub verify_consistency: bool,
    /// RKE2's server token, archived encrypted beside the snapshots.
    pub rke2_token_file: Option<PathBuf>,
    /// How many members stream their snapshot at once (1..=3). Each stream
    /// holds a bbolt read transaction open and costs its member CPU and
    /// network while it serves the apiservers.
    #[serde(default = "default_max_concurrent_members")]
    pub max_concurrent_members: u32,
    /// Bytes per second read from each member's snapshot stream; none: as
    /// fast as the member sends. Slower streams hold the read transaction
    /// open longer.
    #[serde(default)]
    pub rate_limit: Option<ByteSize>,
    /// Restore each verified stream into a scratch etcd in memory and
    /// compare it with the live member (no private key needed).
    #[serde(default)]
    pub prove_restore: ProveRestore,
    /// Defer a member's snapshot while its status shows trouble: no leader,
    /// an alarm, an apply backlog, or a linearizable read slower than
    /// `preflight_max_latency`.
    #[serde(default = "default_true")]
    pub preflight: bool,
    /// A linearizable read slower than this defers the member.
    #[serde(default = "default_preflight_max_latency")]
    pub preflight_max_latency: HumanDuration,
    /// How long a deferred member waits before it is checked again.
    #[serde(default = "default_defer_retry")]
    pub defer_retry: HumanDuration,
    /// How long a member may stay deferred before the run gives up on it
    /// (its snapshot fails and raises an alert).
    #[serde(default = "default_defer_limit")]
    pub defer_limit: HumanDuration,
    #[serde(skip)]
    pub recipients: Vec<age::x25519::Recipient>,
}

/// One at a time: on the cost bench the cluster's write p50 stayed within
/// 1.2x of idle and p99 within 4x (as for one `etcdctl snapshot save`),
/// against 10-15x and 6-9x with all three at once, for the same run time
/// where vigil's own CPU is the limit (BENCHMARKS.md).
fn default_max_concurrent_members() -> u32 {
    1
}
fn default_preflight_max_latency() -> HumanDuration {
    HumanDuration::from_secs(1)
}
fn default_defer_retry() -> HumanDuration {
    HumanDuration::from_secs(5)
}
fn default_defer_limit() -> HumanDuration {
    HumanDuration::from_secs(300)
}

fn default_keep_last() -> u32 {
    5
}

impl SnapshotConfig {
    /// Local retention per member.
    pub fn policy(&self) -> crate::retention::KeepPolicy {
        crate::retention::KeepPolicy {
            last: self.keep_last,
            daily: self.keep_daily,
            weekly: self.keep_weekly,
            monthly: self.keep_monthly,
        }
    }
}
/// Level 1: CPU is what a snapshot is short of (BENCHMARKS.md, zstd level sweep).
fn default_zstd_level() -> i32 {
    1
}
fn default_connect_timeout() -> HumanDuration {
    HumanDuration::from_secs(10)
}
fn default_stall_timeout() -> HumanDuration {
    HumanDuration::from_secs(60)
}
fn default_member_timeout() -> HumanDuration {
    HumanDuration::from_secs(3600)
}
fn default_true() -> bool {
    true
}

/// `[restore]`: what `vigil-restore` needs beyond the archives. Every key is optional.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RestoreConfig {
    /// A private age key kept on this host only for `vigil-restore drill`. Its
    /// public key must be one of `snapshot.age_recipients`. A secret file (0600).
    pub drill_identity_file: Option<PathBuf>,
    /// Where drills restore and start their scratch etcd. Default: `<state.dir>/drill`.
    pub scratch_dir: Option<PathBuf>,
    #[serde(default = "default_etcd_bin")]
    pub etcd_bin: PathBuf,
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
    #[serde(default = "default_rke2_bin")]
    pub rke2_bin: PathBuf,
    #[serde(default = "default_systemctl_bin")]
    pub systemctl_bin: PathBuf,
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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateConfig {
    pub dir: PathBuf,
}

impl Config {
    /// Reads and validates the config at `path`, opening every section's files.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        Self::load_for(path, Uses::ALL)
    }

    /// Reads and validates the config at `path`; only the sections in `uses`
    /// have their secret and TLS files opened (the rest is still validated).
    pub fn load_for(path: &Path, uses: Uses) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse_with(&text, path, uses)
    }

    /// Parses and validates config text; `path` is used in messages only.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        Self::parse_with(text, path, Uses::ALL)
    }

    /// Like [`Config::parse`], opening only the files of the sections in
    /// `uses`; an unopened `*_file` secret is left empty.
    pub fn parse_with(text: &str, path: &Path, uses: Uses) -> Result<Config, ConfigError> {
        let mut cfg: Config =
            toml::from_str(text).map_err(|e| keypath::toml_error(text, path, &e))?;
        cfg.path = path.to_path_buf();
        Validator {
            text,
            path,
            uses,
            check_files: std::cell::Cell::new(false),
        }
        .validate(&mut cfg)?;
        Ok(cfg)
    }

    pub fn cluster_name(&self) -> &str {
        self.cluster.name.get_ref()
    }

    pub fn members(&self) -> impl Iterator<Item = &MemberConfig> {
        self.cluster.members.iter().map(|m| m.get_ref())
    }

    pub fn tls(&self) -> Option<&TlsConfig> {
        self.cluster.tls.as_ref().map(|t| t.get_ref())
    }

    /// The `[snapshot]` section, or an error naming the program that needs it.
    pub fn sinks(&self) -> impl Iterator<Item = &SinkConfig> {
        self.sink.iter().map(|s| s.get_ref())
    }

    pub fn snapshot(&self, program: &'static str) -> Result<&SnapshotConfig, ConfigError> {
        self.snapshot
            .as_ref()
            .map(|s| s.get_ref())
            .ok_or_else(|| ConfigError::MissingSection {
                path: self.path.clone(),
                section: "snapshot",
                program,
            })
    }

    /// The `[restore]` section, or its defaults when absent.
    pub fn restore(&self) -> std::borrow::Cow<'_, RestoreConfig> {
        match &self.restore {
            Some(r) => std::borrow::Cow::Borrowed(r.get_ref()),
            None => std::borrow::Cow::Owned(RestoreConfig::default()),
        }
    }

    /// A summary safe to print: no secret values, only where they come from.
    pub fn summary(&self) -> String {
        use std::fmt::Write;
        let mut s = String::new();
        let _ = writeln!(s, "config {} is valid", self.path.display());
        let _ = writeln!(s, "cluster {}:", self.cluster_name());
        for m in self.members() {
            let _ = writeln!(s, "  member {:<12} {}", m.name, m.endpoint);
        }
        match self.tls() {
            Some(t) => {
                let _ = writeln!(
                    s,
                    "  tls: ca {}, client cert {}",
                    t.ca.display(),
                    t.cert.is_some()
                );
            }
            None => {
                let _ = writeln!(s, "  tls: off");
            }
        }
        if let Some(sn) = &self.snapshot {
            let sn = sn.get_ref();
            let _ = writeln!(
                s,
                "snapshot: dir {}, keep_last {}, zstd level {}, encryption {}",
                sn.dir.display(),
                sn.keep_last,
                sn.zstd_level,
                match sn.encryption {
                    Encryption::Age => format!("age to {} recipient(s)", sn.recipients.len()),
                    Encryption::None => "NONE (archives are plaintext)".into(),
                }
            );
        }
        let _ = writeln!(s, "state: dir {}", self.state.dir.display());
        if let Some(r) = &self.restore {
            let r = r.get_ref();
            let _ = writeln!(
                s,
                "restore: drill key {}, etcd {}",
                match &r.drill_identity_file {
                    Some(p) => p.display().to_string(),
                    None => "none (drills need --identity)".into(),
                },
                r.etcd_bin.display()
            );
        }
        for k in self.sinks() {
            let _ = writeln!(
                s,
                "sink {} ({}), keep {}",
                k.name,
                k.kind,
                k.policy().describe()
            );
        }
        for c in &self.alert.channel {
            let _ = writeln!(s, "alert channel {} ({:?})", c.name, c.kind());
        }
        s
    }
}

/// 1-based line of a byte offset.
fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
        + 1
}

struct Validator<'a> {
    text: &'a str,
    path: &'a Path,
    uses: Uses,
    /// Whether the section being validated has its files opened.
    check_files: std::cell::Cell<bool>,
}

impl Validator<'_> {
    fn err(
        &self,
        key: impl Into<String>,
        span: Option<Range<usize>>,
        msg: impl Into<String>,
    ) -> ConfigError {
        ConfigError::Invalid {
            path: self.path.to_path_buf(),
            line: span.map(|s| line_of(self.text, s.start)),
            key: key.into(),
            message: msg.into(),
        }
    }

    /// Line of `field = ...` inside a table's span, falling back to the table.
    fn field_span(&self, table: Range<usize>, field: &str) -> Option<Range<usize>> {
        let mut end = table.end.min(self.text.len());
        let start = table.start.min(end);
        // A `[table]`'s span is its header line only: its keys follow, up
        // to the next header.
        if self.text[start..].starts_with('[') {
            let body = self.text[end..]
                .find("\n[")
                .map_or(self.text.len(), |i| end + i + 1);
            end = body.max(end);
        }
        let mut off = start;
        for line in self.text[start..end].split_inclusive('\n') {
            let t = line.trim_start();
            if let Some(rest) = t.strip_prefix(field) {
                if rest.trim_start().starts_with('=') {
                    return Some(off..off + line.len());
                }
            }
            off += line.len();
        }
        Some(table)
    }

    fn validate(&self, cfg: &mut Config) -> Result<(), ConfigError> {
        self.name(
            "cluster.name",
            cfg.cluster.name.get_ref(),
            cfg.cluster.name.span(),
        )?;
        self.members(&cfg.cluster)?;
        self.check_files.set(self.uses.etcd);
        self.tls(&cfg.cluster)?;
        self.check_files.set(self.uses.snapshot);
        if let Some(sn) = cfg.snapshot.as_mut() {
            let span = sn.span();
            self.snapshot(sn.get_mut(), span)?;
        }
        if cfg.state.dir.as_os_str().is_empty() {
            return Err(self.err("state.dir", None, "must not be empty"));
        }
        self.check_files.set(self.uses.alert);
        cfg.alert = std::mem::take(&mut cfg.raw_alert).resolve(self)?;
        self.check_files.set(self.uses.restore);
        if let Some(r) = &cfg.restore {
            self.restore(r.get_ref(), r.span())?;
        }
        self.check_files.set(self.uses.sinks);
        let mut sink_names = std::collections::HashSet::new();
        for (i, sk) in cfg.sink.iter_mut().enumerate() {
            let span = sk.span();
            let key = format!("sink[{i}]");
            if !sink_names.insert(sk.get_ref().name.clone()) || sk.get_ref().name == "local" {
                return Err(self.err(
                    format!("{key}.name"),
                    Some(span),
                    "duplicate sink name (\"local\" is reserved for the bastion's own copy)",
                ));
            }
            self.sink(&key, sk.get_mut(), span)?;
        }
        self.check_files.set(false);
        self.metrics(&cfg.metrics)?;
        if let Some(d) = &cfg.daemon {
            self.daemon(d.get_ref(), d.span())?;
        }
        self.check_files.set(self.uses.quota);
        if let Some(q) = &cfg.quota {
            self.quota(q.get_ref(), q.span())?;
        }
        self.check_files.set(self.uses.health);
        self.health(&cfg.health)?;
        self.check_files.set(false);
        Ok(())
    }

    fn restore(&self, r: &RestoreConfig, span: Range<usize>) -> Result<(), ConfigError> {
        if let Some(p) = &r.drill_identity_file {
            self.private("restore.drill_identity_file", p, span.clone())?;
        }
        for (key, p) in [
            ("etcd_bin", &r.etcd_bin),
            ("etcdctl_bin", &r.etcdctl_bin),
            ("etcdutl_bin", &r.etcdutl_bin),
            ("rke2_bin", &r.rke2_bin),
            ("systemctl_bin", &r.systemctl_bin),
            ("rke2_data_dir", &r.rke2_data_dir),
        ] {
            if p.as_os_str().is_empty() {
                return Err(self.err(
                    format!("restore.{key}"),
                    self.field_span(span.clone(), key),
                    "must not be empty",
                ));
            }
        }
        if matches!(&r.scratch_dir, Some(p) if p.as_os_str().is_empty()) {
            return Err(self.err(
                "restore.scratch_dir",
                self.field_span(span.clone(), "scratch_dir"),
                "must not be empty",
            ));
        }
        if r.drill_timeout.get() < std::time::Duration::from_secs(5) {
            return Err(self.err(
                "restore.drill_timeout",
                self.field_span(span.clone(), "drill_timeout"),
                "must be at least 5s",
            ));
        }
        if r.drill_sample_keys > 10_000 {
            return Err(self.err(
                "restore.drill_sample_keys",
                self.field_span(span.clone(), "drill_sample_keys"),
                "at most 10000",
            ));
        }
        if !r.ssh.is_empty() && !r.ssh.iter().any(|a| a.contains("{host}")) {
            return Err(self.err(
                "restore.ssh",
                self.field_span(span, "ssh"),
                "must contain {host}, e.g. [\"ssh\", \"-o\", \"BatchMode=yes\", \"root@{host}\"]",
            ));
        }
        Ok(())
    }

    fn name(&self, key: &str, name: &str, span: Range<usize>) -> Result<(), ConfigError> {
        let ok = !name.is_empty()
            && name.len() <= 63
            && name
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphanumeric())
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
        if ok {
            Ok(())
        } else {
            Err(self.err(
                key,
                Some(span),
                format!("{name:?} is not a valid name: use letters, digits, '.', '_' and '-' (it becomes part of file names)"),
            ))
        }
    }

    fn members(&self, c: &ClusterConfig) -> Result<(), ConfigError> {
        if c.members.is_empty() {
            return Err(self.err(
                "cluster.members",
                Some(c.name.span()),
                "at least one member is required",
            ));
        }
        let mut seen_names = std::collections::HashSet::new();
        let mut seen_eps = std::collections::HashSet::new();
        for (i, m) in c.members.iter().enumerate() {
            let span = m.span();
            let m = m.get_ref();
            let key = format!("cluster.members[{i}]");
            self.name(&format!("{key}.name"), &m.name, span.clone())?;
            if !seen_names.insert(&m.name) {
                return Err(self.err(
                    format!("{key}.name"),
                    Some(span),
                    format!("duplicate member name {:?}", m.name),
                ));
            }
            let ep = m.endpoint.trim();
            if ep.chars().any(char::is_whitespace) {
                return Err(self.err(
                    format!("{key}.endpoint"),
                    Some(span.clone()),
                    format!("{ep:?} contains white space; write it as scheme://host:port"),
                ));
            }
            if !(ep.starts_with("http://") || ep.starts_with("https://")) {
                return Err(self.err(
                    format!("{key}.endpoint"),
                    Some(span.clone()),
                    format!("{ep:?} must start with http:// or https://"),
                ));
            }
            if !crate::endpoint::is_http_host_port(ep) {
                return Err(self.err(
                    format!("{key}.endpoint"),
                    Some(span),
                    format!("{ep:?} must be scheme://host:port, e.g. https://10.0.0.11:2379"),
                ));
            }
            if !seen_eps.insert(ep) {
                return Err(self.err(
                    format!("{key}.endpoint"),
                    Some(span),
                    format!("duplicate endpoint {ep:?}"),
                ));
            }
            if let Some(p) = &m.peer_url {
                let p = p.trim();
                if !crate::endpoint::is_http_host_port(p) {
                    return Err(self.err(
                        format!("{key}.peer_url"),
                        Some(span),
                        format!("{p:?} must be scheme://host:port, e.g. https://10.0.0.11:2380"),
                    ));
                }
            }
            let https = ep.starts_with("https://");
            if https && c.tls.is_none() {
                return Err(self.err(
                    format!("{key}.endpoint"),
                    Some(span),
                    "endpoint uses https:// but [cluster.tls] is missing; add ca (and cert/key for mTLS)",
                ));
            }
            if !https && c.tls.is_some() {
                return Err(self.err(
                    format!("{key}.endpoint"),
                    Some(span),
                    "[cluster.tls] is configured, so endpoints must use https://",
                ));
            }
        }
        Ok(())
    }

    fn tls(&self, c: &ClusterConfig) -> Result<(), ConfigError> {
        let Some(t) = &c.tls else { return Ok(()) };
        let span = t.span();
        let t = t.get_ref();
        self.readable("cluster.tls.ca", &t.ca, span.clone())?;
        match (&t.cert, &t.key) {
            (Some(cert), Some(key)) => {
                self.readable("cluster.tls.cert", cert, span.clone())?;
                self.private("cluster.tls.key", key, span)?;
            }
            (None, None) => {}
            _ => {
                return Err(self.err(
                    "cluster.tls",
                    Some(span),
                    "cert and key go together: give both or neither",
                ));
            }
        }
        Ok(())
    }

    fn readable(&self, key: &str, p: &Path, table: Range<usize>) -> Result<(), ConfigError> {
        if !self.check_files.get() {
            return Ok(());
        }
        let field = key.rsplit('.').next().unwrap_or(key);
        std::fs::File::open(secret::resolve_path(p))
            .map(|_| ())
            .map_err(|e| {
                self.err(
                    key,
                    self.field_span(table, field),
                    format!("cannot read {}: {e}", p.display()),
                )
            })
    }

    fn private(&self, key: &str, p: &Path, table: Range<usize>) -> Result<(), ConfigError> {
        if !self.check_files.get() {
            return Ok(());
        }
        let field = key.rsplit('.').next().unwrap_or(key);
        secret::check_private_file(&secret::resolve_path(p))
            .map_err(|e| self.err(key, self.field_span(table, field), e.to_string()))
    }

    fn snapshot(&self, s: &mut SnapshotConfig, span: Range<usize>) -> Result<(), ConfigError> {
        if s.dir.as_os_str().is_empty() {
            return Err(self.err(
                "snapshot.dir",
                self.field_span(span, "dir"),
                "must not be empty",
            ));
        }
        if s.keep_last == 0 {
            return Err(self.err(
                "snapshot.keep_last",
                self.field_span(span, "keep_last"),
                "must be at least 1: the newest verified archive is never deleted",
            ));
        }
        if !(1..=19).contains(&s.zstd_level) {
            return Err(self.err(
                "snapshot.zstd_level",
                self.field_span(span, "zstd_level"),
                format!(
                    "{} is out of range 1..=19 (3 is a good default)",
                    s.zstd_level
                ),
            ));
        }
        if s.zstd_threads > 64 {
            return Err(self.err(
                "snapshot.zstd_threads",
                self.field_span(span, "zstd_threads"),
                "at most 64",
            ));
        }
        if !(1..=3).contains(&s.max_concurrent_members) {
            return Err(self.err(
                "snapshot.max_concurrent_members",
                self.field_span(span.clone(), "max_concurrent_members"),
                format!(
                    "{} is out of range 1..=3 (1: one member streams at a time; 3: all at once)",
                    s.max_concurrent_members
                ),
            ));
        }
        if s.rate_limit.is_some_and(|r| r.0 < 1 << 20) {
            return Err(self.err(
                "snapshot.rate_limit",
                self.field_span(span.clone(), "rate_limit"),
                "must be at least \"1MiB\" per second (a slower stream holds the member's read transaction open for hours); leave it out for no limit",
            ));
        }
        let pr = &s.prove_restore;
        if pr.timeout.get().is_zero() {
            return Err(self.err(
                "snapshot.prove_restore.timeout",
                self.field_span(span.clone(), "prove_restore"),
                "must be more than 0s (it bounds one member's proof)",
            ));
        }
        if pr.sample_keys > 10_000 {
            return Err(self.err(
                "snapshot.prove_restore.sample_keys",
                self.field_span(span.clone(), "prove_restore"),
                format!("{} is more than 10000", pr.sample_keys),
            ));
        }
        if pr.dir.as_ref().is_some_and(|d| !d.is_absolute()) {
            return Err(self.err(
                "snapshot.prove_restore.dir",
                self.field_span(span.clone(), "prove_restore"),
                "must be an absolute path (a tmpfs directory, e.g. /dev/shm)",
            ));
        }
        for (key, d) in [
            ("connect_timeout", s.connect_timeout),
            ("stall_timeout", s.stall_timeout),
            ("timeout", s.timeout),
            ("preflight_max_latency", s.preflight_max_latency),
            ("defer_retry", s.defer_retry),
        ] {
            if d.get().is_zero() {
                return Err(self.err(
                    format!("snapshot.{key}"),
                    self.field_span(span.clone(), key),
                    "must be longer than 0s",
                ));
            }
        }
        s.recipients.clear();
        for (i, r) in s.age_recipients.iter().enumerate() {
            let key = format!("snapshot.age_recipients[{i}]");
            let v = r.get_ref().trim();
            if v.to_ascii_uppercase().starts_with("AGE-SECRET-KEY-") {
                // Never echo it: this is a private key in the wrong place.
                return Err(self.err(
                    key,
                    Some(r.span()),
                    "this is an age PRIVATE key; put only the public key here (`age-keygen -y KEYFILE` prints it) and rotate this key",
                ));
            }
            let rec = age::x25519::Recipient::from_str(v).map_err(|e| {
                self.err(
                    key,
                    Some(r.span()),
                    format!("not an age X25519 public key (age1…): {e}"),
                )
            })?;
            s.recipients.push(rec);
        }
        match s.encryption {
            Encryption::Age if s.recipients.is_empty() => Err(self.err(
                "snapshot.age_recipients",
                self.field_span(span, "age_recipients"),
                "at least one recipient is required (generate one with `age-keygen`, keep the private key off the bastion); \
                 or set encryption = \"none\" explicitly",
            )),
            Encryption::None if s.rke2_token_file.is_some() => Err(self.err(
                "snapshot.rke2_token_file",
                self.field_span(span, "rke2_token_file"),
                "the RKE2 server token is only archived encrypted; remove encryption = \"none\"",
            )),
            _ => {
                if let Some(p) = &s.rke2_token_file {
                    self.private("snapshot.rke2_token_file", p, span)?;
                }
                Ok(())
            }
        }
    }

    fn inline_or_file(
        &self,
        key: &str,
        field: &str,
        inline: &Option<Secret>,
        file: &Option<PathBuf>,
        span: Range<usize>,
    ) -> Result<Secret, ConfigError> {
        match (inline, file) {
            (Some(s), None) => Ok(s.clone()),
            (None, Some(_)) if !self.check_files.get() => Ok(Secret::new("")),
            (None, Some(p)) => secret::read_secret_file(&secret::resolve_path(p))
                .map_err(|e| self.err(format!("{key}.{field}_file"), Some(span), e.to_string())),
            (Some(_), Some(_)) => Err(self.err(
                format!("{key}.{field}"),
                Some(span),
                format!("give {field} or {field}_file, not both"),
            )),
            (None, None) => Err(self.err(
                format!("{key}.{field}"),
                Some(span),
                format!("{field} or {field}_file is required"),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RECIPIENT: &str = "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p";

    fn minimal() -> String {
        format!(
            r#"[cluster]
name = "prod"
members = [
  {{ name = "cp-1", endpoint = "http://127.0.0.1:12379" }},
  {{ name = "cp-2", endpoint = "http://127.0.0.1:22379" }},
  {{ name = "cp-3", endpoint = "http://127.0.0.1:32379" }},
]

[snapshot]
dir = "/var/lib/vigil/snapshots"
keep_last = 5
age_recipients = ["{RECIPIENT}"]

[state]
dir = "/var/lib/vigil/state"

[[alert.channel]]
name = "ops-slack"
kind = "slack"
webhook_url = "https://hooks.slack.com/services/T000/B000/XXXXSECRET"
"#
        )
    }

    fn parse(s: &str) -> Result<Config, ConfigError> {
        Config::parse(s, Path::new("/etc/vigil/vigil.toml"))
    }

    #[test]
    fn contract_minimal_config_parses() {
        let c = parse(&minimal()).unwrap();
        assert_eq!(c.cluster_name(), "prod");
        assert_eq!(c.members().count(), 3);
        let s = c.snapshot("test").unwrap();
        assert_eq!(s.keep_last, 5);
        assert_eq!(s.zstd_level, 1);
        assert_eq!(s.recipients.len(), 1);
        assert!(!c.summary().contains("XXXXSECRET"));
        assert!(!format!("{c:?}").contains("XXXXSECRET"));
    }

    #[test]
    fn unknown_key_names_key_and_line() {
        let text = minimal().replace("keep_last = 5", "keep_last = 5\nkeep_lats = 3");
        let e = parse(&text).unwrap_err().to_string();
        assert!(e.contains("keep_lats"), "{e}");
        assert!(e.starts_with("/etc/vigil/vigil.toml:12:"), "{e}");
    }

    #[test]
    fn missing_endpoint_is_named() {
        let text = minimal().replace(r#", endpoint = "http://127.0.0.1:22379""#, "");
        let e = parse(&text).unwrap_err().to_string();
        assert!(e.contains("endpoint") && e.contains(":5:"), "{e}");
    }

    #[test]
    fn bad_recipient_is_named_and_private_key_not_echoed() {
        let text = minimal().replace(RECIPIENT, "age1notakey");
        let e = parse(&text).unwrap_err().to_string();
        assert!(
            e.contains("snapshot.age_recipients[0]") && e.contains(":12:"),
            "{e}"
        );
        let secret = "AGE-SECRET-KEY-1QQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQ";
        let e = parse(&minimal().replace(RECIPIENT, secret))
            .unwrap_err()
            .to_string();
        assert!(e.contains("PRIVATE") && !e.contains(secret), "{e}");
    }

    #[test]
    fn validation_errors() {
        let cases = [
            ("keep_last = 5", "keep_last = 0", "snapshot.keep_last"),
            (
                "http://127.0.0.1:12379",
                "127.0.0.1:12379",
                "cluster.members[0].endpoint",
            ),
            (
                "http://127.0.0.1:22379",
                "http://127.0.0.1:12379",
                "duplicate endpoint",
            ),
            (
                "name = \"cp-2\"",
                "name = \"cp-1\"",
                "duplicate member name",
            ),
            (
                "http://127.0.0.1:32379",
                "https://127.0.0.1:32379",
                "[cluster.tls] is missing",
            ),
            (
                "keep_last = 5",
                "keep_last = 5\nzstd_level = 42",
                "snapshot.zstd_level",
            ),
            (
                "keep_last = 5",
                "keep_last = 5\ntimeout = \"soon\"",
                "invalid duration",
            ),
            ("name = \"prod\"", "name = \"prod/../x\"", "cluster.name"),
            ("kind = \"slack\"", "kind = \"pager\"", "unknown variant"),
            (
                "keep_last = 5",
                "keep_last = 5\nmax_concurrent_members = 0",
                ":12: key `snapshot.max_concurrent_members`: 0 is out of range 1..=3",
            ),
            (
                "keep_last = 5",
                "keep_last = 5\nmax_concurrent_members = 4",
                "snapshot.max_concurrent_members",
            ),
            (
                "keep_last = 5",
                "keep_last = 5\nrate_limit = \"100KiB\"",
                ":12: key `snapshot.rate_limit`: must be at least \"1MiB\"",
            ),
            (
                "keep_last = 5",
                "keep_last = 5\ndefer_retry = \"0s\"",
                "snapshot.defer_retry",
            ),
            (
                "keep_last = 5",
                "keep_last = 5\nprove_restore = { timeout = \"0s\" }",
                ":12: key `snapshot.prove_restore.timeout`: must be more than 0s",
            ),
            (
                "keep_last = 5",
                "keep_last = 5\nprove_restore = { dir = \"shm\" }",
                "key `snapshot.prove_restore.dir`: must be an absolute path",
            ),
            (
                "keep_last = 5",
                "keep_last = 5\nprove_restore = { sample_keys = 20000 }",
                "snapshot.prove_restore.sample_keys",
            ),
            (
                "keep_last = 5",
                "keep_last = 5\nprove_restore = { enable = false }",
                "unknown field `enable`",
            ),
        ];
        for (from, to, want) in cases {
            let text = minimal().replacen(from, to, 1);
            let e = parse(&text).expect_err(to).to_string();
            assert!(e.contains(want), "{to}: {e}");
            assert!(!e.contains("XXXXSECRET"), "{e}");
        }
    }

    #[test]
    fn encryption_none_needs_no_recipients() {
        let text = minimal().replace(
            &format!("age_recipients = [\"{RECIPIENT}\"]"),
            "encryption = \"none\"",
        );
        let c = parse(&text).unwrap();
        assert_eq!(c.snapshot("t").unwrap().encryption, Encryption::None);
        let text = minimal().replace(&format!("age_recipients = [\"{RECIPIENT}\"]"), "");
        let e = parse(&text).unwrap_err().to_string();
        assert!(e.contains("at least one recipient"), "{e}");
    }

    #[test]
    fn secret_files_are_checked() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("slack");
        std::fs::write(&f, "https://hooks.slack.com/services/FILESECRET\n").unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
        let text = minimal().replace(
            "webhook_url = \"https://hooks.slack.com/services/T000/B000/XXXXSECRET\"",
            &format!("webhook_url_file = \"{}\"", f.display()),
        );
        let e = parse(&text).unwrap_err().to_string();
        assert!(
            e.contains("alert.channel[0].webhook_url_file") && e.contains("chmod 600"),
            "{e}"
        );
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
        let c = parse(&text).unwrap();
        let ChannelSettings::Slack(ch) = &c.alert.channel[0].settings else {
            panic!("not a slack channel");
        };
        assert_eq!(
            ch.webhook.expose(),
            "https://hooks.slack.com/services/FILESECRET"
        );
    }

    #[test]
    fn restore_section_and_peer_urls() {
        let c = parse(&minimal()).unwrap();
        let m: Vec<_> = c.members().collect();
        assert_eq!(m[0].peer_url(), "http://127.0.0.1:2380");
        assert_eq!(c.restore().etcd_bin, PathBuf::from("etcd"));
        let text = minimal()
            .replace(
                r#"endpoint = "http://127.0.0.1:12379" }"#,
                r#"endpoint = "http://127.0.0.1:12379", peer_url = "http://127.0.0.1:12380" }"#,
            )
            .replace(
                "[state]",
                "[restore]\ndrill_sample_keys = 3\nssh = [\"ssh\", \"root@{host}\"]\n\n[state]",
            );
        let c = parse(&text).unwrap();
        assert_eq!(
            c.members().next().unwrap().peer_url(),
            "http://127.0.0.1:12380"
        );
        assert_eq!(c.restore().drill_sample_keys, 3);
        for (from, to, want) in [
            (
                "drill_sample_keys = 3",
                "drill_sampel_keys = 3",
                "drill_sampel_keys",
            ),
            (
                "ssh = [\"ssh\", \"root@{host}\"]",
                "ssh = [\"ssh\"]",
                "restore.ssh",
            ),
            (
                "drill_sample_keys = 3",
                "drill_timeout = \"1s\"",
                "restore.drill_timeout",
            ),
            (
                "peer_url = \"http://127.0.0.1:12380\"",
                "peer_url = \"127.0.0.1:12380\"",
                "cluster.members[0].peer_url",
            ),
            (
                "drill_sample_keys = 3",
                "drill_identity_file = \"/nonexistent/drill.txt\"",
                "restore.drill_identity_file",
            ),
        ] {
            let e = parse(&text.replacen(from, to, 1))
                .expect_err(to)
                .to_string();
            assert!(
                e.contains(want) && e.starts_with("/etc/vigil/vigil.toml:"),
                "{to}: {e}"
            );
        }
    }
}
