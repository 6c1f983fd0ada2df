//! `[alert]`: the engine's defaults, the heartbeat, rules, maintenance
//! windows and the channels (`channel.rs`, one file per kind under
//! `channel/`).

use super::channel::{ChannelConfig, RawChannel};
use super::{ConfigError, Validator};
use crate::secret::Secret;
use crate::units::HumanDuration;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use time::OffsetDateTime;
use toml::Spanned;

/// `[alert]`: the engine's defaults, heartbeat, rules, maintenance windows and channels.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAlertConfig {
    #[serde(
        default,
        deserialize_with = "super::kinds::entries::<super::channel::Channels, _>"
    )]
    channel: Vec<Spanned<RawChannel>>,
    /// `vigil-notify run` waits this long after the newest queued alert of a
    /// channel, so alerts raised together go out as one message.
    #[serde(default = "default_group_wait")]
    group_wait: HumanDuration,
    /// A firing alert is sent again after this long (Alertmanager's default).
    #[serde(default = "default_repeat_interval")]
    repeat_interval: HumanDuration,
    /// Send a message when an alert resolves.
    #[serde(default = "default_true")]
    send_resolved: bool,
    /// First retry delay after a failed delivery; doubles up to `retry_max`, with jitter.
    #[serde(default = "default_retry_min")]
    retry_min: HumanDuration,
    /// The longest wait between delivery attempts to a failing channel.
    #[serde(default = "default_retry_max")]
    retry_max: HumanDuration,
    /// Dead-man URL (healthchecks.io style) pinged after every successful job. A secret.
    heartbeat_url: Option<Secret>,
    /// A file holding `heartbeat_url` (better than inline: it is a secret).
    heartbeat_url_file: Option<PathBuf>,
    /// Send an always-firing `VigilWatchdog` alert to the alertmanager channels.
    #[serde(default)]
    watchdog: bool,
    /// Per-alert overrides of thresholds, repeat interval and severity.
    #[serde(default)]
    rule: Vec<Spanned<RawAlertRule>>,
    /// Planned maintenance: matching alerts send no firing or repeat messages.
    #[serde(default)]
    maintenance: Vec<Spanned<RawMaintenanceWindow>>,
}

impl Default for RawAlertConfig {
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
        }
    }
}

/// `[alert]`, validated: channels resolved, the heartbeat URL read.
#[derive(Debug, Clone)]
pub struct AlertConfig {
    pub channel: Vec<ChannelConfig>,
    pub group_wait: HumanDuration,
    pub repeat_interval: HumanDuration,
    pub send_resolved: bool,
    pub retry_min: HumanDuration,
    pub retry_max: HumanDuration,
    /// The heartbeat URL, read from inline or `heartbeat_url_file`.
    pub heartbeat: Option<Secret>,
    pub watchdog: bool,
    pub rule: Vec<AlertRule>,
    pub maintenance: Vec<MaintenanceWindow>,
}

impl Default for AlertConfig {
    /// No `[alert]` section.
    fn default() -> Self {
        let r = RawAlertConfig::default();
        Self {
            channel: Vec::new(),
            group_wait: r.group_wait,
            repeat_interval: r.repeat_interval,
            send_resolved: r.send_resolved,
            retry_min: r.retry_min,
            retry_max: r.retry_max,
            heartbeat: None,
            watchdog: r.watchdog,
            rule: Vec::new(),
            maintenance: Vec::new(),
        }
    }
}

fn default_true() -> bool {
    true
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
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAlertRule {
    /// The alert name this rule applies to (see README, *Alert catalogue*); with `labels`, only matching alerts.
    alert: String,
    /// Consecutive failed checks before the alert fires.
    failure_threshold: Option<u32>,
    /// Consecutive good checks before it resolves.
    success_threshold: Option<u32>,
    /// How often a still-firing alert is sent again (instead of `[alert] repeat_interval`).
    repeat_interval: Option<HumanDuration>,
    severity: Option<Severity>,
}

/// One `[[alert.rule]]`, checked.
#[derive(Debug, Clone)]
pub struct AlertRule {
    pub alert: String,
    pub failure_threshold: Option<u32>,
    pub success_threshold: Option<u32>,
    pub repeat_interval: Option<HumanDuration>,
    pub severity: Option<Severity>,
}

/// `[[alert.maintenance]]`: a planned window, RFC 3339 start and end.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMaintenanceWindow {
    /// When the window begins (RFC 3339, e.g. `"2026-12-05T22:00:00Z"`).
    start: String,
    /// When the window ends (RFC 3339); after it, what still fires is sent.
    end: String,
    /// Label matchers, e.g. `{ member = "cp-2" }`; empty matches every alert.
    #[serde(default, rename = "match")]
    matchers: BTreeMap<String, String>,
    /// Why, shown with every alert the window holds back.
    #[serde(default)]
    reason: String,
}

/// One `[[alert.maintenance]]` window, its times parsed.
#[derive(Debug, Clone)]
pub struct MaintenanceWindow {
    pub start: OffsetDateTime,
    pub end: OffsetDateTime,
    pub matchers: BTreeMap<String, String>,
    pub reason: String,
}

