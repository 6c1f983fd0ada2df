//! The one way vigil runs external commands (dsmc, ceph, etcdctl, etcdutl,
//! rke2, systemctl, ssh, ...): a [`Cmd`] runs to completion, blocking or
//! async, optionally killed after a timeout, and its errors always carry the
//! argv (quoted as a shell reads it back) and, for a failed exit, the tail
//! of stderr.

use std::ffi::{OsStr, OsString};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// What a command printed, and how it ended.
#[derive(Debug, Clone)]
pub struct CmdOutput {
    /// The exit code; `None` when a signal ended it.
    pub code: Option<i32>,
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

#[derive(Debug, thiserror::Error)]
pub enum CmdError {
    #[error("cannot start `{argv}`: {source}")]
    Spawn {
        argv: String,
        #[source]
        source: std::io::Error,
    },
    #[error("`{argv}` did not finish within {after}; it was killed")]
    Timeout { argv: String, after: String },
    /// It ran and did not exit 0 ([`Cmd::run`], [`Cmd::run_blocking`]).
    #[error("`{argv}` failed ({status}): {stderr}")]
    Failed {
        argv: String,
        status: ExitStatus,
        /// The last lines of stderr, joined with ` | `.
        stderr: String,
    },
}

/// How many lines of stderr a [`CmdError::Failed`] keeps.
const STDERR_TAIL: usize = 8;

/// One argument as a POSIX shell reads it back: plain when it is safe,
/// single-quoted otherwise, so a printed command can be pasted.
pub fn quote(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars().all(|c| {
            c.is_ascii_alphanumeric()
                || matches!(c, '-' | '_' | '.' | '/' | ':' | '=' | ',' | '@' | '+')
        });
    if plain {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// Renders a whole argv (program first) for messages and runbooks, each
/// argument [`quote`]d.
pub fn render<S: AsRef<OsStr>>(argv: &[S]) -> String {
    argv.iter()
        .map(|a| quote(&a.as_ref().to_string_lossy()))
        .collect::<Vec<_>>()
        .join(" ")
}

/// [`render`] of `program` and its `args`.
pub fn render_argv<S: AsRef<OsStr>>(program: &Path, args: &[S]) -> String {
    std::iter::once(quote(&program.display().to_string()))
        .chain(args.iter().map(|a| quote(&a.as_ref().to_string_lossy())))
        .collect::<Vec<_>>()
        .join(" ")
}

/// An argv from a program and its arguments.
pub fn argv<I, S>(program: &Path, args: I) -> Vec<OsString>
where
    I: IntoIterator<Item = S>,
    S: Into<OsString>,
{
    std::iter::once(program.as_os_str().to_owned())
        .chain(args.into_iter().map(Into::into))
        .collect()
}

/// The last `n` non-empty lines of `s`.
pub fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// A command to run: stdin is empty, stdout and stderr are captured.
#[derive(Debug, Clone)]
pub struct Cmd {
    program: PathBuf,
    args: Vec<OsString>,
    env: Vec<(OsString, OsString)>,
    cwd: Option<PathBuf>,
    timeout: Option<Duration>,
    /// Run through this launcher (its argv goes before the command's, e.g.
    /// a wrapper that ties the child to this process); messages show only
    /// the command itself.
    launcher: Vec<OsString>,
}

impl Cmd {
    pub fn new(program: impl Into<PathBuf>) -> Self {
        Cmd {
            program: program.into(),
            args: Vec::new(),
            env: Vec::new(),
            cwd: None,
            timeout: None,
            launcher: Vec::new(),
        }
    }

    /// The command of an argv (program first). An empty argv runs "".
    pub fn argv<S: AsRef<OsStr>>(argv: &[S]) -> Self {
        let mut it = argv.iter();
        let program = it
            .next()
            .map(|p| PathBuf::from(p.as_ref()))
            .unwrap_or_default();
        Cmd::new(program).args(it)
    }

    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    /// Adds `key=value` to the inherited environment.
    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Self {
        self.env
            .push((key.as_ref().to_owned(), value.as_ref().to_owned()));
        self
    }

    pub fn envs<K: AsRef<OsStr>, V: AsRef<OsStr>>(mut self, env: &[(K, V)]) -> Self {
        for (k, v) in env {
            self = self.env(k, v);
        }
        self
    }

    pub fn current_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.cwd = Some(dir.into());
        self
    }

    /// Kills the command after `t`: [`CmdError::Timeout`].
    pub fn timeout(mut self, t: Duration) -> Self {
        self.timeout = Some(t);
        self
    }

    /// Runs the command through `launcher` (see the field's doc).
    pub fn launcher<S: AsRef<OsStr>>(mut self, launcher: &[S]) -> Self {
        self.launcher = launcher.iter().map(|a| a.as_ref().to_owned()).collect();
        self
    }

    /// The command as a shell reads it back.
    pub fn render(&self) -> String {
        render_argv(&self.program, &self.args)
    }

    fn command(&self) -> std::process::Command {
        let mut c = match self.launcher.split_first() {
            Some((first, rest)) => {
                let mut c = std::process::Command::new(first);
                c.args(rest).arg(&self.program);
                c
            }
            None => std::process::Command::new(&self.program),
        };
        c.args(&self.args);
        c.envs(self.env.iter().map(|(k, v)| (k, v)));
        if let Some(d) = &self.cwd {
            c.current_dir(d);
        }
        c.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        c
    }

    fn spawn_err(&self, source: std::io::Error) -> CmdError {
        CmdError::Spawn {
            argv: self.render(),
            source,
        }
    }

    fn timed_out(&self, after: Duration) -> CmdError {
        CmdError::Timeout {
            argv: self.render(),
            after: humantime::format_duration(after).to_string(),
        }
    }

    /// A non-zero exit as [`CmdError::Failed`].
    pub fn check(&self, out: CmdOutput) -> Result<CmdOutput, CmdError> {
        if out.status.success() {
            return Ok(out);
        }
        Err(CmdError::Failed {
            argv: self.render(),
            status: out.status,
            stderr: tail(&out.stderr, STDERR_TAIL)
                .replace('\n', " | ")
                .trim()
                .to_string(),
        })
    }

    /// Runs to completion on this thread, whatever the exit status.
    pub fn output_blocking(&self) -> Result<CmdOutput, CmdError> {
        tracing::debug!("running {}", self.render());
        let mut child = self.command().spawn().map_err(|e| self.spawn_err(e))?;
        // Read both pipes while waiting, so a chatty child never blocks on a full pipe.
        let drain = |r: Option<Box<dyn Read + Send>>| {
            std::thread::spawn(move || {
                let mut b = Vec::new();
                if let Some(mut r) = r {
                    let _ = r.read_to_end(&mut b);
                }
                String::from_utf8_lossy(&b).into_owned()
            })
        };
        let stdout = drain(child.stdout.take().map(|r| Box::new(r) as _));
        let stderr = drain(child.stderr.take().map(|r| Box::new(r) as _));
        let status = match self.timeout {
            None => child.wait().map_err(|e| self.spawn_err(e))?,
            Some(t) => {
                let deadline = Instant::now() + t;
                loop {
                    if let Some(s) = child.try_wait().map_err(|e| self.spawn_err(e))? {
                        break s;
                    }
                    if Instant::now() >= deadline {
                        let _ = child.kill();
                        let _ = child.wait();
                        return Err(self.timed_out(t));
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        };
        Ok(CmdOutput {
            code: status.code(),
            status,
            stdout: stdout.join().unwrap_or_default(),
            stderr: stderr.join().unwrap_or_default(),
        })
    }

    /// [`Cmd::output_blocking`], and a non-zero exit is an error.
    pub fn run_blocking(&self) -> Result<CmdOutput, CmdError> {
        self.check(self.output_blocking()?)
    }

    /// Runs to completion on the tokio runtime, whatever the exit status; the
    /// child is killed when the future is dropped.
    pub async fn output(&self) -> Result<CmdOutput, CmdError> {
        tracing::debug!("running {}", self.render());
        let child = tokio::process::Command::from(self.command())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| self.spawn_err(e))?;
        let wait = child.wait_with_output();
        let o = match self.timeout {
            None => wait.await,
            Some(t) => tokio::time::timeout(t, wait)
                .await
                .map_err(|_| self.timed_out(t))?,
        }
        .map_err(|e| self.spawn_err(e))?;
        Ok(CmdOutput {
            code: o.status.code(),
            status: o.status,
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        })
    }

    /// [`Cmd::output`], and a non-zero exit is an error.
    pub async fn run(&self) -> Result<CmdOutput, CmdError> {
        self.check(self.output().await?)
    }
}

/// Runs `program` to completion (killed after `timeout`), capturing output,
/// whatever its exit status.
pub async fn run(
    program: &Path,
    args: &[String],
    timeout: Duration,
) -> Result<CmdOutput, CmdError> {
    Cmd::new(program).args(args).timeout(timeout).output().await
}

/// [`run`] in working directory `cwd` (when given) with `env` added to the
/// inherited environment (dsmc: `DSM_LOG`, and a cwd it may write to).
pub async fn run_in(
    program: &Path,
    args: &[String],
    timeout: Duration,
    cwd: Option<&Path>,
    env: &[(&str, &OsStr)],
) -> Result<CmdOutput, CmdError> {
    let mut c = Cmd::new(program).args(args).envs(env).timeout(timeout);
    if let Some(d) = cwd {
        c = c.current_dir(d);
    }
    c.output().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_and_the_stderr_tail() {
        assert_eq!(quote("--name=cp-1"), "--name=cp-1");
        assert_eq!(quote("a b"), "'a b'");
        assert_eq!(quote("it's"), r"'it'\''s'");
        let e = Cmd::argv(&["sh", "-c", "echo boom >&2; exit 3"])
            .run_blocking()
            .unwrap_err()
            .to_string();
        assert!(e.contains("boom") && e.contains("sh -c"), "{e}");
        assert!(e.contains("exit status: 3"), "{e}");
    }

    #[test]
    fn a_command_past_its_timeout_is_killed() {
        let started = Instant::now();
        let e = Cmd::argv(&["sleep", "5"])
            .timeout(Duration::from_millis(200))
            .output_blocking()
            .unwrap_err();
        assert!(matches!(e, CmdError::Timeout { .. }), "{e}");
        assert!(started.elapsed() < Duration::from_secs(4));
    }

    #[test]
    fn a_launcher_runs_the_command_but_is_not_shown() {
        let c = Cmd::new("echo").args(["hi"]).launcher(&["env", "X=1"]);
        assert_eq!(c.render(), "echo hi");
        assert_eq!(c.output_blocking().unwrap().stdout, "hi\n");
    }
}
