//! Restore to a point (`--to-revision R`, `--to-time T`): the newest
//! archive at or before the point, restored into a scratch etcd; the
//! journal replayed onto it from the snapshot's actual revision R0 + 1 up to
//! R, one transaction per original revision, so that every revision, mod
//! revision, create revision and version comes back as it was; then saved
//! as the snapshot the members are restored from, exactly as without a point.
//!
//! Leases: the watch carries the lease ID a key was put with, not the lease.
//! A lease the snapshot holds is used as it is; a lease granted after the
//! snapshot is granted again in the scratch etcd with its ID and
//! `--lease-ttl` (default 1 h; granting a lease writes no revision), so the
//! keys attached to it (Kubernetes events, leader leases) still expire.

use crate::identity::Identities;
use crate::RestoreError;
use serde::Serialize;
use std::collections::HashSet;
use std::path::Path;
use std::time::{Duration, Instant};
use time::OffsetDateTime;
use vigil_archive::sink::Sink;
use vigil_journal::format::{self, Event, Op, SegmentManifest};
use vigil_journal::read::Source;

/// Where to restore to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Point {
    Revision(i64),
    Time(OffsetDateTime),
}

impl Point {
    pub fn describe(&self) -> String {
        match self {
            Point::Revision(r) => format!("revision {r}"),
            Point::Time(t) => vigil_core::rfc3339(*t),
        }
    }
}

/// `--to-revision`/`--to-time` and how far to trust the journal.
#[derive(Debug, Clone)]
pub struct PointOptions {
    pub point: Point,
    /// `--force-journal`: replay past a break in the chain (segments the
    /// chain does not vouch for; each must still decrypt and follow on).
    pub force: bool,
    pub lease_ttl: Duration,
}

/// What a point-in-time restore did.
#[derive(Debug, Clone, Serialize)]
pub struct PointReport {
    pub requested: String,
    pub target_revision: i64,
    /// When vigil received the target revision.
    pub target_received_at: String,
    pub archive: String,
    /// The snapshot's actual revision (R0), read from the scratch etcd.
    pub snapshot_revision: i64,
    pub journal_source: String,
    pub segments: usize,
    pub revisions: u64,
    pub events: u64,
    /// Receive times of the first and last revision replayed.
    pub replayed_from: Option<String>,
    pub replayed_to: Option<String>,
    /// The newest revision the journal holds, and when it was received.
    pub journal_newest_revision: i64,
    pub journal_newest_at: String,
    /// The recovery point achieved: from the last change restored to the
    /// time asked for (`--to-time`), or to the journal's newest change
    /// (`--to-revision`: what a restore to the end would add).
    pub rpo_seconds: f64,
    pub leases_granted: usize,
    pub key_count: i64,
    pub duration_ms: u64,
}

/// A chain that reaches the point, and where it was read.
pub struct Journal<'a> {
    pub src: Source<'a>,
    /// The usable part of the chain (up to the first break, unless forced).
    pub chain: Vec<SegmentManifest>,
    pub target: i64,
    pub target_at: String,
    pub broken: Option<String>,
}

impl std::fmt::Debug for Journal<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Journal")
            .field("source", &self.src.name())
            .field("target", &self.target)
            .finish()
    }
}

const NO_SEGMENTS: &str = "no journal segments";

fn parse_t(s: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()
}

fn jerr(m: impl Into<String>) -> RestoreError {
    RestoreError::Journal(m.into())
}

fn ids_of(ids: Option<&Identities>) -> Vec<&dyn age::Identity> {
    ids.map(|i| i.iter().collect()).unwrap_or_default()
}

