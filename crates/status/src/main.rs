//! vigil: the administrator's front door. `vigil status` reads what the
//! jobs left behind and says whether the clusters are safe.

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use vigil_cli::{load_config, Exit, GlobalArgs, Uses};

#[derive(Debug, Parser)]
#[command(
    name = "vigil",
    version,
    about = "vigil's one view: are the clusters' backups safe?",
    after_help = "Example:\n  vigil status                          the cluster of /etc/vigil/vigil.toml\n  vigil status /etc/vigil/*.toml        every cluster of this bastion\n  vigil status --json | jq .level"
)]
struct Cli {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Each member's newest verified archive, each sink's newest copy and
    /// last scrub, the last drill and its RTO, the journal, alerts firing,
    /// silences, the outbox, and each timer's last and next run. Reads
    /// state only: needs neither the cluster nor a sink.
    /// Exit 0: OK; 1: a warning; 2: critical (or a config error).
    #[command(
        after_help = "Example:\n  vigil status\n  vigil status /etc/vigil/prod.toml /etc/vigil/stage.toml\n  vigil status --json | jq '.clusters[].problems'"
    )]
    Status {
        /// Print the status as JSON on stdout (the same fields, with
        /// times in RFC 3339 and ages in seconds).
        #[arg(long)]
        json: bool,
        /// Config files, one per cluster (default: --config).
        #[arg(value_name = "CONFIG")]
        configs: Vec<PathBuf>,
    },
}

impl vigil_cli::Program for Cli {
    fn global(&self) -> &GlobalArgs {
        &self.global
    }
}

fn main() -> ExitCode {
    vigil_cli::main(|cli: Cli| match cli.command {
        Command::Status { json, configs } => cmd_status(&cli.global, json, configs),
    })
}

fn cmd_status(g: &GlobalArgs, json: bool, configs: Vec<PathBuf>) -> Result<i32, Exit> {
    let paths = if configs.is_empty() {
        vec![g.config.clone()]
    } else {
        configs
    };
    let now = vigil_core::now();
    let mut clusters = Vec::new();
    for p in &paths {
        // No secrets: a status opens no key, token or certificate.
        let cfg = load_config(p, Uses::NONE)?;
        let units = vigil_status::timers::units_for(p, cfg.journal.is_some());
        let timers = vigil_status::timers::query(&units);
        clusters.push(vigil_status::cluster(&cfg, p, now, timers));
    }
    let s = vigil_status::Status::of(clusters);
    if json {
        println!("{}", serde_json::to_string_pretty(&s).unwrap_or_default());
    } else {
        print!("{}", vigil_status::render::text(&s, now));
    }
    Ok(s.level.exit_code())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn every_command_has_an_example_and_every_flag_help_text() {
        let missing = vigil_cli::undocumented_args(&Cli::command());
        assert!(missing.is_empty(), "missing from --help: {missing:?}");
    }
}
