//! A Kubernetes-shaped etcd dataset, reproducible from a seed.
//!
//! Keys follow the apiserver's layout (`/registry/<resource>/<namespace>/<name>`):
//! - Pods: JSON of 3–14 KB (spec, status, managedFields), created, updated
//!   (status changes) and sometimes deleted;
//! - ConfigMaps: config-file text wrapped in JSON, 0.5–64 KB, created and updated;
//! - Secrets: random bytes behind the `k8s:enc:aescbc:v1:` prefix (what
//!   encryption at rest stores), 1–16 KB, and now and then a 64–256 KB Helm
//!   release secret;
//! - Events: ~1 KB JSON, created and deleted again (their TTL), so deletions
//!   and tombstones appear;
//! - Leases: node and controller leases, overwritten over and over.
//!
//! Writes go in transactions of up to 100 puts/deletes and ~900 KB (below
//! etcd's default `--max-txn-ops 128` and `--max-request-bytes 1.5 MiB`),
//! from several workers at once. Like the apiserver, the generator compacts
//! the history now and then, to the revision of the previous checkpoint, so
//! the database holds some history and free pages.
//!
//! Reproducibility: every worker draws from its own stream seeded by
//! `(seed, worker)` and owns its own keys, so the same seed writes the same
//! objects in the same order per worker. The run stops at the first check
//! where the database reached the target size. With `--workers 1` the
//! revision order is fully deterministic too.

use anyhow::{Context, Result};
use etcd_client::{Client, GetOptions, Txn, TxnOp};
use serde::Serialize;
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct GenOptions {
    pub endpoints: Vec<String>,
    /// Target etcd database size (bytes, as the member's status reports it).
    pub target: u64,
    pub seed: u64,
    pub workers: usize,
    /// Compact after this many bytes written (0: never).
    pub compact_every: u64,
    pub quiet: bool,
}

impl GenOptions {
    /// The benches' dataset: `target` bytes from `seed`, compacting every
    /// twentieth of the target (at least 1 MiB) as an apiserver would.
    pub fn dataset(
        endpoints: Vec<String>,
        target: u64,
        seed: u64,
        workers: usize,
        quiet: bool,
    ) -> Self {
        GenOptions {
            endpoints,
            target,
            seed,
            workers,
            compact_every: (target / 20).max(1 << 20),
            quiet,
        }
    }
}

/// What the generator made.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct Dataset {
    pub seed: u64,
    pub workers: usize,
    pub target_bytes: u64,
    pub db_size: u64,
    pub db_size_in_use: u64,
    pub revision: i64,
    pub keys: i64,
    pub bytes_written: u64,
    pub puts: u64,
    pub deletes: u64,
    pub compactions: u64,
    pub gen_seconds: f64,
}

/// A small, fast, seedable PRNG (splitmix64).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed ^ 0x5DEE_CE66_D1CE_4E5B)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        ((self.next_u64() as u128 * n as u128) >> 64) as u64
    }
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }
    /// Roughly log-uniform in `lo..=hi`: many small, few large.
    pub fn log_range(&mut self, lo: u64, hi: u64) -> u64 {
        let (l, h) = ((lo as f64).ln(), (hi as f64).ln());
        let u = (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        (l + (h - l) * u).exp() as u64
    }
    pub fn pick<'a>(&mut self, v: &[&'a str]) -> &'a str {
        v[self.below(v.len() as u64) as usize]
    }
    pub fn fill(&mut self, out: &mut Vec<u8>, n: usize) {
        let end = out.len() + n;
        while out.len() + 8 <= end {
            out.extend_from_slice(&self.next_u64().to_le_bytes());
        }
        let r = self.next_u64().to_le_bytes();
        out.extend_from_slice(&r[..end - out.len()]);
    }
    fn uid(&mut self) -> String {
        let (a, b) = (self.next_u64(), self.next_u64());
        format!(
            "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
            a >> 32,
            (a >> 16) & 0xffff,
            a & 0xfff,
            (b >> 48) | 0x8000,
            b & 0xffff_ffff_ffff
        )
    }
    fn suffix(&mut self, n: usize) -> String {
        const A: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
        (0..n)
            .map(|_| A[self.below(A.len() as u64) as usize] as char)
            .collect()
    }
}

mod world;

use world::World;

const TXN_OPS: usize = 100;
const TXN_BYTES: usize = 900 * 1024;

#[derive(Default)]
struct Counters {
    bytes: AtomicU64,
    puts: AtomicU64,
    deletes: AtomicU64,
}

