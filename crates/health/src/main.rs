//! vigil-health: parse, wire, exit. The checks live in the library.

use clap::{Parser, Subcommand, ValueEnum};
use std::process::ExitCode;
use vigil_cli::{load_config, Exit, GlobalArgs, Job, Uses};
use vigil_core::exit;

#[derive(Debug, Parser)]
#[command(
    name = "vigil-health",
    version,
    about = "Check the etcd members, the Kubernetes API, certificates, node metrics, backup freshness and the bastion's disk; alert on what is wrong",
    after_help = "Examples:\n  \
        vigil-health run                       what vigil-health.service runs\n  \
        vigil-health --config /etc/vigil/prod.toml run --no-alert\n  \
        vigil-health check-config"
)]
struct Cli {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run every check once, concurrently; print the results and feed them to
    /// the alert engine. Exit 0 when all pass, 1 when any FAILs or could not
    /// be checked (UNKNOWN), 2 on a usage or config error. With `--format
    /// sensu` (or `nagios`) the exit code is the check plugin's: 0 OK, 1
    /// WARNING, 2 CRITICAL, 3 UNKNOWN.
    #[command(
        after_help = "Examples:\n  vigil-health run\n  vigil-health run --json --no-alert\n  \
        vigil-health run --format sensu --no-alert    # a Sensu-go or Nagios check command"
    )]
    Run {
        /// Print the report as JSON on stdout (the same as `--format json`).
        #[arg(long, conflicts_with = "format")]
        json: bool,
        /// How to print the report: `table` (the default), `json`, or
        /// `sensu`/`nagios` for a Sensu-go or Nagios check: one status line,
        /// a line per check that did not pass, then `| perfdata`; exit 0 OK,
        /// 1 WARNING, 2 CRITICAL, 3 UNKNOWN. Example: `--format sensu`.
        #[arg(long, value_enum, value_name = "FORMAT")]
        format: Option<Format>,
        /// Do not feed the results to the alert engine (a look, not a round).
        #[arg(long)]
        no_alert: bool,
    },
    /// Validate this program's sections and secrets, and the paths its unit
    /// writes; print a summary without secrets.
    #[command(
        after_help = "Examples:\n  vigil-health check-config\n  vigil-health --config /etc/vigil/prod.toml check-config --all"
    )]
    CheckConfig(vigil_cli::CheckArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    /// The readable table.
    Table,
    /// The report as JSON.
    Json,
    /// The Sensu-go check output (the Nagios plugin convention).
    Sensu,
    /// The same output as `sensu`.
    Nagios,
}

impl vigil_cli::Program for Cli {
    fn global(&self) -> &GlobalArgs {
        &self.global
    }
}

fn main() -> ExitCode {
    vigil_cli::main(|cli: Cli| match cli.command {
        Command::CheckConfig(a) => {
            vigil_cli::check_config(&cli.global, Job::Health, Uses::HEALTH, &a, |cfg| {
                vigil_health::report::config_summary(cfg)
            })
        }
        Command::Run {
            json,
            format,
            no_alert,
        } => {
            let format = if json {
                Format::Json
            } else {
                format.unwrap_or(Format::Table)
            };
            run(&cli.global, format, no_alert)
        }
    })
}

fn run(g: &GlobalArgs, format: Format, no_alert: bool) -> Result<i32, Exit> {
    let check = matches!(format, Format::Sensu | Format::Nagios);
    // A check runner reads stdout and the exit code: a config that cannot be
    // used is UNKNOWN (3) there, not the CRITICAL that exit 2 would mean.
    let ready = load_config(&g.config, Uses::HEALTH).and_then(|cfg| {
        vigil_cli::refuse_foreign_state(&cfg, "vigil-health", "run")?;
        Ok(cfg)
    });
    let cfg = match ready {
        Ok(cfg) => cfg,
        Err(e) if check => {
            let (out, code) = vigil_health::nagios::unusable(&format!("cannot run: {:#}", e.error));
            print!("{out}");
            eprintln!("vigil-health: error: {:#}", e.error);
            return Ok(code);
        }
        Err(e) => return Err(e),
    };
    vigil_cli::block_on(Some(2), async {
        let report = vigil_health::round(&cfg).await;
        vigil_health::metrics::publish(&cfg, &report);
        let raised = if no_alert {
            None
        } else {
            let r = vigil_health::alerts::raise(&cfg, &report.findings);
            vigil_alert::unit::job_completed(&cfg, "vigil-health");
            Some(r)
        };
        if format == Format::Json {
            let mut v = serde_json::to_value(&report).unwrap_or_default();
            if let (Some(obj), Some(r)) = (v.as_object_mut(), &raised) {
                obj.insert("alerts".into(), serde_json::to_value(r).unwrap_or_default());
            }
            println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        } else if check {
            let (out, code) = vigil_health::nagios::render(&report);
            print!("{out}");
            if let Some(Raised { error: Some(e), .. }) = &raised {
                eprintln!("vigil-health: error: the results could not be raised as alerts: {e}");
            }
            // The check's state is the round's; alerting is vigil-notify's.
            return Ok(code);
        } else {
            print!("{}", vigil_health::report::human(&report));
        }
        let mut code = report.exit_code();
        if let Some(Raised { error: Some(e), .. }) = &raised {
            eprintln!("vigil-health: error: the results could not be raised as alerts: {e}");
            code = code.max(exit::FAILED);
        }
        Ok(code)
    })
}

use vigil_health::alerts::Raised;

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
