//! The state machine: check results become transitions, transitions become
//! outbox rows (one per routed channel), and [`tick`] adds reminders, the
//! notifications held back by silences, and Alertmanager re-sends.
//!
//! Everything here runs inside one SQLite write transaction, so a crash
//! leaves either the old state or the new state plus its outbox rows.

use crate::model::{
    to_ms, Alert, AlertKey, CheckResult, Event, Fact, Item, Severity, Source, Status,
};
use crate::store::{row_to_alert, ALERT_COLUMNS};
use rusqlite::{params, OptionalExtension, Transaction};
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

/// Why an alert is muted right now, if it is: a silence or a maintenance window.
pub fn muted(
    tx: &Transaction,
    s: &Settings,
    a: &Alert,
    now: OffsetDateTime,
) -> rusqlite::Result<Option<String>> {
    let labels = a.match_labels();
    for w in &s.alert.maintenance {
        if w.contains(now) && matches(&w.matchers, &labels) {
            return Ok(Some(format!(
                "maintenance window ({})",
                if w.reason.is_empty() {
                    "no reason given"
                } else {
                    &w.reason
                }
            )));
        }
    }
    let mut st = tx.prepare_cached(
        "SELECT id, matchers FROM silences WHERE expired_ms IS NULL AND ends_ms > ?1",
    )?;
    let rows = st.query_map([to_ms(now)], |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
    })?;
    for r in rows {
        let (id, m) = r?;
        let m: BTreeMap<String, String> = serde_json::from_str(&m).unwrap_or_default();
        if matches(&m, &labels) {
            return Ok(Some(format!("silence {id}")));
        }
    }
    Ok(None)
}

pub(crate) fn load(tx: &Transaction, key: &str) -> rusqlite::Result<Option<Alert>> {
    tx.query_row(
        &format!("SELECT {ALERT_COLUMNS} FROM alerts WHERE key = ?1"),
        [key],
        row_to_alert,
    )
    .optional()
}

/// Queues one outbox row.
pub(crate) fn enqueue(
    tx: &Transaction,
    channel: &str,
    alert_key: Option<&str>,
    event: Event,
    payload: &str,
    now: OffsetDateTime,
) -> rusqlite::Result<()> {
    tx.execute(
        "INSERT INTO outbox (channel, alert_key, event, payload, created_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![channel, alert_key, event.as_str(), payload, to_ms(now)],
    )?;
    Ok(())
}

fn enqueue_item(
    tx: &Transaction,
    channel: &str,
    a: &Alert,
    event: Event,
    now: OffsetDateTime,
) -> rusqlite::Result<()> {
    let item = Item {
        id: 0,
        event,
        alert: a.view(),
    };
    let payload = serde_json::to_string(&item).unwrap_or_default();
    enqueue(tx, channel, Some(&a.key), event, &payload, now)
}

