//! The SQL of one write transaction: what the state machine's steps
//! (`ledger.rs`) and the outbox lease (`deliver/outbox.rs`) read and write.
//! [`super::Store`] holds the connection, the schema and the reads the CLI
//! makes.

use super::{row_to_alert, ALERT_COLUMNS};
use crate::model::{to_ms, ActiveSilence, Alert, Event};
use rusqlite::{params, OptionalExtension, Transaction};
use time::OffsetDateTime;

pub(crate) fn load_alert(tx: &Transaction, key: &str) -> rusqlite::Result<Option<Alert>> {
    tx.query_row(
        &format!("SELECT {ALERT_COLUMNS} FROM alerts WHERE key = ?1"),
        [key],
        row_to_alert,
    )
    .optional()
}

/// Every firing alert, by key.
pub(crate) fn firing_alerts(tx: &Transaction) -> rusqlite::Result<Vec<Alert>> {
    let mut st = tx.prepare_cached(&format!(
        "SELECT {ALERT_COLUMNS} FROM alerts WHERE status = 'firing' ORDER BY key"
    ))?;
    let rows = st.query_map([], row_to_alert)?;
    rows.collect()
}

/// The firing alerts that were sent to `channel` (for Alertmanager's re-sends).
pub(crate) fn firing_for(tx: &Transaction, channel: &str) -> rusqlite::Result<Vec<Alert>> {
    Ok(firing_alerts(tx)?
        .into_iter()
        .filter(|a| a.notified_channels.iter().any(|c| c == channel))
        .collect())
}

/// The silences that have not ended or been expired at `now`.
pub(crate) fn active_silences(
    tx: &Transaction,
    now: OffsetDateTime,
) -> rusqlite::Result<Vec<ActiveSilence>> {
    let mut st = tx.prepare_cached(
        "SELECT id, matchers FROM silences WHERE expired_ms IS NULL AND ends_ms > ?1",
    )?;
    let rows = st.query_map([to_ms(now)], |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
    })?;
    let mut out = Vec::new();
    for r in rows {
        let (id, m) = r?;
        out.push((id, serde_json::from_str(&m).unwrap_or_default()));
    }
    Ok(out)
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

/// The newest outbox row's id (0 for none): what a step queued is the difference.
pub(crate) fn last_outbox_id(tx: &Transaction) -> rusqlite::Result<i64> {
    tx.query_row("SELECT COALESCE(MAX(id), 0) FROM outbox", [], |r| r.get(0))
}

/// Rows of `channel` not sent yet; of `event` only, if given.
pub(crate) fn unsent(
    tx: &Transaction,
    channel: &str,
    event: Option<Event>,
) -> rusqlite::Result<i64> {
    match event {
        None => tx.query_row(
            "SELECT COUNT(*) FROM outbox WHERE channel = ?1 AND sent_ms IS NULL",
            [channel],
            |r| r.get(0),
        ),
        Some(e) => tx.query_row(
            "SELECT COUNT(*) FROM outbox WHERE channel = ?1 AND sent_ms IS NULL AND event = ?2",
            [channel, e.as_str()],
            |r| r.get(0),
        ),
    }
}

/// An unsent outbox row as the lease reads it.
pub(crate) struct OutboxRow {
    pub id: i64,
    pub event: String,
    pub payload: String,
    pub created_ms: i64,
    pub lease_owner: Option<String>,
    pub lease_until_ms: Option<i64>,
}

/// The oldest unsent rows of `channel`, at most 1000.
pub(crate) fn unsent_rows(tx: &Transaction, channel: &str) -> rusqlite::Result<Vec<OutboxRow>> {
    let mut st = tx.prepare_cached(
        "SELECT id, event, payload, created_ms, lease_owner, lease_until_ms FROM outbox
         WHERE channel = ?1 AND sent_ms IS NULL ORDER BY id LIMIT 1000",
    )?;
    let rows = st.query_map([channel], |r| {
        Ok(OutboxRow {
            id: r.get(0)?,
            event: r.get(1)?,
            payload: r.get(2)?,
            created_ms: r.get(3)?,
            lease_owner: r.get(4)?,
            lease_until_ms: r.get(5)?,
        })
    })?;
    rows.collect()
}

pub(crate) fn lease(
    tx: &Transaction,
    ids: &[i64],
    owner: &str,
    until_ms: i64,
) -> rusqlite::Result<()> {
    let mut up =
        tx.prepare_cached("UPDATE outbox SET lease_owner = ?2, lease_until_ms = ?3 WHERE id = ?1")?;
    for id in ids {
        up.execute(params![id, owner, until_ms])?;
    }
    Ok(())
}

/// Gives leased rows back untouched.
pub(crate) fn release(tx: &Transaction, ids: &[i64], owner: &str) -> rusqlite::Result<()> {
    let mut st = tx.prepare_cached(
        "UPDATE outbox SET lease_owner = NULL, lease_until_ms = NULL WHERE id = ?1 AND lease_owner = ?2",
    )?;
    for id in ids {
        st.execute(params![id, owner])?;
    }
    Ok(())
}

