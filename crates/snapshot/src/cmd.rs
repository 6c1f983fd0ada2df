//! The binary's commands: load the config, call the library, print, exit.

use clap::{Parser, Subcommand};
use vigil_alert::Source;
use vigil_cli::{load_config, Exit, GlobalArgs, Job, Uses};
use vigil_core::exit;
use vigil_core::fsutil::ArchivesLock;
use vigil_snapshot::cluster::Cluster;
use vigil_snapshot::{keep, list, metrics, output, prune, run, scrub, ship, Deps};

#[derive(Debug, Parser)]
#[command(
    name = "vigil-snapshot",
    version,
    about = "Snapshot every etcd member, verified, compressed and encrypted, and ship it",
    after_help = "Examples:\n  vigil-snapshot run                     what vigil-snapshot.service runs\n  vigil-snapshot --config /etc/vigil/prod.toml list --all\n  vigil-snapshot prune --dry-run"
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
    #[command(
        after_help = "Examples:\n  vigil-snapshot run\n  vigil-snapshot run --name pre-upgrade-1.29 --keep"
    )]
    Run {
        /// Print a machine-readable summary on stdout.
        #[arg(long)]
        json: bool,
        /// Name this run's archives (one per member), e.g. `pre-upgrade-1.29`:
        /// 1 to 64 of a-z A-Z 0-9 . _ -, unused so far; `pin`, `unpin` and
        /// `delete` take the name.
        #[arg(long, value_name = "NAME")]
        name: Option<String>,
        /// Pin the named archives: retention keeps them locally and in every
        /// sink until `vigil-snapshot unpin NAME`. Needs --name.
        #[arg(long, requires = "name")]
        keep: bool,
    },
    /// Pin an archive (or every archive of a named snapshot): retention
    /// keeps it locally and in every sink until `unpin`.
    #[command(
        after_help = "Examples:\n  vigil-snapshot pin prod-cp-1-20261203T021500Z --reason 'before etcd defrag'\n  vigil-snapshot pin pre-upgrade-1.29"
    )]
    Pin {
        /// An archive id as `vigil-snapshot list --all` prints it, or a snapshot name.
        #[arg(value_name = "ID|NAME")]
        target: String,
        /// Why it is kept, recorded with who pinned it and when, e.g. `INC-4711`.
        #[arg(long)]
        reason: Option<String>,
        /// Print what was pinned as JSON on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Unpin an archive or a named snapshot: the next prune applies the
    /// retention rules to it again. The name stays.
    #[command(after_help = "Example:\n  vigil-snapshot unpin pre-upgrade-1.29")]
    Unpin {
        /// A pinned archive id, or a snapshot name.
        #[arg(value_name = "ID|NAME")]
        target: String,
        /// Print what was unpinned as JSON on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Delete an archive (or every archive of a named snapshot): its local
    /// copy and its copy in every sink. Refuses a pinned archive, and the
    /// last verified copy of a member in a store unless --force.
    #[command(
        after_help = "Examples:\n  vigil-snapshot delete prod-cp-1-20261203T021500Z --dry-run\n  vigil-snapshot delete pre-upgrade-1.28 --sink offsite\n  vigil-snapshot delete prod-cp-2-20261201T021500Z --force"
    )]
    Delete {
        /// An archive id as `vigil-snapshot list --all` prints it, or a snapshot name.
        #[arg(value_name = "ID|NAME")]
        target: String,
        /// Only the copy in this sink (`local` for the bastion's own), e.g. `--sink offsite`.
        #[arg(long)]
        sink: Option<String>,
        /// Delete even the last verified copy of a member in a store.
        #[arg(long)]
        force: bool,
        /// Only say which copies would be deleted.
        #[arg(long)]
        dry_run: bool,
        /// Print each copy and what happened to it as JSON on stdout.
        #[arg(long)]
        json: bool,
    },
    /// List the archives per member.
    #[command(
        after_help = "Examples:\n  vigil-snapshot list                    the bastion's own copies\n  vigil-snapshot list --all              merged with every sink (rgw, offsite, tsm)\n  vigil-snapshot list --json | jq -r '.[] | select(.member == \"cp-2\") | .path'"
    )]
    List {
        /// Include every sink, merged by archive, with where each copy lives.
        #[arg(long)]
        all: bool,
        /// Print the archives as JSON on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Apply the retention rules locally and in every sink; prints every
    /// copy with the rule that keeps it or the reason it goes.
    #[command(
        after_help = "Example:\n  vigil-snapshot prune --dry-run\n    keep    (last 5: #1, daily 2026-12-03)  prod-cp-1-...  /var/lib/vigil/snapshots/cp-1/...\n    keep    (pinned: pre-upgrade-1.29)  ...\n    delete  (beyond keep last 5)  ..."
    )]
    Prune {
        /// Only show what would be deleted, and why each copy stays or goes.
        #[arg(long)]
        dry_run: bool,
        /// Print what was (or would be) deleted as JSON on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Re-read stored archives and check them against their manifests.
    #[command(
        after_help = "Examples:\n  vigil-snapshot scrub\n  vigil-snapshot scrub --sample 3        3 random archives per store\n  vigil-snapshot scrub --sink offsite --json"
    )]
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
    #[command(
        after_help = "Examples:\n  vigil-snapshot repin                   after `vigil-restore rke2 --execute` on prod\n  vigil-snapshot repin --json"
    )]
    Repin {
        /// Print the new and the previous cluster ID and what each member reported as JSON on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Validate this program's sections and secrets, and the paths its unit
    /// writes; print a summary without secrets.
    #[command(
        after_help = "Examples:\n  vigil-snapshot check-config\n  vigil-snapshot --config /etc/vigil/prod.toml check-config --all"
    )]
    CheckConfig(vigil_cli::CheckArgs),
    /// Contact every sink: can it be listed, is the bucket's Object Lock as
    /// the config says, and may this key delete (append-only)? Changes no copy.
    #[command(
        after_help = "Examples:\n  vigil-snapshot check-sink\n  vigil-snapshot check-sink --sink rgw --json"
    )]
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
        Command::Run { json, name, keep } => {
            with_runtime(|| cmd_run(&cli.global, json, name, keep, deps))
        }
        Command::Pin {
            target,
            reason,
            json,
        } => with_runtime(|| cmd_pin(&cli.global, &target, reason.as_deref(), json)),
        Command::Unpin { target, json } => with_runtime(|| cmd_unpin(&cli.global, &target, json)),
        Command::Delete {
            target,
            sink,
            force,
            dry_run,
            json,
        } => {
            with_runtime(|| cmd_delete(&cli.global, &target, sink.as_deref(), force, dry_run, json))
        }
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

