//! vigil-quota: CephFS subvolume and group usage against their quotas, with
//! a growth forecast, raised through the alert engine (source `quota`).
//!
//! - [`ceph`]: the `ceph` CLI backend (JSON, bounded concurrency);
//! - [`xattr`]: the mounted-CephFS backend (`ceph.quota.max_bytes`, `ceph.dir.rbytes`);
//! - [`rules`]: thresholds, overrides by glob, levels;
//! - [`history`]: usage samples in `<state.dir>/quota.db` and the forecast;
//! - [`alerts`]: rows to check results; [`report`]: table and JSON.

pub mod alerts;
pub mod ceph;
pub mod history;
pub mod metrics;
pub mod model;
pub mod report;
pub mod rules;
pub mod xattr;

use model::Collected;
use report::{Report, Row};
use vigil_core::config::{QuotaBackend, QuotaConfig};
use vigil_core::Config;

#[derive(Debug, thiserror::Error)]
pub enum QuotaError {
    #[error("`{argv}` failed: {message}")]
    Ceph { argv: String, message: String },
    #[error("`{argv}` returned JSON vigil does not understand: {message}")]
    Parse { argv: String, message: String },
    #[error("{0}")]
    Unreachable(String),
    #[error(transparent)]
    History(#[from] history::HistoryError),
    #[error("raising quota alerts: {0}")]
    Alert(#[from] vigil_alert::AlertError),
}

/// Reads every entry with the configured backend. An error means nothing
/// could be read (the cluster or the mount is unreachable).
pub async fn collect(q: &QuotaConfig) -> Result<Collected, QuotaError> {
    match q.backend {
        QuotaBackend::Ceph => {
            ceph::Ceph::from_config(q)
                .collect(&q.volumes, q.check_groups)
                .await
        }
        QuotaBackend::Xattr => {
            let mounts: Vec<(String, std::path::PathBuf)> = q
                .xattr
                .mounts
                .iter()
                .filter(|(v, _)| q.volumes.is_empty() || q.volumes.contains(v))
                .map(|(v, p)| (v.clone(), p.clone()))
                .collect();
            if q.xattr.probe {
                let vols: Vec<String> = mounts.iter().map(|(v, _)| v.clone()).collect();
                ceph::Ceph::from_config(q).mds_active(&vols).await?;
            }
            let (groups, timeout) = (q.check_groups, q.timeout.get());
            tokio::task::spawn_blocking(move || xattr::collect(mounts, groups, timeout))
                .await
                .map_err(|e| QuotaError::Unreachable(format!("internal: {e}")))?
        }
    }
}

/// Entries known from earlier runs but gone now, in volumes read completely.
fn vanished(
    hist: &history::History,
    c: &Collected,
) -> Result<Vec<(String, String, Option<String>)>, QuotaError> {
    let mut out = Vec::new();
    for v in &c.complete_volumes {
        for (g, s) in hist.known(v)? {
            let present = c
                .entries
                .iter()
                .any(|e| &e.volume == v && e.group == g && e.subvolume == s);
            if !present {
                hist.forget(v, &g, s.as_deref())?;
                out.push((v.clone(), g, s));
            }
        }
    }
    Ok(out)
}

/// Checks now: read, record history, forecast, decide levels. No alerts.
/// Also returns the entries that vanished since the last run.
pub async fn check(
    cfg: &Config,
) -> Result<(Report, Vec<(String, String, Option<String>)>), QuotaError> {
    let q = cfg.quota().into_owned();
    let now = vigil_core::now();
    let mut c = match collect(&q).await {
        Ok(c) => c,
        Err(e) => {
            tracing::error!("could not check CephFS quotas: {e}");
            Collected {
                errors: vec![e.to_string()],
                ..Default::default()
            }
        }
    };
    c.entries.retain(|e| !rules::limits(&q, e).ignore);
    for e in &c.errors {
        tracing::warn!("could not check: {e}");
    }
    let now_ms = (now.unix_timestamp_nanos() / 1_000_000) as i64;
    let mut hist = history::History::open(&cfg.state.dir)?;
    hist.record(&c.entries, now_ms, q.history_keep.get())?;
    let gone = vanished(&hist, &c)?;
    let since = now_ms - q.forecast_window.get().as_millis() as i64;
    let mut rows = Vec::new();
    let mut ok = c.errors.is_empty();
    for e in &c.entries {
        let l = rules::limits(&q, e);
        let level = rules::level(e, &l);
        let forecast = if e.used.is_some() {
            let s = hist.samples(e, since)?;
            history::forecast(
                &s,
                now_ms as f64 / 1000.0,
                e.quota,
                q.forecast_min_samples as usize,
                q.forecast_min_span.get().as_secs_f64(),
            )
        } else {
            None
        };
        let soon = l.forecast_days > 0.0
            && forecast
                .and_then(|f| f.days_to_full)
                .is_some_and(|d| d < l.forecast_days);
        if level.is_problem() || soon {
            ok = false;
        }
        rows.push(Row {
            volume: e.volume.clone(),
            group: e.group.clone(),
            subvolume: e.subvolume.clone(),
            kind: if e.is_group() { "group" } else { "subvolume" },
            state: e.state.clone(),
            used: e.used,
            quota: e.quota,
            percentage: e.percent().map(|p| (p * 100.0).round() / 100.0),
            status: level,
            warn_percent: l.warn_percent,
            critical_percent: l.critical_percent,
            forecast_days: l.forecast_days,
            forecast,
        });
    }
    Ok((
        Report {
            backend: q.backend.to_string(),
            time: vigil_core::rfc3339(now),
            ok,
            errors: c.errors,
            rows,
        },
        gone,
    ))
}

/// `vigil-quota run`: check, raise the results as alerts and queue their
/// notifications for vigil-notify (the job itself delivers nothing).
pub async fn run(cfg: &Config) -> Result<Report, QuotaError> {
    let (report, gone) = check(cfg).await?;
    let results = alerts::results(&report, &gone);
    vigil_alert::raise(cfg, "quota", &results, vigil_alert::OnAlertError::Fail)?;
    Ok(report)
}

/// The quota part of `check-config`.
pub fn summary(cfg: &Config) -> String {
    use std::fmt::Write;
    let q = cfg.quota();
    let mut s = String::new();
    let _ = writeln!(
        s,
        "quota: backend {}, volumes {}, warning {}%, critical {}%, flag_unlimited {}, groups {}, forecast {} days over {} ({} samples spanning {} min), history {}/{} kept {}",
        q.backend,
        if q.volumes.is_empty() { "all".to_string() } else { q.volumes.join(",") },
        q.warn_percent,
        q.critical_percent,
        q.flag_unlimited,
        q.check_groups,
        q.forecast_days,
        q.forecast_window,
        q.forecast_min_samples,
        q.forecast_min_span,
        cfg.state.dir.display(),
        history::DB_FILE,
        q.history_keep
    );
    let c = &q.ceph;
    let _ =
        writeln!(
        s,
        "  ceph: {} conf {} keyring {} id {} connect_timeout {}, timeout {} per call, {} at once",
        c.bin.display(),
        c.conf.as_ref().map(|p| p.display().to_string()).unwrap_or("(default)".into()),
        c.keyring.as_ref().map(|p| p.display().to_string()).unwrap_or("(default)".into()),
        c.client_id.as_deref().unwrap_or("(admin)"),
        c.connect_timeout,
        q.timeout,
        q.concurrency
    );
    for (v, p) in &q.xattr.mounts {
        let _ = writeln!(s, "  xattr: volume {v} mounted at {}", p.display());
    }
    for r in q.rule.iter().map(|r| r.get_ref()) {
        let _ = writeln!(
            s,
            "  rule volume {} group {} subvolume {}: warning {:?} critical {:?} flag_unlimited {:?} forecast_days {:?}{}",
            r.volume.as_deref().unwrap_or("*"),
            r.group.as_deref().unwrap_or("*"),
            r.subvolume.as_deref().unwrap_or("*"),
            r.warn_percent,
            r.critical_percent,
            r.flag_unlimited,
            r.forecast_days,
            if r.ignore { " IGNORED" } else { "" }
        );
    }
    s
}
