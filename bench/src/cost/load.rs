//! The load a cost phase runs under: an open-loop writer over the three
//! members, prefix watches and an apiserver-like compactor, and the
//! latency figures of a window of it.

use super::{CostOptions, PhaseSample};
use crate::gen::Rng;
use crate::results::percentile;
use anyhow::{bail, Context, Result};
use etcd_client::{Client, GetOptions, WatchOptions};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

pub(super) const VALUE_MIN: u64 = 1024;
pub(super) const VALUE_MAX: u64 = 16 * 1024;
pub(super) const KINDS: &[&str] = &["pods", "configmaps", "leases", "events"];
pub(super) const COMPACT_EVERY: Duration = Duration::from_secs(5);
/// Longer than any backup phase: vigil counts the keys at the revision it
/// saw before its stream, which must not be compacted by then.
pub(super) const COMPACT_RETAIN: Duration = Duration::from_secs(90);
pub(super) const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// One write: when it was due, how late it was sent, how long until done.
#[derive(Debug, Clone, Copy)]
struct Rec {
    due: Instant,
    lag: Duration,
    latency: Duration,
    ok: bool,
}

/// What the writer did: the due time of every write it sent, and every
/// write that finished.
#[derive(Debug, Default)]
struct Log {
    sent: Vec<Instant>,
    done: Vec<Rec>,
}

/// The running load: open-loop writer, watches and compactor.
pub(super) struct LoadGen {
    log: Arc<Mutex<Log>>,
    pub(super) watch_events: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<Result<()>>>,
}

/// Schedules one put every `1/rate` s, by the clock: a slow request does
/// not delay the next one, and its latency counts from when it was due.
async fn writer(
    clients: Vec<Client>,
    rate: f64,
    objects: usize,
    seed: u64,
    stop: Arc<AtomicBool>,
    log: Arc<Mutex<Log>>,
) -> Result<()> {
    let period = Duration::from_secs_f64(1.0 / rate);
    let mut rng = Rng::new(seed ^ 0xC057);
    let mut due = Instant::now();
    let mut i = 0usize;
    while !stop.load(Ordering::Relaxed) {
        due += period;
        tokio::time::sleep_until(due).await;
        let n = rng.below(objects as u64) as usize;
        let key = format!("/registry/{}/bench-load/obj-{n:05}", KINDS[n % KINDS.len()]);
        let len = rng.log_range(VALUE_MIN, VALUE_MAX) as usize;
        let mut value = Vec::with_capacity(len);
        rng.fill(&mut value, len);
        let mut c = clients[i % clients.len()].clone();
        i += 1;
        if let Ok(mut l) = log.lock() {
            l.sent.push(due);
        }
        let log = log.clone();
        let due_at = due;
        tokio::spawn(async move {
            let lag = Instant::now() - due_at;
            let r = tokio::time::timeout(REQUEST_TIMEOUT, c.put(key, value, None)).await;
            let rec = Rec {
                due: due_at,
                lag,
                latency: Instant::now() - due_at,
                ok: matches!(r, Ok(Ok(_))),
            };
            if let Ok(mut l) = log.lock() {
                l.done.push(rec);
            }
        });
    }
    Ok(())
}

/// Watches one prefix (as an informer does) and counts the events.
async fn watcher(
    mut client: Client,
    prefix: String,
    stop: Arc<AtomicBool>,
    events: Arc<AtomicU64>,
) -> Result<()> {
    let mut stream = client
        .watch(prefix.clone(), Some(WatchOptions::new().with_prefix()))
        .await
        .with_context(|| format!("watch {prefix}"))?;
    while !stop.load(Ordering::Relaxed) {
        match tokio::time::timeout(Duration::from_millis(500), stream.message()).await {
            Ok(Ok(Some(m))) => {
                events.fetch_add(m.events().len() as u64, Ordering::Relaxed);
            }
            Ok(Ok(None)) => bail!("watch {prefix}: stream ended"),
            Ok(Err(e)) => bail!("watch {prefix}: {e}"),
            Err(_) => {}
        }
    }
    Ok(())
}

