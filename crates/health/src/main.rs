//! vigil-health: parse, wire, exit. The checks live in the library.

use clap::{Parser, Subcommand};
use std::process::ExitCode;
use vigil_cli::{load_config, Exit, GlobalArgs, Job, Uses};
use vigil_core::exit;

#[derive(Debug, Parser)]
#[command(
    name = "vigil-health",
    version,
    about = "Check the etcd members, the Kubernetes API, certificates, node metrics, backup freshness and the bastion's disk; alert on what is wrong"
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
    /// be checked (UNKNOWN), 2 on a usage or config error.
    Run {
        /// Print the report as JSON on stdout.
        #[arg(long)]
        json: bool,
        /// Do not feed the results to the alert engine (a look, not a round).
        #[arg(long)]
        no_alert: bool,
    },
    /// Validate this program's sections and secrets, and the paths its unit
    /// writes; print a summary without secrets.
    CheckConfig(vigil_cli::CheckArgs),
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
        Command::Run { json, no_alert } => run(&cli.global, json, no_alert),
    })
}

fn run(g: &GlobalArgs, json: bool, no_alert: bool) -> Result<i32, Exit> {
    let cfg = load_config(&g.config, Uses::HEALTH)?;
    vigil_cli::refuse_foreign_state(&cfg, "vigil-health", "run")?;
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
        if json {
            let mut v = serde_json::to_value(&report).unwrap_or_default();
            if let (Some(obj), Some(r)) = (v.as_object_mut(), &raised) {
                obj.insert("alerts".into(), serde_json::to_value(r).unwrap_or_default());
            }
            println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
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
