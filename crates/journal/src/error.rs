use std::path::PathBuf;

/// Why the journal could not do something; each names what it was about.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error(transparent)]
    Fs(#[from] vigil_core::fsutil::FsError),
    #[error(transparent)]
    Archive(#[from] vigil_archive::ArchiveError),
    #[error(transparent)]
    Sink(#[from] vigil_archive::sink::SinkError),
    #[error(transparent)]
    Etcd(#[from] vigil_etcd::EtcdError),
    #[error("journal segment {segment}: {message}")]
    Segment { segment: String, message: String },
    #[error("journal manifest {}: {message}", path.display())]
    Manifest { path: PathBuf, message: String },
    #[error("the journal's chain is broken at {0}")]
    Chain(crate::format::Break),
    #[error("{0}")]
    Config(String),
}

impl JournalError {
    /// A file that is not there (any more): a sink's object or a local file.
    pub fn is_not_found(&self) -> bool {
        match self {
            JournalError::Sink(vigil_archive::sink::SinkError::NotFound { .. }) => true,
            JournalError::Fs(e) => e.source.kind() == std::io::ErrorKind::NotFound,
            _ => false,
        }
    }
}
