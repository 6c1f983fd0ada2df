//! Sinks: where archives go besides the bastion's own disk.
//!
//! Object stores (S3 and Ceph RGW, Azure, GCS, a local filesystem) go
//! through `object_store` (`object.rs`); `dir` is an LTFS mount or a BackupPC
//! staging directory; `tape-dsmc` hands the finished file to IBM Spectrum
//! Protect. Every sink uses the same layout,
//! `<prefix>/<cluster>/<member>/<archive>` with `<archive>.json` beside it,
//! and the manifest is always written last: a copy without a manifest does
//! not count. Each kind is one file here and one line in `backends!`.

mod locking;
pub(crate) mod object;
#[cfg(test)]
mod tests;

use bytes::Bytes;
use futures_util::stream::BoxStream;
use std::path::{Path, PathBuf};
use std::time::Duration;
use time::OffsetDateTime;
use tokio::sync::mpsc;
use vigil_core::config::{SinkConfig, SinkSettings, VerifyMode};
use vigil_core::fsutil::{self, FsError};
use vigil_core::manifest::{Manifest, SUFFIX};

pub(crate) use vigil_core::error_chain as chain;

/// What the archive writer sends a streaming sink.
#[derive(Debug)]
pub enum SinkMsg {
    Data(Bytes),
    /// The stream verified and is stored locally: complete the upload.
    Commit,
}

#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("sink {sink}: building the {kind} client: {message}")]
    Build {
        sink: String,
        kind: String,
        message: String,
    },
    #[error("sink {sink}: {op} {key}: {message}")]
    Store {
        sink: String,
        op: &'static str,
        key: String,
        message: String,
    },
    #[error("sink {sink}: {key}: the stored copy is {actual_size} bytes with sha256 {actual}, but the manifest says {expected_size} bytes with sha256 {expected}")]
    Mismatch {
        sink: String,
        key: String,
        expected: String,
        actual: String,
        expected_size: u64,
        actual_size: u64,
    },
    #[error("sink {sink}: upload of {key} aborted: {reason}")]
    Aborted {
        sink: String,
        key: String,
        reason: String,
    },
    #[error("sink {sink}: {key}: not found")]
    NotFound { sink: String, key: String },
    #[error("sink {sink}: object_lock is set, but bucket {bucket} has no Object Lock (the store answered ObjectLockConfigurationNotFoundError); create the bucket with Object Lock enabled, or remove object_lock from this sink")]
    LockNotEnabled { sink: String, bucket: String },
    #[error("sink {sink}: {op} {key}: {source}")]
    Lock {
        sink: String,
        op: &'static str,
        key: String,
        #[source]
        source: crate::lock::LockError,
    },
    /// Retention wanted the copy gone, but its S3 Object Lock still holds.
    #[error("sink {sink}: {key}: locked until {until}")]
    Locked {
        sink: String,
        key: String,
        until: String,
    },
    /// The store refused a delete (an append-only key, or a policy).
    #[error("sink {sink}: deleting {key}: not allowed ({message}); left to the bucket's lifecycle rules")]
    DeleteDenied {
        sink: String,
        key: String,
        message: String,
    },
    #[error("sink {sink}: {message}")]
    Tape { sink: String, message: String },
    /// A task of vigil's own that died (a panic), not the store.
    #[error("sink {sink}: internal error: {message}")]
    Internal { sink: String, message: String },
    #[error("sink {sink}: {0}", sink = .1)]
    Fs(FsError, String),
}

impl SinkError {
    pub(crate) fn store(
        sink: &str,
        op: &'static str,
        key: &str,
        e: &dyn std::error::Error,
    ) -> Self {
        SinkError::Store {
            sink: sink.to_string(),
            op,
            key: key.to_string(),
            message: with_hint(chain(e)),
        }
    }
}

/// What the store's own words mean for an administrator, where they are
/// known to mislead: a skewed clock reads as a signature problem.
fn with_hint(message: String) -> String {
    if message.contains("RequestTimeTooSkewed") {
        format!(
            "{message}; the bastion's clock and the store's differ by more than 15 minutes: check `timedatectl` (NTP) on both"
        )
    } else {
        message
    }
}

/// A copy of an archive found in a sink.
#[derive(Debug, Clone)]
pub struct SinkEntry {
    pub member: String,
    pub manifest: Manifest,
    /// Size of the archive object, `None` when only the manifest is there.
    pub archive_size: Option<u64>,
}

