//! `vigil-snapshot list`: the local copies per member, or (`--all`) the
//! catalog of every copy, local and in the sinks, merged by archive id.

use serde::Serialize;
use std::fmt::Write;
use std::path::Path;
use vigil_archive::catalog::{self, Catalog, CatalogCopy, CatalogError};
use vigil_core::manifest::Manifest;
use vigil_core::protect::Protections;
use vigil_core::units::human_bytes;

/// ` [pinned: pre-upgrade]` / ` [name: x]` after a listed archive, from
/// `<state.dir>/protected.json`.
fn mark(kept: &Protections, id: &str) -> String {
    match kept.get(id) {
        Some(p) if p.keep => format!(" [pinned: {}]", p.label()),
        Some(p) => p
            .name
            .as_deref()
            .map(|n| format!(" [name: {n}]"))
            .unwrap_or_default(),
        None => String::new(),
    }
}

/// The local copies. Before the first run there is no snapshot dir: no
/// copies yet, not an error.
pub fn local(root: &Path) -> Vec<CatalogCopy> {
    catalog::local_copies(root).copies
}

/// A row of `vigil-snapshot list --json`.
#[derive(Serialize)]
struct LocalRow<'a> {
    member: &'a str,
    path: &'a str,
    verified: bool,
    /// The snapshot's name (`run --name`), if it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    /// Kept by retention until `vigil-snapshot unpin`.
    pinned: bool,
    manifest: &'a Manifest,
}

/// `vigil-snapshot list --json`: one row per local copy.
pub fn local_json<'a>(copies: &'a [CatalogCopy], kept: &'a Protections) -> impl Serialize + 'a {
    copies
        .iter()
        .map(|c| LocalRow {
            member: &c.member,
            path: &c.location,
            verified: c.verified,
            name: kept.get(&c.manifest.id).and_then(|p| p.name.as_deref()),
            pinned: kept.pinned(&c.manifest.id).is_some(),
            manifest: &c.manifest,
        })
        .collect::<Vec<_>>()
}

pub fn human(copies: &[CatalogCopy], kept: &Protections) -> String {
    let mut s = String::new();
    if copies.is_empty() {
        s.push_str("no archives yet\n");
        return s;
    }
    let _ = writeln!(
        s,
        "{:<10} {:<24} {:>9} {:>7} {:>11} {:>6} {:<8} ARCHIVE",
        "MEMBER", "CREATED", "REVISION", "KEYS", "SIZE", "RATIO", "VERIFIED"
    );
    for c in copies {
        let m = &c.manifest;
        let _ = writeln!(
            s,
            "{:<10} {:<24} {:>9} {:>7} {:>11} {:>6.2} {:<8} {}{}",
            c.member,
            m.created_at,
            m.revision,
            m.key_count,
            human_bytes(m.archive_size),
            m.ratio(),
            if c.verified { "yes" } else { "NO" },
            c.location,
            mark(kept, &m.id)
        );
    }
    s
}

/// Local copies plus every sink's (with their Object Lock dates), merged by
/// archive id, newest first. Sinks that cannot be listed are errors of the
/// catalog, not hidden.
pub async fn all(
    cfg: &vigil_core::Config,
    root: &Path,
    sinks: &[std::sync::Arc<vigil_archive::sink::Sink>],
) -> Catalog {
    let mut local = catalog::local_copies(root);
    local
        .errors
        .retain(|e| !matches!(e, CatalogError::NoDir { .. }));
    let mut listings = vec![local];
    for s in sinks {
        listings.push(catalog::sink_copies(s, cfg.cluster_name(), true).await);
    }
    Catalog::merge(listings)
}

/// An archive of `vigil-snapshot list --all --json`.
#[derive(Serialize)]
struct ArchiveRow<'a> {
    id: &'a str,
    member: &'a str,
    created_at: &'a str,
    revision: i64,
    archive_size: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    pinned: bool,
    locations: Vec<CopyRow<'a>>,
}

#[derive(Serialize)]
struct CopyRow<'a> {
    /// `local` or the sink name.
    store: &'a str,
    location: &'a str,
    verified: bool,
    /// The S3 Object Lock retain-until date of this copy, in sinks that lock.
    #[serde(skip_serializing_if = "Option::is_none")]
    locked_until: Option<&'a str>,
}

