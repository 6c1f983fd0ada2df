//! `vigil-restore drill`: proves on a schedule that the archives restore.
//!
//! For each member: take its newest verified archive, fetch and verify it,
//! check it offline (`snapshot status`), restore it into a scratch
//! single-member etcd that listens only on unix sockets in the run's private
//! (0700) scratch dir, start that etcd, and check the
//! revision (at least the manifest's), the key count at the manifest's
//! revision (equal to the manifest's), and read sample keys back. Then tear
//! everything down. The time from the start of the fetch to a member that
//! answers with the right data is the measured RTO. Every member gets an
//! outcome record (job `drill`) for alerting.
//!
//! Nothing decrypted outlives the drill (issue 14): the scratch etcd and the
//! restore tools are tied to the drill (`PR_SET_PDEATHSIG`, see
//! [`crate::guard`]); a janitor process removes the run's scratch dir and
//! raises `restore_drill_failed` for the member in progress if the drill is
//! killed or stopped; and each drill first reaps what a dead earlier run left
//! in the scratch root (leftover processes included), reporting it the same way.

use crate::identity::Identities;
use crate::select::Selector;
use crate::stores::Stores;
use crate::RestoreError;
use serde::Serialize;
use std::path::Path;
use std::time::{Duration, Instant};
use vigil_archive::catalog::Catalog;
use vigil_core::cmd::Cmd;
use vigil_core::config::MemberConfig;
use vigil_core::outcome::{self, Outcome, Stage};
use vigil_core::Config;

mod journal;
mod run_dir;
pub use journal::JournalDrill;
use run_dir::RunDir;

