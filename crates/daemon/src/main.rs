//! vigild: the vigil jobs on their cron schedules, in one process, for hosts
//! without systemd (containers, other init systems). Parse, wire, exit; the
//! scheduling lives in `daemon.rs`.

use clap::{Parser, Subcommand};
use std::process::ExitCode;
use vigil_cli::{load_config, Exit, GlobalArgs, Job, Uses};
use vigil_core::exit;

mod daemon;

#[derive(Debug, Parser)]
#[command(
    name = "vigild",
    version,
    about = "vigil without systemd: runs every job on its [daemon] cron schedule",
    after_help = "Examples:\n  \
        vigild schedule\n  \
        vigild --config /etc/vigil/prod.toml run --log-format json   as a container's command"
)]
struct Cli {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the schedules until SIGTERM; SIGHUP reloads the config.
    #[command(after_help = "Examples:\n  \
        vigild run\n  \
        vigild --config /etc/vigil/prod.toml run --log-format json\n  \
        kill -HUP $(pidof vigild)              reload /etc/vigil/vigil.toml")]
    Run,
    /// Print each job's schedule (as given and as the scheduler takes it).
    #[command(
        after_help = "Examples:\n  vigild schedule\n  vigild --config /etc/vigil/prod.toml schedule"
    )]
    Schedule,
    /// Validate this program's sections and secrets, and the paths its unit
    /// writes; print a summary without secrets.
    #[command(
        after_help = "Examples:\n  vigild check-config                    every section: vigild runs every job\n  vigild --config /etc/vigil/prod.toml check-config"
    )]
    CheckConfig(vigil_cli::CheckArgs),
}

impl vigil_cli::Program for Cli {
    fn global(&self) -> &GlobalArgs {
        &self.global
    }
}

fn main() -> ExitCode {
    vigil_cli::main(|cli: Cli| match cli.command {
        // vigild runs every job, so its check covers everything.
        Command::CheckConfig(_) => {
            let a = vigil_cli::CheckArgs { all: true };
            vigil_cli::check_config(&cli.global, Job::Daemon, Uses::ALL, &a, |_| String::new())
        }
        Command::Schedule => schedule(&cli.global),
        Command::Run => run(&cli.global),
    })
}

fn schedule(g: &GlobalArgs) -> Result<i32, Exit> {
    let cfg = load_config(&g.config, Uses::ALL)?;
    let jobs = daemon::plan(&cfg).map_err(Exit::usage)?;
    if jobs.is_empty() {
        println!("no job is scheduled; set schedules in [daemon]");
    }
    for j in &jobs {
        println!(
            "{:<9} {:<16} (scheduler: {})  {} {}",
            j.name(),
            j.cron,
            j.six,
            j.program(),
            j.args().join(" ")
        );
    }
    let d = cfg.daemon_config();
    println!(
        "notify    {}",
        if d.notify {
            "vigil-notify run, kept running"
        } else {
            "off"
        }
    );
    println!(
        "journal   {}",
        match (cfg.journal.is_some(), d.journal) {
            (true, true) => "vigil-journal run, kept running",
            (false, _) => "off (no [journal] section)",
            (true, false) => "off ([daemon] journal = false)",
        }
    );
    Ok(exit::OK)
}

fn run(g: &GlobalArgs) -> Result<i32, Exit> {
    let path = std::path::absolute(&g.config).unwrap_or_else(|_| g.config.clone());
    // The first load must succeed; later reloads keep the old config on error.
    let cfg = load_config(&path, Uses::ALL)?;
    daemon::plan(&cfg).map_err(Exit::usage)?;
    let rt = vigil_cli::runtime(Some(2))?;
    rt.block_on(daemon::run(path, cfg)).map_err(Exit::usage)?;
    Ok(exit::OK)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_command_has_an_example_and_every_flag_help_text() {
        use clap::CommandFactory;
        let missing = vigil_cli::undocumented_args(&Cli::command());
        assert!(missing.is_empty(), "missing from --help: {missing:?}");
    }
}
