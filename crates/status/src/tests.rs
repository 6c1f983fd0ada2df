use super::*;
use vigil_core::manifest::Manifest;

const NOW: &str = "2026-12-03T12:00:00Z";

fn now() -> OffsetDateTime {
    OffsetDateTime::parse(NOW, &time::format_description::well_known::Rfc3339).unwrap()
}

fn manifest(member: &str, created_at: &str, proof: Option<&str>) -> Manifest {
    let mut v = serde_json::json!({
        "format": 1, "id": format!("prod-{member}-{created_at}"), "cluster": "prod",
        "cluster_id": "1", "member": member, "member_id": "2", "endpoint": "http://127.0.0.1:2379",
        "revision": 42, "raft_index": 1, "raft_term": 1, "etcd_version": "3.4.23",
        "db_size": 1, "db_size_in_use": 1, "leader": "2", "is_leader": true, "key_count": 1,
        "snapshot_size": 1, "snapshot_sha256": "", "db_sha256": "", "archive": "a",
        "archive_size": 2048, "archive_sha256": "", "compression": "zstd", "zstd_level": 3,
        "encryption": "age", "age_recipients": [], "created_at": created_at, "duration_ms": 1,
        "verified_at": created_at, "vigil_version": "0"
    });
    if let Some(p) = proof {
        v["restore_proof"] = serde_json::json!({ "result": p });
    }
    serde_json::from_value(v).unwrap()
}

fn run(ok: bool, time: &str) -> LastRun {
    LastRun {
        time: time.into(),
        ok,
        error: (!ok).then(|| "member cp-1 (http://127.0.0.1:2379): connect failed".into()),
    }
}

const DAY: i64 = 86_400;

#[test]
fn a_member_is_judged_by_its_newest_verified_archive() {
    let fresh = manifest("cp-1", "2026-12-03T06:00:00Z", Some("proven"));
    let m = member(
        "cp-1",
        Some(&fresh),
        Some(run(true, NOW)),
        true,
        DAY,
        now(),
        true,
    );
    assert_eq!(m.level, Level::Ok, "{}", m.note);
    assert_eq!(m.age_seconds, Some(6 * 3600));
    assert_eq!(m.proof.as_deref(), Some("proven"));

    let none = member("cp-1", None, Some(run(false, NOW)), true, DAY, now(), true);
    assert_eq!(none.level, Level::Critical);
    assert!(none.note.contains("connect failed"), "{}", none.note);

    let old = manifest("cp-1", "2026-12-01T06:00:00Z", Some("proven"));
    let m = member(
        "cp-1",
        Some(&old),
        Some(run(true, NOW)),
        true,
        DAY,
        now(),
        true,
    );
    assert_eq!(m.level, Level::Critical);
    assert!(m.note.contains("older than"), "{}", m.note);

    let failed_proof = manifest("cp-1", "2026-12-03T06:00:00Z", Some("failed"));
    let m = member("cp-1", Some(&failed_proof), None, true, DAY, now(), true);
    assert_eq!(m.level, Level::Critical);

    // A fresh archive and a failed last run: the member is still safe, but look.
    let m = member(
        "cp-1",
        Some(&fresh),
        Some(run(false, NOW)),
        true,
        DAY,
        now(),
        true,
    );
    assert_eq!(m.level, Level::Warning);
    assert!(m.note.contains("last run failed"), "{}", m.note);

    let unproven = manifest("cp-1", "2026-12-03T06:00:00Z", None);
    let m = member("cp-1", Some(&unproven), None, true, DAY, now(), true);
    assert_eq!(m.level, Level::Warning);
    let m = member("cp-1", Some(&unproven), None, false, DAY, now(), true);
    assert_eq!(m.level, Level::Ok);
}

#[test]
fn a_sink_holds_what_the_last_good_ship_found() {
    let a = manifest("cp-1", "2026-12-03T06:00:00Z", Some("proven"));
    let b = manifest("cp-1", "2026-12-03T11:00:00Z", Some("proven"));
    let verified = [&b, &a];
    // Shipped fine at 07:00, failed at 11:30: it holds a, 5 h behind b.
    let s = sink(
        "s3",
        "s3",
        Some(run(false, "2026-12-03T11:30:00Z")),
        Some("2026-12-03T07:00:00Z".into()),
        Some(run(true, "2026-12-03T08:00:00Z")),
        &verified,
        DAY,
        now(),
    );
    assert_eq!(s.newest_copy.as_deref(), Some(a.id.as_str()));
    assert_eq!(s.behind_seconds, Some(5 * 3600));
    assert_eq!(s.level, Level::Warning, "{}", s.note);
    assert!(s.note.contains("last ship failed"));

    let ok = sink(
        "s3",
        "s3",
        Some(run(true, "2026-12-03T11:05:00Z")),
        Some("2026-12-03T11:05:00Z".into()),
        None,
        &verified,
        DAY,
        now(),
    );
    assert_eq!((ok.level, ok.behind_seconds), (Level::Ok, Some(0)));

    let never = sink(
        "s3",
        "s3",
        Some(run(false, NOW)),
        None,
        None,
        &verified,
        DAY,
        now(),
    );
    assert_eq!(never.level, Level::Critical);
    assert!(never.newest_copy.is_none());

    let damaged = sink(
        "s3",
        "s3",
        Some(run(true, NOW)),
        Some(NOW.into()),
        Some(run(false, NOW)),
        &verified,
        DAY,
        now(),
    );
    assert_eq!(damaged.level, Level::Critical);
    assert!(damaged.note.contains("scrub"));

    let untouched = sink("tape", "tape-dsmc", None, None, None, &verified, DAY, now());
    assert_eq!(untouched.level, Level::Warning);
}

#[test]
fn levels_map_to_nagios_exit_codes_and_ages_read_well() {
    assert_eq!(
        [Level::Ok, Level::Warning, Level::Critical].map(Level::exit_code),
        [0, 1, 2]
    );
    assert!(Level::Critical > Level::Warning && Level::Warning > Level::Ok);
    assert_eq!(fmt_age(45), "45s");
    assert_eq!(fmt_age(600), "10m");
    assert_eq!(fmt_age(3 * 3600 + 12 * 60), "3h12m");
    assert_eq!(fmt_age(2 * DAY + 4 * 3600), "2d4h");
}