/// Finds the journal that reaches the point: the bastion's first, then each
/// sink that takes the journal (only `only` when given), and resolves a
/// time to the last revision received at or before it.
pub async fn open<'a>(
    cfg: &vigil_core::Config,
    sinks: &'a [Sink],
    only: Option<&str>,
    ids: Option<&Identities>,
    o: &PointOptions,
) -> Result<Journal<'a>, RestoreError> {
    let mut sources: Vec<Source<'a>> = Vec::new();
    if only.is_none_or(|n| n == "local") {
        sources.push(Source::Local(vigil_journal::local::LocalJournal::new(
            &cfg.journal_dir(),
        )));
    }
    for s in sinks {
        if only.is_none_or(|n| n == s.name()) {
            sources.push(Source::Sink(s));
        }
    }
    if sources.is_empty() {
        return Err(RestoreError::Usage(format!(
            "--source {}: no such journal source (local, or an object-store or dir sink)",
            only.unwrap_or_default()
        )));
    }
    let mut why = Vec::new();
    let mut empty = true;
    for src in sources {
        match reach(cfg, src, ids, o).await {
            Ok(j) => return Ok(j),
            Err((name, e)) => {
                empty &= e == NO_SEGMENTS;
                why.push(format!("{name}: {e}"));
            }
        }
    }
    let msg = format!(
        "no journal reaches {}: {}",
        o.point.describe(),
        why.join("; ")
    );
    Err(if empty {
        RestoreError::NoJournal(msg)
    } else {
        jerr(msg)
    })
}

async fn reach<'a>(
    cfg: &vigil_core::Config,
    src: Source<'a>,
    ids: Option<&Identities>,
    o: &PointOptions,
) -> Result<Journal<'a>, (String, String)> {
    let name = src.name();
    let fail = |e: String| (name.clone(), e);
    let mut chain = src
        .manifests(cfg.cluster_name())
        .await
        .map_err(|e| fail(e.to_string()))?;
    if chain.is_empty() {
        return Err(fail(NO_SEGMENTS.into()));
    }
    let mut broken = None;
    if let Some(b) = format::check_links(&chain) {
        let msg = b.to_string();
        if !o.force {
            tracing::warn!("journal in {name}: the chain breaks at {msg}; it is used up to revision {} (--force-journal replays past it)", b.after_revision);
            chain.retain(|m| m.last_revision <= b.after_revision);
        }
        broken = Some(msg);
    }
    let first = chain[0].first_revision;
    let last = chain[chain.len() - 1].last_revision;
    let last_at = chain[chain.len() - 1].last_received_at.clone();
    let (target, target_at) = match o.point {
        Point::Revision(r) => {
            if r > last {
                return Err(fail(format!(
                    "the journal ends at revision {last} (received {last_at}){}",
                    broken
                        .as_ref()
                        .map(|b| format!("; it is cut short by a break in its chain: {b}"))
                        .unwrap_or_default()
                )));
            }
            if r < first - 1 {
                return Err(fail(format!(
                    "the journal starts at revision {first}, after {r}"
                )));
            }
            let m = chain.iter().find(|m| m.last_revision >= r);
            let at = m.map(|m| m.first_received_at.clone()).unwrap_or_default();
            (r, at)
        }
        Point::Time(t) => {
            let Some(m) = chain
                .iter()
                .rev()
                .find(|m| parse_t(&m.first_received_at).is_some_and(|f| f <= t))
            else {
                return Err(fail(format!(
                    "the journal starts at {} (revision {first}), after {}",
                    chain[0].first_received_at,
                    vigil_core::rfc3339(t)
                )));
            };
            let events = src
                .events(m, &ids_of(ids))
                .await
                .map_err(|e| fail(e.to_string()))?;
            let hit = events
                .iter()
                .rev()
                .find(|e| parse_t(&e.received_at).is_some_and(|r| r <= t))
                .map(|e| (e.revision, e.received_at.clone()));
            match hit {
                Some(h) => h,
                None => (m.first_revision - 1, m.first_received_at.clone()),
            }
        }
    };
    Ok(Journal {
        src,
        chain,
        target,
        target_at,
        broken,
    })
}

/// Restores `snapshot` (the archive at `archive_id`) into a scratch etcd in
/// `work` (a private dir), replays the journal up to its target and saves
/// the result as `out`.
#[allow(clippy::too_many_arguments)]
pub fn replay(
    tool: &crate::tool::Tool,
    etcd_bin: &Path,
    snapshot: &Path,
    work: &Path,
    archive_id: &str,
    j: &Journal<'_>,
    ids: Option<&Identities>,
    o: &PointOptions,
    out: &Path,
    rt: &tokio::runtime::Runtime,
) -> Result<PointReport, RestoreError> {
    let started = Instant::now();
    let mut r = replay_into(tool, etcd_bin, snapshot, work, archive_id, j, ids, o, rt)?;
    rt.block_on(crate::bump::save(&mut r.client, out))
        .map_err(|e| {
            jerr(format!(
                "saving the replayed snapshot to {}: {e}",
                out.display()
            ))
        })?;
    drop(r.scratch);
    let mut rep = r.report;
    rep.duration_ms = started.elapsed().as_millis() as u64;
    Ok(rep)
}

