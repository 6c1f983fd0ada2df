//! External commands (etcdctl, etcdutl, etcd, rke2, systemctl, ssh) run
//! through one helper that puts the argv and stderr into the error; those
//! that touch decrypted data run tied to this process ([`run_tied`]).

use std::ffi::OsString;
use std::path::Path;
use std::process::{Command, Output};

#[derive(Debug, thiserror::Error)]
#[error("`{argv}` {detail}")]
pub struct CommandError {
    pub argv: String,
    pub detail: String,
}

/// Shell-like rendering of an argv, quoted where needed, for logs and runbooks.
pub fn render(argv: &[OsString]) -> String {
    argv.iter()
        .map(|a| quote(&a.to_string_lossy()))
        .collect::<Vec<_>>()
        .join(" ")
}

pub use vigil_core::cmd::quote;

/// Runs `argv` to completion; a spawn failure or non-zero exit is an error
/// that names the command and carries the end of its stderr.
pub fn run(argv: &[OsString], env: &[(&str, &str)]) -> Result<Output, CommandError> {
    run_cmd(Command::new(&argv[0]), argv, env)
}

/// [`run`] for a command that handles decrypted data (etcdctl/etcdutl on a
/// snapshot): it is killed when this process dies, so a killed restore or
/// drill leaves no tool writing a data dir behind (see [`crate::guard`]).
/// Call it from a thread that waits for it, as `run` does.
pub fn run_tied(argv: &[OsString], env: &[(&str, &str)]) -> Result<Output, CommandError> {
    run_cmd(crate::guard::tied(Path::new(&argv[0])), argv, env)
}

fn run_cmd(
    mut cmd: Command,
    argv: &[OsString],
    env: &[(&str, &str)],
) -> Result<Output, CommandError> {
    let rendered = render(argv);
    tracing::debug!("running {rendered}");
    cmd.args(&argv[1..]);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().map_err(|e| CommandError {
        argv: rendered.clone(),
        detail: format!("could not start: {e}"),
    })?;
    if !out.status.success() {
        let tail =
            vigil_core::cmd::tail(&String::from_utf8_lossy(&out.stderr), 8).replace('\n', " | ");
        return Err(CommandError {
            argv: rendered,
            detail: format!("failed ({}): {}", out.status, tail.trim()),
        });
    }
    Ok(out)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(quote("--name=cp-1"), "--name=cp-1");
        assert_eq!(quote("a b"), "'a b'");
        assert_eq!(quote("it's"), r"'it'\''s'");
        let e = run(
            &[
                OsString::from("sh"),
                "-c".into(),
                "echo boom >&2; exit 3".into(),
            ],
            &[],
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("boom") && e.contains("sh -c"), "{e}");
    }
}
