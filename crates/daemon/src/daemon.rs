//! The schedules, the job processes and the signals.
//!
//! - Each job runs as its own process (`vigil-snapshot run`, ...), so a job
//!   that crashes or leaks takes nothing else with it, and each keeps its own
//!   exit code, outcome records and alerts.
//! - A job still running when its time comes again is skipped, not started
//!   twice (and the skip is logged and counted in the metrics).
//! - SIGTERM (or SIGINT): ordered shutdown with a deadline. No new job
//!   starts; running jobs get SIGTERM and `daemon.shutdown_timeout` to
//!   finish; `vigil-notify` is stopped last so that the alerts of those
//!   jobs can still go out; whatever is left then gets SIGKILL.
//! - SIGHUP: the config is read again. If it is valid the schedules are
//!   replaced (running jobs go on) and `vigil-notify` restarts on the new
//!   config; if not, the error is logged and the old config stays.

use anyhow::{anyhow, Context};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::signal::unix::{signal, SignalKind};
use tokio_cron_scheduler::{Job, JobScheduler};
use vigil_core::metrics::{self, Metrics};
use vigil_core::Config;

/// One scheduled job.
#[derive(Debug, Clone)]
pub struct Planned {
    pub name: &'static str,
    /// As written in the config.
    pub cron: String,
    /// As the scheduler takes it (seconds first).
    pub six: String,
    pub program: &'static str,
    pub args: Vec<String>,
}

fn command_of(job: &str) -> (&'static str, &'static [&'static str]) {
    match job {
        "snapshot" => ("vigil-snapshot", &["run"]),
        "scrub" => ("vigil-snapshot", &["scrub"]),
        "drill" => ("vigil-restore", &["drill"]),
        "health" => ("vigil-health", &["run"]),
        _ => ("vigil-quota", &["run"]),
    }
}

/// The jobs the config schedules, each checked by the scheduler's own parser.
pub fn plan(cfg: &Config) -> anyhow::Result<Vec<Planned>> {
    let d = cfg.daemon_config();
    let mut out = Vec::new();
    for name in vigil_core::config::DAEMON_JOBS {
        let Some(cron) = d.schedule(name) else {
            continue;
        };
        let six = vigil_core::config::to_six_field(cron)
            .map_err(|e| anyhow!("{}: daemon.{name}: {e}", cfg.path.display()))?;
        Job::new_async(six.as_str(), |_, _| Box::pin(async {})).map_err(|e| {
            anyhow!(
                "{}: daemon.{name}: {cron:?} is not a schedule the scheduler accepts ({e:?})",
                cfg.path.display()
            )
        })?;
        let (program, args) = command_of(name);
        out.push(Planned {
            name,
            cron: cron.to_string(),
            six,
            program,
            args: args.iter().map(|s| s.to_string()).collect(),
        });
    }
    Ok(out)
}

/// The unit a job stands for, so its alert is the one `OnFailure=` raises
/// under systemd (`job_unit_failed{unit}`).
fn unit_of(job: &str) -> Option<&'static str> {
    Some(match job {
        "snapshot" => "vigil-snapshot",
        "scrub" => "vigil-snapshot-scrub",
        "drill" => "vigil-restore-drill",
        "health" => "vigil-health",
        "quota" => "vigil-quota",
        _ => return None,
    })
}

