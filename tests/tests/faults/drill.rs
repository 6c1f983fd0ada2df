//! Faults: drill and restore (issue 14, point 2).
//!
//! kill -9 and SIGTERM of `vigil-restore drill` at each stage (fetching and
//! decrypting, restoring, scratch etcd running), a dead drill whose janitor
//! died too, an older version's leftover scratch etcd, and kill -9 of
//! `vigil-restore etcd --out DIR` mid-way. Each case checks the three
//! promises: the archives are still there and restore (nothing verified is
//! lost), no decrypted byte and no scratch etcd is left (no plaintext), and
//! `restore_drill_failed` reaches the alert file (a human hears).

#![allow(clippy::unwrap_used)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use vigil_tests::etcd::Cluster;
use vigil_tests::faults::*;
use vigil_tests::*;

const NAMES: [&str; 3] = ["cp-1", "cp-2", "cp-3"];
/// A value that exists only in etcd and, decrypted, in a drill's scratch data.
const CANARY: &str = "canary-secret-7f3a9c1e-do-not-leak";

struct Bench {
    t: tempfile::TempDir,
    _cluster: Cluster,
    cfg: PathBuf,
    key: AgeKey,
    scratch: PathBuf,
    state: PathBuf,
    alerts: PathBuf,
}

/// A real 3-member cluster with ~20 MB of incompressible Secrets (so the
/// fetch and the restore take a moment) and a canary, archived once. The
/// drill reads back 3000 keys one by one, so its scratch etcd runs a while.
fn bench() -> Bench {
    bench_with("")
}

/// [`bench`] with more config (e.g. a `[daemon]` section) at the end.
fn bench_with(more: &str) -> Bench {
    let t = tempfile::tempdir().unwrap();
    let cluster = Cluster::start(&t.path().join("orig"), &NAMES, None);
    cluster.put_many("/registry/secrets/default/", 20000, 1024, true, 7);
    Cluster::runtime().block_on(async {
        let mut c = cluster.client(0).await;
        c.put("/registry/secrets/kube-system/canary", CANARY, None)
            .await
            .unwrap();
    });
    std::fs::create_dir_all(t.path().join("key")).unwrap();
    let key = age_key(&t.path().join("key"));
    let scratch = t.path().join("scratch");
    let alerts = t.path().join("alerts.jsonl");
    let mut cb = ConfigBuilder::new(t.path(), cluster.config_members(), &key.recipient);
    cb.peers = cluster.peer_urls();
    cb.extra = format!(
        "\n[restore]\ndrill_identity_file = \"{}\"\ndrill_sample_keys = 3000\nscratch_dir = \"{}\"\n{}",
        key.identity_file.display(),
        scratch.display(),
        file_channel(&alerts)
    ) + more;
    let cfg = cb.write("vigil.toml");
    let out = vigil("vigil-snapshot", &cfg, &["run"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    Bench {
        state: t.path().join("state"),
        t,
        _cluster: cluster,
        cfg,
        key,
        scratch,
        alerts,
    }
}

/// `kill -SIG pid`, as an operator or a service manager sends it.
fn signal(pid: u32, sig: &str) {
    let st = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status()
        .unwrap();
    assert!(st.success(), "kill -{sig} {pid}");
}

fn spawn(cfg: &Path, args: &[&str]) -> Child {
    Command::new(bin("vigil-restore"))
        .arg("--config")
        .arg(cfg)
        .args(args)
        .env("VIGIL_LOG", "info")
        .stdout(Stdio::null())
        .stderr(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(stderr_log(cfg))
                .unwrap(),
        )
        .spawn()
        .unwrap()
}

/// Where [`spawn`]ed commands log, for the failure messages.
fn stderr_log(cfg: &Path) -> PathBuf {
    cfg.with_file_name("spawned.stderr")
}

fn spawned_log(cfg: &Path) -> String {
    std::fs::read_to_string(stderr_log(cfg)).unwrap_or_default()
}

/// Promise 2: no file anywhere vigil writes (scratch, state, archives)
/// holds the canary in clear, nothing is left in the scratch root, and no
/// process runs on it.
fn assert_no_plaintext_left(b: &Bench) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let procs = processes_under(&b.scratch);
        let left = files_under(&b.scratch);
        if procs.is_empty() && left.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "5 s after the drill ended: processes on the scratch dir {procs:?}, files {left:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    for f in files_under(b.t.path()) {
        if f.starts_with(b.t.path().join("orig")) || !f.is_file() {
            continue;
        }
        let bytes = std::fs::read(&f).unwrap_or_default();
        assert!(
            !bytes.windows(CANARY.len()).any(|w| w == CANARY.as_bytes()),
            "{} holds decrypted etcd data",
            f.display()
        );
    }
}

