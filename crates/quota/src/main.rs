//! vigil-quota: parse, wire, exit. The work lives in the library.

use clap::{Parser, Subcommand};
use std::process::ExitCode;
use vigil_cli::{load_config, Exit, GlobalArgs, Job, Uses};
use vigil_core::exit;

#[derive(Debug, Parser)]
#[command(
    name = "vigil-quota",
    version,
    about = "CephFS subvolume and group usage against quota, with a growth forecast",
    after_help = "Examples:\n  \
        vigil-quota run                        what vigil-quota.service runs\n  \
        vigil-quota --config /etc/vigil/prod.toml run --json"
)]
struct Cli {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check every subvolume and group now, record usage, raise alerts.
    /// Exit 0: all below thresholds; 1: something is over, unlimited,
    /// filling up soon, or could not be checked (UNKNOWN); 2: config error.
    #[command(after_help = "Examples:\n  \
        vigil-quota run\n  \
        vigil-quota run --json | jq '.rows[] | select(.percentage > 90)'")]
    Run {
        /// Print JSON (volume, group, subvolume, used, quota, percentage, forecast) on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Validate this program's sections and secrets, and the paths its unit
    /// writes; print a summary without secrets.
    #[command(
        after_help = "Examples:\n  vigil-quota check-config\n  vigil-quota --config /etc/vigil/prod.toml check-config --all"
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
        Command::CheckConfig(a) => vigil_cli::check_config(
            &cli.global,
            Job::Quota,
            Uses::QUOTA,
            &a,
            vigil_quota::summary,
        ),
        Command::Run { json } => cmd_run(&cli.global, json),
    })
}

fn cmd_run(g: &GlobalArgs, json: bool) -> Result<i32, Exit> {
    let cfg = load_config(&g.config, Uses::QUOTA)?;
    vigil_cli::refuse_foreign_state(&cfg, "vigil-quota", "run")?;
    let rt = vigil_cli::runtime(Some(2))?;
    let report = rt.block_on(vigil_quota::run(&cfg)).map_err(Exit::failed)?;
    vigil_quota::metrics::publish(&cfg, &report);
    vigil_alert::unit::job_completed(&cfg, "vigil-quota");
    // Do not wait for a blocking task stuck on a hung mount.
    rt.shutdown_background();
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).unwrap_or_default()
        );
    } else {
        print!("{}", vigil_quota::report::human(&report));
    }
    Ok(if report.ok { exit::OK } else { exit::FAILED })
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
