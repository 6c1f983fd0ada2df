//! Sinks: where archives go besides the bastion's own disk.
//!
//! Object stores (S3 and Ceph RGW, Azure, GCS, a local filesystem) go
//! through `object_store`; `dir` is an LTFS mount or a BackupPC staging
//! directory; `tape-dsmc` hands the finished file to IBM Spectrum Protect.
//! Every sink uses the same layout, `<prefix>/<cluster>/<member>/<archive>`
//! with `<archive>.json` beside it, and the manifest is always written last:
//! a copy without a manifest does not count.

use bytes::Bytes;
use futures_util::StreamExt;
use object_store::path::Path as ObjPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload, WriteMultipart};
use sha2::{Digest, Sha256};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use vigil_core::config::{RcPolicy, SinkConfig, SinkKind, VerifyMode, DEFAULT_DESCRIPTION};
use vigil_core::fsutil::{self, FsError};
use vigil_core::manifest::{Manifest, SUFFIX};

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

enum Backend {
    Object {
        store: Arc<dyn ObjectStore>,
        part_size: usize,
        concurrency: usize,
    },
    Dir {
        root: PathBuf,
    },
    Dsmc {
        catalog: PathBuf,
        paths: DsmcPaths,
    },
}

/// One configured sink, ready to use.
pub struct Sink {
    pub cfg: SinkConfig,
    cluster: String,
    backend: Backend,
    /// S3 only: the multipart uploads a killed run left behind.
    uploads: Option<crate::uploads::Uploads>,
    /// S3 only: Object Lock requests, and the bucket's answer once asked.
    pub(crate) locker: Option<crate::lock::Locker>,
    pub(crate) bucket_lock:
        tokio::sync::OnceCell<Result<crate::lock::BucketLock, crate::lock::LockError>>,
}

impl std::fmt::Debug for Sink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sink")
            .field("name", &self.cfg.name)
            .field("kind", &self.cfg.kind)
            .finish()
    }
}

use vigil_core::ensure_crypto_provider;

pub(crate) use vigil_core::error_chain as chain;

impl Sink {
    /// Builds the client. Nothing is contacted yet.
    pub fn build(cfg: &SinkConfig, cluster: &str, state_dir: &Path) -> Result<Sink, SinkError> {
        ensure_crypto_provider();
        let berr = |m: String| SinkError::Build {
            sink: cfg.name.clone(),
            kind: cfg.kind.to_string(),
            message: m,
        };
        let opts = || -> Result<object_store::ClientOptions, SinkError> {
            let mut o = object_store::ClientOptions::new()
                .with_timeout(cfg.timeout())
                .with_connect_timeout(cfg.connect_timeout())
                .with_allow_http(cfg.allow_http.unwrap_or(false));
            if let Some(ca) = &cfg.ca_file {
                let pem = std::fs::read(ca)
                    .map_err(|e| berr(format!("reading ca_file {}: {e}", ca.display())))?;
                let cert = object_store::Certificate::from_pem(&pem)
                    .map_err(|e| berr(format!("ca_file {}: {}", ca.display(), chain(&e))))?;
                o = o.with_root_certificate(cert);
            }
            Ok(o)
        };
        let retry = object_store::RetryConfig {
            backoff: object_store::BackoffConfig {
                init_backoff: Duration::from_millis(200),
                max_backoff: Duration::from_secs(15),
                base: 2.0,
            },
            max_retries: cfg.retries() as usize,
            retry_timeout: cfg.retry_timeout(),
        };
        let secret = cfg.secret.as_ref().map(|s| s.expose().to_string());
        let mut uploads = None;
        let mut locker = None;
        let store: Option<Arc<dyn ObjectStore>> = match cfg.kind {
            SinkKind::S3 => {
                let mut b = object_store::aws::AmazonS3Builder::new()
                    .with_bucket_name(cfg.bucket.clone().unwrap_or_default())
                    .with_region(cfg.region.clone().unwrap_or_else(|| "us-east-1".into()))
                    .with_access_key_id(cfg.access_key_id.clone().unwrap_or_default())
                    .with_secret_access_key(secret.unwrap_or_default())
                    .with_virtual_hosted_style_request(!cfg.path_style.unwrap_or(true))
                    .with_allow_http(cfg.allow_http.unwrap_or(false))
                    .with_client_options(opts()?)
                    .with_retry(retry);
                if let Some(ep) = &cfg.endpoint {
                    b = b.with_endpoint(ep.clone());
                }
                if cfg.object_lock.is_some() {
                    // S3 refuses an upload into a locked bucket without
                    // Content-MD5 or an x-amz checksum.
                    b = b.with_checksum_algorithm(object_store::aws::Checksum::SHA256);
                }
                let s3 = Arc::new(b.build().map_err(|e| berr(chain(&e)))?);
                let http = http_client(cfg).map_err(|e| berr(e.to_string()))?;
                uploads = Some(crate::uploads::Uploads::new(s3.clone(), http.clone()));
                locker = Some(crate::lock::Locker::new(s3.clone(), http, cfg.object_lock));
                Some(s3)
            }
            SinkKind::Azure => {
                let mut b = object_store::azure::MicrosoftAzureBuilder::new()
                    .with_account(cfg.account.clone().unwrap_or_default())
                    .with_container_name(cfg.container.clone().unwrap_or_default())
                    .with_allow_http(cfg.allow_http.unwrap_or(false))
                    .with_client_options(opts()?)
                    .with_retry(retry);
                if let Some(k) = secret {
                    b = b.with_access_key(k);
                }
                if let Some(ep) = &cfg.endpoint {
                    b = b.with_endpoint(ep.clone());
                }
                Some(Arc::new(b.build().map_err(|e| berr(chain(&e)))?))
            }
            SinkKind::Gcs => {
                let b = object_store::gcp::GoogleCloudStorageBuilder::new()
                    .with_bucket_name(cfg.bucket.clone().unwrap_or_default())
                    .with_service_account_path(
                        cfg.service_account_file
                            .as_ref()
                            .map(|p| vigil_core::secret::resolve_path(p).display().to_string())
                            .unwrap_or_default(),
                    )
                    .with_client_options(opts()?)
                    .with_retry(retry);
                Some(Arc::new(b.build().map_err(|e| berr(chain(&e)))?))
            }
            SinkKind::Fs => {
                let p = cfg.path.clone().unwrap_or_default();
                fsutil::ensure_private_dir(&p).map_err(|e| berr(e.to_string()))?;
                Some(Arc::new(
                    object_store::local::LocalFileSystem::new_with_prefix(&p)
                        .map_err(|e| berr(chain(&e)))?,
                ))
            }
            SinkKind::Dir | SinkKind::TapeDsmc => None,
        };
        let backend = match (store, cfg.kind) {
            (Some(store), _) => Backend::Object {
                store,
                part_size: cfg.part_size(),
                concurrency: cfg.upload_concurrency(),
            },
            (None, SinkKind::Dir) => Backend::Dir {
                root: cfg.path.clone().unwrap_or_default(),
            },
            _ => Backend::Dsmc {
                catalog: state_dir.join("tape").join(format!("{}.jsonl", cfg.name)),
                paths: DsmcPaths {
                    error_log: cfg.dsmc_error_log(state_dir),
                    log_dir: cfg.dsmc_log_dir(state_dir),
                    password_dir: cfg.dsmc_password_dir(state_dir),
                },
            },
        };
        Ok(Sink {
            cfg: cfg.clone(),
            cluster: cluster.to_string(),
            backend,
            uploads,
            locker,
            bucket_lock: tokio::sync::OnceCell::new(),
        })
    }

