//! The one way vigil runs external commands (dsmc, etcdctl, rke2, ...): argv
//! and the tail of stderr always end up in the error.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct CmdOutput {
    pub code: Option<i32>,
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
}

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

/// Renders argv for messages and runbooks, each argument [`quote`]d.
pub fn render_argv(program: &Path, args: &[String]) -> String {
    std::iter::once(quote(&program.display().to_string()))
        .chain(args.iter().map(|a| quote(a)))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The last `n` non-empty lines of `s`.
pub fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Runs a command to completion (killed after `timeout`), capturing output.
pub async fn run(
    program: &Path,
    args: &[String],
    timeout: Duration,
) -> Result<CmdOutput, CmdError> {
    run_in(program, args, timeout, None, &[]).await
}

/// [`run`] in working directory `cwd` (when given) with `env` added to the
/// inherited environment (dsmc: `DSM_LOG`, and a cwd it may write to).
pub async fn run_in(
    program: &Path,
    args: &[String],
    timeout: Duration,
    cwd: Option<&Path>,
    env: &[(&str, &std::ffi::OsStr)],
) -> Result<CmdOutput, CmdError> {
    let argv = render_argv(program, args);
    let mut cmd = tokio::process::Command::new(program);
    if let Some(d) = cwd {
        cmd.current_dir(d);
    }
    cmd.envs(env.iter().copied());
    let child = cmd
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|source| CmdError::Spawn {
            argv: argv.clone(),
            source,
        })?;
    match tokio::time::timeout(timeout, child.wait_with_output()).await {
        Ok(Ok(o)) => Ok(CmdOutput {
            code: o.status.code(),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }),
        Ok(Err(source)) => Err(CmdError::Spawn { argv, source }),
        Err(_) => Err(CmdError::Timeout {
            argv,
            after: humantime::format_duration(timeout).to_string(),
        }),
    }
}
