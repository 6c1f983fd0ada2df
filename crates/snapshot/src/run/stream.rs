//! A member's snapshot from its stream to its manifest: the async reader,
//! the blocking writer that verifies, compresses, encrypts, writes (and
//! fans out to the streaming sinks) and reads back, and the manifest.

use super::SinkCopy;
use crate::cluster::{self, Member, SnapshotStream};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use vigil_archive::{verify_readback, ArchiveError, ArchiveOptions, ArchiveWriter, SinkTx};
use vigil_core::config::MemberConfig;
use vigil_core::manifest::{self, Manifest, Membership, RecordedMember};
use vigil_core::outcome::Stage;
use vigil_core::{now, rfc3339};
use vigil_etcd::{ListedMember, MemberStatus, SnapshotVerifier, Verified, VerifyError};

/// A member archived: where, its manifest, and its streamed sink copies.
pub(super) struct Archived {
    pub path: PathBuf,
    pub manifest: Manifest,
    pub copies: Vec<SinkCopy>,
}

pub(super) enum Msg {
    Chunk(Vec<u8>),
    End,
}

/// Why the member's stream ended before its end.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    #[error("member {member} ({endpoint}): opening the snapshot stream: {source}")]
    Open {
        member: String,
        endpoint: String,
        #[source]
        source: cluster::StreamError,
    },
    #[error("member {member} ({endpoint}): no {what} for {} (snapshot.stall_timeout); the member is slow, overloaded or cut off", humantime::format_duration(*stall))]
    Stalled {
        member: String,
        endpoint: String,
        what: &'static str,
        stall: Duration,
    },
    #[error("member {member} ({endpoint}): snapshot stream broke after {total} bytes: {source} (the member died or the connection was cut)")]
    Broke {
        member: String,
        endpoint: String,
        total: u64,
        #[source]
        source: cluster::StreamError,
    },
}

/// Why the writer did not produce a verified archive.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error(transparent)]
    Write(ArchiveError),
    #[error("snapshot stream aborted")]
    Aborted,
    #[error(transparent)]
    Verify(#[from] VerifyError),
    #[error(transparent)]
    Readback(ArchiveError),
}

impl WriteError {
    pub fn stage(&self) -> Stage {
        match self {
            WriteError::Write(_) => Stage::Write,
            WriteError::Aborted => Stage::Stream,
            WriteError::Verify(_) => Stage::Verify,
            WriteError::Readback(_) => Stage::Readback,
        }
    }
}

/// Reads the member's stream and hands each blob to the writer thread
/// without copying it. A member that goes quiet for stall_timeout is dropped.
pub(super) async fn stream_into<M: Member>(
    client: &M,
    stall: Duration,
    rate: Option<u64>,
    tx: &mpsc::Sender<Msg>,
    progress: &vigil_core::progress::Task,
) -> Result<(), StreamError> {
    let stalled = |what: &'static str| StreamError::Stalled {
        member: client.name().to_string(),
        endpoint: client.endpoint().to_string(),
        what,
        stall,
    };
    let mut stream = match tokio::time::timeout(stall, client.snapshot()).await {
        Ok(Ok(s)) => s,
        Ok(Err(source)) => {
            return Err(StreamError::Open {
                member: client.name().to_string(),
                endpoint: client.endpoint().to_string(),
                source,
            })
        }
        Err(_) => return Err(stalled("answer to the snapshot request")),
    };
    let mut total = 0u64;
    let t0 = Instant::now();
    loop {
        let blob = match tokio::time::timeout(stall, stream.next_blob()).await {
            Ok(Ok(Some(b))) => b,
            Ok(Ok(None)) => break,
            Ok(Err(source)) => {
                return Err(StreamError::Broke {
                    member: client.name().to_string(),
                    endpoint: client.endpoint().to_string(),
                    total,
                    source,
                })
            }
            Err(_) => return Err(stalled("data")),
        };
        total += blob.len() as u64;
        progress.inc(blob.len() as u64);
        if tx.send(Msg::Chunk(blob)).await.is_err() {
            // The writer stopped; its own error says why.
            return Ok(());
        }
        if let Some(rate) = rate {
            tokio::time::sleep(crate::gentle::pace(total, rate, t0.elapsed())).await;
        }
    }
    Ok(())
}

/// What the writer made: the verified stream, the archive's temp file,
/// the sink uploads still alive, and the proof's copy of the plaintext.
pub(super) struct Written {
    pub verified: Verified,
    pub written: vigil_archive::Written,
    pub alive: Vec<SinkTx>,
    pub tee: Option<crate::prove::Tee>,
}

/// The blocking half: verify, compress, encrypt, write (and fan out), read back.
pub(super) fn write_archive(
    mut rx: mpsc::Receiver<Msg>,
    final_path: &Path,
    opts: &ArchiveOptions,
    sinks: Vec<SinkTx>,
    mut tee: Option<crate::prove::Tee>,
) -> Result<Written, WriteError> {
    let mut w =
        ArchiveWriter::create_with_sinks(final_path, opts, sinks).map_err(WriteError::Write)?;
    let mut v = SnapshotVerifier::new();
    loop {
        match rx.blocking_recv() {
            Some(Msg::Chunk(c)) => {
                v.update(&c);
                w.write(&c).map_err(WriteError::Write)?;
                if let Some(t) = &mut tee {
                    t.write(&c);
                }
            }
            Some(Msg::End) => break,
            None => return Err(WriteError::Aborted),
        }
    }
    let verified = v.finish()?;
    let (written, alive) = w.finish().map_err(WriteError::Write)?;
    if let Err(e) = verify_readback(&written) {
        let _ = std::fs::remove_file(&written.tmp);
        return Err(WriteError::Readback(e));
    }
    Ok(Written {
        verified,
        written,
        alive,
        tee,
    })
}

