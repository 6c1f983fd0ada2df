//! The load of the journal benchmark: the seed keys, a closed-loop burst
//! from several clients, an open-loop writer at a steady rate, and a
//! compactor that keeps etcd's history bounded without ever compacting a
//! revision the journal has not closed a segment for.

use super::decode;
use crate::gen::Rng;
use anyhow::{Context, Result};
use etcd_client::{Client, GetOptions, Txn, TxnOp};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::task::JoinSet;
use tokio::time::Instant;

pub(super) const VALUE_BYTES: usize = 1024;
pub(super) const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
pub(super) const COMPACT_EVERY: Duration = Duration::from_secs(10);
/// Like an apiserver, which keeps 5 min; shorter, so that the burst's
/// history does not pile up in the database.
pub(super) const COMPACT_RETAIN: Duration = Duration::from_secs(60);

/// One acknowledged put: its revision and when the client had the answer.
#[derive(Debug, Clone, Copy)]
pub(super) struct Ack {
    pub revision: i64,
    pub ack_ms: f64,
}

/// Now, in ms since the epoch (the journal's `received_at` clock).
pub(super) fn now_ms() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64() * 1e3)
}

fn key(n: u64) -> String {
    format!("/registry/configmaps/bench-journal/obj-{n:06}")
}

/// A random key of `objects` and a fresh random value: incompressible, like
/// a Secret under encryption at rest (the worst case for the journal's size).
fn next(rng: &mut Rng, objects: u64) -> (String, Vec<u8>) {
    let k = key(rng.below(objects));
    let mut v = Vec::with_capacity(VALUE_BYTES);
    rng.fill(&mut v, VALUE_BYTES);
    (k, v)
}

/// `n` clients, round-robin over the endpoints, one connection each.
pub(super) async fn connect(endpoints: &[String], n: usize) -> Result<Vec<Client>> {
    let mut v = Vec::new();
    for i in 0..n.max(1) {
        let ep = &endpoints[i % endpoints.len()];
        v.push(
            Client::connect([ep.clone()], None)
                .await
                .with_context(|| format!("connecting to {ep}"))?,
        );
    }
    Ok(v)
}

/// Writes every one of the `objects` keys once (transactions of 100 puts),
/// so that the base snapshot holds them. Returns the revision after.
pub(super) async fn seed(client: &Client, objects: u64, seed: u64) -> Result<i64> {
    let mut rng = Rng::new(seed ^ 0x10_4a11);
    let mut c = client.clone();
    let mut rev = 0;
    for start in (0..objects).step_by(100) {
        let ops: Vec<TxnOp> = (start..(start + 100).min(objects))
            .map(|n| {
                let mut v = Vec::with_capacity(VALUE_BYTES);
                rng.fill(&mut v, VALUE_BYTES);
                TxnOp::put(key(n), v, None)
            })
            .collect();
        let r = c
            .txn(Txn::new().and_then(ops))
            .await
            .context("seeding the keys")?;
        rev = r.header().map_or(rev, |h| h.revision());
    }
    Ok(rev)
}

/// What a burst or a steady phase wrote.
#[derive(Debug, Default)]
pub(super) struct Written {
    pub acks: Vec<Ack>,
    pub errors: u64,
    pub started_ms: f64,
    pub elapsed_s: f64,
    /// Puts scheduled (steady) or attempted (burst).
    pub scheduled: u64,
    /// How late the steady writer sent, ms (one per put).
    pub send_lag_ms: Vec<f64>,
}

async fn put(c: &mut Client, key: String, value: Vec<u8>) -> Option<Ack> {
    match tokio::time::timeout(REQUEST_TIMEOUT, c.put(key, value, None)).await {
        Ok(Ok(r)) => Some(Ack {
            revision: r.header().map_or(0, |h| h.revision()),
            ack_ms: now_ms(),
        }),
        _ => None,
    }
}

