//! Outcome records (crates/core/src/outcome.rs) become check results.
//!
//! Each job owns a few alert names per subject; one outcome sets every one of
//! them, so the alerts always describe the latest run:
//!
//! | job | outcome | alert (fires on failure, resolves on success) |
//! |---|---|---|
//! | `snapshot` | failed at `verify`/`readback` | `snapshot_verification_failed{member}` (critical) |
//! | `snapshot` | failed at `consistency` | `etcd_member_diverged{member}` (critical) |
//! | `snapshot` | failed at `retention` | `snapshot_prune_failed{member}` (warning) |
//! | `snapshot` | failed at `proof` | `snapshot_restore_proof_failed{member}` (critical) |
//! | `snapshot` | failed at any other stage | `snapshot_failed{member}` (critical) |
//! | `snapshot` | subject `rke2-token` | `rke2_token_archive_failed` (warning) |
//! | `snapshot` | subject `rke2-bootstrap` | `rke2_token_mismatch` (critical) |
//! | `sink` | failed | `sink_down{sink}` (critical) |
//! | `drill` | failed | `restore_drill_failed{target}` (critical) |
//! | other | failed | `<job>_failed{subject}` (warning) |
//!
//! A successful snapshot resolves all four member alerts. A failure at one
//! stage resolves the member's other snapshot alerts (the latest run got past
//! them or failed elsewhere), except `etcd_member_diverged`, which only a
//! consistency check (pass or fail) changes.

use crate::model::{AlertKey, CheckResult, Fact, Severity, Source};
use vigil_core::outcome::{Outcome, Stage};
use vigil_core::Config;

const SNAPSHOT_FAILED: &str = "snapshot_failed";
const VERIFY_FAILED: &str = "snapshot_verification_failed";
const PRUNE_FAILED: &str = "snapshot_prune_failed";
const DIVERGED: &str = "etcd_member_diverged";
const PROOF_FAILED: &str = "snapshot_restore_proof_failed";

fn clip(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(n).collect();
        t.push('…');
        t
    }
}

fn facts(cfg: &Config, o: &Outcome, subject_title: &str) -> Vec<Fact> {
    let mut f = vec![Fact::new(subject_title, &o.subject)];
    if let Some(m) = cfg.members().find(|m| m.name == o.subject) {
        f.push(Fact::new("Endpoint", &m.endpoint));
    }
    f.push(Fact::new("Stage", o.stage.to_string()));
    if let Some(e) = &o.error {
        f.push(Fact::new("Error", clip(e, 600)));
    }
    if let Some(a) = &o.archive {
        f.push(Fact::new("Archive", a));
    }
    f.push(Fact::new("Run", &o.run_id));
    f.push(Fact::new("Time", &o.time));
    f
}

fn result(
    key: AlertKey,
    source: Source,
    ok: bool,
    severity: Severity,
    summary: String,
    facts: Vec<Fact>,
    runbook: &str,
) -> CheckResult {
    CheckResult {
        key,
        source,
        ok,
        severity,
        summary,
        facts,
        runbook: Some(runbook.to_string()),
    }
}

/// The check results one outcome record stands for.
pub fn results(cfg: &Config, o: &Outcome) -> Vec<CheckResult> {
    match o.job {
        Source::Snapshot if o.subject == "rke2-token" => vec![result(
            AlertKey::new("rke2_token_archive_failed"),
            Source::Snapshot,
            o.ok,
            Severity::Warning,
            if o.ok {
                "The RKE2 server token is archived".into()
            } else {
                "The RKE2 server token could not be archived; restoring onto new hosts needs it".into()
            },
            facts(cfg, o, "Subject"),
            "Check that rke2_token_file is readable by vigil and that the snapshot dir has space; see `journalctl -u vigil-snapshot`",
        )],
        Source::Snapshot if o.subject == "rke2-bootstrap" => vec![result(
            AlertKey::new("rke2_token_mismatch"),
            Source::Snapshot,
            o.ok,
            Severity::Critical,
            if o.ok {
                "The archived RKE2 server token opens the cluster's bootstrap data".into()
            } else {
                "The RKE2 server token on the bastion does not open the cluster's bootstrap data: an RKE2 restore with it would fail".into()
            },
            facts(cfg, o, "Subject"),
            "Copy the current token from a server node's /var/lib/rancher/rke2/server/token to snapshot.rke2_token_file (0600); the next snapshot run proves it",
        )],
        Source::Snapshot => snapshot(cfg, o),
        Source::Sink => vec![result(
            AlertKey::new("sink_down").label("sink", &o.subject),
            Source::Sink,
            o.ok,
            Severity::Critical,
            if o.ok {
                format!("Sink {} stores archives again", o.subject)
            } else {
                format!("Sink {} is down: archives are not shipped off the bastion (stage {})", o.subject, o.stage)
            },
            facts(cfg, o, "Sink"),
            "Archives stay in the local store meanwhile. Check the sink's reachability and credentials; the next run ships what is missing",
        )],
        Source::Drill => vec![result(
            AlertKey::new("restore_drill_failed").label("target", &o.subject),
            Source::Drill,
            o.ok,
            Severity::Critical,
            if o.ok {
                format!("Restore drill of {} passed", o.subject)
            } else {
                format!("Restore drill of {} failed at stage {}: a real restore may fail the same way", o.subject, o.stage)
            },
            facts(cfg, o, "Target"),
            "Run `vigil-restore drill` by hand and read its output; check the archive with `vigil-restore list`",
        )],
        source => {
            let job = source.as_str();
            vec![result(
                AlertKey::new(format!("{job}_failed")).label("subject", &o.subject),
                source,
                o.ok,
                Severity::Warning,
                if o.ok {
                    format!("{job} for {} succeeded", o.subject)
                } else {
                    format!("{job} for {} failed at stage {}", o.subject, o.stage)
                },
                facts(cfg, o, "Subject"),
                "See the job's log: `journalctl -u vigil-*`",
            )]
        }
    }
}

