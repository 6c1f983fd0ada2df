//! `vigil-bench prove`: what the restore proof of issue 19 costs a run.
//!
//! A 3-member etcd cluster filled by the Kubernetes-shaped generator;
//! `vigil-snapshot run` (local dir only, `max_concurrent_members = 1`) with
//! `prove_restore.enabled = false` and `true`, interleaved over the rounds.
//! Per run: wall time and CPU (`/usr/bin/time`), and every 100 ms the memory
//! the run holds: the RSS of vigil-snapshot's process tree (vigil, its
//! janitor, the scratch etcd, etcdctl) and the bytes allocated in the proof's
//! private tmpfs dir. Per member, from the manifests: the proof's
//! `duration_ms` and the snapshot's own.
//!
//! The memory sum leaves out each process's `RssShmem`: the scratch etcd
//! maps its bbolt file, which lives on the tmpfs, so those pages are already
//! counted in the tmpfs bytes (the naive sum is kept too, to show it).

use crate::gen::{self, Dataset, GenOptions};
use crate::procs::{self, Etcd};
use crate::results::{median, Host};
use crate::shared::{
    age_key, etcd_version, git_head, host, loadavg, output, prepare, rm, shell_line,
    time_cmd_watched, vigil_config, write_results,
};
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub const KIND: &str = "prove";

#[derive(Debug, Clone)]
pub struct ProveOptions {
    pub repo: PathBuf,
    pub bin_dir: PathBuf,
    pub workdir: PathBuf,
    pub keep: bool,
    pub out: PathBuf,
    pub size: u64,
    pub label: String,
    pub seed: u64,
    pub workers: usize,
    pub runs: usize,
    /// etcd cluster size (3; 1 shows one proof with nothing beside it).
    pub members: usize,
    /// The tmpfs under which the run's private proof dir is made.
    pub shm: PathBuf,
    pub interval: Duration,
    /// Before each run, wait (up to `wait_max`) for the 1-minute load
    /// average to fall below this (0: do not wait).
    pub wait_load: f64,
    pub wait_max: Duration,
    pub smoke: bool,
}

/// Memory at one instant, KiB.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct Tick {
    pub t_ms: u64,
    /// vigil-snapshot: VmRSS − RssShmem.
    pub vigil_kib: u64,
    /// Scratch etcd(s): VmRSS − RssShmem (anonymous + the binary's pages).
    pub etcd_kib: u64,
    /// The rest of the tree: etcdctl / etcdutl (the restore) and vigil's
    /// janitor (a re-exec of /proc/self/exe, so its name is `exe`).
    pub tools_kib: u64,
    /// RssShmem of the whole tree (the tmpfs pages processes have mapped).
    pub shmem_kib: u64,
    /// Bytes allocated in the proof's tmpfs dir.
    pub tmpfs_kib: u64,
    /// Scratch etcds alive, and member proof dirs holding data.
    pub etcds: u32,
    pub dirs: u32,
}

impl Tick {
    /// What the run holds in memory: the tree's RSS less its tmpfs
    /// mappings, plus the tmpfs.
    pub fn total_kib(&self) -> u64 {
        self.vigil_kib + self.etcd_kib + self.tools_kib + self.tmpfs_kib
    }
    /// ΣVmRSS + tmpfs: counts the scratch etcd's mapped db twice.
    pub fn naive_kib(&self) -> u64 {
        self.total_kib() + self.shmem_kib
    }
}

/// One member of one run, from its manifest.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct MemberRun {
    pub member: String,
    pub db_size: u64,
    pub snapshot_size: u64,
    /// The manifest's `duration_ms`: from the stream's start to the stored
    /// archive (since f065d9f without the proof; before, with it).
    pub duration_ms: u64,
    /// `restore_proof.duration_ms` (0 when off).
    pub proof_ms: u64,
    /// The stream, archive and sinks: `duration_ms` (results measured
    /// before f065d9f hold `duration_ms − proof_ms`).
    pub stream_ms: u64,
    /// `restore_proof.result` (empty when off).
    pub proof_result: String,
}