    pub fn name(&self) -> &str {
        &self.cfg.name
    }

    /// Object stores and directories take the encrypted stream as it is made;
    /// tape gets the finished local file.
    pub fn streams(&self) -> bool {
        !matches!(self.backend, Backend::Dsmc { .. })
    }

    /// Tape retention belongs to the TSM management class, not to vigil.
    pub fn can_delete(&self) -> bool {
        !matches!(self.backend, Backend::Dsmc { .. })
    }

    pub(crate) fn rel(&self, member: &str, file: &str) -> String {
        let p = self.cfg.prefix();
        if p.is_empty() {
            format!("{}/{member}/{file}", self.cluster)
        } else {
            format!("{p}/{}/{member}/{file}", self.cluster)
        }
    }

    /// Where a copy lives, for people.
    pub fn location(&self, member: &str, file: &str) -> String {
        match &self.backend {
            Backend::Object { .. } => match self.cfg.kind {
                SinkKind::S3 => format!(
                    "s3://{}/{}",
                    self.cfg.bucket.as_deref().unwrap_or(""),
                    self.rel(member, file)
                ),
                SinkKind::Fs => self
                    .cfg
                    .path
                    .clone()
                    .unwrap_or_default()
                    .join(self.rel(member, file))
                    .display()
                    .to_string(),
                _ => format!("{}:{}", self.cfg.name, self.rel(member, file)),
            },
            Backend::Dir { root } => root.join(self.rel(member, file)).display().to_string(),
            Backend::Dsmc { .. } => format!("tsm:{}", self.cfg.name),
        }
    }

    fn store_err(&self, op: &'static str, key: &str, e: &dyn std::error::Error) -> SinkError {
        SinkError::Store {
            sink: self.cfg.name.clone(),
            op,
            key: key.to_string(),
            message: chain(e),
        }
    }

    fn fs_err(&self, e: FsError) -> SinkError {
        SinkError::Fs(e, self.cfg.name.clone())
    }

