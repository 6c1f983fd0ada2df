//! Nothing vigil-restore starts or decrypts outlives it (issue 14, point 2).
//!
//! Two helper modes of the same binary, run through `/proc/self/exe` so the
//! workspace stays free of `unsafe` (no `pre_exec`):
//!
//! - [`tied`] and [`tie`]: a child (the scratch etcd, etcdctl/etcdutl
//!   restores) dies with vigil-restore, through `vigil_cli::tie`'s helper
//!   mode. Every caller starts tied children from a thread that waits for them.
//! - [`Janitor`]: `vigil-restore __vigil-janitor [CONFIG]` waits on a pipe
//!   whose only writer is vigil-restore. If the pipe closes without `done`
//!   (SIGKILL, SIGTERM, OOM killer, panic), it kills what still runs on the
//!   guarded paths, removes them, and records and raises the outcome that was
//!   left for it, so a human hears of the killed run. It ignores SIGTERM,
//!   SIGINT and SIGHUP (a service stop or a terminal signals the whole group)
//!   and runs in its own process group.
//!
//! [`reap`] is also what the next drill runs over a dead run's leftovers, when
//! even the janitor was killed (the unit's whole cgroup, a power cut).

use std::ffi::{OsStr, OsString};
use std::io::{Read, Write};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub use vigil_cli::tie::{tied, TIED};

/// First argument of the janitor helper mode.
pub const JANITOR: &str = "__vigil-janitor";

/// Runs the janitor's helper mode; call first in `main` (`vigil_cli::main`
/// runs the tied one). Returns for every other argv.
pub fn hook() {
    let mut args = std::env::args_os().skip(1);
    if args.next().as_deref() == Some(OsStr::new(JANITOR)) {
        let rest: Vec<OsString> = args.collect();
        std::process::exit(janitor_main(&rest));
    }
}

/// `cmd`, run so that it dies with this process: for the tools that handle
/// decrypted data (etcdctl/etcdutl on a snapshot), so that a killed restore
/// or drill leaves no tool writing a data dir behind.
pub fn tie(cmd: vigil_core::cmd::Cmd) -> vigil_core::cmd::Cmd {
    let pid = std::process::id().to_string();
    cmd.launcher(&[
        OsStr::new("/proc/self/exe"),
        OsStr::new(TIED),
        OsStr::new(&pid),
    ])
}

/// One line on stderr from a helper mode (no tracing there), with the
/// journal's priority prefix when stderr is the journal (`<4>` warning,
/// `<3>` error).
fn say(prio: u8, msg: &str) {
    // vigil-snapshot runs these modes too (its restore proof).
    let me = std::env::current_exe()
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "vigil".into());
    if vigil_cli::journal_stream() {
        eprintln!("<{prio}>{me}: {msg}");
    } else {
        eprintln!("{me}: {msg}");
    }
}

/// The janitor of one run: see the module doc.
#[derive(Debug)]
pub struct Janitor {
    child: Child,
    tx: Option<std::io::PipeWriter>,
}

impl Janitor {
    /// Starts the janitor. `config` lets it raise the outcome it is given.
    pub fn spawn(config: Option<&Path>) -> std::io::Result<Janitor> {
        let (rx, tx) = std::io::pipe()?;
        let mut c = Command::new("/proc/self/exe");
        c.arg(JANITOR);
        if let Some(p) = config {
            c.arg(p);
        }
        let child = c.stdin(rx).stdout(Stdio::null()).process_group(0).spawn()?;
        Ok(Janitor {
            child,
            tx: Some(tx),
        })
    }

    fn send(&mut self, verb: &str, arg: &OsStr) -> std::io::Result<()> {
        if arg.as_bytes().contains(&b'\n') {
            return Err(std::io::Error::other(format!(
                "{:?}: a path with a line break cannot be guarded",
                arg
            )));
        }
        let mut line = verb.as_bytes().to_vec();
        line.push(b' ');
        line.extend_from_slice(arg.as_bytes());
        line.push(b'\n');
        match &mut self.tx {
            Some(tx) => tx.write_all(&line),
            None => Ok(()),
        }
    }