impl SinkEntry {
    pub fn is_verified(&self) -> bool {
        self.manifest.verified_at.is_some() && self.archive_size == Some(self.manifest.archive_size)
    }
}

/// What a kind of sink does with keys (`<prefix>/<cluster>/<member>/<file>`);
/// [`Sink`] makes the keys and keeps the rules every kind shares (manifest
/// last, verification against the manifest).
#[async_trait::async_trait]
pub(crate) trait Backend: Send + Sync {
    /// Takes the encrypted stream as it is made (tape wants finished files).
    fn streams(&self) -> bool {
        true
    }
    /// Whether vigil's retention deletes here.
    fn can_delete(&self) -> bool {
        true
    }
    /// Where a key lives, for people.
    fn location(&self, key: &str) -> String;
    /// Stores the stream under `key` once `Commit` arrives; a closed channel
    /// without `Commit` leaves nothing behind.
    async fn upload_stream(
        &self,
        key: String,
        rx: mpsc::Receiver<SinkMsg>,
    ) -> Result<u64, SinkError>;
    /// Ships a finished file (sinks that do not stream).
    async fn archive_file(&self, _archive: &Path, _m: &Manifest) -> Result<(), SinkError> {
        unreachable!("only sinks that do not stream take files")
    }
    /// Removes the staging files a killed run left under `base`.
    fn cleanup_files(&self, _base: &str) -> Vec<PathBuf> {
        Vec::new()
    }
    /// Whether the store keeps incomplete multipart uploads to clean up.
    fn has_uploads(&self) -> bool {
        false
    }
    async fn abort_stale_uploads(&self, _prefix: &str) -> Vec<PathBuf> {
        Vec::new()
    }
    /// Size and (for readback) sha256 of the copy at `key`; `None` where the
    /// sink cannot be read back (tape).
    async fn measure(
        &self,
        key: &str,
        mode: VerifyMode,
    ) -> Result<Option<(u64, Option<String>)>, SinkError>;
    async fn put_manifest(&self, key: &str, m: &Manifest) -> Result<(), SinkError>;
    /// Every copy under `base`, in any order.
    async fn list(&self, base: &str) -> Result<Vec<SinkEntry>, SinkError>;
    /// Deletes `[manifest, archive]` in that order.
    async fn delete(&self, keys: [&str; 2]) -> Result<(), SinkError>;
    async fn open(
        &self,
        key: &str,
    ) -> Result<BoxStream<'static, Result<Bytes, SinkError>>, SinkError>;
    /// The files directly under `dir` (`<key prefix>/`), by name, with sizes.
    async fn list_files(&self, dir: &str) -> Result<Vec<(String, u64)>, SinkError>;
    /// Stores a small object whole (a journal segment's manifest).
    async fn put_bytes(&self, key: &str, bytes: Bytes) -> Result<(), SinkError>;
    /// Locks what it uploads (s3 with `object_lock`).
    fn locks(&self) -> bool {
        false
    }
    async fn locked_until(&self, _keys: [&str; 2]) -> Result<Option<OffsetDateTime>, SinkError> {
        Ok(None)
    }
    async fn lock_date(&self, _key: &str) -> Result<Option<OffsetDateTime>, SinkError> {
        Ok(None)
    }
    /// How the store protects copies; `probe` is a key that may be deleted.
    async fn protection(&self, _probe: &str) -> crate::lock::Protection {
        crate::lock::Protection::unlocked(self.can_delete())
    }
}

/// One configured sink, ready to use.
pub struct Sink {
    pub cfg: SinkConfig,
    cluster: String,
    backend: Box<dyn Backend>,
}

impl std::fmt::Debug for Sink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sink")
            .field("name", &self.cfg.name)
            .field("kind", &self.cfg.kind.as_str())
            .finish()
    }
}

impl Sink {
    /// Builds the client. Nothing is contacted yet.
    pub fn build(cfg: &SinkConfig, cluster: &str, state_dir: &Path) -> Result<Sink, SinkError> {
        vigil_core::ensure_crypto_provider();
        let backend = choose(cfg, state_dir)?;
        Ok(Sink {
            cfg: cfg.clone(),
            cluster: cluster.to_string(),
            backend,
        })
    }

    pub fn name(&self) -> &str {
        &self.cfg.name
    }

    /// Object stores and directories take the encrypted stream as it is made;
    /// tape gets the finished local file.
    pub fn streams(&self) -> bool {
        self.backend.streams()
    }

