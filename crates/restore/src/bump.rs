//! How far `vigil-restore etcd` bumps the restored revision, and from what
//! evidence (issue #15 point 3).
//!
//! Restoring rolls etcd back to the snapshot's revision S while every
//! Kubernetes client (each kube-apiserver's watch cache, controllers,
//! kubelets) last saw some revision R > S. Without a bump, new writes reuse
//! revisions S+1..R with other contents, and watchers resuming from R miss
//! them or trust stale objects. `etcdutl snapshot restore --bump-revision N
//! --mark-compacted` (etcdutl 3.5.10 and later) starts the restored keyspace
//! at S+N and compacts below it, so a watch from any revision the clients
//! held fails with "required revision has been compacted" and they re-list.
//!
//! N must exceed R − S. R is read from `<state.dir>/revision-seen.json`,
//! which vigil-health (every minute) and every snapshot run raise
//! ([`vigil_core::seen`]). The bump is
//!
//! ```text
//! N = max(restore.bump_revision, (R − S) + margin),  margin = max(⌈(R − S) / 10⌉, 1000)
//! ```
//!
//! The margin covers writes the bastion never saw: between the last
//! observation (at most a health interval, one minute, before the cluster
//! died) and the end. R − S spans the time since the snapshot (a snapshot
//! interval, typically an hour or more), so a tenth of it is several minutes
//! of writes at the same rate; 1000 covers a near-idle cluster or a
//! snapshot taken moments before. Too big costs nothing (revisions are
//! 64-bit; a bump only skips numbers), too small is the failure. The config's
//! `restore.bump_revision` (default 1000000000) is the floor: it wins while
//! it is larger, and 0 leaves the evidence alone to size the bump.

use crate::tool::Tool;
pub use crate::tool::{can_bump, version_triple, MIN_ETCDUTL};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use vigil_core::seen::RevisionSeen;

/// The smallest margin over the evidence.
pub const MIN_MARGIN: u64 = 1000;
/// `restore.bump_revision`'s default: safe without evidence for any cluster
/// that wrote fewer revisions since its snapshot.
pub const SAFE_FLOOR: u64 = 1_000_000_000;

/// Where the newest revision seen came from.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Evidence {
    pub file: PathBuf,
    pub revision: i64,
    pub seen_at: String,
    pub member: String,
    pub endpoint: String,
    pub cluster_id: String,
    /// The job that saw it.
    pub by: String,
}

/// How the bump is made.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    /// `snapshot restore --bump-revision --mark-compacted`.
    Etcdutl,
    /// Through a scratch etcd, for tools that cannot bump ([`replay`]).
    Replay,
    /// `--no-bump`.
    None,
}

/// The bump, how it was sized, and whether it is applied.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct BumpPlan {
    pub snapshot_revision: i64,
    /// The newest revision seen on the cluster, if recorded.
    pub evidence: Option<Evidence>,
    /// Newest seen − snapshot revision (0 without evidence or when not ahead).
    pub behind: u64,
    pub margin: u64,
    /// `restore.bump_revision`.
    pub floor: u64,
    /// max(floor, behind + margin): what `--bump-revision` gets.
    pub size: u64,
    /// "evidence" or "restore.bump_revision" (the floor was larger).
    pub sized_by: &'static str,
    /// False with `--no-bump`: the data dirs start at the snapshot's revision.
    pub applied: bool,
    pub method: Method,
    /// What the replay did, once done.
    pub replayed: Option<Replayed>,
    pub notes: Vec<String>,
}

/// Sizes the bump for a snapshot at `snapshot_revision` of cluster
/// `cluster_id`, from the record in `state_dir` (see the module doc).
pub fn plan(state_dir: &Path, snapshot_revision: i64, cluster_id: &str, floor: u64) -> BumpPlan {
    let file = vigil_core::seen::path(state_dir);
    let mut notes = Vec::new();
    let seen = match vigil_core::seen::load(state_dir) {
        Ok(Some(s)) => Some(s),
        Ok(None) => {
            notes.push(format!(
                "no record of the newest revision seen ({} is missing: vigil-health and vigil-snapshot write it); the bump cannot be sized from evidence",
                file.display()
            ));
            None
        }
        Err(e) => {
            notes.push(format!("{e}; the bump cannot be sized from evidence"));
            None
        }
    };
    size(
        snapshot_revision,
        cluster_id,
        floor,
        seen.map(|s| (file, s)),
        notes,
    )
}

