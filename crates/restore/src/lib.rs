//! vigil-restore: disaster recovery for the etcd cluster vigil archives.
//!
//! - [`stores`]: the local snapshot dir and the sinks, listed into the one
//!   archive catalog (`vigil_archive::catalog`) and opened for fetch;
//!   [`select`]: how one archive of the catalog is chosen; [`list`]: the
//!   catalog as `vigil-restore list` prints it;
//! - [`identity`]: age identities from a file, a passphrase-protected file or stdin;
//! - [`fetch`]: download, decrypt and decompress as one stream, verify etcd's
//!   trailer and the manifest hashes, and only then rename into place;
//! - [`etcd`]: one ready data directory per member plus the start commands;
//! - [`rke2`]: the RKE2 cluster-reset runbook, printed or executed;
//! - [`drill`]: restore each member's newest archive into a scratch etcd and
//!   prove it answers with the right data, on a schedule.

pub mod bootstrap;
pub mod bump;
pub mod drill;
pub mod etcd;
pub mod fetch;
pub mod guard;
pub mod identity;
pub mod list;
pub mod pitr;
pub mod proof;
pub mod rke2;
mod scratch;
pub mod select;
pub mod stores;
pub mod tool;
pub mod versions;

use vigil_core::exit;

/// Everything that can go wrong in vigil-restore, with context in every variant.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    /// Bad flags or a target that is not fit (exit 2).
    #[error("{0}")]
    Usage(String),
    #[error("identity {origin}: {message}")]
    Identity { origin: String, message: String },
    #[error(transparent)]
    Store(#[from] stores::StoreError),
    #[error("no archive to restore: {0}")]
    NoArchive(String),
    #[error("archive {id}: none of the identities in {identities} can decrypt it. It is encrypted to {recipients}; the identities given have the public keys {publics}. Please check --identity (the private key kept off the bastion)")]
    WrongKey {
        id: String,
        identities: String,
        recipients: String,
        publics: String,
    },
    /// The copy read is corrupt or truncated, or does not match its manifest.
    #[error("archive {id} at {location}: {message}")]
    Corrupt {
        id: String,
        location: String,
        message: String,
    },
    #[error("archive {id}: every copy failed: {}", errors.join("; "))]
    AllCopiesFailed { id: String, errors: Vec<String> },
    /// `fetch --out -` failed after bytes went to stdout (the snapshot's
    /// sha256 is known only at the end): the reader holds a bad stream.
    #[error("{error}. {bytes} bytes of the snapshot already went to standard output: that stream MUST NOT be used; delete whatever it was written to (a file, a restored data dir) and fetch again, another --archive or --source if this one stays bad")]
    Streamed {
        bytes: u64,
        error: Box<RestoreError>,
    },
    #[error(transparent)]
    Fs(#[from] vigil_core::fsutil::FsError),
    #[error(transparent)]
    Command(#[from] vigil_core::cmd::CmdError),
    #[error("{0}")]
    Failed(String),
    /// The journal cannot take the restore to the point asked for.
    #[error("point-in-time restore: {0}")]
    Journal(String),
    /// No journal source holds a segment yet.
    #[error("point-in-time restore: {0}")]
    NoJournal(String),
}

impl RestoreError {
    /// Exit code per contract 3: 2 for usage, config and unfit targets, else 1.
    pub fn exit_code(&self) -> i32 {
        match self {
            RestoreError::Usage(_) | RestoreError::Identity { .. } => exit::USAGE,
            _ => exit::FAILED,
        }
    }
}