/// A scratch etcd the journal was replayed into, still running.
pub(crate) struct Replayed {
    pub(crate) scratch: crate::scratch::Scratch,
    pub(crate) client: etcd_client::Client,
    pub(crate) report: PointReport,
}

/// Restores `snapshot` into a scratch etcd in `work` and replays the journal
/// up to its target; the scratch etcd keeps running for the caller.
#[allow(clippy::too_many_arguments)]
pub(crate) fn replay_into(
    tool: &crate::tool::Tool,
    etcd_bin: &Path,
    snapshot: &Path,
    work: &Path,
    archive_id: &str,
    j: &Journal<'_>,
    ids: Option<&Identities>,
    o: &PointOptions,
    rt: &tokio::runtime::Runtime,
) -> Result<Replayed, RestoreError> {
    let started = Instant::now();
    let extra = [
        "--max-txn-ops",
        "1000000",
        "--max-request-bytes",
        "268435456",
    ];
    let spec = crate::scratch::Spec {
        tool,
        etcd_bin,
        name: "pitr",
        timeout: Duration::from_secs(120),
        timeout_key: "the replay's start limit",
        extra_args: &extra,
    };
    let (scratch, mut client) = crate::scratch::start(
        &spec,
        rt,
        snapshot,
        work,
        &work.join("data"),
        Instant::now() + spec.timeout,
        &|_| {},
    )
    .map_err(|(_, e)| {
        jerr(format!(
            "starting the scratch etcd in {}: {e}",
            work.display()
        ))
    })?;
    let mut report = rt.block_on(apply(&mut client, j, ids, o, archive_id))?;
    report.duration_ms = started.elapsed().as_millis() as u64;
    Ok(Replayed {
        scratch,
        client,
        report,
    })
}

