//! `vigil-bench journal`: what the watch journal (`vigil-journal run`,
//! issue 17) costs on this machine, and how far behind the cluster it is.
//!
//! A 3-member etcd cluster on loopback, seeded with `--objects` keys of
//! 1 KiB; `vigil-snapshot run` once (the base), then `vigil-journal run` as
//! a child, with `[journal]` at its defaults (only `dir` is set). Then:
//!
//! - (a) **burst**: `--clients` clients, one connection each over the three
//!   members, put 1 KiB values as fast as etcd answers for `--burst` s: the
//!   rate etcd took, the events the journal holds for them and its rate, the
//!   writes it had not received when the burst ended and how long it took to
//!   receive the last one;
//! - (b) **steady**: an open-loop writer at `--rate` for `--steady` s records
//!   each put's revision and ack time; per revision, the **receive lag**
//!   (the event's `received_at` − the ack) and the **durable lag** (when the
//!   segment holding it was closed, its manifest's `created_at`, − the ack),
//!   which `journal.flush` bounds;
//! - (c) the journal's CPU over the steady phase (`/proc/<pid>/stat`
//!   utime + stime), per 1000 events and as % of one core;
//! - (d) its VmRSS every `--sample-every` s over the steady phase, and VmHWM
//!   at its end;
//! - (e) after SIGTERM: `vigil-restore fetch --to-revision R --source local`
//!   timed for R `--restore-points` events after the base.
//!
//! The segments are read back without vigil (the `age` and `zstd` CLIs and
//! the bench's identity). A compactor keeps 60 s of etcd history, never past
//! the newest revision in a closed segment, so that long runs stay within
//! the disk and the quota without the bench ever making a gap.

mod decode;
mod write;

use crate::procs;
use crate::results::{percentile, Host};
use crate::shared::{
    age_key, etcd_version, git_head, host, loadavg, prepare, rm, shell_line, time_cmd,
    vigil_config, write_results,
};
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use write::{Ack, Written};

pub const KIND: &str = "journal";
/// The goals: (a) writes/s with 1 KiB values, (b) p99 lag, (c) CPU.
pub const GOAL_RATE: f64 = 2000.0;
pub const GOAL_LAG_S: f64 = 2.0;
pub const GOAL_CPU_PCT: f64 = 10.0;
/// `journal.flush` when the config does not set it.
const DEFAULT_FLUSH_S: f64 = 10.0;
const MEMBERS: usize = 3;
const QUOTA: u64 = 8 << 30;

/// A restore point: this many events after the base snapshot, or the
/// journal's end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PointSpec {
    Events(u64),
    End,
}

impl std::str::FromStr for PointSpec {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim() {
            "end" => Ok(PointSpec::End),
            n => n
                .parse()
                .map(PointSpec::Events)
                .map_err(|_| format!("{s:?}: a number of events after the snapshot, or `end`")),
        }
    }
}

#[derive(Debug, Clone)]
pub struct JournalOptions {
    pub repo: PathBuf,
    pub bin_dir: PathBuf,
    pub workdir: PathBuf,
    pub keep: bool,
    pub out: PathBuf,
    pub label: String,
    pub seed: u64,
    /// Keys the writers write over (and the base snapshot holds).
    pub objects: u64,
    /// etcd clients (connections) of the burst and the steady writer.
    pub clients: usize,
    pub burst_s: f64,
    /// Steady write rate, puts per second.
    pub rate: f64,
    pub steady_s: f64,
    pub sample_s: f64,
    /// `journal.flush` in seconds (None: the journal's default).
    pub flush_s: Option<f64>,
    /// `journal.max_local` (None: the journal's default, 4GiB).
    pub max_local: Option<String>,
    /// How long to wait for the journal to close the last revision of a phase.
    pub catch_up_max_s: f64,
    pub restore_points: Vec<PointSpec>,
    pub smoke: bool,
}

/// What every phase ran against.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Setup {
    pub members: usize,
    pub value_bytes: u64,
    pub objects: u64,
    pub clients: usize,
    pub flush_s: f64,
    /// Whether `flush` is the journal's default (not in the config).
    pub flush_default: bool,
    /// The `[journal]` table as written.
    pub journal_config: String,
    pub journal_cmd: String,
    pub compact_every_s: f64,
    pub compact_retain_s: f64,
    pub compactions: u64,
    pub request_timeout_s: f64,
}