/// `vigil-snapshot list --all --json`: `{"archives": [...], "errors": [...]}`.
pub fn all_json(cat: &Catalog, kept: &Protections) -> serde_json::Value {
    let archives: Vec<ArchiveRow> = cat
        .entries
        .iter()
        .map(|a| ArchiveRow {
            id: &a.id,
            member: &a.member,
            created_at: &a.manifest.created_at,
            revision: a.manifest.revision,
            archive_size: a.manifest.archive_size,
            name: kept.get(&a.id).and_then(|p| p.name.as_deref()),
            pinned: kept.pinned(&a.id).is_some(),
            locations: a
                .copies
                .iter()
                .map(|c| CopyRow {
                    store: &c.store,
                    location: &c.location,
                    verified: c.verified,
                    locked_until: c.locked_until.as_deref(),
                })
                .collect(),
        })
        .collect();
    let errors: Vec<String> = cat.errors.iter().map(ToString::to_string).collect();
    serde_json::json!({ "archives": archives, "errors": errors })
}

pub fn human_all(cat: &Catalog, kept: &Protections) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{:<10} {:<24} {:>9} {:>11}  COPIES; ID",
        "MEMBER", "CREATED", "REVISION", "SIZE"
    );
    for a in &cat.entries {
        let copies: Vec<String> = a
            .copies
            .iter()
            .map(|c| {
                format!(
                    "{}{}{}",
                    c.store,
                    if c.verified { "" } else { "(unverified)" },
                    c.locked_until
                        .as_deref()
                        .map(|d| format!("(locked until {})", d.get(..10).unwrap_or(d)))
                        .unwrap_or_default()
                )
            })
            .collect();
        let _ = writeln!(
            s,
            "{:<10} {:<24} {:>9} {:>11}  {}; {}{}",
            a.member,
            a.manifest.created_at,
            a.manifest.revision,
            human_bytes(a.manifest.archive_size),
            copies.join(", "),
            a.id,
            mark(kept, &a.id)
        );
    }
    for e in &cat.errors {
        let _ = writeln!(s, "ERROR: {e}");
    }
    s
}

/// What `vigil-snapshot check-sink` found for one sink.
#[derive(Debug, Serialize)]
pub struct SinkCheck {
    pub sink: String,
    pub kind: String,
    pub ok: bool,
    /// Verified copies of this cluster, when the sink could be listed.
    pub copies: Option<usize>,
    pub error: Option<String>,
    #[serde(flatten)]
    pub protection: vigil_archive::lock::Protection,
}

pub async fn check_sink(cfg: &vigil_core::Config, s: &vigil_archive::sink::Sink) -> SinkCheck {
    let (copies, error) = match s.list().await {
        Ok(l) => (
            Some(
                l.iter()
                    .filter(|e| e.manifest.cluster == cfg.cluster_name() && e.is_verified())
                    .count(),
            ),
            None,
        ),
        Err(e) => (None, Some(e.to_string())),
    };
    let protection = s.protection().await;
    SinkCheck {
        sink: s.name().to_string(),
        kind: s.cfg.kind.to_string(),
        ok: error.is_none() && protection.ok,
        copies,
        error,
        protection,
    }
}

pub fn human_checks(v: &[SinkCheck]) -> String {
    let mut s = String::new();
    for c in v {
        let _ = writeln!(
            s,
            "sink {} ({}): {}",
            c.sink,
            c.kind,
            if c.ok { "OK" } else { "FAIL" }
        );
        match (&c.copies, &c.error) {
            (Some(n), _) => {
                let _ = writeln!(s, "  copies:      {n} verified");
            }
            (None, Some(e)) => {
                let _ = writeln!(s, "  error:       {e}");
            }
            (None, None) => {}
        }
        let p = &c.protection;
        if let Some(b) = &p.bucket_lock {
            let _ = writeln!(
                s,
                "  object lock: bucket {b}{}; vigil locks each copy: {}",
                p.bucket_default
                    .as_deref()
                    .map(|d| format!(" (default retention {d})"))
                    .unwrap_or_default(),
                p.vigil_lock
                    .as_deref()
                    .unwrap_or("no (object_lock not set)")
            );
        }
        let _ = writeln!(s, "  deletes:     {}", p.deletes);
        for n in &p.notes {
            let _ = writeln!(s, "  note:        {n}");
        }
    }
    s
}