/// Promise 1: every member's archive is still there and verified.
fn assert_archives_intact(b: &Bench) {
    let out = vigil("vigil-restore", &b.cfg, &["list", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let cat: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let a = cat["archives"].as_array().unwrap();
    assert_eq!(a.len(), 3, "{cat}");
    assert!(a.iter().all(|x| x["verified"] == true), "{cat}");
}

fn drill_outcome(b: &Bench, member: &str) -> serde_json::Value {
    let p = b.state.join(format!("outcomes/drill/{member}.json"));
    serde_json::from_slice(&std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display())))
        .unwrap()
}

/// A file or dir named `name` somewhere under `root`.
fn find_named(root: &Path, name: &str) -> Option<PathBuf> {
    files_under(root)
        .into_iter()
        .find(|p| p.file_name().is_some_and(|n| n == name))
}

/// The stages at which a drill is killed.
#[derive(Debug, Clone, Copy)]
enum At {
    /// Fetching and decrypting: the plaintext snapshot is being written.
    Fetch,
    /// etcdctl is writing the restored data dir.
    Restore,
    /// The scratch etcd serves the decrypted cluster (the checks run).
    Running,
}

/// Waits until the drill `child` is at `at` for member cp-1 and returns the
/// member's scratch dir. Only what any version of the drill does is looked
/// at (files being written, processes running), so that the cases also ran
/// against the code before the fix.
fn wait_for(child: &mut Child, scratch: &Path, at: At) -> PathBuf {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            panic!("the drill ended ({st}) before {at:?}");
        }
        assert!(Instant::now() < deadline, "the drill never reached {at:?}");
        let found = match at {
            At::Fetch => find_named(scratch, ".snapshot.db.partial"),
            At::Restore => find_named(scratch, ".data.partial"),
            // Answering: the drill deletes the snapshot once it does.
            At::Running => processes_under(scratch)
                .iter()
                .find(|(_, c)| c.contains("etcd ") && c.contains("--listen-client-urls"))
                .and_then(|_| find_named(scratch, "data"))
                .filter(|d| !d.with_file_name("snapshot.db").exists()),
        };
        if let Some(p) = found {
            let member = p.parent().unwrap().to_path_buf();
            if member
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("cp-1"))
            {
                return member;
            }
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Firing `restore_drill_failed{target="cp-1"}` notifications delivered to
/// the file channel so far (delivers the outbox first).
fn cp1_firings(b: &Bench) -> usize {
    fired(&b.cfg, &b.alerts)
        .iter()
        .filter(|k| k.contains("restore_drill_failed") && k.contains("cp-1"))
        .count()
}

/// Promise 3: the killed drill's member got a failed outcome that says so,
/// and a new `restore_drill_failed{target="cp-1"}` reached the file channel.
fn assert_reported(b: &Bench, what: &str, firings_before: usize) {
    let o = drill_outcome(b, "cp-1");
    assert_eq!(o["ok"], false, "{what}: {o}");
    assert!(
        o["error"]
            .as_str()
            .unwrap_or_default()
            .contains("killed or stopped"),
        "{what}: {o}"
    );
    let n = cp1_firings(b);
    assert!(
        n > firings_before,
        "{what}: no new restore_drill_failed for cp-1 reached the channel ({n} before and after)"
    );
}

