//! Where archives can be read from, and which one to restore.
//!
//! A [`Source`] lists the archives it holds (each with its manifest) and
//! opens one as a byte stream. The local snapshot dir is [`LocalSource`];
//! the shipping sinks (S3/Ceph RGW, fs, Azure, GCS, tape, dir) plug in as
//! more sources. [`catalog`] merges every source's copies by archive
//! identity (the manifest `id`), and [`Selector`] picks one archive.
//!
//! # Implementing a source on an object store
//!
//! The trait is synchronous on purpose: the fetch pipeline (age, zstd, sha256)
//! is blocking CPU work on one thread. An async store keeps its own runtime and
//! bridges with [`ChunkReader`]:
//!
//! ```ignore
//! struct S3Source { name: String, store: Arc<dyn ObjectStore>, prefix: Path, rt: tokio::runtime::Runtime }
//! impl Source for S3Source {
//!     fn name(&self) -> &str { &self.name }
//!     fn list(&self) -> Result<Vec<Located>, SourceError> {
//!         // list `<prefix>/<member>/*.json`, get each manifest, parse with serde_json,
//!         // and return Located { location: "s3://bucket/key", verified: <head size == manifest.archive_size>, .. }
//!     }
//!     fn open(&self, copy: &Located) -> Result<Opened, SourceError> {
//!         let get = self.rt.block_on(self.store.get(&key_of(copy))).map_err(...)?;
//!         let len = get.meta.size;
//!         let mut stream = get.into_stream();
//!         let handle = self.rt.handle().clone();
//!         let chunks = std::iter::from_fn(move || {
//!             handle.block_on(stream.next()).map(|r| r.map_err(std::io::Error::other))
//!         });
//!         Ok(Opened { reader: Box::new(ChunkReader::new(chunks)), len: Some(len) })
//!     }
//! }
//! ```
//! Downloads are never buffered whole: the reader is pulled chunk by chunk.

use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use time::OffsetDateTime;
use vigil_core::manifest::Manifest;
use vigil_core::Config;

/// One stored copy of an archive, as a source lists it.
#[derive(Debug, Clone, Serialize)]
pub struct Located {
    /// The source's name (`local`, or a sink's name).
    pub source: String,
    /// Where the copy lives, for humans and for [`Source::open`]: a path or a URL.
    pub location: String,
    /// The source's own judgement: the manifest says verified and the stored
    /// size matches. Fetch verifies every byte again regardless.
    pub verified: bool,
    #[serde(skip)]
    pub manifest: Manifest,
}

/// An opened archive: a byte stream and, when known, its length.
pub struct Opened {
    pub reader: Box<dyn Read + Send>,
    pub len: Option<u64>,
}

impl fmt::Debug for Opened {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Opened").field("len", &self.len).finish()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("source {source_name}: {location} is missing ({message}); the copy may have been pruned or the source is not mounted")]
    NotFound {
        source_name: String,
        location: String,
        message: String,
    },
    #[error("source {source_name} is unavailable: {message}; please check that it is reachable and configured")]
    Unavailable {
        source_name: String,
        message: String,
    },
    #[error("unknown source {name:?}; the configured sources are: {known}")]
    Unknown { name: String, known: String },
}

/// Somewhere archives can be read from.
pub trait Source: Send + Sync + fmt::Debug {
    /// Short name shown in listings and accepted by `--source` (`local`, a sink name).
    fn name(&self) -> &str;
    /// Every archive this source holds, with its manifest. Copies whose
    /// manifest cannot be read are logged and skipped.
    fn list(&self) -> Result<Vec<Located>, SourceError>;
    /// Opens the archive bytes of a copy this source listed.
    fn open(&self, copy: &Located) -> Result<Opened, SourceError>;
    /// The archived RKE2 server token (`age(token)`), if this source keeps it.
    fn open_token(&self, _cluster: &str) -> Result<Option<Opened>, SourceError> {
        Ok(None)
    }
}

/// The local snapshot dir: `<snapshot.dir>/<member>/<id>.db.zst.age` + `.json`.
#[derive(Debug, Clone)]
pub struct LocalSource {
    pub root: PathBuf,
}

impl LocalSource {
    pub const NAME: &'static str = "local";

    pub fn new(root: &Path) -> Self {
        Self {
            root: root.to_path_buf(),
        }
    }

