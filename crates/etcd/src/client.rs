//! One etcd client per member: etcd-client balances across the endpoints it is
//! given, so per-member snapshots and status need a client each.

use crate::{describe, EtcdError};
use etcd_client::{Certificate, Client, ConnectOptions, GetOptions, Identity, TlsOptions};
use std::future::Future;
use std::time::Duration;
use vigil_core::config::{MemberConfig, TlsConfig};
use vigil_core::secret::resolve_path;

/// TLS files read once and shared by every member's client.
#[derive(Clone)]
pub struct TlsMaterial {
    ca: Vec<u8>,
    identity: Option<(Vec<u8>, Vec<u8>)>,
}

impl std::fmt::Debug for TlsMaterial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsMaterial")
            .field("client_identity", &self.identity.is_some())
            .finish()
    }
}

impl TlsMaterial {
    pub fn load(cfg: &TlsConfig) -> Result<Self, EtcdError> {
        let read = |p: &std::path::Path| {
            let p = resolve_path(p);
            std::fs::read(&p).map_err(|source| EtcdError::TlsFile { path: p, source })
        };
        let identity = match (&cfg.cert, &cfg.key) {
            (Some(c), Some(k)) => Some((read(c)?, read(k)?)),
            _ => None,
        };
        Ok(Self {
            ca: read(&cfg.ca)?,
            identity,
        })
    }
}

/// A connected member with its name and endpoint for messages.
#[derive(Clone)]
pub struct MemberClient {
    pub name: String,
    pub endpoint: String,
    pub client: Client,
    /// Bound for unary calls (status, hash_kv, count).
    pub call_timeout: Duration,
}

impl std::fmt::Debug for MemberClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemberClient")
            .field("name", &self.name)
            .field("endpoint", &self.endpoint)
            .finish()
    }
}

impl MemberClient {
    pub(crate) fn rpc_err(&self, op: &'static str, e: etcd_client::Error) -> EtcdError {
        EtcdError::Rpc {
            member: self.name.clone(),
            endpoint: self.endpoint.clone(),
            op,
            message: describe(&e),
        }
    }

    pub(crate) fn timeout_err(&self, op: &'static str, after: Duration) -> EtcdError {
        EtcdError::Timeout {
            member: self.name.clone(),
            endpoint: self.endpoint.clone(),
            op,
            after: format!("{after:?}"),
        }
    }

    /// Runs one unary call under the call timeout, mapping errors to the member.
    pub async fn call<T, F>(&self, op: &'static str, fut: F) -> Result<T, EtcdError>
    where
        F: Future<Output = Result<T, etcd_client::Error>>,
    {
        match tokio::time::timeout(self.call_timeout, fut).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(self.rpc_err(op, e)),
            Err(_) => Err(self.timeout_err(op, self.call_timeout)),
        }
    }
}

/// Connects to one member. Only TCP/TLS setup is bounded here; the snapshot
/// stream has no overall gRPC deadline, because large databases take minutes.
pub async fn connect(
    member: &MemberConfig,
    tls: Option<&TlsMaterial>,
    connect_timeout: Duration,
) -> Result<MemberClient, EtcdError> {
    let mut opts = ConnectOptions::new()
        .with_connect_timeout(connect_timeout)
        .with_keep_alive(Duration::from_secs(10), connect_timeout)
        .with_keep_alive_while_idle(true);
    if let Some(t) = tls {
        let mut o = TlsOptions::new().ca_certificate(Certificate::from_pem(&t.ca));
        if let Some((cert, key)) = &t.identity {
            o = o.identity(Identity::from_pem(cert, key));
        }
        opts = opts.with_tls(o);
    }
    let mc_err = |op, message| EtcdError::Rpc {
        member: member.name.clone(),
        endpoint: member.endpoint.clone(),
        op,
        message,
    };
    let client = match tokio::time::timeout(
        connect_timeout,
        Client::connect([member.endpoint.as_str()], Some(opts)),
    )
    .await
    {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => return Err(mc_err("connect", describe(&e))),
        Err(_) => {
            return Err(EtcdError::Timeout {
                member: member.name.clone(),
                endpoint: member.endpoint.clone(),
                op: "connect",
                after: format!("{connect_timeout:?}"),
            })
        }
    };
    Ok(MemberClient {
        name: member.name.clone(),
        endpoint: member.endpoint.clone(),
        client,
        call_timeout: connect_timeout.max(Duration::from_secs(5)),
    })
}

/// What a member says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberStatus {
    pub cluster_id: u64,
    pub member_id: u64,
    pub revision: i64,
    pub raft_term: u64,
    pub raft_index: u64,
    /// The index applied to the backend (etcd 3.4+); raft_index − this is the
    /// member's apply backlog.
    pub raft_applied_index: u64,
    pub version: String,
    pub db_size: i64,
    pub db_size_in_use: i64,
    pub leader: u64,
    pub is_learner: bool,
    pub errors: Vec<String>,
    /// The backend quota the server reports (etcd 3.6+); 0 when it does not (3.4, 3.5).
    pub db_size_quota: i64,
}

