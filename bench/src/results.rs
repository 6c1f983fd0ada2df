//! The machine-readable results file (`bench/results/<label>.json`).

use crate::gen::Dataset;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub const SCHEMA: u32 = 1;

/// One timed command.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Sample {
    pub wall_s: f64,
    /// Client CPU: user + sys of the measured process and its children.
    pub user_s: f64,
    pub sys_s: f64,
    pub cpu_s: f64,
    /// Peak RSS of the largest process (`/usr/bin/time` %M).
    pub maxrss_kib: u64,
    /// CPU the etcd members spent meanwhile (from /proc/<pid>/stat).
    pub server_cpu_s: f64,
    /// Bytes read / written where that means something (snapshot, archive).
    #[serde(default)]
    pub bytes_in: u64,
    #[serde(default)]
    pub bytes_out: u64,
}

/// Every sample of one step, and the command that makes it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Step {
    pub cmd: String,
    pub samples: Vec<Sample>,
}

/// The median of each field over the samples.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Median {
    pub wall_s: f64,
    pub wall_min_s: f64,
    pub wall_max_s: f64,
    pub cpu_s: f64,
    pub maxrss_kib: u64,
    pub maxrss_max_kib: u64,
    pub server_cpu_s: f64,
    pub bytes_in: u64,
    pub bytes_out: u64,
}

pub fn median(v: &mut [f64]) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Nearest rank over sorted values: the smallest value with at least `p`
/// of the samples at or below it (0 for none).
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

impl Step {
    pub fn median(&self) -> Median {
        let f = |g: &dyn Fn(&Sample) -> f64| {
            let mut v: Vec<f64> = self.samples.iter().map(g).collect();
            median(&mut v)
        };
        let walls = self.samples.iter().map(|s| s.wall_s);
        Median {
            wall_s: f(&|s| s.wall_s),
            wall_min_s: walls.clone().fold(f64::INFINITY, f64::min),
            wall_max_s: walls.fold(0.0, f64::max),
            cpu_s: f(&|s| s.cpu_s),
            maxrss_kib: f(&|s| s.maxrss_kib as f64) as u64,
            maxrss_max_kib: self.samples.iter().map(|s| s.maxrss_kib).max().unwrap_or(0),
            server_cpu_s: f(&|s| s.server_cpu_s),
            bytes_in: f(&|s| s.bytes_in as f64) as u64,
            bytes_out: f(&|s| s.bytes_out as f64) as u64,
        }
    }
}

/// The ratios the targets ask for (from the medians).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Derived {
    pub snapshot_bytes: u64,
    /// Pipeline (b) save → zip → s3cmd put, sum of its steps (median over runs).
    pub b_zip_wall_s: f64,
    /// Pipeline (b) save → zstd → age → s3cmd put.
    pub b_zstd_wall_s: f64,
    /// c = vigil-snapshot run, one member, local dir + radosgw (same member as a).
    pub c_over_a: f64,
    /// c without the radosgw sink (local dir only), over a.
    #[serde(default)]
    pub c_local_over_a: f64,
    /// c with `verify = "readback"` (the copy downloaded and hashed), over a.
    #[serde(default)]
    pub c_readback_over_a: f64,
    pub c_over_b_zstd: f64,
    pub c_over_b_zip: f64,
    /// Three members concurrently over a.
    pub c3_over_a: f64,
    pub three_over_one: f64,
    pub vigil_cpu_per_gb: f64,
    /// etcdctl client CPU + zstd CPU at the same level + sha256sum CPU, per GB.
    pub reference_cpu_per_gb: f64,
    pub cpu_ratio: f64,
    pub peak_rss_c1_mib: f64,
    pub peak_rss_c3_mib: f64,
    pub restore_fetch_s: f64,
    pub restore_sequential_s: f64,
    pub restore_ratio: f64,
    pub restore_etcd_3_members_s: f64,
    pub archive_ratio: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SweepRow {
    pub zstd_level: i32,
    pub zstd_threads: u32,
    /// The step key in `steps` (vigil-snapshot run, three members + radosgw).
    pub step: String,
    /// The step key of `zstd -L -T2` on the same snapshot.
    pub cli_step: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PartRow {
    pub part_size: String,
    pub upload_concurrency: u32,
    pub step: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Host {
    pub cpus: usize,
    pub cpu_model: String,
    pub mem_total_kib: u64,
    pub kernel: String,
    pub etcd_version: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Results {
    pub schema: u32,
    pub label: String,
    /// A harness check on a tiny dataset: the figures mean nothing.
    pub smoke: bool,
    pub started_at: String,
    pub git_commit: String,
    pub host: Host,
    pub members: usize,
    pub runs: usize,
    pub zstd_level: i32,
    pub dataset: Dataset,
    pub steps: BTreeMap<String, Step>,
    pub sweep: Vec<SweepRow>,
    pub parts: Vec<PartRow>,
    pub derived: Derived,
}

/// The figures BENCHMARKS.md quotes, from the steps' medians.
pub fn derive(steps: &BTreeMap<String, Step>) -> Derived {
    let m = |k: &str| steps.get(k).map(|s| s.median()).unwrap_or_default();
    // Pipeline sums per round, then the median over rounds.
    let per_round = |keys: &[&str]| {
        let n = keys
            .iter()
            .map(|k| steps.get(*k).map_or(0, |s| s.samples.len()))
            .min()
            .unwrap_or(0);
        let mut v: Vec<f64> = (0..n)
            .map(|i| keys.iter().map(|k| steps[*k].samples[i].wall_s).sum())
            .collect();
        median(&mut v)
    };
    let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { 0.0 };
    let (a, c1, c3) = (m("a_save"), m("c1"), m("c3"));
    let b_zip = per_round(&["a_save", "b_zip", "b_zip_put"]);
    let b_zstd = per_round(&["a_save", "b_zstd", "b_age", "b_age_put"]);
    let gb = a.bytes_out as f64 / 1e9;
    let reference = a.cpu_s + m("b_zstd").cpu_s + m("sha256").cpu_s;
    let fetch = m("r_fetch").wall_s;
    let seq = per_round(&["r_get", "r_age", "r_zstd"]);
    Derived {
        snapshot_bytes: a.bytes_out,
        b_zip_wall_s: b_zip,
        b_zstd_wall_s: b_zstd,
        c_over_a: ratio(c1.wall_s, a.wall_s),
        c_local_over_a: ratio(m("c1_local").wall_s, a.wall_s),
        c_readback_over_a: ratio(m("c1_readback").wall_s, a.wall_s),
        c_over_b_zstd: ratio(c1.wall_s, b_zstd),
        c_over_b_zip: ratio(c1.wall_s, b_zip),
        c3_over_a: ratio(c3.wall_s, a.wall_s),
        three_over_one: ratio(c3.wall_s, c1.wall_s),
        vigil_cpu_per_gb: ratio(c1.cpu_s, gb),
        reference_cpu_per_gb: ratio(reference, gb),
        cpu_ratio: ratio(c1.cpu_s, reference),
        peak_rss_c1_mib: c1.maxrss_max_kib as f64 / 1024.0,
        peak_rss_c3_mib: c3.maxrss_max_kib as f64 / 1024.0,
        restore_fetch_s: fetch,
        restore_sequential_s: seq,
        restore_ratio: ratio(fetch, seq),
        restore_etcd_3_members_s: m("r_etcd").wall_s,
        archive_ratio: ratio(c1.bytes_in as f64, c1.bytes_out as f64),
    }
}