/// Applies one check result. Notifications are queued by [`tick`].
pub fn apply(
    tx: &Transaction,
    s: &Settings,
    r: &CheckResult,
    now: OffsetDateTime,
) -> rusqlite::Result<Transition> {
    let key = r.key.to_string();
    let now_ms = to_ms(now);
    let existing = load(tx, &key)?;
    let fresh = existing.is_none();
    let mut a = existing.unwrap_or_else(|| Alert {
        key: key.clone(),
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
                // Resolved goes to exactly the channels that were told it fired,
                // even during a silence: every recovery reaches a human.
                if s.alert.send_resolved {
                    for ch in a.notified_channels.clone() {
                        if ch == HEARTBEAT_CHANNEL || s.channel(&ch).is_none() {
                            continue;
                        }
                        enqueue_item(tx, &ch, &a, Event::Resolved, now)?;
                    }
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
    crate::store::save_alert(tx, &a)?;
    Ok(transition)
}

/// Queues what is due now: first notifications of firing alerts (also those
/// held back by a silence that has ended), reminders after the repeat
/// interval, and Alertmanager re-sends. Returns the number of rows queued.
pub fn tick(tx: &Transaction, s: &Settings, now: OffsetDateTime) -> rusqlite::Result<usize> {
    let now_ms = to_ms(now);
    let mut queued = 0;
    let firing: Vec<Alert> = {
        let mut st = tx.prepare_cached(&format!(
            "SELECT {ALERT_COLUMNS} FROM alerts WHERE status = 'firing' ORDER BY key"
        ))?;
        let rows = st.query_map([], row_to_alert)?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    for mut a in firing {
        if muted(tx, s, &a, now)?.is_some() {
            continue;
        }
        let routes = s.routes(&a);
        let mut changed = false;
        // First notification, per channel (a channel added later gets it too).
        for ch in &routes {
            if !a.notified_channels.contains(ch) {
                enqueue_item(tx, ch, &a, Event::Firing, now)?;
                a.notified_channels.push(ch.clone());
                queued += 1;
                changed = true;
            }
        }
        if changed && a.last_notified_ms.is_none() {
            a.last_notified_ms = Some(now_ms);
        }
        let repeat = s.repeat_interval(&a.name).as_millis() as i64;
        if !changed && a.last_notified_ms.is_some_and(|t| now_ms - t >= repeat) {
            for ch in &routes {
                enqueue_item(tx, ch, &a, Event::Repeat, now)?;
                queued += 1;
            }
            a.last_notified_ms = Some(now_ms);
            changed = true;
        }
        if changed {
            crate::store::save_alert(tx, &a)?;
        }
    }
    // Alertmanager forgets alerts that are not re-sent (resolve_timeout).
    for (c, resend) in s.resending() {
        let last: i64 = tx
            .query_row(
                "SELECT last_refresh_ms FROM channel_state WHERE channel = ?1",
                [&c.name],
                |r| r.get(0),
            )
            .optional()?
            .unwrap_or(0);
        if now_ms - last < resend.as_millis() as i64 {
            continue;
        }
        let pending: i64 = tx.query_row(
            "SELECT COUNT(*) FROM outbox WHERE channel = ?1 AND sent_ms IS NULL AND event = 'refresh'",
            [&c.name],
            |r| r.get(0),
        )?;
        let any_firing = !firing_for(tx, &c.name)?.is_empty();
        if pending == 0 && (any_firing || s.alert.watchdog) {
            enqueue(tx, &c.name, None, Event::Refresh, "{}", now)?;
            queued += 1;
        }
        tx.execute(
            "INSERT INTO channel_state (channel, last_refresh_ms) VALUES (?1, ?2)
             ON CONFLICT (channel) DO UPDATE SET last_refresh_ms = ?2",
            params![c.name, now_ms],
        )?;
    }
    Ok(queued)
}

/// The firing, unmuted alerts routed to `channel` (for Alertmanager's re-sends).
pub(crate) fn firing_for(tx: &Transaction, channel: &str) -> rusqlite::Result<Vec<Alert>> {
    let mut st = tx.prepare_cached(&format!(
        "SELECT {ALERT_COLUMNS} FROM alerts WHERE status = 'firing' ORDER BY key"
    ))?;
    let rows = st.query_map([], row_to_alert)?;
    let mut out = Vec::new();
    for a in rows {
        let a = a?;
        if a.notified_channels.iter().any(|c| c == channel) {
            out.push(a);
        }
    }
    Ok(out)
}

/// Records a channel's delivery result; after [`CHANNEL_FAILING_AFTER`]
/// failures in a row, the other channels hear about it.
pub(crate) fn channel_health(
    tx: &Transaction,
    s: &Settings,
    channel: &str,
    error: Option<&str>,
    now: OffsetDateTime,
) -> rusqlite::Result<()> {
    if channel == HEARTBEAT_CHANNEL {
        return Ok(());
    }
    let failures = crate::store::Store::channel_failures(tx, channel)?;
    let key = AlertKey::new(CHANNEL_FAILING).label("channel", channel);
    let r = match error {
        Some(e) if failures >= CHANNEL_FAILING_AFTER => CheckResult {
            key,
            source: Source::Vigil,
            ok: false,
            severity: Severity::Warning,
            summary: format!("Alert channel {channel} failed {failures} deliveries in a row; its messages wait in the outbox"),
            facts: vec![Fact::new("Channel", channel), Fact::new("Failures", failures.to_string()), Fact::new("Last error", e)],
            runbook: Some(format!("Run `vigil-notify test --channel {channel}` and `vigil-notify status`; check the webhook, relay or network")),
        },
        None => {
            if load(tx, &key.to_string())?.is_none() {
                return Ok(());
            }
            CheckResult {
                key,
                source: Source::Vigil,
                ok: true,
                severity: Severity::Warning,
                summary: format!("Alert channel {channel} delivers again"),
                facts: vec![Fact::new("Channel", channel)],
                runbook: None,
            }
        }
        Some(_) => return Ok(()),
    };
    apply(tx, s, &r, now)?;
    tick(tx, s, now)?;
    Ok(())
}
