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
    /// The S3 Object Lock retain-until date of this copy, in sinks that lock.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub locked_until: Option<String>,
}

/// Local copies plus every sink's, merged by archive id, newest first.
/// Sinks that cannot be listed are returned as errors, not hidden.
pub async fn merged(
    cfg: &vigil_core::Config,
    root: &Path,
    sinks: &[std::sync::Arc<vigil_archive::sink::Sink>],
) -> (Vec<Merged>, Vec<String>) {
    let mut by_id: std::collections::BTreeMap<String, Merged> = std::collections::BTreeMap::new();
    let mut add = |m: &Manifest,
                   store: &str,
                   location: String,
                   verified: bool,
                   locked_until: Option<String>| {
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
            locked_until,
        });
    };
    for e in entries(root) {
        add(
            &e.manifest,
            "local",
            e.path.display().to_string(),
            e.verified,
            None,
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
                    let locked = match s.lock_date(&e.member, &e.manifest.archive).await {
                        Ok(d) => d.map(vigil_core::rfc3339),
                        Err(err) => {
                            errors.push(err.to_string());
                            None
                        }
                    };
                    add(
                        &e.manifest,
                        s.name(),
                        s.location(&e.member, &e.manifest.archive),
                        e.is_verified(),
                        locked,
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
                    "{}{}{}",
                    l.store,
                    if l.verified { "" } else { "(unverified)" },
                    l.locked_until
                        .as_deref()
                        .map(|d| format!("(locked until {})", d.get(..10).unwrap_or(d)))
                        .unwrap_or_default()
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
