//! vigil-restore: parse, wire, exit. The work lives in the library.

use clap::{Args, Parser, Subcommand};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use vigil_cli::{load_config, Exit, GlobalArgs, Job, Uses};
use vigil_core::exit;
use vigil_core::fsutil::ArchivesLock;
use vigil_restore::identity::Identities;
use vigil_restore::select::Selector;
use vigil_restore::stores::Stores;
use vigil_restore::{drill, etcd, fetch, rke2, RestoreError};

#[derive(Debug, Parser)]
#[command(
    name = "vigil-restore",
    version,
    about = "vigil: disaster recovery (list, fetch, etcd, rke2, drill)",
    after_help = "Examples:\n  \
        vigil-restore list\n  \
        vigil-restore fetch --identity vigil-key.txt --out /root/etcd-snapshot.db\n  \
        vigil-restore --config /etc/vigil/prod.toml drill --member cp-2"
)]
struct Cli {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(subcommand)]
    command: Command,
}

/// Which archive: by default the newest verified one.
#[derive(Debug, Clone, Args)]
struct Select {
    /// Exactly this archive (its id, as `list` shows it).
    #[arg(long)]
    archive: Option<String>,
    /// Only archives of this member.
    #[arg(long)]
    member: Option<String>,
    /// Only archives created at or before this RFC 3339 time.
    #[arg(long, value_parser = parse_time)]
    before: Option<time::OffsetDateTime>,
    /// Only archives whose revision is at most this.
    #[arg(long)]
    revision: Option<i64>,
    /// Read from this source only (`local`, or a sink's name).
    #[arg(long)]
    source: Option<String>,
}

impl Select {
    fn selector(&self) -> Selector {
        Selector {
            archive: self.archive.clone(),
            member: self.member.clone(),
            before: self.before,
            revision: self.revision,
        }
    }
}

/// A point in time to restore to, from the journal (issue 17).
#[derive(Debug, Clone, clap::Args)]
struct PointArgs {
    /// Restore to this etcd revision: the newest archive at or before it,
    /// then the journal replayed up to it, one transaction per revision.
    #[arg(long, value_name = "R", conflicts_with = "to_time")]
    to_revision: Option<i64>,
    /// Restore to the last change received at or before this RFC 3339 time,
    /// e.g. 2026-12-02T03:14:00Z (the journal records when it received each
    /// revision).
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    to_time: Option<time::OffsetDateTime>,
    /// Replay past a break in the journal's chain (a segment its successor
    /// does not vouch for); each segment must still decrypt and follow on.
    #[arg(long)]
    force_journal: bool,
    /// TTL of the leases granted after the snapshot, which the replay grants
    /// again (the watch carries a key's lease ID, not the lease).
    #[arg(long, default_value = "1h", value_name = "DURATION")]
    lease_ttl: vigil_core::units::HumanDuration,
}

impl PointArgs {
    fn options(&self) -> Option<vigil_restore::pitr::PointOptions> {
        use vigil_restore::pitr::{Point, PointOptions};
        let point = match (self.to_revision, self.to_time) {
            (Some(r), _) => Point::Revision(r),
            (None, Some(t)) => Point::Time(t),
            (None, None) => return None,
        };
        Some(PointOptions {
            point,
            force: self.force_journal,
            lease_ttl: self.lease_ttl.get(),
        })
    }
}

fn parse_time(s: &str) -> anyhow::Result<time::OffsetDateTime> {
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).map_err(|e| {
        anyhow::anyhow!("{s:?} is not an RFC 3339 time such as 2026-11-23T04:00:00Z: {e}")
    })
}