    /// Tape retention belongs to the TSM management class, not to vigil.
    pub fn can_delete(&self) -> bool {
        self.backend.can_delete()
    }

    pub(crate) fn rel(&self, member: &str, file: &str) -> String {
        let p = self.cfg.prefix();
        if p.is_empty() {
            format!("{}/{member}/{file}", self.cluster)
        } else {
            format!("{p}/{}/{member}/{file}", self.cluster)
        }
    }

    /// `<prefix>/<cluster>`: everything of this cluster in this sink.
    fn base(&self) -> String {
        self.rel("", "").trim_end_matches('/').to_string()
    }

    /// Where a copy lives, for people.
    pub fn location(&self, member: &str, file: &str) -> String {
        self.backend.location(&self.rel(member, file))
    }

    /// Receives the encrypted stream and stores it under its final name once
    /// `Commit` arrives. A closed channel without `Commit` aborts the upload,
    /// so no partial object or orphan multipart upload is left behind.
    pub async fn upload_stream(
        &self,
        member: &str,
        file: &str,
        rx: mpsc::Receiver<SinkMsg>,
    ) -> Result<u64, SinkError> {
        self.backend.upload_stream(self.rel(member, file), rx).await
    }

    /// Removes what a killed run left behind: `.name.partial` in a `dir`
    /// sink, object_store's `name#N` staging files in an `fs` sink, and the
    /// incomplete multipart uploads under this sink's prefix in an S3 bucket.
    /// Called with the run lock held, before anything is uploaded.
    pub fn cleanup(&self) -> Vec<PathBuf> {
        let mut removed = self.backend.cleanup_files(&self.base());
        if self.backend.has_uploads() {
            // The members wait for this: a stalled store must not hold up
            // the snapshot for the sink's (upload-sized) timeout.
            let limit = self.cfg.timeout().min(CLEANUP_LIMIT);
            match block_on(tokio::time::timeout(limit, self.abort_stale_uploads())) {
                Ok(aborted) => removed.extend(aborted),
                Err(_) => {
                    tracing::warn!(sink = %self.cfg.name, "gave up looking for incomplete multipart uploads after {limit:?}; the next run tries again")
                }
            }
        }
        removed
    }

    /// Aborts the multipart uploads under `<prefix>/<cluster>/` that were
    /// initiated before this sink was built. Only a run holding the run lock
    /// uploads there, so each of them belongs to a run that died; failures
    /// are logged and left for the next run.
    pub async fn abort_stale_uploads(&self) -> Vec<PathBuf> {
        // The trailing slash keeps `vigil/prod` from matching `vigil/prod-2`.
        self.backend
            .abort_stale_uploads(&format!("{}/", self.base()))
            .await
    }

    /// Ships a finished local archive (tape, and catch-up for the others).
    pub async fn upload_file(
        &self,
        member: &str,
        archive: &Path,
        m: &Manifest,
    ) -> Result<(), SinkError> {
        if !self.backend.streams() {
            return self.backend.archive_file(archive, m).await;
        }
        self.upload_path(member, &m.archive, archive).await?;
        self.verify(member, m).await?;
        self.put_manifest(member, m).await
    }

