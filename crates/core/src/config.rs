//! The one TOML file every binary reads (contract 1 of DESIGN.md).
//!
//! Parsing is strict: unknown keys are errors, values are validated when the
//! file loads, and every error names the file, the key and the line.
//!
//! Each section lives in its own file under `config/`: the type serde reads
//! (`Raw…` where the file's form is not what the programs use) and its
//! `resolve`, which checks it and makes the type the programs read.
//! [`Config::parse_with`] reads a `RawConfig` and resolves it section by
//! section, opening only the files of the sections in [`Uses`].

use crate::secret::Secret;
use crate::units::HumanDuration;
use serde::Deserialize;
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use toml::Spanned;

mod cluster;
mod daemon;
mod health;
mod keypath;
mod metrics;
mod prove;
mod quota;
mod restore;
mod sink;
mod snapshot;
mod state;
mod uses;
mod validator;
use cluster::RawClusterConfig;
pub use cluster::{ClusterConfig, MemberConfig, TlsConfig};
pub use daemon::{to_six_field, CronError, DaemonConfig, DAEMON_JOBS};
pub use health::{
    BastionHealth, CertHealth, EtcdHealth, FreshnessHealth, HealthConfig, KubeHealth, NodeHealth,
    NodeTarget,
};
pub use metrics::{MetricsConfig, DEFAULT_LISTEN, DEFAULT_TEXTFILE_DIR};
pub use prove::ProveRestore;
pub use quota::{glob_match, CephCliConfig, QuotaBackend, QuotaConfig, QuotaRule, XattrConfig};
pub use restore::RestoreConfig;
pub use sink::{
    AzureSink, DirSink, FsSink, GcsSink, KindOptions, LockMode, ObjectLock, RcPolicy, S3Sink,
    SinkConfig, SinkKind, TapeSink, VerifyMode, DEFAULT_DESCRIPTION, DEFAULT_PART_SIZE,
};
use snapshot::RawSnapshotConfig;
pub use snapshot::{Encryption, SnapshotConfig};
pub use state::StateConfig;
pub use uses::Uses;
pub use validator::ConfigError;
use validator::{line_of, Validator};

/// Where the config lives unless `--config` says otherwise.
pub const DEFAULT_PATH: &str = "/etc/vigil/vigil.toml";
/// Where the units look for configs: `vigil.toml`, and `<name>.toml` for `@<name>` units.
pub const CONFIG_DIR: &str = "/etc/vigil";

// The file as serde reads it, spans kept for the messages; `resolve` makes
// the [`Config`] the programs read. build.rs starts the vigil.toml(5) page
// here, so the field docs are the page's.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawConfig {
    cluster: RawClusterConfig,
    snapshot: Option<Spanned<RawSnapshotConfig>>,
    state: StateConfig,
    #[serde(default)]
    alert: AlertConfig,
    /// Where archives are shipped off the bastion.
    #[serde(default)]
    sink: Vec<Spanned<sink::RawSink>>,
    /// `[restore]`: vigil-restore's tools, drill settings and RKE2 steps.
    restore: Option<Spanned<RestoreConfig>>,
    /// `[metrics]`: textfile-collector files and vigil-notify's `/metrics`.
    #[serde(default)]
    metrics: MetricsConfig,
    /// `[daemon]`: schedules for `vigild` (no systemd).
    daemon: Option<Spanned<DaemonConfig>>,
    /// `[health]`: vigil-health's checks and thresholds (defaults when absent).
    #[serde(default)]
    health: HealthConfig,
    /// `[quota]`: vigil-quota's CephFS backends, thresholds and forecast.
    quota: Option<Spanned<QuotaConfig>>,
}

/// The validated config: defaults applied, recipients parsed, the secrets
/// of the sections in use read.
#[derive(Debug)]
pub struct Config {
    pub cluster: ClusterConfig,
    pub snapshot: Option<SnapshotConfig>,
    pub state: StateConfig,
    pub alert: AlertConfig,
    pub sink: Vec<SinkConfig>,
    pub restore: Option<RestoreConfig>,
    pub metrics: MetricsConfig,
    pub daemon: Option<Spanned<DaemonConfig>>,
    pub health: HealthConfig,
    pub quota: Option<Spanned<QuotaConfig>>,
    /// The file this config came from, for messages.
    pub path: PathBuf,
}

fn default_true() -> bool {
    true
}

