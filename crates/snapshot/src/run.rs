//! One `vigil-snapshot run`: every member (streams in turns), then the
//! consistency check, retention, the sinks and the outcome records. Each
//! stage returns what it found; the report is put together at the end.

mod check;
mod member;
mod pin;
mod prune;
mod report;
mod stream;
#[cfg(test)]
mod tests;
mod token;
mod uploads;

use crate::cluster::{Cluster, Live};
use crate::ship::{build_sinks, sync_sink, Mode};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use vigil_archive::local;
use vigil_archive::sink::{Sink, SinkError};
use vigil_archive::ArchiveOptions;
use vigil_core::config::{Config, Encryption, SnapshotConfig};
use vigil_core::fsutil::{self, FsError, LockError, RunLock};
use vigil_core::outcome::{self, Outcome, Stage};
use vigil_core::pin::ClusterPin;
use vigil_core::{now, rfc3339, ConfigError};
use vigil_etcd::TlsMaterial;

pub use crate::ship::SinkReport;
pub use member::MemberError;
pub use report::{BootstrapCheck, MemberReport, RunReport, SinkCopy, TokenReport};
pub use stream::{StreamError, WriteError};

/// Why a run could not start at all.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("vigil-snapshot is already running: {0}")]
    Locked(LockError),
    #[error(transparent)]
    Fs(#[from] FsError),
    #[error(transparent)]
    Tls(#[from] vigil_etcd::EtcdError),
    #[error(transparent)]
    Sink(#[from] SinkError),
    /// It could not start after the state dir was usable: every member's
    /// outcome says why, so the failure is alerted like any other.
    #[error("{error}")]
    CouldNotRun {
        run_id: String,
        error: Box<RunError>,
    },
}

/// Where a diverged member's archive goes: out of every member directory,
/// so that nothing lists, ships, counts or restores it by default.
pub const QUARANTINE_DIR: &str = "quarantine";

impl RunError {
    /// Contract 3: a held lock means the job ran into another run (1); the
    /// rest mean it could not run at all (2).
    pub fn exit_code(&self) -> i32 {
        match self {
            RunError::Locked(_) => vigil_core::exit::FAILED,
            RunError::CouldNotRun { error, .. } => error.exit_code(),
            _ => vigil_core::exit::USAGE,
        }
    }

    /// The run whose outcome records hold this failure, if any.
    pub fn run_id(&self) -> Option<&str> {
        match self {
            RunError::CouldNotRun { run_id, .. } => Some(run_id),
            _ => None,
        }
    }
}

/// What a run reaches outside the bastion's files: the etcd cluster.
/// Sinks, archives and outcome records are the config's directories and
/// stores.
#[derive(Debug, Clone, Default)]
pub struct Deps<C: Cluster = Live> {
    pub etcd: C,
    /// One bar per member on a terminal, log lines otherwise.
    pub progress: vigil_core::progress::Board,
}

impl Deps<Live> {
    /// The cluster of the config, over gRPC.
    pub fn live() -> Self {
        Deps {
            etcd: Live,
            progress: vigil_core::progress::Board::new(),
        }
    }
}

/// What every member's pipeline shares.
struct Ctx<C: Cluster> {
    etcd: C,
    cluster: String,
    run_id: String,
    root: PathBuf,
    tls: Option<TlsMaterial>,
    archive: ArchiveOptions,
    recipients: Vec<String>,
    encrypted: bool,
    connect_timeout: Duration,
    stall_timeout: Duration,
    sinks: Vec<Arc<Sink>>,
    /// The cluster ID this bastion backs up (`None` until the first good run).
    pin: Option<ClusterPin>,
    /// etcd version by member ID, from the status calls of this run: each
    /// manifest's membership records what is known when it is written.
    versions: Mutex<HashMap<u64, String>>,
    bounds: crate::gentle::Bounds,
    /// Why the preflight deferred each member, by member name.
    deferred: Mutex<HashMap<String, Vec<String>>>,
    /// The restore proofs of this run (issue 19).
    proofs: Arc<crate::prove::Proofs>,
    progress: vigil_core::progress::Board,
}

/// Runs the whole job. Per-member failures are in the report, not in `Err`.
pub async fn run<C: Cluster>(cfg: &Config, deps: Deps<C>) -> Result<RunReport, RunError> {
    let sc = cfg.snapshot("vigil-snapshot")?;
    let started = now();
    let t0 = Instant::now();
    fsutil::ensure_private_dir(&cfg.state.dir)?;
    let _lock = RunLock::acquire(&cfg.state.dir.join("snapshot.lock")).map_err(|e| match e {
        LockError::Io(f) => RunError::Fs(f),
        held => RunError::Locked(held),
    })?;
    let run_id = vigil_core::id_time(started);
    let (tls, sinks) = prepare(cfg, sc).map_err(|e| could_not_run(cfg, &run_id, t0, e))?;

    let mut warnings = Vec::new();
    if sc.encryption == Encryption::None {
        let w = "encryption = \"none\": these archives hold every Kubernetes Secret in plaintext; set age_recipients".to_string();
        tracing::warn!("{w}");
        warnings.push(w);
    }
    let cleaned =
        cleanup(cfg, sc, &sinks).map_err(|e| could_not_run(cfg, &run_id, t0, e.into()))?;

    let pin = pin::load(cfg, sc, &mut warnings);
    let proofs = Arc::new(crate::prove::Proofs::prepare(cfg, sc));
    if let crate::prove::Proofs::Broken { error, .. } = &*proofs {
        tracing::error!("restore proofs cannot run: {error}");
    }
    let age = sc.encryption == Encryption::Age;
    let ctx = Arc::new(Ctx {
        etcd: deps.etcd,
        cluster: cfg.cluster_name().to_string(),
        run_id: run_id.clone(),
        root: sc.dir.clone(),
        tls,
        archive: ArchiveOptions {
            zstd_level: sc.zstd_level,
            zstd_threads: sc.zstd_threads,
            recipients: if age {
                sc.recipients.clone()
            } else {
                Vec::new()
            },
        },
        recipients: if age {
            sc.recipients.iter().map(|r| r.to_string()).collect()
        } else {
            Vec::new()
        },
        encrypted: age,
        connect_timeout: sc.connect_timeout.get(),
        stall_timeout: sc.stall_timeout.get(),
        sinks: sinks.clone(),
        pin,
        versions: Default::default(),
        bounds: crate::gentle::Bounds::from_config(sc),
        deferred: Default::default(),
        proofs: proofs.clone(),
        progress: deps.progress,
    });

    let (mut members, clients) = all_members(&ctx, cfg, sc).await;
    proofs.finish();
    let connected: Vec<&C::Member> = clients.iter().flatten().collect();
    let consistency = if sc.verify_consistency && connected.len() >= 2 {
        Some(check::consistency(&sc.dir, &sinks, &connected, &mut members).await)
    } else {
        None
    };

    let prune_lock = prune::lock(cfg, &mut warnings);
    if prune_lock.is_some() {
        prune::members(cfg, sc, &mut members);
    }
    if ctx.pin.is_none() {
        pin::from_run(cfg, &members, &mut warnings);
    }
    pin::record_seen(cfg, &members, &mut warnings);

    let rke2_token = match &sc.rke2_token_file {
        Some(p) => {
            let entries = token::bootstrap_entries(&members, &clients).await;
            Some(token::archive_token(
                &ctx.cluster,
                sc,
                &ctx.archive,
                p,
                entries,
                &mut warnings,
            ))
        }
        None => None,
    };
    let sink_reports = ship(cfg, &sinks, &members, prune_lock.is_some(), &mut warnings).await;
    if prune_lock.is_some() {
        if let Err(e) = crate::keep::forget_pruned(cfg, &sc.dir, &sinks).await {
            warnings.push(format!("names of pruned snapshots not forgotten: {e}"));
        }
    }
    drop(prune_lock);

    let report = RunReport {
        run_id,
        cluster: ctx.cluster.clone(),
        started_at: rfc3339(started),
        duration_ms: t0.elapsed().as_millis() as u64,
        ok: false,
        encrypted: ctx.encrypted,
        members,
        consistency,
        rke2_token,
        sinks: sink_reports,
        cleaned,
        warnings,
    };
    Ok(report.recorded(&cfg.state.dir))
}

/// The directories, the TLS files and the sinks: what the run needs before
/// it can start.
fn prepare(
    cfg: &Config,
    sc: &SnapshotConfig,
) -> Result<(Option<TlsMaterial>, Vec<Arc<Sink>>), RunError> {
    fsutil::ensure_private_dir(&sc.dir)?;
    for m in cfg.members() {
        fsutil::ensure_private_dir(&local::member_dir(&sc.dir, &m.name))?;
    }
    let tls = cfg.tls().map(TlsMaterial::load).transpose()?;
    Ok((tls, build_sinks(cfg)?))
}

/// Removes what interrupted runs left in the member dirs and the sinks.
fn cleanup(
    cfg: &Config,
    sc: &SnapshotConfig,
    sinks: &[Arc<Sink>],
) -> Result<Vec<PathBuf>, FsError> {
    let mut cleaned = Vec::new();
    for m in cfg.members() {
        let dir = local::member_dir(&sc.dir, &m.name);
        for p in local::cleanup_member(&dir)? {
            tracing::warn!(member = %m.name, "removed leftover of an interrupted run: {}", p.display());
            cleaned.push(p);
        }
    }
    for s in sinks {
        for p in s.cleanup() {
            tracing::warn!(sink = %s.name(), "removed leftover of an interrupted run: {}", p.display());
            cleaned.push(p);
        }
    }
    Ok(cleaned)
}

/// Every member's pipeline, in its own task (the bounds give them turns);
/// their reports in config order, with the clients of the members reached.
async fn all_members<C: Cluster>(
    ctx: &Arc<Ctx<C>>,
    cfg: &Config,
    sc: &SnapshotConfig,
) -> (Vec<MemberReport>, Vec<Option<C::Member>>) {
    let tasks: Vec<_> = cfg
        .members()
        .map(|m| tokio::spawn(member::member(ctx.clone(), m.clone(), sc.timeout.get())))
        .collect();
    let mut members = Vec::new();
    let mut clients = Vec::new();
    for (t, m) in tasks.into_iter().zip(cfg.members()) {
        match t.await {
            Ok((rep, client)) => {
                members.push(rep);
                clients.push(client);
            }
            Err(e) => {
                members.push(MemberReport::failed(
                    m,
                    Stage::Stream,
                    format!("internal error: {e}"),
                    0,
                ));
                clients.push(None);
            }
        }
    }
    (members, clients)
}

/// Brings every sink in line: ships what is missing, prunes (unless the
/// archives lock was not had), and reports the streamed uploads that failed.
async fn ship(
    cfg: &Config,
    sinks: &[Arc<Sink>],
    members: &[MemberReport],
    may_prune: bool,
    warnings: &mut Vec<String>,
) -> Vec<SinkReport> {
    let mut reports = Vec::new();
    // What this run made is never pruned from a sink either.
    let made: Vec<String> = members
        .iter()
        .filter_map(|m| m.manifest.as_ref().map(|x| x.archive.clone()))
        .collect();
    for sink in sinks {
        let mode = if !may_prune && sink.can_delete() {
            warnings.push(format!(
                "sink {}: pruning deferred to the next run (archives lock held); missing copies are still shipped",
                sink.name()
            ));
            Mode::Ship
        } else {
            Mode::ShipAndPrune
        };
        let mut rep = sync_sink(cfg, sink, mode, &made).await;
        for m in members {
            for c in m.sinks.iter().filter(|c| c.sink == sink.name() && !c.ok) {
                let e = format!(
                    "{}: streamed upload failed: {}",
                    m.member,
                    c.error.as_deref().unwrap_or("?")
                );
                if rep.ok {
                    rep.warnings
                        .push(format!("{e} (shipped again from the local copy)"));
                } else {
                    rep.errors.push(e);
                }
            }
        }
        reports.push(rep);
    }
    reports
}

/// Records a failed outcome for every member, so that a run that could not
/// start (a snapshot dir on a read-only file system, unreadable TLS files, a
/// sink that cannot be built) still reaches a human.
fn could_not_run(cfg: &Config, run_id: &str, t0: Instant, e: RunError) -> RunError {
    tracing::error!("{e}");
    let time = rfc3339(now());
    for m in cfg.members() {
        let o = Outcome {
            proof: None,
            job: vigil_core::jobs::Source::Snapshot,
            run_id: run_id.to_string(),
            cluster: cfg.cluster_name().to_string(),
            subject: m.name.clone(),
            ok: false,
            stage: Stage::Write,
            error: Some(format!("the run could not start: {e}")),
            archive: None,
            time: time.clone(),
            duration_ms: t0.elapsed().as_millis() as u64,
        };
        if let Err(w) = outcome::record(&cfg.state.dir, &o) {
            tracing::error!("could not record the outcome of member {}: {w}", m.name);
        }
    }
    RunError::CouldNotRun {
        run_id: run_id.to_string(),
        error: Box::new(e),
    }
}
