//! The benchmark harness itself runs, on a tiny dataset: real etcd, real
//! radosgw, every step once. No timed assertions: only that it completes
//! and that the results file has every field the report needs.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

const STEPS: &[&str] = &[
    "a_save",
    "sha256",
    "b_zip",
    "b_zip_put",
    "b_zstd",
    "b_age",
    "b_age_put",
    "zstd_cli_l1",
    "zstd_cli_l3",
    "c1",
    "c1_local",
    "c1_readback",
    "c3",
    "sweep_l1_t2",
    "sweep_l3_t0",
    "sweep_l3_t2",
    "parts_5MiB_c2",
    "r_fetch",
    "r_get",
    "r_age",
    "r_zstd",
    "r_etcd",
];

const DERIVED: &[&str] = &[
    "snapshot_bytes",
    "b_zip_wall_s",
    "b_zstd_wall_s",
    "c_over_a",
    "c_local_over_a",
    "c_readback_over_a",
    "c_over_b_zstd",
    "c_over_b_zip",
    "c3_over_a",
    "three_over_one",
    "vigil_cpu_per_gb",
    "reference_cpu_per_gb",
    "cpu_ratio",
    "peak_rss_c1_mib",
    "peak_rss_c3_mib",
    "restore_fetch_s",
    "restore_sequential_s",
    "restore_ratio",
    "restore_etcd_3_members_s",
    "archive_ratio",
];

/// target/debug (or wherever the workspace binaries of this build are).
fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap().to_path_buf();
    for b in ["vigil-snapshot", "vigil-restore", "vigil-journal"] {
        assert!(
            dir.join(b).exists(),
            "{} is missing: run `cargo build --workspace --bins` first",
            dir.join(b).display()
        );
    }
    dir
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// `bench/run.sh --no-build ARGS`, running this build's vigil-bench.
fn run_sh(args: &[&str]) -> Command {
    let mut c = Command::new("bash");
    c.arg(repo().join("bench/run.sh"))
        .arg("--no-build")
        .args(args)
        .env("VIGIL_BENCH", env!("CARGO_BIN_EXE_vigil-bench"));
    c
}

/// `vigil-bench report RESULTS` succeeds and its Markdown has every `want`.
fn assert_report(results: &Path, wants: &[&str]) {
    let o = Command::new(env!("CARGO_BIN_EXE_vigil-bench"))
        .arg("report")
        .arg(results)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let md = String::from_utf8_lossy(&o.stdout);
    for want in wants {
        assert!(md.contains(want), "report lacks {want:?}:\n{md}");
    }
}

