//! The schedules, the job processes and the signals.
//!
//! - Each job runs as its own process (`vigil-snapshot run`, ...), so a job
//!   that crashes or leaks takes nothing else with it, and each keeps its own
//!   exit code, outcome records and alerts. Every job, `vigil-notify` and
//!   `vigil-journal` is tied to vigild ([`vigil_cli::tie`]): if vigild dies,
//!   however it dies, the kernel kills them, and with a drill its scratch
//!   etcd (tied to the drill in turn), whose janitor then cleans up and
//!   reports the drill. The death signal follows the thread that started
//!   the child: the jobs are started by the main task, on the thread of
//!   `block_on`, and the long-running programs by their supervisors' tasks
//!   on worker threads; both live as long as vigild.
//! - The long-running programs ([`supervise`]): `vigil-notify run` while
//!   `[daemon] notify` is on, `vigil-journal run` while the config has a
//!   `[journal]` section and `[daemon] journal` is on. Each is restarted
//!   with a backoff when it dies, and on a reloaded config.
//! - One task owns all the state: the scheduler only tells it what is due,
//!   and each running job is a task of its `JoinSet` that hands back how the
//!   job ended. A job still running when its time comes again is skipped,
//!   not started twice (and the skip is logged and counted in the metrics).
//! - SIGTERM (or SIGINT): ordered shutdown with a deadline, told to every
//!   task by one signal ([`Stop`]). No new job starts; running jobs get
//!   SIGTERM and `daemon.shutdown_timeout` to finish, and so does
//!   `vigil-journal` (it closes and ships its open segment); whatever is
//!   left then is named in the log and gets SIGKILL; `vigil-notify` is
//!   stopped last so that the alerts of those jobs can still go out.
//! - SIGHUP: the config is read again. If it is valid the schedules are
//!   replaced (running jobs go on) and `vigil-notify` and `vigil-journal`
//!   restart on the new config; if not, the error is logged and the old
//!   config stays.

use anyhow::{anyhow, Context};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::process::Child;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio_cron_scheduler::{Job, JobScheduler};
use vigil_core::Config;

mod death;
mod plan;
mod stats;
mod supervise;

pub use plan::{plan, Planned};

/// The one shutdown signal, fanned out to every task. Its steps come in
/// this order, each after the one before has been waited for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Stop {
    /// Running.
    No,
    /// Jobs (and `vigil-journal`) get SIGTERM; nothing new starts.
    Jobs,
    /// The deadline passed: the jobs (and `vigil-journal`) still running
    /// get SIGKILL.
    Kill,
    /// The jobs are gone: `vigil-notify` gets SIGTERM.
    Notify,
}

/// Resolves once the shutdown reached `step` (or vigild is going away).
async fn reached(stop: &mut watch::Receiver<Stop>, step: Stop) {
    // The guard wait_for returns is dropped here, never held across a wait.
    let _ = stop.wait_for(|s| *s >= step).await;
}

/// The config in force and what follows from it; replaced on a reload.
#[derive(Debug)]
struct Live {
    config_path: PathBuf,
    cfg: Config,
    bin_dir: PathBuf,
}

impl Live {
    fn new(config_path: PathBuf, cfg: Config) -> Live {
        let bin_dir = cfg
            .daemon_config()
            .bin_dir
            .clone()
            .unwrap_or_else(vigil_core::paths::bin_dir);
        Live {
            config_path,
            cfg,
            bin_dir,
        }
    }