/// `[alert]`: the engine's defaults, heartbeat, rules, maintenance windows and channels.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertConfig {
    #[serde(default)]
    pub channel: Vec<Spanned<ChannelConfig>>,
    /// `vigil-notify run` waits this long after the newest queued alert of a
    /// channel, so alerts raised together go out as one message.
    #[serde(default = "default_group_wait")]
    pub group_wait: HumanDuration,
    /// A firing alert is sent again after this long (Alertmanager's default).
    #[serde(default = "default_repeat_interval")]
    pub repeat_interval: HumanDuration,
    /// Send a message when an alert resolves.
    #[serde(default = "default_true")]
    pub send_resolved: bool,
    /// First retry delay after a failed delivery; doubles up to `retry_max`, with jitter.
    #[serde(default = "default_retry_min")]
    pub retry_min: HumanDuration,
    #[serde(default = "default_retry_max")]
    pub retry_max: HumanDuration,
    /// Dead-man URL (healthchecks.io style) pinged after every successful job. A secret.
    pub heartbeat_url: Option<Secret>,
    pub heartbeat_url_file: Option<PathBuf>,
    /// Send an always-firing `VigilWatchdog` alert to the alertmanager channels.
    #[serde(default)]
    pub watchdog: bool,
    /// Per-alert overrides of thresholds, repeat interval and severity.
    #[serde(default)]
    pub rule: Vec<Spanned<AlertRule>>,
    /// Planned maintenance: matching alerts send no firing or repeat messages.
    #[serde(default)]
    pub maintenance: Vec<Spanned<MaintenanceWindow>>,
    /// The heartbeat URL, read from inline or `*_file`.
    #[serde(skip)]
    pub heartbeat: Option<Secret>,
}

impl Default for AlertConfig {
    fn default() -> Self {
        Self {
            channel: Vec::new(),
            group_wait: default_group_wait(),
            repeat_interval: default_repeat_interval(),
            send_resolved: true,
            retry_min: default_retry_min(),
            retry_max: default_retry_max(),
            heartbeat_url: None,
            heartbeat_url_file: None,
            watchdog: false,
            rule: Vec::new(),
            maintenance: Vec::new(),
            heartbeat: None,
        }
    }
}

fn default_group_wait() -> HumanDuration {
    HumanDuration::from_secs(10)
}
fn default_repeat_interval() -> HumanDuration {
    HumanDuration::from_secs(4 * 3600)
}
fn default_retry_min() -> HumanDuration {
    HumanDuration::from_secs(2)
}
fn default_retry_max() -> HumanDuration {
    HumanDuration::from_secs(300)
}

/// `[[alert.rule]]`: overrides for one alert name (e.g. `etcd_member_down`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertRule {
    pub alert: String,
    /// Consecutive failed checks before the alert fires.
    pub failure_threshold: Option<u32>,
    /// Consecutive good checks before it resolves.
    pub success_threshold: Option<u32>,
    pub repeat_interval: Option<HumanDuration>,
    pub severity: Option<Severity>,
}

/// `[[alert.maintenance]]`: a planned window, RFC 3339 start and end.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaintenanceWindow {
    pub start: String,
    pub end: String,
    /// Label matchers, e.g. `{ member = "cp-2" }`; empty matches every alert.
    #[serde(default, rename = "match")]
    pub matchers: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    pub reason: String,
    #[serde(skip)]
    pub starts_at: Option<time::OffsetDateTime>,
    #[serde(skip)]
    pub ends_at: Option<time::OffsetDateTime>,
}