/// One `vigil-snapshot run`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RunSample {
    pub wall_s: f64,
    /// user + sys of vigil-snapshot and the children it waited for (the
    /// scratch etcd, etcdctl, the janitor).
    pub cpu_s: f64,
    /// `/usr/bin/time` %M: the largest single process of the tree.
    pub maxrss_kib: u64,
    /// CPU of the three live members meanwhile.
    pub server_cpu_s: f64,
    pub loadavg_1m: f64,
    /// `uptime` just before the run.
    pub uptime: String,
    pub members: Vec<MemberRun>,
    /// The tick with the largest `total_kib`.
    pub peak: Tick,
    pub peak_total_kib: u64,
    pub peak_naive_kib: u64,
    pub peak_vigil_kib: u64,
    pub peak_etcd_kib: u64,
    pub peak_tmpfs_kib: u64,
    pub max_etcds: u32,
    pub max_dirs: u32,
    pub ticks: Vec<Tick>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Phase {
    /// `off` or `on`.
    pub key: String,
    pub what: String,
    /// The lines added to `[snapshot]`.
    pub config: String,
    pub cmd: String,
    pub samples: Vec<RunSample>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProveResults {
    pub schema: u32,
    pub kind: String,
    pub label: String,
    pub smoke: bool,
    pub started_at: String,
    pub git_commit: String,
    pub host: Host,
    pub runs: usize,
    pub members: usize,
    pub dataset: Dataset,
    pub interval_ms: u64,
    pub proof_dir: String,
    pub phases: Vec<Phase>,
}

/// Medians over a phase's runs (and the largest peak).
#[derive(Debug, Clone, Default)]
pub struct PhaseMedian {
    pub wall_s: f64,
    pub wall_min_s: f64,
    pub wall_max_s: f64,
    pub cpu_s: f64,
    pub maxrss_kib: f64,
    pub peak_total_kib: f64,
    pub peak_total_max_kib: u64,
    pub peak_naive_kib: f64,
    pub peak_vigil_kib: f64,
    pub peak_etcd_kib: f64,
    pub peak_tmpfs_kib: f64,
    pub max_etcds: u32,
    pub max_dirs: u32,
    pub snapshot_bytes: f64,
}

impl Phase {
    pub fn median(&self) -> PhaseMedian {
        let f = |g: &dyn Fn(&RunSample) -> f64| {
            let mut v: Vec<f64> = self.samples.iter().map(g).collect();
            median(&mut v)
        };
        let walls = self.samples.iter().map(|s| s.wall_s);
        PhaseMedian {
            wall_s: f(&|s| s.wall_s),
            wall_min_s: walls.clone().fold(f64::INFINITY, f64::min),
            wall_max_s: walls.fold(0.0, f64::max),
            cpu_s: f(&|s| s.cpu_s),
            maxrss_kib: f(&|s| s.maxrss_kib as f64),
            peak_total_kib: f(&|s| s.peak_total_kib as f64),
            peak_total_max_kib: self
                .samples
                .iter()
                .map(|s| s.peak_total_kib)
                .max()
                .unwrap_or(0),
            peak_naive_kib: f(&|s| s.peak_naive_kib as f64),
            peak_vigil_kib: f(&|s| s.peak_vigil_kib as f64),
            peak_etcd_kib: f(&|s| s.peak_etcd_kib as f64),
            peak_tmpfs_kib: f(&|s| s.peak_tmpfs_kib as f64),
            max_etcds: self.samples.iter().map(|s| s.max_etcds).max().unwrap_or(0),
            max_dirs: self.samples.iter().map(|s| s.max_dirs).max().unwrap_or(0),
            snapshot_bytes: f(&|s| s.members.iter().map(|m| m.snapshot_size).sum::<u64>() as f64),
        }
    }

    /// Per member (in config order): median stream and proof seconds, and
    /// min–max of the proof.
    pub fn member_medians(&self) -> Vec<(String, f64, f64, f64, f64, u64)> {
        let names: Vec<String> = self
            .samples
            .first()
            .map(|s| s.members.iter().map(|m| m.member.clone()).collect())
            .unwrap_or_default();
        names
            .into_iter()
            .map(|n| {
                let ms: Vec<&MemberRun> = self
                    .samples
                    .iter()
                    .filter_map(|s| s.members.iter().find(|m| m.member == n))
                    .collect();
                let mut stream: Vec<f64> = ms.iter().map(|m| m.stream_ms as f64 / 1e3).collect();
                let mut proof: Vec<f64> = ms.iter().map(|m| m.proof_ms as f64 / 1e3).collect();
                let lo = proof.iter().copied().fold(f64::INFINITY, f64::min);
                let hi = proof.iter().copied().fold(0.0, f64::max);
                let mut size: Vec<f64> = ms.iter().map(|m| m.snapshot_size as f64).collect();
                let size = median(&mut size) as u64;
                (n, median(&mut stream), median(&mut proof), lo, hi, size)
            })
            .collect()
    }
}

mod sample;

use sample::{du, Sampler};

struct Bench<'a> {
    o: &'a ProveOptions,
    etcd: Etcd,
    w: PathBuf,
    recipient: String,
    clk: f64,
    proof_dir: PathBuf,
}

