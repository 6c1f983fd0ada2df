//! The object-store backend every object kind shares (s3, azure, gcs, fs):
//! multipart uploads, listings and reads through `object_store`. Its kind's
//! file builds the store; S3 adds Object Lock and multipart cleanup.

use super::{build_err, chain, Backend, SinkEntry, SinkError, SinkMsg};
use bytes::Bytes;
use futures_util::stream::BoxStream;
use futures_util::StreamExt;
use object_store::path::Path as ObjPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload, WriteMultipart};
use sha2::{Digest, Sha256};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use time::OffsetDateTime;
use tokio::sync::mpsc;
use vigil_core::config::{SinkConfig, VerifyMode};
use vigil_core::manifest::{Manifest, SUFFIX};

/// How a key is shown to people.
pub(crate) enum Location {
    /// `s3://bucket/key`
    Url(String),
    /// A path under the `fs` sink's directory.
    Dir(PathBuf),
    /// `<sink>:key`
    Named,
}

pub(crate) struct ObjectBackend {
    pub(crate) name: String,
    pub(crate) store: Arc<dyn ObjectStore>,
    part_size: usize,
    concurrency: usize,
    location: Location,
    /// An `fs` sink's directory, where object_store stages `name#N` files.
    staging: Option<PathBuf>,
    /// S3 only: Object Lock and the multipart uploads a killed run left.
    pub(crate) s3: Option<super::s3::S3Parts>,
}

impl ObjectBackend {
    pub(crate) fn new(cfg: &SinkConfig, store: Arc<dyn ObjectStore>, location: Location) -> Self {
        ObjectBackend {
            name: cfg.name.clone(),
            store,
            part_size: cfg.part_size(),
            concurrency: cfg.upload_concurrency(),
            location,
            staging: None,
            s3: None,
        }
    }

    pub(crate) fn with_staging(mut self, root: PathBuf) -> Self {
        self.staging = Some(root);
        self
    }

    pub(crate) fn with_s3(mut self, parts: super::s3::S3Parts) -> Self {
        self.s3 = Some(parts);
        self
    }

    fn store_err(&self, op: &'static str, key: &str, e: &dyn std::error::Error) -> SinkError {
        SinkError::store(&self.name, op, key, e)
    }

    /// Reads `key` (at its pinned version in a locking sink); a missing
    /// object is `NotFound` when `missing` says so, else a store error.
    async fn get(
        &self,
        op: &'static str,
        key: &str,
        missing: bool,
    ) -> Result<object_store::GetResult, SinkError> {
        let opts = object_store::GetOptions {
            version: self.pinned_version(key).await?,
            ..Default::default()
        };
        self.store
            .get_opts(&ObjPath::from(key), opts)
            .await
            .map_err(|e| match e {
                object_store::Error::NotFound { .. } if missing => SinkError::NotFound {
                    sink: self.name.clone(),
                    key: key.to_string(),
                },
                e => self.store_err(op, key, &e),
            })
    }
}

#[async_trait::async_trait]
impl Backend for ObjectBackend {
    fn location(&self, key: &str) -> String {
        match &self.location {
            Location::Url(base) => format!("{base}{key}"),
            Location::Dir(root) => root.join(key).display().to_string(),
            Location::Named => format!("{}:{key}", self.name),
        }
    }