/// The base snapshot (`vigil-snapshot run` of the three members).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Base {
    /// The newest revision of the archives: the journal starts after it.
    pub revision: i64,
    pub keys: i64,
    pub db_size: u64,
    pub snapshot_size: u64,
    pub wall_s: f64,
    pub cmd: String,
}

/// Percentiles of a lag, ms (nearest rank).
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct Lag {
    pub samples: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl Lag {
    fn of(mut v: Vec<f64>) -> Lag {
        v.sort_by(|a, b| a.total_cmp(b));
        Lag {
            samples: v.len() as u64,
            p50_ms: percentile(&v, 0.50),
            p99_ms: percentile(&v, 0.99),
            max_ms: v.last().copied().unwrap_or(0.0),
        }
    }
}

/// (a): as fast as etcd answers.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Burst {
    pub requested_s: f64,
    pub duration_s: f64,
    pub clients: usize,
    pub writes: u64,
    pub errors: u64,
    pub etcd_rate_per_s: f64,
    pub first_revision: i64,
    pub last_revision: i64,
    /// Events the journal holds for the burst's writes, and the writes it lacks.
    pub journal_events: u64,
    pub missing: u64,
    /// Those events over the time from the burst's start to the receipt
    /// of the last of them.
    pub journal_rate_per_s: f64,
    /// Writes acknowledged but not yet received when the burst ended.
    pub lag_revisions_at_end: u64,
    /// From the burst's last ack to the receipt of its last write (0: none behind).
    pub catch_up_s: f64,
    /// Nothing missing and caught up within the lag goal.
    pub kept_up: bool,
    pub receive_lag: Lag,
    /// The wait until a closed segment held the last write (up to `flush`
    /// more than the catch-up), and whether it came within --catch-up-max.
    pub committed_wait_s: f64,
    pub committed_in_time: bool,
    pub journal_cpu_s: f64,
    pub loadavg_1m: f64,
}

/// The journal's memory at one instant, KiB.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct RssTick {
    pub t_s: f64,
    pub rss_kib: u64,
}

/// (b), (c), (d): at a steady rate.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Steady {
    pub target_rate_per_s: f64,
    pub requested_s: f64,
    /// The measured window: from the first put to the last answer.
    pub actual_s: f64,
    pub scheduled: u64,
    pub writes: u64,
    pub errors: u64,
    pub achieved_rate_per_s: f64,
    /// How late the writer sent (p99): large means the figures are the writer's.
    pub send_lag_p99_ms: f64,
    pub journal_events: u64,
    pub missing: u64,
    pub receive_lag: Lag,
    pub durable_lag: Lag,
    pub cpu_s: f64,
    pub cpu_per_1000_events_s: f64,
    pub cpu_pct_one_core: f64,
    pub rss_first_kib: u64,
    pub rss_last_kib: u64,
    pub rss_max_kib: u64,
    /// VmHWM at the end: the peak since the journal started, burst included.
    pub hwm_kib: u64,
    pub sample_every_s: f64,
    pub rss: Vec<RssTick>,
    pub loadavg_start: f64,
    pub loadavg_end: f64,
    pub committed_wait_s: f64,
    pub committed_in_time: bool,
}

/// The journal as read back after SIGTERM.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Totals {
    pub segments: u64,
    pub events: u64,
    pub first_revision: i64,
    pub last_revision: i64,
    /// Segment bytes (ciphertext) and JSON lines inside.
    pub bytes: u64,
    pub plaintext_bytes: u64,
    pub gaps: u64,
    /// `vigil-journal verify`: the chain and every segment's sha256.
    pub chain_whole: bool,
    pub verify: String,
    /// "moving to the next member" in the journal's log.
    pub failovers: u64,
}

