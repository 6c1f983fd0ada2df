//! vigil-journal: every change etcd makes between snapshots, in encrypted,
//! hash-chained segments (issue 17), so that a restore can go to any
//! revision or minute the journal covers.
//!
//! - `format`: the open segment format and the chain (DESIGN.md contract 7);
//! - `segment`: writing one segment; `local`: the bastion's copy;
//! - `watch`: one member's watch, as revisions of events;
//! - `service`: `vigil-journal run` (failover, gaps, alerts, metrics);
//! - `ship`: shipping to sinks, catch-up and retention;
//! - `read`: reading a chain back (restores, `verify`).

mod error;
pub mod format;
pub mod local;
pub mod read;
pub mod segment;
pub mod service;
pub mod ship;
pub mod watch;

pub use error::JournalError;

/// Whether a local segment's file still has its manifest's size and sha256.
pub fn local_sha(
    local: &local::LocalJournal,
    m: &format::SegmentManifest,
) -> Result<bool, JournalError> {
    let (n, sha) = vigil_archive::sha256_file(&local.segment_path(&m.segment))?;
    Ok(n == m.size && sha == m.sha256)
}

/// The outcome of checking a chain in one place.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Verified {
    pub source: String,
    pub segments: usize,
    pub first_revision: Option<i64>,
    pub last_revision: Option<i64>,
    pub events: u64,
    pub gaps: Vec<(i64, i64)>,
    /// The first break: the segment and why.
    pub broken: Option<String>,
}

/// Checks a chain's links and every segment's size and sha256 (no key needed).
///
/// `vigil-journal run` may prune the oldest segments meanwhile (manifest
/// first, then segment): a segment whose manifest is gone on a second look
/// was pruned, not lost, and the check starts again on the chain as it is.
pub async fn verify(src: &read::Source<'_>, cluster: &str) -> Result<Verified, JournalError> {
    let mut attempts = 0;
    let (chain, broken) = loop {
        attempts += 1;
        let chain = src.manifests(cluster).await?;
        let mut broken = format::check_links(&chain).map(|b| b.to_string());
        let mut pruned = false;
        if broken.is_none() {
            for m in &chain {
                let why = match src.read(&m.segment).await {
                    Err(e) if e.is_not_found() && attempts < 5 => {
                        let now = src.manifests(cluster).await?;
                        if now.iter().all(|n| n.segment != m.segment) {
                            pruned = true;
                            break;
                        }
                        Some(e.to_string())
                    }
                    Err(e) => Some(e.to_string()),
                    Ok(b) => format::mismatch(m, &b)
                        .map(|w| format!("segment {}: {w}", src.location(&m.segment))),
                };
                if why.is_some() {
                    broken = why;
                    break;
                }
            }
        }
        if !pruned {
            break (chain, broken);
        }
    };
    Ok(Verified {
        source: src.name(),
        segments: chain.len(),
        first_revision: chain.first().map(|m| m.first_revision),
        last_revision: chain.last().map(|m| m.last_revision),
        events: chain.iter().map(|m| m.events).sum(),
        gaps: chain
            .iter()
            .filter_map(|m| m.gap.map(|g| (g.from, g.to)))
            .collect(),
        broken,
    })
}

/// The journal part of `check-config`: where it writes and ships.
pub fn summary(cfg: &vigil_core::Config) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    match &cfg.journal {
        None => {
            let _ = writeln!(
                s,
                "journal: no [journal] section (vigil-journal run refuses to start)"
            );
        }
        Some(j) => {
            let sinks: Vec<String> = cfg
                .sinks()
                .filter(|k| j.sinks.as_ref().is_none_or(|w| w.contains(&k.name)))
                .filter(|k| k.takes_journal())
                .map(|k| k.name.clone())
                .collect();
            let _ = writeln!(
                s,
                "journal: dir {}, flush {}, segment_size {}, max_local {}, max_lag {}, sinks {}, snapshot on gap {}",
                cfg.journal_dir().display(),
                j.flush,
                j.segment_size,
                j.max_local,
                j.max_lag,
                if sinks.is_empty() { "none".into() } else { sinks.join(", ") },
                j.snapshot_on_gap
            );
        }
    }
    s
}