#[derive(Debug)]
pub struct DrillOptions<'a> {
    /// Overrides `restore.drill_identity_file`.
    pub identity: Option<&'a Path>,
    pub source: Option<&'a str>,
    pub member: Option<&'a str>,
    /// `--no-journal`: leave out the proof of the journal.
    pub no_journal: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct MemberDrill {
    pub member: String,
    pub ok: bool,
    pub stage: Stage,
    pub error: Option<String>,
    pub archive: Option<String>,
    pub source: Option<String>,
    pub manifest_revision: Option<i64>,
    pub restored_revision: Option<i64>,
    pub manifest_key_count: Option<i64>,
    pub restored_key_count: Option<i64>,
    pub sample_keys_read: usize,
    /// The etcd that made the snapshot (its manifest).
    pub snapshot_etcd_version: Option<String>,
    /// What restored the snapshot, e.g. `etcdctl 3.4.23`.
    pub tool: String,
    /// The scratch etcd's version (`restore.etcd_bin --version`).
    pub etcd_version: Option<String>,
    /// Set when the tool or the scratch etcd is not of the snapshot's
    /// major.minor: the drill then proves less.
    pub version_note: Option<String>,
    /// Fetch + verify + restore + start + checks: the measured recovery time.
    pub rto_ms: Option<u64>,
    pub duration_ms: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct DrillReport {
    pub run_id: String,
    pub ok: bool,
    pub members: Vec<MemberDrill>,
    /// The proof of the journal, when `[journal]` is configured (and the
    /// drill is not of one member).
    pub journal: Option<JournalDrill>,
}

/// Runs the drill for every configured member (or one) and records outcomes.
/// The subject of the journal proof's outcome record and alert.
pub const JOURNAL: &str = "journal";

pub fn run(cfg: &Config, o: &DrillOptions<'_>) -> Result<DrillReport, RestoreError> {
    let rc = cfg.restore();
    let key = o
        .identity
        .map(Path::to_path_buf)
        .or_else(|| {
            rc.drill_identity_file
                .as_deref()
                .map(vigil_core::secret::resolve_path)
        })
        .ok_or_else(|| {
            RestoreError::Usage(
                "a drill needs a private key on this host: set restore.drill_identity_file to a separate drill key \
                 whose public key is in snapshot.age_recipients (see README, \"The drill key\"), or give --identity"
                    .into(),
            )
        })?;
    let ids = Identities::load(&key)?;
    let tool = crate::etcd::detect_tool(&rc)?;
    let etcd_version = crate::versions::etcd_version(&rc.etcd_bin);
    tracing::info!(
        "drill tools: {} {} restores, etcd {} serves ({})",
        tool.kind,
        tool.version,
        etcd_version.as_deref().unwrap_or("(version unknown)"),
        rc.etcd_bin.display()
    );
    let members: Vec<&MemberConfig> = cfg
        .members()
        .filter(|m| o.member.is_none_or(|x| x == m.name))
        .collect();
    if members.is_empty() {
        return Err(RestoreError::Usage(format!(
            "no configured member is called {:?}",
            o.member.unwrap_or_default()
        )));
    }
    let stores = Stores::configured(cfg).only(o.source)?;
    let cat = stores.catalog(&cfg.state.dir);
    let root = rc
        .scratch_dir
        .clone()
        .unwrap_or_else(|| cfg.state.dir.join("drill"));
    // Absolute: the scratch etcd runs in its dir, the janitor gets the path.
    let root = std::path::absolute(&root)
        .map_err(|e| vigil_core::fsutil::FsError::new("resolving", &root, e))?;
    let run_id = vigil_core::id_time(vigil_core::now());
    let run = RunDir::create(cfg, &root, &run_id)?;
    // The member in progress, on a terminal its bar: stage and elapsed time.
    let board = vigil_core::progress::Board::new();
    let task: std::cell::RefCell<Option<vigil_core::progress::Task>> = Default::default();
    let stage = |st: Stage| {
        run.at(st);
        if let Some(t) = task.borrow().as_ref() {
            t.stage(&st.to_string());
        }
    };
    let ctx = Ctx {
        tool: &tool,
        ids: &ids,
        stores: &stores,
        cat: &cat,
        etcd_bin: &rc.etcd_bin,
        etcd_version: etcd_version.as_deref(),
        sample_keys: rc.drill_sample_keys,
        timeout: rc.drill_timeout.get(),
        stage: &stage,
    };
    let record = |subject: &str,
                  ok: bool,
                  stage: Stage,
                  error: Option<String>,
                  archive: Option<String>,
                  ms: u64| {
        let rec = Outcome {
            proof: None,
            job: vigil_core::jobs::Source::Drill,
            run_id: run_id.clone(),
            cluster: cfg.cluster_name().to_string(),
            subject: subject.to_string(),
            ok,
            stage,
            error,
            archive,
            time: vigil_core::rfc3339(vigil_core::now()),
            duration_ms: ms,
        };
        if let Err(e) = outcome::record(&cfg.state.dir, &rec) {
            tracing::error!("writing the drill outcome record: {e}");
        }
    };
    let mut out = Vec::new();
    for m in members {
        let scratch = run.member(&m.name)?;
        *task.borrow_mut() = Some(board.task(&m.name, None));
        let r = drill_member(&ctx, &m.name, &scratch);
        if let Some(t) = task.borrow_mut().take() {
            t.finish(if r.ok { "ok" } else { "FAILED" });
        }
        run.member_done(&scratch);
        if r.ok {
            tracing::info!(
                "drill {}: archive {} restored and checked in {} ms (RTO), revision {} keys {}",
                r.member,
                r.archive.as_deref().unwrap_or_default(),
                r.rto_ms.unwrap_or_default(),
                r.restored_revision.unwrap_or_default(),
                r.restored_key_count.unwrap_or_default()
            );
        } else {
            tracing::error!(
                "drill {} failed at {}: {}",
                r.member,
                r.stage,
                r.error.as_deref().unwrap_or_default()
            );
        }
        record(
            &r.member,
            r.ok,
            r.stage,
            r.error.clone(),
            r.archive.clone(),
            r.rto_ms.unwrap_or(r.duration_ms),
        );
        out.push(r);
    }
    let journal = (o.member.is_none() && !o.no_journal && journal::wanted(cfg, o.source))
        .then(|| -> Result<JournalDrill, RestoreError> {
            let scratch = run.member(JOURNAL)?;
            let j = journal::prove(cfg, &ctx, o.source, &scratch);
            run.member_done(&scratch);
            if let Some(why) = &j.skipped {
                // Not proven is not failed: no outcome, no alert.
                tracing::warn!("drill journal: not proven here: {why}");
                return Ok(j);
            }
            if j.ok {
                tracing::info!(
                    "drill journal: archive {} + {} revisions from {} replayed to revision {}, equal to the live cluster in all {} keys; RPO proven {:.1} s",
                    j.archive.as_deref().unwrap_or_default(),
                    j.revisions_replayed,
                    j.source.as_deref().unwrap_or_default(),
                    j.target_revision.unwrap_or_default(),
                    j.keys_compared,
                    j.rpo_seconds.unwrap_or_default()
                );
            } else {
                tracing::error!(
                    "drill journal failed at {}: {}",
                    j.stage,
                    j.error.as_deref().unwrap_or_default()
                );
            }
            record(JOURNAL, j.ok, j.stage, j.error.clone(), j.archive.clone(), j.duration_ms);
            Ok(j)
        })
        .transpose()?;
    run.finish();
    Ok(DrillReport {
        run_id,
        ok: out.iter().all(|r| r.ok) && journal.as_ref().is_none_or(|j| j.ok),
        members: out,
        journal,
    })
}

struct Ctx<'a> {
    tool: &'a crate::etcd::Tool,
    ids: &'a Identities,
    stores: &'a Stores,
    cat: &'a Catalog,
    etcd_bin: &'a Path,
    etcd_version: Option<&'a str>,
    sample_keys: u32,
    timeout: Duration,
    /// Tells the run which stage the member is at, for the record left to the janitor.
    stage: &'a dyn Fn(Stage),
}