/// The arithmetic of [`plan`], without the file.
pub fn size(
    snapshot_revision: i64,
    cluster_id: &str,
    floor: u64,
    seen: Option<(PathBuf, RevisionSeen)>,
    mut notes: Vec<String>,
) -> BumpPlan {
    let evidence = seen.map(|(file, s)| Evidence {
        file,
        revision: s.revision,
        seen_at: s.seen_at,
        member: s.member,
        endpoint: s.endpoint,
        cluster_id: s.cluster_id,
        by: s.by,
    });
    if let Some(e) = &evidence {
        if e.cluster_id != cluster_id {
            // After a repin the clients watch the new cluster: its revision
            // is the one to pass, whatever generation the archive is from.
            notes.push(format!(
                "the newest revision seen ({}) is of cluster ID {}, the archive of cluster ID {cluster_id}: sized from it, since the clients last watched that cluster",
                e.revision, e.cluster_id
            ));
        }
        if e.revision < snapshot_revision {
            notes.push(format!(
                "the newest revision seen ({}, {}) is below the snapshot's ({snapshot_revision}): the record is older than the snapshot",
                e.revision, e.seen_at
            ));
        }
    }
    let behind = evidence
        .as_ref()
        .map(|e| e.revision.saturating_sub(snapshot_revision).max(0) as u64)
        .unwrap_or(0);
    let margin = behind.div_ceil(10).max(MIN_MARGIN);
    let sized = behind.saturating_add(margin);
    let (size, sized_by) = if floor >= sized {
        (floor, "restore.bump_revision")
    } else {
        (sized, "evidence")
    };
    if evidence.is_none() && floor < SAFE_FLOOR {
        notes.push(format!(
            "with no evidence and restore.bump_revision = {floor}, the bump ({size}) may be too small: set restore.bump_revision to a safe over-estimate (the default is 1000000000)"
        ));
    }
    BumpPlan {
        snapshot_revision,
        evidence,
        behind,
        margin,
        floor,
        size,
        sized_by,
        applied: true,
        method: Method::Etcdutl,
        replayed: None,
        notes,
    }
}

impl BumpPlan {
    /// One line: how big, from what.
    pub fn describe(&self) -> String {
        let from = match &self.evidence {
            Some(e) => format!(
                "newest revision seen {} on member {} ({}) at {} by {}, in {}",
                e.revision,
                e.member,
                e.endpoint,
                e.seen_at,
                e.by,
                e.file.display()
            ),
            None => "no revision seen on record".to_string(),
        };
        let sum = if self.method == Method::Replay {
            format!(
                "behind {} + margin {} (replayed: restore.bump_revision is etcdutl's floor only)",
                self.behind, self.margin
            )
        } else {
            format!(
                "max(restore.bump_revision {}, behind {} + margin {})",
                self.floor, self.behind, self.margin
            )
        };
        format!(
            "{} = {sum}, sized by {}; snapshot revision {}, {from}",
            self.size, self.sized_by, self.snapshot_revision
        )
    }

    /// For a tool that cannot bump: replay the bump through a scratch etcd,
    /// sized by the evidence alone (the floor would be a billion writes), or
    /// None without evidence to size it.
    pub fn by_replay(&self) -> Option<BumpPlan> {
        self.evidence.as_ref()?;
        let size = self.behind.saturating_add(self.margin);
        let mut p = self.clone();
        p.size = size;
        p.sized_by = "evidence";
        p.method = Method::Replay;
        Some(p)
    }

    /// Why a tool that cannot bump and no evidence to replay a bump are
    /// refused, and what to do instead.
    pub fn refusal(&self, tool: &Tool) -> String {
        format!(
            "{} {} ({}) cannot bump the restored revision: `snapshot restore --bump-revision N --mark-compacted` needs etcdutl {}.{}.{} or newer, \
             and with no record of the newest revision seen vigil cannot size a bump to replay through a scratch etcd either. \
             This restore needs --bump-revision {}. Without a bump, every kube-apiserver's watch cache and every client \
             keeps objects newer than the restored data, and new writes reuse revisions they already saw. Nothing was run or written. \
             Either get etcdutl >= 3.5.10 (from the etcd release matching the cluster, https://github.com/etcd-io/etcd/releases, \
             or the etcdutl binary inside RKE2's etcd image) and point restore.etcdutl_bin at it; \
             or accept the risk with --no-bump and restart every kube-apiserver and kubelet once the members are healthy (README: Restore during a disaster)",
            tool.kind,
            tool.version,
            tool.bin.display(),
            MIN_ETCDUTL.0,
            MIN_ETCDUTL.1,
            MIN_ETCDUTL.2,
            self.describe()
        )
    }
}

