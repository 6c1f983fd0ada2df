//! The orchestration of a run, through `run(cfg, deps)`, with the etcd
//! cluster as the one boundary put in by the test: archives, the dir sink
//! and the outcome records are real files in a scratch dir.

#![allow(clippy::unwrap_used)]

use super::*;
use crate::cluster::{Member, SnapshotStream, StreamError as ClientError};
use crate::prove::{Proofs, Tee};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::Path;
use vigil_core::jobs::Source;
use vigil_core::manifest::{Manifest, ProofResult, RestoreProof};
use vigil_etcd::{Alarm, EtcdError, HashKv, ListedMember, MemberStatus};
use vigil_restore::proof::Before;

/// How one fake member behaves.
#[derive(Debug, Clone, Default)]
struct Script {
    refuse_connect: bool,
    /// Cut the stream short: the trailer check fails.
    truncate: bool,
    /// Its `hash_kv` differs from the others'.
    diverge: bool,
    /// It answers for another etcd cluster.
    foreign: bool,
}

/// A three-member cluster in memory, recording who was asked to connect.
#[derive(Debug, Default)]
struct FakeCluster {
    scripts: BTreeMap<String, Script>,
    connected: Mutex<Vec<String>>,
}

#[derive(Debug, Clone)]
struct FakeMember {
    name: String,
    endpoint: String,
    id: u64,
    script: Script,
}

fn member_id(name: &str) -> u64 {
    0xa0 + name.trim_start_matches("cp-").parse::<u64>().unwrap()
}

/// A snapshot the trailer check accepts: a database of 2 pages and its sha256.
fn snapshot_bytes() -> Vec<u8> {
    let mut db: Vec<u8> = (0..1024).map(|i| (i * 7 % 251) as u8).collect();
    let sum = Sha256::digest(&db);
    db.extend_from_slice(&sum);
    db
}

impl Cluster for FakeCluster {
    type Member = FakeMember;
    async fn connect(
        &self,
        m: &vigil_core::config::MemberConfig,
        _tls: Option<&TlsMaterial>,
        _timeout: Duration,
    ) -> Result<FakeMember, EtcdError> {
        self.connected.lock().unwrap().push(m.name.clone());
        let script = self.scripts.get(&m.name).cloned().unwrap_or_default();
        if script.refuse_connect {
            return Err(EtcdError::Rpc {
                member: m.name.clone(),
                endpoint: m.endpoint.clone(),
                op: "connect",
                message: "connection refused".into(),
            });
        }
        Ok(FakeMember {
            name: m.name.clone(),
            endpoint: m.endpoint.clone(),
            id: member_id(&m.name),
            script,
        })
    }
}

struct FakeStream(Vec<Vec<u8>>);

impl SnapshotStream for FakeStream {
    async fn next_blob(&mut self) -> Result<Option<Vec<u8>>, ClientError> {
        Ok((!self.0.is_empty()).then(|| self.0.remove(0)))
    }
}