fn drill_member(ctx: &Ctx<'_>, member: &str, dir: &Path) -> MemberDrill {
    let started = Instant::now();
    let mut r = MemberDrill {
        member: member.to_string(),
        ok: false,
        stage: Stage::Stream,
        error: None,
        archive: None,
        source: None,
        manifest_revision: None,
        restored_revision: None,
        manifest_key_count: None,
        restored_key_count: None,
        sample_keys_read: 0,
        snapshot_etcd_version: None,
        tool: format!("{} {}", ctx.tool.kind, ctx.tool.version),
        etcd_version: ctx.etcd_version.map(str::to_string),
        version_note: None,
        rto_ms: None,
        duration_ms: 0,
    };
    let res = steps(ctx, member, dir, &mut r, started);
    r.duration_ms = started.elapsed().as_millis() as u64;
    match res {
        Ok(()) => {
            r.ok = true;
            r.stage = Stage::Done;
        }
        Err((stage, e)) => {
            r.stage = stage;
            r.error = Some(e);
        }
    }
    r
}

fn steps(
    ctx: &Ctx<'_>,
    member: &str,
    dir: &Path,
    r: &mut MemberDrill,
    started: Instant,
) -> Result<(), (Stage, String)> {
    let deadline = started + ctx.timeout;
    let archive = Selector {
        member: Some(member.to_string()),
        ..Default::default()
    }
    .select(ctx.cat)
    .map_err(|e| (Stage::Stream, e.to_string()))?;
    let m = &archive.manifest;
    r.archive = Some(archive.id.clone());
    r.manifest_revision = Some(m.revision);
    r.manifest_key_count = Some(m.key_count);
    r.snapshot_etcd_version = Some(m.etcd_version.clone());
    r.version_note =
        crate::versions::scratch_note("drill", &m.etcd_version, ctx.tool, ctx.etcd_version);
    if let Some(n) = &r.version_note {
        tracing::warn!("drill {member}: {n}");
    }
    if m.encryption == "age" {
        let pubs = ctx.ids.public_keys();
        if !pubs.iter().any(|p| m.age_recipients.contains(p)) {
            return Err((
                Stage::Verify,
                format!(
                    "archive {} is not encrypted to the drill key {} ({}); add its public key to snapshot.age_recipients, \
                     the next snapshots will then be drillable",
                    archive.id,
                    ctx.ids.origin,
                    pubs.join(", ")
                ),
            ));
        }
    }

    // Fetch and verify.
    let snap = dir.join("snapshot.db");
    let fetched = crate::fetch::fetch(archive, ctx.stores, Some(ctx.ids), &snap).map_err(|e| {
        let stage = match e {
            RestoreError::Corrupt { .. }
            | RestoreError::WrongKey { .. }
            | RestoreError::AllCopiesFailed { .. }
            | RestoreError::Failed(_) => Stage::Verify,
            _ => Stage::Stream,
        };
        (stage, e.to_string())
    })?;
    r.source = Some(fetched.source.clone());

    // Offline check: bbolt consistency, revision.
    (ctx.stage)(Stage::Verify);
    let mut a = vigil_core::cmd::argv(&ctx.tool.bin, ["snapshot", "status"]);
    a.push(snap.clone().into());
    a.push("-w".into());
    a.push("json".into());
    let env: &[(&str, &str)] = if ctx.tool.kind == "etcdctl" {
        &[("ETCDCTL_API", "3")]
    } else {
        &[]
    };
    let out = crate::guard::tie(Cmd::argv(&a).envs(env))
        .run_blocking()
        .map_err(|e| (Stage::Verify, e.to_string()))?;
    let status: serde_json::Value = serde_json::from_str(&out.stdout).map_err(|e| {
        (
            Stage::Verify,
            format!("reading `snapshot status` output: {e}"),
        )
    })?;
    let offline_rev = status["revision"].as_i64().unwrap_or_default();
    if offline_rev < m.revision {
        return Err((
            Stage::Verify,
            format!(
                "the snapshot holds revision {offline_rev}, older than the manifest's {}",
                m.revision
            ),
        ));
    }

    let rt = vigil_core::runtime::current_thread().map_err(|e| (Stage::Connect, e.to_string()))?;
    let data = dir.join("data");
    let spec = crate::scratch::Spec {
        tool: ctx.tool,
        etcd_bin: ctx.etcd_bin,
        name: "drill",
        timeout: ctx.timeout,
        timeout_key: "restore.drill_timeout",
        extra_args: &[],
    };
    let (scratch, mut c) =
        crate::scratch::start(&spec, &rt, &snap, dir, &data, deadline, ctx.stage)?;
    let _ = std::fs::remove_file(&snap);

    // Checks against the manifest.
    (ctx.stage)(Stage::Consistency);
    let cons = |e: String| (Stage::Consistency, e);
    rt.block_on(async {
        use etcd_client::GetOptions;
        let all = || GetOptions::new().with_all_keys();
        let latest = c
            .get(vec![0u8], Some(all().with_count_only()))
            .await
            .map_err(|e| cons(format!("counting keys: {e}")))?;
        let rev = latest.header().map(|h| h.revision()).unwrap_or_default();
        r.restored_revision = Some(rev);
        if rev < m.revision {
            return Err(cons(format!(
                "restored revision {rev} is older than the manifest's {}",
                m.revision
            )));
        }
        let at = c
            .get(
                vec![0u8],
                Some(all().with_count_only().with_revision(m.revision)),
            )
            .await
            .map_err(|e| cons(format!("counting keys at revision {}: {e}", m.revision)))?;
        r.restored_key_count = Some(at.count());
        if at.count() != m.key_count {
            return Err(cons(format!(
                "{} keys at revision {} after restore, but the manifest counted {}",
                at.count(),
                m.revision,
                m.key_count
            )));
        }
        let want = (ctx.sample_keys as i64).min(latest.count());
        let sample = c
            .get(vec![0u8], Some(all().with_limit(want)))
            .await
            .map_err(|e| cons(format!("reading sample keys: {e}")))?;
        if (sample.kvs().len() as i64) < want {
            return Err(cons(format!(
                "read {} sample keys, expected {want}",
                sample.kvs().len()
            )));
        }
        for kv in sample.kvs() {
            let one = c
                .get(kv.key(), None)
                .await
                .map_err(|e| cons(format!("reading key {:?}: {e}", kv.key_str())))?;
            let ok = one
                .kvs()
                .first()
                .is_some_and(|x| x.value() == kv.value() && x.mod_revision() == kv.mod_revision());
            if !ok {
                return Err(cons(format!(
                    "key {:?} did not read back the same",
                    kv.key_str().unwrap_or("<binary>")
                )));
            }
            r.sample_keys_read += 1;
        }
        Ok(())
    })?;
    r.rto_ms = Some(started.elapsed().as_millis() as u64);
    drop(scratch);
    Ok(())
}

