//! `[[alert.channel]]`: where alerts are sent. The keys every channel has
//! are here; each kind's own keys, their checks and its secret are in
//! `channel/<kind>.rs`, registered by one line in the `kinds!` block below.
//!
//! A channel is read in two steps, as every table of kinds is (`kinds.rs`).

use super::kinds::{all_of, fields_of, kinds, own_keys, Cx, Family, RawKind};
use super::{ConfigError, Severity, Validator};
use crate::jobs::Source;
use crate::secret::Secret;
use crate::units::HumanDuration;
use serde::Deserialize;
use std::ops::Range;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;
use toml::de::DeTable;

kinds! {
    /// What `kind = "..."` names.
    enum ChannelKind =>
    /// A channel's kind with its own settings.
    ChannelSettings, each channel_kinds => channels;
    /// A Slack incoming webhook.
    "slack" => Slack(slack::RawSlack => SlackChannel),
    /// A Microsoft Teams workflow (or retired connector) webhook.
    "teams" => Teams(teams::RawTeams => TeamsChannel),
    /// Email through an SMTP relay.
    "email" => Email(email::RawEmail => EmailChannel),
    /// Alertmanager's v2 API.
    "alertmanager" => Alertmanager(alertmanager::RawAlertmanager => AlertmanagerChannel),
    /// One JSON line per message appended to a file.
    "file" => File(file::RawFile => FileChannel),
}

impl std::fmt::Display for ChannelKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self, f)
    }
}

/// Default upper bound of one delivery attempt.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// One alert channel. `kind` says which further keys apply; a key of
/// another kind is refused.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawChannel {
    /// The channel's name, used by `vigil-notify test --channel`, rules and the outbox.
    name: String,
    kind: ChannelKind,
    min_severity: Option<Severity>,
    /// Only alerts from these sources (e.g. `["snapshot", "health"]`); none: every source.
    #[serde(default)]
    sources: Vec<String>,
    /// Extra CA (PEM) to trust for this channel's TLS, e.g. a private relay's CA.
    ca_file: Option<PathBuf>,
    /// Upper bound for one delivery attempt (default 10s).
    timeout: Option<HumanDuration>,
}

/// One channel, validated: its kind's settings and secret read.
#[derive(Debug, Clone)]
pub struct ChannelConfig {
    pub name: String,
    pub min_severity: Option<Severity>,
    /// Empty: every source.
    pub sources: Vec<Source>,
    pub ca_file: Option<PathBuf>,
    /// Upper bound for one delivery attempt.
    pub timeout: Duration,
    pub settings: ChannelSettings,
}

impl ChannelConfig {
    pub fn kind(&self) -> ChannelKind {
        self.settings.kind()
    }
}

/// `webhook_url` or `webhook_url_file`: an http(s) URL.
fn webhook(
    cx: &Cx,
    inline: &Option<Secret>,
    file: &Option<PathBuf>,
) -> Result<Secret, ConfigError> {
    let s = cx.secret("webhook_url", inline, file)?;
    // An unopened `*_file` (section not in `uses`) yields an empty value.
    let u = s.expose();
    if !(u.is_empty() || u.starts_with("https://") || u.starts_with("http://")) {
        // The URL is the secret, so it is not echoed.
        return Err(cx.err(
            "webhook_url",
            Some(cx.span.clone()),
            "must be an http(s):// URL",
        ));
    }
    Ok(s)
}

/// `[[alert.channel]]` as a table of kinds.
pub(super) struct Channels;

impl Family for Channels {
    type Common = RawChannel;
    const PATH: &'static [&'static str] = &["alert", "channel"];
    fn kind_fields() -> Vec<&'static str> {
        ChannelKind::all_fields()
    }
    fn common() -> &'static [&'static str] {
        static F: OnceLock<&'static [&'static str]> = OnceLock::new();
        F.get_or_init(fields_of::<RawChannel>)
    }
    fn all() -> &'static [&'static str] {
        static F: OnceLock<Vec<&'static str>> = OnceLock::new();
        F.get_or_init(|| all_of::<Self>(Self::common()))
    }
}

impl RawChannel {
    pub(super) fn name(&self) -> &str {
        &self.name
    }

    /// `table` is this channel's table in the parsed document.
    pub(super) fn resolve(
        self,
        v: &Validator,
        key: &str,
        span: Range<usize>,
        table: Option<&DeTable<'_>>,
    ) -> Result<ChannelConfig, ConfigError> {
        v.name(&format!("{key}.name"), &self.name, span.clone())?;
        let cx = Cx {
            v,
            key,
            span: span.clone(),
            kind: format!("{:?}", self.kind),
        };
        let own = own_keys::<Channels>(
            &cx,
            table,
            self.kind.fields(),
            self.kind.shared(),
            ChannelKind::owners,
        )?;
        let mut sources = Vec::with_capacity(self.sources.len());
        for (i, src) in self.sources.iter().enumerate() {
            match src.parse::<Source>() {
                Ok(s) => sources.push(s),
                Err(e) => {
                    return Err(v.err(
                        format!("{key}.sources[{i}]"),
                        v.field_span(span.clone(), "sources"),
                        e.to_string(),
                    ))
                }
            }
        }
        if let Some(p) = &self.ca_file {
            v.readable(&format!("{key}.ca_file"), p, span.clone())?;
        }
        if self.timeout.is_some_and(|t| t.get().is_zero()) {
            return Err(v.err(
                format!("{key}.timeout"),
                v.field_span(span.clone(), "timeout"),
                "must be longer than 0s",
            ));
        }
        let settings = self.kind.resolve(&cx, own)?;
        Ok(ChannelConfig {
            name: self.name,
            min_severity: self.min_severity,
            sources,
            ca_file: self.ca_file,
            timeout: self.timeout.map_or(DEFAULT_TIMEOUT, |t| t.get()),
            settings,
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