/// The key the replay writes and deletes. Nothing in Kubernetes or RKE2
/// reads it, and after the compaction no trace of it is left.
const REPLAY_KEY: &[u8] = b"/vigil/restore/revision-bump";
/// Writes in flight at once: etcd batches concurrent proposals into one WAL
/// fsync, so throughput grows with this until the CPU is busy.
const REPLAY_IN_FLIGHT: u64 = 128;
const REPLAY_LOG_EVERY: Duration = Duration::from_secs(5);

/// What the snapshot must hold before the replay writes on top of it (its
/// manifest's revision and key count), so that a restore tool that silently
/// restored nothing cannot turn into an empty, bumped cluster.
#[derive(Debug, Clone, Copy)]
pub struct Expect {
    pub revision: i64,
    pub key_count: i64,
}

/// What a replayed bump did.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Replayed {
    /// The snapshot's revision, as the scratch etcd reported it.
    pub from_revision: i64,
    /// from + size (the writes replayed): the restored members' revision,
    /// compacted up to here.
    pub to_revision: i64,
    pub duration_ms: u64,
}

/// For a restore tool that cannot bump (etcdctl 3.4, etcdutl before 3.5.10):
/// restores `snapshot` into a scratch etcd (`etcd_bin`, unix sockets in
/// `work`, which must be a private dir), writes `size` revisions (puts and a
/// final delete of one vigil key), compacts at the last one, defragments,
/// and saves the result as `out`. Restoring `out` then gives what `etcdutl
/// --bump-revision size --mark-compacted` gives: the same keys at revision
/// S + size, with every older revision compacted.
pub fn replay(
    tool: &Tool,
    etcd_bin: &Path,
    snapshot: &Path,
    work: &Path,
    size: u64,
    expect: Expect,
    out: &Path,
) -> Result<Replayed, crate::RestoreError> {
    use crate::RestoreError::Failed;
    let started = Instant::now();
    let fail = |what: &str, e: &dyn std::fmt::Display| {
        Failed(format!(
            "revision bump by replay ({}): {what}: {e}",
            work.display()
        ))
    };
    let rt = vigil_core::runtime::multi_thread(Some(2))
        .map_err(|e| Failed(format!("revision bump by replay ({}): {e}", work.display())))?;
    let spec = crate::scratch::Spec {
        tool,
        etcd_bin,
        name: "bump",
        timeout: Duration::from_secs(120),
        timeout_key: "the bump's start limit",
        extra_args: &[],
    };
    let (scratch, c) = crate::scratch::start(
        &spec,
        &rt,
        snapshot,
        work,
        &work.join("data"),
        Instant::now() + spec.timeout,
        &|_| {},
    )
    .map_err(|(_, e)| fail("starting the scratch etcd", &e))?;
    let r = rt.block_on(replay_writes(c, size, expect, out));
    drop(scratch);
    let (from_revision, to_revision) = r.map_err(|e| fail("writing", &e))?;
    let done = Replayed {
        from_revision,
        to_revision,
        duration_ms: started.elapsed().as_millis() as u64,
    };
    tracing::info!(
        "revision bump by replay: {} writes, revision {from_revision} -> {to_revision} (compacted), in {:?}",
        size,
        started.elapsed()
    );
    Ok(done)
}

/// Why a replayed bump failed.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("{what}: {source}")]
    Etcd {
        what: String,
        #[source]
        source: etcd_client::Error,
    },
    #[error("writing {}: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Fs(#[from] vigil_core::fsutil::FsError),
    #[error("a writer failed: {0}")]
    Task(#[from] tokio::task::JoinError),
    /// The scratch etcd does not hold what it must.
    #[error("{0}")]
    Unexpected(String),
}

fn etcd_err(what: impl Into<String>) -> impl FnOnce(etcd_client::Error) -> ReplayError {
    let what = what.into();
    move |source| ReplayError::Etcd { what, source }
}

