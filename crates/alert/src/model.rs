//! The alert model: where an alert comes from, its stable key, what a check
//! reports, and the snapshot of an alert that goes into a message.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use time::OffsetDateTime;
pub use vigil_core::config::Severity;

pub use vigil_core::jobs::Source;

/// Outbox channel name of the dead-man heartbeat (not a valid channel name, so no clash).
pub const HEARTBEAT_CHANNEL: &str = "@heartbeat";

/// A silence in force: its id and its matchers.
pub(crate) type ActiveSilence = (String, BTreeMap<String, String>);

/// Default thresholds of a source (failures before firing, successes before
/// resolving): periodic checks flap, so they need 3 and 2; a failed job is
/// already a fact, so it fires and resolves at once.
pub fn default_thresholds(source: Source) -> (u32, u32) {
    match source {
        Source::Health | Source::Quota => (3, 2),
        _ => (1, 1),
    }
}

/// The stable identity of an alert: a name and labels, rendered the
/// Prometheus way, e.g. `etcd_member_down{member="cp-2"}`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct AlertKey {
    pub name: String,
    pub labels: BTreeMap<String, String>,
}

impl AlertKey {
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            labels: BTreeMap::new(),
        }
    }

    pub fn label(mut self, k: impl Into<String>, v: impl Into<String>) -> Self {
        self.labels.insert(k.into(), v.into());
        self
    }
}

impl fmt::Display for AlertKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)?;
        if self.labels.is_empty() {
            return Ok(());
        }
        f.write_str("{")?;
        for (i, (k, v)) in self.labels.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            let v = v
                .replace('\\', "\\\\")
                .replace('"', "\\\"")
                .replace('\n', "\\n");
            write!(f, "{k}=\"{v}\"")?;
        }
        f.write_str("}")
    }
}

/// One title/value pair shown under an alert (Teams FactSet, Slack fields).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fact {
    pub title: String,
    pub value: String,
}

impl Fact {
    pub fn new(title: impl Into<String>, value: impl Into<String>) -> Self {
        Self {
            title: title.into(),
            value: value.into(),
        }
    }
}

/// What a check or job reports for one alert key: good or bad, and if bad,
/// how bad and why. The engine turns a series of these into transitions.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckResult {
    pub key: AlertKey,
    pub source: Source,
    pub ok: bool,
    /// The severity the alert has while this check fails.
    pub severity: Severity,
    pub summary: String,
    pub facts: Vec<Fact>,
    pub runbook: Option<String>,
}

/// Where an alert stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Good (or resolved).
    Ok,
    /// Failing, but fewer times in a row than the failure threshold.
    Pending,
    Firing,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Pending => "pending",
            Status::Firing => "firing",
        }
    }
    pub fn parse(s: &str) -> Status {
        match s {
            "pending" => Status::Pending,
            "firing" => Status::Firing,
            _ => Status::Ok,
        }
    }
}

/// Why a message is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Event {
    /// The alert started firing.
    Firing,
    /// Still firing after the repeat interval (a reminder).
    Repeat,
    /// It is fixed.
    Resolved,
    /// `vigil-notify test`.
    Test,
    /// Alertmanager only: re-send every firing alert (and the watchdog).
    Refresh,
    /// The dead-man heartbeat ping.
    Heartbeat,
}

impl Event {
    pub fn as_str(self) -> &'static str {
        match self {
            Event::Firing => "firing",
            Event::Repeat => "repeat",
            Event::Resolved => "resolved",
            Event::Test => "test",
            Event::Refresh => "refresh",
            Event::Heartbeat => "heartbeat",
        }
    }
}

/// An alert as it was at a transition: what a message shows. Times are RFC 3339.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertView {
    /// The rendered key, e.g. `snapshot_failed{member="cp-2"}`.
    pub key: String,
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub source: Source,
    pub severity: Severity,
    pub status: Status,
    pub summary: String,
    pub facts: Vec<Fact>,
    pub runbook: Option<String>,
    pub cluster: String,
    /// When this incident's first failed check came in.
    pub first_seen: String,
    /// The latest check result of any kind.
    pub last_seen: String,
    pub fired_at: Option<String>,
    pub resolved_at: Option<String>,
    /// Incident number of this key (1 for the first time it fired); email threads on it.
    pub cycle: u32,
}

