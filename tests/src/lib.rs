//! Test harness: real etcd members on loopback, a fault-injecting TCP proxy,
//! test certificates, age keys, and helpers to run the vigil binaries.
#![allow(clippy::unwrap_used)]

pub mod azure;
pub mod ceph;
pub mod cephfs;
pub mod etcd;
pub mod gcs;
pub mod health;
pub mod influx;
pub mod notify;
pub mod proc;
pub mod proxy;
pub mod tls;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A free TCP port on 127.0.0.1 for a daemon that a test starts, below the
/// kernel's ephemeral range, never handed out twice in this process.
pub fn free_port() -> u16 {
    free_block(1, 5000, 10000)
}

/// Ports handed out by this process. Two threads asking at once must not get
/// the same port, and a port from the ephemeral range (32768 and up) can be
/// taken by any outgoing connection between the probe and the daemon's bind.
static TAKEN: std::sync::Mutex<std::collections::BTreeSet<u16>> =
    std::sync::Mutex::new(std::collections::BTreeSet::new());

/// The first port of `n` consecutive free ports in `lo..hi`, for daemons
/// (Ceph) that take a port range. Keep `hi` below the kernel's ephemeral
/// range (32768 and up), where outgoing connections take ports at random.
pub fn free_block(n: u16, lo: u16, hi: u16) -> u16 {
    let seed = std::process::id() as u64
        ^ std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos() as u64)
            .unwrap_or(0);
    let slots = ((hi - lo) / n).max(1) as u64;
    let mut taken = TAKEN.lock().unwrap_or_else(|e| e.into_inner());
    // Every slot once, from a random start.
    for i in 0..slots {
        let base = lo + ((seed + i) % slots) as u16 * n;
        let block = base..base + n;
        if block.clone().all(|p| !taken.contains(&p))
            && block
                .clone()
                .all(|p| TcpListener::bind(("127.0.0.1", p)).is_ok())
        {
            taken.extend(block);
            return base;
        }
    }
    panic!("no block of {n} free ports in {lo}-{hi}");
}

/// Path of a workspace binary (built by `cargo build --workspace --bins`).
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap();
    let p = dir.join(name);
    assert!(
        p.exists(),
        "{} is missing: run `cargo build --workspace --bins` first",
        p.display()
    );
    p
}

/// Runs a vigil binary with a config and returns its output.
pub fn vigil(name: &str, config: &Path, args: &[&str]) -> Output {
    let out = Command::new(bin(name))
        .arg("--config")
        .arg(config)
        .args(args)
        .env("VIGIL_LOG", "info")
        .output()
        .unwrap();
    eprintln!(
        "$ {name} {}\n-- exit {:?}\n-- stdout\n{}\n-- stderr\n{}",
        args.join(" "),
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The jobs only queue alerts; `vigil-notify run --once` is one delivery
/// pass over the outbox. Panics unless it emptied the outbox (exit 0).
pub fn notify_once(config: &Path) -> Output {
    let out = vigil(
        "vigil-notify",
        config,
        &["run", "--once", "--timeout", "30s"],
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "vigil-notify run --once left the outbox undelivered: {}",
        text(&out)
    );
    out
}

pub fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// An age key pair made by the real `age-keygen`.
#[derive(Debug)]
pub struct AgeKey {
    pub identity_file: PathBuf,
    pub recipient: String,
}

pub fn age_key(dir: &Path) -> AgeKey {
    let identity_file = dir.join("age-key.txt");
    let _ = std::fs::remove_file(&identity_file);
    let st = Command::new("age-keygen")
        .arg("-o")
        .arg(&identity_file)
        .output()
        .unwrap();
    assert!(st.status.success(), "age-keygen failed: {}", text(&st));
    let out = Command::new("age-keygen")
        .arg("-y")
        .arg(&identity_file)
        .output()
        .unwrap();
    AgeKey {
        identity_file,
        recipient: String::from_utf8(out.stdout).unwrap().trim().to_string(),
    }
}

/// Decrypts and decompresses an archive with the real `age` and `zstd` CLIs.
pub fn open_archive(archive: &Path, key: &AgeKey, out: &Path) {
    let cmd = format!(
        "age -d -i '{}' '{}' | zstd -d -q -f -o '{}'",
        key.identity_file.display(),
        archive.display(),
        out.display()
    );
    let o = Command::new("sh").arg("-c").arg(&cmd).output().unwrap();
    assert!(o.status.success(), "{cmd}: {}", text(&o));
}

/// Visible archives (and their manifests) in a member directory.
pub fn archives(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    v.retain(|p| {
        let n = p.file_name().unwrap().to_string_lossy();
        !n.starts_with('.') && n.ends_with(".age")
    });
    v.sort();
    v
}

/// Every file in a directory, hidden ones included.
pub fn all_files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

pub fn is_root() -> bool {
    // SAFETY-free check: root's home and uid via `id -u`.
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout.starts_with(b"0\n"))
        .unwrap_or(false)
}

/// Writes a vigil config for `members` (name, endpoint) and returns its path.
#[derive(Debug)]
pub struct ConfigBuilder {
    pub dir: PathBuf,
    pub members: Vec<(String, String)>,
    pub recipient: Option<String>,
    pub extra_snapshot: String,
    /// Appended after [state]: sinks, alert channels, ...
    pub extra: String,
    /// Peer URLs per member (for restores); empty means the default.
    pub peers: Vec<String>,
    pub tls: Option<tls::Certs>,
    pub snapshot_dir: PathBuf,
}

impl ConfigBuilder {
    pub fn new(dir: &Path, members: Vec<(String, String)>, recipient: &str) -> Self {
        Self {
            dir: dir.to_path_buf(),
            members,
            recipient: Some(recipient.to_string()),
            extra_snapshot: String::new(),
            extra: String::new(),
            peers: Vec::new(),
            tls: None,
            snapshot_dir: dir.join("snapshots"),
        }
    }

    pub fn write(&self, name: &str) -> PathBuf {
        let mut s = String::from("[cluster]\nname = \"prod\"\nmembers = [\n");
        for (i, (n, e)) in self.members.iter().enumerate() {
            match self.peers.get(i) {
                Some(p) => s.push_str(&format!(
                    "  {{ name = \"{n}\", endpoint = \"{e}\", peer_url = \"{p}\" }},\n"
                )),
                None => s.push_str(&format!("  {{ name = \"{n}\", endpoint = \"{e}\" }},\n")),
            }
        }
        s.push_str("]\n");
        if let Some(t) = &self.tls {
            s.push_str(&format!(
                "[cluster.tls]\nca = \"{}\"\ncert = \"{}\"\nkey = \"{}\"\n",
                t.ca.display(),
                t.client_cert.display(),
                t.client_key.display()
            ));
        }
        s.push_str(&format!(
            "\n[snapshot]\ndir = \"{}\"\n",
            self.snapshot_dir.display()
        ));
        if let Some(r) = &self.recipient {
            s.push_str(&format!("age_recipients = [\"{r}\"]\n"));
        }
        s.push_str(&self.extra_snapshot);
        s.push_str(&format!(
            "\n[state]\ndir = \"{}\"\n",
            self.dir.join("state").display()
        ));
        s.push_str(&self.extra);
        let p = self.dir.join(name);
        std::fs::write(&p, s).unwrap();
        p
    }
}

/// The latest outcome record of `subject` for the snapshot job.
pub fn outcome(state: &Path, subject: &str) -> serde_json::Value {
    let p = state
        .join("outcomes/snapshot")
        .join(format!("{subject}.json"));
    serde_json::from_slice(&std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display())))
        .unwrap()
}

