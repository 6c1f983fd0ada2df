//! Freshness, the dead-man check for backups: the newest verified archive of
//! each member, locally and in each sink, and the newest passing drill, each
//! younger than a threshold. A snapshot timer that silently stopped shows
//! up here.

use crate::{fmt_age, fmt_dur, Finding};
use std::path::Path;
use std::time::Instant;
use vigil_alert::{AlertKey, Severity};
use vigil_archive::catalog;
use vigil_core::corrupt::Ledger;
use vigil_core::Config;

/// Seconds since an RFC 3339 time, if it parses.
fn age_of(rfc3339: &str, now: i64) -> Option<i64> {
    time::OffsetDateTime::parse(rfc3339, &time::format_description::well_known::Rfc3339)
        .ok()
        .map(|t| now - t.unix_timestamp())
}

/// How far in the future a `created_at` may be before it is a finding:
/// clocks of bastion and reader differ a little even with NTP.
pub const FUTURE_TOLERANCE_SECS: i64 = 300;

/// PASS/FAIL for the newest verified copy of one member in one store (pure).
/// `newest` is the newest by etcd revision; a `created_at` in the future is
/// a lie or a clock that ran ahead, never "fresh": a dead-man check that
/// reads a negative age could never fire.
pub fn judge_archive(f: Finding, newest: Option<&str>, max_age_secs: i64, now: i64) -> Finding {
    match newest.and_then(|t| age_of(t, now).map(|a| (t, a))) {
        None => f.fail(
            Severity::Critical,
            "no verified archive at all; please check `vigil-snapshot run` and its timer",
        ),
        Some((t, age)) if age < -FUTURE_TOLERANCE_SECS => f.fail(
            Severity::Critical,
            format!(
                "newest verified archive has created_at {t}, {} in the future: the bastion clock ran ahead or the manifest lies, so its age (and this dead-man check) cannot be trusted; check timedatectl and chrony/timesyncd on the bastion",
                fmt_age(-age)
            ),
        ),
        Some((t, age)) if age > max_age_secs => f.fail(
            Severity::Critical,
            format!(
                "newest verified archive is {} old ({t}), older than {}; is vigil-snapshot.timer running?",
                fmt_age(age),
                fmt_age(max_age_secs)
            ),
        ),
        Some((t, age)) => f.pass(format!("newest verified archive {} old ({t})", fmt_age(age))),
    }
}

/// Is the newest verified local archive proven restorable (issue 19)? Pure.
pub fn judge_proof(f: Finding, m: &vigil_core::manifest::Manifest, now: i64) -> Finding {
    use vigil_core::manifest::ProofResult;
    let archive = &m.id;
    match &m.restore_proof {
        None => f.fail(
            Severity::Warning,
            format!(
                "newest archive {archive} has no restore proof (made with proofs off, or by an older vigil); the next `vigil-snapshot run` proves its archive"
            ),
        ),
        Some(p) => match p.result {
            ProofResult::Proven => {
                let when = m.restore_proven_at.as_deref().unwrap_or(&m.created_at);
                let age = age_of(when, now).map(fmt_age).unwrap_or_default();
                let peers = if p.peers_agree.is_empty() {
                    String::new()
                } else {
                    format!(" and {}", p.peers_agree.join(", "))
                };
                f.pass(format!(
                    "newest archive {archive} proven restorable {age} ago: revision {}, {} keys, hash_kv {} as the member{peers}",
                    p.revision.unwrap_or_default(),
                    p.key_count.unwrap_or_default(),
                    p.hash_kv.unwrap_or_default()
                ))
            }
            ProofResult::Failed => f.fail(
                Severity::Critical,
                format!(
                    "the restore proof of newest archive {archive} failed at check {}: {}",
                    p.check.as_deref().unwrap_or("?"),
                    p.error.as_deref().unwrap_or_default()
                ),
            ),
            ProofResult::Skipped => f.fail(
                Severity::Warning,
                format!(
                    "newest archive {archive} is not proven: {}",
                    p.error.as_deref().unwrap_or("skipped")
                ),
            ),
        },
    }
}

/// The newest passing drill: the latest records first, then the history
/// (a member whose latest drill failed may still have passed before).
pub fn last_passing_drill(state_dir: &Path) -> Option<String> {
    vigil_core::outcome::last_ok(state_dir, vigil_core::jobs::Source::Drill, None)
}

