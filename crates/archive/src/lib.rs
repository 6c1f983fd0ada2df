//! The archive pipeline (zstd, then age, then a private file), the local
//! archive store with its listing, cleanup and pruning, the sinks, and the
//! catalog of every copy in all of them.

pub mod catalog;
pub mod local;
pub mod lock;
pub mod rke2_bootstrap;
pub mod sink;
mod uploads;
mod writer;

pub use writer::{
    encrypt_small, sha256_file, verify_readback, ArchiveOptions, ArchiveWriter, SinkTx, Written,
};

#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error(transparent)]
    Fs(#[from] vigil_core::fsutil::FsError),
    #[error("setting up {what}: {message}")]
    Setup { what: &'static str, message: String },
    #[error("writing archive {path}: {source}{hint}", hint = disk_full_hint(source))]
    Write {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("reading archive {path}: {source}")]
    Read {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("archive {path} read back as {actual_size} bytes with sha256 {actual}, but {expected_size} bytes with sha256 {expected} were written")]
    ReadbackMismatch {
        path: std::path::PathBuf,
        expected: String,
        actual: String,
        expected_size: u64,
        actual_size: u64,
    },
}

fn disk_full_hint(e: &std::io::Error) -> &'static str {
    if e.raw_os_error() == Some(28) || e.raw_os_error() == Some(122) {
        " (the disk is full: free space or lower keep_last; older archives were left untouched)"
    } else {
        ""
    }
}

impl ArchiveError {
    pub fn is_disk_full(&self) -> bool {
        match self {
            ArchiveError::Write { source, .. } => !disk_full_hint(source).is_empty(),
            ArchiveError::Fs(f) => f.is_disk_full(),
            _ => false,
        }
    }
}