impl Member for FakeMember {
    type Stream = FakeStream;
    fn name(&self) -> &str {
        &self.name
    }
    fn endpoint(&self) -> &str {
        &self.endpoint
    }
    async fn status(&self) -> Result<MemberStatus, EtcdError> {
        Ok(MemberStatus {
            cluster_id: if self.script.foreign { 0xc2 } else { 0xc1 },
            member_id: self.id,
            revision: 42,
            raft_term: 2,
            raft_index: 50,
            raft_applied_index: 50,
            version: "3.5.16".into(),
            db_size: 1024,
            db_size_in_use: 1024,
            leader: member_id("cp-1"),
            is_learner: false,
            errors: vec![],
            db_size_quota: 0,
        })
    }
    async fn alarms(&self) -> Result<Vec<Alarm>, EtcdError> {
        Ok(Vec::new())
    }
    async fn quorum_read(&self) -> Result<(), EtcdError> {
        Ok(())
    }
    async fn member_list(&self) -> Result<Vec<ListedMember>, EtcdError> {
        Ok(["cp-1", "cp-2", "cp-3"]
            .iter()
            .map(|n| ListedMember {
                id: member_id(n),
                name: n.to_string(),
                peer_urls: vec![format!("http://{n}:2380")],
                client_urls: vec![format!("http://{n}:2379")],
                is_learner: false,
            })
            .collect())
    }
    async fn key_count(&self, _revision: i64) -> Result<i64, EtcdError> {
        Ok(7)
    }
    async fn hash_kv(&self, _revision: i64) -> Result<HashKv, EtcdError> {
        Ok(HashKv {
            hash: if self.script.diverge { 0xbad } else { 0x600d },
            compact_revision: 1,
        })
    }
    async fn prefix_at(
        &self,
        _prefix: &str,
        _revision: i64,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>, EtcdError> {
        Ok(Vec::new())
    }
    async fn snapshot(&self) -> Result<FakeStream, ClientError> {
        let mut bytes = snapshot_bytes();
        if self.script.truncate {
            bytes.truncate(700);
        }
        Ok(FakeStream(bytes.chunks(300).map(<[u8]>::to_vec).collect()))
    }
    async fn prove(
        &self,
        _proofs: &Proofs,
        _tee: Tee,
        _tls: Option<&TlsMaterial>,
        _timeout: Duration,
        _before: Option<Before>,
        _version: String,
    ) -> RestoreProof {
        // A tee only exists when proofs are ready: never in these tests.
        unreachable!("no proof runs without a tmpfs and etcd tools")
    }
}

/// A config for cp-1..cp-3 with archives, state and a dir sink under `dir`.
fn config(dir: &Path, prove: &str) -> Config {
    let d = dir.display();
    let text = format!(
        r#"
[cluster]
name = "prod"
members = [
  {{ name = "cp-1", endpoint = "http://127.0.0.1:12379" }},
  {{ name = "cp-2", endpoint = "http://127.0.0.1:22379" }},
  {{ name = "cp-3", endpoint = "http://127.0.0.1:32379" }},
]
[snapshot]
dir = "{d}/snapshots"
encryption = "none"
max_concurrent_members = 3
prove_restore = {prove}
[state]
dir = "{d}/state"
[[sink]]
name = "offsite"
kind = "dir"
path = "{d}/offsite"
"#
    );
    Config::parse_with(
        &text,
        &dir.join("vigil.toml"),
        vigil_core::config::Uses::SNAPSHOT,
    )
    .unwrap()
}

fn fake(scripts: &[(&str, Script)]) -> FakeCluster {
    FakeCluster {
        scripts: scripts
            .iter()
            .map(|(n, s)| (n.to_string(), s.clone()))
            .collect(),
        connected: Mutex::default(),
    }
}

async fn run_with(cfg: &Config, cluster: FakeCluster) -> (RunReport, Vec<String>) {
    let cluster = Arc::new(cluster);
    let report = run(
        cfg,
        Deps {
            etcd: Shared(cluster.clone()),
            progress: vigil_core::progress::Board::logs(),
        },
    )
    .await
    .unwrap();
    let mut connected = cluster.connected.lock().unwrap().clone();
    connected.sort();
    (report, connected)
}

/// The fake behind an `Arc`, so the test reads what it recorded after the run.
struct Shared(Arc<FakeCluster>);

impl Cluster for Shared {
    type Member = FakeMember;
    async fn connect(
        &self,
        m: &vigil_core::config::MemberConfig,
        tls: Option<&TlsMaterial>,
        timeout: Duration,
    ) -> Result<FakeMember, EtcdError> {
        self.0.connect(m, tls, timeout).await
    }
}

fn outcomes(cfg: &Config, job: Source) -> Vec<(String, bool, Stage)> {
    outcome::latest(&cfg.state.dir, job)
        .into_iter()
        .map(|o| (o.subject, o.ok, o.stage))
        .collect()
}

const OFF: &str = "{ enabled = false }";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_that_fails_does_not_stop_the_others() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = config(tmp.path(), OFF);
    let refused = Script {
        refuse_connect: true,
        ..Script::default()
    };
    let (r, connected) = run_with(&cfg, fake(&[("cp-2", refused)])).await;

