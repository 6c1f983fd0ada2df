//! `vigil-bench cost`: what a backup costs the cluster it protects (issue 21).
//!
//! A 3-member etcd cluster, filled by the Kubernetes-shaped generator, serves
//! a steady open-loop write load (puts of 1–16 KiB values at a fixed rate over
//! the three members, a few prefix watches, an apiserver-like compaction)
//! while each phase runs one backup: none (idle), `etcdctl snapshot save`,
//! `vigil-snapshot run` with each bound. Per phase: write latency p50/p99/max
//! counted from each request's scheduled time, the members' db size before
//! and after, and the backup's own wall time.
//!
//! Pinning (2 cores): the etcd members and the load generator share the
//! etcd cores, the backup runs on the others, so vigil's zstd and age do not
//! show up as etcd latency (see BENCHMARKS.md for what that represents).

use crate::gen::{self, Dataset, GenOptions};
use crate::procs::{self, Etcd};
use crate::results::{median, Host};
use crate::shared::{
    age_key, etcd_version, git_head, host, loadavg, prepare, rm, shell_line, time_cmd,
    vigil_config, write_results,
};
use anyhow::{bail, Context, Result};
use etcd_client::Client;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::time::Instant;

pub const KIND: &str = "cost";

#[derive(Debug, Clone)]
pub struct CostOptions {
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
    /// Offered write rate, requests per second.
    pub rate: f64,
    /// Objects the load writes (created on first write, updated afterwards).
    pub objects: usize,
    pub idle_s: f64,
    pub settle_s: f64,
    /// Load before the first phase.
    pub warmup_s: f64,
    /// The `rate_limit` values of phase (e).
    pub rate_limits: Vec<String>,
    /// Phases to run (keys of `PHASES`; empty: all).
    pub phases: Vec<String>,
    /// Defragment every member before each phase, so every phase starts
    /// from the same free-page state (see `Phase::db_growth`).
    pub defrag: bool,
    pub smoke: bool,
}

/// How the cores were split.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Pinning {
    /// `taskset` CPU lists; empty: not pinned (fewer than 2 CPUs).
    pub etcd_and_load_cpus: String,
    pub backup_cpus: String,
}

/// The load every phase runs under.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Load {
    pub rate_per_s: f64,
    pub value_min_bytes: u64,
    pub value_max_bytes: u64,
    pub objects: usize,
    pub watches: usize,
    /// The load compacts away the history older than `compact_retain_s`
    /// every `compact_every_s`, like the apiserver (which compacts every
    /// 5 min; shortened to fit the phases).
    pub compact_every_s: f64,
    pub compact_retain_s: f64,
    pub request_timeout_s: f64,
}

/// One phase in one round.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PhaseSample {
    /// The backup's wall time (0 for idle).
    pub backup_wall_s: f64,
    pub backup_cpu_s: f64,
    /// The measured window: the backup plus the settle (idle: its fixed length).
    pub window_s: f64,
    /// Requests scheduled in the window, and how many failed or timed out.
    pub requests: u64,
    pub errors: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// How late the load generator itself sent (p99): if this is large, the
    /// latency above is the generator's, not etcd's.
    pub send_lag_p99_ms: f64,
    pub watch_events: u64,
    /// Every member's status dbSize (the bbolt high-water mark), in member order.
    pub db_before: Vec<u64>,
    pub db_after: Vec<u64>,
    /// CPU the etcd members spent in the window.
    pub etcd_cpu_s: f64,
    /// Snapshot bytes the backup read (all members).
    pub backup_bytes: u64,
    /// The machine's 1-minute load average when the phase began (the
    /// harness's own etcd, load and backup count too): other work on the
    /// machine shows here.
    #[serde(default)]
    pub loadavg_1m: f64,
}

