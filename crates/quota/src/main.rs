//! vigil-quota: CephFS quota checks.

use clap::{Parser, Subcommand};
use std::process::ExitCode;
use vigil_cli::{finish, GlobalArgs};

#[derive(Debug, Parser)]
#[command(name = "vigil-quota", version, about = "vigil: CephFS quota checks")]
struct Cli {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Validate the config file and print a summary without secrets.
    CheckConfig,
    /// Not built yet.
    Run,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    vigil_cli::init_logging(&cli.global);
    let r = match cli.command {
        Command::CheckConfig => vigil_cli::check_config(&cli.global.config),
        _ => vigil_cli::not_built("vigil-quota", "CephFS quota checks"),
    };
    finish("vigil-quota", r)
}
