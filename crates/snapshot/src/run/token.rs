//! The RKE2 server token: kept, encrypted, beside the snapshots, and proven
//! against the cluster's bootstrap data.

use super::{BootstrapCheck, MemberReport, TokenReport};
use crate::cluster::Member;
use std::path::Path;
use vigil_archive::{rke2_bootstrap, ArchiveError, ArchiveOptions};
use vigil_core::config::SnapshotConfig;
use vigil_core::fsutil::{self, FsError};
use vigil_core::secret::SecretFileError;
use vigil_etcd::EtcdError;

/// Why the bootstrap entries could not be read.
#[derive(Debug, thiserror::Error)]
pub enum EntriesError {
    #[error("no member was snapshotted")]
    NoMember,
    #[error(transparent)]
    Etcd(#[from] EtcdError),
}

/// Why the token could not be archived.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error(transparent)]
    Read(#[from] SecretFileError),
    #[error(transparent)]
    Fs(#[from] FsError),
    #[error(transparent)]
    Seal(#[from] ArchiveError),
}

/// The `/bootstrap/` entries at the revision of the first member archived.
pub(super) async fn bootstrap_entries<M: Member>(
    members: &[MemberReport],
    clients: &[Option<M>],
) -> Result<rke2_bootstrap::Entries, EntriesError> {
    let (m, c) = members
        .iter()
        .zip(clients)
        .find_map(|(m, c)| Some((m.manifest.as_ref().filter(|_| m.ok)?, c.as_ref()?)))
        .ok_or(EntriesError::NoMember)?;
    // Compacted past the snapshot's revision already: the newest will do.
    match c.prefix_at(rke2_bootstrap::PREFIX, m.revision).await {
        Ok(v) => Ok(v),
        Err(_) => Ok(c.prefix_at(rke2_bootstrap::PREFIX, 0).await?),
    }
}

/// Keeps the RKE2 server token, encrypted, beside the snapshots, and proves
/// it opens the cluster's bootstrap data.
pub(super) fn archive_token(
    cluster: &str,
    sc: &SnapshotConfig,
    archive: &ArchiveOptions,
    src: &Path,
    bootstrap: Result<rke2_bootstrap::Entries, EntriesError>,
    warnings: &mut Vec<String>,
) -> TokenReport {
    let dir = sc.dir.join("rke2");
    let path = dir.join(format!("{cluster}-server-token.age"));
    let token = vigil_core::secret::read_secret_file(&vigil_core::secret::resolve_path(src));
    let r = match &token {
        Err(e) => Err(e.to_string()),
        Ok(token) => (|| -> Result<(), TokenError> {
            fsutil::ensure_private_dir(&dir)?;
            let sealed =
                vigil_archive::encrypt_small(token.expose().as_bytes(), &archive.recipients)?;
            Ok(fsutil::atomic_write(&path, &sealed)?)
        })()
        .map_err(|e| e.to_string()),
    };
    let check = match (&token, bootstrap) {
        (Err(_), _) => None,
        (Ok(_), Err(e)) => {
            warnings.push(format!(
                "the RKE2 server token was not proven against the bootstrap data: reading {}: {e}",
                rke2_bootstrap::PREFIX
            ));
            None
        }
        (Ok(t), Ok(entries)) => match rke2_bootstrap::check(t.expose(), &entries) {
            Ok(o) => Some(BootstrapCheck {
                ok: true,
                key: Some(o.key),
                error: None,
            }),
            Err(rke2_bootstrap::BootstrapError::NoEntry) => {
                warnings.push(format!(
                    "{} ({}): {}",
                    src.display(),
                    "snapshot.rke2_token_file",
                    rke2_bootstrap::BootstrapError::NoEntry
                ));
                None
            }
            Err(e) => {
                let e = format!("the RKE2 server token in {}: {e}", src.display());
                tracing::error!("{e}");
                Some(BootstrapCheck {
                    ok: false,
                    key: None,
                    error: Some(e),
                })
            }
        },
    };
    match r {
        Ok(()) => TokenReport {
            ok: true,
            path,
            error: None,
            bootstrap: check,
        },
        Err(e) => {
            tracing::error!("archiving the RKE2 server token: {e}");
            TokenReport {
                ok: false,
                path,
                error: Some(e),
                bootstrap: check,
            }
        }
    }
}