/// The human summary of a drill.
pub fn human(r: &DrillReport) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{:<10} {:<6} {:<36} {:>10} {:>10} {:>8} {:>9}  ERROR",
        "MEMBER", "RESULT", "ARCHIVE", "REVISION", "KEYS", "SAMPLES", "RTO"
    );
    for m in &r.members {
        let _ = writeln!(
            s,
            "{:<10} {:<6} {:<36} {:>10} {:>10} {:>8} {:>9}  {}",
            m.member,
            if m.ok { "ok" } else { "FAILED" },
            m.archive.as_deref().unwrap_or("-"),
            m.restored_revision
                .map(|x| x.to_string())
                .unwrap_or_else(|| "-".into()),
            m.restored_key_count
                .map(|x| x.to_string())
                .unwrap_or_else(|| "-".into()),
            m.sample_keys_read,
            m.rto_ms
                .map(|x| format!("{:.1}s", x as f64 / 1000.0))
                .unwrap_or_else(|| "-".into()),
            match &m.error {
                Some(e) => format!("at {}: {e}", m.stage),
                None => String::new(),
            }
        );
    }
    for m in &r.members {
        if let Some(snap) = &m.snapshot_etcd_version {
            let _ = writeln!(
                s,
                "{}: snapshot of etcd {snap}, restored with {}, served by etcd {}",
                m.member,
                m.tool,
                m.etcd_version.as_deref().unwrap_or("(version unknown)")
            );
        }
        if let Some(n) = &m.version_note {
            let _ = writeln!(s, "{}: note: {n}", m.member);
        }
    }
    if let Some(j) = &r.journal {
        let src = j.source.as_deref().unwrap_or("-");
        if let Some(why) = &j.skipped {
            let _ = writeln!(s, "journal: not proven here: {why}");
        } else if j.ok {
            let _ = writeln!(
                s,
                "journal: ok: archive {} (revision {}) + {} revision(s), {} event(s) from {} segment(s) in {src}, replayed to revision {} \
                 (received {}), equal to the live cluster (member {}) in all {} keys; RPO proven {:.1} s",
                j.archive.as_deref().unwrap_or("-"),
                j.snapshot_revision.unwrap_or_default(),
                j.revisions_replayed,
                j.events_replayed,
                j.segments,
                j.target_revision.unwrap_or_default(),
                j.target_received_at.as_deref().unwrap_or("-"),
                j.live_member.as_deref().unwrap_or("-"),
                j.keys_compared,
                j.rpo_seconds.unwrap_or_default()
            );
        } else {
            let _ = writeln!(
                s,
                "journal: FAILED at {} (journal in {src}): {}",
                j.stage,
                j.error.as_deref().unwrap_or_default()
            );
        }
    }
    s
}