    assert_eq!(connected, ["cp-1", "cp-2", "cp-3"]);
    let got: Vec<_> = r
        .members
        .iter()
        .map(|m| (m.member.as_str(), m.ok, m.stage))
        .collect();
    assert_eq!(
        got,
        [
            ("cp-1", true, Stage::Done),
            ("cp-2", false, Stage::Connect),
            ("cp-3", true, Stage::Done),
        ]
    );
    assert_eq!(
        r.members[1].error.as_deref(),
        Some("member cp-2 (http://127.0.0.1:22379): connect failed: connection refused")
    );
    // The good members' archives are stored with manifests that say what was read.
    for m in [&r.members[0], &r.members[2]] {
        let path = m.archive.as_ref().unwrap();
        assert!(path.exists() && Manifest::path_for(path).exists());
        let man = m.manifest.as_ref().unwrap();
        assert_eq!(
            (man.revision, man.key_count, man.snapshot_size),
            (42, 7, 1056)
        );
        assert!(man.verified_at.is_some());
        assert_eq!(man.membership.as_ref().unwrap().members.len(), 3);
    }
    // The two reached members agree; the refused one is not compared.
    let c = r.consistency.as_ref().unwrap();
    assert!(c.ok && c.members.len() == 2, "{c:?}");
    // The dir sink got both archives as they streamed; none was missing after.
    assert_eq!(r.sinks.len(), 1);
    assert!(r.sinks[0].ok, "{:?}", r.sinks[0]);
    assert_eq!((r.sinks[0].shipped.len(), r.sinks[0].copies), (0, 2));
    assert!(r.members[0].sinks[0].ok && r.members[2].sinks[0].ok);
    // One failed member fails the run (exit 1), and the records say who.
    assert!(!r.ok);
    assert_eq!(
        outcomes(&cfg, Source::Snapshot),
        [
            ("cp-1".to_string(), true, Stage::Done),
            ("cp-2".to_string(), false, Stage::Connect),
            ("cp-3".to_string(), true, Stage::Done),
        ]
    );
    assert_eq!(
        outcomes(&cfg, Source::Sink),
        [("offsite".to_string(), true, Stage::Done)]
    );
    assert!(r
        .warnings
        .iter()
        .any(|w| w.starts_with("encryption = \"none\"")));

    assert_eq!(r.exit_code(), vigil_core::exit::FAILED);

    // The first run pinned the cluster: a member that now answers for
    // another is refused before anything is streamed; the others are good.
    assert!(vigil_core::pin::load(&cfg.state.dir).unwrap().is_some());
    let other = Script {
        foreign: true,
        ..Script::default()
    };
    let (r, _) = run_with(&cfg, fake(&[("cp-3", other)])).await;
    let got: Vec<_> = r.members.iter().map(|m| (m.ok, m.stage)).collect();
    assert_eq!(
        got,
        [
            (true, Stage::Done),
            (true, Stage::Done),
            (false, Stage::Consistency)
        ]
    );
    assert!(r.members[2].archive.is_none() && r.members[2].sinks.is_empty());
    assert!(r.members[2].error.as_deref().unwrap().starts_with(
        "member cp-3 (http://127.0.0.1:32379) answers for etcd cluster ID c2, but this bastion backs up cluster ID c1 (pinned "
    ));
    assert_eq!(r.consistency.as_ref().unwrap().members.len(), 2);

