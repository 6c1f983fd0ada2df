//! Engine tests against a real SQLite file in a temp dir.

use crate::engine::{self, Settings};
use crate::model::{AlertKey, CheckResult, Fact, Severity, Source};
use crate::{ingest_with, Store};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;
use time::OffsetDateTime;
use vigil_core::outcome::{Outcome, Stage};
use vigil_core::Config;

fn config(dir: &Path, extra: &str) -> Config {
    let text = format!(
        r#"[cluster]
name = "prod"
members = [
  {{ name = "cp-1", endpoint = "http://127.0.0.1:12379" }},
  {{ name = "cp-2", endpoint = "http://127.0.0.1:22379" }},
]
[state]
dir = "{state}"
[alert]
group_wait = "1s"
{extra}
[[alert.channel]]
name = "all"
kind = "file"
path = "{state}/all.jsonl"
[[alert.channel]]
name = "critical-snapshots"
kind = "file"
path = "{state}/crit.jsonl"
min_severity = "critical"
sources = ["snapshot"]
"#,
        state = dir.display()
    );
    Config::parse(&text, Path::new("test.toml")).unwrap()
}

fn check(name: &str, member: &str, source: Source, ok: bool, sev: Severity) -> CheckResult {
    CheckResult {
        key: AlertKey::new(name).label("member", member),
        source,
        ok,
        severity: sev,
        summary: format!("{name} {member}"),
        facts: vec![Fact::new("Member", member)],
        runbook: None,
    }
}

fn t0() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap()
}

/// (channel, event, key) of every outbox row, in order.
fn outbox(dir: &Path) -> Vec<(String, String, String)> {
    let st = Store::open(dir).unwrap();
    let mut q = st
        .conn
        .prepare("SELECT channel, event, COALESCE(alert_key, '') FROM outbox ORDER BY id")
        .unwrap();
    q.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .map(|r| r.unwrap())
        .collect()
}

fn tick(s: &Settings, now: OffsetDateTime) -> usize {
    let mut st = Store::open(&s.state_dir).unwrap();
    st.write(|tx| crate::ledger::tick(tx, s, now)).unwrap()
}

