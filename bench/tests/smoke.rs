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
    for b in ["vigil-snapshot", "vigil-restore"] {
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
