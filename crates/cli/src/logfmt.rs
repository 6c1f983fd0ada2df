//! Log output for a terminal, for journald and as JSON, and the man pages
//! and shell completions generated from the clap definitions.

use crate::LogFormat;
use std::fmt;
use std::sync::OnceLock;
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::EnvFilter;

static FORMAT: OnceLock<LogFormat> = OnceLock::new();

/// The format chosen by `init_logging` (text before it ran).
pub fn log_format() -> LogFormat {
    FORMAT.get().copied().unwrap_or(LogFormat::Text)
}

/// True when stderr is connected to the journal: systemd sets
/// `JOURNAL_STREAM=<dev>:<inode>` of the stream it gave the service.
pub fn journal_stream() -> bool {
    use std::os::unix::fs::MetadataExt;
    let Ok(v) = std::env::var("JOURNAL_STREAM") else {
        return false;
    };
    let Some((dev, ino)) = v.split_once(':') else {
        return false;
    };
    let (Ok(dev), Ok(ino)) = (dev.parse::<u64>(), ino.parse::<u64>()) else {
        return false;
    };
    std::fs::metadata("/proc/self/fd/2")
        .map(|m| m.dev() == dev && m.ino() == ino)
        .unwrap_or(false)
}

pub(crate) fn install(requested: LogFormat, filter: EnvFilter) {
    let format = match requested {
        LogFormat::Auto if journal_stream() => LogFormat::Journal,
        LogFormat::Auto => LogFormat::Text,
        f => f,
    };
    let _ = FORMAT.set(format);
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(|| vigil_core::progress::LogWriter)
        .with_target(false);
    let _ = match format {
        LogFormat::Json => b
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init(),
        LogFormat::Journal => b.with_ansi(false).event_format(Journal).try_init(),
        // Colour only for a person at a terminal: not in a pipe, a file or
        // a mail from cron, and never with NO_COLOR (no-color.org).
        _ => b
            .with_ansi(
                std::io::IsTerminal::is_terminal(&std::io::stderr())
                    && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()),
            )
            .try_init(),
    };
}

/// sd-daemon(3) style: `<N>` priority prefix, no timestamp (journald keeps
/// its own), span names as context, then the message and its fields.
#[derive(Debug, Clone, Copy)]
pub struct Journal;

/// The syslog priority of a tracing level.
pub fn priority(l: &Level) -> u8 {
    match *l {
        Level::ERROR => 3,
        Level::WARN => 4,
        Level::INFO => 6,
        _ => 7,
    }
}

impl<S, N> FormatEvent<S, N> for Journal
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut w: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        write!(w, "<{}>", priority(event.metadata().level()))?;
        if let Some(scope) = ctx.event_scope() {
            for span in scope.from_root() {
                write!(w, "{}: ", span.name())?;
            }
        }
        ctx.field_format().format_fields(w.by_ref(), event)?;
        writeln!(w)
    }
}

/// `PROGRAM __generate DIR`: writes man pages (`DIR/man/*.1` and
/// `DIR/man/vigil.toml.5`) and shell
/// completions (`DIR/completions/{bash,zsh,fish}/…`) for the packaging, then
/// exits. Hidden on purpose: administrators get the results in the package.
/// Returns `None` for every other command line.
pub fn generate<C: clap::CommandFactory>() -> Option<std::process::ExitCode> {
    // The first call of every main: from here on `| head -1` exits quietly.
    crate::quiet_broken_pipe();
    let mut args = std::env::args_os().skip(1);
    if args.next()? != "__generate" {
        return None;
    }
    let Some(dir) = args.next().map(std::path::PathBuf::from) else {
        eprintln!("usage: PROGRAM __generate DIR");
        return Some(std::process::ExitCode::from(2));
    };
    match write_assets(C::command(), &dir) {
        Ok(()) => Some(std::process::ExitCode::SUCCESS),
        Err(e) => {
            eprintln!("generating into {}: {e}", dir.display());
            Some(std::process::ExitCode::from(2))
        }
    }
}

fn write_assets(cmd: clap::Command, dir: &std::path::Path) -> std::io::Result<()> {
    use clap_complete::Shell;
    let name = cmd.get_name().to_string();
    let man = dir.join("man");
    std::fs::create_dir_all(&man)?;
    clap_mangen::generate_to(cmd.clone(), &man)?;
    // vigil.toml(5), generated from the config types; the same in every binary.
    std::fs::write(man.join("vigil.toml.5"), vigil_core::config_doc::man_page())?;
    for (shell, sub, file) in [
        (Shell::Bash, "bash", name.clone()),
        (Shell::Zsh, "zsh", format!("_{name}")),
        (Shell::Fish, "fish", format!("{name}.fish")),
    ] {
        let d = dir.join("completions").join(sub);
        std::fs::create_dir_all(&d)?;
        let mut c = cmd.clone();
        let mut f = std::fs::File::create(d.join(file))?;
        clap_complete::generate(shell, &mut c, &name, &mut f);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn priorities_follow_syslog() {
        assert_eq!(priority(&Level::ERROR), 3);
        assert_eq!(priority(&Level::WARN), 4);
        assert_eq!(priority(&Level::INFO), 6);
        assert_eq!(priority(&Level::DEBUG), 7);
    }

    #[test]
    fn assets_are_written() {
        let d = tempfile::tempdir().unwrap();
        let cmd = clap::Command::new("vigil-x")
            .about("x")
            .subcommand(clap::Command::new("run").about("runs"));
        write_assets(cmd, d.path()).unwrap();
        assert!(d.path().join("man/vigil-x.1").is_file());
        assert!(d.path().join("man/vigil-x-run.1").is_file());
        assert!(d.path().join("man/vigil.toml.5").is_file());
        assert!(d.path().join("completions/bash/vigil-x").is_file());
        assert!(d.path().join("completions/zsh/_vigil-x").is_file());
        assert!(d.path().join("completions/fish/vigil-x.fish").is_file());
    }
}
