//! vigil-snapshot: parse, wire, exit. The work lives in the library.

use anyhow::Context;
use clap::{Parser, Subcommand};
use std::process::ExitCode;
use vigil_cli::{finish, load_config, Exit, GlobalArgs};
use vigil_core::exit;
use vigil_snapshot::{list, output, run};

#[derive(Debug, Parser)]
#[command(
    name = "vigil-snapshot",
    version,
    about = "Snapshot every etcd member, verified, compressed and encrypted"
)]
struct Cli {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Snapshot all members now, verify, store, prune and record the outcome.
    Run {
        /// Print a machine-readable summary on stdout.
        #[arg(long)]
        json: bool,
    },
    /// List the local archives per member.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Validate the config file and print a summary without secrets.
    CheckConfig,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    vigil_cli::init_logging(&cli.global);
    let r = match cli.command {
        Command::CheckConfig => vigil_cli::check_config(&cli.global.config),
        Command::Run { json } => cmd_run(&cli.global, json),
        Command::List { json } => cmd_list(&cli.global, json),
    };
    finish("vigil-snapshot", r)
}

fn cmd_run(g: &GlobalArgs, json: bool) -> Result<i32, Exit> {
    let cfg = load_config(&g.config)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
        .map_err(Exit::usage)?;
    let report = rt.block_on(run(&cfg)).map_err(|e| Exit {
        code: e.exit_code(),
        error: e.into(),
    })?;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).unwrap_or_default()
        );
    } else {
        print!("{}", output::human(&report));
    }
    Ok(if report.ok { exit::OK } else { exit::FAILED })
}

fn cmd_list(g: &GlobalArgs, json: bool) -> Result<i32, Exit> {
    let cfg = load_config(&g.config)?;
    let sc = cfg.snapshot("vigil-snapshot").map_err(Exit::usage)?;
    let entries = list::entries(&sc.dir);
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&entries).unwrap_or_default()
        );
    } else {
        print!("{}", list::human(&entries));
    }
    Ok(exit::OK)
}
