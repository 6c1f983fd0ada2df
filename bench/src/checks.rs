//! `vigil-bench checks`: the health round (three etcd members, the API
//! through the load balancer and per master, three node_exporters) and the
//! quota round over N CephFS subvolumes with both backends.

use crate::procs;
use crate::results::*;
use crate::shared::{
    age_key, etcd_version, git_head, host, prepare, rm, shell_line, time_cmd, write_results,
};
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use vigil_tests::cephfs::CephFs;
use vigil_tests::health::{node_exporter, Mode, Readyz};

#[derive(Debug, Clone)]
pub struct ChecksOptions {
    pub repo: PathBuf,
    pub bin_dir: PathBuf,
    pub workdir: PathBuf,
    pub keep: bool,
    pub out: PathBuf,
    pub runs: usize,
    /// Rounds of the slow `ceph` CLI backend (one process per subvolume).
    pub ceph_runs: usize,
    pub subvolumes: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ChecksResults {
    pub schema: u32,
    pub kind: String,
    pub started_at: String,
    pub git_commit: String,
    pub host: Host,
    pub runs: usize,
    /// `vigil-health run`: 3 members, API (LB + 3 masters), 3 node_exporters.
    pub health: Step,
    /// Checks in one health round.
    pub health_checks: usize,
    pub subvolumes: usize,
    pub subvolume_groups: usize,
    /// Time to create the subvolumes (one `ceph` session), for scale.
    pub create_s: f64,
    pub quota_xattr: Step,
    pub quota_ceph: Step,
    /// Rows (subvolumes and groups) each backend reported.
    pub rows_xattr: usize,
    pub rows_ceph: usize,
    /// Both backends report the same subvolumes with the same quotas.
    pub backends_agree: bool,
}

pub const KIND: &str = "checks";

/// Times `argv` `runs` times; every run must exit with one of `ok_codes`.
/// Returns the step and the last run's stdout.
fn rounds(w: &Path, argv: &[String], runs: usize, ok_codes: &[i32]) -> Result<(Step, String)> {
    let mut step = Step {
        cmd: shell_line(argv),
        samples: Vec::new(),
    };
    let out = w.join("stdout.json");
    let mut last = String::new();
    for i in 1..=runs {
        let (code, s) = time_cmd(w, argv, &[("VIGIL_LOG", "warn")], Some(&out))?;
        last = std::fs::read_to_string(&out).unwrap_or_default();
        if !ok_codes.contains(&code) {
            bail!(
                "{} exited {code}: {}{}",
                step.cmd,
                last,
                std::fs::read_to_string(w.join("stderr.out")).unwrap_or_default()
            );
        }
        eprintln!(
            "  run {i}: {:.2} s wall, {:.2} s cpu, {:.1} MiB rss",
            s.wall_s,
            s.cpu_s,
            s.maxrss_kib as f64 / 1024.0
        );
        step.samples.push(s);
    }
    Ok((step, last))
}

/// `BIN --config CFG run --json`
fn run_json(o: &ChecksOptions, bin: &str, cfg: &Path) -> Vec<String> {
    vec![
        o.bin_dir.join(bin).display().to_string(),
        "--config".into(),
        cfg.display().to_string(),
        "run".into(),
        "--json".into(),
    ]
}

fn base_config(w: &Path, members: &str, recipient: &str) -> String {
    format!(
        "[cluster]\nname = \"prod\"\nmembers = [\n{members}]\n\n[snapshot]\ndir = \"{}\"\nage_recipients = [\"{recipient}\"]\n\n[state]\ndir = \"{}\"\n",
        w.join("snapshots").display(),
        w.join("state").display()
    )
}

/// A healthy round: fresh archives, every peer up. Returns the step and the
/// number of checks it ran.
fn health(o: &ChecksOptions, w: &Path) -> Result<(Step, usize)> {
    let etcd = procs::start_etcd(&w.join("etcd"), 3, 2 << 30)?;
    let ports: Vec<u16> = (0..3).map(|_| vigil_tests::free_port()).collect();
    let nodes: Vec<_> = ports.iter().map(|&p| node_exporter(p)).collect();
    let api: Vec<Readyz> = (0..4).map(|_| Readyz::start(Mode::Ok, None)).collect();
    let members = procs::members_toml(&etcd.members);
    let mut cfg = base_config(w, &members, &age_key(w)?.1);
    let masters: Vec<String> = api[1..]
        .iter()
        .map(|r| format!("\"{}\"", r.url()))
        .collect();
    cfg.push_str(&format!(
        "\n[health.kubernetes]\nlb = \"{}\"\nmasters = [{}]\n",
        api[0].url(),
        masters.join(", ")
    ));
    // The harness's own load (three etcd members and the rounds before)
    // and the host's free space are not what this round measures.
    cfg.push_str("\n[health.node]\nload_per_core_warn = 100.0\nload_per_core_critical = 200.0\nfs_free_warn_percent = 0.0\nfs_free_critical_percent = 0.0\ntargets = [\n");
    for (i, p) in ports.iter().enumerate() {
        cfg.push_str(&format!(
            "  {{ name = \"cp-{}\", url = \"http://127.0.0.1:{p}\" }},\n",
            i + 1
        ));
    }
    cfg.push_str("]\n");
    cfg.push_str("\n[health.bastion]\nfree_warn_percent = 0.0\nfree_critical_percent = 0.0\n");
    let path = w.join("vigil-health.toml");
    std::fs::write(&path, cfg)?;
    // Fresh archives, so that the freshness check passes.
    let snap = Command::new(o.bin_dir.join("vigil-snapshot"))
        .arg("--config")
        .arg(&path)
        .arg("run")
        .env("VIGIL_LOG", "warn")
        .output()?;
    if !snap.status.success() {
        bail!(
            "vigil-snapshot run before the health round failed: {}",
            String::from_utf8_lossy(&snap.stderr)
        );
    }
    eprintln!("health round: vigil-health run, {} rounds", o.runs);
    let (step, last) = rounds(w, &run_json(o, "vigil-health", &path), o.runs, &[0])?;
    let rep: serde_json::Value =
        serde_json::from_str(&last).context("vigil-health run --json printed no report")?;
    let checks = rep["findings"].as_array().map_or(0, |a| a.len());
    drop(api);
    drop(nodes);
    Ok((step, checks))
}

/// (group, subvolume, quota)
type Subvolume = (String, String, Option<u64>);

/// The row count, and every subvolume row, of a `vigil-quota run --json` report.
fn subvolumes(report: &str) -> Result<(usize, BTreeSet<Subvolume>)> {
    let v: serde_json::Value =
        serde_json::from_str(report).context("vigil-quota run --json printed no report")?;
    if let Some(e) = v["errors"].as_array().filter(|e| !e.is_empty()) {
        bail!("vigil-quota reported errors: {e:?}");
    }
    let rows = v["rows"].as_array().cloned().unwrap_or_default();
    let set = rows
        .iter()
        .filter_map(|r| {
            Some((
                r["group"].as_str()?.to_string(),
                r["subvolume"].as_str()?.to_string(),
                r["quota"].as_u64(),
            ))
        })
        .collect();
    Ok((rows.len(), set))
}

struct Quota {
    create_s: f64,
    groups: usize,
    xattr: Step,
    ceph: Step,
    rows_xattr: usize,
    rows_ceph: usize,
    agree: bool,
}

/// N subvolumes over four groups and `_nogroup`; one in ten has no quota,
/// one in ten holds a little data.
fn quota(o: &ChecksOptions, w: &Path) -> Result<Quota> {
    eprintln!("starting CephFS in {}", w.join("cephfs").display());
    let fs = CephFs::start(&w.join("cephfs"));
    let groups = ["_nogroup", "team-a", "team-b", "team-c", "team-d"];
    for g in &groups[1..] {
        fs.create_group(g, Some(50 << 30));
    }
    let t0 = std::time::Instant::now();
    let mut script = String::new();
    for i in 0..o.subvolumes {
        let g = groups[i % groups.len()];
        script.push_str(&format!("fs subvolume create {} sv-{i:05}", fs.volume));
        if i % 10 != 3 {
            script.push_str(&format!(" --size {}", (1u64 << 30) + i as u64 * 4096));
        }
        if g != "_nogroup" {
            script.push_str(&format!(" --group_name {g}"));
        }
        script.push('\n');
    }
    let mut ceph = Command::new("ceph")
        .arg("-c")
        .arg(&fs.conf)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("running ceph (Debian ceph-common)")?;
    ceph.stdin
        .take()
        .context("ceph stdin")?
        .write_all(script.as_bytes())?;
    let done = ceph.wait_with_output()?;
    if !done.status.success() {
        bail!(
            "creating subvolumes: {}",
            String::from_utf8_lossy(&done.stderr)
        );
    }
    let create_s = t0.elapsed().as_secs_f64();
    eprintln!("created {} subvolumes in {create_s:.1} s", o.subvolumes);
    for i in (0..o.subvolumes).step_by(10) {
        let g = groups[i % groups.len()];
        let mut a = vec!["fs", "subvolume", "getpath", &fs.volume];
        let name = format!("sv-{i:05}");
        a.push(&name);
        if g != "_nogroup" {
            a.extend(["--group_name", g]);
        }
        let p = fs.ceph_ok(&a);
        vigil_tests::cephfs::write_file(
            &fs.mnt.join(p.trim_start_matches('/')).join("data"),
            64 << 10,
        )?;
    }
    let mut ws = Vec::new();
    for backend in ["xattr", "ceph"] {
        let mut cfg = base_config(
            w,
            "  { name = \"cp-1\", endpoint = \"http://127.0.0.1:1\" },\n",
            "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p",
        );
        cfg.push_str(&format!(
            "\n[quota]\nbackend = \"{backend}\"\ntimeout = \"120s\"\n\n[quota.ceph]\nconf = \"{}\"\nkeyring = \"{}\"\nclient_id = \"admin\"\n\n[quota.xattr]\nmounts = {{ {} = \"{}\" }}\n",
            fs.conf.display(),
            fs.keyring.display(),
            fs.volume,
            fs.mnt.display()
        ));
        let path = w.join(format!("vigil-quota-{backend}.toml"));
        std::fs::write(&path, cfg)?;
        eprintln!(
            "quota round: vigil-quota run, {backend} backend, {} subvolumes",
            o.subvolumes
        );
        let argv = run_json(o, "vigil-quota", &path);
        let runs = if backend == "ceph" {
            o.ceph_runs
        } else {
            o.runs
        };
        // Exit 1: unlimited subvolumes are flagged, which is a finding, not a failure to check.
        let (step, last) = rounds(w, &argv, runs, &[0, 1])?;
        let (rows, set) = subvolumes(&last)?;
        if set.len() != o.subvolumes {
            bail!(
                "vigil-quota ({backend}) reported {} subvolumes, expected {}",
                set.len(),
                o.subvolumes
            );
        }
        ws.push((step, rows, set));
    }
    let (c, x) = (ws.pop().context("ceph")?, ws.pop().context("xattr")?);
    Ok(Quota {
        create_s,
        groups: groups.len() - 1,
        agree: x.2 == c.2,
        rows_xattr: x.1,
        rows_ceph: c.1,
        xattr: x.0,
        ceph: c.0,
    })
}

pub fn run(o: &ChecksOptions) -> Result<ChecksResults> {
    let (w, started_at) = prepare(
        &o.bin_dir,
        &["vigil-snapshot", "vigil-health", "vigil-quota"],
        &o.workdir,
    )?;
    let (health, health_checks) = health(o, &w.join("health"))?;
    let q = quota(o, &w.join("quota"))?;
    let res = ChecksResults {
        schema: SCHEMA,
        kind: KIND.into(),
        started_at,
        git_commit: git_head(&o.repo),
        host: host(etcd_version()),
        runs: o.runs,
        health,
        health_checks,
        subvolumes: o.subvolumes,
        subvolume_groups: q.groups,
        create_s: q.create_s,
        quota_xattr: q.xattr,
        quota_ceph: q.ceph,
        rows_xattr: q.rows_xattr,
        rows_ceph: q.rows_ceph,
        backends_agree: q.agree,
    };
    write_results(&o.out, &res)?;
    if !o.keep {
        rm(&w);
    }
    Ok(res)
}
