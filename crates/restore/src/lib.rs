//! vigil-restore: disaster recovery for the etcd cluster vigil archives.
//!
//! - [`source`]: where archives can be read from (the local snapshot dir
//!   today, the shipping sinks later), merged by archive identity, and how one
//!   archive is chosen;
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
pub mod proc;
mod progress;
pub mod proof;
pub mod rke2;
mod scratch;
pub mod sinks;
pub mod source;
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
    Source(#[from] source::SourceError),
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
    Command(#[from] proc::CommandError),
    #[error("{0}")]
    Failed(String),
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

/// `vigil-restore list` as a table: one line per archive, newest first.
pub fn list_human(cat: &source::Catalog) -> String {
    use std::fmt::Write;
    use vigil_core::units::human_bytes;
    let mut s = String::new();
    for e in &cat.errors {
        let _ = writeln!(s, "warning: {e}");
    }
    for a in &cat.untrusted {
        let _ = writeln!(
            s,
            "warning: ignored archive {} (member {}): etcd cluster ID {} is not the pinned {}",
            a.id,
            a.member,
            a.manifest.cluster_id,
            cat.cluster_id.as_deref().unwrap_or("?")
        );
    }
    if cat.archives.is_empty() {
        s.push_str("no archives found\n");
        return s;
    }
    let _ = writeln!(
        s,
        "{:<40} {:<10} {:<24} {:>10} {:>10} {:<8} LOCATIONS",
        "ID", "MEMBER", "CREATED", "REVISION", "SIZE", "VERIFIED"
    );
    for a in &cat.archives {
        let locs: Vec<String> = a
            .copies
            .iter()
            .map(|c| {
                format!(
                    "{}:{}{}",
                    c.source,
                    c.location,
                    if c.verified { "" } else { " (unverified)" }
                )
            })
            .collect();
        let _ = writeln!(
            s,
            "{:<40} {:<10} {:<24} {:>10} {:>10} {:<8} {}",
            a.id,
            a.member,
            a.created_at,
            a.revision,
            human_bytes(a.archive_size),
            if a.verified { "yes" } else { "NO" },
            locs.join(", ")
        );
    }
    s
}