    /// Receives the encrypted stream and stores it under its final name once
    /// `Commit` arrives. A closed channel without `Commit` aborts the upload,
    /// so no partial object or orphan multipart upload is left behind.
    pub async fn upload_stream(
        &self,
        member: &str,
        file: &str,
        mut rx: mpsc::Receiver<SinkMsg>,
    ) -> Result<u64, SinkError> {
        let key = self.rel(member, file);
        match &self.backend {
            Backend::Object {
                store,
                part_size,
                concurrency,
            } => {
                self.ensure_lock().await?;
                let path = ObjPath::from(key.as_str());
                let upload = store
                    .put_multipart(&path)
                    .await
                    .map_err(|e| self.store_err("starting upload of", &key, &e))?;
                let mut w = WriteMultipart::new_with_chunk_size(upload, *part_size);
                let mut n = 0u64;
                loop {
                    match rx.recv().await {
                        Some(SinkMsg::Data(b)) => {
                            if let Err(e) = w.wait_for_capacity(*concurrency).await {
                                let err = self.store_err("uploading", &key, &e);
                                drop(rx);
                                let _ = w.abort().await;
                                return Err(err);
                            }
                            n += b.len() as u64;
                            w.put(b);
                        }
                        Some(SinkMsg::Commit) => {
                            // Ceph RGW answers an empty ETag here; only errors count.
                            w.finish()
                                .await
                                .map_err(|e| self.store_err("completing upload of", &key, &e))?;
                            self.lock_key(&key).await?;
                            return Ok(n);
                        }
                        None => {
                            let _ = w.abort().await;
                            return Err(SinkError::Aborted {
                                sink: self.cfg.name.clone(),
                                key,
                                reason: "the snapshot stream failed".into(),
                            });
                        }
                    }
                }
            }
            Backend::Dir { root } => {
                let final_path = root.join(&key);
                let dir = final_path
                    .parent()
                    .map(Path::to_path_buf)
                    .unwrap_or_default();
                fsutil::ensure_private_dir(&dir).map_err(|e| self.fs_err(e))?;
                let tmp = fsutil::partial_path(&final_path);
                let _ = std::fs::remove_file(&tmp);
                let mut f = fsutil::create_private(&tmp).map_err(|e| self.fs_err(e))?;
                let mut n = 0u64;
                let result = loop {
                    match rx.recv().await {
                        Some(SinkMsg::Data(b)) => {
                            n += b.len() as u64;
                            if let Err(e) = tokio::task::block_in_place(|| f.write_all(&b)) {
                                break Err(self.fs_err(FsError::new("writing", &tmp, e)));
                            }
                        }
                        Some(SinkMsg::Commit) => {
                            let r = tokio::task::block_in_place(|| {
                                f.sync_all().map_err(|e| FsError::new("syncing", &tmp, e))?;
                                fsutil::commit_rename(&tmp, &final_path)
                            });
                            break r.map(|_| n).map_err(|e| self.fs_err(e));
                        }
                        None => {
                            break Err(SinkError::Aborted {
                                sink: self.cfg.name.clone(),
                                key: final_path.display().to_string(),
                                reason: "the snapshot stream failed".into(),
                            })
                        }
                    }
                };
                if result.is_err() {
                    let _ = std::fs::remove_file(&tmp);
                }
                result
            }
            Backend::Dsmc { .. } => Err(SinkError::Tape {
                sink: self.cfg.name.clone(),
                message: "tape sinks take finished files, not streams".into(),
            }),
        }
    }

