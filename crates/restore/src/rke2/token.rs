//! The RKE2 server token: the archived one, decrypted and put back on new
//! hosts, and the proof that the token rke2 will start with opens the
//! snapshot's bootstrap data.

use crate::identity::Identities;
use crate::stores::Stores;
use crate::RestoreError;
use std::io::Read;
use std::path::Path;
use vigil_core::Config;

/// Proves that the token rke2 will start with opens the snapshot's
/// bootstrap data: the archived one when it is put back, else this node's.
pub(super) fn prove_token(
    cfg: &Config,
    stores: &Stores,
    ids: &Identities,
    token_file: &Path,
    restoring: bool,
    snapshot: &Path,
) -> Result<(), RestoreError> {
    use vigil_archive::rke2_bootstrap::{check, BootstrapError};
    let (token, origin) = match std::fs::read(token_file) {
        Ok(t) if !restoring => (t, format!("the server token in {}", token_file.display())),
        Err(e) if !restoring && e.kind() != std::io::ErrorKind::NotFound => {
            return Err(RestoreError::Failed(format!(
                "reading {}: {e}",
                token_file.display()
            )))
        }
        _ => (
            archived_token(cfg, stores, ids)?,
            format!(
                "the archived server token ({}-server-token.age)",
                cfg.cluster_name()
            ),
        ),
    };
    // k3s strips the newline a token file ends with, nothing else.
    let token = String::from_utf8_lossy(&token);
    let token = token.trim_end_matches('\n');
    let entries = crate::bootstrap::read_entries(snapshot).map_err(|e| {
        RestoreError::Failed(format!(
            "{e}; the server token cannot be proven. Nothing was stopped. If the snapshot is good, rerun with --no-token-check"
        ))
    })?;
    match check(token, &entries) {
        Ok(o) => {
            tracing::info!("{origin} opens {}", o.key);
            Ok(())
        }
        Err(BootstrapError::NoEntry) => {
            tracing::warn!("{}; going on", BootstrapError::NoEntry);
            Ok(())
        }
        Err(e) => Err(RestoreError::Failed(format!(
            "{origin} does not open this snapshot's bootstrap data: {e}. \
             Nothing was stopped. Put the cluster's token in {} (or use --restore-token with an archived token that matches) and rerun",
            token_file.display()
        ))),
    }
}

/// The archived server token, decrypted.
fn archived_token(
    cfg: &Config,
    stores: &Stores,
    ids: &Identities,
) -> Result<Vec<u8>, RestoreError> {
    let opened = stores.open_token(cfg.cluster_name())?.ok_or_else(|| {
        RestoreError::NoArchive(format!(
            "no archived RKE2 server token ({}-server-token.age) in the sources; set snapshot.rke2_token_file so the snapshot job archives it, \
             or pass the original token to rke2 yourself",
            cfg.cluster_name()
        ))
    })?;
    let d = age::Decryptor::new(opened.reader).map_err(|e| {
        RestoreError::Failed(format!(
            "the archived server token is not a valid age file: {e}"
        ))
    })?;
    let mut r = d.decrypt(ids.iter()).map_err(|e| match e {
        age::DecryptError::NoMatchingKeys => RestoreError::Failed(format!(
            "the archived server token cannot be decrypted with {}",
            ids.origin
        )),
        e => RestoreError::Failed(format!("decrypting the archived server token: {e}")),
    })?;
    let mut token = Vec::new();
    r.read_to_end(&mut token)
        .map_err(|e| RestoreError::Failed(format!("decrypting the archived server token: {e}")))?;
    Ok(token)
}

/// Decrypts the archived server token and writes it 0600, never over a different one.
pub(super) fn restore_token(
    cfg: &Config,
    stores: &Stores,
    ids: &Identities,
    dest: &Path,
) -> Result<(), RestoreError> {
    let mut token = archived_token(cfg, stores, ids)?;
    if !token.ends_with(b"\n") {
        token.push(b'\n');
    }
    if let Ok(existing) = std::fs::read(dest) {
        if existing.trim_ascii() == token.trim_ascii() {
            return Ok(());
        }
        return Err(RestoreError::Usage(format!(
            "{} exists with a different token; this node is not new. Move it away if you really mean to restore the archived token",
            dest.display()
        )));
    }
    if let Some(d) = dest.parent() {
        vigil_core::fsutil::ensure_private_dir(d)?;
    }
    vigil_core::fsutil::atomic_write(dest, &token)?;
    Ok(())
}
