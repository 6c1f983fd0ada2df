//! The restore proof of a snapshot run (issue 19): the verified plaintext a
//! member streamed is restored into a scratch etcd in memory (a tmpfs dir,
//! unix sockets only), and that etcd is compared with the live member at
//! the snapshot's revision: revision, key count, sampled keys and `hash_kv`.
//! A matching `hash_kv` means the archived bytes are the cluster's state at
//! that revision, not merely bytes that etcd sent with a matching sha256.
//!
//! No private key is involved: the plaintext is proven before encryption.
//! The scratch etcd and the restore tool are tied to this process (see
//! [`crate::guard`]); the caller owns the dir and its janitor.

use crate::etcd::{detect_tool, Tool};
use crate::scratch;
use etcd_client::GetOptions;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use vigil_core::config::{ProveRestore, RestoreConfig};
use vigil_core::manifest::{ProofResult, RestoreProof};
use vigil_core::outcome::Stage;
use vigil_etcd::MemberClient;

/// Keys per page when the scratch etcd's keys are sampled.
const PAGE: i64 = 1000;

/// The tools found once per run, and the proof's bounds.
#[derive(Debug, Clone)]
pub struct Prover {
    tool: Tool,
    etcd_bin: PathBuf,
    etcd_version: String,
    timeout: Duration,
    sample_keys: u32,
}

/// The live member just before its stream: the revision its status gave,
/// and its key count and `hash_kv` there. The snapshot holds that revision
/// or a later one.
#[derive(Debug, Clone, Copy)]
pub struct Before {
    pub revision: i64,
    pub key_count: i64,
    pub hash: vigil_etcd::HashKv,
}

impl Prover {
    /// A note when the tools are not of the snapshot's etcd major.minor (the
    /// drill's wording: the proof then proves less).
    pub fn version_note(&self, snapshot_version: &str) -> Option<String> {
        crate::versions::scratch_note(
            "the proof",
            snapshot_version,
            &self.tool,
            Some(&self.etcd_version),
        )
    }
}

/// Why no proof can run this time (the run says so and goes on).
#[derive(Debug, thiserror::Error)]
pub enum Unprovable {
    #[error("{0}")]
    Tools(String),
    #[error("restore.etcd_bin {bin}: cannot run it ({why}); install etcd (Debian: apt install etcd-server) or set restore.etcd_bin, or turn the proof off with snapshot.prove_restore.enabled = false")]
    Etcd { bin: String, why: String },
}

impl Prover {
    pub fn new(rc: &RestoreConfig, pr: &ProveRestore) -> Result<Self, Unprovable> {
        let tool = detect_tool(rc).map_err(|e| Unprovable::Tools(e.to_string()))?;
        let etcd_version =
            crate::versions::etcd_version(&rc.etcd_bin).ok_or_else(|| Unprovable::Etcd {
                bin: rc.etcd_bin.display().to_string(),
                why: "`--version` gave no etcd version".into(),
            })?;
        Ok(Self {
            tool,
            etcd_bin: rc.etcd_bin.clone(),
            etcd_version,
            timeout: pr.timeout.get(),
            sample_keys: pr.sample_keys,
        })
    }

    /// What restores and serves the proofs, e.g. `etcdctl 3.4.23, etcd 3.4.23`.
    pub fn tools(&self) -> String {
        format!(
            "{} {}, etcd {}",
            self.tool.kind, self.tool.version, self.etcd_version
        )
    }

    /// Proves `snap` (the member's verified stream, trailer included) in
    /// `dir` (empty, 0700, on a tmpfs) against `live`, as read `before` the
    /// stream and now, and against the other members (`peers`, those
    /// reachable). Blocking: call it from a thread of its own, which the
    /// scratch etcd is tied to.
    pub fn prove(
        &self,
        snap: &Path,
        dir: &Path,
        live: &MemberClient,
        peers: &[MemberClient],
        before: Option<Before>,
    ) -> RestoreProof {
        let t0 = Instant::now();
        let mut p = RestoreProof {
            result: ProofResult::Failed,
            tool: self.tools(),
            ..Default::default()
        };
        match self.steps(snap, dir, live, peers, before, &mut p, t0) {
            Ok(()) => p.result = ProofResult::Proven,
            Err((check, e)) => {
                p.check = Some(check.to_string());
                p.error = Some(e);
            }
        }
        p.duration_ms = t0.elapsed().as_millis() as u64;
        p
    }

