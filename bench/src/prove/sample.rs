//! What a run holds while it runs: the RSS of a process tree and the bytes
//! in the proof's tmpfs dir, sampled every interval by a thread.

use super::Tick;
use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Process name (comm), parent, and memory (KiB: VmRSS, RssShmem).
struct Proc {
    ppid: u32,
    name: String,
    rss: u64,
    shmem: u64,
}

fn read_proc(pid: u32) -> Option<Proc> {
    let st = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let mut p = Proc {
        ppid: 0,
        name: String::new(),
        rss: 0,
        shmem: 0,
    };
    let kib = |v: &str| {
        v.split_whitespace()
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    for l in st.lines() {
        let Some((k, v)) = l.split_once(':') else {
            continue;
        };
        match k {
            "Name" => p.name = v.trim().to_string(),
            "PPid" => p.ppid = v.trim().parse().unwrap_or(0),
            "VmRSS" => p.rss = kib(v),
            "RssShmem" => p.shmem = kib(v),
            _ => {}
        }
    }
    Some(p)
}

/// Every process below `root` (not `root` itself).
fn tree(root: u32) -> Vec<Proc> {
    let mut all: HashMap<u32, Proc> = HashMap::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        if let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) {
            if let Some(p) = read_proc(pid) {
                all.insert(pid, p);
            }
        }
    }
    let mut want = vec![root];
    let mut out = Vec::new();
    while let Some(parent) = want.pop() {
        let kids: Vec<u32> = all
            .iter()
            .filter(|(_, p)| p.ppid == parent)
            .map(|(pid, _)| *pid)
            .collect();
        for k in kids {
            if let Some(p) = all.remove(&k) {
                out.push(p);
                want.push(k);
            }
        }
    }
    out
}

/// Bytes allocated under `dir` (du), and how many of its
/// `vigil-proof-*/<member>` dirs hold any.
pub(super) fn du(dir: &Path) -> (u64, u32) {
    fn walk(p: &Path) -> u64 {
        let mut n = 0;
        for e in std::fs::read_dir(p).into_iter().flatten().flatten() {
            let Ok(m) = e.path().symlink_metadata() else {
                continue;
            };
            n += m.blocks() * 512;
            if m.is_dir() {
                n += walk(&e.path());
            }
        }
        n
    }
    let mut total = 0;
    let mut dirs = 0;
    for run in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        for member in std::fs::read_dir(run.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            let path = member.path();
            let n = if path.is_dir() {
                walk(&path)
            } else {
                path.symlink_metadata().map_or(0, |m| m.blocks() * 512)
            };
            if n > 0 && path.is_dir() {
                dirs += 1;
            }
            total += n;
        }
    }
    (total, dirs)
}

fn tick(root: u32, dir: &Path, t0: Instant) -> Tick {
    let mut t = Tick {
        t_ms: t0.elapsed().as_millis() as u64,
        ..Default::default()
    };
    for p in tree(root) {
        let own = p.rss.saturating_sub(p.shmem);
        t.shmem_kib += p.shmem;
        match p.name.as_str() {
            "vigil-snapshot" => t.vigil_kib += own,
            "etcd" => {
                t.etcd_kib += own;
                t.etcds += 1;
            }
            _ => t.tools_kib += own,
        }
    }
    let (bytes, dirs) = du(dir);
    t.tmpfs_kib = bytes / 1024;
    t.dirs = dirs;
    t
}

/// Samples the tree below a PID and the proof dir until stopped (or dropped).
pub(super) struct Sampler {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<Vec<Tick>>>,
}

impl Sampler {
    pub(super) fn start(root: u32, dir: PathBuf, every: Duration) -> Sampler {
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let thread = std::thread::spawn(move || {
            let t0 = Instant::now();
            let mut ticks = Vec::new();
            while !s.load(Ordering::Relaxed) {
                ticks.push(tick(root, &dir, t0));
                std::thread::sleep(every);
            }
            ticks
        });
        Sampler {
            stop,
            thread: Some(thread),
        }
    }

    pub(super) fn stop(mut self) -> Vec<Tick> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread
            .take()
            .and_then(|t| t.join().ok())
            .unwrap_or_default()
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}
