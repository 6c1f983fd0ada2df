//! etcd for vigil: one client per member (mTLS when configured), the
//! verified snapshot stream, and the status calls checks rely on.

mod client;
mod verify;

pub use client::{
    alarms, connect, hash_kv, key_count, member_list, prefix_at, quorum_read, status, Alarm,
    HashKv, ListedMember, MemberClient, MemberStatus, TlsMaterial,
};
pub use etcd_client::{Client, SnapshotStreaming};
pub use verify::{SnapshotVerifier, Verified, VerifyError, TRAILER_LEN};

/// An etcd call that failed, always naming the member and its endpoint.
#[derive(Debug, thiserror::Error)]
pub enum EtcdError {
    #[error("member {member} ({endpoint}): {op} failed: {message}")]
    Rpc {
        member: String,
        endpoint: String,
        op: &'static str,
        message: String,
    },
    #[error("member {member} ({endpoint}): {op} timed out after {after}")]
    Timeout {
        member: String,
        endpoint: String,
        op: &'static str,
        after: String,
    },
    #[error("reading TLS file {path} (cluster.tls): {source}")]
    TlsFile {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Renders an etcd-client error with its causes, on one line.
pub(crate) fn describe(e: &etcd_client::Error) -> String {
    vigil_core::error_chain(e)
}
