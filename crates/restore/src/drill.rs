//! `vigil-restore drill`: proves on a schedule that the archives restore.
//!
//! For each member: take its newest verified archive, fetch and verify it,
//! check it offline (`snapshot status`), restore it into a scratch
//! single-member etcd on free loopback ports, start that etcd, and check the
//! revision (at least the manifest's), the key count at the manifest's
//! revision (equal to the manifest's), and read sample keys back. Then tear
//! everything down. The time from the start of the fetch to a member that
//! answers with the right data is the measured RTO. Every member gets an
//! outcome record (job `drill`) for alerting.

use crate::identity::Identities;
use crate::source::{Catalog, Selector, Source};
use crate::RestoreError;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use vigil_core::config::MemberConfig;
use vigil_core::outcome::{self, Outcome, Stage};
use vigil_core::Config;

#[derive(Debug)]
pub struct DrillOptions<'a> {
    /// Overrides `restore.drill_identity_file`.
    pub identity: Option<&'a Path>,
    pub source: Option<&'a str>,
    pub member: Option<&'a str>,
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
    /// Fetch + verify + restore + start + checks: the measured recovery time.
    pub rto_ms: Option<u64>,
    pub duration_ms: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct DrillReport {
    pub run_id: String,
    pub ok: bool,
    pub members: Vec<MemberDrill>,
}

/// Runs the drill for every configured member (or one) and records outcomes.
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
    let sources = crate::source::only(crate::source::configured(cfg), o.source)?;
    let cat = crate::source::catalog_of(cfg, &sources);
    let root = rc
        .scratch_dir
        .clone()
        .unwrap_or_else(|| cfg.state.dir.join("drill"));
    vigil_core::fsutil::ensure_private_dir(&root)?;
    let run_id = crate::id_time(vigil_core::now());
    let mut out = Vec::new();
    for m in members {
        let scratch = tempfile::Builder::new()
            .prefix(&format!("{}-", m.name))
            .tempdir_in(&root)
            .map_err(|e| vigil_core::fsutil::FsError::new("creating scratch dir in", &root, e))?;
        let ctx = Ctx {
            tool: &tool,
            ids: &ids,
            sources: &sources,
            cat: &cat,
            etcd_bin: &rc.etcd_bin,
            sample_keys: rc.drill_sample_keys,
            timeout: rc.drill_timeout.get(),
        };
        let r = drill_member(&ctx, &m.name, scratch.path());
        drop(scratch);
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
        let rec = Outcome {
            job: "drill".into(),
            run_id: run_id.clone(),
            cluster: cfg.cluster_name().to_string(),
            subject: r.member.clone(),
            ok: r.ok,
            stage: r.stage,
            error: r.error.clone(),
            archive: r.archive.clone(),
            time: vigil_core::rfc3339(vigil_core::now()),
            duration_ms: r.rto_ms.unwrap_or(r.duration_ms),
        };
        if let Err(e) = outcome::record(&cfg.state.dir, &rec) {
            tracing::error!("writing the drill outcome record: {e}");
        }
        out.push(r);
    }
    Ok(DrillReport {
        run_id,
        ok: out.iter().all(|r| r.ok),
        members: out,
    })
}

struct Ctx<'a> {
    tool: &'a crate::etcd::Tool,
    ids: &'a Identities,
    sources: &'a [Box<dyn Source>],
    cat: &'a Catalog,
    etcd_bin: &'a Path,
    sample_keys: u32,
    timeout: Duration,
}