fn snapshot(cfg: &Config, o: &Outcome) -> Vec<CheckResult> {
    let m = &o.subject;
    let key = |n: &str| AlertKey::new(n).label("member", m);
    let f = facts(cfg, o, "Member");
    let failing = match (o.ok, o.stage) {
        (true, _) => None,
        (false, Stage::Verify | Stage::Readback) => Some(VERIFY_FAILED),
        (false, Stage::Consistency) => Some(DIVERGED),
        (false, Stage::Retention) => Some(PRUNE_FAILED),
        (false, Stage::Proof) => Some(PROOF_FAILED),
        (false, _) => Some(SNAPSHOT_FAILED),
    };
    let mut out = Vec::new();
    let stage = o.stage;
    for name in [
        SNAPSHOT_FAILED,
        VERIFY_FAILED,
        PRUNE_FAILED,
        PROOF_FAILED,
        DIVERGED,
    ] {
        // Only a consistency check says anything about divergence.
        if name == DIVERGED && !(o.ok || failing == Some(DIVERGED)) {
            continue;
        }
        let bad = failing == Some(name);
        let (sev, summary, runbook) = match name {
            SNAPSHOT_FAILED => (
                Severity::Critical,
                if bad { format!("etcd snapshot of {m} failed at stage {stage}") } else { format!("etcd snapshot of {m} succeeded") },
                "The other members were still archived. Check the member (`etcdctl endpoint status`, `journalctl -u rke2-server`) and the vigil log (`journalctl -u vigil-snapshot`); the next run retries",
            ),
            VERIFY_FAILED => (
                Severity::Critical,
                if bad {
                    format!("etcd snapshot of {m} failed verification (stage {stage}); nothing was stored for it")
                } else {
                    format!("etcd snapshot of {m} verifies again")
                },
                "The stream did not match its sha256 trailer or size rule, or the stored copy did not read back. Check the member's disk and `etcdctl alarm list`; then `vigil-snapshot run`",
            ),
            PROOF_FAILED => (
                Severity::Critical,
                if bad {
                    let check = o
                        .proof
                        .as_ref()
                        .and_then(|p| p.check.as_deref())
                        .unwrap_or("?");
                    format!("The snapshot of {m} was not proven restorable: check {check} failed")
                } else {
                    format!("The snapshot of {m} is proven restorable again")
                },
                "The archive was stored (its sha256 matched) but restoring it into a scratch etcd did not give the member's data (`hash_kv`, key count, sampled keys) or did not work at all (`tools`, `dir`, `restore`, `start`). Read the error; for `hash_kv` or `key_count` do not trust this member's archives until `etcdctl endpoint hashkv --cluster` agrees; for `tools`/`dir` see README \"Restore proofs\"",
            ),
            PRUNE_FAILED => (
                Severity::Warning,
                if bad { format!("Old archives of {m} could not be pruned; the new archive is stored") } else { format!("Pruning archives of {m} works again") },
                "Check permissions and space in snapshot.dir; nothing is lost, old archives are kept",
            ),
            _ => (
                Severity::Critical,
                if bad {
                    format!("etcd member {m} diverged from the others at a common revision (hash_kv mismatch)")
                } else {
                    format!("etcd member {m} agrees with the others")
                },
                "Do not restore from this member's archives until checked: compare `etcdctl endpoint hashkv --cluster`; consider removing and re-adding the member",
            ),
        };
        out.push(result(
            key(name),
            Source::Snapshot,
            !bad,
            sev,
            summary,
            f.clone(),
            runbook,
        ));
    }
    out
}
