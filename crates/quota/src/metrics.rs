//! Textfile-collector metrics of a quota run: used bytes, quota, ratio and
//! forecast per subvolume (and group), and whether Ceph could be read.

use crate::report::Report;
use vigil_core::metrics::{self, Metrics};
use vigil_core::Config;

pub fn publish(cfg: &Config, r: &Report) {
    let c = cfg.cluster_name();
    let mut m = Metrics::new();
    let cl = [("cluster", c)];
    m.flag(
        "vigil_quota_check_ok",
        "1 if Ceph could be read on the last quota run",
        &cl,
        !r.unknown(),
    );
    m.gauge(
        "vigil_quota_run_timestamp_seconds",
        "When the last quota run ended",
        &cl,
        metrics::now_seconds(),
    );
    for row in &r.rows {
        let Some(used) = row.used else { continue };
        let sub = match &row.subvolume {
            Some(s) => format!("{}/{s}", row.group),
            None => row.group.clone(),
        };
        let full_in = row
            .forecast
            .and_then(|f| f.days_to_full)
            .map(|d| d * 86400.0);
        metrics::quota(
            &mut m,
            c,
            &row.volume,
            &sub,
            used as f64,
            row.quota.map(|q| q as f64),
            full_in,
        );
    }
    metrics::publish(&cfg.metrics, "quota", c, &m);
}