    /// Removes what a killed run left behind: `.name.partial` in a `dir`
    /// sink, object_store's `name#N` staging files in an `fs` sink, and the
    /// incomplete multipart uploads under this sink's prefix in an S3 bucket.
    /// Called with the run lock held, before anything is uploaded.
    pub fn cleanup(&self) -> Vec<PathBuf> {
        let mut removed = self.cleanup_files();
        if self.uploads.is_some() {
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
        let Some(up) = &self.uploads else {
            return Vec::new();
        };
        // The trailing slash keeps `vigil/prod` from matching `vigil/prod-2`.
        let prefix = format!("{}/", self.rel("", "").trim_end_matches('/'));
        let bucket = self.cfg.bucket.as_deref().unwrap_or("");
        let found = match up.list(&prefix).await {
            Ok(f) => f,
            Err(e) => {
                tracing::warn!(sink = %self.cfg.name, "listing incomplete multipart uploads under s3://{bucket}/{prefix} at {}: {e}", self.cfg.endpoint.as_deref().unwrap_or("AWS"));
                return Vec::new();
            }
        };
        let mut removed = Vec::new();
        for u in found {
            if !u.key.starts_with(&prefix) {
                continue;
            }
            if !u.is_stale(&prefix, up.since) {
                tracing::info!(sink = %self.cfg.name, "keeping multipart upload {} of s3://{bucket}/{}: not known to be older than this run", u.id, u.key);
                continue;
            }
            match up.abort(&u).await {
                Ok(()) => removed.push(PathBuf::from(format!(
                    "s3://{bucket}/{} (incomplete multipart upload {})",
                    u.key, u.id
                ))),
                Err(e) => {
                    tracing::warn!(sink = %self.cfg.name, "aborting multipart upload {} of s3://{bucket}/{}: {e}", u.id, u.key)
                }
            }
        }
        removed
    }

    fn cleanup_files(&self) -> Vec<PathBuf> {
        let (root, staged): (&Path, fn(&str) -> bool) = match (&self.backend, self.cfg.kind) {
            (Backend::Dir { root }, _) => (root, |n| {
                n.starts_with('.') && n.ends_with(fsutil::PARTIAL_SUFFIX)
            }),
            (Backend::Object { .. }, SinkKind::Fs) => match &self.cfg.path {
                Some(p) => (p, |n| n.contains(".age#") || n.contains(".json#")),
                None => return Vec::new(),
            },
            _ => return Vec::new(),
        };
        let base = root.join(self.rel("", "").trim_end_matches('/'));
        let mut removed = Vec::new();
        for member in std::fs::read_dir(&base).into_iter().flatten().flatten() {
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

    /// Ships a finished local archive (tape, and catch-up for the others).
    pub async fn upload_file(
        &self,
        member: &str,
        archive: &Path,
        m: &Manifest,
    ) -> Result<(), SinkError> {
        if let Backend::Dsmc { catalog, paths } = &self.backend {
            return self.dsmc_archive(archive, m, catalog, paths).await;
        }
        let (tx, rx) = mpsc::channel(4);
        let path = archive.to_path_buf();
        let feeder = tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            use std::io::Read;
            let mut f = std::fs::File::open(&path)?;
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
        let up = self.upload_stream(member, &m.archive, rx).await;
        match feeder.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(self.fs_err(FsError::new("reading", archive, e))),
            Err(e) => {
                return Err(SinkError::Internal {
                    sink: self.cfg.name.clone(),
                    message: e.to_string(),
                })
            }
        }
        up?;
        self.verify(member, m).await?;
        self.put_manifest(member, m).await
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
        let (size, sha) =
            match (&self.backend, mode) {
                (Backend::Object { .. }, VerifyMode::Size) if self.locks() => {
                    let v = self
                        .first_version(&key)
                        .await?
                        .ok_or_else(|| SinkError::NotFound {
                            sink: self.cfg.name.clone(),
                            key: key.clone(),
                        })?;
                    (v.size, None)
                }
                (Backend::Object { store, .. }, VerifyMode::Size) => {
                    let meta = store
                        .head(&ObjPath::from(key.as_str()))
                        .await
                        .map_err(|e| self.store_err("checking", &key, &e))?;
                    (meta.size, None)
                }
                (Backend::Object { store, .. }, VerifyMode::Readback) => {
                    let opts = object_store::GetOptions {
                        version: self.pinned_version(&key).await?,
                        ..Default::default()
                    };
                    let r = store
                        .get_opts(&ObjPath::from(key.as_str()), opts)
                        .await
                        .map_err(|e| self.store_err("reading back", &key, &e))?;
                    let mut s = r.into_stream();
                    let mut h = Sha256::new();
                    let mut n = 0u64;
                    while let Some(chunk) = s.next().await {
                        let c = chunk.map_err(|e| self.store_err("reading back", &key, &e))?;
                        n += c.len() as u64;
                        h.update(&c);
                    }
                    (n, Some(hex::encode(h.finalize())))
                }
                (Backend::Dir { root }, mode) => {
                    let p = root.join(&key);
                    if mode == VerifyMode::Size {
                        let len = std::fs::metadata(&p)
                            .map_err(|e| self.fs_err(FsError::new("checking", &p, e)))?
                            .len();
                        (len, None)
                    } else {
                        let (n, s) = tokio::task::block_in_place(|| crate::sha256_file(&p))
                            .map_err(|e| SinkError::Store {
                                sink: self.cfg.name.clone(),
                                op: "hashing",
                                key: p.display().to_string(),
                                message: e.to_string(),
                            })?;
                        (n, Some(s))
                    }
                }
                (Backend::Dsmc { .. }, _) => return Ok(()),
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
        match &self.backend {
            Backend::Object { store, .. } => {
                self.ensure_lock().await?;
                store
                    .put(&ObjPath::from(key.as_str()), PutPayload::from(m.to_json()))
                    .await
                    .map_err(|e| self.store_err("writing manifest", &key, &e))?;
                self.lock_key(&key).await
            }
            Backend::Dir { root } => {
                fsutil::atomic_write(&root.join(&key), &m.to_json()).map_err(|e| self.fs_err(e))
            }
            Backend::Dsmc { .. } => Ok(()),
        }
    }

    /// Every copy in this sink for this cluster, newest first.
    pub async fn list(&self) -> Result<Vec<SinkEntry>, SinkError> {
        let base = self.rel("", "");
        let base = base.trim_end_matches('/').trim_end_matches('/');
        let mut out = Vec::new();
        match &self.backend {
            Backend::Object { store, .. } => {
                let mut sizes = std::collections::HashMap::new();
                // (key, version): a locking sink reads the first version of
                // each key, so an overwrite or a delete marker changes nothing.
                let mut manifests: Vec<(String, Option<String>)> = Vec::new();
                if self.locks() {
                    for (loc, v) in self.first_versions(&format!("{base}/")).await? {
                        if loc.ends_with(SUFFIX) {
                            manifests.push((loc, Some(v.id)));
                        } else {
                            sizes.insert(loc, v.size);
                        }
                    }
                } else {
                    let mut s = store.list(Some(&ObjPath::from(base)));
                    while let Some(meta) = s.next().await {
                        let meta = meta.map_err(|e| self.store_err("listing", base, &e))?;
                        let loc = meta.location.to_string();
                        if loc.ends_with(SUFFIX) {
                            manifests.push((loc, None));
                        } else {
                            sizes.insert(loc, meta.size);
                        }
                    }
                }
                for (loc, version) in manifests {
                    let opts = object_store::GetOptions {
                        version,
                        ..Default::default()
                    };
                    let r = store
                        .get_opts(&ObjPath::from(loc.as_str()), opts)
                        .await
                        .map_err(|e| self.store_err("reading manifest", &loc, &e))?;
                    let bytes = r
                        .bytes()
                        .await
                        .map_err(|e| self.store_err("reading manifest", &loc, &e))?;
                    match serde_json::from_slice::<Manifest>(&bytes) {
                        Ok(m) => {
                            let archive_key = loc.trim_end_matches(SUFFIX).to_string();
                            out.push(SinkEntry {
                                member: m.member.clone(),
                                archive_size: sizes.get(&archive_key).copied(),
                                manifest: m,
                            });
                        }
                        Err(e) => {
                            tracing::warn!(sink = %self.cfg.name, "skipping unreadable manifest {loc}: {e}")
                        }
                    }
                }
            }
            Backend::Dir { root } => {
                let dir = root.join(base);
                for member in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
                    for s in crate::local::list_member(&member.path()) {
                        out.push(SinkEntry {
                            member: s.manifest.member.clone(),
                            archive_size: std::fs::metadata(&s.archive_path).ok().map(|m| m.len()),
                            manifest: s.manifest,
                        });
                    }
                }
            }
            Backend::Dsmc { catalog, .. } => {
                let text = std::fs::read_to_string(catalog).unwrap_or_default();
                for line in text.lines() {
                    if let Ok(m) = serde_json::from_str::<Manifest>(line) {
                        out.retain(|e: &SinkEntry| e.manifest.id != m.id);
                        out.push(SinkEntry {
                            member: m.member.clone(),
                            archive_size: Some(m.archive_size),
                            manifest: m,
                        });
                    }
                }
            }
        }
        out.sort_by(|a, b| b.manifest.created_at.cmp(&a.manifest.created_at));
        Ok(out)
    }

    /// Removes a copy: the manifest first, so a crash never leaves a manifest
    /// that points at nothing.
    pub async fn delete(&self, member: &str, archive: &str) -> Result<(), SinkError> {
        let a = self.rel(member, archive);
        let j = format!("{a}{SUFFIX}");
        match &self.backend {
            Backend::Object { .. } if self.locks() => self.delete_versions(&[&j, &a]).await,
            Backend::Object { store, .. } => {
                for k in [&j, &a] {
                    match store.delete(&ObjPath::from(k.as_str())).await {
                        Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                        Err(e @ object_store::Error::PermissionDenied { .. }) => {
                            return Err(SinkError::DeleteDenied {
                                sink: self.cfg.name.clone(),
                                key: k.clone(),
                                message: chain(&e),
                            })
                        }
                        Err(e) => return Err(self.store_err("deleting", k, &e)),
                    }
                }
                Ok(())
            }
            Backend::Dir { root } => {
                for k in [&j, &a] {
                    let p = root.join(k);
                    match std::fs::remove_file(&p) {
                        Ok(()) => {}
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                        Err(e) => return Err(self.fs_err(FsError::new("deleting", &p, e))),
                    }
                }
                Ok(())
            }
            Backend::Dsmc { .. } => Ok(()),
        }
    }

    /// Opens a stored archive as a byte stream (for restores and scrubbing).
    pub async fn open(
        &self,
        member: &str,
        archive: &str,
    ) -> Result<futures_util::stream::BoxStream<'static, Result<Bytes, SinkError>>, SinkError> {
        let key = self.rel(member, archive);
        let name = self.cfg.name.clone();
        match &self.backend {
            Backend::Object { store, .. } => {
                let opts = object_store::GetOptions {
                    version: self.pinned_version(&key).await?,
                    ..Default::default()
                };
                let r = store.get_opts(&ObjPath::from(key.as_str()), opts).await.map_err(|e| match e {
                    object_store::Error::NotFound { .. } => SinkError::NotFound { sink: name.clone(), key: key.clone() },
                    e => self.store_err("reading", &key, &e),
                })?;
                let k = key.clone();
                Ok(r
                    .into_stream()
                    .map(move |c| {
                        c.map_err(|e| SinkError::Store {
                            sink: name.clone(),
                            op: "reading",
                            key: k.clone(),
                            message: chain(&e),
                        })
                    })
                    .boxed())
            }
            Backend::Dir { root } => {
                let p = root.join(&key);
                let data = tokio::fs::File::open(&p).await.map_err(|e| match e.kind() {
                    std::io::ErrorKind::NotFound => SinkError::NotFound { sink: name.clone(), key: key.clone() },
                    _ => self.fs_err(FsError::new("opening", &p, e)),
                })?;
                let s = futures_util::stream::unfold((data, p, name), |(mut f, p, name)| async move {
                    use tokio::io::AsyncReadExt;
                    let mut buf = vec![0u8; 1 << 20];
                    match f.read(&mut buf).await {
                        Ok(0) => None,
                        Ok(n) => {
                            buf.truncate(n);
                            Some((Ok(Bytes::from(buf)), (f, p, name)))
                        }
                        Err(e) => Some((Err(SinkError::Fs(FsError::new("reading", &p, e), name.clone())), (f, p, name))),
                    }
                });
                Ok(s.boxed())
            }
            Backend::Dsmc { .. } => Err(SinkError::Tape {
                sink: name,
                message: "retrieve archives from tape with `dsmc retrieve` first, then restore from that file".into(),
            }),
        }
    }

    fn description(&self, m: &Manifest) -> String {
        self.cfg
            .description
            .as_deref()
            .unwrap_or(DEFAULT_DESCRIPTION)
            .replace("{cluster}", &m.cluster)
            .replace("{member}", &m.member)
            .replace("{revision}", &m.revision.to_string())
            .replace("{id}", &m.id)
    }

    fn dsmc_args(&self, command: &str, m: &Manifest, paths: &DsmcPaths) -> Vec<String> {
        let mut args = vec![command.to_string()];
        if let Some(o) = &self.cfg.optfile {
            args.push(format!("-optfile={}", o.display()));
        }
        args.push(format!("-errorlogname={}", paths.error_log.display()));
        args.push(format!("-description={}", self.description(m)));
        args.extend(self.cfg.extra_args.iter().cloned());
        args
    }

    fn tape_err(&self, message: String) -> SinkError {
        SinkError::Tape {
            sink: self.cfg.name.clone(),
            message,
        }
    }

    /// Makes sure every path dsmc writes is there and writable by this user
    /// before dsmc runs, so a sandbox or ownership problem is named by its
    /// config key instead of surfacing as a dsmc error (or a lost log).
    /// Returns the error log's length, so that only this run's lines are
    /// quoted on failure.
    fn dsmc_prepare(&self, paths: &DsmcPaths) -> Result<u64, SinkError> {
        use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
        let fix = "; the unit may write only the paths the config names (vigil-generator adds them as ReadWritePaths= on daemon-reload), and they must belong to the user vigil runs as";
        let log = &paths.error_log;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&paths.log_dir)
            .map_err(|e| {
                self.tape_err(format!(
                    "error_log: cannot create its directory {}: {e}{fix}",
                    paths.log_dir.display()
                ))
            })?;
        if let Ok(meta) = std::fs::symlink_metadata(log) {
            if meta.file_type().is_symlink() {
                return Err(self.tape_err(format!(
                    "error_log {}: is a symbolic link, which dsmc refuses for its error log",
                    log.display()
                )));
            }
        }
        let len = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(log)
            .and_then(|f| f.metadata())
            .map(|m| m.len())
            .map_err(|e| {
                self.tape_err(format!(
                    "error_log {}: cannot write: {e}{fix}",
                    log.display()
                ))
            })?;
        let pw = &paths.password_dir;
        fsutil::ensure_private_dir(pw).map_err(|e| {
            self.tape_err(format!(
                "password_dir {}: {e}{fix}; it must be the PASSWORDDIR of this node's stanza in dsm.sys",
                pw.display()
            ))
        })?;
        // IBM (non-root users): the password dir is owned by the user, and
        // no TSM.PWD, TSM.KDB, TSM.IDX or TSM.sth of another user is in it.
        let me = rustix::process::geteuid().as_raw();
        for p in std::iter::once(pw.clone()).chain(
            ["TSM.PWD", "TSM.KDB", "TSM.IDX", "TSM.sth"]
                .iter()
                .map(|f| pw.join(f)),
        ) {
            if let Ok(meta) = std::fs::metadata(&p) {
                if meta.uid() != me {
                    return Err(self.tape_err(format!(
                        "password_dir: {} belongs to uid {}, but dsmc runs as uid {me}: chown it to the user vigil runs as (dsmc stores and rotates the node password there with PASSWORDACCESS GENERATE)",
                        p.display(),
                        meta.uid()
                    )));
                }
            }
        }
        Ok(len)
    }

