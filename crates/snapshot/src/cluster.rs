//! The run's etcd boundary: what a run asks of the cluster and its members.
//! [`Live`] is the real cluster over gRPC; a unit test puts its own members
//! behind these traits to run the whole orchestration without an etcd.

use crate::prove::{Proofs, Tee};
use std::future::Future;
use std::time::Duration;
use vigil_core::config::MemberConfig;
use vigil_core::manifest::RestoreProof;
use vigil_etcd::{
    Alarm, EtcdError, HashKv, ListedMember, MemberClient, MemberStatus, SnapshotStreaming,
    TlsMaterial,
};
use vigil_restore::proof::Before;

/// Why a snapshot stream could not be opened or read, as the client said it.
pub type StreamError = Box<dyn std::error::Error + Send + Sync>;

/// Where a run's members come from: connects to one configured member.
pub trait Cluster: Send + Sync + 'static {
    type Member: Member;
    fn connect(
        &self,
        member: &MemberConfig,
        tls: Option<&TlsMaterial>,
        connect_timeout: Duration,
    ) -> impl Future<Output = Result<Self::Member, EtcdError>> + Send;
}

/// One connected member: the calls a run makes on it.
pub trait Member: Clone + Send + Sync + 'static {
    type Stream: SnapshotStream;
    fn name(&self) -> &str;
    fn endpoint(&self) -> &str;
    fn status(&self) -> impl Future<Output = Result<MemberStatus, EtcdError>> + Send;
    fn alarms(&self) -> impl Future<Output = Result<Vec<Alarm>, EtcdError>> + Send;
    fn quorum_read(&self) -> impl Future<Output = Result<(), EtcdError>> + Send;
    fn member_list(&self) -> impl Future<Output = Result<Vec<ListedMember>, EtcdError>> + Send;
    fn key_count(&self, revision: i64) -> impl Future<Output = Result<i64, EtcdError>> + Send;
    fn hash_kv(&self, revision: i64) -> impl Future<Output = Result<HashKv, EtcdError>> + Send;
    #[allow(clippy::type_complexity)]
    fn prefix_at(
        &self,
        prefix: &str,
        revision: i64,
    ) -> impl Future<Output = Result<Vec<(Vec<u8>, Vec<u8>)>, EtcdError>> + Send;
    /// Opens the member's snapshot stream.
    fn snapshot(&self) -> impl Future<Output = Result<Self::Stream, StreamError>> + Send;
    /// The restore proof of the stream that went into `tee`; it compares
    /// the scratch etcd with this member (and its peers).
    fn prove(
        &self,
        proofs: &Proofs,
        tee: Tee,
        tls: Option<&TlsMaterial>,
        connect_timeout: Duration,
        before: Option<Before>,
        snapshot_version: String,
    ) -> impl Future<Output = RestoreProof> + Send;
}

/// A member's snapshot, blob by blob.
pub trait SnapshotStream: Send + 'static {
    /// The next blob, or `None` at the end of the stream.
    fn next_blob(&mut self) -> impl Future<Output = Result<Option<Vec<u8>>, StreamError>> + Send;
}

/// The cluster of the config, over gRPC.
#[derive(Debug, Clone, Copy, Default)]
pub struct Live;

impl Cluster for Live {
    type Member = MemberClient;
    async fn connect(
        &self,
        member: &MemberConfig,
        tls: Option<&TlsMaterial>,
        connect_timeout: Duration,
    ) -> Result<MemberClient, EtcdError> {
        vigil_etcd::connect(member, tls, connect_timeout).await
    }
}

impl Member for MemberClient {
    type Stream = SnapshotStreaming;
    fn name(&self) -> &str {
        &self.name
    }
    fn endpoint(&self) -> &str {
        &self.endpoint
    }
    async fn status(&self) -> Result<MemberStatus, EtcdError> {
        vigil_etcd::status(self).await
    }
    async fn alarms(&self) -> Result<Vec<Alarm>, EtcdError> {
        vigil_etcd::alarms(self).await
    }
    async fn quorum_read(&self) -> Result<(), EtcdError> {
        vigil_etcd::quorum_read(self).await
    }
    async fn member_list(&self) -> Result<Vec<ListedMember>, EtcdError> {
        vigil_etcd::member_list(self).await
    }
    async fn key_count(&self, revision: i64) -> Result<i64, EtcdError> {
        vigil_etcd::key_count(self, revision).await
    }
    async fn hash_kv(&self, revision: i64) -> Result<HashKv, EtcdError> {
        vigil_etcd::hash_kv(self, revision).await
    }
    async fn prefix_at(
        &self,
        prefix: &str,
        revision: i64,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>, EtcdError> {
        vigil_etcd::prefix_at(self, prefix, revision).await
    }
    async fn snapshot(&self) -> Result<SnapshotStreaming, StreamError> {
        let mut c = self.client.clone();
        Ok(c.snapshot().await?)
    }
    async fn prove(
        &self,
        proofs: &Proofs,
        tee: Tee,
        tls: Option<&TlsMaterial>,
        connect_timeout: Duration,
        before: Option<Before>,
        snapshot_version: String,
    ) -> RestoreProof {
        proofs
            .prove(tee, self, tls, connect_timeout, before, snapshot_version)
            .await
    }
}

impl SnapshotStream for SnapshotStreaming {
    async fn next_blob(&mut self) -> Result<Option<Vec<u8>>, StreamError> {
        // Taken out of the message, not copied.
        Ok(self
            .message()
            .await?
            .map(|mut m| std::mem::take(&mut m.0.blob)))
    }
}
