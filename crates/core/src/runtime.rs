//! The one way vigil builds a tokio runtime: the binaries' (`vigil_cli`) and
//! the sync paths of the libraries that drive async clients (restore, drill,
//! the restore proof, a sink's cleanup outside a runtime).

use tokio::runtime::{Builder, Runtime};

/// A runtime that could not be started (threads or the I/O driver refused).
#[derive(Debug, thiserror::Error)]
#[error("starting the async runtime: {source}")]
pub struct RuntimeError {
    source: std::io::Error,
}

/// A runtime on the calling thread only.
pub fn current_thread() -> Result<Runtime, RuntimeError> {
    Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|source| RuntimeError { source })
}

/// A runtime with `workers` threads (tokio's default, one per core, for `None`).
pub fn multi_thread(workers: Option<usize>) -> Result<Runtime, RuntimeError> {
    let mut b = Builder::new_multi_thread();
    if let Some(n) = workers {
        b.worker_threads(n);
    }
    b.enable_all()
        .build()
        .map_err(|source| RuntimeError { source })
}
