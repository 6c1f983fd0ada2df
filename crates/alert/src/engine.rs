//! The state machine, pure: what one check result does to an alert
//! ([`step`]), whether an alert is muted ([`muted`]), which notifications
//! are due for a firing alert ([`due`]) and when a channel that keeps
//! failing becomes an alert of its own ([`channel_result`]). No I/O: the
//! ledger (`ledger.rs`) runs these inside one SQLite write transaction, so
//! a crash leaves either the old state or the new state plus its outbox rows.

use crate::model::ActiveSilence;
use crate::model::{to_ms, Alert, AlertKey, CheckResult, Event, Fact, Severity, Source, Status};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;
use time::OffsetDateTime;
use vigil_core::config::{AlertConfig, AlertRule, ChannelConfig};
use vigil_core::Config;

pub use crate::model::HEARTBEAT_CHANNEL;
/// The alert raised when a channel keeps failing; routed to every other channel.
pub const CHANNEL_FAILING: &str = "notify_channel_failing";
/// Consecutive failed attempts before [`CHANNEL_FAILING`] fires.
pub const CHANNEL_FAILING_AFTER: u32 = 3;

/// What the engine and the delivery need from the config, owned so tasks can share it.
#[derive(Debug, Clone)]
pub struct Settings {
    pub cluster: String,
    pub state_dir: PathBuf,
    pub alert: AlertConfig,
}

impl Settings {
    pub fn from_config(cfg: &Config) -> Self {
        Self {
            cluster: cfg.cluster_name().to_string(),
            state_dir: cfg.state.dir.clone(),
            alert: cfg.alert.clone(),
        }
    }

    pub fn channels(&self) -> impl Iterator<Item = &ChannelConfig> {
        self.alert.channel.iter()
    }

    pub fn channel(&self, name: &str) -> Option<&ChannelConfig> {
        self.channels().find(|c| c.name == name)
    }

    fn rule(&self, name: &str) -> Option<&AlertRule> {
        self.alert.rule.iter().find(|r| r.alert == name)
    }

    /// (failures before firing, successes before resolving) for an alert.
    pub fn thresholds(&self, name: &str, source: Source) -> (u32, u32) {
        let (f, s) = crate::model::default_thresholds(source);
        match self.rule(name) {
            Some(r) => (
                r.failure_threshold.unwrap_or(f),
                r.success_threshold.unwrap_or(s),
            ),
            None => (f, s),
        }
    }

    pub fn repeat_interval(&self, name: &str) -> Duration {
        self.rule(name)
            .and_then(|r| r.repeat_interval)
            .unwrap_or(self.alert.repeat_interval)
            .get()
    }

    fn severity(&self, name: &str, reported: Severity) -> Severity {
        self.rule(name).and_then(|r| r.severity).unwrap_or(reported)
    }

    /// The channels an alert goes to: min_severity and sources per channel.
    /// A failing channel is never told about itself.
    pub fn routes(&self, a: &Alert) -> Vec<String> {
        self.channels()
            .filter(|c| c.min_severity.is_none_or(|m| a.severity >= m))
            .filter(|c| c.sources.is_empty() || c.sources.contains(&a.source))
            .filter(|c| !(a.name == CHANNEL_FAILING && a.labels.get("channel") == Some(&c.name)))
            .map(|c| c.name.clone())
            .collect()
    }

    /// The channels that get the whole firing set again every so often
    /// (Alertmanager), with that interval.
    pub fn resending(&self) -> impl Iterator<Item = (&ChannelConfig, Duration)> {
        self.channels()
            .filter_map(|c| Some((c, crate::channel::kind(&c.settings).resend()?)))
    }
}

/// What one check result did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Transition {
    /// Nothing changed (still OK, still firing, ...).
    None,
    /// Failing, below the failure threshold.
    Pending,
    Fired,
    Resolved,
}

fn matches(matchers: &BTreeMap<String, String>, labels: &BTreeMap<&str, &str>) -> bool {
    matchers
        .iter()
        .all(|(k, v)| labels.get(k.as_str()) == Some(&v.as_str()))
}

/// Why an alert is muted right now, if it is: a maintenance window or one
/// of the `silences` in force.
pub fn muted(
    s: &Settings,
    a: &Alert,
    silences: &[ActiveSilence],
    now: OffsetDateTime,
) -> Option<String> {
    let labels = a.match_labels();
    for w in &s.alert.maintenance {
        if w.contains(now) && matches(&w.matchers, &labels) {
            return Some(format!(
                "maintenance window ({})",
                if w.reason.is_empty() {
                    "no reason given"
                } else {
                    &w.reason
                }
            ));
        }
    }
    silences
        .iter()
        .find(|(_, m)| matches(m, &labels))
        .map(|(id, _)| format!("silence {id}"))
}

/// What one check result does to an alert.
#[derive(Debug)]
pub struct Step {
    /// The alert's new state, to be saved.
    pub alert: Alert,
    pub transition: Transition,
    /// The channels to tell it resolved: exactly those told it fired, even
    /// during a silence, so every recovery reaches a human.
    pub resolved_to: Vec<String>,
}