#[derive(Debug, Subcommand)]
enum Command {
    /// List every archive in the local dir and every source, merged by archive id.
    #[command(
        after_help = "Examples:\n  vigil-restore list\n  vigil-restore list --source rgw --json"
    )]
    List {
        /// Print the catalog (archives, copies, errors) as JSON on stdout.
        #[arg(long)]
        json: bool,
        /// List this source only (`local`, or a sink's name).
        #[arg(long)]
        source: Option<String>,
    },
    /// Download, decrypt, decompress and verify one archive into a plain snapshot file.
    #[command(after_help = "Examples:\n  \
        vigil-restore fetch --identity vigil-key.txt --out /root/etcd-snapshot.db\n  \
        vigil-restore fetch -i vigil-key.txt --member cp-2 --before 2026-12-02T03:00:00Z --out /root/cp-2.db\n  \
        vigil-restore fetch -i vigil-key.txt --to-time 2026-12-02T03:14:00Z --out /root/etcd-0314.db\n  \
        pass show vigil/age | vigil-restore fetch -i - --source offsite --out - | sha256sum\n\n\
        With --out -, the snapshot's sha256 and etcd's trailer are checked only after \
        the last byte went to stdout (age authenticates each 64 KiB chunk before it is decrypted). \
        A non-zero exit means the stream MUST NOT be used: check the exit status of vigil-restore \
        (set -o pipefail) before you use what the pipe produced.")]
    Fetch {
        /// The snapshot file to write (0600); it must not exist. `-` writes
        /// the plaintext to stdout instead (no file; not to a terminal), and
        /// everything else to stderr.
        #[arg(long)]
        out: PathBuf,
        /// age identity file, passphrase-protected identity file, or `-` for stdin.
        #[arg(long, short = 'i')]
        identity: PathBuf,
        #[command(flatten)]
        select: Select,
        #[command(flatten)]
        point: PointArgs,
        /// Print what was fetched and verified as JSON (on stderr with --out -).
        #[arg(long)]
        json: bool,
    },
    /// Write one ready etcd data dir per configured member into DIR/<member>/.
    #[command(after_help = "Examples:\n  \
        vigil-restore etcd --identity vigil-key.txt --out /root/etcd-restored\n  \
        vigil-restore etcd -i vigil-key.txt --out /root/etcd-restored --to-time 2026-12-02T03:14:00Z\n  \
        vigil-restore etcd -i vigil-key.txt --out /root/etcd-restored --peer-url cp-3=https://10.0.0.7:2380")]
    Etcd {
        /// age identity file, passphrase-protected identity file, or `-` for stdin.
        #[arg(long, short = 'i')]
        identity: PathBuf,
        /// An empty or new directory.
        #[arg(long)]
        out: PathBuf,
        #[command(flatten)]
        select: Select,
        #[command(flatten)]
        point: PointArgs,
        /// --initial-cluster-token (default: <cluster>-restored-<time>).
        #[arg(long)]
        token: Option<String>,
        /// Keep the verified snapshot file in DIR.
        #[arg(long)]
        keep_snapshot: bool,
        /// Do not check that the members' ports are free on this host.
        #[arg(long)]
        skip_port_check: bool,
        /// A member's peer URL, e.g. cp-1=https://10.0.0.5:2380 (repeatable).
        /// Overrides the membership recorded in the archive and the config's
        /// peer_url: for a restore onto new hosts.
        #[arg(long = "peer-url", value_name = "NAME=URL", value_parser = etcd::parse_peer_flag)]
        peer_urls: Vec<(String, String)>,
        /// Restore without this member although the archive's membership
        /// lists it (it left the cluster after the snapshot; repeatable).
        #[arg(long = "drop-member", value_name = "NAME")]
        drop_members: Vec<String>,
        /// Restore at the snapshot's revision, without a revision bump (neither
        /// etcdutl's --bump-revision nor the replay through a scratch etcd that
        /// older tools get). Kubernetes watch caches then hold newer objects
        /// until every kube-apiserver and kubelet is restarted; the report says so.
        #[arg(long)]
        no_bump: bool,
        /// Print the report (tool and its version, members, start commands) as JSON on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Print the RKE2 cluster-reset runbook; with --execute, perform it on this server node.
    #[command(after_help = "Examples:\n  \
        vigil-restore rke2                     only print the runbook, with prod's names and paths\n  \
        vigil-restore rke2 --execute --identity vigil-key.txt --node cp-1\n  \
        vigil-restore rke2 --execute -i vigil-key.txt --restore-token    onto new hosts")]
    Rke2 {
        /// Run the steps on this node (and the others over restore.ssh), after
        /// showing them and asking on a terminal; without it, only print them.
        #[arg(long)]
        execute: bool,
        /// With --execute: go ahead without asking (for scripts; needed when
        /// stdin is not a terminal).
        #[arg(long, requires = "execute")]
        yes: bool,
        /// age identity file, passphrase-protected identity file, or `-` for
        /// stdin (needed with --execute).
        #[arg(long, short = 'i')]
        identity: Option<PathBuf>,
        #[command(flatten)]
        select: Select,
        /// The member this runs on; it is reset first (default: the first member).
        #[arg(long)]
        node: Option<String>,
        /// New hosts: put the archived server token back before the reset.
        #[arg(long)]
        restore_token: bool,
        /// Without restore.ssh: confirm that rke2-server is stopped on the other servers.
        #[arg(long)]
        others_stopped: bool,
        /// Where the verified snapshot goes on this node.
        #[arg(long)]
        snapshot_path: Option<PathBuf>,
        /// Skip proving that the server token opens the snapshot's RKE2 bootstrap data (last resort).
        #[arg(long)]
        no_token_check: bool,
        /// Print the steps (and with --execute, which were done) as JSON on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Restore each member's newest archive into a scratch etcd and check it;
    /// with `[journal]`, also replay the journal onto the newest archive and
    /// compare it with the live cluster (scheduled).
    #[command(after_help = "Examples:\n  \
        vigil-restore drill                    what vigil-restore-drill.service runs\n  \
        vigil-restore drill --member cp-2 --source offsite --json")]
    Drill {
        /// Instead of restore.drill_identity_file.
        #[arg(long, short = 'i')]
        identity: Option<PathBuf>,
        /// Read the archives from this source only (`local`, or a sink's name).
        #[arg(long)]
        source: Option<String>,
        /// Drill this member's newest archive only (no journal proof).
        #[arg(long)]
        member: Option<String>,
        /// Leave out the proof of the journal (replay onto the newest archive, compared with the live cluster).
        #[arg(long)]
        no_journal: bool,
        /// Print the results (per member: checks, RTO, the etcd versions used) as JSON on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Validate this program's sections and secrets, and the paths its unit
    /// writes; print a summary without secrets.
    #[command(
        after_help = "Examples:\n  vigil-restore check-config\n  vigil-restore --config /etc/vigil/prod.toml check-config --all"
    )]
    CheckConfig(vigil_cli::CheckArgs),
}

