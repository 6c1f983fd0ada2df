//! One member's pipeline: connect, check, stream into the archive and the
//! streaming sinks, commit, prove, manifest; then the sinks' copies. Each
//! stage returns its value; `snapshot.timeout` bounds them all, and a stage
//! that runs out of it names itself.

use super::stream::{self, Archived, StreamError, WriteError};
use super::uploads::{self, ABORT_GRACE};
use super::{Ctx, MemberReport};
use crate::cluster::{Cluster, Member};
use crate::gentle::{Turn, TurnError};
use crate::prove::Start;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use vigil_archive::local;

use vigil_archive::SinkTx;
use vigil_core::config::MemberConfig;
use vigil_core::fsutil::{self, FsError};
use vigil_core::manifest::{Manifest, ProofResult};
use vigil_core::outcome::Stage;
use vigil_core::{now, rfc3339};
use vigil_etcd::{EtcdError, ListedMember, MemberStatus};

/// Why a member was not archived. The stage it failed in goes into its
/// outcome record.
#[derive(Debug, thiserror::Error)]
pub enum MemberError {
    #[error(transparent)]
    Connect(EtcdError),
    #[error(transparent)]
    Status(EtcdError),
    #[error("member {member} ({endpoint}) answers for etcd cluster ID {found}, but this bastion backs up cluster ID {pinned} (pinned {pinned_at} in {}): refused, nothing archived or pruned for it. Check the endpoint; if the cluster was rebuilt on purpose, run `vigil-snapshot repin`", vigil_core::pin::FILE)]
    ForeignCluster {
        member: String,
        endpoint: String,
        found: String,
        pinned: String,
        pinned_at: String,
    },
    #[error(transparent)]
    Turn(#[from] TurnError),
    #[error(transparent)]
    KeyCount(EtcdError),
    #[error(transparent)]
    Stream(#[from] StreamError),
    #[error("member {member}: archive writer crashed: {source}")]
    WriterCrashed {
        member: String,
        #[source]
        source: tokio::task::JoinError,
    },
    #[error("member {member} ({endpoint}): {source}")]
    Write {
        member: String,
        endpoint: String,
        #[source]
        source: WriteError,
    },
    #[error("member {member}: {source}")]
    Commit {
        member: String,
        #[source]
        source: FsError,
    },
    #[error("member {member}: {source}")]
    Manifest {
        member: String,
        #[source]
        source: FsError,
    },
    #[error("member {member} ({endpoint}): gave up after snapshot.timeout = {} in stage {stage}", humantime::format_duration(*limit))]
    Timeout {
        member: String,
        endpoint: String,
        limit: Duration,
        stage: Stage,
    },
}

impl MemberError {
    /// The stage the member's outcome names.
    pub fn stage(&self) -> Stage {
        match self {
            MemberError::Connect(_) => Stage::Connect,
            MemberError::Status(_) | MemberError::Turn(_) | MemberError::KeyCount(_) => {
                Stage::Status
            }
            MemberError::ForeignCluster { .. } => Stage::Consistency,
            MemberError::Stream(_) | MemberError::WriterCrashed { .. } => Stage::Stream,
            MemberError::Write { source, .. } => source.stage(),
            MemberError::Commit { .. } => Stage::Write,
            MemberError::Manifest { .. } => Stage::Manifest,
            MemberError::Timeout { stage, .. } => *stage,
        }
    }
}

/// `snapshot.timeout` for one member: started once it has its turn.
struct Deadline<'a> {
    at: tokio::time::Instant,
    limit: Duration,
    member: &'a MemberConfig,
    /// The member's bar: each stage shows on it.
    progress: vigil_core::progress::Task,
}

impl Deadline<'_> {
    /// Runs one stage; out of time, it fails in that stage.
    async fn stage<T>(
        &self,
        stage: Stage,
        f: impl Future<Output = Result<T, MemberError>>,
    ) -> Result<T, MemberError> {
        self.progress.stage(&stage.to_string());
        match tokio::time::timeout_at(self.at, f).await {
            Ok(r) => r,
            Err(_) => Err(MemberError::Timeout {
                member: self.member.name.clone(),
                endpoint: self.member.endpoint.clone(),
                limit: self.limit,
                stage,
            }),
        }
    }
}

