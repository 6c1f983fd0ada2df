//! The state machine's steps inside one write transaction: load what
//! [`engine`] needs from the store, run it, write back what it decided and
//! queue its notifications. No SQL here (`store/rows.rs`), no decisions
//! (`engine.rs`).

use crate::engine::{self, Settings, Transition};
use crate::model::{to_ms, Alert, CheckResult, Event, Item};
use crate::store::{rows, save_alert};
use rusqlite::Transaction;
use time::OffsetDateTime;

/// Applies one check result. Notifications of firing alerts are queued by [`tick`].
pub fn apply(
    tx: &Transaction,
    s: &Settings,
    r: &CheckResult,
    now: OffsetDateTime,
) -> rusqlite::Result<Transition> {
    let existing = rows::load_alert(tx, &r.key.to_string())?;
    let step = engine::step(existing, s, r, now);
    for ch in &step.resolved_to {
        enqueue_item(tx, ch, &step.alert, Event::Resolved, now)?;
    }
    save_alert(tx, &step.alert)?;
    Ok(step.transition)
}

/// Queues what is due now: first notifications of firing alerts (also those
/// held back by a silence that has ended), reminders after the repeat
/// interval, and Alertmanager re-sends. Returns the number of rows queued.
pub fn tick(tx: &Transaction, s: &Settings, now: OffsetDateTime) -> rusqlite::Result<usize> {
    let mut queued = 0;
    let silences = rows::active_silences(tx, now)?;
    for mut a in rows::firing_alerts(tx)? {
        if engine::muted(s, &a, &silences, now).is_some() {
            continue;
        }
        let routes = s.routes(&a);
        let repeat = s.repeat_interval(&a.name);
        let due = engine::due(&mut a, &routes, repeat, now);
        for (ch, event) in &due {
            enqueue_item(tx, ch, &a, *event, now)?;
        }
        if !due.is_empty() {
            queued += due.len();
            save_alert(tx, &a)?;
        }
    }
    // Alertmanager forgets alerts that are not re-sent (resolve_timeout).
    for (c, resend) in s.resending() {
        if !engine::refresh_due(rows::last_refresh_ms(tx, &c.name)?, resend, now) {
            continue;
        }
        if engine::refresh_wanted(
            rows::unsent(tx, &c.name, Some(Event::Refresh))?,
            !rows::firing_for(tx, &c.name)?.is_empty(),
            s.alert.watchdog,
        ) {
            rows::enqueue(tx, &c.name, None, Event::Refresh, "{}", now)?;
            queued += 1;
        }
        rows::set_last_refresh(tx, &c.name, to_ms(now))?;
    }
    Ok(queued)
}

/// Records a channel's delivery result; after
/// [`engine::CHANNEL_FAILING_AFTER`] failures in a row, the other channels
/// hear about it.
pub(crate) fn channel_health(
    tx: &Transaction,
    s: &Settings,
    channel: &str,
    error: Option<&str>,
    now: OffsetDateTime,
) -> rusqlite::Result<()> {
    let failures = rows::channel_failures(tx, channel)?;
    // A recovery is recorded only for a channel that was said to fail.
    let exists = error.is_none()
        && rows::load_alert(tx, &engine::channel_failing_key(channel).to_string())?.is_some();
    if let Some(r) = engine::channel_result(channel, failures, error, exists) {
        apply(tx, s, &r, now)?;
        tick(tx, s, now)?;
    }
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
    rows::enqueue(tx, channel, Some(&a.key), event, &payload, now)
}
