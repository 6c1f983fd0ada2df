//! From findings to the alert engine.
//!
//! Findings are grouped by their alert key; the worst finding decides:
//! - any FAIL: the alert's check failed (it fires after its failure
//!   threshold, 3 rounds by default for health);
//! - all PASS: the check succeeded (it resolves after 2 rounds);
//! - otherwise (UNKNOWN, no FAIL): the alert's own streak is left alone, so
//!   "could not check" neither fires nor resolves it. An UNKNOWN that no
//!   other FAIL explains raises `health_check_unknown{alert=...,...}`
//!   (warning) instead, which resolves once the check answers again.

use crate::{Finding, Status};
use std::collections::{BTreeMap, BTreeSet};
use vigil_alert::model::CheckResult;
use vigil_alert::{AlertKey, Fact, Severity, Source};
use vigil_core::Config;

/// The alert raised when a check could not run.
pub const UNKNOWN_ALERT: &str = "health_check_unknown";

fn runbook(name: &str) -> Option<&'static str> {
    Some(match name {
        "etcd_member_down" => "Check the member: `systemctl status rke2-server` on the node, `etcdctl endpoint health`, its disk and network. Two members down means no quorum.",
        "etcd_no_leader" | "etcd_leader_disagreement" => "Check `etcdctl endpoint status --cluster -w table`; a network partition or a member with a stale view needs attention before writes stall.",
        "etcd_raft_lag" => "A member far behind is slow (disk, CPU) or cut off; check its disk latency (wal_fsync) and network.",
        "etcd_db_size" => "Compact (Kubernetes does it every 5m) and defragment one member at a time, or raise --quota-backend-bytes.",
        "etcd_fragmentation" => "Defragment one member at a time: `etcdctl --endpoints=<member> defrag`.",
        "etcd_alarm" => "NOSPACE: compact, defragment, then `etcdctl alarm disarm`. CORRUPT: replace the member from a healthy one or a verified archive.",
        "etcd_learner" => "Promote the learner once it caught up (`etcdctl member promote`), or remove it.",
        "etcd_member_list" => "An unexpected member may be a half-finished join or an intruder: check `etcdctl member list` and the config's [cluster].",
        "kube_api_unhealthy" => "The alert holds the ?verbose output: the [-] lines name the failing checks.",
        "cert_expiry" => "Renew the certificate (RKE2: `rke2 certificate rotate` and restart rke2-server).",
        "node_exporter_down" => "Check `systemctl status prometheus-node-exporter` on the node and the firewall.",
        "node_filesystem_low" => "Free space on the node: images (`crictl rmi --prune`), logs, or grow the volume.",
        "node_memory_low" | "node_load_high" => "Find the heavy workload (`kubectl top pods -A --sort-by=...`) and spread or limit it.",
        "backup_stale" => "Run `vigil-snapshot run` by hand and read its output; check `systemctl list-timers vigil-*`. A date in the future: check the bastion clock (`timedatectl`, chrony/timesyncd); the next run after the clock is right is the newest again.",
        "drill_stale" => "Run the offline drill with the private key brought in for it: `vigil-restore drill --identity -` (key on stdin, never on the bastion's disk), or on the host that keeps the key.",
        "restore_unproven" => "Read the reason: a failed proof names its check (hash_kv, key_count: do not trust this member's archives until `etcdctl endpoint hashkv --cluster` agrees; tools, dir, restore, start: fix the bastion); a skipped one names the size limit or the tmpfs. Then `vigil-snapshot run`.",
        "bastion_disk_low" => "Prune (`vigil-snapshot prune --dry-run` first), lower keep_last, or grow the disk.",
        UNKNOWN_ALERT => "vigil-health could not run this check: the reason says why (timeout, credentials, a sink that does not list).",
        _ => return None,
    })
}

fn line(f: &Finding) -> String {
    format!("{} {}: {}", f.check, f.subject, f.reason)
}

fn facts(group: &[&Finding]) -> Vec<Fact> {
    let mut v = Vec::new();
    for f in group.iter().filter(|f| f.status != Status::Pass).take(8) {
        v.push(Fact::new(
            format!("{} {}", f.check, f.subject),
            format!("{}: {}", f.status, f.reason),
        ));
        if let Some(d) = &f.detail {
            v.push(Fact::new("Detail", d.clone()));
        }
    }
    v
}

/// The unknown alert's key for an alert key.
pub fn unknown_key(k: &AlertKey) -> AlertKey {
    let mut u = AlertKey::new(UNKNOWN_ALERT).label("alert", &k.name);
    for (a, b) in &k.labels {
        u = u.label(a, b);
    }
    u
}

