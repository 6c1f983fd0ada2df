//! Delivery: the outbox drained channel by channel, each on its own task, so
//! a channel that is down blocks no other.
//!
//! # Delivery guarantees
//!
//! A transition and its outbox rows are committed in one SQLite transaction,
//! so nothing is lost once the job that raised it has returned; a restart
//! (or a crash, or `kill -9`) picks up every undelivered row.
//!
//! Before sending, a process takes a *lease* on the rows it sends
//! (owner = pid and process start time, valid for the channel timeout plus a
//! margin). Other processes skip leased rows, so in normal operation each
//! channel gets **at most one message per transition**. After a successful
//! send the rows are marked sent. If the process dies between the server's
//! "OK" and that mark, the lease is released when the process is found dead
//! (or when it expires) and the rows are sent again: after a crash, delivery
//! is **at least once** and a message may arrive twice. Every message carries
//! the outbox ids (Slack `block_id`, Teams element `id`, the email header
//! `X-Vigil-Items`, the file channel's `id`), so a duplicate is recognisable.
//!
//! Failed attempts are retried with exponential backoff and jitter
//! (`alert.retry_min` doubling up to `alert.retry_max`, each delay drawn from
//! its upper half); a 429 or 503 with `Retry-After` waits exactly that long.
//! The backoff is per channel and stored in the database, so it survives a
//! restart of `vigil-notify`.
//!
//! A failure that sending again cannot fix ([`SendError::permanent`]: HTTP
//! 413, the message is too large) is not retried: its rows are marked done
//! with the error (`vigil-notify status` counts them as not delivered), the
//! failure counts toward the channel-failing alert, and the channel goes on
//! with its next message at once.
//!
//! [`SendError::permanent`]: crate::channel::SendError::permanent
//!
//! # Latency
//!
//! The oneshot jobs only queue; `vigil-notify run` delivers. An idle channel
//! looks at the outbox every `POLL` (half a second), so a new row leaves
//! after `alert.group_wait` (quiet time for grouping, 10 s by default) plus
//! at most that poll.

mod outbox;

use crate::channel::{AmExtra, Sender};
use crate::engine::Settings;
use crate::model::{Event, Item, Notification};
use crate::store::Store;
use crate::AlertError;
pub(crate) use outbox::owner_id;
use outbox::{claim, finish, release, Claim};
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// Rows per message at most.
pub(super) const BATCH: usize = 50;
/// How often an idle channel looks at the outbox.
const POLL: Duration = Duration::from_millis(500);

/// What a delivery pass did.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct DeliveryReport {
    /// Messages sent per channel.
    pub sent: BTreeMap<String, u32>,
    /// Outbox rows delivered per channel.
    pub delivered_items: BTreeMap<String, u32>,
    /// The last error per channel that failed.
    pub failed: BTreeMap<String, String>,
    /// Rows still waiting per channel after the pass.
    pub pending: BTreeMap<String, u64>,
}

impl DeliveryReport {
    pub fn pending_total(&self) -> u64 {
        self.pending.values().sum()
    }

    fn merge(&mut self, ch: &str, r: ChannelPass) {
        if r.messages > 0 {
            *self.sent.entry(ch.to_string()).or_default() += r.messages;
            *self.delivered_items.entry(ch.to_string()).or_default() += r.items;
        }
        if let Some(e) = r.error {
            self.failed.insert(ch.to_string(), e);
        }
    }
}

#[derive(Debug, Default)]
struct ChannelPass {
    messages: u32,
    items: u32,
    error: Option<String>,
    /// When to look again, if something is left.
    wait: Option<Duration>,
}