/// Runs the freshness checks.
pub async fn check(cfg: &Config) -> Vec<Finding> {
    let fr = &cfg.health.freshness;
    let now = vigil_core::now().unix_timestamp();
    let max_age = fr.max_age.get().as_secs() as i64;
    let timeout = cfg.health.freshness_timeout();
    let mut out = Vec::new();
    let members: Vec<String> = cfg.members().map(|m| m.name.clone()).collect();
    let key = |member: &str, store: &str| {
        AlertKey::new("backup_stale")
            .label("member", member)
            .label("store", store)
    };
    let finding = |member: &str, store: &str| {
        Finding::new(
            "freshness.archive",
            format!("{member} @ {store}"),
            key(member, store),
        )
    };
    // Local copies.
    if let Ok(sc) = cfg.snapshot("vigil-health") {
        let started = Instant::now();
        let (root, names) = (sc.dir.clone(), members.clone());
        let limit = cfg
            .health
            .timeout
            .get()
            .max(std::time::Duration::from_secs(10));
        let state = cfg.state.dir.clone();
        let newest = crate::blocking(limit, move || {
            let ledger = Ledger::load(&state).ok();
            let pin = vigil_core::pin::load(&state).ok().flatten();
            // Before the first run there is no dir: no copies, a finding below.
            let copies = catalog::local_copies(&root).copies;
            names
                .iter()
                .map(|m| {
                    catalog::newest_verified(&copies, m, ledger.as_ref(), pin.as_ref())
                        .map(|c| c.manifest.clone())
                })
                .collect::<Vec<_>>()
        })
        .await;
        for (i, m) in members.iter().enumerate() {
            let f = finding(m, "local");
            let newest_i = newest.as_ref().and_then(|n| n[i].as_ref());
            if sc.prove_restore.enabled {
                if let Some(man) = newest_i {
                    let f = Finding::new(
                        "freshness.proof",
                        m.as_str(),
                        AlertKey::new("restore_unproven").label("member", m),
                    );
                    out.push(judge_proof(f, man, now).took(started));
                }
            }
            out.push(
                match &newest {
                    Some(_) => {
                        judge_archive(f, newest_i.map(|m| m.created_at.as_str()), max_age, now)
                    }
                    None => f.unknown(format!(
                        "listing {} did not finish within {}",
                        sc.dir.display(),
                        fmt_dur(limit)
                    )),
                }
                .took(started),
            );
        }
    }
    // Each sink, concurrently.
    if fr.sinks {
        let ledger = &Ledger::load(&cfg.state.dir).ok();
        let pin = &vigil_core::pin::load(&cfg.state.dir).ok().flatten();
        let jobs = cfg.sinks().map(|sc| {
            let members = &members;
            async move {
                let started = Instant::now();
                let name = sc.name.clone();
                let listed = match vigil_archive::sink::Sink::build(
                    sc,
                    cfg.cluster_name(),
                    &cfg.state.dir,
                ) {
                    Err(e) => Err(format!("cannot build the sink client: {e}")),
                    Ok(sink) => match tokio::time::timeout(
                        timeout,
                        catalog::sink_copies(&sink, cfg.cluster_name(), false),
                    )
                    .await
                    {
                        Err(_) => Err(format!(
                            "listing did not finish within {}",
                            fmt_dur(timeout)
                        )),
                        Ok(l) => match l.errors.into_iter().next() {
                            Some(e) => Err(format!("listing failed: {e}")),
                            None => Ok(l.copies),
                        },
                    },
                };
                members
                    .iter()
                    .map(|m| {
                        let f = finding(m, &name);
                        match &listed {
                            Err(e) => f.unknown(e.clone()),
                            Ok(copies) => {
                                let newest = catalog::newest_verified(
                                    copies,
                                    m,
                                    ledger.as_ref(),
                                    pin.as_ref(),
                                )
                                .map(|c| c.manifest.created_at.as_str());
                                judge_archive(f, newest, max_age, now)
                            }
                        }
                        .took(started)
                    })
                    .collect::<Vec<_>>()
            }
        });
        out.extend(
            futures_util::future::join_all(jobs)
                .await
                .into_iter()
                .flatten(),
        );
    }
    // The newest passing drill.
    let drill_max = fr.drill_max_age.map(|d| d.get()).or_else(|| {
        cfg.restore
            .as_ref()
            .and_then(|r| r.drill_identity_file.as_ref())
            .map(|_| std::time::Duration::from_secs(8 * 86400))
    });
    if let Some(limit) = drill_max {
        let started = Instant::now();
        let limit = limit.as_secs() as i64;
        let f = Finding::new("freshness.drill", "cluster", AlertKey::new("drill_stale"))
            .severity(Severity::Warning);
        let last = last_passing_drill(&cfg.state.dir);
        let f = match last.as_deref().and_then(|t| age_of(t, now).map(|a| (t, a))) {
            None => f.fail(
                Severity::Warning,
                "no passing restore drill on record; please run `vigil-restore drill` (and its timer)",
            ),
            Some((t, age)) if age < -FUTURE_TOLERANCE_SECS => f.fail(
                Severity::Warning,
                format!(
                    "last passing drill is dated {t}, {} in the future: the bastion clock ran ahead or the record lies; check timedatectl",
                    fmt_age(-age)
                ),
            ),
            Some((t, age)) if age > limit => f.fail(
                Severity::Warning,
                format!(
                    "last passing drill {} ago ({t}), longer than {}; is vigil-restore-drill.timer running?",
                    fmt_age(age),
                    fmt_age(limit)
                ),
            ),
            Some((t, age)) => f.pass(format!("last passing drill {} ago ({t})", fmt_age(age))),
        };
        out.push(f.took(started));
    } else if let Some(t) = last_passing_drill(&cfg.state.dir) {
        // Not required (each run proves restorability without a key), but
        // the last proof of the age layer is worth seeing.
        let age = age_of(&t, now).map(fmt_age).unwrap_or_default();
        out.push(
            Finding::new("freshness.drill", "cluster", AlertKey::new("drill_stale"))
                .severity(Severity::Warning)
                .pass(format!(
                    "last passing offline drill (decryption with the private key) {age} ago ({t}); no health.freshness.drill_max_age set"
                )),
        );
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::Status;

    #[test]
    fn archive_ages() {
        let f = || {
            Finding::new(
                "freshness.archive",
                "a @ local",
                AlertKey::new("backup_stale"),
            )
        };
        let now = time::macros::datetime!(2026-11-23 12:00 UTC).unix_timestamp();
        let r = judge_archive(f(), Some("2026-11-23T06:00:00.000Z"), 26 * 3600, now);
        assert_eq!(r.status, Status::Pass, "{}", r.reason);
        let r = judge_archive(f(), Some("2026-11-21T06:00:00.000Z"), 26 * 3600, now);
        assert_eq!(r.status, Status::Fail);
        assert!(r.reason.contains("2d 6h old"), "{}", r.reason);
        assert_eq!(judge_archive(f(), None, 60, now).status, Status::Fail);
        // A clock that ran ahead: a finding, not a negative age that passes.
        let r = judge_archive(f(), Some("2027-05-23T12:00:00.000Z"), 26 * 3600, now);
        assert_eq!(r.status, Status::Fail, "{}", r.reason);
        assert!(r.reason.contains("181d 0h in the future"), "{}", r.reason);
        // A minute ahead is only clock jitter.
        let r = judge_archive(f(), Some("2026-11-23T12:01:00.000Z"), 26 * 3600, now);
        assert_eq!(r.status, Status::Pass, "{}", r.reason);
    }

    #[test]
    fn proofs_of_the_newest_archive() {
        use vigil_core::manifest::{Manifest, ProofResult, RestoreProof};
        let now = 1_800_000_000;
        let mut m: Manifest = serde_json::from_str(include_str!("../tests/manifest.json")).unwrap();
        let f = || {
            Finding::new(
                "freshness.proof",
                "cp-1",
                AlertKey::new("restore_unproven").label("member", "cp-1"),
            )
        };
        let r = judge_proof(f(), &m, now);
        assert_eq!(r.status, Status::Fail);
        assert!(r.reason.contains("no restore proof"), "{}", r.reason);
        m.restore_proof = Some(RestoreProof {
            result: ProofResult::Proven,
            revision: Some(42),
            key_count: Some(7),
            hash_kv: Some(99),
            live_hash_kv: Some(99),
            peers_agree: vec!["cp-2".into()],
            ..Default::default()
        });
        m.restore_proven_at = Some(vigil_core::rfc3339(
            time::OffsetDateTime::from_unix_timestamp(now - 3600).unwrap(),
        ));
        let r = judge_proof(f(), &m, now);
        assert_eq!(r.status, Status::Pass, "{}", r.reason);
        assert!(
            r.reason.contains("1h") && r.reason.contains("hash_kv 99") && r.reason.contains("cp-2"),
            "{}",
            r.reason
        );
        m.restore_proof = Some(RestoreProof {
            result: ProofResult::Failed,
            check: Some("hash_kv".into()),
            error: Some("differs".into()),
            ..Default::default()
        });
        let r = judge_proof(f(), &m, now);
        assert_eq!((r.status, r.severity), (Status::Fail, Severity::Critical));
        assert!(r.reason.contains("check hash_kv: differs"), "{}", r.reason);
        m.restore_proof = Some(RestoreProof {
            result: ProofResult::Skipped,
            error: Some("skipped: too big".into()),
            ..Default::default()
        });
        let r = judge_proof(f(), &m, now);
        assert_eq!((r.status, r.severity), (Status::Fail, Severity::Warning));
        assert!(r.reason.contains("too big"), "{}", r.reason);
    }

    #[test]
    fn drill_from_history_when_latest_failed() {
        let dir = tempfile::tempdir().unwrap();
        let rec = |ok: bool, time: &str| vigil_core::outcome::Outcome {
            proof: None,
            job: vigil_core::jobs::Source::Drill,
            run_id: time.into(),
            cluster: "c".into(),
            subject: "cp-1".into(),
            ok,
            stage: vigil_core::outcome::Stage::Done,
            error: None,
            archive: None,
            time: time.into(),
            duration_ms: 1,
        };
        assert_eq!(last_passing_drill(dir.path()), None);
        vigil_core::outcome::record(dir.path(), &rec(true, "2026-11-20T00:00:00.000Z")).unwrap();
        vigil_core::outcome::record(dir.path(), &rec(false, "2026-11-22T00:00:00.000Z")).unwrap();
        assert_eq!(
            last_passing_drill(dir.path()).as_deref(),
            Some("2026-11-20T00:00:00.000Z")
        );
    }
}
