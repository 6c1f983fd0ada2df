//! The archive catalog: every copy of every archive, in the local snapshot
//! dir and in the sinks, merged by archive identity (the manifest `id`).
//! `vigil-snapshot list`, vigil-restore (list, selection, fetch, the drill)
//! and vigil-health's freshness all read the copies through it.
//!
//! The names, from the store up:
//! - a [`LocalArchive`] is an archive file with its manifest in the local
//!   snapshot dir, a [`SinkEntry`](crate::sink::SinkEntry) what a sink's
//!   listing returns;
//! - both become a [`CatalogCopy`]: one copy, in one store (`local` or a sink);
//! - the copies of one archive id are one [`CatalogEntry`], and all of them
//!   the [`Catalog`], newest first.

use crate::local::{self, LocalArchive};
use crate::sink::{Sink, SinkError};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use time::OffsetDateTime;
use vigil_core::corrupt::{self, Ledger};
use vigil_core::manifest::Manifest;
use vigil_core::pin::{ClusterPin, PinError};
use vigil_core::retention::newest_first_in;

/// The store name of the local snapshot dir (also the corrupt-copy ledger's).
pub const LOCAL: &str = corrupt::LOCAL;

/// One copy of an archive, in one store.
#[derive(Debug, Clone)]
pub struct CatalogCopy {
    /// `local`, or the sink's name.
    pub store: String,
    /// The member the store files it under (the local member dir, the sink's manifest).
    pub member: String,
    /// Where the copy lives, for humans and for opening it: a path or a URL.
    pub location: String,
    /// The store's own judgement: the manifest says verified and the stored
    /// size matches (fetch verifies every byte again regardless).
    pub verified: bool,
    /// The S3 Object Lock retain-until date, when it was asked for and the sink locks.
    pub locked_until: Option<String>,
    pub manifest: Manifest,
}

/// Why a store (or part of it) could not be listed.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// The local snapshot dir is not there (no run yet, or not mounted).
    #[error("snapshot dir {} does not exist", dir.display())]
    NoDir { dir: PathBuf },
    /// Listing a sink, or reading a copy's lock date, failed.
    #[error("{source}")]
    Sink {
        sink: String,
        #[source]
        source: SinkError,
    },
    /// The cluster pin of the state dir is unreadable: nothing is filtered by it.
    #[error(transparent)]
    Pin(#[from] PinError),
}

impl CatalogError {
    /// The store that failed, if the error is a store's.
    pub fn store(&self) -> Option<&str> {
        match self {
            CatalogError::NoDir { .. } => Some(LOCAL),
            CatalogError::Sink { sink, .. } => Some(sink),
            CatalogError::Pin(_) => None,
        }
    }
}

/// What listing one store gave: its copies, and what went wrong. A store
/// that cannot be listed at all has no copies and one error.
#[derive(Debug, Default)]
pub struct Listing {
    pub copies: Vec<CatalogCopy>,
    pub errors: Vec<CatalogError>,
}

impl From<CatalogError> for Listing {
    fn from(e: CatalogError) -> Self {
        Listing {
            copies: Vec::new(),
            errors: vec![e],
        }
    }
}

impl CatalogCopy {
    fn of_local(a: LocalArchive) -> Self {
        CatalogCopy {
            store: LOCAL.into(),
            verified: a.is_verified(),
            location: a.archive_path.display().to_string(),
            member: a.member_dir_name,
            locked_until: None,
            manifest: a.manifest,
        }
    }
}

/// The copies in the local snapshot dir (every member dir under `root`).
pub fn local_copies(root: &Path) -> Listing {
    if !root.is_dir() {
        return CatalogError::NoDir {
            dir: root.to_path_buf(),
        }
        .into();
    }
    Listing {
        copies: local::list_all(root)
            .into_iter()
            .map(CatalogCopy::of_local)
            .collect(),
        errors: Vec::new(),
    }
}

/// The copies of `cluster`'s archives in one sink. With `lock_dates`, each
/// copy's Object Lock date is read too; a date that cannot be read is an
/// error of the listing, the copy is listed without it.
pub async fn sink_copies(sink: &Sink, cluster: &str, lock_dates: bool) -> Listing {
    let failed = |source| CatalogError::Sink {
        sink: sink.name().to_string(),
        source,
    };
    let entries = match sink.list().await {
        Ok(e) => e,
        Err(e) => return failed(e).into(),
    };
    let mut out = Listing::default();
    for e in entries
        .into_iter()
        .filter(|e| e.manifest.cluster == cluster)
    {
        let locked_until = if lock_dates {
            match sink.lock_date(&e.member, &e.manifest.archive).await {
                Ok(d) => d.map(vigil_core::rfc3339),
                Err(err) => {
                    out.errors.push(failed(err));
                    None
                }
            }
        } else {
            None
        };
        out.copies.push(CatalogCopy {
            store: sink.name().to_string(),
            location: sink.location(&e.member, &e.manifest.archive),
            verified: e.is_verified(),
            locked_until,
            member: e.member,
            manifest: e.manifest,
        });
    }
    out
}