async fn cmd_run<C: Cluster>(
    g: &GlobalArgs,
    json: bool,
    name: Option<String>,
    keep: bool,
    deps: Deps<C>,
) -> Result<i32, Exit> {
    let cfg = load_config(&g.config, Uses::SNAPSHOT)?;
    vigil_cli::refuse_foreign_state(&cfg, "vigil-snapshot", "run")?;
    if let Some(n) = &name {
        keep::check_new_name(&cfg, n).map_err(|e| Exit::usage(anyhow::anyhow!(e)))?;
    }
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
    let named = match &name {
        Some(n) => Some(name_run(&cfg, &report, n, keep)?),
        None => None,
    };
    if json {
        let mut v = serde_json::to_value(&report).unwrap_or_default();
        if let (Some(n), Some(o)) = (&named, v.as_object_mut()) {
            o.insert("named".into(), serde_json::json!(n));
        }
        print_json(&v);
    } else {
        print!("{}", output::human(&report));
        if let (Some(n), Some(named)) = (&name, &named) {
            let what = if keep { "named and pinned" } else { "named" };
            println!(
                "{what} {n}: {}",
                named
                    .iter()
                    .map(|p| p.id.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
    }
    Ok(report.exit_code())
}

/// Records the name (and pin) of the archives the run stored, under the
/// run lock: a prune never reads half of it.
fn name_run(
    cfg: &vigil_core::Config,
    report: &run::RunReport,
    name: &str,
    keep: bool,
) -> Result<Vec<vigil_core::protect::Protected>, Exit> {
    let made: Vec<_> = report
        .members
        .iter()
        .filter(|m| m.archive.is_some())
        .filter_map(|m| m.manifest.as_ref())
        .collect();
    if made.is_empty() {
        return Err(Exit::failed(anyhow::anyhow!(
            "no archive was stored, so nothing was named {name:?}"
        )));
    }
    let _run = prune::locks(&cfg.state.dir, true).map_err(Exit::failed)?;
    keep::record_run(cfg, &made, name, keep).map_err(|e| Exit::failed(anyhow::anyhow!(e)))
}

async fn cmd_pin(
    g: &GlobalArgs,
    target: &str,
    reason: Option<&str>,
    json: bool,
) -> Result<i32, Exit> {
    let cfg = load_config(&g.config, Uses::SNAPSHOT)?;
    vigil_cli::refuse_foreign_state(&cfg, "vigil-snapshot", "pin")?;
    let sc = cfg.snapshot("vigil-snapshot").map_err(Exit::usage)?;
    let sinks = ship::build_sinks(&cfg).map_err(Exit::usage)?;
    // The run lock: no prune reads the pins while they change.
    let _run = prune::locks(&cfg.state.dir, true).map_err(Exit::failed)?;
    let r = keep::pin(&cfg, &sc.dir, &sinks, target, reason)
        .await
        .map_err(|e| Exit::usage(anyhow::anyhow!(e)))?;
    if json {
        print_json(&r);
    } else {
        print!("{}", keep::human_pin(&r));
    }
    Ok(exit::OK)
}

async fn cmd_unpin(g: &GlobalArgs, target: &str, json: bool) -> Result<i32, Exit> {
    let cfg = load_config(&g.config, Uses::SNAPSHOT)?;
    vigil_cli::refuse_foreign_state(&cfg, "vigil-snapshot", "unpin")?;
    let _run = prune::locks(&cfg.state.dir, true).map_err(Exit::failed)?;
    let r = keep::unpin(&cfg, target).map_err(|e| Exit::usage(anyhow::anyhow!(e)))?;
    if json {
        print_json(&r);
    } else {
        print!("{}", keep::human_pin(&r));
    }
    Ok(exit::OK)
}

async fn cmd_delete(
    g: &GlobalArgs,
    target: &str,
    sink: Option<&str>,
    force: bool,
    dry_run: bool,
    json: bool,
) -> Result<i32, Exit> {
    let cfg = load_config(&g.config, Uses::SNAPSHOT)?;
    vigil_cli::refuse_foreign_state(&cfg, "vigil-snapshot", "delete")?;
    let sc = cfg.snapshot("vigil-snapshot").map_err(Exit::usage)?;
    let sinks = ship::build_sinks(&cfg).map_err(Exit::usage)?;
    // The locks prune takes: no run, drill or scrub reads what goes.
    let _locks = prune::locks(&cfg.state.dir, dry_run).map_err(Exit::failed)?;
    let r = keep::delete(&cfg, &sc.dir, &sinks, target, sink, force, dry_run)
        .await
        .map_err(|e| Exit::usage(anyhow::anyhow!(e)))?;
    if json {
        print_json(&r);
    } else {
        print!("{}", keep::human_delete(&r));
    }
    Ok(if r.ok { exit::OK } else { exit::FAILED })
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
    let kept = vigil_core::protect::load(&cfg.state.dir).unwrap_or_else(|e| {
        eprintln!("warning: {e}; names and pins are not shown");
        Default::default()
    });
    if !all {
        let copies = list::local(&sc.dir);
        if json {
            print_json(&list::local_json(&copies, &kept));
        } else {
            print!("{}", list::human(&copies, &kept));
        }
        return Ok(exit::OK);
    }
    let sinks = ship::build_sinks(&cfg).map_err(Exit::usage)?;
    let cat = list::all(&cfg, &sc.dir, &sinks).await;
    if json {
        print_json(&list::all_json(&cat, &kept));
    } else {
        print!("{}", list::human_all(&cat, &kept));
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
    let verdicts = prune::local(&cfg, sc, dry_run).map_err(Exit::failed)?;
    let local: Vec<&str> = verdicts
        .iter()
        .filter(|v| !v.keep)
        .map(|v| v.location.as_str())
        .collect();
    let mut reports = Vec::new();
    let sinks = ship::build_sinks(&cfg).map_err(Exit::usage)?;
    for s in &sinks {
        reports.push(ship::sync_sink(&cfg, s, ship::Mode::Prune { dry_run }, &[]).await);
    }
    let mut ok = reports.iter().all(|r| r.ok);
    if !dry_run {
        if let Err(e) = keep::forget_pruned(&cfg, &sc.dir, &sinks).await {
            eprintln!("error: names of pruned snapshots not forgotten: {e}");
            ok = false;
        }
    }
    if json {
        print_json(&serde_json::json!({
            "dry_run": dry_run, "local": local, "local_verdicts": verdicts, "sinks": reports
        }));
    } else {
        let verb = if dry_run { "would prune" } else { "pruned" };
        println!(
            "local (keep {}): {verb} {}",
            sc.policy().describe(),
            local.len()
        );
        print!("{}", prune::human_verdicts(&verdicts, dry_run));
        for r in &reports {
            let sink = cfg.sinks().find(|s| s.name == r.sink);
            let policy = sink.map(|s| s.policy().describe()).unwrap_or_default();
            println!("sink {} (keep {policy}): {verb} {}", r.sink, r.pruned.len());
            if r.verdicts.is_empty() && r.errors.is_empty() && r.kind == "tape-dsmc" {
                println!("  retention of this sink belongs to the store (the TSM management class), not to vigil");
            }
            print!("{}", prune::human_verdicts(&r.verdicts, dry_run));
            for p in r.locked.iter().chain(&r.left) {
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
    let results = scrub::stores(
        &sc.dir,
        &cfg.state.dir,
        &sinks,
        wanted,
        sample,
        &vigil_core::progress::Board::new(),
    )
    .await;
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
    fn every_command_has_an_example_and_every_flag_help_text() {
        use clap::CommandFactory;
        let missing = vigil_cli::undocumented_args(&Cli::command());
        assert!(missing.is_empty(), "missing from --help: {missing:?}");
    }
}
