//! etcd, per member: reachable and healthy, one agreed leader and none
//! leaderless, raft index lag, db size against the quota, fragmentation,
//! alarms, learners, and the member list against the config.

use crate::{fmt_dur, Finding};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};
use vigil_alert::{AlertKey, Severity};
use vigil_core::config::{EtcdHealth, MemberConfig};
use vigil_core::units::human_bytes;
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

fn norm(u: &str) -> &str {
    u.trim().trim_end_matches('/')
}

/// Turns the members' answers into findings (pure, unit-tested).
pub fn evaluate(members: &[MemberConfig], probes: &[Probe], cfg: &EtcdHealth) -> Vec<Finding> {
    let mut out = Vec::new();
    // Names of member IDs, from the members' own status, then the member list.
    let mut names: BTreeMap<u64, String> = BTreeMap::new();
    for (m, p) in members.iter().zip(probes) {
        if let Some(s) = p.ok_status() {
            names.insert(s.member_id, m.name.clone());
        }
    }
    let listed: Option<&Vec<ListedMember>> = probes.iter().find_map(|p| p.members.as_ref());
    if let Some(list) = listed {
        for l in list {
            names.entry(l.id).or_insert_with(|| {
                if l.name.is_empty() {
                    format!("{:x}", l.id)
                } else {
                    l.name.clone()
                }
            });
        }
    }
    let name_of = |id: u64| names.get(&id).cloned().unwrap_or_else(|| format!("{id:x}"));
    let max_index = probes
        .iter()
        .filter_map(|p| p.ok_status())
        .map(|s| s.raft_index)
        .max();
    let alarms: Option<BTreeSet<(u64, String)>> = {
        let lists: Vec<&Vec<Alarm>> = probes.iter().filter_map(|p| p.alarms.as_ref()).collect();
        (!lists.is_empty()).then(|| {
            lists
                .into_iter()
                .flatten()
                .map(|a| (a.member_id, a.alarm.clone()))
                .collect()
        })
    };

    for (m, p) in members.iter().zip(probes) {
        let key = |name: &str| AlertKey::new(name).label("member", &m.name);
        let ms = p.took.as_millis() as u64;
        let f = |check: &str, alert: &str| {
            let mut f = Finding::new(check, &m.name, key(alert));
            f.duration_ms = ms;
            f
        };
        let down =
            |check: &str, alert: &str| f(check, alert).covered(REACHABLE, "member not reachable");
        let s = match &p.status {
            Some(Ok(s)) => s,
            other => {
                let reason = match other {
                    Some(Err(e)) => tidy(m, &e.to_string()),
                    _ => "no answer".to_string(),
                };
                out.push(f(REACHABLE, "etcd_member_down").fail(Severity::Critical, reason));
                for (c, a) in [
                    ("etcd.leader", "etcd_no_leader"),
                    ("etcd.raft_lag", "etcd_raft_lag"),
                    ("etcd.db_size", "etcd_db_size"),
                    ("etcd.fragmentation", "etcd_fragmentation"),
                    ("etcd.alarms", "etcd_alarm"),
                    ("etcd.learner", "etcd_learner"),
                ] {
                    out.push(down(c, a));
                }
                continue;
            }
        };
        let other_errors: Vec<&String> =
            s.errors.iter().filter(|e| !e.contains("alarm:")).collect();
        let reach = f(REACHABLE, "etcd_member_down");
        out.push(match &p.quorum_read {
            Some(Err(e)) => reach.fail(
                Severity::Critical,
                format!("answers status but cannot serve a quorum read: {e}"),
            ),
            _ if !other_errors.is_empty() => reach.fail(
                Severity::Critical,
                format!(
                    "reports errors: {}",
                    other_errors
                        .iter()
                        .map(|e| e.as_str())
                        .collect::<Vec<_>>()
                        .join("; ")
                ),
            ),
            _ => reach.pass(format!(
                "etcd {}, revision {}, raft index {}",
                s.version, s.revision, s.raft_index
            )),
        });
        // A leaderless member.
        let lf = f("etcd.leader", "etcd_no_leader");
        out.push(if s.leader == 0 {
            lf.fail(
                Severity::Critical,
                "has no leader (election in progress or cut off from the quorum)",
            )
        } else {
            lf.pass(format!("leader {}", name_of(s.leader)))
        });
        // Raft index lag.
        let lag = max_index
            .unwrap_or(s.raft_index)
            .saturating_sub(s.raft_index);
        let rf = f("etcd.raft_lag", "etcd_raft_lag").severity(Severity::Warning);
        out.push(if lag > cfg.max_raft_lag {
            rf.fail(
                Severity::Warning,
                format!(
                    "raft index {} is {lag} behind the most advanced member (threshold {})",
                    s.raft_index, cfg.max_raft_lag
                ),
            )
        } else {
            rf.pass(format!("{lag} behind (threshold {})", cfg.max_raft_lag))
        });
        // DB size against the quota.
        let (quota, source) = if s.db_size_quota > 0 {
            (s.db_size_quota as u64, "reported by the server")
        } else {
            (
                cfg.db_quota.0,
                "health.etcd.db_quota; this etcd does not report its quota",
            )
        };
        let pct = s.db_size.max(0) as f64 * 100.0 / quota.max(1) as f64;
        let text = format!(
            "{} of {} quota ({pct:.1}%, quota {source})",
            human_bytes(s.db_size.max(0) as u64),
            human_bytes(quota)
        );
        let df = f("etcd.db_size", "etcd_db_size").severity(Severity::Warning);
        out.push(if pct >= cfg.db_size_critical_percent {
            df.fail(
                Severity::Critical,
                format!(
                    "{text}: at {}% etcd raises NOSPACE and goes read-only; compact and defragment",
                    100
                ),
            )
        } else if pct >= cfg.db_size_warn_percent {
            df.fail(
                Severity::Warning,
                format!("{text}; compact and defragment, or raise --quota-backend-bytes"),
            )
        } else {
            df.pass(text)
        });
        // Fragmentation.
        let ff = f("etcd.fragmentation", "etcd_fragmentation").severity(Severity::Warning);
        out.push(if s.db_size_in_use <= 0 {
            ff.unknown("the server does not report its db size in use")
        } else {
            let frag = (1.0 - s.db_size_in_use as f64 / s.db_size.max(1) as f64).max(0.0) * 100.0;
            let text = format!(
                "{} in use of {} ({frag:.0}% free pages)",
                human_bytes(s.db_size_in_use as u64),
                human_bytes(s.db_size as u64)
            );
            if frag >= cfg.fragmentation_warn_percent
                && s.db_size as u64 >= cfg.fragmentation_min_size.0
            {
                ff.fail(
                    Severity::Warning,
                    format!("{text}; run `etcdctl defrag` on this member (one at a time)"),
                )
            } else {
                ff.pass(text)
            }
        });
        // Alarms.
        let af = f("etcd.alarms", "etcd_alarm");
        out.push(match &alarms {
            None => af.unknown("no member answered the alarm list"),
            Some(all) => {
                let mine: Vec<&str> = all
                    .iter()
                    .filter(|(id, _)| *id == s.member_id)
                    .map(|(_, a)| a.as_str())
                    .collect();
                if mine.is_empty() {
                    af.pass("no alarms")
                } else {
                    let mut why = format!("alarm {} raised", mine.join(", "));
                    if mine.contains(&"NOSPACE") {
                        why.push_str(": the keyspace is read-only; compact, defragment, then `etcdctl alarm disarm`");
                    }
                    if mine.contains(&"CORRUPT") {
                        why.push_str(": this member's data differs from the others; replace it from a healthy member or a verified archive");
                    }
                    af.fail(Severity::Critical, why)
                }
            }
        });
        // Learners.
        let learner = s.is_learner
            || listed.is_some_and(|l| l.iter().any(|x| x.id == s.member_id && x.is_learner));
        let lf = f("etcd.learner", "etcd_learner").severity(Severity::Warning);
        out.push(if learner && !cfg.allow_learners {
            lf.fail(
                Severity::Warning,
                "is a learner (not voting): promote it with `etcdctl member promote` once it caught up",
            )
        } else if learner {
            lf.pass("is a learner (allowed by health.etcd.allow_learners)")
        } else {
            lf.pass("voting member")
        });
    }

    // One leader, agreed by every member that answered.
    let lf = Finding::new(
        "etcd.leader_agreement",
        "cluster",
        AlertKey::new("etcd_leader_disagreement"),
    );
    let leaders: BTreeMap<u64, Vec<&str>> = members
        .iter()
        .zip(probes)
        .filter_map(|(m, p)| p.ok_status().map(|s| (s.leader, m.name.as_str())))
        .filter(|(l, _)| *l != 0)
        .fold(BTreeMap::new(), |mut acc, (l, n)| {
            acc.entry(l).or_insert_with(Vec::new).push(n);
            acc
        });
    out.push(match leaders.len() {
        0 if probes.iter().all(|p| p.ok_status().is_none()) => {
            lf.covered(REACHABLE, "no member reachable")
        }
        0 => lf.fail(
            Severity::Critical,
            "no member knows a leader: the cluster has no quorum",
        ),
        1 => {
            let (id, _) = leaders
                .iter()
                .next()
                .map(|(k, v)| (*k, v))
                .unwrap_or((0, &Vec::new()));
            lf.pass(format!("every reachable member follows {}", name_of(id)))
        }
        _ => lf.fail(
            Severity::Critical,
            format!(
                "members disagree on the leader: {}",
                leaders
                    .iter()
                    .map(|(id, ms)| format!("{} → {}", ms.join(", "), name_of(*id)))
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
        ),
    });

    // The member list against the config.
    let mf = Finding::new(
        "etcd.member_list",
        "cluster",
        AlertKey::new("etcd_member_list"),
    );
    out.push(match listed {
        None if probes.iter().all(|p| p.ok_status().is_none()) => {
            mf.covered(REACHABLE, "no member reachable")
        }
        None => mf.unknown("no member answered the member list"),
        Some(list) => {
            let ids: BTreeMap<&str, u64> = members
                .iter()
                .zip(probes)
                .filter_map(|(m, p)| p.ok_status().map(|s| (m.name.as_str(), s.member_id)))
                .collect();
            let matches = |m: &MemberConfig, l: &ListedMember| {
                ids.get(m.name.as_str()) == Some(&l.id)
                    || l.client_urls.iter().any(|u| norm(u) == norm(&m.endpoint))
                    || (!l.name.is_empty() && l.name == m.name)
            };
            let unexpected: Vec<String> = list
                .iter()
                .filter(|l| !members.iter().any(|m| matches(m, l)))
                .map(|l| {
                    format!(
                        "{} (id {:x}{}, client URLs {})",
                        if l.name.is_empty() {
                            "(not started)"
                        } else {
                            &l.name
                        },
                        l.id,
                        if l.is_learner { ", learner" } else { "" },
                        if l.client_urls.is_empty() {
                            "none".to_string()
                        } else {
                            l.client_urls.join(" ")
                        }
                    )
                })
                .collect();
            let missing: Vec<&str> = members
                .iter()
                .filter(|m| !list.iter().any(|l| matches(m, l)))
                .map(|m| m.name.as_str())
                .collect();
            let mut why = Vec::new();
            if !unexpected.is_empty() {
                why.push(format!(
                    "unexpected member(s) not in the config: {}",
                    unexpected.join("; ")
                ));
            }
            if !missing.is_empty() {
                why.push(format!(
                    "configured member(s) not in the cluster: {}",
                    missing.join(", ")
                ));
            }
            if why.is_empty() {
                mf.pass(format!("{} members, as configured", list.len()))
            } else {
                mf.fail(Severity::Critical, why.join("; "))
            }
        }
    });
    out
}

#[cfg(test)]
mod tests;