fn main() -> ExitCode {
    // Helper modes (tied children, the janitor) of this same binary: see guard.rs.
    vigil_restore::guard::hook();
    vigil_cli::main(|cli: Cli| match cli.command {
        Command::CheckConfig(a) => {
            vigil_cli::check_config(&cli.global, Job::Restore, Uses::RESTORE, &a, |_| {
                String::new()
            })
        }
        c => dispatch(&cli.global, c),
    })
}

impl vigil_cli::Program for Cli {
    fn global(&self) -> &GlobalArgs {
        &self.global
    }
}

fn fail(e: RestoreError) -> Exit {
    Exit {
        code: e.exit_code(),
        error: e.into(),
    }
}

fn print_json<T: serde::Serialize>(v: &T) {
    println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
}

fn ids(p: &std::path::Path) -> Result<Identities, Exit> {
    Identities::load(p).map_err(fail)
}

fn dispatch(g: &GlobalArgs, c: Command) -> Result<i32, Exit> {
    let cfg = load_config(&g.config, Uses::RESTORE)?;
    match c {
        Command::CheckConfig(_) => Ok(exit::OK),
        Command::List { json, source } => {
            let stores = Stores::configured(&cfg)
                .only(source.as_deref())
                .map_err(|e| fail(e.into()))?;
            let cat = stores.catalog(&cfg.state.dir);
            if json {
                print_json(&vigil_restore::list::json(&cat));
            } else {
                print!("{}", vigil_restore::list::human(&cat));
            }
            Ok(if cat.errors.is_empty() {
                exit::OK
            } else {
                exit::FAILED
            })
        }
        Command::Fetch {
            out,
            identity,
            select,
            point,
            json,
        } => {
            if let Some(p) = point.options() {
                if out.as_os_str() == fetch::STDOUT {
                    return Err(fail(RestoreError::Usage(
                        "--out - cannot be used with --to-revision/--to-time: the point's snapshot is made in a scratch etcd; give --out FILE".into(),
                    )));
                }
                let _archives = ArchivesLock::for_reading(&cfg.state.dir);
                let ids = ids(&identity)?;
                let r = vigil_restore::pitr::fetch(
                    &cfg,
                    &select.selector(),
                    select.source.as_deref(),
                    Some(&ids),
                    &p,
                    &out,
                )
                .map_err(fail)?;
                if json {
                    print_json(&r);
                } else {
                    println!("{}: snapshot at the point", out.display());
                    print!("{}", vigil_restore::pitr::human(&r));
                }
                return Ok(exit::OK);
            }
            if out.as_os_str() == fetch::STDOUT && std::io::stdout().is_terminal() {
                return Err(fail(RestoreError::Usage(
                    "--out -: standard output is a terminal; the snapshot is binary. Pipe it on \
                     (`--out - | etcdutl ...`) or redirect it (`--out - > FILE`), or give --out FILE"
                        .into(),
                )));
            }
            // Shared with scrubs and drills: a prune on this host waits until
            // the archive is read (or the read goes on without, with a warning).
            let _archives = ArchivesLock::for_reading(&cfg.state.dir);
            let ids = ids(&identity)?;
            let stores = Stores::configured(&cfg)
                .only(select.source.as_deref())
                .map_err(|e| fail(e.into()))?;
            let cat = stores.catalog(&cfg.state.dir);
            let a = select.selector().select(&cat).map_err(fail)?;
            if out.as_os_str() == fetch::STDOUT {
                let f = fetch::fetch_to_stdout(a, &stores, Some(&ids)).map_err(fail)?;
                // stdout carries the snapshot: everything human goes to stderr.
                if json {
                    eprintln!("{}", serde_json::to_string_pretty(&f).unwrap_or_default());
                } else {
                    eprintln!(
                        "standard output: archive {} (member {}, revision {}, {} bytes, sha256 {}) from {}, verified: every ciphertext chunk by age (the archive sha256 if unencrypted), at the end etcd sha256 trailer and snapshot sha256",
                        f.archive, f.member, f.revision, f.snapshot_size, f.snapshot_sha256, f.location
                    );
                }
                return Ok(exit::OK);
            }
            let f = fetch::fetch(a, &stores, Some(&ids), &out).map_err(fail)?;
            if json {
                print_json(&f);
            } else {
                println!(
                    "{}: archive {} (member {}, revision {}) from {}, verified: every ciphertext chunk by age (the archive sha256 if unencrypted), etcd sha256 trailer and snapshot sha256",
                    f.path.display(),
                    f.archive,
                    f.member,
                    f.revision,
                    f.location
                );
            }
            Ok(exit::OK)
        }
        Command::Etcd {
            identity,
            out,
            select,
            token,
            keep_snapshot,
            skip_port_check,
            peer_urls,
            drop_members,
            no_bump,
            point,
            json,
        } => {
            let _archives = ArchivesLock::for_reading(&cfg.state.dir);
            let ids = ids(&identity)?;
            let r = etcd::run(
                &cfg,
                &etcd::EtcdOptions {
                    out: &out,
                    identities: Some(&ids),
                    selector: select.selector(),
                    source: select.source.as_deref(),
                    token,
                    keep_snapshot,
                    skip_port_check,
                    peer_urls,
                    drop_members,
                    no_bump,
                    point: point.options(),
                },
            )
            .map_err(fail)?;
            if json {
                print_json(&r);
            } else {
                print!("{}", etcd::human(&r));
            }
            Ok(exit::OK)
        }
        Command::Rke2 {
            execute,
            yes,
            identity,
            select,
            node,
            restore_token,
            others_stopped,
            snapshot_path,
            no_token_check,
            json,
        } => {
            let _archives = ArchivesLock::for_reading(&cfg.state.dir);
            let ids = identity.as_deref().map(ids).transpose()?;
            let r = rke2::run(
                &cfg,
                &rke2::Rke2Options {
                    execute,
                    identities: ids.as_ref(),
                    selector: select.selector(),
                    source: select.source.as_deref(),
                    node: node.as_deref(),
                    restore_token,
                    others_stopped,
                    snapshot_path: snapshot_path.as_deref(),
                    token_check: !no_token_check,
                    confirm: if yes {
                        rke2::Confirm::Yes
                    } else {
                        rke2::Confirm::Ask
                    },
                },
            )
            .map_err(fail)?;
            if json {
                print_json(&r);
            } else {
                print!("{}", rke2::human(&r));
            }
            Ok(exit::OK)
        }
        Command::Drill {
            identity,
            source,
            member,
            no_journal,
            json,
        } => {
            vigil_cli::refuse_foreign_state(&cfg, "vigil-restore", "drill")?;
            let _archives = ArchivesLock::for_reading(&cfg.state.dir);
            let r = drill::run(
                &cfg,
                &drill::DrillOptions {
                    identity: identity.as_deref(),
                    source: source.as_deref(),
                    member: member.as_deref(),
                    no_journal,
                },
            )
            .map_err(fail)?;
            publish_drill_metrics(&cfg, &r);
            raise_drill_alerts(&cfg, &r.run_id);
            if json {
                print_json(&r);
            } else {
                print!("{}", drill::human(&r));
            }
            Ok(if r.ok { exit::OK } else { exit::FAILED })
        }
    }
}

