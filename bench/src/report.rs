//! `vigil-bench report`: the BENCHMARKS.md tables from results files.

mod cost;
mod journal;
mod prove;

pub use cost::{render_cost, splice_cost};
pub use journal::{render_journal, splice_journal};
pub use prove::{render_prove, splice_prove};

use crate::results::*;
use std::fmt::Write as _;

const BEGIN: &str = "<!-- bench:results:begin -->";
const END: &str = "<!-- bench:results:end -->";

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn verdict(ok: bool, smoke: bool) -> &'static str {
    match (smoke, ok) {
        (true, _) => "smoke (not meaningful)",
        (false, true) => "met",
        (false, false) => "**missed**",
    }
}

/// "Measured <when> at commit <c> on <host>." for a results file.
pub(crate) fn measured(started_at: &str, commit: &str, h: &Host) -> String {
    format!(
        "Measured {started_at} at commit `{}` on {} CPUs ({}), {:.1} GiB RAM, kernel {}, {}.",
        commit.get(..10).unwrap_or(commit),
        h.cpus,
        h.cpu_model,
        h.mem_total_kib as f64 / 1024.0 / 1024.0,
        h.kernel,
        h.etcd_version
    )
}

fn step_row(s: &mut String, r: &Results, key: &str, what: &str) {
    let Some(step) = r.steps.get(key) else {
        let _ = writeln!(s, "| {what} | – | – | – | – | – |");
        return;
    };
    let m = step.median();
    let _ = writeln!(
        s,
        "| {what} | {:.2} ({:.2}–{:.2}) | {:.2} | {:.1} | {:.2} | `{key}` |",
        m.wall_s,
        m.wall_min_s,
        m.wall_max_s,
        m.cpu_s,
        mib(m.maxrss_max_kib),
        m.server_cpu_s
    );
}

