//! vigil-notify: alert delivery (run, test, silence, status). Parse, wire,
//! exit; the work lives in vigil-alert.

use clap::{Parser, Subcommand};
use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::Arc;
use vigil_alert::engine::Settings;
use vigil_alert::{deliver, Store};
use vigil_cli::{load_config, Exit, GlobalArgs, Job, Uses};
use vigil_core::exit;
use vigil_core::units::HumanDuration;

#[derive(Debug, Parser)]
#[command(
    name = "vigil-notify",
    version,
    about = "vigil: alert delivery (run, test, silence, status)",
    after_help = "Examples:\n  \
        vigil-notify status\n  \
        vigil-notify test --channel ops-slack\n  \
        vigil-notify silence add --match member=cp-2 --for 2h --reason 'disk swap'"
)]
struct Cli {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Validate this program's sections and secrets, and the paths its unit
    /// writes; print a summary without secrets.
    #[command(
        after_help = "Examples:\n  vigil-notify check-config\n  vigil-notify --config /etc/vigil/prod.toml check-config --all"
    )]
    CheckConfig(vigil_cli::CheckArgs),
    /// Deliver the outbox to the channels, with retries, until SIGTERM.
    #[command(after_help = "Examples:\n  \
        vigil-notify run                       what vigil-notify.service runs\n  \
        vigil-notify run --once --timeout 5m   drain the outbox by hand")]
    Run {
        /// Drain the outbox once and exit (1 if something is left).
        #[arg(long)]
        once: bool,
        /// With --once: give up after this long.
        #[arg(long, default_value = "60s")]
        timeout: HumanDuration,
    },
    /// Send a test message to one channel and print the server's reply.
    #[command(after_help = "Examples:\n  \
        vigil-notify test --channel ops-slack  prints the HTTP status or the SMTP reply\n  \
        vigil-notify --config /etc/vigil/prod.toml test --channel ops-slack")]
    Test {
        /// The channel's `name` in the config, e.g. ops-slack.
        #[arg(long)]
        channel: String,
    },
    /// Silence alerts for a while.
    #[command(after_help = "Examples:\n  \
        vigil-notify silence add --match member=cp-2 --for 2h --reason 'disk swap'\n  \
        vigil-notify silence list\n  \
        vigil-notify silence expire 3f9a1c07")]
    Silence {
        #[command(subcommand)]
        command: SilenceCommand,
    },
    /// Show firing and pending alerts, silences and the outbox per channel.
    #[command(after_help = "Examples:\n  \
        vigil-notify status\n  \
        vigil-notify status --all --json | jq '.alerts[].key'")]
    Status {
        /// Also alerts that are OK.
        #[arg(long)]
        all: bool,
        /// Print the alerts, silences, outbox and channels as JSON on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Raise `job_unit_failed` for a job's unit that died without finishing:
    /// what `vigil-unit-failed@UNIT.service` (the jobs' `OnFailure=`) runs.
    /// systemd's `$MONITOR_*` variables say how it died. An instance
    /// (`vigil-snapshot@prod.service`) uses `/etc/vigil/prod.toml`.
    #[command(after_help = "Examples:\n  \
        vigil-notify unit-failed vigil-snapshot.service\n  \
        vigil-notify unit-failed vigil-restore-drill@prod.service   reads /etc/vigil/prod.toml")]
    UnitFailed {
        /// The unit that failed, e.g. vigil-snapshot.service.
        unit: String,
    },
    /// Turn the latest outcome records of a job into alerts (what the jobs do themselves).
    #[command(
        after_help = "Examples:\n  vigil-notify ingest --job snapshot\n  vigil-notify --config /etc/vigil/prod.toml ingest --job drill"
    )]
    Ingest {
        /// snapshot, sink, drill, ...
        #[arg(long)]
        job: vigil_alert::Source,
    },
}