/// One member, start to end, as its report; with its client when it was
/// reached and is of this cluster (the consistency check and the token's
/// bootstrap read use it).
pub(super) async fn member<C: Cluster>(
    ctx: Arc<Ctx<C>>,
    m: MemberConfig,
    limit: Duration,
) -> (MemberReport, Option<C::Member>) {
    // Waiting for a turn is not the member's own time: snapshot.timeout starts after.
    let progress = ctx.progress.task(&m.name, None);
    progress.stage("turn");
    let mut turn = ctx.bounds.turn();
    turn.take(&m.name).await;
    let t0 = Instant::now();
    let deadline = Deadline {
        at: tokio::time::Instant::now() + limit,
        limit,
        member: &m,
        progress,
    };
    let (r, client) = pipeline(&ctx, &m, &deadline, turn).await;
    deadline
        .progress
        .finish(if r.is_ok() { "done" } else { "FAILED" });
    let ms = t0.elapsed().as_millis() as u64;
    let mut rep = match r {
        Ok(a) => archived(&m, a, ms),
        Err(e) => {
            if matches!(e, MemberError::Timeout { .. }) {
                tracing::error!(member = %m.name, "{e}");
            } else {
                tracing::error!(member = %m.name, stage = %e.stage(), "{e}");
            }
            MemberReport::failed(&m, e.stage(), e.to_string(), ms)
        }
    };
    if let Ok(mut d) = ctx.deferred.lock() {
        rep.deferred = d.remove(&m.name).unwrap_or_default();
    }
    (rep, client)
}

/// The report of an archived member: good unless its restore proof failed.
fn archived(m: &MemberConfig, a: Archived, ms: u64) -> MemberReport {
    let Archived {
        path,
        manifest,
        copies,
    } = a;
    tracing::info!(member = %m.name, "archived {} ({})", path.display(), summary_of(&manifest));
    let proof_error = manifest.restore_proof.as_ref().filter(|_| manifest.proof_failed()).map(|p| {
        format!(
            "member {} ({}): restore proof failed at check {}: {}; the archive is kept but does not count as a good copy",
            m.name,
            m.endpoint,
            p.check.as_deref().unwrap_or("?"),
            p.error.as_deref().unwrap_or_default()
        )
    });
    if let Some(e) = &proof_error {
        tracing::error!(member = %m.name, "{e}");
    }
    MemberReport {
        member: m.name.clone(),
        endpoint: m.endpoint.clone(),
        ok: proof_error.is_none(),
        stage: if proof_error.is_some() {
            Stage::Proof
        } else {
            Stage::Done
        },
        error: proof_error,
        archive: Some(path),
        manifest: Some(manifest),
        pruned: Vec::new(),
        sinks: copies,
        duration_ms: ms,
        deferred: Vec::new(),
    }
}

fn summary_of(m: &Manifest) -> String {
    format!(
        "revision {}, {} → {}, ratio {:.2}",
        m.revision,
        vigil_core::units::human_bytes(m.snapshot_size),
        vigil_core::units::human_bytes(m.archive_size),
        m.ratio()
    )
}

/// The stages in order. The streaming sinks' uploads start first and end
/// last: committed and checked when the archive is stored, aborted (and
/// waited for, so that no incomplete multipart upload stays in a store)
/// when it is not.
async fn pipeline<C: Cluster>(
    ctx: &Ctx<C>,
    m: &MemberConfig,
    deadline: &Deadline<'_>,
    mut turn: Turn,
) -> (Result<Archived, MemberError>, Option<C::Member>) {
    let id = format!("{}-{}-{}", ctx.cluster, m.name, ctx.run_id);
    let (mut uploads, txs) = uploads::start(ctx, m, &local::archive_name(&id, ctx.encrypted));
    let (stored, client) = match reach(ctx, m, deadline).await {
        Ok((client, st)) => {
            let r = store(ctx, m, &id, &client, st, deadline, txs, &mut turn).await;
            (r, Some(client))
        }
        Err(e) => {
            // Without their feed the uploads abort.
            drop(txs);
            (Err(e), None)
        }
    };
    let r = match stored {
        Ok((path, manifest, alive)) => {
            deadline
                .stage(Stage::Manifest, async {
                    let copies = uploads::finish(m, &manifest, alive, &mut uploads).await;
                    Ok(Archived {
                        path,
                        manifest,
                        copies,
                    })
                })
                .await
        }
        Err(e) => {
            // The senders are gone, so every upload aborts; wait for that.
            let stage = e.stage();
            deadline
                .stage(stage, async {
                    for (_, h) in uploads.drain(..) {
                        let _ = h.await;
                    }
                    Ok(())
                })
                .await
                .and(Err(e))
        }
    };
    drop(turn);
    if let Err(MemberError::Timeout { .. }) = &r {
        // The timed-out stage is dropped, so the sink uploads lose their
        // feed and abort; wait for that, or the process may exit first and
        // leave an incomplete multipart upload in the store.
        let until = tokio::time::Instant::now() + ABORT_GRACE;
        for (sink, h) in uploads.drain(..) {
            if tokio::time::timeout_at(until, h).await.is_err() {
                tracing::warn!(member = %m.name, sink = %sink.name(), "the upload did not abort within {ABORT_GRACE:?}");
            }
        }
    }
    (r, client)
}