    fn bin(&self, program: &str) -> PathBuf {
        self.bin_dir.join(program)
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

/// A job process that is running.
#[derive(Debug)]
struct Running {
    task: tokio::task::Id,
    pid: u32,
}

/// How a job's run ended, handed back by its task.
#[derive(Debug)]
struct Ended {
    name: &'static str,
    code: i32,
    secs: f64,
}

/// The state the main task owns: no lock, no flag shared with other tasks.
struct Daemon {
    live: Arc<Live>,
    jobs: JoinSet<Ended>,
    running: BTreeMap<&'static str, Running>,
    stats: stats::Stats,
    stop: watch::Receiver<Stop>,
}

impl Daemon {
    fn stat(&mut self, job: &'static str, f: impl FnOnce(&mut stats::JobStats)) {
        f(self.stats.entry(job).or_default());
        stats::publish(&self.live.cfg, &self.stats);
    }

    /// Starts the job `p` unless it is still running from last time.
    fn start(&mut self, p: Planned) {
        if self.running.contains_key(p.name()) {
            tracing::warn!(
                job = p.name(),
                "still running from its last start; this run is skipped"
            );
            self.stat(p.name(), |s| s.skipped += 1);
            return;
        }
        let bin = self.live.bin(p.program());
        // Checked first: a missing program is vigild's error, as it was
        // before jobs were tied, not the exit 127 of the tied helper.
        let spawned = rustix::fs::access(&bin, rustix::fs::Access::EXEC_OK)
            .map_err(std::io::Error::from)
            .and_then(|()| {
                tokio::process::Command::from(vigil_cli::tie::tied(&bin))
                    .arg("--config")
                    .arg(&self.live.config_path)
                    .args(p.args())
                    .stdin(std::process::Stdio::null())
                    .kill_on_drop(true)
                    .spawn()
            });
        let child = match spawned {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(
                    job = p.name(),
                    "cannot start {}: {e}; check daemon.bin_dir",
                    bin.display()
                );
                self.stat(p.name(), |s| s.last_exit = Some(127));
                return;
            }
        };
        let pid = child.id().unwrap_or_default();
        self.stat(p.name(), |s| s.started += 1);
        tracing::info!(
            job = p.name(),
            pid,
            "started {} {}",
            bin.display(),
            p.args().join(" ")
        );
        let name = p.name();
        let task = self
            .jobs
            .spawn(job(child, p, self.live.clone(), self.stop.clone()))
            .id();
        self.running.insert(name, Running { task, pid });
    }

    fn ended(&mut self, r: Result<Ended, tokio::task::JoinError>) {
        match r {
            Ok(e) => {
                self.running.remove(e.name);
                self.stat(e.name, |s| {
                    s.last_exit = Some(e.code);
                    s.last_end = Some(vigil_core::metrics::now_seconds());
                    s.last_duration = Some(e.secs);
                });
            }
            Err(e) => {
                let id = e.id();
                self.running.retain(|_, r| r.task != id);
                tracing::error!("a job's task failed: {e}");
            }
        }
    }

    /// Hands the ended jobs back until none runs or `deadline` passes;
    /// true if none runs.
    async fn drain(&mut self, deadline: tokio::time::Instant) -> bool {
        loop {
            match tokio::time::timeout_at(deadline, self.jobs.join_next()).await {
                Ok(Some(r)) => self.ended(r),
                Ok(None) => return true,
                Err(_) => return false,
            }
        }
    }
}

/// One job's run, from its start to its end (and its death's alert).
async fn job(
    mut child: Child,
    p: Planned,
    live: Arc<Live>,
    mut stop: watch::Receiver<Stop>,
) -> Ended {
    let started = Instant::now();
    let pid = child.id();
    let status = tokio::select! {
        st = child.wait() => st,
        _ = reached(&mut stop, Stop::Jobs) => {
            tracing::info!(job = p.name(), pid, "sending SIGTERM");
            term(pid);
            tokio::select! {
                st = child.wait() => st,
                _ = reached(&mut stop, Stop::Kill) => {
                    let _ = child.start_kill();
                    child.wait().await
                }
            }
        }
    };
    let secs = started.elapsed().as_secs_f64();
    let code = match &status {
        Ok(s) => s.code().unwrap_or(-1),
        Err(_) => -1,
    };
    match code {
        0 => tracing::info!(job = p.name(), seconds = secs, "finished: ok"),
        1 => tracing::warn!(
            job = p.name(),
            seconds = secs,
            "finished: something failed (exit 1); the job raised alerts"
        ),
        c => tracing::error!(
            job = p.name(),
            seconds = secs,
            exit = c,
            "could not run or was killed; see its log above"
        ),
    }
    if let Ok(st) = &status {
        // A job the shutdown stopped did not die on its own.
        if *stop.borrow() == Stop::No {
            death::report(&live, p.name(), p.task.unit(), st).await;
        }
    }
    Ended {
        name: p.name(),
        code,
        secs,
    }
}

/// A scheduler with one cron job per planned job; each tells `due` when it
/// is due.
async fn schedule(
    due: &mpsc::UnboundedSender<Planned>,
    jobs: &[Planned],
) -> anyhow::Result<JobScheduler> {
    let sched = JobScheduler::new()
        .await
        .map_err(|e| anyhow!("starting the scheduler: {e:?}"))?;
    for p in jobs {
        let (due, p2) = (due.clone(), p.clone());
        let job = Job::new_async(p.six.as_str(), move |_, _| {
            let _ = due.send(p2.clone());
            Box::pin(async {})
        })
        .map_err(|e| anyhow!("daemon.{}: {e:?}", p.name()))?;
        sched
            .add(job)
            .await
            .map_err(|e| anyhow!("scheduling {}: {e:?}", p.name()))?;
        tracing::info!(job = p.name(), cron = %p.cron, "scheduled (UTC)");
    }
    sched
        .start()
        .await
        .map_err(|e| anyhow!("starting the scheduler: {e:?}"))?;
    Ok(sched)
}

pub async fn run(config_path: PathBuf, cfg: Config) -> anyhow::Result<()> {
    let planned = plan(&cfg)?;
    let mut term_sig = signal(SignalKind::terminate()).context("SIGTERM handler")?;
    let mut int_sig = signal(SignalKind::interrupt()).context("SIGINT handler")?;
    let mut hup_sig = signal(SignalKind::hangup()).context("SIGHUP handler")?;

    let (stop_tx, stop) = watch::channel(Stop::No);
    let (live_tx, live) = watch::channel(Arc::new(Live::new(config_path.clone(), cfg)));
    let (due_tx, mut due) = mpsc::unbounded_channel();
    let mut sched = schedule(&due_tx, &planned).await?;
    let mut notify_task = tokio::spawn(supervise::supervise(
        supervise::NOTIFY,
        live.clone(),
        stop.clone(),
    ));
    let mut journal_task =
        tokio::spawn(supervise::supervise(supervise::JOURNAL, live, stop.clone()));
    if planned.is_empty() {
        tracing::warn!("no job is scheduled; set schedules in [daemon]");
    }
    tracing::info!(jobs = planned.len(), config = %config_path.display(), "vigild running");
    let mut d = Daemon {
        live: live_tx.borrow().clone(),
        jobs: JoinSet::new(),
        running: BTreeMap::new(),
        stats: stats::Stats::new(),
        stop,
    };

    loop {
        tokio::select! {
            _ = term_sig.recv() => break,
            _ = int_sig.recv() => break,
            _ = hup_sig.recv() => {
                match vigil_core::Config::load(&config_path).map_err(anyhow::Error::from).and_then(|c| plan(&c).map(|p| (c, p))) {
                    Ok((c, p)) => {
                        let _ = sched.shutdown().await;
                        d.live = Arc::new(Live::new(config_path.clone(), c));
                        sched = schedule(&due_tx, &p).await?;
                        // vigil-notify and vigil-journal restart on it.
                        live_tx.send_replace(d.live.clone());
                        tracing::info!(jobs = p.len(), "config reloaded");
                    }
                    Err(e) => tracing::error!("config not reloaded, the old one stays in force: {e:#}"),
                }
            }
            Some(p) = due.recv() => d.start(p),
            Some(r) = d.jobs.join_next() => d.ended(r),
        }
    }

    // Ordered shutdown: no new starts, jobs and the journal first, notify last.
    let timeout = d.live.cfg.daemon_config().shutdown_timeout.get();
    let deadline = tokio::time::Instant::now() + timeout;
    tracing::info!("stopping: no new jobs; running jobs get {timeout:?} to finish");
    let _ = sched.shutdown().await;
    stop_tx.send_replace(Stop::Jobs);
    let jobs_done = d.drain(deadline).await;
    // vigil-journal got its SIGTERM with the jobs, and has the same deadline.
    let journal_done = tokio::time::timeout_at(deadline, &mut journal_task)
        .await
        .is_ok();
    if !jobs_done || !journal_done {
        for (job, r) in &d.running {
            tracing::error!(
                job,
                pid = r.pid,
                "still running at the shutdown deadline; killed"
            );
        }
        // The journal's supervisor says so itself, with its pid.
        stop_tx.send_replace(Stop::Kill);
        // Let the killed ones be reaped; a task that still waits is dropped,
        // and its child with it.
        let grace = tokio::time::Instant::now() + Duration::from_secs(2);
        if !d.drain(grace).await {
            d.jobs.shutdown().await;
        }
        if !journal_done
            && tokio::time::timeout_at(grace, &mut journal_task)
                .await
                .is_err()
        {
            journal_task.abort();
            let _ = journal_task.await;
        }
    }
    stop_tx.send_replace(Stop::Notify);
    // At least a few seconds, so alerts from the jobs that just ended go out.
    let nd = deadline.max(tokio::time::Instant::now() + Duration::from_secs(5));
    if tokio::time::timeout_at(nd, &mut notify_task).await.is_err() {
        tracing::error!("vigil-notify did not stop in time; killed");
        notify_task.abort();
        let _ = notify_task.await;
    }
    tracing::info!("vigild stopped");
    Ok(())
}

#[cfg(test)]
mod tests;