/// A drill of cp-1 (or of all members) passes, so the archives restore, and
/// it resolves the alert.
fn assert_next_drill_passes(b: &Bench, all: bool) {
    let args: &[&str] = if all {
        &["drill"]
    } else {
        &["drill", "--member", "cp-1"]
    };
    let out = vigil("vigil-restore", &b.cfg, args);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    for m in NAMES.iter().take(if all { 3 } else { 1 }) {
        assert_eq!(drill_outcome(b, m)["ok"], true);
    }
    assert!(files_under(&b.scratch).is_empty());
}

/// kill -9 of the drill while it decrypts, while etcdctl restores, and while
/// the scratch etcd serves the decrypted cluster: within seconds no scratch
/// etcd or restore runs and no decrypted byte is left (before the fix the
/// scratch etcd ran on with parent 1, serving every Secret over http on
/// loopback, and `snapshot.db` and the data dir stayed), the killed member's
/// drill is reported, and the archives are intact and restore.
#[test]
fn kill_9_at_each_stage_of_a_drill_leaves_nothing_decrypted_and_is_reported() {
    let b = bench();
    for at in [At::Fetch, At::Restore, At::Running] {
        let before = cp1_firings(&b);
        let mut child = spawn(&b.cfg, &["drill"]);
        let dir = wait_for(&mut child, &b.scratch, at);
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        eprintln!("killed the drill at {at:?} ({})", dir.display());
        assert_no_plaintext_left(&b);
        assert_reported(&b, &format!("{at:?}"), before);
        assert_archives_intact(&b);
        // Resolves the alert, so the next kill must fire it anew.
        assert_next_drill_passes(&b, false);
    }
    assert_next_drill_passes(&b, true);
    assert_no_plaintext_left(&b);
}

/// SIGTERM (what vigild's shutdown and `systemctl stop` send) while the
/// scratch etcd runs: the drill dies of it, and everything goes as for kill -9.
#[test]
fn sigterm_of_a_drill_with_its_scratch_etcd_running_removes_everything() {
    let b = bench();
    let before = cp1_firings(&b);
    let mut child = spawn(&b.cfg, &["drill"]);
    wait_for(&mut child, &b.scratch, At::Running);
    signal(child.id(), "TERM");
    let st = child.wait().unwrap();
    use std::os::unix::process::ExitStatusExt;
    // Not "exit 0": vigild and systemd's OnFailure= see a killed job.
    assert!(!st.success(), "{st:?}");
    assert_eq!(st.signal(), Some(15), "{st:?}");
    assert_no_plaintext_left(&b);
    assert_reported(&b, "SIGTERM", before);
    assert_archives_intact(&b);
    assert_next_drill_passes(&b, false);
}

/// `vigild run` on `b`'s config, logging to `err_log`.
fn spawn_vigild(b: &Bench, err_log: &Path) -> Child {
    Command::new(bin("vigild"))
        .arg("--config")
        .arg(&b.cfg)
        .args(["--log-format", "text", "run"])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(err_log).unwrap())
        .spawn()
        .unwrap()
}

/// A failed assertion must not leave vigild (and its vigil-notify) running.
struct Stop(u32);
impl Drop for Stop {
    fn drop(&mut self) {
        let _ = Command::new("kill").arg(self.0.to_string()).status();
    }
}