    /// Runs one dsmc command with its logs in the configured directory:
    /// `-errorlogname` names the error log, `DSM_LOG` (with a trailing slash,
    /// so dsmc takes it as a directory) and the working directory catch the
    /// schedule, web client and instrumentation logs.
    async fn dsmc_run(
        &self,
        what: &str,
        program: &Path,
        args: &[String],
        paths: &DsmcPaths,
    ) -> Result<(), SinkError> {
        let before = self.dsmc_prepare(paths)?;
        let mut dsm_log = paths.log_dir.clone().into_os_string();
        dsm_log.push("/");
        let out = vigil_core::cmd::run_in(
            program,
            args,
            self.cfg.timeout(),
            Some(&paths.log_dir),
            &[("DSM_LOG", dsm_log.as_os_str())],
        )
        .await
        .map_err(|e| self.tape_err(e.to_string()))?;
        self.dsmc_check(what, program, args, &out, &paths.error_log, before)
    }

    /// Judges a dsmc return code: 0 is success, 4 and 8 are what the config
    /// says (failure by default), anything else is failure.
    fn dsmc_check(
        &self,
        what: &str,
        program: &Path,
        args: &[String],
        out: &vigil_core::cmd::CmdOutput,
        log: &Path,
        log_before: u64,
    ) -> Result<(), SinkError> {
        let ok = match out.code {
            Some(0) => true,
            Some(4) => self.cfg.rc4.unwrap_or_default() == RcPolicy::Ok,
            Some(8) => self.cfg.rc8.unwrap_or_default() == RcPolicy::Ok,
            _ => false,
        };
        if ok {
            if out.code != Some(0) {
                tracing::warn!(sink = %self.cfg.name, "dsmc {what} returned {:?}, accepted by config", out.code);
            }
            return Ok(());
        }
        let meaning = match out.code {
            Some(4) => "4: some files were skipped",
            Some(8) => "8: warnings",
            Some(12) => "12: errors",
            Some(_) => "unexpected code",
            None => "killed by a signal",
        };
        let mut msg = format!(
            "dsmc {what} failed with return code {} ({meaning}): `{}`",
            out.code
                .map(|c| c.to_string())
                .unwrap_or_else(|| "none".into()),
            vigil_core::cmd::render_argv(program, args)
        );
        for (label, text) in [
            ("stderr", vigil_core::cmd::tail(&out.stderr, 10)),
            ("output", vigil_core::cmd::tail(&out.stdout, 10)),
        ] {
            if !text.is_empty() {
                msg.push_str(&format!("\n{label}:\n{text}"));
            }
        }
        // Only what this run appended: the log keeps every earlier run's errors.
        let t = vigil_core::cmd::tail(&read_from(log, log_before), 10);
        if !t.is_empty() {
            msg.push_str(&format!("\n{} (tail):\n{t}", log.display()));
        }
        Err(self.tape_err(msg))
    }

