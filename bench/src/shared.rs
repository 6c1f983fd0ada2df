//! What every harness (run, cost, prove, checks) shares: timing a command
//! under `/usr/bin/time`, the work dir, the age key, the vigil config, the
//! host and the results file.

use crate::procs;
use crate::results::{Host, Sample};
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

fn q(s: &str) -> String {
    if s.chars()
        .all(|c| c.is_ascii_alphanumeric() || "-_./=:@,+".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

pub fn shell_line(argv: &[String]) -> String {
    argv.iter().map(|a| q(a)).collect::<Vec<_>>().join(" ")
}

/// Runs argv under `/usr/bin/time` in work dir `w` (stderr to `w/stderr.out`;
/// stdout to `stdout_to` if given). Returns the exit code and the sample.
pub fn time_cmd(
    w: &Path,
    argv: &[String],
    env: &[(&str, &str)],
    stdout_to: Option<&Path>,
) -> Result<(i32, Sample)> {
    time_cmd_watched(w, argv, env, stdout_to, |_| ()).map(|(c, s, ())| (c, s))
}

/// [`time_cmd`], calling `watch` with the PID of `/usr/bin/time` once it
/// runs (argv is its child), and returning what `watch` returned.
pub fn time_cmd_watched<W>(
    w: &Path,
    argv: &[String],
    env: &[(&str, &str)],
    stdout_to: Option<&Path>,
    watch: impl FnOnce(u32) -> W,
) -> Result<(i32, Sample, W)> {
    let tf = w.join("time.out");
    let mut cmd = Command::new("/usr/bin/time");
    cmd.args(["-f", "%e %U %S %M", "-o"])
        .arg(&tf)
        .args(argv)
        .stdin(Stdio::null())
        .stderr(std::fs::File::create(w.join("stderr.out"))?);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.stdout(match stdout_to {
        Some(p) => Stdio::from(std::fs::File::create(p)?),
        None => Stdio::null(),
    });
    let t0 = Instant::now();
    let mut child = cmd
        .spawn()
        .context("running /usr/bin/time (Debian package `time`)")?;
    let watched = watch(child.id());
    let st = child.wait()?;
    let wall = t0.elapsed().as_secs_f64();
    let t = std::fs::read_to_string(&tf)?;
    // On failure, time prints "Command exited with non-zero status N" first.
    let last = t.lines().last().unwrap_or("");
    let f: Vec<&str> = last.split_whitespace().collect();
    if f.len() < 4 {
        bail!("cannot read /usr/bin/time output {t:?}");
    }
    let (user, sys): (f64, f64) = (f[1].parse()?, f[2].parse()?);
    Ok((
        st.code().unwrap_or(-1),
        Sample {
            wall_s: wall,
            user_s: user,
            sys_s: sys,
            cpu_s: user + sys,
            maxrss_kib: f[3].parse()?,
            ..Default::default()
        },
        watched,
    ))
}

pub fn rm(p: &Path) {
    if p.is_dir() {
        let _ = std::fs::remove_dir_all(p);
    } else {
        let _ = std::fs::remove_file(p);
    }
}

/// A vigil config for `members` (the `[cluster]`, `[snapshot]` and `[state]`
/// tables; snapshots and state under `w`), with `snapshot_extra` (whole
/// lines) appended to `[snapshot]`. Sinks are the caller's to append.
pub fn vigil_config(
    members: &[procs::Member],
    w: &Path,
    recipient: &str,
    zstd_level: i32,
    zstd_threads: u32,
    snapshot_extra: &str,
) -> String {
    let mut s = String::from("[cluster]\nname = \"prod\"\nmembers = [\n");
    s.push_str(&procs::members_toml(members));
    s.push_str(&format!(
        "]\n\n[snapshot]\ndir = \"{}\"\nkeep_last = 1\nage_recipients = [\"{recipient}\"]\nzstd_level = {zstd_level}\nzstd_threads = {zstd_threads}\n{snapshot_extra}",
        w.join("snapshots").display(),
    ));
    s.push_str(&format!(
        "\n[state]\ndir = \"{}\"\n",
        w.join("state").display()
    ));
    s
}

pub fn host(etcd_version: String) -> Host {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    Host {
        cpus: std::thread::available_parallelism().map_or(0, |n| n.get()),
        cpu_model: cpuinfo
            .lines()
            .find(|l| l.starts_with("model name"))
            .and_then(|l| l.split(':').nth(1))
            .unwrap_or("")
            .trim()
            .to_string(),
        mem_total_kib: meminfo
            .lines()
            .find(|l| l.starts_with("MemTotal"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|n| n.parse().ok())
            .unwrap_or(0),
        kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .unwrap_or_default()
            .trim()
            .to_string(),
        etcd_version,
    }
}

/// The commit the figures were measured on.
pub fn git_head(repo: &Path) -> String {
    output(
        "git",
        &["-C", &repo.display().to_string(), "rev-parse", "HEAD"],
    )
}

pub fn output(cmd: &str, args: &[&str]) -> String {
    Command::new(cmd)
        .args(args)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

/// Checks that the binaries are built, makes an empty work dir and returns
/// its absolute path and the start time.
pub fn prepare(bin_dir: &Path, bins: &[&str], workdir: &Path) -> Result<(PathBuf, String)> {
    for b in bins {
        if !bin_dir.join(b).exists() {
            bail!(
                "{} is missing: build it (cargo build --release --bins)",
                bin_dir.join(b).display()
            );
        }
    }
    rm(workdir);
    std::fs::create_dir_all(workdir)?;
    let w = std::fs::canonicalize(workdir)?;
    Ok((w, output("date", &["-u", "+%Y-%m-%dT%H:%M:%SZ"])))
}

/// A fresh age key in `w`: the key file and its recipient.
pub fn age_key(w: &Path) -> Result<(PathBuf, String)> {
    let key_file = w.join("age-key.txt");
    let st = Command::new("age-keygen")
        .arg("-o")
        .arg(&key_file)
        .stderr(Stdio::null())
        .status()?;
    if !st.success() {
        bail!("age-keygen failed");
    }
    let recipient = output("age-keygen", &["-y", &key_file.display().to_string()]);
    Ok((key_file, recipient))
}

/// The machine's 1-minute load average (other work on it shows here).
pub fn loadavg() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0)
}

pub fn etcd_version() -> String {
    output("etcd", &["--version"])
        .lines()
        .next()
        .unwrap_or("")
        .to_string()
}

/// Writes a results file as pretty JSON, creating its directory.
pub fn write_results(out: &Path, res: &impl serde::Serialize) -> Result<()> {
    if let Some(d) = out.parent() {
        std::fs::create_dir_all(d)?;
    }
    std::fs::write(out, serde_json::to_string_pretty(res)?)?;
    eprintln!("results: {}", out.display());
    Ok(())
}