/// Kills the scratch etcd when the drill is over, however it ends.
struct Scratch {
    child: Child,
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Two distinct free loopback ports: both listeners are held until both are
/// known, so the kernel cannot hand out the same port twice.
fn free_ports() -> Result<(u16, u16), String> {
    let bind = || {
        std::net::TcpListener::bind("127.0.0.1:0")
            .map_err(|e| format!("finding a free loopback port: {e}"))
    };
    let (a, b) = (bind()?, bind()?);
    let port = |l: &std::net::TcpListener| {
        l.local_addr()
            .map(|a| a.port())
            .map_err(|e| format!("finding a free loopback port: {e}"))
    };
    Ok((port(&a)?, port(&b)?))
}

fn log_tail(p: &Path) -> String {
    let s = std::fs::read_to_string(p).unwrap_or_default();
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(5)..].join(" | ")
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
    let fetched = crate::fetch::fetch(archive, ctx.sources, Some(ctx.ids), &snap).map_err(|e| {
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
    let mut a = crate::proc::argv(&ctx.tool.bin, ["snapshot", "status"]);
    a.push(snap.clone().into());
    a.push("-w".into());
    a.push("json".into());
    let env: &[(&str, &str)] = if ctx.tool.kind == "etcdctl" {
        &[("ETCDCTL_API", "3")]
    } else {
        &[]
    };
    let out = crate::proc::run(&a, env).map_err(|e| (Stage::Verify, e.to_string()))?;
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).map_err(|e| {
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

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| (Stage::Connect, format!("starting the async runtime: {e}")))?;
    // The free ports are only probed: something else on the bastion can bind
    // one before the scratch etcd does. Start over on other ports then.
    let data = dir.join("data");
    let mut attempt = 1;
    let (scratch, mut c) = loop {
        match start_scratch(ctx, &rt, &snap, dir, &data, deadline) {
            Err((_, e)) if attempt < 3 && e.contains("address already in use") => {
                tracing::warn!(member, "scratch etcd: {e}; retrying on other ports");
                let _ = std::fs::remove_dir_all(&data);
                attempt += 1;
            }
            res => break res?,
        }
    };
    let _ = std::fs::remove_file(&snap);

    // Checks against the manifest.
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

/// Restores `snap` into a scratch single-member etcd on free loopback ports
/// and waits until it answers.
fn start_scratch(
    ctx: &Ctx<'_>,
    rt: &tokio::runtime::Runtime,
    snap: &Path,
    dir: &Path,
    data: &Path,
    deadline: Instant,
) -> Result<(Scratch, etcd_client::Client), (Stage, String)> {
    let (cp, pp) = free_ports().map_err(|e| (Stage::Write, e))?;
    let client = format!("http://127.0.0.1:{cp}");
    let peer = format!("http://127.0.0.1:{pp}");
    let ic = format!("drill={peer}");
    crate::etcd::restore_member(ctx.tool, snap, "drill", data, &ic, "vigil-drill", &peer, 0)
        .map_err(|e| (Stage::Write, e.to_string()))?;

    let log = dir.join("etcd.log");
    let logf = std::fs::File::create(&log).map_err(|e| (Stage::Connect, e.to_string()))?;
    let child = Command::new(ctx.etcd_bin)
        .args(["--name", "drill", "--data-dir"])
        .arg(data)
        .args([
            "--listen-client-urls",
            &client,
            "--advertise-client-urls",
            &client,
            "--listen-peer-urls",
            &peer,
            "--initial-advertise-peer-urls",
            &peer,
            "--initial-cluster",
            &ic,
            "--initial-cluster-token",
            "vigil-drill",
            "--initial-cluster-state",
            "new",
            "--log-level",
            "warn",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(logf)
        .spawn()
        .map_err(|e| {
            (
                Stage::Connect,
                format!("starting {}: {e}", ctx.etcd_bin.display()),
            )
        })?;
    let mut scratch = Scratch { child };
    let c = rt.block_on(async {
        loop {
            if let Ok(Some(st)) = scratch.child.try_wait() {
                return Err((
                    Stage::Connect,
                    format!(
                        "the scratch etcd exited ({st}) before it answered: {}",
                        log_tail(&log)
                    ),
                ));
            }
            let opts = etcd_client::ConnectOptions::new()
                .with_connect_timeout(Duration::from_secs(2))
                .with_timeout(Duration::from_secs(5));
            if let Ok(mut c) = etcd_client::Client::connect([client.as_str()], Some(opts)).await {
                if matches!(c.status().await, Ok(s) if s.leader() != 0) {
                    return Ok(c);
                }
            }
            if Instant::now() > deadline {
                return Err((
                    Stage::Connect,
                    format!(
                        "the scratch etcd did not answer within restore.drill_timeout ({:?}): {}",
                        ctx.timeout,
                        log_tail(&log)
                    ),
                ));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })?;
    Ok((scratch, c))
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
    s
}

/// Where drills put their scratch dirs by default.
pub fn default_scratch(cfg: &Config) -> PathBuf {
    cfg.state.dir.join("drill")
}