/// The sources an alert can come from; channels route on them.
pub const ALERT_SOURCES: &[&str] = &[
    "snapshot", "sink", "scrub", "drill", "health", "quota", "vigil",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChannelKind {
    Slack,
    Teams,
    Email,
    Alertmanager,
    File,
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, serde::Serialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Warning,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
}

impl FromStr for Severity {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "warning" => Ok(Severity::Warning),
            "critical" => Ok(Severity::Critical),
            _ => Err(format!(
                "unknown severity {s:?}: use \"warning\" or \"critical\""
            )),
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    Starttls,
    Implicit,
    None,
}

/// One alert channel. Fields apply per `kind`; validation says which are needed.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelConfig {
    pub name: String,
    pub kind: ChannelKind,
    pub webhook_url: Option<Secret>,
    pub webhook_url_file: Option<PathBuf>,
    pub url: Option<String>,
    pub teams_format: Option<String>,
    pub smtp_host: Option<String>,
    pub smtp_port: Option<u16>,
    pub smtp_tls: Option<SmtpTls>,
    pub username: Option<String>,
    pub password: Option<Secret>,
    pub password_file: Option<PathBuf>,
    pub from: Option<String>,
    #[serde(default)]
    pub to: Vec<String>,
    pub path: Option<PathBuf>,
    pub min_severity: Option<Severity>,
    #[serde(default)]
    pub sources: Vec<String>,
    /// Extra CA (PEM) to trust for this channel's TLS, e.g. a private relay's CA.
    pub ca_file: Option<PathBuf>,
    /// Upper bound for one delivery attempt (default 10s).
    pub timeout: Option<HumanDuration>,
    /// Alertmanager only: how often firing alerts are re-sent (default 1m).
    pub resend_interval: Option<HumanDuration>,
    /// The webhook URL or SMTP password, read from inline or `*_file`.
    #[serde(skip)]
    pub secret: Option<Secret>,
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
        let raw: RawConfig = toml::from_str(text).map_err(|e| {
            let message = e.message().trim().to_string();
            let line = e.span().map(|s| line_of(text, s.start));
            // The parser and serde give a span only: name the key it is in.
            match e.span().and_then(|s| keypath::key_at(text, s, &message)) {
                Some(key) => ConfigError::Invalid {
                    path: path.to_path_buf(),
                    line,
                    key,
                    message,
                },
                None => ConfigError::Parse {
                    path: path.to_path_buf(),
                    line: line.unwrap_or(1),
                    message,
                },
            }
        })?;
        raw.resolve(&Validator::new(text, path, uses))
    }

    pub fn cluster_name(&self) -> &str {
        &self.cluster.name
    }

    pub fn members(&self) -> impl Iterator<Item = &MemberConfig> {
        self.cluster.members.iter()
    }

    pub fn tls(&self) -> Option<&TlsConfig> {
        self.cluster.tls.as_ref()
    }

    pub fn sinks(&self) -> impl Iterator<Item = &SinkConfig> {
        self.sink.iter()
    }

    /// The `[snapshot]` section, or an error naming the program that needs it.
    pub fn snapshot(&self, program: &'static str) -> Result<&SnapshotConfig, ConfigError> {
        self.snapshot
            .as_ref()
            .ok_or_else(|| ConfigError::MissingSection {
                path: self.path.clone(),
                section: "snapshot",
                program,
            })
    }

    /// The `[restore]` section, or its defaults when absent.
    pub fn restore(&self) -> std::borrow::Cow<'_, RestoreConfig> {
        match &self.restore {
            Some(r) => std::borrow::Cow::Borrowed(r),
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
            let c = c.get_ref();
            let _ = writeln!(s, "alert channel {} ({:?})", c.name, c.kind);
        }
        s
    }
}

/// Resolves a section that may be absent, with the span of its table.
fn optional<R, T>(
    section: Option<Spanned<R>>,
    resolve: impl FnOnce(R, Range<usize>) -> Result<T, ConfigError>,
) -> Result<Option<T>, ConfigError> {
    section
        .map(|s| {
            let span = s.span();
            resolve(s.into_inner(), span)
        })
        .transpose()
}

impl RawConfig {
    /// Every section in turn; only those in `v.uses` have their files
    /// opened, the rest is still checked.
    fn resolve(self, v: &Validator<'_>) -> Result<Config, ConfigError> {
        v.check_files.set(v.uses.etcd);
        let cluster = self.cluster.resolve(v)?;
        v.check_files.set(v.uses.snapshot);
        let snapshot = optional(self.snapshot, |s, span| s.resolve(v, span))?;
        let state = self.state.resolve(v)?;
        v.check_files.set(v.uses.alert);
        let mut alert = self.alert;
        let mut names = std::collections::HashSet::new();
        for (i, c) in alert.channel.iter_mut().enumerate() {
            let span = c.span();
            let key = format!("alert.channel[{i}]");
            if !names.insert(c.get_ref().name.clone()) {
                return Err(v.err(format!("{key}.name"), Some(span), "duplicate channel name"));
            }
            v.channel(&key, c.get_mut(), span)?;
        }
        v.alert(&mut alert)?;
        v.check_files.set(v.uses.restore);
        let restore = optional(self.restore, |s, span| s.resolve(v, span))?;
        v.check_files.set(v.uses.sinks);
        let mut sink = Vec::new();
        let mut sink_names = std::collections::HashSet::new();
        for (i, sk) in self.sink.into_iter().enumerate() {
            let span = sk.span();
            let key = format!("sink[{i}]");
            let sk = sk.into_inner();
            if !sink_names.insert(sk.name().to_string()) || sk.name() == "local" {
                return Err(v.err(
                    format!("{key}.name"),
                    Some(span),
                    "duplicate sink name (\"local\" is reserved for the bastion's own copy)",
                ));
            }
            sink.push(sk.resolve(v, &key, span)?);
        }
        v.check_files.set(false);
        v.metrics(&self.metrics)?;
        if let Some(d) = &self.daemon {
            v.daemon(d.get_ref(), d.span())?;
        }
        v.check_files.set(v.uses.quota);
        if let Some(q) = &self.quota {
            v.quota(q.get_ref(), q.span())?;
        }
        v.check_files.set(v.uses.health);
        v.health(&self.health)?;
        v.check_files.set(false);
        Ok(Config {
            cluster,
            snapshot,
            state,
            alert,
            sink,
            restore,
            metrics: self.metrics,
            daemon: self.daemon,
            health: self.health,
            quota: self.quota,
            path: v.path.to_path_buf(),
        })
    }
}

