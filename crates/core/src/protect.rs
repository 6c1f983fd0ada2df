//! Named and pinned snapshots: `<state.dir>/protected.json`.
//!
//! `vigil-snapshot run --name NAME [--keep]` and `vigil-snapshot pin` record
//! archive ids here; retention (local and every sink) keeps a pinned
//! archive until `unpin`. The state dir, not the manifest, holds them: a
//! manifest in an Object-Lock or append-only sink cannot be rewritten to
//! pin or unpin, and an older vigil reads manifests strictly (an unknown
//! field would hide the archive from it). The state dir is the bastion's
//! own, so a pin outlives the local copy being pruned or deleted.
//! ("pin" in `cluster-id.json` is something else: the trusted etcd cluster.)

use crate::fsutil::{self, FsError, StateFileError};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

pub const FILE: &str = "protected.json";
/// The longest snapshot name.
pub const NAME_MAX: usize = 64;

/// One archive with a name, a pin, or both.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Protected {
    /// The archive id (the manifest's `id`, as `vigil-snapshot list` prints it).
    pub id: String,
    pub member: String,
    /// The snapshot's name (`run --name`), shared by the members' archives of one run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Pinned: retention keeps it everywhere until `unpin`.
    pub keep: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Who pinned or named it (the Unix user) and when (RFC 3339 UTC).
    pub by: String,
    pub at: String,
}

impl Protected {
    /// What retention and listings call it: the name, else the id.
    pub fn label(&self) -> &str {
        self.name.as_deref().unwrap_or(&self.id)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Protections {
    #[serde(default)]
    pub archives: Vec<Protected>,
}

impl Protections {
    pub fn get(&self, id: &str) -> Option<&Protected> {
        self.archives.iter().find(|p| p.id == id)
    }

    /// The label retention keeps `id` under, if it is pinned.
    pub fn pinned(&self, id: &str) -> Option<String> {
        self.get(id)
            .filter(|p| p.keep)
            .map(|p| p.label().to_string())
    }

    /// The ids `target` means: an archive id recorded here, or every
    /// archive of the snapshot named `target`.
    pub fn named(&self, target: &str) -> Vec<&Protected> {
        self.archives
            .iter()
            .filter(|p| p.name.as_deref() == Some(target))
            .collect()
    }

    /// Pins (or, with `keep` false, only names) `id`; an entry already
    /// there keeps its name unless `name` gives one.
    pub fn set(
        &mut self,
        id: &str,
        member: &str,
        name: Option<&str>,
        keep: bool,
        reason: Option<&str>,
    ) {
        let by = user();
        let at = crate::rfc3339(crate::now());
        match self.archives.iter_mut().find(|p| p.id == id) {
            Some(p) => {
                p.keep = keep;
                if let Some(n) = name {
                    p.name = Some(n.to_string());
                }
                if let Some(r) = reason {
                    p.reason = Some(r.to_string());
                }
                p.by = by;
                p.at = at;
            }
            None => self.archives.push(Protected {
                id: id.to_string(),
                member: member.to_string(),
                name: name.map(str::to_string),
                keep,
                reason: reason.map(str::to_string),
                by,
                at,
            }),
        }
    }

    /// Unpins `id`; an entry without a name goes. Whether it was pinned.
    pub fn unpin(&mut self, id: &str) -> bool {
        let was = self.get(id).is_some_and(|p| p.keep);
        if let Some(p) = self.archives.iter_mut().find(|p| p.id == id) {
            p.keep = false;
            p.by = user();
            p.at = crate::rfc3339(crate::now());
        }
        self.archives.retain(|p| p.keep || p.name.is_some());
        was
    }

    /// Forgets `id` (its copies were deleted everywhere).
    pub fn remove(&mut self, id: &str) {
        self.archives.retain(|p| p.id != id);
    }
}

/// Who is doing this, for the record: `SUDO_USER` before `USER`.
fn user() -> String {
    ["SUDO_USER", "USER", "LOGNAME"]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|s| !s.is_empty()))
        .unwrap_or_else(|| "unknown".into())
}

