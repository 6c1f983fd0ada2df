//! One `vigil-snapshot run`: every member (streams in turns), then the
//! consistency check, retention and outcome records.

use crate::consistency::{self, ConsistencyReport, MemberHash};
pub use crate::ship::SinkReport;
use crate::ship::{build_sinks, sync_sink, Mode};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use vigil_archive::rke2_bootstrap;
use vigil_archive::sink::{Sink, SinkError, SinkMsg};
use vigil_archive::{
    local, verify_readback, ArchiveError, ArchiveOptions, ArchiveWriter, SinkTx, Written,
};
use vigil_core::config::{Config, Encryption, MemberConfig, SnapshotConfig};
use vigil_core::fsutil::{self, FsError, LockError, RunLock};
use vigil_core::manifest::{self, Manifest, Membership, RecordedMember};
use vigil_core::outcome::{self, Outcome, Stage};
use vigil_core::pin::{self, ClusterPin};
use vigil_core::{now, rfc3339, ConfigError};
use vigil_etcd::{
    ListedMember, MemberClient, MemberStatus, SnapshotVerifier, TlsMaterial, Verified,
};

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

#[derive(Debug, Clone, Serialize)]
pub struct MemberReport {
    pub member: String,
    pub endpoint: String,
    pub ok: bool,
    pub stage: Stage,
    pub error: Option<String>,
    pub archive: Option<PathBuf>,
    pub manifest: Option<Manifest>,
    pub pruned: Vec<PathBuf>,
    /// Copies streamed to sinks during this member's snapshot.
    pub sinks: Vec<SinkCopy>,
    pub duration_ms: u64,
    /// Why the preflight deferred this member, once per deferral.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub deferred: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SinkCopy {
    pub sink: String,
    pub ok: bool,
    pub location: String,
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TokenReport {
    pub ok: bool,
    pub path: PathBuf,
    pub error: Option<String>,
    /// Whether the token opens the cluster's RKE2 bootstrap data; `None`
    /// when there is none to open (plain etcd) or the check could not run.
    pub bootstrap: Option<BootstrapCheck>,
}

/// The archived token proven against `/bootstrap/<hash>`, read from the
/// member snapshotted first, at its snapshot's revision (issue #15 point 2):
/// a token rotated on the cluster but not here is caught the same day.
#[derive(Debug, Clone, Serialize)]
pub struct BootstrapCheck {
    pub ok: bool,
    /// The entry the token opened.
    pub key: Option<String>,
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    pub run_id: String,
    pub cluster: String,
    pub started_at: String,
    pub duration_ms: u64,
    pub ok: bool,
    pub encrypted: bool,
    pub members: Vec<MemberReport>,
    pub consistency: Option<ConsistencyReport>,
    pub rke2_token: Option<TokenReport>,
    pub sinks: Vec<SinkReport>,
    /// Leftovers of crashed runs that were removed first.
    pub cleaned: Vec<PathBuf>,
    pub warnings: Vec<String>,
}

struct Ctx {
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
    versions: std::sync::Mutex<std::collections::HashMap<u64, String>>,
    bounds: crate::gentle::Bounds,
    /// Why the preflight deferred each member, by member name.
    deferred: std::sync::Mutex<std::collections::HashMap<String, Vec<String>>>,
    /// The restore proofs of this run (issue 19).
    proofs: Arc<crate::prove::Proofs>,
}

/// Runs the whole job. Per-member failures are in the report, not in `Err`.
pub async fn run(cfg: &Config) -> Result<RunReport, RunError> {
    let sc = cfg.snapshot("vigil-snapshot")?;
    let started = now();
    let t0 = Instant::now();
    fsutil::ensure_private_dir(&cfg.state.dir)?;
    let _lock = RunLock::acquire(&cfg.state.dir.join("snapshot.lock")).map_err(|e| match e {
        LockError::Io(f) => RunError::Fs(f),
        held => RunError::Locked(held),
    })?;
    let run_id = vigil_core::id_time(started);
    let prepared = (|| -> Result<_, RunError> {
        fsutil::ensure_private_dir(&sc.dir)?;
        for m in cfg.members() {
            fsutil::ensure_private_dir(&local::member_dir(&sc.dir, &m.name))?;
        }
        let tls = cfg.tls().map(TlsMaterial::load).transpose()?;
        Ok((tls, build_sinks(cfg)?))
    })();
    let (tls, sinks) = match prepared {
        Ok(v) => v,
        Err(e) => return Err(could_not_run(cfg, &run_id, t0, e)),
    };

    let mut warnings = Vec::new();
    if sc.encryption == Encryption::None {
        let w = "encryption = \"none\": these archives hold every Kubernetes Secret in plaintext; set age_recipients".to_string();
        tracing::warn!("{w}");
        warnings.push(w);
    }

    let mut cleaned = Vec::new();
    for m in cfg.members() {
        let dir = local::member_dir(&sc.dir, &m.name);
        let leftovers = match local::cleanup_member(&dir) {
            Ok(l) => l,
            Err(e) => return Err(could_not_run(cfg, &run_id, t0, e.into())),
        };
        for p in leftovers {
            tracing::warn!(member = %m.name, "removed leftover of an interrupted run: {}", p.display());
            cleaned.push(p);
        }
    }

    for s in &sinks {
        for p in s.cleanup() {
            tracing::warn!(sink = %s.name(), "removed leftover of an interrupted run: {}", p.display());
            cleaned.push(p);
        }
    }

    let pin = load_pin(cfg, sc, &mut warnings);
    let proofs = Arc::new(crate::prove::Proofs::prepare(cfg, sc));
    if let crate::prove::Proofs::Broken { error, .. } = &*proofs {
        tracing::error!("restore proofs cannot run: {error}");
    }

    let ctx = Arc::new(Ctx {
        cluster: cfg.cluster_name().to_string(),
        run_id: run_id.clone(),
        root: sc.dir.clone(),
        tls,
        archive: ArchiveOptions {
            zstd_level: sc.zstd_level,
            zstd_threads: sc.zstd_threads,
            recipients: if sc.encryption == Encryption::Age {
                sc.recipients.clone()
            } else {
                Vec::new()
            },
        },
        recipients: if sc.encryption == Encryption::Age {
            sc.recipients.iter().map(|r| r.to_string()).collect()
        } else {
            Vec::new()
        },
        encrypted: sc.encryption == Encryption::Age,
        connect_timeout: sc.connect_timeout.get(),
        stall_timeout: sc.stall_timeout.get(),
        sinks: sinks.clone(),
        pin,
        versions: Default::default(),
        bounds: crate::gentle::Bounds::from_config(sc),
        deferred: Default::default(),
        proofs: proofs.clone(),
    });

    let mut tasks = Vec::new();
    for m in cfg.members() {
        let ctx = ctx.clone();
        let m = m.clone();
        let limit = sc.timeout.get();
        tasks.push(tokio::spawn(async move {
            member_with_timeout(ctx, m, limit).await
        }));
    }
    let mut members = Vec::new();
    let mut clients = Vec::new();
    for (t, m) in tasks.into_iter().zip(cfg.members()) {
        match t.await {
            Ok((rep, client)) => {
                members.push(rep);
                clients.push(client);
            }
            Err(e) => {
                members.push(failed_report(
                    m,
                    Stage::Stream,
                    format!("internal error: {e}"),
                    0,
                ));
                clients.push(None);
            }
        }
    }

    proofs.finish();
    let connected: Vec<&MemberClient> = clients.iter().flatten().collect();
    let consistency = if sc.verify_consistency && connected.len() >= 2 {
        let rep = check_consistency(&connected).await;
        for (name, why) in &rep.diverged {
            if let Some(m) = members.iter_mut().find(|m| &m.member == name) {
                tracing::error!(member = %name, "{why}");
                m.ok = false;
                m.stage = Stage::Consistency;
                m.error = Some(format!("member {name} diverged: {why}"));
            }
        }
        for n in &rep.notes {
            tracing::warn!("consistency: {n}");
        }
        for m in members
            .iter_mut()
            .filter(|m| m.stage == Stage::Consistency && m.archive.is_some())
        {
            quarantine(&sc.dir, &sinks, m).await;
        }
        Some(rep)
    } else {
        None
    };

    // Scrubs, drills and restores hold the archives lock shared while they
    // read; pruning under it never pulls an archive from under them. Readers
    // that take longer than PRUNE_WAIT only defer pruning to the next run:
    // nothing is lost by keeping an extra copy, so it is a warning, no alert.
    let lock_path = fsutil::ArchivesLock::path_in(&cfg.state.dir);
    let prune_lock = tokio::task::block_in_place(|| {
        fsutil::ArchivesLock::wait(
            &lock_path,
            fsutil::Access::Exclusive,
            Some(fsutil::PRUNE_WAIT),
            |h| {
                tracing::info!(
                    "waiting up to {}s for the drill/scrub holding {} ({}) before pruning",
                    fsutil::PRUNE_WAIT.as_secs(),
                    lock_path.display(),
                    fsutil::describe_holders(h)
                )
            },
        )
    });
    let prune_lock = match prune_lock {
        Ok(Some(l)) => Some(l),
        Ok(None) => {
            let w = format!(
                "pruning deferred to the next run: {} is still held by {} (a drill, scrub or restore reading archives) after {}s; the extra copies are kept",
                lock_path.display(),
                fsutil::describe_holders(&fsutil::lock_holders(&lock_path)),
                fsutil::PRUNE_WAIT.as_secs()
            );
            tracing::warn!("{w}");
            warnings.push(w);
            None
        }
        Err(e) => {
            let w = format!("pruning deferred to the next run: {e}");
            tracing::warn!("{w}");
            warnings.push(w);
            None
        }
    };

    // Prune only members whose new archive is stored, verified and consistent.
    for m in members.iter_mut().filter(|m| m.ok && prune_lock.is_some()) {
        let dir = local::member_dir(&sc.dir, &m.member);
        match local::prune_member(
            &dir,
            &sc.policy(),
            &cfg.state.dir,
            m.archive.as_slice(),
            false,
        ) {
            Ok(p) => m.pruned = p.into_iter().map(|s| s.archive_path).collect(),
            Err(e) => {
                m.ok = false;
                m.stage = Stage::Retention;
                m.error = Some(format!(
                    "member {}: pruning {}: {e}",
                    m.member,
                    dir.display()
                ));
            }
        }
    }

    if ctx.pin.is_none() {
        pin_from_run(cfg, &members, &mut warnings);
    }
    record_seen(cfg, &members, &mut warnings);

    let rke2_token = match &sc.rke2_token_file {
        Some(p) => {
            let entries = bootstrap_entries(&members, &clients).await;
            Some(archive_token(&ctx, sc, p, entries, &mut warnings))
        }
        None => None,
    };
    let mut sink_reports = Vec::new();
    // What this run made is never pruned from a sink either.
    let made: Vec<String> = members
        .iter()
        .filter_map(|m| m.manifest.as_ref().map(|x| x.archive.clone()))
        .collect();
    for sink in &sinks {
        let mode = if prune_lock.is_none() && sink.can_delete() {
            warnings.push(format!(
                "sink {}: pruning deferred to the next run (archives lock held); missing copies are still shipped",
                sink.name()
            ));
            Mode::Ship
        } else {
            Mode::ShipAndPrune
        };
        let mut rep = sync_sink(cfg, sink, mode, &made).await;
        for m in &members {
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
        sink_reports.push(rep);
    }
    drop(prune_lock);

    let mut report = RunReport {
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
    // Without its outcome records nothing alerts on this run: not ok.
    let recorded = match record_outcomes(&cfg.state.dir, &report) {
        Ok(()) => true,
        Err(e) => {
            report
                .warnings
                .push(format!("could not write outcome records: {e}"));
            false
        }
    };
    report.ok = recorded
        && report.members.iter().all(|m| m.ok)
        && report.sinks.iter().all(|s| s.ok)
        && report
            .rke2_token
            .as_ref()
            .is_none_or(|t| t.ok && t.bootstrap.as_ref().is_none_or(|b| b.ok));
    Ok(report)
}

fn failed_report(m: &MemberConfig, stage: Stage, error: String, ms: u64) -> MemberReport {
    MemberReport {
        member: m.name.clone(),
        endpoint: m.endpoint.clone(),
        ok: false,
        stage,
        error: Some(error),
        archive: None,
        manifest: None,
        pruned: Vec::new(),
        sinks: Vec::new(),
        duration_ms: ms,
        deferred: Vec::new(),
    }
}

async fn member_with_timeout(
    ctx: Arc<Ctx>,
    m: MemberConfig,
    limit: Duration,
) -> (MemberReport, Option<MemberClient>) {
    // Waiting for a turn is not the member's own time: snapshot.timeout starts after.
    let mut turn = ctx.bounds.turn();
    turn.take(&m.name).await;
    let t0 = Instant::now();
    let mut stage = Stage::Connect;
    let mut client = None;
    let mut uploads = Vec::new();
    let r = tokio::time::timeout(
        limit,
        snapshot_member(&ctx, &m, &mut stage, &mut client, &mut uploads, &mut turn),
    )
    .await;
    drop(turn);
    if r.is_err() {
        // The timed-out pipeline is dropped, so the sink uploads lose their
        // feed and abort; wait for that, or the process may exit first and
        // leave an incomplete multipart upload in the store.
        let until = tokio::time::Instant::now() + ABORT_GRACE;
        for (sink, h) in uploads.drain(..) {
            if tokio::time::timeout_at(until, h).await.is_err() {
                tracing::warn!(member = %m.name, sink = %sink.name(), "the upload did not abort within {ABORT_GRACE:?}");
            }
        }
    }
    let ms = t0.elapsed().as_millis() as u64;
    let mut rep = match r {
        Ok(Ok((path, manifest, sinks))) => {
            tracing::info!(member = %m.name, "archived {} ({})", path.display(), summary_of(&manifest));
            let proof_error = manifest.restore_proof.as_ref().filter(|_| manifest.proof_failed()).map(|p| {
                format!(
                    "member {} ({}): restore proof failed at check {}: {}; the archive is kept but does not count as a good copy",
                    m.name,
                    m.endpoint,
                    p.check.as_deref().unwrap_or("?"),
                    p.error.as_deref().unwrap_or_default()
                )
            });
            if let Some(e) = &proof_error {
                tracing::error!(member = %m.name, "{e}");
            }
            MemberReport {
                member: m.name.clone(),
                endpoint: m.endpoint.clone(),
                ok: proof_error.is_none(),
                stage: if proof_error.is_some() {
                    Stage::Proof
                } else {
                    Stage::Done
                },
                error: proof_error,
                archive: Some(path),
                manifest: Some(manifest),
                pruned: Vec::new(),
                sinks,
                duration_ms: ms,
                deferred: Vec::new(),
            }
        }
        Ok(Err(e)) => {
            tracing::error!(member = %m.name, stage = %stage, "{e}");
            failed_report(&m, stage, e, ms)
        }
        Err(_) => {
            let e = format!(
                "member {} ({}): gave up after snapshot.timeout = {} in stage {stage}",
                m.name,
                m.endpoint,
                humantime::format_duration(limit)
            );
            tracing::error!(member = %m.name, "{e}");
            failed_report(&m, stage, e, ms)
        }
    };
    if let Ok(mut d) = ctx.deferred.lock() {
        rep.deferred = d.remove(&m.name).unwrap_or_default();
    }
    (rep, client)
}

fn summary_of(m: &Manifest) -> String {
    format!(
        "revision {}, {} → {}, ratio {:.2}",
        m.revision,
        vigil_core::units::human_bytes(m.snapshot_size),
        vigil_core::units::human_bytes(m.archive_size),
        m.ratio()
    )
}

enum Msg {
    Chunk(Vec<u8>),
    End,
}

/// How long a timed-out member's sink uploads get to abort.
const ABORT_GRACE: Duration = Duration::from_secs(30);

type Upload = (Arc<Sink>, tokio::task::JoinHandle<Result<u64, SinkError>>);

/// The per-member pipeline. `stage` tracks where it is, for the outcome record.
/// `uploads` lives with the caller so that a timeout can still await them.
async fn snapshot_member(
    ctx: &Ctx,
    m: &MemberConfig,
    stage: &mut Stage,
    client_out: &mut Option<MemberClient>,
    uploads: &mut Vec<Upload>,
    turn: &mut crate::gentle::Turn,
) -> Result<(PathBuf, Manifest, Vec<SinkCopy>), String> {
    let id = format!("{}-{}-{}", ctx.cluster, m.name, ctx.run_id);
    let file = local::archive_name(&id, ctx.encrypted);
    // One upload per streaming sink, fed by the writer as it writes.
    let mut txs = Vec::new();
    for sink in ctx.sinks.iter().filter(|s| s.streams()) {
        let (tx, rx) = mpsc::channel::<SinkMsg>(8);
        let (s, member, f) = (sink.clone(), m.name.clone(), file.clone());
        uploads.push((
            sink.clone(),
            tokio::spawn(async move { s.upload_stream(&member, &f, rx).await }),
        ));
        txs.push(SinkTx {
            name: sink.name().to_string(),
            tx,
        });
    }
    let local = store_member(ctx, m, &id, stage, client_out, txs, turn).await;
    let (path, manifest, alive) = match local {
        Ok(v) => v,
        Err(e) => {
            // The senders are gone, so every upload aborts; wait for that.
            for (_, h) in uploads.drain(..) {
                let _ = h.await;
            }
            return Err(e);
        }
    };
    for o in &alive {
        let _ = o.tx.send(SinkMsg::Commit).await;
    }
    drop(alive);
    let mut copies = Vec::new();
    for (sink, h) in uploads.drain(..) {
        let r = match h.await {
            Ok(r) => r.map(|_| ()),
            Err(e) => Err(SinkError::Internal {
                sink: sink.name().to_string(),
                message: e.to_string(),
            }),
        };
        let r = match r {
            Ok(()) => match sink.verify(&m.name, &manifest).await {
                Ok(()) => sink.put_manifest(&m.name, &manifest).await,
                Err(e) => {
                    let _ = sink.delete(&m.name, &manifest.archive).await;
                    Err(e)
                }
            },
            Err(e) => Err(e),
        };
        if let Err(e) = &r {
            tracing::error!(member = %m.name, sink = %sink.name(), "{e}");
        }
        copies.push(SinkCopy {
            sink: sink.name().to_string(),
            ok: r.is_ok(),
            location: sink.location(&m.name, &manifest.archive),
            error: r.err().map(|e| e.to_string()),
        });
    }
    Ok((path, manifest, copies))
}

/// The local half: stream, verify, write, read back, commit, manifest.
async fn store_member(
    ctx: &Ctx,
    m: &MemberConfig,
    id: &str,
    stage: &mut Stage,
    client_out: &mut Option<MemberClient>,
    sink_txs: Vec<SinkTx>,
    turn: &mut crate::gentle::Turn,
) -> Result<(PathBuf, Manifest, Vec<SinkTx>), String> {
    let err = |e: &dyn std::fmt::Display| e.to_string();
    *stage = Stage::Connect;
    let client = vigil_etcd::connect(m, ctx.tls.as_ref(), ctx.connect_timeout)
        .await
        .map_err(|e| err(&e))?;
    *stage = Stage::Status;
    let st = vigil_etcd::status(&client).await.map_err(|e| err(&e))?;
    let cluster_id = format!("{:x}", st.cluster_id);
    if let Some(pin) = ctx.pin.as_ref().filter(|p| p.cluster_id != cluster_id) {
        // Checked before anything is streamed, stored or pruned for it.
        *stage = Stage::Consistency;
        return Err(format!(
            "member {} ({}) answers for etcd cluster ID {cluster_id}, but this bastion backs up cluster ID {} (pinned {} in {}): refused, nothing archived or pruned for it. Check the endpoint; if the cluster was rebuilt on purpose, run `vigil-snapshot repin`",
            m.name,
            m.endpoint,
            pin.cluster_id,
            pin.pinned_at,
            vigil_core::pin::FILE
        ));
    }
    *client_out = Some(client.clone());
    if !st.errors.is_empty() {
        tracing::warn!(member = %m.name, "member reports errors: {}", st.errors.join("; "));
    }
    if let Ok(mut v) = ctx.versions.lock() {
        v.insert(st.member_id, st.version.clone());
    }
    // What a restore rebuilds from (contract 6). Without it the archive is
    // still good: a restore then takes the peer URLs from the config.
    let listed = match vigil_etcd::member_list(&client).await {
        Ok(l) => Some(l),
        Err(e) => {
            tracing::warn!(member = %m.name, "{e}; this manifest records no membership, so a restore from it needs peer_url in the config or --peer-url");
            None
        }
    };

    // The preflight, before anything is streamed.
    let record = |why: String| {
        if let Ok(mut d) = ctx.deferred.lock() {
            d.entry(m.name.clone()).or_default().push(why);
        }
    };
    // The manifest's revision and key count are those of the status read
    // when the turn came, just before the stream: the status above may be
    // minutes old after a wait, and a count taken after a long stream can
    // find its revision compacted (the apiserver compacts every 5 minutes).
    let st = crate::gentle::wait_for_turn(&ctx.bounds, &client, turn, &record)
        .await
        .map_err(|e| e.to_string())?;
    let key_count = vigil_etcd::key_count(&client, st.revision)
        .await
        .map_err(|e| err(&e))?;

    let (tee, mut proof) = match ctx.proofs.start(&m.name, st.db_size).await {
        crate::prove::Start::Tee(t) => (Some(t), None),
        crate::prove::Start::Record(p) => (None, Some(*p)),
        crate::prove::Start::Off => (None, None),
    };
    // The proof compares at the snapshot's revision when it can; this
    // reading stands in should the member compact past it meanwhile.
    let before = match &tee {
        Some(_) => vigil_etcd::hash_kv(&client, st.revision)
            .await
            .map(|hash| vigil_restore::proof::Before {
                revision: st.revision,
                key_count,
                hash,
            })
            .map_err(|e| tracing::info!(member = %m.name, "restore proof: no reading before the stream: {e}"))
            .ok(),
        None => None,
    };

    *stage = Stage::Stream;
    let created = now();
    let t0 = Instant::now();
    let final_path =
        local::member_dir(&ctx.root, &m.name).join(local::archive_name(id, ctx.encrypted));
    let (tx, rx) = mpsc::channel::<Msg>(16);
    let opts = ctx.archive.clone();
    let fp = final_path.clone();
    let writer = tokio::task::spawn_blocking(move || write_archive(rx, &fp, &opts, sink_txs, tee));

    let streamed = stream_into(ctx, &client, &tx).await;
    // What the member pays for ends with its stream: the next one may start.
    turn.give_back();
    if streamed.is_ok() {
        let _ = tx.send(Msg::End).await;
    }
    drop(tx);
    let written = writer
        .await
        .map_err(|e| format!("member {}: archive writer crashed: {e}", m.name))?;
    // A failed stream explains a failed writer (the writer only saw the channel close).
    streamed?;
    let (verified, written, alive, tee) = written.map_err(|(s, e)| {
        *stage = s;
        format!("member {} ({}): {e}", m.name, m.endpoint)
    })?;

    *stage = Stage::Write;
    if let Err(e) = fsutil::commit_rename(&written.tmp, &final_path) {
        let _ = std::fs::remove_file(&written.tmp);
        return Err(format!("member {}: {e}", m.name));
    }
    // The snapshot's own time, without the proof's.
    let took = t0.elapsed();
    if let Some(tee) = tee {
        *stage = Stage::Proof;
        let p = ctx
            .proofs
            .prove(
                tee,
                &client,
                ctx.tls.as_ref(),
                ctx.connect_timeout,
                before,
                st.version.clone(),
            )
            .await;
        if p.result == vigil_core::manifest::ProofResult::Proven {
            tracing::info!(
                member = %m.name,
                "restore proven: revision {}, {} keys, hash_kv {} as the member's{}",
                p.revision.unwrap_or_default(),
                p.key_count.unwrap_or_default(),
                p.hash_kv.unwrap_or_default(),
                if p.peers_agree.is_empty() { String::new() } else { format!(" and {}'s", p.peers_agree.join(", ")) }
            );
        }
        proof = Some(p);
    }
    *stage = Stage::Manifest;
    let mut manifest = build_manifest(
        ctx,
        m,
        &st,
        listed.as_deref(),
        id,
        &final_path,
        &verified,
        &written,
        key_count,
        created,
        took,
    );
    if let Some(p) = proof {
        if p.result == vigil_core::manifest::ProofResult::Proven {
            manifest.restore_proven_at = Some(rfc3339(now()));
        }
        manifest.restore_proof = Some(p);
    }
    let mpath = Manifest::path_for(&final_path);
    if let Err(e) = fsutil::atomic_write(&mpath, &manifest.to_json()) {
        // Without its manifest the archive does not count; do not leave it.
        let _ = std::fs::remove_file(&final_path);
        return Err(format!("member {}: {e}", m.name));
    }
    Ok((final_path, manifest, alive))
}

/// Reads the member's stream and hands each blob to the writer thread
/// without copying it. A member that goes quiet for stall_timeout is dropped.
async fn stream_into(
    ctx: &Ctx,
    client: &MemberClient,
    tx: &mpsc::Sender<Msg>,
) -> Result<(), String> {
    let name = &client.name;
    let ep = &client.endpoint;
    let stall = ctx.stall_timeout;
    let stalled = |what: &str| {
        format!(
            "member {name} ({ep}): no {what} for {} (snapshot.stall_timeout); the member is slow, overloaded or cut off",
            humantime::format_duration(stall)
        )
    };
    let mut c = client.client.clone();
    let mut stream = match tokio::time::timeout(stall, c.snapshot()).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            return Err(format!(
                "member {name} ({ep}): opening the snapshot stream: {e}"
            ))
        }
        Err(_) => return Err(stalled("answer to the snapshot request")),
    };
    let mut total = 0u64;
    let t0 = Instant::now();
    let mut last_log = Instant::now();
    loop {
        let msg = match tokio::time::timeout(stall, stream.message()).await {
            Ok(Ok(Some(m))) => m,
            Ok(Ok(None)) => break,
            Ok(Err(e)) => {
                return Err(format!(
                    "member {name} ({ep}): snapshot stream broke after {total} bytes: {e} (the member died or the connection was cut)"
                ))
            }
            Err(_) => return Err(stalled("data")),
        };
        let mut msg = msg;
        let blob = std::mem::take(&mut msg.0.blob);
        total += blob.len() as u64;
        if tx.send(Msg::Chunk(blob)).await.is_err() {
            // The writer stopped; its own error says why.
            return Ok(());
        }
        if let Some(rate) = ctx.bounds.rate {
            tokio::time::sleep(crate::gentle::pace(total, rate, t0.elapsed())).await;
        }
        if last_log.elapsed() >= Duration::from_secs(10) {
            last_log = Instant::now();
            let rate = total as f64 / t0.elapsed().as_secs_f64().max(0.001);
            tracing::info!(member = %name, "streamed {} ({}/s)", vigil_core::units::human_bytes(total), vigil_core::units::human_bytes(rate as u64));
        }
    }
    Ok(())
}

type WriteResult =
    Result<(Verified, Written, Vec<SinkTx>, Option<crate::prove::Tee>), (Stage, String)>;

/// The blocking half: verify, compress, encrypt, write (and fan out), read back.
fn write_archive(
    mut rx: mpsc::Receiver<Msg>,
    final_path: &Path,
    opts: &ArchiveOptions,
    sinks: Vec<SinkTx>,
    mut tee: Option<crate::prove::Tee>,
) -> WriteResult {
    let werr = |e: ArchiveError| (Stage::Write, e.to_string());
    let mut w = ArchiveWriter::create_with_sinks(final_path, opts, sinks).map_err(werr)?;
    let mut v = SnapshotVerifier::new();
    loop {
        match rx.blocking_recv() {
            Some(Msg::Chunk(c)) => {
                v.update(&c);
                w.write(&c).map_err(werr)?;
                if let Some(t) = &mut tee {
                    t.write(&c);
                }
            }
            Some(Msg::End) => break,
            None => return Err((Stage::Stream, "snapshot stream aborted".into())),
        }
    }
    let verified = v.finish().map_err(|e| (Stage::Verify, e.to_string()))?;
    let (written, alive) = w.finish().map_err(werr)?;
    if let Err(e) = verify_readback(&written) {
        let _ = std::fs::remove_file(&written.tmp);
        return Err((Stage::Readback, e.to_string()));
    }
    Ok((verified, written, alive, tee))
}

#[allow(clippy::too_many_arguments)]
fn build_manifest(
    ctx: &Ctx,
    m: &MemberConfig,
    st: &MemberStatus,
    listed: Option<&[ListedMember]>,
    id: &str,
    path: &Path,
    v: &Verified,
    w: &Written,
    key_count: i64,
    created: time::OffsetDateTime,
    took: Duration,
) -> Manifest {
    Manifest {
        format: manifest::FORMAT,
        id: id.to_string(),
        cluster: ctx.cluster.clone(),
        cluster_id: format!("{:x}", st.cluster_id),
        member: m.name.clone(),
        member_id: format!("{:x}", st.member_id),
        endpoint: m.endpoint.clone(),
        revision: st.revision,
        raft_index: st.raft_index,
        raft_term: st.raft_term,
        etcd_version: st.version.clone(),
        db_size: st.db_size,
        db_size_in_use: st.db_size_in_use,
        leader: format!("{:x}", st.leader),
        is_leader: st.leader == st.member_id,
        key_count,
        snapshot_size: v.total,
        snapshot_sha256: hex::encode(v.stream_sha256),
        db_sha256: hex::encode(v.db_sha256),
        archive: path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        archive_size: w.size,
        archive_sha256: w.sha256.clone(),
        compression: "zstd".into(),
        zstd_level: ctx.archive.zstd_level,
        encryption: if ctx.encrypted {
            "age".into()
        } else {
            "none".into()
        },
        age_recipients: ctx.recipients.clone(),
        created_at: rfc3339(created),
        duration_ms: took.as_millis() as u64,
        verified_at: Some(rfc3339(now())),
        vigil_version: vigil_core::VERSION.into(),
        quarantined: None,
        membership: listed.map(|l| {
            let versions = ctx.versions.lock().map(|v| v.clone()).unwrap_or_default();
            membership(&versions, st, l)
        }),
        restore_proven_at: None,
        restore_proof: None,
    }
}

/// The member list as recorded, with the versions this run has seen.
fn membership(
    versions: &std::collections::HashMap<u64, String>,
    st: &MemberStatus,
    listed: &[ListedMember],
) -> Membership {
    Membership {
        cluster_id: format!("{:x}", st.cluster_id),
        members: listed
            .iter()
            .map(|l| RecordedMember {
                id: format!("{:x}", l.id),
                name: l.name.clone(),
                peer_urls: l.peer_urls.clone(),
                client_urls: l.client_urls.clone(),
                is_learner: l.is_learner,
                etcd_version: if l.id == st.member_id {
                    Some(st.version.clone())
                } else {
                    versions.get(&l.id).cloned()
                },
            })
            .collect(),
    }
}

async fn check_consistency(clients: &[&MemberClient]) -> ConsistencyReport {
    let statuses = join_each(clients, |c| async move { vigil_etcd::status(&c).await }).await;
    let mut answers: Vec<(MemberClient, MemberStatus)> = Vec::new();
    let mut notes = Vec::new();
    for (c, s) in clients.iter().zip(statuses) {
        match s {
            Ok(s) => answers.push(((*c).clone(), s)),
            Err(e) => notes.push(format!("{}: status unavailable: {e}", c.name)),
        }
    }
    let revision = answers.iter().map(|(_, s)| s.revision).min().unwrap_or(0);
    let answered: Vec<&MemberClient> = answers.iter().map(|(c, _)| c).collect();
    let hashes = join_each(&answered, move |c| async move {
        vigil_etcd::hash_kv(&c, revision).await
    })
    .await;
    let members: Vec<MemberHash> = answers
        .iter()
        .zip(hashes)
        .map(|((c, s), h)| MemberHash {
            member: c.name.clone(),
            cluster_id: format!("{:x}", s.cluster_id),
            revision,
            hash: h.as_ref().ok().map(|h| h.hash),
            compact_revision: h.as_ref().ok().map(|h| h.compact_revision),
            error: h.as_ref().err().map(|e| e.to_string()),
        })
        .collect();
    let (diverged, mut judged_notes) = consistency::judge(&members);
    notes.append(&mut judged_notes);
    ConsistencyReport {
        ok: diverged.is_empty(),
        revision,
        members,
        diverged,
        notes,
    }
}

/// Runs `f` for every member concurrently and returns the answers in order.
async fn join_each<T, F, Fut>(clients: &[&MemberClient], f: F) -> Vec<Result<T, String>>
where
    T: Send + 'static,
    F: Fn(MemberClient) -> Fut,
    Fut: std::future::Future<Output = Result<T, vigil_etcd::EtcdError>> + Send + 'static,
{
    let handles: Vec<_> = clients
        .iter()
        .map(|c| tokio::spawn(f((*c).clone())))
        .collect();
    let mut out = Vec::with_capacity(handles.len());
    for h in handles {
        out.push(match h.await {
            Ok(r) => r.map_err(|e| e.to_string()),
            Err(e) => Err(format!("internal error: {e}")),
        });
    }
    out
}

/// The `/bootstrap/` entries at the revision of the first member archived.
async fn bootstrap_entries(
    members: &[MemberReport],
    clients: &[Option<MemberClient>],
) -> Result<rke2_bootstrap::Entries, String> {
    let (m, c) = members
        .iter()
        .zip(clients)
        .find_map(|(m, c)| Some((m.manifest.as_ref().filter(|_| m.ok)?, c.as_ref()?)))
        .ok_or("no member was snapshotted")?;
    // Compacted past the snapshot's revision already: the newest will do.
    match vigil_etcd::prefix_at(c, rke2_bootstrap::PREFIX, m.revision).await {
        Ok(v) => Ok(v),
        Err(_) => vigil_etcd::prefix_at(c, rke2_bootstrap::PREFIX, 0)
            .await
            .map_err(|e| e.to_string()),
    }
}

/// Keeps the RKE2 server token, encrypted, beside the snapshots, and proves
/// it opens the cluster's bootstrap data.
fn archive_token(
    ctx: &Ctx,
    sc: &SnapshotConfig,
    src: &Path,
    bootstrap: Result<rke2_bootstrap::Entries, String>,
    warnings: &mut Vec<String>,
) -> TokenReport {
    let dir = sc.dir.join("rke2");
    let path = dir.join(format!("{}-server-token.age", ctx.cluster));
    let token = vigil_core::secret::read_secret_file(&vigil_core::secret::resolve_path(src));
    let r = token.as_ref().map_err(|e| e.to_string()).and_then(|token| {
        fsutil::ensure_private_dir(&dir).map_err(|e| e.to_string())?;
        let sealed =
            vigil_archive::encrypt_small(token.expose().as_bytes(), &ctx.archive.recipients)
                .map_err(|e| e.to_string())?;
        fsutil::atomic_write(&path, &sealed).map_err(|e| e.to_string())
    });
    let check = match (&token, bootstrap) {
        (Err(_), _) => None,
        (Ok(_), Err(e)) => {
            warnings.push(format!(
                "the RKE2 server token was not proven against the bootstrap data: reading {}: {e}",
                rke2_bootstrap::PREFIX
            ));
            None
        }
        (Ok(t), Ok(entries)) => match rke2_bootstrap::check(t.expose(), &entries) {
            Ok(o) => Some(BootstrapCheck {
                ok: true,
                key: Some(o.key),
                error: None,
            }),
            Err(rke2_bootstrap::BootstrapError::NoEntry) => {
                warnings.push(format!(
                    "{} ({}): {}",
                    src.display(),
                    "snapshot.rke2_token_file",
                    rke2_bootstrap::BootstrapError::NoEntry
                ));
                None
            }
            Err(e) => {
                let e = format!("the RKE2 server token in {}: {e}", src.display());
                tracing::error!("{e}");
                Some(BootstrapCheck {
                    ok: false,
                    key: None,
                    error: Some(e),
                })
            }
        },
    };
    match r {
        Ok(()) => TokenReport {
            ok: true,
            path,
            error: None,
            bootstrap: check,
        },
        Err(e) => {
            tracing::error!("archiving the RKE2 server token: {e}");
            TokenReport {
                ok: false,
                path,
                error: Some(e),
                bootstrap: check,
            }
        }
    }
}

fn record_outcomes(state: &Path, r: &RunReport) -> Result<(), FsError> {
    let base = Outcome {
        proof: None,
        job: "snapshot".into(),
        run_id: r.run_id.clone(),
        cluster: r.cluster.clone(),
        subject: String::new(),
        ok: true,
        stage: Stage::Done,
        error: None,
        archive: None,
        time: rfc3339(now()),
        duration_ms: 0,
    };
    for m in &r.members {
        outcome::record(
            state,
            &Outcome {
                subject: m.member.clone(),
                ok: m.ok,
                stage: m.stage,
                error: m.error.clone(),
                archive: m.archive.as_ref().map(|p| p.display().to_string()),
                duration_ms: m.duration_ms,
                proof: m.manifest.as_ref().and_then(|x| x.restore_proof.clone()),
                ..base.clone()
            },
        )?;
    }
    for s in &r.sinks {
        outcome::record(
            state,
            &Outcome {
                job: "sink".into(),
                subject: s.sink.clone(),
                ok: s.ok,
                stage: if s.ok { Stage::Done } else { Stage::Ship },
                error: (!s.ok).then(|| format!("sink {}: {}", s.sink, s.errors.join("; "))),
                ..base.clone()
            },
        )?;
    }
    if let Some(t) = &r.rke2_token {
        outcome::record(
            state,
            &Outcome {
                subject: "rke2-token".into(),
                ok: t.ok,
                stage: if t.ok { Stage::Done } else { Stage::Token },
                error: t.error.clone(),
                archive: Some(t.path.display().to_string()),
                ..base.clone()
            },
        )?;
        if let Some(b) = &t.bootstrap {
            outcome::record(
                state,
                &Outcome {
                    subject: "rke2-bootstrap".into(),
                    ok: b.ok,
                    stage: if b.ok { Stage::Done } else { Stage::Token },
                    error: b.error.clone(),
                    archive: b.key.clone(),
                    ..base
                },
            )?;
        }
    }
    Ok(())
}

/// The newest revision the members' statuses reported this run, for sizing
/// a restore's revision bump (vigil_core::seen). After the pin is settled,
/// so a first run records its own cluster.
fn record_seen(cfg: &Config, members: &[MemberReport], warnings: &mut Vec<String>) {
    let seen: Vec<vigil_core::seen::Observation> = members
        .iter()
        .filter_map(|m| m.manifest.as_ref())
        .map(|m| vigil_core::seen::Observation {
            cluster_id: m.cluster_id.clone(),
            revision: m.revision,
            member: m.member.clone(),
            endpoint: m.endpoint.clone(),
        })
        .collect();
    if seen.is_empty() {
        return;
    }
    let r = tokio::task::block_in_place(|| {
        vigil_core::seen::record(&cfg.state.dir, "vigil-snapshot", &seen)
    });
    match r {
        Ok(r) => tracing::debug!("revision seen: {r:?}"),
        Err(e) => {
            let w = format!("could not record the newest revision seen: {e}");
            tracing::warn!("{w}");
            warnings.push(w);
        }
    }
}

/// The pin, or one learnt from the verified archives already here (an
/// upgrade from a vigil without pins). A corrupt pin file is reported and
/// left for the administrator; the run goes on unpinned.
fn load_pin(cfg: &Config, sc: &SnapshotConfig, warnings: &mut Vec<String>) -> Option<ClusterPin> {
    match pin::load(&cfg.state.dir) {
        Ok(Some(p)) => return Some(p),
        Ok(None) => {}
        Err(e) => {
            tracing::error!("{e}");
            warnings.push(e.to_string());
            return None;
        }
    }
    let stored: Vec<local::LocalArchive> = cfg
        .members()
        .flat_map(|m| local::list_member(&local::member_dir(&sc.dir, &m.name)))
        .collect();
    let id = pin::majority(stored.iter().map(|s| &s.manifest))?;
    let p = ClusterPin::new(cfg.cluster_name(), &id, "existing archives");
    save_pin(cfg, &p, warnings);
    Some(p)
}

/// Pins the cluster ID once a majority of the configured members archived
/// it in this run and agreed on it.
fn pin_from_run(cfg: &Config, members: &[MemberReport], warnings: &mut Vec<String>) {
    let good: Vec<&Manifest> = members
        .iter()
        .filter(|m| m.ok)
        .filter_map(|m| m.manifest.as_ref())
        .collect();
    let Some(id) = pin::majority(good.iter().copied()) else {
        return;
    };
    let agree = good.iter().filter(|m| m.cluster_id == id).count();
    if agree * 2 > cfg.members().count() {
        save_pin(
            cfg,
            &ClusterPin::new(cfg.cluster_name(), &id, "run"),
            warnings,
        );
    }
}

fn save_pin(cfg: &Config, p: &ClusterPin, warnings: &mut Vec<String>) {
    match pin::save(&cfg.state.dir, p) {
        Ok(()) => tracing::info!(
            "pinned etcd cluster ID {} ({}); a member of another cluster will be refused",
            p.cluster_id,
            p.source
        ),
        Err(e) => warnings.push(format!("could not pin the cluster ID: {e}")),
    }
}

/// Moves a diverged member's new archive out of its member directory and
/// removes the copies streamed to sinks: it must never count as a verified
/// copy, displace a good one or be restored by default. It stays on the
/// bastion, marked, for whoever investigates.
async fn quarantine(root: &Path, sinks: &[Arc<Sink>], m: &mut MemberReport) {
    let (Some(path), Some(man)) = (m.archive.clone(), m.manifest.clone()) else {
        return;
    };
    let why = m.error.clone().unwrap_or_else(|| "diverged".into());
    let dir = root.join(QUARANTINE_DIR).join(&m.member);
    let moved = (|| -> Result<PathBuf, FsError> {
        fsutil::ensure_private_dir(&root.join(QUARANTINE_DIR))?;
        fsutil::ensure_private_dir(&dir)?;
        let to = dir.join(&man.archive);
        let mut q = man.clone();
        q.verified_at = None;
        q.quarantined = Some(why.clone());
        fsutil::atomic_write(&Manifest::path_for(&to), &q.to_json())?;
        std::fs::rename(&path, &to).map_err(|e| FsError::new("quarantining", &path, e))?;
        let old = Manifest::path_for(&path);
        std::fs::remove_file(&old).map_err(|e| FsError::new("removing", &old, e))?;
        if let Some(p) = path.parent() {
            fsutil::fsync_dir(p)?;
        }
        fsutil::fsync_dir(&dir)?;
        m.manifest = Some(q);
        Ok(to)
    })();
    match moved {
        Ok(to) => {
            tracing::error!(member = %m.member, "quarantined {}: {why}", to.display());
            m.error = Some(format!(
                "{why}; its archive is quarantined in {} (not verified, never counted or restored by default)",
                to.display()
            ));
            m.archive = Some(to);
        }
        Err(e) => {
            // Still on disk in the member dir: at least make it unverified.
            let mut q = man.clone();
            q.verified_at = None;
            q.quarantined = Some(why.clone());
            let _ = fsutil::atomic_write(&Manifest::path_for(&path), &q.to_json());
            m.manifest = Some(q);
            m.error = Some(format!("{why}; quarantining its archive failed: {e}"));
        }
    }
    for c in m.sinks.iter_mut().filter(|c| c.ok) {
        let Some(sink) = sinks.iter().find(|s| s.name() == c.sink) else {
            continue;
        };
        c.ok = false;
        c.error = Some(match sink.delete(&m.member, &man.archive).await {
            Ok(()) => "removed: the member diverged".into(),
            Err(e) => format!("the member diverged, and removing this copy failed: {e}"),
        });
    }
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
            job: "snapshot".into(),
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn membership_records_every_member_and_the_versions_seen() {
        let st = MemberStatus {
            cluster_id: 0xc1,
            member_id: 0xa,
            revision: 9,
            raft_term: 2,
            raft_index: 12,
            raft_applied_index: 12,
            version: "3.5.16".into(),
            db_size: 1,
            db_size_in_use: 1,
            leader: 0xa,
            is_learner: false,
            errors: vec![],
            db_size_quota: 0,
        };
        let l = |id: u64, name: &str, learner: bool| ListedMember {
            id,
            name: name.into(),
            peer_urls: vec![format!("https://10.0.0.{id}:2380")],
            client_urls: vec![format!("https://10.0.0.{id}:2379")],
            is_learner: learner,
        };
        let listed = [
            l(0xa, "cp-1", false),
            l(0xb, "cp-2", false),
            l(0xc, "", true),
        ];
        // cp-2's status came in first; the learner's never did.
        let versions = [(0xb, "3.5.15".to_string())].into_iter().collect();
        let m = membership(&versions, &st, &listed);
        assert_eq!(m.cluster_id, "c1");
        let got: Vec<(&str, &str, Option<&str>, bool)> = m
            .members
            .iter()
            .map(|x| {
                (
                    x.id.as_str(),
                    x.name.as_str(),
                    x.etcd_version.as_deref(),
                    x.is_learner,
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("a", "cp-1", Some("3.5.16"), false),
                ("b", "cp-2", Some("3.5.15"), false),
                ("c", "", None, true),
            ]
        );
        assert_eq!(m.members[1].peer_urls, ["https://10.0.0.11:2380"]);
    }
}