fn write_err(path: &Path) -> impl FnOnce(std::io::Error) -> ReplayError + '_ {
    move |source| ReplayError::Write {
        path: path.to_path_buf(),
        source,
    }
}

async fn replay_writes(
    mut c: etcd_client::Client,
    size: u64,
    expect: Expect,
    out: &Path,
) -> Result<(i64, i64), ReplayError> {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;
    let existing = c
        .get(REPLAY_KEY, None)
        .await
        .map_err(etcd_err("reading the scratch etcd"))?;
    let from = existing.header().map(|h| h.revision()).unwrap_or_default();
    if existing.count() != 0 {
        return Err(ReplayError::Unexpected(format!(
            "the snapshot already holds the key {:?}, which the replay writes and deletes",
            String::from_utf8_lossy(REPLAY_KEY)
        )));
    }
    let at = c
        .get(
            vec![0u8],
            Some(
                etcd_client::GetOptions::new()
                    .with_all_keys()
                    .with_count_only()
                    .with_revision(expect.revision),
            ),
        )
        .await;
    let keys = at.as_ref().map(|r| r.count()).unwrap_or(-1);
    if from < expect.revision || keys != expect.key_count {
        return Err(ReplayError::Unexpected(format!(
            "the restored snapshot holds revision {from} and {keys} keys at revision {}, but its manifest says revision {} and {} keys; \
             nothing was bumped (is the restore tool working?)",
            expect.revision, expect.revision, expect.key_count
        )));
    }
    let target = from + size as i64;
    // size − 1 puts, then one delete: the last revision is from + size.
    let left = Arc::new(AtomicU64::new(size.saturating_sub(1)));
    let take = |left: &AtomicU64| {
        left.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
            .is_ok()
    };
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..REPLAY_IN_FLIGHT.min(size.max(1)) {
        let (mut c, left) = (c.clone(), left.clone());
        tasks.spawn(async move {
            while take(&left) {
                c.put(REPLAY_KEY, b"x".to_vec(), None)
                    .await
                    .map_err(etcd_err("put"))?;
            }
            Ok::<(), ReplayError>(())
        });
    }
    let t0 = Instant::now();
    let mut ticker = tokio::time::interval(REPLAY_LOG_EVERY);
    ticker.tick().await;
    loop {
        tokio::select! {
            r = tasks.join_next() => match r {
                None => break,
                Some(Ok(Ok(()))) => {}
                Some(Ok(Err(e))) => return Err(e),
                Some(Err(e)) => return Err(e.into()),
            },
            _ = ticker.tick() => {
                let done = size.saturating_sub(1) - left.load(Ordering::Relaxed);
                let rate = done as f64 / t0.elapsed().as_secs_f64().max(0.001);
                let eta = (size.saturating_sub(done) as f64 / rate.max(1.0)) as u64;
                tracing::info!("revision bump by replay: {done} of {size} revisions written ({rate:.0}/s, about {eta} s left)");
            }
        }
    }
    if size > 0 {
        c.delete(REPLAY_KEY, None)
            .await
            .map_err(etcd_err("delete"))?;
    }
    let now = c
        .get(REPLAY_KEY, None)
        .await
        .map_err(etcd_err("reading the revision"))?
        .header()
        .map(|h| h.revision())
        .unwrap_or_default();
    if now != target {
        return Err(ReplayError::Unexpected(format!(
            "the scratch etcd is at revision {now} after the writes, expected {target}"
        )));
    }
    c.compact(
        target,
        Some(etcd_client::CompactionOptions::new().with_physical()),
    )
    .await
    .map_err(etcd_err(format!("compacting at revision {target}")))?;
    c.defragment().await.map_err(etcd_err("defragmenting"))?;
    save(&mut c, out).await?;
    Ok((from, target))
}

/// Streams the scratch etcd's snapshot (with its sha256 trailer) into `out`.
pub(crate) async fn save(c: &mut etcd_client::Client, out: &Path) -> Result<(), ReplayError> {
    use std::io::Write;
    let mut f = vigil_core::fsutil::create_private(out)?;
    let mut stream = c
        .snapshot()
        .await
        .map_err(etcd_err("opening the snapshot stream"))?;
    while let Some(m) = stream
        .message()
        .await
        .map_err(etcd_err("snapshot stream"))?
    {
        f.write_all(m.blob()).map_err(write_err(out))?;
    }
    f.sync_all().map_err(write_err(out))
}

#[cfg(test)]
mod tests;