/// Connects and reads the member's status; a member of another cluster
/// than the pinned one is refused before anything is streamed, stored or
/// pruned for it.
async fn reach<C: Cluster>(
    ctx: &Ctx<C>,
    m: &MemberConfig,
    deadline: &Deadline<'_>,
) -> Result<(C::Member, MemberStatus), MemberError> {
    let client = deadline
        .stage(Stage::Connect, async {
            ctx.etcd
                .connect(m, ctx.tls.as_ref(), ctx.connect_timeout)
                .await
                .map_err(MemberError::Connect)
        })
        .await?;
    let st = deadline
        .stage(Stage::Status, async {
            client.status().await.map_err(MemberError::Status)
        })
        .await?;
    let cluster_id = format!("{:x}", st.cluster_id);
    if let Some(pin) = ctx.pin.as_ref().filter(|p| p.cluster_id != cluster_id) {
        return Err(MemberError::ForeignCluster {
            member: m.name.clone(),
            endpoint: m.endpoint.clone(),
            found: cluster_id,
            pinned: pin.cluster_id.clone(),
            pinned_at: pin.pinned_at.clone(),
        });
    }
    Ok((client, st))
}

/// What the preflight and the proof know before the stream starts.
struct Ready {
    /// The status read when the turn came: the manifest's revision.
    st: MemberStatus,
    listed: Option<Vec<ListedMember>>,
    key_count: i64,
    tee: Option<crate::prove::Tee>,
    proof: Option<vigil_core::manifest::RestoreProof>,
    before: Option<vigil_restore::proof::Before>,
}

/// The status stage after the pin check: membership, the preflight and its
/// turn, the key count, and the proof's start.
async fn prepare<C: Cluster>(
    ctx: &Ctx<C>,
    m: &MemberConfig,
    client: &C::Member,
    st: &MemberStatus,
    turn: &mut Turn,
) -> Result<Ready, MemberError> {
    if !st.errors.is_empty() {
        tracing::warn!(member = %m.name, "member reports errors: {}", st.errors.join("; "));
    }
    if let Ok(mut v) = ctx.versions.lock() {
        v.insert(st.member_id, st.version.clone());
    }
    // What a restore rebuilds from (contract 6). Without it the archive is
    // still good: a restore then takes the peer URLs from the config.
    let listed = match client.member_list().await {
        Ok(l) => Some(l),
        Err(e) => {
            tracing::warn!(member = %m.name, "{e}; this manifest records no membership, so a restore from it needs peer_url in the config or --peer-url");
            None
        }
    };

    // The preflight, before anything is streamed.
    let record = |why: String| {
        if let Ok(mut d) = ctx.deferred.lock() {
            d.entry(m.name.clone()).or_default().push(why);
        }
    };
    // The manifest's revision and key count are those of the status read
    // when the turn came, just before the stream: the status above may be
    // minutes old after a wait, and a count taken after a long stream can
    // find its revision compacted (the apiserver compacts every 5 minutes).
    let st = crate::gentle::wait_for_turn(&ctx.bounds, client, turn, &record).await?;
    let (tee, proof) = match ctx.proofs.start(&m.name, st.db_size).await {
        Start::Tee(t) => (Some(t), None),
        Start::Record(p) => (None, Some(*p)),
        Start::Off => (None, None),
    };
    // Waiting for a proof slot can outlast a compaction window, and the
    // proof compares at the manifest's revision: with a proof, the status is
    // read again, just before the stream.
    let st = match tee {
        Some(_) => client.status().await.map_err(MemberError::Status)?,
        None => st,
    };
    let key_count = client
        .key_count(st.revision)
        .await
        .map_err(MemberError::KeyCount)?;
    // The proof compares at the snapshot's revision when it can; this
    // reading stands in should the member compact past it meanwhile.
    let before = match &tee {
        Some(_) => client
            .hash_kv(st.revision)
            .await
            .map(|hash| vigil_restore::proof::Before {
                revision: st.revision,
                key_count,
                hash,
            })
            .map_err(|e| tracing::info!(member = %m.name, "restore proof: no reading before the stream: {e}"))
            .ok(),
        None => None,
    };
    Ok(Ready {
        st,
        listed,
        key_count,
        tee,
        proof,
        before,
    })
}

