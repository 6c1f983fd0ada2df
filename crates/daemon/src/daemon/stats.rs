//! vigild's own metrics file: starts, skips and the last exit per job.

use std::collections::BTreeMap;
use vigil_core::metrics::{self, Metrics};
use vigil_core::Config;

/// Per-job counters.
#[derive(Debug, Default, Clone)]
pub struct JobStats {
    pub started: u64,
    pub skipped: u64,
    pub last_exit: Option<i32>,
    pub last_end: Option<f64>,
    pub last_duration: Option<f64>,
}

/// Every job's counters, by job name.
pub type Stats = BTreeMap<&'static str, JobStats>;

/// Writes `vigil_daemon_<cluster>.prom`.
pub fn publish(cfg: &Config, stats: &Stats) {
    let c = cfg.cluster_name();
    let mut m = Metrics::new();
    for (job, s) in stats {
        // `vigil_job`, since Prometheus owns `job` (the scrape job).
        let l = [("cluster", c), ("vigil_job", *job)];
        m.counter(
            "vigil_daemon_job_started_total",
            "Job runs vigild started",
            &l,
            s.started as f64,
        );
        m.counter(
            "vigil_daemon_job_skipped_total",
            "Scheduled runs skipped because the previous run was still going",
            &l,
            s.skipped as f64,
        );
        if let Some(e) = s.last_exit {
            m.gauge(
                "vigil_daemon_job_last_exit_code",
                "Exit code of the job's last run (-1: killed by a signal)",
                &l,
                f64::from(e),
            );
        }
        if let Some(t) = s.last_end {
            m.gauge(
                "vigil_daemon_job_last_end_timestamp_seconds",
                "When the job's last run ended",
                &l,
                t,
            );
        }
        if let Some(d) = s.last_duration {
            m.gauge(
                "vigil_daemon_job_last_duration_seconds",
                "How long the job's last run took",
                &l,
                d,
            );
        }
    }
    metrics::publish(&cfg.metrics, "daemon", c, &m);
}