#[derive(Debug, Subcommand)]
enum SilenceCommand {
    /// Add a silence: every --match must match (labels, alertname, source, severity).
    #[command(after_help = "Examples:\n  \
        vigil-notify silence add --match member=cp-2 --for 2h --reason 'disk swap'\n  \
        vigil-notify silence add --match alertname=sink_down --match sink=offsite --for 1d --reason 'CHG-2231 offsite maintenance'\n  \
        vigil-notify silence add --match alertname=etcd_db_size --for 30m --reason 'defrag of cp-1' --by alice")]
    Add {
        /// LABEL=VALUE, e.g. member=cp-2; repeatable.
        #[arg(long = "match", required = true, value_parser = parse_matcher)]
        matchers: Vec<(String, String)>,
        /// How long, e.g. 2h.
        #[arg(long = "for")]
        duration: HumanDuration,
        /// Why, shown with the silence, e.g. 'disk swap' or a ticket.
        #[arg(long)]
        reason: String,
        /// Who set it (default: $SUDO_USER or $USER).
        #[arg(long)]
        by: Option<String>,
    },
    /// List active silences (--all: also expired ones).
    #[command(
        after_help = "Examples:\n  vigil-notify silence list\n  vigil-notify silence list --all --json"
    )]
    List {
        /// Also silences that have expired.
        #[arg(long)]
        all: bool,
        /// Print the silences as JSON on stdout.
        #[arg(long)]
        json: bool,
    },
    /// End a silence now.
    #[command(
        after_help = "Example:\n  vigil-notify silence expire 3f9a1c07   the id `silence add` and `silence list` print"
    )]
    Expire {
        /// The silence's id, as `silence add` and `silence list` print it.
        id: String,
    },
}

fn parse_matcher(s: &str) -> anyhow::Result<(String, String)> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.trim().to_string())),
        _ => anyhow::bail!("{s:?} is not LABEL=VALUE, e.g. member=cp-2"),
    }
}

impl vigil_cli::Program for Cli {
    fn global(&self) -> &GlobalArgs {
        &self.global
    }
}

fn main() -> ExitCode {
    vigil_cli::main(|cli: Cli| {
        let g = &cli.global;
        match cli.command {
            Command::CheckConfig(a) => {
                vigil_cli::check_config(g, Job::Notify, Uses::NOTIFY, &a, vigil_alert::summary)
            }
            Command::Run { once, timeout } => cmd_run(g, once, timeout),
            Command::Test { channel } => cmd_test(g, &channel),
            Command::Silence { command } => cmd_silence(g, command),
            Command::Status { all, json } => cmd_status(g, all, json),
            Command::Ingest { job } => cmd_ingest(g, job),
            Command::UnitFailed { unit } => cmd_unit_failed(g, &unit),
        }
    })
}

fn runtime() -> Result<tokio::runtime::Runtime, Exit> {
    vigil_cli::runtime(Some(2))
}