    /// Streams the local file `path` to `<member>/<file>` in this sink.
    async fn upload_path(&self, member: &str, file: &str, path: &Path) -> Result<u64, SinkError> {
        let (tx, rx) = mpsc::channel(4);
        let owned = path.to_path_buf();
        let feeder = tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            use std::io::Read;
            let mut f = std::fs::File::open(&owned)?;
            let mut buf = vec![0u8; 1 << 20];
            loop {
                let n = f.read(&mut buf)?;
                if n == 0 {
                    break;
                }
                if tx
                    .blocking_send(SinkMsg::Data(Bytes::copy_from_slice(&buf[..n])))
                    .is_err()
                {
                    return Ok(());
                }
            }
            let _ = tx.blocking_send(SinkMsg::Commit);
            Ok(())
        });
        let up = self.upload_stream(member, file, rx).await;
        match feeder.await {
            Ok(Ok(())) => up,
            Ok(Err(e)) => Err(SinkError::Fs(
                FsError::new("reading", path, e),
                self.cfg.name.clone(),
            )),
            Err(e) => Err(SinkError::Internal {
                sink: self.cfg.name.clone(),
                message: e.to_string(),
            }),
        }
    }

    /// The journal's files in this sink (`<prefix>/<cluster>/_journal/`), with sizes.
    pub async fn journal_files(&self) -> Result<Vec<(String, u64)>, SinkError> {
        self.backend
            .list_files(&format!(
                "{}/",
                self.rel(JOURNAL_DIR, "").trim_end_matches('/')
            ))
            .await
    }

    /// Ships a closed journal segment, checks it by `verify` against `size`
    /// and `sha256`, then writes its manifest (the commit point here too).
    pub async fn journal_put(
        &self,
        segment: &str,
        path: &Path,
        size: u64,
        sha256: &str,
        manifest: Bytes,
    ) -> Result<(), SinkError> {
        self.upload_path(JOURNAL_DIR, segment, path).await?;
        let key = self.rel(JOURNAL_DIR, segment);
        if let Some((n, sha)) = self.backend.measure(&key, self.cfg.verify_mode()).await? {
            if n != size || sha.as_ref().is_some_and(|s| s != sha256) {
                return Err(SinkError::Mismatch {
                    sink: self.cfg.name.clone(),
                    key,
                    expected: sha256.to_string(),
                    actual: sha.unwrap_or_else(|| "(not read)".into()),
                    expected_size: size,
                    actual_size: n,
                });
            }
        }
        let mkey = self.rel(JOURNAL_DIR, &format!("{segment}.json"));
        self.backend.put_bytes(&mkey, manifest).await
    }

    /// Opens a file of the journal (a segment or a manifest).
    pub async fn journal_open(
        &self,
        file: &str,
    ) -> Result<BoxStream<'static, Result<Bytes, SinkError>>, SinkError> {
        self.backend.open(&self.rel(JOURNAL_DIR, file)).await
    }

    /// Removes a journal segment, its manifest first.
    pub async fn journal_delete(&self, segment: &str) -> Result<(), SinkError> {
        let a = self.rel(JOURNAL_DIR, segment);
        let j = format!("{a}.json");
        self.backend.delete([&j, &a]).await
    }

    /// Where a journal file lives, for people.
    pub fn journal_location(&self, file: &str) -> String {
        self.backend.location(&self.rel(JOURNAL_DIR, file))
    }

    /// Checks a stored copy against its manifest, by reading it back (default)
    /// or by the size the store reports.
    pub async fn verify(&self, member: &str, m: &Manifest) -> Result<(), SinkError> {
        self.check(member, m, self.cfg.verify_mode()).await
    }

    /// Reads a stored copy back and checks its size and sha256, whatever
    /// `verify` says: scrub's check, the only one that sees bit rot.
    pub async fn scrub(&self, member: &str, m: &Manifest) -> Result<(), SinkError> {
        self.check(member, m, VerifyMode::Readback).await
    }

    async fn check(&self, member: &str, m: &Manifest, mode: VerifyMode) -> Result<(), SinkError> {
        let key = self.rel(member, &m.archive);
        let Some((size, sha)) = self.backend.measure(&key, mode).await? else {
            return Ok(());
        };
        if size != m.archive_size || sha.as_ref().is_some_and(|s| *s != m.archive_sha256) {
            return Err(SinkError::Mismatch {
                sink: self.cfg.name.clone(),
                key,
                expected: m.archive_sha256.clone(),
                actual: sha.unwrap_or_else(|| "(not read)".into()),
                expected_size: m.archive_size,
                actual_size: size,
            });
        }
        Ok(())
    }

    /// Writes the manifest beside the archive: the commit point in the sink.
    pub async fn put_manifest(&self, member: &str, m: &Manifest) -> Result<(), SinkError> {
        let key = self.rel(member, &format!("{}{SUFFIX}", m.archive));
        self.backend.put_manifest(&key, m).await
    }

    /// Every copy in this sink for this cluster, newest first.
    pub async fn list(&self) -> Result<Vec<SinkEntry>, SinkError> {
        let mut out = self.backend.list(&self.base()).await?;
        out.sort_by(|a, b| b.manifest.created_at.cmp(&a.manifest.created_at));
        Ok(out)
    }

    /// Removes a copy: the manifest first, so a crash never leaves a manifest
    /// that points at nothing.
    pub async fn delete(&self, member: &str, archive: &str) -> Result<(), SinkError> {
        let a = self.rel(member, archive);
        let j = format!("{a}{SUFFIX}");
        self.backend.delete([&j, &a]).await
    }

    /// Opens a stored archive as a byte stream (for restores and scrubbing).
    pub async fn open(
        &self,
        member: &str,
        archive: &str,
    ) -> Result<BoxStream<'static, Result<Bytes, SinkError>>, SinkError> {
        self.backend.open(&self.rel(member, archive)).await
    }

    /// This sink locks what it uploads (s3 with `object_lock`).
    pub fn locks(&self) -> bool {
        self.backend.locks()
    }

    /// Until when a copy (archive and manifest) is locked, if it still is.
    /// `None` for sinks that do not lock.
    pub async fn locked_until(
        &self,
        member: &str,
        archive: &str,
    ) -> Result<Option<OffsetDateTime>, SinkError> {
        let a = self.rel(member, archive);
        let j = format!("{a}{SUFFIX}");
        self.backend.locked_until([&j, &a]).await
    }

    /// The retain-until date of the version of a copy's archive that vigil
    /// reads, for listings; `None` for sinks that do not lock.
    pub async fn lock_date(
        &self,
        member: &str,
        archive: &str,
    ) -> Result<Option<OffsetDateTime>, SinkError> {
        self.backend.lock_date(&self.rel(member, archive)).await
    }

    /// Asks the store how this sink is protected: Object Lock on the bucket,
    /// and whether this key may delete (a DELETE of a key that does not
    /// exist; the delete marker it may leave is removed again).
    pub async fn protection(&self) -> crate::lock::Protection {
        let probe = format!("{}/.vigil-delete-probe", self.base());
        self.backend.protection(&probe).await
    }
}

