//! The outbox lease: which rows of a channel are due and whose they are
//! (claim), what a send did to them (finish), and handing them back
//! untouched (release). See the guarantees in [`super`].

use super::BATCH;
use crate::channel::{AmExtra, SendError, Sender};
use crate::engine::{Settings, HEARTBEAT_CHANNEL};
use crate::ledger;
use crate::model::{to_ms, Event, Item};
use crate::store::rows::{self, OutboxRow};
use crate::store::Store;
use crate::AlertError;
use std::time::Duration;
use time::OffsetDateTime;

/// Identifies this process in leases: pid plus its start time, so a reused
/// pid is not mistaken for the crashed owner.
pub(crate) fn owner_id() -> String {
    let pid = std::process::id();
    format!("{pid}:{}", start_time(pid).unwrap_or_default())
}

fn start_time(pid: u32) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = stat.rsplit_once(')')?.1;
    after.split_whitespace().nth(19).map(str::to_owned)
}

fn owner_alive(owner: &str) -> bool {
    let Some((pid, start)) = owner.split_once(':') else {
        return false;
    };
    match pid.parse::<u32>() {
        Ok(pid) => start_time(pid).is_some_and(|s| s == start),
        Err(_) => false,
    }
}

/// Rows claimed for one message.
#[derive(Debug)]
pub(super) struct Batch {
    pub(super) ids: Vec<i64>,
    pub(super) items: Vec<Item>,
    pub(super) am: AmExtra,
    pub(super) heartbeat: bool,
}

pub(super) enum Claim {
    /// Nothing to send.
    Idle,
    /// Something to send later (backoff, grouping, or another process's lease).
    Wait(Duration),
    Batch(Batch),
}

pub(super) fn ms(d: Duration) -> i64 {
    d.as_millis() as i64
}

pub(super) fn claim(
    store: &mut Store,
    s: &Settings,
    sender: &Sender,
    group_wait: Duration,
    owner: &str,
    now: OffsetDateTime,
) -> Result<Claim, AlertError> {
    let now_ms = to_ms(now);
    let lease = sender.timeout + Duration::from_secs(30);
    let channel = sender.name.clone();
    let is_am = sender.is_alertmanager();
    store.write(|tx| {
        let next = rows::next_attempt_ms(tx, &channel)?;
        if next > now_ms {
            return Ok(Claim::Wait(Duration::from_millis((next - now_ms) as u64)));
        }
        let unsent = rows::unsent_rows(tx, &channel)?;
        if unsent.is_empty() {
            return Ok(Claim::Idle);
        }
        let mut leased_until = None::<i64>;
        let free: Vec<&OutboxRow> = unsent
            .iter()
            .filter(|r| match (&r.lease_owner, r.lease_until_ms) {
                (Some(o), Some(until)) if until > now_ms && owner_alive(o) => {
                    leased_until = Some(leased_until.map_or(until, |l: i64| l.min(until)));
                    false
                }
                _ => true,
            })
            .collect();
        if free.is_empty() {
            let wait = leased_until
                .map(|u| u - now_ms)
                .unwrap_or(1000)
                .clamp(100, 5000);
            return Ok(Claim::Wait(Duration::from_millis(wait as u64)));
        }
        // Grouping: wait until the channel has been quiet for group_wait, but
        // never hold the oldest row longer than three windows.
        if !group_wait.is_zero() {
            let newest = free.iter().map(|r| r.created_ms).max().unwrap_or(now_ms);
            let oldest = free.iter().map(|r| r.created_ms).min().unwrap_or(now_ms);
            let gw = ms(group_wait);
            if now_ms - newest < gw && now_ms - oldest < 3 * gw {
                let wait = (gw - (now_ms - newest))
                    .min(3 * gw - (now_ms - oldest))
                    .max(50);
                return Ok(Claim::Wait(Duration::from_millis(wait as u64)));
            }
        }
        let heartbeat = channel == HEARTBEAT_CHANNEL;
        // Heartbeats coalesce into one ping; messages carry up to BATCH rows.
        let take = if heartbeat {
            free.len()
        } else {
            free.len().min(BATCH)
        };
        let chosen = &free[..take];
        let mut ids = Vec::with_capacity(take);
        let mut items = Vec::new();
        for r in chosen {
            ids.push(r.id);
            if r.event == Event::Refresh.as_str() || r.event == Event::Heartbeat.as_str() {
                continue;
            }
            match serde_json::from_str::<Item>(&r.payload) {
                Ok(mut it) => {
                    it.id = r.id;
                    items.push(it);
                }
                Err(e) => tracing::warn!(channel, id = r.id, "dropping unreadable outbox row: {e}"),
            }
        }
        rows::lease(tx, &ids, owner, now_ms + ms(lease))?;
        let am = if is_am {
            AmExtra {
                firing: rows::firing_for(tx, &channel)?,
                watchdog: s.alert.watchdog,
            }
        } else {
            AmExtra::default()
        };
        Ok(Claim::Batch(Batch {
            ids,
            items,
            am,
            heartbeat,
        }))
    })
}

fn backoff(s: &Settings, failures: u32, err: &SendError) -> Duration {
    if let Some(ra) = err.retry_after {
        return ra + Duration::from_millis(fastrand::u64(0..250));
    }
    let min = s.alert.retry_min.get();
    let max = s.alert.retry_max.get();
    let exp = min
        .saturating_mul(1u32 << failures.saturating_sub(1).min(20))
        .min(max);
    // Jitter: uniform in the upper half, so retries of many channels spread out.
    exp / 2 + Duration::from_millis(fastrand::u64(0..=(exp.as_millis() as u64 / 2)))
}

pub(super) fn finish(
    store: &mut Store,
    s: &Settings,
    channel: &str,
    b: &Batch,
    r: &Result<crate::channel::Sent, SendError>,
    owner: &str,
) -> Result<Option<Duration>, AlertError> {
    let now = vigil_core::now();
    let now_ms = to_ms(now);
    store.write(|tx| match r {
        Ok(_) => {
            rows::delivered(tx, channel, &b.ids, now_ms)?;
            ledger::channel_health(tx, s, channel, None, now)?;
            Ok(None)
        }
        Err(e) if e.permanent => {
            let failures = rows::channel_failures(tx, channel)? + 1;
            rows::dropped(tx, channel, &b.ids, owner, &e.message, failures, now_ms)?;
            ledger::channel_health(tx, s, channel, Some(&e.message), now)?;
            Ok(None)
        }
        Err(e) => {
            let failures = rows::channel_failures(tx, channel)? + 1;
            let delay = backoff(s, failures, e);
            rows::not_delivered(
                tx,
                channel,
                &b.ids,
                owner,
                &e.message,
                failures,
                now_ms + ms(delay),
            )?;
            ledger::channel_health(tx, s, channel, Some(&e.message), now)?;
            Ok(Some(delay))
        }
    })
}

/// Gives leased rows back untouched.
pub(super) fn release(store: &mut Store, ids: &[i64], owner: &str) -> Result<(), AlertError> {
    store.write(|tx| rows::release(tx, ids, owner))
}
