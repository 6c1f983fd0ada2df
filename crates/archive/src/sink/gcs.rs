//! `kind = "gcs"`: Google Cloud Storage through object_store.

use super::object::{client_options, retry, Location, ObjectBackend};
use super::{build_err, chain, SinkError};
use std::sync::Arc;
use vigil_core::config::sink::GcsSink;
use vigil_core::config::SinkConfig;

pub(super) fn build(
    cfg: &SinkConfig,
    o: &GcsSink,
    _state_dir: &std::path::Path,
) -> Result<ObjectBackend, SinkError> {
    let sa = vigil_core::secret::resolve_path(&o.service_account_file);
    let mut b = object_store::gcp::GoogleCloudStorageBuilder::new()
        .with_bucket_name(o.bucket.clone())
        .with_service_account_path(sa.display().to_string())
        .with_client_options(client_options(cfg, o.allow_http, o.ca_file.as_ref())?)
        .with_retry(retry(cfg));
    if let Some(ep) = &o.endpoint {
        b = b.with_base_url(ep.trim_end_matches('/'));
    }
    let store = Arc::new(b.build().map_err(|e| build_err(cfg, chain(&e)))?);
    Ok(ObjectBackend::new(cfg, store, Location::Named))
}
