//! After the members: do they agree? A diverged member's archive is
//! quarantined and its streamed copies removed.

use super::{MemberReport, QUARANTINE_DIR};
use crate::cluster::Member;
use crate::consistency::{self, ConsistencyReport, MemberHash};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use vigil_archive::sink::Sink;
use vigil_core::fsutil::{self, FsError};
use vigil_core::manifest::Manifest;
use vigil_core::outcome::Stage;
use vigil_etcd::{EtcdError, MemberStatus};

/// A call made on every member at once that did not answer.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error(transparent)]
    Etcd(#[from] EtcdError),
    #[error("internal error: {0}")]
    Internal(#[source] tokio::task::JoinError),
}

/// Compares the members that were reached, marks the diverged ones failed
/// (stage consistency) and quarantines their new archives.
pub(super) async fn consistency<M: Member>(
    root: &Path,
    sinks: &[Arc<Sink>],
    connected: &[&M],
    members: &mut [MemberReport],
) -> ConsistencyReport {
    let rep = check(connected).await;
    for (name, why) in &rep.diverged {
        if let Some(m) = members.iter_mut().find(|m| &m.member == name) {
            tracing::error!(member = %name, "{why}");
            m.ok = false;
            m.stage = Stage::Consistency;
            m.error = Some(format!("member {name} diverged: {why}"));
        }
    }
    for n in &rep.notes {
        tracing::warn!("consistency: {n}");
    }
    for m in members
        .iter_mut()
        .filter(|m| m.stage == Stage::Consistency && m.archive.is_some())
    {
        quarantine(root, sinks, m).await;
    }
    rep
}

async fn check<M: Member>(clients: &[&M]) -> ConsistencyReport {
    let statuses = join_each(clients, |c| async move { c.status().await }).await;
    let mut answers: Vec<(M, MemberStatus)> = Vec::new();
    let mut notes = Vec::new();
    for (c, s) in clients.iter().zip(statuses) {
        match s {
            Ok(s) => answers.push(((*c).clone(), s)),
            Err(e) => notes.push(format!("{}: status unavailable: {e}", c.name())),
        }
    }
    let revision = answers.iter().map(|(_, s)| s.revision).min().unwrap_or(0);
    let answered: Vec<&M> = answers.iter().map(|(c, _)| c).collect();
    let hashes = join_each(&answered, move |c| async move { c.hash_kv(revision).await }).await;
    let members: Vec<MemberHash> = answers
        .iter()
        .zip(hashes)
        .map(|((c, s), h)| MemberHash {
            member: c.name().to_string(),
            cluster_id: format!("{:x}", s.cluster_id),
            revision,
            hash: h.as_ref().ok().map(|h| h.hash),
            compact_revision: h.as_ref().ok().map(|h| h.compact_revision),
            error: h.as_ref().err().map(|e| e.to_string()),
        })
        .collect();
    let (diverged, mut judged_notes) = consistency::judge(&members);
    notes.append(&mut judged_notes);
    ConsistencyReport {
        ok: diverged.is_empty(),
        revision,
        members,
        diverged,
        notes,
    }
}

/// Runs `f` for every member concurrently and returns the answers in order.
async fn join_each<M, T, F, Fut>(clients: &[&M], f: F) -> Vec<Result<T, CallError>>
where
    M: Member,
    T: Send + 'static,
    F: Fn(M) -> Fut,
    Fut: std::future::Future<Output = Result<T, EtcdError>> + Send + 'static,
{
    let handles: Vec<_> = clients
        .iter()
        .map(|c| tokio::spawn(f((*c).clone())))
        .collect();
    let mut out = Vec::with_capacity(handles.len());
    for h in handles {
        out.push(match h.await {
            Ok(r) => r.map_err(CallError::from),
            Err(e) => Err(CallError::Internal(e)),
        });
    }
    out
}

/// Moves a diverged member's new archive out of its member directory and
/// removes the copies streamed to sinks: it must never count as a verified
/// copy, displace a good one or be restored by default. It stays on the
/// bastion, marked, for whoever investigates.
async fn quarantine(root: &Path, sinks: &[Arc<Sink>], m: &mut MemberReport) {
    let (Some(path), Some(man)) = (m.archive.clone(), m.manifest.clone()) else {
        return;
    };
    let why = m.error.clone().unwrap_or_else(|| "diverged".into());
    let dir = root.join(QUARANTINE_DIR).join(&m.member);
    let moved = (|| -> Result<PathBuf, FsError> {
        fsutil::ensure_private_dir(&root.join(QUARANTINE_DIR))?;
        fsutil::ensure_private_dir(&dir)?;
        let to = dir.join(&man.archive);
        let mut q = man.clone();
        q.verified_at = None;
        q.quarantined = Some(why.clone());
        fsutil::atomic_write(&Manifest::path_for(&to), &q.to_json())?;
        std::fs::rename(&path, &to).map_err(|e| FsError::new("quarantining", &path, e))?;
        let old = Manifest::path_for(&path);
        std::fs::remove_file(&old).map_err(|e| FsError::new("removing", &old, e))?;
        if let Some(p) = path.parent() {
            fsutil::fsync_dir(p)?;
        }
        fsutil::fsync_dir(&dir)?;
        m.manifest = Some(q);
        Ok(to)
    })();
    match moved {
        Ok(to) => {
            tracing::error!(member = %m.member, "quarantined {}: {why}", to.display());
            m.error = Some(format!(
                "{why}; its archive is quarantined in {} (not verified, never counted or restored by default)",
                to.display()
            ));
            m.archive = Some(to);
        }
        Err(e) => {
            // Still on disk in the member dir: at least make it unverified.
            let mut q = man.clone();
            q.verified_at = None;
            q.quarantined = Some(why.clone());
            let _ = fsutil::atomic_write(&Manifest::path_for(&path), &q.to_json());
            m.manifest = Some(q);
            m.error = Some(format!("{why}; quarantining its archive failed: {e}"));
        }
    }
    for c in m.sinks.iter_mut().filter(|c| c.ok) {
        let Some(sink) = sinks.iter().find(|s| s.name() == c.sink) else {
            continue;
        };
        c.ok = false;
        c.error = Some(match sink.delete(&m.member, &man.archive).await {
            Ok(()) => "removed: the member diverged".into(),
            Err(e) => format!("the member diverged, and removing this copy failed: {e}"),
        });
    }
}