async fn apply(
    c: &mut etcd_client::Client,
    j: &Journal<'_>,
    ids: Option<&Identities>,
    o: &PointOptions,
    archive_id: &str,
) -> Result<PointReport, RestoreError> {
    let etcd = |what: &str, e: etcd_client::Error| {
        jerr(format!("{what}: {}", vigil_core::error_chain(&e)))
    };
    let r0 = c
        .get(
            vec![0u8],
            Some(etcd_client::GetOptions::new().with_count_only()),
        )
        .await
        .map_err(|e| etcd("reading the snapshot's revision", e))?
        .header()
        .map(|h| h.revision())
        .unwrap_or_default();
    if r0 > j.target {
        return Err(jerr(format!(
            "archive {archive_id} holds revision {r0}, past the point {}; choose an older archive (--archive, --revision)",
            j.target
        )));
    }
    let mut leases: HashSet<i64> = c
        .leases()
        .await
        .map_err(|e| etcd("listing the snapshot's leases", e))?
        .leases()
        .iter()
        .map(|l| l.id())
        .collect();
    let ids = ids_of(ids);
    let mut cur = r0;
    let (mut segments, mut revisions, mut events_n, mut granted) = (0usize, 0u64, 0u64, 0usize);
    let (mut from_at, mut to_at) = (None, None);
    let mut last_log = Instant::now();
    let needed: Vec<&SegmentManifest> = j
        .chain
        .iter()
        .filter(|m| m.last_revision > r0 && m.first_revision <= j.target)
        .collect();
    if j.target > r0
        && needed
            .first()
            .is_none_or(|m| m.first_revision > r0 + 1 && m.gap.is_none_or(|g| g.from > r0 + 1))
    {
        return Err(jerr(format!(
            "the journal in {} does not reach back to revision {} (archive {archive_id} holds {r0}): it starts at {}",
            j.src.name(),
            r0 + 1,
            needed.first().map(|m| m.first_revision).unwrap_or(0)
        )));
    }
    for m in needed {
        let evs = j.src.events_checked(m, &ids, !o.force).await.map_err(|e| {
            jerr(format!(
                "{e}{}",
                if o.force {
                    ""
                } else {
                    "; no point past it can be restored from this source (try another --source)"
                }
            ))
        })?;
        segments += 1;
        let mut i = 0;
        while i < evs.len() {
            let rev = evs[i].revision;
            let mut k = i;
            while k < evs.len() && evs[k].revision == rev {
                k += 1;
            }
            let group = &evs[i..k];
            i = k;
            if rev <= cur {
                continue;
            }
            if rev > j.target {
                break;
            }
            if rev != cur + 1 {
                return Err(jerr(format!(
                    "the journal misses revisions {}..={} before segment {} (a recorded gap or a missing segment); restore to a point before {} or after a newer archive",
                    cur + 1,
                    rev - 1,
                    m.segment,
                    cur + 1
                )));
            }
            let mut ops = Vec::with_capacity(group.len());
            for e in group {
                ops.push(op(c, e, &mut leases, &mut granted, o.lease_ttl).await?);
            }
            let resp = c
                .txn(etcd_client::Txn::new().and_then(ops))
                .await
                .map_err(|e| etcd(&format!("replaying revision {rev}"), e))?;
            let got = resp.header().map(|h| h.revision()).unwrap_or_default();
            if got != rev {
                return Err(jerr(format!(
                    "replaying revision {rev} left the scratch etcd at revision {got}: the journal does not follow on from archive {archive_id}"
                )));
            }
            if from_at.is_none() {
                from_at = Some(group[0].received_at.clone());
            }
            to_at = Some(group[0].received_at.clone());
            cur = rev;
            revisions += 1;
            events_n += group.len() as u64;
            if last_log.elapsed() >= Duration::from_secs(5) {
                last_log = Instant::now();
                tracing::info!(
                    "point-in-time restore: replayed revision {rev} of {} ({revisions} revisions, {events_n} events)",
                    j.target
                );
            }
        }
        if cur >= j.target {
            break;
        }
    }
    if cur != j.target {
        return Err(jerr(format!(
            "the journal in {} ends at revision {cur}, before the point {}",
            j.src.name(),
            j.target
        )));
    }
    let keys = c
        .get(
            vec![0u8],
            Some(
                etcd_client::GetOptions::new()
                    .with_all_keys()
                    .with_count_only(),
            ),
        )
        .await
        .map_err(|e| etcd("counting keys", e))?
        .count();
    let newest = j.chain.last();
    let newest_rev = newest.map(|m| m.last_revision).unwrap_or(cur);
    let newest_at = newest
        .map(|m| m.last_received_at.clone())
        .unwrap_or_default();
    let restored_at = to_at.clone().unwrap_or_else(|| j.target_at.clone());
    let rpo = match o.point {
        Point::Time(t) => parse_t(&restored_at).map(|r| (t - r).as_seconds_f64()),
        Point::Revision(_) => parse_t(&restored_at)
            .zip(parse_t(&newest_at))
            .map(|(r, n)| (n - r).as_seconds_f64()),
    };
    Ok(PointReport {
        requested: o.point.describe(),
        target_revision: j.target,
        target_received_at: restored_at,
        archive: archive_id.to_string(),
        snapshot_revision: r0,
        journal_source: j.src.name(),
        segments,
        revisions,
        events: events_n,
        replayed_from: from_at,
        replayed_to: to_at,
        journal_newest_revision: newest_rev,
        journal_newest_at: newest_at,
        rpo_seconds: rpo.unwrap_or(0.0).max(0.0),
        leases_granted: granted,
        key_count: keys,
        duration_ms: 0,
    })
}

