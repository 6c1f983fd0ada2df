//! vigil-restore: disaster recovery (list, fetch, etcd, rke2, drill).

use clap::{Parser, Subcommand};
use std::process::ExitCode;
use vigil_cli::{finish, GlobalArgs};

#[derive(Debug, Parser)]
#[command(name = "vigil-restore", version, about = "vigil: disaster recovery (list, fetch, etcd, rke2, drill)")]
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
    List,
    /// Not built yet.
    Fetch,
    /// Not built yet.
    Etcd,
    /// Not built yet.
    Rke2,
    /// Not built yet.
    Drill,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    vigil_cli::init_logging(&cli.global);
    let r = match cli.command {
        Command::CheckConfig => vigil_cli::check_config(&cli.global.config),
        _ => vigil_cli::not_built("vigil-restore", "disaster recovery (list, fetch, etcd, rke2, drill)"),
    };
    finish("vigil-restore", r)
}