/// Every client puts as fast as etcd answers, one request at a time,
/// for `duration`.
pub(super) async fn burst(
    clients: &[Client],
    objects: u64,
    duration: Duration,
    seed: u64,
) -> Result<Written> {
    let started_ms = now_ms();
    let from = Instant::now();
    let until = from + duration;
    let mut tasks = JoinSet::new();
    for (i, c) in clients.iter().enumerate() {
        let mut c = c.clone();
        let mut rng = Rng::new(seed ^ ((i as u64 + 1) << 32));
        tasks.spawn(async move {
            let (mut acks, mut tries) = (Vec::new(), 0u64);
            while Instant::now() < until {
                let (k, v) = next(&mut rng, objects);
                tries += 1;
                if let Some(a) = put(&mut c, k, v).await {
                    acks.push(a);
                }
            }
            (acks, tries)
        });
    }
    let mut w = Written {
        started_ms,
        ..Default::default()
    };
    while let Some(r) = tasks.join_next().await {
        let (acks, tries) = r.context("a burst writer panicked")?;
        w.errors += tries - acks.len() as u64;
        w.scheduled += tries;
        w.acks.extend(acks);
    }
    w.elapsed_s = from.elapsed().as_secs_f64();
    w.acks.sort_by_key(|a| a.revision);
    Ok(w)
}

/// The open-loop writer: one put every `1/rate` s by the clock, over the
/// clients in turn, so that a slow request does not delay the next one.
#[derive(Debug)]
pub(super) struct Steady {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<Result<Written>>,
}

impl Steady {
    pub(super) fn start(
        rt: &tokio::runtime::Runtime,
        clients: &[Client],
        rate: f64,
        objects: u64,
        seed: u64,
    ) -> Steady {
        let stop = Arc::new(AtomicBool::new(false));
        let task = rt.spawn(steady(clients.to_vec(), rate, objects, seed, stop.clone()));
        Steady { stop, task }
    }

    /// Stops scheduling and waits for the puts in flight.
    pub(super) async fn stop(self) -> Result<Written> {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.context("the steady writer panicked")?
    }
}

fn reap(r: Result<Option<Ack>, tokio::task::JoinError>, w: &mut Written) {
    match r {
        Ok(Some(a)) => w.acks.push(a),
        _ => w.errors += 1,
    }
}

async fn steady(
    clients: Vec<Client>,
    rate: f64,
    objects: u64,
    seed: u64,
    stop: Arc<AtomicBool>,
) -> Result<Written> {
    let mut rng = Rng::new(seed ^ 0x57ead);
    let period = Duration::from_secs_f64(1.0 / rate);
    let mut w = Written {
        started_ms: now_ms(),
        ..Default::default()
    };
    let from = Instant::now();
    let mut due = from;
    let mut inflight: JoinSet<Option<Ack>> = JoinSet::new();
    while !stop.load(Ordering::Relaxed) {
        tokio::time::sleep_until(due).await;
        w.send_lag_ms
            .push((Instant::now() - due).as_secs_f64() * 1e3);
        let (k, v) = next(&mut rng, objects);
        let mut c = clients[w.scheduled as usize % clients.len()].clone();
        w.scheduled += 1;
        inflight.spawn(async move { put(&mut c, k, v).await });
        while let Some(r) = inflight.try_join_next() {
            reap(r, &mut w);
        }
        due += period;
    }
    w.elapsed_s = from.elapsed().as_secs_f64();
    while let Some(r) = inflight.join_next().await {
        reap(r, &mut w);
    }
    w.acks.sort_by_key(|a| a.revision);
    Ok(w)
}

/// Every `COMPACT_EVERY`, compacts the history older than `COMPACT_RETAIN`,
/// but never past the newest revision the journal holds in a closed segment
/// (`journal_dir`): the bench never makes a gap. Returns the compactions.
pub(super) async fn compactor(
    mut client: Client,
    journal_dir: PathBuf,
    stop: Arc<AtomicBool>,
) -> Result<u64> {
    let mut seen: std::collections::VecDeque<(Instant, i64)> = Default::default();
    let (mut done, mut compacted) = (0u64, 0i64);
    let mut last = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        tokio::time::sleep(Duration::from_millis(500)).await;
        if last.elapsed() < COMPACT_EVERY {
            continue;
        }
        last = Instant::now();
        let r = client
            .get(key(0), Some(GetOptions::new().with_count_only()))
            .await
            .context("compactor: revision")?;
        seen.push_back((Instant::now(), r.header().map_or(0, |h| h.revision())));
        let mut old = None;
        while let Some(&(t, rev)) = seen.front() {
            if t.elapsed() < COMPACT_RETAIN {
                break;
            }
            old = Some(rev);
            seen.pop_front();
        }
        let journaled = decode::committed(&journal_dir).map_or(0, |r| r + 1);
        if let Some(to) = old.map(|o| o.min(journaled)).filter(|t| *t > compacted) {
            client
                .compact(to, None)
                .await
                .context("compactor: compact")?;
            compacted = to;
            done += 1;
        }
    }
    Ok(done)
}
