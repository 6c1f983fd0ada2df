//! `kind = "azure"`: Azure Blob Storage through object_store.

use super::object::{client_options, retry, Location, ObjectBackend};
use super::{build_err, chain, SinkError};
use std::sync::Arc;
use vigil_core::config::sink::AzureSink;
use vigil_core::config::SinkConfig;

pub(super) fn build(
    cfg: &SinkConfig,
    o: &AzureSink,
    _state_dir: &std::path::Path,
) -> Result<ObjectBackend, SinkError> {
    let mut b = object_store::azure::MicrosoftAzureBuilder::new()
        .with_account(o.account.clone())
        .with_container_name(o.container.clone())
        .with_allow_http(o.allow_http)
        .with_client_options(client_options(cfg, o.allow_http, None)?)
        .with_retry(retry(cfg));
    if let Some(k) = &o.access_key {
        b = b.with_access_key(k.expose().to_string());
    }
    if let Some(ep) = &o.endpoint {
        b = b.with_endpoint(ep.clone());
    }
    let store = Arc::new(b.build().map_err(|e| build_err(cfg, chain(&e)))?);
    Ok(ObjectBackend::new(cfg, store, Location::Named))
}