    #[allow(clippy::too_many_arguments)]
    fn steps(
        &self,
        snap: &Path,
        dir: &Path,
        live: &MemberClient,
        peers: &[MemberClient],
        before: Option<Before>,
        p: &mut RestoreProof,
        t0: Instant,
    ) -> Result<(), (&'static str, String)> {
        let rt = vigil_core::runtime::current_thread().map_err(|e| ("start", e.to_string()))?;
        let spec = scratch::Spec {
            tool: &self.tool,
            etcd_bin: &self.etcd_bin,
            name: "proof",
            timeout: self.timeout,
            timeout_key: "snapshot.prove_restore.timeout",
            extra_args: &[],
        };
        let (scratch, c) = scratch::start(
            &spec,
            &rt,
            snap,
            dir,
            &dir.join("data"),
            t0 + self.timeout,
            &|_| {},
        )
        .map_err(|(stage, e)| {
            let check = if stage == Stage::Write {
                "restore"
            } else {
                "start"
            };
            (check, e)
        })?;
        // The restored copy is all that is needed now: halve the memory.
        let _ = std::fs::remove_file(snap);
        let sc = MemberClient {
            name: "scratch".into(),
            endpoint: format!("the proof's scratch etcd in {}", dir.display()),
            client: c,
            call_timeout: self.timeout,
        };
        let r = rt.block_on(async {
            tokio::time::timeout(
                self.timeout.saturating_sub(t0.elapsed()),
                self.compare(&sc, live, peers, before, p),
            )
            .await
            .unwrap_or_else(|_| {
                Err((
                    "timeout",
                    format!(
                        "the proof took longer than snapshot.prove_restore.timeout ({})",
                        humantime::format_duration(self.timeout)
                    ),
                ))
            })
        });
        drop(scratch);
        r
    }

    async fn compare(
        &self,
        sc: &MemberClient,
        live: &MemberClient,
        peers: &[MemberClient],
        before: Option<Before>,
        p: &mut RestoreProof,
    ) -> Result<(), (&'static str, String)> {
        let all = || GetOptions::new().with_all_keys();
        let mut c = sc.client.clone();
        let latest = sc
            .call(
                "read the revision",
                c.get(vec![0u8], Some(all().with_count_only())),
            )
            .await
            .map_err(|e| ("revision", e.to_string()))?;
        let rev = latest.header().map(|h| h.revision()).unwrap_or_default();
        p.revision = Some(rev);
        let min_revision = before.map_or(0, |b| b.revision);
        if rev < min_revision {
            return Err((
                "revision",
                format!(
                    "the snapshot holds revision {rev}, older than the {min_revision} member {} reported before it streamed",
                    live.name
                ),
            ));
        }

        // The live side at the snapshot's revision, if the member still has
        // it; after a long stream under apiserver compaction it may not, and
        // then the reading taken just before the stream stands in.
        let at_snap = async {
            let n = vigil_etcd::key_count(live, rev).await?;
            let h = vigil_etcd::hash_kv(live, rev).await?;
            Ok::<_, vigil_etcd::EtcdError>((n, h))
        }
        .await;
        let (at, live_count, lh, fallback) = match (at_snap, before) {
            (Ok((n, h)), _) => (rev, n, h, false),
            (Err(e), Some(b)) if b.revision <= rev => {
                p.notes.push(format!(
                    "member {} no longer answers at the snapshot's revision {rev} ({e}); compared at revision {}, read just before the stream, and no keys sampled",
                    live.name, b.revision
                ));
                (b.revision, b.key_count, b.hash, true)
            }
            (Err(e), _) => return Err(("hash_kv", e.to_string())),
        };
        p.hash_revision = Some(at);

        let count = vigil_etcd::key_count(sc, at)
            .await
            .map_err(|e| ("key_count", e.to_string()))?;
        p.key_count = Some(count);
        p.live_key_count = Some(live_count);
        if count != live_count {
            return Err((
                "key_count",
                format!(
                    "the restored snapshot has {count} keys at revision {at}, member {} has {live_count}",
                    live.name
                ),
            ));
        }

        let mut sh = vigil_etcd::hash_kv(sc, at)
            .await
            .map_err(|e| ("hash_kv", e.to_string()))?;
        if lh.compact_revision > sh.compact_revision && lh.compact_revision <= at {
            // The member compacted after the snapshot: compact the scratch
            // copy alike, so both hashes cover the same revisions.
            let opts = etcd_client::CompactionOptions::new().with_physical();
            sc.call("compact", c.compact(lh.compact_revision, Some(opts)))
                .await
                .map_err(|e| ("hash_kv", e.to_string()))?;
            sh = vigil_etcd::hash_kv(sc, at)
                .await
                .map_err(|e| ("hash_kv", e.to_string()))?;
        }
        p.compact_revision = Some(sh.compact_revision);
        p.hash_kv = Some(sh.hash);
        p.live_hash_kv = Some(lh.hash);
        if sh.compact_revision != lh.compact_revision {
            return Err((
                "hash_kv",
                format!(
                    "cannot compare: the restored snapshot is compacted at revision {}, member {} at {}",
                    sh.compact_revision, live.name, lh.compact_revision
                ),
            ));
        }
        if sh.hash != lh.hash {
            return Err((
                "hash_kv",
                format!(
                    "hash_kv at revision {at} (compacted at {}) differs: the restored snapshot has {}, member {} has {}; the archived data is not the member's state at that revision",
                    sh.compact_revision, sh.hash, live.name, lh.hash
                ),
            ));
        }
        self.against_peers(sh, live, peers, at, p).await?;
        if fallback {
            return Ok(());
        }
        self.sample(sc, live, rev, p).await
    }

