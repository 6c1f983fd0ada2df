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