/// Maps a round's findings to check results. `open_unknown` holds the
/// `health_check_unknown` keys that are pending or firing now, so they
/// resolve when their check answers again (pure, unit-tested).
pub fn results(findings: &[Finding], open_unknown: &BTreeSet<String>) -> Vec<CheckResult> {
    let mut groups: BTreeMap<String, (AlertKey, Vec<&Finding>)> = BTreeMap::new();
    for f in findings {
        groups
            .entry(f.alert.to_string())
            .or_insert_with(|| (f.alert.clone(), Vec::new()))
            .1
            .push(f);
    }
    let mut out = Vec::new();
    for (_, (key, group)) in groups {
        let fails: Vec<&&Finding> = group.iter().filter(|f| f.status == Status::Fail).collect();
        let unknown: Vec<&&Finding> = group
            .iter()
            .filter(|f| f.status == Status::Unknown && f.covered_by.is_none())
            .collect();
        let all_pass = group.iter().all(|f| f.status == Status::Pass);
        if !fails.is_empty() {
            let severity = fails
                .iter()
                .map(|f| f.severity)
                .max()
                .unwrap_or(Severity::Critical);
            let summary = if fails.len() == 1 {
                line(fails[0])
            } else {
                format!(
                    "{} checks fail: {}",
                    fails.len(),
                    fails.iter().map(|f| line(f)).collect::<Vec<_>>().join("; ")
                )
            };
            out.push(CheckResult {
                key: key.clone(),
                source: Source::Health,
                ok: false,
                severity,
                summary,
                facts: facts(&group),
                runbook: runbook(&key.name).map(String::from),
            });
        } else if all_pass {
            out.push(CheckResult {
                key: key.clone(),
                source: Source::Health,
                ok: true,
                severity: group
                    .iter()
                    .map(|f| f.severity)
                    .max()
                    .unwrap_or(Severity::Warning),
                summary: group.iter().map(|f| line(f)).collect::<Vec<_>>().join("; "),
                facts: Vec::new(),
                runbook: None,
            });
        }
        let uk = unknown_key(&key);
        if !unknown.is_empty() {
            out.push(CheckResult {
                summary: format!(
                    "Could not check {}: {}",
                    key,
                    unknown
                        .iter()
                        .map(|f| line(f))
                        .collect::<Vec<_>>()
                        .join("; ")
                ),
                key: uk,
                source: Source::Health,
                ok: false,
                severity: Severity::Warning,
                facts: facts(&group),
                runbook: runbook(UNKNOWN_ALERT).map(String::from),
            });
        } else if open_unknown.contains(&uk.to_string()) {
            out.push(CheckResult {
                summary: format!("{key} can be checked again"),
                key: uk,
                source: Source::Health,
                ok: true,
                severity: Severity::Warning,
                facts: Vec::new(),
                runbook: None,
            });
        }
    }
    out
}

/// What feeding the engine did, for the report.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Raised {
    pub fired: Vec<String>,
    pub resolved: Vec<String>,
    pub pending: Vec<String>,
    /// Outbox rows queued for vigil-notify, which delivers them.
    pub queued: usize,
    /// Set when the alert state could not be updated: the run then exits 1.
    pub error: Option<String>,
}

/// Feeds a round to the alert engine; the notifications it causes are
/// queued for vigil-notify (the job itself delivers nothing).
pub fn raise(cfg: &Config, findings: &[Finding]) -> Raised {
    let open: BTreeSet<String> = vigil_alert::Store::open(&cfg.state.dir)
        .and_then(|s| s.alerts(false))
        .map(|v| {
            v.into_iter()
                .filter(|a| a.name == UNKNOWN_ALERT)
                .map(|a| a.key)
                .collect()
        })
        .unwrap_or_default();
    let results = results(findings, &open);
    let mut raised = Raised::default();
    match vigil_alert::raise(cfg, "health", &results, vigil_alert::OnAlertError::Fail) {
        Ok(r) => {
            raised.fired = r.fired;
            raised.resolved = r.resolved;
            raised.pending = r.pending;
            raised.queued = r.queued;
        }
        Err(e) => {
            tracing::error!("recording health results for alerting: {e}");
            raised.error = Some(e.to_string());
        }
    }
    raised
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn f(alert: AlertKey, subject: &str) -> Finding {
        Finding::new("t.check", subject, alert)
    }

    #[test]
    fn worst_finding_decides_and_unknown_stays_apart() {
        let k = AlertKey::new("node_filesystem_low").label("node", "n1");
        let findings = vec![
            f(k.clone(), "n1:/").pass("ok"),
            f(k.clone(), "n1:/var").fail(Severity::Warning, "12% free"),
            f(k.clone(), "n1:/data").fail(Severity::Critical, "2% free"),
        ];
        let r = results(&findings, &BTreeSet::new());
        assert_eq!(r.len(), 1);
        assert!(!r[0].ok);
        assert_eq!(r[0].severity, Severity::Critical);
        assert!(
            r[0].summary.starts_with("2 checks fail"),
            "{}",
            r[0].summary
        );

        // UNKNOWN only: the alert itself is untouched, the unknown alert fails.
        let r = results(
            &[f(k.clone(), "n1:/").unknown("timed out")],
            &BTreeSet::new(),
        );
        assert_eq!(r.len(), 1);
        assert_eq!(
            r[0].key.to_string(),
            r#"health_check_unknown{alert="node_filesystem_low",node="n1"}"#
        );
        assert!(!r[0].ok);
        assert_eq!(r[0].severity, Severity::Warning);

        // Covered: nothing at all is reported.
        let r = results(
            &[f(k.clone(), "n1:/").covered("node.exporter", "down")],
            &BTreeSet::new(),
        );
        assert!(r.is_empty());

        // Back to PASS: the open unknown alert resolves with it.
        let open: BTreeSet<String> = [unknown_key(&k).to_string()].into();
        let r = results(&[f(k.clone(), "n1:/").pass("ok")], &open);
        assert_eq!(r.len(), 2);
        assert!(r.iter().all(|c| c.ok));
    }

    #[test]
    fn verbose_detail_reaches_the_facts() {
        let k = AlertKey::new("kube_api_unhealthy").label("endpoint", "lb");
        let r = results(
            &[f(k, "lb /readyz")
                .fail(Severity::Critical, "HTTP 500: [-]etcd failed")
                .detail("[+]ping ok\n[-]etcd failed: reason withheld")],
            &BTreeSet::new(),
        );
        assert!(r[0]
            .facts
            .iter()
            .any(|f| f.value.contains("[-]etcd failed: reason withheld")));
        assert!(r[0].runbook.is_some());
    }
}
