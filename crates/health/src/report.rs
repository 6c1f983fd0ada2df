//! The readable table of `vigil-health run` (JSON is the serialized report).

use crate::{Report, Status};
use std::fmt::Write;

/// One line per finding, grouped as they ran; then a summary line.
pub fn human(r: &Report) -> String {
    let mut s = String::new();
    let wc = r
        .findings
        .iter()
        .map(|f| f.check.len())
        .max()
        .unwrap_or(5)
        .max(5);
    let ws = r
        .findings
        .iter()
        .map(|f| f.subject.chars().count())
        .max()
        .unwrap_or(7)
        .clamp(7, 48);
    let _ = writeln!(
        s,
        "{:<8} {:<8} {:<wc$} {:<ws$} REASON",
        "STATUS", "SEVERITY", "CHECK", "SUBJECT"
    );
    for f in &r.findings {
        let sev = match f.status {
            Status::Pass => "-".to_string(),
            Status::Unknown => "-".to_string(),
            Status::Fail => f.severity.to_string(),
        };
        let mut reason = f.reason.clone();
        if let Some(by) = &f.covered_by {
            let _ = write!(reason, " (see {by})");
        }
        let _ = writeln!(
            s,
            "{:<8} {:<8} {:<wc$} {:<ws$} {}",
            f.status.as_str(),
            sev,
            f.check,
            f.subject,
            reason
        );
        if f.status != Status::Pass {
            if let Some(d) = &f.detail {
                for l in d.lines().take(30) {
                    let _ = writeln!(s, "{:>18}| {l}", "");
                }
            }
        }
    }
    let _ = writeln!(
        s,
        "cluster {}: {} pass, {} fail, {} unknown in {} ms",
        r.cluster, r.pass, r.fail, r.unknown, r.duration_ms
    );
    s
}

/// The `[health]` part of `check-config`: what a round checks, no secrets.
pub fn config_summary(cfg: &vigil_core::Config) -> String {
    let h = &cfg.health;
    let mut s = String::new();
    let e = &h.etcd;
    let _ = writeln!(
        s,
        "health: timeout {}, alerts queued for vigil-notify",
        h.timeout
    );
    let _ = writeln!(
        s,
        "  etcd: {} member(s), timeout {:?}, raft lag <= {}, db size warn {}% / critical {}% of the quota (default {} when the server does not report it), fragmentation {}% from {}, learners {}",
        cfg.members().count(),
        h.etcd_timeout(),
        e.max_raft_lag,
        e.db_size_warn_percent,
        e.db_size_critical_percent,
        e.db_quota,
        e.fragmentation_warn_percent,
        e.fragmentation_min_size,
        if e.allow_learners { "allowed" } else { "fail" }
    );
    match &h.kubernetes {
        Some(k) => {
            let auth = if k.token_file.is_some() {
                "bearer token file"
            } else if k.cert.is_some() {
                "client certificate"
            } else {
                "anonymous"
            };
            let _ = writeln!(
                s,
                "  kubernetes: {} endpoint(s) x {}, auth {auth}, CA {}, timeout {:?}",
                crate::kube::endpoints(k).len(),
                k.probes.join("+"),
                k.ca.as_ref()
                    .map(|p| p.display().to_string())
                    .unwrap_or_else(|| "system roots".into()),
                h.kube_timeout()
            );
        }
        None => {
            let _ = writeln!(s, "  kubernetes: not checked (no [health.kubernetes])");
        }
    }
    let targets = crate::certs::targets(cfg);
    let _ = writeln!(
        s,
        "  certificates: {} target(s), warn {} / critical {} before expiry",
        targets.len(),
        h.certs.warn,
        h.certs.critical
    );
    match &h.node {
        Some(n) => {
            let t = crate::node::targets(cfg, n);
            let _ = writeln!(
                s,
                "  node_exporter: {} ({}), fs free warn {}% / crit {}%, memory warn {}% / crit {}%, load/core warn {} / crit {}",
                t.len(),
                t.iter().map(|t| t.name.as_str()).collect::<Vec<_>>().join(", "),
                n.fs_free_warn_percent,
                n.fs_free_critical_percent,
                n.mem_available_warn_percent,
                n.mem_available_critical_percent,
                n.load_per_core_warn,
                n.load_per_core_critical
            );
        }
        None => {
            let _ = writeln!(s, "  node_exporter: not checked (no [health.node])");
        }
    }
    let f = &h.freshness;
    let _ = writeln!(
        s,
        "  freshness: newest verified archive younger than {} (local{}), drill {}",
        f.max_age,
        if f.sinks && cfg.sinks().count() > 0 {
            format!(" and {} sink(s)", cfg.sinks().count())
        } else {
            String::new()
        },
        match f.drill_max_age {
            Some(d) => format!("younger than {d}"),
            None if cfg
                .restore
                .as_ref()
                .is_some_and(|r| r.drill_identity_file.is_some()) =>
                "younger than 8days".into(),
            None => "not checked".into(),
        }
    );
    let b = &h.bastion;
    let _ = writeln!(
        s,
        "  bastion: free space in snapshot and state dirs, warn below {}% / critical below {}%{}",
        b.free_warn_percent,
        b.free_critical_percent,
        b.min_free.map(|m| format!(" or {m}")).unwrap_or_default()
    );
    s
}