    /// If this process dies before [`Janitor::done`], `path` is removed and
    /// every process whose command line names it is killed first.
    pub fn guard(&mut self, path: &Path) -> std::io::Result<()> {
        self.send("path", path.as_os_str())
    }

    /// If this process dies before [`Janitor::done`], the outcome record in
    /// this file (if it exists then) is recorded and raised.
    pub fn outcome(&mut self, file: &Path) -> std::io::Result<()> {
        self.send("outcome", file.as_os_str())
    }

    /// The run ended by itself: the janitor leaves everything alone.
    pub fn done(mut self) {
        let _ = self.send("done", OsStr::new("-"));
        self.tx = None;
        let _ = self.child.wait();
    }
}

impl Drop for Janitor {
    fn drop(&mut self) {
        // Without `done` (an early return, a panic): the janitor cleans up now.
        if self.tx.take().is_some() {
            let _ = self.child.wait();
        }
    }
}

fn janitor_main(a: &[OsString]) -> i32 {
    // Swallow the signals meant for vigil-restore: the janitor's work starts
    // when it is gone. The handlers stay installed for the process's life.
    let rt = match vigil_core::runtime::current_thread() {
        Ok(rt) => rt,
        Err(e) => {
            say(3, &format!("janitor: {e}"));
            return 1;
        }
    };
    let _sigs = {
        let _g = rt.enter();
        use tokio::signal::unix::{signal, SignalKind};
        [
            SignalKind::terminate(),
            SignalKind::interrupt(),
            SignalKind::hangup(),
        ]
        .map(signal)
    };
    let mut buf = Vec::new();
    let _ = std::io::stdin().lock().read_to_end(&mut buf);
    let mut paths = Vec::new();
    let mut outcome = None;
    for line in buf.split(|b| *b == b'\n') {
        let Some(sp) = line.iter().position(|b| *b == b' ') else {
            continue;
        };
        let arg = PathBuf::from(OsString::from_vec(line[sp + 1..].to_vec()));
        match &line[..sp] {
            b"done" => return 0,
            b"path" => paths.push(arg),
            b"outcome" => outcome = Some(arg),
            _ => {}
        }
    }
    // Hold the guarded dirs' locks while reaping, so that a drill starting
    // meanwhile leaves this run to us (see drill.rs `reap_stale`). A dead
    // run's locks are free; an early return's are released before we are
    // waited for, but never wait forever.
    let _locks: Vec<std::fs::File> = paths
        .iter()
        .filter_map(|p| std::fs::File::open(p).ok())
        .filter(|f| {
            let until = Instant::now() + Duration::from_secs(10);
            loop {
                match f.try_lock() {
                    Ok(()) => return true,
                    Err(_) if Instant::now() > until => return false,
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        })
        .collect();
    let record = outcome.and_then(|p| std::fs::read(p).ok());
    for line in reap(&paths) {
        say(4, &line);
    }
    let Some(record) = record else {
        return 0;
    };
    let Some(config) = a.first() else {
        return 0;
    };
    match vigil_core::Config::load_for(Path::new(config), vigil_core::config::Uses::RESTORE) {
        Ok(cfg) => match serde_json::from_slice::<vigil_core::outcome::Outcome>(&record) {
            Ok(o) => {
                raise_killed(&cfg, &o);
                0
            }
            Err(e) => {
                say(
                    3,
                    &format!("the outcome left for the janitor is unreadable: {e}"),
                );
                1
            }
        },
        Err(e) => {
            say(3, &format!("cannot record that the run was killed: {e}"));
            1
        }
    }
}

/// Records the outcome of a run that was killed and queues its alert at once:
/// the killed run never reached its own `raise`.
pub fn raise_killed(cfg: &vigil_core::Config, o: &vigil_core::outcome::Outcome) {
    let mut o = o.clone();
    o.time = vigil_core::rfc3339(vigil_core::now());
    say(
        4,
        &format!(
            "{} run {} of {} did not finish: {}",
            o.job,
            o.run_id,
            o.subject,
            o.error.as_deref().unwrap_or_default()
        ),
    );
    if let Err(e) = vigil_core::outcome::record(&cfg.state.dir, &o) {
        say(3, &format!("writing the outcome of the killed run: {e}"));
        return;
    }
    vigil_alert::raise_run(cfg, &[o.job], &o.run_id);
}

/// Kills every process whose command line names one of `paths` (a scratch
/// etcd's `--data-dir`, a restore's `--data-dir`, a leftover of an older
/// version), waits for them to end, then removes the paths. Returns what it
/// did, one line each, for the log.
pub fn reap(paths: &[PathBuf]) -> Vec<String> {
    let mut done = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let users = users_of(paths);
        if users.is_empty() {
            break;
        }
        for (pid, cmd) in &users {
            if let Some(p) = rustix::process::Pid::from_raw(*pid) {
                if rustix::process::kill_process(p, rustix::process::Signal::KILL).is_ok() {
                    let line = format!("killed leftover process {pid} ({cmd})");
                    if !done.contains(&line) {
                        done.push(line);
                    }
                }
            }
        }
        if Instant::now() > deadline {
            done.push(format!(
                "processes still running on {}: {}",
                paths
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
                users
                    .iter()
                    .map(|(p, _)| p.to_string())
                    .collect::<Vec<_>>()
                    .join(" ")
            ));
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    for p in paths {
        let r = match std::fs::symlink_metadata(p) {
            Err(_) => continue,
            Ok(m) if m.is_dir() => std::fs::remove_dir_all(p),
            Ok(_) => std::fs::remove_file(p),
        };
        match r {
            Ok(()) => done.push(format!("removed {}", p.display())),
            Err(e) => done.push(format!("could not remove {}: {e}", p.display())),
        }
    }
    done
}

/// Processes (pid, first args) of this user whose argv names one of `paths`
/// or something under it. Zombies have an empty command line and are skipped.
pub fn users_of(paths: &[PathBuf]) -> Vec<(i32, String)> {
    let me = std::process::id() as i32;
    let names: Vec<Vec<u8>> = paths
        .iter()
        .map(|p| p.as_os_str().as_bytes().to_vec())
        .collect();
    let names_it = |arg: &[u8]| {
        names.iter().any(|n| {
            let under =
                |s: &[u8]| s == n.as_slice() || (s.starts_with(n) && s.get(n.len()) == Some(&b'/'));
            under(arg)
                || arg
                    .iter()
                    .position(|b| *b == b'=')
                    .is_some_and(|i| under(&arg[i + 1..]))
        })
    };
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        if pid == me {
            continue;
        }
        let Ok(cmd) = std::fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let args: Vec<&[u8]> = cmd.split(|b| *b == 0).filter(|a| !a.is_empty()).collect();
        if args.iter().any(|a| names_it(a)) {
            let shown: Vec<String> = args
                .iter()
                .take(3)
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect();
            out.push((pid, shown.join(" ")));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_and_kills_what_runs_on_a_path_then_removes_it() {
        let d = tempfile::tempdir().unwrap();
        let scratch = d.path().join("run");
        std::fs::create_dir(&scratch).unwrap();
        std::fs::write(scratch.join("snapshot.db"), b"plaintext").unwrap();
        // Follows a file under the scratch dir, as etcd holds its data dir.
        let mut child = Command::new("tail")
            .args(["-f", "/dev/null"])
            .arg(scratch.join("snapshot.db"))
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(100));
        let users = users_of(std::slice::from_ref(&scratch));
        assert!(
            users.iter().any(|(p, _)| *p == child.id() as i32),
            "{users:?}"
        );
        // A sibling with a longer name is not "under" a shorter path.
        assert!(users_of(&[d.path().join("ru")]).is_empty());
        let log = reap(std::slice::from_ref(&scratch));
        assert!(child.wait().unwrap().code().is_none(), "{log:?}");
        assert!(!scratch.exists(), "{log:?}");
    }
}