/// The local half: stream, verify, write, read back, commit, prove,
/// manifest. Gives the uploads that are still alive back for their commit.
#[allow(clippy::too_many_arguments)]
async fn store<C: Cluster>(
    ctx: &Ctx<C>,
    m: &MemberConfig,
    id: &str,
    client: &C::Member,
    st: MemberStatus,
    deadline: &Deadline<'_>,
    sink_txs: Vec<SinkTx>,
    turn: &mut Turn,
) -> Result<(PathBuf, Manifest, Vec<SinkTx>), MemberError> {
    let ready = deadline
        .stage(Stage::Status, prepare(ctx, m, client, &st, turn))
        .await?;
    let Ready {
        st,
        listed,
        key_count,
        tee,
        mut proof,
        before,
    } = ready;

    deadline.progress.set_total(st.db_size.max(0) as u64);
    let created = now();
    let t0 = Instant::now();
    let final_path =
        local::member_dir(&ctx.root, &m.name).join(local::archive_name(id, ctx.encrypted));
    let written = deadline
        .stage(Stage::Stream, async {
            let (tx, rx) = mpsc::channel::<stream::Msg>(16);
            let opts = ctx.archive.clone();
            let fp = final_path.clone();
            let writer = tokio::task::spawn_blocking(move || {
                stream::write_archive(rx, &fp, &opts, sink_txs, tee)
            });
            let streamed = stream::stream_into(
                client,
                ctx.stall_timeout,
                ctx.bounds.rate,
                &tx,
                &deadline.progress,
            )
            .await;
            // What the member pays for ends with its stream: the next one may start.
            turn.give_back();
            if streamed.is_ok() {
                let _ = tx.send(stream::Msg::End).await;
            }
            drop(tx);
            let written = writer.await.map_err(|source| MemberError::WriterCrashed {
                member: m.name.clone(),
                source,
            })?;
            // A failed stream explains a failed writer (the writer only saw the channel close).
            streamed?;
            written.map_err(|source| MemberError::Write {
                member: m.name.clone(),
                endpoint: m.endpoint.clone(),
                source,
            })
        })
        .await?;
    let stream::Written {
        verified,
        written,
        alive,
        tee,
    } = written;

    if let Err(source) = fsutil::commit_rename(&written.tmp, &final_path) {
        let _ = std::fs::remove_file(&written.tmp);
        return Err(MemberError::Commit {
            member: m.name.clone(),
            source,
        });
    }
    // The snapshot's own time, without the proof's.
    let took = t0.elapsed();
    if let Some(tee) = tee {
        let p = deadline
            .stage(Stage::Proof, async {
                Ok(client
                    .prove(
                        &ctx.proofs,
                        tee,
                        ctx.tls.as_ref(),
                        ctx.connect_timeout,
                        before,
                        st.version.clone(),
                    )
                    .await)
            })
            .await?;
        if p.result == ProofResult::Proven {
            tracing::info!(
                member = %m.name,
                "restore proven: revision {}, {} keys, hash_kv {} as the member's{}",
                p.revision.unwrap_or_default(),
                p.key_count.unwrap_or_default(),
                p.hash_kv.unwrap_or_default(),
                if p.peers_agree.is_empty() { String::new() } else { format!(" and {}'s", p.peers_agree.join(", ")) }
            );
        }
        proof = Some(p);
    }
    let versions = ctx.versions.lock().map(|v| v.clone()).unwrap_or_default();
    let mut manifest = stream::manifest(
        &stream::Facts {
            cluster: &ctx.cluster,
            member: m,
            st: &st,
            listed: listed.as_deref(),
            versions: &versions,
            archive: &ctx.archive,
            encrypted: ctx.encrypted,
            recipients: &ctx.recipients,
        },
        id,
        &final_path,
        &verified,
        &written,
        key_count,
        created,
        took,
    );
    if let Some(p) = proof {
        if p.result == ProofResult::Proven {
            manifest.restore_proven_at = Some(rfc3339(now()));
        }
        manifest.restore_proof = Some(p);
    }
    let mpath = Manifest::path_for(&final_path);
    if let Err(source) = fsutil::atomic_write(&mpath, &manifest.to_json()) {
        // Without its manifest the archive does not count; do not leave it.
        let _ = std::fs::remove_file(&final_path);
        return Err(MemberError::Manifest {
            member: m.name.clone(),
            source,
        });
    }
    Ok((final_path, manifest, alive))
}
