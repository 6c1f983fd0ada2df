//! vigil's alert engine: check results and job outcomes become alerts with
//! thresholds, silences and reminders; transitions go to a durable SQLite
//! outbox; `vigil-notify` delivers it to Slack, Teams, email, Alertmanager
//! and files.
//!
//! The entry points for the jobs:
//! - [`ingest_outcomes`] / [`raise_run`]: after a job wrote its outcome records;
//! - [`ingest`]: for checks that produce [`CheckResult`]s directly (health, quota).
//!
//! # Who delivers
//!
//! The oneshot jobs (`vigil-snapshot`, `vigil-restore drill`, `vigil-health`,
//! `vigil-quota`) only *queue*: they commit the transition and its outbox
//! rows in `<state.dir>/alerts.db` and exit, and never open a channel's
//! secret (least privilege: a job's unit needs no webhook URL or SMTP
//! password). `vigil-notify run` (its own service, or kept running by
//! `vigild` with `[daemon] notify = true`) is the only deliverer: every
//! channel looks at the outbox every half second, so an alert leaves within
//! `alert.group_wait` plus well under a second. While vigil-notify is down
//! nothing is lost; the rows wait, and `vigil-notify status` shows them.
//! [`deliver_pending`] is a bounded delivery pass for vigil-notify's tooling
//! and tests, not for the jobs.
//!
//! Delivery guarantees (at most once per channel and transition in normal
//! operation, at least once after a crash) are described in [`deliver`].

pub mod channel;
pub mod deliver;
pub mod engine;
pub mod ledger;
pub mod model;
pub mod outcomes;
pub mod redact;
pub mod render;
pub mod stats;
pub mod store;
pub mod unit;

use engine::{Settings, Transition};
use model::{CheckResult, Event};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use vigil_core::outcome::Outcome;
use vigil_core::Config;

pub use deliver::{DeliveryReport, RunOptions, Until};
pub use model::{AlertKey, Fact, Severity, Source};
pub use store::Store;

/// Errors of the alert library. None of them carries a secret.
#[derive(Debug, thiserror::Error)]
pub enum AlertError {
    #[error("alert state database {path}: {source}; please check that state.dir is writable and not on a network filesystem")]
    Db {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error(transparent)]
    Fs(#[from] vigil_core::fsutil::FsError),
    #[error("no alert channel named {0:?}; configured channels: {1}")]
    UnknownChannel(String, String),
    /// A delivery that failed; the message is the server's, scrubbed of secrets.
    #[error("alert channel {channel}: {message}")]
    Channel { channel: String, message: String },
    #[error("alert channel {channel}")]
    Build {
        channel: String,
        #[source]
        source: channel::BuildError,
    },
    #[error("no active silence with id {0:?}; `vigil-notify silence list` shows them")]
    SilenceNotFound(String),
}

impl AlertError {
    pub(crate) fn db(path: &Path, source: rusqlite::Error) -> Self {
        Self::Db {
            path: path.to_path_buf(),
            source,
        }
    }
    pub(crate) fn build(name: &str, source: channel::BuildError) -> Self {
        Self::Build {
            channel: name.to_string(),
            source,
        }
    }
    pub(crate) fn channel(name: &str, message: impl Into<String>) -> Self {
        Self::Channel {
            channel: name.to_string(),
            message: message.into(),
        }
    }
}

/// What an ingest did.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct IngestReport {
    /// Check results applied.
    pub results: usize,
    /// Keys that started firing.
    pub fired: Vec<String>,
    /// Keys that resolved.
    pub resolved: Vec<String>,
    /// Keys failing but still below their failure threshold.
    pub pending: Vec<String>,
    /// Outbox rows queued (messages to channels, heartbeat pings).
    pub queued: usize,
    /// Whether a heartbeat ping was queued.
    pub heartbeat: bool,
}

