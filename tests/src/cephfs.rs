//! A real CephFS (Debian's Ceph 16: mon, mgr, memstore OSD, MDS) with a
//! ceph-fuse mount, on loopback, via tests/ceph/start-cephfs.sh. Dropping
//! the guard stops every daemon it started and unmounts, even on panic.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

pub const MIB: u64 = 1 << 20;

#[derive(Debug)]
pub struct CephFs {
    pub dir: PathBuf,
    /// The ceph-fuse mount of the volume's root.
    pub mnt: PathBuf,
    pub conf: PathBuf,
    /// The client.admin keyring.
    pub keyring: PathBuf,
    pub volume: String,
    scripts: PathBuf,
}

impl CephFs {
    /// Starts the cluster with volume `vol1` mounted at `DIR/mnt`.
    pub fn start(dir: &Path) -> CephFs {
        let scripts = Path::new(env!("CARGO_MANIFEST_DIR")).join("ceph");
        let base = crate::free_block(40, 10000, 20000);
        let started = Instant::now();
        let o = Command::new("bash")
            .arg(scripts.join("start-cephfs.sh"))
            .arg(dir)
            .arg(base.to_string())
            .arg((base + 1).to_string())
            .arg((base + 2).to_string())
            .arg((base + 39).to_string())
            .arg("vol1")
            .output()
            .unwrap();
        let fs = CephFs {
            dir: dir.to_path_buf(),
            mnt: dir.join("mnt"),
            conf: dir.join("ceph.conf"),
            keyring: dir.join("client.admin.keyring"),
            volume: "vol1".into(),
            scripts,
        };
        assert!(
            o.status.success() && String::from_utf8_lossy(&o.stdout).contains("ready"),
            "start-cephfs.sh failed: {}",
            crate::text(&o)
        );
        eprintln!(
            "cephfs up in {:.1}s (ports {base}-{})",
            started.elapsed().as_secs_f64(),
            base + 39
        );
        fs
    }

    /// Runs `ceph -c CONF ARGS`.
    pub fn ceph(&self, args: &[&str]) -> Output {
        Command::new("ceph")
            .arg("-c")
            .arg(&self.conf)
            .args(["--connect-timeout", "10"])
            .args(args)
            .output()
            .unwrap()
    }

    /// Runs `ceph` and asserts success; returns stdout.
    pub fn ceph_ok(&self, args: &[&str]) -> String {
        let o = self.ceph(args);
        assert!(
            o.status.success(),
            "ceph {}: {}",
            args.join(" "),
            crate::text(&o)
        );
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    }

    pub fn create_group(&self, name: &str, size: Option<u64>) {
        let size = size.map(|s| s.to_string());
        let mut a = vec!["fs", "subvolumegroup", "create", &self.volume, name];
        if let Some(s) = &size {
            a.extend(["--size", s]);
        }
        self.ceph_ok(&a);
    }

    /// Creates a subvolume (in `_nogroup` when `group` is None) and returns
    /// its data directory on the mount.
    pub fn create_subvolume(&self, name: &str, group: Option<&str>, size: Option<u64>) -> PathBuf {
        let size = size.map(|s| s.to_string());
        let mut a = vec!["fs", "subvolume", "create", &self.volume, name];
        if let Some(s) = &size {
            a.extend(["--size", s]);
        }
        if let Some(g) = group {
            a.extend(["--group_name", g]);
        }
        self.ceph_ok(&a);
        let mut a = vec!["fs", "subvolume", "getpath", &self.volume, name];
        if let Some(g) = group {
            a.extend(["--group_name", g]);
        }
        let p = self.ceph_ok(&a);
        self.mnt.join(p.trim_start_matches('/'))
    }

    /// Kills mon, mgr, OSD and MDS (not ceph-fuse), as an outage would.
    pub fn kill_daemons(&self) {
        let mut pids = Vec::new();
        for name in ["mon.a", "mgr.x", "osd.0", "mds.a"] {
            if let Ok(p) = std::fs::read_to_string(self.dir.join(format!("run/{name}.pid"))) {
                let p = p.trim().to_string();
                let _ = Command::new("kill").arg("-9").arg(&p).status();
                pids.push(p);
            }
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while pids
            .iter()
            .any(|p| Path::new(&format!("/proc/{p}")).exists())
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Writes `bytes` of incompressible data to `path` in 1 MiB chunks through
/// the mount, then fsyncs. Returns the error that stopped it, if any.
pub fn write_file(path: &Path, bytes: u64) -> Result<(), std::io::Error> {
    use std::io::Write;
    let mut f = std::fs::File::create(path)?;
    let mut chunk = vec![0u8; MIB as usize];
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15 ^ bytes;
    let mut left = bytes;
    while left > 0 {
        for b in chunk.iter_mut() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *b = x as u8;
        }
        let n = left.min(MIB) as usize;
        f.write_all(&chunk[..n])?;
        left -= n as u64;
    }
    f.sync_all()
}

impl Drop for CephFs {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(self.scripts.join("stop-cephfs.sh"))
            .arg(&self.dir)
            .status();
    }
}