impl Bench<'_> {
    fn config_lines(&self, on: bool) -> String {
        // Every setting the figures depend on is explicit, whatever the
        // defaults become; the size limit is far above the dataset.
        format!(
            "max_concurrent_members = 1\nprove_restore = {{ enabled = {on}, dir = \"{}\", max_db_size = \"64GiB\", timeout = \"10m\", sample_keys = 10 }}\n",
            self.proof_dir.display()
        )
    }

    fn run(&self, key: &str, on: bool) -> Result<(RunSample, String)> {
        if self.o.wait_load > 0.0 {
            let until = Instant::now() + self.o.wait_max;
            while loadavg() >= self.o.wait_load && Instant::now() < until {
                std::thread::sleep(Duration::from_secs(2));
            }
        }
        let cfg = self.w.join(format!("vigil-{key}.toml"));
        std::fs::write(
            &cfg,
            vigil_config(
                &self.etcd.members,
                &self.w,
                &self.recipient,
                1,
                0,
                &self.config_lines(on),
            ),
        )?;
        let argv = vec![
            self.o.bin_dir.join("vigil-snapshot").display().to_string(),
            "--config".into(),
            cfg.display().to_string(),
            "run".into(),
            "--json".into(),
        ];
        let mut s = RunSample {
            loadavg_1m: loadavg(),
            uptime: output("uptime", &[]),
            ..Default::default()
        };
        let out = self.w.join("report.json");
        let cpu0 = procs::cpu_seconds(&self.etcd, self.clk);
        let (code, t, sampler) = time_cmd_watched(
            &self.w,
            &argv,
            &[("VIGIL_LOG", "warn")],
            Some(&out),
            |pid| Sampler::start(pid, self.proof_dir.clone(), self.o.interval),
        )?;
        let ticks = sampler.stop();
        s.server_cpu_s = procs::cpu_seconds(&self.etcd, self.clk) - cpu0;
        if code != 0 {
            bail!(
                "{key}: {} exited {code}: {}{}",
                shell_line(&argv),
                std::fs::read_to_string(&out).unwrap_or_default(),
                std::fs::read_to_string(self.w.join("stderr.out")).unwrap_or_default()
            );
        }
        let rep: serde_json::Value = serde_json::from_slice(&std::fs::read(&out)?)
            .with_context(|| format!("{key}: vigil-snapshot run --json printed no report"))?;
        if rep["ok"] != true {
            bail!("{key}: vigil-snapshot run failed: {rep}");
        }
        for m in rep["members"].as_array().into_iter().flatten() {
            let mf = &m["manifest"];
            let pr = &mf["restore_proof"];
            let result = pr["result"].as_str().unwrap_or("").to_string();
            if on && result != "proven" {
                bail!("{key}: member {} was not proven: {pr}", m["member"]);
            }
            if !on && !pr.is_null() {
                bail!("{key}: proofs are off, yet member {} has {pr}", m["member"]);
            }
            let duration_ms = mf["duration_ms"].as_u64().unwrap_or(0);
            let proof_ms = pr["duration_ms"].as_u64().unwrap_or(0);
            s.members.push(MemberRun {
                member: m["member"].as_str().unwrap_or("").to_string(),
                db_size: mf["db_size"].as_u64().unwrap_or(0),
                snapshot_size: mf["snapshot_size"].as_u64().unwrap_or(0),
                duration_ms,
                proof_ms,
                stream_ms: duration_ms,
                proof_result: result,
            });
        }
        if s.members.len() != self.etcd.members.len() {
            bail!("{key}: the report has {} members: {rep}", s.members.len());
        }
        self.check_clean(key)?;
        s.wall_s = t.wall_s;
        s.cpu_s = t.cpu_s;
        s.maxrss_kib = t.maxrss_kib;
        s.peak = ticks
            .iter()
            .copied()
            .max_by_key(|t| t.total_kib())
            .unwrap_or_default();
        s.peak_total_kib = s.peak.total_kib();
        s.peak_naive_kib = ticks.iter().map(|t| t.naive_kib()).max().unwrap_or(0);
        s.peak_vigil_kib = ticks.iter().map(|t| t.vigil_kib).max().unwrap_or(0);
        s.peak_etcd_kib = ticks.iter().map(|t| t.etcd_kib).max().unwrap_or(0);
        s.peak_tmpfs_kib = ticks.iter().map(|t| t.tmpfs_kib).max().unwrap_or(0);
        s.max_etcds = ticks.iter().map(|t| t.etcds).max().unwrap_or(0);
        s.max_dirs = ticks.iter().map(|t| t.dirs).max().unwrap_or(0);
        s.ticks = ticks;
        // The archives are not what is measured: each run starts alike.
        rm(&self.w.join("snapshots"));
        eprintln!(
            "  {key:<4} {:>7.2} s wall {:>7.2} s cpu  peak {:>7.1} MiB (vigil {:.1}, etcd {:.1}, tmpfs {:.1}; {} etcd, {} dirs at once)  proofs {}  load {:.2}",
            s.wall_s,
            s.cpu_s,
            s.peak_total_kib as f64 / 1024.0,
            s.peak.vigil_kib as f64 / 1024.0,
            s.peak.etcd_kib as f64 / 1024.0,
            s.peak.tmpfs_kib as f64 / 1024.0,
            s.max_etcds,
            s.max_dirs,
            s.members
                .iter()
                .map(|m| format!("{} {:.1}s", m.member, m.proof_ms as f64 / 1e3))
                .collect::<Vec<_>>()
                .join(", "),
            s.loadavg_1m
        );
        Ok((s, shell_line(&argv)))
    }

    /// Nothing of a run may outlive it: no plaintext in the proof dir, no
    /// scratch etcd (its command line names the dir).
    fn check_clean(&self, key: &str) -> Result<()> {
        let (left, _) = du(&self.proof_dir);
        let entries: Vec<PathBuf> = std::fs::read_dir(&self.proof_dir)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .collect();
        if left > 0 || !entries.is_empty() {
            bail!(
                "{key}: the run left {left} bytes in {}: {entries:?}",
                self.proof_dir.display()
            );
        }
        let dir = self.proof_dir.display().to_string();
        for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let cmd = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
            if String::from_utf8_lossy(&cmd).contains(&dir) {
                bail!(
                    "{key}: process {} still runs on {dir} after the run",
                    e.file_name().to_string_lossy()
                );
            }
        }
        Ok(())
    }
}

