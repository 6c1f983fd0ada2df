//! The services a benchmark runs against, from the test harness
//! (vigil-tests): etcd members on free loopback ports and a throwaway Ceph
//! radosgw; and the CPU the etcd members spend.

use anyhow::{bail, Result};
use std::path::Path;
use std::process::Command;

pub use vigil_tests::ceph::{Rgw, ACCESS_KEY, SECRET_KEY};
pub use vigil_tests::etcd::{Cluster as Etcd, Member};

/// Starts `n` members as one cluster (names cp-1..cp-n) and waits for a
/// leader; a member that dies on the way is an error quoting its fatal lines.
pub fn start_etcd(dir: &Path, n: usize, quota_bytes: u64) -> Result<Etcd> {
    let names: Vec<String> = (1..=n).map(|i| format!("cp-{i}")).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let quota = quota_bytes.to_string();
    Ok(Etcd::try_start(
        dir,
        &names,
        None,
        &[
            "--quota-backend-bytes",
            &quota,
            // Few, large entries: purge the WAL after raft snapshots, or it
            // grows as large as the database on every member.
            "--snapshot-count",
            "2000",
        ],
    )?)
}

/// A radosgw whose in-memory OSD holds `memstore_bytes` (the script's
/// default is 2 GiB).
pub fn start_rgw(dir: &Path, memstore_bytes: u64) -> Result<Rgw> {
    // Deleted objects are freed by RGW's garbage collector, which waits
    // two hours by default; the harness runs `gc process` between steps.
    let ceph_args = format!("--memstore_device_bytes={memstore_bytes} --rgw_gc_obj_min_wait=0");
    Ok(Rgw::try_start(dir, Some(&ceph_args))?)
}

/// The s3cmd argv prefix for `rgw`, without the progress meter.
pub fn s3cmd(rgw: &Rgw) -> Vec<String> {
    let mut argv = rgw.s3cmd_argv();
    argv.push("--no-progress".into());
    argv
}

/// Runs s3cmd against `rgw`; its stdout, or an error with its stderr.
pub fn run_s3cmd(rgw: &Rgw, args: &[&str]) -> Result<String> {
    let o = rgw.s3cmd(args);
    if !o.status.success() {
        bail!(
            "s3cmd {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&o.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&o.stdout).into_owned())
}

/// user + sys CPU seconds of every member so far.
pub fn cpu_seconds(etcd: &Etcd, clk_tck: f64) -> f64 {
    etcd.members
        .iter()
        .filter_map(Member::pid)
        .map(|p| proc_cpu_ticks(p).unwrap_or(0) as f64 / clk_tck)
        .sum()
}

/// `[cluster] members` lines for a vigil config: name, endpoint, peer URL.
pub fn members_toml(members: &[Member]) -> String {
    members
        .iter()
        .map(|m| {
            format!(
                "  {{ name = \"{}\", endpoint = \"{}\", peer_url = \"{}\" }},\n",
                m.name,
                m.endpoint(),
                m.peer_url()
            )
        })
        .collect()
}

/// utime + stime of a process, in clock ticks.
pub fn proc_cpu_ticks(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &s[s.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // After the command: state is field 3, utime 14, stime 15.
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

pub fn clk_tck() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}