/// vigild's shutdown while a scheduled drill's scratch etcd runs: vigild
/// sends the drill SIGTERM, the drill dies of it and its janitor tears down
/// (before the fix: the scratch etcd ran on with parent 1), and
/// `restore_drill_failed` for the unfinished member reaches the channel.
/// Then kill -9 of vigild itself during the next drill: the drill, its
/// scratch etcd and vigil-notify die with vigild (before: they ran on with
/// parent 1, the drill to its end), and the janitor cleans up and reports.
#[test]
fn vigild_shutdown_during_a_drill_leaves_nothing_decrypted_and_is_reported() {
    let b = bench_with(
        "\n[daemon]\nsnapshot = \"\"\nscrub = \"\"\ndrill = \"* * * * * *\"\nshutdown_timeout = \"20s\"\n",
    );
    let err_log = b.t.path().join("vigild.err");
    let mut vigild = spawn_vigild(&b, &err_log);
    let stop = Stop(vigild.id());
    wait_for(&mut vigild, &b.scratch, At::Running);
    signal(vigild.id(), "TERM");
    let st = vigild.wait().unwrap();
    std::mem::forget(stop);
    let log = std::fs::read_to_string(&err_log).unwrap_or_default();
    assert!(st.success(), "vigild: {st:?}\n{log}");
    assert!(log.contains("sending SIGTERM"), "{log}");
    assert_no_plaintext_left(&b);
    // vigild raises no job_unit_failed for a job its own shutdown stopped
    // (by design); the drill's janitor is what reports the unfinished drill.
    assert_reported(&b, "vigild shutdown", 0);
    assert_archives_intact(&b);
    // Resolves the alert, so the kill must fire it anew.
    assert_next_drill_passes(&b, false);

    let before = cp1_firings(&b);
    let mut vigild = spawn_vigild(&b, &err_log);
    let stop = Stop(vigild.id());
    wait_for(&mut vigild, &b.scratch, At::Running);
    vigild.kill().unwrap(); // SIGKILL: no shutdown of its own
    vigild.wait().unwrap();
    std::mem::forget(stop);
    // Nothing vigild started runs on: only the drill's janitor, until it
    // is done (its command line names the config too).
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let left = processes_under(&b.cfg);
        if left.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "15 s after kill -9 of vigild, still running: {left:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_no_plaintext_left(&b);
    assert_reported(&b, "kill -9 of vigild", before);
    assert_archives_intact(&b);
}

/// TCP sockets in LISTEN state, by inode, from /proc/net/tcp{,6}.
fn tcp_listen_inodes() -> Vec<String> {
    let mut out = Vec::new();
    for f in ["/proc/net/tcp", "/proc/net/tcp6"] {
        for l in std::fs::read_to_string(f)
            .unwrap_or_default()
            .lines()
            .skip(1)
        {
            let c: Vec<&str> = l.split_whitespace().collect();
            if c.get(3) == Some(&"0A") {
                out.push(c[9].to_string());
            }
        }
    }
    out
}

/// While the scratch etcd serves the decrypted cluster, it listens on no TCP
/// port at all, only on unix sockets in 0700 dirs of the drill's owner (before
/// the fix: http://127.0.0.1:<port> for clients and peers, no auth), and the
/// drill's checks pass over that socket.
#[test]
fn scratch_etcd_listens_only_on_a_private_unix_socket() {
    let b = bench();
    let mut child = spawn(&b.cfg, &["drill", "--member", "cp-1"]);
    let dir = wait_for(&mut child, &b.scratch, At::Running);
    let run = dir.parent().unwrap().to_path_buf();
    let procs = processes_under(&dir);
    let (pid, cmd) = procs
        .iter()
        .find(|(_, c)| c.contains("etcd ") && c.contains("--listen-client-urls"))
        .unwrap_or_else(|| panic!("no scratch etcd among {procs:?}"))
        .clone();
    // Its sockets (it answers the drill's checks by now): none is a
    // listening TCP socket (before the fix: two, on 127.0.0.1).
    let sockets = || -> Vec<String> {
        std::fs::read_dir(format!("/proc/{pid}/fd"))
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|fd| std::fs::read_link(fd.path()).ok())
            .filter_map(|l| {
                let l = l.to_string_lossy().to_string();
                Some(l.strip_prefix("socket:[")?.strip_suffix(']')?.to_string())
            })
            .collect()
    };
    assert!(sockets().len() >= 2, "the scratch etcd has no listeners");
    let listening = tcp_listen_inodes();
    for inode in sockets() {
        assert!(
            !listening.contains(&inode),
            "the scratch etcd listens on TCP (socket inode {inode}): {cmd}"
        );
    }
    // No http(s) listen URL either.
    assert!(
        !cmd.contains("http://") && !cmd.contains("https://"),
        "{cmd}"
    );
    assert!(cmd.contains("unix://"), "{cmd}");
    // The socket files are in a private dir, and so is every dir above it
    // up to the scratch root.
    let sock = dir.join("client.sock:0");
    assert!(
        std::fs::symlink_metadata(&sock).is_ok(),
        "{} is missing",
        sock.display()
    );
    for d in [&dir, &run, &b.scratch] {
        let mode = std::fs::metadata(d).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700, "{} is {mode:o}", d.display());
    }
    let st = child.wait().unwrap();
    assert!(st.success(), "{st:?}");
    let o = drill_outcome(&b, "cp-1");
    assert_eq!(o["ok"], true, "{o}");
    assert_no_plaintext_left(&b);
}

