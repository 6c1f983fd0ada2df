//! Bounds on what a run costs the cluster it protects (issue #21).
//!
//! A snapshot stream holds a bbolt read transaction open on its member for
//! its whole length and takes the member's CPU and network while the member
//! still serves the apiservers. Three bounds, each off or loose by default
//! where BENCHMARKS.md ("What a backup costs the cluster") shows no need:
//! - turns: at most `snapshot.max_concurrent_members` streams at once;
//! - pace: at most `snapshot.rate_limit` bytes per second per stream (HTTP/2
//!   flow control passes the slower reads back to the member's sender);
//! - preflight: a member in trouble is deferred and checked again, so that a
//!   struggling member is not pushed over by its own backup.

use crate::cluster::Member;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use vigil_core::config::SnapshotConfig;
use vigil_etcd::{Alarm, MemberStatus};

/// etcd itself refuses proposals ("too many requests") once its applied
/// index trails the committed one by this much (`maxGapBetweenApplyAndCommitIndex`).
pub const MAX_APPLY_LAG: u64 = 5000;

/// The run's limits, from `[snapshot]`.
pub(crate) struct Bounds {
    slots: Arc<Semaphore>,
    max: u32,
    /// Bytes per second per member stream.
    pub rate: Option<u64>,
    pub preflight: Option<Preflight>,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Preflight {
    pub max_latency: Duration,
    pub retry: Duration,
    pub limit: Duration,
}

impl Bounds {
    pub fn from_config(sc: &SnapshotConfig) -> Bounds {
        let max = sc.max_concurrent_members.max(1);
        Bounds {
            slots: Arc::new(Semaphore::new(max as usize)),
            max,
            rate: sc.rate_limit.map(|r| r.0),
            preflight: sc.preflight.then(|| Preflight {
                max_latency: sc.preflight_max_latency.get(),
                retry: sc.defer_retry.get(),
                limit: sc.defer_limit.get(),
            }),
        }
    }

    pub fn turn(&self) -> Turn {
        Turn {
            slots: self.slots.clone(),
            max: self.max,
            permit: None,
        }
    }
}

/// One member's right to stream, taken before and given back after.
pub(crate) struct Turn {
    slots: Arc<Semaphore>,
    max: u32,
    permit: Option<OwnedSemaphorePermit>,
}

impl Turn {
    pub async fn take(&mut self, member: &str) {
        if self.permit.is_some() {
            return;
        }
        let permit = match self.slots.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                tracing::info!(
                    member,
                    "waiting for its turn (snapshot.max_concurrent_members = {})",
                    self.max
                );
                match self.slots.clone().acquire_owned().await {
                    Ok(p) => p,
                    // Never closed; without a permit the member just goes ahead.
                    Err(_) => return,
                }
            }
        };
        self.permit = Some(permit);
    }

    pub fn give_back(&mut self) {
        self.permit = None;
    }
}

/// How long to wait, after `bytes` were read in `elapsed`, to stay at `rate`
/// bytes per second.
pub fn pace(bytes: u64, rate: u64, elapsed: Duration) -> Duration {
    if rate == 0 {
        return Duration::ZERO;
    }
    Duration::from_secs_f64(bytes as f64 / rate as f64).saturating_sub(elapsed)
}

/// The trouble a member's status shows, if any, naming the signal. The
/// signals, in order: no leader, an alarm raised on this member, an apply
/// backlog over [`MAX_APPLY_LAG`], a linearizable read that fails or is
/// slower than `max_latency`.
pub fn judge(
    st: &MemberStatus,
    alarms: &[Alarm],
    read: &Result<Duration, vigil_etcd::EtcdError>,
    max_latency: Duration,
) -> Option<String> {
    if st.leader == 0 {
        return Some("no leader (status leader = 0)".into());
    }
    // Only the member's own: a CORRUPT alarm on another member is when the
    // healthy ones' snapshots are wanted most.
    let own: Vec<String> = alarms
        .iter()
        .filter(|a| a.member_id == st.member_id)
        .map(|a| format!("{} on member {:x}", a.alarm, a.member_id))
        .collect();
    if !own.is_empty() {
        return Some(format!("alarm raised: {}", own.join(", ")));
    }
    let lag = st.raft_index.saturating_sub(st.raft_applied_index);
    if st.raft_applied_index > 0 && lag > MAX_APPLY_LAG {
        return Some(format!(
            "apply backlog of {lag} raft entries (raft index {} − applied index {} > {MAX_APPLY_LAG})",
            st.raft_index, st.raft_applied_index
        ));
    }
    match read {
        Err(e) => Some(format!("a linearizable read failed: {e}")),
        Ok(d) if *d > max_latency => Some(format!(
            "a linearizable read took {} ms (snapshot.preflight_max_latency = {} ms)",
            d.as_millis(),
            max_latency.as_millis()
        )),
        Ok(_) => None,
    }
}

/// Reads the signals from the member and judges them; also gives the
/// status it read.
pub(crate) async fn check<M: Member>(
    client: &M,
    p: &Preflight,
) -> Result<(MemberStatus, Option<String>), vigil_etcd::EtcdError> {
    let st = client.status().await?;
    if st.leader == 0 {
        // Without a leader the alarm list and the read only time out.
        let why = judge(&st, &[], &Ok(Duration::ZERO), p.max_latency);
        return Ok((st, why));
    }
    // An alarm list refused (etcd auth without admin rights) must not hold
    // every backup back: the other signals still judge.
    let alarms = client.alarms().await.unwrap_or_else(|e| {
        tracing::warn!(member = %client.name(), "preflight: {e}; alarms not checked");
        Vec::new()
    });
    let t0 = Instant::now();
    let read = client.quorum_read().await.map(|()| t0.elapsed());
    let why = judge(&st, &alarms, &read, p.max_latency);
    Ok((st, why))
}

