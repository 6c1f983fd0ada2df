//! `kind = "s3"`: S3 and Ceph RGW, with Object Lock (`lock.rs`) and the
//! cleanup of multipart uploads a killed run left (`uploads.rs`).

use super::object::{client_options, retry, Location, ObjectBackend};
use super::{build_err, chain, SinkError, CLEANUP_LIMIT};
use crate::lock::{BucketLock, LockError, Locker};
use std::path::PathBuf;
use std::sync::Arc;
use vigil_core::config::sink::S3Sink;
use vigil_core::config::SinkConfig;

/// What an S3 sink has beyond the object store.
pub(crate) struct S3Parts {
    pub(crate) bucket: String,
    endpoint: Option<String>,
    uploads: crate::uploads::Uploads,
    pub(crate) locker: Locker,
    /// The bucket's Object Lock configuration, once asked.
    pub(crate) bucket_lock: tokio::sync::OnceCell<Result<BucketLock, LockError>>,
}

pub(super) fn build(
    cfg: &SinkConfig,
    o: &S3Sink,
    _state_dir: &std::path::Path,
) -> Result<ObjectBackend, SinkError> {
    let mut b = object_store::aws::AmazonS3Builder::new()
        .with_bucket_name(o.bucket.clone())
        .with_region(o.region.clone())
        .with_access_key_id(o.access_key_id.clone())
        .with_secret_access_key(o.secret.expose().to_string())
        .with_virtual_hosted_style_request(!o.path_style)
        .with_allow_http(o.allow_http)
        .with_client_options(client_options(cfg, o.allow_http, o.ca_file.as_ref())?)
        .with_retry(retry(cfg));
    if let Some(ep) = &o.endpoint {
        b = b.with_endpoint(ep.clone());
    }
    if o.object_lock.is_some() {
        // S3 refuses an upload into a locked bucket without Content-MD5 or
        // an x-amz checksum.
        b = b.with_checksum_algorithm(object_store::aws::Checksum::SHA256);
    }
    let s3 = Arc::new(b.build().map_err(|e| build_err(cfg, chain(&e)))?);
    let http = http_client(cfg, o).map_err(|e| build_err(cfg, e.to_string()))?;
    let parts = S3Parts {
        bucket: o.bucket.clone(),
        endpoint: o.endpoint.clone(),
        uploads: crate::uploads::Uploads::new(s3.clone(), http.clone()),
        locker: Locker::new(s3.clone(), http, o.object_lock),
        bucket_lock: tokio::sync::OnceCell::new(),
    };
    let location = Location::Url(format!("s3://{}/", o.bucket));
    Ok(ObjectBackend::new(cfg, s3, location).with_s3(parts))
}

impl S3Parts {
    /// Aborts the multipart uploads under `prefix` that were initiated
    /// before this sink was built; failures are logged and left for the
    /// next run.
    pub(crate) async fn abort_stale_uploads(&self, sink: &str, prefix: &str) -> Vec<PathBuf> {
        let (up, bucket) = (&self.uploads, &self.bucket);
        let found = match up.list(prefix).await {
            Ok(f) => f,
            Err(e) => {
                tracing::warn!(sink = %sink, "listing incomplete multipart uploads under s3://{bucket}/{prefix} at {}: {e}", self.endpoint.as_deref().unwrap_or("AWS"));
                return Vec::new();
            }
        };
        let mut removed = Vec::new();
        for u in found {
            if !u.key.starts_with(prefix) {
                continue;
            }
            if !u.is_stale(prefix, up.since) {
                tracing::info!(sink = %sink, "keeping multipart upload {} of s3://{bucket}/{}: not known to be older than this run", u.id, u.key);
                continue;
            }
            match up.abort(&u).await {
                Ok(()) => removed.push(PathBuf::from(format!(
                    "s3://{bucket}/{} (incomplete multipart upload {})",
                    u.key, u.id
                ))),
                Err(e) => {
                    tracing::warn!(sink = %sink, "aborting multipart upload {} of s3://{bucket}/{}: {e}", u.id, u.key)
                }
            }
        }
        removed
    }
}

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
fn http_client(cfg: &SinkConfig, o: &S3Sink) -> Result<reqwest::Client, HttpClientError> {
    let mut b = reqwest::Client::builder()
        .timeout(cfg.timeout().min(CLEANUP_LIMIT))
        .connect_timeout(cfg.connect_timeout())
        .https_only(!o.allow_http);
    if let Some(ca) = &o.ca_file {
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