/// The newest verified copy of `member` among one store's `copies`, by
/// cluster generation and revision (not by clock). A copy the corrupt-copy
/// ledger holds bad is no copy.
pub fn newest_verified<'a>(
    copies: &'a [CatalogCopy],
    member: &str,
    ledger: Option<&Ledger>,
    pin: Option<&ClusterPin>,
) -> Option<&'a CatalogCopy> {
    copies
        .iter()
        .filter(|c| {
            c.member == member
                && c.verified
                && !ledger.is_some_and(|l| l.is_bad(&c.store, &c.manifest.archive))
        })
        .min_by(|a, b| newest_first_in(pin, &a.manifest, &b.manifest))
}

/// One archive, with every copy of it the stores hold.
#[derive(Debug, Clone)]
pub struct CatalogEntry {
    pub id: String,
    pub member: String,
    /// At least one copy is verified.
    pub verified: bool,
    /// The copies, in the order the stores were listed (verified ones first
    /// once [`Catalog::apply_state`] ran).
    pub copies: Vec<CatalogCopy>,
    /// The manifest of the first copy listed.
    pub manifest: Manifest,
}

impl CatalogEntry {
    pub fn created(&self) -> Option<OffsetDateTime> {
        self.manifest.created()
    }
}

/// Every archive of every store listed, newest first, and what failed.
#[derive(Debug, Default)]
pub struct Catalog {
    pub entries: Vec<CatalogEntry>,
    pub errors: Vec<CatalogError>,
    /// Archives of an etcd cluster this bastion never pinned (see
    /// `vigil_core::pin`): listed, never selected.
    pub untrusted: Vec<CatalogEntry>,
    /// The pinned cluster ID the catalog was filtered by.
    pub cluster_id: Option<String>,
}

/// Newest by what cannot go backwards (cluster generation, revision), not
/// by a bastion clock that may have run ahead.
fn sort_newest_first(entries: &mut [CatalogEntry], pin: Option<&ClusterPin>) {
    entries.sort_by(|a, b| {
        newest_first_in(pin, &a.manifest, &b.manifest).then_with(|| a.member.cmp(&b.member))
    });
}

impl Catalog {
    /// Merges the stores' listings by archive id, newest first. The copies
    /// of one archive keep the order of the listings (list the cheapest
    /// store first).
    pub fn merge(listings: impl IntoIterator<Item = Listing>) -> Catalog {
        let mut by_id: BTreeMap<String, CatalogEntry> = BTreeMap::new();
        let mut errors = Vec::new();
        for l in listings {
            errors.extend(l.errors);
            for c in l.copies {
                let m = &c.manifest;
                match by_id.get_mut(&m.id) {
                    Some(a) => {
                        if a.manifest.archive_sha256 != m.archive_sha256 {
                            tracing::warn!(
                                "archive {}: the copy at {} ({}) has sha256 {} but another copy has {}; both are kept as copies, fetch verifies each",
                                m.id, c.location, c.store, m.archive_sha256, a.manifest.archive_sha256
                            );
                        }
                        a.verified |= c.verified;
                        a.copies.push(c);
                    }
                    None => {
                        let e = CatalogEntry {
                            id: m.id.clone(),
                            member: m.member.clone(),
                            verified: c.verified,
                            manifest: m.clone(),
                            copies: vec![c],
                        };
                        by_id.insert(e.id.clone(), e);
                    }
                }
            }
        }
        let mut entries: Vec<CatalogEntry> = by_id.into_values().collect();
        sort_newest_first(&mut entries, None);
        Catalog {
            entries,
            errors,
            ..Catalog::default()
        }
    }

    /// Applies what the state dir knows about the copies: those scrub found
    /// corrupt are not verified (and tried last), and only archives of the
    /// cluster pinned there (its current or an earlier ID) are kept; the
    /// others move to `untrusted`. Without a pin (a fresh bastion at 3 a.m.)
    /// nothing is filtered, but several cluster IDs are warned about.
    pub fn apply_state(&mut self, state_dir: &Path) {
        let pin = match vigil_core::pin::load(state_dir) {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!("{e}; archives are not filtered by cluster ID");
                self.errors.push(e.into());
                None
            }
        };
        let ledger = Ledger::load(state_dir).unwrap_or_else(|e| {
            tracing::warn!(
                "{e}; copies scrub found corrupt are not skipped (fetch still checks every byte)"
            );
            Ledger::default()
        });
        for a in &mut self.entries {
            for c in &mut a.copies {
                if ledger.is_bad(&c.store, &a.manifest.archive) {
                    c.verified = false;
                }
            }
            a.copies.sort_by_key(|c| !c.verified);
            a.verified = a.copies.iter().any(|c| c.verified);
        }
        let Some(p) = pin else {
            let ids: std::collections::BTreeSet<&str> = self
                .entries
                .iter()
                .map(|a| a.manifest.cluster_id.as_str())
                .collect();
            if ids.len() > 1 {
                tracing::warn!(
                    "the archives come from {} etcd cluster IDs ({}) and no cluster ID is pinned in {}; check `vigil-restore list --json` (cluster_id) before choosing with --archive",
                    ids.len(),
                    ids.into_iter().collect::<Vec<_>>().join(", "),
                    state_dir.display()
                );
            }
            return;
        };
        // A rebuilt cluster starts again at a low revision: its generation first.
        sort_newest_first(&mut self.entries, Some(&p));
        let (keep, other): (Vec<CatalogEntry>, Vec<CatalogEntry>) =
            std::mem::take(&mut self.entries)
                .into_iter()
                .partition(|a| p.trusts(&a.manifest.cluster_id));
        for a in &other {
            tracing::warn!(
                "ignoring archive {} (member {}): it is of etcd cluster ID {}, not of the pinned {} ({})",
                a.id,
                a.member,
                a.manifest.cluster_id,
                p.cluster_id,
                vigil_core::pin::path(state_dir).display()
            );
        }
        self.entries = keep;
        self.untrusted = other;
        self.cluster_id = Some(p.cluster_id);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use vigil_core::corrupt::BadCopy;

