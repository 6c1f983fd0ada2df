//! The `vigil-bench journal` section of BENCHMARKS.md.

use super::*;
use crate::journal::{JournalResults, Lag, GOAL_CPU_PCT, GOAL_LAG_S, GOAL_RATE};

const JOURNAL_BEGIN: &str = "<!-- bench:journal:begin -->";
const JOURNAL_END: &str = "<!-- bench:journal:end -->";

/// Replaces the text between the journal markers of a markdown file.
pub fn splice_journal(doc: &str, body: &str) -> Option<String> {
    splice_between(doc, JOURNAL_BEGIN, JOURNAL_END, body)
}

fn lag(l: &Lag) -> String {
    format!("{:.1} / {:.1} / {:.1}", l.p50_ms, l.p99_ms, l.max_ms)
}

/// Least squares of wall time over events replayed: (intercept s, s per event).
fn fit(points: &[(f64, f64)]) -> Option<(f64, f64)> {
    let n = points.len() as f64;
    let (sx, sy) = points
        .iter()
        .fold((0.0, 0.0), |(a, b), (x, y)| (a + x, b + y));
    let (mx, my) = (sx / n, sy / n);
    let sxx: f64 = points.iter().map(|(x, _)| (x - mx) * (x - mx)).sum();
    let sxy: f64 = points.iter().map(|(x, y)| (x - mx) * (y - my)).sum();
    (points.len() >= 2 && sxx > 0.0).then(|| (my - sxy / sxx * mx, sxy / sxx))
}

/// Every `step`-th sample of the RSS series (at most about 24), in MiB.
fn series(r: &JournalResults) -> String {
    let t = &r.steady.rss;
    let Some(last) = t.last() else {
        return "none".into();
    };
    let fmt =
        |x: &crate::journal::RssTick| format!("{:.0} s {:.1}", x.t_s, x.rss_kib as f64 / 1024.0);
    let step = t.len().div_ceil(24).max(1);
    let mut v: Vec<String> = t.iter().step_by(step).map(fmt).collect();
    if !(t.len() - 1).is_multiple_of(step) {
        v.push(fmt(last));
    }
    v.join(", ")
}