impl MaintenanceWindow {
    /// Whether `now` is inside the window (start included, end not).
    pub fn contains(&self, now: OffsetDateTime) -> bool {
        self.start <= now && now < self.end
    }
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

/// A severity name that is neither `warning` nor `critical`.
#[derive(Debug, thiserror::Error)]
#[error("unknown severity {0:?}: use \"warning\" or \"critical\"")]
pub struct UnknownSeverity(pub String);

impl FromStr for Severity {
    type Err = UnknownSeverity;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "warning" => Ok(Severity::Warning),
            "critical" => Ok(Severity::Critical),
            _ => Err(UnknownSeverity(s.to_string())),
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl RawAlertConfig {
    pub(super) fn resolve(self, v: &Validator) -> Result<AlertConfig, ConfigError> {
        let mut names = std::collections::HashSet::new();
        // The channels' own keys are read from the document (see channel.rs).
        let doc = toml::de::DeTable::parse(v.text).ok();
        let tables = doc
            .as_ref()
            .map(super::kinds::tables::<super::channel::Channels>)
            .unwrap_or_default();
        let mut channel = Vec::with_capacity(self.channel.len());
        for (i, c) in self.channel.into_iter().enumerate() {
            let span = c.span();
            let key = format!("alert.channel[{i}]");
            let c = c.into_inner();
            if !names.insert(c.name().to_string()) {
                return Err(v.err(format!("{key}.name"), Some(span), "duplicate channel name"));
            }
            channel.push(c.resolve(v, &key, span, tables.get(i).copied().flatten())?);
        }
        let heartbeat = heartbeat(v, &self.heartbeat_url, &self.heartbeat_url_file)?;
        if self.retry_min.get().is_zero() || self.retry_max < self.retry_min {
            return Err(v.err(
                "alert.retry_min",
                None,
                "retry_min must be longer than 0s and at most retry_max",
            ));
        }
        if self.repeat_interval.get() < std::time::Duration::from_secs(60) {
            return Err(v.err("alert.repeat_interval", None, "must be at least 1m"));
        }
        let rule = self
            .rule
            .into_iter()
            .enumerate()
            .map(|(i, r)| {
                let span = r.span();
                r.into_inner().resolve(v, &format!("alert.rule[{i}]"), span)
            })
            .collect::<Result<_, _>>()?;
        let maintenance = self
            .maintenance
            .into_iter()
            .enumerate()
            .map(|(i, m)| {
                let span = m.span();
                m.into_inner()
                    .resolve(v, &format!("alert.maintenance[{i}]"), span)
            })
            .collect::<Result<_, _>>()?;
        Ok(AlertConfig {
            channel,
            group_wait: self.group_wait,
            repeat_interval: self.repeat_interval,
            send_resolved: self.send_resolved,
            retry_min: self.retry_min,
            retry_max: self.retry_max,
            heartbeat,
            watchdog: self.watchdog,
            rule,
            maintenance,
        })
    }
}

/// `heartbeat_url` or `heartbeat_url_file`: an http(s) URL.
fn heartbeat(
    v: &Validator,
    url: &Option<Secret>,
    file: &Option<PathBuf>,
) -> Result<Option<Secret>, ConfigError> {
    if url.is_none() && file.is_none() {
        return Ok(None);
    }
    let field = if url.is_some() {
        "heartbeat_url"
    } else {
        "heartbeat_url_file"
    };
    let span = v
        .section_span("alert")
        .and_then(|s| v.field_span(s, field))
        .unwrap_or(0..0);
    let s = v.inline_or_file("alert", "heartbeat_url", url, file, span.clone())?;
    let u = s.expose();
    if !(u.is_empty() || u.starts_with("https://") || u.starts_with("http://")) {
        // The URL is the secret, so it is not echoed.
        return Err(v.err(
            "alert.heartbeat_url",
            Some(span),
            "must be an http(s):// URL",
        ));
    }
    Ok(Some(s))
}

impl RawAlertRule {
    fn resolve(
        self,
        v: &Validator,
        key: &str,
        span: std::ops::Range<usize>,
    ) -> Result<AlertRule, ConfigError> {
        if self.alert.is_empty()
            || !self
                .alert
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            return Err(v.err(
                format!("{key}.alert"),
                Some(span),
                "must be an alert name such as \"etcd_member_down\"",
            ));
        }
        for (f, n) in [
            ("failure_threshold", self.failure_threshold),
            ("success_threshold", self.success_threshold),
        ] {
            if n == Some(0) {
                return Err(v.err(
                    format!("{key}.{f}"),
                    v.field_span(span.clone(), f),
                    "must be at least 1",
                ));
            }
        }
        if self
            .repeat_interval
            .is_some_and(|d| d.get() < std::time::Duration::from_secs(60))
        {
            return Err(v.err(
                format!("{key}.repeat_interval"),
                v.field_span(span, "repeat_interval"),
                "must be at least 1m",
            ));
        }
        Ok(AlertRule {
            alert: self.alert,
            failure_threshold: self.failure_threshold,
            success_threshold: self.success_threshold,
            repeat_interval: self.repeat_interval,
            severity: self.severity,
        })
    }
}

impl RawMaintenanceWindow {
    fn resolve(
        self,
        v: &Validator,
        key: &str,
        span: std::ops::Range<usize>,
    ) -> Result<MaintenanceWindow, ConfigError> {
        let parse = |field: &str, t: &str| {
            OffsetDateTime::parse(t.trim(), &time::format_description::well_known::Rfc3339).map_err(
                |e| {
                    v.err(
                        format!("{key}.{field}"),
                        v.field_span(span.clone(), field),
                        format!(
                            "{t:?} is not an RFC 3339 time such as \"2026-12-01T22:00:00Z\": {e}"
                        ),
                    )
                },
            )
        };
        let start = parse("start", &self.start)?;
        let end = parse("end", &self.end)?;
        if end <= start {
            return Err(v.err(
                format!("{key}.end"),
                v.field_span(span, "end"),
                "must be after start",
            ));
        }
        Ok(MaintenanceWindow {
            start,
            end,
            matchers: self.matchers,
            reason: self.reason,
        })
    }
}
