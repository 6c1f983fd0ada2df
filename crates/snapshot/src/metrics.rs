//! Textfile-collector metrics of `vigil-snapshot run` and `scrub`
//! (see README "Metrics"). Written after the job, never failing it.

use crate::list;
use crate::run::RunReport;
use vigil_core::metrics::{self, Metrics};
use vigil_core::Config;

/// After `run`: per member, per sink and for the run as a whole.
pub fn publish_run(cfg: &Config, r: &RunReport) {
    let c = cfg.cluster_name();
    let mut m = Metrics::new();
    let cl = [("cluster", c)];
    m.flag(
        "vigil_snapshot_run_success",
        "1 if the last snapshot run succeeded for every member and sink",
        &cl,
        r.ok,
    );
    m.gauge(
        "vigil_snapshot_run_duration_seconds",
        "Wall time of the last snapshot run",
        &cl,
        r.duration_ms as f64 / 1000.0,
    );
    m.gauge(
        "vigil_snapshot_run_timestamp_seconds",
        "When the last snapshot run ended",
        &cl,
        metrics::now_seconds(),
    );
    if let Some(cons) = &r.consistency {
        m.flag(
            "vigil_snapshot_consistency_ok",
            "1 if the members agreed on hash_kv at a common revision",
            &cl,
            cons.ok,
        );
    }
    if let Some(t) = &r.rke2_token {
        m.flag(
            "vigil_snapshot_rke2_token_ok",
            "1 if the RKE2 server token was archived in the last run",
            &cl,
            t.ok,
        );
    }

    let entries = cfg
        .snapshot("vigil-snapshot")
        .map(|sc| list::local(&sc.dir))
        .unwrap_or_default();
    for mr in &r.members {
        let l = [("cluster", c), ("member", mr.member.as_str())];
        m.flag(
            "vigil_snapshot_member_success",
            "1 if the member's last snapshot was verified and stored",
            &l,
            mr.ok,
        );
        m.gauge(
            "vigil_snapshot_member_duration_seconds",
            "Time to snapshot, verify and store the member in the last run",
            &l,
            mr.duration_ms as f64 / 1000.0,
        );
        if let Some(man) = &mr.manifest {
            m.gauge(
                "vigil_snapshot_member_snapshot_bytes",
                "Bytes etcd streamed (database plus sha256 trailer)",
                &l,
                man.snapshot_size as f64,
            );
            m.gauge(
                "vigil_snapshot_member_archive_bytes",
                "Bytes of the compressed, encrypted archive",
                &l,
                man.archive_size as f64,
            );
            m.gauge(
                "vigil_snapshot_member_compression_ratio",
                "Snapshot bytes over archive bytes",
                &l,
                man.ratio(),
            );
            m.gauge(
                "vigil_snapshot_member_db_size_bytes",
                "etcd's database size as the member reported it",
                &l,
                man.db_size as f64,
            );
            m.gauge(
                "vigil_snapshot_member_revision",
                "etcd revision the last archive holds at least",
                &l,
                man.revision as f64,
            );
            if let Some(p) = &man.restore_proof {
                let proven = p.result == vigil_core::manifest::ProofResult::Proven;
                m.flag(
                    "vigil_snapshot_member_restore_proven",
                    "1 if the last archive was restored into a scratch etcd and matched the member (0: failed or skipped)",
                    &l,
                    proven,
                );
                if p.duration_ms > 0 {
                    m.gauge(
                        "vigil_snapshot_member_restore_proof_seconds",
                        "Time the last restore proof took (restore, start, checks)",
                        &l,
                        p.duration_ms as f64 / 1000.0,
                    );
                }
            }
        }
        let mine: Vec<_> = entries.iter().filter(|e| e.member == mr.member).collect();
        m.gauge(
            "vigil_snapshot_archives",
            "Archives of the cluster per member and store",
            &[
                ("cluster", c),
                ("member", mr.member.as_str()),
                ("sink", "local"),
            ],
            mine.len() as f64,
        );
        // The newest verified archive on the bastion is the last success:
        // it survives failed runs and a lost metrics file.
        if let Some(t) = mine
            .iter()
            .filter(|e| e.verified)
            .filter_map(|e| metrics::unix_seconds(&e.manifest.created_at))
            .reduce(f64::max)
        {
            m.gauge(
                "vigil_snapshot_member_last_success_timestamp_seconds",
                "When the newest verified archive of the member was taken",
                &l,
                t,
            );
        }
    }

    let prev = metrics::previous(
        &cfg.metrics,
        "snapshot",
        c,
        "vigil_snapshot_sink_last_success_timestamp_seconds",
    );
    for s in &r.sinks {
        let l = [("cluster", c), ("sink", s.sink.as_str())];
        m.flag(
            "vigil_snapshot_sink_success",
            "1 if every archive reached the sink in the last run",
            &l,
            s.ok,
        );
        m.gauge(
            "vigil_snapshot_sink_copies",
            "Verified copies of the cluster in the sink after the last run",
            &l,
            s.copies as f64,
        );
        m.gauge(
            "vigil_snapshot_sink_shipped",
            "Archives shipped late (catch-up or tape) in the last run",
            &l,
            s.shipped.len() as f64,
        );
        m.gauge(
            "vigil_snapshot_sink_pruned",
            "Archives pruned from the sink in the last run",
            &l,
            s.pruned.len() as f64,
        );
        m.gauge(
            "vigil_snapshot_sink_locked",
            "Archives retention would prune that an S3 Object Lock still holds",
            &l,
            s.locked.len() as f64,
        );
        m.gauge(
            "vigil_snapshot_sink_left_to_lifecycle",
            "Archives retention would prune that this key may not delete (left to lifecycle rules)",
            &l,
            s.left.len() as f64,
        );
        m.gauge(
            "vigil_snapshot_sink_errors",
            "Errors of the sink in the last run",
            &l,
            s.errors.len() as f64,
        );
        let last = if s.ok {
            Some(metrics::now_seconds())
        } else {
            prev.iter()
                .find(|(pl, _)| pl.iter().any(|(k, v)| k == "sink" && v == &s.sink))
                .map(|(_, v)| *v)
        };
        if let Some(t) = last {
            m.gauge(
                "vigil_snapshot_sink_last_success_timestamp_seconds",
                "When the sink last held every archive",
                &l,
                t,
            );
        }
    }
    metrics::publish(&cfg.metrics, "snapshot", c, &m);
}