/// Applies one check result to `existing` (None: a key never seen).
/// Notifications of firing alerts are [`due`]'s.
pub fn step(existing: Option<Alert>, s: &Settings, r: &CheckResult, now: OffsetDateTime) -> Step {
    let now_ms = to_ms(now);
    let fresh = existing.is_none();
    let mut a = existing.unwrap_or_else(|| Alert {
        key: r.key.to_string(),
        name: r.key.name.clone(),
        labels: r.key.labels.clone(),
        source: r.source,
        severity: s.severity(&r.key.name, r.severity),
        status: Status::Ok,
        summary: r.summary.clone(),
        facts: r.facts.clone(),
        runbook: r.runbook.clone(),
        cluster: s.cluster.clone(),
        fail_streak: 0,
        ok_streak: 0,
        first_seen_ms: now_ms,
        last_seen_ms: now_ms,
        fired_ms: None,
        resolved_ms: None,
        cycle: 0,
        notified_channels: Vec::new(),
        last_notified_ms: None,
    });
    let (fail_threshold, ok_threshold) = s.thresholds(&a.name, r.source);
    a.last_seen_ms = now_ms;
    a.source = r.source;
    a.cluster = s.cluster.clone();
    let mut resolved_to = Vec::new();
    let transition = if !r.ok {
        // The details always show the latest failure.
        a.summary = r.summary.clone();
        a.facts = r.facts.clone();
        a.runbook = r.runbook.clone();
        a.severity = s.severity(&a.name, r.severity);
        a.ok_streak = 0;
        a.fail_streak = a.fail_streak.saturating_add(1);
        match a.status {
            Status::Firing => Transition::None,
            Status::Ok | Status::Pending => {
                if a.status == Status::Ok {
                    a.first_seen_ms = now_ms;
                }
                if a.fail_streak >= fail_threshold {
                    a.status = Status::Firing;
                    a.fired_ms = Some(now_ms);
                    a.resolved_ms = None;
                    a.cycle += 1;
                    a.notified_channels.clear();
                    a.last_notified_ms = None;
                    Transition::Fired
                } else {
                    a.status = Status::Pending;
                    Transition::Pending
                }
            }
        }
    } else {
        a.fail_streak = 0;
        a.ok_streak = a.ok_streak.saturating_add(1);
        match a.status {
            Status::Ok => Transition::None,
            Status::Pending => {
                a.status = Status::Ok;
                Transition::None
            }
            Status::Firing if a.ok_streak >= ok_threshold => {
                a.status = Status::Ok;
                a.resolved_ms = Some(now_ms);
                a.summary = format!("Resolved: {}", a.summary.trim_start_matches("Resolved: "));
                if s.alert.send_resolved {
                    resolved_to = std::mem::take(&mut a.notified_channels)
                        .into_iter()
                        .filter(|ch| ch != HEARTBEAT_CHANNEL && s.channel(ch).is_some())
                        .collect();
                }
                a.notified_channels.clear();
                Transition::Resolved
            }
            Status::Firing => Transition::None,
        }
    };
    if fresh && r.ok {
        // Remember good checks too, so `status --all` lists every key seen.
        a.first_seen_ms = now_ms;
    }
    Step {
        alert: a,
        transition,
        resolved_to,
    }
}

/// The notifications due now for a firing, unmuted alert sent to `routes`:
/// the first one per channel (a channel added later gets it too), or a
/// reminder to all once `repeat` has passed. Updates what `a` records of
/// them; empty when nothing is due (and `a` unchanged).
pub fn due(
    a: &mut Alert,
    routes: &[String],
    repeat: Duration,
    now: OffsetDateTime,
) -> Vec<(String, Event)> {
    let now_ms = to_ms(now);
    let mut out = Vec::new();
    for ch in routes {
        if !a.notified_channels.contains(ch) {
            out.push((ch.clone(), Event::Firing));
            a.notified_channels.push(ch.clone());
        }
    }
    if !out.is_empty() {
        if a.last_notified_ms.is_none() {
            a.last_notified_ms = Some(now_ms);
        }
        return out;
    }
    let repeat = repeat.as_millis() as i64;
    if a.last_notified_ms.is_some_and(|t| now_ms - t >= repeat) {
        out.extend(routes.iter().map(|ch| (ch.clone(), Event::Repeat)));
        a.last_notified_ms = Some(now_ms);
    }
    out
}

/// Whether an Alertmanager channel last re-sent at `last_ms` is due again.
pub fn refresh_due(last_ms: i64, resend: Duration, now: OffsetDateTime) -> bool {
    to_ms(now) - last_ms >= resend.as_millis() as i64
}

/// Whether a due re-send is queued: none waits yet, and there is something
/// to say (alerts firing there, or the watchdog).
pub fn refresh_wanted(waiting: i64, any_firing: bool, watchdog: bool) -> bool {
    waiting == 0 && (any_firing || watchdog)
}