/// What systemd's `$MONITOR_*` would say about a job that exited with `st`;
/// `None` for exit 0 and 1 (the job ran to its end and reported itself).
fn death_env(st: &std::process::ExitStatus) -> Option<[(&'static str, String); 3]> {
    use std::os::unix::process::ExitStatusExt;
    let (result, code, status) = match (st.code(), st.signal()) {
        (Some(0 | 1), _) => return None,
        (Some(c), _) => ("exit-code", "exited", c.to_string()),
        (None, Some(sig)) => {
            let name = match sig {
                6 => "ABRT".to_string(),
                9 => "KILL".to_string(),
                11 => "SEGV".to_string(),
                15 => "TERM".to_string(),
                n => n.to_string(),
            };
            ("signal", "killed", name)
        }
        (None, None) => return None,
    };
    Some([
        ("MONITOR_SERVICE_RESULT", result.to_string()),
        ("MONITOR_EXIT_CODE", code.to_string()),
        ("MONITOR_EXIT_STATUS", status),
    ])
}

/// vigild's `OnFailure=`: a job killed by a signal or unable to run records
/// no outcome, so `vigil-notify unit-failed` queues the alert.
async fn report_death(sh: &Shared, p: &Planned, st: &std::process::ExitStatus) {
    let (Some(unit), Some(env)) = (unit_of(p.name), death_env(st)) else {
        return;
    };
    let r = tokio::process::Command::new(sh.bin("vigil-notify"))
        .arg("--config")
        .arg(&sh.config_path)
        .arg("unit-failed")
        .arg(format!("{unit}.service"))
        .envs(env)
        .stdin(std::process::Stdio::null())
        .status()
        .await;
    match r {
        Ok(s) if s.success() => {}
        Ok(s) => tracing::error!(
            job = p.name,
            "vigil-notify unit-failed exited {s}: the death is not alerted"
        ),
        Err(e) => tracing::error!(
            job = p.name,
            "cannot run vigil-notify unit-failed: {e}; the death is not alerted"
        ),
    }
}

/// Per-job counters for the daemon's own metrics file.
#[derive(Debug, Default, Clone)]
struct JobStats {
    started: u64,
    skipped: u64,
    last_exit: Option<i32>,
    last_end: Option<f64>,
    last_duration: Option<f64>,
}

/// What the job closures share.
#[derive(Debug)]
struct Shared {
    config_path: PathBuf,
    cfg: Mutex<Arc<Config>>,
    bin_dir: Mutex<PathBuf>,
    /// One flag per job name; it survives reloads so a job still running
    /// from before a reload is not started again.
    running: Mutex<BTreeMap<&'static str, Arc<AtomicBool>>>,
    /// Pids of running job processes.
    children: Mutex<BTreeMap<&'static str, u32>>,
    notify_pid: Mutex<Option<u32>>,
    stopping: AtomicBool,
    stats: Mutex<BTreeMap<&'static str, JobStats>>,
}

impl Shared {
    fn flag(&self, job: &'static str) -> Arc<AtomicBool> {
        let mut m = self.running.lock().unwrap_or_else(|e| e.into_inner());
        m.entry(job).or_default().clone()
    }

    fn cfg(&self) -> Arc<Config> {
        self.cfg.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn bin(&self, program: &str) -> PathBuf {
        self.bin_dir
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .join(program)
    }

    fn stat(&self, job: &'static str, f: impl FnOnce(&mut JobStats)) {
        {
            let mut m = self.stats.lock().unwrap_or_else(|e| e.into_inner());
            f(m.entry(job).or_default());
        }
        self.publish();
    }

    /// `vigil_daemon_<cluster>.prom`: starts, skips and the last exit per job.
    fn publish(&self) {
        let cfg = self.cfg();
        let c = cfg.cluster_name();
        let mut m = Metrics::new();
        let stats = self.stats.lock().unwrap_or_else(|e| e.into_inner()).clone();
        for (job, s) in &stats {
            let l = [("cluster", c), ("job", *job)];
            m.counter(
                "vigil_daemon_job_started_total",
                "Job runs vigild started",
                &l,
                s.started as f64,
            );
            m.counter(
                "vigil_daemon_job_skipped_total",
                "Scheduled runs skipped because the previous run was still going",
                &l,
                s.skipped as f64,
            );
            if let Some(e) = s.last_exit {
                m.gauge(
                    "vigil_daemon_job_last_exit_code",
                    "Exit code of the job's last run (-1: killed by a signal)",
                    &l,
                    f64::from(e),
                );
            }
            if let Some(t) = s.last_end {
                m.gauge(
                    "vigil_daemon_job_last_end_timestamp_seconds",
                    "When the job's last run ended",
                    &l,
                    t,
                );
            }
            if let Some(d) = s.last_duration {
                m.gauge(
                    "vigil_daemon_job_last_duration_seconds",
                    "How long the job's last run took",
                    &l,
                    d,
                );
            }
        }
        metrics::publish(&cfg.metrics, "daemon", c, &m);
    }
}

fn bin_dir(cfg: &Config) -> PathBuf {
    cfg.daemon_config().bin_dir.clone().unwrap_or_else(|| {
        std::env::current_exe()
            .ok()
            .and_then(|p| p.parent().map(Path::to_path_buf))
            .unwrap_or_else(|| PathBuf::from("/usr/bin"))
    })
}

/// Runs one job to its end unless it is still running from last time.
async fn fire(sh: Arc<Shared>, p: Planned) {
    if sh.stopping.load(Ordering::SeqCst) {
        return;
    }
    let flag = sh.flag(p.name);
    if flag.swap(true, Ordering::SeqCst) {
        tracing::warn!(
            job = p.name,
            "still running from its last start; this run is skipped"
        );
        sh.stat(p.name, |s| s.skipped += 1);
        return;
    }
    let bin = sh.bin(p.program);
    let started = std::time::Instant::now();
    let mut cmd = tokio::process::Command::new(&bin);
    cmd.arg("--config")
        .arg(&sh.config_path)
        .args(&p.args)
        .stdin(std::process::Stdio::null());
    match cmd.spawn() {
        Ok(mut child) => {
            let pid = child.id().unwrap_or_default();
            sh.children
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(p.name, pid);
            sh.stat(p.name, |s| s.started += 1);
            tracing::info!(
                job = p.name,
                pid,
                "started {} {}",
                bin.display(),
                p.args.join(" ")
            );
            let status = child.wait().await;
            sh.children
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(p.name);
            let secs = started.elapsed().as_secs_f64();
            let code = match &status {
                Ok(s) => s.code().unwrap_or(-1),
                Err(_) => -1,
            };
            match code {
                0 => tracing::info!(job = p.name, seconds = secs, "finished: ok"),
                1 => tracing::warn!(
                    job = p.name,
                    seconds = secs,
                    "finished: something failed (exit 1); the job raised alerts"
                ),
                c => tracing::error!(
                    job = p.name,
                    seconds = secs,
                    exit = c,
                    "could not run or was killed; see its log above"
                ),
            }
            sh.stat(p.name, |s| {
                s.last_exit = Some(code);
                s.last_end = Some(metrics::now_seconds());
                s.last_duration = Some(secs);
            });
            if let Ok(st) = &status {
                if !sh.stopping.load(Ordering::SeqCst) {
                    report_death(&sh, &p, st).await;
                }
            }
        }
        Err(e) => {
            tracing::error!(
                job = p.name,
                "cannot start {}: {e}; check daemon.bin_dir",
                bin.display()
            );
            sh.stat(p.name, |s| s.last_exit = Some(127));
        }
    }
    flag.store(false, Ordering::SeqCst);
}

/// A scheduler with one cron job per planned job.
async fn schedule(sh: &Arc<Shared>, jobs: &[Planned]) -> anyhow::Result<JobScheduler> {
    let sched = JobScheduler::new()
        .await
        .map_err(|e| anyhow!("starting the scheduler: {e:?}"))?;
    for p in jobs {
        let (sh2, p2) = (sh.clone(), p.clone());
        let job = Job::new_async(p.six.as_str(), move |_, _| {
            let (sh, p) = (sh2.clone(), p2.clone());
            Box::pin(async move {
                tokio::spawn(fire(sh, p));
            })
        })
        .map_err(|e| anyhow!("daemon.{}: {e:?}", p.name))?;
        sched
            .add(job)
            .await
            .map_err(|e| anyhow!("scheduling {}: {e:?}", p.name))?;
        tracing::info!(job = p.name, cron = %p.cron, "scheduled (UTC)");
    }
    sched
        .start()
        .await
        .map_err(|e| anyhow!("starting the scheduler: {e:?}"))?;
    Ok(sched)
}

/// Keeps `vigil-notify run` running while `[daemon] notify` is on.
async fn supervise_notify(sh: Arc<Shared>, mut restart: tokio::sync::watch::Receiver<u64>) {
    let mut backoff = Duration::from_secs(1);
    loop {
        if sh.stopping.load(Ordering::SeqCst) {
            return;
        }
        if !sh.cfg().daemon_config().notify {
            // Wait for a reload that turns it on.
            if restart.changed().await.is_err() {
                return;
            }
            continue;
        }
        let bin = sh.bin("vigil-notify");
        let started = std::time::Instant::now();
        let child = tokio::process::Command::new(&bin)
            .arg("--config")
            .arg(&sh.config_path)
            .arg("run")
            .stdin(std::process::Stdio::null())
            .spawn();
        let mut child = match child {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(
                    "cannot start {}: {e}; alerts wait in the outbox",
                    bin.display()
                );
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(60));
                continue;
            }
        };
        *sh.notify_pid.lock().unwrap_or_else(|e| e.into_inner()) = child.id();
        tracing::info!(pid = child.id().unwrap_or_default(), "vigil-notify started");
        let reloaded = tokio::select! {
            st = child.wait() => {
                if !sh.stopping.load(Ordering::SeqCst) {
                    tracing::error!("vigil-notify ended ({st:?}); restarting in {backoff:?}");
                }
                false
            }
            r = restart.changed() => {
                if r.is_ok() {
                    tracing::info!("restarting vigil-notify on the reloaded config");
                    term(child.id());
                    let _ = tokio::time::timeout(Duration::from_secs(30), child.wait()).await;
                    let _ = child.start_kill();
                }
                r.is_ok()
            }
        };
        *sh.notify_pid.lock().unwrap_or_else(|e| e.into_inner()) = None;
        if sh.stopping.load(Ordering::SeqCst) {
            return;
        }
        if !reloaded {
            if started.elapsed() > Duration::from_secs(300) {
                backoff = Duration::from_secs(1);
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(60));
        }
    }
}