impl Validator<'_> {
    fn alert(&self, a: &mut AlertConfig) -> Result<(), ConfigError> {
        if a.heartbeat_url.is_some() || a.heartbeat_url_file.is_some() {
            let field = if a.heartbeat_url.is_some() {
                "heartbeat_url"
            } else {
                "heartbeat_url_file"
            };
            let span = self.field_span(0..self.text.len(), field).unwrap_or(0..0);
            let s = self.inline_or_file(
                "alert",
                "heartbeat_url",
                &a.heartbeat_url,
                &a.heartbeat_url_file,
                span.clone(),
            )?;
            let u = s.expose();
            if !(u.is_empty() || u.starts_with("https://") || u.starts_with("http://")) {
                // The URL is the secret, so it is not echoed.
                return Err(self.err(
                    "alert.heartbeat_url",
                    Some(span),
                    "must be an http(s):// URL",
                ));
            }
            a.heartbeat = Some(s);
        }
        if a.retry_min.get().is_zero() || a.retry_max < a.retry_min {
            return Err(self.err(
                "alert.retry_min",
                None,
                "retry_min must be longer than 0s and at most retry_max",
            ));
        }
        if a.repeat_interval.get() < std::time::Duration::from_secs(60) {
            return Err(self.err("alert.repeat_interval", None, "must be at least 1m"));
        }
        for (i, r) in a.rule.iter().enumerate() {
            let span = r.span();
            let r = r.get_ref();
            let key = format!("alert.rule[{i}]");
            if r.alert.is_empty()
                || !r
                    .alert
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_')
            {
                return Err(self.err(
                    format!("{key}.alert"),
                    Some(span),
                    "must be an alert name such as \"etcd_member_down\"",
                ));
            }
            for (f, v) in [
                ("failure_threshold", r.failure_threshold),
                ("success_threshold", r.success_threshold),
            ] {
                if v == Some(0) {
                    return Err(self.err(
                        format!("{key}.{f}"),
                        self.field_span(span.clone(), f),
                        "must be at least 1",
                    ));
                }
            }
            if r.repeat_interval
                .is_some_and(|d| d.get() < std::time::Duration::from_secs(60))
            {
                return Err(self.err(
                    format!("{key}.repeat_interval"),
                    self.field_span(span, "repeat_interval"),
                    "must be at least 1m",
                ));
            }
        }
        for (i, m) in a.maintenance.iter_mut().enumerate() {
            let span = m.span();
            let key = format!("alert.maintenance[{i}]");
            let m = m.get_mut();
            let parse = |field: &str, v: &str| {
                time::OffsetDateTime::parse(
                    v.trim(),
                    &time::format_description::well_known::Rfc3339,
                )
                .map_err(|e| {
                    self.err(
                        format!("{key}.{field}"),
                        self.field_span(span.clone(), field),
                        format!(
                            "{v:?} is not an RFC 3339 time such as \"2026-12-01T22:00:00Z\": {e}"
                        ),
                    )
                })
            };
            let start = parse("start", &m.start)?;
            let end = parse("end", &m.end)?;
            if end <= start {
                return Err(self.err(
                    format!("{key}.end"),
                    self.field_span(span, "end"),
                    "must be after start",
                ));
            }
            m.starts_at = Some(start);
            m.ends_at = Some(end);
        }
        Ok(())
    }
    fn channel(
        &self,
        key: &str,
        c: &mut ChannelConfig,
        span: Range<usize>,
    ) -> Result<(), ConfigError> {
        self.name(&format!("{key}.name"), &c.name, span.clone())?;
        let need = |field: &str, present: bool| -> Result<(), ConfigError> {
            if present {
                Ok(())
            } else {
                Err(self.err(
                    format!("{key}.{field}"),
                    Some(span.clone()),
                    format!("required for kind {:?}", c.kind),
                ))
            }
        };
        c.secret = match c.kind {
            ChannelKind::Slack | ChannelKind::Teams => {
                let s = self.inline_or_file(
                    key,
                    "webhook_url",
                    &c.webhook_url,
                    &c.webhook_url_file,
                    span.clone(),
                )?;
                // An unopened `*_file` (section not in `uses`) yields an empty value.
                let ok = s.expose().is_empty()
                    || s.expose().starts_with("https://")
                    || s.expose().starts_with("http://");
                if !ok {
                    // The URL is the secret, so it is not echoed.
                    return Err(self.err(
                        format!("{key}.webhook_url"),
                        Some(span),
                        "must be an http(s):// URL",
                    ));
                }
                Some(s)
            }
            ChannelKind::Email => {
                need("smtp_host", c.smtp_host.is_some())?;
                need("from", c.from.is_some())?;
                need("to", !c.to.is_empty())?;
                if c.password.is_some() || c.password_file.is_some() {
                    need("username", c.username.is_some())?;
                    Some(self.inline_or_file(
                        key,
                        "password",
                        &c.password,
                        &c.password_file,
                        span.clone(),
                    )?)
                } else {
                    None
                }
            }
            ChannelKind::Alertmanager => {
                need("url", c.url.is_some())?;
                None
            }
            ChannelKind::File => {
                need("path", c.path.is_some())?;
                None
            }
        };
        for (i, src) in c.sources.iter().enumerate() {
            if !ALERT_SOURCES.contains(&src.as_str()) {
                return Err(self.err(
                    format!("{key}.sources[{i}]"),
                    self.field_span(span.clone(), "sources"),
                    format!(
                        "unknown source {src:?}; use any of {}",
                        ALERT_SOURCES.join(", ")
                    ),
                ));
            }
        }
        if let Some(p) = &c.ca_file {
            self.readable(&format!("{key}.ca_file"), p, span.clone())?;
        }
        if c.timeout.is_some_and(|t| t.get().is_zero()) {
            return Err(self.err(
                format!("{key}.timeout"),
                self.field_span(span.clone(), "timeout"),
                "must be longer than 0s",
            ));
        }
        if let Some(r) = c.resend_interval {
            if c.kind != ChannelKind::Alertmanager || r.get() < std::time::Duration::from_secs(10) {
                return Err(self.err(
                    format!("{key}.resend_interval"),
                    self.field_span(span.clone(), "resend_interval"),
                    "only for kind \"alertmanager\", at least 10s (keep it below Alertmanager's resolve_timeout, 5m by default)",
                ));
            }
        }
        if c.kind == ChannelKind::Alertmanager {
            let u = c.url.as_deref().unwrap_or_default();
            if !(u.starts_with("http://") || u.starts_with("https://")) {
                return Err(self.err(
                    format!("{key}.url"),
                    self.field_span(span.clone(), "url"),
                    "must be the http(s):// base URL of Alertmanager",
                ));
            }
        }
        if c.kind == ChannelKind::Email {
            for (i, a) in c.to.iter().enumerate() {
                if !a.contains('@') {
                    return Err(self.err(
                        format!("{key}.to[{i}]"),
                        self.field_span(span.clone(), "to"),
                        format!("{a:?} is not an email address"),
                    ));
                }
            }
        }
        if c.kind == ChannelKind::Email
            && c.smtp_tls == Some(SmtpTls::None)
            && c.secret.is_some()
            && !c.smtp_host.as_deref().is_some_and(is_loopback_host)
        {
            // AUTH over plain SMTP would send the password in clear.
            return Err(self.err(
                format!("{key}.smtp_tls"),
                self.field_span(span.clone(), "smtp_tls"),
                "\"none\" with a password sends it in clear; use \"starttls\" or \"implicit\" (\"none\" is allowed only for a relay on loopback)",
            ));
        }
        if c.smtp_tls.is_some() && c.kind != ChannelKind::Email {
            return Err(self.err(
                format!("{key}.smtp_tls"),
                Some(span),
                "only for kind \"email\"",
            ));
        }
        if let Some(f) = &c.teams_format {
            if c.kind != ChannelKind::Teams || !matches!(f.as_str(), "adaptive" | "messagecard") {
                return Err(self.err(
                    format!("{key}.teams_format"),
                    Some(span),
                    "only for kind \"teams\": \"adaptive\" (default) or \"messagecard\" (retired connectors)",
                ));
            }
        }
        Ok(())
    }
}

/// `localhost`, 127.0.0.0/8 or ::1: where a plain SMTP relay cannot be sniffed.
fn is_loopback_host(h: &str) -> bool {
    let h = h.trim().trim_start_matches('[').trim_end_matches(']');
    h.eq_ignore_ascii_case("localhost")
        || h.parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

impl fmt::Display for ChannelKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}
#[cfg(test)]
mod tests;