    async fn dsmc_archive(
        &self,
        archive: &Path,
        m: &Manifest,
        catalog: &Path,
        paths: &DsmcPaths,
    ) -> Result<(), SinkError> {
        let program = self
            .cfg
            .dsmc
            .clone()
            .unwrap_or_else(|| PathBuf::from("dsmc"));
        let manifest_path = Manifest::path_for(archive);
        let mut args = self.dsmc_args("archive", m, paths);
        args.push(archive.display().to_string());
        args.push(manifest_path.display().to_string());
        self.dsmc_run("archive", &program, &args, paths).await?;
        if self.cfg.retrieve_verify.unwrap_or(false) {
            let dir = catalog
                .parent()
                .map(|p| p.join(format!(".retrieve-{}", m.id)))
                .unwrap_or_default();
            let _ = std::fs::remove_dir_all(&dir);
            fsutil::ensure_private_dir(&dir).map_err(|e| self.fs_err(e))?;
            let mut args = self.dsmc_args("retrieve", m, paths);
            args.push("-replace=yes".into());
            args.push(archive.display().to_string());
            args.push(format!("{}/", dir.display()));
            let checked = self
                .dsmc_run("retrieve", &program, &args, paths)
                .await
                .and_then(|()| {
                    let got = dir.join(&m.archive);
                    let (n, sha) = crate::sha256_file(&got)
                        .map_err(|e| self.tape_err(format!("retrieve-verify: {e}")))?;
                    if n != m.archive_size || sha != m.archive_sha256 {
                        return Err(SinkError::Mismatch {
                            sink: self.cfg.name.clone(),
                            key: format!("retrieved {}", got.display()),
                            expected: m.archive_sha256.clone(),
                            actual: sha,
                            expected_size: m.archive_size,
                            actual_size: n,
                        });
                    }
                    Ok(())
                });
            let _ = std::fs::remove_dir_all(&dir);
            checked?;
        }
        if let Some(d) = catalog.parent() {
            fsutil::ensure_private_dir(d).map_err(|e| self.fs_err(e))?;
        }
        let mut line = serde_json::to_vec(m).unwrap_or_default();
        line.push(b'\n');
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(catalog)
            .and_then(|mut f| f.write_all(&line))
            .map_err(|e| self.fs_err(FsError::new("recording in tape catalog", catalog, e)))
    }
}

