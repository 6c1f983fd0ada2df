//! etcd, per member: reachable and healthy, one agreed leader and none
//! leaderless, raft index lag, db size against the quota, fragmentation,
//! alarms, learners, and the member list against the config.

use crate::{fmt_dur, Finding};
use std::sync::Arc;
use std::time::{Duration, Instant};
use vigil_alert::AlertKey;
use vigil_core::config::MemberConfig;
use vigil_core::Config;
use vigil_etcd::{Alarm, EtcdError, ListedMember, MemberStatus};

const REACHABLE: &str = "etcd.reachable";

/// Why a member gave no status, or no quorum read.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ProbeError {
    /// The etcd call failed (shared: a probe is cloned into several findings).
    #[error(transparent)]
    Etcd(Arc<EtcdError>),
    #[error("member {member} ({endpoint}): no answer within {after}")]
    NoAnswer {
        member: String,
        endpoint: String,
        after: String,
    },
    #[error("a linearizable read did not finish within {after}")]
    ReadTimeout { after: String },
}

impl From<EtcdError> for ProbeError {
    fn from(e: EtcdError) -> Self {
        ProbeError::Etcd(Arc::new(e))
    }
}

/// What one member answered.
#[derive(Debug, Clone, Default)]
pub struct Probe {
    /// `Err` when the member could not be reached or did not answer in time.
    pub status: Option<Result<MemberStatus, ProbeError>>,
    /// A linearizable read through this member (needs a quorum); `Err` says why not.
    pub quorum_read: Option<Result<(), ProbeError>>,
    pub alarms: Option<Vec<Alarm>>,
    pub members: Option<Vec<ListedMember>>,
    pub took: Duration,
}

impl Probe {
    fn ok_status(&self) -> Option<&MemberStatus> {
        self.status.as_ref().and_then(|s| s.as_ref().ok())
    }
}

async fn probe(
    m: &MemberConfig,
    tls: Option<&vigil_etcd::TlsMaterial>,
    timeout: Duration,
) -> Probe {
    let started = Instant::now();
    let mut p = Probe::default();
    let work = async {
        let c = match vigil_etcd::connect(m, tls, timeout).await {
            Ok(c) => c,
            Err(e) => {
                p.status = Some(Err(e.into()));
                return;
            }
        };
        let c = vigil_etcd::MemberClient {
            call_timeout: timeout,
            ..c
        };
        match vigil_etcd::status(&c).await {
            Ok(s) => p.status = Some(Ok(s)),
            Err(e) => {
                p.status = Some(Err(e.into()));
                return;
            }
        }
        let (read, alarms, members) = tokio::join!(
            vigil_etcd::quorum_read(&c),
            vigil_etcd::alarms(&c),
            vigil_etcd::member_list(&c),
        );
        p.quorum_read = Some(read.map_err(ProbeError::from));
        p.alarms = alarms.ok();
        p.members = members.ok();
    };
    if tokio::time::timeout(timeout, work).await.is_err() && p.status.is_none() {
        p.status = Some(Err(ProbeError::NoAnswer {
            member: m.name.clone(),
            endpoint: m.endpoint.clone(),
            after: fmt_dur(timeout),
        }));
    }
    if p.status.as_ref().is_some_and(|s| s.is_ok()) && p.quorum_read.is_none() {
        p.quorum_read = Some(Err(ProbeError::ReadTimeout {
            after: fmt_dur(timeout),
        }));
    }
    p.took = started.elapsed();
    p
}

/// Runs the etcd checks.
pub async fn check(cfg: &Config) -> Vec<Finding> {
    let h = &cfg.health;
    let timeout = h.etcd_timeout();
    let members: Vec<MemberConfig> = cfg.members().cloned().collect();
    let tls = match cfg.tls().map(vigil_etcd::TlsMaterial::load).transpose() {
        Ok(t) => t,
        Err(e) => {
            let reason = format!("cannot connect: {e}; please check [cluster.tls]");
            return members
                .iter()
                .map(|m| {
                    Finding::new(
                        REACHABLE,
                        &m.name,
                        AlertKey::new("etcd_member_down").label("member", &m.name),
                    )
                    .unknown(reason.clone())
                })
                .collect();
        }
    };
    let probes =
        futures_util::future::join_all(members.iter().map(|m| probe(m, tls.as_ref(), timeout)))
            .await;
    record_seen(cfg, &members, &probes).await;
    evaluate(&members, &probes, &h.etcd)
}

/// The newest revision the members answered, for sizing a restore's
/// revision bump (vigil_core::seen). A failure to record is logged, not a
/// finding: the checks themselves are unaffected.
async fn record_seen(cfg: &Config, members: &[MemberConfig], probes: &[Probe]) {
    let seen: Vec<vigil_core::seen::Observation> = members
        .iter()
        .zip(probes)
        .filter_map(|(m, p)| {
            p.ok_status().map(|s| vigil_core::seen::Observation {
                cluster_id: format!("{:x}", s.cluster_id),
                revision: s.revision,
                member: m.name.clone(),
                endpoint: m.endpoint.clone(),
            })
        })
        .collect();
    if seen.is_empty() {
        return;
    }
    let state = cfg.state.dir.clone();
    let done = tokio::task::spawn_blocking(move || {
        vigil_core::seen::record(&state, "vigil-health", &seen)
    })
    .await;
    match done {
        Ok(Ok(vigil_core::seen::Recorded::Nothing(Some(other)))) => tracing::debug!(
            "revision not recorded: the members answer for cluster ID {other}, not the pinned one"
        ),
        Ok(Ok(r)) => tracing::debug!("revision seen: {r:?}"),
        Ok(Err(e)) => tracing::warn!("could not record the newest revision seen: {e}"),
        Err(e) => tracing::warn!("could not record the newest revision seen: {e}"),
    }
}

/// Shortens tonic's nested transport errors to what an operator needs.
pub fn tidy(member: &MemberConfig, e: &str) -> String {
    let low = e.to_ascii_lowercase();
    for (needle, say) in [
        ("connection refused", "connection refused"),
        ("no route to host", "no route to host"),
        ("network is unreachable", "network unreachable"),
        ("connection reset", "connection reset"),
        ("certificate", "TLS certificate problem"),
        ("dns error", "DNS error"),
    ] {
        if low.contains(needle) {
            let detail = if needle == "certificate" {
                format!(": {e}")
            } else {
                String::new()
            };
            return format!("{} ({}): {say}{detail}", member.name, member.endpoint);
        }
    }
    e.to_string()
}

mod evaluate;
pub use evaluate::evaluate;

#[cfg(test)]
mod tests;
