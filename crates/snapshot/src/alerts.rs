//! Raises a run's outcome records as alerts (see `vigil_alert::raise_run`).

use std::time::Duration;
use vigil_core::Config;

/// How long a oneshot job waits for channels before leaving the rest to `vigil-notify`.
pub const DELIVERY_BUDGET: Duration = Duration::from_secs(20);

pub async fn raise(cfg: &Config, jobs: &[&str], run_id: &str) {
    vigil_alert::raise_run(cfg, jobs, run_id, DELIVERY_BUDGET).await;
}
