//! The ledger of corrupt copies: what `vigil-snapshot scrub` found not to
//! match its manifest, in `<state.dir>/corrupt.json`.
//!
//! A copy in this ledger is not a copy: retention does not count it (so it
//! never displaces a good one), does not prune it either (it is the evidence
//! behind the scrub alert), and restore skips it. A ledger rather than a
//! rewritten manifest, because write-once stores cannot rewrite. An entry
//! leaves the ledger when a later scrub finds that copy good again (it was
//! replaced) or gone (an administrator removed it).

use crate::fsutil::{self, FsError, StateFileError};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

pub const FILE: &str = "corrupt.json";
/// The store name of the local archives (sinks use their own name).
pub const LOCAL: &str = "local";

/// One copy that failed verification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BadCopy {
    /// `local` or the sink's name.
    pub store: String,
    pub member: String,
    /// File name of the archive (its manifest's `archive`).
    pub archive: String,
    /// Where it is, for people.
    pub location: String,
    pub found_at: String,
    /// What scrub saw.
    pub error: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ledger {
    #[serde(default)]
    pub copies: Vec<BadCopy>,
}

#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error(transparent)]
    Fs(#[from] FsError),
    #[error("corrupt-copy ledger {path}: {message}; nothing is pruned until it is readable (fix or remove it, then run `vigil-snapshot scrub`)")]
    Parse { path: PathBuf, message: String },
}

impl Ledger {
    pub fn path(state_dir: &Path) -> PathBuf {
        state_dir.join(FILE)
    }

    /// The ledger of `state_dir`; empty when there is none yet.
    pub fn load(state_dir: &Path) -> Result<Ledger, LedgerError> {
        match fsutil::read_state_json(&Self::path(state_dir)) {
            Ok(l) => Ok(l.unwrap_or_default()),
            Err(StateFileError::Fs(f)) => Err(f.into()),
            Err(StateFileError::Parse { path, message }) => {
                Err(LedgerError::Parse { path, message })
            }
        }
    }

    /// Written atomically, 0600, owned like the state dir.
    pub fn save(&self, state_dir: &Path) -> Result<(), FsError> {
        fsutil::write_state_json(state_dir, &Self::path(state_dir), self)
    }

    /// True if scrub found this copy corrupt.
    pub fn is_bad(&self, store: &str, archive: &str) -> bool {
        self.copies
            .iter()
            .any(|c| c.store == store && c.archive == archive)
    }

    /// Records what one scrub of `store` found: `good` are the archives it
    /// read and found matching, `bad` the ones that did not; `present` (all
    /// archives the store lists) drops entries of copies that are gone.
    /// Returns true if the ledger changed.
    pub fn scrubbed<'a>(
        &mut self,
        store: &str,
        good: impl IntoIterator<Item = &'a str>,
        bad: Vec<BadCopy>,
        present: Option<&std::collections::HashSet<String>>,
    ) -> bool {
        let before = self.copies.clone();
        let good: std::collections::HashSet<&str> = good.into_iter().collect();
        self.copies.retain(|c| {
            c.store != store
                || (!good.contains(c.archive.as_str())
                    && present.is_none_or(|p| p.contains(&c.archive)))
        });
        for b in bad {
            match self
                .copies
                .iter_mut()
                .find(|c| c.store == b.store && c.archive == b.archive)
            {
                // Keep when it was first found; the error may have changed.
                Some(c) => c.error = b.error,
                None => self.copies.push(b),
            }
        }
        self.copies != before
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn bad(store: &str, archive: &str) -> BadCopy {
        BadCopy {
            store: store.into(),
            member: "cp-1".into(),
            archive: archive.into(),
            location: format!("/x/{archive}"),
            found_at: "2026-12-01T00:00:00.000Z".into(),
            error: "sha256 differs".into(),
        }
    }

    #[test]
    fn records_clears_and_survives_a_reload() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(Ledger::load(d.path()).unwrap(), Ledger::default());
        let mut l = Ledger::default();
        assert!(l.scrubbed(LOCAL, ["a"], vec![bad(LOCAL, "b")], None));
        assert!(l.scrubbed("vault", [], vec![bad("vault", "b")], None));
        l.save(d.path()).unwrap();
        let mode = std::fs::metadata(Ledger::path(d.path()))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let mut l = Ledger::load(d.path()).unwrap();
        assert!(l.is_bad(LOCAL, "b") && l.is_bad("vault", "b") && !l.is_bad(LOCAL, "a"));
        // Found again: no change. A sampled scrub that did not read it: kept.
        assert!(!l.scrubbed(LOCAL, [], vec![bad(LOCAL, "b")], None));
        assert!(!l.scrubbed(LOCAL, ["a"], vec![], None));
        // Read and good again (replaced), or gone: cleared, other stores kept.
        assert!(l.scrubbed(LOCAL, ["b"], vec![], None));
        assert!(!l.is_bad(LOCAL, "b") && l.is_bad("vault", "b"));
        let present = std::collections::HashSet::new();
        assert!(l.scrubbed("vault", [], vec![], Some(&present)));
        assert!(l.copies.is_empty());
    }

    #[test]
    fn an_unreadable_ledger_is_an_error_naming_it() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(Ledger::path(d.path()), "{not json").unwrap();
        let e = Ledger::load(d.path()).unwrap_err().to_string();
        assert!(
            e.contains("corrupt.json") && e.contains("nothing is pruned"),
            "{e}"
        );
    }
}
