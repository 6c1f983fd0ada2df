//! Shipping closed segments to the journal's sinks, catch-up after an
//! outage, and retention: in each sink and on the bastion, segments are
//! kept back to the oldest archive kept there (a kept snapshot may still
//! need every segment after its revision); the bastion's copy is also
//! bounded by `journal.max_local`, giving up segments every sink holds first.

use crate::format::{self, SegmentManifest};
use crate::local::LocalJournal;
use crate::JournalError;
use std::collections::{BTreeMap, BTreeSet};
use vigil_archive::sink::Sink;
use vigil_core::Config;

/// What one pass found and did, per sink: `None` is fine, else the error.
#[derive(Debug, Default, Clone)]
pub struct PassReport {
    pub sinks: BTreeMap<String, Option<String>>,
    pub shipped: usize,
    pub pruned_local: usize,
    pub pruned_sinks: usize,
    pub local_bytes: u64,
    /// This pass removed segments not every sink holds, to stay within
    /// `max_local`.
    pub over_local_limit: bool,
    /// Segments on the bastion that not every sink holds, after the pass.
    pub unshipped: usize,
}

/// The sinks the journal goes to.
pub fn journal_sinks(cfg: &Config) -> Result<Vec<Sink>, JournalError> {
    let want = cfg.journal.as_ref().and_then(|j| j.sinks.clone());
    let mut out = Vec::new();
    for sc in cfg.sinks() {
        if !sc.takes_journal() || want.as_ref().is_some_and(|w| !w.contains(&sc.name)) {
            continue;
        }
        out.push(Sink::build(sc, cfg.cluster_name(), &cfg.state.dir)?);
    }
    Ok(out)
}

/// The oldest revision that a kept, verified archive in `revs` starts from.
fn oldest_kept(revs: impl IntoIterator<Item = i64>) -> Option<i64> {
    revs.into_iter().min()
}

/// Ships what each sink lacks (oldest first), then prunes.
pub async fn pass(cfg: &Config, local: &LocalJournal, sinks: &[Sink]) -> PassReport {
    let mut rep = PassReport::default();
    let chain = match local.manifests() {
        Ok(c) => c,
        Err(e) => {
            for s in sinks {
                rep.sinks.insert(s.name().into(), Some(e.to_string()));
            }
            return rep;
        }
    };
    let mut held: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for s in sinks {
        let r = ship_one(local, s, &chain).await;
        match r {
            Ok((have, shipped, pruned)) => {
                rep.shipped += shipped;
                rep.pruned_sinks += pruned;
                held.insert(s.name().into(), have);
                rep.sinks.insert(s.name().into(), None);
            }
            Err(e) => {
                tracing::warn!(sink = s.name(), "journal: {e}");
                rep.sinks.insert(s.name().into(), Some(e.to_string()));
            }
        }
    }
    let everywhere = |m: &SegmentManifest| {
        sinks.iter().all(|s| {
            held.get(s.name())
                .is_some_and(|h| h.contains(&m.manifest_name()))
        })
    };
    // Local retention: not needed by any local archive, and safe elsewhere.
    let snap_dir = cfg.snapshot.as_ref().map(|s| s.dir.clone());
    let local_oldest = snap_dir.and_then(|d| {
        oldest_kept(
            vigil_archive::local::list_all(&d)
                .into_iter()
                .filter(|a| a.is_verified() && a.manifest.cluster == cfg.cluster_name())
                .map(|a| a.manifest.revision),
        )
    });
    let mut kept: Vec<&SegmentManifest> = Vec::new();
    let tail = chain.last().map(|m| m.segment.clone());
    for m in &chain {
        let unneeded = local_oldest.is_some_and(|o| m.last_revision <= o);
        if unneeded && everywhere(m) && Some(&m.segment) != tail.as_ref() {
            match local.delete(m) {
                Ok(()) => rep.pruned_local += 1,
                Err(e) => tracing::warn!("journal: {e}"),
            }
        } else {
            kept.push(m);
        }
    }
    // The size bound: oldest first, what every sink holds before what none does.
    let limit = cfg
        .journal
        .as_ref()
        .map(|j| j.max_local.0)
        .unwrap_or(u64::MAX);
    let mut size: u64 = kept.iter().map(|m| m.size).sum();
    for pass_unshipped in [false, true] {
        for m in kept.clone() {
            if size <= limit || Some(&m.segment) == tail.as_ref() {
                break;
            }
            if !pass_unshipped && !everywhere(m) {
                continue;
            }
            if pass_unshipped {
                rep.over_local_limit = true;
                tracing::error!(
                    "journal: the bastion's journal is over journal.max_local ({}); removing {} that not every sink holds",
                    vigil_core::units::human_bytes(limit),
                    m.segment
                );
            }
            if local.delete(m).is_ok() {
                size = size.saturating_sub(m.size);
                rep.pruned_local += 1;
                kept.retain(|k| k.segment != m.segment);
            }
        }
    }
    rep.local_bytes = size;
    rep.unshipped = kept.iter().filter(|m| !everywhere(m)).count();
    rep
}

/// One sink: list, upload what is missing, prune what no kept archive
/// there needs. Returns the manifests it holds, how many were shipped and pruned.
async fn ship_one(
    local: &LocalJournal,
    s: &Sink,
    chain: &[SegmentManifest],
) -> Result<(BTreeSet<String>, usize, usize), JournalError> {
    let files: BTreeMap<String, u64> = s.journal_files().await?.into_iter().collect();
    let mut have: BTreeSet<String> = files
        .keys()
        .filter(|n| format::is_manifest(n))
        .cloned()
        .collect();
    let mut shipped = 0;
    for m in chain {
        let mname = m.manifest_name();
        if have.contains(&mname) {
            continue;
        }
        s.journal_put(
            &m.segment,
            &local.segment_path(&m.segment),
            m.size,
            &m.sha256,
            bytes::Bytes::from(m.to_json()),
        )
        .await?;
        tracing::debug!(sink = s.name(), "journal: shipped {}", m.segment);
        have.insert(mname);
        shipped += 1;
    }
    // Retention in the sink, against the archives kept there.
    let mut pruned = 0;
    if s.can_delete() {
        let archives = s.list().await?;
        let oldest = oldest_kept(
            archives
                .iter()
                .filter(|e| e.is_verified())
                .map(|e| e.manifest.revision),
        );
        if let Some(o) = oldest {
            let names: Vec<String> = have.iter().cloned().collect();
            let newest = names.last().cloned();
            for mname in names {
                let seg = mname.trim_end_matches(format::MANIFEST_SUFFIX).to_string();
                let Some(last) = format::last_revision_of(&seg) else {
                    continue;
                };
                if last <= o && Some(&mname) != newest.as_ref() {
                    s.journal_delete(&seg).await?;
                    have.remove(&mname);
                    pruned += 1;
                }
            }
        }
    }
    Ok((have, shipped, pruned))
}