/// Every `COMPACT_EVERY`, compacts away the history older than
/// `COMPACT_RETAIN`, as the apiserver does (every 5 min, to the previous
/// compaction's revision): the database frees pages all the time, and a
/// revision a backup took at its start stays readable for its whole run.
async fn compactor(mut client: Client, stop: Arc<AtomicBool>) -> Result<()> {
    let mut seen: std::collections::VecDeque<(Instant, i64)> = Default::default();
    while !stop.load(Ordering::Relaxed) {
        tokio::time::sleep(COMPACT_EVERY).await;
        let r = client
            .get("/registry/", Some(GetOptions::new().with_count_only()))
            .await
            .context("compactor: revision")?;
        seen.push_back((Instant::now(), r.header().map_or(0, |h| h.revision())));
        let mut to = None;
        while let Some(&(t, rev)) = seen.front() {
            if t.elapsed() < COMPACT_RETAIN {
                break;
            }
            to = Some(rev);
            seen.pop_front();
        }
        if let Some(rev) = to {
            client
                .compact(rev, None)
                .await
                .context("compactor: compact")?;
        }
    }
    Ok(())
}

impl LoadGen {
    pub(super) async fn start(endpoints: &[String], o: &CostOptions) -> Result<LoadGen> {
        let mut clients = Vec::new();
        for ep in endpoints {
            clients.push(
                Client::connect([ep.clone()], None)
                    .await
                    .with_context(|| format!("connecting to {ep}"))?,
            );
        }
        let log = Arc::new(Mutex::new(Log::default()));
        let watch_events = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let mut tasks = Vec::new();
        for (i, k) in KINDS.iter().enumerate() {
            tasks.push(tokio::spawn(watcher(
                clients[i % clients.len()].clone(),
                format!("/registry/{k}/bench-load/"),
                stop.clone(),
                watch_events.clone(),
            )));
        }
        tasks.push(tokio::spawn(compactor(clients[0].clone(), stop.clone())));
        tasks.push(tokio::spawn(writer(
            clients,
            o.rate,
            o.objects.max(1),
            o.seed,
            stop.clone(),
            log.clone(),
        )));
        Ok(LoadGen {
            log,
            watch_events,
            stop,
            tasks,
        })
    }

    /// Fails if a load task stopped (a watch broke, a compaction failed).
    pub(super) fn check(&mut self, rt: &tokio::runtime::Runtime) -> Result<()> {
        if let Some(i) = self.tasks.iter().position(|t| t.is_finished()) {
            let t = self.tasks.swap_remove(i);
            rt.block_on(t).context("load task panicked")??;
            bail!("a load task ended early");
        }
        Ok(())
    }

    pub(super) async fn stop(self) -> Result<()> {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.tasks {
            t.await.context("load task panicked")??;
        }
        Ok(())
    }
}

/// The latency figures of the writes due in `[from, to)`. Waits until the
/// writer is past `to` and every write due in the window has finished (or
/// timed out), so that the slowest writes count too.
pub(super) fn window_stats(load: &LoadGen, from: Instant, to: Instant, s: &mut PhaseSample) {
    let deadline = std::time::Instant::now() + REQUEST_TIMEOUT + Duration::from_secs(2);
    let in_window = |t: Instant| t >= from && t < to;
    let done = loop {
        let (past, sent, done) = match load.log.lock() {
            Ok(l) => (
                l.sent.last().is_some_and(|t| *t >= to),
                l.sent.iter().filter(|t| in_window(**t)).count(),
                l.done
                    .iter()
                    .filter(|r| in_window(r.due))
                    .copied()
                    .collect::<Vec<_>>(),
            ),
            Err(_) => (true, 0, Vec::new()),
        };
        if (past && done.len() >= sent) || std::time::Instant::now() > deadline {
            break done;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let sorted = |f: &dyn Fn(&Rec) -> Duration| {
        let mut v: Vec<f64> = done.iter().map(|r| ms(f(r))).collect();
        v.sort_by(|a, b| a.total_cmp(b));
        v
    };
    let lat = sorted(&|r| r.latency);
    s.requests = done.len() as u64;
    s.errors = done.iter().filter(|r| !r.ok).count() as u64;
    s.p50_ms = percentile(&lat, 0.50);
    s.p99_ms = percentile(&lat, 0.99);
    s.max_ms = lat.last().copied().unwrap_or(0.0);
    s.send_lag_p99_ms = percentile(&sorted(&|r| r.lag), 0.99);
}
