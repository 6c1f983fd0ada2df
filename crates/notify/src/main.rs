//! vigil-notify: alert delivery (run, test, silence).

use clap::{Parser, Subcommand};
use std::process::ExitCode;
use vigil_cli::{finish, GlobalArgs};

#[derive(Debug, Parser)]
#[command(name = "vigil-notify", version, about = "vigil: alert delivery (run, test, silence)")]
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
    /// Not built yet.
    Test,
    /// Not built yet.
    Silence,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    vigil_cli::init_logging(&cli.global);
    let r = match cli.command {
        Command::CheckConfig => vigil_cli::check_config(&cli.global.config),
        _ => vigil_cli::not_built("vigil-notify", "alert delivery (run, test, silence)"),
    };
    finish("vigil-notify", r)
}