/// The longest a run waits, before its members start, for the multipart
/// cleanup of one sink (listings and aborts are small requests).
const CLEANUP_LIMIT: Duration = Duration::from_secs(30);

/// Why the HTTP client for a sink's own S3 requests could not be built.
#[derive(Debug, thiserror::Error)]
enum HttpClientError {
    #[error("reading ca_file {}: {source}", path.display())]
    ReadCa {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("ca_file {}: {}", path.display(), chain(source))]
    Ca {
        path: PathBuf,
        source: reqwest::Error,
    },
    #[error("building the HTTP client: {}", chain(.0))]
    Build(reqwest::Error),
}

/// The HTTP client for the S3 requests object_store does not make itself,
/// with the sink's timeouts, CA and plain-HTTP rule.
fn http_client(cfg: &SinkConfig) -> Result<reqwest::Client, HttpClientError> {
    let mut b = reqwest::Client::builder()
        .timeout(cfg.timeout().min(CLEANUP_LIMIT))
        .connect_timeout(cfg.connect_timeout())
        .https_only(!cfg.allow_http.unwrap_or(false));
    if let Some(ca) = &cfg.ca_file {
        let pem = std::fs::read(ca).map_err(|source| HttpClientError::ReadCa {
            path: ca.clone(),
            source,
        })?;
        let certs =
            reqwest::Certificate::from_pem_bundle(&pem).map_err(|source| HttpClientError::Ca {
                path: ca.clone(),
                source,
            })?;
        b = b.tls_certs_merge(certs);
    }
    b.build().map_err(HttpClientError::Build)
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
            s.spawn(|| {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map(|rt| rt.block_on(f))
            })
            .join()
        })
        .unwrap_or_else(|p| std::panic::resume_unwind(p))
        .unwrap_or_else(|e| panic!("starting a runtime for the sink cleanup: {e}")),
    }
}

/// The paths one tape-dsmc sink writes, resolved against state.dir.
#[derive(Debug, Clone)]
struct DsmcPaths {
    error_log: PathBuf,
    log_dir: PathBuf,
    password_dir: PathBuf,
}