    async fn upload_stream(
        &self,
        key: String,
        mut rx: mpsc::Receiver<SinkMsg>,
    ) -> Result<u64, SinkError> {
        self.ensure_lock().await?;
        let path = ObjPath::from(key.as_str());
        let upload = self
            .store
            .put_multipart(&path)
            .await
            .map_err(|e| self.store_err("starting upload of", &key, &e))?;
        let mut w = WriteMultipart::new_with_chunk_size(upload, self.part_size);
        let mut n = 0u64;
        loop {
            match rx.recv().await {
                Some(SinkMsg::Data(b)) => {
                    if let Err(e) = w.wait_for_capacity(self.concurrency).await {
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
                        sink: self.name.clone(),
                        key,
                        reason: "the snapshot stream failed".into(),
                    });
                }
            }
        }
    }

    fn cleanup_files(&self, base: &str) -> Vec<PathBuf> {
        match &self.staging {
            Some(root) => {
                super::remove_staged(root, base, |n| n.contains(".age#") || n.contains(".json#"))
            }
            None => Vec::new(),
        }
    }

    fn has_uploads(&self) -> bool {
        self.s3.is_some()
    }

    async fn abort_stale_uploads(&self, prefix: &str) -> Vec<PathBuf> {
        match &self.s3 {
            Some(s3) => s3.abort_stale_uploads(&self.name, prefix).await,
            None => Vec::new(),
        }
    }

    async fn measure(
        &self,
        key: &str,
        mode: VerifyMode,
    ) -> Result<Option<(u64, Option<String>)>, SinkError> {
        if mode == VerifyMode::Size {
            if self.locks() {
                let v = self
                    .first_version(key)
                    .await?
                    .ok_or_else(|| SinkError::NotFound {
                        sink: self.name.clone(),
                        key: key.to_string(),
                    })?;
                return Ok(Some((v.size, None)));
            }
            let meta = self
                .store
                .head(&ObjPath::from(key))
                .await
                .map_err(|e| self.store_err("checking", key, &e))?;
            return Ok(Some((meta.size, None)));
        }
        let mut s = self.get("reading back", key, false).await?.into_stream();
        let mut h = Sha256::new();
        let mut n = 0u64;
        while let Some(chunk) = s.next().await {
            let c = chunk.map_err(|e| self.store_err("reading back", key, &e))?;
            n += c.len() as u64;
            h.update(&c);
        }
        Ok(Some((n, Some(hex::encode(h.finalize())))))
    }

    async fn put_manifest(&self, key: &str, m: &Manifest) -> Result<(), SinkError> {
        self.ensure_lock().await?;
        self.store
            .put(&ObjPath::from(key), PutPayload::from(m.to_json()))
            .await
            .map_err(|e| self.store_err("writing manifest", key, &e))?;
        self.lock_key(key).await
    }

    async fn list_files(&self, dir: &str) -> Result<Vec<(String, u64)>, SinkError> {
        let mut out = Vec::new();
        if self.locks() {
            for (loc, v) in self.first_versions(dir).await? {
                if let Some(n) = loc.strip_prefix(dir).filter(|n| !n.contains('/')) {
                    out.push((n.to_string(), v.size));
                }
            }
            return Ok(out);
        }
        let mut s = self.store.list(Some(&ObjPath::from(dir)));
        while let Some(meta) = s.next().await {
            let meta = meta.map_err(|e| self.store_err("listing", dir, &e))?;
            let loc = meta.location.to_string();
            if let Some(n) = loc.strip_prefix(dir).filter(|n| !n.contains('/')) {
                out.push((n.to_string(), meta.size));
            }
        }
        Ok(out)
    }

    async fn put_bytes(&self, key: &str, bytes: Bytes) -> Result<(), SinkError> {
        self.ensure_lock().await?;
        self.store
            .put(&ObjPath::from(key), PutPayload::from(bytes))
            .await
            .map_err(|e| self.store_err("writing", key, &e))?;
        self.lock_key(key).await
    }

    async fn list(&self, base: &str) -> Result<Vec<SinkEntry>, SinkError> {
        let journal = format!("{base}/{}/", super::JOURNAL_DIR);
        let mut sizes = std::collections::HashMap::new();
        // (key, version): a locking sink reads the first version of each
        // key, so an overwrite or a delete marker changes nothing.
        let mut manifests: Vec<(String, Option<String>)> = Vec::new();
        if self.locks() {
            for (loc, v) in self.first_versions(&format!("{base}/")).await? {
                if loc.starts_with(&journal) {
                    continue;
                }
                if loc.ends_with(SUFFIX) {
                    manifests.push((loc, Some(v.id)));
                } else {
                    sizes.insert(loc, v.size);
                }
            }
        } else {
            let mut s = self.store.list(Some(&ObjPath::from(base)));
            while let Some(meta) = s.next().await {
                let meta = meta.map_err(|e| self.store_err("listing", base, &e))?;
                let loc = meta.location.to_string();
                if loc.starts_with(&journal) {
                    continue;
                }
                if loc.ends_with(SUFFIX) {
                    manifests.push((loc, None));
                } else {
                    sizes.insert(loc, meta.size);
                }
            }
        }
        let mut out = Vec::new();
        for (loc, version) in manifests {
            let opts = object_store::GetOptions {
                version,
                ..Default::default()
            };
            let r = self
                .store
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
                    tracing::warn!(sink = %self.name, "skipping unreadable manifest {loc}: {e}")
                }
            }
        }
        Ok(out)
    }

    async fn delete(&self, keys: [&str; 2]) -> Result<(), SinkError> {
        if self.locks() {
            return self.delete_versions(&keys).await;
        }
        for k in keys {
            match self.store.delete(&ObjPath::from(k)).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e @ object_store::Error::PermissionDenied { .. }) => {
                    return Err(SinkError::DeleteDenied {
                        sink: self.name.clone(),
                        key: k.to_string(),
                        message: chain(&e),
                    })
                }
                Err(e) => return Err(self.store_err("deleting", k, &e)),
            }
        }
        Ok(())
    }

    async fn open(
        &self,
        key: &str,
    ) -> Result<BoxStream<'static, Result<Bytes, SinkError>>, SinkError> {
        let r = self.get("reading", key, true).await?;
        let (name, k) = (self.name.clone(), key.to_string());
        Ok(r.into_stream()
            .map(move |c| c.map_err(|e| SinkError::store(&name, "reading", &k, &e)))
            .boxed())
    }

    fn locks(&self) -> bool {
        self.locking().is_some()
    }

    async fn locked_until(&self, keys: [&str; 2]) -> Result<Option<OffsetDateTime>, SinkError> {
        self.copy_locked_until(keys).await
    }

    async fn lock_date(&self, key: &str) -> Result<Option<OffsetDateTime>, SinkError> {
        self.key_lock_date(key).await
    }

    async fn protection(&self, probe: &str) -> crate::lock::Protection {
        self.store_protection(probe).await
    }
}

/// The client options every object kind shares: timeouts, plain HTTP and
/// the CA of `ca_file`.
pub(crate) fn client_options(
    cfg: &SinkConfig,
    allow_http: bool,
    ca_file: Option<&PathBuf>,
) -> Result<object_store::ClientOptions, SinkError> {
    let mut o = object_store::ClientOptions::new()
        .with_timeout(cfg.timeout())
        .with_connect_timeout(cfg.connect_timeout())
        .with_allow_http(allow_http);
    if let Some(ca) = ca_file {
        let pem = std::fs::read(ca)
            .map_err(|e| build_err(cfg, format!("reading ca_file {}: {e}", ca.display())))?;
        let cert = object_store::Certificate::from_pem(&pem)
            .map_err(|e| build_err(cfg, format!("ca_file {}: {}", ca.display(), chain(&e))))?;
        o = o.with_root_certificate(cert);
    }
    Ok(o)
}

/// The retries every object kind shares.
pub(crate) fn retry(cfg: &SinkConfig) -> object_store::RetryConfig {
    object_store::RetryConfig {
        backoff: object_store::BackoffConfig {
            init_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(15),
            base: 2.0,
        },
        max_retries: cfg.retries() as usize,
        retry_timeout: cfg.retry_timeout(),
    }
}