/// One entry of a message: an event about one alert.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Item {
    /// The outbox row this item came from (0 for test messages): shown in
    /// every message so duplicates after a crash can be recognised.
    #[serde(default)]
    pub id: i64,
    pub event: Event,
    pub alert: AlertView,
}

/// Everything one channel gets in one message.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Notification {
    pub cluster: String,
    pub channel: String,
    pub items: Vec<Item>,
}

impl Notification {
    /// The worst severity among the items that still fire.
    pub fn worst_firing(&self) -> Option<Severity> {
        self.items
            .iter()
            .filter(|i| i.event != Event::Resolved)
            .map(|i| i.alert.severity)
            .max()
    }

    pub fn firing(&self) -> impl Iterator<Item = &Item> {
        self.items.iter().filter(|i| i.event != Event::Resolved)
    }

    pub fn resolved(&self) -> impl Iterator<Item = &Item> {
        self.items.iter().filter(|i| i.event == Event::Resolved)
    }
}

pub(crate) fn rfc3339(t: OffsetDateTime) -> String {
    vigil_core::rfc3339(t)
}

pub(crate) fn to_ms(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

pub(crate) fn from_ms(ms: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// One row of the `alerts` table.
#[derive(Debug, Clone, PartialEq)]
pub struct Alert {
    pub key: String,
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub source: Source,
    pub severity: Severity,
    pub status: Status,
    pub summary: String,
    pub facts: Vec<Fact>,
    pub runbook: Option<String>,
    pub cluster: String,
    pub fail_streak: u32,
    pub ok_streak: u32,
    pub first_seen_ms: i64,
    pub last_seen_ms: i64,
    pub fired_ms: Option<i64>,
    pub resolved_ms: Option<i64>,
    pub cycle: u32,
    pub notified_channels: Vec<String>,
    pub last_notified_ms: Option<i64>,
}

impl Alert {
    pub fn view(&self) -> AlertView {
        AlertView {
            key: self.key.clone(),
            name: self.name.clone(),
            labels: self.labels.clone(),
            source: self.source,
            severity: self.severity,
            status: self.status,
            summary: self.summary.clone(),
            facts: self.facts.clone(),
            runbook: self.runbook.clone(),
            cluster: self.cluster.clone(),
            first_seen: rfc3339(from_ms(self.first_seen_ms)),
            last_seen: rfc3339(from_ms(self.last_seen_ms)),
            fired_at: self.fired_ms.map(|m| rfc3339(from_ms(m))),
            resolved_at: self.resolved_ms.map(|m| rfc3339(from_ms(m))),
            cycle: self.cycle,
        }
    }

    /// Labels plus the pseudo-labels silences can match on.
    pub(crate) fn match_labels(&self) -> BTreeMap<&str, &str> {
        let mut m: BTreeMap<&str, &str> = self
            .labels
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        m.insert("alertname", &self.name);
        m.insert("source", self.source.as_str());
        m.insert("severity", self.severity.as_str());
        m
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn key_renders_like_prometheus() {
        let k = AlertKey::new("etcd_member_down").label("member", "cp-2");
        assert_eq!(k.to_string(), r#"etcd_member_down{member="cp-2"}"#);
        let k = AlertKey::new("x").label("b", "q\"uote").label("a", "1");
        assert_eq!(k.to_string(), r#"x{a="1",b="q\"uote"}"#);
        assert_eq!(AlertKey::new("watchdog").to_string(), "watchdog");
    }

    #[test]
    fn thresholds_by_source() {
        assert_eq!(default_thresholds(Source::Health), (3, 2));
        assert_eq!(default_thresholds(Source::Snapshot), (1, 1));
    }
}