#[derive(Debug, thiserror::Error)]
pub enum ProtectError {
    #[error(transparent)]
    Fs(#[from] FsError),
    #[error("{path}: {message}; it lists the named and pinned snapshots (nothing is pruned while it is unreadable): fix it, or remove it to unpin everything")]
    Corrupt { path: PathBuf, message: String },
    #[error("snapshot name {name:?}: {problem}; use 1 to {NAME_MAX} characters of a-z, A-Z, 0-9, '.', '_' and '-', starting with a letter or digit (e.g. pre-upgrade-1.29)")]
    BadName { name: String, problem: &'static str },
}

pub fn path(state_dir: &Path) -> PathBuf {
    state_dir.join(FILE)
}

/// The protections recorded; a missing file (or state dir) is none.
pub fn load(state_dir: &Path) -> Result<Protections, ProtectError> {
    fsutil::read_state_json(&path(state_dir))
        .map(Option::unwrap_or_default)
        .map_err(|e| match e {
            StateFileError::Fs(f) => ProtectError::Fs(f),
            StateFileError::Parse { path, message } => ProtectError::Corrupt { path, message },
        })
}

/// Writes them atomically (0600 in the 0700 state dir).
pub fn save(state_dir: &Path, p: &Protections) -> Result<(), ProtectError> {
    fsutil::ensure_private_dir(state_dir).map_err(ProtectError::Fs)?;
    Ok(fsutil::write_state_json(state_dir, &path(state_dir), p)?)
}

/// A snapshot name: what file names, URLs and shells take without quoting.
pub fn check_name(name: &str) -> Result<(), ProtectError> {
    let bad = |problem| {
        Err(ProtectError::BadName {
            name: name.to_string(),
            problem,
        })
    };
    if name.is_empty() {
        return bad("it is empty");
    }
    if name.len() > NAME_MAX {
        return bad("it is too long");
    }
    if !name.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        return bad("it does not start with a letter or digit");
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
    {
        return bad("it has a character outside a-z, A-Z, 0-9, '.', '_' and '-'");
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        check_name("pre-upgrade-1.29").unwrap();
        check_name("a").unwrap();
        for bad in ["", "-x", ".x", "a b", "a/b", "ä", "x".repeat(65).as_str()] {
            let e = check_name(bad).unwrap_err().to_string();
            assert!(e.contains("pre-upgrade-1.29"), "{e}");
        }
    }

    #[test]
    fn pin_unpin_and_names_survive_a_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        assert_eq!(load(&state).unwrap(), Protections::default());
        let mut p = Protections::default();
        p.set(
            "prod-cp-1-a",
            "cp-1",
            Some("pre-upgrade"),
            true,
            Some("1.29"),
        );
        p.set("prod-cp-2-a", "cp-2", Some("pre-upgrade"), true, None);
        p.set("prod-cp-1-b", "cp-1", None, true, None);
        save(&state, &p).unwrap();
        let mut p = load(&state).unwrap();
        assert_eq!(p.pinned("prod-cp-1-a").as_deref(), Some("pre-upgrade"));
        assert_eq!(p.pinned("prod-cp-1-b").as_deref(), Some("prod-cp-1-b"));
        assert_eq!(p.named("pre-upgrade").len(), 2);
        assert!(p.unpin("prod-cp-1-a"));
        assert!(p.unpin("prod-cp-1-b"));
        assert!(!p.unpin("prod-cp-1-b"));
        // The name stays, the bare pin goes.
        assert_eq!(p.pinned("prod-cp-1-a"), None);
        assert_eq!(p.named("pre-upgrade").len(), 2);
        assert!(p.get("prod-cp-1-b").is_none());
        std::fs::write(path(&state), "{").unwrap();
        assert!(load(&state)
            .unwrap_err()
            .to_string()
            .contains("protected.json"));
    }
}