/// Applies check results from one run of `job` in one transaction, queues
/// the notifications they cause and, if every result is good and
/// `alert.heartbeat_url` is set, a heartbeat ping.
pub fn ingest(
    cfg: &Config,
    job: &str,
    results: &[CheckResult],
) -> Result<IngestReport, AlertError> {
    let s = Settings::from_config(cfg);
    ingest_with(&s, job, results, vigil_core::now())
}

pub(crate) fn ingest_with(
    s: &Settings,
    job: &str,
    results: &[CheckResult],
    now: time::OffsetDateTime,
) -> Result<IngestReport, AlertError> {
    let mut store = Store::open(&s.state_dir)?;
    let report = store.write(|tx| {
        let before = store::rows::last_outbox_id(tx)?;
        let mut rep = IngestReport {
            results: results.len(),
            ..Default::default()
        };
        for r in results {
            match ledger::apply(tx, s, r, now)? {
                Transition::Fired => rep.fired.push(r.key.to_string()),
                Transition::Resolved => rep.resolved.push(r.key.to_string()),
                Transition::Pending => rep.pending.push(r.key.to_string()),
                Transition::None => {}
            }
        }
        ledger::tick(tx, s, now)?;
        if s.alert.heartbeat.is_some() && !results.is_empty() && results.iter().all(|r| r.ok) {
            let pending = store::rows::unsent(tx, engine::HEARTBEAT_CHANNEL, None)?;
            // One waiting ping is enough: it says "alive" whenever it arrives.
            if pending == 0 {
                let payload =
                    serde_json::json!({ "job": job, "time": vigil_core::rfc3339(now) }).to_string();
                store::rows::enqueue(
                    tx,
                    engine::HEARTBEAT_CHANNEL,
                    None,
                    Event::Heartbeat,
                    &payload,
                    now,
                )?;
            }
            rep.heartbeat = true;
        }
        let after = store::rows::last_outbox_id(tx)?;
        rep.queued = (after - before).max(0) as usize;
        Ok(rep)
    })?;
    if !report.fired.is_empty() || !report.resolved.is_empty() {
        tracing::info!(job, fired = ?report.fired, resolved = ?report.resolved, queued = report.queued, "alert transitions");
    }
    Ok(report)
}

/// Turns the outcome records of one run of `job` (`snapshot`, `sink`,
/// `drill`, ...) into alerts: a failure fires, a success resolves. See
/// [`outcomes`] for the mapping. Safe to call from several processes at once.
pub fn ingest_outcomes(
    cfg: &Config,
    job: &str,
    outcomes: &[Outcome],
) -> Result<IngestReport, AlertError> {
    ingest(cfg, job, &outcome_results(cfg, outcomes))
}

fn outcome_results(cfg: &Config, outcomes: &[Outcome]) -> Vec<CheckResult> {
    outcomes
        .iter()
        .flat_map(|o| outcomes::results(cfg, o))
        .collect()
}

/// One delivery pass over the outbox, every channel in parallel, giving up
/// after `budget`; whatever is not delivered stays for `vigil-notify run`.
/// Channels in backoff (after failures or a 429) are skipped. Jobs do not
/// call this: they only queue (see the crate documentation).
pub async fn deliver_pending(cfg: &Config, budget: Duration) -> Result<DeliveryReport, AlertError> {
    let opts = RunOptions {
        until: Until::Drained {
            budget,
            retry: false,
        },
        alive: None,
    };
    // Held until the pass ends: nothing stops it but its budget.
    let (_stop, stop) = tokio::sync::watch::channel(false);
    deliver::run(Arc::new(Settings::from_config(cfg)), opts, stop).await
}

/// Logs, at info, what a job left in the outbox for vigil-notify.
pub fn log_queued(job: &str, queued: usize) {
    if queued > 0 {
        tracing::info!(
            job,
            queued,
            "{queued} alert notification(s) queued for vigil-notify"
        );
    }
}

/// What a failure to record alerts means for the job that raised them:
/// the one thing in which the jobs differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnAlertError {
    /// Logged; the job's own result stands. Its outcome records are
    /// written already (`vigil-notify ingest --job` raises them again).
    Log,
    /// Returned: the job fails with it (health and quota, whose findings
    /// are the alerts).
    Fail,
}