/// One harness run in a fresh scratch dir: `cmd` with its own arguments
/// plus the common `--bin-dir`, `--repo`, `--workdir` and `--out`. It must
/// succeed and remove its work dir. Returns the scratch dir (the caller
/// removes it), the results file and its contents.
fn run_harness(name: &str, mut cmd: Command) -> (PathBuf, PathBuf, serde_json::Value) {
    let scratch = std::env::temp_dir().join(format!("vigil-bench-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&scratch);
    std::fs::create_dir_all(&scratch).unwrap();
    let results = scratch.join(format!("{name}.json"));
    let o = cmd
        .arg("--bin-dir")
        .arg(bin_dir())
        .arg("--repo")
        .arg(repo())
        .arg("--workdir")
        .arg(scratch.join("work"))
        .arg("--out")
        .arg(&results)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "{cmd:?} failed:\n{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        !scratch.join("work").exists(),
        "the work dir is left behind"
    );
    let r = serde_json::from_slice(&std::fs::read(&results).unwrap()).unwrap();
    (scratch, results, r)
}

#[test]
fn harness_runs_on_a_tiny_dataset() {
    let bench = env!("CARGO_BIN_EXE_vigil-bench");
    let mut cmd = run_sh(&["--size", "5MB", "--runs", "1", "--smoke"]);
    cmd.args(["--levels", "1,3", "--threads", "0,2", "--parts", "5MiB:2"]);
    let (scratch, results, r) = run_harness("smoke", cmd);
    assert_eq!(r["schema"], 1);
    assert_eq!(r["smoke"], true);
    for k in [
        "label",
        "started_at",
        "git_commit",
        "host",
        "dataset",
        "runs",
        "members",
    ] {
        assert!(!r[k].is_null(), "results lack {k}: {r}");
    }
    let ds = &r["dataset"];
    for k in ["db_size", "keys", "revision", "puts", "bytes_written"] {
        assert!(ds[k].as_f64().unwrap() > 0.0, "dataset.{k}: {ds}");
    }
    assert!(ds["db_size"].as_u64().unwrap() >= 5_000_000, "{ds}");
    for k in STEPS {
        let s = &r["steps"][k];
        assert!(s["cmd"].as_str().is_some_and(|c| !c.is_empty()), "{k}: {s}");
        let sample = &s["samples"][0];
        for f in ["wall_s", "cpu_s", "maxrss_kib", "server_cpu_s"] {
            assert!(sample[f].as_f64().is_some(), "{k}.{f}: {s}");
        }
        assert!(sample["wall_s"].as_f64().unwrap() > 0.0, "{k}: {s}");
        assert!(sample["maxrss_kib"].as_u64().unwrap() > 0, "{k}: {s}");
    }
    for k in DERIVED {
        let v = r["derived"][k].as_f64();
        assert!(v.is_some_and(|v| v > 0.0), "derived.{k}: {}", r["derived"]);
    }
    assert_eq!(r["sweep"].as_array().unwrap().len(), 4);
    assert_eq!(r["parts"].as_array().unwrap().len(), 1);

    // The report renders every table from the file.
    let o = Command::new("bash")
        .arg(repo().join("bench/run.sh"))
        .arg("report")
        .arg(&results)
        .env("VIGIL_BENCH", bench)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let md = String::from_utf8_lossy(&o.stdout);
    for want in [
        "SMOKE RUN",
        "**Targets**",
        "snapshot c/a",
        "**Snapshot steps**",
        "**Restore**",
        "**zstd level sweep**",
        "**Multipart sweep**",
    ] {
        assert!(md.contains(want), "report lacks {want:?}:\n{md}");
    }
    let _ = std::fs::remove_dir_all(&scratch);
}

/// `vigil-bench checks` on ten subvolumes: etcd, node_exporters, API stubs
/// and a real CephFS; both quota backends must agree. No timed assertions.
#[test]
fn checks_harness_runs_on_ten_subvolumes() {
    if !vigil_tests::is_root() {
        eprintln!("skipped: the CephFS harness needs root (ceph-fuse)");
        return;
    }
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_vigil-bench"));
    cmd.args(["checks", "--subvolumes", "10", "--runs", "1"]);
    let (scratch, results, r) = run_harness("checks", cmd);
    assert_eq!(r["kind"], "checks");
    assert_eq!(r["subvolumes"], 10);
    assert_eq!(r["backends_agree"], true, "{r}");
    assert!(r["health_checks"].as_u64().unwrap() >= 8, "{r}");
    for k in ["health", "quota_xattr", "quota_ceph"] {
        let s = &r[k]["samples"][0];
        assert!(s["wall_s"].as_f64().unwrap() > 0.0, "{k}: {r}");
        assert!(s["maxrss_kib"].as_u64().unwrap() > 0, "{k}: {r}");
    }
    // Both backends list every subvolume and group (10 + 4 groups at least).
    assert!(r["rows_xattr"].as_u64().unwrap() >= 14, "{r}");
    assert!(r["rows_ceph"].as_u64().unwrap() >= 14, "{r}");

    assert_report(
        &results,
        &[
            "vigil-health run",
            "xattr backend",
            "ceph CLI backend",
            "same subvolumes and quotas: yes",
        ],
    );
    let _ = std::fs::remove_dir_all(&scratch);
}

/// `vigil-bench cost` at 5 MB with one-second phases: every phase is in the
/// results with sane figures, and the report renders them. No timed
/// assertions: the figures of a tiny run mean nothing.
#[test]
fn cost_harness_runs_every_phase() {
    let mut cmd = run_sh(&["cost", "--size", "5MB", "--runs", "1", "--smoke"]);
    cmd.args([
        "--rate", "50", "--idle", "1", "--settle", "0.5", "--warmup", "1",
    ])
    .args(["--rate-limits", "20MiB"]);
    let (scratch, results, r) = run_harness("cost", cmd);
    assert_eq!(r["kind"], "cost");
    assert_eq!(r["smoke"], true);
    assert!(
        r["dataset"]["db_size"].as_u64().unwrap() >= 5_000_000,
        "{r}"
    );
    assert!(r["snapshot_bytes"].as_u64().unwrap() > 0, "{r}");
    let phases = r["phases"].as_array().unwrap();
    let keys: Vec<&str> = phases.iter().map(|p| p["key"].as_str().unwrap()).collect();
    assert_eq!(
        keys,
        [
            "idle",
            "etcdctl",
            "vigil",
            "vigil_serial",
            "vigil_rate_20MiB",
            "vigil_serial_preflight",
            "vigil_preflight"
        ],
        "{r}"
    );
    for p in phases {
        let k = p["key"].as_str().unwrap();
        let s = &p["samples"][0];
        let f = |n: &str| s[n].as_f64().unwrap_or_else(|| panic!("{k}.{n}: {s}"));
        assert!(f("requests") > 0.0, "{k}: {s}");
        assert!(f("p50_ms") > 0.0, "{k}: {s}");
        assert!(f("p99_ms") >= f("p50_ms"), "{k}: {s}");
        assert!(f("max_ms") >= f("p99_ms"), "{k}: {s}");
        assert!(f("window_s") > 0.0, "{k}: {s}");
        assert_eq!(s["db_before"].as_array().unwrap().len(), 3, "{k}: {s}");
        assert_eq!(s["db_after"].as_array().unwrap().len(), 3, "{k}: {s}");
        assert!(s["db_before"][0].as_u64().unwrap() > 0, "{k}: {s}");
        if k == "idle" {
            assert_eq!(f("backup_wall_s"), 0.0, "{k}: {s}");
        } else {
            assert!(f("backup_wall_s") > 0.0, "{k}: {s}");
            assert!(f("backup_bytes") > 0.0, "{k}: {s}");
            assert!(!p["cmd"].as_str().unwrap().is_empty(), "{k}: {p}");
        }
    }
    // vigil reads all three members, etcdctl one.
    let bytes = |i: usize| phases[i]["samples"][0]["backup_bytes"].as_u64().unwrap();
    assert!(bytes(2) >= 3 * bytes(1) * 9 / 10, "{r}");

    assert_report(
        &results,
        &[
            "SMOKE RUN",
            "What a backup costs the cluster",
            "**Trade-off: run time against p99 write latency**",
            "`max_concurrent_members = 1; preflight = false`",
            "rate_limit = \"20MiB\"",
        ],
    );
    let _ = std::fs::remove_dir_all(&scratch);
}

/// `vigil-bench prove` at 5 MB, one round: both phases run, every member
/// is proven with the proof on, the sampler saw the proof (a scratch etcd
/// and bytes in the tmpfs) only then, nothing is left in the proof dir,
/// and the report renders. No timed assertions.
#[test]
fn prove_harness_measures_both_phases() {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_vigil-bench"));
    cmd.args(["prove", "--size", "5MB", "--runs", "1", "--smoke"]);
    let (scratch, results, r) = run_harness("prove", cmd);
    assert_eq!(r["kind"], "prove");
    assert_eq!(r["smoke"], true);
    let dir = r["proof_dir"].as_str().unwrap();
    assert!(!Path::new(dir).exists(), "{dir} is left behind");
    let phases = r["phases"].as_array().unwrap();
    let keys: Vec<&str> = phases.iter().map(|p| p["key"].as_str().unwrap()).collect();
    assert_eq!(keys, ["off", "on"], "{r}");
    for p in phases {
        let on = p["key"] == "on";
        let s = &p["samples"][0];
        assert!(s["wall_s"].as_f64().unwrap() > 0.0, "{s}");
        assert!(s["peak_vigil_kib"].as_u64().unwrap() > 0, "{s}");
        assert!(!s["ticks"].as_array().unwrap().is_empty(), "{s}");
        let members = s["members"].as_array().unwrap();
        assert_eq!(members.len(), 3, "{s}");
        for m in members {
            assert!(m["snapshot_size"].as_u64().unwrap() > 0, "{m}");
            if on {
                assert_eq!(m["proof_result"], "proven", "{m}");
                assert!(m["proof_ms"].as_u64().unwrap() > 0, "{m}");
            } else {
                assert_eq!(m["proof_ms"], 0, "{m}");
            }
        }
        // Only the proof starts an etcd and writes to the tmpfs.
        assert_eq!(s["max_etcds"].as_u64().unwrap() > 0, on, "{s}");
        assert_eq!(s["peak_tmpfs_kib"].as_u64().unwrap() > 0, on, "{s}");
    }

    assert_report(
        &results,
        &[
            "What the restore proof costs: 5MB",
            "SMOKE RUN",
            "**peak memory MiB**",
            "| cp-3 |",
            "prove_restore = { enabled = true",
        ],
    );
    let _ = std::fs::remove_dir_all(&scratch);
}

/// `vigil-bench journal` (through run.sh) with tiny phases against the
/// debug binaries: a 3 s burst from 4 clients, 5 s at 200 writes/s, and
/// restores to the base, 500 events after it and the journal's end. It
/// completes, the journal holds every acknowledged write, the chain is
/// whole, the results file has every field the report needs, and the
/// report renders and splices into BENCHMARKS.md. No timed assertions.
#[test]
fn journal_harness_measures_every_phase() {
    let mut cmd = run_sh(&["journal", "--smoke", "--label", "smoke"]);
    cmd.args(["--burst", "3", "--clients", "4", "--steady", "5"])
        .args(["--rate", "200", "--sample-every", "1", "--objects", "200"])
        .args(["--restore-points", "0,500,end"]);
    let (scratch, results, r) = run_harness("journal", cmd);
    assert_eq!(r["schema"], 1);
    assert_eq!(r["kind"], "journal");
    assert_eq!(r["smoke"], true);
    for k in ["label", "started_at", "git_commit", "host"] {
        assert!(!r[k].is_null(), "results lack {k}: {r}");
    }
    let num = |v: &serde_json::Value, k: &str| {
        v[k].as_f64()
            .unwrap_or_else(|| panic!("{k} is not a number: {v}"))
    };
    let lag = |v: &serde_json::Value, k: &str| {
        for f in ["samples", "p50_ms", "p99_ms", "max_ms"] {
            num(&v[k], f);
        }
        assert!(
            num(&v[k], "p99_ms") >= num(&v[k], "p50_ms"),
            "{k}: {}",
            v[k]
        );
    };

    let su = &r["setup"];
    assert_eq!(su["members"], 3, "{su}");
    assert_eq!(su["value_bytes"], 1024, "{su}");
    assert_eq!(su["flush_default"], true, "{su}");
    for k in ["journal_config", "journal_cmd"] {
        assert!(su[k].as_str().is_some_and(|s| !s.is_empty()), "{k}: {su}");
    }
    let base = &r["base"];
    assert!(num(base, "revision") > 0.0, "{base}");
    assert!(num(base, "keys") >= 200.0, "{base}");
    assert!(num(base, "snapshot_size") > 0.0, "{base}");

    let b = &r["burst"];
    assert!(num(b, "writes") > 0.0, "{b}");
    assert_eq!(b["missing"], 0, "{b}");
    assert_eq!(b["journal_events"], b["writes"], "{b}");
    assert_eq!(b["committed_in_time"], true, "{b}");
    assert!(b["kept_up"].is_boolean(), "{b}");
    for k in [
        "duration_s",
        "etcd_rate_per_s",
        "journal_rate_per_s",
        "lag_revisions_at_end",
        "catch_up_s",
        "journal_cpu_s",
        "first_revision",
        "last_revision",
    ] {
        num(b, k);
    }
    lag(b, "receive_lag");

    let s = &r["steady"];
    assert!(num(s, "writes") > 0.0, "{s}");
    assert_eq!(s["missing"], 0, "{s}");
    assert_eq!(s["journal_events"], s["writes"], "{s}");
    assert_eq!(s["committed_in_time"], true, "{s}");
    lag(s, "receive_lag");
    lag(s, "durable_lag");
    assert_eq!(s["receive_lag"]["samples"], s["writes"], "{s}");
    assert_eq!(s["durable_lag"]["samples"], s["writes"], "{s}");
    // A segment closes after its events arrive.
    assert!(
        num(&s["durable_lag"], "p50_ms") >= num(&s["receive_lag"], "p50_ms"),
        "{s}"
    );
    for k in [
        "actual_s",
        "achieved_rate_per_s",
        "send_lag_p99_ms",
        "cpu_s",
        "cpu_per_1000_events_s",
        "cpu_pct_one_core",
        "loadavg_start",
        "loadavg_end",
    ] {
        num(s, k);
    }
    assert!(num(s, "rss_first_kib") > 0.0, "{s}");
    assert!(num(s, "rss_max_kib") >= num(s, "rss_last_kib"), "{s}");
    assert!(num(s, "hwm_kib") >= num(s, "rss_max_kib"), "{s}");
    assert!(s["rss"].as_array().unwrap().len() >= 2, "{s}");

    let t = &r["totals"];
    assert_eq!(t["chain_whole"], true, "{t}");
    assert_eq!(t["gaps"], 0, "{t}");
    assert_eq!(t["failovers"], 0, "{t}");
    assert!(num(t, "segments") >= 2.0, "{t}");
    assert!(
        num(t, "events") >= num(b, "writes") + num(s, "writes"),
        "{t}"
    );
    assert!(
        num(t, "bytes") > 0.0 && num(t, "plaintext_bytes") > 0.0,
        "{t}"
    );

    let points = r["restores"].as_array().unwrap();
    let names: Vec<&str> = points
        .iter()
        .map(|p| p["point"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["0", "500", "end"], "{r}");
    assert_eq!(points[0]["events"], 0, "{r}");
    assert_eq!(points[1]["events"], 500, "{r}");
    assert_eq!(points[2]["target_revision"], t["last_revision"], "{r}");
    for p in points {
        assert!(num(p, "wall_s") > 0.0, "{p}");
        assert!(num(p, "key_count") >= 200.0, "{p}");
        assert!(p["cmd"].as_str().unwrap().contains("--to-revision"), "{p}");
    }

    let wants = [
        "What the journal costs: smoke",
        "SMOKE RUN",
        "**Targets**",
        "(a) write rate the journal sustains",
        "(b) durable lag",
        "(c) journal CPU",
        "(d) journal RSS",
        "**(e) Restore to a point**",
        "Least squares",
    ];
    assert_report(&results, &wants);
    // `report --write` fills the journal markers of BENCHMARKS.md and
    // leaves the other sections alone.
    let doc = scratch.join("BENCHMARKS.md");
    let orig = std::fs::read_to_string(repo().join("BENCHMARKS.md")).unwrap();
    std::fs::write(&doc, &orig).unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_vigil-bench"))
        .arg("report")
        .arg(&results)
        .arg("--write")
        .arg(&doc)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let md = std::fs::read_to_string(&doc).unwrap();
    let (b, e) = (
        md.find("<!-- bench:journal:begin -->").unwrap(),
        md.find("<!-- bench:journal:end -->").unwrap(),
    );
    assert!(md[b..e].contains("What the journal costs: smoke"), "{md}");
    assert_eq!(md[..b], orig[..b]);
    let _ = std::fs::remove_dir_all(&scratch);
}