    fn manifest(id: &str, cluster_id: &str, rev: i64) -> Manifest {
        serde_json::from_value(serde_json::json!({
            "format": 1, "id": id, "cluster": "prod", "cluster_id": cluster_id, "member": "cp-1",
            "member_id": "2", "endpoint": "http://x:1", "revision": rev, "raft_index": 1,
            "raft_term": 1, "etcd_version": "3.4.23", "db_size": 1, "db_size_in_use": 1,
            "leader": "1", "is_leader": true, "key_count": 1, "snapshot_size": 544,
            "snapshot_sha256": "x", "db_sha256": "x", "archive": format!("{id}.db.zst.age"),
            "archive_size": 10, "archive_sha256": "y", "compression": "zstd", "zstd_level": 3,
            "encryption": "age", "age_recipients": [], "created_at": "2026-01-01T00:00:00Z",
            "duration_ms": 1, "verified_at": "2026-01-01T00:00:00Z", "vigil_version": "0.1.0"
        }))
        .unwrap()
    }

    /// A ledger that holds the local copy of `m` corrupt.
    fn corrupt_locally(m: &Manifest) -> Ledger {
        let mut ledger = Ledger::default();
        ledger.scrubbed(
            LOCAL,
            [],
            vec![BadCopy {
                store: LOCAL.into(),
                member: m.member.clone(),
                archive: m.archive.clone(),
                location: format!("local://{}", m.id),
                found_at: "2026-01-02T00:00:00Z".into(),
                error: "sha256 differs".into(),
            }],
            None,
        );
        ledger
    }

    fn listing(store: &str, manifests: &[Manifest]) -> Listing {
        Listing {
            copies: manifests
                .iter()
                .map(|m| CatalogCopy {
                    store: store.into(),
                    member: m.member.clone(),
                    location: format!("{store}://{}", m.id),
                    verified: true,
                    locked_until: None,
                    manifest: m.clone(),
                })
                .collect(),
            errors: Vec::new(),
        }
    }

    #[test]
    fn the_state_dir_marks_corrupt_copies_and_keeps_only_the_pinned_cluster() {
        let state = tempfile::tempdir().unwrap();
        let a = manifest("prod-cp-1-a", "1", 100);
        let b = manifest("prod-cp-1-b", "2", 200);
        vigil_core::pin::save(state.path(), &ClusterPin::new("prod", "1", "test")).unwrap();
        corrupt_locally(&a).save(state.path()).unwrap();

        let mut cat = Catalog::merge([
            listing(LOCAL, std::slice::from_ref(&a)),
            listing("s3", &[a, b]),
        ]);
        assert_eq!(cat.entries[0].id, "prod-cp-1-b");
        cat.apply_state(state.path());
        assert_eq!(cat.cluster_id.as_deref(), Some("1"));
        assert_eq!(cat.untrusted.len(), 1);
        assert_eq!(cat.untrusted[0].id, "prod-cp-1-b");
        let e = &cat.entries[..];
        assert_eq!(e.len(), 1);
        // The corrupt local copy is no longer verified, and is tried last.
        let stores: Vec<(&str, bool)> = e[0]
            .copies
            .iter()
            .map(|c| (c.store.as_str(), c.verified))
            .collect();
        assert_eq!(stores, [("s3", true), (LOCAL, false)]);
        assert!(e[0].verified);
    }

    #[test]
    fn newest_verified_skips_corrupt_and_other_members() {
        let mut old = manifest("prod-cp-1-a", "1", 100);
        old.member = "cp-1".into();
        let new = manifest("prod-cp-1-b", "1", 200);
        let mut other = manifest("prod-cp-2-c", "1", 300);
        other.member = "cp-2".into();
        let l = listing(LOCAL, &[old, new.clone(), other]);
        let n = newest_verified(&l.copies, "cp-1", None, None).unwrap();
        assert_eq!(n.manifest.id, "prod-cp-1-b");
        let ledger = corrupt_locally(&new);
        let n = newest_verified(&l.copies, "cp-1", Some(&ledger), None).unwrap();
        assert_eq!(n.manifest.id, "prod-cp-1-a");
    }
}