#[test]
fn job_failure_fires_at_once_and_resolves_to_the_same_channels() {
    let d = tempfile::tempdir().unwrap();
    let s = Settings::from_config(&config(d.path(), ""));
    let r = ingest_with(
        &s,
        "snapshot",
        &[check(
            "snapshot_failed",
            "cp-2",
            Source::Snapshot,
            false,
            Severity::Critical,
        )],
        t0(),
    )
    .unwrap();
    assert_eq!(r.fired, vec![r#"snapshot_failed{member="cp-2"}"#]);
    assert_eq!(r.queued, 2);
    // Still failing: no new message.
    let r = ingest_with(
        &s,
        "snapshot",
        &[check(
            "snapshot_failed",
            "cp-2",
            Source::Snapshot,
            false,
            Severity::Critical,
        )],
        t0() + Duration::from_secs(60),
    )
    .unwrap();
    assert!(r.fired.is_empty() && r.queued == 0);
    let r = ingest_with(
        &s,
        "snapshot",
        &[check(
            "snapshot_failed",
            "cp-2",
            Source::Snapshot,
            true,
            Severity::Critical,
        )],
        t0() + Duration::from_secs(120),
    )
    .unwrap();
    assert_eq!(r.resolved.len(), 1);
    let rows = outbox(d.path());
    let events: Vec<(&str, &str)> = rows.iter().map(|r| (r.0.as_str(), r.1.as_str())).collect();
    assert_eq!(
        events,
        vec![
            ("all", "firing"),
            ("critical-snapshots", "firing"),
            ("all", "resolved"),
            ("critical-snapshots", "resolved")
        ]
    );
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(d.path().join("alerts.db"))
            .unwrap()
            .permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);
}

#[test]
fn health_thresholds_are_three_and_two() {
    let d = tempfile::tempdir().unwrap();
    let s = Settings::from_config(&config(d.path(), ""));
    let c = |ok| {
        check(
            "etcd_member_down",
            "cp-2",
            Source::Health,
            ok,
            Severity::Critical,
        )
    };
    let mut t = t0();
    let mut step = |ok: bool| {
        t += Duration::from_secs(60);
        ingest_with(&s, "health", &[c(ok)], t).unwrap()
    };
    assert_eq!(step(false).pending.len(), 1);
    assert_eq!(step(false).pending.len(), 1);
    assert_eq!(step(false).fired.len(), 1);
    assert!(step(true).resolved.is_empty());
    assert!(step(false).fired.is_empty(), "a flap does not fire again");
    assert!(step(true).resolved.is_empty());
    assert_eq!(step(true).resolved.len(), 1);
    // A pending alert that recovers sends nothing.
    step(false);
    step(true);
    let rows = outbox(d.path());
    // Routed to "all" only: critical-snapshots takes source snapshot only.
    assert_eq!(rows.iter().filter(|r| r.1 == "firing").count(), 1);
    assert_eq!(rows.iter().filter(|r| r.1 == "resolved").count(), 1);
    assert!(rows.iter().all(|r| r.0 == "all"));
}

#[test]
fn rules_override_thresholds_and_severity() {
    let d = tempfile::tempdir().unwrap();
    let extra = "[[alert.rule]]\nalert = \"etcd_member_down\"\nfailure_threshold = 1\nseverity = \"warning\"\n";
    let s = Settings::from_config(&config(d.path(), extra));
    let r = ingest_with(
        &s,
        "health",
        &[check(
            "etcd_member_down",
            "cp-1",
            Source::Health,
            false,
            Severity::Critical,
        )],
        t0(),
    )
    .unwrap();
    assert_eq!(r.fired.len(), 1);
    let a = Store::open(d.path()).unwrap().alerts(false).unwrap();
    assert_eq!(a[0].severity, Severity::Warning);
}

#[test]
fn repeat_interval_reminds_every_four_hours() {
    let d = tempfile::tempdir().unwrap();
    let s = Settings::from_config(&config(d.path(), ""));
    ingest_with(
        &s,
        "snapshot",
        &[check(
            "snapshot_failed",
            "cp-1",
            Source::Snapshot,
            false,
            Severity::Critical,
        )],
        t0(),
    )
    .unwrap();
    assert_eq!(tick(&s, t0() + Duration::from_secs(3 * 3600)), 0);
    assert_eq!(tick(&s, t0() + Duration::from_secs(4 * 3600)), 2);
    assert_eq!(tick(&s, t0() + Duration::from_secs(4 * 3600 + 60)), 0);
    assert_eq!(tick(&s, t0() + Duration::from_secs(8 * 3600)), 2);
    let rows = outbox(d.path());
    assert_eq!(rows.iter().filter(|r| r.1 == "repeat").count(), 4);
}

#[test]
fn silences_hold_back_and_release_notifications() {
    let d = tempfile::tempdir().unwrap();
    let s = Settings::from_config(&config(d.path(), ""));
    let mut st = Store::open(d.path()).unwrap();
    let mut m = BTreeMap::new();
    m.insert("member".to_string(), "cp-2".to_string());
    let sil = st
        .add_silence(&m, Duration::from_secs(7200), "disk swap", "ops", t0())
        .unwrap();
    assert_eq!(st.silences(false, t0()).unwrap().len(), 1);
    let r = ingest_with(
        &s,
        "snapshot",
        &[
            check(
                "snapshot_failed",
                "cp-2",
                Source::Snapshot,
                false,
                Severity::Critical,
            ),
            check(
                "snapshot_failed",
                "cp-1",
                Source::Snapshot,
                false,
                Severity::Critical,
            ),
        ],
        t0(),
    )
    .unwrap();
    assert_eq!(r.fired.len(), 2);
    let rows = outbox(d.path());
    assert!(rows.iter().all(|r| r.2.contains("cp-1")), "{rows:?}");
    // Silence still active: nothing new; after expiry the held-back firing goes out.
    assert_eq!(tick(&s, t0() + Duration::from_secs(60)), 0);
    st.expire_silence(&sil.id, t0() + Duration::from_secs(120))
        .unwrap();
    assert!(st
        .expire_silence(&sil.id, t0() + Duration::from_secs(121))
        .is_err());
    assert_eq!(
        st.silences(false, t0() + Duration::from_secs(130))
            .unwrap()
            .len(),
        0
    );
    assert_eq!(
        st.silences(true, t0() + Duration::from_secs(130))
            .unwrap()
            .len(),
        1
    );
    assert_eq!(tick(&s, t0() + Duration::from_secs(180)), 2);
    assert!(outbox(d.path())
        .iter()
        .any(|r| r.2.contains("cp-2") && r.1 == "firing"));
}

#[test]
fn silence_on_alertname_and_resolve_of_unnotified_alert_is_quiet() {
    let d = tempfile::tempdir().unwrap();
    let s = Settings::from_config(&config(d.path(), ""));
    let mut st = Store::open(d.path()).unwrap();
    let mut m = BTreeMap::new();
    m.insert("alertname".to_string(), "snapshot_failed".to_string());
    st.add_silence(&m, Duration::from_secs(3600), "r", "ops", t0())
        .unwrap();
    ingest_with(
        &s,
        "snapshot",
        &[check(
            "snapshot_failed",
            "cp-1",
            Source::Snapshot,
            false,
            Severity::Critical,
        )],
        t0(),
    )
    .unwrap();
    ingest_with(
        &s,
        "snapshot",
        &[check(
            "snapshot_failed",
            "cp-1",
            Source::Snapshot,
            true,
            Severity::Critical,
        )],
        t0() + Duration::from_secs(60),
    )
    .unwrap();
    assert!(outbox(d.path()).is_empty());
}

#[test]
fn maintenance_window_mutes_matching_alerts() {
    let d = tempfile::tempdir().unwrap();
    let extra = "[[alert.maintenance]]\nstart = \"2027-01-15T07:00:00Z\"\nend = \"2027-01-15T09:00:00Z\"\nmatch = { member = \"cp-1\" }\nreason = \"kernel update\"\n";
    let s = Settings::from_config(&config(d.path(), extra));
    // t0 = 2027-01-15T08:00:00Z: inside.
    ingest_with(
        &s,
        "snapshot",
        &[check(
            "snapshot_failed",
            "cp-1",
            Source::Snapshot,
            false,
            Severity::Critical,
        )],
        t0(),
    )
    .unwrap();
    assert!(outbox(d.path()).is_empty());
    assert_eq!(
        tick(&s, t0() + Duration::from_secs(3600)),
        2,
        "after the window the alert goes out"
    );
}

#[test]
fn outcomes_map_to_alerts() {
    let d = tempfile::tempdir().unwrap();
    let cfg = config(d.path(), "");
    let o = |subject: &str, ok: bool, stage: Stage| Outcome {
        proof: None,
        job: vigil_core::jobs::Source::Snapshot,
        run_id: "r1".into(),
        cluster: "prod".into(),
        subject: subject.into(),
        ok,
        stage,
        error: (!ok).then(|| "boom".into()),
        archive: None,
        time: "2027-01-15T08:00:00Z".into(),
        duration_ms: 5,
    };
    let r = crate::ingest_outcomes(
        &cfg,
        "snapshot",
        &[
            o("cp-1", false, Stage::Connect),
            o("cp-2", false, Stage::Consistency),
        ],
    )
    .unwrap();
    assert_eq!(
        r.fired,
        vec![
            r#"snapshot_failed{member="cp-1"}"#,
            r#"etcd_member_diverged{member="cp-2"}"#
        ]
    );
    let r = crate::ingest_outcomes(
        &cfg,
        "snapshot",
        &[
            o("cp-1", false, Stage::Verify),
            o("cp-2", true, Stage::Done),
        ],
    )
    .unwrap();
    assert_eq!(
        r.fired,
        vec![r#"snapshot_verification_failed{member="cp-1"}"#]
    );
    assert_eq!(
        r.resolved,
        vec![
            r#"snapshot_failed{member="cp-1"}"#,
            r#"etcd_member_diverged{member="cp-2"}"#
        ]
    );
    // A failed restore proof names its check; the next good run resolves it.
    let mut proof = o("cp-3", false, Stage::Proof);
    proof.proof = Some(vigil_core::manifest::RestoreProof {
        result: vigil_core::manifest::ProofResult::Failed,
        check: Some("hash_kv".into()),
        ..Default::default()
    });
    let r = crate::ingest_outcomes(&cfg, "snapshot", &[proof]).unwrap();
    assert_eq!(
        r.fired,
        vec![r#"snapshot_restore_proof_failed{member="cp-3"}"#]
    );
    let a = Store::open(d.path()).unwrap().alerts(false).unwrap();
    let p = a
        .iter()
        .find(|a| a.name == "snapshot_restore_proof_failed")
        .unwrap();
    assert!(p.summary.contains("check hash_kv failed"), "{}", p.summary);
    let r = crate::ingest_outcomes(&cfg, "snapshot", &[o("cp-3", true, Stage::Done)]).unwrap();
    assert_eq!(
        r.resolved,
        vec![r#"snapshot_restore_proof_failed{member="cp-3"}"#]
    );
    let mut sink = o("s3", false, Stage::Write);
    sink.job = Source::Sink;
    let r = crate::ingest_outcomes(&cfg, "sink", &[sink.clone()]).unwrap();
    assert_eq!(r.fired, vec![r#"sink_down{sink="s3"}"#]);
    let mut drill = o("cp-1", false, Stage::Verify);
    drill.job = Source::Drill;
    let r = crate::ingest_outcomes(&cfg, "drill", &[drill]).unwrap();
    assert_eq!(r.fired, vec![r#"restore_drill_failed{target="cp-1"}"#]);
    sink.ok = true;
    let r = crate::ingest_outcomes(&cfg, "sink", &[sink]).unwrap();
    assert_eq!(r.resolved, vec![r#"sink_down{sink="s3"}"#]);
    let a = Store::open(d.path()).unwrap().alerts(false).unwrap();
    let v = a
        .iter()
        .find(|a| a.name == "snapshot_verification_failed")
        .unwrap();
    assert!(v
        .facts
        .iter()
        .any(|f| f.title == "Endpoint" && f.value == "http://127.0.0.1:12379"));
    assert!(v
        .facts
        .iter()
        .any(|f| f.title == "Error" && f.value == "boom"));
}

/// Issue #16: every job's failures carry a source that `sources = [...]`
/// can select (scrub's had fallen back to `vigil`), and the config accepts
/// exactly the sources alerts carry.
#[test]
fn every_job_routes_by_its_own_source() {
    // One list for both since #16 (vigil_core::jobs): every task has its source.
    for task in vigil_core::jobs::Task::ALL {
        assert!(Source::ALL.contains(&task.source()), "{task}");
    }
    let d = tempfile::tempdir().unwrap();
    let text = format!(
        r#"[cluster]
name = "prod"
members = [{{ name = "cp-1", endpoint = "http://127.0.0.1:12379" }}]
[state]
dir = "{state}"
[[alert.channel]]
name = "scrubs"
kind = "file"
path = "{state}/scrubs.jsonl"
sources = ["scrub"]
"#,
        state = d.path().display()
    );
    let cfg = Config::parse(&text, Path::new("test.toml")).unwrap();
    let scrub = Outcome {
        proof: None,
        job: vigil_core::jobs::Source::Scrub,
        run_id: "r1".into(),
        cluster: "prod".into(),
        subject: "rgw".into(),
        ok: false,
        stage: Stage::Verify,
        error: Some("the stored copy changed".into()),
        archive: None,
        time: "2027-01-15T08:00:00Z".into(),
        duration_ms: 5,
    };
    let r = crate::ingest_outcomes(&cfg, "scrub", &[scrub]).unwrap();
    assert_eq!(r.fired, vec![r#"scrub_failed{subject="rgw"}"#]);
    // Before: source `vigil`, so the `sources = ["scrub"]` channel got nothing.
    assert_eq!(
        outbox(d.path()),
        vec![(
            "scrubs".to_string(),
            "firing".to_string(),
            r#"scrub_failed{subject="rgw"}"#.to_string()
        )]
    );
}

#[test]
fn heartbeat_is_queued_once_after_good_runs() {
    let d = tempfile::tempdir().unwrap();
    let s = Settings::from_config(&config(
        d.path(),
        "heartbeat_url = \"https://hc-ping.com/SECRETUUID\"\n",
    ));
    let good = check(
        "snapshot_failed",
        "cp-1",
        Source::Snapshot,
        true,
        Severity::Critical,
    );
    let bad = check(
        "snapshot_failed",
        "cp-1",
        Source::Snapshot,
        false,
        Severity::Critical,
    );
    assert!(
        ingest_with(&s, "snapshot", std::slice::from_ref(&good), t0())
            .unwrap()
            .heartbeat
    );
    assert!(
        ingest_with(&s, "snapshot", std::slice::from_ref(&good), t0())
            .unwrap()
            .heartbeat
    );
    assert!(
        !ingest_with(&s, "snapshot", &[good, bad], t0())
            .unwrap()
            .heartbeat
    );
    let hb = outbox(d.path())
        .into_iter()
        .filter(|r| r.0 == engine::HEARTBEAT_CHANNEL)
        .count();
    assert_eq!(hb, 1);
}

#[test]
fn concurrent_writers_lose_nothing() {
    let d = tempfile::tempdir().unwrap();
    let s = Settings::from_config(&config(d.path(), ""));
    std::thread::scope(|sc| {
        for w in 0..4 {
            let s = &s;
            sc.spawn(move || {
                for i in 0..25 {
                    let c = check(
                        "snapshot_failed",
                        &format!("w{w}-{i}"),
                        Source::Snapshot,
                        false,
                        Severity::Critical,
                    );
                    ingest_with(s, "snapshot", &[c], t0()).unwrap();
                }
            });
        }
    });
    let rows = outbox(d.path());
    assert_eq!(rows.len(), 200, "100 alerts x 2 channels");
}

/// The string literals of Rust source with the text before each and the
/// rest of the source after it (escapes, raw strings and `'"'` handled).
fn literals(code: &str) -> Vec<(&str, &str, &str)> {
    let b = code.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    let mut last = 0;
    while i < b.len() {
        match b[i] {
            b'\'' if b.get(i + 1) == Some(&b'"') && b.get(i + 2) == Some(&b'\'') => i += 3,
            b'\'' if b.get(i + 1) == Some(&b'\\') => i += 2,
            b'/' if b.get(i + 1) == Some(&b'/') => {
                i = code[i..].find('\n').map_or(b.len(), |n| i + n);
            }
            b'r' if b.get(i + 1) == Some(&b'#')
                || (b.get(i + 1) == Some(&b'"')
                    && !b[i.saturating_sub(1)].is_ascii_alphanumeric()) =>
            {
                let hashes = code[i + 1..].bytes().take_while(|&c| c == b'#').count();
                if b.get(i + 1 + hashes) != Some(&b'"') {
                    i += 1;
                    continue;
                }
                let close = format!("\"{}", "#".repeat(hashes));
                let body = i + 2 + hashes;
                let end = code[body..].find(&close).map_or(b.len(), |n| body + n);
                i = end + close.len();
            }
            b'"' => {
                let mut j = i + 1;
                while j < b.len() && b[j] != b'"' {
                    j += if b[j] == b'\\' { 2 } else { 1 };
                }
                let j = j.min(b.len());
                out.push((
                    &code[last..i],
                    &code[i + 1..j],
                    &code[(j + 1).min(b.len())..],
                ));
                i = j + 1;
                last = i.min(b.len());
            }
            _ => i += 1,
        }
    }
    out
}

/// Alert names as the sources spell them: `"name")` (the last argument of
/// `AlertKey::new`, `key`, `f`, `mk`, ...) and `const NAME: &str = "name"`,
/// in the non-test code of files that build alert keys.
fn alert_names_in(src: &str) -> Vec<String> {
    let code = src.split("#[cfg(test)]").next().unwrap_or(src);
    let is_name = |s: &str| {
        s.contains('_')
            && s.starts_with(|c: char| c.is_ascii_lowercase())
            && s.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
            && !s.contains("__")
            && !s.ends_with('_')
    };
    literals(code)
        .into_iter()
        .filter(|(before, lit, after)| {
            let is_const = before.trim_end().ends_with("&str =")
                && before.lines().last().is_some_and(|l| l.contains("const "));
            is_name(lit) && (after.trim_start().starts_with(')') || is_const)
        })
        .map(|(_, lit, _)| lit.to_string())
        .collect()
}

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            if p.file_name().is_some_and(|n| n != "tests") {
                rust_files(&p, out);
            }
        } else if p.extension().is_some_and(|x| x == "rs")
            && p.file_name().is_some_and(|n| n != "tests.rs")
        {
            out.push(p);
        }
    }
}

/// Every alert name vigil raises has its row in README's alert catalogue,
/// so `[[alert.rule]]`, silences and routing can be written from it.
#[test]
fn every_alert_name_is_in_the_readme_catalogue() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let start = readme
        .find("### Alert catalogue")
        .expect("README has an \"Alert catalogue\" section");
    let section = &readme[start..];
    let section = &section[..section[4..].find("\n## ").map_or(section.len(), |e| e + 4)];
    // Literals in alert-building files that are not alert names.
    const NOT_ALERTS: &[&str] = &[
        "node_cpu_seconds_total",
        "node_filesystem_size_bytes",
        "node_load5",
        "ser_key",
    ];
    let mut files = Vec::new();
    for e in std::fs::read_dir(root.join("crates")).unwrap().flatten() {
        let src = e.path().join("src");
        if src.is_dir() {
            rust_files(&src, &mut files);
        }
    }
    let mut names = std::collections::BTreeSet::new();
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        if text.contains("AlertKey") {
            names.extend(alert_names_in(&text));
        }
    }
    names.retain(|n| !NOT_ALERTS.contains(&n.as_str()));
    for known in [
        "snapshot_failed",
        "restore_drill_failed",
        "notify_channel_failing",
        "job_unit_failed",
        "etcd_member_down",
        "quota_usage_critical",
    ] {
        assert!(names.contains(known), "the scan finds {known}: {names:?}");
    }
    let missing: Vec<&String> = names
        .iter()
        .filter(|n| !section.contains(&format!("`{n}`")))
        .collect();
    assert!(
        missing.is_empty(),
        "alert names missing from README \"Alert catalogue\": {missing:?}"
    );
    // The drill's label, which silences need.
    assert!(section.contains("`restore_drill_failed`") && section.contains("target"));
}

#[test]
fn the_scan_finds_names_in_keys_and_consts() {
    let src = r##"
const A: &str = "some_alert";
const NOT: &str = "_dir";
// a comment with "quote_in_comment")
fn f() { s.replace('"', "\\\""); AlertKey::new("other_alert").label("member", m); key("third_one"); }
fn g() { let q = r#"raw "in_raw") "#; g("a.check", "fourth_alert"); h("not an alert") }
#[cfg(test)]
mod tests { fn t() { AlertKey::new("in_a_test"); } }
"##;
    assert_eq!(
        alert_names_in(src),
        vec!["some_alert", "other_alert", "third_one", "fourth_alert"]
    );
}
