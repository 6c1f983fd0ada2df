//! vigil-journal: parse, wire, exit. The work lives in the library.

use clap::{Parser, Subcommand};
use std::process::ExitCode;
use std::sync::Arc;
use vigil_cli::{load_config, Exit, GlobalArgs, Job, Uses};
use vigil_core::exit;

#[derive(Debug, Parser)]
#[command(
    name = "vigil-journal",
    version,
    about = "vigil-journal: every etcd change between snapshots, in encrypted, hash-chained segments",
    after_help = "Examples:\n  vigil-journal run\n  vigil-journal verify --source rgw\n  vigil-journal verify --json"
)]
struct Cli {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Follow the cluster's watch and write the journal until SIGTERM (what
    /// vigil-journal.service runs). SIGTERM closes the open segment first.
    #[command(
        after_help = "Examples:\n  vigil-journal run\n  vigil-journal --config /etc/vigil/prod.toml run -v"
    )]
    Run,
    /// Check the journal's chain and every segment's size and sha256 (no key
    /// needed). Exit 0: whole; 1: broken (the first break is named).
    #[command(after_help = "Examples:\n  \
        vigil-journal verify                   the bastion's own segments\n  \
        vigil-journal verify --source rgw\n  \
        vigil-journal verify --source offsite --json")]
    Verify {
        /// `local` (default) or a sink's name.
        #[arg(long, default_value = "local", value_name = "NAME")]
        source: String,
        /// Print JSON on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Validate this program's sections and secrets, and the paths its unit
    /// writes; print a summary without secrets.
    #[command(
        after_help = "Examples:\n  vigil-journal check-config\n  vigil-journal --config /etc/vigil/prod.toml check-config --all"
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
            Job::Journal,
            Uses::JOURNAL,
            &a,
            vigil_journal::summary,
        ),
        Command::Run => cmd_run(&cli.global),
        Command::Verify { source, json } => cmd_verify(&cli.global, &source, json),
    })
}

fn cmd_run(g: &GlobalArgs) -> Result<i32, Exit> {
    let cfg = load_config(&g.config, Uses::JOURNAL)?;
    vigil_cli::refuse_foreign_state(&cfg, "vigil-journal", "run")?;
    let cfg = Arc::new(cfg);
    let cfg_for_unit = cfg.clone();
    let mut j = vigil_journal::service::Journal::new(cfg, g.config.clone()).map_err(Exit::usage)?;
    // Only when systemd asks for it (WatchdogSec= sets $WATCHDOG_USEC).
    if sd_notify::watchdog_enabled().is_some() {
        j = j.with_alive(|| {
            let _ = sd_notify::notify(&[sd_notify::NotifyState::Watchdog]);
        });
    }
    let rt = vigil_cli::runtime(Some(2))?;
    rt.block_on(async move {
        let (tx, rx) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            vigil_cli::stop_signal().await;
            tracing::info!("stopping: closing the open segment");
            let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
            let _ = tx.send(true);
        });
        j.run(rx, || {
            // Running again resolves an earlier death of this service.
            vigil_alert::unit::job_completed(&cfg_for_unit, "vigil-journal");
            let _ = sd_notify::notify(&[
                sd_notify::NotifyState::Ready,
                sd_notify::NotifyState::Status("journaling"),
            ]);
        })
        .await
    })
    .map_err(Exit::failed)?;
    Ok(exit::OK)
}

fn cmd_verify(g: &GlobalArgs, source: &str, json: bool) -> Result<i32, Exit> {
    let cfg = load_config(&g.config, Uses::JOURNAL)?;
    let rt = vigil_cli::runtime(Some(2))?;
    let sinks = vigil_journal::ship::journal_sinks(&cfg).map_err(Exit::usage)?;
    let src = if source == "local" {
        vigil_journal::read::Source::Local(vigil_journal::local::LocalJournal::new(
            &cfg.journal_dir(),
        ))
    } else {
        let s = sinks.iter().find(|s| s.name() == source).ok_or_else(|| {
            let names: Vec<&str> = sinks.iter().map(|s| s.name()).collect();
            Exit::usage(anyhow::anyhow!(
                "--source {source}: no journal sink of that name (local, {})",
                names.join(", ")
            ))
        })?;
        vigil_journal::read::Source::Sink(s)
    };
    let v = rt
        .block_on(vigil_journal::verify(&src, cfg.cluster_name()))
        .map_err(Exit::failed)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
    } else {
        println!(
            "journal in {}: {} segment(s), revisions {}..={}, {} events{}",
            v.source,
            v.segments,
            v.first_revision
                .map(|r| r.to_string())
                .unwrap_or("-".into()),
            v.last_revision.map(|r| r.to_string()).unwrap_or("-".into()),
            v.events,
            if v.gaps.is_empty() {
                String::new()
            } else {
                let g: Vec<String> = v.gaps.iter().map(|(a, b)| format!("{a}..={b}")).collect();
                format!(", recorded gaps: {}", g.join(", "))
            }
        );
        match &v.broken {
            Some(b) => println!("BROKEN: {b}"),
            None => println!("chain: whole"),
        }
    }
    Ok(if v.broken.is_some() {
        exit::FAILED
    } else {
        exit::OK
    })
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
