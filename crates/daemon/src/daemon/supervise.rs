//! The long-running programs vigild keeps beside the jobs (`vigil-notify
//! run`, `vigil-journal run`): each runs while the config in force wants it,
//! is restarted with a backoff when it dies and on a reloaded config, and
//! gets SIGTERM at its own step of the shutdown.

use super::{death, reached, term, Live, Stop};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// One program vigild keeps running.
#[derive(Debug, Clone, Copy)]
pub struct Program {
    /// The binary in `daemon.bin_dir`, its name in logs and, under systemd,
    /// its unit's (`vigil-notify`).
    pub name: &'static str,
    pub args: &'static [&'static str],
    /// Whether the config in force wants it running.
    pub enabled: fn(&Live) -> bool,
    /// The shutdown step at which it gets SIGTERM. Before [`Stop::Kill`], it
    /// is killed at that step if still running, like the jobs; after it,
    /// vigild bounds the wait itself.
    pub stop_at: Stop,
    /// What is missing while it does not run, for the log.
    pub down: &'static str,
    /// A death of its own raises `job_unit_failed` for its unit, as
    /// `OnFailure=` does under systemd.
    pub report_death: bool,
}

fn notify_enabled(l: &Live) -> bool {
    l.cfg.daemon_config().notify
}

fn journal_enabled(l: &Live) -> bool {
    l.cfg.journal.is_some() && l.cfg.daemon_config().journal
}

/// `[daemon] notify`: stopped last, once the jobs are gone, so that their
/// alerts still go out. Its deaths are not reported: it is the reporter.
pub const NOTIFY: Program = Program {
    name: "vigil-notify",
    args: &["run"],
    enabled: notify_enabled,
    stop_at: Stop::Notify,
    down: "alerts wait in the outbox",
    report_death: false,
};

/// `[daemon] journal`, with a `[journal]` section: stopped with the jobs
/// (SIGTERM closes and ships its open segment), killed with them at the
/// shutdown deadline.
pub const JOURNAL: Program = Program {
    name: "vigil-journal",
    args: &["run"],
    enabled: journal_enabled,
    stop_at: Stop::Jobs,
    down: "no change is journaled meanwhile",
    report_death: true,
};

pub async fn supervise(
    p: Program,
    mut live: watch::Receiver<Arc<Live>>,
    mut stop: watch::Receiver<Stop>,
) {
    let mut backoff = Duration::from_secs(1);
    loop {
        if *stop.borrow() >= Stop::Jobs {
            return;
        }
        let now = live.borrow_and_update().clone();
        if !(p.enabled)(&now) {
            // Wait for a reload that turns it on.
            tokio::select! {
                r = live.changed() => if r.is_err() { return },
                _ = reached(&mut stop, Stop::Jobs) => return,
            }
            continue;
        }
        let bin = now.bin(p.name);
        let started = std::time::Instant::now();
        let child = tied(&bin)
            .arg("--config")
            .arg(&now.config_path)
            .args(p.args)
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn();
        let mut child = match child {
            Ok(c) => c,
            Err(e) => {
                tracing::error!("cannot start {}: {e}; {}", bin.display(), p.down);
                if pause(&mut backoff, &mut stop).await {
                    return;
                }
                continue;
            }
        };
        let pid = child.id();
        tracing::info!(pid = pid.unwrap_or_default(), "{} started", p.name);
        tokio::select! {
            st = child.wait() => {
                if *stop.borrow() != Stop::No {
                    return;
                }
                if started.elapsed() > Duration::from_secs(300) {
                    backoff = Duration::from_secs(1);
                }
                tracing::error!("{} ended ({st:?}); {}; restarting in {backoff:?}", p.name, p.down);
                if let (true, Ok(st)) = (p.report_death, &st) {
                    death::report(&now, p.name, p.name, st).await;
                }
                if pause(&mut backoff, &mut stop).await {
                    return;
                }
            }
            r = live.changed() => {
                if r.is_ok() {
                    tracing::info!("restarting {} on the reloaded config", p.name);
                    term(pid);
                    let _ = tokio::time::timeout(Duration::from_secs(30), child.wait()).await;
                    let _ = child.start_kill();
                }
            }
            _ = reached(&mut stop, p.stop_at) => {
                tracing::info!(pid, "{}: sending SIGTERM", p.name);
                term(pid);
                tokio::select! {
                    _ = child.wait() => {}
                    // Dropping this task (vigild bounds the wait of a program
                    // stopped after the kill step) drops the child, which kills it.
                    _ = reached(&mut stop, Stop::Kill), if p.stop_at < Stop::Kill => {
                        tracing::error!(pid, "{} still running at the shutdown deadline; killed", p.name);
                        let _ = child.start_kill();
                        let _ = child.wait().await;
                    }
                }
                return;
            }
        }
    }
}

/// A command for `bin` that dies with vigild. Unit tests start it untied:
/// their `/proc/self/exe` is the test harness, which has no tied-exec mode.
fn tied(bin: &std::path::Path) -> tokio::process::Command {
    if cfg!(test) {
        tokio::process::Command::new(bin)
    } else {
        tokio::process::Command::from(vigil_cli::tie::tied(bin))
    }
}

/// Sleeps the backoff and doubles it (up to a minute); true when the
/// shutdown began meanwhile.
async fn pause(backoff: &mut Duration, stop: &mut watch::Receiver<Stop>) -> bool {
    let d = *backoff;
    *backoff = (d * 2).min(Duration::from_secs(60));
    tokio::select! {
        _ = tokio::time::sleep(d) => false,
        _ = reached(stop, Stop::Jobs) => true,
    }
}