/// The janitor can die with the drill (a unit's whole cgroup killed, a power
/// cut): the scratch etcd still dies at once (PR_SET_PDEATHSIG). And an older version left `<member>-XXXX/` with a scratch etcd on
/// loopback http. The next drill kills that etcd (its command line names the
/// dir: it is ours), removes both leftovers, reports the killed run, and passes.
#[test]
fn next_drill_reaps_a_dead_drill_and_an_old_leftover_scratch_etcd() {
    let b = bench();
    // A dead drill whose janitor died with it.
    let mut child = spawn(&b.cfg, &["drill"]);
    let run = wait_for(&mut child, &b.scratch, At::Running)
        .parent()
        .unwrap()
        .to_path_buf();
    let janitor = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .find_map(|e| {
            let pid: i32 = e.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(e.path().join("stat")).ok()?;
            let ppid: u32 = stat
                .rsplit(')')
                .next()?
                .split_whitespace()
                .nth(1)?
                .parse()
                .ok()?;
            let cmd = std::fs::read(e.path().join("cmdline")).ok()?;
            (ppid == child.id() && String::from_utf8_lossy(&cmd).contains("__vigil-janitor"))
                .then_some(pid)
        })
        .expect("the drill has no janitor");
    signal(janitor as u32, "KILL");
    signal(child.id(), "KILL");
    child.wait().unwrap();
    // With no janitor, PR_SET_PDEATHSIG alone stops the scratch etcd.
    let deadline = Instant::now() + Duration::from_secs(3);
    while !processes_under(&run).is_empty() {
        assert!(
            Instant::now() < deadline,
            "the scratch etcd outlived the drill: {:?}",
            processes_under(&run)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(run.exists(), "nothing was left to reap");

    // An older version's leftover: a decrypted snapshot, a data dir, and a
    // scratch etcd on loopback http, still running.
    let old = b.scratch.join("cp-2-Ab12Cd");
    std::fs::create_dir_all(&old).unwrap();
    let snap = old.join("snapshot.db");
    let out = vigil(
        "vigil-restore",
        &b.cfg,
        &[
            "fetch",
            "-i",
            b.key.identity_file.to_str().unwrap(),
            "--member",
            "cp-2",
            "--out",
            snap.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let (cp, pp) = (free_port(), free_port());
    let peer = format!("http://127.0.0.1:{pp}");
    let restore = Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .arg("snapshot")
        .arg("restore")
        .arg(&snap)
        .args(["--name", "drill", "--initial-cluster"])
        .arg(format!("drill={peer}"))
        .args(["--initial-advertise-peer-urls", &peer, "--data-dir"])
        .arg(old.join("data"))
        .output()
        .unwrap();
    assert!(restore.status.success(), "{}", text(&restore));
    let client = format!("http://127.0.0.1:{cp}");
    let mut leftover = Command::new("etcd")
        .args(["--name", "drill", "--data-dir"])
        .arg(old.join("data"))
        .args([
            "--listen-client-urls",
            &client,
            "--advertise-client-urls",
            &client,
        ])
        .args([
            "--listen-peer-urls",
            &peer,
            "--initial-advertise-peer-urls",
            &peer,
        ])
        .arg("--initial-cluster")
        .arg(format!("drill={peer}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let up = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", cp)).is_err() {
        assert!(Instant::now() < up, "the leftover etcd did not start");
        std::thread::sleep(Duration::from_millis(100));
    }

    let out = vigil("vigil-restore", &b.cfg, &["drill", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let st = leftover.wait().unwrap();
    assert!(!st.success(), "the leftover etcd was not killed: {st:?}");
    assert!(!run.exists() && !old.exists());
    assert!(
        text(&out).contains("an earlier drill did not clean up"),
        "{}",
        text(&out)
    );
    // The killed run is in the history and its alert fired (the drill that
    // found it then passed cp-1 and resolved it).
    let hist = std::fs::read_to_string(b.state.join("outcomes.jsonl")).unwrap();
    assert!(
        hist.lines()
            .any(|l| l.contains("killed or stopped") && l.contains("by the next drill")),
        "{hist}"
    );
    assert!(cp1_firings(&b) > 0, "the killed run reached no channel");
    assert_no_plaintext_left(&b);
    assert_archives_intact(&b);
}

/// kill -9 of `vigil-restore etcd --out DIR` while the snapshot is being
/// decrypted and while the members' data dirs are being restored: no tool
/// goes on writing, DIR is left empty (no plaintext snapshot, no half data
/// dir that could pass for a restored member), and a rerun into the same DIR
/// works from the same verified archives.
#[test]
fn kill_9_of_an_etcd_restore_leaves_its_target_empty_and_rerunnable() {
    let b = bench();
    let target = b.t.path().join("restored");
    let id = b.key.identity_file.to_str().unwrap().to_string();
    let args = vec![
        "etcd",
        "-i",
        id.as_str(),
        "--out",
        target.to_str().unwrap(),
        "--skip-port-check",
    ];
    // No Kubernetes watches this cluster: --no-bump (issue 15), where the
    // binary has it.
    let help = Command::new(bin("vigil-restore"))
        .args(["etcd", "--help"])
        .output()
        .unwrap();
    let bumps = String::from_utf8_lossy(&help.stdout).contains("--no-bump");
    let mut unbumped = args.clone();
    if bumps {
        unbumped.push("--no-bump");
    }
    // Two moments: the snapshot being decrypted, and etcdctl writing data dirs.
    let partial_snapshot = |d: &Path| {
        std::fs::read_dir(d)
            .into_iter()
            .flatten()
            .flatten()
            .any(|e| {
                let n = e.file_name().to_string_lossy().to_string();
                n.ends_with(".db.partial")
            })
    };
    let restoring = |d: &Path| {
        std::fs::read_dir(d)
            .into_iter()
            .flatten()
            .flatten()
            .any(|e| {
                let n = e.file_name().to_string_lossy().to_string();
                n.starts_with(".cp-") && n.ends_with(".partial")
            })
    };
    // And the replayed bump's scratch etcd answering (etcdctl 3.4 cannot bump offline).
    let replaying = |d: &Path| d.join(".bump").join("client.sock:0").exists();
    let mut moments = vec![
        (
            "decrypting",
            &partial_snapshot as &dyn Fn(&Path) -> bool,
            &unbumped,
        ),
        ("restoring", &restoring, &unbumped),
    ];
    if bumps {
        moments.push(("replaying the bump", &replaying, &args));
    }
    for (what, at, args) in moments {
        let mut child = spawn(&b.cfg, args);
        let deadline = Instant::now() + Duration::from_secs(60);
        while !at(&target) {
            if let Some(st) = child.try_wait().unwrap() {
                panic!("ended ({st}) before {what}: {}", spawned_log(&b.cfg));
            }
            assert!(Instant::now() < deadline, "never {what}");
            std::thread::sleep(Duration::from_millis(1));
        }
        child.kill().unwrap();
        child.wait().unwrap();
        eprintln!("killed the restore while {what}");
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let procs = processes_under(&target);
            let left = files_under(&target);
            if procs.is_empty() && left.is_empty() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "killed while {what}: 5 s later processes {procs:?}, files {left:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        assert_archives_intact(&b);
    }
    let out = vigil("vigil-restore", &b.cfg, &unbumped);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    for m in NAMES {
        assert!(target.join(m).join("member/snap/db").is_file(), "{m}");
    }
}