/// Markdown for one results file.
pub fn render_one(r: &Results) -> String {
    let mut s = String::new();
    let d = &r.derived;
    let ds = &r.dataset;
    let _ = writeln!(
        s,
        "### {}{}\n",
        r.label,
        if r.smoke {
            " — SMOKE RUN (tiny dataset, harness check only; the figures mean nothing)"
        } else {
            ""
        }
    );
    let _ = writeln!(
        s,
        "{} {} etcd members, median of {} run(s), zstd level {}.\n",
        measured(&r.started_at, &r.git_commit, &r.host),
        r.members,
        r.runs,
        r.zstd_level
    );
    let _ = writeln!(
        s,
        "Dataset: seed {}, target {:.1} MB → database {:.1} MB ({:.1} MB in use), {} keys, revision {}, {} puts, {} deletes, {} compactions, generated in {:.1} s. Snapshot {:.1} MB, archive ratio {:.2}.\n",
        ds.seed,
        ds.target_bytes as f64 / 1e6,
        ds.db_size as f64 / 1e6,
        ds.db_size_in_use as f64 / 1e6,
        ds.keys,
        ds.revision,
        ds.puts,
        ds.deletes,
        ds.compactions,
        ds.gen_seconds,
        d.snapshot_bytes as f64 / 1e6,
        d.archive_ratio
    );

    let _ = writeln!(s, "**Targets**\n");
    let _ = writeln!(
        s,
        "| target | goal | measured | status |\n|---|---|---|---|"
    );
    let t = |s: &mut String, name: &str, goal: &str, val: String, ok: bool| {
        let status = if goal == "(info)" {
            "–"
        } else {
            verdict(ok, r.smoke)
        };
        let _ = writeln!(s, "| {name} | {goal} | {val} | {status} |");
    };
    t(
        &mut s,
        "snapshot c/a (vigil 1 member ÷ etcdctl save)",
        "≤ 1.25",
        format!("{:.2}", d.c_over_a),
        d.c_over_a <= 1.25,
    );
    t(
        &mut s,
        "snapshot c/a, local dir only (no radosgw on the same cores)",
        "(info)",
        format!("{:.2}", d.c_local_over_a),
        true,
    );
    t(
        &mut s,
        "snapshot c/a, sink `verify = \"readback\"` (the copy downloaded and hashed)",
        "(info)",
        format!("{:.2}", d.c_readback_over_a),
        true,
    );
    t(
        &mut s,
        "snapshot c/b (÷ save → zstd → age → s3cmd put)",
        "≤ 0.60",
        format!("{:.2}", d.c_over_b_zstd),
        d.c_over_b_zstd <= 0.60,
    );
    t(
        &mut s,
        "snapshot c/b (÷ save → zip → s3cmd put)",
        "(info)",
        format!("{:.2}", d.c_over_b_zip),
        true,
    );
    t(
        &mut s,
        "client CPU per GB, vigil ÷ (etcdctl + zstd + sha256sum)",
        "≤ 1.25",
        format!(
            "{:.2} ({:.2} vs {:.2} CPU-s/GB)",
            d.cpu_ratio, d.vigil_cpu_per_gb, d.reference_cpu_per_gb
        ),
        d.cpu_ratio <= 1.25,
    );
    let rss = d.peak_rss_c1_mib.max(d.peak_rss_c3_mib);
    t(
        &mut s,
        "peak RSS of vigil-snapshot (1 member / 3 members)",
        "≤ 64 MiB",
        format!("{:.1} / {:.1} MiB", d.peak_rss_c1_mib, d.peak_rss_c3_mib),
        rss <= 64.0,
    );
    t(
        &mut s,
        "three members concurrently ÷ one",
        "≤ 1.5",
        format!("{:.2}", d.three_over_one),
        d.three_over_one <= 1.5,
    );
    t(
        &mut s,
        "restore fetch ÷ (s3cmd get → age -d → zstd -d)",
        "≤ 0.6",
        format!(
            "{:.2} ({:.2} s vs {:.2} s)",
            d.restore_ratio, d.restore_fetch_s, d.restore_sequential_s
        ),
        d.restore_ratio <= 0.6,
    );
    let _ = writeln!(
        s,
        "| `vigil-restore etcd`, three members | (info) | {:.2} s | |",
        d.restore_etcd_3_members_s
    );
    let _ = writeln!(
        s,
        "\n**Snapshot steps** (wall s median (min–max), client CPU-s = user+sys, peak RSS MiB (max over runs), etcd server CPU-s, all 3 members)\n"
    );
    let _ = writeln!(
        s,
        "| step | wall | client CPU | peak RSS | etcd CPU | key |\n|---|---|---|---|---|---|"
    );
    step_row(&mut s, r, "a_save", "(a) `etcdctl snapshot save`");
    step_row(&mut s, r, "sha256", "`sha256sum` of the snapshot");
    step_row(&mut s, r, "b_zip", "`zip`");
    step_row(&mut s, r, "b_zip_put", "`s3cmd put` of the zip");
    step_row(
        &mut s,
        r,
        "b_zstd",
        &format!("`zstd -{} -T2`", r.zstd_level),
    );
    step_row(&mut s, r, "b_age", "`age -r`");
    step_row(&mut s, r, "b_age_put", "`s3cmd put` of the .zst.age");
    let _ = writeln!(
        s,
        "| (b) save → zip → put | {:.2} | | | | sum |",
        d.b_zip_wall_s
    );
    let _ = writeln!(
        s,
        "| (b) save → zstd → age → put | {:.2} | | | | sum |",
        d.b_zstd_wall_s
    );
    step_row(
        &mut s,
        r,
        "c1",
        "(c) `vigil-snapshot run`, 1 member + radosgw",
    );
    step_row(
        &mut s,
        r,
        "c1_local",
        "(c) the same, local dir only (no sink)",
    );
    step_row(
        &mut s,
        r,
        "c1_readback",
        "(c) the same + radosgw, `verify = \"readback\"`",
    );
    step_row(
        &mut s,
        r,
        "c3",
        "(c) `vigil-snapshot run`, 3 members + radosgw",
    );

    let _ = writeln!(
        s,
        "\n**Restore** (member cp-1 from radosgw; `vigil-restore etcd` rebuilds all three)\n"
    );
    let _ = writeln!(
        s,
        "| step | wall | client CPU | peak RSS | etcd CPU | key |\n|---|---|---|---|---|---|"
    );
    step_row(&mut s, r, "r_fetch", "`vigil-restore fetch`");
    step_row(&mut s, r, "r_get", "`s3cmd get`");
    step_row(&mut s, r, "r_age", "`age -d`");
    step_row(&mut s, r, "r_zstd", "`zstd -d`");
    let _ = writeln!(
        s,
        "| get → age -d → zstd -d | {:.2} | | | | sum |",
        d.restore_sequential_s
    );
    step_row(&mut s, r, "r_etcd", "`vigil-restore etcd` (3 members)");

    if !r.sweep.is_empty() {
        let _ = writeln!(
            s,
            "\n**zstd level sweep** (`vigil-snapshot run`, {} members + radosgw; `zstd -L -T2` CLI on the same snapshot)\n",
            r.members
        );
        let _ = writeln!(
            s,
            "| level | zstd_threads | vigil wall | vigil CPU | peak RSS | vigil ratio | CLI wall | CLI CPU | CLI ratio |\n|---|---|---|---|---|---|---|---|---|"
        );
        for row in &r.sweep {
            let v = r
                .steps
                .get(&row.step)
                .map(|s| s.median())
                .unwrap_or_default();
            let c = r
                .steps
                .get(&row.cli_step)
                .map(|s| s.median())
                .unwrap_or_default();
            let ratio = |m: &Median| {
                if m.bytes_out > 0 {
                    m.bytes_in as f64 / m.bytes_out as f64
                } else {
                    0.0
                }
            };
            let _ = writeln!(
                s,
                "| {} | {} | {:.2} | {:.2} | {:.1} | {:.2} | {:.2} | {:.2} | {:.2} |",
                row.zstd_level,
                row.zstd_threads,
                v.wall_s,
                v.cpu_s,
                mib(v.maxrss_max_kib),
                ratio(&v),
                c.wall_s,
                c.cpu_s,
                ratio(&c)
            );
        }
    }
    if !r.parts.is_empty() {
        let _ = writeln!(
            s,
            "\n**Multipart sweep** (`vigil-snapshot run`, {} members + radosgw)\n",
            r.members
        );
        let _ = writeln!(s, "| part_size | upload_concurrency | wall | client CPU | peak RSS |\n|---|---|---|---|---|");
        for p in &r.parts {
            let m = r.steps.get(&p.step).map(|s| s.median()).unwrap_or_default();
            let _ = writeln!(
                s,
                "| {} | {} | {:.2} | {:.2} | {:.1} |",
                p.part_size,
                p.upload_concurrency,
                m.wall_s,
                m.cpu_s,
                mib(m.maxrss_max_kib)
            );
        }
    }
    s
}