/// Textfile-collector metrics of a drill: per member success, RTO and the
/// last success time (kept from the previous file when this drill failed).
fn publish_drill_metrics(cfg: &vigil_core::Config, r: &drill::DrillReport) {
    use vigil_core::metrics::{self, Metrics};
    let c = cfg.cluster_name();
    let mut m = Metrics::new();
    let prev = metrics::previous(
        &cfg.metrics,
        "drill",
        c,
        "vigil_drill_last_success_timestamp_seconds",
    );
    m.flag(
        "vigil_drill_success",
        "1 if the last restore drill passed for every member",
        &[("cluster", c)],
        r.ok,
    );
    m.gauge(
        "vigil_drill_timestamp_seconds",
        "When the last restore drill ended",
        &[("cluster", c)],
        metrics::now_seconds(),
    );
    for d in &r.members {
        let l = [("cluster", c), ("member", d.member.as_str())];
        m.flag(
            "vigil_drill_member_success",
            "1 if the member's archive restored and passed the checks in the last drill",
            &l,
            d.ok,
        );
        if let Some(rto) = d.rto_ms {
            m.gauge(
                "vigil_drill_rto_seconds",
                "Measured recovery time of the member in the last drill: fetch, verify, restore, start, checks",
                &l,
                rto as f64 / 1000.0,
            );
        }
        let last = if d.ok {
            Some(metrics::now_seconds())
        } else {
            prev.iter()
                .find(|(pl, _)| pl.iter().any(|(k, v)| k == "member" && v == &d.member))
                .map(|(_, v)| *v)
        };
        if let Some(t) = last {
            m.gauge(
                "vigil_drill_last_success_timestamp_seconds",
                "When a drill of the member last passed",
                &l,
                t,
            );
        }
    }
    if let Some(j) = r.journal.as_ref().filter(|j| j.skipped.is_none()) {
        let l = [("cluster", c)];
        m.flag(
            "vigil_drill_journal_success",
            "1 if the journal replayed onto the newest archive equalled the live cluster in the last drill",
            &l,
            j.ok,
        );
        if let Some(rpo) = j.rpo_seconds.filter(|_| j.ok) {
            m.gauge(
                "vigil_drill_journal_rpo_seconds",
                "The recovery point the last drill proved: how far the journal's newest change lay behind the live cluster",
                &l,
                rpo,
            );
        }
        m.gauge(
            "vigil_drill_journal_keys_compared",
            "Keys the last drill compared between the replayed journal and the live cluster",
            &l,
            j.keys_compared as f64,
        );
    }
    metrics::publish(&cfg.metrics, "drill", c, &m);
}

/// A failed drill becomes an alert, a passing one resolves it; both are
/// queued for vigil-notify.
fn raise_drill_alerts(cfg: &vigil_core::Config, run_id: &str) {
    vigil_alert::raise_run(cfg, &[vigil_alert::Source::Drill], run_id);
    vigil_alert::unit::job_completed(cfg, "vigil-restore-drill");
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
