//! Turns this run's outcome records into alerts (and resolutions) and tries
//! to deliver them right away; what is not delivered stays in the outbox for
//! `vigil-notify run`.

use std::time::Duration;
use vigil_core::outcome;
use vigil_core::Config;

/// Raises the outcomes of `run_id` for each job. Alerting problems are
/// logged, never turned into a failed backup.
pub async fn raise(cfg: &Config, jobs: &[&str], run_id: &str) {
    for job in jobs {
        let records: Vec<_> = outcome::latest(&cfg.state.dir, job)
            .into_iter()
            .filter(|o| o.run_id == run_id)
            .collect();
        if records.is_empty() {
            continue;
        }
        match vigil_alert::ingest_outcomes(cfg, job, &records) {
            Ok(r) => {
                for k in &r.fired {
                    tracing::warn!("alert firing: {k}");
                }
                for k in &r.resolved {
                    tracing::info!("alert resolved: {k}");
                }
            }
            Err(e) => tracing::error!("recording {job} outcomes for alerting: {e}"),
        }
    }
    match vigil_alert::deliver_pending(cfg, Duration::from_secs(20)).await {
        Ok(r) => {
            for (ch, e) in &r.failed {
                tracing::warn!(channel = %ch, "alert delivery failed, left in the outbox for vigil-notify: {e}");
            }
        }
        Err(e) => tracing::error!("delivering alerts: {e}"),
    }
}