/// sha256 of a file, by the real `sha256sum`.
pub fn sha256_hex(p: &Path) -> String {
    let o = Command::new("sha256sum").arg(p).output().unwrap();
    String::from_utf8(o.stdout)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

/// The manifest beside an archive.
pub fn manifest(archive: &Path) -> serde_json::Value {
    let mut p = archive.as_os_str().to_owned();
    p.push(".json");
    serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
}

/// Starts `vigil-snapshot run` in the background with captured output.
pub fn spawn_run(config: &Path) -> std::process::Child {
    Command::new(bin("vigil-snapshot"))
        .arg("--config")
        .arg(config)
        .arg("run")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits until every dir holds a `.partial` file: the run is mid-write.
pub fn wait_for_partial(dirs: &[PathBuf]) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !dirs
        .iter()
        .all(|d| all_files(d).iter().any(|f| f.ends_with(".partial")))
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the run never started writing in {dirs:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Every item a file channel wrote (one JSON message per line, each with
/// `items`: `{"event", "alert": {"key", ...}, ...}`), in order.
pub fn alert_items(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .flat_map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["items"].as_array().cloned().unwrap_or_default()
        })
        .collect()
}
pub mod faults;
pub mod hostile;
pub mod http;

/// (event, key) of every alert item a file channel wrote, in order.
pub fn alert_events(path: &Path) -> Vec<(String, String)> {
    alert_items(path)
        .iter()
        .map(|i| {
            (
                i["event"].as_str().unwrap_or_default().to_string(),
                i["alert"]["key"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

/// A stand-in for an external tool (rke2, systemctl, ssh, ...): an
/// executable script in `dir` that appends `<name> <args>` to `log` and
/// exits 1 when `fail`, else 0.
pub fn stand_in(dir: &Path, name: &str, log: &Path, fail: bool) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let p = dir.join(name);
    std::fs::write(
        &p,
        format!(
            "#!/bin/sh\necho \"{name} $*\" >> '{}'\nexit {}\n",
            log.display(),
            u8::from(fail)
        ),
    )
    .unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    p
}

/// Processes whose command line names something under `root`, as
/// (pid, command line).
pub fn processes_under(root: &Path) -> Vec<(i32, String)> {
    let root = root.to_string_lossy().to_string();
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        let Ok(cmd) = std::fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        if cmd.contains(&root) {
            out.push((pid, cmd));
        }
    }
    out
}

/// Every file and directory under `root`, recursively.
pub fn files_under(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![root.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if e.file_type().unwrap().is_dir() {
                todo.push(p.clone());
            }
            out.push(p);
        }
    }
    out
}
