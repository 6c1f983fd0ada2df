//! `kind = "fs"`: a mounted filesystem through object_store's local store.

use super::object::{Location, ObjectBackend};
use super::{build_err, chain, SinkError};
use std::sync::Arc;
use vigil_core::config::sink::FsSink;
use vigil_core::config::SinkConfig;
use vigil_core::fsutil;

pub(super) fn build(
    cfg: &SinkConfig,
    o: &FsSink,
    _state_dir: &std::path::Path,
) -> Result<ObjectBackend, SinkError> {
    fsutil::ensure_private_dir(&o.path).map_err(|e| build_err(cfg, e.to_string()))?;
    let store = object_store::local::LocalFileSystem::new_with_prefix(&o.path)
        .map_err(|e| build_err(cfg, chain(&e)))?;
    Ok(
        ObjectBackend::new(cfg, Arc::new(store), Location::Dir(o.path.clone()))
            .with_staging(o.path.clone()),
    )
}
