//! The etcd findings from the members' answers: pure, unit-tested.

use super::{tidy, Probe, REACHABLE};
use crate::Finding;
use std::collections::{BTreeMap, BTreeSet};
use vigil_alert::{AlertKey, Severity};
use vigil_core::config::{EtcdHealth, MemberConfig};
use vigil_core::units::human_bytes;
use vigil_etcd::{Alarm, ListedMember};

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

    out.push(leader_agreement(members, probes, &name_of));
    out.push(member_list(members, probes, listed));
    out
}

/// One leader, agreed by every member that answered.
fn leader_agreement(
    members: &[MemberConfig],
    probes: &[Probe],
    name_of: &dyn Fn(u64) -> String,
) -> Finding {
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
    match leaders.len() {
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
    }
}

/// The member list against the config.
fn member_list(
    members: &[MemberConfig],
    probes: &[Probe],
    listed: Option<&Vec<ListedMember>>,
) -> Finding {
    let mf = Finding::new(
        "etcd.member_list",
        "cluster",
        AlertKey::new("etcd_member_list"),
    );
    match listed {
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
    }
}