    /// The snapshot matched its own member; does that member agree with the
    /// others at the same revision? A member that the majority of those
    /// compared disagrees with has diverged, and so has its archive.
    async fn against_peers(
        &self,
        sh: vigil_etcd::HashKv,
        live: &MemberClient,
        peers: &[MemberClient],
        rev: i64,
        p: &mut RestoreProof,
    ) -> Result<(), (&'static str, String)> {
        let mut differ = Vec::new();
        for peer in peers {
            match vigil_etcd::hash_kv(peer, rev).await {
                Ok(h) if h.compact_revision != sh.compact_revision => {
                    tracing::info!(member = %live.name, "proof: {} is compacted at revision {}, the snapshot at {}; not compared", peer.name, h.compact_revision, sh.compact_revision);
                }
                Ok(h) if h.hash == sh.hash => p.peers_agree.push(peer.name.clone()),
                Ok(h) => differ.push(format!("{} has {}", peer.name, h.hash)),
                Err(e) => tracing::info!(member = %live.name, "proof: {e}; not compared"),
            }
        }
        // The member itself agrees (checked above).
        if !differ.is_empty() && differ.len() > p.peers_agree.len() {
            return Err((
                "hash_kv",
                format!(
                    "member {} diverged: the restored snapshot matches it (hash_kv {} at revision {rev}), but {}{}",
                    live.name,
                    sh.hash,
                    differ.join(", "),
                    if p.peers_agree.is_empty() {
                        String::new()
                    } else {
                        format!(" ({} agree)", p.peers_agree.join(", "))
                    }
                ),
            ));
        }
        if !differ.is_empty() {
            tracing::warn!(member = %live.name, "proof: the snapshot agrees with the majority; differing: {}", differ.join(", "));
        }
        Ok(())
    }

    /// Reads every key of the scratch etcd at `rev` (keys only, in pages),
    /// keeps a uniform sample, and compares each sampled key with the live
    /// member at the same revision.
    async fn sample(
        &self,
        sc: &MemberClient,
        live: &MemberClient,
        rev: i64,
        p: &mut RestoreProof,
    ) -> Result<(), (&'static str, String)> {
        let want = self.sample_keys as usize;
        if want == 0 {
            return Ok(());
        }
        let err = |e: vigil_etcd::EtcdError| ("sample_keys", e.to_string());
        let mut c = sc.client.clone();
        let mut picked: Vec<Vec<u8>> = Vec::with_capacity(want);
        let mut seen = 0usize;
        let mut from = vec![0u8];
        loop {
            let opts = GetOptions::new()
                .with_from_key()
                .with_keys_only()
                .with_revision(rev)
                .with_limit(PAGE);
            let page = sc
                .call("list keys", c.get(from.clone(), Some(opts)))
                .await
                .map_err(err)?;
            for kv in page.kvs() {
                seen += 1;
                if picked.len() < want {
                    picked.push(kv.key().to_vec());
                } else {
                    let j = fastrand::usize(..seen);
                    if j < want {
                        picked[j] = kv.key().to_vec();
                    }
                }
            }
            match page.kvs().last() {
                Some(last) if page.more() => {
                    from = last.key().to_vec();
                    from.push(0);
                }
                _ => break,
            }
        }
        let at = || GetOptions::new().with_revision(rev).with_serializable();
        let mut lc = live.client.clone();
        for key in picked {
            let shown = String::from_utf8_lossy(&key).into_owned();
            let a = sc
                .call("read a sample key", c.get(key.clone(), Some(at())))
                .await
                .map_err(err)?;
            let b = live
                .call("read a sample key", lc.get(key.clone(), Some(at())))
                .await
                .map_err(err)?;
            let same = match (a.kvs().first(), b.kvs().first()) {
                (Some(x), Some(y)) => {
                    x.value() == y.value()
                        && x.mod_revision() == y.mod_revision()
                        && x.create_revision() == y.create_revision()
                        && x.version() == y.version()
                        && x.lease() == y.lease()
                }
                _ => false,
            };
            if !same {
                return Err((
                    "sample_keys",
                    format!(
                        "key {shown:?} at revision {rev} differs between the restored snapshot and member {}",
                        live.name
                    ),
                ));
            }
            p.sample_keys += 1;
        }
        Ok(())
    }
}