    // All good: the run is ok, exit 0.
    let (r, _) = run_with(&cfg, fake(&[])).await;
    assert!(r.ok, "{:?}", r.members);
    assert_eq!(r.exit_code(), vigil_core::exit::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_stream_and_a_diverged_member_each_fail_in_their_stage() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = config(tmp.path(), OFF);
    let cut = Script {
        truncate: true,
        ..Script::default()
    };
    let odd = Script {
        diverge: true,
        ..Script::default()
    };
    let (r, connected) = run_with(&cfg, fake(&[("cp-2", cut), ("cp-3", odd)])).await;
    assert_eq!(connected, ["cp-1", "cp-2", "cp-3"]);
    let stages: Vec<_> = r.members.iter().map(|m| (m.ok, m.stage)).collect();
    assert_eq!(
        stages,
        [
            (true, Stage::Done),
            (false, Stage::Verify),
            (false, Stage::Consistency)
        ]
    );
    assert!(r.members[1].archive.is_none());
    assert!(
        r.members[1]
            .error
            .as_deref()
            .unwrap()
            .starts_with("member cp-2 (http://127.0.0.1:22379): snapshot stream is 700 bytes"),
        "{:?}",
        r.members[1].error
    );
    // The diverged member's archive is quarantined, unverified, and not shipped.
    let q = r.members[2].archive.as_ref().unwrap();
    assert!(q.starts_with(cfg.snapshot("t").unwrap().dir.join(QUARANTINE_DIR)));
    assert!(r.members[2]
        .manifest
        .as_ref()
        .unwrap()
        .verified_at
        .is_none());
    assert!(r.members[2]
        .error
        .as_deref()
        .unwrap()
        .starts_with("member cp-3 diverged: "));
    assert_eq!(r.consistency.as_ref().unwrap().diverged.len(), 1);
    // cp-1's copy was streamed to the sink; cp-3's streamed copy is removed.
    assert_eq!((r.sinks[0].copies, r.sinks[0].shipped.len()), (1, 0));
    assert!(r.members[0].sinks[0].ok);
    assert_eq!(
        r.members[2].sinks[0].error.as_deref(),
        Some("removed: the member diverged")
    );
    // Only the good member is pruned and pinned from: one of three is no majority.
    assert!(vigil_core::pin::load(&cfg.state.dir).unwrap().is_none());
    assert!(!r.ok);
    assert_eq!(
        outcomes(&cfg, Source::Snapshot)
            .into_iter()
            .map(|(_, ok, stage)| (ok, stage))
            .collect::<Vec<_>>(),
        stages
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proof_that_cannot_run_reaches_the_report_and_the_records() {
    let tmp = tempfile::tempdir().unwrap();
    // No such dir: the proofs are broken before any member streams.
    let prove = format!(
        "{{ enabled = true, dir = \"{}/no-tmpfs\" }}",
        tmp.path().display()
    );
    let cfg = config(tmp.path(), &prove);
    let (r, _) = run_with(&cfg, fake(&[])).await;
    for m in &r.members {
        assert_eq!((m.ok, m.stage), (false, Stage::Proof), "{m:?}");
        let e = m.error.as_deref().unwrap();
        assert!(
            e.contains("restore proof failed at check dir: snapshot.prove_restore.dir")
                && e.ends_with("the archive is kept but does not count as a good copy"),
            "{e}"
        );
        // Kept, and its streamed copy too: a failed proof is an alert, not a lost copy.
        assert!(m.archive.as_ref().unwrap().exists());
        assert!(m.sinks[0].ok);
    }
    assert!(!r.ok);
    let rec = outcome::latest(&cfg.state.dir, Source::Snapshot);
    assert_eq!(rec.len(), 3);
    assert!(rec.iter().all(|o| o
        .proof
        .as_ref()
        .is_some_and(|p| p.result == ProofResult::Failed)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_that_finds_another_running_is_refused_with_exit_1() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = config(tmp.path(), OFF);
    fsutil::ensure_private_dir(&cfg.state.dir).unwrap();
    let _held = RunLock::acquire(&cfg.state.dir.join("snapshot.lock")).unwrap();
    let cluster = Arc::new(fake(&[]));
    let e = run(
        &cfg,
        Deps {
            etcd: Shared(cluster.clone()),
            progress: vigil_core::progress::Board::logs(),
        },
    )
    .await
    .unwrap_err();
    assert!(matches!(e, RunError::Locked(_)), "{e}");
    assert_eq!(e.exit_code(), vigil_core::exit::FAILED);
    assert!(cluster.connected.lock().unwrap().is_empty());
}