    /// Where the RKE2 token archive of `cluster` lives.
    pub fn token_path(&self, cluster: &str) -> PathBuf {
        self.root
            .join("rke2")
            .join(format!("{cluster}-server-token.age"))
    }
}

impl Source for LocalSource {
    fn name(&self) -> &str {
        Self::NAME
    }

    fn list(&self) -> Result<Vec<Located>, SourceError> {
        if !self.root.is_dir() {
            return Err(SourceError::Unavailable {
                source_name: Self::NAME.into(),
                message: format!("snapshot dir {} does not exist", self.root.display()),
            });
        }
        Ok(vigil_archive::local::list_all(&self.root)
            .into_iter()
            .map(|s| Located {
                source: Self::NAME.into(),
                verified: s.is_verified(),
                location: s.archive_path.display().to_string(),
                manifest: s.manifest,
            })
            .collect())
    }

    fn open(&self, copy: &Located) -> Result<Opened, SourceError> {
        let f = std::fs::File::open(&copy.location).map_err(|e| SourceError::NotFound {
            source_name: Self::NAME.into(),
            location: copy.location.clone(),
            message: e.to_string(),
        })?;
        let len = f.metadata().ok().map(|m| m.len());
        Ok(Opened {
            reader: Box::new(f),
            len,
        })
    }

    fn open_token(&self, cluster: &str) -> Result<Option<Opened>, SourceError> {
        let p = self.token_path(cluster);
        match std::fs::File::open(&p) {
            Ok(f) => Ok(Some(Opened {
                len: f.metadata().ok().map(|m| m.len()),
                reader: Box::new(f),
            })),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(SourceError::Unavailable {
                source_name: Self::NAME.into(),
                message: format!("reading {}: {e}", p.display()),
            }),
        }
    }
}

/// Adapts an iterator of chunks (e.g. an object store's byte stream pulled
/// with `Handle::block_on`) into a `Read`.
pub struct ChunkReader<I, B> {
    chunks: I,
    current: Option<B>,
    pos: usize,
}

impl<I, B> fmt::Debug for ChunkReader<I, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChunkReader")
            .field("pos", &self.pos)
            .finish()
    }
}

impl<I, B> ChunkReader<I, B>
where
    I: Iterator<Item = io::Result<B>>,
    B: AsRef<[u8]>,
{
    pub fn new(chunks: I) -> Self {
        Self {
            chunks,
            current: None,
            pos: 0,
        }
    }
}

impl<I, B> Read for ChunkReader<I, B>
where
    I: Iterator<Item = io::Result<B>>,
    B: AsRef<[u8]>,
{
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            if let Some(c) = &self.current {
                let c = c.as_ref();
                if self.pos < c.len() {
                    let n = buf.len().min(c.len() - self.pos);
                    buf[..n].copy_from_slice(&c[self.pos..self.pos + n]);
                    self.pos += n;
                    return Ok(n);
                }
            }
            match self.chunks.next() {
                None => return Ok(0),
                Some(Err(e)) => return Err(e),
                Some(Ok(b)) => {
                    self.current = Some(b);
                    self.pos = 0;
                }
            }
        }
    }
}

/// Keeps only the source named `name` (all when `None`).
pub fn only(
    sources: Vec<Box<dyn Source>>,
    name: Option<&str>,
) -> Result<Vec<Box<dyn Source>>, SourceError> {
    let Some(name) = name else { return Ok(sources) };
    let known = sources
        .iter()
        .map(|s| s.name().to_string())
        .collect::<Vec<_>>()
        .join(", ");
    let v: Vec<_> = sources.into_iter().filter(|s| s.name() == name).collect();
    if v.is_empty() {
        return Err(SourceError::Unknown {
            name: name.into(),
            known: if known.is_empty() {
                "none ([snapshot] dir is not configured)".into()
            } else {
                known
            },
        });
    }
    Ok(v)
}

/// One archive, with every copy of it the sources hold.
#[derive(Debug, Clone, Serialize)]
pub struct Archive {
    pub id: String,
    pub member: String,
    pub created_at: String,
    pub revision: i64,
    pub key_count: i64,
    pub archive_size: u64,
    pub snapshot_size: u64,
    pub etcd_version: String,
    /// At least one copy is verified.
    pub verified: bool,
    pub copies: Vec<Located>,
    #[serde(skip)]
    pub manifest: Manifest,
}

