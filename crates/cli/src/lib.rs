//! Plumbing shared by the vigil binaries: global flags, logging, config
//! loading and the exit codes of contract 3.

use clap::Args;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
pub use vigil_core::config::Uses;
pub use vigil_core::paths::Job;
use vigil_core::{exit, Config};

/// Flags every binary takes.
#[derive(Debug, Clone, Args)]
pub struct GlobalArgs {
    /// The config file.
    #[arg(long, short = 'c', global = true, env = "VIGIL_CONFIG", default_value = vigil_core::config::DEFAULT_PATH)]
    pub config: PathBuf,
    /// More log output (-v debug, -vv trace).
    #[arg(long, short = 'v', global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Only warnings and errors in the log.
    #[arg(long, short = 'q', global = true)]
    pub quiet: bool,
    /// Log format: auto is journal under systemd (stderr connected to the
    /// journal) and text otherwise.
    #[arg(
        long,
        global = true,
        value_enum,
        env = "VIGIL_LOG_FORMAT",
        default_value = "auto"
    )]
    pub log_format: LogFormat,
}

/// How log lines look on stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// journal when stderr is the journal, else text.
    Auto,
    /// Timestamp, level and message, for a terminal.
    Text,
    /// One JSON object per line.
    Json,
    /// `<N>` syslog priority prefix and no timestamp: journald adds its own.
    Journal,
}

mod check;
mod logfmt;
pub mod tie;
pub use check::{check_config, refuse_foreign_state, CheckArgs};
pub use logfmt::{generate, journal_stream, log_format};

/// A binary's command line: what [`main`] needs to know of it.
pub trait Program: clap::Parser {
    /// The flags every binary takes.
    fn global(&self) -> &GlobalArgs;
}

/// The `main` of every vigil binary: the tied-exec helper mode ([`tie`]),
/// `__generate` (man pages and completions), the command line, logging (with
/// the umask and the process hardening), then `run`, whose result becomes the
/// exit code, an error printed as `PROGRAM: error: ...` (contract 3).
pub fn main<P: Program>(run: impl FnOnce(P) -> Result<i32, Exit>) -> ExitCode {
    tie::hook();
    if let Some(code) = generate::<P>() {
        return code;
    }
    let cli = P::parse();
    init_logging(cli.global());
    let program = <P as clap::CommandFactory>::command()
        .get_name()
        .to_string();
    finish(&program, run(cli))
}

/// The jobs hold decrypted etcd data (every Kubernetes Secret) in memory:
/// no core dump may write it to disk, from this process (not dumpable, which
/// also keeps other processes of the same user out of its memory) or from a
/// child such as the drill's scratch etcd (core size limit 0, inherited).
pub fn harden_process() {
    use rustix::process::{setrlimit, DumpableBehavior, Resource, Rlimit};
    if let Err(e) = rustix::process::set_dumpable_behavior(DumpableBehavior::NotDumpable) {
        tracing::warn!("cannot turn off core dumps (PR_SET_DUMPABLE): {e}");
    }
    let none = Rlimit {
        current: Some(0),
        maximum: Some(0),
    };
    if let Err(e) = setrlimit(Resource::Core, none) {
        tracing::warn!("cannot set the core size limit to 0: {e}");
    }
}

/// Exit code for a reader that went away: what a shell shows for a
/// program killed by SIGPIPE (128 + 13), as `ls | head -1` does.
pub const BROKEN_PIPE: i32 = 141;

/// `vigil-snapshot list | head -1`: once `head` is done, the next `println!`
/// fails with EPIPE and std panics ("failed printing to stdout: Broken pipe",
/// exit 101 and a backtrace). Rust ignores SIGPIPE so that a dead peer on a
/// socket or a child's pipe is an error to handle rather than a silent death;
/// that stays so (and `unsafe` is forbidden here), and only this one panic,
/// from printing to stdout or stderr, becomes a quiet exit with
/// [`BROKEN_PIPE`]. Any other panic keeps the default report.
///
/// Idempotent; [`generate`] (the first call of every `main`) and
/// [`init_logging`] install it.
pub fn quiet_broken_pipe() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if is_broken_pipe_print(info.payload()) {
                std::process::exit(BROKEN_PIPE);
            }
            default(info);
        }));
    });
}