/// (e): one `vigil-restore fetch --to-revision`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RestoreSample {
    /// `--restore-points` entry: events after the base, or `end`.
    pub point: String,
    pub target_revision: i64,
    /// From the fetch's report.
    pub events: u64,
    pub revisions: u64,
    pub segments: u64,
    pub duration_ms: u64,
    pub key_count: i64,
    pub wall_s: f64,
    pub cpu_s: f64,
    pub maxrss_kib: u64,
    pub cmd: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JournalResults {
    pub schema: u32,
    pub kind: String,
    pub label: String,
    pub smoke: bool,
    pub started_at: String,
    pub git_commit: String,
    pub host: Host,
    pub setup: Setup,
    pub base: Base,
    pub burst: Burst,
    pub steady: Steady,
    pub totals: Totals,
    pub restores: Vec<RestoreSample>,
}

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s.max(0.0))
}

/// A `/proc/<pid>/status` field in KiB (0 if gone).
fn status_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
        })
        .unwrap_or(0)
}

/// `vigil-journal run`, a child of the bench: SIGTERM at the end, killed
/// if the bench fails first.
struct JournalProc {
    child: Child,
    log: PathBuf,
}

impl JournalProc {
    fn start(argv: &[String], log: &Path) -> Result<JournalProc> {
        let child = Command::new(&argv[0])
            .args(&argv[1..])
            .env("VIGIL_LOG", "info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log)?)
            .spawn()
            .with_context(|| format!("starting {}", shell_line(argv)))?;
        Ok(JournalProc {
            child,
            log: log.to_path_buf(),
        })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn tail(&self) -> String {
        let l = self.log();
        let lines: Vec<&str> = l.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// Fails if the journal is no longer running.
    fn check(&mut self) -> Result<()> {
        if let Some(st) = self.child.try_wait()? {
            bail!(
                "vigil-journal exited ({st}); its log ends:\n{}",
                self.tail()
            );
        }
        Ok(())
    }

    fn wait_following(&mut self, max: Duration) -> Result<()> {
        let until = Instant::now() + max;
        while !self.log().contains("journal: following member") {
            self.check()?;
            if Instant::now() > until {
                bail!(
                    "vigil-journal follows no member after {max:?}; its log ends:\n{}",
                    self.tail()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(())
    }

    fn cpu_s(&self, clk: f64) -> f64 {
        procs::proc_cpu_ticks(self.pid()).unwrap_or(0) as f64 / clk
    }

    /// SIGTERM (the journal closes its open segment) and the wait for it.
    fn stop(&mut self, max: Duration) -> Result<()> {
        let st = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()?;
        if !st.success() {
            bail!("kill -TERM {} failed", self.pid());
        }
        let until = Instant::now() + max;
        loop {
            if let Some(st) = self.child.try_wait()? {
                if !st.success() {
                    bail!(
                        "vigil-journal exited {st} on SIGTERM; its log ends:\n{}",
                        self.tail()
                    );
                }
                return Ok(());
            }
            if Instant::now() > until {
                bail!("vigil-journal did not stop within {max:?} of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for JournalProc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Waits until a closed segment in `dir` holds `rev`, for at most `max_s`.
/// Returns whether it did, and how long it took.
fn wait_committed(j: &mut JournalProc, dir: &Path, rev: i64, max_s: f64) -> Result<(bool, f64)> {
    let from = Instant::now();
    loop {
        if decode::committed(dir).is_some_and(|c| c >= rev) {
            return Ok((true, from.elapsed().as_secs_f64()));
        }
        j.check()?;
        if from.elapsed().as_secs_f64() > max_s {
            eprintln!("  the journal did not close revision {rev} within {max_s:.0} s");
            return Ok((false, from.elapsed().as_secs_f64()));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The `[journal]` table: the defaults, but for the dir (and `--flush`,
/// `--max-local`).
fn journal_table(o: &JournalOptions, dir: &Path) -> String {
    let mut s = format!("[journal]\ndir = \"{}\"\n", dir.display());
    if let Some(f) = o.flush_s {
        s.push_str(&format!("flush = \"{}ms\"\n", (f * 1e3).round() as u64));
    }
    if let Some(m) = &o.max_local {
        s.push_str(&format!("max_local = \"{m}\"\n"));
    }
    s
}

/// Each write with the time the journal received it and closed it, if it did.
fn matched<'a>(
    acks: &'a [Ack],
    recv: &'a decode::Received,
) -> impl Iterator<Item = (Ack, i64, i64)> + 'a {
    acks.iter()
        .filter_map(|a| recv.get(a.revision).map(|(r, c)| (*a, r, c)))
}

fn burst_figures(o: &JournalOptions, w: &Written, recv: &decode::Received) -> Burst {
    let got: Vec<(Ack, i64, i64)> = matched(&w.acks, recv).collect();
    let writes = w.acks.len() as u64;
    let end_ms = w.acks.iter().map(|a| a.ack_ms).fold(w.started_ms, f64::max);
    let last_received = got.iter().map(|g| g.1 as f64).fold(w.started_ms, f64::max);
    let span_s = (last_received - w.started_ms) / 1e3;
    let missing = writes - got.len() as u64;
    let catch_up_s = ((last_received - end_ms) / 1e3).max(0.0);
    Burst {
        requested_s: o.burst_s,
        duration_s: w.elapsed_s,
        clients: o.clients,
        writes,
        errors: w.errors,
        etcd_rate_per_s: writes as f64 / w.elapsed_s.max(1e-9),
        first_revision: w.acks.first().map_or(0, |a| a.revision),
        last_revision: w.acks.last().map_or(0, |a| a.revision),
        journal_events: got.len() as u64,
        missing,
        journal_rate_per_s: if span_s > 0.0 {
            got.len() as f64 / span_s
        } else {
            0.0
        },
        lag_revisions_at_end: missing + got.iter().filter(|g| g.1 as f64 > end_ms).count() as u64,
        catch_up_s,
        kept_up: missing == 0 && catch_up_s <= GOAL_LAG_S,
        receive_lag: Lag::of(got.iter().map(|g| g.1 as f64 - g.0.ack_ms).collect()),
        ..Default::default()
    }
}

fn steady_figures(o: &JournalOptions, w: &Written, recv: &decode::Received) -> Steady {
    let got: Vec<(Ack, i64, i64)> = matched(&w.acks, recv).collect();
    let mut lag = w.send_lag_ms.clone();
    lag.sort_by(|a, b| a.total_cmp(b));
    Steady {
        target_rate_per_s: o.rate,
        requested_s: o.steady_s,
        scheduled: w.scheduled,
        writes: w.acks.len() as u64,
        errors: w.errors,
        achieved_rate_per_s: w.acks.len() as f64 / w.elapsed_s.max(1e-9),
        send_lag_p99_ms: percentile(&lag, 0.99),
        journal_events: got.len() as u64,
        missing: (w.acks.len() - got.len()) as u64,
        receive_lag: Lag::of(got.iter().map(|g| g.1 as f64 - g.0.ack_ms).collect()),
        durable_lag: Lag::of(got.iter().map(|g| g.2 as f64 - g.0.ack_ms).collect()),
        sample_every_s: o.sample_s,
        ..Default::default()
    }
}

pub fn run(o: &JournalOptions) -> Result<JournalResults> {
    if o.rate <= 0.0 || o.burst_s <= 0.0 || o.steady_s <= 0.0 || o.sample_s <= 0.0 {
        bail!("--rate, --burst, --steady and --sample-every must be above 0");
    }
    let (w, started_at) = prepare(
        &o.bin_dir,
        &["vigil-snapshot", "vigil-journal", "vigil-restore"],
        &o.workdir,
    )?;
    let r = measure(o, &w, started_at);
    if !o.keep {
        rm(&w);
    }
    r
}

fn bin(o: &JournalOptions, name: &str) -> String {
    o.bin_dir.join(name).display().to_string()
}

fn measure(o: &JournalOptions, w: &Path, started_at: String) -> Result<JournalResults> {
    let (key, recipient) = age_key(w)?;
    let host = host(etcd_version());
    eprintln!("starting {MEMBERS} etcd members in {}", w.display());
    let etcd = procs::start_etcd(&w.join("etcd"), MEMBERS, QUOTA)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let clients = rt.block_on(write::connect(&etcd.endpoints(), o.clients))?;
    eprintln!("seeding {} keys of 1 KiB", o.objects);
    rt.block_on(write::seed(&clients[0], o.objects, o.seed))?;

    let jdir = w.join("journal");
    let table = journal_table(o, &jdir);
    let cfg = w.join("vigil.toml");
    let metrics = w.join("metrics");
    std::fs::create_dir_all(&metrics)?;
    std::fs::write(
        &cfg,
        format!(
            "{}\n{table}\n[metrics]\ntextfile_dir = \"{}\"\n",
            vigil_config(&etcd.members, w, &recipient, 1, 0, ""),
            metrics.display()
        ),
    )?;
    let cfg_s = cfg.display().to_string();
    let key_s = key.display().to_string();

    // The base.
    let argv: Vec<String> = vec![
        bin(o, "vigil-snapshot"),
        "--config".into(),
        cfg_s.clone(),
        "run".into(),
        "--json".into(),
    ];
    let out = w.join("snapshot.json");
    let (code, t) = time_cmd(w, &argv, &[("VIGIL_LOG", "warn")], Some(&out))?;
    let rep: serde_json::Value = serde_json::from_slice(&std::fs::read(&out)?).unwrap_or_default();
    if code != 0 || rep["ok"] != true {
        bail!(
            "{} exited {code}: {rep}{}",
            shell_line(&argv),
            std::fs::read_to_string(w.join("stderr.out")).unwrap_or_default()
        );
    }
    let manifests: Vec<&serde_json::Value> = rep["members"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|m| &m["manifest"])
        .collect();
    let max_of = |f: &str| manifests.iter().filter_map(|m| m[f].as_i64()).max();
    let base = Base {
        revision: max_of("revision").context("the snapshot report has no revision")?,
        keys: max_of("key_count").unwrap_or(0),
        db_size: max_of("db_size").unwrap_or(0) as u64,
        snapshot_size: max_of("snapshot_size").unwrap_or(0) as u64,
        wall_s: t.wall_s,
        cmd: shell_line(&argv),
    };
    eprintln!(
        "base snapshot: revision {}, {} keys, {:.1} MB",
        base.revision,
        base.keys,
        base.snapshot_size as f64 / 1e6
    );

    // The journal.
    let jargv: Vec<String> = vec![
        bin(o, "vigil-journal"),
        "--config".into(),
        cfg_s.clone(),
        "--log-format".into(),
        "text".into(),
        "run".into(),
    ];
    let mut j = JournalProc::start(&jargv, &w.join("journal.log"))?;
    j.wait_following(Duration::from_secs(60))?;
    let stop = Arc::new(AtomicBool::new(false));
    let compactor = rt.spawn(write::compactor(
        clients[0].clone(),
        jdir.clone(),
        stop.clone(),
    ));
    let clk = procs::clk_tck();

    // (a) As fast as etcd answers.
    eprintln!(
        "burst: {} clients put 1 KiB values as fast as etcd answers for {:.0} s",
        o.clients, o.burst_s
    );
    let burst_load = loadavg();
    let cpu0 = j.cpu_s(clk);
    let burst = rt.block_on(write::burst(&clients, o.objects, secs(o.burst_s), o.seed))?;
    let burst_cpu = j.cpu_s(clk) - cpu0;
    j.check()?;
    let burst_last = burst
        .acks
        .last()
        .map(|a| a.revision)
        .context("the burst wrote nothing")?;
    eprintln!(
        "  etcd took {} writes ({:.0}/s), {} failed; waiting for the journal to close revision {burst_last}",
        burst.acks.len(),
        burst.acks.len() as f64 / burst.elapsed_s.max(1e-9),
        burst.errors
    );
    let (burst_in_time, burst_wait) = wait_committed(&mut j, &jdir, burst_last, o.catch_up_max_s)?;
    eprintln!("  closed after {burst_wait:.1} s");

    // (b)–(d) At a steady rate.
    eprintln!(
        "steady: {} writes/s for {:.0} s, the journal's RSS every {:.0} s",
        o.rate, o.steady_s, o.sample_s
    );
    let pid = j.pid();
    let load0 = loadavg();
    let cpu_a = j.cpu_s(clk);
    let from = Instant::now();
    let tick = |from: Instant| RssTick {
        t_s: from.elapsed().as_secs_f64(),
        rss_kib: status_kib(pid, "VmRSS"),
    };
    let writer = write::Steady::start(&rt, &clients, o.rate, o.objects, o.seed ^ 0x5eed);
    let mut rss = vec![tick(from)];
    let end = from + secs(o.steady_s);
    let mut next = from + secs(o.sample_s);
    while Instant::now() < end {
        std::thread::sleep(next.min(end).saturating_duration_since(Instant::now()));
        // The sample at the end is taken after the writer's last answer.
        if Instant::now() >= next && next < end {
            rss.push(tick(from));
            next += secs(o.sample_s);
            j.check()?;
        }
    }
    let steady_w = rt.block_on(writer.stop())?;
    let cpu_s = j.cpu_s(clk) - cpu_a;
    let actual_s = from.elapsed().as_secs_f64();
    rss.push(tick(from));
    let hwm_kib = status_kib(pid, "VmHWM");
    let load1 = loadavg();
    let steady_last = steady_w
        .acks
        .last()
        .map(|a| a.revision)
        .context("the steady writer wrote nothing")?;
    eprintln!(
        "  {} writes ({:.0}/s), {} failed; journal CPU {cpu_s:.2} s; waiting for the journal to close revision {steady_last}",
        steady_w.acks.len(),
        steady_w.acks.len() as f64 / steady_w.elapsed_s.max(1e-9),
        steady_w.errors
    );
    let (steady_in_time, steady_wait) =
        wait_committed(&mut j, &jdir, steady_last, o.catch_up_max_s)?;

    stop.store(true, Ordering::Relaxed);
    let compactions = rt.block_on(compactor).context("the compactor panicked")??;
    j.stop(Duration::from_secs(60))?;
    let failovers = j.log().matches("moving to the next member").count() as u64;
    drop(clients);
    drop(etcd);
    drop(rt);

    // The journal, read back.
    let segs = decode::manifests(&jdir)?;
    eprintln!("reading back {} segment(s)", segs.len());
    let recv = decode::decode(&jdir, &key, &segs)?;
    let vo = Command::new(bin(o, "vigil-journal"))
        .args(["--config", &cfg_s, "verify", "--json"])
        .env("VIGIL_LOG", "warn")
        .output()?;
    let v: serde_json::Value = serde_json::from_slice(&vo.stdout).unwrap_or_default();
    let totals = Totals {
        segments: segs.len() as u64,
        events: recv.events,
        first_revision: segs.first().map_or(0, |m| m.first_revision),
        last_revision: segs.last().map_or(0, |m| m.last_revision),
        bytes: segs.iter().map(|m| m.size).sum(),
        plaintext_bytes: segs.iter().map(|m| m.plaintext_size).sum(),
        gaps: segs.iter().filter(|m| m.gap.is_some()).count() as u64,
        chain_whole: vo.status.success() && v["broken"].is_null(),
        verify: format!(
            "{} segment(s), revisions {}..={}, {} events, broken: {}",
            v["segments"], v["first_revision"], v["last_revision"], v["events"], v["broken"]
        ),
        failovers,
    };

    let mut b = burst_figures(o, &burst, &recv);
    b.committed_wait_s = burst_wait;
    b.committed_in_time = burst_in_time;
    b.journal_cpu_s = burst_cpu;
    b.loadavg_1m = burst_load;
    let mut s = steady_figures(o, &steady_w, &recv);
    s.actual_s = actual_s;
    s.cpu_s = cpu_s;
    s.cpu_per_1000_events_s = if s.writes > 0 {
        cpu_s / s.writes as f64 * 1e3
    } else {
        0.0
    };
    s.cpu_pct_one_core = cpu_s / actual_s.max(1e-9) * 100.0;
    s.rss_first_kib = rss.first().map_or(0, |t| t.rss_kib);
    s.rss_last_kib = rss.last().map_or(0, |t| t.rss_kib);
    s.rss_max_kib = rss.iter().map(|t| t.rss_kib).max().unwrap_or(0);
    s.hwm_kib = hwm_kib;
    s.rss = rss;
    s.loadavg_start = load0;
    s.loadavg_end = load1;
    s.committed_wait_s = steady_wait;
    s.committed_in_time = steady_in_time;
    eprintln!(
        "  burst: journal {:.0}/s, {} behind at the end, caught up {:.2} s later; steady: receive lag p50 {:.0} ms p99 {:.0} ms, durable p99 {:.0} ms, CPU {:.2} % of a core, RSS {:.1}–{:.1} MiB",
        b.journal_rate_per_s,
        b.lag_revisions_at_end,
        b.catch_up_s,
        s.receive_lag.p50_ms,
        s.receive_lag.p99_ms,
        s.durable_lag.p99_ms,
        s.cpu_pct_one_core,
        s.rss_first_kib as f64 / 1024.0,
        s.rss_max_kib as f64 / 1024.0
    );

    // (e) Restore to a point.
    let restores = restore_points(o, w, &cfg_s, &key_s, base.revision, totals.last_revision)?;

    let res = JournalResults {
        schema: crate::results::SCHEMA,
        kind: KIND.into(),
        label: o.label.clone(),
        smoke: o.smoke,
        started_at,
        git_commit: git_head(&o.repo),
        host,
        setup: Setup {
            members: MEMBERS,
            value_bytes: write::VALUE_BYTES as u64,
            objects: o.objects,
            clients: o.clients,
            flush_s: o.flush_s.unwrap_or(DEFAULT_FLUSH_S),
            flush_default: o.flush_s.is_none(),
            journal_config: table.trim_end().replace('\n', "; "),
            journal_cmd: shell_line(&jargv),
            compact_every_s: write::COMPACT_EVERY.as_secs_f64(),
            compact_retain_s: write::COMPACT_RETAIN.as_secs_f64(),
            compactions,
            request_timeout_s: write::REQUEST_TIMEOUT.as_secs_f64(),
        },
        base,
        burst: b,
        steady: s,
        totals,
        restores,
    };
    write_results(&o.out, &res)?;
    Ok(res)
}

/// (e): `vigil-restore fetch --to-revision` for every point the journal reaches.
fn restore_points(
    o: &JournalOptions,
    w: &Path,
    cfg: &str,
    key: &str,
    base: i64,
    last: i64,
) -> Result<Vec<RestoreSample>> {
    let mut targets: Vec<(String, i64)> = Vec::new();
    for p in &o.restore_points {
        let (name, rev) = match p {
            PointSpec::Events(n) => (n.to_string(), base + *n as i64),
            PointSpec::End => ("end".to_string(), last),
        };
        if rev > last {
            eprintln!("restore point {name}: past the journal's end (revision {last}), skipped");
        } else if !targets.iter().any(|t| t.1 == rev) {
            targets.push((name, rev));
        }
    }
    let mut out = Vec::new();
    for (name, rev) in targets {
        let db = w.join(format!("point-{rev}.db"));
        let argv: Vec<String> = vec![
            bin(o, "vigil-restore"),
            "--config".into(),
            cfg.into(),
            "fetch".into(),
            "--identity".into(),
            key.into(),
            "--out".into(),
            db.display().to_string(),
            "--to-revision".into(),
            rev.to_string(),
            "--source".into(),
            "local".into(),
            "--json".into(),
        ];
        let js = w.join("restore.json");
        let (code, t) = time_cmd(w, &argv, &[("VIGIL_LOG", "warn")], Some(&js))?;
        let rep: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&js)?).unwrap_or_default();
        if code != 0 || rep["target_revision"] != rev {
            bail!(
                "{} exited {code}: {rep}{}",
                shell_line(&argv),
                std::fs::read_to_string(w.join("stderr.out")).unwrap_or_default()
            );
        }
        rm(&db);
        let s = RestoreSample {
            point: name,
            target_revision: rev,
            events: rep["events"].as_u64().unwrap_or(0),
            revisions: rep["revisions"].as_u64().unwrap_or(0),
            segments: rep["segments"].as_u64().unwrap_or(0),
            duration_ms: rep["duration_ms"].as_u64().unwrap_or(0),
            key_count: rep["key_count"].as_i64().unwrap_or(0),
            wall_s: t.wall_s,
            cpu_s: t.cpu_s,
            maxrss_kib: t.maxrss_kib,
            cmd: shell_line(&argv),
        };
        eprintln!(
            "restore to revision {rev} ({}): {} events replayed from {} segment(s) in {:.2} s",
            s.point, s.events, s.segments, s.wall_s
        );
        out.push(s);
    }
    Ok(out)
}
