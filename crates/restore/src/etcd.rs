//! `vigil-restore etcd`: one ready data directory per configured member in
//! `DIR/<member>/`, restored from the same verified snapshot with the
//! member's own name and peer URL and the same `--initial-cluster` and
//! `--initial-cluster-token` (contract 4), plus the exact start commands.
//!
//! The peer URLs come from the membership the archive's manifest recorded
//! (contract 6), overridden per member by `--peer-url NAME=URL` or the
//! config's `peer_url`. [`plan_members`] (`etcd/plan.rs`) checks them all
//! before anything runs or is written.

use crate::RestoreError;
use serde::Serialize;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use vigil_core::cmd::render;
use vigil_core::config::MemberConfig;

mod plan;
pub use crate::tool::{detect_tool, restore_argv, restore_member, MemberRestore, Tool};
pub use plan::{
    check_ports_free, parse_peer_flag, plan_members, PeerFlagError, PeerFrom, Plan, PlannedMember,
};

/// One restored member and how to start it.
#[derive(Debug, Clone, Serialize)]
pub struct RestoredMember {
    pub name: String,
    pub data_dir: PathBuf,
    pub client_url: String,
    /// Comma-separated when the member has several.
    pub peer_url: String,
    pub peer_url_from: PeerFrom,
    /// The exact start command, as argv.
    pub command: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct EtcdReport {
    pub archive: String,
    /// What the membership check noticed without refusing.
    pub notes: Vec<String>,
    pub member_of_archive: String,
    pub revision: i64,
    /// The etcd that made the snapshot (its manifest).
    pub snapshot_etcd_version: String,
    /// `restore.etcd_bin --version` when it runs on this host (the printed
    /// start commands use it).
    pub etcd_version: Option<String>,
    pub source: String,
    pub tool: Tool,
    pub initial_cluster: String,
    pub initial_cluster_token: String,
    /// `--bump-revision` passed (with `--mark-compacted`); none with `--no-bump`.
    pub bumped_revision: Option<u64>,
    /// How the bump was sized, from what evidence, and whether it is applied.
    pub bump: crate::bump::BumpPlan,
    pub tls: bool,
    pub members: Vec<RestoredMember>,
    /// `--to-revision`/`--to-time`: the journal replayed onto the archive.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub point: Option<crate::pitr::PointReport>,
}

/// The `--initial-cluster` value for all members.
pub fn initial_cluster(members: &[PlannedMember]) -> String {
    members
        .iter()
        .flat_map(|m| m.peer_urls.iter().map(move |u| format!("{}={u}", m.name)))
        .collect::<Vec<_>>()
        .join(",")
}

/// The command that starts a member on its restored directory.
pub fn start_command(
    etcd_bin: &Path,
    m: &PlannedMember,
    data_dir: &Path,
    initial_cluster: &str,
    token: &str,
) -> Vec<String> {
    let ep = m.client_url.clone();
    let peer = m.peer_url();
    vec![
        etcd_bin.display().to_string(),
        "--name".into(),
        m.name.clone(),
        "--data-dir".into(),
        data_dir.display().to_string(),
        "--listen-client-urls".into(),
        ep.clone(),
        "--advertise-client-urls".into(),
        ep,
        "--listen-peer-urls".into(),
        peer.clone(),
        "--initial-advertise-peer-urls".into(),
        peer,
        "--initial-cluster".into(),
        initial_cluster.into(),
        "--initial-cluster-token".into(),
        token.into(),
        "--initial-cluster-state".into(),
        "new".into(),
    ]
}

/// Human text: what was done and the exact commands to run next.
pub fn human(r: &EtcdReport) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "restored archive {} (member {}, revision {}, from {}) with {} {}{}",
        r.archive,
        r.member_of_archive,
        r.revision,
        r.source,
        r.tool.kind,
        r.tool.version,
        match (&r.bump.replayed, r.bumped_revision) {
            (Some(p), Some(b)) => format!(
                ", revision bumped by {b} by replay through a scratch etcd (revision {} -> {}, compacted)",
                p.from_revision, p.to_revision
            ),
            (None, Some(b)) => format!(", --bump-revision {b} --mark-compacted"),
            _ => String::new(),
        }
    );
    if r.bump.applied {
        let _ = writeln!(s, "revision bump: {}", r.bump.describe());
    } else {
        let _ = writeln!(
            s,
            "WARNING: restored WITHOUT a revision bump (--no-bump): the data starts at the snapshot's revision {}; \
             it should have been bumped by {}",
            r.revision,
            r.bump.describe()
        );
    }
    for n in r.notes.iter().chain(&r.bump.notes) {
        let _ = writeln!(s, "note: {n}");
    }
    if let Some(p) = &r.point {
        let _ = write!(s, "{}", crate::pitr::human(p));
    }
    let _ = writeln!(s, "initial cluster: {}", r.initial_cluster);
    let _ = writeln!(s, "cluster token:   {}", r.initial_cluster_token);
    let _ = writeln!(
        s,
        "etcd versions: snapshot {}, restore tool {} {}, start commands {}",
        r.snapshot_etcd_version,
        r.tool.kind,
        r.tool.version,
        r.etcd_version
            .as_deref()
            .map(|v| format!("etcd {v}"))
            .unwrap_or_else(|| "etcd (not run on this host)".into())
    );
    let _ = writeln!(
        s,
        "\nMake sure every old member has exited. Then start each member on its own host with its restored directory\n\
         (copy it there first if this is not that host, e.g. `rsync -a DIR/<member>/ <host>:/var/lib/etcd/` and use that path):"
    );
    for m in &r.members {
        let args: Vec<OsString> = m.command.iter().map(OsString::from).collect();
        let from = match m.peer_url_from {
            PeerFrom::Flag => "--peer-url",
            PeerFrom::Config => "config peer_url",
            PeerFrom::Manifest => "the archive's membership",
            PeerFrom::Guess => "endpoint host, port 2380",
        };
        let _ = writeln!(
            s,
            "\n# {} ({}; peer URL {} from {from})",
            m.name,
            m.data_dir.display(),
            m.peer_url
        );
        let _ = writeln!(s, "{}", render(&args));
    }
    if r.tls {
        let _ = writeln!(
            s,
            "\nThe endpoints use https: add the member's usual TLS flags to each command \
             (--cert-file, --key-file, --trusted-ca-file, --client-cert-auth, --peer-cert-file, --peer-key-file, \
             --peer-trusted-ca-file, --peer-client-cert-auth)."
        );
    }
    let eps: Vec<&str> = r.members.iter().map(|m| m.client_url.as_str()).collect();
    let _ = writeln!(
        s,
        "\nThen check: ETCDCTL_API=3 etcdctl --endpoints {} endpoint status -w table",
        eps.join(",")
    );
    // Kubernetes on top: caches hold the pre-restore state until restarted.
    let _ = writeln!(
        s,
        "\nOnce every member is healthy, restart every kube-apiserver (their watch caches re-list), then every kubelet \
         (it drops pod state newer than the snapshot){}",
        if r.bump.applied {
            "; clients that resume a watch get \"required revision has been compacted\" and re-list."
        } else {
            ". Without the bump this is not optional: until they restart, they serve objects newer than the restored data."
        }
    );
    s
}

