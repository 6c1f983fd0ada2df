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