impl Archive {
    pub fn created(&self) -> Option<OffsetDateTime> {
        self.manifest.created()
    }
}

/// Every archive of every source, newest first, and the sources that failed to list.
#[derive(Debug, Default, Serialize)]
pub struct Catalog {
    pub archives: Vec<Archive>,
    pub errors: Vec<String>,
    /// Archives of an etcd cluster this bastion never pinned (see
    /// `vigil_core::pin`): listed, never selected.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub untrusted: Vec<Archive>,
    /// The pinned cluster ID the catalog was filtered by.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster_id: Option<String>,
}

/// [`catalog`], keeping only archives of the cluster pinned in the state
/// dir (its current or an earlier ID). Without a pin (a fresh bastion at
/// 3 a.m.) nothing is filtered, but several cluster IDs are warned about.
pub fn catalog_of(cfg: &Config, sources: &[Box<dyn Source>]) -> Catalog {
    let mut cat = catalog(sources);
    let pin = match vigil_core::pin::load(&cfg.state.dir) {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!("{e}; archives are not filtered by cluster ID");
            cat.errors.push(e.to_string());
            None
        }
    };
    // Copies scrub found corrupt are not verified, and are tried last.
    let ledger = vigil_core::corrupt::Ledger::load(&cfg.state.dir).unwrap_or_else(|e| {
        tracing::warn!(
            "{e}; copies scrub found corrupt are not skipped (fetch still checks every byte)"
        );
        vigil_core::corrupt::Ledger::default()
    });
    for a in &mut cat.archives {
        for c in &mut a.copies {
            if ledger.is_bad(&c.source, &a.manifest.archive) {
                c.verified = false;
            }
        }
        a.copies.sort_by_key(|c| !c.verified);
        a.verified = a.copies.iter().any(|c| c.verified);
    }
    if pin.is_some() {
        // A rebuilt cluster starts again at a low revision: its generation first.
        sort_newest_first(&mut cat.archives, pin.as_ref());
    }
    match pin {
        Some(p) => {
            let (keep, other): (Vec<Archive>, Vec<Archive>) = std::mem::take(&mut cat.archives)
                .into_iter()
                .partition(|a| p.trusts(&a.manifest.cluster_id));
            for a in &other {
                tracing::warn!(
                    "ignoring archive {} (member {}): it is of etcd cluster ID {}, not of the pinned {} ({})",
                    a.id,
                    a.member,
                    a.manifest.cluster_id,
                    p.cluster_id,
                    vigil_core::pin::path(&cfg.state.dir).display()
                );
            }
            cat.archives = keep;
            cat.untrusted = other;
            cat.cluster_id = Some(p.cluster_id);
        }
        None => {
            let ids: std::collections::BTreeSet<&str> = cat
                .archives
                .iter()
                .map(|a| a.manifest.cluster_id.as_str())
                .collect();
            if ids.len() > 1 {
                tracing::warn!(
                    "the archives come from {} etcd cluster IDs ({}) and no cluster ID is pinned in {}; check `vigil-restore list --json` (cluster_id) before choosing with --archive",
                    ids.len(),
                    ids.into_iter().collect::<Vec<_>>().join(", "),
                    cfg.state.dir.display()
                );
            }
        }
    }
    cat
}

/// Newest by what cannot go backwards (cluster generation, revision), not
/// by a bastion clock that may have run ahead.
fn sort_newest_first(archives: &mut [Archive], pin: Option<&vigil_core::pin::ClusterPin>) {
    archives.sort_by(|a, b| {
        vigil_core::retention::newest_first_in(pin, &a.manifest, &b.manifest)
            .then_with(|| a.member.cmp(&b.member))
    });
}