/// One event as a txn op; a lease the scratch etcd lacks is granted first.
async fn op(
    c: &mut etcd_client::Client,
    e: &Event,
    leases: &mut HashSet<i64>,
    granted: &mut usize,
    ttl: Duration,
) -> Result<etcd_client::TxnOp, RestoreError> {
    Ok(match e.op {
        Op::Delete => etcd_client::TxnOp::delete(e.key.clone(), None),
        Op::Put => {
            let mut po = etcd_client::PutOptions::new();
            if e.lease != 0 {
                if !leases.contains(&e.lease) {
                    c.lease_grant(
                        ttl.as_secs().max(1) as i64,
                        Some(etcd_client::LeaseGrantOptions::new().with_id(e.lease)),
                    )
                    .await
                    .map_err(|err| {
                        jerr(format!(
                            "granting lease {:x} (for revision {}): {}",
                            e.lease,
                            e.revision,
                            vigil_core::error_chain(&err)
                        ))
                    })?;
                    leases.insert(e.lease);
                    *granted += 1;
                }
                po = po.with_lease(e.lease);
            }
            etcd_client::TxnOp::put(e.key.clone(), e.value.clone(), Some(po))
        }
    })
}

/// What the restore says about its point.
pub fn human(p: &PointReport) -> String {
    format!(
        "point in time: {} -> revision {} (received {}): archive {} at revision {} + {} revision(s), {} event(s) from {} journal segment(s) in {} ({} .. {}); \
         the journal's newest revision is {} ({}); RPO {:.1} s; {} lease(s) granted again with --lease-ttl\n",
        p.requested,
        p.target_revision,
        p.target_received_at,
        p.archive,
        p.snapshot_revision,
        p.revisions,
        p.events,
        p.segments,
        p.journal_source,
        p.replayed_from.as_deref().unwrap_or("-"),
        p.replayed_to.as_deref().unwrap_or("-"),
        p.journal_newest_revision,
        p.journal_newest_at,
        p.rpo_seconds,
        p.leases_granted
    )
}

/// `vigil-restore fetch --to-revision/--to-time --out FILE`: the snapshot
/// of the point (the archive plus the journal, replayed), as a plain
/// snapshot file that `etcdutl snapshot restore` takes.
pub fn fetch(
    cfg: &vigil_core::Config,
    selector: &crate::select::Selector,
    source: Option<&str>,
    ids: Option<&Identities>,
    p: &PointOptions,
    out: &Path,
) -> Result<PointReport, RestoreError> {
    if out.exists() {
        return Err(RestoreError::Usage(format!(
            "{} already exists; vigil-restore never overwrites a file, choose another --out",
            out.display()
        )));
    }
    let rc = cfg.restore();
    let stores = crate::stores::Stores::configured(cfg).only(source)?;
    let cat = stores.catalog(&cfg.state.dir);
    let rt = vigil_core::runtime::multi_thread(Some(2))
        .map_err(|e| RestoreError::Failed(format!("starting the runtime: {e}")))?;
    let sinks =
        vigil_journal::ship::journal_sinks(cfg).map_err(|e| RestoreError::Usage(e.to_string()))?;
    let j = rt.block_on(open(cfg, &sinks, source, ids, p))?;
    let sel = crate::select::Selector {
        revision: Some(selector.revision.map_or(j.target, |r| r.min(j.target))),
        ..selector.clone()
    };
    let archive = sel.select(&cat)?;
    let tool = crate::tool::detect_tool(&rc)?;
    let parent = out
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    // Short: the scratch etcd's unix socket lives in it.
    let work = parent.join(format!(".vigil-pitr-{}", std::process::id()));
    vigil_core::fsutil::ensure_private_dir(&work)?;
    let mut janitor = crate::guard::Janitor::spawn(None)
        .map_err(|e| RestoreError::Failed(format!("starting the janitor: {e}")))?;
    for g in [work.clone(), vigil_core::fsutil::partial_path(out)] {
        janitor
            .guard(&g)
            .map_err(|e| RestoreError::Failed(format!("briefing the janitor: {e}")))?;
    }
    let r = (|| {
        let snap = work.join("archive.db");
        crate::fetch::fetch(archive, &stores, ids, &snap)?;
        let pit = work.join("point.db");
        let r = replay(
            &tool,
            &rc.etcd_bin,
            &snap,
            &work,
            &archive.id,
            &j,
            ids,
            p,
            &pit,
            &rt,
        )?;
        vigil_core::fsutil::commit_rename(&pit, out)?;
        Ok(r)
    })();
    let _ = std::fs::remove_dir_all(&work);
    janitor.done();
    r
}
