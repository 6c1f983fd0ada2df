//! Textfile-collector metrics of a health round: one-hot check states and
//! the round's duration (see README "Metrics"). Never fails the round.

use crate::{Report, Status};
use vigil_core::metrics::{self, CheckState, Metrics};
use vigil_core::Config;

pub fn publish(cfg: &Config, r: &Report) {
    let c = cfg.cluster_name();
    let mut m = Metrics::new();
    let cl = [("cluster", c)];
    m.gauge(
        "vigil_health_round_duration_seconds",
        "Wall time of the last health round",
        &cl,
        r.duration_ms as f64 / 1000.0,
    );
    m.gauge(
        "vigil_health_round_timestamp_seconds",
        "When the last health round ended",
        &cl,
        metrics::now_seconds(),
    );
    for f in &r.findings {
        let s = match f.status {
            Status::Pass => CheckState::Pass,
            Status::Fail => CheckState::Fail,
            Status::Unknown => CheckState::Unknown,
        };
        metrics::check_state(&mut m, c, "health", &f.check, &f.subject, s);
    }
    metrics::publish(&cfg.metrics, "health", c, &m);
}