/// Why a member was not snapshotted after waiting for its turn.
#[derive(Debug, thiserror::Error)]
pub enum TurnError {
    #[error(transparent)]
    Status(#[from] vigil_etcd::EtcdError),
    #[error("member {member} ({endpoint}): deferred for {} and never got its turn within snapshot.defer_limit = {}: {why}; not snapshotted in this run", humantime::format_duration(*waited), humantime::format_duration(*limit))]
    Deferred {
        member: String,
        endpoint: String,
        waited: Duration,
        limit: Duration,
        why: String,
    },
}

/// Takes the member's turn once its preflight passes, and returns the
/// member's status as of then: what the manifest records. A member in
/// trouble gives its turn back, waits `defer_retry`, and is checked again,
/// for at most `defer_limit`; `deferred` hears why each time it waits.
pub(crate) async fn wait_for_turn<M: Member>(
    bounds: &Bounds,
    client: &M,
    turn: &mut Turn,
    deferred: &(dyn Fn(String) + Send + Sync),
) -> Result<MemberStatus, TurnError> {
    let t0 = Instant::now();
    loop {
        turn.take(client.name()).await;
        let Some(p) = &bounds.preflight else {
            return Ok(client.status().await?);
        };
        let why = match check(client, p).await {
            Ok((st, None)) => return Ok(st),
            Ok((_, Some(why))) => why,
            Err(e) => format!("its status could not be read: {e}"),
        };
        if t0.elapsed() + p.retry > p.limit {
            return Err(TurnError::Deferred {
                member: client.name().to_string(),
                endpoint: client.endpoint().to_string(),
                waited: Duration::from_secs(t0.elapsed().as_secs()),
                limit: p.limit,
                why,
            });
        }
        tracing::warn!(member = %client.name(), "deferred, checked again in {}: {why}", humantime::format_duration(p.retry));
        deferred(why);
        turn.give_back();
        tokio::time::sleep(p.retry).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn st(leader: u64, index: u64, applied: u64) -> MemberStatus {
        MemberStatus {
            cluster_id: 1,
            member_id: 0xa,
            revision: 10,
            raft_term: 2,
            raft_index: index,
            raft_applied_index: applied,
            version: "3.4.23".into(),
            db_size: 1,
            db_size_in_use: 1,
            leader,
            is_learner: false,
            errors: vec![],
            db_size_quota: 0,
        }
    }

    #[test]
    fn each_signal_defers_and_names_itself() {
        let fast: Result<Duration, vigil_etcd::EtcdError> = Ok(Duration::from_millis(3));
        let max = Duration::from_millis(500);
        assert_eq!(judge(&st(0xa, 100, 100), &[], &fast, max), None);
        // etcd 3.4 before the applied index was reported: 0 is not a backlog.
        assert_eq!(judge(&st(0xa, 100, 0), &[], &fast, max), None);
        let j = |s: &MemberStatus, a: &[Alarm], r: &Result<Duration, vigil_etcd::EtcdError>| {
            judge(s, a, r, max).unwrap_or_default()
        };
        assert!(j(&st(0, 100, 100), &[], &fast).starts_with("no leader"));
        let alarm = |id: u64, what: &str| Alarm {
            member_id: id,
            alarm: what.into(),
        };
        assert_eq!(
            j(
                &st(0xa, 100, 100),
                &[alarm(0xb, "CORRUPT"), alarm(0xa, "NOSPACE")],
                &fast
            ),
            "alarm raised: NOSPACE on member a"
        );
        // Another member's alarm does not defer this one.
        assert_eq!(
            judge(&st(0xa, 100, 100), &[alarm(0xb, "CORRUPT")], &fast, max),
            None
        );
        assert!(j(&st(0xa, 9000, 3000), &[], &fast).starts_with("apply backlog of 6000"));
        assert_eq!(judge(&st(0xa, 8000, 3000), &[], &fast, max), None);
        assert_eq!(
            j(&st(0xa, 1, 1), &[], &Ok(Duration::from_millis(800))),
            "a linearizable read took 800 ms (snapshot.preflight_max_latency = 500 ms)"
        );
        let slow = vigil_etcd::EtcdError::Rpc {
            member: "a".into(),
            endpoint: "https://127.0.0.1:2379".into(),
            op: "range",
            message: "deadline exceeded".into(),
        };
        let why = j(&st(0xa, 1, 1), &[], &Err(slow));
        assert!(why.starts_with("a linearizable read failed: "), "{why}");
        assert!(why.ends_with("range failed: deadline exceeded"), "{why}");
    }

    #[test]
    fn pace_keeps_the_rate() {
        let mib = 1 << 20;
        assert_eq!(
            pace(10 * mib, 10 * mib, Duration::ZERO),
            Duration::from_secs(1)
        );
        assert_eq!(
            pace(10 * mib, 10 * mib, Duration::from_millis(400)),
            Duration::from_millis(600)
        );
        // Behind the rate already: no wait.
        assert_eq!(pace(mib, 10 * mib, Duration::from_secs(1)), Duration::ZERO);
        assert_eq!(pace(mib, 0, Duration::ZERO), Duration::ZERO);
    }
}
