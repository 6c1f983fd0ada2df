//! `vigil-restore list`: the catalog as a table or as JSON.

use crate::stores::describe;
use serde::Serialize;
use std::fmt::Write;
use vigil_archive::catalog::{Catalog, CatalogEntry};
use vigil_core::units::human_bytes;

/// An archive of `vigil-restore list --json`.
#[derive(Serialize)]
struct ArchiveRow<'a> {
    id: &'a str,
    member: &'a str,
    created_at: &'a str,
    revision: i64,
    key_count: i64,
    archive_size: u64,
    snapshot_size: u64,
    etcd_version: &'a str,
    /// At least one copy is verified.
    verified: bool,
    copies: Vec<CopyRow<'a>>,
}

#[derive(Serialize)]
struct CopyRow<'a> {
    /// `local`, or a sink's name.
    source: &'a str,
    location: &'a str,
    verified: bool,
}

#[derive(Serialize)]
struct CatalogRow<'a> {
    archives: Vec<ArchiveRow<'a>>,
    errors: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    untrusted: Vec<ArchiveRow<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cluster_id: Option<&'a str>,
}

fn row(a: &CatalogEntry) -> ArchiveRow<'_> {
    let m = &a.manifest;
    ArchiveRow {
        id: &a.id,
        member: &a.member,
        created_at: &m.created_at,
        revision: m.revision,
        key_count: m.key_count,
        archive_size: m.archive_size,
        snapshot_size: m.snapshot_size,
        etcd_version: &m.etcd_version,
        verified: a.verified,
        copies: a
            .copies
            .iter()
            .map(|c| CopyRow {
                source: &c.store,
                location: &c.location,
                verified: c.verified,
            })
            .collect(),
    }
}

/// `vigil-restore list --json`: archives, copies, errors, the untrusted.
pub fn json(cat: &Catalog) -> impl Serialize + '_ {
    CatalogRow {
        archives: cat.entries.iter().map(row).collect(),
        errors: cat.errors.iter().map(describe).collect(),
        untrusted: cat.untrusted.iter().map(row).collect(),
        cluster_id: cat.cluster_id.as_deref(),
    }
}

/// `vigil-restore list` as a table: one line per archive, newest first.
pub fn human(cat: &Catalog) -> String {
    let mut s = String::new();
    for e in &cat.errors {
        let _ = writeln!(s, "warning: {}", describe(e));
    }
    for a in &cat.untrusted {
        let _ = writeln!(
            s,
            "warning: ignored archive {} (member {}): etcd cluster ID {} is not the pinned {}",
            a.id,
            a.member,
            a.manifest.cluster_id,
            cat.cluster_id.as_deref().unwrap_or("?")
        );
    }
    if cat.entries.is_empty() {
        s.push_str("no archives found\n");
        return s;
    }
    let _ = writeln!(
        s,
        "{:<40} {:<10} {:<24} {:>10} {:>10} {:<8} LOCATIONS",
        "ID", "MEMBER", "CREATED", "REVISION", "SIZE", "VERIFIED"
    );
    for a in &cat.entries {
        let locs: Vec<String> = a
            .copies
            .iter()
            .map(|c| {
                format!(
                    "{}:{}{}",
                    c.store,
                    c.location,
                    if c.verified { "" } else { " (unverified)" }
                )
            })
            .collect();
        let _ = writeln!(
            s,
            "{:<40} {:<10} {:<24} {:>10} {:>10} {:<8} {}",
            a.id,
            a.member,
            a.manifest.created_at,
            a.manifest.revision,
            human_bytes(a.manifest.archive_size),
            if a.verified { "yes" } else { "NO" },
            locs.join(", ")
        );
    }
    s
}