fn cmd_run(g: &GlobalArgs, once: bool, timeout: HumanDuration) -> Result<i32, Exit> {
    let cfg = load_config(&g.config, Uses::NOTIFY)?;
    let s = Arc::new(Settings::from_config(&cfg));
    let rt = runtime()?;
    let listen = (!once).then(|| cfg.metrics.listen_addr()).flatten();
    let cluster = cfg.cluster_name().to_string();
    let channels: Vec<String> = s.channels().map(|c| c.name.clone()).collect();
    let state_dir = cfg.state.dir.clone();
    let push = (
        cfg.metrics.clone(),
        state_dir.clone(),
        cluster.clone(),
        channels.clone(),
    );
    let periodic = push.clone();
    let cfg_for_unit = cfg;
    let report = rt
        .block_on(async move {
            let (tx, rx) = tokio::sync::watch::channel(false);
            tokio::spawn(async move {
                vigil_cli::stop_signal().await;
                tracing::info!("stopping: finishing deliveries in flight");
                let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
                let _ = tx.send(true);
            });
            if let Some(addr) = listen {
                // A port in use costs the metrics, never the alerts.
                match tokio::net::TcpListener::bind(addr).await {
                    Ok(l) => {
                        tracing::info!("serving /metrics on http://{addr}/metrics");
                        tokio::spawn(vigil_alert::stats::serve(
                            l,
                            state_dir,
                            cluster,
                            channels,
                            rx.clone(),
                        ));
                    }
                    Err(e) => tracing::error!(
                        "cannot serve /metrics on {addr}: {e}; set [metrics] listen to a free address"
                    ),
                }
            }
            if !once {
                let (m, dir, cl, ch) = periodic;
                tokio::spawn(vigil_alert::stats::push_influx(m, dir, cl, ch, rx.clone()));
                // Running again resolves an earlier death of this service.
                vigil_alert::unit::job_completed(&cfg_for_unit, "vigil-notify");
                // Type=notify: systemd counts the service as started from here.
                let _ = sd_notify::notify(&[
                    sd_notify::NotifyState::Ready,
                    sd_notify::NotifyState::Status("delivering the outbox"),
                ]);
            }
            let opts = deliver::RunOptions {
                until: if once {
                    deliver::Until::Drained {
                        budget: timeout.get(),
                        retry: true,
                    }
                } else {
                    deliver::Until::Stopped
                },
                // Only when systemd asks for it (WatchdogSec= sets $WATCHDOG_USEC).
                alive: sd_notify::watchdog_enabled().map(|_| {
                    (|| {
                        let _ = sd_notify::notify(&[sd_notify::NotifyState::Watchdog]);
                    }) as fn()
                }),
            };
            deliver::run(s, opts, rx).await
        })
        .map_err(Exit::failed)?;
    // The final counters, also for `--once` (a timer's run).
    vigil_alert::stats::push_now(&push.0, &push.1, &push.2, &push.3);
    for (ch, n) in &report.sent {
        eprintln!(
            "vigil-notify: {ch}: {n} message(s), {} item(s)",
            report.delivered_items.get(ch).copied().unwrap_or(0)
        );
    }
    for (ch, e) in &report.failed {
        eprintln!("vigil-notify: {ch}: failing: {e}");
    }
    let left = report.pending_total();
    if left > 0 {
        eprintln!(
            "vigil-notify: {left} item(s) left in the outbox: {:?}",
            report.pending
        );
    }
    Ok(if once && left > 0 {
        exit::FAILED
    } else {
        exit::OK
    })
}

fn cmd_test(g: &GlobalArgs, channel: &str) -> Result<i32, Exit> {
    let cfg = load_config(&g.config, Uses::NOTIFY)?;
    let s = Settings::from_config(&cfg);
    if s.channel(channel).is_none() {
        return Err(Exit::usage(vigil_alert::AlertError::UnknownChannel(
            channel.to_string(),
            s.channels()
                .map(|c| c.name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        )));
    }
    let reply = runtime()?
        .block_on(deliver::test_channel(&s, channel))
        .map_err(Exit::failed)?;
    println!("{channel}: {reply}");
    Ok(exit::OK)
}

fn cmd_silence(g: &GlobalArgs, c: SilenceCommand) -> Result<i32, Exit> {
    let cfg = load_config(&g.config, Uses::NONE)?;
    let mut store = Store::open(&cfg.state.dir).map_err(Exit::usage)?;
    let now = vigil_core::now();
    match c {
        SilenceCommand::Add {
            matchers,
            duration,
            reason,
            by,
        } => {
            let by = by
                .or_else(|| std::env::var("SUDO_USER").ok())
                .or_else(|| std::env::var("USER").ok())
                .unwrap_or_else(|| "unknown".into());
            let m: BTreeMap<String, String> = matchers.into_iter().collect();
            let s = store
                .add_silence(&m, duration.get(), &reason, &by, now)
                .map_err(Exit::failed)?;
            println!("{}", s.id);
            eprintln!(
                "vigil-notify: silence {} until {} matching {:?}",
                s.id, s.ends_at, s.matchers
            );
        }
        SilenceCommand::List { all, json } => {
            let list = store.silences(all, now).map_err(Exit::failed)?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&list).unwrap_or_default()
                );
            } else if list.is_empty() {
                println!("no active silences");
            } else {
                for s in list {
                    let m: Vec<String> =
                        s.matchers.iter().map(|(k, v)| format!("{k}={v}")).collect();
                    println!(
                        "{}  {}  until {}  by {}  match {}  reason {:?}",
                        s.id,
                        if s.active { "active " } else { "expired" },
                        s.ends_at,
                        s.created_by,
                        m.join(","),
                        s.reason
                    );
                }
            }
        }
        SilenceCommand::Expire { id } => {
            store.expire_silence(&id, now).map_err(|e| match e {
                vigil_alert::AlertError::SilenceNotFound(_) => Exit::usage(e),
                e => Exit::failed(e),
            })?;
            println!("silence {id} expired");
        }
    }
    Ok(exit::OK)
}

