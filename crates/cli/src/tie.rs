//! Children that die with the process that started them.
//!
//! A child is started as `PROGRAM __vigil-tied <pid> CHILD ARGS...` through
//! `/proc/self/exe`, so the workspace stays free of `unsafe` (no
//! `pre_exec`): the helper mode sets `PR_SET_PDEATHSIG(SIGKILL)`, checks that
//! its parent is still `<pid>` (it may have died before the prctl) and execs
//! CHILD, which keeps the pid and the death signal. The kernel then kills it
//! the moment the thread that started it ends, however it ends: start tied
//! children from a thread that lives as long as they may run.
//!
//! Every binary built on [`crate::main`] has the helper mode.

use std::ffi::{OsStr, OsString};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;

/// First argument of the tied-exec helper mode.
pub const TIED: &str = "__vigil-tied";

/// Runs the helper mode and exits; returns for every other command line.
pub fn hook() {
    let mut args = std::env::args_os().skip(1);
    if args.next().as_deref() == Some(OsStr::new(TIED)) {
        let rest: Vec<OsString> = args.collect();
        std::process::exit(tied_main(&rest));
    }
}

/// A command for `program` that dies with this process (see the module doc).
/// Add arguments, working dir and stdio as for `Command::new(program)`.
pub fn tied(program: &Path) -> Command {
    let mut c = Command::new("/proc/self/exe");
    c.arg(TIED).arg(std::process::id().to_string()).arg(program);
    c
}

fn tied_main(a: &[OsString]) -> i32 {
    let parent = a.first().and_then(|p| p.to_str()?.parse::<i32>().ok());
    let (Some(parent), Some(program)) = (parent, a.get(1)) else {
        say(&format!(
            "{TIED}: usage: {TIED} PARENT-PID PROGRAM [ARGS...]"
        ));
        return 2;
    };
    let shown = program.to_string_lossy();
    use rustix::process::{getppid, set_parent_process_death_signal, Pid, Signal};
    if let Err(e) = set_parent_process_death_signal(Some(Signal::KILL)) {
        say(&format!(
            "cannot tie {shown} to its parent (PR_SET_PDEATHSIG): {e}"
        ));
        return 126;
    }
    // The parent may have died between the fork and the prctl above: then no
    // signal would ever come. Going on would leave an orphan.
    if Pid::as_raw(getppid()) != parent {
        say(&format!(
            "not starting {shown}: its parent (pid {parent}) has already ended"
        ));
        return 125;
    }
    let e = Command::new(program).args(&a[2..]).exec();
    say(&format!("cannot run {shown}: {e}"));
    127
}

/// One error line on stderr (no logging is set up in the helper mode), with
/// the journal's priority prefix when stderr is the journal.
fn say(msg: &str) {
    let me = std::env::current_exe()
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "vigil".into());
    let prio = if crate::journal_stream() { "<3>" } else { "" };
    eprintln!("{prio}{me}: {msg}");
}