/// The key of the alert that says `channel` keeps failing.
pub fn channel_failing_key(channel: &str) -> AlertKey {
    AlertKey::new(CHANNEL_FAILING).label("channel", channel)
}

/// The check result for `channel` after a delivery attempt: failing after
/// [`CHANNEL_FAILING_AFTER`] failures in a row; recovered when a delivery
/// succeeds and its alert `exists`. None: nothing to record.
pub fn channel_result(
    channel: &str,
    failures: u32,
    error: Option<&str>,
    exists: bool,
) -> Option<CheckResult> {
    if channel == HEARTBEAT_CHANNEL {
        return None;
    }
    let key = channel_failing_key(channel);
    match error {
        Some(e) if failures >= CHANNEL_FAILING_AFTER => Some(CheckResult {
            key,
            source: Source::Vigil,
            ok: false,
            severity: Severity::Warning,
            summary: format!("Alert channel {channel} failed {failures} deliveries in a row; its messages wait in the outbox"),
            facts: vec![Fact::new("Channel", channel), Fact::new("Failures", failures.to_string()), Fact::new("Last error", e)],
            runbook: Some(format!("Run `vigil-notify test --channel {channel}` and `vigil-notify status`; check the webhook, relay or network")),
        }),
        None if exists => Some(CheckResult {
            key,
            source: Source::Vigil,
            ok: true,
            severity: Severity::Warning,
            summary: format!("Alert channel {channel} delivers again"),
            facts: vec![Fact::new("Channel", channel)],
            runbook: None,
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    //! The state machine alone: no database, no files.
    use super::*;

    fn settings() -> Settings {
        let text = r#"[cluster]
name = "prod"
members = [{ name = "cp-1", endpoint = "http://127.0.0.1:12379" }]
[state]
dir = "/nonexistent/vigil-state"
[[alert.channel]]
name = "ops"
kind = "file"
path = "/nonexistent/vigil-state/ops.jsonl"
"#;
        Settings::from_config(&Config::parse(text, std::path::Path::new("test.toml")).unwrap())
    }

    fn result(ok: bool) -> CheckResult {
        CheckResult {
            key: AlertKey::new("etcd_member_down").label("member", "cp-1"),
            source: Source::Health,
            ok,
            severity: Severity::Critical,
            summary: "cp-1 down".into(),
            facts: Vec::new(),
            runbook: None,
        }
    }

    fn at(s: i64) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_800_000_000 + s).unwrap()
    }

    #[test]
    fn fires_at_the_threshold_notifies_once_then_repeats_and_resolves_to_who_heard() {
        let s = settings();
        // Health needs three failures in a row (default_thresholds).
        let mut a = None;
        for (i, want) in [Transition::Pending, Transition::Pending, Transition::Fired]
            .into_iter()
            .enumerate()
        {
            let st = step(a.take(), &s, &result(false), at(i as i64));
            assert_eq!(st.transition, want);
            a = Some(st.alert);
        }
        let mut a = a.unwrap();
        assert_eq!(a.status, Status::Firing);
        let routes = s.routes(&a);
        assert_eq!(routes, vec!["ops".to_string()]);
        assert_eq!(
            due(&mut a, &routes, Duration::from_secs(3600), at(3)),
            vec![("ops".to_string(), Event::Firing)]
        );
        assert!(due(&mut a, &routes, Duration::from_secs(3600), at(60)).is_empty());
        assert_eq!(
            due(&mut a, &routes, Duration::from_secs(3600), at(3603)),
            vec![("ops".to_string(), Event::Repeat)]
        );
        // Two good checks resolve it, to the channel that heard it fire.
        let st = step(Some(a), &s, &result(true), at(3700));
        assert_eq!((st.transition, st.resolved_to.len()), (Transition::None, 0));
        let st = step(Some(st.alert), &s, &result(true), at(3701));
        assert_eq!(st.transition, Transition::Resolved);
        assert_eq!(st.resolved_to, vec!["ops".to_string()]);
        assert!(st.alert.notified_channels.is_empty());
        assert!(st.alert.summary.starts_with("Resolved: "));
    }

    #[test]
    fn silences_mute_by_label_and_channels_fail_after_three() {
        let s = settings();
        let a = step(None, &s, &result(false), at(0)).alert;
        let silences = vec![(
            "s1".to_string(),
            BTreeMap::from([("member".to_string(), "cp-1".to_string())]),
        )];
        assert_eq!(
            muted(&s, &a, &silences, at(1)).as_deref(),
            Some("silence s1")
        );
        assert_eq!(muted(&s, &a, &[], at(1)), None);

        assert!(channel_result("ops", 2, Some("500"), false).is_none());
        let r = channel_result("ops", 3, Some("500"), false).unwrap();
        assert!(!r.ok && r.key.to_string().contains("ops"), "{r:?}");
        // A recovery is recorded only for a channel that had the alert.
        assert!(channel_result("ops", 0, None, false).is_none());
        assert!(channel_result("ops", 0, None, true).unwrap().ok);
        assert!(channel_result(HEARTBEAT_CHANNEL, 9, Some("x"), true).is_none());
    }
}