/// After `scrub`: per store, archives checked and problems found.
pub fn publish_scrub(cfg: &Config, results: &[crate::scrub::Scrubbed]) {
    let c = cfg.cluster_name();
    let mut m = Metrics::new();
    let prev = metrics::previous(
        &cfg.metrics,
        "scrub",
        c,
        "vigil_scrub_last_success_timestamp_seconds",
    );
    m.gauge(
        "vigil_scrub_timestamp_seconds",
        "When the last scrub ended",
        &[("cluster", c)],
        metrics::now_seconds(),
    );
    for r in results {
        let (store, n, errors) = (&r.store, r.checked, &r.errors);
        let l = [("cluster", c), ("sink", store.as_str())];
        m.gauge(
            "vigil_scrub_checked_archives",
            "Archives re-read and checked in the last scrub",
            &l,
            n as f64,
        );
        m.gauge(
            "vigil_scrub_problems",
            "Problems the last scrub found",
            &l,
            errors.len() as f64,
        );
        let last = if errors.is_empty() {
            Some(metrics::now_seconds())
        } else {
            prev.iter()
                .find(|(pl, _)| pl.iter().any(|(k, v)| k == "sink" && v == store))
                .map(|(_, v)| *v)
        };
        if let Some(t) = last {
            m.gauge(
                "vigil_scrub_last_success_timestamp_seconds",
                "When a scrub of the store last found no problem",
                &l,
                t,
            );
        }
    }
    metrics::publish(&cfg.metrics, "scrub", c, &m);
}