async fn worker(
    mut client: Client,
    w: usize,
    seed: u64,
    stop: Arc<AtomicBool>,
    c: Arc<Counters>,
) -> Result<()> {
    let mut world = World::new(w, seed);
    let mut pending: Option<(String, Option<Vec<u8>>)> = None;
    while !stop.load(Ordering::Relaxed) {
        let mut ops = Vec::with_capacity(TXN_OPS);
        let mut keys = HashSet::with_capacity(TXN_OPS);
        let (mut bytes, mut puts, mut dels) = (0usize, 0u64, 0u64);
        while ops.len() < TXN_OPS && bytes < TXN_BYTES {
            let (k, v) = pending.take().unwrap_or_else(|| world.next_op());
            if keys.contains(&k) {
                // etcd refuses a key twice in one txn: it goes first in the next.
                pending = Some((k, v));
                break;
            }
            bytes += k.len() + v.as_ref().map_or(0, |v| v.len());
            ops.push(match v {
                Some(v) => {
                    puts += 1;
                    TxnOp::put(k.as_bytes(), v, None)
                }
                None => {
                    dels += 1;
                    TxnOp::delete(k.as_bytes(), None)
                }
            });
            keys.insert(k);
        }
        client
            .txn(Txn::new().and_then(ops))
            .await
            .with_context(|| format!("worker {w}: txn of {bytes} bytes"))?;
        c.bytes.fetch_add(bytes as u64, Ordering::Relaxed);
        c.puts.fetch_add(puts, Ordering::Relaxed);
        c.deletes.fetch_add(dels, Ordering::Relaxed);
    }
    Ok(())
}

/// Fills the cluster behind `endpoints` until its database reaches the target size.
/// [`generate`] from synchronous code, on a runtime of its own (two
/// workers: the bench machine has two cores), dropped before returning.
pub fn generate_blocking(o: &GenOptions) -> Result<Dataset> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(generate(o))
}

pub async fn generate(o: &GenOptions) -> Result<Dataset> {
    let t0 = Instant::now();
    let first = o.endpoints.first().context("no endpoints")?.clone();
    let client = Client::connect(o.endpoints.clone(), None)
        .await
        .with_context(|| format!("connecting to {:?}", o.endpoints))?;
    let mut probe = Client::connect([first.clone()], None)
        .await
        .with_context(|| format!("connecting to {first}"))?;
    let stop = Arc::new(AtomicBool::new(false));
    let counters = Arc::new(Counters::default());
    let mut tasks = Vec::new();
    for w in 0..o.workers.max(1) {
        tasks.push(tokio::spawn(worker(
            client.clone(),
            w,
            o.seed,
            stop.clone(),
            counters.clone(),
        )));
    }
    let mut compactions = 0u64;
    let mut checkpoint_rev = 0i64;
    let mut checkpoint_bytes = 0u64;
    let mut last_log = Instant::now();
    let result: Result<()> = async {
        loop {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if tasks.iter().any(|t| t.is_finished()) {
                break Ok(());
            }
            let st = probe.status().await.context("status")?;
            let db = st.db_size() as u64;
            let rev = st.header().map(|h| h.revision()).unwrap_or(0);
            let written = counters.bytes.load(Ordering::Relaxed);
            if db >= o.target {
                break Ok(());
            }
            if o.compact_every > 0 && written - checkpoint_bytes >= o.compact_every {
                if checkpoint_rev > 0 {
                    probe
                        .compact(checkpoint_rev, None)
                        .await
                        .context("compact")?;
                    compactions += 1;
                }
                checkpoint_rev = rev;
                checkpoint_bytes = written;
            }
            if !o.quiet && last_log.elapsed() >= Duration::from_secs(5) {
                last_log = Instant::now();
                eprintln!(
                    "gen: db {:.1} MB of {:.1} MB, {:.1} MB written, revision {rev}, {:.0} s",
                    db as f64 / 1e6,
                    o.target as f64 / 1e6,
                    written as f64 / 1e6,
                    t0.elapsed().as_secs_f64()
                );
            }
        }
    }
    .await;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.context("worker panicked")??;
    }
    result?;
    let st = probe.status().await.context("status")?;
    let keys = probe
        .get(
            vec![0u8],
            Some(GetOptions::new().with_all_keys().with_count_only()),
        )
        .await
        .context("counting keys")?;
    Ok(Dataset {
        seed: o.seed,
        workers: o.workers.max(1),
        target_bytes: o.target,
        db_size: st.db_size() as u64,
        db_size_in_use: st.raft_used_db_size() as u64,
        revision: keys.header().map(|h| h.revision()).unwrap_or(0),
        keys: keys.count(),
        bytes_written: counters.bytes.load(Ordering::Relaxed),
        puts: counters.puts.load(Ordering::Relaxed),
        deletes: counters.deletes.load(Ordering::Relaxed),
        compactions,
        gen_seconds: t0.elapsed().as_secs_f64(),
    })
}

/// `5MB`, `1GB`, `1.5GiB`, `4096` (bytes).
pub fn parse_size(s: &str) -> Result<u64> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num
        .parse()
        .with_context(|| format!("size {s:?}: write it like 5MB or 1GB"))?;
    let mult: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "kb" | "k" => 1e3,
        "mb" | "m" => 1e6,
        "gb" | "g" => 1e9,
        "kib" => 1024.0,
        "mib" => 1024.0 * 1024.0,
        "gib" => 1024.0 * 1024.0 * 1024.0,
        u => anyhow::bail!("size {s:?}: unknown unit {u:?} (B, KB, MB, GB, KiB, MiB, GiB)"),
    };
    Ok((n * mult) as u64)
}

#[cfg(test)]
mod tests;
