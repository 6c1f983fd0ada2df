//! The `vigil-bench cost` section of BENCHMARKS.md.

use super::*;

const COST_BEGIN: &str = "<!-- bench:cost:begin -->";
const COST_END: &str = "<!-- bench:cost:end -->";

/// Replaces the text between the cost markers of a markdown file.
pub fn splice_cost(doc: &str, body: &str) -> Option<String> {
    splice_between(doc, COST_BEGIN, COST_END, body)
}

/// Markdown for a `vigil-bench cost` results file: every phase, then the
/// bounds' trade-off of run time against p99 write latency.
pub fn render_cost(c: &crate::cost::CostResults) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "### What a backup costs the cluster: {}{}\n",
        c.label,
        if c.smoke {
            " — SMOKE RUN (tiny dataset, harness check only; the figures mean nothing)"
        } else {
            ""
        }
    );
    let _ = writeln!(
        s,
        "{} 3 etcd members; median of {} run(s) per phase.\n",
        measured(&c.started_at, &c.git_commit, &c.host),
        c.runs
    );
    let ds = &c.dataset;
    let l = &c.load;
    let _ = writeln!(
        s,
        "Dataset: target {:.0} MB → database {:.1} MB, {} keys; snapshot {:.1} MB. Load: {} writes/s (open loop, latency from the scheduled time) of {}–{} KiB values over {} objects, round-robin over the 3 members, {} prefix watches; every {} s a compaction of the history older than {} s. {}. {}.\n",
        ds.target_bytes as f64 / 1e6,
        ds.db_size as f64 / 1e6,
        ds.keys,
        c.snapshot_bytes as f64 / 1e6,
        l.rate_per_s,
        l.value_min_bytes / 1024,
        l.value_max_bytes / 1024,
        l.objects,
        l.watches,
        l.compact_every_s,
        l.compact_retain_s,
        if c.pinning.backup_cpus.is_empty() {
            "Not pinned (one CPU)".to_string()
        } else {
            format!(
                "etcd members and load generator on CPU {}, the backup on CPU {}",
                c.pinning.etcd_and_load_cpus, c.pinning.backup_cpus
            )
        },
        if c.defrag_between_phases {
            "Every member is defragmented before each phase"
        } else {
            "No defragmentation between phases"
        }
    );
    let idle = c
        .phases
        .iter()
        .find(|p| p.key == "idle")
        .map(|p| p.median());
    let vs_idle = |p99: f64| match &idle {
        Some(i) if i.p99_ms > 0.0 => format!("{:+.1} ms ({:.2}×)", p99 - i.p99_ms, p99 / i.p99_ms),
        _ => "–".into(),
    };
    let _ = writeln!(
        s,
        "| phase | backup wall s | write p50 ms | p99 ms | max ms | p99 vs idle | writes (failed) | db growth MB | etcd CPU-s | load lag p99 ms |\n|---|---|---|---|---|---|---|---|---|---|"
    );
    for p in &c.phases {
        let m = p.median();
        let _ = writeln!(
            s,
            "| {} | {} | {:.2} | {:.2} | {:.1} | {} | {:.0} ({:.0}) | {:.1} | {:.2} | {:.2} |",
            p.what,
            if p.key == "idle" {
                "–".to_string()
            } else {
                format!("{:.2}", m.backup_wall_s)
            },
            m.p50_ms,
            m.p99_ms,
            m.max_ms,
            if p.key == "idle" {
                "–".to_string()
            } else {
                vs_idle(m.p99_ms)
            },
            m.requests,
            m.errors,
            m.db_growth / 1e6,
            m.etcd_cpu_s,
            m.send_lag_p99_ms
        );
    }
    let _ = writeln!(
        s,
        "\ndb growth: the largest growth of one member's status dbSize (bbolt's high-water mark) from before the phase to after its settle. Load lag: how late the load generator sent (if it were large, the latency would be the generator's).\n"
    );
    let base = c
        .phases
        .iter()
        .find(|p| p.key == "vigil")
        .map(|p| p.median());
    let vigil: Vec<_> = c
        .phases
        .iter()
        .filter(|p| p.key.starts_with("vigil"))
        .collect();
    if !vigil.is_empty() {
        let _ = writeln!(
            s,
            "**Trade-off: run time against p99 write latency** (vigil, 3 members)\n"
        );
        let _ = writeln!(
            s,
            "| bound | `[snapshot]` | run time s | ÷ unbounded | write p99 ms | p99 vs idle | db growth MB |\n|---|---|---|---|---|---|---|"
        );
        for p in vigil {
            let m = p.median();
            let _ = writeln!(
                s,
                "| {} | `{}` | {:.2} | {} | {:.2} | {} | {:.1} |",
                p.what,
                p.config,
                m.backup_wall_s,
                match &base {
                    Some(b) if b.backup_wall_s > 0.0 =>
                        format!("{:.2}×", m.backup_wall_s / b.backup_wall_s),
                    _ => "–".into(),
                },
                m.p99_ms,
                vs_idle(m.p99_ms),
                m.db_growth / 1e6
            );
        }
        s.push('\n');
    }
    let _ = writeln!(s, "Commands:");
    for p in c.phases.iter().filter(|p| !p.cmd.is_empty()) {
        let _ = writeln!(s, "- {}: `{}`", p.key, p.cmd);
    }
    s
}