pub fn run(o: &ProveOptions) -> Result<ProveResults> {
    let (w, started_at) = prepare(&o.bin_dir, &["vigil-snapshot"], &o.workdir)?;
    // The proof's root: a private dir on the tmpfs, so that `du` sees this
    // run's proofs only.
    let proof_dir = o
        .shm
        .join(format!("vigil-bench-prove-{}", std::process::id()));
    rm(&proof_dir);
    std::fs::create_dir_all(&proof_dir)
        .with_context(|| format!("creating {}", proof_dir.display()))?;
    let r = measure(o, &w, started_at, &proof_dir);
    rm(&proof_dir);
    if !o.keep {
        rm(&w);
    }
    r
}

fn measure(
    o: &ProveOptions,
    w: &Path,
    started_at: String,
    proof_dir: &Path,
) -> Result<ProveResults> {
    let (_key, recipient) = age_key(w)?;
    let members = o.members;
    let quota = (o.size * 2 + (1 << 30)).min(8 << 30);
    eprintln!("starting {members} etcd members in {}", w.display());
    let etcd = procs::start_etcd(&w.join("etcd"), members, quota)?;
    eprintln!("generating {} of Kubernetes-shaped data", o.label);
    let dataset = gen::generate_blocking(&GenOptions::dataset(
        etcd.endpoints(),
        o.size,
        o.seed,
        o.workers,
        o.smoke,
    ))?;
    eprintln!(
        "dataset: db {:.1} MB, {} keys, revision {}, {:.1} s",
        dataset.db_size as f64 / 1e6,
        dataset.keys,
        dataset.revision,
        dataset.gen_seconds
    );
    let b = Bench {
        o,
        etcd,
        w: w.to_path_buf(),
        recipient,
        clk: procs::clk_tck(),
        proof_dir: proof_dir.to_path_buf(),
    };
    let mut phases: Vec<Phase> = [("off", false), ("on", true)]
        .iter()
        .map(|(k, on)| Phase {
            key: k.to_string(),
            what: if *on {
                "restore proof on".into()
            } else {
                "restore proof off".into()
            },
            config: b.config_lines(*on).trim_end().replace('\n', "; "),
            cmd: String::new(),
            samples: Vec::new(),
        })
        .collect();
    for round in 1..=o.runs {
        eprintln!("== round {round} of {}", o.runs);
        // Alternate the order, so that neither always runs after the other.
        let order: [usize; 2] = if round % 2 == 1 { [0, 1] } else { [1, 0] };
        for i in order {
            let (s, cmd) = b.run(&phases[i].key.clone(), i == 1)?;
            phases[i].cmd = cmd;
            phases[i].samples.push(s);
        }
    }
    let host = host(etcd_version());
    drop(b);
    let res = ProveResults {
        schema: crate::results::SCHEMA,
        kind: KIND.into(),
        label: o.label.clone(),
        smoke: o.smoke,
        started_at,
        git_commit: git_head(&o.repo),
        host,
        runs: o.runs,
        members,
        dataset,
        interval_ms: o.interval.as_millis() as u64,
        proof_dir: proof_dir.display().to_string(),
        phases,
    };
    write_results(&o.out, &res)?;
    Ok(res)
}