fn cmd_status(g: &GlobalArgs, all: bool, json: bool) -> Result<i32, Exit> {
    let cfg = load_config(&g.config, Uses::NONE)?;
    let store = Store::open(&cfg.state.dir).map_err(Exit::usage)?;
    let now = vigil_core::now();
    let alerts = store.alerts(all).map_err(Exit::failed)?;
    let silences = store.silences(false, now).map_err(Exit::failed)?;
    let pending = store.pending_counts().map_err(Exit::failed)?;
    let channels = store.channel_states().map_err(Exit::failed)?;
    if json {
        let v = serde_json::json!({"alerts": alerts, "silences": silences, "outbox": pending, "channels": channels});
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
    } else {
        if alerts.is_empty() {
            println!("no alerts firing or pending");
        }
        for a in &alerts {
            println!(
                "{:<8} {:<8} {}  since {}  {}",
                a.status.as_str(),
                a.severity.as_str(),
                a.key,
                a.fired_at.as_deref().unwrap_or(&a.first_seen),
                a.summary
            );
        }
        for s in &silences {
            println!(
                "silence {} until {} match {:?}: {}",
                s.id, s.ends_at, s.matchers, s.reason
            );
        }
        for c in &channels {
            let waiting = pending.get(&c.channel).copied().unwrap_or(0);
            println!(
                "channel {:<16} waiting {waiting:<4} failures {:<3} {}",
                c.channel,
                c.failures,
                c.last_error
                    .as_deref()
                    .map(|e| format!("last error: {e}"))
                    .unwrap_or_default()
            );
            if c.dropped > 0 {
                println!(
                    "channel {:<16} not delivered (not retried) {}: {}",
                    c.channel,
                    c.dropped,
                    c.last_dropped.as_deref().unwrap_or_default()
                );
            }
        }
    }
    Ok(exit::OK)
}

fn cmd_ingest(g: &GlobalArgs, job: vigil_alert::Source) -> Result<i32, Exit> {
    let cfg = load_config(&g.config, Uses::NONE)?;
    let outcomes = vigil_core::outcome::latest(&cfg.state.dir, job);
    if outcomes.is_empty() {
        return Err(Exit::usage(anyhow::anyhow!(
            "no outcome records for job {job:?} in {}/outcomes/{job}",
            cfg.state.dir.display()
        )));
    }
    let r = vigil_alert::ingest_outcomes(&cfg, job.as_str(), &outcomes).map_err(Exit::failed)?;
    println!("{}", serde_json::to_string_pretty(&r).unwrap_or_default());
    Ok(exit::OK)
}

fn cmd_unit_failed(g: &GlobalArgs, unit: &str) -> Result<i32, Exit> {
    let Some((_, base)) = vigil_core::paths::Job::of_unit(unit) else {
        return Err(Exit::usage(anyhow::anyhow!(
            "{unit:?} is not a vigil job unit (vigil-snapshot, vigil-snapshot-scrub, vigil-restore-drill, vigil-health, vigil-quota, vigil-notify, vigil-journal, vigild)"
        )));
    };
    let config = match vigil_core::paths::unit_instance(unit) {
        Some(i) if g.config == std::path::Path::new(vigil_core::config::DEFAULT_PATH) => {
            std::path::Path::new(vigil_core::config::CONFIG_DIR).join(format!("{i}.toml"))
        }
        _ => g.config.clone(),
    };
    let death = vigil_alert::unit::Death::from_env();
    if death.job_reported_itself() {
        tracing::info!("{unit} exited 1: it ran to its end and raised its own alerts");
        return Ok(exit::OK);
    }
    let cfg = load_config(&config, Uses::NONE)?;
    let r = vigil_alert::unit::raise(&cfg, base, &death).map_err(Exit::failed)?;
    tracing::warn!(
        "{unit} {}: {} alert(s) queued for delivery",
        death.describe(),
        r.queued
    );
    Ok(exit::OK)
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