/// Markdown for several results files, with RSS flatness across sizes.
pub fn render(all: &[Results]) -> String {
    let mut s = String::new();
    for r in all {
        s.push_str(&render_one(r));
        s.push('\n');
    }
    let real: Vec<&Results> = all.iter().filter(|r| !r.smoke).collect();
    if real.len() >= 2 {
        let _ = writeln!(
            s,
            "### Peak RSS across database sizes (target: flat within 10 %)\n"
        );
        let _ = writeln!(
            s,
            "| dataset | database | peak RSS, 1 member | peak RSS, 3 members |\n|---|---|---|---|"
        );
        for r in &real {
            let _ = writeln!(
                s,
                "| {} | {:.0} MB | {:.1} MiB | {:.1} MiB |",
                r.label,
                r.dataset.db_size as f64 / 1e6,
                r.derived.peak_rss_c1_mib,
                r.derived.peak_rss_c3_mib
            );
        }
        let v: Vec<f64> = real.iter().map(|r| r.derived.peak_rss_c3_mib).collect();
        let (lo, hi) = v
            .iter()
            .fold((f64::MAX, 0.0f64), |(a, b), &x| (a.min(x), b.max(x)));
        let spread = if lo > 0.0 {
            (hi - lo) / lo * 100.0
        } else {
            0.0
        };
        let _ = writeln!(
            s,
            "\nSpread (3 members): {spread:.1} % — {}\n",
            if spread <= 10.0 { "met" } else { "**missed**" }
        );
    }
    s
}