/// The message of std's `print!`/`eprint!` panic on EPIPE.
fn is_broken_pipe_print(payload: &(dyn std::any::Any + Send)) -> bool {
    let msg = payload
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| payload.downcast_ref::<&str>().copied())
        .unwrap_or_default();
    let epipe = std::io::Error::from_raw_os_error(rustix::io::Errno::PIPE.raw_os_error());
    msg.starts_with("failed printing to std") && msg.ends_with(&epipe.to_string())
}

/// Logs go to stderr, so stdout stays clean for `--json`.
pub fn init_logging(g: &GlobalArgs) {
    quiet_broken_pipe();
    // Every file vigil creates is private, whoever runs it and however.
    rustix::process::umask(rustix::fs::Mode::from_bits_truncate(0o077));
    let level = match (g.quiet, g.verbose) {
        (true, _) => "warn",
        (false, 0) => "info",
        (false, 1) => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("VIGIL_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(format!("warn,vigil={level},vigil_core={level},vigil_etcd={level},vigil_archive={level},vigil_snapshot={level},vigil_restore={level},vigil_health={level},vigil_quota={level},vigil_alert={level},vigil_notify={level},vigild={level}")));
    logfmt::install(g.log_format, filter);
    harden_process();
}

/// An error that decides the exit code.
#[derive(Debug)]
pub struct Exit {
    pub code: i32,
    pub error: anyhow::Error,
}

impl Exit {
    pub fn usage(error: impl Into<anyhow::Error>) -> Self {
        Self {
            code: exit::USAGE,
            error: error.into(),
        }
    }
    pub fn failed(error: impl Into<anyhow::Error>) -> Self {
        Self {
            code: exit::FAILED,
            error: error.into(),
        }
    }
}

/// The binaries' async runtime: `workers` threads (None: one per core).
pub fn runtime(workers: Option<usize>) -> Result<tokio::runtime::Runtime, Exit> {
    vigil_core::runtime::multi_thread(workers).map_err(|e| Exit::usage(anyhow::Error::new(e)))
}

/// Runs `f` to its end on a fresh [`runtime`].
pub fn block_on<F>(workers: Option<usize>, f: F) -> Result<i32, Exit>
where
    F: std::future::Future<Output = Result<i32, Exit>>,
{
    runtime(workers)?.block_on(f)
}

/// Loads the config, opening only the files of the sections in `uses`; any
/// problem is a usage error (exit 2).
pub fn load_config(path: &Path, uses: Uses) -> Result<Config, Exit> {
    Config::load_for(path, uses).map_err(Exit::usage)
}

/// Turns a command's result into the process exit code, printing the error.
pub fn finish(program: &str, r: Result<i32, Exit>) -> ExitCode {
    match r {
        Ok(code) => ExitCode::from(code as u8),
        Err(e) => {
            let prio = if log_format() == LogFormat::Journal {
                "<3>"
            } else {
                ""
            };
            // With stderr gone the exit code still tells what happened.
            use std::io::Write;
            let _ = writeln!(std::io::stderr(), "{prio}{program}: error: {:#}", e.error);
            ExitCode::from(e.code as u8)
        }
    }
}

/// What `--help` of `cmd` and its subcommands lacks: each argument without
/// help text (`<command path> --<flag>`, clap's --help and --version
/// excepted), each command without an "Example" in its after-help, and each
/// example that `cmd` does not parse. A unit test of each binary keeps this
/// empty: at 3 a.m. `--help` is the manual.
pub fn undocumented_args(cmd: &clap::Command) -> Vec<String> {
    fn walk(root: &clap::Command, cmd: &clap::Command, path: &str, out: &mut Vec<String>) {
        let helps: Vec<String> = [cmd.get_after_help(), cmd.get_after_long_help()]
            .into_iter()
            .flatten()
            .map(|h| h.to_string())
            .collect();
        if !helps.iter().any(|h| h.contains("Example")) {
            out.push(format!("{path}: no example"));
        }
        for words in helps
            .iter()
            .flat_map(|h| h.lines())
            .flat_map(example_commands)
        {
            if words.first().map(String::as_str) != Some(root.get_name()) {
                continue;
            }
            if let Err(e) = root.clone().try_get_matches_from(&words) {
                let e = e.to_string();
                let why = e.lines().next().unwrap_or_default();
                out.push(format!("{path}: example `{}`: {why}", words.join(" ")));
            }
        }
        for a in cmd.get_arguments() {
            let id = a.get_id().as_str();
            if matches!(id, "help" | "version") || a.is_hide_set() {
                continue;
            }
            if a.get_help().is_none() && a.get_long_help().is_none() {
                let name = a
                    .get_long()
                    .map(|l| format!("--{l}"))
                    .unwrap_or_else(|| format!("<{id}>"));
                out.push(format!("{path} {name}"));
            }
        }
        for s in cmd.get_subcommands() {
            if s.get_name() == "help" || s.is_hide_set() {
                continue;
            }
            walk(root, s, &format!("{path} {}", s.get_name()), out);
        }
    }
    let mut out = Vec::new();
    let mut cmd = cmd.clone();
    cmd.build();
    walk(&cmd, &cmd, cmd.get_name(), &mut out);
    out
}

/// The shell words of a help line up to its explanation (two spaces), one
/// list per command of a pipeline (split at `|`, `;`, `&&` and `>`).
fn example_commands(line: &str) -> Vec<Vec<String>> {
    let (mut cmds, mut cur, mut word) = (Vec::new(), Vec::new(), None::<String>);
    let mut quote = None;
    let mut chars = line.trim().chars().peekable();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => word.get_or_insert_with(String::new).push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                word.get_or_insert_with(String::new);
            }
            (None, ' ') => {
                cur.extend(word.take());
                if chars.peek() == Some(&' ') {
                    break;
                }
            }
            (None, '|' | ';' | '&' | '>') => {
                cur.extend(word.take());
                if !cur.is_empty() {
                    cmds.push(std::mem::take(&mut cur));
                }
            }
            (None, c) => word.get_or_insert_with(String::new).push(c),
        }
    }
    cur.extend(word.take());
    if !cur.is_empty() {
        cmds.push(cur);
    }
    cmds
}