/// What a job does after a run: apply its `results` to the alert state,
/// queue the notifications for `vigil-notify` (which delivers them), and
/// log what fired, resolved and was queued.
pub fn raise(
    cfg: &Config,
    job: &str,
    results: &[CheckResult],
    on_error: OnAlertError,
) -> Result<IngestReport, AlertError> {
    let r = raise_quietly(cfg, job, results, on_error)?;
    log_queued(job, r.queued);
    Ok(r)
}

/// [`raise`] without the "queued" line (callers that raise several jobs
/// log one).
fn raise_quietly(
    cfg: &Config,
    job: &str,
    results: &[CheckResult],
    on_error: OnAlertError,
) -> Result<IngestReport, AlertError> {
    match ingest(cfg, job, results) {
        Ok(r) => {
            for k in &r.fired {
                tracing::warn!("alert firing: {k}");
            }
            for k in &r.resolved {
                tracing::info!("alert resolved: {k}");
            }
            Ok(r)
        }
        Err(e) if on_error == OnAlertError::Log => {
            tracing::error!("recording {job} results for alerting: {e}");
            Ok(IngestReport::default())
        }
        Err(e) => Err(e),
    }
}

/// What a oneshot job does after it ran: turn the outcome records of
/// `run_id` (for each of `jobs`) into alerts and resolutions and queue their
/// notifications for `vigil-notify`, which delivers them. Returns the number
/// of outbox rows queued. Problems are logged, never turned into a failed job.
pub fn raise_run(cfg: &Config, jobs: &[Source], run_id: &str) -> usize {
    let mut queued = 0;
    for job in jobs {
        let records: Vec<Outcome> = vigil_core::outcome::latest(&cfg.state.dir, *job)
            .into_iter()
            .filter(|o| o.run_id == run_id)
            .collect();
        if records.is_empty() {
            continue;
        }
        let results = outcome_results(cfg, &records);
        // Never an error with Log.
        if let Ok(r) = raise_quietly(cfg, job.as_str(), &results, OnAlertError::Log) {
            queued += r.queued;
        }
    }
    let names: Vec<&str> = jobs.iter().map(|j| j.as_str()).collect();
    log_queued(&names.join("+"), queued);
    queued
}

/// The alert part of `check-config`: routing, thresholds and windows, no secrets.
pub fn summary(cfg: &Config) -> String {
    use std::fmt::Write;
    let a = &cfg.alert;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "alerting: state {}/{}, group_wait {}, repeat_interval {}, send_resolved {}, retry {}..{}",
        cfg.state.dir.display(),
        store::DB_FILE,
        a.group_wait,
        a.repeat_interval,
        a.send_resolved,
        a.retry_min,
        a.retry_max
    );
    for c in &a.channel {
        let target = channel::kind(&c.settings).target();
        let _ = writeln!(
            s,
            "  channel {} ({}): {target}; min_severity {}, sources {}",
            c.name,
            c.kind().as_str(),
            c.min_severity.map(|m| m.as_str()).unwrap_or("warning"),
            if c.sources.is_empty() {
                "all".to_string()
            } else {
                c.sources
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(",")
            }
        );
    }
    if a.heartbeat.is_some() {
        let _ = writeln!(s, "  heartbeat: <redacted> after every successful job");
    }
    if a.watchdog {
        let _ = writeln!(
            s,
            "  watchdog: VigilWatchdog always firing to alertmanager channels"
        );
    }
    for r in &a.rule {
        let _ = writeln!(
            s,
            "  rule {}: failure_threshold {:?}, success_threshold {:?}, repeat {:?}, severity {:?}",
            r.alert, r.failure_threshold, r.success_threshold, r.repeat_interval, r.severity
        );
    }
    for m in &a.maintenance {
        let _ = writeln!(
            s,
            "  maintenance {} .. {} match {:?} ({})",
            vigil_core::rfc3339(m.start),
            vigil_core::rfc3339(m.end),
            m.matchers,
            m.reason
        );
    }
    s
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