/// Markdown for a `vigil-bench checks` results file.
pub fn render_checks(c: &crate::checks::ChecksResults) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "### Checks: health round and quota over {} subvolumes\n",
        c.subvolumes
    );
    let _ = writeln!(
        s,
        "{} Median of {} run(s); the `ceph` CLI backend: {} run(s).\n",
        measured(&c.started_at, &c.git_commit, &c.host),
        c.runs,
        c.quota_ceph.samples.len()
    );
    let _ = writeln!(
        s,
        "| check | goal | wall median (min–max) | client CPU | peak RSS | status |\n|---|---|---|---|---|---|"
    );
    let mut row = |what: &str, goal: &str, st: &Step, ok: Option<bool>| {
        let m = st.median();
        let status = match ok {
            Some(true) => "met",
            Some(false) => "**missed**",
            None => "(info)",
        };
        let _ = writeln!(
            s,
            "| {what} | {goal} | {:.2} s ({:.2}–{:.2}) | {:.2} s | {:.1} MiB | {status} |",
            m.wall_s,
            m.wall_min_s,
            m.wall_max_s,
            m.cpu_s,
            mib(m.maxrss_max_kib)
        );
    };
    let h = c.health.median().wall_s;
    row(
        &format!(
            "`vigil-health run`: {} checks (3 etcd members, API LB + 3 masters, 3 node_exporters, certificates, freshness, bastion disk)",
            c.health_checks
        ),
        "< 2 s",
        &c.health,
        Some(h < 2.0),
    );
    let x = c.quota_xattr.median().wall_s;
    row(
        &format!(
            "`vigil-quota run`, xattr backend, {} subvolumes in {} groups + `_nogroup` ({} rows)",
            c.subvolumes, c.subvolume_groups, c.rows_xattr
        ),
        "< 2 s",
        &c.quota_xattr,
        Some(x < 2.0),
    );
    row(
        &format!(
            "`vigil-quota run`, ceph CLI backend, the same {} subvolumes ({} rows)",
            c.subvolumes, c.rows_ceph
        ),
        "(info)",
        &c.quota_ceph,
        None,
    );
    let _ = writeln!(
        s,
        "\nBoth backends report the same subvolumes and quotas: {}. Creating the {} subvolumes (one `ceph` session) took {:.0} s.\n",
        if c.backends_agree { "yes" } else { "**no**" },
        c.subvolumes,
        c.create_s
    );
    let _ = writeln!(
        s,
        "Commands: `{}`; `{}`; `{}`.",
        c.health.cmd, c.quota_xattr.cmd, c.quota_ceph.cmd
    );
    s
}

/// Replaces the text between the result markers of a markdown file.
pub fn splice(doc: &str, body: &str) -> Option<String> {
    splice_between(doc, BEGIN, END, body)
}

fn splice_between(doc: &str, begin: &str, end: &str, body: &str) -> Option<String> {
    let b = doc.find(begin)? + begin.len();
    let e = doc.find(end)?;
    (b <= e).then(|| format!("{}\n{}\n{}", &doc[..b], body.trim_end(), &doc[e..]))
}