/// Markdown for one `vigil-bench journal` results file.
fn render_one(r: &JournalResults) -> String {
    let mut s = String::new();
    let (b, st, t, su) = (&r.burst, &r.steady, &r.totals, &r.setup);
    let mb = |kib: u64| kib as f64 / 1024.0;
    let _ = writeln!(
        s,
        "### What the journal costs: {}{}\n",
        r.label,
        if r.smoke {
            " — SMOKE RUN (tiny durations, harness check only; the figures mean nothing)"
        } else {
            ""
        }
    );
    let _ = writeln!(
        s,
        "{} {} etcd members on loopback; `vigil-journal run` with `{}` (`flush` {:.1} s{}, the other keys at their defaults unless shown); random (incompressible) values of {} bytes over {} keys; journal, etcd and writers share the cores, nothing pinned. Base snapshot: revision {}, {} keys, {:.1} MB.\n",
        measured(&r.started_at, &r.git_commit, &r.host),
        su.members,
        su.journal_config,
        su.flush_s,
        if su.flush_default { ", the default" } else { "" },
        su.value_bytes,
        su.objects,
        r.base.revision,
        r.base.keys,
        r.base.snapshot_size as f64 / 1e6
    );

    let _ = writeln!(s, "**Targets**\n");
    let _ = writeln!(
        s,
        "| target | goal | measured | status |\n|---|---|---|---|"
    );
    let status = |ok: bool| verdict(ok, r.smoke).to_string();
    let rate_status = if r.smoke {
        status(true)
    } else if b.kept_up && b.journal_rate_per_s >= GOAL_RATE {
        "met".into()
    } else if b.kept_up && b.etcd_rate_per_s < GOAL_RATE {
        format!(
            "not shown: etcd took only {:.0} writes/s here, and the journal kept up with all of them",
            b.etcd_rate_per_s
        )
    } else {
        "**missed**".into()
    };
    let _ = writeln!(
        s,
        "| (a) write rate the journal sustains, 1 KiB values | ≥ {GOAL_RATE:.0} writes/s, keeping up | {:.0} events/s (etcd took {:.0} writes/s from {} clients); {} write(s) not yet received when the burst ended, the last received {:.2} s after its ack; {} missing | {rate_status} |",
        b.journal_rate_per_s,
        b.etcd_rate_per_s,
        b.clients,
        b.lag_revisions_at_end,
        b.catch_up_s,
        b.missing
    );
    let _ = writeln!(
        s,
        "| (b) receive lag p50 / p99 at {:.0} writes/s | p99 < {GOAL_LAG_S:.0} s | {:.1} ms / {:.1} ms | {} |",
        st.target_rate_per_s,
        st.receive_lag.p50_ms,
        st.receive_lag.p99_ms,
        status(st.missing == 0 && st.receive_lag.p99_ms < GOAL_LAG_S * 1e3)
    );
    let _ = writeln!(
        s,
        "| (b) durable lag p50 / p99 (the segment's close − the ack) | ≤ `flush` ({:.0} s) + the close | {:.0} ms / {:.0} ms | (bounded by `flush`) |",
        su.flush_s, st.durable_lag.p50_ms, st.durable_lag.p99_ms
    );
    let _ = writeln!(
        s,
        "| (c) journal CPU at {:.0} writes/s | < {GOAL_CPU_PCT:.0} % of one core | {:.2} % ({:.3} CPU-s per 1000 events) | {} |",
        st.target_rate_per_s,
        st.cpu_pct_one_core,
        st.cpu_per_1000_events_s,
        status(st.cpu_pct_one_core < GOAL_CPU_PCT)
    );
    let growth = if st.rss_first_kib > 0 {
        (st.rss_max_kib as f64 - st.rss_first_kib as f64) / st.rss_first_kib as f64 * 100.0
    } else {
        0.0
    };
    let _ = writeln!(
        s,
        "| (d) journal RSS over the steady phase | flat over an hour (max within 10 % of the first sample) | {:.1} → {:.1} MiB, max {:.1} (+{growth:.1} %), VmHWM {:.1} MiB, over {:.0} s | {} |",
        mb(st.rss_first_kib),
        mb(st.rss_last_kib),
        mb(st.rss_max_kib),
        mb(st.hwm_kib),
        st.actual_s,
        if !r.smoke && st.actual_s < 3600.0 {
            format!(
                "(info: {:.0} min, not an hour{})",
                st.actual_s / 60.0,
                if growth <= 10.0 { "; flat so far" } else { "" }
            )
        } else {
            status(growth <= 10.0)
        }
    );

    let _ = writeln!(s, "\n**(a) Burst: as fast as etcd answers**\n");
    let _ = writeln!(s, "| | |\n|---|---|");
    let rows: Vec<(&str, String)> = vec![
        (
            "length s (asked)",
            format!("{:.1} ({:.0})", b.duration_s, b.requested_s),
        ),
        ("clients, one put at a time each", b.clients.to_string()),
        (
            "writes etcd took (failed)",
            format!(
                "{} ({}), revisions {}..={}",
                b.writes, b.errors, b.first_revision, b.last_revision
            ),
        ),
        ("etcd write rate", format!("{:.0} /s", b.etcd_rate_per_s)),
        (
            "events the journal holds for them (missing)",
            format!("{} ({})", b.journal_events, b.missing),
        ),
        (
            "journal rate (those events ÷ burst start to the last one received)",
            format!("{:.0} /s", b.journal_rate_per_s),
        ),
        (
            "writes not yet received at the burst's end",
            b.lag_revisions_at_end.to_string(),
        ),
        (
            "last write received after the burst's last ack",
            format!("{:.2} s", b.catch_up_s),
        ),
        ("receive lag p50 / p99 / max ms", lag(&b.receive_lag)),
        (
            "wait until a closed segment held the last write",
            format!(
                "{:.1} s{}",
                b.committed_wait_s,
                if b.committed_in_time {
                    ""
                } else {
                    " (**gave up**)"
                }
            ),
        ),
        (
            "journal CPU s (per 1000 events)",
            format!(
                "{:.2} ({:.3})",
                b.journal_cpu_s,
                if b.journal_events > 0 {
                    b.journal_cpu_s / b.journal_events as f64 * 1e3
                } else {
                    0.0
                }
            ),
        ),
        (
            "load average (1 min) before",
            format!("{:.2}", b.loadavg_1m),
        ),
    ];
    for (k, v) in rows {
        let _ = writeln!(s, "| {k} | {v} |");
    }

    let _ = writeln!(
        s,
        "\n**(b)–(d) Steady: {:.0} writes/s (open loop)**\n",
        st.target_rate_per_s
    );
    let _ = writeln!(s, "| | |\n|---|---|");
    let rows: Vec<(&str, String)> = vec![
        (
            "window s (asked)",
            format!("{:.1} ({:.0})", st.actual_s, st.requested_s),
        ),
        (
            "writes (failed), rate achieved",
            format!(
                "{} of {} scheduled ({}), {:.0} /s",
                st.writes, st.scheduled, st.errors, st.achieved_rate_per_s
            ),
        ),
        (
            "writer's send lag p99",
            format!("{:.1} ms", st.send_lag_p99_ms),
        ),
        (
            "events journaled (missing)",
            format!("{} ({})", st.journal_events, st.missing),
        ),
        (
            "receive lag p50 / p99 / max ms (`received_at` − ack)",
            lag(&st.receive_lag),
        ),
        (
            "durable lag p50 / p99 / max ms (segment closed − ack)",
            lag(&st.durable_lag),
        ),
        (
            "journal CPU: s, per 1000 events, % of one core",
            format!(
                "{:.2} s, {:.3} s, {:.2} %",
                st.cpu_s, st.cpu_per_1000_events_s, st.cpu_pct_one_core
            ),
        ),
        (
            "journal VmRSS first / last / max, VmHWM",
            format!(
                "{:.1} / {:.1} / {:.1} MiB, {:.1} MiB",
                mb(st.rss_first_kib),
                mb(st.rss_last_kib),
                mb(st.rss_max_kib),
                mb(st.hwm_kib)
            ),
        ),
        (
            "load average (1 min) start / end",
            format!("{:.2} / {:.2}", st.loadavg_start, st.loadavg_end),
        ),
        (
            "wait until a closed segment held the last write",
            format!(
                "{:.1} s{}",
                st.committed_wait_s,
                if st.committed_in_time {
                    ""
                } else {
                    " (**gave up**)"
                }
            ),
        ),
    ];
    for (k, v) in rows {
        let _ = writeln!(s, "| {k} | {v} |");
    }
    let _ = writeln!(
        s,
        "\nVmRSS every {:.0} s (MiB): {}.\n",
        st.sample_every_s,
        series(r)
    );
    let _ = writeln!(
        s,
        "The receive lag is how long after etcd acknowledged a write the journal had it (negative: the watch event came before the client's answer; the journal's clock is ms). The durable lag is how long until it was in a closed segment, the only place a restore reads: a segment closes `flush` after its first event, so this lag is bounded by `flush` ({:.0} s) plus the close, whatever the journal's speed.\n",
        su.flush_s
    );

    let per_event = |x: u64| {
        if t.events > 0 {
            x as f64 / t.events as f64
        } else {
            0.0
        }
    };
    let _ = writeln!(
        s,
        "**The journal** after SIGTERM: {} segment(s), {} events, revisions {}..={}; {:.1} MB on disk ({:.0} bytes per event; {:.0} bytes of JSON per event); {} gap(s); `vigil-journal verify`: {} ({}); {} failover(s); {} compaction(s) of etcd (every {:.0} s, keeping {:.0} s, never past the journal).\n",
        t.segments,
        t.events,
        t.first_revision,
        t.last_revision,
        t.bytes as f64 / 1e6,
        per_event(t.bytes),
        per_event(t.plaintext_bytes),
        t.gaps,
        if t.chain_whole { "whole" } else { "**broken**" },
        t.verify,
        t.failovers,
        su.compactions,
        su.compact_every_s,
        su.compact_retain_s
    );

    let _ = writeln!(s, "**(e) Restore to a point** (`vigil-restore fetch --to-revision R --source local`, one run each)\n");
    let _ = writeln!(
        s,
        "| point (events after the base) | revision | events replayed | segments | wall s | CPU s (with the scratch etcd) | peak RSS MiB (largest process) |\n|---|---|---|---|---|---|---|"
    );
    for p in &r.restores {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {:.2} | {:.2} | {:.1} |",
            p.point,
            p.target_revision,
            p.events,
            p.segments,
            p.wall_s,
            p.cpu_s,
            mb(p.maxrss_kib)
        );
    }
    let pts: Vec<(f64, f64)> = r
        .restores
        .iter()
        .map(|p| (p.events as f64, p.wall_s))
        .collect();
    match fit(&pts) {
        Some((a, k)) => {
            let _ = writeln!(
                s,
                "\nLeast squares: {a:.2} s + {:.2} s per 10 000 events replayed ({:.0} events/s).\n",
                k * 1e4,
                if k > 0.0 { 1.0 / k } else { 0.0 }
            );
        }
        None => s.push('\n'),
    }
    let _ = writeln!(
        s,
        "Commands: `{}`; base `{}`; restore `{}`.\n",
        su.journal_cmd,
        r.base.cmd,
        r.restores.last().map_or("", |p| p.cmd.as_str())
    );
    s
}

/// Markdown for `vigil-bench journal` results files.
pub fn render_journal(all: &[JournalResults]) -> String {
    all.iter().map(render_one).collect::<Vec<_>>().join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fit_finds_the_line() {
        let (a, k) = fit(&[(0.0, 1.0), (10.0, 2.0), (20.0, 3.0)]).unwrap_or_default();
        assert!((a - 1.0).abs() < 1e-9 && (k - 0.1).abs() < 1e-9, "{a} {k}");
        assert_eq!(fit(&[(5.0, 1.0)]), None);
        assert_eq!(fit(&[(5.0, 1.0), (5.0, 2.0)]), None);
    }
}