impl PhaseSample {
    /// The largest growth of one member's database in the window.
    pub fn db_growth(&self) -> u64 {
        self.db_before
            .iter()
            .zip(&self.db_after)
            .map(|(b, a)| a.saturating_sub(*b))
            .max()
            .unwrap_or(0)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Phase {
    pub key: String,
    pub what: String,
    /// The backup command (empty for idle).
    pub cmd: String,
    /// The lines added to vigil's `[snapshot]` table.
    pub config: String,
    pub samples: Vec<PhaseSample>,
}

/// Medians over the rounds of one phase.
#[derive(Debug, Clone, Default)]
pub struct PhaseMedian {
    pub backup_wall_s: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub requests: f64,
    pub errors: f64,
    pub send_lag_p99_ms: f64,
    pub db_growth: f64,
    pub etcd_cpu_s: f64,
}

impl Phase {
    pub fn median(&self) -> PhaseMedian {
        let f = |g: &dyn Fn(&PhaseSample) -> f64| {
            let mut v: Vec<f64> = self.samples.iter().map(g).collect();
            median(&mut v)
        };
        PhaseMedian {
            backup_wall_s: f(&|s| s.backup_wall_s),
            p50_ms: f(&|s| s.p50_ms),
            p99_ms: f(&|s| s.p99_ms),
            max_ms: f(&|s| s.max_ms),
            requests: f(&|s| s.requests as f64),
            errors: f(&|s| s.errors as f64),
            send_lag_p99_ms: f(&|s| s.send_lag_p99_ms),
            db_growth: f(&|s| s.db_growth() as f64),
            etcd_cpu_s: f(&|s| s.etcd_cpu_s),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CostResults {
    pub schema: u32,
    pub kind: String,
    pub label: String,
    pub smoke: bool,
    pub started_at: String,
    pub git_commit: String,
    pub host: Host,
    pub runs: usize,
    pub dataset: Dataset,
    pub snapshot_bytes: u64,
    pub load: Load,
    pub pinning: Pinning,
    pub defrag_between_phases: bool,
    pub phases: Vec<Phase>,
}

/// What a phase runs.
#[derive(Debug, Clone)]
enum Backup {
    Idle,
    EtcdctlSave,
    /// `vigil-snapshot run` of all members with these `[snapshot]` lines.
    Vigil(String),
}

/// The phases, in the order they run in every round. Each vigil phase sets
/// every bound explicitly, so it measures one bound whatever the defaults are.
fn phases(o: &CostOptions) -> Vec<(String, String, Backup)> {
    let off = "max_concurrent_members = 3\npreflight = false\n";
    let mut v = vec![
        (
            "idle".to_string(),
            "idle (no backup)".to_string(),
            Backup::Idle,
        ),
        (
            "etcdctl".into(),
            "`etcdctl snapshot save`, one member".into(),
            Backup::EtcdctlSave,
        ),
        (
            "vigil".into(),
            "`vigil-snapshot run`, 3 members at once, no bound".into(),
            Backup::Vigil(off.into()),
        ),
        (
            "vigil_serial".into(),
            "vigil, `max_concurrent_members = 1`".into(),
            Backup::Vigil("max_concurrent_members = 1\npreflight = false\n".into()),
        ),
    ];
    for r in &o.rate_limits {
        v.push((
            format!("vigil_rate_{r}"),
            format!("vigil, 3 at once, `rate_limit = \"{r}\"` per member"),
            Backup::Vigil(format!("{off}rate_limit = \"{r}\"\n")),
        ));
    }
    // The two bounds that cost no run time on this machine, together.
    v.push((
        "vigil_serial_preflight".into(),
        "vigil, `max_concurrent_members = 1` + `preflight = true` (500ms)".into(),
        Backup::Vigil(
            "max_concurrent_members = 1\npreflight = true\npreflight_max_latency = \"500ms\"\n"
                .into(),
        ),
    ));
    v.push((
        "vigil_preflight".into(),
        "vigil, 3 at once, `preflight = true` (500ms)".into(),
        Backup::Vigil(
            "max_concurrent_members = 3\npreflight = true\npreflight_max_latency = \"500ms\"\n"
                .into(),
        ),
    ));
    v.into_iter()
        .filter(|(k, _, _)| o.phases.is_empty() || o.phases.iter().any(|p| p == k))
        .collect()
}

mod load;

use load::{
    window_stats, LoadGen, COMPACT_EVERY, COMPACT_RETAIN, KINDS, REQUEST_TIMEOUT, VALUE_MAX,
    VALUE_MIN,
};

/// Every member's status dbSize, in member order.
async fn db_sizes(endpoints: &[String]) -> Result<Vec<u64>> {
    let mut v = Vec::new();
    for ep in endpoints {
        let mut c = Client::connect([ep.clone()], None).await?;
        v.push(
            c.status()
                .await
                .with_context(|| format!("status {ep}"))?
                .db_size() as u64,
        );
    }
    Ok(v)
}

async fn defrag(endpoints: &[String]) -> Result<()> {
    for ep in endpoints {
        let mut c = Client::connect([ep.clone()], None).await?;
        c.defragment()
            .await
            .with_context(|| format!("defragment {ep}"))?;
    }
    Ok(())
}

/// Pins a process and all its threads to `cpus`.
fn pin(pid: u32, cpus: &str) -> Result<()> {
    let o = Command::new("taskset")
        .args(["-a", "-p", "-c", cpus, &pid.to_string()])
        .output()
        .context("running taskset (util-linux)")?;
    if !o.status.success() {
        bail!(
            "taskset -a -p -c {cpus} {pid}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    Ok(())
}

fn sleep(s: f64) {
    std::thread::sleep(Duration::from_secs_f64(s.max(0.0)));
}

struct Cost<'a> {
    o: &'a CostOptions,
    etcd: Etcd,
    w: PathBuf,
    recipient: String,
    clk: f64,
    backup_cpus: String,
    rt: tokio::runtime::Runtime,
    load: LoadGen,
}

impl Cost<'_> {
    /// The backup command of a phase, pinned to the backup cores (None: idle).
    fn command(&self, key: &str, b: &Backup) -> Result<Option<Vec<String>>> {
        let mut argv: Vec<String> = Vec::new();
        if !self.backup_cpus.is_empty() {
            argv.extend(["taskset".into(), "-c".into(), self.backup_cpus.clone()]);
        }
        match b {
            Backup::Idle => return Ok(None),
            Backup::EtcdctlSave => argv.extend([
                "etcdctl".into(),
                "--endpoints".into(),
                self.etcd.members[0].endpoint(),
                "snapshot".into(),
                "save".into(),
                self.w.join("etcdctl.db").display().to_string(),
            ]),
            Backup::Vigil(extra) => {
                let cfg = self.w.join(format!("vigil-{key}.toml"));
                std::fs::write(
                    &cfg,
                    vigil_config(&self.etcd.members, &self.w, &self.recipient, 1, 0, extra),
                )?;
                argv.extend([
                    self.o.bin_dir.join("vigil-snapshot").display().to_string(),
                    "--config".into(),
                    cfg.display().to_string(),
                    "run".into(),
                    "--json".into(),
                ]);
            }
        }
        Ok(Some(argv))
    }

    fn phase(&mut self, key: &str, b: &Backup) -> Result<(PhaseSample, String)> {
        let eps = self.etcd.endpoints();
        if self.o.defrag {
            self.rt.block_on(defrag(&eps))?;
        }
        sleep(self.o.settle_s);
        self.load.check(&self.rt)?;
        let mut s = PhaseSample {
            db_before: self.rt.block_on(db_sizes(&eps))?,
            loadavg_1m: loadavg(),
            ..Default::default()
        };
        let argv = self.command(key, b)?;
        let events0 = self.load.watch_events.load(Ordering::Relaxed);
        let cpu0 = procs::cpu_seconds(&self.etcd, self.clk);
        let from = Instant::now();
        match &argv {
            None => sleep(self.o.idle_s),
            Some(argv) => {
                let out = self.w.join("stdout.json");
                let env = [("ETCDCTL_API", "3"), ("VIGIL_LOG", "warn")];
                let (code, t) = time_cmd(&self.w, argv, &env, Some(&out))?;
                if code != 0 {
                    bail!(
                        "{key}: {} exited {code}: {}{}",
                        shell_line(argv),
                        std::fs::read_to_string(&out).unwrap_or_default(),
                        std::fs::read_to_string(self.w.join("stderr.out")).unwrap_or_default()
                    );
                }
                if let Backup::Vigil(_) = b {
                    let rep: serde_json::Value = serde_json::from_slice(&std::fs::read(&out)?)
                        .with_context(|| format!("{key}: vigil-snapshot printed no report"))?;
                    if rep["ok"] != true {
                        bail!("{key}: vigil-snapshot run failed: {rep}");
                    }
                    s.backup_bytes = rep["members"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|m| m["manifest"]["snapshot_size"].as_u64())
                        .sum();
                } else {
                    s.backup_bytes =
                        std::fs::metadata(self.w.join("etcdctl.db")).map_or(0, |m| m.len());
                }
                s.backup_wall_s = t.wall_s;
                s.backup_cpu_s = t.cpu_s;
                sleep(self.o.settle_s);
            }
        }
        let to = Instant::now();
        s.window_s = (to - from).as_secs_f64();
        s.etcd_cpu_s = procs::cpu_seconds(&self.etcd, self.clk) - cpu0;
        window_stats(&self.load, from, to, &mut s);
        s.watch_events = self.load.watch_events.load(Ordering::Relaxed) - events0;
        s.db_after = self.rt.block_on(db_sizes(&eps))?;
        rm(&self.w.join("etcdctl.db"));
        eprintln!(
            "  {key:<22} backup {:>6.2} s  p50 {:>7.2} ms  p99 {:>7.2} ms  max {:>7.2} ms  {} writes ({} failed)  lag p99 {:.2} ms  db +{:.1} MB  load {:.2}",
            s.backup_wall_s,
            s.p50_ms,
            s.p99_ms,
            s.max_ms,
            s.requests,
            s.errors,
            s.send_lag_p99_ms,
            s.db_growth() as f64 / 1e6,
            s.loadavg_1m
        );
        Ok((s, argv.map(|a| shell_line(&a)).unwrap_or_default()))
    }
}

pub fn run(o: &CostOptions) -> Result<CostResults> {
    if o.rate <= 0.0 {
        bail!("--rate must be above 0");
    }
    let (w, started_at) = prepare(&o.bin_dir, &["vigil-snapshot"], &o.workdir)?;
    let (_key, recipient) = age_key(&w)?;
    // Before the pinning below, which narrows what this process sees.
    let host = host(etcd_version());
    let quota = (o.size * 3 + (1 << 30)).min(8 << 30);
    eprintln!("starting 3 etcd members in {}", w.display());
    let etcd = procs::start_etcd(&w.join("etcd"), 3, quota)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    eprintln!("generating {} of Kubernetes-shaped data", o.label);
    // Unpinned: the generator is setup, not a measurement.
    let dataset = rt.block_on(gen::generate(&GenOptions::dataset(
        etcd.endpoints(),
        o.size,
        o.seed,
        o.workers,
        o.smoke,
    )))?;

    // etcd and the load generator (this process) on CPU 0, backups on the rest.
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let pinning = if cpus >= 2 {
        let p = Pinning {
            etcd_and_load_cpus: "0".into(),
            backup_cpus: if cpus == 2 {
                "1".into()
            } else {
                format!("1-{}", cpus - 1)
            },
        };
        for m in &etcd.members {
            pin(
                m.pid().context("etcd member not running")?,
                &p.etcd_and_load_cpus,
            )?;
        }
        pin(std::process::id(), &p.etcd_and_load_cpus)?;
        p
    } else {
        eprintln!("one CPU: nothing pinned");
        Pinning {
            etcd_and_load_cpus: String::new(),
            backup_cpus: String::new(),
        }
    };

    let load = rt.block_on(LoadGen::start(&etcd.endpoints(), o))?;
    // Warm-up: the load's objects exist and the compactor has begun to
    // free pages before the first phase.
    let warm = o.warmup_s;
    eprintln!(
        "load: {} writes/s of {}–{} KiB over {} objects, {} watches; warming up {warm:.0} s",
        o.rate,
        VALUE_MIN / 1024,
        VALUE_MAX / 1024,
        o.objects,
        KINDS.len()
    );
    sleep(warm);

    let mut c = Cost {
        o,
        etcd,
        w: w.clone(),
        recipient,
        clk: procs::clk_tck(),
        backup_cpus: pinning.backup_cpus.clone(),
        rt,
        load,
    };
    let plan = phases(o);
    if plan.is_empty() {
        bail!("--phases selects no phase");
    }
    let mut out: Vec<Phase> = plan
        .iter()
        .map(|(k, what, b)| Phase {
            key: k.clone(),
            what: what.clone(),
            cmd: String::new(),
            config: match b {
                Backup::Vigil(x) => x.trim_end().replace('\n', "; "),
                _ => String::new(),
            },
            samples: Vec::new(),
        })
        .collect();
    let mut snapshot_bytes = 0;
    for round in 1..=o.runs {
        eprintln!("== round {round} of {}", o.runs);
        for (i, (k, _, b)) in plan.iter().enumerate() {
            let (s, cmd) = c.phase(k, b)?;
            let s_bytes = s.backup_bytes;
            out[i].cmd = cmd;
            out[i].samples.push(s);
            if let Backup::EtcdctlSave = b {
                snapshot_bytes = snapshot_bytes.max(s_bytes);
            }
        }
    }
    let Cost { rt, load, etcd, .. } = c;
    rt.block_on(load.stop())?;
    drop(etcd);
    let res = CostResults {
        schema: crate::results::SCHEMA,
        kind: KIND.into(),
        label: o.label.clone(),
        smoke: o.smoke,
        started_at,
        git_commit: git_head(&o.repo),
        host,
        runs: o.runs,
        dataset,
        snapshot_bytes,
        load: Load {
            rate_per_s: o.rate,
            value_min_bytes: VALUE_MIN,
            value_max_bytes: VALUE_MAX,
            objects: o.objects,
            watches: KINDS.len(),
            compact_every_s: COMPACT_EVERY.as_secs_f64(),
            compact_retain_s: COMPACT_RETAIN.as_secs_f64(),
            request_timeout_s: REQUEST_TIMEOUT.as_secs_f64(),
        },
        pinning,
        defrag_between_phases: o.defrag,
        phases: out,
    };
    write_results(&o.out, &res)?;
    if !o.keep {
        rm(&w);
    }
    Ok(res)
}
