//! Which archive to restore: by default the newest verified one of the
//! catalog whose restore proof did not fail; `--archive`, `--member`,
//! `--before` and `--revision` narrow the choice.

use crate::stores::describe;
use crate::RestoreError;
use time::OffsetDateTime;
use vigil_archive::catalog::{Catalog, CatalogEntry};

/// "check hash_kv: <error>" of a failed restore proof.
fn proof_check(a: &CatalogEntry) -> String {
    let p = a.manifest.restore_proof.as_ref();
    format!(
        "check {}: {}",
        p.and_then(|p| p.check.as_deref()).unwrap_or("?"),
        p.and_then(|p| p.error.as_deref()).unwrap_or_default()
    )
}

/// How to choose the archive: by default the newest verified one whose
/// restore proof did not fail.
#[derive(Debug, Clone, Default)]
pub struct Selector {
    /// Exactly this archive id (verified or not).
    pub archive: Option<String>,
    pub member: Option<String>,
    /// Created at or before this time.
    pub before: Option<OffsetDateTime>,
    /// Revision at most this (the state before a bad write at revision N+1).
    pub revision: Option<i64>,
}

impl Selector {
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(a) = &self.archive {
            parts.push(format!("--archive {a}"));
        }
        if let Some(m) = &self.member {
            parts.push(format!("--member {m}"));
        }
        if let Some(b) = &self.before {
            parts.push(format!("--before {}", vigil_core::rfc3339(*b)));
        }
        if let Some(r) = &self.revision {
            parts.push(format!("--revision {r}"));
        }
        if parts.is_empty() {
            "newest verified archive".into()
        } else {
            parts.join(" ")
        }
    }

    pub fn select<'a>(&self, cat: &'a Catalog) -> Result<&'a CatalogEntry, RestoreError> {
        let no = |msg: String| {
            let errs = if cat.errors.is_empty() {
                String::new()
            } else {
                let failed: Vec<String> = cat.errors.iter().map(describe).collect();
                format!(" (sources that failed: {})", failed.join("; "))
            };
            RestoreError::NoArchive(format!("{msg}{errs}"))
        };
        if let Some(id) = &self.archive {
            let id = id
                .trim_end_matches(".json")
                .trim_end_matches(vigil_archive::local::EXT_AGE)
                .trim_end_matches(vigil_archive::local::EXT_PLAIN);
            let id = id.rsplit('/').next().unwrap_or(id);
            if let Some(a) = cat.untrusted.iter().find(|a| a.id == id) {
                return Err(no(format!(
                    "archive {id} is of etcd cluster ID {}, not of the pinned cluster ID {}: refused. If that cluster is really yours, accept it with `vigil-snapshot repin` first",
                    a.manifest.cluster_id,
                    cat.cluster_id.as_deref().unwrap_or("?")
                )));
            }
            let a = cat.entries.iter().find(|a| a.id == id).ok_or_else(|| {
                no(format!(
                    "no archive with id {id:?}; `vigil-restore list` shows the ids"
                ))
            })?;
            if !a.verified {
                tracing::warn!(
                    "archive {} is not marked verified; fetch verifies every byte anyway",
                    a.id
                );
            } else if a.manifest.proof_failed() {
                tracing::warn!(
                    "archive {}: its restore proof failed ({}); restoring it as asked",
                    a.id,
                    proof_check(a)
                );
            }
            return Ok(a);
        }
        let matching: Vec<&CatalogEntry> = cat
            .entries
            .iter()
            .filter(|a| self.member.as_ref().is_none_or(|m| &a.member == m))
            .filter(|a| {
                self.before
                    .is_none_or(|b| a.created().is_some_and(|c| c <= b))
            })
            .filter(|a| self.revision.is_none_or(|r| a.manifest.revision <= r))
            .collect();
        // A verified archive whose restore proof failed holds what etcd sent,
        // but not the cluster's state: never the default choice.
        if let Some(a) = matching
            .iter()
            .find(|a| a.verified && !a.manifest.proof_failed())
        {
            for x in matching
                .iter()
                .take_while(|x| x.id != a.id)
                .filter(|x| x.verified)
            {
                tracing::warn!(
                    "passed over archive {}: its restore proof failed ({}); choose it with --archive {} if you must",
                    x.id,
                    proof_check(x),
                    x.id
                );
            }
            return Ok(a);
        }
        if let Some(x) = matching.iter().find(|a| a.verified) {
            return Err(no(format!(
                "{} archive(s) match {}, but the restore proof of every verified one failed (newest: {}, {}); pick one explicitly with --archive ID if you must",
                matching.len(),
                self.describe(),
                x.id,
                proof_check(x)
            )));
        }
        if matching.is_empty() {
            Err(no(format!(
                "no archive matches {} among {} archive(s)",
                self.describe(),
                cat.entries.len()
            )))
        } else {
            Err(no(format!(
                "{} archive(s) match {} but none is verified; pick one explicitly with --archive ID if you must",
                matching.len(),
                self.describe()
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vigil_archive::catalog::{CatalogCopy, Listing};
    use vigil_core::manifest::Manifest;

    fn manifest(id: &str, member: &str, created: &str, rev: i64, verified: bool) -> Manifest {
        serde_json::from_value(serde_json::json!({
            "format": 1, "id": id, "cluster": "prod", "cluster_id": "1", "member": member,
            "member_id": "2", "endpoint": "http://x:1", "revision": rev, "raft_index": 1,
            "raft_term": 1, "etcd_version": "3.4.23", "db_size": 1, "db_size_in_use": 1,
            "leader": "1", "is_leader": true, "key_count": 1, "snapshot_size": 544,
            "snapshot_sha256": "x", "db_sha256": "x", "archive": format!("{id}.db.zst.age"),
            "archive_size": 10, "archive_sha256": "y", "compression": "zstd", "zstd_level": 3,
            "encryption": "age", "age_recipients": [], "created_at": created, "duration_ms": 1,
            "verified_at": if verified { Some(created) } else { None }, "vigil_version": "0.1.0"
        }))
        .unwrap()
    }

    /// What a store named `store` holding `manifests` lists.
    fn listing(store: &str, manifests: &[Manifest]) -> Listing {
        Listing {
            copies: manifests
                .iter()
                .map(|m| CatalogCopy {
                    store: store.into(),
                    member: m.member.clone(),
                    location: format!("{store}://{}", m.id),
                    verified: m.verified_at.is_some(),
                    locked_until: None,
                    manifest: m.clone(),
                })
                .collect(),
            errors: Vec::new(),
        }
    }

    #[test]
    fn merges_copies_and_selects() {
        let a = manifest("prod-cp-1-a", "cp-1", "2026-01-01T00:00:00Z", 100, true);
        let b = manifest("prod-cp-2-b", "cp-2", "2026-01-02T00:00:00Z", 200, false);
        let c = manifest("prod-cp-1-c", "cp-1", "2026-01-03T00:00:00Z", 300, true);
        let cat = Catalog::merge([
            listing("local", &[a.clone(), b.clone()]),
            listing("s3", &[a.clone(), b.clone(), c.clone()]),
        ]);
        assert_eq!(cat.entries.len(), 3);
        assert_eq!(cat.entries[0].id, "prod-cp-1-c");
        let merged = cat.entries.iter().find(|x| x.id == "prod-cp-1-a").unwrap();
        assert_eq!(merged.copies.len(), 2);
        let sel = |s: Selector| s.select(&cat).map(|a| a.id.clone());
        assert_eq!(sel(Selector::default()).unwrap(), "prod-cp-1-c");
        let before = OffsetDateTime::parse(
            "2026-01-02T12:00:00Z",
            &time::format_description::well_known::Rfc3339,
        )
        .unwrap();
        // b is newer than a but not verified.
        assert_eq!(
            sel(Selector {
                before: Some(before),
                ..Default::default()
            })
            .unwrap(),
            "prod-cp-1-a"
        );
        assert_eq!(
            sel(Selector {
                revision: Some(250),
                ..Default::default()
            })
            .unwrap(),
            "prod-cp-1-a"
        );
        let e = sel(Selector {
            member: Some("cp-2".into()),
            ..Default::default()
        })
        .unwrap_err()
        .to_string();
        assert!(e.contains("none is verified"), "{e}");
        assert_eq!(
            sel(Selector {
                archive: Some("/x/cp-2/prod-cp-2-b.db.zst.age".into()),
                ..Default::default()
            })
            .unwrap(),
            "prod-cp-2-b"
        );
        let e = sel(Selector {
            member: Some("cp-9".into()),
            ..Default::default()
        })
        .unwrap_err()
        .to_string();
        assert!(e.contains("no archive matches --member cp-9"), "{e}");
    }

    #[test]
    fn an_archive_whose_restore_proof_failed_is_never_the_default() {
        let failed = |mut m: Manifest| {
            m.restore_proof = Some(vigil_core::manifest::RestoreProof {
                result: vigil_core::manifest::ProofResult::Failed,
                check: Some("hash_kv".into()),
                error: Some("differs".into()),
                ..Default::default()
            });
            m
        };
        let a = manifest("prod-cp-1-a", "cp-1", "2026-01-01T00:00:00Z", 100, true);
        let c = failed(manifest(
            "prod-cp-1-c",
            "cp-1",
            "2026-01-03T00:00:00Z",
            300,
            true,
        ));
        let d = failed(manifest(
            "prod-cp-2-d",
            "cp-2",
            "2026-01-03T00:00:00Z",
            300,
            true,
        ));
        let cat = Catalog::merge([listing("local", &[a, c, d])]);
        let sel = |s: Selector| s.select(&cat).map(|a| a.id.clone());
        // The newer cp-1 archive failed its proof: the older proven one is chosen.
        let cp1 = Selector {
            member: Some("cp-1".into()),
            ..Default::default()
        };
        assert_eq!(sel(cp1).unwrap(), "prod-cp-1-a");
        let e = sel(Selector {
            member: Some("cp-2".into()),
            ..Default::default()
        })
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("restore proof of every verified one failed")
                && e.contains("check hash_kv: differs"),
            "{e}"
        );
        // Asked for by id, it is given (with a warning).
        let by_id = Selector {
            archive: Some("prod-cp-2-d".into()),
            ..Default::default()
        };
        assert_eq!(sel(by_id).unwrap(), "prod-cp-2-d");
    }
}
