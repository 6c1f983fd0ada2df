//! The `vigil-bench prove` section of BENCHMARKS.md.

use super::*;

const PROVE_BEGIN: &str = "<!-- bench:prove:begin -->";
const PROVE_END: &str = "<!-- bench:prove:end -->";

/// Replaces the text between the restore-proof markers of a markdown file.
pub fn splice_prove(doc: &str, body: &str) -> Option<String> {
    splice_between(doc, PROVE_BEGIN, PROVE_END, body)
}

/// Markdown for `vigil-bench prove` results: per file, the run with the
/// proof off and on, and each member's stream and proof; then, with two
/// sizes or more, how the proof's memory scales with the database.
pub fn render_prove(all: &[crate::prove::ProveResults]) -> String {
    let mut s = String::new();
    let mb = |kib: f64| kib / 1024.0;
    for r in all {
        let _ = writeln!(
            s,
            "### What the restore proof costs: {}{}\n",
            r.label,
            if r.smoke {
                " — SMOKE RUN (tiny dataset, harness check only; the figures mean nothing)"
            } else {
                ""
            }
        );
        let _ = writeln!(
            s,
            "{} {} etcd members, `vigil-snapshot run` to a local dir (no remote sink), one member at a time; median of {} run(s) each, off and on interleaved. Memory sampled every {} ms.\n",
            measured(&r.started_at, &r.git_commit, &r.host),
            r.members,
            r.runs,
            r.interval_ms
        );
        let ds = &r.dataset;
        let (off, on) = (
            r.phases.iter().find(|p| p.key == "off"),
            r.phases.iter().find(|p| p.key == "on"),
        );
        let (Some(off), Some(on)) = (off, on) else {
            let _ = writeln!(s, "(the results lack a phase)\n");
            continue;
        };
        let (a, b) = (off.median(), on.median());
        let snap = b.snapshot_bytes / r.members.max(1) as f64;
        let _ = writeln!(
            s,
            "Dataset: target {:.0} MB → database {:.1} MB per member, {} keys; snapshot {:.1} MB per member.\n",
            ds.target_bytes as f64 / 1e6,
            ds.db_size as f64 / 1e6,
            ds.keys,
            snap / 1e6
        );
        let ratio = |x: f64, y: f64| {
            if y > 0.0 {
                format!("{:.2}×", x / y)
            } else {
                "–".into()
            }
        };
        let _ = writeln!(
            s,
            "| | proof off | proof on | on − off | on ÷ off |\n|---|---|---|---|---|"
        );
        let _ = writeln!(
            s,
            "| run wall s (median; min–max) | {:.2} ({:.2}–{:.2}) | {:.2} ({:.2}–{:.2}) | {:+.2} | {} |",
            a.wall_s, a.wall_min_s, a.wall_max_s, b.wall_s, b.wall_min_s, b.wall_max_s,
            b.wall_s - a.wall_s,
            ratio(b.wall_s, a.wall_s)
        );
        let _ = writeln!(
            s,
            "| CPU s (vigil + scratch etcd + etcdctl) | {:.2} | {:.2} | {:+.2} | {} |",
            a.cpu_s,
            b.cpu_s,
            b.cpu_s - a.cpu_s,
            ratio(b.cpu_s, a.cpu_s)
        );
        let _ = writeln!(
            s,
            "| **peak memory MiB** (tree RSS − RssShmem + tmpfs; median, max) | {:.1} ({:.1}) | {:.1} ({:.1}) | {:+.1} | {} |",
            mb(a.peak_total_kib),
            mb(a.peak_total_max_kib as f64),
            mb(b.peak_total_kib),
            mb(b.peak_total_max_kib as f64),
            mb(b.peak_total_kib - a.peak_total_kib),
            ratio(b.peak_total_kib, a.peak_total_kib)
        );
        for (what, x, y) in [
            (
                "peak vigil-snapshot RSS MiB",
                a.peak_vigil_kib,
                b.peak_vigil_kib,
            ),
            (
                "peak scratch etcd RSS − RssShmem MiB",
                a.peak_etcd_kib,
                b.peak_etcd_kib,
            ),
            ("peak proof tmpfs MiB", a.peak_tmpfs_kib, b.peak_tmpfs_kib),
            (
                "naive peak (ΣVmRSS + tmpfs) MiB",
                a.peak_naive_kib,
                b.peak_naive_kib,
            ),
            (
                "/usr/bin/time max RSS MiB (largest process)",
                a.maxrss_kib,
                b.maxrss_kib,
            ),
        ] {
            let _ = writeln!(
                s,
                "| {what} | {:.1} | {:.1} | {:+.1} | |",
                mb(x),
                mb(y),
                mb(y - x)
            );
        }
        let _ = writeln!(
            s,
            "| scratch etcds / member proof dirs at once (max) | {} / {} | {} / {} | | |",
            a.max_etcds, a.max_dirs, b.max_etcds, b.max_dirs
        );
        let peak = on
            .samples
            .iter()
            .max_by_key(|x| x.peak_total_kib)
            .map(|x| x.peak);
        if let Some(p) = peak {
            let _ = writeln!(
                s,
                "\nAt the largest peak with the proof on ({:.1} s into the run): vigil {:.1} MiB, scratch etcd {:.1} MiB, etcdctl and others {:.1} MiB, tmpfs {:.1} MiB; {} scratch etcd(s), {} member dir(s) with data.\n",
                p.t_ms as f64 / 1e3,
                mb(p.vigil_kib as f64),
                mb(p.etcd_kib as f64),
                mb(p.tools_kib as f64),
                mb(p.tmpfs_kib as f64),
                p.etcds,
                p.dirs
            );
        }
        let _ = writeln!(
            s,
            "| member | snapshot MB | stream s, proof off | stream s, proof on | proof s (median; min–max) |\n|---|---|---|---|---|"
        );
        let offm = off.member_medians();
        for (name, stream, proof, lo, hi, size) in on.member_medians() {
            let so = offm
                .iter()
                .find(|m| m.0 == name)
                .map_or("–".to_string(), |m| format!("{:.2}", m.1));
            let _ = writeln!(
                s,
                "| {name} | {:.1} | {so} | {stream:.2} | {proof:.2} ({lo:.2}–{hi:.2}) |",
                size as f64 / 1e6
            );
        }
        let _ = writeln!(
            s,
            "\nstream s: the manifest's `duration_ms` less `restore_proof.duration_ms` (stream, archive, local copy). proof s: `restore_proof.duration_ms` (etcdctl restore, scratch etcd start, revision, key count, hash_kv of the member and its peers, sampled keys).\n"
        );
        let _ = writeln!(s, "Load average (1 min) before each run:");
        for p in [off, on] {
            let _ = writeln!(
                s,
                "- {}: {}",
                p.key,
                p.samples
                    .iter()
                    .map(|x| format!("{:.2}", x.loadavg_1m))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        let _ = writeln!(s, "\nCommands (`[snapshot]` lines):");
        for p in [off, on] {
            let _ = writeln!(s, "- {}: `{}` with `{}`", p.key, p.cmd, p.config);
        }
        s.push('\n');
    }
    let real: Vec<_> = all.iter().filter(|r| !r.smoke).collect();
    if real.len() >= 2 {
        let _ = writeln!(
            s,
            "### Restore proof memory across database sizes\n\n| dataset | members | snapshot MB per member | peak tmpfs MiB | peak scratch etcd MiB | peak memory off MiB | on MiB | on − off MiB | (on − off) ÷ snapshot |\n|---|---|---|---|---|---|---|---|---|"
        );
        for r in real {
            let ph = |k: &str| r.phases.iter().find(|p| p.key == k).map(|p| p.median());
            let (Some(a), Some(b)) = (ph("off"), ph("on")) else {
                continue;
            };
            let snap = b.snapshot_bytes / r.members.max(1) as f64;
            let extra = (b.peak_total_kib - a.peak_total_kib) * 1024.0;
            let _ = writeln!(
                s,
                "| {} | {} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {:.2} |",
                r.label,
                r.members,
                snap / 1e6,
                mb(b.peak_tmpfs_kib),
                mb(b.peak_etcd_kib),
                mb(a.peak_total_kib),
                mb(b.peak_total_kib),
                extra / 1048576.0,
                if snap > 0.0 { extra / snap } else { 0.0 }
            );
        }
        s.push('\n');
    }
    s
}
