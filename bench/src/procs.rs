//! The services a benchmark runs against: etcd members on free loopback
//! ports, and a throwaway Ceph radosgw (tests/ceph/start-rgw.sh).

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[derive(Debug)]
pub struct Member {
    pub name: String,
    pub client_port: u16,
    pub peer_port: u16,
    pub data_dir: PathBuf,
    child: Option<Child>,
}

impl Member {
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.client_port)
    }
    pub fn peer_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.peer_port)
    }
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }
}

/// etcd members started by the harness; killed (by PID) when dropped.
#[derive(Debug)]
pub struct Etcd {
    pub members: Vec<Member>,
}

impl Etcd {
    /// Starts `n` members as one cluster (names cp-1..cp-n) and waits for a leader.
    pub fn start(dir: &Path, n: usize, quota_bytes: u64) -> Result<Etcd> {
        std::fs::create_dir_all(dir)?;
        let mut members = Vec::new();
        for i in 1..=n {
            members.push(Member {
                name: format!("cp-{i}"),
                client_port: vigil_tests::free_port(),
                peer_port: vigil_tests::free_port(),
                data_dir: dir.join(format!("cp-{i}")),
                child: None,
            });
        }
        let initial: Vec<String> = members
            .iter()
            .map(|m| format!("{}={}", m.name, m.peer_url()))
            .collect();
        let token = format!("bench-{}", std::process::id());
        let mut etcd = Etcd { members };
        for m in &mut etcd.members {
            let log = std::fs::File::create(dir.join(format!("{}.log", m.name)))?;
            let child = Command::new("etcd")
                .args(["--name", &m.name, "--data-dir"])
                .arg(&m.data_dir)
                .args(["--listen-client-urls", &m.endpoint()])
                .args(["--advertise-client-urls", &m.endpoint()])
                .args(["--listen-peer-urls", &m.peer_url()])
                .args(["--initial-advertise-peer-urls", &m.peer_url()])
                .args(["--initial-cluster", &initial.join(",")])
                .args(["--initial-cluster-state", "new"])
                .args(["--initial-cluster-token", &token])
                .args(["--quota-backend-bytes", &quota_bytes.to_string()])
                // Few, large entries: purge the WAL after raft snapshots, or it
                // grows as large as the database on every member.
                .args(["--snapshot-count", "2000"])
                .args(["--heartbeat-interval", "100", "--election-timeout", "1500"])
                .args(["--log-level", "warn"])
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .context("starting etcd (Debian etcd-server)")?;
            m.child = Some(child);
        }
        etcd.wait_healthy(dir)?;
        Ok(etcd)
    }