pub async fn status(m: &MemberClient) -> Result<MemberStatus, EtcdError> {
    let mut c = m.client.clone();
    let s = m.call("status", c.status()).await?;
    let h = s.header();
    Ok(MemberStatus {
        cluster_id: h.map(|h| h.cluster_id()).unwrap_or_default(),
        member_id: h.map(|h| h.member_id()).unwrap_or_default(),
        revision: h.map(|h| h.revision()).unwrap_or_default(),
        raft_term: s.raft_term(),
        raft_index: s.raft_index(),
        raft_applied_index: s.raft_applied_index(),
        version: s.version().to_string(),
        db_size: s.db_size(),
        db_size_in_use: s.raft_used_db_size(),
        leader: s.leader(),
        is_learner: s.is_learner(),
        errors: s.errors().to_vec(),
        db_size_quota: s.db_size_quota(),
    })
}

/// Keys at `revision`, answered by this member alone (serializable).
pub async fn key_count(m: &MemberClient, revision: i64) -> Result<i64, EtcdError> {
    let mut c = m.client.clone();
    let opts = GetOptions::new()
        .with_all_keys()
        .with_count_only()
        .with_serializable()
        .with_revision(revision);
    let r = m.call("count keys", c.get(vec![0u8], Some(opts))).await?;
    Ok(r.count())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashKv {
    pub hash: u32,
    pub compact_revision: i64,
}

pub async fn hash_kv(m: &MemberClient, revision: i64) -> Result<HashKv, EtcdError> {
    let mut c = m.client.clone();
    let r = m.call("hash_kv", c.hash_kv(revision)).await?;
    Ok(HashKv {
        hash: r.hash(),
        compact_revision: r.compact_version(),
    })
}

/// One raised alarm: which member, and what (`NOSPACE`, `CORRUPT`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alarm {
    pub member_id: u64,
    pub alarm: String,
}

/// The cluster's raised alarms, as this member knows them.
pub async fn alarms(m: &MemberClient) -> Result<Vec<Alarm>, EtcdError> {
    use etcd_client::{AlarmAction, AlarmType};
    let mut c = m.client.clone();
    let r = m
        .call(
            "alarm list",
            c.alarm(AlarmAction::Get, AlarmType::None, None),
        )
        .await?;
    Ok(r.alarms()
        .iter()
        .filter(|a| a.alarm() != AlarmType::None)
        .map(|a| Alarm {
            member_id: a.member_id(),
            alarm: match a.alarm() {
                AlarmType::Nospace => "NOSPACE".to_string(),
                AlarmType::Corrupt => "CORRUPT".to_string(),
                other => format!("{other:?}").to_uppercase(),
            },
        })
        .collect())
}

/// One entry of the member list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedMember {
    pub id: u64,
    /// Empty while a member was added but has not started.
    pub name: String,
    pub peer_urls: Vec<String>,
    pub client_urls: Vec<String>,
    pub is_learner: bool,
}

/// The cluster's member list, as this member knows it.
pub async fn member_list(m: &MemberClient) -> Result<Vec<ListedMember>, EtcdError> {
    let mut c = m.client.clone();
    let r = m.call("member list", c.member_list()).await?;
    Ok(r.members()
        .iter()
        .map(|x| ListedMember {
            id: x.id(),
            name: x.name().to_string(),
            peer_urls: x.peer_urls().to_vec(),
            client_urls: x.client_urls().to_vec(),
            is_learner: x.is_learner(),
        })
        .collect())
}

/// A linearizable (quorum) read of one key, count only: what `etcdctl
/// endpoint health` does. Fails when the member cannot reach a quorum.
pub async fn quorum_read(m: &MemberClient) -> Result<(), EtcdError> {
    let mut c = m.client.clone();
    let opts = GetOptions::new().with_count_only();
    m.call("quorum read", c.get("health", Some(opts))).await?;
    Ok(())
}

/// Every key under `prefix` with its value at `revision` (0: the newest),
/// answered by this member alone (serializable).
pub async fn prefix_at(
    m: &MemberClient,
    prefix: &str,
    revision: i64,
) -> Result<Vec<(Vec<u8>, Vec<u8>)>, EtcdError> {
    let mut c = m.client.clone();
    let opts = GetOptions::new()
        .with_prefix()
        .with_serializable()
        .with_revision(revision);
    let r = m.call("range", c.get(prefix, Some(opts))).await?;
    Ok(r.kvs()
        .iter()
        .map(|kv| (kv.key().to_vec(), kv.value().to_vec()))
        .collect())
}
