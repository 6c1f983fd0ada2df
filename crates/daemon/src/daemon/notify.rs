//! Keeps `vigil-notify run` running while `[daemon] notify` is on, restarts
//! it on a reloaded config, and stops it at the last step of the shutdown.

use super::{reached, term, Live, Stop};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

pub async fn supervise(mut live: watch::Receiver<Arc<Live>>, mut stop: watch::Receiver<Stop>) {
    let mut backoff = Duration::from_secs(1);
    loop {
        if *stop.borrow() >= Stop::Jobs {
            return;
        }
        let now = live.borrow_and_update().clone();
        if !now.cfg.daemon_config().notify {
            // Wait for a reload that turns it on.
            tokio::select! {
                r = live.changed() => if r.is_err() { return },
                _ = reached(&mut stop, Stop::Jobs) => return,
            }
            continue;
        }
        let bin = now.bin("vigil-notify");
        let started = std::time::Instant::now();
        let child = tokio::process::Command::from(vigil_cli::tie::tied(&bin))
            .arg("--config")
            .arg(&now.config_path)
            .arg("run")
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn();
        let mut child = match child {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(
                    "cannot start {}: {e}; alerts wait in the outbox",
                    bin.display()
                );
                if pause(&mut backoff, &mut stop).await {
                    return;
                }
                continue;
            }
        };
        let pid = child.id();
        tracing::info!(pid = pid.unwrap_or_default(), "vigil-notify started");
        tokio::select! {
            st = child.wait() => {
                if *stop.borrow() != Stop::No {
                    return;
                }
                tracing::error!("vigil-notify ended ({st:?}); restarting in {backoff:?}");
                if started.elapsed() > Duration::from_secs(300) {
                    backoff = Duration::from_secs(1);
                }
                if pause(&mut backoff, &mut stop).await {
                    return;
                }
            }
            r = live.changed() => {
                if r.is_ok() {
                    tracing::info!("restarting vigil-notify on the reloaded config");
                    term(pid);
                    let _ = tokio::time::timeout(Duration::from_secs(30), child.wait()).await;
                    let _ = child.start_kill();
                }
            }
            // The jobs are done: their alerts may go out now. vigild bounds
            // this wait and drops this task (so the child) after it.
            _ = reached(&mut stop, Stop::Notify) => {
                term(pid);
                let _ = child.wait().await;
                return;
            }
        }
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