/// The journal's directory beside the members' (`vigil-journal`); member
/// names cannot start with `_`, and the archive listings skip it.
pub const JOURNAL_DIR: &str = "_journal";

/// Per kind of the config's list: its file here, whose
/// `build(cfg, options, state_dir)` makes its backend, and its arm of the
/// one match.
macro_rules! backends {
    ($($v:ident => $m:ident),* $(,)?) => {
        $(mod $m;)*

        fn choose(cfg: &SinkConfig, state_dir: &Path) -> Result<Box<dyn Backend>, SinkError> {
            Ok(match &cfg.settings {
                $(SinkSettings::$v(o) => Box::new($m::build(cfg, o, state_dir)?),)*
            })
        }
    };
}

// One `mod` and one arm per kind of `vigil_core`'s sink list.
vigil_core::sink_backends!();

/// The longest a run waits, before its members start, for the multipart
/// cleanup of one sink (listings and aborts are small requests).
pub(crate) const CLEANUP_LIMIT: Duration = Duration::from_secs(30);

/// Removes the files under `<root>/<base>/<member>/` whose names `staged`
/// says a killed run left.
pub(crate) fn remove_staged(root: &Path, base: &str, staged: fn(&str) -> bool) -> Vec<PathBuf> {
    let mut removed = Vec::new();
    for member in std::fs::read_dir(root.join(base))
        .into_iter()
        .flatten()
        .flatten()
    {
        for f in std::fs::read_dir(member.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            let name = f.file_name().to_string_lossy().into_owned();
            if staged(&name) && std::fs::remove_file(f.path()).is_ok() {
                removed.push(f.path());
            }
        }
    }
    removed
}

/// The `Build` error of sink `cfg`.
pub(crate) fn build_err(cfg: &SinkConfig, message: String) -> SinkError {
    SinkError::Build {
        sink: cfg.name.clone(),
        kind: cfg.kind.to_string(),
        message,
    }
}

/// A directory the sink writes, made private (0700) if it is not there.
pub(crate) fn private_dir(sink: &str, dir: &Path) -> Result<(), SinkError> {
    fsutil::ensure_private_dir(dir).map_err(|e| SinkError::Fs(e, sink.to_string()))
}

/// Runs `f` to completion from synchronous code: in place on a multi-thread
/// runtime, else on a runtime of its own in a scoped thread.
fn block_on<T: Send>(f: impl std::future::Future<Output = T> + Send) -> T {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current() {
        Ok(h) if h.runtime_flavor() == RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(|| h.block_on(f))
        }
        _ => std::thread::scope(|s| {
            s.spawn(|| vigil_core::runtime::current_thread().map(|rt| rt.block_on(f)))
                .join()
        })
        .unwrap_or_else(|p| std::panic::resume_unwind(p))
        .unwrap_or_else(|e| panic!("the sink cleanup: {e}")),
    }
}
