//! The binary's commands: load the config, call the library, print, exit.

use clap::{Parser, Subcommand};
use vigil_alert::Source;
use vigil_cli::{load_config, Exit, GlobalArgs, Job, Uses};
use vigil_core::exit;
use vigil_core::fsutil::ArchivesLock;
use vigil_snapshot::cluster::Cluster;
use vigil_snapshot::{list, metrics, output, prune, run, scrub, ship, Deps};

#[derive(Debug, Parser)]
#[command(
    name = "vigil-snapshot",
    version,
    about = "Snapshot every etcd member, verified, compressed and encrypted, and ship it"
)]
pub struct Cli {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Snapshot all members now, verify, store, ship, prune and record the outcome.
    Run {
        /// Print a machine-readable summary on stdout.
        #[arg(long)]
        json: bool,
    },
    /// List the archives per member.
    List {
        /// Include every sink, merged by archive, with where each copy lives.
        #[arg(long)]
        all: bool,
        /// Print the archives as JSON on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Apply the retention rules locally and in every sink.
    Prune {
        /// Only show what would be deleted.
        #[arg(long)]
        dry_run: bool,
        /// Print what was (or would be) deleted as JSON on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Re-read stored archives and check them against their manifests.
    Scrub {
        /// Only this sink (`local` for the bastion's own copies).
        #[arg(long)]
        sink: Option<String>,
        /// Check N randomly chosen archives per store instead of all.
        #[arg(long)]
        sample: Option<usize>,
        /// Print every copy checked and its result as JSON on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Accept the etcd cluster ID the members report now, after the cluster
    /// was rebuilt on purpose (restore, RKE2 cluster-reset); the old ID stays
    /// trusted for restores.
    Repin {
        /// Print the new and the previous cluster ID and what each member reported as JSON on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Validate this program's sections and secrets, and the paths its unit
    /// writes; print a summary without secrets.
    CheckConfig(vigil_cli::CheckArgs),
    /// Contact every sink: can it be listed, is the bucket's Object Lock as
    /// the config says, and may this key delete (append-only)? Changes no copy.
    CheckSink {
        /// Only this sink.
        #[arg(long)]
        sink: Option<String>,
        /// Print each sink's answer as JSON on stdout.
        #[arg(long)]
        json: bool,
    },
}

impl vigil_cli::Program for Cli {
    fn global(&self) -> &GlobalArgs {
        &self.global
    }
}

/// Runs the command `cli` names; `deps` is what a run reaches outside.
pub fn run_cli<C: Cluster>(cli: Cli, deps: Deps<C>) -> Result<i32, Exit> {
    match cli.command {
        Command::CheckConfig(a) => {
            vigil_cli::check_config(&cli.global, Job::Snapshot, Uses::SNAPSHOT, &a, |_| {
                String::new()
            })
        }
        Command::Run { json } => with_runtime(|| cmd_run(&cli.global, json, deps)),
        Command::List { all, json } => with_runtime(|| cmd_list(&cli.global, all, json)),
        Command::Prune { dry_run, json } => with_runtime(|| cmd_prune(&cli.global, dry_run, json)),
        Command::Scrub { sink, sample, json } => {
            with_runtime(|| cmd_scrub(&cli.global, sink, sample, json))
        }
        Command::Repin { json } => with_runtime(|| cmd_repin(&cli.global, json)),
        Command::CheckSink { sink, json } => {
            with_runtime(|| cmd_check_sink(&cli.global, sink, json))
        }
    }
}

fn with_runtime<F, Fut>(f: F) -> Result<i32, Exit>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Result<i32, Exit>>,
{
    vigil_cli::block_on(None, f())
}

fn print_json<T: serde::Serialize>(v: &T) {
    println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
}

async fn cmd_run<C: Cluster>(g: &GlobalArgs, json: bool, deps: Deps<C>) -> Result<i32, Exit> {
    let cfg = load_config(&g.config, Uses::SNAPSHOT)?;
    vigil_cli::refuse_foreign_state(&cfg, "vigil-snapshot", "run")?;
    let report = run(&cfg, deps).await.map_err(|e| {
        if let Some(id) = e.run_id() {
            vigil_alert::raise_run(&cfg, &[Source::Snapshot], id);
        }
        Exit {
            code: e.exit_code(),
            error: e.into(),
        }
    })?;
    metrics::publish_run(&cfg, &report);
    vigil_alert::raise_run(&cfg, &[Source::Snapshot, Source::Sink], &report.run_id);
    vigil_alert::unit::job_completed(&cfg, "vigil-snapshot");
    if json {
        print_json(&report);
    } else {
        print!("{}", output::human(&report));
    }
    Ok(report.exit_code())
}

async fn cmd_check_sink(g: &GlobalArgs, only: Option<String>, json: bool) -> Result<i32, Exit> {
    let cfg = load_config(&g.config, Uses::SNAPSHOT)?;
    let sinks = ship::build_sinks(&cfg).map_err(Exit::usage)?;
    let chosen: Vec<_> = sinks
        .iter()
        .filter(|s| only.as_deref().is_none_or(|n| n == s.name()))
        .collect();
    if let (Some(n), true) = (&only, chosen.is_empty()) {
        return Err(Exit::usage(anyhow::anyhow!(
            "no sink named {n:?} in {}",
            g.config.display()
        )));
    }
    let mut out = Vec::new();
    for s in chosen {
        out.push(vigil_snapshot::list::check_sink(&cfg, s).await);
    }
    if json {
        print_json(&out);
    } else {
        print!("{}", vigil_snapshot::list::human_checks(&out));
    }
    Ok(if out.iter().all(|c| c.ok) {
        exit::OK
    } else {
        exit::FAILED
    })
}

async fn cmd_repin(g: &GlobalArgs, json: bool) -> Result<i32, Exit> {
    let cfg = load_config(&g.config, Uses::SNAPSHOT)?;
    vigil_cli::refuse_foreign_state(&cfg, "vigil-snapshot", "repin")?;
    let r = vigil_snapshot::repin::repin(&cfg)
        .await
        .map_err(|e| Exit::failed(anyhow::anyhow!(e)))?;
    if json {
        print_json(&r);
    } else {
        print!("{}", vigil_snapshot::repin::human(&r));
    }
    Ok(exit::OK)
}

async fn cmd_list(g: &GlobalArgs, all: bool, json: bool) -> Result<i32, Exit> {
    let cfg = load_config(&g.config, Uses::SNAPSHOT)?;
    let sc = cfg.snapshot("vigil-snapshot").map_err(Exit::usage)?;
    if !all {
        let copies = list::local(&sc.dir);
        if json {
            print_json(&list::local_json(&copies));
        } else {
            print!("{}", list::human(&copies));
        }
        return Ok(exit::OK);
    }
    let sinks = ship::build_sinks(&cfg).map_err(Exit::usage)?;
    let cat = list::all(&cfg, &sc.dir, &sinks).await;
    if json {
        print_json(&list::all_json(&cat));
    } else {
        print!("{}", list::human_all(&cat));
    }
    Ok(if cat.errors.is_empty() {
        exit::OK
    } else {
        exit::FAILED
    })
}

async fn cmd_prune(g: &GlobalArgs, dry_run: bool, json: bool) -> Result<i32, Exit> {
    let cfg = load_config(&g.config, Uses::SNAPSHOT)?;
    if !dry_run {
        vigil_cli::refuse_foreign_state(&cfg, "vigil-snapshot", "prune")?;
    }
    let sc = cfg.snapshot("vigil-snapshot").map_err(Exit::usage)?;
    let _locks = prune::locks(&cfg.state.dir, dry_run).map_err(Exit::failed)?;
    let local = prune::local(&cfg, sc, dry_run).map_err(Exit::failed)?;
    let mut reports = Vec::new();
    for s in ship::build_sinks(&cfg).map_err(Exit::usage)? {
        reports.push(ship::sync_sink(&cfg, &s, ship::Mode::Prune { dry_run }, &[]).await);
    }
    let ok = reports.iter().all(|r| r.ok);
    if json {
        print_json(&serde_json::json!({ "dry_run": dry_run, "local": local, "sinks": reports }));
    } else {
        let verb = if dry_run { "would prune" } else { "pruned" };
        println!(
            "local (keep {}): {verb} {}",
            sc.policy().describe(),
            local.len()
        );
        for p in &local {
            println!("  {p}");
        }
        for r in &reports {
            let policy = cfg
                .sinks()
                .find(|s| s.name == r.sink)
                .map(|s| s.policy().describe())
                .unwrap_or_default();
            println!("sink {} (keep {policy}): {verb} {}", r.sink, r.pruned.len());
            for p in &r.pruned {
                println!("  {p}");
            }
            for p in &r.locked {
                println!("  kept: {p}");
            }
            for p in &r.left {
                println!("  kept: {p}");
            }
            for e in &r.errors {
                println!("  error: {e}");
            }
        }
    }
    Ok(if ok { exit::OK } else { exit::FAILED })
}

async fn cmd_scrub(
    g: &GlobalArgs,
    only: Option<String>,
    sample: Option<usize>,
    json: bool,
) -> Result<i32, Exit> {
    let cfg = load_config(&g.config, Uses::SNAPSHOT)?;
    vigil_cli::refuse_foreign_state(&cfg, "vigil-snapshot", "scrub")?;
    let sc = cfg.snapshot("vigil-snapshot").map_err(Exit::usage)?;
    let sinks = ship::build_sinks(&cfg).map_err(Exit::usage)?;
    if let Some(name) = &only {
        if name != "local" && !sinks.iter().any(|s| s.name() == name) {
            return Err(Exit::usage(anyhow::anyhow!(
                "no sink named {name:?} in {}",
                cfg.path.display()
            )));
        }
    }
    // Shared: a prune on this host waits until the scrub is done.
    let _archives = ArchivesLock::for_reading(&cfg.state.dir);
    let wanted = |n: &str| only.as_deref().is_none_or(|o| o == n);
    let results = scrub::stores(&sc.dir, &cfg.state.dir, &sinks, wanted, sample).await;
    let run_id = vigil_core::rfc3339(vigil_core::now());
    let mut ok = true;
    for r in &results {
        ok &= r.errors.is_empty();
        scrub::record(&cfg, &run_id, r).map_err(Exit::failed)?;
        if !json {
            println!(
                "{}: {} archive(s) checked, {} problem(s)",
                r.store,
                r.checked,
                r.errors.len()
            );
            for e in &r.errors {
                println!("  {e}");
            }
        }
    }
    metrics::publish_scrub(&cfg, &results);
    vigil_alert::raise_run(&cfg, &[Source::Scrub], &run_id);
    vigil_alert::unit::job_completed(&cfg, "vigil-snapshot-scrub");
    if json {
        let v: Vec<_> = results
            .iter()
            .map(|r| serde_json::json!({ "store": r.store, "checked": r.checked, "errors": r.errors }))
            .collect();
        print_json(&v);
    }
    Ok(if ok { exit::OK } else { exit::FAILED })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_flag_has_help_text() {
        use clap::CommandFactory;
        let missing = vigil_cli::undocumented_args(&Cli::command());
        assert!(missing.is_empty(), "flags without help text: {missing:?}");
    }
}