/// The rows were delivered: sent, and the channel is healthy.
pub(crate) fn delivered(
    tx: &Transaction,
    channel: &str,
    ids: &[i64],
    now_ms: i64,
) -> rusqlite::Result<()> {
    let mut st = tx.prepare_cached(
        "UPDATE outbox SET sent_ms = ?2, attempts = attempts + 1, last_error = NULL, lease_owner = NULL, lease_until_ms = NULL
         WHERE id = ?1 AND sent_ms IS NULL",
    )?;
    for id in ids {
        st.execute(params![id, now_ms])?;
    }
    tx.execute(
        "INSERT INTO channel_state (channel, failures, next_attempt_ms, last_ok_ms) VALUES (?1, 0, 0, ?2)
         ON CONFLICT (channel) DO UPDATE SET failures = 0, next_attempt_ms = 0, last_error = NULL, last_ok_ms = ?2",
        params![channel, now_ms],
    )?;
    Ok(())
}

/// The attempt failed: the rows wait, the channel's next attempt is at `next_ms`.
pub(crate) fn not_delivered(
    tx: &Transaction,
    channel: &str,
    ids: &[i64],
    owner: &str,
    error: &str,
    failures: u32,
    next_ms: i64,
) -> rusqlite::Result<()> {
    let mut st = tx.prepare_cached(
        "UPDATE outbox SET attempts = attempts + 1, last_error = ?2, lease_owner = NULL, lease_until_ms = NULL
         WHERE id = ?1 AND lease_owner = ?3",
    )?;
    for id in ids {
        st.execute(params![id, error, owner])?;
    }
    tx.execute(
        "INSERT INTO channel_state (channel, failures, next_attempt_ms, last_error) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (channel) DO UPDATE SET failures = ?2, next_attempt_ms = ?3, last_error = ?4",
        params![channel, failures as i64, next_ms, error],
    )?;
    Ok(())
}

/// The attempt failed for good (HTTP 413: the same message would be refused
/// again): the rows are done, marked with the error so `vigil-notify status`
/// counts them as not delivered, and the channel goes on at once.
pub(crate) fn dropped(
    tx: &Transaction,
    channel: &str,
    ids: &[i64],
    owner: &str,
    error: &str,
    failures: u32,
    now_ms: i64,
) -> rusqlite::Result<()> {
    let mut st = tx.prepare_cached(
        "UPDATE outbox SET sent_ms = ?4, attempts = attempts + 1, last_error = ?2, lease_owner = NULL, lease_until_ms = NULL
         WHERE id = ?1 AND lease_owner = ?3",
    )?;
    for id in ids {
        st.execute(params![id, error, owner, now_ms])?;
    }
    tx.execute(
        "INSERT INTO channel_state (channel, failures, next_attempt_ms, last_error) VALUES (?1, ?2, 0, ?3)
         ON CONFLICT (channel) DO UPDATE SET failures = ?2, next_attempt_ms = 0, last_error = ?3",
        params![channel, failures as i64, error],
    )?;
    Ok(())
}

/// When `channel` may be tried again (0: now).
pub(crate) fn next_attempt_ms(tx: &Transaction, channel: &str) -> rusqlite::Result<i64> {
    Ok(tx
        .query_row(
            "SELECT next_attempt_ms FROM channel_state WHERE channel = ?1",
            [channel],
            |r| r.get(0),
        )
        .optional()?
        .unwrap_or(0))
}

/// When `channel` last got Alertmanager's re-send (0: never).
pub(crate) fn last_refresh_ms(tx: &Transaction, channel: &str) -> rusqlite::Result<i64> {
    Ok(tx
        .query_row(
            "SELECT last_refresh_ms FROM channel_state WHERE channel = ?1",
            [channel],
            |r| r.get(0),
        )
        .optional()?
        .unwrap_or(0))
}

pub(crate) fn set_last_refresh(
    tx: &Transaction,
    channel: &str,
    now_ms: i64,
) -> rusqlite::Result<()> {
    tx.execute(
        "INSERT INTO channel_state (channel, last_refresh_ms) VALUES (?1, ?2)
         ON CONFLICT (channel) DO UPDATE SET last_refresh_ms = ?2",
        params![channel, now_ms],
    )?;
    Ok(())
}

/// A channel's failed attempts in a row (for the channel-failing alert).
pub(crate) fn channel_failures(tx: &Transaction, channel: &str) -> rusqlite::Result<u32> {
    Ok(tx
        .query_row(
            "SELECT failures FROM channel_state WHERE channel = ?1",
            [channel],
            |r| r.get::<_, i64>(0),
        )
        .optional()?
        .unwrap_or(0) as u32)
}