/// What `vigil-restore etcd` was asked to do.
#[derive(Debug)]
pub struct EtcdOptions<'a> {
    pub out: &'a Path,
    pub identities: Option<&'a crate::identity::Identities>,
    pub selector: crate::select::Selector,
    pub source: Option<&'a str>,
    /// `--initial-cluster-token`; default `<cluster>-restored-<time>`.
    pub token: Option<String>,
    pub keep_snapshot: bool,
    pub skip_port_check: bool,
    /// `--peer-url NAME=URL`: overrides the record and the config.
    pub peer_urls: Vec<(String, String)>,
    /// `--drop-member NAME`: restore without this recorded member.
    pub drop_members: Vec<String>,
    /// `--no-bump`: restore at the snapshot's revision, accepting stale
    /// Kubernetes watch caches (needed when no etcdutl 3.5.10+ is at hand).
    pub no_bump: bool,
    /// `--to-revision`/`--to-time`: replay the journal up to a point.
    pub point: Option<crate::pitr::PointOptions>,
}

/// Fetches and verifies the chosen archive once, then restores it once per member.
pub fn run(cfg: &vigil_core::Config, o: &EtcdOptions<'_>) -> Result<EtcdReport, RestoreError> {
    let configured: Vec<&MemberConfig> = cfg.members().collect();
    let rc = cfg.restore();
    // Absolute, so the printed commands work from any directory.
    let out_abs = std::path::absolute(o.out)
        .map_err(|e| vigil_core::fsutil::FsError::new("resolving", o.out, e))?;
    let o = &EtcdOptions {
        out: &out_abs,
        identities: o.identities,
        selector: o.selector.clone(),
        source: o.source,
        token: o.token.clone(),
        keep_snapshot: o.keep_snapshot,
        skip_port_check: o.skip_port_check,
        peer_urls: o.peer_urls.clone(),
        drop_members: o.drop_members.clone(),
        no_bump: o.no_bump,
        point: o.point.clone(),
    };
    if o.out.exists() {
        let non_empty = std::fs::read_dir(o.out)
            .map(|mut d| d.next().is_some())
            .unwrap_or(true);
        if non_empty {
            return Err(RestoreError::Usage(format!(
                "target {} is not empty; vigil-restore writes only into an empty or new directory, so nothing is overwritten",
                o.out.display()
            )));
        }
    }
    let stores = crate::stores::Stores::configured(cfg).only(o.source)?;
    let cat = stores.catalog(&cfg.state.dir);
    let rt = vigil_core::runtime::multi_thread(Some(2))
        .map_err(|e| RestoreError::Failed(format!("starting the runtime: {e}")))?;
    let journal_sinks = match &o.point {
        Some(_) => vigil_journal::ship::journal_sinks(cfg)
            .map_err(|e| RestoreError::Usage(e.to_string()))?,
        None => Vec::new(),
    };
    // A point first finds the journal that reaches it: the archive is the
    // newest at or before the revision it resolves to.
    let journal = match &o.point {
        Some(p) => Some(rt.block_on(crate::pitr::open(
            cfg,
            &journal_sinks,
            o.source,
            o.identities,
            p,
        ))?),
        None => None,
    };
    let selector = match &journal {
        Some(j) => crate::select::Selector {
            revision: Some(o.selector.revision.map_or(j.target, |r| r.min(j.target))),
            ..o.selector.clone()
        },
        None => o.selector.clone(),
    };
    let archive = selector.select(&cat)?;
    // Before anything runs (not even `etcdctl version`) or is written.
    let plan = plan_members(
        &configured,
        archive.manifest.membership.as_ref(),
        &archive.id,
        &o.peer_urls,
        &o.drop_members,
    )?;
    let members = &plan.members;
    if !o.skip_port_check {
        check_ports_free(members)?;
    }
    let tool = detect_tool(&rc)?;
    let etcd_version = crate::versions::etcd_version(&rc.etcd_bin);
    let version_note = crate::versions::restore_note(
        &archive.manifest.etcd_version,
        &tool,
        etcd_version.as_deref(),
    );
    if let Some(n) = &version_note {
        tracing::warn!("{n}");
    }
    // Sized and checked before anything is written: a tool that cannot bump
    // is refused here, not by an unknown flag after the fetch.
    let mut bump = crate::bump::plan(
        &cfg.state.dir,
        journal
            .as_ref()
            .map_or(archive.manifest.revision, |j| j.target),
        &archive.manifest.cluster_id,
        rc.bump_revision,
    );
    if o.no_bump {
        bump.applied = false;
        bump.method = crate::bump::Method::None;
        tracing::warn!(
            "--no-bump: restoring at the snapshot's revision; it should have been bumped by {}",
            bump.describe()
        );
    } else if !tool.can_bump() {
        bump = bump
            .by_replay()
            .ok_or_else(|| RestoreError::Usage(bump.refusal(&tool)))?;
        tracing::info!(
            "{} {} cannot bump offline: replaying the revision bump through a scratch etcd ({}): {}",
            tool.kind,
            tool.version,
            rc.etcd_bin.display(),
            bump.describe()
        );
    } else {
        tracing::info!("revision bump {}", bump.describe());
    }
    tracing::info!(
        "restoring archive {} (member {}, revision {}, {}) with {} {}",
        archive.id,
        archive.member,
        archive.manifest.revision,
        archive.manifest.created_at,
        tool.kind,
        tool.version
    );
    vigil_core::fsutil::ensure_private_dir(o.out)?;
    let snapshot = o.out.join(format!("{}.db", archive.id));
    // Killed mid-way (kill -9, SIGTERM), the janitor leaves the target as
    // empty as an error does: no plaintext snapshot, no half data dir.
    let mut janitor = crate::guard::Janitor::spawn(None)
        .map_err(|e| RestoreError::Failed(format!("starting the janitor: {e}")))?;
    // The replayed bump's scratch etcd and its snapshot; short, for the socket path.
    let bump_dir = o.out.join(".bump");
    let point_dir = o.out.join(".pitr");
    let mut guarded = vec![
        snapshot.clone(),
        vigil_core::fsutil::partial_path(&snapshot),
        bump_dir.clone(),
        point_dir.clone(),
    ];
    for m in members {
        let d = o.out.join(&m.name);
        guarded.push(vigil_core::fsutil::partial_path(&d));
        guarded.push(d);
    }
    for p in &guarded {
        janitor
            .guard(p)
            .map_err(|e| RestoreError::Failed(format!("briefing the janitor: {e}")))?;
    }
    // On a terminal: where the restore is, and each member's data dir.
    let board = vigil_core::progress::Board::new();
    let overall = board.task("restore", None);
    overall.stage("fetch");
    let fetched = crate::fetch::fetch(archive, &stores, o.identities, &snapshot)?;
    let token = o.token.clone().unwrap_or_else(|| {
        format!(
            "{}-restored-{}",
            cfg.cluster_name(),
            vigil_core::id_time(vigil_core::now())
        )
    });
    let ic = initial_cluster(members);
    // The base the members are restored from: the fetched snapshot, or the
    // one saved after the journal's replay up to the point.
    let mut point = None;
    let (base, base_verified, base_expect) = match (&o.point, &journal) {
        (Some(p), Some(j)) => {
            overall.stage("replay");
            let pit = point_dir.join("point.db");
            let r = vigil_core::fsutil::ensure_private_dir(&point_dir)
                .map_err(RestoreError::from)
                .and_then(|()| {
                    crate::pitr::replay(
                        &tool,
                        &rc.etcd_bin,
                        &snapshot,
                        &point_dir,
                        &archive.id,
                        j,
                        o.identities,
                        p,
                        &pit,
                        &rt,
                    )
                });
            match r {
                Ok(r) => {
                    let expect = crate::bump::Expect {
                        revision: r.target_revision,
                        key_count: r.key_count,
                    };
                    tracing::info!("{}", crate::pitr::human(&r).trim_end());
                    point = Some(r);
                    (pit, false, expect)
                }
                Err(e) => {
                    let _ = std::fs::remove_dir_all(&point_dir);
                    let _ = std::fs::remove_file(&snapshot);
                    return Err(e);
                }
            }
        }
        _ => (
            snapshot.clone(),
            true,
            crate::bump::Expect {
                revision: archive.manifest.revision,
                key_count: archive.manifest.key_count,
            },
        ),
    };
    // Fetch verified `snapshot`; the replay's bumped snapshot is checked by
    // the tool alone (its own sha256 trailer), so it keeps the tool's check.
    let (restore_from, verified, bump_by) = match bump.method {
        crate::bump::Method::Etcdutl => (base.clone(), base_verified, bump.size),
        crate::bump::Method::Replay => {
            overall.stage("bump");
            let bumped = bump_dir.join("bumped.db");
            let r = vigil_core::fsutil::ensure_private_dir(&bump_dir)
                .map_err(RestoreError::from)
                .and_then(|()| {
                    crate::bump::replay(
                        &tool,
                        &rc.etcd_bin,
                        &base,
                        &bump_dir,
                        bump.size,
                        base_expect,
                        &bumped,
                    )
                });
            match r {
                Ok(r) => bump.replayed = Some(r),
                Err(e) => {
                    let _ = std::fs::remove_dir_all(&bump_dir);
                    let _ = std::fs::remove_file(&snapshot);
                    return Err(e);
                }
            }
            if !o.keep_snapshot {
                let _ = std::fs::remove_file(&snapshot);
            }
            (bumped, false, 0)
        }
        crate::bump::Method::None => (base.clone(), base_verified, 0),
    };
    overall.stage("data dirs");
    // The members' data dirs are independent: restore them side by side.
    let results: Vec<Result<RestoredMember, RestoreError>> = std::thread::scope(|sc| {
        let handles: Vec<_> = members
            .iter()
            .map(|m| {
                let (tool, snapshot, ic, token, rc) = (&tool, &restore_from, &ic, &token, &rc);
                let task = board.task(&m.name, None);
                task.stage("data dir");
                sc.spawn(move || {
                    let dir = o.out.join(&m.name);
                    restore_member(&MemberRestore {
                        tool,
                        snapshot,
                        verified,
                        name: &m.name,
                        data_dir: &dir,
                        initial_cluster: ic,
                        token,
                        peer_url: &m.peer_url(),
                        bump_revision: bump_by,
                    })
                    .inspect_err(|_| task.finish("FAILED"))?;
                    task.finish("ready");
                    tracing::info!("member {}: data dir {} ready", m.name, dir.display());
                    Ok(RestoredMember {
                        name: m.name.clone(),
                        command: start_command(&rc.etcd_bin, m, &dir, ic, token),
                        data_dir: dir,
                        client_url: m.client_url.clone(),
                        peer_url: m.peer_url(),
                        peer_url_from: m.from,
                    })
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|_| {
                    Err(RestoreError::Failed("a member's restore panicked".into()))
                })
            })
            .collect()
    });
    let mut restored = Vec::new();
    let mut result = Ok(());
    for r in results {
        match r {
            Ok(m) => restored.push(m),
            Err(e) if result.is_ok() => result = Err(e),
            Err(e) => tracing::error!("{e}"),
        }
    }
    if !o.keep_snapshot || result.is_err() {
        let _ = std::fs::remove_file(&snapshot);
    }
    let _ = std::fs::remove_dir_all(&bump_dir);
    let _ = std::fs::remove_dir_all(&point_dir);
    if result.is_err() {
        // Leave the target as empty as it was, so a rerun is possible.
        for r in &restored {
            let _ = std::fs::remove_dir_all(&r.data_dir);
        }
    }
    overall.finish(if result.is_ok() { "done" } else { "FAILED" });
    result?;
    janitor.done();
    Ok(EtcdReport {
        archive: archive.id.clone(),
        notes: plan.notes.into_iter().chain(version_note).collect(),
        member_of_archive: archive.member.clone(),
        revision: archive.manifest.revision,
        snapshot_etcd_version: archive.manifest.etcd_version.clone(),
        etcd_version,
        source: fetched.source,
        tool,
        initial_cluster: ic,
        initial_cluster_token: token,
        bumped_revision: bump.applied.then_some(bump.size),
        bump,
        tls: cfg.tls().is_some(),
        members: restored,
        point,
    })
}

#[cfg(test)]
mod tests;