/// The text of `path` from byte `from` on (lossy), empty if unreadable.
fn read_from(path: &Path, from: u64) -> String {
    use std::io::{Read, Seek, SeekFrom};
    let mut buf = Vec::new();
    if let Ok(mut f) = std::fs::File::open(path) {
        let from = if f.metadata().map(|m| m.len() < from).unwrap_or(false) {
            0 // rotated or truncated since
        } else {
            from
        };
        let _ = f
            .seek(SeekFrom::Start(from))
            .and_then(|_| f.read_to_end(&mut buf));
    }
    String::from_utf8_lossy(&buf).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn parse(extra: &str, dir: &Path) -> vigil_core::Config {
        let text = format!(
            "[cluster]\nname = \"prod\"\nmembers = [{{ name = \"cp-1\", endpoint = \"http://127.0.0.1:2379\" }}]\n[state]\ndir = \"{}\"\n{extra}",
            dir.display()
        );
        vigil_core::Config::parse(&text, Path::new("test.toml")).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn azure_and_gcs_clients_build_from_config() {
        let d = tempfile::tempdir().unwrap();
        let sa = d.path().join("sa.json");
        // A service-account file as Google issues it, with a throwaway RSA key.
        let out = std::process::Command::new("openssl")
            .args([
                "genpkey",
                "-algorithm",
                "RSA",
                "-pkeyopt",
                "rsa_keygen_bits:2048",
            ])
            .output()
            .unwrap();
        assert!(out.status.success(), "openssl genpkey failed");
        let account = serde_json::json!({
            "type": "service_account",
            "project_id": "p",
            "private_key_id": "k",
            "private_key": String::from_utf8(out.stdout).unwrap(),
            "client_email": "vigil@p.iam.gserviceaccount.com",
            "token_uri": "https://oauth2.googleapis.com/token"
        });
        std::fs::write(&sa, account.to_string()).unwrap();
        std::fs::set_permissions(&sa, std::fs::Permissions::from_mode(0o600)).unwrap();
        let cfg = parse(
            &format!(
                "[[sink]]\nname = \"blob\"\nkind = \"azure\"\naccount = \"vigilbackups\"\ncontainer = \"etcd\"\naccess_key = \"dGVzdGtleQ==\"\n\n[[sink]]\nname = \"gcs\"\nkind = \"gcs\"\nbucket = \"etcd-backups\"\nservice_account_file = \"{}\"\n",
                sa.display()
            ),
            d.path(),
        );
        for s in cfg.sinks() {
            let sink =
                Sink::build(s, "prod", d.path()).unwrap_or_else(|e| panic!("{}: {e}", s.name));
            assert!(sink.streams() && sink.can_delete());
            assert!(sink.location("cp-1", "a.age").contains("prod/cp-1/a.age"));
        }
    }

    #[test]
    fn kind_specific_keys_are_checked() {
        let d = tempfile::tempdir().unwrap();
        let text = format!(
            "[cluster]\nname = \"prod\"\nmembers = [{{ name = \"cp-1\", endpoint = \"http://127.0.0.1:2379\" }}]\n[state]\ndir = \"{}\"\n[[sink]]\nname = \"t\"\nkind = \"tape-dsmc\"\nbucket = \"x\"\n",
            d.path().display()
        );
        let e = vigil_core::Config::parse(&text, Path::new("v.toml"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("sink[0].bucket") && e.contains("does not apply"),
            "{e}"
        );
        let e = vigil_core::Config::parse(
            &text.replace(
                "kind = \"tape-dsmc\"\nbucket = \"x\"",
                "kind = \"s3\"\nbucket = \"x\"",
            ),
            Path::new("v.toml"),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("sink[0].access_key_id") && e.contains("required"),
            "{e}"
        );
        let e = vigil_core::Config::parse(
            &text.replace("kind = \"tape-dsmc\"\nbucket = \"x\"", "kind = \"s3\"\nbucket = \"x\"\naccess_key_id = \"a\"\nsecret_access_key = \"TOPSECRET\"\nendpoint = \"http://rgw:80\""),
            Path::new("v.toml"),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("allow_http") && !e.contains("TOPSECRET"), "{e}");
        let s3 = "kind = \"s3\"\nbucket = \"x\"\naccess_key_id = \"a\"\nsecret_access_key = \"s\"";
        for (lock, want) in [
            (
                "object_lock = { mode = \"compliance\", days = 0 }",
                "key `sink[0].object_lock.days`: must be between 1 and 36500",
            ),
            (
                "object_lock = { mode = \"legal-hold\", days = 3 }",
                "unknown variant `legal-hold`",
            ),
            (
                "object_lock = { mode = \"compliance\", days = 3, years = 1 }",
                "unknown field `years`",
            ),
        ] {
            let e = vigil_core::Config::parse(
                &text.replace(
                    "kind = \"tape-dsmc\"\nbucket = \"x\"",
                    &format!("{s3}\n{lock}"),
                ),
                Path::new("v.toml"),
            )
            .unwrap_err()
            .to_string();
            assert!(e.contains(want), "{lock}: {e}");
        }
        let e = vigil_core::Config::parse(
            &text.replace(
                "kind = \"tape-dsmc\"\nbucket = \"x\"",
                "kind = \"dir\"\npath = \"/srv/x\"\nobject_lock = { mode = \"compliance\", days = 3 }",
            ),
            Path::new("v.toml"),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("sink[0].object_lock") && e.contains("does not apply to kind \"dir\""),
            "{e}"
        );
        let ok = text.replace(
            "kind = \"tape-dsmc\"\nbucket = \"x\"",
            &format!("{s3}\nobject_lock = {{ mode = \"governance\", days = 30 }}"),
        );
        let cfg = vigil_core::Config::parse(&ok, Path::new("v.toml")).unwrap();
        let sink = Sink::build(cfg.sinks().next().unwrap(), "prod", d.path()).unwrap();
        assert!(sink.locks());
    }

    /// A copy that is not there is its own error kind, so restore moves to
    /// the next source without reading the message (object store and dir).
    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn a_missing_copy_is_not_found() {
        let d = tempfile::tempdir().unwrap();
        let cfg = parse(
            &format!(
                "[[sink]]\nname = \"nfs\"\nkind = \"fs\"\npath = \"{0}/fs\"\n\n[[sink]]\nname = \"backuppc\"\nkind = \"dir\"\npath = \"{0}/dir\"\n",
                d.path().display()
            ),
            d.path(),
        );
        for s in cfg.sinks() {
            std::fs::create_dir_all(d.path().join(if s.name == "nfs" { "fs" } else { "dir" }))
                .unwrap();
            let sink = Sink::build(s, "prod", d.path()).unwrap();
            match sink.open("cp-1", "prod-cp-1-x.db.zst.age").await {
                Err(SinkError::NotFound { sink, key }) => {
                    assert_eq!(sink, s.name);
                    assert!(key.ends_with("cp-1/prod-cp-1-x.db.zst.age"), "{key}");
                }
                Err(e) => panic!("{}: {e}", s.name),
                Ok(_) => panic!("{}: opened a missing copy", s.name),
            }
        }
    }
}