/// Sends what is due on one channel until it is empty, must wait, fails, or
/// `deadline` leaves too little time for another attempt.
async fn pass(
    store: &mut Store,
    s: &Settings,
    sender: &Sender,
    group_wait: Duration,
    owner: &str,
    deadline: Option<tokio::time::Instant>,
) -> ChannelPass {
    let mut out = ChannelPass::default();
    loop {
        let remaining = deadline.map(|d| d.saturating_duration_since(tokio::time::Instant::now()));
        if remaining.is_some_and(|r| r < Duration::from_millis(500)) {
            out.wait = Some(Duration::ZERO);
            return out;
        }
        let now = vigil_core::now();
        let b = match claim(store, s, sender, group_wait, owner, now) {
            Ok(Claim::Idle) => return out,
            Ok(Claim::Wait(w)) => {
                out.wait = Some(w);
                return out;
            }
            Ok(Claim::Batch(b)) => b,
            Err(e) => {
                tracing::error!(channel = sender.name, "{e}");
                out.error = Some(e.to_string());
                out.wait = Some(Duration::from_secs(1));
                return out;
            }
        };
        let n = Notification {
            cluster: s.cluster.clone(),
            channel: sender.name.clone(),
            items: b.items.clone(),
        };
        let r = if n.items.is_empty() && !b.heartbeat && !sender.is_alertmanager() {
            Ok(crate::channel::Sent {
                reply: "nothing to send".into(),
            })
        } else {
            let limit = remaining.unwrap_or(Duration::MAX);
            match tokio::time::timeout(limit, sender.send(&n, &b.am)).await {
                Ok(r) => r,
                Err(_) => {
                    // The caller's budget ran out, not the channel: hand the
                    // rows back without counting a failure.
                    tracing::info!(
                        channel = sender.name,
                        "delivery budget used up; leaving the rest in the outbox"
                    );
                    if let Err(e) = release(store, &b.ids, owner) {
                        tracing::error!(channel = sender.name, "{e}");
                    }
                    out.wait = Some(Duration::ZERO);
                    return out;
                }
            }
        };
        match &r {
            Ok(sent) => {
                tracing::info!(
                    channel = sender.name,
                    items = b.items.len(),
                    reply = sent.reply,
                    "delivered"
                );
                out.messages += 1;
                out.items += b.ids.len() as u32;
            }
            Err(e) if e.permanent => {
                tracing::error!(
                    channel = sender.name,
                    items = b.ids.len(),
                    "not delivered, not retried: {e}"
                );
                out.error = Some(e.message.clone());
            }
            Err(e) => tracing::warn!(
                channel = sender.name,
                items = b.ids.len(),
                "delivery failed: {e}"
            ),
        }
        match finish(store, s, &sender.name, &b, &r, owner) {
            Ok(Some(delay)) => {
                out.error = r.err().map(|e| e.message);
                out.wait = Some(delay);
                return out;
            }
            Ok(None) => {}
            Err(e) => {
                tracing::error!(channel = sender.name, "recording the delivery: {e}");
                out.error = Some(e.to_string());
                out.wait = Some(Duration::from_secs(1));
                return out;
            }
        }
    }
}

/// Every configured channel plus the heartbeat, built once.
/// Each scrubs every configured secret from what its server says: a server
/// may echo any of them.
fn senders(s: &Settings) -> Result<Vec<Sender>, AlertError> {
    let redact = Arc::new(crate::redact::Redactor::from_settings(s));
    let mut v = s
        .channels()
        .map(|c| Sender::build(c).map(|x| x.redacting(redact.clone())))
        .collect::<Result<Vec<_>, _>>()?;
    if let Some(h) = &s.alert.heartbeat {
        v.push(Sender::heartbeat(h.clone())?.redacting(redact.clone()));
    }
    Ok(v)
}

/// How long [`run`] delivers: the one thing its callers choose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Until {
    /// Until `stop` turns true (`vigil-notify run`), grouping by `group_wait`.
    Stopped,
    /// Until nothing is due or `budget` is used up; what is left stays in
    /// the outbox. With `retry`, a channel whose backoff ends in time is
    /// tried again (`vigil-notify run --once`); without, a channel that fails
    /// or must wait is done (`deliver_pending`).
    Drained { budget: Duration, retry: bool },
}

/// How `run` runs and stops.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub until: Until,
    /// Called after every engine tick that reached the store (once a
    /// second, with [`Until::Stopped`]): vigil-notify pings systemd's
    /// watchdog from here, so a wedged runtime or store gets the service
    /// restarted.
    pub alive: Option<fn()>,
}