/// Resolves on the first SIGTERM or SIGINT: how a long-running service
/// learns to stop.
pub async fn stop_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut t), Ok(mut i)) => {
            tokio::select! {
                _ = t.recv() => {}
                _ = i.recv() => {}
            }
        }
        _ => std::future::pending::<()>().await,
    }
}

#[cfg(test)]
mod tests {
    use clap::{Arg, Command};

    #[test]
    fn undocumented_names_flags_without_help_commands_without_an_example_and_bad_examples() {
        let cmd = Command::new("vigil-x")
            .after_help("Example:\n  vigil-x run --once   once\n  vigil-x run --twice")
            .subcommand(
                Command::new("run").arg(Arg::new("json").long("json")).arg(
                    Arg::new("once")
                        .long("once")
                        .help("Once.")
                        .action(clap::ArgAction::SetTrue),
                ),
            )
            .subcommand(Command::new("hidden").hide(true));
        assert_eq!(
            super::undocumented_args(&cmd),
            [
                "vigil-x: example `vigil-x run --twice`: error: unexpected argument '--twice' found",
                "vigil-x run: no example",
                "vigil-x run --json",
            ]
        );
    }

    #[test]
    fn example_commands_are_split_like_a_shell() {
        assert_eq!(
            super::example_commands(
                "  pass show a | vigil-x fetch -i - --reason 'disk swap' > /tmp/x   why"
            ),
            [
                vec!["pass", "show", "a"],
                vec!["vigil-x", "fetch", "-i", "-", "--reason", "disk swap"],
                vec!["/tmp/x"],
            ]
        );
    }
}
