//! `vigil-snapshot list`: the local archives per member.

use serde::Serialize;
use std::fmt::Write;
use std::path::{Path, PathBuf};
use vigil_archive::local;
use vigil_core::manifest::Manifest;
use vigil_core::units::human_bytes;

#[derive(Debug, Serialize)]
pub struct Entry {
    pub member: String,
    pub path: PathBuf,
    pub verified: bool,
    pub manifest: Manifest,
}

pub fn entries(root: &Path) -> Vec<Entry> {
    local::list_all(root)
        .into_iter()
        .map(|s| Entry {
            verified: s.is_verified(),
            member: s.member_dir_name,
            path: s.archive_path,
            manifest: s.manifest,
        })
        .collect()
}

pub fn human(entries: &[Entry]) -> String {
    let mut s = String::new();
    if entries.is_empty() {
        s.push_str("no archives yet\n");
        return s;
    }
    let _ = writeln!(
        s,
        "{:<10} {:<24} {:>9} {:>7} {:>11} {:>6} {:<8} ARCHIVE",
        "MEMBER", "CREATED", "REVISION", "KEYS", "SIZE", "RATIO", "VERIFIED"
    );
    for e in entries {
        let m = &e.manifest;
        let _ = writeln!(
            s,
            "{:<10} {:<24} {:>9} {:>7} {:>11} {:>6.2} {:<8} {}",
            e.member,
            m.created_at,
            m.revision,
            m.key_count,
            human_bytes(m.archive_size),
            m.ratio(),
            if e.verified { "yes" } else { "NO" },
            e.path.display()
        );
    }
    s
}

/// One archive identity and every place a copy of it lives.
#[derive(Debug, Serialize)]
pub struct Merged {
    pub id: String,
    pub member: String,
    pub created_at: String,
    pub revision: i64,
    pub archive_size: u64,
    pub locations: Vec<Location>,
}

#[derive(Debug, Serialize)]
pub struct Location {
    /// `local` or the sink name.
    pub store: String,
    pub location: String,
    pub verified: bool,
}

/// Local copies plus every sink's, merged by archive id, newest first.
/// Sinks that cannot be listed are returned as errors, not hidden.
pub async fn merged(
    cfg: &vigil_core::Config,
    root: &Path,
    sinks: &[std::sync::Arc<vigil_archive::sink::Sink>],
) -> (Vec<Merged>, Vec<String>) {
    let mut by_id: std::collections::BTreeMap<String, Merged> = std::collections::BTreeMap::new();
    let mut add = |m: &Manifest, store: &str, location: String, verified: bool| {
        let e = by_id.entry(m.id.clone()).or_insert_with(|| Merged {
            id: m.id.clone(),
            member: m.member.clone(),
            created_at: m.created_at.clone(),
            revision: m.revision,
            archive_size: m.archive_size,
            locations: Vec::new(),
        });
        e.locations.push(Location {
            store: store.to_string(),
            location,
            verified,
        });
    };
    for e in entries(root) {
        add(
            &e.manifest,
            "local",
            e.path.display().to_string(),
            e.verified,
        );
    }
    let mut errors = Vec::new();
    for s in sinks {
        match s.list().await {
            Ok(list) => {
                for e in list
                    .iter()
                    .filter(|e| e.manifest.cluster == cfg.cluster_name())
                {
                    add(
                        &e.manifest,
                        s.name(),
                        s.location(&e.member, &e.manifest.archive),
                        e.is_verified(),
                    );
                }
            }
            Err(e) => errors.push(e.to_string()),
        }
    }
    let mut v: Vec<Merged> = by_id.into_values().collect();
    v.sort_by(|a, b| {
        b.created_at
            .cmp(&a.created_at)
            .then(a.member.cmp(&b.member))
    });
    (v, errors)
}

pub fn human_merged(v: &[Merged], errors: &[String]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{:<10} {:<24} {:>9} {:>11}  COPIES",
        "MEMBER", "CREATED", "REVISION", "SIZE"
    );
    for m in v {
        let copies: Vec<String> = m
            .locations
            .iter()
            .map(|l| {
                format!(
                    "{}{}",
                    l.store,
                    if l.verified { "" } else { "(unverified)" }
                )
            })
            .collect();
        let _ = writeln!(
            s,
            "{:<10} {:<24} {:>9} {:>11}  {}",
            m.member,
            m.created_at,
            m.revision,
            human_bytes(m.archive_size),
            copies.join(", ")
        );
    }
    for e in errors {
        let _ = writeln!(s, "ERROR: {e}");
    }
    s
}