/// Delivery: one task per channel, plus (with [`Until::Stopped`]) the
/// engine's tick (reminders, ended silences, Alertmanager re-sends). Stops
/// cleanly when `stop` turns true: attempts in flight finish (each is
/// bounded by its timeout), nothing new starts.
pub async fn run(
    s: Arc<Settings>,
    opts: RunOptions,
    stop: watch::Receiver<bool>,
) -> Result<DeliveryReport, AlertError> {
    let owner = owner_id();
    let senders = senders(&s)?;
    {
        let mut st = Store::open(&s.state_dir)?;
        // Only vigil-notify knows every secret: it cleans what an older
        // version stored unscrubbed.
        match st.scrub(&crate::redact::Redactor::from_settings(&s)) {
            Ok(0) => {}
            Ok(n) => tracing::warn!(
                values = n,
                "removed secrets that earlier replies had left in the alert database"
            ),
            Err(e) => tracing::error!("scrubbing the alert database: {e}"),
        }
        st.write(|tx| crate::ledger::tick(tx, &s, vigil_core::now()))?;
        let _ = st.prune(vigil_core::now());
    }
    let (deadline, retry) = match opts.until {
        Until::Stopped => (None, true),
        Until::Drained { budget, retry } => (Some(tokio::time::Instant::now() + budget), retry),
    };
    let once = deadline.is_some();
    tracing::info!(channels = senders.len(), once, "vigil-notify delivering");
    let mut set = tokio::task::JoinSet::new();
    for sender in senders {
        let s = s.clone();
        let owner = owner.clone();
        let mut stop = stop.clone();
        set.spawn(async move {
            let mut report = DeliveryReport::default();
            let name = sender.name.clone();
            let mut st = match Store::open(&s.state_dir) {
                Ok(st) => st,
                Err(e) => {
                    report.failed.insert(name, e.to_string());
                    return report;
                }
            };
            let group_wait = if once {
                Duration::ZERO
            } else {
                s.alert.group_wait.get()
            };
            loop {
                if *stop.borrow() {
                    break;
                }
                let r = pass(&mut st, &s, &sender, group_wait, &owner, deadline).await;
                crate::stats::record(&name, r.messages, r.items, r.error.is_some());
                let wait = match (once, r.wait) {
                    // Drained (or nothing due): --once is done with this channel.
                    (true, None) => {
                        report.merge(&name, r);
                        break;
                    }
                    (true, Some(w)) => {
                        if !retry
                            || deadline.is_some_and(|d| {
                                tokio::time::Instant::now() + w + sender.timeout > d
                            })
                        {
                            report.merge(&name, r);
                            break;
                        }
                        w
                    }
                    // An idle channel polls; a waiting one looks again within 5s.
                    (false, w) => w
                        .unwrap_or(POLL)
                        .clamp(Duration::from_millis(50), Duration::from_secs(5)),
                };
                report.merge(&name, r);
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = stop.changed() => {}
                }
            }
            report
        });
    }
    // The engine tick: reminders, ended silences, Alertmanager re-sends.
    let tick = {
        let s = s.clone();
        let mut stop = stop.clone();
        let alive = opts.alive;
        tokio::spawn(async move {
            if once {
                return;
            }
            let mut st = match Store::open(&s.state_dir) {
                Ok(st) => st,
                Err(e) => {
                    tracing::error!("{e}");
                    return;
                }
            };
            let mut n: u64 = 0;
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = stop.changed() => {}
                }
                if *stop.borrow() {
                    break;
                }
                let now = vigil_core::now();
                match st.write(|tx| crate::ledger::tick(tx, &s, now)) {
                    Ok(_) => {
                        if let Some(f) = alive {
                            f();
                        }
                    }
                    Err(e) => tracing::error!("engine tick: {e}"),
                }
                n += 1;
                if n.is_multiple_of(3600) {
                    let _ = st.prune(now);
                }
            }
        })
    };
    let mut report = DeliveryReport::default();
    while let Some(j) = set.join_next().await {
        match j {
            Ok(r) => {
                for (k, v) in r.sent {
                    *report.sent.entry(k).or_default() += v;
                }
                for (k, v) in r.delivered_items {
                    *report.delivered_items.entry(k).or_default() += v;
                }
                report.failed.extend(r.failed);
            }
            Err(e) => tracing::error!("delivery task failed: {e}"),
        }
    }
    tick.abort();
    report.pending = Store::open(&s.state_dir)?.pending_counts()?;
    // Channels that ended with nothing pending did recover.
    report
        .failed
        .retain(|ch, _| report.pending.get(ch).copied().unwrap_or(0) > 0);
    Ok(report)
}

/// `vigil-notify test --channel NAME`: sends a test message right away
/// (not through the outbox) and returns the server's reply.
pub async fn test_channel(s: &Settings, name: &str) -> Result<String, AlertError> {
    let c = s.channel(name).ok_or_else(|| {
        AlertError::UnknownChannel(
            name.to_string(),
            s.channels()
                .map(|c| c.name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        )
    })?;
    let sender = Sender::build(c)?.redacting(Arc::new(crate::redact::Redactor::from_settings(s)));
    let now = vigil_core::now();
    let key = crate::model::AlertKey::new("vigil_test").label("channel", name);
    let alert = crate::model::AlertView {
        key: key.to_string(),
        name: key.name.clone(),
        labels: key.labels.clone(),
        source: crate::model::Source::Vigil,
        severity: crate::model::Severity::Warning,
        status: crate::model::Status::Firing,
        summary: format!("Test message from vigil to channel {name}; no action needed"),
        facts: vec![
            crate::model::Fact::new("Channel", name),
            crate::model::Fact::new("Host", hostname()),
        ],
        runbook: None,
        cluster: s.cluster.clone(),
        first_seen: vigil_core::rfc3339(now),
        last_seen: vigil_core::rfc3339(now),
        fired_at: Some(vigil_core::rfc3339(now)),
        resolved_at: None,
        cycle: 0,
    };
    let n = Notification {
        cluster: s.cluster.clone(),
        channel: name.to_string(),
        items: vec![Item {
            id: 0,
            event: Event::Test,
            alert,
        }],
    };
    sender
        .send(&n, &AmExtra::default())
        .await
        .map(|s| s.reply)
        .map_err(|e| AlertError::channel(name, e.message))
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}

impl crate::redact::Redactor {
    /// Every channel's webhook URL or SMTP password, Alertmanager user info
    /// and the heartbeat URL.
    pub fn from_settings(s: &Settings) -> Self {
        let mut r = Self::default();
        for c in s.channels() {
            crate::channel::kind(&c.settings).secrets(&mut r);
        }
        if let Some(h) = &s.alert.heartbeat {
            r.add(h.expose());
        }
        r
    }
}