/// What the manifest records about the run and the member besides the archive.
pub(super) struct Facts<'a> {
    pub cluster: &'a str,
    pub member: &'a MemberConfig,
    pub st: &'a MemberStatus,
    pub listed: Option<&'a [ListedMember]>,
    /// etcd version by member ID, as this run has seen them so far.
    pub versions: &'a HashMap<u64, String>,
    pub archive: &'a ArchiveOptions,
    pub encrypted: bool,
    pub recipients: &'a [String],
}

#[allow(clippy::too_many_arguments)]
pub(super) fn manifest(
    f: &Facts<'_>,
    id: &str,
    path: &Path,
    v: &Verified,
    w: &vigil_archive::Written,
    key_count: i64,
    created: time::OffsetDateTime,
    took: Duration,
) -> Manifest {
    let (m, st) = (f.member, f.st);
    Manifest {
        format: manifest::FORMAT,
        id: id.to_string(),
        cluster: f.cluster.to_string(),
        cluster_id: format!("{:x}", st.cluster_id),
        member: m.name.clone(),
        member_id: format!("{:x}", st.member_id),
        endpoint: m.endpoint.clone(),
        revision: st.revision,
        raft_index: st.raft_index,
        raft_term: st.raft_term,
        etcd_version: st.version.clone(),
        db_size: st.db_size,
        db_size_in_use: st.db_size_in_use,
        leader: format!("{:x}", st.leader),
        is_leader: st.leader == st.member_id,
        key_count,
        snapshot_size: v.total,
        snapshot_sha256: hex::encode(v.stream_sha256),
        db_sha256: hex::encode(v.db_sha256),
        archive: path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        archive_size: w.size,
        archive_sha256: w.sha256.clone(),
        compression: "zstd".into(),
        zstd_level: f.archive.zstd_level,
        encryption: if f.encrypted {
            "age".into()
        } else {
            "none".into()
        },
        age_recipients: f.recipients.to_vec(),
        created_at: rfc3339(created),
        duration_ms: took.as_millis() as u64,
        verified_at: Some(rfc3339(now())),
        vigil_version: vigil_core::VERSION.into(),
        quarantined: None,
        membership: f.listed.map(|l| membership(f.versions, st, l)),
        restore_proven_at: None,
        restore_proof: None,
    }
}

/// The member list as recorded, with the versions this run has seen.
fn membership(
    versions: &HashMap<u64, String>,
    st: &MemberStatus,
    listed: &[ListedMember],
) -> Membership {
    Membership {
        cluster_id: format!("{:x}", st.cluster_id),
        members: listed
            .iter()
            .map(|l| RecordedMember {
                id: format!("{:x}", l.id),
                name: l.name.clone(),
                peer_urls: l.peer_urls.clone(),
                client_urls: l.client_urls.clone(),
                is_learner: l.is_learner,
                etcd_version: if l.id == st.member_id {
                    Some(st.version.clone())
                } else {
                    versions.get(&l.id).cloned()
                },
            })
            .collect(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn membership_records_every_member_and_the_versions_seen() {
        let st = MemberStatus {
            cluster_id: 0xc1,
            member_id: 0xa,
            revision: 9,
            raft_term: 2,
            raft_index: 12,
            raft_applied_index: 12,
            version: "3.5.16".into(),
            db_size: 1,
            db_size_in_use: 1,
            leader: 0xa,
            is_learner: false,
            errors: vec![],
            db_size_quota: 0,
        };
        let l = |id: u64, name: &str, learner: bool| ListedMember {
            id,
            name: name.into(),
            peer_urls: vec![format!("https://10.0.0.{id}:2380")],
            client_urls: vec![format!("https://10.0.0.{id}:2379")],
            is_learner: learner,
        };
        let listed = [
            l(0xa, "cp-1", false),
            l(0xb, "cp-2", false),
            l(0xc, "", true),
        ];
        // cp-2's status came in first; the learner's never did.
        let versions = [(0xb, "3.5.15".to_string())].into_iter().collect();
        let m = membership(&versions, &st, &listed);
        assert_eq!(m.cluster_id, "c1");
        let got: Vec<(&str, &str, Option<&str>, bool)> = m
            .members
            .iter()
            .map(|x| {
                (
                    x.id.as_str(),
                    x.name.as_str(),
                    x.etcd_version.as_deref(),
                    x.is_learner,
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("a", "cp-1", Some("3.5.16"), false),
                ("b", "cp-2", Some("3.5.15"), false),
                ("c", "", None, true),
            ]
        );
        assert_eq!(m.members[1].peer_urls, ["https://10.0.0.11:2380"]);
    }
}