fn send(pid: Option<u32>, sig: rustix::process::Signal) {
    if let Some(pid) = pid.and_then(|p| rustix::process::Pid::from_raw(p as i32)) {
        let _ = rustix::process::kill_process(pid, sig);
    }
}

fn term(pid: Option<u32>) {
    send(pid, rustix::process::Signal::TERM);
}

/// Waits until `done` is true or the deadline passes; true if done.
async fn wait_until(deadline: tokio::time::Instant, done: impl Fn() -> bool) -> bool {
    while !done() {
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    true
}

pub async fn run(config_path: PathBuf, cfg: Config) -> anyhow::Result<()> {
    let jobs = plan(&cfg)?;
    let sh = Arc::new(Shared {
        config_path: config_path.clone(),
        bin_dir: Mutex::new(bin_dir(&cfg)),
        cfg: Mutex::new(Arc::new(cfg)),
        running: Mutex::default(),
        children: Mutex::default(),
        notify_pid: Mutex::default(),
        stopping: AtomicBool::new(false),
        stats: Mutex::default(),
    });
    let mut term_sig = signal(SignalKind::terminate()).context("SIGTERM handler")?;
    let mut int_sig = signal(SignalKind::interrupt()).context("SIGINT handler")?;
    let mut hup_sig = signal(SignalKind::hangup()).context("SIGHUP handler")?;

    let mut sched = schedule(&sh, &jobs).await?;
    let (restart_tx, restart_rx) = tokio::sync::watch::channel(0u64);
    let notify_task = tokio::spawn(supervise_notify(sh.clone(), restart_rx));
    if jobs.is_empty() {
        tracing::warn!("no job is scheduled; set schedules in [daemon]");
    }
    tracing::info!(jobs = jobs.len(), config = %config_path.display(), "vigild running");

    loop {
        tokio::select! {
            _ = term_sig.recv() => break,
            _ = int_sig.recv() => break,
            _ = hup_sig.recv() => {
                match vigil_core::Config::load(&config_path).map_err(anyhow::Error::from).and_then(|c| plan(&c).map(|p| (c, p))) {
                    Ok((c, p)) => {
                        let _ = sched.shutdown().await;
                        *sh.bin_dir.lock().unwrap_or_else(|e| e.into_inner()) = bin_dir(&c);
                        *sh.cfg.lock().unwrap_or_else(|e| e.into_inner()) = Arc::new(c);
                        sched = schedule(&sh, &p).await?;
                        restart_tx.send_modify(|n| *n += 1);
                        tracing::info!(jobs = p.len(), "config reloaded");
                    }
                    Err(e) => tracing::error!("config not reloaded, the old one stays in force: {e:#}"),
                }
            }
        }
    }

    // Ordered shutdown: no new starts, jobs first, notify last, then SIGKILL.
    let timeout = sh.cfg().daemon_config().shutdown_timeout.get();
    let deadline = tokio::time::Instant::now() + timeout;
    tracing::info!("stopping: no new jobs; running jobs get {timeout:?} to finish");
    sh.stopping.store(true, Ordering::SeqCst);
    let _ = sched.shutdown().await;
    let pids: Vec<(&str, u32)> = sh
        .children
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .map(|(k, v)| (*k, *v))
        .collect();
    for (job, pid) in &pids {
        tracing::info!(job, pid, "sending SIGTERM");
        term(Some(*pid));
    }
    let jobs_done = wait_until(deadline, || {
        sh.children.lock().map(|c| c.is_empty()).unwrap_or(true)
    })
    .await;
    if !jobs_done {
        for (job, pid) in sh.children.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            tracing::error!(job, pid, "still running at the shutdown deadline; killed");
            send(Some(*pid), rustix::process::Signal::KILL);
        }
    }
    let notify_pid = *sh.notify_pid.lock().unwrap_or_else(|e| e.into_inner());
    if notify_pid.is_some() {
        term(notify_pid);
        // At least a few seconds, so alerts from the jobs that just ended go out.
        let nd = deadline.max(tokio::time::Instant::now() + Duration::from_secs(5));
        if !wait_until(nd, || {
            sh.notify_pid.lock().map(|p| p.is_none()).unwrap_or(true)
        })
        .await
        {
            tracing::error!("vigil-notify did not stop in time; killed");
            send(notify_pid, rustix::process::Signal::KILL);
        }
    }
    notify_task.abort();
    // Let killed jobs be reaped.
    let _ = wait_until(tokio::time::Instant::now() + Duration::from_secs(2), || {
        sh.children.lock().map(|c| c.is_empty()).unwrap_or(true)
    })
    .await;
    tracing::info!("vigild stopped");
    Ok(())
}

#[cfg(test)]
mod death_tests {
    use super::*;
    use std::os::unix::process::ExitStatusExt;

    #[test]
    fn deaths_map_to_what_systemd_would_say() {
        assert!(death_env(&std::process::ExitStatus::from_raw(0)).is_none());
        assert!(death_env(&std::process::ExitStatus::from_raw(1 << 8)).is_none());
        let e = death_env(&std::process::ExitStatus::from_raw(2 << 8)).unwrap();
        assert_eq!(e[0].1, "exit-code");
        assert_eq!(e[2].1, "2");
        let k = death_env(&std::process::ExitStatus::from_raw(9)).unwrap();
        assert_eq!((k[0].1.as_str(), k[2].1.as_str()), ("signal", "KILL"));
        assert_eq!(unit_of("scrub"), Some("vigil-snapshot-scrub"));
        assert_eq!(unit_of("notify"), None);
    }
}