    /// Waits until every member answers; stops early when one has exited
    /// (a full disk or a taken port kills etcd at once), naming its log.
    fn wait_healthy(&mut self, dir: &Path) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(60);
        for i in 0..self.members.len() {
            loop {
                let o = Command::new("etcdctl")
                    .env("ETCDCTL_API", "3")
                    .args([
                        "--endpoints",
                        &self.members[i].endpoint(),
                        "endpoint",
                        "status",
                    ])
                    .args(["--command-timeout", "2s"])
                    .output()?;
                if o.status.success() {
                    break;
                }
                let exited = self.members.iter_mut().find_map(|m| {
                    let status = m.child.as_mut()?.try_wait().ok()??;
                    Some((m.name.clone(), status))
                });
                if exited.is_some() || Instant::now() > deadline {
                    let (name, how) = match exited {
                        Some((name, status)) => (name, format!("exited ({status})")),
                        None => (
                            self.members[i].name.clone(),
                            "did not come up in 60 s".into(),
                        ),
                    };
                    let log = dir.join(format!("{name}.log"));
                    bail!(
                        "etcd member {name} {how}; from {}:\n{}",
                        log.display(),
                        log_tail(&log, 15)
                    );
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        }
        Ok(())
    }

    pub fn endpoints(&self) -> Vec<String> {
        self.members.iter().map(|m| m.endpoint()).collect()
    }

    /// user + sys CPU seconds of every member so far.
    pub fn cpu_seconds(&self, clk_tck: f64) -> f64 {
        self.members
            .iter()
            .filter_map(|m| m.pid())
            .map(|p| proc_cpu_ticks(p).unwrap_or(0) as f64 / clk_tck)
            .sum()
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        for m in &mut self.members {
            if let Some(mut c) = m.child.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
}

/// What killed etcd, from its log: its fatal lines (a Go stack trace after
/// them hides the cause), else the last `n` lines.
fn log_tail(path: &Path, n: usize) -> String {
    let s = match std::fs::read_to_string(path) {
        Ok(s) => s,
        Err(e) => return format!("(cannot read: {e})"),
    };
    let fatal = [
        " C | ",
        "panic: ",
        r#""level":"fatal""#,
        r#""level":"panic""#,
    ];
    let lines: Vec<&str> = s
        .lines()
        .filter(|l| fatal.iter().any(|f| l.contains(f)))
        .collect();
    let lines = if lines.is_empty() {
        s.lines().collect()
    } else {
        lines
    };
    lines[lines.len().saturating_sub(n)..].join("\n")
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

/// The test harness's radosgw user (tests/ceph/start-rgw.sh creates it).
pub use vigil_tests::ceph::{ACCESS_KEY, SECRET_KEY};

/// A Ceph radosgw from the test harness script; stopped when dropped.
#[derive(Debug)]
pub struct Rgw {
    pub dir: PathBuf,
    pub port: u16,
    scripts: PathBuf,
}

impl Rgw {
    /// `memstore_bytes`: the in-memory OSD's size (the script's default is 2 GiB).
    pub fn start(repo: &Path, dir: &Path, memstore_bytes: u64) -> Result<Rgw> {
        let scripts = repo.join("tests/ceph");
        let port = vigil_tests::free_port();
        // Mon ports: BASE..BASE+60, checked free and below the ephemeral range.
        let base = vigil_tests::free_block(64, 20000, 32000);
        // Deleted objects are freed by RGW's garbage collector, which waits
        // two hours by default; the harness runs `gc process` between steps.
        let ceph_args = format!("--memstore_device_bytes={memstore_bytes} --rgw_gc_obj_min_wait=0");
        let o = Command::new("bash")
            .arg(scripts.join("start-rgw.sh"))
            .arg(dir)
            .arg(port.to_string())
            .arg(base.to_string())
            .env("CEPH_ARGS", &ceph_args)
            .output()
            .context("running tests/ceph/start-rgw.sh")?;
        let rgw = Rgw {
            dir: dir.to_path_buf(),
            port,
            scripts,
        };
        if !o.status.success() || !String::from_utf8_lossy(&o.stdout).contains("ready") {
            bail!(
                "tests/ceph/start-rgw.sh failed: {}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            );
        }
        Ok(rgw)
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The s3cmd argv prefix for this radosgw (no config file).
    pub fn s3cmd(&self) -> Vec<String> {
        let host = format!("127.0.0.1:{}", self.port);
        [
            "s3cmd",
            "--no-ssl",
            "--access_key",
            ACCESS_KEY,
            "--secret_key",
            SECRET_KEY,
            "--host",
            &host,
            "--host-bucket",
            &host,
            "--region",
            "us-east-1",
            "-c",
            "/dev/null",
            "--no-progress",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    }

    pub fn run_s3cmd(&self, args: &[&str]) -> Result<String> {
        let argv = self.s3cmd();
        let o = Command::new(&argv[0])
            .args(&argv[1..])
            .args(args)
            .output()?;
        if !o.status.success() {
            bail!(
                "s3cmd {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&o.stderr)
            );
        }
        Ok(String::from_utf8_lossy(&o.stdout).into_owned())
    }

    /// Frees deleted objects now instead of in two hours.
    pub fn gc(&self) {
        let _ = Command::new("radosgw-admin")
            .arg("-c")
            .arg(self.dir.join("ceph.conf"))
            .args(["gc", "process", "--include-all"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

impl Drop for Rgw {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(self.scripts.join("stop-rgw.sh"))
            .arg(&self.dir)
            .status();
    }
}