/// Lists every source and merges copies by archive identity, newest first.
pub fn catalog(sources: &[Box<dyn Source>]) -> Catalog {
    let mut by_id: BTreeMap<String, Archive> = BTreeMap::new();
    let mut errors = Vec::new();
    for s in sources {
        match s.list() {
            Ok(list) => {
                for c in list {
                    let m = &c.manifest;
                    match by_id.get_mut(&m.id) {
                        Some(a) => {
                            if a.manifest.archive_sha256 != m.archive_sha256 {
                                tracing::warn!(
                                    "archive {}: the copy at {} ({}) has sha256 {} but another copy has {}; both are kept as copies, fetch verifies each",
                                    m.id, c.location, c.source, m.archive_sha256, a.manifest.archive_sha256
                                );
                            }
                            a.verified |= c.verified;
                            a.copies.push(c);
                        }
                        None => {
                            by_id.insert(
                                m.id.clone(),
                                Archive {
                                    id: m.id.clone(),
                                    member: m.member.clone(),
                                    created_at: m.created_at.clone(),
                                    revision: m.revision,
                                    key_count: m.key_count,
                                    archive_size: m.archive_size,
                                    snapshot_size: m.snapshot_size,
                                    etcd_version: m.etcd_version.clone(),
                                    verified: c.verified,
                                    manifest: m.clone(),
                                    copies: vec![c],
                                },
                            );
                        }
                    }
                }
            }
            Err(e) => {
                tracing::warn!("{e}");
                errors.push(e.to_string());
            }
        }
    }
    let mut archives: Vec<Archive> = by_id.into_values().collect();
    sort_newest_first(&mut archives, None);
    Catalog {
        archives,
        errors,
        ..Catalog::default()
    }
}

/// "check hash_kv: <error>" of a failed restore proof.
fn proof_check(a: &Archive) -> String {
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

    pub fn select<'a>(&self, cat: &'a Catalog) -> Result<&'a Archive, crate::RestoreError> {
        let no = |msg: String| {
            let errs = if cat.errors.is_empty() {
                String::new()
            } else {
                format!(" (sources that failed: {})", cat.errors.join("; "))
            };
            crate::RestoreError::NoArchive(format!("{msg}{errs}"))
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
            let a = cat.archives.iter().find(|a| a.id == id).ok_or_else(|| {
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
        let matching: Vec<&Archive> = cat
            .archives
            .iter()
            .filter(|a| self.member.as_ref().is_none_or(|m| &a.member == m))
            .filter(|a| {
                self.before
                    .is_none_or(|b| a.created().is_some_and(|c| c <= b))
            })
            .filter(|a| self.revision.is_none_or(|r| a.revision <= r))
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
                cat.archives.len()
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

    #[derive(Debug)]
    struct Fake(&'static str, Vec<Manifest>);
    impl Source for Fake {
        fn name(&self) -> &str {
            self.0
        }
        fn list(&self) -> Result<Vec<Located>, SourceError> {
            Ok(self
                .1
                .iter()
                .map(|m| Located {
                    source: self.0.into(),
                    location: format!("{}://{}", self.0, m.id),
                    verified: m.verified_at.is_some(),
                    manifest: m.clone(),
                })
                .collect())
        }
        fn open(&self, _: &Located) -> Result<Opened, SourceError> {
            Err(SourceError::Unavailable {
                source_name: self.0.into(),
                message: "fake".into(),
            })
        }
    }

    #[test]
    fn merges_copies_and_selects() {
        let a = manifest("prod-cp-1-a", "cp-1", "2026-01-01T00:00:00Z", 100, true);
        let b = manifest("prod-cp-2-b", "cp-2", "2026-01-02T00:00:00Z", 200, false);
        let c = manifest("prod-cp-1-c", "cp-1", "2026-01-03T00:00:00Z", 300, true);
        let sources: Vec<Box<dyn Source>> = vec![
            Box::new(Fake("local", vec![a.clone(), b.clone()])),
            Box::new(Fake("s3", vec![a.clone(), b.clone(), c.clone()])),
        ];
        let cat = catalog(&sources);
        assert_eq!(cat.archives.len(), 3);
        assert_eq!(cat.archives[0].id, "prod-cp-1-c");
        let merged = cat.archives.iter().find(|x| x.id == "prod-cp-1-a").unwrap();
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
        let sources: Vec<Box<dyn Source>> = vec![Box::new(Fake("local", vec![a, c, d]))];
        let cat = catalog(&sources);
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

    #[test]
    fn chunk_reader_reads_across_chunks() {
        let chunks = vec![Ok(vec![1u8, 2, 3]), Ok(vec![]), Ok(vec![4, 5])];
        let mut r = ChunkReader::new(chunks.into_iter());
        let mut out = Vec::new();
        r.read_to_end(&mut out).unwrap();
        assert_eq!(out, vec![1, 2, 3, 4, 5]);
    }
}
